//! The differ: snapshot × resolved baseline → findings, plus one `flow` finding per closed
//! required flow, severities of design.md §3, and exceptions applied. Pure.

use chrono::NaiveDate;

use crate::baseline::{
    self, guardrails, Controller, Exception, ExceptionMatch, Expected, OwnedRule, ResolvedBaseline, ResolvedRule,
    RuleStatus, SnapshotPeers,
};
use crate::flows::{self, FlowContext, FlowResult, FlowStatus};
use crate::model::{
    finding_id, peer_covers, traffic_union_covers, ClusterSnapshot, Direction, Finding, FindingKind, FindingPeer,
    FlowName, IdKey, Peer, Role, Rule, Severity, Traffic,
};

/// Everything one cluster's evaluation produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evaluation {
    pub findings: Vec<Finding>,
    pub flows: Vec<FlowResult>,
    /// Rules a trusted controller owns: no finding, listed in the report (by group, then rule).
    pub owned: Vec<OwnedRule>,
}

impl Evaluation {
    /// Is any unsuppressed finding at or above `severity`?
    pub fn has_drift_at(&self, severity: crate::model::Severity) -> bool {
        self.findings.iter().any(|f| f.is_drift() && f.severity >= severity)
    }
}

/// Compares `snapshot` with `baseline`, checks the flows, applies `exceptions` as of `today`;
/// rules of the `trusted` controllers are owned, not drift. Findings come sorted (group, kind,
/// rule), so reports and ids are stable.
pub fn evaluate(
    snapshot: &ClusterSnapshot,
    baseline: &ResolvedBaseline,
    flows: &FlowContext,
    exceptions: &[Exception],
    trusted: &[Controller],
    today: NaiveDate,
) -> Evaluation {
    let expected = |id: &str| baseline.by_group.get(id).map(Vec::as_slice).unwrap_or_default();
    evaluate_with(snapshot, expected, flows, exceptions, trusted, today)
}

/// [`evaluate`] against the expected rules of each group as `expected` gives them (a
/// [`ResolvedBaseline`], or the borrowed resolution of the poll loop).
pub fn evaluate_with<'b, E: ExpectedRule + 'b>(
    snapshot: &ClusterSnapshot,
    expected: impl Fn(&str) -> &'b [E],
    flows: &FlowContext,
    exceptions: &[Exception],
    trusted: &[Controller],
    today: NaiveDate,
) -> Evaluation {
    let flow_results = flows::check(snapshot, flows);
    let (mut findings, owned) = diff_rules_with(snapshot, expected, trusted);
    findings.extend(flow_findings(snapshot, &flow_results));
    // Built once for the exceptions' peers, and only where there are exceptions.
    let peers = std::cell::OnceCell::new();
    for finding in &mut findings {
        // The first exception that suppresses wins; an expired one never does, so the finding fires.
        let suppressing = exceptions.iter().find(|e| {
            let peers = peers.get_or_init(|| SnapshotPeers::new(snapshot));
            e.matches_in(peers, finding, today) == ExceptionMatch::Suppresses
        });
        if let Some(e) = suppressing {
            finding.suppressed_by = Some(format!("{} (until {})", e.reason, e.expires));
        }
    }
    sort_findings(&mut findings);
    Evaluation { findings, flows: flow_results, owned }
}

/// A group's expected rule as the differ reads it.
pub trait ExpectedRule {
    /// Direction, traffic and peer: what coverage reads of a rule.
    fn shape(&self) -> Shape<'_>;
    fn status(&self) -> RuleStatus;
    fn why(&self) -> Option<&str>;
}

/// A rule as coverage reads it (descriptions play no part): direction, traffic, peer.
pub type Shape<'r> = (Direction, &'r Traffic, &'r Peer);

fn shape(rule: &Rule) -> Shape<'_> {
    (rule.direction, &rule.traffic, &rule.peer)
}

impl ExpectedRule for ResolvedRule {
    fn shape(&self) -> Shape<'_> {
        shape(&self.rule)
    }
    fn status(&self) -> RuleStatus {
        self.status
    }
    fn why(&self) -> Option<&str> {
        self.why.as_deref()
    }
}

impl ExpectedRule for Expected<'_> {
    fn shape(&self) -> Shape<'_> {
        (self.direction, &self.traffic, self.peer)
    }
    fn status(&self) -> RuleStatus {
        self.status
    }
    fn why(&self) -> Option<&str> {
        self.why
    }
}

/// Rules grouped by what their peer could cover, so that a coverage question looks only at the
/// rules that might answer it rather than at every rule of the group: a group or prefix list
/// is covered only by a peer of the same id, a CIDR only by a CIDR.
struct CoverIndex<'r> {
    /// (direction, key of the group or prefix-list id, traffic, peer), sorted by direction and
    /// key: a group's few dozen rules are searched faster sorted than hashed.
    by_id: Vec<(Direction, IdKey, &'r Traffic, &'r Peer)>,
    /// CIDR peers, by direction (ingress, egress).
    cidrs: [Vec<(&'r Traffic, &'r Peer)>; 2],
}

impl<'r> CoverIndex<'r> {
    fn new(rules: impl IntoIterator<Item = Shape<'r>>) -> Self {
        let rules = rules.into_iter();
        let mut index = CoverIndex { by_id: Vec::with_capacity(rules.size_hint().0), cidrs: [Vec::new(), Vec::new()] };
        for (direction, traffic, peer) in rules {
            match peer {
                Peer::Group { id, .. } | Peer::PrefixList(id) => {
                    index.by_id.push((direction, IdKey::new(id), traffic, peer))
                }
                Peer::Ipv4(_) | Peer::Ipv6(_) => index.cidrs[direction_slot(direction)].push((traffic, peer)),
            }
        }
        index.by_id.sort_unstable_by_key(|a| (a.0, a.1));
        index
    }

    /// `union_covers` over the whole set, asked of the candidates only: the rules of the
    /// target's direction whose peer could cover its peer (`peer_covers` tells apart the ids
    /// that share a key).
    fn covers(&self, (direction, traffic, peer): Shape<'_>) -> bool {
        let union = |candidates: &mut dyn Iterator<Item = (&Traffic, &Peer)>| {
            traffic_union_covers(candidates.filter(|(_, p)| peer_covers(p, peer)).map(|(t, _)| t), traffic)
        };
        match peer {
            Peer::Group { id, .. } | Peer::PrefixList(id) => {
                let key = (direction, IdKey::new(id));
                let from = self.by_id.partition_point(|(d, i, _, _)| (*d, *i) < key);
                let same = self.by_id[from..].iter().take_while(|(d, i, _, _)| (*d, *i) == key);
                union(&mut same.map(|(_, _, t, p)| (*t, *p)))
            }
            Peer::Ipv4(_) | Peer::Ipv6(_) => union(&mut self.cidrs[direction_slot(direction)].iter().copied()),
        }
    }
}

fn direction_slot(direction: Direction) -> usize {
    match direction {
        Direction::Ingress => 0,
        Direction::Egress => 1,
    }
}

/// Only the rule findings (`unexpected`, `missing`), before exceptions and flows. A rule is
/// unexpected when the union of its group's baseline rules (required or allowed) does not cover
/// it; a required rule is missing when the union of the group's actual rules does not cover it.
/// Every recognised controller is trusted (the config's default).
pub fn diff_rules(snapshot: &ClusterSnapshot, baseline: &ResolvedBaseline) -> Vec<Finding> {
    let expected = |id: &str| baseline.by_group.get(id).map(Vec::as_slice).unwrap_or_default();
    let mut findings = diff_rules_with(snapshot, expected, &Controller::ALL).0;
    sort_findings(&mut findings);
    findings
}

/// The rule findings unsorted (the caller sorts them once, with the rest), and the owned rules.
fn diff_rules_with<'b, E: ExpectedRule + 'b>(
    snapshot: &ClusterSnapshot,
    expected_of: impl Fn(&str) -> &'b [E],
    trusted: &[Controller],
) -> (Vec<Finding>, Vec<OwnedRule>) {
    let mut findings = Vec::new();
    let mut owned = Vec::new();
    for group in snapshot.groups.values() {
        let expected = expected_of(&group.id);
        let expected_index = CoverIndex::new(expected.iter().map(ExpectedRule::shape));
        for rule in &group.rules {
            // A guardrail fires whatever the baseline lists; only an exception quiets it.
            let guardrail = guardrails::reason(rule);
            if guardrail.is_none() {
                if let Some(by) = baseline::owner(snapshot, group, rule).filter(|c| trusted.contains(c)) {
                    owned.push(OwnedRule { group_id: group.id.clone(), rule: rule.clone(), owned_by: by });
                    continue;
                }
            }
            if guardrail.is_some() || !expected_index.covers(shape(rule)) {
                let (severity, reason) = match guardrail {
                    Some(reason) => (Severity::Critical, reason),
                    None => unexpected_severity(rule),
                };
                findings.push(rule_finding(
                    snapshot,
                    &group.id,
                    group.primary_role(),
                    FindingKind::Unexpected,
                    rule,
                    severity,
                    reason,
                ));
            }
        }
        let mut actual_index = None;
        for required in expected.iter().filter(|r| r.status() == RuleStatus::Required) {
            let actual = actual_index.get_or_insert_with(|| CoverIndex::new(group.rules.iter().map(shape)));
            let (direction, traffic, peer) = required.shape();
            if !actual.covers((direction, traffic, peer)) {
                let reason = match required.why() {
                    Some(why) => format!("recorded rule is gone ({why})"),
                    None => "recorded rule is gone".to_string(),
                };
                findings.push(rule_finding(
                    snapshot,
                    &group.id,
                    group.primary_role(),
                    FindingKind::Missing,
                    &Rule::new(direction, *traffic, peer.clone()),
                    Severity::High,
                    reason,
                ));
            }
        }
    }
    (findings, owned)
}

/// `flow` findings for the closed flows: one per side that lacks a rule, carrying the rule
/// that would open the flow.
pub fn flow_findings(snapshot: &ClusterSnapshot, flows: &[FlowResult]) -> Vec<Finding> {
    let mut findings = Vec::new();
    for flow in flows.iter().filter(|f| f.status == FlowStatus::Closed) {
        let name = flow.name.as_str();
        for side in &flow.missing {
            let peer = match &side.absent_endpoint {
                Some(service) => FindingPeer::AbsentEndpoint(service.clone()),
                None => FindingPeer::Peer(side.rule.peer.clone()),
            };
            // The rule keeps two sides of one flow (and two node groups' flows) apart.
            let subject = format!(
                "{name} {} {} {} {peer}",
                flow.node_group.as_deref().unwrap_or("(cluster)"),
                side.rule.direction,
                side.rule.traffic
            );
            findings.push(Finding {
                id: finding_id(&snapshot.id, &side.group_id, FindingKind::Flow, &subject),
                kind: FindingKind::Flow,
                severity: Severity::Critical,
                group_id: side.group_id.clone(),
                role: side.role,
                direction: side.rule.direction,
                traffic: side.rule.traffic,
                peer,
                reason: side.reason.clone(),
                flow: Some(flow.name),
                description: None,
                suppressed_by: None,
                first_seen: None,
                changed_by: None,
                remediation: None,
            });
        }
    }
    sort_findings(&mut findings);
    findings
}

fn rule_finding(
    snapshot: &ClusterSnapshot,
    group_id: &str,
    role: Role,
    kind: FindingKind,
    rule: &Rule,
    severity: Severity,
    reason: String,
) -> Finding {
    Finding {
        id: finding_id(&snapshot.id, group_id, kind, &rule.to_string()),
        kind,
        severity,
        group_id: group_id.to_string(),
        role,
        direction: rule.direction,
        traffic: rule.traffic,
        peer: FindingPeer::Peer(rule.peer.clone()),
        reason,
        flow: None,
        description: rule.description.clone(),
        suppressed_by: None,
        first_seen: None,
        changed_by: None,
        remediation: None,
    }
}

/// Severity and reason of a rule the baseline does not cover (design.md §3).
fn unexpected_severity(rule: &Rule) -> (Severity, String) {
    let peer = &rule.peer;
    match rule.direction {
        Direction::Ingress if peer.is_internet() => (Severity::Critical, internet_ingress_reason(&rule.traffic)),
        Direction::Ingress if peer.is_wide() => (
            Severity::High,
            format!("ingress from {peer}, a range wider than one VPC, which the baseline does not allow"),
        ),
        Direction::Ingress => (Severity::Medium, "not in the baseline".to_string()),
        Direction::Egress if peer.is_internet() && rule.traffic == Traffic::All => {
            (Severity::High, "all traffic to the internet, which the baseline does not allow".to_string())
        }
        Direction::Egress => (Severity::Low, "not in the baseline".to_string()),
    }
}

fn internet_ingress_reason(traffic: &Traffic) -> String {
    // SSH, RDP, kubelet, etcd, NodePorts and all traffic are guardrails, reasoned there.
    format!("ingress from the internet on {traffic}")
}

/// (group, kind, direction, protocol, ports, peer), then flow and reason so that two flow
/// findings on one rule keep a fixed order.
fn sort_findings(findings: &mut Vec<Finding>) {
    // The order is the report's, by protocol and peer as written: rendered once per finding.
    let mut keyed: Vec<((String, String), Finding)> =
        findings.drain(..).map(|f| ((f.traffic.protocol_name(), f.peer.to_string()), f)).collect();
    keyed.sort_by(|(ka, a), (kb, b)| {
        (&a.group_id, a.kind, a.direction, &ka.0, a.traffic.from_port(), a.traffic.to_port(), &ka.1)
            .cmp(&(&b.group_id, b.kind, b.direction, &kb.0, b.traffic.from_port(), b.traffic.to_port(), &kb.1))
            .then_with(|| {
                (a.flow.map(FlowName::as_str), &a.reason, &a.id).cmp(&(b.flow.map(FlowName::as_str), &b.reason, &b.id))
            })
    });
    findings.extend(keyed.into_iter().map(|(_, f)| f));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::{PeerSpec, ResolvedRule};
    use crate::flows::fixtures::{
        default_cluster_sg, group, private_restricted, rule, snapshot, terraform_v19, with, without,
    };
    use crate::model::{EndpointMode, EndpointService, Peer};
    use std::collections::BTreeMap;

    const REQUIRED: RuleStatus = RuleStatus::Required;
    const ALLOWED: RuleStatus = RuleStatus::Allowed;

    fn resolved(groups: &[(&str, &[(&str, RuleStatus)])]) -> ResolvedBaseline {
        ResolvedBaseline {
            origin: "test".to_string(),
            by_group: groups
                .iter()
                .map(|(id, rules)| {
                    let rules = rules.iter().map(|(text, status)| ResolvedRule {
                        rule: rule(text),
                        status: *status,
                        why: None,
                        source: None,
                    });
                    (id.to_string(), rules.collect())
                })
                .collect(),
        }
    }

    fn day(s: &str) -> NaiveDate {
        s.parse().expect("date")
    }

    /// (kind, severity, rule as group/direction/protocol/ports/peer, reason) of each finding.
    fn summary(findings: &[Finding]) -> Vec<(FindingKind, Severity, String, String)> {
        findings
            .iter()
            .map(|f| {
                let t = &f.traffic;
                let rule = format!(
                    "{} {} {} {}-{} {}",
                    f.group_id,
                    f.direction,
                    t.protocol_name(),
                    t.from_port(),
                    t.to_port(),
                    f.peer
                );
                (f.kind, f.severity, rule, f.reason.clone())
            })
            .collect()
    }

    #[test]
    fn each_unexpected_rule_gets_the_severity_of_design_section_3() {
        let cases = [
            ("ingress tcp 22 from 0.0.0.0/0", Severity::Critical, "guardrail: SSH open to the internet"),
            ("ingress tcp 22 from ::/0", Severity::Critical, "guardrail: SSH open to the internet"),
            ("ingress tcp 3389 from 0.0.0.0/0", Severity::Critical, "guardrail: RDP open to the internet"),
            ("ingress tcp 443 from 0.0.0.0/0", Severity::Critical, "ingress from the internet on tcp 443"),
            ("ingress tcp 0-1024 from 0.0.0.0/0", Severity::Critical, "guardrail: SSH open to the internet"),
            ("ingress all from ::/0", Severity::Critical, "guardrail: all traffic open to the internet"),
            ("ingress icmp 8/0 from 0.0.0.0/0", Severity::Critical, "ingress from the internet on icmp 8/0"),
            (
                "ingress tcp 443 from 10.0.0.0/8",
                Severity::High,
                "ingress from 10.0.0.0/8, a range wider than one VPC, which the baseline does not allow",
            ),
            (
                "ingress udp 53 from 2600::/24",
                Severity::High,
                "ingress from 2600::/24, a range wider than one VPC, which the baseline does not allow",
            ),
            ("ingress tcp 443 from 10.0.0.0/16", Severity::Medium, "not in the baseline"),
            ("ingress tcp 443 from 2600:1f18::/56", Severity::Medium, "not in the baseline"),
            ("ingress all from sg-other", Severity::Medium, "not in the baseline"),
            ("ingress tcp 443 from pl-123", Severity::Medium, "not in the baseline"),
            ("egress tcp 443 to 0.0.0.0/0", Severity::Low, "not in the baseline"),
            ("egress all to 10.0.0.0/8", Severity::Low, "not in the baseline"),
            ("egress all to sg-other", Severity::Low, "not in the baseline"),
            (
                "egress all to 0.0.0.0/0",
                Severity::High,
                "all traffic to the internet, which the baseline does not allow",
            ),
            ("egress all to ::/0", Severity::High, "all traffic to the internet, which the baseline does not allow"),
        ];
        for (text, severity, reason) in cases {
            let snap = snapshot(EndpointMode::Public, vec![group("sg-node", Role::Node, &[text])], &[]);
            let findings = diff_rules(&snap, &resolved(&[("sg-node", &[])]));
            assert_eq!(findings.len(), 1, "{text}");
            let f = &findings[0];
            assert_eq!((f.kind, f.severity, f.reason.as_str()), (FindingKind::Unexpected, severity, reason), "{text}");
            let r = rule(text);
            assert_eq!(f.rule(), Some(r), "{text}");
            assert_eq!((f.group_id.as_str(), f.role, f.flow), ("sg-node", Role::Node, None));
        }
    }

    #[test]
    fn a_baseline_rule_naming_a_group_whose_id_ends_like_the_peers_does_not_cover_it() {
        // Ids of one length that share their last eight characters share an index key.
        let text = "ingress tcp 443 from sg-0aaa12345678";
        let snap = snapshot(EndpointMode::Public, vec![group("sg-node", Role::Node, &[text])], &[]);
        let cases =
            [(text, 0), ("ingress tcp 443 from sg-0bbb12345678", 1), ("ingress tcp 443 from pl-0aaa12345678", 1)];
        for (expected, findings) in cases {
            let got = diff_rules(&snap, &resolved(&[("sg-node", &[(expected, ALLOWED)])]));
            assert_eq!(got.len(), findings, "{expected}");
        }
    }

    #[test]
    fn a_guardrail_rule_is_reported_even_when_the_baseline_lists_it_until_an_exception_covers_it() {
        let text = "ingress tcp 22 from 0.0.0.0/0";
        let snap = snapshot(EndpointMode::Public, vec![group("sg-node", Role::Node, &[text])], &[]);
        for status in [REQUIRED, ALLOWED] {
            let base = resolved(&[("sg-node", &[(text, status)])]);
            assert_eq!(
                summary(&diff_rules(&snap, &base)),
                vec![(
                    FindingKind::Unexpected,
                    Severity::Critical,
                    "sg-node ingress tcp 22-22 0.0.0.0/0".to_string(),
                    "guardrail: SSH open to the internet".to_string()
                )],
                "{status:?}"
            );
            let eval = evaluate(
                &snap,
                &base,
                &FlowContext::default(),
                &[exception(text, None, "2027-03-31")],
                &Controller::ALL,
                day("2027-01-01"),
            );
            let rules: Vec<&Finding> = eval.findings.iter().filter(|f| f.kind != FindingKind::Flow).collect();
            assert_eq!(rules.len(), 1);
            assert_eq!(rules[0].suppressed_by.as_deref(), Some("internal NLB NodePorts (until 2027-03-31)"));
        }
        // Covered rules that cross no guardrail stay quiet.
        let quiet = snapshot(
            EndpointMode::Public,
            vec![group("sg-node", Role::Node, &["ingress tcp 443 from 0.0.0.0/0"])],
            &[],
        );
        assert_eq!(
            diff_rules(&quiet, &resolved(&[("sg-node", &[("ingress tcp 443 from 0.0.0.0/0", ALLOWED)])])),
            Vec::new()
        );
    }

    #[test]
    fn a_required_rule_that_is_gone_is_missing_and_high() {
        let snap =
            snapshot(EndpointMode::Public, vec![group("sg-node", Role::Node, &["ingress tcp 10250 from sg-cp"])], &[]);
        let mut base = resolved(&[(
            "sg-node",
            &[
                ("ingress tcp 10250 from sg-cp", REQUIRED),
                ("ingress tcp 443 from sg-cp", REQUIRED),
                ("ingress udp 53 from sg-node", REQUIRED),
            ],
        )]);
        base.by_group.get_mut("sg-node").expect("group")[2].why = Some("CoreDNS".to_string());
        let findings = diff_rules(&snap, &base);
        assert_eq!(
            summary(&findings),
            vec![
                (
                    FindingKind::Missing,
                    Severity::High,
                    "sg-node ingress tcp 443-443 sg-cp".to_string(),
                    "recorded rule is gone".to_string()
                ),
                (
                    FindingKind::Missing,
                    Severity::High,
                    "sg-node ingress udp 53-53 sg-node".to_string(),
                    "recorded rule is gone (CoreDNS)".to_string()
                ),
            ]
        );
    }

    #[test]
    fn an_allowed_rule_that_is_absent_is_not_drift() {
        let snap = snapshot(EndpointMode::Public, vec![group("sg-node", Role::Node, &[])], &[]);
        let base =
            resolved(&[("sg-node", &[("egress all to 0.0.0.0/0", ALLOWED), ("ingress all from sg-node", ALLOWED)])]);
        assert_eq!(diff_rules(&snap, &base), Vec::new());
    }

    #[test]
    fn a_group_without_a_baseline_entry_has_every_rule_unexpected() {
        let snap = snapshot(
            EndpointMode::Public,
            vec![
                group("sg-known", Role::Node, &["ingress tcp 443 from sg-known"]),
                group("sg-stray", Role::Node, &["ingress tcp 443 from sg-known", "egress all to 0.0.0.0/0"]),
            ],
            &[],
        );
        let base = resolved(&[("sg-known", &[("ingress tcp 443 from sg-known", REQUIRED)])]);
        let findings = diff_rules(&snap, &base);
        assert_eq!(
            summary(&findings),
            vec![
                (
                    FindingKind::Unexpected,
                    Severity::Medium,
                    "sg-stray ingress tcp 443-443 sg-known".to_string(),
                    "not in the baseline".to_string()
                ),
                (
                    FindingKind::Unexpected,
                    Severity::High,
                    "sg-stray egress all -1--1 0.0.0.0/0".to_string(),
                    "all traffic to the internet, which the baseline does not allow".to_string()
                ),
            ]
        );
    }

    #[test]
    fn coverage_is_semantic_so_merged_split_and_wider_baselines_are_not_drift() {
        let cases: [(&[&str], &[(&str, RuleStatus)]); 5] = [
            // Split in AWS, merged in the baseline, and the other way round.
            (
                &["ingress tcp 80-85 from sg-a", "ingress tcp 86-90 from sg-a"],
                &[("ingress tcp 80-90 from sg-a", REQUIRED)],
            ),
            (
                &["ingress tcp 80-90 from sg-a"],
                &[("ingress tcp 80-85 from sg-a", REQUIRED), ("ingress tcp 86-90 from sg-a", REQUIRED)],
            ),
            (&["ingress tcp 443 from 10.0.0.0/16"], &[("ingress tcp 443 from 10.0.0.0/8", ALLOWED)]),
            (&["ingress tcp 10250 from sg-cp"], &[("ingress all from sg-cp", ALLOWED)]),
            (
                &["egress tcp 443 to ::/0", "egress tcp 443 to 0.0.0.0/0"],
                &[("egress tcp 443 to 0.0.0.0/0", REQUIRED), ("egress tcp 443 to ::/0", REQUIRED)],
            ),
        ];
        for (actual, expected) in cases {
            let snap = snapshot(EndpointMode::Public, vec![group("sg-a", Role::Node, actual)], &[]);
            assert_eq!(diff_rules(&snap, &resolved(&[("sg-a", expected)])), Vec::new(), "{actual:?}");
        }
    }

    #[test]
    fn coverage_never_stretches_a_narrower_baseline() {
        use FindingKind::{Missing, Unexpected};
        let cases: [(&str, &str, &[FindingKind]); 5] = [
            ("ingress tcp 80-91 from sg-a", "ingress tcp 80-90 from sg-a", &[Unexpected]),
            ("ingress tcp 443 from 10.0.0.0/8", "ingress tcp 443 from 10.0.0.0/16", &[Unexpected]),
            ("ingress all from sg-a", "ingress tcp all from sg-a", &[Unexpected]),
            ("ingress tcp 443 from ::/0", "ingress tcp 443 from 0.0.0.0/0", &[Unexpected, Missing]),
            ("egress tcp 443 to 0.0.0.0/0", "ingress tcp 443 from 0.0.0.0/0", &[Unexpected, Missing]),
        ];
        for (actual, expected, want) in cases {
            let snap = snapshot(EndpointMode::Public, vec![group("sg-a", Role::Node, &[actual])], &[]);
            let findings = diff_rules(&snap, &resolved(&[("sg-a", &[(expected, REQUIRED)])]));
            let kinds: Vec<FindingKind> = findings.iter().map(|f| f.kind).collect();
            assert_eq!(kinds, want, "{actual} vs {expected}");
        }
    }

    #[test]
    fn unexpected_findings_carry_the_aws_description_which_does_not_change_their_id() {
        let plain =
            snapshot(EndpointMode::Public, vec![group("sg-a", Role::Node, &["ingress tcp 22 from 0.0.0.0/0"])], &[]);
        let mut described = plain.clone();
        described.groups.get_mut("sg-a").expect("group").rules[0].description =
            Some("temporary debug access".to_string());
        let base = resolved(&[("sg-a", &[])]);
        let (a, b) = (diff_rules(&plain, &base), diff_rules(&described, &base));
        assert_eq!(a[0].description, None);
        assert_eq!(b[0].description.as_deref(), Some("temporary debug access"));
        assert_eq!(a[0].id, b[0].id);
    }

    #[test]
    fn closed_flows_become_critical_flow_findings_carrying_the_fixing_rule() {
        let snap = without(terraform_v19(EndpointMode::Private), "sg-cluster", "egress all to 0.0.0.0/0");
        let flows = crate::flows::check(&snap, &FlowContext::default());
        let findings = flow_findings(&snap, &flows);
        let kubelet: Vec<&Finding> = findings.iter().filter(|f| f.flow == Some(FlowName::Kubelet)).collect();
        assert_eq!(kubelet.len(), 1);
        let f = kubelet[0];
        assert_eq!(
            (f.kind, f.severity, f.group_id.as_str(), f.role),
            (FindingKind::Flow, Severity::Critical, "sg-cp", Role::ControlPlane)
        );
        assert_eq!(f.rule(), Some(rule("egress tcp 10250 to sg-node")));
        assert_eq!(
            f.reason,
            "no SG of the control plane (sg-cluster, sg-cp) allows egress tcp 10250 to node group ng-1"
        );
        // One finding per missing side of each closed flow, nothing for open ones.
        let sides: usize = flows.iter().filter(|r| r.status == FlowStatus::Closed).map(|r| r.missing.len()).sum();
        assert_eq!(findings.len(), sides);
        assert!(findings.iter().all(|f| f.kind == FindingKind::Flow && f.severity == Severity::Critical));
    }

    #[test]
    fn a_missing_vpc_endpoint_finding_names_the_service_as_its_peer() {
        let mut snap = crate::flows::fixtures::no_route_out(private_restricted());
        snap.vpc_endpoints.retain(|e| e.service() != "ecr.dkr");
        let findings = flow_findings(&snap, &crate::flows::check(&snap, &FlowContext::default()));
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].peer, FindingPeer::AbsentEndpoint(EndpointService::new("eu-west-1", "ecr.dkr")));
        assert_eq!(findings[0].flow, Some(FlowName::AwsApis));
        assert_eq!(findings[0].rule(), None);
        assert!(
            findings[0].reason.starts_with("no VPC endpoint for com.amazonaws.eu-west-1.ecr.dkr"),
            "{}",
            findings[0].reason
        );
    }

    #[test]
    fn two_node_groups_missing_the_same_fix_get_two_distinct_findings() {
        let snap = snapshot(
            EndpointMode::Public,
            vec![
                group("sg-cluster", Role::Cluster, &["egress all to 0.0.0.0/0"]),
                group("sg-node", Role::Node, &["egress all to 0.0.0.0/0"]),
            ],
            &[("ng-a", &["sg-node"]), ("ng-b", &["sg-node"])],
        );
        let findings = flow_findings(&snap, &crate::flows::check(&snap, &FlowContext::default()));
        let kubelet: Vec<&Finding> = findings.iter().filter(|f| f.flow == Some(FlowName::Kubelet)).collect();
        assert_eq!(kubelet.len(), 2);
        assert_ne!(kubelet[0].id, kubelet[1].id);
    }

    fn exception(rule_text: &str, group_id: Option<&str>, expires: &str) -> Exception {
        let r = rule(rule_text);
        Exception {
            account: None,
            region: None,
            cluster: Some("prod".to_string()),
            role: None,
            group_id: group_id.map(str::to_string),
            tags: BTreeMap::new(),
            direction: r.direction,
            traffic: r.traffic,
            peer: PeerSpec::Concrete(r.peer),
            rule_text: rule_text.to_string(),
            reason: "internal NLB NodePorts".to_string(),
            expires: day(expires),
        }
    }

    #[test]
    fn an_exception_naming_a_role_peer_covers_the_groups_of_that_role_in_the_cluster() {
        let snap = snapshot(
            EndpointMode::Public,
            vec![
                default_cluster_sg(),
                group("sg-cp", Role::ControlPlane, &["ingress tcp 443 from sg-node"]),
                group("sg-node", Role::Node, &["ingress tcp 30080 from sg-cp", "ingress tcp 30080 from sg-other"]),
            ],
            &[("ng-1", &["sg-node", "sg-cluster"])],
        );
        let by_role = Exception {
            peer: PeerSpec::Role(Role::ControlPlane),
            rule_text: "ingress tcp 30000-32767 from role:control-plane".into(),
            ..exception("ingress tcp 30000-32767 from 10.0.0.0/8", None, "2027-03-31")
        };
        let base = resolved(&[]);
        let eval = evaluate(&snap, &base, &FlowContext::default(), &[by_role], &Controller::ALL, day("2027-01-01"));
        let suppressed = |peer: &str| {
            eval.findings
                .iter()
                .find(|f| {
                    f.traffic == Traffic::Tcp(crate::model::PortRange::single(30080)) && f.peer.to_string() == peer
                })
                .map(|f| f.suppressed_by.is_some())
        };
        assert_eq!(suppressed("sg-cp"), Some(true), "{:?}", eval.findings);
        assert_eq!(suppressed("sg-other"), Some(false), "a group of no role is not `role:control-plane`");
    }

    #[test]
    fn exceptions_suppress_until_they_expire() {
        let snap = snapshot(
            EndpointMode::Public,
            vec![default_cluster_sg(), group("sg-node", Role::Node, &["ingress tcp 30080 from 10.0.0.0/8"])],
            &[("ng-1", &["sg-node", "sg-cluster"])],
        );
        let snap = with(with(snap, "sg-node", "ingress all from sg-node"), "sg-node", "egress all to 0.0.0.0/0");
        let base = resolved(&[
            ("sg-node", &[("ingress all from sg-node", REQUIRED), ("egress all to 0.0.0.0/0", ALLOWED)]),
            ("sg-cluster", &[("ingress all from sg-cluster", REQUIRED), ("egress all to 0.0.0.0/0", ALLOWED)]),
        ]);
        let nodeports = exception("ingress tcp 30000-32767 from 10.0.0.0/8", None, "2027-03-31");
        let cases = [
            (vec![], "2027-01-01", None),
            (vec![nodeports.clone()], "2027-01-01", Some("internal NLB NodePorts (until 2027-03-31)")),
            (vec![nodeports.clone()], "2027-03-31", Some("internal NLB NodePorts (until 2027-03-31)")),
            (vec![nodeports.clone()], "2027-04-01", None),
            (
                vec![exception("ingress tcp 30000-32767 from 10.0.0.0/8", Some("sg-other"), "2027-03-31")],
                "2027-01-01",
                None,
            ),
            (vec![exception("ingress tcp 30000-30079 from 10.0.0.0/8", None, "2027-03-31")], "2027-01-01", None),
        ];
        for (exceptions, today, want) in cases {
            let eval = evaluate(&snap, &base, &FlowContext::default(), &exceptions, &Controller::ALL, day(today));
            assert!(eval.flows.iter().all(|f| f.status == FlowStatus::Open), "{:?}", eval.flows);
            assert_eq!(eval.findings.len(), 1, "{today}");
            let f = &eval.findings[0];
            assert_eq!((f.kind, f.severity), (FindingKind::Unexpected, Severity::High));
            assert_eq!(f.suppressed_by.as_deref(), want, "{today} {exceptions:?}");
            assert_eq!(eval.has_drift_at(Severity::Low), want.is_none());
        }
    }

    #[test]
    fn evaluate_sorts_findings_and_gives_them_stable_distinct_ids() {
        let rules = [
            "ingress tcp 22 from 0.0.0.0/0",
            "ingress tcp 443 from 10.0.0.0/16",
            "egress all to 0.0.0.0/0",
            "egress tcp 443 to 10.0.0.0/16",
            "ingress udp 53 from sg-b",
        ];
        let build = |order: &[&str]| {
            snapshot(
                EndpointMode::Public,
                vec![group("sg-b", Role::Node, order), group("sg-a", Role::Node, order)],
                &[("ng-1", &["sg-a", "sg-b"])],
            )
        };
        let base = resolved(&[("sg-a", &[("ingress tcp 10250 from sg-a", REQUIRED)])]);
        let mut reversed = rules;
        reversed.reverse();
        let today = day("2026-11-28");
        let one = evaluate(&build(&rules), &base, &FlowContext::default(), &[], &Controller::ALL, today);
        let two = evaluate(&build(&reversed), &base, &FlowContext::default(), &[], &Controller::ALL, today);
        assert_eq!(one, two);

        let key = |f: &Finding| {
            let t = &f.traffic;
            (f.group_id.clone(), f.kind, f.direction, t.protocol_name(), t.from_port(), t.to_port(), f.peer.to_string())
        };
        let keys: Vec<_> = one.findings.iter().map(key).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        let mut ids: Vec<&str> = one.findings.iter().map(|f| f.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), one.findings.len());
        // 5 unexpected rules on each group, one missing, plus the closed flows.
        assert_eq!(one.findings.iter().filter(|f| f.kind == FindingKind::Unexpected).count(), 10);
        assert_eq!(one.findings.iter().filter(|f| f.kind == FindingKind::Missing).count(), 1);
        assert!(one.findings.iter().any(|f| f.kind == FindingKind::Flow));
        assert_eq!(one.flows, crate::flows::check(&build(&rules), &FlowContext::default()));
    }

    #[test]
    fn finding_ids_depend_on_cluster_group_kind_and_rule() {
        let snap =
            snapshot(EndpointMode::Public, vec![group("sg-a", Role::Node, &["ingress tcp 22 from 0.0.0.0/0"])], &[]);
        let base = resolved(&[("sg-a", &[])]);
        let id = diff_rules(&snap, &base)[0].id.clone();
        assert_eq!(id, finding_id(&snap.id, "sg-a", FindingKind::Unexpected, "ingress tcp 22 from 0.0.0.0/0"));
        let mut other = snap.clone();
        other.id.name = "staging".to_string();
        assert_ne!(diff_rules(&other, &base)[0].id, id);
        let mut moved = snap.clone();
        moved.groups.get_mut("sg-a").expect("group").rules[0].peer = Peer::parse("0.0.0.0/1").expect("peer");
        assert_ne!(diff_rules(&moved, &base)[0].id, id);
    }
}
