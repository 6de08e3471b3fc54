//! Baselines: the expected rules per role, from built-in profiles or files, and their
//! resolution against one cluster's snapshot. Exceptions live here too.

mod exceptions;
mod format;
pub mod guardrails;
mod owners;
mod profiles;
mod record;
mod resolve;

use std::fmt;

use crate::model::{Direction, EndpointMode, ParseError, Peer, Role, Style, Traffic};

pub use exceptions::{Exception, ExceptionMatch};
pub use format::{load_file, parse_str, to_toml, BaselineError};
pub use owners::{owner, Controller, OwnedRule};
pub use profiles::{builtin, builtin_shared, Profile, UnknownProfile, PROFILES};
pub use record::{record, Recording};
pub use resolve::{
    resolve, resolve_borrowed, webhook_rules, Expected, ResolveContext, ResolvedBaseline, ResolvedRule, SnapshotPeers,
};

/// A baseline rule's peer, named the way baselines name them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PeerSpec {
    Concrete(Peer),
    /// Every group of this role in the cluster.
    Role(Role),
    /// The group holding the rule.
    SelfRef,
    /// Every CIDR of the cluster's VPC.
    VpcCidr,
    /// A managed prefix list by name (`com.amazonaws.eu-west-1.s3`); the id is looked up.
    PrefixListName(String),
    /// The AWS-managed S3 prefix list of the cluster's region (gateway endpoint).
    S3PrefixList,
    /// The remote node CIDRs of a cluster with hybrid nodes (`remoteNetworkConfig`).
    RemoteNodeCidr,
    /// The remote pod CIDRs of a cluster with hybrid nodes.
    RemotePodCidr,
}

impl PeerSpec {
    /// `role:<r>`, `self`, `vpc-cidr`, `remote-node-cidr`, `remote-pod-cidr`, `cidr:<v4|v6>`, `prefix-list:<pl-id|name>`, `sg:<id>`,
    /// `sg:<account>/<id>`; a bare CIDR, `pl-…` or `sg-…` is accepted as well.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let s = s.trim();
        if s == "self" {
            return Ok(PeerSpec::SelfRef);
        }
        if s == "vpc-cidr" {
            return Ok(PeerSpec::VpcCidr);
        }
        if s == "prefix-list:s3" {
            return Ok(PeerSpec::S3PrefixList);
        }
        if s == "remote-node-cidr" {
            return Ok(PeerSpec::RemoteNodeCidr);
        }
        if s == "remote-pod-cidr" {
            return Ok(PeerSpec::RemotePodCidr);
        }
        if let Some(r) = s.strip_prefix("role:") {
            return Role::parse(r).map(PeerSpec::Role);
        }
        if let Some(c) = s.strip_prefix("cidr:") {
            return match Peer::parse(c)? {
                p @ (Peer::Ipv4(_) | Peer::Ipv6(_)) => Ok(PeerSpec::Concrete(p)),
                _ => Err(ParseError(format!("`{s}` is not a CIDR"))),
            };
        }
        if let Some(p) = s.strip_prefix("prefix-list:") {
            return Ok(if p.starts_with("pl-") {
                PeerSpec::Concrete(Peer::PrefixList(p.to_string()))
            } else {
                PeerSpec::PrefixListName(p.to_string())
            });
        }
        if let Some(g) = s.strip_prefix("sg:") {
            return match Peer::parse(g)? {
                p @ Peer::Group { .. } => Ok(PeerSpec::Concrete(p)),
                _ => Err(ParseError(format!("`{s}` is not a security group id (sg-…)"))),
            };
        }
        Peer::parse(s).map(PeerSpec::Concrete).map_err(|_| {
            ParseError(format!(
                "bad peer `{s}`: expected role:<role>, self, vpc-cidr, remote-node-cidr, remote-pod-cidr, cidr:<cidr>, prefix-list:<pl-id|name>, or sg:<id>"
            ))
        })
    }
}

impl fmt::Display for PeerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerSpec::Concrete(p @ (Peer::Ipv4(_) | Peer::Ipv6(_))) => write!(f, "cidr:{p}"),
            PeerSpec::Concrete(p @ Peer::PrefixList(_)) => write!(f, "prefix-list:{p}"),
            PeerSpec::Concrete(p @ Peer::Group { .. }) => write!(f, "sg:{p}"),
            PeerSpec::Role(r) => write!(f, "role:{r}"),
            PeerSpec::SelfRef => f.write_str("self"),
            PeerSpec::VpcCidr => f.write_str("vpc-cidr"),
            PeerSpec::PrefixListName(n) => write!(f, "prefix-list:{n}"),
            PeerSpec::S3PrefixList => f.write_str("prefix-list:s3"),
            PeerSpec::RemoteNodeCidr => f.write_str("remote-node-cidr"),
            PeerSpec::RemotePodCidr => f.write_str("remote-pod-cidr"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleStatus {
    /// Must be present: gone is drift (`missing`).
    Required,
    /// May be present: not drift when present, not drift when absent.
    Allowed,
}

/// One rule of a baseline, before resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaselineRule {
    pub role: Role,
    /// Narrows the rule to one group of the role, by id or name (recorded baselines of clusters
    /// with several groups of one role).
    pub group: Option<String>,
    pub direction: Direction,
    pub traffic: Traffic,
    pub peer: PeerSpec,
    pub status: RuleStatus,
    pub why: Option<String>,
    /// The source key the rule rests on (reference §0: `D-2022b`, `TF`, `EKSCTL`, …).
    pub source: Option<String>,
}

/// A whole baseline: built-in or loaded from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Baseline {
    /// Where it came from, for messages: `builtin:eks-minimal` or a path.
    pub origin: String,
    /// A file may extend a built-in profile: the profile's rules (for the cluster's mode and
    /// style) are added to the file's.
    pub profile: Option<String>,
    pub rules: Vec<BaselineRule>,
}

/// What a target's `baseline` names: a built-in profile (rules depend on each cluster's mode and
/// style) or a loaded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaselineRef {
    Profile(Profile),
    File(Baseline),
}

impl BaselineRef {
    /// The concrete rules for one cluster: a profile's variant for its mode and style, or the
    /// file's rules plus those of the profile it extends.
    pub fn for_cluster(&self, mode: EndpointMode, style: Style) -> Baseline {
        match self {
            BaselineRef::Profile(p) => p.build(mode, style),
            BaselineRef::File(b) => {
                let mut out = b.clone();
                if let Some(p) = &b.profile {
                    if let Some(base) = builtin(p, mode, style) {
                        out.rules.extend(base.rules);
                    }
                }
                out
            }
        }
    }

    /// The rules of [`for_cluster`](Self::for_cluster), in its order, borrowed instead of built:
    /// the file's own rules, then those of the (shared, built-once) profile. An unknown profile
    /// contributes nothing, as there.
    pub fn rule_sets(&self, mode: EndpointMode, style: Style) -> [&[BaselineRule]; 2] {
        let shared = |p: &str| builtin_shared(p, mode, style).map_or(&[][..], |b| b.rules.as_slice());
        match self {
            BaselineRef::Profile(p) => [p.shared(mode, style).rules.as_slice(), &[]],
            BaselineRef::File(b) => [b.rules.as_slice(), b.profile.as_deref().map_or(&[][..], shared)],
        }
    }
}

/// Hand-built snapshots for the tests of this module.
#[cfg(test)]
pub(crate) mod fixtures {
    use std::collections::BTreeMap;

    use crate::model::{
        canonicalize, ClusterId, ClusterSnapshot, Direction, EndpointMode, NodeGroup, NodeGroupKind, Peer, Role, Rule,
        SecurityGroup, Style, Traffic,
    };

    /// `rule("ingress", "tcp", "443", "sg-cp")`; empty ports for none.
    pub fn rule(direction: &str, protocol: &str, ports: &str, peer: &str) -> Rule {
        let ports = Some(ports).filter(|p| !p.is_empty());
        Rule::new(
            Direction::parse(direction).unwrap(),
            Traffic::parse(protocol, ports).unwrap(),
            Peer::parse(peer).unwrap(),
        )
    }

    pub fn group(id: &str, name: &str, role: Role, rules: Vec<Rule>) -> SecurityGroup {
        SecurityGroup {
            id: id.into(),
            name: name.into(),
            description: format!("{name} group"),
            owner_id: Some("111122223333".into()),
            vpc_id: Some("vpc-1".into()),
            tags: BTreeMap::new(),
            roles: [role].into(),
            rules: canonicalize(rules),
        }
    }

    /// A private terraform-style cluster: the cluster SG, one control-plane SG, two node SGs
    /// (two node groups), one endpoint SG; S3 and DynamoDB prefix lists; a dual-stack VPC.
    pub fn snapshot() -> ClusterSnapshot {
        let groups = [
            group(
                "sg-cluster",
                "eks-cluster-sg-demo-1234",
                Role::Cluster,
                vec![rule("ingress", "all", "", "sg-cluster"), rule("egress", "all", "", "0.0.0.0/0")],
            ),
            group(
                "sg-cp",
                "demo-cluster-2024",
                Role::ControlPlane,
                vec![rule("ingress", "tcp", "443", "sg-node-a"), rule("ingress", "tcp", "443", "sg-node-b")],
            ),
            group(
                "sg-node-a",
                "demo-node-a",
                Role::Node,
                vec![
                    rule("ingress", "tcp", "10250", "sg-cp"),
                    rule("ingress", "udp", "53", "sg-node-a"),
                    rule("ingress", "udp", "53", "sg-node-b"),
                    rule("ingress", "icmp", "8/0", "10.0.0.0/16"),
                    rule("egress", "all", "", "0.0.0.0/0"),
                    rule("egress", "all", "", "::/0"),
                    rule("egress", "tcp", "443", "pl-s3"),
                ],
            ),
            group(
                "sg-node-b",
                "demo-node-b",
                Role::Node,
                vec![
                    rule("ingress", "tcp", "10250", "sg-cp"),
                    rule("ingress", "tcp", "22", "0.0.0.0/0"),
                    rule("ingress", "tcp", "1025-65535", "sg-node-b"),
                    rule("ingress", "47", "", "10.0.0.0/16"),
                    rule("egress", "all", "", "0.0.0.0/0"),
                ],
            ),
            group(
                "sg-ep",
                "demo-endpoints",
                Role::Endpoint,
                vec![rule("ingress", "tcp", "443", "sg-node-a"), rule("ingress", "tcp", "443", "444455556666/sg-peer")],
            ),
        ];
        ClusterSnapshot {
            id: ClusterId { account_id: "111122223333".into(), region: "eu-west-1".into(), name: "demo".into() },
            endpoint_mode: EndpointMode::Private,
            public_access_cidrs: vec![],
            style: Style::Terraform,
            ip_family: crate::model::IpFamily::Ipv4,
            remote_network: None,
            vpc_id: "vpc-1".into(),
            vpc_cidrs: vec![
                "10.0.0.0/16".parse().unwrap(),
                "100.64.0.0/16".parse().unwrap(),
                "2600:1f18:1:2300::/56".parse().unwrap(),
            ],
            cluster_security_group_id: Some("sg-cluster".into()),
            control_plane_security_group_ids: vec!["sg-cp".into()],
            groups: groups.into_iter().map(|g| (g.id.clone(), g)).collect(),
            node_groups: vec![
                NodeGroup {
                    name: "a".into(),
                    kind: NodeGroupKind::Managed,
                    security_group_ids: vec!["sg-node-a".into()],
                    route_out_v4: crate::model::RouteOut::NoData,
                    route_out_v6: crate::model::RouteOut::NoData,
                },
                NodeGroup {
                    name: "b".into(),
                    kind: NodeGroupKind::SelfManaged,
                    security_group_ids: vec!["sg-node-b".into()],
                    route_out_v4: crate::model::RouteOut::NoData,
                    route_out_v6: crate::model::RouteOut::NoData,
                },
            ],
            vpc_endpoints: vec![],
            pod_security_group_sets: vec![],
            data_plane: Default::default(),
            peer_groups: BTreeMap::new(),
            prefix_lists: [
                ("pl-s3".to_string(), "com.amazonaws.eu-west-1.s3".to_string()),
                ("pl-ddb".to_string(), "com.amazonaws.eu-west-1.dynamodb".to_string()),
            ]
            .into_iter()
            .collect(),
            warnings: vec![],
        }
    }
}
