//! Every built-in profile on every layout the references describe: a clean cluster has no
//! findings, and each injected drift gives exactly the findings and severities it should.

use crate::support::layouts::{self, add_rule, remove_rules, rule};
use chrono::NaiveDate;
use sgdrift::baseline::{BaselineRef, Exception};
use sgdrift::config::Target;
use sgdrift::diff::Evaluation;
use sgdrift::engine::evaluate_snapshot;
use sgdrift::flows::FlowStatus;
use sgdrift::model::{
    ClusterSnapshot, Direction, EndpointMode, FindingKind, FlowName, Peer, Role, Rule, Severity, Style, Traffic,
};

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
        .map(|f| format!("  {} {} {} {} ({})", f.severity, f.kind.as_str(), f.group_id, f.rule_text(), f.reason))
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
fn injected(
    profile: &str,
    inject: impl Fn(&mut ClusterSnapshot) -> Rule,
    check: impl Fn(&ClusterSnapshot, &Rule, &Evaluation),
) {
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
    assert_eq!(
        (f.kind, f.severity, f.group_id.as_str()),
        (kind, severity, group),
        "{}:\n{}",
        snap.id.name,
        describe(e)
    );
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
            assert!(flow_findings
                .iter()
                .all(|f| f.severity == Severity::Critical && f.flow == Some(sgdrift::model::FlowName::AwsApis)));
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
        assert_eq!(
            (e.owned[0].group_id.as_str(), e.owned[0].owned_by),
            (node.as_str(), Controller::AwsLoadBalancerController)
        );
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
    let e = eval("eks-minimal", &snap);
    assert!(e.findings.is_empty(), "eks-minimal:\n{}", describe(&e));
    assert_eq!(flow_status(&e, "pod-dns"), vec![FlowStatus::Open]);
    assert_eq!(flow_status(&e, "pod-probes"), vec![FlowStatus::Open]);
    let mut drifted = snap.clone();
    remove_rules(&mut drifted, &node, |r| {
        r.peer.group_id() == Some(pod.as_str()) && r.traffic.protocol_name() == "udp"
    });
    let e = eval("eks-minimal", &drifted);
    assert_eq!(flow_status(&e, "pod-dns"), vec![FlowStatus::Closed]);
    let f: Vec<_> = e.findings.iter().collect();
    assert_eq!(f.len(), 1, "{}", describe(&e));
    assert_eq!(
        (f[0].kind, f[0].severity, f[0].flow),
        (FindingKind::Flow, Severity::Critical, Some(sgdrift::model::FlowName::PodDns))
    );
}

#[test]
fn hybrid_nodes_remote_cidrs_are_stock_peers_of_the_cluster_sg() {
    let (snap, cluster) = with_hybrid_nodes();
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

// --- issue 16: flows between the endpoints that really exist ---------------------------------

use sgdrift::flows::FlowResult;
use sgdrift::model::{EfaSet, NodeGroup, NodeGroupKind, PodSgEnforcingMode, SecurityGroup};

/// The result of flow `name` for endpoint `endpoint`; panics when there is none.
fn flow_for<'a>(e: &'a Evaluation, name: FlowName, endpoint: &str) -> &'a FlowResult {
    e.flows.iter().find(|f| f.name == name && f.node_group.as_deref() == Some(endpoint)).unwrap_or_else(|| {
        let have: Vec<String> = e.flows.iter().map(|f| format!("{} {:?}", f.name, f.node_group)).collect();
        panic!("no {name} flow for {endpoint}; flows: {have:?}")
    })
}

/// A clean evaluation: no finding, every flow open.
fn assert_stock(snap: &ClusterSnapshot) {
    let e = eval("eks-minimal", snap);
    assert!(e.findings.is_empty(), "{}:\n{}", snap.id.name, describe(&e));
    for f in &e.flows {
        assert_eq!(f.status, FlowStatus::Open, "{} {} {:?}: {}", snap.id.name, f.name, f.node_group, f.detail);
    }
}

/// The break closes `name` for `endpoint` only, and every finding is a critical `flow` one of
/// that flow whose reason names the endpoint's label.
fn assert_closes(snap: &ClusterSnapshot, name: FlowName, endpoint: &str, label: &str) {
    let e = eval("eks-minimal", snap);
    let closed: Vec<(FlowName, Option<&str>)> =
        e.flows.iter().filter(|f| f.status == FlowStatus::Closed).map(|f| (f.name, f.node_group.as_deref())).collect();
    assert_eq!(closed, [(name, Some(endpoint))], "{}: {}", snap.id.name, flow_for(&e, name, endpoint).detail);
    assert!(!e.findings.is_empty(), "{}: a closed required flow is a finding", snap.id.name);
    for f in &e.findings {
        assert_eq!(
            (f.kind, f.severity, f.flow),
            (FindingKind::Flow, Severity::Critical, Some(name)),
            "{}",
            describe(&e)
        );
        assert!(f.reason.contains(label), "{}: the reason names {label}: {}", snap.id.name, f.reason);
    }
}

fn new_group(snap: &mut ClusterSnapshot, id: &str, name: &str, role: Role, rules: Vec<Rule>) {
    let mut g: SecurityGroup = snap.groups.values().next().expect("a group").clone();
    (g.id, g.name, g.description, g.roles) = (id.into(), name.into(), String::new(), [role].into());
    g.tags.clear();
    g.rules = sgdrift::model::canonicalize(rules);
    snap.groups.insert(id.into(), g);
}

fn endpoint(name: &str, kind: NodeGroupKind, ids: &[&str]) -> NodeGroup {
    NodeGroup {
        name: name.into(),
        kind,
        security_group_ids: ids.iter().map(|s| s.to_string()).collect(),
        route_out_v4: RouteOut::NoData,
        route_out_v6: RouteOut::NoData,
    }
}

/// EKS user guide, "Get started with AWS Fargate" and "Fargate pod configuration": Fargate pods
/// are "automatically configured to use the cluster security group" (reference §1.6, D-fg). The
/// console layout (managed nodes with the cluster SG) plus a Fargate profile for `kube-system`.
fn with_fargate() -> (ClusterSnapshot, String) {
    let mut snap = layouts::cluster(Style::Console, EndpointMode::PublicPrivate);
    let cluster = snap.cluster_security_group_id.clone().unwrap();
    snap.node_groups.push(endpoint("fp-kube-system", NodeGroupKind::Fargate, &[&cluster]));
    (snap, cluster)
}

#[test]
fn a_fargate_profile_is_an_endpoint_with_the_cluster_sg_and_loses_kubelet_with_its_self_rule() {
    let (snap, cluster) = with_fargate();
    assert_stock(&snap);
    let e = eval("eks-minimal", &snap);
    let kubelet = flow_for(&e, FlowName::Kubelet, "fp-kube-system");
    assert_eq!(kubelet.detail, "the control plane reaches Fargate profile fp-kube-system on tcp 10250");
    // The console layout's own node SG carries the self rule too; only Fargate rides on the
    // cluster SG alone, so only its endpoint loses kubelet (and DNS, and webhooks) when it goes.
    let mut broken = snap.clone();
    layouts::remove_rule(&mut broken, &cluster, &rule(Direction::Ingress, "all", &cluster));
    let e = eval("eks-minimal", &broken);
    let closed = flow_for(&e, FlowName::Kubelet, "fp-kube-system");
    assert_eq!(closed.status, FlowStatus::Closed);
    assert!(closed.detail.contains("Fargate profile fp-kube-system"), "{}", closed.detail);
    assert!(e.findings.iter().any(|f| f.flow == Some(FlowName::Kubelet) && f.severity == Severity::Critical));
}

/// EKS user guide, "Prepare networking for hybrid nodes" (hybrid-nodes-networking, §"Cluster
/// security group configuration", reference D-hyb): the cluster SG admits tcp 443 from the remote
/// node and pod CIDRs; the control plane reaches kubelets (10250) and webhooks on them through the
/// cluster SG's default egress.
fn with_hybrid_nodes() -> (ClusterSnapshot, String) {
    let mut snap = layouts::cluster(Style::Console, EndpointMode::PublicPrivate);
    snap.remote_network = Some(RemoteNetwork {
        node_cidrs: vec!["10.200.0.0/22".parse().unwrap()],
        pod_cidrs: vec!["10.201.0.0/20".parse().unwrap()],
    });
    let cluster = snap.cluster_security_group_id.clone().unwrap();
    add_rule(&mut snap, &cluster, rule(Direction::Ingress, "tcp 443", "10.200.0.0/22"));
    add_rule(&mut snap, &cluster, rule(Direction::Ingress, "tcp 443", "10.201.0.0/20"));
    (snap, cluster)
}

#[test]
fn hybrid_nodes_are_endpoints_and_deleting_the_node_cidr_rule_closes_their_api_flow() {
    let (snap, cluster) = with_hybrid_nodes();
    assert_stock(&snap);
    let e = eval("eks-minimal", &snap);
    let checked: Vec<(FlowName, &str)> = e
        .flows
        .iter()
        .filter_map(|f| Some((f.name, f.node_group.as_deref().filter(|n| n.starts_with("hybrid"))?)))
        .collect();
    assert_eq!(
        checked,
        [
            (FlowName::Kubelet, "hybrid nodes 10.200.0.0/22"),
            (FlowName::Api, "hybrid nodes 10.200.0.0/22"),
            (FlowName::Api, "hybrid pods 10.201.0.0/20"),
            (FlowName::Webhooks, "hybrid pods 10.201.0.0/20"),
        ]
    );
    let mut broken = snap.clone();
    layouts::remove_rule(&mut broken, &cluster, &rule(Direction::Ingress, "tcp 443", "10.200.0.0/22"));
    assert_closes(&broken, FlowName::Api, "hybrid nodes 10.200.0.0/22", "hybrid nodes 10.200.0.0/22");
    let e = eval("eks-minimal", &broken);
    let f = &e.findings[0];
    assert_eq!(
        (f.direction, f.traffic, f.peer.as_peer()),
        (Direction::Ingress, Traffic::parse("tcp", Some("443")).unwrap(), Some(&Peer::parse("10.200.0.0/22").unwrap()))
    );
}

/// terraform-aws-eks `enable_efa_support` (modules/eks-managed-node-group, reference §3.1: a
/// per-node-group SG with `all_self_efa`, IN and OUT all from and to itself, "Node to node EFA",
/// on the launch template's EFA interfaces next to the shared node SG); the same rules as eksctl's
/// `EFASG` (`EFAIngressSelf`, `EFAEgressSelf`, reference §4.1). EKS user guide, "Run machine
/// learning training on Amazon EKS with Elastic Fabric Adapter": the EFA SG must allow all
/// traffic to and from itself.
fn with_efa() -> (ClusterSnapshot, String) {
    let mut snap = layouts::cluster(Style::Terraform, EndpointMode::Public);
    let node = layouts::group(&snap, Role::Node).id.clone();
    let efa = "sg-0efa000000000001".to_string();
    new_group(
        &mut snap,
        &efa,
        "terraform-public-efa",
        Role::Node,
        vec![rule(Direction::Ingress, "all", &efa), rule(Direction::Egress, "all", &efa)],
    );
    snap.node_groups.push(endpoint("efa", NodeGroupKind::Managed, &[&node, &efa]));
    snap.data_plane.efa =
        vec![EfaSet { node_group: "efa".into(), security_group_ids: vec![node.clone(), efa.clone()] }];
    (snap, efa)
}

#[test]
fn an_efa_node_group_needs_all_traffic_within_its_efa_sg_and_loses_efa_without_the_self_ingress() {
    let (snap, efa) = with_efa();
    assert_stock(&snap);
    let mut broken = snap.clone();
    layouts::remove_rule(&mut broken, &efa, &rule(Direction::Ingress, "all", &efa));
    // The shared node SG admits only DNS and tcp 1025-65535 from itself: not all traffic.
    assert_closes(&broken, FlowName::Efa, "efa", "node group efa");
    // A CIDR does not carry EFA traffic: the VPC CIDR instead of the self rule stays closed.
    let mut cidr = broken.clone();
    let vpc = cidr.vpc_cidrs[0].to_string();
    add_rule(&mut cidr, &efa, rule(Direction::Ingress, "all", &vpc));
    assert_eq!(flow_for(&eval("eks-minimal", &cidr), FlowName::Efa, "efa").status, FlowStatus::Closed);
}

/// VPC CNI custom networking (EKS user guide, "Customize the secondary network interface in
/// Amazon EKS nodes"; amazon-vpc-cni-k8s ENIConfig `securityGroups`): pods leave through the
/// secondary ENIs, which carry the ENIConfig's SGs instead of the node's. A dedicated pod SG
/// with the default egress, admitted by the node SG for CoreDNS and the API.
fn with_custom_networking() -> (ClusterSnapshot, String) {
    let mut snap = layouts::cluster(Style::Terraform, EndpointMode::PublicPrivate);
    let node = layouts::group(&snap, Role::Node).id.clone();
    let cp = layouts::group(&snap, Role::ControlPlane).id.clone();
    let pods = "sg-0e41c0f16000000001".to_string();
    new_group(
        &mut snap,
        &pods,
        "eniconfig-pods",
        Role::Node,
        vec![rule(Direction::Ingress, "all", &pods), rule(Direction::Egress, "all", "0.0.0.0/0")],
    );
    add_rule(&mut snap, &node, rule(Direction::Ingress, "tcp 53", &pods));
    add_rule(&mut snap, &node, rule(Direction::Ingress, "udp 53", &pods));
    add_rule(&mut snap, &cp, rule(Direction::Ingress, "tcp 443", &pods));
    let name = format!("ENIConfig {pods}");
    snap.node_groups.push(endpoint(&name, NodeGroupKind::CustomNetworking, &[&pods]));
    (snap, pods)
}

#[test]
fn custom_networking_pods_are_endpoints_and_a_pod_sg_without_dns_egress_closes_their_dns() {
    let (snap, pods) = with_custom_networking();
    assert_stock(&snap);
    let name = format!("ENIConfig {pods}");
    let e = eval("eks-minimal", &snap);
    let flows: Vec<FlowName> =
        e.flows.iter().filter(|f| f.node_group.as_deref() == Some(&name)).map(|f| f.name).collect();
    assert_eq!(flows, [FlowName::Api, FlowName::Dns, FlowName::AwsApis]);
    // The pod SG's egress narrowed to HTTPS: the node SG still has egress_all, which does not help.
    let mut broken = snap.clone();
    layouts::remove_rule(&mut broken, &pods, &rule(Direction::Egress, "all", "0.0.0.0/0"));
    add_rule(&mut broken, &pods, rule(Direction::Egress, "tcp 443", "0.0.0.0/0"));
    assert_closes(&broken, FlowName::Dns, &name, &format!("pods on secondary ENIs with SGs {pods}"));
}

/// Security groups for pods (EKS user guide, "Security groups for Pods"; VPC CNI README,
/// POD_SECURITY_GROUP_ENFORCING_MODE): in `strict`, the default, the pod SG filters the
/// kubelet's probes; in `standard` it does not.
#[test]
fn pod_probes_are_required_in_strict_mode_only_and_unknown_when_the_mode_is_unknown() {
    let stock = layouts::with_pod_security_group(layouts::cluster(Style::Console, EndpointMode::PublicPrivate), 8080);
    let pod = stock.groups_with_role(Role::Pod).next().unwrap().id.clone();
    let cluster = stock.cluster_security_group_id.clone().unwrap();
    for mode in [PodSgEnforcingMode::Strict, PodSgEnforcingMode::Standard, PodSgEnforcingMode::Unknown] {
        let mut snap = stock.clone();
        snap.data_plane.pod_sg_enforcing_mode = mode;
        assert_stock(&snap);
        // The probe rule deleted: a pod set with the cluster SG still admits the nodes; a pod
        // set of the pod SG alone does not.
        let mut broken = snap.clone();
        broken.pod_security_group_sets = vec![vec![pod.clone()]];
        layouts::remove_rule(&mut broken, &pod, &rule(Direction::Ingress, "tcp 8080", &cluster));
        let name = format!("pods {pod}");
        match mode {
            PodSgEnforcingMode::Strict => {
                assert_closes(&broken, FlowName::PodProbes, &name, &format!("pods with SGs {pod}"))
            }
            _ => {
                let e = eval("eks-minimal", &broken);
                let want = if mode == PodSgEnforcingMode::Standard { FlowStatus::Open } else { FlowStatus::Unknown };
                assert_eq!(flow_for(&e, FlowName::PodProbes, &name).status, want, "{}", mode.as_str());
                assert!(e.findings.is_empty(), "{}", describe(&e));
            }
        }
    }
}

/// Karpenter (karpenter.sh docs, EC2NodeClass `securityGroupSelectorTerms`): each NodePool's
/// node class picks its own SGs. Two pools, each SG admitting DNS from itself only: CoreDNS on one
/// pool cannot answer the other, which a union of the two sets would hide.
#[test]
fn two_nodepools_with_different_sets_are_two_endpoints_with_dns_open_for_one_and_closed_for_the_other() {
    let mut snap = layouts::cluster(Style::Terraform, EndpointMode::PublicPrivate);
    let node = layouts::group(&snap, Role::Node).id.clone();
    snap.node_groups = vec![endpoint("general", NodeGroupKind::Karpenter, &[&node])];
    assert_stock(&snap);
    let gpu = "sg-0g9u000000000001".to_string();
    let mut rules: Vec<Rule> = snap.groups[&node].rules.clone();
    rules.iter_mut().filter(|r| r.peer == Peer::group(&node)).for_each(|r| r.peer = Peer::group(&gpu));
    new_group(&mut snap, &gpu, "karpenter-gpu", Role::Node, rules);
    let cp = layouts::group(&snap, Role::ControlPlane).id.clone();
    add_rule(&mut snap, &cp, rule(Direction::Ingress, "tcp 443", &gpu));
    snap.node_groups.push(endpoint("gpu", NodeGroupKind::Karpenter, &[&gpu]));
    // The GPU pool's SG admits DNS from the general pool; the general pool's does not admit the
    // GPU pool: DNS is open from general (both ways work for it), closed from gpu.
    add_rule(&mut snap, &gpu, rule(Direction::Ingress, "tcp 53", &node));
    add_rule(&mut snap, &gpu, rule(Direction::Ingress, "udp 53", &node));
    let e = eval("eks-minimal", &snap);
    assert_eq!(
        flow_for(&e, FlowName::Dns, "general").status,
        FlowStatus::Open,
        "{}",
        flow_for(&e, FlowName::Dns, "general").detail
    );
    assert_closes(&snap, FlowName::Dns, "gpu", "NodePool gpu");
}
