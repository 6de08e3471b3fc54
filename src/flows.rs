//! The traffic EKS needs, checked over the SG *sets* on each endpoint: a flow is open only if
//! the source set allows the egress and the destination set allows the ingress.

use serde::{Deserialize, Serialize};

use ipnet::{IpNet, Ipv4Net};

use crate::model::{
    peer_covers, traffic_union_covers, ClusterSnapshot, Direction, EndpointMode, Peer, PortRange, Role, Rule,
    Traffic, VpcEndpoint, VpcEndpointKind,
};

/// The required flows of design.md §2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlowName {
    Kubelet,
    Api,
    Dns,
    Webhooks,
    AwsApis,
}

impl FlowName {
    pub const ALL: [FlowName; 5] = [FlowName::Kubelet, FlowName::Api, FlowName::Dns, FlowName::Webhooks, FlowName::AwsApis];

    pub fn as_str(self) -> &'static str {
        match self {
            FlowName::Kubelet => "kubelet",
            FlowName::Api => "api",
            FlowName::Dns => "dns",
            FlowName::Webhooks => "webhooks",
            FlowName::AwsApis => "aws-apis",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowStatus {
    Open,
    Closed,
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
    /// exist): findings show it as the peer instead of `rule.peer`.
    pub peer_label: Option<String>,
}

/// The verdict on one flow for one node group (or for the cluster when the flow has no node side).
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

/// Evaluates every required flow of `snapshot`: one result per flow per node group, in the
/// order of [`FlowName::ALL`], node groups in the snapshot's order.
pub fn check(snapshot: &ClusterSnapshot, ctx: &FlowContext) -> Vec<FlowResult> {
    let control_plane = Side::control_plane(snapshot);
    let nodes: Vec<Side> = snapshot
        .node_sets()
        .into_iter()
        .map(|(name, ids)| Side::node_group(snapshot, name, ids))
        .collect();
    let mut webhook_ports = ctx.webhook_ports.clone();
    webhook_ports.sort_unstable();
    webhook_ports.dedup();

    let mut out = Vec::with_capacity(FlowName::ALL.len() * nodes.len());
    for name in FlowName::ALL {
        for node in &nodes {
            let mut flow = Flow::new(snapshot, name, node);
            match name {
                FlowName::Kubelet => kubelet(&mut flow, &control_plane, node),
                FlowName::Api => api(&mut flow, &control_plane, node),
                FlowName::Dns => dns(&mut flow, node, &nodes),
                FlowName::Webhooks => webhooks(&mut flow, &control_plane, node, &webhook_ports),
                FlowName::AwsApis => aws_apis(&mut flow, node),
            }
            out.push(flow.finish());
        }
    }
    out
}

const KUBELET_PORT: u16 = 10250;
const HTTPS_PORT: u16 = 443;
const DNS_PORT: u16 = 53;
/// Interface endpoints a node cannot join or pull images without, in a private cluster
/// (reference §5; S3 is a gateway endpoint, checked through its prefix list).
const PRIVATE_INTERFACE_SERVICES: [&str; 4] = ["ec2", "ecr.api", "ecr.dkr", "sts"];

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
        flow.open_detail =
            format!("{} reaches the API through the control-plane ENIs on tcp {HTTPS_PORT}", node.label);
    } else {
        // The public endpoint is outside the VPC: only the node's egress is an SG matter
        // (publicAccessCidrs governs the other end).
        flow.egress(node, &Far::Internet, tcp(HTTPS_PORT));
        flow.open_detail = format!("{} reaches the public API endpoint on tcp {HTTPS_PORT}", node.label);
    }
}

fn dns(flow: &mut Flow, source: &Side, nodes: &[Side]) {
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
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    flow.open_detail = format!("the control plane reaches {} on tcp {}", node.label, list.join(", "));
}

fn aws_apis(flow: &mut Flow, node: &Side) {
    let snapshot = flow.snapshot;
    if snapshot.endpoint_mode != EndpointMode::Private {
        flow.egress(node, &Far::Internet, tcp(HTTPS_PORT));
        flow.open_detail = format!("{} reaches AWS APIs over the internet on tcp {HTTPS_PORT}", node.label);
        return;
    }
    for service in PRIVATE_INTERFACE_SERVICES {
        let endpoints: Vec<&VpcEndpoint> = snapshot
            .vpc_endpoints
            .iter()
            .filter(|e| e.kind == VpcEndpointKind::Interface && e.service() == service)
            .collect();
        if endpoints.is_empty() {
            flow.missing_endpoint(node, service);
            continue;
        }
        // Any one working endpoint of the service is enough; report the first one's gaps.
        let mut first_gaps = None;
        for endpoint in &endpoints {
            let side = Side::endpoint(endpoint, service);
            let mut trial = Flow::new(snapshot, flow.name, node);
            trial.both_ways(node, &side, tcp(HTTPS_PORT));
            if trial.gaps.is_empty() {
                first_gaps = None;
                break;
            }
            first_gaps.get_or_insert(trial.gaps);
        }
        flow.gaps.extend(first_gaps.unwrap_or_default());
    }
    let s3 = Far::S3 {
        prefix_lists: snapshot
            .prefix_lists
            .iter()
            .filter(|(_, name)| name.ends_with(".s3"))
            .map(|(id, _)| id.clone())
            .collect(),
    };
    flow.egress(node, &s3, tcp(HTTPS_PORT));
    flow.open_detail = format!(
        "{} reaches the {} endpoints and S3 on tcp {HTTPS_PORT}",
        node.label,
        PRIVATE_INTERFACE_SERVICES.join(", ")
    );
}

/// One end of a flow: a set of SGs, what messages call it, and the SG a fix belongs on.
struct Side {
    label: String,
    ids: Vec<String>,
    /// Where a missing rule of this side goes, and the peer the other side names.
    fix: Option<String>,
    /// The role a fix group is reported with when the snapshot does not know the group.
    default_role: Role,
}

impl Side {
    fn control_plane(snapshot: &ClusterSnapshot) -> Side {
        let ids = snapshot.control_plane_set();
        let fix = snapshot
            .control_plane_security_group_ids
            .iter()
            .find(|id| snapshot.groups.get(*id).is_some_and(|g| g.role == Role::ControlPlane))
            .or(snapshot.cluster_security_group_id.as_ref())
            .or(ids.first())
            .cloned();
        Side { label: "the control plane".to_string(), ids, fix, default_role: Role::Cluster }
    }

    fn node_group(snapshot: &ClusterSnapshot, name: String, ids: Vec<String>) -> Side {
        let fix = ids
            .iter()
            .find(|id| snapshot.groups.get(*id).is_some_and(|g| g.role == Role::Node))
            .or(ids.first())
            .cloned();
        Side { label: format!("node group {name}"), ids, fix, default_role: Role::Node }
    }

    fn endpoint(endpoint: &VpcEndpoint, service: &str) -> Side {
        let mut ids = endpoint.security_group_ids.clone();
        ids.sort();
        ids.dedup();
        Side {
            label: format!("the {service} endpoint {}", endpoint.id),
            fix: ids.first().cloned(),
            ids,
            default_role: Role::Endpoint,
        }
    }

    /// Does `peer` name this side: one of its groups, or a CIDR holding the whole VPC (the side
    /// has addresses somewhere in the VPC, so a narrower CIDR proves nothing)?
    fn is_named_by(&self, snapshot: &ClusterSnapshot, peer: &Peer) -> bool {
        match peer {
            Peer::Group { id, .. } => self.ids.contains(id),
            Peer::Ipv4(_) | Peer::Ipv6(_) => snapshot.vpc_cidrs.iter().any(|v| peer_covers(peer, &vpc_peer(*v))),
            Peer::PrefixList(_) => false,
        }
    }
}

fn vpc_peer(net: IpNet) -> Peer {
    match net {
        IpNet::V4(n) => Peer::Ipv4(n),
        IpNet::V6(n) => Peer::Ipv6(n),
    }
}

/// The far end of an egress or ingress check.
enum Far<'a> {
    Sgs(&'a Side),
    /// `0.0.0.0/0` or `::/0`.
    Internet,
    /// The S3 gateway endpoint: its prefix lists, or `0.0.0.0/0`.
    S3 { prefix_lists: Vec<String> },
}

impl Far<'_> {
    fn label(&self) -> String {
        match self {
            Far::Sgs(side) => side.label.clone(),
            Far::Internet => "the internet".to_string(),
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
            Far::Sgs(side) => side.fix.as_ref().map(Peer::group),
            Far::Internet => Some(Peer::Ipv4(Ipv4Net::default())),
            Far::S3 { prefix_lists } => Some(
                prefix_lists.first().map_or(Peer::Ipv4(Ipv4Net::default()), |id| Peer::PrefixList(id.clone())),
            ),
        }
    }
}

/// One flow being evaluated: the gaps found so far and the detail to give if there are none.
struct Flow<'a> {
    snapshot: &'a ClusterSnapshot,
    name: FlowName,
    node_group: String,
    open_detail: String,
    /// Each gap: the sentence saying which side lacks what, and the rule that would close it.
    gaps: Vec<(String, Option<MissingSide>)>,
}

impl<'a> Flow<'a> {
    fn new(snapshot: &'a ClusterSnapshot, name: FlowName, node: &Side) -> Self {
        let node_group = node.label.trim_start_matches("node group ").to_string();
        Flow { snapshot, name, node_group, open_detail: String::new(), gaps: Vec::new() }
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
        let snapshot = self.snapshot;
        let admitted = traffic_union_covers(
            holder
                .ids
                .iter()
                .filter_map(|id| snapshot.groups.get(id))
                .flat_map(|g| &g.rules)
                .filter(|r| r.direction == direction && far.admits(snapshot, &r.peer))
                .map(|r| &r.traffic),
            &traffic,
        );
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
                peer_label: None,
            }),
            _ => None,
        };
        self.gaps.push((reason, side));
    }

    /// A private cluster without an interface endpoint every node needs: no SG rule can fix
    /// that, so the finding names the service where a rule would name its peer.
    fn missing_endpoint(&mut self, node: &Side, service: &str) {
        let service_name = format!("com.amazonaws.{}.{service}", self.snapshot.id.region);
        let reason = format!("no VPC endpoint for {service_name}");
        let side = node.fix.as_ref().map(|group_id| MissingSide {
            group_id: group_id.clone(),
            role: self.role_of(node, group_id),
            rule: Rule::new(Direction::Egress, tcp(HTTPS_PORT), self.vpc_peer_for_fix()),
            reason: format!("{reason}: {} cannot reach {service} privately", node.label),
            peer_label: Some(service_name),
        });
        self.gaps.push((reason, side));
    }

    /// Where the nodes would send traffic for an endpoint that does not exist yet: the VPC.
    fn vpc_peer_for_fix(&self) -> Peer {
        self.snapshot.vpc_cidrs.first().map_or(Peer::Ipv4(Ipv4Net::default()), |n| vpc_peer(*n))
    }

    fn role_of(&self, side: &Side, group_id: &str) -> Role {
        self.snapshot.groups.get(group_id).map_or(side.default_role, |g| g.role)
    }

    fn finish(self) -> FlowResult {
        let node_group = Some(self.node_group);
        if self.gaps.is_empty() {
            return FlowResult {
                name: self.name,
                node_group,
                status: FlowStatus::Open,
                detail: self.open_detail,
                missing: Vec::new(),
            };
        }
        let mut reasons: Vec<String> = Vec::new();
        let mut missing: Vec<MissingSide> = Vec::new();
        for (reason, side) in self.gaps {
            if !reasons.contains(&reason) {
                reasons.push(reason);
            }
            if let Some(side) = side {
                if !missing.iter().any(|m| m.group_id == side.group_id && m.rule == side.rule) {
                    missing.push(side);
                }
            }
        }
        FlowResult { name: self.name, node_group, status: FlowStatus::Closed, detail: reasons.join("; "), missing }
    }
}
