//! Pure matching: which clusters a change concerns (by the security groups, EKS cluster names
//! and VPCs the last snapshots use), and which change explains a finding. No I/O.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{ClusterId, Finding, FindingKind};
use crate::state::PersistedState;

use super::cloudtrail::Change;

/// Where each cluster's resources are, as the last polls saw them: built from the state (its
/// groups) plus the VPCs the polls of this process saw.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Index {
    /// (region, group id) → clusters whose last snapshot has the group.
    pub groups: BTreeMap<(String, String), BTreeSet<ClusterId>>,
    /// (region, VPC id) → clusters in the VPC.
    pub vpcs: BTreeMap<(String, String), BTreeSet<ClusterId>>,
    /// Every known cluster.
    pub clusters: BTreeSet<ClusterId>,
}

impl Index {
    /// The groups of every cluster in `state`, with `vpcs` (region, VPC id, cluster) added.
    pub fn build(state: &PersistedState, vpcs: impl IntoIterator<Item = (String, String, ClusterId)>) -> Index {
        let mut index = Index::default();
        for c in state.clusters.values() {
            let id = c.id();
            for g in &c.report.groups {
                index.groups.entry((id.region.clone(), g.id.clone())).or_default().insert(id.clone());
            }
            index.clusters.insert(id);
        }
        for (region, vpc, id) in vpcs {
            index.vpcs.entry((region, vpc)).or_default().insert(id);
        }
        index
    }

    /// The clusters `change` concerns: those using a group it names (peers included: a peer's
    /// change alters what a rule allows), those it names by EKS cluster name in its account and
    /// region, and those in a VPC it names. Empty: no AWS call is worth making for it.
    pub fn clusters_for(&self, change: &Change) -> BTreeSet<ClusterId> {
        let mut out = BTreeSet::new();
        for group in change.groups.iter().chain(&change.mentioned_groups) {
            if let Some(ids) = self.groups.get(&(change.region.clone(), group.clone())) {
                out.extend(ids.iter().cloned());
            }
        }
        for vpc in &change.vpcs {
            if let Some(ids) = self.vpcs.get(&(change.region.clone(), vpc.clone())) {
                out.extend(ids.iter().cloned());
            }
        }
        out.extend(
            self.clusters
                .iter()
                .filter(|c| {
                    c.account_id == change.account_id && c.region == change.region && change.clusters.contains(&c.name)
                })
                .cloned(),
        );
        out
    }
}

/// Does `change` explain `finding` of `cluster`? Same account and region; the finding's group is
/// one the call changed, or the call changed the cluster itself; the call can cause a finding of
/// that kind; and where the request spells out rules, one of them is the finding's (a closed
/// flow names the rule that would open it, not the one removed, so it is matched by group).
pub fn explains(change: &Change, finding: &Finding, cluster: &ClusterId) -> bool {
    if change.account_id != cluster.account_id || change.region != cluster.region {
        return false;
    }
    let on_group = change.groups.contains(&finding.group_id);
    if !(on_group || change.clusters.contains(&cluster.name)) || !change.effect.explains(finding.kind) {
        return false;
    }
    finding.kind == FindingKind::Flow
        || !on_group
        || change.rules.is_empty()
        || change.rules.iter().any(|r| r.matches(finding, &change.actor.event_name))
}

/// The change that best explains `finding`: one that spelled out its rule before one that only
/// names its group, then the latest.
pub fn best<'a>(
    changes: impl IntoIterator<Item = &'a Change>,
    finding: &Finding,
    cluster: &ClusterId,
) -> Option<&'a Change> {
    changes
        .into_iter()
        .filter(|c| explains(c, finding, cluster))
        .max_by_key(|c| (!c.rules.is_empty() && c.groups.contains(&finding.group_id), c.actor.event_time))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::cloudtrail::{parse_message, Parsed};
    use crate::export::report::{ClusterReport, GroupRef};
    use crate::model::Role;
    use crate::state::{ClusterState, Origin};

    const SG: &str = "sg-0a1b2c3d4e5f60718";

    fn change(file: &str) -> Change {
        let path = format!("{}/tests/fixtures/events/{file}", env!("CARGO_MANIFEST_DIR"));
        match parse_message(&std::fs::read_to_string(path).unwrap()) {
            Ok(Parsed::Change(c)) => *c,
            other => panic!("{file}: {other:?}"),
        }
    }

    fn cluster() -> ClusterId {
        crate::testing::test_cluster("prod-eu1")
    }

    fn state_with(groups: &[&str]) -> PersistedState {
        let id = cluster();
        let mut report = ClusterReport::failed(&id.account_id, &id.region, &id.name, None);
        report.groups =
            groups.iter().map(|g| GroupRef { id: g.to_string(), name: "n".into(), role: Role::Node }).collect();
        let mut state = PersistedState::default();
        let origin = Origin { region: id.region.clone(), role_arn: None };
        state.clusters.insert(
            id.to_string(),
            ClusterState { report, first_seen: BTreeMap::new(), origin, last_attempt: None, last_error: None },
        );
        state
    }

    #[test]
    fn a_change_maps_to_the_clusters_using_its_groups_and_to_none_for_an_unknown_group() {
        let index = Index::build(&state_with(&[SG]), []);
        assert_eq!(index.clusters_for(&change("authorize-ingress.json")), BTreeSet::from([cluster()]));
        let other = Index::build(&state_with(&["sg-0000000000000000f"]), []);
        assert!(other.clusters_for(&change("authorize-ingress.json")).is_empty());
        let mut elsewhere = change("authorize-ingress.json");
        elsewhere.region = "us-east-1".into();
        assert!(index.clusters_for(&elsewhere).is_empty(), "group ids are looked up in the event's region");
    }

    #[test]
    fn eks_calls_map_by_cluster_name_and_vpc_calls_by_vpc() {
        let index = Index::build(&state_with(&[]), [("eu-west-1".to_string(), "vpc-0123".to_string(), cluster())]);
        assert_eq!(index.clusters_for(&change("update-cluster-config.json")), BTreeSet::from([cluster()]));
        let mut route = change("update-cluster-config.json");
        route.clusters.clear();
        route.vpcs.insert("vpc-0123".into());
        assert_eq!(index.clusters_for(&route), BTreeSet::from([cluster()]));
    }

    #[test]
    fn a_change_explains_the_findings_it_can_have_caused() {
        let ssh = Finding::test().on(SG).rule("ingress tcp 22 from 0.0.0.0/0").build();
        let https = Finding::test().on(SG).rule("ingress tcp 443 from 0.0.0.0/0").build();
        let other_group = Finding::test().on("sg-0ffee0000000000aa").rule("ingress tcp 22 from 0.0.0.0/0").build();
        let missing_ssh = Finding::test().on(SG).missing().rule("ingress tcp 22 from 0.0.0.0/0").build();
        let closed =
            Finding::test().on(SG).kind(FindingKind::Flow).rule("ingress tcp 10250 from sg-0cccccccccccccccc").build();
        let cases = [
            ("authorize-ingress.json", &ssh, true),
            ("authorize-ingress.json", &https, false),
            ("authorize-ingress.json", &other_group, false),
            ("authorize-ingress.json", &missing_ssh, false),
            ("revoke-ingress.json", &missing_ssh, true),
            ("revoke-ingress.json", &closed, true),
            ("revoke-ingress.json", &ssh, false),
            ("modify-rules.json", &ssh, true),
            ("update-cluster-config.json", &https, true),
        ];
        for (file, finding, want) in cases {
            assert_eq!(explains(&change(file), finding, &cluster()), want, "{file} / {}", finding.rule_text());
        }
    }

    #[test]
    fn the_best_change_spelled_out_the_rule_and_is_the_latest() {
        let ssh = Finding::test().on(SG).rule("ingress tcp 22 from 0.0.0.0/0").build();
        let exact = change("authorize-ingress.json");
        let mut later_generic = change("update-cluster-config.json");
        later_generic.actor.event_time = exact.actor.event_time + chrono::Duration::minutes(5);
        let mut later_exact = exact.clone();
        later_exact.actor.event_id = "later".into();
        later_exact.actor.event_time = exact.actor.event_time + chrono::Duration::minutes(1);
        let all = [exact.clone(), later_generic, later_exact];
        assert_eq!(best(&all, &ssh, &cluster()).map(|c| c.actor.event_id.as_str()), Some("later"));
        assert!(best(&all[..0], &ssh, &cluster()).is_none());
    }
}
