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
    ClusterSnapshot, Direction, EndpointMode, FindingKind, FlowName, Peer, Role, Rule, Severity, Style, Traffic,
};
use support::layouts::{self, add_rule, remove_rules, rule};

const WEBHOOKS: [u16; 1] = [9443];

fn target(profile: &str) -> Target {
    Target {
        regions: vec![layouts::REGION.into()],
        role_arn: None,
        clusters: vec!["*".into()],
        baseline: BaselineRef::Profile(profile.parse().expect("a built-in profile")),
        webhook_ports: WEBHOOKS.to_vec(),
        trust_controllers: sgdrift::baseline::Controller::ALL.to_vec(),
        organization: None,
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
                "  {} {} {} {} ({})",
                f.severity, f.kind.as_str(), f.group_id, f.rule_text(), f.reason
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

/// The layout hardened as eks-strict wants it (`layouts::hardened`).
fn hardened(snap: ClusterSnapshot) -> ClusterSnapshot {
    layouts::hardened(snap, &WEBHOOKS)
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
    assert_eq!((f.direction, f.traffic, f.peer.as_peer()), (r.direction, r.traffic, Some(&r.peer)));
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
                .filter(|f| f.name == FlowName::Kubelet && f.node_group.as_deref() == Some(ng.as_str()))
                .collect();
            assert!(
                closed.iter().any(|f| f.status == FlowStatus::Closed),
                "{} ({profile}): kubelet to {ng} should be closed: {closed:?}",
                snap.id.name
            );
            assert!(
                e.findings.iter().any(|f| f.kind == FindingKind::Flow
                    && f.flow == Some(FlowName::Kubelet)
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

// --- issue 9: right on real clusters ----------------------------------------------------------

use sgdrift::baseline::Controller;
use sgdrift::model::{IpFamily, PeerGroup, RemoteNetwork, RouteOut};

fn route_out(snap: &mut ClusterSnapshot, v4: RouteOut) {
    for ng in &mut snap.node_groups {
        ng.route_out_v4 = v4;
    }
}

fn flow_status(e: &Evaluation, name: &str) -> Vec<FlowStatus> {
    e.flows.iter().filter(|f| f.name.as_str() == name).map(|f| f.status).collect()
}

/// terraform-aws-eks ≥ v19's default (reference §3.1, UPGRADE-19.0.md): private endpoint,
/// nodes behind a NAT gateway, `egress_all`, no interface endpoints at all.
fn terraform_default_without_endpoints() -> ClusterSnapshot {
    let mut snap = layouts::cluster(Style::Terraform, EndpointMode::Private);
    snap.vpc_endpoints.clear();
    let endpoint_sgs: Vec<String> = snap.groups_with_role(Role::Endpoint).map(|g| g.id.clone()).collect();
    for id in endpoint_sgs {
        snap.groups.remove(&id);
    }
    snap
}

#[test]
fn a_private_cluster_reaches_aws_apis_through_a_nat_never_without_a_route_and_unknown_through_a_tgw() {
    // (route out of the node subnets, aws-apis status, cluster status has drift)
    let cases = [
        (RouteOut::Internet, FlowStatus::Open, false),
        (RouteOut::NoData, FlowStatus::Open, false),
        (RouteOut::Indirect, FlowStatus::Unknown, false),
        (RouteOut::None, FlowStatus::Closed, true),
    ];
    for profile in ["eks-minimal", "eks-strict"] {
        for (route, want, drift) in cases {
            let mut snap = terraform_default_without_endpoints();
            route_out(&mut snap, route);
            let e = eval(profile, &snap);
            assert_eq!(flow_status(&e, "aws-apis"), vec![want], "{profile} {route}: {:?}", e.flows);
            let flow_findings: Vec<_> = e.findings.iter().filter(|f| f.kind == FindingKind::Flow).collect();
            assert_eq!(!flow_findings.is_empty(), drift, "{profile} {route}:\n{}", describe(&e));
            assert!(flow_findings.iter().all(|f| f.severity == Severity::Critical && f.flow == Some(sgdrift::model::FlowName::AwsApis)));
            if profile == "eks-minimal" {
                assert_eq!(e.findings.len(), flow_findings.len(), "{route}:\n{}", describe(&e));
            }
        }
    }
}

/// An AWS Load Balancer Controller target group (kubernetes-sigs/aws-load-balancer-controller,
/// pkg/networking/networking_manager.go, backend_sg_provider.go): the node SG admits the
/// target port from the shared backend SG, described `elbv2.k8s.aws/targetGroupBinding=shared`.
fn with_lb_controller_target_group(peer: &str, traffic: &str) -> (ClusterSnapshot, String) {
    let mut snap = layouts::cluster(Style::Terraform, EndpointMode::Private);
    let backend = PeerGroup {
        id: "sg-0backend0000000001".into(),
        name: "k8s-traffic-terraformprivate-1a2b3c4d5e".into(),
        tags: [("elbv2.k8s.aws/cluster", snap.id.name.as_str()), ("elbv2.k8s.aws/resource", "backend-sg")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    snap.peer_groups.insert(backend.id.clone(), backend);
    let node = layouts::group(&snap, Role::Node).id.clone();
    let peer = if peer == "backend" { "sg-0backend0000000001" } else { peer };
    let mut r = rule(Direction::Ingress, traffic, peer);
    r.description = Some("elbv2.k8s.aws/targetGroupBinding=shared".into());
    add_rule(&mut snap, &node, r);
    (snap, node)
}

#[test]
fn load_balancer_controller_rules_are_owned_not_drift_and_a_disguised_rule_is_found() {
    let (snap, node) = with_lb_controller_target_group("backend", "tcp 8080");
    for profile in ["eks-minimal", "eks-strict"] {
        let e = eval(profile, &snap);
        // (eks-strict still flags the layout's allow-all egress; nothing about the target port.)
        assert!(e.findings.iter().all(|f| f.traffic.from_port() != 8080), "{profile}:\n{}", describe(&e));
        assert!(profile != "eks-minimal" || e.findings.is_empty(), "{profile}:\n{}", describe(&e));
        assert_eq!(e.owned.len(), 1);
        assert_eq!((e.owned[0].group_id.as_str(), e.owned[0].owned_by), (node.as_str(), Controller::AwsLoadBalancerController));
        assert_eq!(e.owned[0].rule.to_string(), "ingress tcp 8080 from sg-0backend0000000001");
    }
    // The controller's description on a rule from a CIDR wider than the VPC: drift, high.
    let (snap, node) = with_lb_controller_target_group("10.0.0.0/8", "tcp 8080");
    let e = eval("eks-minimal", &snap);
    let r = rule(Direction::Ingress, "tcp 8080", "10.0.0.0/8");
    exactly_one(&snap, &e, FindingKind::Unexpected, Severity::High, &r, &node);
    assert!(e.owned.is_empty());
    // A target that does not trust the controller gets its rule as a finding.
    let (snap, node) = with_lb_controller_target_group("backend", "tcp 8080");
    let mut t = target("eks-minimal");
    t.trust_controllers = vec![Controller::EksAutoMode];
    let e = evaluate_snapshot(&t, &[], &snap, today());
    let r = rule(Direction::Ingress, "tcp 8080", "sg-0backend0000000001");
    exactly_one(&snap, &e, FindingKind::Unexpected, Severity::Medium, &r, &node);
}

#[test]
fn description_edits_and_split_permissions_are_not_drift_on_any_layout() {
    for mut snap in layouts_all() {
        for g in snap.groups.values_mut() {
            for r in &mut g.rules {
                r.description = Some("edited by hand".into());
            }
        }
        let e = eval("eks-minimal", &snap);
        assert!(e.findings.is_empty(), "{}:\n{}", snap.id.name, describe(&e));
    }
}

/// Security groups for pods as the user guide sets them up (security-groups-pods-deployment):
/// a pod SG admitting the node SG, and the node SG admitting tcp+udp 53 from the pod SG.
fn with_pod_security_groups() -> (ClusterSnapshot, String, String) {
    let mut snap = layouts::cluster(Style::Terraform, EndpointMode::Private);
    let node = layouts::group(&snap, Role::Node).id.clone();
    let mut pod = snap.groups[&node].clone();
    pod.id = "sg-0pods000000000001".into();
    pod.name = "my-pod-security-group".into();
    pod.tags.clear();
    pod.roles = [Role::Pod].into();
    pod.rules = Vec::new();
    snap.groups.insert(pod.id.clone(), pod);
    let pod = "sg-0pods000000000001".to_string();
    add_rule(&mut snap, &pod, rule(Direction::Ingress, "all", &node));
    add_rule(&mut snap, &pod, rule(Direction::Egress, "all", "0.0.0.0/0"));
    add_rule(&mut snap, &node, rule(Direction::Ingress, "tcp 53", &pod));
    add_rule(&mut snap, &node, rule(Direction::Ingress, "udp 53", &pod));
    snap.pod_security_group_sets = vec![vec![pod.clone()]];
    (snap, node, pod)
}

#[test]
fn pod_security_groups_are_stock_with_their_flows_open_and_a_lost_dns_rule_closes_pod_dns() {
    let (snap, node, pod) = with_pod_security_groups();
    for profile in ["eks-minimal"] {
        let e = eval(profile, &snap);
        assert!(e.findings.is_empty(), "{profile}:\n{}", describe(&e));
        assert_eq!(flow_status(&e, "pod-dns"), vec![FlowStatus::Open]);
        assert_eq!(flow_status(&e, "pod-probes"), vec![FlowStatus::Open]);
    }
    let mut drifted = snap.clone();
    remove_rules(&mut drifted, &node, |r| r.peer.group_id() == Some(pod.as_str()) && r.traffic.protocol_name() == "udp");
    let e = eval("eks-minimal", &drifted);
    assert_eq!(flow_status(&e, "pod-dns"), vec![FlowStatus::Closed]);
    let f: Vec<_> = e.findings.iter().collect();
    assert_eq!(f.len(), 1, "{}", describe(&e));
    assert_eq!((f[0].kind, f[0].severity, f[0].flow), (FindingKind::Flow, Severity::Critical, Some(sgdrift::model::FlowName::PodDns)));
}

#[test]
fn hybrid_nodes_remote_cidrs_are_stock_peers_of_the_cluster_sg() {
    let mut snap = layouts::cluster(Style::Console, EndpointMode::PublicPrivate);
    snap.remote_network = Some(RemoteNetwork {
        node_cidrs: vec!["10.200.0.0/22".parse().unwrap()],
        pod_cidrs: vec!["10.201.0.0/20".parse().unwrap()],
    });
    let cluster = snap.cluster_security_group_id.clone().unwrap();
    add_rule(&mut snap, &cluster, rule(Direction::Ingress, "tcp 443", "10.200.0.0/22"));
    add_rule(&mut snap, &cluster, rule(Direction::Ingress, "tcp 443", "10.201.0.0/20"));
    let e = eval("eks-minimal", &snap);
    assert!(e.findings.is_empty(), "{}", describe(&e));
    // The same rule from a network that is not the remote one is drift.
    let mut drifted = snap.clone();
    let r = rule(Direction::Ingress, "tcp 443", "10.202.0.0/20");
    add_rule(&mut drifted, &cluster, r.clone());
    exactly_one(&drifted, &eval("eks-minimal", &drifted), FindingKind::Unexpected, Severity::Medium, &r, &cluster);
}

#[test]
fn an_ipv6_cluster_is_stock_with_its_ipv6_egress_and_flags_ssh_from_ipv6_anywhere() {
    for style in [Style::Console, Style::Eksctl, Style::Terraform] {
        let mut snap = layouts::cluster(style, EndpointMode::PublicPrivate);
        snap.ip_family = IpFamily::Ipv6;
        snap.vpc_cidrs.push("2600:1f18:1:2300::/56".parse().unwrap());
        let ids: Vec<String> = snap.groups.keys().cloned().collect();
        for id in &ids {
            if snap.groups[id].rules.iter().any(|r| r.direction == Direction::Egress && r.peer.is_internet()) {
                add_rule(&mut snap, id, rule(Direction::Egress, "all", "::/0"));
            }
        }
        let e = eval("eks-minimal", &snap);
        assert!(e.findings.is_empty(), "{style}:\n{}", describe(&e));
        assert!(e.flows.iter().all(|f| f.status == FlowStatus::Open), "{style}: {:?}", e.flows);
        let node = node_group_sg(&snap);
        let ssh = rule(Direction::Ingress, "tcp 22", "::/0");
        add_rule(&mut snap, &node, ssh.clone());
        exactly_one(&snap, &eval("eks-minimal", &snap), FindingKind::Unexpected, Severity::Critical, &ssh, &node);
    }
}

#[test]
fn a_baseline_file_that_lists_ssh_from_the_internet_does_not_quiet_the_guardrail() {
    let mut snap = layouts::cluster(Style::Console, EndpointMode::Public);
    let node = node_group_sg(&snap);
    let ssh = rule(Direction::Ingress, "tcp 22", "0.0.0.0/0");
    add_rule(&mut snap, &node, ssh.clone());
    let file = sgdrift::baseline::parse_str(
        "profile = \"eks-minimal\"\n[[rule]]\nrole = \"node\"\ndirection = \"ingress\"\nprotocol = \"tcp\"\nports = \"22\"\npeer = \"0.0.0.0/0\"\nstatus = \"allowed\"\n",
        "ssh.toml",
    )
    .unwrap();
    let mut t = target("eks-minimal");
    t.baseline = BaselineRef::File(file);
    let e = evaluate_snapshot(&t, &[], &snap, today());
    exactly_one(&snap, &e, FindingKind::Unexpected, Severity::Critical, &ssh, &node);
    assert!(e.findings[0].reason.starts_with("guardrail: SSH"), "{}", e.findings[0].reason);
}
