//! What one poll sees of one cluster: identity, endpoint mode, style, and its groups by role.

use std::collections::BTreeMap;
use std::fmt;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{ParseError, Rule};

/// The role a security group plays in a cluster (design.md §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Cluster,
    ControlPlane,
    Node,
    RemoteAccess,
    Endpoint,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::Cluster, Role::ControlPlane, Role::Node, Role::RemoteAccess, Role::Endpoint];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Cluster => "cluster",
            Role::ControlPlane => "control-plane",
            Role::Node => "node",
            Role::RemoteAccess => "remote-access",
            Role::Endpoint => "endpoint",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| {
            ParseError(format!(
                "unknown role `{s}`: expected cluster, control-plane, node, remote-access or endpoint"
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

/// Which tool laid the groups out (reference §2–§4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Style {
    Console,
    Eksctl,
    Terraform,
    Unknown,
}

impl Style {
    pub const ALL: [Style; 4] = [Style::Console, Style::Eksctl, Style::Terraform, Style::Unknown];

    pub fn as_str(self) -> &'static str {
        match self {
            Style::Console => "console",
            Style::Eksctl => "eksctl",
            Style::Terraform => "terraform",
            Style::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        Style::ALL.into_iter().find(|m| m.as_str() == s).ok_or_else(|| {
            ParseError(format!("unknown style `{s}`: expected console, eksctl, terraform or unknown"))
        })
    }
}

impl fmt::Display for Style {
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityGroup {
    pub id: String,
    pub name: String,
    pub description: String,
    pub owner_id: Option<String>,
    pub vpc_id: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub role: Role,
    /// Canonical atomic rules, both directions (see `model::normalize`).
    pub rules: Vec<Rule>,
}

impl SecurityGroup {
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.get(key).map(String::as_str)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeGroupKind {
    Managed,
    SelfManaged,
}

/// A set of nodes that share one set of security groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeGroup {
    pub name: String,
    pub kind: NodeGroupKind,
    /// Every SG on the nodes' ENIs (for managed groups without a launch template: the cluster SG
    /// plus the remote-access SG).
    pub security_group_ids: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VpcEndpointKind {
    Interface,
    Gateway,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpcEndpoint {
    pub id: String,
    /// `com.amazonaws.<region>.<service>`
    pub service_name: String,
    pub kind: VpcEndpointKind,
    pub security_group_ids: Vec<String>,
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

/// Everything the differ and the flow checker need about one cluster, as seen by one poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSnapshot {
    pub id: ClusterId,
    pub endpoint_mode: EndpointMode,
    pub public_access_cidrs: Vec<String>,
    pub style: Style,
    pub vpc_id: String,
    pub vpc_cidrs: Vec<IpNet>,
    pub cluster_security_group_id: Option<String>,
    pub control_plane_security_group_ids: Vec<String>,
    /// Every group of the cluster, by id, each with its one role.
    pub groups: BTreeMap<String, SecurityGroup>,
    pub node_groups: Vec<NodeGroup>,
    pub vpc_endpoints: Vec<VpcEndpoint>,
    /// Managed prefix lists the source could name: id → name (`com.amazonaws.eu-west-1.s3`).
    pub prefix_lists: BTreeMap<String, String>,
    /// Things the source noticed but that did not stop the poll (a group that no longer exists).
    pub warnings: Vec<String>,
}

impl ClusterSnapshot {
    pub fn groups_with_role(&self, role: Role) -> impl Iterator<Item = &SecurityGroup> {
        self.groups.values().filter(move |g| g.role == role)
    }

    /// The SGs on the control-plane ENIs: the cluster SG plus the additional ones.
    pub fn control_plane_set(&self) -> Vec<String> {
        let mut set: Vec<String> = self.cluster_security_group_id.iter().cloned().collect();
        set.extend(self.control_plane_security_group_ids.iter().cloned());
        set.sort();
        set.dedup();
        set
    }

    /// The SG sets of the nodes: one per node group; when the snapshot knows of no node group,
    /// the cluster SG alone (Fargate, managed nodes without a launch template).
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
