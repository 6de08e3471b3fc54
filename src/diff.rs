//! The differ: snapshot × resolved baseline → findings, plus one `flow` finding per closed
//! required flow, severities of design.md §3, and exceptions applied. Pure.

use chrono::NaiveDate;

use crate::baseline::{Exception, ExceptionMatch, ResolvedBaseline, RuleStatus};
use crate::flows::{self, FlowContext, FlowResult, FlowStatus};
use crate::model::{
    finding_id, union_covers, ClusterSnapshot, Direction, Finding, FindingKind, PortRange, Role, Rule, Severity,
    Traffic,
};

/// Everything one cluster's evaluation produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evaluation {
    pub findings: Vec<Finding>,
    pub flows: Vec<FlowResult>,
}

impl Evaluation {
    /// Is any unsuppressed finding at or above `severity`?
    pub fn has_drift_at(&self, severity: crate::model::Severity) -> bool {
        self.findings.iter().any(|f| f.is_drift() && f.severity >= severity)
    }
}

/// Compares `snapshot` with `baseline`, checks the flows, applies `exceptions` as of `today`.
/// Findings come sorted (group, kind, rule), so reports and ids are stable.
pub fn evaluate(
    snapshot: &ClusterSnapshot,
    baseline: &ResolvedBaseline,
    flows: &FlowContext,
    exceptions: &[Exception],
    today: NaiveDate,
) -> Evaluation {
    let flow_results = flows::check(snapshot, flows);
    let mut findings = diff_rules(snapshot, baseline);
    findings.extend(flow_findings(snapshot, &flow_results));
    for finding in &mut findings {
        // The first exception that suppresses wins; an expired one never does, so the finding fires.
        let suppressing =
            exceptions.iter().find(|e| e.matches(&snapshot.id, finding, today) == ExceptionMatch::Suppresses);
        if let Some(e) = suppressing {
            finding.suppressed_by = Some(format!("{} (until {})", e.reason, e.expires));
        }
    }
    sort_findings(&mut findings);
    Evaluation { findings, flows: flow_results }
}

/// Only the rule findings (`unexpected`, `missing`), before exceptions and flows. A rule is
/// unexpected when the union of its group's baseline rules (required or allowed) does not cover
/// it; a required rule is missing when the union of the group's actual rules does not cover it.
pub fn diff_rules(snapshot: &ClusterSnapshot, baseline: &ResolvedBaseline) -> Vec<Finding> {
    let mut findings = Vec::new();
    for group in snapshot.groups.values() {
        let expected = baseline.by_group.get(&group.id).map(Vec::as_slice).unwrap_or_default();
        for rule in &group.rules {
            if !union_covers(expected.iter().map(|r| &r.rule), rule) {
                let (severity, reason) = unexpected_severity(rule);
                findings.push(rule_finding(
                    snapshot,
                    &group.id,
                    group.role,
                    FindingKind::Unexpected,
                    rule,
                    severity,
                    reason,
                ));
            }
        }
        for required in expected.iter().filter(|r| r.status == RuleStatus::Required) {
            if !union_covers(&group.rules, &required.rule) {
                let reason = match &required.why {
                    Some(why) => format!("recorded rule is gone ({why})"),
                    None => "recorded rule is gone".to_string(),
                };
                findings.push(rule_finding(
                    snapshot,
                    &group.id,
                    group.role,
                    FindingKind::Missing,
                    &required.rule,
                    Severity::High,
                    reason,
                ));
            }
        }
    }
    sort_findings(&mut findings);
    findings
}

/// `flow` findings for the closed flows: one per side that lacks a rule, carrying the rule
/// that would open the flow.
pub fn flow_findings(snapshot: &ClusterSnapshot, flows: &[FlowResult]) -> Vec<Finding> {
    let mut findings = Vec::new();
    for flow in flows.iter().filter(|f| f.status == FlowStatus::Closed) {
        let name = flow.name.as_str();
        for side in &flow.missing {
            let peer = side.peer_label.clone().unwrap_or_else(|| side.rule.peer.to_string());
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
                protocol: side.rule.traffic.protocol_name(),
                from_port: side.rule.traffic.from_port(),
                to_port: side.rule.traffic.to_port(),
                peer,
                reason: side.reason.clone(),
                flow: Some(name.to_string()),
                description: None,
                suppressed_by: None,
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
        protocol: rule.traffic.protocol_name(),
        from_port: rule.traffic.from_port(),
        to_port: rule.traffic.to_port(),
        peer: rule.peer.to_string(),
        reason,
        flow: None,
        description: rule.description.clone(),
        suppressed_by: None,
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
    const SSH: u16 = 22;
    const RDP: u16 = 3389;
    match traffic {
        Traffic::All => "all traffic open to the internet".to_string(),
        Traffic::Tcp(r) if *r == PortRange::single(SSH) => "SSH open to the internet".to_string(),
        Traffic::Tcp(r) if *r == PortRange::single(RDP) => "RDP open to the internet".to_string(),
        Traffic::Tcp(r) if r.contains(PortRange::single(SSH)) => {
            format!("ingress from the internet on {traffic}, SSH included")
        }
        _ => format!("ingress from the internet on {traffic}"),
    }
}

/// (group, kind, direction, protocol, ports, peer), then flow and reason so that two flow
/// findings on one rule keep a fixed order.
fn sort_findings(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        (&a.group_id, a.kind, a.direction, &a.protocol, a.from_port, a.to_port, &a.peer, &a.flow, &a.reason, &a.id).cmp(
            &(
                &b.group_id,
                b.kind,
                b.direction,
                &b.protocol,
                b.from_port,
                b.to_port,
                &b.peer,
                &b.flow,
                &b.reason,
                &b.id,
            ),
        )
    });
}
