//! Stock clusters, each rebuilt from its tool's own code or documentation, read through the
//! `files` source: healthy ones give status `ok` with every flow open, and one realistic drift on
//! each is found with design.md §3's severity (issue 9, "Done when").
//!
//! The fixtures are `tests/fixtures/files/<cluster>/`, AWS CLI JSON written by
//! `tests/fixtures/stock_clusters.py`; that script's docstring and [`STOCK`] below name the file
//! and version each fact comes from. Facts carry over from those sources; no code of theirs does.

use std::path::{Path, PathBuf};

use crate::support::layouts::{self, add_rule, remove_rule, rule, REGION};
use chrono::NaiveDate;
use serde_json::Value;
use sgdrift::baseline::{BaselineRef, Controller, Exception};
use sgdrift::config::Target;
use sgdrift::diff::Evaluation;
use sgdrift::engine::{cluster_report, evaluate_snapshot, ClusterOutcome};
use sgdrift::export::report::ClusterStatus;
use sgdrift::flows::FlowStatus;
use sgdrift::model::{
    ClusterSnapshot, Direction, EndpointMode, FindingKind, FlowName, IpFamily, NodeGroupKind, Peer, Role, RouteOut,
    Rule, Severity, Style,
};
use sgdrift::source::files::FilesSource;
use sgdrift::source::TargetSpec;

const PROFILES: [&str; 2] = ["eks-minimal", "eks-strict"];
/// Webhook ports the fixtures' owners would declare: the AWS Load Balancer Controller (9443)
/// and Karpenter (8443), both opened by terraform-aws-eks's recommended rules.
const WEBHOOKS: [u16; 2] = [9443, 8443];

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/files")
}

fn target(profile: &str) -> Target {
    Target {
        regions: vec![REGION.into()],
        role_arn: None,
        clusters: vec!["*".into()],
        baseline: BaselineRef::Profile(profile.parse().expect("a built-in profile")),
        webhook_ports: WEBHOOKS.to_vec(),
        trust_controllers: Controller::ALL.to_vec(),
        organization: None,
    }
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 30).expect("a date")
}

/// The snapshot of cluster `name` read from `dir` by the files source.
fn load_from(dir: &Path, name: &str) -> ClusterSnapshot {
    let spec = TargetSpec { region: REGION.into(), role_arn: None, clusters: vec![name.into()] };
    let poll = FilesSource::new(dir.to_path_buf()).poll(&spec);
    assert!(poll.error.is_none(), "{name}: {:?}", poll.error);
    let [cluster] = <[_; 1]>::try_from(poll.clusters).unwrap_or_else(|c| panic!("{name}: {} clusters", c.len()));
    cluster.result.unwrap_or_else(|e| panic!("{name} does not load: {e}"))
}

fn load(name: &str) -> ClusterSnapshot {
    load_from(&fixtures(), name)
}

fn eval(profile: &str, snap: &ClusterSnapshot) -> Evaluation {
    evaluate_snapshot(&target(profile), &[] as &[Exception], snap, today())
}

/// The report's `status` for the evaluation (design.md §3).
fn status(snap: &ClusterSnapshot, e: &Evaluation) -> ClusterStatus {
    let outcome = ClusterOutcome { id: snap.id.clone(), target: 0, result: Ok((snap.clone(), e.clone())) };
    cluster_report(&outcome).status
}

fn describe(e: &Evaluation) -> String {
    let findings = e
        .findings
        .iter()
        .map(|f| format!("  {} {} {} {} ({})", f.severity, f.kind.as_str(), f.group_id, f.rule_text(), f.reason));
    let flows = e
        .flows
        .iter()
        .filter(|f| f.status != FlowStatus::Open)
        .map(|f| format!("  flow {} {}: {}", f.name.as_str(), f.status.as_str(), f.detail));
    findings.chain(flows).collect::<Vec<_>>().join("\n")
}

/// One stock cluster: its directory (= cluster name), what its tool makes of it, and where the
/// facts come from.
struct Stock {
    name: &'static str,
    style: Style,
    mode: EndpointMode,
    source: &'static str,
}

const STOCK: &[Stock] = &[
    Stock {
        name: "tf-v19",
        style: Style::Terraform,
        mode: EndpointMode::Private,
        source: "terraform-aws-modules/terraform-aws-eks v19.0.0: main.tf (ingress_nodes_443, no egress), \
                 node_groups.tf (node_security_group_rules; recommended: ingress_nodes_ephemeral, 8443, 9443, \
                 egress_all), variables.tf (endpoint private only), docs/UPGRADE-19.0.md",
    },
    Stock {
        name: "tf-v20",
        style: Style::Terraform,
        mode: EndpointMode::Private,
        source: "terraform-aws-modules/terraform-aws-eks v20.0.0: node_groups.tf (recommended rules add \
                 ingress_cluster_4443_webhook, ingress_cluster_6443_webhook), main.tf (cluster tag \
                 terraform-aws-modules = eks)",
    },
    Stock {
        name: "tf-v21",
        style: Style::Terraform,
        mode: EndpointMode::Private,
        source: "terraform-aws-modules/terraform-aws-eks v21.0.0: main.tf, node_groups.tf, variables.tf \
                 (endpoint_private_access = true, endpoint_public_access = false), \
                 modules/eks-managed-node-group/main.tf (no node group SG without rules)",
    },
    Stock {
        name: "tf-ipv6",
        style: Style::Terraform,
        mode: EndpointMode::Private,
        source: "terraform-aws-modules/terraform-aws-eks v21.0.0 node_groups.tf (egress_all adds ::/0 when \
                 ip_family = \"ipv6\"); EKS user guide latest/ug/networking/sec-group-reqs.adoc @4d52b4d \
                 (cluster SG egress ::/0 on IPv6 clusters)",
    },
    Stock {
        name: "karpenter",
        style: Style::Terraform,
        mode: EndpointMode::PublicPrivate,
        source: "terraform-aws-modules/terraform-aws-eks v21.0.0 examples/karpenter/main.tf and karpenter.yaml \
                 (node_security_group_tags karpenter.sh/discovery; EC2NodeClass securityGroupSelectorTerms); \
                 aws/karpenter-provider-aws v1.14.0 pkg/apis/v1/ec2nodeclass.go (instance tags)",
    },
    Stock {
        name: "lbc",
        style: Style::Terraform,
        mode: EndpointMode::Private,
        source: "kubernetes-sigs/aws-load-balancer-controller v3.5.0 pkg/networking/backend_sg_provider.go \
                 (k8s-traffic-<cluster>-<hash>, elbv2.k8s.aws/resource = backend-sg), \
                 pkg/networking/networking_manager.go (elbv2.k8s.aws/targetGroupBinding=shared) on a \
                 terraform-aws-eks v21.0.0 cluster",
    },
    Stock {
        name: "eksctl-managed",
        style: Style::Eksctl,
        mode: EndpointMode::Public,
        source: "eksctl-io/eksctl v0.230.0 pkg/cfn/builder/cluster.go (ControlPlaneSecurityGroup, \
                 ClusterSharedNodeSecurityGroup, IngressInterNodeGroupSG, IngressDefaultClusterToNodeSG, \
                 IngressNodeToDefaultClusterSG), managed_launch_template.go (template lists the cluster SG)",
    },
    Stock {
        name: "eksctl-unmanaged",
        style: Style::Eksctl,
        mode: EndpointMode::Public,
        source: "eksctl-io/eksctl v0.230.0 pkg/cfn/builder/nodegroup.go (SG with IngressInterCluster, \
                 IngressInterClusterAPI; EgressInterCluster, EgressInterClusterAPI, IngressInterClusterCP on the \
                 control-plane SG) plus cluster.go as eksctl-managed",
    },
    Stock {
        name: "eksctl-private",
        style: Style::Eksctl,
        mode: EndpointMode::Private,
        source: "eksctl-io/eksctl v0.230.0 pkg/cfn/builder/vpc_endpoint.go (endpoints on the shared node SG, \
                 private DNS, S3 gateway on the private route tables), vpc_ipv4.go (no NAT gateway), \
                 pkg/apis/eksctl.io/v1alpha5/endpoint_service.go, userdocs/src/usage/eks-private-cluster.md",
    },
    Stock {
        name: "auto-mode",
        style: Style::AutoMode,
        mode: EndpointMode::PublicPrivate,
        source: "EKS user guide latest/ug/automode/auto-networking.adoc @4d52b4d (EKS adds the load balancers' \
                 ingress to eks-cluster-sg-*), sec-group-reqs.adoc (cluster SG defaults)",
    },
    Stock {
        name: "console",
        style: Style::Console,
        mode: EndpointMode::Public,
        source: "AWS's getting-started VPC template amazon-eks-vpc-private-subnets.yaml (ControlPlaneSecurityGroup, \
                 no rules), EKS API VpcConfigRequest defaults (public endpoint only), EKS user guide \
                 sec-group-reqs.adoc @4d52b4d (cluster SG on managed nodes without a launch template)",
    },
    Stock {
        name: "pod-sgs",
        style: Style::Console,
        mode: EndpointMode::PublicPrivate,
        source: "https://docs.aws.amazon.com/eks/latest/userguide/sg-pods-example-deployment.html and \
                 security-groups-pods-deployment.html (cluster SG admits tcp+udp 53 from the pod SG; the pod \
                 SG admits the nodes; branch ENIs aws-k8s-branch-eni)",
    },
];

/// Python for the fixture generator: `SGDRIFT_PYTHON` (as for the AWS emulator's fixtures),
/// else `<repo>/.venv/bin/python`.
fn python() -> PathBuf {
    let python = std::env::var_os("SGDRIFT_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    assert!(
        python.is_file(),
        "Python for the fixture generator is missing: nothing at {} (set SGDRIFT_PYTHON, or run scripts/setup-test-deps)",
        python.display()
    );
    python
}

#[test]
fn the_committed_fixtures_are_exactly_what_their_generator_writes() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stock_clusters.py");
    let out =
        std::process::Command::new(python()).arg(&script).arg("--out").arg(tmp.path()).output().expect("python runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut written: Vec<String> = Vec::new();
    for s in STOCK {
        let mut files: Vec<_> = std::fs::read_dir(tmp.path().join(s.name))
            .unwrap_or_else(|e| panic!("{}: not written: {e}", s.name))
            .map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        for file in files {
            let fresh = std::fs::read_to_string(tmp.path().join(s.name).join(&file)).expect("read");
            let committed = std::fs::read_to_string(fixtures().join(s.name).join(&file)).unwrap_or_default();
            assert!(
                fresh == committed,
                "{}/{file} differs from what stock_clusters.py writes: run it and commit",
                s.name
            );
            written.push(format!("{}/{file}", s.name));
        }
        let committed = std::fs::read_dir(fixtures().join(s.name)).expect("fixture dir").count();
        assert_eq!(committed, written.iter().filter(|w| w.starts_with(&format!("{}/", s.name))).count(), "{}", s.name);
    }
    assert_eq!(std::fs::read_dir(tmp.path()).expect("out dir").count(), STOCK.len(), "one directory per stock cluster");
}

// --- the clusters as their tools lay them out -------------------------------------------------

/// Each stock cluster's node groups: name, kind and the roles of the groups they carry (sorted).
const NODE_GROUPS: &[(&str, &[(&str, NodeGroupKind, &[Role])])] = &[
    ("tf-v19", &[("default-20261102090211412300000009", NodeGroupKind::Managed, &[Role::Node])]),
    ("tf-v20", &[("default-20261102090211412300000009", NodeGroupKind::Managed, &[Role::Node])]),
    ("tf-v21", &[("default-20261102090211412300000009", NodeGroupKind::Managed, &[Role::Node])]),
    ("tf-ipv6", &[("default-20261102090211412300000009", NodeGroupKind::Managed, &[Role::Node])]),
    (
        "karpenter",
        &[
            ("default-20261102090211412300000009", NodeGroupKind::Managed, &[Role::Node]),
            ("default", NodeGroupKind::Karpenter, &[Role::Node]),
        ],
    ),
    ("lbc", &[("default-20261102090211412300000009", NodeGroupKind::Managed, &[Role::Node])]),
    // eksctl's managed launch template lists the cluster SG; its shared node SG is a node SG
    // on no node (managed only) or on the unmanaged group's nodes.
    ("eksctl-managed", &[("ng-3f1a9c2e", NodeGroupKind::Managed, &[Role::Cluster])]),
    (
        "eksctl-unmanaged",
        &[
            ("ng-3f1a9c2e", NodeGroupKind::Managed, &[Role::Cluster]),
            ("ng-workers", NodeGroupKind::SelfManaged, &[Role::Node, Role::Node]),
        ],
    ),
    ("eksctl-private", &[("ng-3f1a9c2e", NodeGroupKind::Managed, &[Role::Cluster])]),
    (
        "auto-mode",
        &[
            ("general-purpose", NodeGroupKind::Karpenter, &[Role::Cluster]),
            ("system", NodeGroupKind::Karpenter, &[Role::Cluster]),
        ],
    ),
    ("console", &[("my-nodegroup", NodeGroupKind::Managed, &[Role::Cluster])]),
    ("pod-sgs", &[("my-nodegroup", NodeGroupKind::Managed, &[Role::Cluster])]),
];

#[test]
fn every_stock_cluster_loads_with_its_tools_style_endpoint_mode_and_node_groups() {
    assert_eq!(NODE_GROUPS.len(), STOCK.len());
    for (s, (name, groups)) in STOCK.iter().zip(NODE_GROUPS) {
        assert_eq!(s.name, *name);
        assert!(!s.source.is_empty());
        let snap = load(s.name);
        assert_eq!((snap.style, snap.endpoint_mode), (s.style, s.mode), "{} ({})", s.name, s.source);
        assert!(snap.warnings.is_empty(), "{}: {:?}", s.name, snap.warnings);
        let got: Vec<(String, NodeGroupKind, Vec<Role>)> = snap
            .node_groups
            .iter()
            .map(|ng| {
                let mut roles: Vec<Role> =
                    ng.security_group_ids.iter().map(|id| snap.groups[id].primary_role()).collect();
                roles.sort();
                (ng.name.clone(), ng.kind, roles)
            })
            .collect();
        let want: Vec<(String, NodeGroupKind, Vec<Role>)> =
            groups.iter().map(|(n, k, r)| (n.to_string(), *k, r.to_vec())).collect();
        assert_eq!(got, want, "{}", s.name);
    }
}

#[test]
fn the_stock_clusters_carry_the_evidence_each_feature_leaves() {
    // eksctl's shared node SG: a node SG in every eksctl cluster, also on the endpoints of a
    // fully private one (vpc_endpoint.go).
    for (name, roles) in [
        ("eksctl-managed", vec![Role::Node]),
        ("eksctl-unmanaged", vec![Role::Node]),
        ("eksctl-private", vec![Role::Node, Role::Endpoint]),
    ] {
        let snap = load(name);
        let shared = layouts::group_named(&snap, "ClusterSharedNodeSecurityGroup");
        assert_eq!(shared.roles.iter().copied().collect::<Vec<_>>(), roles, "{name}");
    }
    assert_eq!(load("tf-ipv6").ip_family, IpFamily::Ipv6);
    assert!(load("tf-ipv6").vpc_cidrs.iter().any(|c| matches!(c, ipnet::IpNet::V6(_))));
    let pods = load("pod-sgs");
    let pod_sg = layouts::group_named(&pods, "my-pod-security-group");
    assert_eq!(pods.pod_security_group_sets, vec![vec![pod_sg.id.clone()]]);
    assert!(pod_sg.has_role(Role::Pod));
    // The load balancers' own SGs hold no role: the backend SG is only a peer of owned rules,
    // the frontend SG (on the ALB's ENIs) is not part of the cluster at all.
    let lbc = load("lbc");
    assert!(lbc
        .peer_groups
        .values()
        .any(|g| g.tags.get("elbv2.k8s.aws/resource").map(String::as_str) == Some("backend-sg")));
    assert!(lbc.groups.values().all(|g| !g.name.starts_with("k8s-")), "{:?}", lbc.groups.keys());
    // Every private cluster with nodes behind a NAT gateway knows it from its route tables.
    let tf = load("tf-v21");
    assert!(tf.vpc_endpoints.is_empty());
    assert!(tf.node_groups.iter().all(|ng| ng.route_out_v4 == RouteOut::Internet), "{:?}", tf.node_groups);
    let eksctl = load("eksctl-private");
    assert!(eksctl.node_groups.iter().all(|ng| ng.route_out_v4 == RouteOut::None), "{:?}", eksctl.node_groups);
}

// --- healthy ----------------------------------------------------------------------------------

#[test]
fn every_stock_cluster_is_ok_with_every_flow_open_under_eks_minimal() {
    for s in STOCK {
        let snap = load(s.name);
        let e = eval("eks-minimal", &snap);
        assert_eq!(status(&snap, &e), ClusterStatus::Ok, "{} ({}):\n{}", s.name, s.source, describe(&e));
        assert!(!e.flows.is_empty(), "{}", s.name);
        assert!(e.flows.iter().all(|f| f.status == FlowStatus::Open), "{} ({}):\n{}", s.name, s.source, describe(&e));
    }
}

/// What eks-strict refuses by design (design.md §3, profiles.rs): allow-all egress to the
/// internet (high) and the control-plane SG's tcp 1025-65535 to nodes (low).
fn refused_by_eks_strict(f: &sgdrift::model::Finding) -> bool {
    let allow_all_out = f.traffic.protocol_name() == "all" && f.peer.as_peer().is_some_and(|p| p.is_internet());
    let wide_out = f.traffic.from_port() == 1025 && f.traffic.to_port() == 65535 && f.severity == Severity::Low;
    f.kind == FindingKind::Unexpected && f.direction == Direction::Egress && (allow_all_out || wide_out)
}

#[test]
fn every_stock_cluster_hardened_as_eks_strict_asks_is_ok_with_every_flow_open_and_stock_egress_is_all_it_refuses() {
    for s in STOCK {
        let snap = load(s.name);
        let e = eval("eks-strict", &snap);
        assert!(e.findings.iter().all(refused_by_eks_strict), "{} ({}):\n{}", s.name, s.source, describe(&e));
        assert!(e.flows.iter().all(|f| f.status == FlowStatus::Open), "{}:\n{}", s.name, describe(&e));

        let hardened = layouts::hardened(snap, &WEBHOOKS);
        let e = eval("eks-strict", &hardened);
        assert_eq!(status(&hardened, &e), ClusterStatus::Ok, "{} hardened ({}):\n{}", s.name, s.source, describe(&e));
        assert!(e.flows.iter().all(|f| f.status == FlowStatus::Open), "{} hardened:\n{}", s.name, describe(&e));
    }
}

/// `snap` as an IPv6 cluster (`kubernetesNetworkConfig.ipFamily` = ipv6, an IPv6 block on the
/// VPC, ::/0 routed to an egress-only internet gateway) with the IPv6 form of each IPv4 CIDR rule
/// beside it: 0.0.0.0/0 becomes ::/0, a block inside the VPC becomes the VPC's IPv6 block.
fn with_ipv6_forms(mut snap: ClusterSnapshot) -> ClusterSnapshot {
    const VPC_V6: &str = "2a05:d018:1a2:4f00::/56";
    snap.ip_family = IpFamily::Ipv6;
    snap.vpc_cidrs.push(VPC_V6.parse().expect("a CIDR"));
    for ng in &mut snap.node_groups {
        ng.route_out_v6 = RouteOut::Internet;
    }
    let ids: Vec<String> = snap.groups.keys().cloned().collect();
    for id in ids {
        let v4: Vec<Rule> =
            snap.groups[&id].rules.iter().filter(|r| matches!(r.peer, Peer::Ipv4(_))).cloned().collect();
        for r in v4 {
            let v6 = if r.peer.is_internet() {
                "::/0"
            } else {
                let inside = snap
                    .vpc_cidrs
                    .iter()
                    .any(|c| matches!((c, &r.peer), (ipnet::IpNet::V4(v), Peer::Ipv4(p)) if v.contains(p)));
                assert!(inside, "{}: no IPv6 form for {r}", snap.id.name);
                VPC_V6
            };
            add_rule(&mut snap, &id, Rule { peer: Peer::parse(v6).expect("a CIDR"), ..r });
        }
    }
    snap
}

#[test]
fn every_stock_cluster_as_an_ipv6_cluster_with_the_ipv6_form_of_each_cidr_rule_is_ok_with_every_flow_open() {
    for s in STOCK {
        let snap = with_ipv6_forms(load(s.name));
        for profile in PROFILES {
            let snap = if profile == "eks-strict" { layouts::hardened(snap.clone(), &WEBHOOKS) } else { snap.clone() };
            let e = eval(profile, &snap);
            assert_eq!(status(&snap, &e), ClusterStatus::Ok, "{} as IPv6 under {profile}:\n{}", s.name, describe(&e));
            assert!(e.flows.iter().all(|f| f.status == FlowStatus::Open), "{} as IPv6:\n{}", s.name, describe(&e));
        }
    }
}

// --- one realistic drift each -----------------------------------------------------------------

/// A change someone makes by hand, and what design.md §3 says it is.
struct Drift {
    cluster: &'static str,
    story: &'static str,
    /// Part of the name of the group that changes.
    group: &'static str,
    add: bool,
    direction: Direction,
    traffic: &'static str,
    /// A CIDR, `self`, or `@part` for the group named like `part`.
    peer: &'static str,
    description: Option<&'static str>,
    kind: FindingKind,
    severity: Severity,
    flow: Option<FlowName>,
}

const LBC_DESCRIPTION: &str = "elbv2.k8s.aws/targetGroupBinding=shared";

const DRIFTS: &[Drift] = &[
    Drift {
        cluster: "tf-v19",
        story: "ingress_cluster_kubelet deleted by hand: kubectl logs/exec stop working",
        group: "tf-v19-node-",
        add: false,
        direction: Direction::Ingress,
        traffic: "tcp 10250",
        peer: "@tf-v19-cluster-",
        description: None,
        kind: FindingKind::Flow,
        severity: Severity::Critical,
        flow: Some(FlowName::Kubelet),
    },
    Drift {
        cluster: "tf-v20",
        story: "SSH opened to the world on the node SG while debugging",
        group: "tf-v20-node-",
        add: true,
        direction: Direction::Ingress,
        traffic: "tcp 22",
        peer: "0.0.0.0/0",
        description: Some("debug"),
        kind: FindingKind::Unexpected,
        severity: Severity::Critical,
        flow: None,
    },
    Drift {
        cluster: "tf-v21",
        story: "ingress_self_coredns_udp deleted: pods on one node cannot resolve names on another",
        group: "tf-v21-node-",
        add: false,
        direction: Direction::Ingress,
        traffic: "udp 53",
        peer: "self",
        description: None,
        kind: FindingKind::Flow,
        severity: Severity::Critical,
        flow: Some(FlowName::Dns),
    },
    Drift {
        cluster: "tf-ipv6",
        story: "SSH opened to ::/0 on the node SG of an IPv6 cluster",
        group: "tf-ipv6-node-",
        add: true,
        direction: Direction::Ingress,
        traffic: "tcp 22",
        peer: "::/0",
        description: None,
        kind: FindingKind::Unexpected,
        severity: Severity::Critical,
        flow: None,
    },
    Drift {
        cluster: "karpenter",
        story: "Karpenter's webhook port opened to the corporate network on the nodes' SG",
        group: "karpenter-node-",
        add: true,
        direction: Direction::Ingress,
        traffic: "tcp 8443",
        peer: "10.0.0.0/8",
        description: Some("corp"),
        kind: FindingKind::Unexpected,
        severity: Severity::High,
        flow: None,
    },
    Drift {
        cluster: "lbc",
        story: "a NodePort opened to the internet under the controller's description",
        group: "lbc-node-",
        add: true,
        direction: Direction::Ingress,
        traffic: "tcp 31380",
        peer: "0.0.0.0/0",
        description: Some(LBC_DESCRIPTION),
        kind: FindingKind::Unexpected,
        severity: Severity::Critical,
        flow: None,
    },
    Drift {
        cluster: "eksctl-managed",
        story: "the NodePort range opened to the world on the cluster SG the managed nodes carry",
        group: "eks-cluster-sg-",
        add: true,
        direction: Direction::Ingress,
        traffic: "tcp 30000-32767",
        peer: "0.0.0.0/0",
        description: None,
        kind: FindingKind::Unexpected,
        severity: Severity::Critical,
        flow: None,
    },
    Drift {
        cluster: "eksctl-unmanaged",
        story: "node-exporter opened to a peered VPC's Prometheus on the unmanaged group's SG",
        group: "-SG-",
        add: true,
        direction: Direction::Ingress,
        traffic: "tcp 9100",
        peer: "10.1.0.0/16",
        description: Some("prometheus"),
        kind: FindingKind::Unexpected,
        severity: Severity::Medium,
        flow: None,
    },
    Drift {
        cluster: "eksctl-private",
        story: "IngressDefaultClusterToNodeSG deleted: managed nodes no longer reach the endpoints on the shared SG",
        group: "ClusterSharedNodeSecurityGroup",
        add: false,
        direction: Direction::Ingress,
        traffic: "all",
        peer: "@eks-cluster-sg-",
        description: None,
        kind: FindingKind::Flow,
        severity: Severity::Critical,
        flow: Some(FlowName::AwsApis),
    },
    Drift {
        cluster: "auto-mode",
        story: "the kubelet opened to the internet on the cluster SG",
        group: "eks-cluster-sg-",
        add: true,
        direction: Direction::Ingress,
        traffic: "tcp 10250",
        peer: "0.0.0.0/0",
        description: None,
        kind: FindingKind::Unexpected,
        severity: Severity::Critical,
        flow: None,
    },
    Drift {
        cluster: "console",
        story: "the whole corporate range let in on every port of the cluster SG",
        group: "eks-cluster-sg-",
        add: true,
        direction: Direction::Ingress,
        traffic: "all",
        peer: "10.0.0.0/8",
        description: Some("VPN"),
        kind: FindingKind::Unexpected,
        severity: Severity::High,
        flow: None,
    },
    Drift {
        cluster: "pod-sgs",
        story: "udp 53 from the pod SG deleted from the cluster SG: pods with their own SG cannot resolve names",
        group: "eks-cluster-sg-",
        add: false,
        direction: Direction::Ingress,
        traffic: "udp 53",
        peer: "@my-pod-security-group",
        description: None,
        kind: FindingKind::Flow,
        severity: Severity::Critical,
        flow: Some(FlowName::PodDns),
    },
];

impl Drift {
    /// Applies the change to `snap`; gives the rule added or removed.
    fn apply(&self, snap: &mut ClusterSnapshot) -> Rule {
        let group = layouts::group_named(snap, self.group).id.clone();
        let peer = match self.peer {
            "self" => group.clone(),
            p => p.strip_prefix('@').map_or(p.to_string(), |part| layouts::group_named(snap, part).id.clone()),
        };
        let mut r = rule(self.direction, self.traffic, &peer);
        r.description = self.description.map(str::to_string);
        if self.add {
            add_rule(snap, &group, r.clone());
        } else {
            remove_rule(snap, &group, &r);
        }
        r
    }
}

#[test]
fn one_realistic_drift_on_each_stock_cluster_is_found_with_the_design_severity_under_both_profiles() {
    assert_eq!(DRIFTS.iter().map(|d| d.cluster).collect::<Vec<_>>(), STOCK.iter().map(|s| s.name).collect::<Vec<_>>());
    for d in DRIFTS {
        for profile in PROFILES {
            let clean = load(d.cluster);
            let mut snap = if profile == "eks-strict" { layouts::hardened(clean, &WEBHOOKS) } else { clean };
            let r = d.apply(&mut snap);
            let e = eval(profile, &snap);
            let at = format!("{} under {profile}, {}", d.cluster, d.story);
            assert_eq!(status(&snap, &e), ClusterStatus::Drift, "{at}");
            assert_eq!(e.findings.len(), 1, "{at}: one finding expected:\n{}", describe(&e));
            let f = &e.findings[0];
            assert_eq!((f.kind, f.severity, f.flow), (d.kind, d.severity, d.flow), "{at}:\n{}", describe(&e));
            match d.flow {
                Some(flow) => assert!(
                    e.flows.iter().any(|x| x.name == flow && x.status == FlowStatus::Closed),
                    "{at}:\n{}",
                    describe(&e)
                ),
                None => assert_eq!(
                    (f.direction, f.traffic, f.peer.as_peer()),
                    (r.direction, r.traffic, Some(&r.peer)),
                    "{at}"
                ),
            }
        }
    }
}

// --- what is not drift, and what is disguised --------------------------------------------------

/// A scratch copy of fixture `name`, to edit.
fn scratch(name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("temp dir");
    let to = tmp.path().join(name);
    std::fs::create_dir_all(&to).expect("mkdir");
    for entry in std::fs::read_dir(fixtures().join(name)).expect("fixture dir") {
        let entry = entry.expect("dir entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
    tmp
}

/// Rewrites `file` of the scratch cluster `name` with `edit`.
fn edit_json(dir: &Path, name: &str, file: &str, edit: impl FnOnce(&mut Value)) {
    let path = dir.join(name).join(file);
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("JSON");
    edit(&mut doc);
    std::fs::write(&path, serde_json::to_string_pretty(&doc).expect("print")).expect("write");
}

const PEER_LISTS: [&str; 4] = ["UserIdGroupPairs", "IpRanges", "Ipv6Ranges", "PrefixListIds"];

/// Every permission of every group, ingress and egress.
fn permissions(doc: &mut Value) -> impl Iterator<Item = &mut Vec<Value>> {
    let groups = doc["SecurityGroups"].as_array_mut().expect("SecurityGroups");
    groups.iter_mut().flat_map(|g| {
        let g = g.as_object_mut().expect("a group");
        g.iter_mut()
            .filter(|(k, _)| k.as_str() == "IpPermissions" || k.as_str() == "IpPermissionsEgress")
            .map(|(_, v)| v.as_array_mut().expect("permissions"))
            .collect::<Vec<_>>()
    })
}

/// Every description replaced, except the controllers' markers (evidence, not prose).
fn edit_descriptions(doc: &mut Value) {
    for perms in permissions(doc) {
        for p in perms.iter_mut() {
            for list in PEER_LISTS {
                for peer in p[list].as_array_mut().into_iter().flatten() {
                    if peer["Description"].as_str() != Some(LBC_DESCRIPTION) {
                        peer["Description"] = Value::from("edited by hand in the console");
                    }
                }
            }
        }
    }
}

/// One permission per peer (and, with `halve`, tcp/udp ranges cut in two), everything in
/// reverse order: rules added one by one look like this next to the merged ones EC2 prints.
fn split(doc: &mut Value, halve: bool) {
    for perms in permissions(doc) {
        let mut split = Vec::new();
        for p in perms.iter() {
            let ranges = match (p["FromPort"].as_i64(), p["ToPort"].as_i64()) {
                (Some(from), Some(to)) if halve && from < to => {
                    vec![(from, (from + to) / 2), ((from + to) / 2 + 1, to)]
                }
                (from, to) => vec![(from.unwrap_or(-1), to.unwrap_or(-1))],
            };
            for list in PEER_LISTS {
                for peer in p[list].as_array().into_iter().flatten() {
                    for (from, to) in &ranges {
                        let mut one = p.clone();
                        for l in PEER_LISTS {
                            one[l] = Value::Array(Vec::new());
                        }
                        one[list] = Value::Array(vec![peer.clone()]);
                        if *from >= 0 {
                            one["FromPort"] = Value::from(*from);
                            one["ToPort"] = Value::from(*to);
                        }
                        split.push(one);
                    }
                }
            }
        }
        split.reverse();
        *perms = split;
    }
}

/// The cluster's rules as text, group by group.
fn rule_texts(s: &ClusterSnapshot) -> Vec<Vec<String>> {
    s.groups.values().map(|g| g.rules.iter().map(|r| r.to_string()).collect()).collect()
}

#[test]
fn description_edits_and_split_merged_or_reordered_permissions_give_no_finding_on_any_stock_cluster() {
    type Edit = fn(&mut Value);
    // (edit, does the cluster keep exactly its rules?)
    let edits: [(&str, Edit, bool); 3] = [
        ("descriptions edited", edit_descriptions, true),
        ("one permission per peer, reordered", |d| split(d, false), true),
        ("port ranges cut in two", |d| split(d, true), false),
    ];
    for s in STOCK {
        let original = load(s.name);
        for (what, edit, same_rules) in edits {
            let tmp = scratch(s.name);
            edit_json(tmp.path(), s.name, "describe-security-groups.json", edit);
            let snap = load_from(tmp.path(), s.name);
            if same_rules {
                assert_eq!(rule_texts(&snap), rule_texts(&original), "{}: {what} changes no rule", s.name);
            }
            for profile in PROFILES {
                let strict = |snap: &ClusterSnapshot| layouts::hardened(snap.clone(), &WEBHOOKS);
                let (snap, clean) = if profile == "eks-strict" {
                    (strict(&snap), strict(&original))
                } else {
                    (snap.clone(), original.clone())
                };
                let e = eval(profile, &snap);
                assert_eq!(
                    status(&snap, &e),
                    ClusterStatus::Ok,
                    "{} {what} under {profile}:\n{}",
                    s.name,
                    describe(&e)
                );
                assert!(e.flows.iter().all(|f| f.status == FlowStatus::Open), "{} {what}:\n{}", s.name, describe(&e));
                assert_eq!(
                    e.owned.len(),
                    eval(profile, &clean).owned.len(),
                    "{} {what}: owned rules stay owned",
                    s.name
                );
            }
        }
    }
}

#[test]
fn controller_owned_rules_are_listed_with_their_owner_and_give_no_finding() {
    // (cluster, owner, rules as the report prints them, sorted, an SG peer by the start of its name)
    let cases: [(&str, Controller, &[&str]); 2] = [
        (
            "lbc",
            Controller::AwsLoadBalancerController,
            &[
                "ingress tcp 30443 from 10.0.0.0/16",
                "ingress tcp 31380 from k8s-traffic-lbc-",
                "ingress tcp 8080 from k8s-traffic-lbc-",
            ],
        ),
        ("auto-mode", Controller::EksAutoMode, &["ingress tcp 8080 from k8s-shop-web-"]),
    ];
    for (name, owner, rules) in cases {
        let snap = load(name);
        let e = eval("eks-minimal", &snap);
        assert!(e.findings.is_empty(), "{name}:\n{}", describe(&e));
        let mut got: Vec<String> = e
            .owned
            .iter()
            .map(|o| {
                assert_eq!(o.owned_by, owner, "{name}");
                let peer = o.rule.peer.group_id().and_then(|id| snap.peer_groups.get(id).map(|g| (id, &g.name)));
                peer.map_or(o.rule.to_string(), |(id, name)| o.rule.to_string().replace(id, name))
            })
            .collect();
        got.sort();
        assert_eq!(got.len(), rules.len(), "{name}: {got:?}");
        for (got, want) in got.iter().zip(rules) {
            assert!(got.starts_with(want), "{name}: {got} is not {want}…");
        }
        // A target that does not trust the controller sees each rule as drift.
        let mut t = target("eks-minimal");
        t.trust_controllers.retain(|c| *c != owner);
        let e = evaluate_snapshot(&t, &[], &snap, today());
        assert_eq!(e.findings.len(), rules.len(), "{name}:\n{}", describe(&e));
        assert!(e.findings.iter().all(|f| f.kind == FindingKind::Unexpected && f.severity == Severity::Medium));
    }
}

#[test]
fn a_rule_disguised_with_a_controllers_description_or_peer_but_opening_more_is_drift() {
    // (cluster, group part, traffic, peer: CIDR, @group part or $peer-group part, severity)
    let cases = [
        ("lbc", "lbc-node-", "tcp 8080", "0.0.0.0/0", Severity::Critical),
        ("lbc", "lbc-node-", "tcp 8080", "10.0.0.0/8", Severity::High),
        ("lbc", "lbc-node-", "tcp 8080-8090", "10.0.12.0/24", Severity::Medium),
        ("lbc", "lbc-node-", "all", "$k8s-traffic-lbc-", Severity::Medium),
        ("lbc", "lbc-node-", "tcp 8080", "sg-0a1b2c3d4e5f60718", Severity::Medium),
        ("auto-mode", "eks-cluster-sg-", "all", "$k8s-shop-web-", Severity::Medium),
        ("auto-mode", "eks-cluster-sg-", "tcp 8080", "0.0.0.0/0", Severity::Critical),
    ];
    for (name, group, traffic, peer, severity) in cases {
        let mut snap = load(name);
        let holder = layouts::group_named(&snap, group).id.clone();
        let peer = match peer.strip_prefix('$') {
            Some(part) => snap.peer_groups.values().find(|g| g.name.starts_with(part)).expect("peer group").id.clone(),
            None => peer.to_string(),
        };
        let mut r = rule(Direction::Ingress, traffic, &peer);
        r.description = Some(LBC_DESCRIPTION.into());
        add_rule(&mut snap, &holder, r.clone());
        let e = eval("eks-minimal", &snap);
        let at = format!("{name}: {r}");
        assert_eq!(e.findings.len(), 1, "{at}:\n{}", describe(&e));
        let f = &e.findings[0];
        assert_eq!(
            (f.kind, f.severity, f.group_id.as_str()),
            (FindingKind::Unexpected, severity, holder.as_str()),
            "{at}"
        );
        assert_eq!((f.traffic, f.peer.as_peer()), (r.traffic, Some(&r.peer)), "{at}");
        assert!(e.owned.iter().all(|o| o.rule.key() != r.key()), "{at}: not owned");
    }
}

// --- the way out of a private cluster ---------------------------------------------------------

/// Sets the default route of every route table that has one to `target` (`None`: deleted).
fn default_route(doc: &mut Value, target: Option<(&str, &str)>) {
    for table in doc["RouteTables"].as_array_mut().expect("RouteTables") {
        let routes = table["Routes"].as_array_mut().expect("Routes");
        routes.retain_mut(|r| {
            if r["DestinationCidrBlock"].as_str() != Some("0.0.0.0/0") {
                return true;
            }
            let Some((key, id)) = target else { return false };
            *r = serde_json::json!({ "DestinationCidrBlock": "0.0.0.0/0", key: id, "Origin": "CreateRoute", "State": "active" });
            true
        });
    }
}

#[test]
fn a_private_cluster_reaches_aws_apis_through_a_nat_not_without_endpoints_or_a_route_and_unknown_through_a_transit_gateway(
) {
    type Edit = fn(&mut Value);
    // (cluster, route tables, endpoints, aws-apis, findings: one per service without a way out,
    // ec2, ecr.api, ecr.dkr, s3 and sts)
    let cases: [(&str, Edit, Option<Edit>, FlowStatus, usize); 5] = [
        ("tf-v21", |_| {}, None, FlowStatus::Open, 0),
        (
            "tf-v21",
            |d| default_route(d, Some(("TransitGatewayId", "tgw-0c1d2e3f4a5b6c7d8"))),
            None,
            FlowStatus::Unknown,
            0,
        ),
        ("tf-v21", |d| default_route(d, None), None, FlowStatus::Closed, 5),
        // eksctl's fully private cluster: no route out, its endpoints carry it …
        ("eksctl-private", |_| {}, None, FlowStatus::Open, 0),
        // … until they are gone.
        ("eksctl-private", |_| {}, Some(|d| d["VpcEndpoints"] = Value::Array(Vec::new())), FlowStatus::Closed, 5),
    ];
    for (name, routes, endpoints, want, findings) in cases {
        let tmp = scratch(name);
        edit_json(tmp.path(), name, "describe-route-tables.json", routes);
        if let Some(edit) = endpoints {
            edit_json(tmp.path(), name, "describe-vpc-endpoints.json", edit);
        }
        let snap = load_from(tmp.path(), name);
        for profile in PROFILES {
            let snap = if profile == "eks-strict" { layouts::hardened(snap.clone(), &WEBHOOKS) } else { snap.clone() };
            let e = eval(profile, &snap);
            let at = format!("{name} under {profile}, aws-apis {}", want.as_str());
            let aws_apis: Vec<FlowStatus> =
                e.flows.iter().filter(|f| f.name == FlowName::AwsApis).map(|f| f.status).collect();
            assert_eq!(aws_apis, vec![want], "{at}:\n{}", describe(&e));
            assert_eq!(e.findings.len(), findings, "{at}:\n{}", describe(&e));
            assert!(
                e.findings.iter().all(|f| f.flow == Some(FlowName::AwsApis) && f.severity == Severity::Critical),
                "{at}"
            );
        }
    }
}
