//! Controller-owned rules (design.md §1): rules a controller writes on purpose and that come and
//! go with Kubernetes objects. A rule is owned when the evidence AWS leaves (its description,
//! the tags of its peer group) *and* its shape are the controller's; a rule that carries a
//! controller's description but opens more is drift like any other.
//!
//! What each controller writes, from its code:
//! - AWS Load Balancer Controller (kubernetes-sigs/aws-load-balancer-controller,
//!   `pkg/networking/networking_manager.go`, `pkg/networking/security_group_info.go`,
//!   `pkg/networking/backend_sg_provider.go`, `pkg/service/model_build_target_group.go`): ingress
//!   on the target ENIs' SG, described `elbv2.k8s.aws/targetGroupBinding=shared`, tcp or udp
//!   only. From the shared backend SG (tags `elbv2.k8s.aws/resource=backend-sg`,
//!   `elbv2.k8s.aws/cluster=<cluster>`) or a frontend SG it manages (`elbv2.k8s.aws/cluster`):
//!   the target ports, merged per source into one range (restricted rules, the default) or
//!   all tcp/udp ports (`--disable-restricted-sg-rules`). From CIDRs (NLBs without SGs): one
//!   port per rule — the traffic and health-check ports from the LB subnets, the VPC or the
//!   service's client ranges.
//! - EKS Auto Mode: the same controller run by EKS; the SGs it creates carry
//!   `eks:eks-cluster-name` and `service.eks.amazonaws.com/…` or `ingress.eks.amazonaws.com/…`
//!   tags (the tag keys AmazonEKSLoadBalancingPolicy allows), and EKS may only modify the
//!   cluster SG (reference D-auto).
//! - The in-tree cloud provider's NLB support (kubernetes/cloud-provider-aws,
//!   `aws_loadbalancer.go`): on the instances' SG, `kubernetes.io/rule/nlb/health=<lb>` (tcp
//!   NodePort from the VPC), `kubernetes.io/rule/nlb/client=<lb>` (the NodePort from the client
//!   ranges), `kubernetes.io/rule/nlb/mtu=<lb>` (ICMP 3/4, path-MTU discovery, from the clients).
//!
//! Shapes, tightly: CIDR peers are owned only inside the cluster's VPC (a client range beyond
//! it is a declaration the operator makes in a baseline or an exception), ports are never
//! `all`, and a rule that crosses a guardrail is never owned: guardrails bind controllers too.
//! The VPC resource controller and Karpenter write no SG rules: their groups are roles
//! (`pod`, `node`), not owners.

use std::fmt;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::guardrails;
use crate::model::{
    peer_covers, ClusterSnapshot, Direction, IcmpMatch, ParseError, Peer, PortRange, Role, Rule, SecurityGroup, Traffic,
};

/// A controller whose rules sgdrift recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Controller {
    AwsLoadBalancerController,
    EksAutoMode,
    InTreeCloudProvider,
}

impl Controller {
    /// Every recognised controller: the default of `trust_controllers`.
    pub const ALL: [Controller; 3] =
        [Controller::AwsLoadBalancerController, Controller::EksAutoMode, Controller::InTreeCloudProvider];

    pub fn as_str(self) -> &'static str {
        match self {
            Controller::AwsLoadBalancerController => "aws-load-balancer-controller",
            Controller::EksAutoMode => "eks-auto-mode",
            Controller::InTreeCloudProvider => "in-tree-cloud-provider",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        Controller::ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| {
            ParseError(format!(
                "unknown controller `{s}`: expected aws-load-balancer-controller, eks-auto-mode or in-tree-cloud-provider"
            ))
        })
    }
}

impl fmt::Display for Controller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule a trusted controller owns: no finding, listed in the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRule {
    pub group_id: String,
    pub rule: Rule,
    pub owned_by: Controller,
}

/// The description the AWS Load Balancer Controller gives every rule it manages.
const LBC_DESCRIPTION: &str = "elbv2.k8s.aws/targetGroupBinding=shared";
const LBC_CLUSTER_TAG: &str = "elbv2.k8s.aws/cluster";
const AUTO_MODE_CLUSTER_TAG: &str = "eks:eks-cluster-name";
const AUTO_MODE_TAG_PREFIXES: [&str; 2] = ["service.eks.amazonaws.com/", "ingress.eks.amazonaws.com/"];
const IN_TREE_NLB_PREFIX: &str = "kubernetes.io/rule/nlb/";

/// The controller that owns `rule` of `holder`, if the evidence and the shape both say one does.
pub fn owner(snapshot: &ClusterSnapshot, holder: &SecurityGroup, rule: &Rule) -> Option<Controller> {
    // Controllers write ingress on the SGs of their targets: nodes, pods, the cluster SG.
    let target = [Role::Cluster, Role::Node, Role::Pod].into_iter().any(|r| holder.has_role(r));
    if rule.direction != Direction::Ingress || !target || guardrails::reason(rule).is_some() {
        return None;
    }
    let description = rule.description.as_deref().unwrap_or_default();
    if description == LBC_DESCRIPTION && load_balancer_controller_shape(snapshot, rule) {
        return Some(Controller::AwsLoadBalancerController);
    }
    if holder.has_role(Role::Cluster) && auto_mode_peer(snapshot, &rule.peer) && port_range(&rule.traffic).is_some() {
        return Some(Controller::EksAutoMode);
    }
    if let Some(kind) = description.strip_prefix(IN_TREE_NLB_PREFIX) {
        return in_tree_nlb_shape(snapshot, kind, rule).then_some(Controller::InTreeCloudProvider);
    }
    None
}

/// From an SG the controller tags for this cluster: any tcp/udp range; from a CIDR inside the
/// VPC: one tcp/udp port.
fn load_balancer_controller_shape(snapshot: &ClusterSnapshot, rule: &Rule) -> bool {
    let Some(range) = port_range(&rule.traffic) else { return false };
    match &rule.peer {
        Peer::Group { id, .. } => snapshot
            .peer_groups
            .get(id)
            .is_some_and(|g| g.tags.get(LBC_CLUSTER_TAG).is_some_and(|c| *c == snapshot.id.name)),
        Peer::Ipv4(_) | Peer::Ipv6(_) => range.from() == range.to() && in_vpc(snapshot, &rule.peer),
        Peer::PrefixList(_) => false,
    }
}

/// An SG EKS Auto Mode created for one of this cluster's load balancers.
fn auto_mode_peer(snapshot: &ClusterSnapshot, peer: &Peer) -> bool {
    let Some(group) = peer.group_id().and_then(|id| snapshot.peer_groups.get(id)) else { return false };
    group.tags.get(AUTO_MODE_CLUSTER_TAG).is_some_and(|c| *c == snapshot.id.name)
        && group.tags.keys().any(|k| AUTO_MODE_TAG_PREFIXES.iter().any(|p| k.starts_with(p)))
}

/// `health=<lb>`: one tcp NodePort from the VPC; `client=<lb>`: one tcp/udp NodePort from a CIDR
/// inside the VPC; `mtu=<lb>`: ICMP "fragmentation needed" from any CIDR.
fn in_tree_nlb_shape(snapshot: &ClusterSnapshot, kind: &str, rule: &Rule) -> bool {
    const NODE_PORTS: (u16, u16) = (30000, 32767);
    let one_node_port = |r: PortRange| r.from() == r.to() && (NODE_PORTS.0..=NODE_PORTS.1).contains(&r.from());
    let cidr = matches!(rule.peer, Peer::Ipv4(_) | Peer::Ipv6(_));
    match (kind.split_once('=').map(|(k, _)| k), &rule.traffic) {
        (Some("health"), Traffic::Tcp(r)) => one_node_port(*r) && in_vpc(snapshot, &rule.peer),
        (Some("client"), Traffic::Tcp(r) | Traffic::Udp(r)) => one_node_port(*r) && in_vpc(snapshot, &rule.peer),
        (Some("mtu"), Traffic::Icmp(m)) => cidr && *m == IcmpMatch { icmp_type: Some(3), code: Some(4) },
        _ => false,
    }
}

fn port_range(traffic: &Traffic) -> Option<PortRange> {
    match traffic {
        Traffic::Tcp(r) | Traffic::Udp(r) => Some(*r),
        _ => None,
    }
}

/// Is the CIDR peer inside one of the VPC's CIDRs?
fn in_vpc(snapshot: &ClusterSnapshot, peer: &Peer) -> bool {
    snapshot.vpc_cidrs.iter().any(|net| {
        let vpc = match net {
            IpNet::V4(n) => Peer::Ipv4(n.trunc()),
            IpNet::V6(n) => Peer::Ipv6(n.trunc()),
        };
        peer_covers(&vpc, peer)
    })
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{rule, snapshot};
    use super::*;
    use crate::model::PeerGroup;

    fn peer_group(id: &str, tags: &[(&str, &str)]) -> PeerGroup {
        let tags = tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        PeerGroup { id: id.into(), name: format!("{id}-name"), tags }
    }

    /// The fixture cluster (`demo`, VPC 10.0.0.0/16) with a backend SG, a managed frontend SG,
    /// another cluster's backend SG, an Auto Mode SG and an untagged SG as peers.
    fn cluster() -> ClusterSnapshot {
        let mut s = snapshot();
        s.peer_groups = [
            peer_group("sg-backend", &[("elbv2.k8s.aws/cluster", "demo"), ("elbv2.k8s.aws/resource", "backend-sg")]),
            peer_group("sg-frontend", &[("elbv2.k8s.aws/cluster", "demo"), ("ingress.k8s.aws/stack", "shop/web")]),
            peer_group(
                "sg-other-backend",
                &[("elbv2.k8s.aws/cluster", "staging"), ("elbv2.k8s.aws/resource", "backend-sg")],
            ),
            peer_group("sg-auto", &[("eks:eks-cluster-name", "demo"), ("service.eks.amazonaws.com/stack", "shop/web")]),
            peer_group("sg-plain", &[]),
        ]
        .into_iter()
        .map(|g| (g.id.clone(), g))
        .collect();
        s
    }

    #[test]
    fn a_rule_is_owned_only_when_evidence_and_shape_agree() {
        const LBC: Option<Controller> = Some(Controller::AwsLoadBalancerController);
        const AUTO: Option<Controller> = Some(Controller::EksAutoMode);
        const IN_TREE: Option<Controller> = Some(Controller::InTreeCloudProvider);
        let lbc = "elbv2.k8s.aws/targetGroupBinding=shared";
        // (holder, direction, protocol, ports, peer, description, owner)
        type Case =
            (&'static str, &'static str, &'static str, &'static str, &'static str, &'static str, Option<Controller>);
        let cases: &[Case] = &[
            ("sg-node-a", "ingress", "tcp", "8080", "sg-backend", lbc, LBC),
            ("sg-node-a", "ingress", "tcp", "80-8443", "sg-backend", lbc, LBC),
            ("sg-node-a", "ingress", "udp", "0-65535", "sg-backend", lbc, LBC),
            ("sg-cluster", "ingress", "tcp", "30080", "sg-frontend", lbc, LBC),
            ("sg-node-a", "ingress", "tcp", "8080", "10.0.12.0/24", lbc, LBC),
            // Disguised: the description, but a wider peer, protocol or port range.
            ("sg-node-a", "ingress", "all", "", "sg-backend", lbc, None),
            ("sg-node-a", "ingress", "tcp", "8080", "sg-other-backend", lbc, None),
            ("sg-node-a", "ingress", "tcp", "8080", "sg-plain", lbc, None),
            ("sg-node-a", "ingress", "tcp", "8080", "10.0.0.0/8", lbc, None),
            ("sg-node-a", "ingress", "tcp", "8080-8090", "10.0.12.0/24", lbc, None),
            ("sg-node-a", "ingress", "tcp", "30080", "0.0.0.0/0", lbc, None),
            // The shape without the evidence, or on a group no controller targets.
            ("sg-node-a", "ingress", "tcp", "8080", "sg-backend", "", None),
            ("sg-node-a", "ingress", "tcp", "8080", "sg-backend", "web", None),
            ("sg-cp", "ingress", "tcp", "8080", "sg-backend", lbc, None),
            ("sg-ep", "ingress", "tcp", "443", "sg-backend", lbc, None),
            ("sg-node-a", "egress", "tcp", "8080", "sg-backend", lbc, None),
            // EKS Auto Mode: its SGs, on the cluster SG only.
            ("sg-cluster", "ingress", "tcp", "8080", "sg-auto", "", AUTO),
            ("sg-cluster", "ingress", "all", "", "sg-auto", "", None),
            ("sg-node-a", "ingress", "tcp", "8080", "sg-auto", "", None),
            // In-tree NLB rules.
            ("sg-node-b", "ingress", "tcp", "31234", "10.0.0.0/16", "kubernetes.io/rule/nlb/health=a1b2", IN_TREE),
            ("sg-node-b", "ingress", "tcp", "31234", "10.0.3.0/24", "kubernetes.io/rule/nlb/client=a1b2", IN_TREE),
            ("sg-node-b", "ingress", "icmp", "3/4", "0.0.0.0/0", "kubernetes.io/rule/nlb/mtu=a1b2", IN_TREE),
            ("sg-node-b", "ingress", "tcp", "31234", "0.0.0.0/0", "kubernetes.io/rule/nlb/client=a1b2", None),
            ("sg-node-b", "ingress", "tcp", "8080", "10.0.0.0/16", "kubernetes.io/rule/nlb/health=a1b2", None),
            ("sg-node-b", "ingress", "tcp", "30000-32767", "10.0.0.0/16", "kubernetes.io/rule/nlb/health=a1b2", None),
            ("sg-node-b", "ingress", "icmp", "all", "0.0.0.0/0", "kubernetes.io/rule/nlb/mtu=a1b2", None),
        ];
        let s = cluster();
        for (holder, direction, protocol, ports, peer, description, want) in cases {
            let mut r = rule(direction, protocol, ports, peer);
            r.description = Some(description.to_string()).filter(|d| !d.is_empty());
            let got = owner(&s, &s.groups[*holder], &r);
            assert_eq!(got, *want, "{holder}: {r} \"{description}\"");
        }
    }

    #[test]
    fn controller_names_parse_and_print_back() {
        for c in Controller::ALL {
            assert_eq!(Controller::parse(c.as_str()), Ok(c));
        }
        let err = Controller::parse("karpenter").expect_err("refused");
        assert!(err.0.contains("unknown controller `karpenter`"), "{}", err.0);
    }
}
