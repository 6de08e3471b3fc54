//! The report of design.md §3 (`check --format json`, `/api/v1/report`) and its text and HTML
//! renderings.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{EndpointMode, Finding, Role, Style};
use crate::source::CallCounts;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub generated_at: DateTime<Utc>,
    pub clusters: Vec<ClusterReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<Stats>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Stats {
    pub aws_calls: CallCounts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClusterStatus {
    Ok,
    Drift,
    Error,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterReport {
    pub account_id: String,
    pub region: String,
    pub cluster: String,
    pub endpoint_mode: Option<EndpointMode>,
    pub style: Option<Style>,
    pub status: ClusterStatus,
    pub error: Option<String>,
    pub groups: Vec<GroupRef>,
    pub findings: Vec<Finding>,
    pub flows: Vec<FlowReport>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The daemon only: the findings are from an earlier poll because the last one failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRef {
    pub id: String,
    pub name: String,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowReport {
    pub name: String,
    pub status: crate::flows::FlowStatus,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_group: Option<String>,
}
