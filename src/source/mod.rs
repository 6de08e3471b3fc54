//! Where snapshots come from: live AWS (`aws`) or AWS-CLI JSON on disk (`files`). Both turn
//! what they read into the raw shapes of `assemble`, whose one pure step makes the snapshot;
//! SDK types appear only in `convert`.

pub mod assemble;
pub mod aws;
pub mod convert;
pub mod files;
pub mod style;

use std::collections::BTreeMap;

use crate::model::{ClusterId, ClusterSnapshot};

/// A failure to read one cluster or one target, with a bounded `kind()` for metric labels.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    #[error("throttled by AWS on {operation}: {message}")]
    Throttled { operation: String, message: String },
    #[error("access denied on {operation}: the IAM policy lacks `{action}` ({message})")]
    AccessDenied { operation: String, action: String, message: String },
    #[error("not found: {0}")]
    NotFound(String),
    #[error("AWS rejected {operation}: {message}")]
    Client { operation: String, message: String },
    #[error("AWS failed on {operation}: {message}")]
    Server { operation: String, message: String },
    #[error("{operation} timed out after {seconds}s")]
    Timeout { operation: String, seconds: u64 },
    /// The files source: unreadable or malformed JSON; the message names file, line and column.
    #[error("{0}")]
    Input(String),
}

impl SourceError {
    /// A bounded label: `throttled`, `access_denied`, `not_found`, `client`, `server`, `timeout`, `input`.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceError::Throttled { .. } => "throttled",
            SourceError::AccessDenied { .. } => "access_denied",
            SourceError::NotFound(_) => "not_found",
            SourceError::Client { .. } => "client",
            SourceError::Server { .. } => "server",
            SourceError::Timeout { .. } => "timeout",
            SourceError::Input(_) => "input",
        }
    }
}

/// Counters of AWS calls made, `"<service>:<operation>"` → n (design.md: `stats.aws_calls`).
pub type CallCounts = BTreeMap<String, u64>;

/// The result of polling one target (one region of one `[[targets]]` entry).
#[derive(Debug, Default)]
pub struct TargetPoll {
    /// Every cluster the target names, read or not.
    pub clusters: Vec<ClusterPoll>,
    /// A failure before any cluster could be named (ListClusters, credentials).
    pub error: Option<(String, SourceError)>,
}

#[derive(Debug)]
pub struct ClusterPoll {
    pub id: ClusterId,
    pub result: Result<ClusterSnapshot, SourceError>,
}

/// What one `[[targets]]` entry asks for in one region, as the sources need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    pub region: String,
    pub role_arn: Option<String>,
    /// Names, or `*` for every cluster.
    pub clusters: Vec<String>,
}

impl TargetSpec {
    pub fn wants(&self, name: &str) -> bool {
        self.clusters.iter().any(|c| c == "*" || c == name)
    }
}

/// The two sources behind one interface. An enum rather than a trait object: async methods
/// stay plain `async fn`, and there are exactly two.
pub enum Source {
    Aws(aws::AwsSource),
    Files(files::FilesSource),
}

impl Source {
    /// Reads every cluster `target` names. SG look-ups are batched across the target's clusters.
    pub async fn poll(&self, target: &TargetSpec) -> TargetPoll {
        match self {
            Source::Aws(s) => s.poll(target).await,
            Source::Files(s) => s.poll(target),
        }
    }

    /// AWS calls made so far (all zero for `files`).
    pub fn call_counts(&self) -> CallCounts {
        match self {
            Source::Aws(s) => s.call_counts(),
            Source::Files(_) => CallCounts::new(),
        }
    }
}
