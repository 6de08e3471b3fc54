//! What one poll sees of one cluster: identity, endpoint mode, style, and its groups by role.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{ParseError, Rule};

/// The role a security group plays in a cluster (design.md §1). One group can hold several;
/// the declaration order is the priority of `SecurityGroup::primary_role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Cluster,
    ControlPlane,
    Node,
    RemoteAccess,
    /// Given to pods by *security groups for pods* (branch ENIs).
    Pod,
    Endpoint,
}

impl Role {
    pub const ALL: [Role; 6] =
        [Role::Cluster, Role::ControlPlane, Role::Node, Role::RemoteAccess, Role::Pod, Role::Endpoint];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Cluster => "cluster",
            Role::ControlPlane => "control-plane",
            Role::Node => "node",
            Role::RemoteAccess => "remote-access",
            Role::Pod => "pod",
            Role::Endpoint => "endpoint",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| {
            ParseError(format!(
                "unknown role `{s}`: expected cluster, control-plane, node, remote-access, pod or endpoint"
            ))
        })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `endpointPublicAccess` / `endpointPrivateAccess` of the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndpointMode {
    Public,
    PublicPrivate,
    Private,
}

impl EndpointMode {
    pub const ALL: [EndpointMode; 3] = [EndpointMode::Public, EndpointMode::PublicPrivate, EndpointMode::Private];

    pub fn from_access(public: bool, private: bool) -> Self {
        match (public, private) {
            (true, true) => EndpointMode::PublicPrivate,
            (false, true) => EndpointMode::Private,
            // EKS refuses (false, false); treat it as the default.
            _ => EndpointMode::Public,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EndpointMode::Public => "public",
            EndpointMode::PublicPrivate => "public-private",
            EndpointMode::Private => "private",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        EndpointMode::ALL.into_iter().find(|m| m.as_str() == s).ok_or_else(|| {
            ParseError(format!("unknown endpoint mode `{s}`: expected public, public-private or private"))
        })
    }

    /// Does node → API traffic stay in the VPC (through the control-plane ENIs)?
    pub fn api_in_vpc(self) -> bool {
        !matches!(self, EndpointMode::Public)
    }
}

impl fmt::Display for EndpointMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which tool laid the groups out (reference §2–§4), or EKS Auto Mode (`computeConfig.enabled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Style {
    Console,
    Eksctl,
    Terraform,
    AutoMode,
    Unknown,
}

impl Style {
    pub const ALL: [Style; 5] = [Style::Console, Style::Eksctl, Style::Terraform, Style::AutoMode, Style::Unknown];

    pub fn as_str(self) -> &'static str {
        match self {
            Style::Console => "console",
            Style::Eksctl => "eksctl",
            Style::Terraform => "terraform",
            Style::AutoMode => "auto-mode",
            Style::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        Style::ALL.into_iter().find(|m| m.as_str() == s).ok_or_else(|| {
            ParseError(format!("unknown style `{s}`: expected console, eksctl, terraform, auto-mode or unknown"))
        })
    }
}

impl fmt::Display for Style {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `kubernetesNetworkConfig.ipFamily`: the address family of pods and services.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpFamily {
    #[default]
    Ipv4,
    Ipv6,
}

impl IpFamily {
    pub fn as_str(self) -> &'static str {
        match self {
            IpFamily::Ipv4 => "ipv4",
            IpFamily::Ipv6 => "ipv6",
        }
    }
}

impl fmt::Display for IpFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `remoteNetworkConfig` of a cluster with hybrid nodes: the on-premises networks of the nodes
/// and of their pods, peers of the cluster SG.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RemoteNetwork {
    pub node_cidrs: Vec<IpNet>,
    pub pod_cidrs: Vec<IpNet>,
}

/// Where a node group's default route leads, from the route tables of its subnets.
///
/// The variants after `NoData` are ordered from closed to open, so the worst subnet of a group is
/// the minimum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RouteOut {
    /// No route tables known: the SG check alone decides.
    NoData,
    /// No default route: nothing leaves the VPC (a closed path).
    None,
    /// A default route only via a transit gateway, peering or another target: it may or may
    /// not reach the internet (flow status `unknown`).
    Indirect,
    /// A default route to a NAT gateway or internet gateway (egress-only IGW for `::/0`).
    Internet,
}

impl RouteOut {
    /// The outcome of a group spread over subnets: the worst subnet decides; subnets without
    /// data do not hide what the others say.
    pub fn worst(self, other: RouteOut) -> RouteOut {
        match (self, other) {
            (RouteOut::NoData, x) | (x, RouteOut::NoData) => x,
            (a, b) => a.min(b),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RouteOut::NoData => "no-data",
            RouteOut::None => "none",
            RouteOut::Indirect => "indirect",
            RouteOut::Internet => "internet",
        }
    }
}

impl fmt::Display for RouteOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Account, region and name: what identifies a cluster everywhere (labels, ids, state keys).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClusterId {
    pub account_id: String,
    pub region: String,
    pub name: String,
}

impl fmt::Display for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.account_id, self.region, self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecurityGroup {
    pub id: String,
    pub name: String,
    pub description: String,
    pub owner_id: Option<String>,
    pub vpc_id: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// Every role the group plays in the cluster; never empty.
    pub roles: BTreeSet<Role>,
    /// Canonical atomic rules, both directions (see `model::normalize`).
    pub rules: Vec<Rule>,
}

impl SecurityGroup {
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.get(key).map(String::as_str)
    }

    /// The one role the JSON report and the metrics show: the first of cluster, control-plane,
    /// node, remote-access, pod, endpoint that the group holds.
    pub fn primary_role(&self) -> Role {
        // `roles` is never empty where a source built the group; `Node` is the least
        // surprising reading of a group someone built by hand without one.
        self.roles.iter().next().copied().unwrap_or(Role::Node)
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// A group the cluster's rules name as a peer that plays no role in the cluster: a load
/// balancer's frontend or backend SG, a group of another VPC. Evidence for controller-owned rules.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerGroup {
    pub id: String,
    pub name: String,
    pub tags: BTreeMap<String, String>,
}

/// Who owns an endpoint of the data plane, which says what it is called and which flows it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeGroupKind {
    Managed,
    /// An Auto Scaling group of its own (`aws:autoscaling:groupName`), or untagged instances.
    SelfManaged,
    /// The nodes of one Karpenter NodePool (`karpenter.sh/nodepool`), Auto Mode's included.
    Karpenter,
    /// The pods of one Fargate profile: they carry the cluster SG.
    Fargate,
    /// Pods on the nodes' secondary ENIs whose SGs differ from the primary ENI's (VPC CNI custom
    /// networking, ENIConfig `securityGroups`): their own traffic leaves through those SGs.
    CustomNetworking,
}

impl NodeGroupKind {
    /// Does the endpoint run kubelets and CoreDNS (so the control plane calls it, and other
    /// endpoints resolve names on it)? Custom-networking pods are workloads only.
    pub fn runs_nodes(self) -> bool {
        !matches!(self, NodeGroupKind::CustomNetworking)
    }
}

/// One endpoint of the data plane: the exact SG set its traffic leaves and enters through,
/// named by the group that owns it (design.md §1). Instances of one group that carry different
/// sets are different node groups here.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeGroup {
    pub name: String,
    pub kind: NodeGroupKind,
    /// Every SG on the nodes' primary ENIs (for managed groups without a launch template: the
    /// cluster SG plus the remote-access SG; for a Fargate profile the cluster SG; for custom
    /// networking the secondary ENIs' SGs).
    pub security_group_ids: Vec<String>,
    /// Where IPv4 traffic to `0.0.0.0/0` goes from the group's subnets.
    pub route_out_v4: RouteOut,
    /// Where IPv6 traffic to `::/0` goes from the group's subnets.
    pub route_out_v6: RouteOut,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VpcEndpointKind {
    Interface,
    Gateway,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VpcEndpoint {
    pub id: String,
    /// `com.amazonaws.<region>.<service>`
    pub service_name: String,
    pub kind: VpcEndpointKind,
    pub security_group_ids: Vec<String>,
    /// Interface endpoints only: does the service's public name resolve to the endpoint?
    pub private_dns_enabled: bool,
}

impl VpcEndpoint {
    /// The part after `com.amazonaws.<region>.`: `ec2`, `ecr.dkr`, `s3`, …
    pub fn service(&self) -> &str {
        let mut parts = self.service_name.splitn(3, '.');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(_), Some(_), Some(rest)) => rest.split_once('.').map_or(rest, |(_, s)| s),
            _ => &self.service_name,
        }
    }
}

/// The VPC CNI's `POD_SECURITY_GROUP_ENFORCING_MODE`: whether kubelet probes to pods with their
/// own SGs pass through those SGs (`strict`, the default) or not (`standard`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PodSgEnforcingMode {
    Strict,
    Standard,
    /// The `vpc-cni` add-on is self-managed or was not read, and nothing else says.
    #[default]
    Unknown,
}

impl PodSgEnforcingMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PodSgEnforcingMode::Strict => "strict",
            PodSgEnforcingMode::Standard => "standard",
            PodSgEnforcingMode::Unknown => "unknown",
        }
    }
}

/// The SG set of the EFA interfaces of one node group's instances.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EfaSet {
    pub node_group: String,
    pub security_group_ids: Vec<String>,
}

/// What the data plane's endpoints need besides their SG sets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct DataPlane {
    /// Node groups whose instances have EFA interfaces: all traffic within their EFA SG set.
    pub efa: Vec<EfaSet>,
    pub pod_sg_enforcing_mode: PodSgEnforcingMode,
}

/// Everything the differ and the flow checker need about one cluster, as seen by one poll.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClusterSnapshot {
    pub id: ClusterId,
    pub endpoint_mode: EndpointMode,
    pub public_access_cidrs: Vec<String>,
    pub style: Style,
    pub ip_family: IpFamily,
    /// Hybrid nodes' networks, when the cluster has `remoteNetworkConfig`.
    pub remote_network: Option<RemoteNetwork>,
    pub vpc_id: String,
    pub vpc_cidrs: Vec<IpNet>,
    pub cluster_security_group_id: Option<String>,
    pub control_plane_security_group_ids: Vec<String>,
    /// Every group of the cluster, by id, each with its roles.
    pub groups: BTreeMap<String, SecurityGroup>,
    pub node_groups: Vec<NodeGroup>,
    pub vpc_endpoints: Vec<VpcEndpoint>,
    /// The distinct SG sets (each sorted) of the branch ENIs in the cluster VPC: one per kind of
    /// pod with its own security groups.
    pub pod_security_group_sets: Vec<Vec<String>>,
    /// EFA sets and the pod-SG enforcing mode.
    pub data_plane: DataPlane,
    /// Groups that the cluster's rules name as peers but that hold no role, by id.
    pub peer_groups: BTreeMap<String, PeerGroup>,
    /// Managed prefix lists the source could name: id → name (`com.amazonaws.eu-west-1.s3`).
    pub prefix_lists: BTreeMap<String, String>,
    /// Things the source noticed but that did not stop the poll (a group that no longer exists).
    pub warnings: Vec<String>,
}

impl ClusterSnapshot {
    pub fn groups_with_role(&self, role: Role) -> impl Iterator<Item = &SecurityGroup> {
        self.groups.values().filter(move |g| g.has_role(role))
    }

    /// The SGs on the control-plane ENIs: the cluster SG plus the additional ones.
    pub fn control_plane_set(&self) -> Vec<String> {
        let mut set: Vec<String> = self.cluster_security_group_id.iter().cloned().collect();
        set.extend(self.control_plane_security_group_ids.iter().cloned());
        set.sort();
        set.dedup();
        set
    }

    /// The SG sets of the data plane's endpoints: one per node group (Fargate profiles and
    /// custom-networking pods included); when the snapshot knows of none, the node SGs or else the
    /// cluster SG alone (what managed nodes without a launch template carry).
    pub fn node_sets(&self) -> Vec<(String, Vec<String>)> {
        if self.node_groups.is_empty() {
            let node: Vec<String> = self.groups_with_role(Role::Node).map(|g| g.id.clone()).collect();
            let set = if node.is_empty() { self.cluster_security_group_id.iter().cloned().collect() } else { node };
            return vec![("(default)".to_string(), set)];
        }
        self.node_groups
            .iter()
            .map(|ng| {
                let mut set = ng.security_group_ids.clone();
                set.sort();
                set.dedup();
                (ng.name.clone(), set)
            })
            .collect()
    }
}
