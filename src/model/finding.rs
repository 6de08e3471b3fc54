//! What the differ and the flow checker report: one finding per drifted rule or closed flow.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{ParseError, Role};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [Severity::Low, Severity::Medium, Severity::High, Severity::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        Severity::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| {
            ParseError(format!("unknown severity `{s}`: expected low, medium, high or critical"))
        })
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FindingKind {
    Unexpected,
    Missing,
    Flow,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Unexpected => "unexpected",
            FindingKind::Missing => "missing",
            FindingKind::Flow => "flow",
        }
    }
}

/// One finding, in the JSON shape of design.md §3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable across polls and restarts: a hash of cluster, group, kind and rule (or flow).
    pub id: String,
    pub kind: FindingKind,
    pub severity: Severity,
    pub group_id: String,
    pub role: Role,
    pub direction: super::Direction,
    pub protocol: String,
    pub from_port: i32,
    pub to_port: i32,
    pub peer: String,
    pub reason: String,
    pub flow: Option<String>,
    /// The rule's description in AWS, shown, never compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub suppressed_by: Option<String>,
}

impl Finding {
    /// Suppressed findings stay in the report but are not drift.
    pub fn is_drift(&self) -> bool {
        self.suppressed_by.is_none()
    }
}

/// The stable id of a finding: the first 16 hex digits of SHA-256 over its identity, so it
/// survives restarts, reordering and description edits.
pub fn finding_id(cluster: &super::ClusterId, group_id: &str, kind: FindingKind, subject: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [&cluster.account_id, &cluster.region, &cluster.name, group_id, kind.as_str(), subject] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    let digest = h.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}
