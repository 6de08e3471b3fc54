//! The traffic EKS needs, checked over the SG *sets* on each endpoint: a flow is open only if
//! the source set allows the egress and the destination set allows the ingress.

use serde::{Deserialize, Serialize};

use crate::model::{ClusterSnapshot, Role, Rule};

/// The required flows of design.md §2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlowName {
    Kubelet,
    Api,
    Dns,
    Webhooks,
    AwsApis,
}

impl FlowName {
    pub const ALL: [FlowName; 5] = [FlowName::Kubelet, FlowName::Api, FlowName::Dns, FlowName::Webhooks, FlowName::AwsApis];

    pub fn as_str(self) -> &'static str {
        match self {
            FlowName::Kubelet => "kubelet",
            FlowName::Api => "api",
            FlowName::Dns => "dns",
            FlowName::Webhooks => "webhooks",
            FlowName::AwsApis => "aws-apis",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowStatus {
    Open,
    Closed,
}

/// The rule that would open a closed flow, on the group that lacks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingSide {
    pub group_id: String,
    pub role: Role,
    pub rule: Rule,
    /// "egress on sg-… (node) to the control plane", for the finding's reason.
    pub reason: String,
}

/// The verdict on one flow for one node group (or for the cluster when the flow has no node side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowResult {
    pub name: FlowName,
    pub node_group: Option<String>,
    pub status: FlowStatus,
    /// Human explanation: why it is open, or which side lacks what.
    pub detail: String,
    /// For a closed flow: each side that lacks a rule.
    pub missing: Vec<MissingSide>,
}

/// Facts from config the flows depend on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowContext {
    pub webhook_ports: Vec<u16>,
}

/// Evaluates every required flow of `snapshot`.
pub fn check(snapshot: &ClusterSnapshot, ctx: &FlowContext) -> Vec<FlowResult> {
    let _ = (snapshot, ctx);
    todo!("flow checker")
}
