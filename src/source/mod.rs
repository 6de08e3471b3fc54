//! Where snapshots come from: live AWS (`aws`) or AWS-CLI JSON on disk (`files`), behind one
//! [`Source`] that the rest of the program builds from the config and polls without knowing
//! which it is. Both turn what they read into the raw shapes of `assemble`, whose one pure step
//! makes the snapshot; SDK types appear only in `convert` (and, for the writes of `sgdrift fix
//! --apply`, in `write`); `calls` counts the AWS calls.

pub mod assemble;
pub mod aws;
pub mod calls;
pub mod convert;
pub mod files;
pub mod organization;
pub mod session;
pub mod style;
pub mod write;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::{Config, SourceKind};
use crate::model::{ClusterId, ClusterSnapshot};

pub use calls::AwsCallMetrics;
pub use organization::Organization;

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

/// The configured source. Nothing outside `source/` knows which one it is: it is built from the
/// config and polled, and it counts its AWS calls into the metrics it was handed.
pub struct Source {
    kind: Kind,
    calls: AwsCallMetrics,
}

/// An enum rather than a trait object: async methods stay plain `async fn`, and there are two.
enum Kind {
    Aws(aws::AwsSource),
    /// Shared with the blocking thread that reads it.
    Files(Arc<files::FilesSource>),
}

impl Source {
    /// The source `[source]` names; AWS credentials come from the standard chain. `calls` is
    /// where the AWS calls are counted: the daemon's registered metrics, or
    /// [`AwsCallMetrics::unregistered`] for a one-shot command.
    pub async fn from_config(config: &Config, calls: AwsCallMetrics) -> Result<Source, SourceError> {
        let kind = match config.source.kind {
            SourceKind::Files => {
                // `config::load` refuses a files source without `dir`; this is for hand-built configs.
                let dir = config.source.dir.clone().ok_or_else(|| {
                    SourceError::Input("source.kind = \"files\" needs `dir`, the directory of AWS-CLI JSON".into())
                })?;
                Kind::Files(Arc::new(files::FilesSource::new(dir)))
            }
            SourceKind::Aws => Kind::Aws(aws::AwsSource::new(&config.poll, calls.clone()).await),
        };
        Ok(Source { kind, calls })
    }

    /// Reads every cluster `target` names. SG look-ups are batched across the target's clusters.
    /// The files source reads with blocking I/O, on a blocking thread: callers just await.
    pub async fn poll(&self, target: &TargetSpec) -> TargetPoll {
        match &self.kind {
            Kind::Aws(s) => s.poll(target).await,
            Kind::Files(s) => {
                let (files, spec) = (Arc::clone(s), target.clone());
                match tokio::task::spawn_blocking(move || files.poll(&spec)).await {
                    Ok(poll) => poll,
                    // A panic in the reader is the caller's to contain, as it would be inline.
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    Err(e) => TargetPoll {
                        clusters: Vec::new(),
                        error: Some((
                            target.region.clone(),
                            SourceError::Input(format!("reading the files stopped: {e}")),
                        )),
                    },
                }
            }
        }
    }

    /// The active accounts of an organization target (AWS Organizations; `files` has none).
    pub async fn organization_accounts(&self, org: &Organization) -> Result<Vec<String>, SourceError> {
        match &self.kind {
            Kind::Aws(s) => s.organization_accounts(org).await,
            Kind::Files(_) => Err(SourceError::Input("`organization` needs source.kind = \"aws\"".into())),
        }
    }

    /// Makes the next poll of `cluster` read its cluster and node-group metadata again, whatever
    /// its age (the `aws` source caches it for `poll.metadata_interval`; `files` reads every
    /// poll): for the event feed, when EKS reports a change to the cluster.
    pub fn invalidate_metadata(&self, target: &TargetSpec, cluster: &str) {
        if let Kind::Aws(s) = &self.kind {
            s.invalidate(target, cluster);
        }
    }

    /// AWS calls made so far through this source's metrics (none for `files`).
    pub fn call_counts(&self) -> CallCounts {
        self.calls.call_counts()
    }
}
