//! Resolution: role-named baseline rules become concrete rules on concrete groups of one snapshot.

use std::collections::BTreeMap;

use super::{Baseline, RuleStatus};
use crate::model::{ClusterSnapshot, Rule};

/// Facts from the target's config that a baseline may depend on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolveContext {
    /// `webhook_ports` of the target: control plane → nodes ports the profile allows.
    pub webhook_ports: Vec<u16>,
}

/// One baseline rule made concrete for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedRule {
    pub rule: Rule,
    pub status: RuleStatus,
    pub why: Option<String>,
    pub source: Option<String>,
}

/// The expected rules of each group of the snapshot, by group id. A group with no entry
/// expects nothing: every rule it has is unexpected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedBaseline {
    pub origin: String,
    pub by_group: BTreeMap<String, Vec<ResolvedRule>>,
}

/// Resolves `baseline` against `snapshot`: `role:` peers expand to every group of that role,
/// `self` to the holding group, `vpc-cidr` to the VPC's CIDRs, prefix-list names to ids.
/// A rule whose peer resolves to nothing (no group of that role) drops out.
pub fn resolve(baseline: &Baseline, snapshot: &ClusterSnapshot, ctx: &ResolveContext) -> ResolvedBaseline {
    let _ = (baseline, snapshot, ctx);
    todo!("baseline resolution")
}
