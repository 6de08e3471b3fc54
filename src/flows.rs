//! The traffic EKS needs, checked over the SG *sets* on each endpoint: a flow is open only if
//! the source set allows the egress and the destination set allows the ingress.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::model::{
    peer_covers, traffic_union_covers, ClusterSnapshot, Direction, EfaSet, EndpointService, IdKey, IpFamily,
    NodeGroupKind, Peer, PodSgEnforcingMode, PortRange, Role, RouteOut, Rule, SecurityGroup, Traffic, VpcEndpoint,
    VpcEndpointKind,
};

/// Kept here too: the flow names belong to the model (findings carry them) since they moved.
pub use crate::model::FlowName;

/// The flows checked once per node group; the pod flows are checked once per pod SG set.
const PER_NODE_GROUP: [FlowName; 5] =
    [FlowName::Kubelet, FlowName::Api, FlowName::Dns, FlowName::Webhooks, FlowName::AwsApis];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowStatus {
    Open,
    Closed,
    /// sgdrift cannot see whether it works (a default route through a transit gateway, the VPC
    /// CNI's pod-SG enforcing mode): never reported as closed, never counted as open.
    Unknown,
}

impl FlowStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FlowStatus::Open => "open",
            FlowStatus::Closed => "closed",
            FlowStatus::Unknown => "unknown",
        }
    }
}

/// The rule that would open a closed flow, on the group that lacks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingSide {
    pub group_id: String,
    pub role: Role,
    pub rule: Rule,
    /// Which side lacks what ("sg-0abc (node) of node group ng-1 has no ingress tcp 10250 from
    /// the control plane"), for the finding's reason.
    pub reason: String,
    /// Set when the far end is not something a rule can name yet (a VPC endpoint that does not
    /// exist): findings name it as their peer instead of `rule.peer`.
    pub absent_endpoint: Option<EndpointService>,
}

/// The verdict on one flow for one node group (or, for the pod flows, one pod SG set).
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

/// Evaluates every required flow of `snapshot`: one result per flow per endpoint that needs
/// it, in the order of [`FlowName::ALL`], endpoints in the snapshot's order (node groups, then
/// hybrid nodes' remote networks); then, where pods have SGs of their own, `pod-dns` and
/// `pod-probes` once per pod SG set; then `efa` once per EFA SG set.
pub fn check(snapshot: &ClusterSnapshot, ctx: &FlowContext) -> Vec<FlowResult> {
    let control_plane = Side::control_plane(snapshot);
    let mut endpoints: Vec<Side> =
        snapshot.node_sets().into_iter().map(|(name, ids)| Side::node_group(snapshot, name, ids)).collect();
    endpoints.extend(Side::hybrid(snapshot));
    // CoreDNS and kubelets run on nodes (Fargate's included), not on custom-networking pods.
    let nodes: Vec<&Side> = endpoints.iter().filter(|e| e.kind.runs_nodes()).collect();
    let pods: Vec<Side> = snapshot.pod_security_group_sets.iter().map(|ids| Side::pods(snapshot, ids)).collect();
    let mut webhook_ports = ctx.webhook_ports.clone();
    webhook_ports.sort_unstable();
    webhook_ports.dedup();

    let mut out = Vec::with_capacity(FlowName::ALL.len() * endpoints.len());
    for name in PER_NODE_GROUP {
        for node in endpoints.iter().filter(|e| e.kind.needs(name)) {
            let mut flow = Flow::new(snapshot, name, node);
            match name {
                FlowName::Kubelet => kubelet(&mut flow, &control_plane, node),
                FlowName::Api => api(&mut flow, &control_plane, node),
                FlowName::Dns => dns(&mut flow, node, &nodes),
                FlowName::Webhooks => webhooks(&mut flow, &control_plane, node, &webhook_ports),
                FlowName::AwsApis => aws_apis(&mut flow, node),
                FlowName::PodDns | FlowName::PodProbes | FlowName::Efa => {}
            }
            out.push(flow.finish());
        }
    }
    // Branch-ENI pods live on EC2 nodes: their kubelets are the ones that probe them.
    let kubelets: Vec<&Side> =
        nodes.iter().filter(|n| n.kind != EndpointKind::Nodes(NodeGroupKind::Fargate)).copied().collect();
    for name in [FlowName::PodDns, FlowName::PodProbes] {
        for pod in &pods {
            let mut flow = Flow::new(snapshot, name, pod);
            match name {
                FlowName::PodDns => pod_dns(&mut flow, pod, &nodes),
                _ => pod_probes(&mut flow, pod, &kubelets),
            }
            out.push(flow.finish());
        }
    }
    for set in &snapshot.data_plane.efa {
        let side = Side::efa(snapshot, set);
        let mut flow = Flow::new(snapshot, FlowName::Efa, &side);
        efa(&mut flow, &side);
        out.push(flow.finish());
    }
    out
}

/// What an endpoint is, which decides the flows it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EndpointKind {
    ControlPlane,
    Nodes(NodeGroupKind),
    /// Pods with their own SGs (branch ENIs): `pod-dns`, `pod-probes`.
    Pods,
    VpcEndpoint,
    /// A remote node network of hybrid nodes: the API, and the control plane to its kubelets.
    HybridNodes,
    /// A remote pod network of hybrid nodes: the API, and the control plane to its webhooks.
    HybridPods,
    Efa,
}

impl EndpointKind {
    fn runs_nodes(self) -> bool {
        matches!(self, EndpointKind::Nodes(k) if k.runs_nodes())
    }

    /// Does this endpoint need `name`, among the flows checked per endpoint?
    fn needs(self, name: FlowName) -> bool {
        use FlowName::*;
        match self {
            EndpointKind::Nodes(NodeGroupKind::CustomNetworking) => matches!(name, Api | Dns | AwsApis),
            EndpointKind::Nodes(_) => PER_NODE_GROUP.contains(&name),
            EndpointKind::HybridNodes => matches!(name, Kubelet | Api),
            EndpointKind::HybridPods => matches!(name, Api | Webhooks),
            EndpointKind::ControlPlane | EndpointKind::Pods | EndpointKind::VpcEndpoint | EndpointKind::Efa => false,
        }
    }
}

const KUBELET_PORT: u16 = 10250;
const HTTPS_PORT: u16 = 443;
const DNS_PORT: u16 = 53;
/// The AWS APIs a node cannot join or pull images without (reference §5): each through its
/// interface endpoint where the VPC has one with private DNS (S3 also through a gateway
/// endpoint), else over the internet.
const AWS_SERVICES: [&str; 5] = ["ec2", "ecr.api", "ecr.dkr", "sts", "s3"];

fn tcp(port: u16) -> Traffic {
    Traffic::Tcp(PortRange::single(port))
}

fn udp(port: u16) -> Traffic {
    Traffic::Udp(PortRange::single(port))
}

fn kubelet(flow: &mut Flow, control_plane: &Side, node: &Side) {
    flow.both_ways(control_plane, node, tcp(KUBELET_PORT));
    flow.open_detail = format!("the control plane reaches {} on tcp {KUBELET_PORT}", node.label);
}

fn api(flow: &mut Flow, control_plane: &Side, node: &Side) {
    if flow.snapshot.endpoint_mode.api_in_vpc() {
        flow.both_ways(node, control_plane, tcp(HTTPS_PORT));
        flow.open_detail = format!("{} reaches the API through the control-plane ENIs on tcp {HTTPS_PORT}", node.label);
    } else {
        // The public endpoint is outside the VPC: only the node's egress is an SG matter
        // (publicAccessCidrs governs the other end).
        flow.egress(node, &Far::Internet, tcp(HTTPS_PORT));
        flow.open_detail = format!("{} reaches the public API endpoint on tcp {HTTPS_PORT}", node.label);
    }
}

fn dns(flow: &mut Flow, source: &Side, nodes: &[&Side]) {
    // CoreDNS may run on any node group, so every group must reach every group, itself included.
    for dest in nodes {
        for traffic in [tcp(DNS_PORT), udp(DNS_PORT)] {
            flow.both_ways(source, dest, traffic);
        }
    }
    flow.open_detail = if nodes.len() == 1 {
        format!("{} reaches itself on tcp and udp {DNS_PORT}", source.label)
    } else {
        format!("{} reaches every node group on tcp and udp {DNS_PORT}", source.label)
    };
}

fn webhooks(flow: &mut Flow, control_plane: &Side, node: &Side, ports: &[u16]) {
    if ports.is_empty() {
        flow.open_detail = "no webhook ports declared".to_string();
        return;
    }
    for &port in ports {
        flow.both_ways(control_plane, node, tcp(port));
    }
    let mut detail = format!("the control plane reaches {} on tcp ", node.label);
    for (i, port) in ports.iter().enumerate() {
        let _ = write!(detail, "{}{port}", if i == 0 { "" } else { ", " });
    }
    flow.open_detail = detail;
}

fn aws_apis(flow: &mut Flow, node: &Side) {
    let mut paths: Vec<(&str, Vec<&str>)> = Vec::new();
    for service in AWS_SERVICES {
        let path = match aws_service(flow, node, service) {
            Some(path) => path,
            None => continue,
        };
        match paths.iter_mut().find(|(p, _)| *p == path) {
            Some((_, services)) => services.push(service),
            None => paths.push((path, vec![service])),
        }
    }
    let mut detail = format!("{} reaches AWS APIs on tcp {HTTPS_PORT}: ", node.label);
    for (i, (path, services)) in paths.iter().enumerate() {
        let _ = write!(detail, "{}{} {path}", if i == 0 { "" } else { "; " }, services.join(", "));
    }
    flow.open_detail = detail;
}

/// Checks the path to one service; gives how it is reached when it is (for the detail), or
/// records the gap or the unknown on `flow` and gives `None`.
fn aws_service(flow: &mut Flow, node: &Side, service: &str) -> Option<&'static str> {
    let snapshot = flow.snapshot;
    let of_service = |kind| snapshot.vpc_endpoints.iter().filter(move |e| e.kind == kind && e.service() == service);
    // Without private DNS the service's name still resolves to its public address.
    let interface: Vec<&VpcEndpoint> =
        of_service(VpcEndpointKind::Interface).filter(|e| e.private_dns_enabled).collect();
    if !interface.is_empty() {
        let gaps = interface_endpoint_gaps(flow, node, service, &interface);
        let open = gaps.is_empty();
        flow.gaps.extend(gaps);
        return open.then_some("through their VPC endpoints");
    }
    if of_service(VpcEndpointKind::Gateway).next().is_some() {
        let before = flow.gaps.len();
        flow.egress(node, &s3_far(snapshot), tcp(HTTPS_PORT));
        return (flow.gaps.len() == before).then_some("through the gateway endpoint");
    }
    over_the_internet(flow, node, service)
}

/// The gaps of the first interface endpoint of `service`, or none when any one of them works.
fn interface_endpoint_gaps(flow: &Flow, node: &Side, service: &str, endpoints: &[&VpcEndpoint]) -> Vec<Gap> {
    let mut first_gaps = None;
    for endpoint in endpoints {
        let side = Side::endpoint(flow.snapshot, endpoint, service);
        let mut trial = Flow::new(flow.snapshot, flow.name, node);
        trial.both_ways(node, &side, tcp(HTTPS_PORT));
        if trial.gaps.is_empty() {
            return Vec::new();
        }
        first_gaps.get_or_insert(trial.gaps);
    }
    first_gaps.unwrap_or_default()
}

/// No endpoint: egress 443 to the internet in the node set's SGs *and* a route out. IPv6
/// clusters may use either family; the first open path wins, else the IPv6 form is reported.
fn over_the_internet(flow: &mut Flow, node: &Side, service: &str) -> Option<&'static str> {
    let families: &[IpFamily] = match flow.snapshot.ip_family {
        IpFamily::Ipv4 => &[IpFamily::Ipv4],
        IpFamily::Ipv6 => &[IpFamily::Ipv4, IpFamily::Ipv6],
    };
    let mut failed = Vec::new();
    for family in families {
        let mut trial = Flow::new(flow.snapshot, flow.name, node);
        let outcome = trial.internet_path(node, service, *family);
        if trial.gaps.is_empty() && trial.unknowns.is_empty() {
            return outcome;
        }
        failed.push(trial);
    }
    // A path that may work (unknown) beats a closed one; among closed ones, the last family.
    let pick = failed.iter().position(|t| t.gaps.is_empty()).unwrap_or(failed.len().saturating_sub(1));
    if pick < failed.len() {
        let trial = failed.swap_remove(pick);
        flow.gaps.extend(trial.gaps);
        flow.unknowns.extend(trial.unknowns);
    }
    None
}

fn pod_dns(flow: &mut Flow, pods: &Side, nodes: &[&Side]) {
    // CoreDNS may run on any node group; pods resolve through the SGs of their branch ENIs.
    for dest in nodes {
        for traffic in [tcp(DNS_PORT), udp(DNS_PORT)] {
            flow.both_ways(pods, dest, traffic);
        }
    }
    flow.open_detail = format!("{} reach CoreDNS on every node group on tcp and udp {DNS_PORT}", pods.label);
}

fn pod_probes(flow: &mut Flow, pods: &Side, nodes: &[&Side]) {
    let mode = flow.snapshot.data_plane.pod_sg_enforcing_mode;
    if mode == PodSgEnforcingMode::Standard {
        // Standard mode lets traffic from the pod's own node past its SGs (VPC CNI README,
        // POD_SECURITY_GROUP_ENFORCING_MODE).
        flow.open_detail = format!(
            "the VPC CNI's pod-SG enforcing mode is standard: kubelet probes to {} are not filtered by their SGs",
            pods.label
        );
        return;
    }
    // Probe ports are the pods' own: any tcp the pod set admits from the node set will do,
    // provided the node set may send it.
    for node in nodes {
        let admitted = flow.tcp_admitted(pods, node);
        let mut trial = Flow::new(flow.snapshot, flow.name, pods);
        match admitted {
            Some(traffic) => trial.egress(node, &Far::Sgs(pods), traffic),
            None => trial.check(pods, Direction::Ingress, &Far::Sgs(node), Traffic::All),
        }
        // Strict (the default) filters probes by the pod SG: a gap closes the flow. When the
        // mode is unknown (a self-managed CNI), it is only a gap under strict.
        for (reason, side) in trial.gaps {
            match mode {
                PodSgEnforcingMode::Strict => flow.gaps.push((
                    format!("{reason}: kubelet probes fail under the VPC CNI's strict pod-SG enforcing mode"),
                    side,
                )),
                _ => flow.unknowns.push(format!(
                    "{reason}: kubelet probes fail under the VPC CNI's strict pod-SG enforcing mode (the default), not under standard, and the mode cannot be read (a self-managed vpc-cni)"
                )),
            }
        }
    }
    flow.open_detail = format!("every node group's kubelet reaches {} for probes", pods.label);
}

/// EFA traffic is not only IP: the EFA SG set must admit all traffic from itself and send all
/// traffic to itself by SG reference (EKS user guide, "Run machine learning training on Amazon
/// EKS with Elastic Fabric Adapter"; eksctl `EFAIngressSelf`/`EFAEgressSelf`; terraform-aws-eks
/// `all_self_efa`). A CIDR rule does not carry it.
fn efa(flow: &mut Flow, side: &Side) {
    flow.both_ways(side, side, Traffic::All);
    flow.open_detail = format!("{} admit all traffic from and to themselves", side.label);
}

/// One end of a flow: a set of SGs (or, for hybrid nodes, remote CIDRs), what messages call
/// it, and the SG a fix belongs on.
struct Side<'s> {
    kind: EndpointKind,
    /// The node group's name, for node sides.
    name: String,
    label: String,
    ids: Vec<String>,
    /// Where a missing rule of this side goes, and the peer the other side names.
    fix: Option<String>,
    /// The role a fix group is reported with when the snapshot does not know the group.
    default_role: Role,
    /// Where the side's default routes lead (IPv4, IPv6); node groups only.
    routes: (RouteOut, RouteOut),
    /// The remote networks of hybrid nodes: outside the VPC, so no SG of theirs is checked.
    cidrs: Vec<IpNet>,
    /// Only a rule naming one of the side's SGs admits it (EFA), never a CIDR.
    groups_only: bool,
    /// The rules of `ids`, indexed once: every flow asks them again.
    rules: SideRules<'s>,
}

/// The rules of a side's SGs as [`Flow::check`] asks them, per direction: those naming a group
/// by its id; those whose CIDR holds the whole VPC, which name any side inside it; and every
/// rule not naming a group, for the far ends that are not SGs.
#[derive(Default)]
struct SideRules<'s> {
    /// (direction, key of the peer group id, the id, traffic), sorted by direction and key.
    by_group: Vec<(Direction, IdKey, &'s str, &'s Traffic)>,
    /// (ingress, egress).
    in_vpc: [Vec<&'s Traffic>; 2],
    /// (ingress, egress).
    others: [Vec<&'s Rule>; 2],
}

impl<'s> SideRules<'s> {
    fn new(snapshot: &'s ClusterSnapshot, ids: &[String]) -> Self {
        let groups: Vec<&SecurityGroup> = ids.iter().filter_map(|id| snapshot.groups.get(id)).collect();
        let all = groups.iter().map(|g| g.rules.len()).sum();
        let mut index = SideRules { by_group: Vec::with_capacity(all), ..SideRules::default() };
        for rule in groups.iter().flat_map(|g| &g.rules) {
            let slot = direction_slot(rule.direction);
            match &rule.peer {
                Peer::Group { id, .. } => index.by_group.push((rule.direction, IdKey::new(id), id, &rule.traffic)),
                peer => {
                    if names_the_vpc(snapshot, peer) {
                        index.in_vpc[slot].push(&rule.traffic);
                    }
                    index.others[slot].push(rule);
                }
            }
        }
        index.by_group.sort_unstable_by_key(|a| (a.0, a.1));
        index
    }

    /// The traffic of the `direction` rules naming group `id`.
    fn naming<'a>(&'a self, direction: Direction, id: &'a str) -> impl Iterator<Item = &'s Traffic> + 'a {
        let key = (direction, IdKey::new(id));
        let from = self.by_group.partition_point(|(d, k, _, _)| (*d, *k) < key);
        let same = self.by_group[from..].iter().take_while(move |(d, k, _, _)| (*d, *k) == key);
        same.filter(move |(_, _, named, _)| *named == id).map(|(_, _, _, t)| *t)
    }
}

/// Is `peer` a CIDR holding the whole VPC (one of its CIDRs)? Only such a CIDR proves it admits
/// a side with addresses somewhere in the VPC.
fn names_the_vpc(snapshot: &ClusterSnapshot, peer: &Peer) -> bool {
    matches!(peer, Peer::Ipv4(_) | Peer::Ipv6(_)) && snapshot.vpc_cidrs.iter().any(|v| peer_covers(peer, &vpc_peer(*v)))
}

fn direction_slot(direction: Direction) -> usize {
    match direction {
        Direction::Ingress => 0,
        Direction::Egress => 1,
    }
}

impl<'s> Side<'s> {
    fn control_plane(snapshot: &'s ClusterSnapshot) -> Self {
        let ids = snapshot.control_plane_set();
        let fix = snapshot
            .control_plane_security_group_ids
            .iter()
            .find(|id| snapshot.groups.get(*id).is_some_and(|g| g.has_role(Role::ControlPlane)))
            .or(snapshot.cluster_security_group_id.as_ref())
            .or(ids.first())
            .cloned();
        let label = "the control plane".to_string();
        Side::new(snapshot, EndpointKind::ControlPlane, String::new(), label, ids, fix, Role::Cluster)
    }

    fn new(
        snapshot: &'s ClusterSnapshot,
        kind: EndpointKind,
        name: String,
        label: String,
        ids: Vec<String>,
        fix: Option<String>,
        role: Role,
    ) -> Self {
        Side {
            rules: SideRules::new(snapshot, &ids),
            kind,
            name,
            label,
            ids,
            fix,
            default_role: role,
            routes: NO_ROUTE_DATA,
            cidrs: Vec::new(),
            groups_only: false,
        }
    }

    /// Hybrid nodes' remote networks (`remoteNetworkConfig`), one endpoint per CIDR: nodes
    /// first, then pods.
    fn hybrid(snapshot: &'s ClusterSnapshot) -> Vec<Self> {
        let Some(remote) = &snapshot.remote_network else { return Vec::new() };
        let side = |kind, what: &str, net: &IpNet| {
            let name = format!("hybrid {what} {net}");
            let mut side = Side::new(snapshot, kind, name.clone(), name, Vec::new(), None, Role::Cluster);
            side.cidrs = vec![*net];
            side
        };
        let nodes = remote.node_cidrs.iter().map(|n| side(EndpointKind::HybridNodes, "nodes", n));
        nodes.chain(remote.pod_cidrs.iter().map(|n| side(EndpointKind::HybridPods, "pods", n))).collect()
    }

    /// The EFA interfaces' SG set of one node group.
    fn efa(snapshot: &'s ClusterSnapshot, set: &EfaSet) -> Self {
        let mut ids = set.security_group_ids.clone();
        ids.sort();
        ids.dedup();
        let fix = ids
            .iter()
            .find(|id| snapshot.groups.get(*id).is_some_and(|g| g.has_role(Role::Node)))
            .or(ids.first())
            .cloned();
        let label = format!("the EFA SGs {} of node group {}", ids.join(", "), set.node_group);
        let mut side = Side::new(snapshot, EndpointKind::Efa, set.node_group.clone(), label, ids, fix, Role::Node);
        side.groups_only = true;
        side
    }

    fn node_group(snapshot: &'s ClusterSnapshot, name: String, ids: Vec<String>) -> Self {
        let fix = ids
            .iter()
            .find(|id| snapshot.groups.get(*id).is_some_and(|g| g.has_role(Role::Node)))
            .or(ids.first())
            .cloned();
        let group = snapshot.node_groups.iter().find(|ng| ng.name == name);
        let routes = group.map_or(NO_ROUTE_DATA, |ng| (ng.route_out_v4, ng.route_out_v6));
        let kind = group.map_or(NodeGroupKind::Managed, |ng| ng.kind);
        let label = match kind {
            NodeGroupKind::Karpenter => format!("NodePool {name}"),
            NodeGroupKind::SelfManaged => format!("self-managed node group {name}"),
            NodeGroupKind::Fargate => format!("Fargate profile {name}"),
            NodeGroupKind::CustomNetworking => format!("pods on secondary ENIs with SGs {}", ids.join(", ")),
            NodeGroupKind::Managed => format!("node group {name}"),
        };
        let mut side = Side::new(snapshot, EndpointKind::Nodes(kind), name, label, ids, fix, Role::Node);
        side.routes = routes;
        side
    }

    /// Pods whose branch ENIs carry `ids` (security groups for pods).
    fn pods(snapshot: &'s ClusterSnapshot, ids: &[String]) -> Self {
        let mut ids = ids.to_vec();
        ids.sort();
        ids.dedup();
        let fix = ids
            .iter()
            .find(|id| snapshot.groups.get(*id).is_some_and(|g| g.has_role(Role::Pod)))
            .or(ids.first())
            .cloned();
        let name = format!("pods {}", ids.join("+"));
        let label = format!("pods with SGs {}", ids.join(", "));
        Side::new(snapshot, EndpointKind::Pods, name, label, ids, fix, Role::Pod)
    }

    fn endpoint(snapshot: &'s ClusterSnapshot, endpoint: &VpcEndpoint, service: &str) -> Self {
        let mut ids = endpoint.security_group_ids.clone();
        ids.sort();
        ids.dedup();
        let label = format!("the {service} endpoint {}", endpoint.id);
        let fix = ids.first().cloned();
        Side::new(snapshot, EndpointKind::VpcEndpoint, String::new(), label, ids, fix, Role::Endpoint)
    }

    /// Does `peer` name this side: one of its groups, or a CIDR holding the whole VPC (the side
    /// has addresses somewhere in the VPC, so a narrower CIDR proves nothing)?
    fn is_named_by(&self, snapshot: &ClusterSnapshot, peer: &Peer) -> bool {
        if !self.cidrs.is_empty() {
            return self.cidrs.iter().any(|net| peer_covers(peer, &vpc_peer(*net)));
        }
        match peer {
            Peer::Group { id, .. } => self.ids.contains(id),
            _ if self.groups_only => false,
            Peer::Ipv4(_) | Peer::Ipv6(_) => names_the_vpc(snapshot, peer),
            Peer::PrefixList(_) => false,
        }
    }
}

const NO_ROUTE_DATA: (RouteOut, RouteOut) = (RouteOut::NoData, RouteOut::NoData);

/// S3 through its gateway endpoint: the region's S3 prefix lists the snapshot knows.
fn s3_far<'f, 's>(snapshot: &ClusterSnapshot) -> Far<'f, 's> {
    Far::S3 {
        prefix_lists: snapshot
            .prefix_lists
            .iter()
            .filter(|(_, name)| name.ends_with(".s3"))
            .map(|(id, _)| id.clone())
            .collect(),
    }
}

fn vpc_peer(net: IpNet) -> Peer {
    match net {
        IpNet::V4(n) => Peer::Ipv4(n),
        IpNet::V6(n) => Peer::Ipv6(n),
    }
}

/// The far end of an egress or ingress check.
enum Far<'f, 's> {
    Sgs(&'f Side<'s>),
    /// `0.0.0.0/0` or `::/0`.
    Internet,
    /// The internet as one address family reaches it: `0.0.0.0/0`, or `::/0`.
    InternetOf(IpFamily),
    /// The S3 gateway endpoint: its prefix lists, or `0.0.0.0/0`.
    S3 {
        prefix_lists: Vec<String>,
    },
}

impl Far<'_, '_> {
    fn label(&self) -> String {
        match self {
            Far::Sgs(side) => side.label.clone(),
            Far::Internet => "the internet".to_string(),
            Far::InternetOf(IpFamily::Ipv4) => "the internet (0.0.0.0/0)".to_string(),
            Far::InternetOf(IpFamily::Ipv6) => "the internet (::/0)".to_string(),
            Far::S3 { prefix_lists } if prefix_lists.is_empty() => {
                "S3 (no S3 prefix list known, so 0.0.0.0/0)".to_string()
            }
            Far::S3 { prefix_lists } => format!("the S3 prefix list {}", prefix_lists.join(", ")),
        }
    }

    fn admits(&self, snapshot: &ClusterSnapshot, peer: &Peer) -> bool {
        match self {
            Far::Sgs(side) => side.is_named_by(snapshot, peer),
            Far::Internet => peer.is_internet(),
            Far::InternetOf(IpFamily::Ipv4) => matches!(peer, Peer::Ipv4(n) if n.prefix_len() == 0),
            Far::InternetOf(IpFamily::Ipv6) => matches!(peer, Peer::Ipv6(n) if n.prefix_len() == 0),
            Far::S3 { prefix_lists } => match peer {
                Peer::PrefixList(id) => prefix_lists.contains(id),
                Peer::Ipv4(n) => n.prefix_len() == 0,
                _ => false,
            },
        }
    }

    /// The peer a fix names: the far side's fix group, or the internet.
    fn fix_peer(&self) -> Option<Peer> {
        match self {
            Far::Sgs(side) => side.fix.as_ref().map(Peer::group).or_else(|| side.cidrs.first().map(|n| vpc_peer(*n))),
            Far::Internet | Far::InternetOf(IpFamily::Ipv4) => Some(Peer::Ipv4(Ipv4Net::default())),
            Far::InternetOf(IpFamily::Ipv6) => Some(Peer::Ipv6(Ipv6Net::default())),
            Far::S3 { prefix_lists } => {
                Some(prefix_lists.first().map_or(Peer::Ipv4(Ipv4Net::default()), |id| Peer::PrefixList(id.clone())))
            }
        }
    }
}

/// One flow being evaluated: the gaps found so far and the detail to give if there are none.
struct Flow<'a> {
    snapshot: &'a ClusterSnapshot,
    name: FlowName,
    node_group: &'a str,
    open_detail: String,
    /// Each gap: the sentence saying which side lacks what, and the rule that would close it.
    gaps: Vec<Gap>,
    /// What sgdrift cannot see, each a sentence: with no gap, the flow is `unknown`.
    unknowns: Vec<String>,
}

/// The sentence saying which side lacks what, and the rule that would close it.
type Gap = (String, Option<MissingSide>);

impl<'a> Flow<'a> {
    fn new(snapshot: &'a ClusterSnapshot, name: FlowName, node: &'a Side) -> Self {
        Flow {
            snapshot,
            name,
            node_group: &node.name,
            open_detail: String::new(),
            gaps: Vec::new(),
            unknowns: Vec::new(),
        }
    }

    /// `from` must allow the egress to `to`, and `to` the ingress from `from`.
    fn both_ways(&mut self, from: &Side, to: &Side, traffic: Traffic) {
        self.egress(from, &Far::Sgs(to), traffic);
        self.check(to, Direction::Ingress, &Far::Sgs(from), traffic);
    }

    fn egress(&mut self, from: &Side, to: &Far, traffic: Traffic) {
        self.check(from, Direction::Egress, to, traffic);
    }

    /// Does some SG of `holder` have a `direction` rule admitting `traffic` with `far`?
    fn check(&mut self, holder: &Side, direction: Direction, far: &Far, traffic: Traffic) {
        if !holder.cidrs.is_empty() {
            // A remote network's own firewalls are not security groups.
            return;
        }
        let snapshot = self.snapshot;
        // What `Far::admits` asks of each rule, answered from the index: a far end made of SGs
        // is named by its ids and, unless it takes groups only, by CIDRs holding the VPC.
        let (rules, slot) = (&holder.rules, direction_slot(direction));
        let sgs = match far {
            Far::Sgs(side) if side.cidrs.is_empty() => Some(side),
            _ => None,
        };
        let naming = sgs.iter().flat_map(|side| &side.ids).flat_map(|id| rules.naming(direction, id));
        let in_vpc = sgs.iter().filter(|side| !side.groups_only).flat_map(|_| rules.in_vpc[slot].iter().copied());
        let others = if sgs.is_some() { &[][..] } else { &rules.others[slot][..] };
        let others = others.iter().filter(|r| far.admits(snapshot, &r.peer)).map(|r| &r.traffic);
        let admitted = traffic_union_covers(naming.chain(in_vpc).chain(others), &traffic);
        if admitted {
            return;
        }
        let word = match direction {
            Direction::Ingress => "from",
            Direction::Egress => "to",
        };
        let what = format!("{direction} {traffic} {word} {}", far.label());
        let reason = match holder.ids.as_slice() {
            [] => format!("{} has no known security group, so nothing allows {what}", holder.label),
            [only] => format!("{only} ({}) of {} has no {what}", self.role_of(holder, only), holder.label),
            many => format!("no SG of {} ({}) allows {what}", holder.label, many.join(", ")),
        };
        let side = match (&holder.fix, far.fix_peer()) {
            (Some(group_id), Some(peer)) => Some(MissingSide {
                group_id: group_id.clone(),
                role: self.role_of(holder, group_id),
                rule: Rule::new(direction, traffic, peer),
                reason: reason.clone(),
                absent_endpoint: None,
            }),
            _ => None,
        };
        self.gaps.push((reason, side));
    }

    /// `service` over the internet in `family`: the node set's egress 443, then its route out.
    /// Gives how the service is reached when the path is open.
    fn internet_path(&mut self, node: &Side, service: &str, family: IpFamily) -> Option<&'static str> {
        let (route, default) = match family {
            IpFamily::Ipv4 => (node.routes.0, "0.0.0.0/0"),
            IpFamily::Ipv6 => (node.routes.1, "::/0"),
        };
        // Named only in what a gap or an unknown says.
        let service_name = || EndpointService::new(&self.snapshot.id.region, service);
        match route {
            // No way out of the VPC: only an endpoint would do, which no SG rule creates.
            RouteOut::None => {
                self.missing_endpoint(node, &service_name(), &format!("no default route ({default}) out of the VPC"));
                return None;
            }
            RouteOut::Indirect => self.unknowns.push(format!(
                "no VPC endpoint for {}, and the default route ({default}) of {} leads to a transit gateway or peering that sgdrift cannot follow",
                service_name(),
                node.label
            )),
            RouteOut::NoData | RouteOut::Internet => {}
        }
        let before = self.gaps.len();
        self.egress(node, &Far::InternetOf(family), tcp(HTTPS_PORT));
        if self.gaps.len() > before {
            let service_name = service_name();
            for gap in &mut self.gaps[before..] {
                gap.0 = format!("no VPC endpoint for {service_name}, and {}", gap.0);
            }
        }
        let how = match (route, family) {
            (RouteOut::Internet, IpFamily::Ipv4) => "over the internet (0.0.0.0/0 routed to a NAT or internet gateway)",
            (RouteOut::Internet, IpFamily::Ipv6) => "over the internet (::/0 routed to a NAT or internet gateway)",
            (_, IpFamily::Ipv4) => "over the internet (0.0.0.0/0; no route data, so the SGs alone decide)",
            (_, IpFamily::Ipv6) => "over the internet (::/0; no route data, so the SGs alone decide)",
        };
        (self.gaps.len() == before && self.unknowns.is_empty()).then_some(how)
    }

    /// Nodes without an interface endpoint they need and without a way out of the VPC: no SG
    /// rule can fix that, so the finding names the service where a rule would name its peer.
    fn missing_endpoint(&mut self, node: &Side, service_name: &EndpointService, why: &str) {
        let reason = format!("no VPC endpoint for {service_name} and {why} from {}", node.label);
        let side = node.fix.as_ref().map(|group_id| MissingSide {
            group_id: group_id.clone(),
            role: self.role_of(node, group_id),
            rule: Rule::new(Direction::Egress, tcp(HTTPS_PORT), self.vpc_peer_for_fix()),
            reason: reason.clone(),
            absent_endpoint: Some(service_name.clone()),
        });
        self.gaps.push((reason, side));
    }

    /// The first tcp traffic (or all traffic) that `holder`'s SGs admit from `from`.
    fn tcp_admitted(&self, holder: &Side, from: &Side) -> Option<Traffic> {
        holder
            .ids
            .iter()
            .filter_map(|id| self.snapshot.groups.get(id))
            .flat_map(|g| &g.rules)
            .filter(|r| r.direction == Direction::Ingress && from.is_named_by(self.snapshot, &r.peer))
            .map(|r| r.traffic)
            .find(|t| matches!(t, Traffic::All | Traffic::Tcp(_)))
    }

    /// Where the nodes would send traffic for an endpoint that does not exist yet: the VPC.
    fn vpc_peer_for_fix(&self) -> Peer {
        self.snapshot.vpc_cidrs.first().map_or(Peer::Ipv4(Ipv4Net::default()), |n| vpc_peer(*n))
    }

    fn role_of(&self, side: &Side, group_id: &str) -> Role {
        self.snapshot.groups.get(group_id).map_or(side.default_role, |g| g.primary_role())
    }

    fn finish(self) -> FlowResult {
        let node_group = Some(self.node_group.to_string());
        if self.gaps.is_empty() {
            let (status, detail) = match self.unknowns.is_empty() {
                true => (FlowStatus::Open, self.open_detail),
                false => (FlowStatus::Unknown, dedup_join(self.unknowns)),
            };
            return FlowResult { name: self.name, node_group, status, detail, missing: Vec::new() };
        }
        let mut reasons: Vec<String> = Vec::new();
        let mut missing: Vec<MissingSide> = Vec::new();
        for (reason, side) in self.gaps {
            if !reasons.contains(&reason) {
                reasons.push(reason);
            }
            if let Some(side) = side {
                if !missing.iter().any(|m| {
                    (&m.group_id, &m.rule, &m.absent_endpoint) == (&side.group_id, &side.rule, &side.absent_endpoint)
                }) {
                    missing.push(side);
                }
            }
        }
        FlowResult { name: self.name, node_group, status: FlowStatus::Closed, detail: reasons.join("; "), missing }
    }
}

/// The sentences in their first-seen order, each once, joined with `; `.
fn dedup_join(sentences: Vec<String>) -> String {
    let mut seen: Vec<String> = Vec::new();
    for s in sentences {
        if !seen.contains(&s) {
            seen.push(s);
        }
    }
    seen.join("; ")
}

/// Hand-built snapshots for the flow and diff tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use std::collections::BTreeMap;

    use crate::model::{
        canonicalize, ClusterId, ClusterSnapshot, Direction, EndpointMode, NodeGroup, NodeGroupKind, Peer, Role,
        RouteOut, Rule, SecurityGroup, Style, Traffic, VpcEndpoint, VpcEndpointKind,
    };

    /// `ingress tcp 10250 from sg-cp`, `egress all to 0.0.0.0/0`, `ingress icmp 8/0 from 10.0.0.0/8`.
    pub fn rule(text: &str) -> Rule {
        let words: Vec<&str> = text.split_whitespace().collect();
        let link = words.iter().position(|w| *w == "from" || *w == "to").expect("rule text needs from/to");
        let direction = Direction::parse(words[0]).expect("direction");
        let ports = (link == 3).then(|| words[2]);
        let traffic = Traffic::parse(words[1], ports).expect("traffic");
        let peer = Peer::parse(words[link + 1]).expect("peer");
        Rule::new(direction, traffic, peer)
    }

    pub fn group(id: &str, role: Role, rules: &[&str]) -> SecurityGroup {
        SecurityGroup {
            id: id.to_string(),
            name: format!("{id}-name"),
            description: String::new(),
            owner_id: Some("111122223333".to_string()),
            vpc_id: Some("vpc-1".to_string()),
            tags: BTreeMap::new(),
            roles: [role].into(),
            rules: canonicalize(rules.iter().map(|r| rule(r)).collect()),
        }
    }

    /// A cluster in VPC 10.0.0.0/16: the cluster SG is the group with role `cluster`, the
    /// control-plane SGs those with role `control-plane`.
    pub fn snapshot(
        mode: EndpointMode,
        groups: Vec<SecurityGroup>,
        node_groups: &[(&str, &[&str])],
    ) -> ClusterSnapshot {
        ClusterSnapshot {
            id: ClusterId {
                account_id: "111122223333".to_string(),
                region: "eu-west-1".to_string(),
                name: "prod".to_string(),
            },
            endpoint_mode: mode,
            public_access_cidrs: vec!["0.0.0.0/0".to_string()],
            style: Style::Unknown,
            ip_family: crate::model::IpFamily::Ipv4,
            remote_network: None,
            vpc_id: "vpc-1".to_string(),
            vpc_cidrs: vec!["10.0.0.0/16".parse().expect("cidr")],
            cluster_security_group_id: groups.iter().find(|g| g.has_role(Role::Cluster)).map(|g| g.id.clone()),
            control_plane_security_group_ids: groups
                .iter()
                .filter(|g| g.has_role(Role::ControlPlane))
                .map(|g| g.id.clone())
                .collect(),
            groups: groups.into_iter().map(|g| (g.id.clone(), g)).collect(),
            node_groups: node_groups
                .iter()
                .map(|(name, ids)| NodeGroup {
                    name: name.to_string(),
                    kind: NodeGroupKind::Managed,
                    security_group_ids: ids.iter().map(|s| s.to_string()).collect(),
                    route_out_v4: crate::model::RouteOut::NoData,
                    route_out_v6: crate::model::RouteOut::NoData,
                })
                .collect(),
            vpc_endpoints: Vec::new(),
            pod_security_group_sets: Vec::new(),
            data_plane: Default::default(),
            peer_groups: BTreeMap::new(),
            prefix_lists: BTreeMap::new(),
            warnings: Vec::new(),
        }
    }

    pub fn interface_endpoint(service: &str, sgs: &[&str]) -> VpcEndpoint {
        VpcEndpoint {
            id: format!("vpce-{}", service.replace('.', "")),
            service_name: format!("com.amazonaws.eu-west-1.{service}"),
            kind: VpcEndpointKind::Interface,
            security_group_ids: sgs.iter().map(|s| s.to_string()).collect(),
            private_dns_enabled: true,
        }
    }

    /// The EKS-created cluster SG with its default rules (reference §1.4).
    pub fn default_cluster_sg() -> SecurityGroup {
        group("sg-cluster", Role::Cluster, &["ingress all from sg-cluster", "egress all to 0.0.0.0/0"])
    }

    /// terraform-aws-eks ≥ v19 (reference §3.1): a control-plane SG without egress, a shared
    /// node SG, nodes not in the cluster SG.
    pub fn terraform_v19(mode: EndpointMode) -> ClusterSnapshot {
        snapshot(
            mode,
            vec![
                default_cluster_sg(),
                group("sg-cp", Role::ControlPlane, &["ingress tcp 443 from sg-node"]),
                group(
                    "sg-node",
                    Role::Node,
                    &[
                        "ingress tcp 443 from sg-cp",
                        "ingress tcp 10250 from sg-cp",
                        "ingress tcp 53 from sg-node",
                        "ingress udp 53 from sg-node",
                        "ingress tcp 1025-65535 from sg-node",
                        "ingress tcp 9443 from sg-cp",
                        "egress all to 0.0.0.0/0",
                    ],
                ),
            ],
            &[("ng-1", &["sg-node"])],
        )
    }

    /// A private cluster whose nodes may only talk inside the VPC: control plane, the interface
    /// endpoints' SG, the S3 prefix list and each other.
    pub fn private_restricted() -> ClusterSnapshot {
        let mut snap = snapshot(
            EndpointMode::Private,
            vec![
                group("sg-cluster", Role::Cluster, &["ingress all from sg-cluster"]),
                group("sg-cp", Role::ControlPlane, &["ingress tcp 443 from sg-node", "egress tcp 10250 to sg-node"]),
                group(
                    "sg-node",
                    Role::Node,
                    &[
                        "ingress tcp 10250 from sg-cp",
                        "ingress tcp 53 from sg-node",
                        "ingress udp 53 from sg-node",
                        "egress tcp 53 to sg-node",
                        "egress udp 53 to sg-node",
                        "egress tcp 443 to sg-cp",
                        "egress tcp 443 to sg-endpoint",
                        "egress tcp 443 to pl-6ea54007",
                    ],
                ),
                group("sg-endpoint", Role::Endpoint, &["ingress tcp 443 from sg-node"]),
            ],
            &[("ng-1", &["sg-node"])],
        );
        snap.vpc_endpoints = ["ec2", "ecr.api", "ecr.dkr", "sts", "logs"]
            .iter()
            .map(|s| interface_endpoint(s, &["sg-endpoint"]))
            .collect();
        snap.vpc_endpoints.push(VpcEndpoint {
            id: "vpce-s3".to_string(),
            service_name: "com.amazonaws.eu-west-1.s3".to_string(),
            kind: VpcEndpointKind::Gateway,
            security_group_ids: Vec::new(),
            private_dns_enabled: false,
        });
        snap.prefix_lists.insert("pl-6ea54007".to_string(), "com.amazonaws.eu-west-1.s3".to_string());
        snap
    }

    /// Every node group's default routes lead nowhere (no NAT, no internet gateway).
    pub fn no_route_out(mut snap: ClusterSnapshot) -> ClusterSnapshot {
        routes(&mut snap, RouteOut::None, RouteOut::None);
        snap
    }

    /// Sets every node group's IPv4 and IPv6 route out.
    pub fn routes(snap: &mut ClusterSnapshot, v4: RouteOut, v6: RouteOut) {
        for ng in &mut snap.node_groups {
            ng.route_out_v4 = v4;
            ng.route_out_v6 = v6;
        }
    }

    /// Removes the rule `text` from group `id`; panics when it was not there, so a test cannot
    /// pass by deleting nothing.
    pub fn without(mut snap: ClusterSnapshot, id: &str, text: &str) -> ClusterSnapshot {
        let target = rule(text);
        let rules = &mut snap.groups.get_mut(id).expect("group").rules;
        let before = rules.len();
        rules.retain(|r| r.key() != target.key());
        assert_eq!(rules.len() + 1, before, "{id} had no rule `{text}`");
        snap
    }

    pub fn with(mut snap: ClusterSnapshot, id: &str, text: &str) -> ClusterSnapshot {
        let g = snap.groups.get_mut(id).expect("group");
        g.rules.push(rule(text));
        g.rules = canonicalize(std::mem::take(&mut g.rules));
        snap
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use crate::model::EndpointMode;

    fn flow<'a>(results: &'a [FlowResult], name: FlowName, node_group: &str) -> &'a FlowResult {
        results
            .iter()
            .find(|f| f.name == name && f.node_group.as_deref() == Some(node_group))
            .unwrap_or_else(|| panic!("no {} result for {node_group}", name.as_str()))
    }

    fn status(snap: &ClusterSnapshot, name: FlowName, node_group: &str) -> FlowStatus {
        flow(&check(snap, &FlowContext::default()), name, node_group).status
    }

    fn missing(m: &MissingSide) -> (String, Role, String) {
        (m.group_id.clone(), m.role, m.rule.to_string())
    }

    #[test]
    fn nodes_with_only_the_default_cluster_sg_have_every_flow_open() {
        for mode in EndpointMode::ALL {
            let snap = snapshot(mode, vec![default_cluster_sg()], &[("ng-1", &["sg-cluster"])]);
            let results = check(&snap, &FlowContext { webhook_ports: vec![9443] });
            // No pod SGs, so no pod flows; a private endpoint says nothing about the internet,
            // so aws-apis is open over the cluster SG's default egress.
            assert_eq!(results.len(), PER_NODE_GROUP.len(), "{mode}");
            for r in &results {
                assert_eq!(r.status, FlowStatus::Open, "{mode} {}: {}", r.name.as_str(), r.detail);
                assert!(r.missing.is_empty());
            }
        }
    }

    #[test]
    fn stripping_the_cluster_sg_closes_every_flow_of_nodes_that_only_carry_it() {
        let snap = snapshot(
            EndpointMode::PublicPrivate,
            vec![group("sg-cluster", Role::Cluster, &[])],
            &[("ng-1", &["sg-cluster"])],
        );
        let results = check(&snap, &FlowContext { webhook_ports: vec![9443] });
        for r in &results {
            assert_eq!(r.status, FlowStatus::Closed, "{}", r.name.as_str());
            assert!(!r.missing.is_empty(), "{}", r.name.as_str());
            assert!(r.missing.iter().all(|m| m.group_id == "sg-cluster"));
        }
    }

    #[test]
    fn one_result_per_flow_per_node_group_names_the_node_group() {
        let snap = snapshot(
            EndpointMode::Public,
            vec![default_cluster_sg()],
            &[("ng-a", &["sg-cluster"]), ("ng-b", &["sg-cluster"])],
        );
        let results = check(&snap, &FlowContext::default());
        assert_eq!(results.len(), 2 * PER_NODE_GROUP.len());
        for name in PER_NODE_GROUP {
            for ng in ["ng-a", "ng-b"] {
                assert_eq!(flow(&results, name, ng).status, FlowStatus::Open);
            }
        }
    }

    #[test]
    fn a_rule_naming_a_group_whose_id_ends_like_the_peers_does_not_open_a_flow() {
        // Ids of one length that share their last eight characters share an index key.
        let node = group("sg-0aaa12345678", Role::Node, &["ingress tcp 10250 from sg-cp"]);
        let cp = group("sg-cp", Role::ControlPlane, &[]);
        let base = snapshot(EndpointMode::PublicPrivate, vec![cp, node], &[("ng-1", &["sg-0aaa12345678"])]);
        let cases = [
            ("egress tcp 10250 to sg-0aaa12345678", FlowStatus::Open),
            ("egress tcp 10250 to sg-0bbb12345678", FlowStatus::Closed),
        ];
        for (rule, want) in cases {
            let snap = with(base.clone(), "sg-cp", rule);
            assert_eq!(status(&snap, FlowName::Kubelet, "ng-1"), want, "{rule}");
        }
    }

    #[test]
    fn kubelet_closes_when_either_side_loses_its_rule() {
        // The control plane may only reach the nodes through its own egress here.
        let base = without(terraform_v19(EndpointMode::PublicPrivate), "sg-cluster", "egress all to 0.0.0.0/0");
        let base = with(base, "sg-cp", "egress tcp 10250 to sg-node");
        assert_eq!(status(&base, FlowName::Kubelet, "ng-1"), FlowStatus::Open);

        let cases = [
            (
                "sg-cp",
                "egress tcp 10250 to sg-node",
                ("sg-cp".to_string(), Role::ControlPlane, "egress tcp 10250 to sg-node".to_string()),
                "no SG of the control plane (sg-cluster, sg-cp) allows egress tcp 10250 to node group ng-1",
            ),
            (
                "sg-node",
                "ingress tcp 10250 from sg-cp",
                ("sg-node".to_string(), Role::Node, "ingress tcp 10250 from sg-cp".to_string()),
                "sg-node (node) of node group ng-1 has no ingress tcp 10250 from the control plane",
            ),
        ];
        for (group_id, deleted, want_missing, want_detail) in cases {
            let snap = without(base.clone(), group_id, deleted);
            let results = check(&snap, &FlowContext::default());
            let r = flow(&results, FlowName::Kubelet, "ng-1");
            assert_eq!(r.status, FlowStatus::Closed, "{deleted}");
            assert_eq!(r.detail, want_detail);
            assert_eq!(r.missing.iter().map(missing).collect::<Vec<_>>(), vec![want_missing]);
            assert_eq!(r.missing[0].reason, want_detail);
        }
    }

    #[test]
    fn terraform_cluster_whose_cluster_sg_lost_its_default_egress_closes_kubelet() {
        let snap = terraform_v19(EndpointMode::Private);
        assert_eq!(status(&snap, FlowName::Kubelet, "ng-1"), FlowStatus::Open);

        let stripped = without(snap, "sg-cluster", "egress all to 0.0.0.0/0");
        let results = check(&stripped, &FlowContext { webhook_ports: vec![9443] });
        for name in [FlowName::Kubelet, FlowName::Webhooks] {
            let r = flow(&results, name, "ng-1");
            assert_eq!(r.status, FlowStatus::Closed, "{}", name.as_str());
            // The fix goes on the module's control-plane SG, not on the EKS-managed one.
            assert!(r.missing.iter().all(|m| m.group_id == "sg-cp" && m.rule.direction == Direction::Egress));
        }
        // Nodes still reach the API: that path never used the cluster SG's egress.
        assert_eq!(flow(&results, FlowName::Api, "ng-1").status, FlowStatus::Open);
    }

    #[test]
    fn the_api_flow_depends_on_the_endpoint_mode() {
        let node_egress_to_vpc_only = |mode| {
            let snap = without(terraform_v19(mode), "sg-node", "egress all to 0.0.0.0/0");
            with(snap, "sg-node", "egress tcp 443 to 10.0.0.0/16")
        };
        let cases = [
            // Public: the API is on the internet, so VPC-only egress is not enough.
            (EndpointMode::Public, FlowStatus::Closed),
            (EndpointMode::PublicPrivate, FlowStatus::Open),
            (EndpointMode::Private, FlowStatus::Open),
        ];
        for (mode, want) in cases {
            let snap = node_egress_to_vpc_only(mode);
            let results = check(&snap, &FlowContext::default());
            let r = flow(&results, FlowName::Api, "ng-1");
            assert_eq!(r.status, want, "{mode}: {}", r.detail);
            if want == FlowStatus::Closed {
                assert_eq!(
                    r.missing.iter().map(missing).collect::<Vec<_>>(),
                    vec![("sg-node".to_string(), Role::Node, "egress tcp 443 to 0.0.0.0/0".to_string())]
                );
            }
        }
    }

    #[test]
    fn the_in_vpc_api_needs_ingress_on_the_control_plane_set() {
        let snap = without(terraform_v19(EndpointMode::PublicPrivate), "sg-cp", "ingress tcp 443 from sg-node");
        let results = check(&snap, &FlowContext::default());
        let r = flow(&results, FlowName::Api, "ng-1");
        assert_eq!(r.status, FlowStatus::Closed);
        assert_eq!(
            r.detail,
            "no SG of the control plane (sg-cluster, sg-cp) allows ingress tcp 443 from node group ng-1"
        );
        assert_eq!(
            r.missing.iter().map(missing).collect::<Vec<_>>(),
            vec![("sg-cp".to_string(), Role::ControlPlane, "ingress tcp 443 from sg-node".to_string())]
        );
        // In public mode the same cluster is fine: nodes go out to the public endpoint.
        let public = ClusterSnapshot { endpoint_mode: EndpointMode::Public, ..snap };
        assert_eq!(status(&public, FlowName::Api, "ng-1"), FlowStatus::Open);
    }

    #[test]
    fn only_cidrs_that_hold_the_whole_vpc_stand_for_an_in_vpc_peer() {
        // Node ingress for kubelet, from a CIDR instead of the control-plane SG.
        let cases = [
            ("ingress tcp 10250 from 10.0.0.0/16", FlowStatus::Open),
            ("ingress tcp 10250 from 10.0.0.0/8", FlowStatus::Open),
            ("ingress tcp 10250 from 0.0.0.0/0", FlowStatus::Open),
            ("ingress tcp 10250 from 10.0.1.0/24", FlowStatus::Closed),
            ("ingress tcp 10250 from 172.16.0.0/12", FlowStatus::Closed),
            ("ingress tcp 10250 from ::/0", FlowStatus::Closed),
            ("ingress tcp 10250 from pl-6ea54007", FlowStatus::Closed),
            ("ingress tcp 10250 from sg-other", FlowStatus::Closed),
            ("ingress tcp 10000-11000 from sg-cluster", FlowStatus::Open),
            ("ingress all from sg-cp", FlowStatus::Open),
            ("ingress udp 10250 from sg-cp", FlowStatus::Closed),
        ];
        for (text, want) in cases {
            let snap = without(terraform_v19(EndpointMode::Public), "sg-node", "ingress tcp 10250 from sg-cp");
            let snap = with(snap, "sg-node", text);
            assert_eq!(status(&snap, FlowName::Kubelet, "ng-1"), want, "{text}");
        }
    }

    #[test]
    fn private_cluster_without_node_egress_to_its_endpoint_sg_closes_aws_apis() {
        let snap = private_restricted();
        let results = check(&snap, &FlowContext::default());
        for r in &results {
            assert_eq!(r.status, FlowStatus::Open, "{}: {}", r.name.as_str(), r.detail);
        }

        let snap = without(snap, "sg-node", "egress tcp 443 to sg-endpoint");
        let results = check(&snap, &FlowContext::default());
        let r = flow(&results, FlowName::AwsApis, "ng-1");
        assert_eq!(r.status, FlowStatus::Closed);
        assert_eq!(
            r.detail,
            "sg-node (node) of node group ng-1 has no egress tcp 443 to the ec2 endpoint vpce-ec2; \
             sg-node (node) of node group ng-1 has no egress tcp 443 to the ecr.api endpoint vpce-ecrapi; \
             sg-node (node) of node group ng-1 has no egress tcp 443 to the ecr.dkr endpoint vpce-ecrdkr; \
             sg-node (node) of node group ng-1 has no egress tcp 443 to the sts endpoint vpce-sts"
        );
        // One rule fixes all four endpoints: they share one SG.
        assert_eq!(
            r.missing.iter().map(missing).collect::<Vec<_>>(),
            vec![("sg-node".to_string(), Role::Node, "egress tcp 443 to sg-endpoint".to_string())]
        );
    }

    #[test]
    fn private_aws_apis_checks_endpoint_ingress_s3_and_missing_endpoints() {
        let gaps = |snap: ClusterSnapshot| {
            let results = check(&snap, &FlowContext::default());
            let r = flow(&results, FlowName::AwsApis, "ng-1").clone();
            (r.status, r.missing.iter().map(missing).collect::<Vec<_>>(), r.detail)
        };
        let (status, sides, _) = gaps(without(private_restricted(), "sg-endpoint", "ingress tcp 443 from sg-node"));
        assert_eq!(status, FlowStatus::Closed);
        assert_eq!(
            sides,
            vec![("sg-endpoint".to_string(), Role::Endpoint, "ingress tcp 443 from sg-node".to_string())]
        );

        // The endpoint SG may admit the VPC instead of the node SG.
        let snap = with(
            without(private_restricted(), "sg-endpoint", "ingress tcp 443 from sg-node"),
            "sg-endpoint",
            "ingress tcp 443 from 10.0.0.0/16",
        );
        assert_eq!(gaps(snap).0, FlowStatus::Open);

        let (status, sides, _) = gaps(without(private_restricted(), "sg-node", "egress tcp 443 to pl-6ea54007"));
        assert_eq!(status, FlowStatus::Closed);
        assert_eq!(sides, vec![("sg-node".to_string(), Role::Node, "egress tcp 443 to pl-6ea54007".to_string())]);

        // 0.0.0.0/0 stands in for the S3 prefix list and for every endpoint SG.
        let snap = with(
            without(private_restricted(), "sg-node", "egress tcp 443 to pl-6ea54007"),
            "sg-node",
            "egress tcp 443 to 0.0.0.0/0",
        );
        let snap = without(snap, "sg-node", "egress tcp 443 to sg-endpoint");
        assert_eq!(gaps(snap).0, FlowStatus::Open);

        let mut snap = no_route_out(private_restricted());
        snap.vpc_endpoints.retain(|e| e.service() != "ecr.dkr");
        let (status, sides, detail) = gaps(snap);
        assert_eq!(status, FlowStatus::Closed);
        assert_eq!(
            detail,
            "no VPC endpoint for com.amazonaws.eu-west-1.ecr.dkr and no default route (0.0.0.0/0) out of the VPC from node group ng-1"
        );
        assert_eq!(sides, vec![("sg-node".to_string(), Role::Node, "egress tcp 443 to 10.0.0.0/16".to_string())]);
    }

    #[test]
    fn a_missing_endpoint_names_the_service_as_the_peer_of_its_fix() {
        let mut snap = no_route_out(private_restricted());
        snap.vpc_endpoints.retain(|e| e.service() != "sts");
        let results = check(&snap, &FlowContext::default());
        let r = flow(&results, FlowName::AwsApis, "ng-1");
        assert_eq!(r.missing.len(), 1);
        assert_eq!(r.missing[0].absent_endpoint, Some(EndpointService::new("eu-west-1", "sts")));
    }

    #[test]
    fn one_working_endpoint_of_a_service_is_enough() {
        let mut snap = private_restricted();
        // A second ec2 endpoint nobody can reach does not close the flow.
        snap.vpc_endpoints.insert(0, interface_endpoint("ec2", &["sg-unreachable"]));
        snap.vpc_endpoints[0].id = "vpce-ec2-old".to_string();
        assert_eq!(status(&snap, FlowName::AwsApis, "ng-1"), FlowStatus::Open);
    }

    #[test]
    fn without_endpoints_nodes_need_egress_443_to_the_internet_for_aws_apis_in_every_mode() {
        let cases = [
            ("egress tcp 443 to 0.0.0.0/0", FlowStatus::Open),
            // An IPv4 cluster's nodes reach AWS APIs over IPv4.
            ("egress tcp 443 to ::/0", FlowStatus::Closed),
            ("egress tcp 0-1024 to 0.0.0.0/0", FlowStatus::Open),
            ("egress tcp 443 to 10.0.0.0/8", FlowStatus::Closed),
            ("egress udp 443 to 0.0.0.0/0", FlowStatus::Closed),
        ];
        for mode in EndpointMode::ALL {
            for (text, want) in cases {
                let snap = without(terraform_v19(mode), "sg-node", "egress all to 0.0.0.0/0");
                let snap = with(snap, "sg-node", text);
                assert_eq!(status(&snap, FlowName::AwsApis, "ng-1"), want, "{mode} {text}");
            }
        }
    }

    #[test]
    fn dns_between_two_node_groups_needs_both_sides_both_protocols() {
        let ng = |id: &str, extra: &[&str]| {
            let mut rules = vec![
                format!("ingress tcp 53 from {id}"),
                format!("ingress udp 53 from {id}"),
                "egress all to 0.0.0.0/0".to_string(),
            ];
            rules.extend(extra.iter().map(|s| s.to_string()));
            let refs: Vec<&str> = rules.iter().map(String::as_str).collect();
            group(id, Role::Node, &refs)
        };
        let cluster = |a: &[&str], b: &[&str]| {
            snapshot(
                EndpointMode::Public,
                vec![default_cluster_sg(), ng("sg-a", a), ng("sg-b", b)],
                &[("ng-a", &["sg-a"]), ("ng-b", &["sg-b"])],
            )
        };
        let both = ["ingress tcp 53 from sg-a", "ingress udp 53 from sg-a"];
        let back = ["ingress tcp 53 from sg-b", "ingress udp 53 from sg-b"];

        let snap = cluster(&back, &both);
        assert_eq!(status(&snap, FlowName::Dns, "ng-a"), FlowStatus::Open);
        assert_eq!(status(&snap, FlowName::Dns, "ng-b"), FlowStatus::Open);

        // Each group only trusts itself: a classic per-node-group SG layout.
        let snap = cluster(&[], &[]);
        let results = check(&snap, &FlowContext::default());
        let a = flow(&results, FlowName::Dns, "ng-a");
        assert_eq!(a.status, FlowStatus::Closed);
        assert_eq!(
            a.missing.iter().map(missing).collect::<Vec<_>>(),
            vec![
                ("sg-b".to_string(), Role::Node, "ingress tcp 53 from sg-a".to_string()),
                ("sg-b".to_string(), Role::Node, "ingress udp 53 from sg-a".to_string()),
            ]
        );
        assert_eq!(flow(&results, FlowName::Dns, "ng-b").status, FlowStatus::Closed);

        // Only udp admitted from ng-a: tcp is the one gap.
        let snap = cluster(&back, &["ingress udp 53 from sg-a"]);
        let results = check(&snap, &FlowContext::default());
        let a = flow(&results, FlowName::Dns, "ng-a");
        assert_eq!(a.detail, "sg-b (node) of node group ng-b has no ingress tcp 53 from node group ng-a");
        assert_eq!(flow(&results, FlowName::Dns, "ng-b").status, FlowStatus::Open);
    }

    #[test]
    fn dns_within_one_group_needs_its_self_rules() {
        let snap = without(terraform_v19(EndpointMode::Public), "sg-node", "ingress udp 53 from sg-node");
        let results = check(&snap, &FlowContext::default());
        let r = flow(&results, FlowName::Dns, "ng-1");
        assert_eq!(r.status, FlowStatus::Closed);
        assert_eq!(
            r.missing.iter().map(missing).collect::<Vec<_>>(),
            vec![("sg-node".to_string(), Role::Node, "ingress udp 53 from sg-node".to_string())]
        );
    }

    #[test]
    fn webhooks_check_each_declared_port() {
        let snap = terraform_v19(EndpointMode::Public);
        let cases: [(&[u16], FlowStatus, &[&str]); 4] = [
            (&[], FlowStatus::Open, &[]),
            (&[9443], FlowStatus::Open, &[]),
            (&[8443, 9443, 8443], FlowStatus::Closed, &["ingress tcp 8443 from sg-cp"]),
            (&[4443, 8443], FlowStatus::Closed, &["ingress tcp 4443 from sg-cp", "ingress tcp 8443 from sg-cp"]),
        ];
        for (ports, want, fixes) in cases {
            let results = check(&snap, &FlowContext { webhook_ports: ports.to_vec() });
            let r = flow(&results, FlowName::Webhooks, "ng-1");
            assert_eq!(r.status, want, "{ports:?}");
            let got: Vec<String> = r.missing.iter().map(|m| m.rule.to_string()).collect();
            assert_eq!(got, fixes.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "{ports:?}");
            if ports.is_empty() {
                assert_eq!(r.detail, "no webhook ports declared");
            }
        }
    }

    #[test]
    fn replies_need_no_rule_because_security_groups_are_stateful() {
        // Nothing admits tcp 10250 back to the control plane or ephemeral ports to the nodes.
        let snap = snapshot(
            EndpointMode::Public,
            vec![
                group("sg-cluster", Role::Cluster, &[]),
                group("sg-cp", Role::ControlPlane, &["egress tcp 10250 to sg-node"]),
                group("sg-node", Role::Node, &["ingress tcp 10250 from sg-cp"]),
            ],
            &[("ng-1", &["sg-node"])],
        );
        assert_eq!(status(&snap, FlowName::Kubelet, "ng-1"), FlowStatus::Open);
    }

    #[test]
    fn fixes_go_on_the_node_role_sg_of_a_mixed_set_and_name_the_other_sides_sg() {
        // An eksctl-like managed group: cluster SG, a remote-access SG and a node SG.
        let snap = snapshot(
            EndpointMode::Public,
            vec![
                group("sg-0cluster", Role::Cluster, &["egress all to 0.0.0.0/0"]),
                group("sg-1ssh", Role::RemoteAccess, &["ingress tcp 22 from 10.0.0.0/16"]),
                group("sg-2node", Role::Node, &["egress all to 0.0.0.0/0"]),
            ],
            &[("ng-1", &["sg-1ssh", "sg-2node", "sg-0cluster"])],
        );
        let results = check(&snap, &FlowContext::default());
        let r = flow(&results, FlowName::Kubelet, "ng-1");
        assert_eq!(
            r.missing.iter().map(missing).collect::<Vec<_>>(),
            vec![("sg-2node".to_string(), Role::Node, "ingress tcp 10250 from sg-0cluster".to_string())]
        );
        assert_eq!(
            r.detail,
            "no SG of node group ng-1 (sg-0cluster, sg-1ssh, sg-2node) allows ingress tcp 10250 from the control plane"
        );
    }

    /// terraform-aws-eks's default since v19 (reference §3.1): private endpoint, nodes with
    /// `egress_all`, no interface endpoints; then the routes of the node subnets.
    #[test]
    fn aws_apis_without_endpoints_follow_the_route_out_of_the_node_subnets() {
        let cases = [
            (RouteOut::NoData, FlowStatus::Open, "over the internet (0.0.0.0/0; no route data, so the SGs alone decide)"),
            (RouteOut::Internet, FlowStatus::Open, "over the internet (0.0.0.0/0 routed to a NAT or internet gateway)"),
            (
                RouteOut::Indirect,
                FlowStatus::Unknown,
                "no VPC endpoint for com.amazonaws.eu-west-1.ec2, and the default route (0.0.0.0/0) of node group ng-1 leads to a transit gateway or peering that sgdrift cannot follow",
            ),
            (
                RouteOut::None,
                FlowStatus::Closed,
                "no VPC endpoint for com.amazonaws.eu-west-1.ec2 and no default route (0.0.0.0/0) out of the VPC from node group ng-1",
            ),
        ];
        for (route, want, detail) in cases {
            let mut snap = terraform_v19(EndpointMode::Private);
            routes(&mut snap, route, RouteOut::None);
            let results = check(&snap, &FlowContext::default());
            let r = flow(&results, FlowName::AwsApis, "ng-1");
            assert_eq!(r.status, want, "{route}: {}", r.detail);
            assert!(r.detail.contains(detail), "{route}: {}", r.detail);
            // The route out decides nothing else.
            for other in results.iter().filter(|f| f.name != FlowName::AwsApis) {
                assert_eq!(other.status, FlowStatus::Open, "{route}: {}", other.name.as_str());
            }
            if want == FlowStatus::Closed {
                // Five services, each needing an endpoint: five fixes naming the service.
                let peers: Vec<Option<&str>> =
                    r.missing.iter().map(|m| m.absent_endpoint.as_ref().map(|e| e.as_str())).collect();
                assert_eq!(peers.len(), 5, "{peers:?}");
                assert!(peers.iter().all(|p| p.is_some_and(|p| p.starts_with("com.amazonaws.eu-west-1."))));
            }
        }
    }

    #[test]
    fn a_route_out_needs_the_sg_egress_too_and_a_transit_gateway_never_hides_a_closed_sg() {
        for route in [RouteOut::Internet, RouteOut::Indirect, RouteOut::NoData] {
            let mut snap = without(terraform_v19(EndpointMode::Private), "sg-node", "egress all to 0.0.0.0/0");
            routes(&mut snap, route, RouteOut::NoData);
            let results = check(&snap, &FlowContext::default());
            let r = flow(&results, FlowName::AwsApis, "ng-1");
            assert_eq!(r.status, FlowStatus::Closed, "{route}");
            assert_eq!(
                r.missing.iter().map(missing).collect::<Vec<_>>(),
                vec![("sg-node".to_string(), Role::Node, "egress tcp 443 to 0.0.0.0/0".to_string())]
            );
        }
    }

    #[test]
    fn each_service_takes_its_own_path_and_endpoints_without_private_dns_do_not_count() {
        // ecr.api and ecr.dkr through endpoints; the rest over the internet, whose route is gone.
        let mut snap = terraform_v19(EndpointMode::Private);
        snap.groups
            .insert("sg-endpoint".into(), group("sg-endpoint", Role::Endpoint, &["ingress tcp 443 from sg-node"]));
        snap.vpc_endpoints = ["ecr.api", "ecr.dkr"].iter().map(|s| interface_endpoint(s, &["sg-endpoint"])).collect();
        let mut sts = interface_endpoint("sts", &["sg-endpoint"]);
        sts.private_dns_enabled = false;
        snap.vpc_endpoints.push(sts);
        routes(&mut snap, RouteOut::Internet, RouteOut::None);
        let results = check(&snap, &FlowContext::default());
        let r = flow(&results, FlowName::AwsApis, "ng-1");
        assert_eq!(r.status, FlowStatus::Open);
        assert_eq!(
            r.detail,
            "node group ng-1 reaches AWS APIs on tcp 443: ec2, sts, s3 over the internet (0.0.0.0/0 routed to a NAT or internet gateway); ecr.api, ecr.dkr through their VPC endpoints"
        );
        let snap = no_route_out(snap);
        let results = check(&snap, &FlowContext::default());
        let r = flow(&results, FlowName::AwsApis, "ng-1");
        let peers: Vec<&str> =
            r.missing.iter().filter_map(|m| m.absent_endpoint.as_ref().map(|e| e.as_str())).collect();
        assert_eq!(peers, ["com.amazonaws.eu-west-1.ec2", "com.amazonaws.eu-west-1.sts", "com.amazonaws.eu-west-1.s3"]);
    }

    #[test]
    fn ipv6_clusters_reach_aws_apis_over_either_family() {
        let base = || {
            let snap = without(terraform_v19(EndpointMode::Private), "sg-node", "egress all to 0.0.0.0/0");
            ClusterSnapshot { ip_family: IpFamily::Ipv6, ..snap }
        };
        // (node egress, IPv4 route, IPv6 route, status)
        let cases = [
            ("egress tcp 443 to ::/0", RouteOut::None, RouteOut::Internet, FlowStatus::Open),
            ("egress tcp 443 to 0.0.0.0/0", RouteOut::Internet, RouteOut::None, FlowStatus::Open),
            ("egress tcp 443 to ::/0", RouteOut::Internet, RouteOut::None, FlowStatus::Closed),
            ("egress tcp 443 to ::/0", RouteOut::None, RouteOut::Indirect, FlowStatus::Unknown),
            ("egress tcp 443 to ::/0", RouteOut::None, RouteOut::None, FlowStatus::Closed),
        ];
        for (egress, v4, v6, want) in cases {
            let mut snap = with(base(), "sg-node", egress);
            routes(&mut snap, v4, v6);
            let results = check(&snap, &FlowContext::default());
            let r = flow(&results, FlowName::AwsApis, "ng-1");
            assert_eq!(r.status, want, "{egress} {v4}/{v6}: {}", r.detail);
        }
        // Neither family's egress: the fix offered is the IPv6 one.
        let mut snap = base();
        routes(&mut snap, RouteOut::Internet, RouteOut::Internet);
        let results = check(&snap, &FlowContext::default());
        let fixes: Vec<String> =
            flow(&results, FlowName::AwsApis, "ng-1").missing.iter().map(|m| m.rule.to_string()).collect();
        assert_eq!(fixes, ["egress tcp 443 to ::/0"]);
    }

    /// Security groups for pods as the user guide sets them up: the cluster and node SGs admit
    /// tcp+udp 53 from the pod SG, the pod SG admits the node SG.
    fn with_pod_sgs(pod_rules: &[&str]) -> ClusterSnapshot {
        let snap = terraform_v19(EndpointMode::Private);
        let snap = with(with(snap, "sg-node", "ingress tcp 53 from sg-pod"), "sg-node", "ingress udp 53 from sg-pod");
        let mut snap = snap;
        snap.groups.insert("sg-pod".into(), group("sg-pod", Role::Pod, pod_rules));
        snap.pod_security_group_sets = vec![vec!["sg-pod".into(), "sg-node".into()]];
        snap
    }

    #[test]
    fn pod_flows_appear_only_with_pod_sgs_and_name_their_endpoint() {
        let plain = check(&terraform_v19(EndpointMode::Private), &FlowContext::default());
        assert!(plain.iter().all(|f| f.name != FlowName::PodDns && f.name != FlowName::PodProbes));

        let snap = with_pod_sgs(&["ingress all from sg-node", "egress all to 0.0.0.0/0"]);
        let results = check(&snap, &FlowContext::default());
        let dns = flow(&results, FlowName::PodDns, "pods sg-node+sg-pod");
        assert_eq!(dns.status, FlowStatus::Open, "{}", dns.detail);
        assert_eq!(dns.detail, "pods with SGs sg-node, sg-pod reach CoreDNS on every node group on tcp and udp 53");
        let probes = flow(&results, FlowName::PodProbes, "pods sg-node+sg-pod");
        assert_eq!(probes.status, FlowStatus::Open, "{}", probes.detail);
        assert_eq!(probes.detail, "every node group's kubelet reaches pods with SGs sg-node, sg-pod for probes");
    }

    #[test]
    fn pod_dns_closes_when_coredns_stops_admitting_the_pod_sg() {
        let snap = with_pod_sgs(&["ingress tcp 8080 from sg-node", "egress all to 0.0.0.0/0"]);
        // The pod set also carries the node SG here, which admits itself; a pod set without it:
        let mut snap = without(snap, "sg-node", "ingress udp 53 from sg-pod");
        snap.pod_security_group_sets = vec![vec!["sg-pod".into()]];
        let results = check(&snap, &FlowContext::default());
        let r = flow(&results, FlowName::PodDns, "pods sg-pod");
        assert_eq!(r.status, FlowStatus::Closed);
        assert_eq!(
            r.missing.iter().map(missing).collect::<Vec<_>>(),
            vec![("sg-node".to_string(), Role::Node, "ingress udp 53 from sg-pod".to_string())]
        );
        // Probes: the pod SG admits tcp 8080 from the node SG, which may send anything.
        assert_eq!(flow(&results, FlowName::PodProbes, "pods sg-pod").status, FlowStatus::Open);
    }

    #[test]
    fn probes_blocked_by_the_pod_sg_close_under_strict_pass_under_standard_and_are_unknown_otherwise() {
        let gap = "sg-pod (pod) of pods with SGs sg-pod has no ingress all from node group ng-1: kubelet probes fail under the VPC CNI's strict pod-SG enforcing mode";
        let cases = [
            (PodSgEnforcingMode::Strict, FlowStatus::Closed, gap.to_string(), 1),
            (
                PodSgEnforcingMode::Standard,
                FlowStatus::Open,
                "the VPC CNI's pod-SG enforcing mode is standard: kubelet probes to pods with SGs sg-pod are not filtered by their SGs".to_string(),
                0,
            ),
            (
                PodSgEnforcingMode::Unknown,
                FlowStatus::Unknown,
                format!("{gap} (the default), not under standard, and the mode cannot be read (a self-managed vpc-cni)"),
                0,
            ),
        ];
        for (mode, want, detail, fixes) in cases {
            let mut snap = with_pod_sgs(&["egress all to 0.0.0.0/0"]);
            snap.pod_security_group_sets = vec![vec!["sg-pod".into()]];
            snap.data_plane.pod_sg_enforcing_mode = mode;
            let results = check(&snap, &FlowContext::default());
            let r = flow(&results, FlowName::PodProbes, "pods sg-pod");
            assert_eq!((r.status, &r.detail, r.missing.len()), (want, &detail, fixes), "{}", mode.as_str());
        }
    }
}
