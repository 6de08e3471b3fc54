//! Realistic snapshots of clean EKS clusters, one per style × endpoint mode, laid out exactly as
//! each tool does by default (reference §1–§5, §8 of eks-sg-baseline.md), plus small helpers to
//! inject drift into them.
//!
//! ```ignore
//! let mut snap = layouts::cluster(Style::Eksctl, EndpointMode::Private);
//! let node = layouts::group(&snap, Role::Node).id.clone();
//! layouts::add_rule(&mut snap, &node, layouts::rule(Direction::Ingress, "tcp 22", "0.0.0.0/0"));
//! ```
//!
//! Every built-in profile must find nothing on any of these, and every required flow must be open.

use std::collections::BTreeMap;

use sgdrift::model::{
    canonicalize, ClusterId, ClusterSnapshot, Direction, EndpointMode, IpFamily, NodeGroup, NodeGroupKind, Peer,
    PortRange, Role, RouteOut, Rule, SecurityGroup, Style, Traffic, VpcEndpoint, VpcEndpointKind,
};

pub const ACCOUNT: &str = "111122223333";
pub const REGION: &str = "eu-west-1";
/// The AWS-managed S3 prefix list of eu-west-1 (gateway endpoints).
pub const S3_PREFIX_LIST: &str = "pl-6da54004";

/// Styles that have a layout of their own (every style, `Unknown` included).
pub const STYLES: [Style; 5] = [Style::Console, Style::Eksctl, Style::Terraform, Style::AutoMode, Style::Unknown];

/// The clean layout of `style` in `mode`. The cluster is named `<style>-<mode>`.
pub fn cluster(style: Style, mode: EndpointMode) -> ClusterSnapshot {
    match style {
        Style::Console => console(mode),
        Style::Eksctl => eksctl(mode),
        Style::Terraform => terraform(mode),
        Style::Unknown => unknown(mode),
        Style::AutoMode => auto_mode(mode),
    }
}

/// The nine layouts of the three tools (console, eksctl, terraform × public, public-private, private).
pub fn all() -> Vec<ClusterSnapshot> {
    [Style::Console, Style::Eksctl, Style::Terraform]
        .into_iter()
        .flat_map(|s| EndpointMode::ALL.into_iter().map(move |m| cluster(s, m)))
        .collect()
}

/// The first group of `role` (by id). Panics, naming the cluster, when there is none.
pub fn group(snap: &ClusterSnapshot, role: Role) -> &SecurityGroup {
    snap.groups_with_role(role).next().unwrap_or_else(|| panic!("layout {} has no {role} group", snap.id.name))
}

/// The group whose name contains `part`. Panics when there is none.
pub fn group_named<'a>(snap: &'a ClusterSnapshot, part: &str) -> &'a SecurityGroup {
    snap.groups
        .values()
        .find(|g| g.name.contains(part))
        .unwrap_or_else(|| panic!("layout {} has no group named like `{part}`", snap.id.name))
}

/// A rule from the words of the rule grammar: `rule(Direction::Ingress, "tcp 22", "0.0.0.0/0")`,
/// `rule(Direction::Egress, "all", "sg-0…")`, `rule(Direction::Ingress, "udp 53", "pl-…")`.
pub fn rule(direction: Direction, traffic: &str, peer: &str) -> Rule {
    let (proto, ports) = match traffic.split_once(' ') {
        Some((p, rest)) => (p, Some(rest)),
        None => (traffic, None),
    };
    let traffic = Traffic::parse(proto, ports).unwrap_or_else(|e| panic!("bad traffic `{traffic}`: {e}"));
    let peer = Peer::parse(peer).unwrap_or_else(|e| panic!("bad peer `{peer}`: {e}"));
    Rule::new(direction, traffic, peer)
}

/// Does `group` hold `rule` (descriptions aside)?
pub fn has(group: &SecurityGroup, rule: &Rule) -> bool {
    group.rules.iter().any(|r| r.key() == rule.key())
}

/// Adds `rule` to group `group_id`, keeping the rules canonical.
pub fn add_rule(snap: &mut ClusterSnapshot, group_id: &str, rule: Rule) {
    let g = snap.groups.get_mut(group_id).unwrap_or_else(|| panic!("no group {group_id}"));
    let mut rules = std::mem::take(&mut g.rules);
    rules.push(rule);
    g.rules = canonicalize(rules);
}

/// Removes the rules of group `group_id` that `pred` selects; returns how many went.
pub fn remove_rules(snap: &mut ClusterSnapshot, group_id: &str, pred: impl Fn(&Rule) -> bool) -> usize {
    let g = snap.groups.get_mut(group_id).unwrap_or_else(|| panic!("no group {group_id}"));
    let before = g.rules.len();
    g.rules.retain(|r| !pred(r));
    before - g.rules.len()
}

/// Removes the rule equal to `target` (descriptions aside). Panics when the group lacks it, so a
/// test cannot "inject" drift that was never there.
pub fn remove_rule(snap: &mut ClusterSnapshot, group_id: &str, target: &Rule) {
    let n = remove_rules(snap, group_id, |r| r.key() == target.key());
    assert_eq!(n, 1, "group {group_id} of {} has no rule `{target}`", snap.id.name);
}

// --- builders ---------------------------------------------------------------------------------

/// A deterministic EC2-style id: `prefix-0` and 16 hex digits (17 in all).
fn ec2_id(prefix: &str, seed: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in prefix.bytes().chain(seed.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{prefix}-0{h:016x}")
}

fn all_ports(from: u16, to: u16) -> Traffic {
    Traffic::Tcp(PortRange::new(from, to).expect("from <= to"))
}

fn tcp(port: u16) -> Traffic {
    Traffic::Tcp(PortRange::single(port))
}

fn udp(port: u16) -> Traffic {
    Traffic::Udp(PortRange::single(port))
}

fn internet() -> Peer {
    Peer::parse("0.0.0.0/0").expect("valid CIDR")
}

fn sg(id: &str) -> Peer {
    Peer::group(id)
}

fn rule_with(direction: Direction, traffic: Traffic, peer: Peer, description: &str) -> Rule {
    let description = (!description.is_empty()).then(|| description.to_string());
    Rule { direction, traffic, peer, description }
}

fn ingress(traffic: Traffic, peer: Peer, description: &str) -> Rule {
    rule_with(Direction::Ingress, traffic, peer, description)
}

fn egress(traffic: Traffic, peer: Peer, description: &str) -> Rule {
    rule_with(Direction::Egress, traffic, peer, description)
}

struct Layout {
    snap: ClusterSnapshot,
}

impl Layout {
    fn new(style: Style, mode: EndpointMode, vpc_cidr: &str) -> Self {
        let name = format!("{}-{}", style.as_str(), mode.as_str());
        let snap = ClusterSnapshot {
            id: ClusterId { account_id: ACCOUNT.into(), region: REGION.into(), name: name.clone() },
            endpoint_mode: mode,
            // EKS reports 0.0.0.0/0 even when the public endpoint is off.
            public_access_cidrs: vec!["0.0.0.0/0".into()],
            style,
            ip_family: IpFamily::Ipv4,
            remote_network: None,
            vpc_id: ec2_id("vpc", &name),
            vpc_cidrs: vec![vpc_cidr.parse().expect("valid CIDR")],
            cluster_security_group_id: None,
            control_plane_security_group_ids: Vec::new(),
            groups: BTreeMap::new(),
            node_groups: Vec::new(),
            vpc_endpoints: Vec::new(),
            pod_security_group_sets: Vec::new(),
            data_plane: Default::default(),
            peer_groups: BTreeMap::new(),
            prefix_lists: [
                (S3_PREFIX_LIST.to_string(), format!("com.amazonaws.{REGION}.s3")),
                ("pl-6fa54006".to_string(), format!("com.amazonaws.{REGION}.dynamodb")),
            ]
            .into_iter()
            .collect(),
            warnings: Vec::new(),
        };
        Layout { snap }
    }

    fn name(&self) -> String {
        self.snap.id.name.clone()
    }

    fn vpc_cidr(&self) -> Peer {
        match self.snap.vpc_cidrs[0] {
            ipnet::IpNet::V4(n) => Peer::Ipv4(n),
            ipnet::IpNet::V6(n) => Peer::Ipv6(n),
        }
    }

    /// Adds a group and returns its id; `rules` receives the id (for self references).
    fn group(
        &mut self,
        role: Role,
        name: &str,
        description: &str,
        tags: &[(&str, &str)],
        rules: impl FnOnce(&str) -> Vec<Rule>,
    ) -> String {
        let id = ec2_id("sg", &format!("{}/{name}", self.snap.id.name));
        let g = SecurityGroup {
            id: id.clone(),
            name: name.to_string(),
            description: description.to_string(),
            owner_id: Some(ACCOUNT.into()),
            vpc_id: Some(self.snap.vpc_id.clone()),
            tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            roles: [role].into(),
            rules: canonicalize(rules(&id)),
        };
        self.snap.groups.insert(id.clone(), g);
        id
    }

    fn add(&mut self, group_id: &str, extra: Vec<Rule>) {
        let g = self.snap.groups.get_mut(group_id).expect("group exists");
        let mut rules = std::mem::take(&mut g.rules);
        rules.extend(extra);
        g.rules = canonicalize(rules);
    }

    /// The EKS-created cluster SG with today's defaults: IN all self, OUT all 0.0.0.0/0, and
    /// OUT all self (reference §1.4, §1.5 D-live; §2.1 name, description and tags).
    fn cluster_sg(&mut self, extra_tags: &[(&str, &str)]) -> String {
        let c = self.name();
        let name = format!("eks-cluster-sg-{c}-1386219012");
        let owner_key = format!("kubernetes.io/cluster/{c}");
        let mut tags =
            vec![("Name", name.as_str()), ("aws:eks:cluster-name", c.as_str()), (owner_key.as_str(), "owned")];
        tags.extend_from_slice(extra_tags);
        let id = self.group(
            Role::Cluster,
            &name,
            "EKS created security group applied to ENI that is attached to EKS Control Plane master nodes, as well as any managed workloads.",
            &tags,
            |me| {
                vec![
                    ingress(Traffic::All, sg(me), ""),
                    egress(Traffic::All, internet(), ""),
                    egress(Traffic::All, sg(me), ""),
                ]
            },
        );
        self.snap.cluster_security_group_id = Some(id.clone());
        id
    }

    /// A hand-made endpoint SG admitting HTTPS from the VPC CIDR, with the default egress, on the
    /// endpoints of ec2, ecr.api, ecr.dkr and sts (reference §5, §8.4).
    fn hand_made_endpoints(&mut self, cluster: &str, tags: &[(&str, &str)]) {
        let vpc = self.vpc_cidr();
        let vpce = self.group(
            Role::Endpoint,
            &format!("{cluster}-vpc-endpoints"),
            "HTTPS from the VPC to the interface endpoints",
            tags,
            |_| vec![ingress(tcp(443), vpc, "HTTPS from VPC"), egress(Traffic::All, internet(), "")],
        );
        self.endpoints(&["ec2", "ecr.api", "ecr.dkr", "sts"], &vpce);
    }

    fn node_group(&mut self, name: &str, kind: NodeGroupKind, groups: &[&str]) {
        self.snap.node_groups.push(NodeGroup {
            name: name.to_string(),
            kind,
            security_group_ids: groups.iter().map(|g| g.to_string()).collect(),
            route_out_v4: RouteOut::NoData,
            route_out_v6: RouteOut::NoData,
        });
    }

    /// Private mode: interface endpoints for `services` behind `endpoint_sg`, plus the S3 gateway
    /// (reference §5, §8.4). The group gains the endpoint role, whatever else it is.
    fn endpoints(&mut self, services: &[&str], endpoint_sg: &str) {
        if let Some(g) = self.snap.groups.get_mut(endpoint_sg) {
            g.roles.insert(Role::Endpoint);
        }
        for service in services {
            self.snap.vpc_endpoints.push(VpcEndpoint {
                id: ec2_id("vpce", &format!("{}/{service}", self.snap.id.name)),
                service_name: format!("com.amazonaws.{REGION}.{service}"),
                kind: VpcEndpointKind::Interface,
                security_group_ids: vec![endpoint_sg.to_string()],
                private_dns_enabled: true,
            });
        }
        self.snap.vpc_endpoints.push(VpcEndpoint {
            id: ec2_id("vpce", &format!("{}/s3", self.snap.id.name)),
            service_name: format!("com.amazonaws.{REGION}.s3"),
            kind: VpcEndpointKind::Gateway,
            security_group_ids: Vec::new(),
            private_dns_enabled: false,
        });
    }
}

/// Console / EKS API (reference §2): the cluster SG (§1.4–§1.5), the AWS getting-started VPC
/// template's `ControlPlaneSecurityGroup` as the additional group with no rules of its own but
/// the EC2 default egress (§2.2, CFN-vpc, CFN-sg), and one managed node group without a launch
/// template, so its nodes carry the cluster SG only (§1.4 "attached by EKS to", §1.6). No remote
/// access: the console's default. Private mode adds a hand-made endpoint SG that admits HTTPS
/// from the VPC CIDR (§5 D-priv, §8.4) with the console's default egress.
fn console(mode: EndpointMode) -> ClusterSnapshot {
    let mut l = Layout::new(Style::Console, mode, "192.168.0.0/16");
    let c = l.name();
    let cluster = l.cluster_sg(&[]);
    let stack = format!("{c}-vpc");
    let cp = l.group(
        Role::ControlPlane,
        &format!("{stack}-ControlPlaneSecurityGroup-1OEQ7K2J8Z8LS"),
        "Cluster communication with worker nodes",
        &[
            ("aws:cloudformation:stack-name", stack.as_str()),
            ("aws:cloudformation:logical-id", "ControlPlaneSecurityGroup"),
        ],
        |_| vec![egress(Traffic::All, internet(), "")],
    );
    l.snap.control_plane_security_group_ids = vec![cp];
    l.node_group("ng-1", NodeGroupKind::Managed, &[&cluster]);
    if mode == EndpointMode::Private {
        let vpc = l.vpc_cidr();
        let vpce = l.group(
            Role::Endpoint,
            &format!("{c}-vpc-endpoints"),
            "HTTPS from the VPC to the interface endpoints",
            &[("Name", &format!("{c}-vpc-endpoints"))],
            |_| vec![ingress(tcp(443), vpc, "HTTPS from VPC"), egress(Traffic::All, internet(), "")],
        );
        l.endpoints(&["ec2", "ecr.api", "ecr.dkr", "sts", "logs"], &vpce);
    }
    l.snap
}

/// eksctl (reference §4.1, EKSCTL): cluster SG (§1.4–§1.5) plus `IngressNodeToDefaultClusterSG`
/// (IN all from the shared node SG, §7.4); `ControlPlaneSecurityGroup` with the EC2 default
/// egress and, for the unmanaged node group, `EgressInterCluster` (OUT tcp 1025-65535),
/// `EgressInterClusterAPI` (OUT tcp 443) and `IngressInterClusterCP` (IN tcp 443);
/// `ClusterSharedNodeSecurityGroup` with `IngressInterNodeGroupSG` (IN all self) and
/// `IngressDefaultClusterToNodeSG` (IN all from the cluster SG); the unmanaged group's own `SG`
/// with `IngressInterCluster` (IN tcp 1025-65535) and `IngressInterClusterAPI` (IN tcp 443)
/// from the control-plane SG. Node groups: managed `ng-managed` (eksctl's launch template lists
/// only the cluster SG) and unmanaged `ng-unmanaged` (shared SG + its own SG). Private mode
/// (`privateCluster.enabled`) puts the shared node SG on every interface endpoint (ec2, ecr.api,
/// ecr.dkr, sts; logs only with CloudWatch logging, off by default) and an S3 gateway (§5).
fn eksctl(mode: EndpointMode) -> ClusterSnapshot {
    let mut l = Layout::new(Style::Eksctl, mode, "192.168.0.0/16");
    let c = l.name();
    let cstack = format!("eksctl-{c}-cluster");
    let stack_tags = |stack: &str, logical: &str| -> Vec<(String, String)> {
        vec![
            ("Name".into(), format!("{stack}/{logical}")),
            ("alpha.eksctl.io/cluster-name".into(), c.clone()),
            ("eksctl.cluster.k8s.io/v1alpha1/cluster-name".into(), c.clone()),
            ("alpha.eksctl.io/eksctl-version".into(), "0.175.0".into()),
            ("aws:cloudformation:stack-name".into(), stack.to_string()),
            ("aws:cloudformation:logical-id".into(), logical.to_string()),
        ]
    };
    let cluster = l.cluster_sg(&[]);

    let cp_tags = stack_tags(&cstack, "ControlPlaneSecurityGroup");
    let cp = l.group(
        Role::ControlPlane,
        &format!("{cstack}-ControlPlaneSecurityGroup-1J7QYB3M0ZP2X"),
        "Communication between the control plane and worker nodegroups",
        &pairs(&cp_tags),
        |_| vec![egress(Traffic::All, internet(), "")],
    );
    let shared_tags = stack_tags(&cstack, "ClusterSharedNodeSecurityGroup");
    let shared = l.group(
        Role::Node,
        &format!("{cstack}-ClusterSharedNodeSecurityGroup-1SHD9X1K2LQ7Q"),
        "Communication between all nodes in the cluster",
        &pairs(&shared_tags),
        |me| {
            vec![
                ingress(Traffic::All, sg(me), "Allow nodes to communicate with each other (all ports)"),
                ingress(
                    Traffic::All,
                    sg(&cluster),
                    "Allow managed and unmanaged nodes to communicate with each other (all ports)",
                ),
                egress(Traffic::All, internet(), ""),
            ]
        },
    );
    l.add(
        &cluster,
        vec![ingress(Traffic::All, sg(&shared), "Allow unmanaged nodes to communicate with control plane (all ports)")],
    );

    let ng = "ng-unmanaged";
    let nstack = format!("eksctl-{c}-nodegroup-{ng}");
    let mut ng_tags = stack_tags(&nstack, "SG");
    ng_tags.push((format!("kubernetes.io/cluster/{c}"), "owned".into()));
    ng_tags.push(("alpha.eksctl.io/nodegroup-name".into(), ng.into()));
    ng_tags.push(("alpha.eksctl.io/nodegroup-type".into(), "unmanaged".into()));
    let ng_sg = l.group(
        Role::Node,
        &format!("{nstack}-SG-1F0XK8O3C4Q8B"),
        &format!("Communication between the control plane and worker nodes in group {ng}"),
        &pairs(&ng_tags),
        |_| {
            vec![
                ingress(
                    all_ports(1025, 65535),
                    sg(&cp),
                    &format!("[IngressInterCluster] Allow worker nodes in group {ng} to communicate with control plane (kubelet and workload TCP ports)"),
                ),
                ingress(
                    tcp(443),
                    sg(&cp),
                    &format!("[IngressInterClusterAPI] Allow worker nodes in group {ng} to communicate with control plane (workloads using HTTPS port, commonly used with extension API servers)"),
                ),
                egress(Traffic::All, internet(), ""),
            ]
        },
    );
    l.add(
        &cp,
        vec![
            egress(
                all_ports(1025, 65535),
                sg(&ng_sg),
                &format!("Allow control plane to communicate with worker nodes in group {ng} (kubelet and workload TCP ports)"),
            ),
            egress(
                tcp(443),
                sg(&ng_sg),
                &format!("Allow control plane to communicate with worker nodes in group {ng} (workloads using HTTPS port, commonly used with extension API servers)"),
            ),
            ingress(tcp(443), sg(&ng_sg), &format!("Allow control plane to receive API requests from worker nodes in group {ng}")),
        ],
    );
    l.snap.control_plane_security_group_ids = vec![cp];
    l.node_group("ng-managed", NodeGroupKind::Managed, &[&cluster]);
    l.node_group(ng, NodeGroupKind::SelfManaged, &[&shared, &ng_sg]);
    if mode == EndpointMode::Private {
        l.endpoints(&["ec2", "ecr.api", "ecr.dkr", "sts"], &shared);
    }
    l.snap
}

/// terraform-aws-eks v21 defaults (reference §3.1, TF): cluster SG (§1.4–§1.5) carrying the
/// module's tags; the module's "cluster security group" `<c>-cluster-…` with only
/// `ingress_nodes_443` and no egress (§7.3); the shared node SG `<c>-node-…` with
/// `ingress_cluster_443`, `ingress_cluster_kubelet`, `ingress_self_coredns_tcp/udp` and the
/// recommended rules (`ingress_nodes_ephemeral`, webhooks 4443, 6443, 8443, 9443, 10251,
/// `egress_all`). One managed node group through the module's launch template, which lists the
/// node SG only (`attach_cluster_primary_security_group = false`), so the nodes are not in the
/// cluster SG (§1.6). Private mode (the module's default since v19) adds a
/// terraform-aws-modules/vpc endpoints SG admitting HTTPS from the VPC CIDR, no egress (§5, §8.4).
fn terraform(mode: EndpointMode) -> ClusterSnapshot {
    let mut l = Layout::new(Style::Terraform, mode, "10.0.0.0/16");
    let c = l.name();
    let tf_tags = [("Environment", "test"), ("Terraform", "true")];
    // Not on the nodes: the module's launch template lists the node SG only.
    l.cluster_sg(&tf_tags);
    let cp_name_tag = format!("{c}-cluster");
    let node_name_tag = format!("{c}-node");
    let owner_key = format!("kubernetes.io/cluster/{c}");
    let cp = l.group(
        Role::ControlPlane,
        &format!("{c}-cluster-20240611091517380300000002"),
        "EKS cluster security group",
        &[tf_tags[0], tf_tags[1], ("Name", &cp_name_tag)],
        |_| Vec::new(),
    );
    let cp_for_node = cp.clone();
    let node = l.group(
        Role::Node,
        &format!("{c}-node-20240611091517380300000003"),
        "EKS node shared security group",
        &[tf_tags[0], tf_tags[1], ("Name", &node_name_tag), (&owner_key, "owned")],
        |me| {
            let cp = sg(&cp_for_node);
            let mut rules = vec![
                ingress(tcp(443), cp.clone(), "Cluster API to node groups"),
                ingress(tcp(10250), cp.clone(), "Cluster API to node kubelets"),
                ingress(tcp(53), sg(me), "Node to node CoreDNS"),
                ingress(udp(53), sg(me), "Node to node CoreDNS UDP"),
                ingress(all_ports(1025, 65535), sg(me), "Node to node ingress on ephemeral ports"),
                egress(Traffic::All, internet(), "Allow all egress"),
            ];
            for port in [4443, 6443, 8443, 9443, 10251] {
                rules.push(ingress(tcp(port), cp.clone(), &format!("Cluster API to node {port}/tcp webhook")));
            }
            rules
        },
    );
    l.add(&cp, vec![ingress(tcp(443), sg(&node), "Node groups to cluster API")]);
    l.snap.control_plane_security_group_ids = vec![cp];
    l.node_group("default-20240611091529154200000009", NodeGroupKind::Managed, &[&node]);
    if mode == EndpointMode::Private {
        let vpc = l.vpc_cidr();
        let vpce = l.group(
            Role::Endpoint,
            "vpc-endpoints-20240611090844216100000001",
            "VPC endpoint security group",
            &[tf_tags[0], tf_tags[1], ("Name", &format!("{c}-vpc-endpoints"))],
            |_| vec![ingress(tcp(443), vpc, "HTTPS from VPC")],
        );
        l.endpoints(&["ec2", "ecr.api", "ecr.dkr", "sts", "logs"], &vpce);
    }
    l.snap
}

/// No known tool: the cluster SG (§1.4–§1.5) and a managed node group whose custom launch
/// template lists the cluster SG and a hand-made, rule-less extra group (§1.6: EKS adds nothing
/// when the template lists groups, so the template names the cluster SG itself). Private mode
/// as the console's.
fn unknown(mode: EndpointMode) -> ClusterSnapshot {
    let mut l = Layout::new(Style::Unknown, mode, "172.31.0.0/16");
    let c = l.name();
    let cluster = l.cluster_sg(&[]);
    let workers =
        l.group(Role::Node, &format!("{c}-workers"), "Extra group for the workers", &[("team", "platform")], |_| {
            vec![egress(Traffic::All, internet(), "")]
        });
    l.node_group("workers", NodeGroupKind::Managed, &[&cluster, &workers]);
    if mode == EndpointMode::Private {
        l.hand_made_endpoints(&c, &[]);
    }
    l.snap
}

/// EKS Auto Mode (`computeConfig.enabled`; EKS user guide, "Automate cluster infrastructure with
/// EKS Auto Mode"): the cluster SG only, on the control plane and, through the default NodeClass,
/// on the nodes EKS launches for the `general-purpose` NodePool. No additional SG. Private mode
/// as the console's.
fn auto_mode(mode: EndpointMode) -> ClusterSnapshot {
    let mut l = Layout::new(Style::AutoMode, mode, "10.20.0.0/16");
    let c = l.name();
    let cluster = l.cluster_sg(&[]);
    l.node_group("general-purpose", NodeGroupKind::Karpenter, &[&cluster]);
    if mode == EndpointMode::Private {
        l.hand_made_endpoints(&c, &[]);
    }
    l.snap
}

/// eksctl's default (`eksctl create cluster`): managed node groups only. The cluster stack's
/// `ClusterSharedNodeSecurityGroup` and its rules with the cluster SG exist all the same (eksctl
/// pkg/cfn/builder/cluster.go), on no node; the managed nodes carry the cluster SG only.
pub fn eksctl_managed_only(mode: EndpointMode) -> ClusterSnapshot {
    let mut snap = eksctl(mode);
    let unmanaged: Vec<String> = snap
        .groups
        .values()
        .filter(|g| g.tag("alpha.eksctl.io/nodegroup-type") == Some("unmanaged"))
        .map(|g| g.id.clone())
        .collect();
    snap.node_groups.retain(|ng| ng.kind == NodeGroupKind::Managed);
    for id in &unmanaged {
        snap.groups.remove(id);
        // The control-plane rules eksctl adds per unmanaged node group go with it.
        for g in snap.groups.values_mut() {
            g.rules.retain(|r| r.peer != sg(id));
        }
    }
    snap.id.name = format!("eksctl-managed-{}", mode.as_str());
    snap
}

/// Security groups for pods (EKS user guide, "Security groups for Pods"): the console layout plus
/// a pod SG on branch ENIs together with the cluster SG; the cluster SG admits DNS (tcp+udp 53)
/// from the pod SG and the pod SG admits the nodes' kubelet probes.
pub fn with_pod_security_group(mut snap: ClusterSnapshot, probe_port: u16) -> ClusterSnapshot {
    let cluster = snap.cluster_security_group_id.clone().expect("a cluster SG");
    let id = ec2_id("sg", &format!("{}/pods", snap.id.name));
    let pod = SecurityGroup {
        id: id.clone(),
        name: format!("{}-pods", snap.id.name),
        description: "Pods with their own security group".into(),
        owner_id: Some(ACCOUNT.into()),
        vpc_id: Some(snap.vpc_id.clone()),
        tags: BTreeMap::new(),
        roles: [Role::Pod].into(),
        rules: canonicalize(vec![
            ingress(tcp(probe_port), sg(&cluster), "kubelet probes"),
            egress(Traffic::All, internet(), ""),
        ]),
    };
    snap.groups.insert(id.clone(), pod);
    add_rule(&mut snap, &cluster, ingress(tcp(53), sg(&id), "CoreDNS from pods"));
    add_rule(&mut snap, &cluster, ingress(udp(53), sg(&id), "CoreDNS from pods"));
    let mut set = vec![id, cluster];
    set.sort();
    snap.pod_security_group_sets = vec![set];
    snap
}

/// Every node group of `snap` leaves through `v4` (and `v6`), as route tables would say.
pub fn with_routes(mut snap: ClusterSnapshot, v4: RouteOut, v6: RouteOut) -> ClusterSnapshot {
    for ng in &mut snap.node_groups {
        ng.route_out_v4 = v4;
        ng.route_out_v6 = v6;
    }
    snap
}

fn pairs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(k, val)| (k.as_str(), val.as_str())).collect()
}

/// `snap` hardened as eks-strict asks (its `//!` docs; AWS's "restricting cluster traffic",
/// terraform-aws-eks v18's named egress): every allow-all egress to the internet, and the
/// control-plane SG's tcp 1025-65535 to nodes, replaced by what each group's traffic needs.
/// Groups on nodes (and pod SGs) send HTTPS to the internet (AWS APIs through a NAT or internet
/// gateway, in every endpoint mode), in private mode also to the control plane, the endpoint
/// SGs and the S3 prefix list, DNS and tcp 1025-65535 to every node set and all traffic to the
/// pod SGs (kubelet probes); the control-plane
/// groups send 10250, 443 and `webhooks` to every node set.
pub fn hardened(mut snap: ClusterSnapshot, webhooks: &[u16]) -> ClusterSnapshot {
    let internet = |r: &Rule| r.direction == Direction::Egress && r.traffic == Traffic::All && r.peer.is_internet();
    // eksctl's and the AWS node template's tcp 1025-65535, however it is split.
    let wide = |t: &Traffic| matches!(t, Traffic::Tcp(r) if r.from() >= 1025 && r.from() < r.to());
    let ids: Vec<String> = snap.groups.keys().cloned().collect();
    let nodes: Vec<String> = snap.node_sets().into_iter().flat_map(|(_, s)| s).collect();
    let cp = snap.control_plane_set();
    let endpoints: Vec<String> = snap.vpc_endpoints.iter().flat_map(|e| e.security_group_ids.clone()).collect();
    let https_out: &[&str] = match snap.ip_family {
        IpFamily::Ipv4 => &["0.0.0.0/0"],
        IpFamily::Ipv6 => &["0.0.0.0/0", "::/0"],
    };
    for id in &ids {
        let range = if snap.groups[id].has_role(Role::ControlPlane) {
            remove_rules(&mut snap, id, |r| r.direction == Direction::Egress && wide(&r.traffic))
        } else {
            0
        };
        if remove_rules(&mut snap, id, internet) + range == 0 {
            continue;
        }
        let g = &snap.groups[id];
        let on_nodes = nodes.contains(id) || [Role::Node, Role::RemoteAccess, Role::Pod].iter().any(|r| g.has_role(*r));
        let mut out: Vec<(String, String)> = Vec::new();
        if on_nodes {
            out.extend(https_out.iter().map(|c| ("tcp 443".to_string(), c.to_string())));
            if snap.endpoint_mode == EndpointMode::Private {
                let private = cp.iter().chain(&endpoints).cloned().chain([S3_PREFIX_LIST.to_string()]);
                out.extend(private.map(|p| ("tcp 443".to_string(), p)));
            }
            for n in &nodes {
                out.extend(["tcp 53", "udp 53", "tcp 1025-65535"].map(|t| (t.to_string(), n.clone())));
            }
            // Kubelet probes to pods with their own SGs (strict enforcing mode filters them).
            out.extend(snap.pod_security_group_sets.iter().flatten().map(|p| ("all".to_string(), p.clone())));
        }
        if cp.contains(id) {
            for n in &nodes {
                let ports = [10250, 443].iter().chain(webhooks);
                out.extend(ports.map(|p| (format!("tcp {p}"), n.clone())));
            }
        }
        for (traffic, peer) in out {
            add_rule(&mut snap, id, rule(Direction::Egress, &traffic, &peer));
        }
    }
    snap
}
