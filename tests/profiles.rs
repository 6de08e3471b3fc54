//! Every built-in profile on every layout the references describe: a clean cluster has no
//! findings, and each injected drift gives exactly the findings and severities it should.

mod support;

use chrono::NaiveDate;
use sgdrift::baseline::{BaselineRef, Exception};
use sgdrift::config::Target;
use sgdrift::diff::Evaluation;
use sgdrift::engine::evaluate_snapshot;
use sgdrift::flows::FlowStatus;
use sgdrift::model::{
    ClusterSnapshot, Direction, EndpointMode, FindingKind, Peer, Role, Rule, Severity, Style, Traffic,
};
use support::layouts::{self, add_rule, remove_rules, rule};

const WEBHOOKS: [u16; 1] = [9443];

fn target(profile: &str) -> Target {
    Target {
        regions: vec![layouts::REGION.into()],
        role_arn: None,
        clusters: vec!["*".into()],
        baseline: BaselineRef::Profile(profile.into()),
        webhook_ports: WEBHOOKS.to_vec(),
        trust_controllers: sgdrift::baseline::Controller::ALL.to_vec(),
    }
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 28).unwrap()
}

fn eval(profile: &str, snap: &ClusterSnapshot) -> Evaluation {
    evaluate_snapshot(&target(profile), &[] as &[Exception], snap, today())
}

fn describe(e: &Evaluation) -> String {
    e.findings
        .iter()
        .map(|f| {
            format!(
                "  {} {} {} {} {} {}-{} {} ({})",
                f.severity, f.kind.as_str(), f.group_id, f.direction, f.protocol, f.from_port, f.to_port, f.peer, f.reason
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every layout: the three tools in the three endpoint modes.
fn layouts_all() -> Vec<ClusterSnapshot> {
    layouts::all()
}

/// The group drift is injected into: a node-role group of the first node group, else the
/// cluster SG (managed nodes without a launch template carry only that).
fn node_group_sg(snap: &ClusterSnapshot) -> String {
    let (_, set) = snap.node_sets().into_iter().next().expect("a node set");
    set.iter()
        .find(|id| snap.groups.get(*id).is_some_and(|g| g.has_role(Role::Node)))
        .or_else(|| set.first())
        .cloned()
        .expect("a node SG")
}

#[test]
fn eks_minimal_finds_nothing_on_any_clean_layout() {
    for snap in layouts_all() {
        let e = eval("eks-minimal", &snap);
        assert!(e.findings.is_empty(), "{} under eks-minimal:\n{}", snap.id.name, describe(&e));
        assert!(e.flows.iter().all(|f| f.status == FlowStatus::Open), "{}: {:?}", snap.id.name, e.flows);
    }
}

/// The layout hardened as eks-strict wants it: no allow-all egress to the internet; instead
/// the named egress of AWS's "restricting cluster traffic" and of terraform-aws-eks v18.
fn hardened(mut snap: ClusterSnapshot) -> ClusterSnapshot {
    let internet = |r: &Rule| r.direction == Direction::Egress && r.traffic == Traffic::All && r.peer.is_internet();
    let ids: Vec<String> = snap.groups.keys().cloned().collect();
    let nodes: Vec<String> = snap.node_sets().into_iter().flat_map(|(_, s)| s).collect();
    let cp = snap.control_plane_set();
    let endpoints: Vec<String> =
        snap.vpc_endpoints.iter().flat_map(|e| e.security_group_ids.clone()).collect();
    // eks-strict allows the control-plane SG only 10250, 443 and webhook ports to nodes, not the
    // 1025-65535 range eksctl and the AWS node template give it: replaced below like allow-all.
    let wide = Traffic::Tcp(sgdrift::model::PortRange::new(1025, 65535).expect("ordered"));
    for id in &ids {
        let range = if snap.groups[id].has_role(Role::ControlPlane) {
            remove_rules(&mut snap, id, |r| r.direction == Direction::Egress && r.traffic == wide)
        } else {
            0
        };
        let had = remove_rules(&mut snap, id, internet) + range;
        if had == 0 {
            continue;
        }
        let role = snap.groups[id].primary_role();
        let is_node = nodes.contains(id);
        let is_cp = cp.contains(id);
        if is_node || role == Role::Node || role == Role::RemoteAccess {
            match snap.endpoint_mode {
                EndpointMode::Private => {
                    for c in &cp {
                        add_rule(&mut snap, id, rule(Direction::Egress, "tcp 443", c));
                    }
                    for e in &endpoints {
                        add_rule(&mut snap, id, rule(Direction::Egress, "tcp 443", e));
                    }
                    add_rule(&mut snap, id, rule(Direction::Egress, "tcp 443", layouts::S3_PREFIX_LIST));
                }
                _ => add_rule(&mut snap, id, rule(Direction::Egress, "tcp 443", "0.0.0.0/0")),
            }
            for n in &nodes {
                add_rule(&mut snap, id, rule(Direction::Egress, "tcp 53", n));
                add_rule(&mut snap, id, rule(Direction::Egress, "udp 53", n));
                add_rule(&mut snap, id, rule(Direction::Egress, "tcp 1025-65535", n));
            }
        }
        if is_cp {
            for n in &nodes {
                add_rule(&mut snap, id, rule(Direction::Egress, "tcp 10250", n));
                add_rule(&mut snap, id, rule(Direction::Egress, "tcp 443", n));
                for p in WEBHOOKS {
                    add_rule(&mut snap, id, rule(Direction::Egress, &format!("tcp {p}"), n));
                }
            }
        }
    }
    snap
}

#[test]
fn eks_strict_flags_allow_all_internet_egress_and_nothing_else_on_clean_layouts() {
    for snap in layouts_all() {
        let e = eval("eks-strict", &snap);
        for f in &e.findings {
            assert!(
                f.kind == FindingKind::Unexpected && f.direction == Direction::Egress,
                "{}: eks-strict should only flag egress:\n{}",
                snap.id.name,
                describe(&e)
            );
        }
    }
}

#[test]
fn eks_strict_finds_nothing_on_hardened_layouts_and_flows_stay_open() {
    for snap in layouts_all() {
        let snap = hardened(snap);
        let e = eval("eks-strict", &snap);
        assert!(e.findings.is_empty(), "{} hardened, under eks-strict:\n{}", snap.id.name, describe(&e));
    }
}

/// Runs `inject` on every layout under `profile` (hardened for eks-strict) and checks the
/// findings it adds to the clean evaluation.
fn injected(profile: &str, inject: impl Fn(&mut ClusterSnapshot) -> Rule, check: impl Fn(&ClusterSnapshot, &Rule, &Evaluation)) {
    for snap in layouts_all() {
        let mut snap = if profile == "eks-strict" { hardened(snap) } else { snap };
        let injected = inject(&mut snap);
        let e = eval(profile, &snap);
        check(&snap, &injected, &e);
    }
}

fn exactly_one(snap: &ClusterSnapshot, e: &Evaluation, kind: FindingKind, severity: Severity, r: &Rule, group: &str) {
    assert_eq!(e.findings.len(), 1, "{}: one finding expected:\n{}", snap.id.name, describe(e));
    let f = &e.findings[0];
    assert_eq!((f.kind, f.severity, f.group_id.as_str()), (kind, severity, group), "{}:\n{}", snap.id.name, describe(e));
    assert_eq!(f.direction, r.direction);
    assert_eq!(f.protocol, r.traffic.protocol_name());
    assert_eq!((f.from_port, f.to_port), (r.traffic.from_port(), r.traffic.to_port()));
    assert_eq!(f.peer, r.peer.to_string());
    assert!(f.is_drift());
}

#[test]
fn ssh_from_the_internet_on_a_node_group_is_one_critical_finding_under_every_profile() {
    for profile in ["eks-minimal", "eks-strict"] {
        injected(
            profile,
            |s| {
                let g = node_group_sg(s);
                let r = rule(Direction::Ingress, "tcp 22", "0.0.0.0/0");
                add_rule(s, &g, r.clone());
                r
            },
            |s, r, e| {
                exactly_one(s, e, FindingKind::Unexpected, Severity::Critical, r, &node_group_sg(s));
                assert!(e.findings[0].reason.to_lowercase().contains("ssh"), "{}", e.findings[0].reason);
            },
        );
    }
}

#[test]
fn ssh_from_ipv6_anywhere_is_critical_too() {
    injected(
        "eks-minimal",
        |s| {
            let g = node_group_sg(s);
            let r = rule(Direction::Ingress, "tcp 22", "::/0");
            add_rule(s, &g, r.clone());
            r
        },
        |s, r, e| exactly_one(s, e, FindingKind::Unexpected, Severity::Critical, r, &node_group_sg(s)),
    );
}

#[test]
fn a_nodeport_range_from_a_wide_cidr_is_one_high_finding() {
    for profile in ["eks-minimal", "eks-strict"] {
        injected(
            profile,
            |s| {
                let g = node_group_sg(s);
                let r = rule(Direction::Ingress, "tcp 30000-32767", "172.16.0.0/12");
                add_rule(s, &g, r.clone());
                r
            },
            |s, r, e| exactly_one(s, e, FindingKind::Unexpected, Severity::High, r, &node_group_sg(s)),
        );
    }
}

#[test]
fn a_narrow_unexpected_ingress_is_one_medium_finding() {
    for profile in ["eks-minimal", "eks-strict"] {
        injected(
            profile,
            |s| {
                let g = node_group_sg(s);
                let r = rule(Direction::Ingress, "tcp 8080", "192.168.10.0/24");
                add_rule(s, &g, r.clone());
                r
            },
            |s, r, e| exactly_one(s, e, FindingKind::Unexpected, Severity::Medium, r, &node_group_sg(s)),
        );
    }
}

#[test]
fn unexpected_egress_is_low_under_eks_strict() {
    injected(
        "eks-strict",
        |s| {
            let g = node_group_sg(s);
            let r = rule(Direction::Egress, "udp 5000", "203.0.113.0/24");
            add_rule(s, &g, r.clone());
            r
        },
        |s, r, e| exactly_one(s, e, FindingKind::Unexpected, Severity::Low, r, &node_group_sg(s)),
    );
}

#[test]
fn all_traffic_to_the_internet_is_high_under_eks_strict() {
    injected(
        "eks-strict",
        |s| {
            let g = node_group_sg(s);
            let r = rule(Direction::Egress, "all", "0.0.0.0/0");
            add_rule(s, &g, r.clone());
            r
        },
        |s, r, e| exactly_one(s, e, FindingKind::Unexpected, Severity::High, r, &node_group_sg(s)),
    );
}

#[test]
fn removing_every_rule_that_lets_the_control_plane_reach_the_kubelets_closes_the_kubelet_flow() {
    for profile in ["eks-minimal", "eks-strict"] {
        for snap in layouts_all() {
            let mut snap = if profile == "eks-strict" { hardened(snap) } else { snap };
            let cp = snap.control_plane_set();
            let (ng, set) = snap.node_sets().into_iter().next().unwrap();
            let kubelet = Traffic::Tcp(sgdrift::model::PortRange::single(10250));
            for id in &set {
                remove_rules(&mut snap, id, |r| {
                    r.direction == Direction::Ingress
                        && sgdrift::model::traffic_union_covers([&r.traffic], &kubelet)
                        && matches!(&r.peer, Peer::Group { id, .. } if cp.contains(id))
                });
            }
            let e = eval(profile, &snap);
            let closed: Vec<_> = e
                .flows
                .iter()
                .filter(|f| f.name.as_str() == "kubelet" && f.node_group.as_deref() == Some(ng.as_str()))
                .collect();
            assert!(
                closed.iter().any(|f| f.status == FlowStatus::Closed),
                "{} ({profile}): kubelet to {ng} should be closed: {closed:?}",
                snap.id.name
            );
            assert!(
                e.findings.iter().any(|f| f.kind == FindingKind::Flow
                    && f.flow.as_deref() == Some("kubelet")
                    && f.severity == Severity::Critical),
                "{} ({profile}):\n{}",
                snap.id.name,
                describe(&e)
            );
            assert!(
                e.findings.iter().all(|f| f.kind != FindingKind::Unexpected),
                "removing rules adds nothing unexpected: {}\n{}",
                snap.id.name,
                describe(&e)
            );
        }
    }
}

#[test]
fn detected_styles_match_the_layouts() {
    for style in [Style::Console, Style::Eksctl, Style::Terraform] {
        for mode in EndpointMode::ALL {
            assert_eq!(layouts::cluster(style, mode).style, style);
        }
    }
}
