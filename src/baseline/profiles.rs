//! The built-in profiles `eks-minimal` and `eks-strict`, per endpoint mode and style, derived
//! from reference §8. Each rule carries `why` and its source key.
//!
//! A profile is an envelope: every rule is `allowed`. What EKS needs (kubelet, API, DNS,
//! webhooks, AWS APIs) is checked by the flow checker over SG *sets*, because a need can be met
//! by any SG of the set; the envelope only says what may be there without being drift.
//!
//! - `eks-minimal` allows the AWS-documented requirements and recommendations (D-2018…D-live),
//!   the rules EKS itself creates or recreates, and the defaults of the cluster's tool (every
//!   version the reference covers). A style of `unknown` gets the union of every tool's
//!   defaults: a cluster whose tool was not recognised should not drown in findings for some
//!   tool's stock rules.
//! - `eks-strict` is the hardened minimum: the same ingress as `eks-minimal` (each style's
//!   stock ingress stays tolerated), but no allow-all egress to the internet anywhere (groups on
//!   nodes get egress per endpoint mode instead) and no wide control-plane → node range: the
//!   control-plane SG may send only 10250, 443 and webhook ports to nodes. The range is refused
//!   on the control-plane SG's egress, the side that is the control plane's alone; the cluster
//!   SG sits on the control-plane ENIs *and* on managed nodes, and no SG rule tells those apart,
//!   so its node-to-node egress stays.
//!
//! Source keys are reference §0's, plus `D-pods`: the user guide's security groups for pods
//! (`mainline:latest/ug/networking/security-groups-pods-deployment.adoc`: the cluster/node SG
//! admits tcp+udp 53 from the pod SG, the pod SG admits the node SG). Hybrid nodes' remote
//! node and pod CIDRs (D-hyb) resolve from `remoteNetworkConfig`; the IPv6 forms come from
//! `::/0` beside `0.0.0.0/0` and the VPC's IPv6 CIDRs in `vpc-cidr`.
//!
//! Not covered, by choice: Auto Mode load-balancer rules (D-auto) are controller-owned
//! (`baseline::owners`), not profile rules; user-declared admin sources (bastion SGs,
//! VPN CIDRs, SSH sources) are the operator's to add in a baseline file extending a profile.
//! Webhook ports declared in the config are added at resolution (`ResolveContext`).

use std::sync::OnceLock;

use super::{Baseline, BaselineRule, PeerSpec, RuleStatus};
use crate::model::{Direction, EndpointMode, Peer, PortRange, Role, Style, Traffic};

pub const PROFILES: [&str; 2] = ["eks-minimal", "eks-strict"];

/// The control-plane → node webhook ports terraform-aws-eks opens by default (reference §6):
/// metrics-server legacy 4443, prometheus-adapter 6443, Karpenter 8443, AWS LB controller 9443,
/// metrics-server EKS add-on 10251.
const TF_WEBHOOK_PORTS: [u16; 5] = [4443, 6443, 8443, 9443, 10251];

/// A built-in profile (design.md §3), named in configs and baseline files as in [`PROFILES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Profile {
    /// `eks-minimal`: the AWS-documented minimum; EKS- and tool-managed defaults allowed.
    Minimal,
    /// `eks-strict`: the hardened minimum: no allow-all egress, egress per endpoint mode.
    Strict,
}

impl Profile {
    pub const ALL: [Profile; 2] = [Profile::Minimal, Profile::Strict];

    pub fn name(self) -> &'static str {
        match self {
            Profile::Minimal => PROFILES[0],
            Profile::Strict => PROFILES[1],
        }
    }

    /// This profile's rules for a cluster of `mode` and `style`, built once per process and
    /// shared: the poll loop evaluates every cluster against one of these few variants, so
    /// rebuilding them (and their `why`/`source` strings) per cluster was most of an
    /// evaluation's allocations.
    pub fn shared(self, mode: EndpointMode, style: Style) -> &'static Baseline {
        static TABLE: OnceLock<Vec<Baseline>> = OnceLock::new();
        let table = TABLE.get_or_init(|| {
            Profile::ALL
                .iter()
                .flat_map(|p| EndpointMode::ALL.iter().flat_map(move |m| Style::ALL.iter().map(move |s| (*p, *m, *s))))
                .map(|(p, m, s)| p.build(m, s))
                .collect()
        });
        let p = self as usize;
        let m = EndpointMode::ALL.iter().position(|x| *x == mode).unwrap_or_default();
        let s = Style::ALL.iter().position(|x| *x == style).unwrap_or_default();
        &table[(p * EndpointMode::ALL.len() + m) * Style::ALL.len() + s]
    }

    /// This profile's rules for a cluster of `mode` and `style`.
    pub fn build(self, mode: EndpointMode, style: Style) -> Baseline {
        let mut b = Builder { p: Params { strict: self == Profile::Strict, mode, style }, rules: Vec::new() };
        b.cluster();
        b.control_plane();
        b.node();
        b.remote_access();
        b.pod();
        b.endpoint();
        Baseline { origin: format!("builtin:{self}/{mode}/{style}"), profile: None, rules: b.rules }
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A profile name that is none of [`PROFILES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown profile `{0}`: expected one of {list}", list = PROFILES.join(", "))]
pub struct UnknownProfile(pub String);

impl std::str::FromStr for Profile {
    type Err = UnknownProfile;

    fn from_str(name: &str) -> Result<Self, UnknownProfile> {
        Profile::ALL.into_iter().find(|p| p.name() == name).ok_or_else(|| UnknownProfile(name.to_string()))
    }
}

/// The built-in profile `name` for a cluster of `mode` and `style`; `None` for an unknown name.
pub fn builtin(name: &str, mode: EndpointMode, style: Style) -> Option<Baseline> {
    Some(name.parse::<Profile>().ok()?.build(mode, style))
}

/// As [`builtin`], shared (see [`Profile::shared`]).
pub fn builtin_shared(name: &str, mode: EndpointMode, style: Style) -> Option<&'static Baseline> {
    Some(name.parse::<Profile>().ok()?.shared(mode, style))
}

#[derive(Debug, Clone, Copy)]
struct Params {
    strict: bool,
    mode: EndpointMode,
    style: Style,
}

impl Params {
    /// Does the cluster's tool create this style's rules? `unknown` could be any tool.
    fn tool(&self, style: Style) -> bool {
        self.style == style || self.style == Style::Unknown
    }

    /// The API server has a public endpoint. (Whether nodes reach the internet is the route
    /// tables' to say, not the endpoint mode's: see the aws-apis flow.)
    fn internet_egress(&self) -> bool {
        self.mode != EndpointMode::Private
    }
}

struct Builder {
    p: Params,
    rules: Vec<BaselineRule>,
}

fn tcp(port: u16) -> Traffic {
    Traffic::Tcp(PortRange::single(port))
}

fn udp(port: u16) -> Traffic {
    Traffic::Udp(PortRange::single(port))
}

fn ephemeral() -> Traffic {
    Traffic::Tcp(PortRange::new(1025, 65535).expect("1025 <= 65535"))
}

fn internet() -> Vec<PeerSpec> {
    ["0.0.0.0/0", "::/0"].iter().map(|c| PeerSpec::Concrete(Peer::parse(c).expect("literal CIDR"))).collect()
}

use Direction::{Egress as OUT, Ingress as IN};
use PeerSpec::{SelfRef as SELF, VpcCidr as VPC};
const NODE: PeerSpec = PeerSpec::Role(Role::Node);
const CLUSTER: PeerSpec = PeerSpec::Role(Role::Cluster);
const CONTROL_PLANE: PeerSpec = PeerSpec::Role(Role::ControlPlane);
const ENDPOINT: PeerSpec = PeerSpec::Role(Role::Endpoint);
const POD: PeerSpec = PeerSpec::Role(Role::Pod);

impl Builder {
    /// One `allowed` rule per peer (baseline rules are atomic, like normalized ones).
    fn allow(
        &mut self,
        role: Role,
        direction: Direction,
        traffic: &[Traffic],
        peers: &[PeerSpec],
        why: &str,
        source: &str,
    ) {
        for t in traffic {
            for peer in peers {
                self.rules.push(BaselineRule {
                    role,
                    group: None,
                    direction,
                    traffic: *t,
                    peer: peer.clone(),
                    status: RuleStatus::Allowed,
                    why: Some(why.to_string()),
                    source: Some(source.to_string()),
                });
            }
        }
    }

    /// §8.1. The cluster SG sits on the control-plane ENIs *and* on managed nodes without a
    /// launch template and Fargate pods, so it gets both control-plane and node rules.
    fn cluster(&mut self) {
        let p = self.p;
        let r = Role::Cluster;
        self.allow(r, IN, &[Traffic::All], &[SELF],
            "EKS default: control-plane ENIs, managed nodes and Fargate pods in the cluster SG talk freely; EKS recreates it on every cluster update",
            "D-2022b, D-live");
        self.allow(
            r,
            OUT,
            &[Traffic::All],
            &[SELF],
            "EKS default on newer clusters (EFA traffic); EKS recreates it on every cluster update",
            "D-live",
        );
        self.allow(r, OUT, &[tcp(443), tcp(10250), tcp(53), udp(53)], &[SELF],
            "AWS 'restricting cluster traffic': the replacement for the default egress (API, kubelet, DNS within the cluster SG)",
            "D-2020, D-2022b");
        self.allow(
            r,
            IN,
            &[tcp(443)],
            &[NODE],
            "nodes with their own SGs call the API server on the control-plane ENIs, which carry the cluster SG",
            "D-2019, D-ep",
        );
        self.allow(
            r,
            IN,
            &[tcp(53), udp(53)],
            &[NODE],
            "CoreDNS on managed nodes or Fargate (cluster SG) answers pods on node-SG nodes",
            "D-2021, TF",
        );
        self.allow(r, IN, &[ephemeral()], &[NODE],
            "pod-to-pod from node-SG nodes to managed nodes/Fargate that carry only the cluster SG (mirror of the node SG's node-to-node range)",
            "D-2018, TF");
        if p.mode.api_in_vpc() {
            self.allow(r, IN, &[tcp(443)], &[VPC],
                "private endpoint clients inside the VPC (bastion, CI runners) reach the API on the control-plane ENIs; not in public mode, where no private endpoint exists",
                "D-ep");
        }
        self.allow(r, IN, &[tcp(53), udp(53)], &[POD],
            "security groups for pods: pods with their own SGs query CoreDNS on nodes that carry the cluster SG (user guide security-groups-pods-deployment)",
            "D-pods");
        self.cluster_hybrid();
        if p.tool(Style::Eksctl) {
            self.allow(r, IN, &[Traffic::All], &[NODE],
                "eksctl IngressNodeToDefaultClusterSG: unmanaged nodes (shared node SG) to control plane and managed nodes, all ports; allowed from every node SG since the shared one is not told apart",
                "EKSCTL");
        }
        self.allow(r, OUT, &[tcp(10250), tcp(443)], &[NODE],
            "control plane to kubelet and extension API servers on nodes outside the cluster SG; terraform-aws-eks >= v19 relies on the cluster SG for it",
            "D-2018, D-2022b, TF");
        if p.tool(Style::Terraform) {
            self.allow(r, OUT, &TF_WEBHOOK_PORTS.map(tcp), &[NODE],
                "control plane to terraform-aws-eks's default webhook ports on nodes; v19+ relies on the cluster SG's egress for them",
                "TF");
        }
        self.node_egress(r);
    }

    /// The cluster SG's rules for hybrid nodes: their node and pod CIDRs (`remoteNetworkConfig`).
    fn cluster_hybrid(&mut self) {
        let r = Role::Cluster;
        self.allow(
            r,
            IN,
            &[tcp(443)],
            &[PeerSpec::RemoteNodeCidr, PeerSpec::RemotePodCidr],
            "hybrid nodes and their pods (remoteNetworkConfig) call the API server on the control-plane ENIs",
            "D-hyb",
        );
        self.allow(
            r,
            OUT,
            &[tcp(10250)],
            &[PeerSpec::RemoteNodeCidr],
            "control plane to the kubelets of hybrid nodes",
            "D-hyb",
        );
        self.allow(
            r,
            OUT,
            &[ephemeral(), tcp(443)],
            &[PeerSpec::RemotePodCidr],
            "control plane to webhooks running on hybrid nodes' pods",
            "D-hyb",
        );
    }

    /// §8.2. Optional role: absent when no additional SG was given.
    fn control_plane(&mut self) {
        let p = self.p;
        let r = Role::ControlPlane;
        self.allow(
            r,
            IN,
            &[tcp(443)],
            &[NODE, CLUSTER],
            "nodes to the API server; kept in public mode too: AWS minimum and every tool creates it",
            "D-2018, CFN-node, EKSCTL, TF",
        );
        if p.mode.api_in_vpc() {
            self.allow(r, IN, &[tcp(443)], &[VPC],
                "private endpoint clients inside the VPC (bastion, CI runners) reach the API; not in public mode, where no private endpoint exists",
                "D-ep");
        }
        self.allow(
            r,
            OUT,
            &[tcp(10250)],
            &[NODE, CLUSTER],
            "control plane to kubelet: logs, exec, port-forward, metrics",
            "D-2018, TF",
        );
        self.allow(
            r,
            OUT,
            &[tcp(443)],
            &[NODE, CLUSTER],
            "control plane to extension API servers and webhooks on 443",
            "D-2019, CFN-node, EKSCTL, TF",
        );
        if p.tool(Style::Terraform) {
            self.allow(r, OUT, &TF_WEBHOOK_PORTS.map(tcp), &[NODE],
                "control plane to terraform-aws-eks's default webhook ports on nodes (the egress its v18 had; needed where the cluster SG's default egress is removed)",
                "TF");
        }
        if !p.strict {
            self.allow(r, OUT, &[ephemeral()], &[NODE],
                "AWS 'recommended' control-plane to node TCP range, created by eksctl and the AWS node template; eks-strict allows only 10250, 443 and webhook ports",
                "D-2018, CFN-node, EKSCTL");
            self.allow(r, OUT, &[Traffic::All], &internet(),
                "EC2/CloudFormation default egress (eksctl, AWS VPC template; terraform-aws-eks <= v17 cluster_egress_cidrs); the control-plane ENIs already carry the cluster SG's default allow-all, so it opens nothing new",
                "CFN-sg, CFN-vpc, EKSCTL, TF");
        }
    }

    /// §8.3.
    fn node(&mut self) {
        let p = self.p;
        let r = Role::Node;
        self.allow(
            r,
            IN,
            &[tcp(10250)],
            &[CONTROL_PLANE, CLUSTER],
            "kubelet API from the control plane: logs, exec, metrics",
            "D-2018, CFN-node, EKSCTL, TF",
        );
        self.allow(
            r,
            IN,
            &[tcp(443)],
            &[CONTROL_PLANE, CLUSTER],
            "control plane to extension API servers and webhooks on 443",
            "D-2019, CFN-node, EKSCTL, TF",
        );
        self.allow(r, IN, &[tcp(53), udp(53)], &[NODE, CLUSTER],
            "CoreDNS between node groups (tcp and udp 53); the cluster SG for managed nodes and Fargate that query or host it",
            "D-2021, TF");
        self.allow(r, IN, &[tcp(53), udp(53)], &[POD],
            "security groups for pods: pods with their own SGs query CoreDNS on the nodes (user guide security-groups-pods-deployment)",
            "D-pods");
        self.allow(
            r,
            IN,
            &[ephemeral()],
            &[NODE],
            "node to node (pod-to-pod) on ephemeral ports, terraform-aws-eks's choice of the narrow form",
            "D-2018, TF",
        );
        self.allow(r, IN, &[Traffic::All], &[SELF],
            "all traffic within one node SG: eksctl shared SG, AWS node template, terraform-aws-eks <= v17, and every tool's EFA SG; admits only the group's own members",
            "CFN-node, EKSCTL, TF");
        if p.tool(Style::Terraform) {
            self.allow(r, IN, &TF_WEBHOOK_PORTS.map(tcp), &[CONTROL_PLANE],
                "terraform-aws-eks recommended webhook rules: metrics-server 4443/10251, prometheus-adapter 6443, Karpenter 8443, AWS LB controller 9443",
                "TF");
        }
        self.allow(r, IN, &[ephemeral()], &[CONTROL_PLANE, CLUSTER],
            "AWS 'recommended' control-plane to node TCP range (eksctl, AWS node template, terraform-aws-eks <= v17); eks-strict refuses the range on the control-plane SG's egress instead",
            "D-2018, CFN-node, EKSCTL, TF");
        if p.tool(Style::Eksctl) {
            self.allow(r, IN, &[Traffic::All], &[CLUSTER],
                "eksctl IngressDefaultClusterToNodeSG: managed nodes and control plane (cluster SG) to the shared node SG, all ports",
                "EKSCTL");
            self.allow(
                r,
                IN,
                &[tcp(22)],
                &[VPC],
                "eksctl SSH on unmanaged node groups with privateNetworking: from the VPC CIDR (never the internet)",
                "EKSCTL",
            );
        }
        self.allow(
            r,
            OUT,
            &[Traffic::All],
            &[SELF],
            "EFA node-to-node traffic (eksctl EFASG, terraform-aws-eks all_self_efa); stays within the group",
            "EKSCTL, TF, D-live",
        );
        self.node_egress(r);
    }

    /// Egress of the groups on nodes: node SGs, the cluster SG (managed nodes and Fargate
    /// carry it) and remote-access SGs. eks-minimal tolerates the allow-all every tool creates
    /// (also in private mode: terraform-aws-eks's default is a private endpoint with
    /// `egress_all`); allow-all to a CIDR does not cover SG or prefix-list peers, so the narrow
    /// rules are listed in both profiles.
    fn node_egress(&mut self, r: Role) {
        let p = self.p;
        // The cluster SG's own members are covered by its all-self egress.
        let with_cluster = |peers: &[PeerSpec]| -> Vec<PeerSpec> {
            let mut v = peers.to_vec();
            if r != Role::Cluster {
                v.push(CLUSTER);
            }
            v
        };
        self.allow(
            r,
            OUT,
            &[tcp(53), udp(53)],
            &with_cluster(&[NODE]),
            "pods query CoreDNS on any node group (mirror of the DNS ingress)",
            "D-2021, TF",
        );
        self.allow(r, OUT, &[ephemeral()], &with_cluster(&[NODE]),
            "pod-to-pod on ephemeral ports (mirror of the node-to-node ingress), kubelet 10250 for metrics-server included; on the cluster SG this is managed nodes to node-SG nodes",
            "D-2018, TF");
        self.allow(r, OUT, &[Traffic::All], &[POD],
            "to pods with their own SGs (security groups for pods): kubelet probes and traffic to those pods, the mirror of the pod SG's ingress from the nodes; a hardened cluster without allow-all egress needs it for probes in the VPC CNI's strict enforcing mode",
            "D-pods");
        if p.mode.api_in_vpc() || !p.strict {
            self.allow(
                r,
                OUT,
                &[tcp(443)],
                &with_cluster(&[CONTROL_PLANE]),
                "nodes to the API server through the control-plane ENIs (private endpoint)",
                "D-2018, D-ep, TF",
            );
        }
        if p.mode == EndpointMode::Private || !p.strict {
            self.allow(
                r,
                OUT,
                &[tcp(443)],
                &[ENDPOINT],
                "nodes to AWS APIs (ec2, ecr, sts, …) through interface VPC endpoints",
                "D-priv, VPC-ie",
            );
            if r != Role::Cluster {
                self.allow(r, OUT, &[tcp(443)], &[NODE],
                    "nodes to AWS APIs through interface endpoints that carry a node SG (eksctl private clusters put its shared node SG on them)",
                    "EKSCTL, D-priv");
            }
            self.allow(
                r,
                OUT,
                &[tcp(443)],
                &[PeerSpec::S3PrefixList],
                "nodes to S3 (image layers) through the gateway endpoint's prefix list",
                "D-priv, EC2-pl, EKSCTL",
            );
        }
        self.node_internet_egress(r);
    }

    /// Node egress beyond the cluster: eks-strict's HTTPS out, or every tool's allow-all.
    fn node_internet_egress(&mut self, r: Role) {
        let p = self.p;
        if p.strict {
            // Every mode: a private endpoint says how nodes reach the Kubernetes API, not whether
            // they reach the internet (design.md §1). terraform-aws-eks >= v19 defaults to a
            // private endpoint with nodes behind a NAT gateway and no interface endpoints
            // (variables.tf endpoint_public_access = false at v19.0.0, v20.0.0, v21.0.0), so its
            // nodes pull from ECR and call STS/EC2 over the internet. Where no route out exists
            // the rule opens nothing; the aws-apis flow says whether each service is reached.
            self.allow(r, OUT, &[tcp(443)], &internet(),
                "eks-strict's replacement for allow-all egress: AWS APIs (ECR, S3, STS, EC2) through a NAT or internet gateway in every endpoint mode, and the public API endpoint",
                "D-2018, D-ep, D-priv, TF");
            if !p.internet_egress() {
                self.allow(
                    r,
                    OUT,
                    &[tcp(443)],
                    &[VPC],
                    "private mode: HTTPS to the VPC (interface endpoints whose SGs are not known, control-plane ENIs)",
                    "D-priv, VPC-ie",
                );
            }
        } else {
            let why = if p.internet_egress() {
                "default allow-all egress of every tool (and of EKS's cluster and remote-access SGs); nodes reach the public API endpoint, ECR, S3 and STS through it; eks-strict narrows it to 443"
            } else {
                "default allow-all egress of every tool (and of EKS's cluster and remote-access SGs), kept in private mode too (terraform-aws-eks defaults to a private endpoint with egress_all); eks-strict narrows it to 443"
            };
            self.allow(r, OUT, &[Traffic::All], &internet(), why, "D-2024, D-mng, CFN-node, EKSCTL, TF");
        }
    }

    /// §8.5. SSH from the internet is never allowed: it becomes a finding. The group sits on
    /// nodes, so its egress is node egress.
    fn remote_access(&mut self) {
        let p = self.p;
        let r = Role::RemoteAccess;
        if p.tool(Style::Eksctl) {
            self.allow(
                r,
                IN,
                &[tcp(22)],
                &[VPC],
                "eksctl ssh.allow with privateNetworking: SSH from the VPC CIDR (never the internet)",
                "EKSCTL",
            );
        }
        self.node_egress(r);
    }

    /// Security groups for pods (user guide `security-groups-pods-deployment`): the pod SG
    /// admits the node SG (kubelet probes) and the cluster SG (managed nodes); its egress is
    /// node egress, the pods' DNS and API traffic leaving through it.
    fn pod(&mut self) {
        let r = Role::Pod;
        self.allow(
            r,
            IN,
            &[Traffic::All],
            &[NODE, CLUSTER],
            "kubelet liveness and readiness probes from the nodes (strict enforcing mode filters them by the pod SG)",
            "D-pods",
        );
        self.allow(r, IN, &[Traffic::All], &[SELF], "pods of one pod SG talk to each other", "D-pods");
        self.node_egress(r);
    }

    /// §8.4. Listed in every mode: the rules resolve to nothing where no endpoint SG exists.
    fn endpoint(&mut self) {
        let p = self.p;
        let r = Role::Endpoint;
        self.allow(r, IN, &[tcp(443)], &[NODE, CLUSTER, VPC],
            "nodes (node SGs, or the cluster SG of managed nodes) to the interface endpoints' HTTPS; or the node subnets' CIDRs",
            "D-priv, VPC-ie");
        self.allow(r, IN, &[Traffic::All], &[SELF],
            "eksctl uses its shared node SG on the endpoints; an unspecified endpoint SG is the VPC default SG, which has this rule",
            "EKSCTL, VPC-ie");
        if !p.strict {
            self.allow(
                r,
                OUT,
                &[Traffic::All],
                &internet(),
                "default egress of a new or VPC-default SG; endpoint ENIs never initiate connections",
                "CFN-sg, VPC-ie",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The source keys of reference §0.
    const KEYS: &[&str] = &[
        "D-2018", "D-2019", "D-2020", "D-2021", "D-2022a", "D-2022b", "D-2024", "D-live", "D-lt", "D-mng", "D-ep",
        "D-priv", "D-sa", "D-fg", "D-hyb", "D-auto", "API-vpc", "API-ng", "CFN-node", "CFN-vpc", "CFN-sg", "CFN-tags",
        "TFP-sg", "VPC-sg", "VPC-ie", "EC2-pl", "TF", "EKSCTL", "OBS", "D-pods",
    ];

    fn all_variants() -> Vec<(&'static str, EndpointMode, Style, Baseline)> {
        let mut out = Vec::new();
        for name in PROFILES {
            for mode in EndpointMode::ALL {
                for style in Style::ALL {
                    let b = builtin(name, mode, style).unwrap_or_else(|| panic!("{name} is listed in PROFILES"));
                    out.push((name, mode, style, b));
                }
            }
        }
        out
    }

    fn has(b: &Baseline, role: Role, direction: Direction, traffic: Traffic, peer: &str) -> bool {
        let peer = PeerSpec::parse(peer).unwrap();
        b.rules.iter().any(|r| r.role == role && r.direction == direction && r.traffic == traffic && r.peer == peer)
    }

    #[test]
    fn every_profile_mode_and_style_builds_with_allowed_rules_that_say_why_and_where_from() {
        let variants = all_variants();
        assert_eq!(variants.len(), 2 * 3 * Style::ALL.len());
        for (name, mode, style, b) in variants {
            let at = format!("{name}/{mode}/{style}");
            assert!(b.origin.starts_with(&format!("builtin:{name}")), "{at}: {}", b.origin);
            assert!(!b.rules.is_empty(), "{at}");
            for r in &b.rules {
                assert_eq!(r.status, RuleStatus::Allowed, "{at}: {r:?}");
                assert!(r.why.as_deref().is_some_and(|w| !w.trim().is_empty()), "{at}: no why on {r:?}");
                let source = r.source.as_deref().unwrap_or_else(|| panic!("{at}: no source on {r:?}"));
                for key in source.split(',').map(str::trim) {
                    assert!(KEYS.contains(&key), "{at}: `{key}` is not a reference §0 key ({r:?})");
                }
                assert!(r.group.is_none(), "{at}: profiles name roles, not groups");
            }
        }
    }

    #[test]
    fn the_shared_variant_of_each_profile_mode_and_style_is_the_one_built_for_it() {
        for (name, mode, style, b) in all_variants() {
            assert_eq!(builtin_shared(name, mode, style), Some(&b), "{name}/{mode}/{style}");
        }
        assert_eq!(builtin_shared("eks-nope", EndpointMode::Public, Style::Eksctl), None);
    }

    #[test]
    fn unknown_profile_names_give_none() {
        assert!(builtin("eks-lax", EndpointMode::Public, Style::Console).is_none());
    }

    #[test]
    fn printed_profiles_read_back_identically() {
        for (name, mode, style, b) in all_variants() {
            let text = super::super::to_toml(&b);
            let back =
                super::super::parse_str(&text, &b.origin).unwrap_or_else(|e| panic!("{name}/{mode}/{style}: {e}"));
            assert_eq!(back, b, "{name}/{mode}/{style}");
        }
    }

    #[test]
    fn ssh_from_the_internet_is_in_no_profile() {
        for (name, mode, style, b) in all_variants() {
            for r in &b.rules {
                let opens_22 = match r.traffic {
                    Traffic::All => true,
                    Traffic::Tcp(p) => p.contains(PortRange::single(22)),
                    _ => false,
                };
                let from_internet = matches!(&r.peer, PeerSpec::Concrete(p) if p.is_internet());
                assert!(
                    !(r.direction == IN && opens_22 && from_internet),
                    "{name}/{mode}/{style} allows SSH from the internet: {r:?}"
                );
            }
        }
    }

    #[test]
    fn strict_has_no_allow_all_egress_to_the_internet_and_no_wide_range_out_of_the_control_plane_sg() {
        for mode in EndpointMode::ALL {
            for style in Style::ALL {
                let b = builtin("eks-strict", mode, style).unwrap();
                for r in &b.rules {
                    let internet = matches!(&r.peer, PeerSpec::Concrete(p) if p.is_internet());
                    assert!(!(r.direction == OUT && internet && r.traffic == Traffic::All), "{mode}/{style}: {r:?}");
                    let wide = match r.traffic {
                        Traffic::All => true,
                        Traffic::Tcp(p) => p.to() - p.from() > 100,
                        _ => false,
                    };
                    let cp_to_node =
                        r.role == Role::ControlPlane && r.direction == OUT && (r.peer == NODE || r.peer == CLUSTER);
                    assert!(!(wide && cp_to_node), "{mode}/{style}: wide control-plane → node rule {r:?}");
                }
            }
        }
    }

    #[test]
    fn egress_varies_by_endpoint_mode_as_reference_section_8_says() {
        let https_out = tcp(443);
        // (profile, mode, role, peer, expected)
        let cases = [
            ("eks-strict", EndpointMode::Public, Role::Node, "0.0.0.0/0", true),
            ("eks-strict", EndpointMode::Public, Role::Node, "::/0", true),
            ("eks-strict", EndpointMode::PublicPrivate, Role::Node, "0.0.0.0/0", true),
            // A private endpoint does not mean no NAT (terraform-aws-eks >= v19's default).
            ("eks-strict", EndpointMode::Private, Role::Node, "0.0.0.0/0", true),
            ("eks-strict", EndpointMode::Private, Role::Node, "role:endpoint", true),
            ("eks-strict", EndpointMode::Private, Role::Node, "prefix-list:s3", true),
            ("eks-strict", EndpointMode::Private, Role::Node, "role:control-plane", true),
            ("eks-strict", EndpointMode::Public, Role::Node, "role:control-plane", false),
            ("eks-strict", EndpointMode::Public, Role::Node, "role:endpoint", false),
            ("eks-strict", EndpointMode::Private, Role::Cluster, "prefix-list:s3", true),
            ("eks-minimal", EndpointMode::Public, Role::Node, "role:endpoint", true),
            ("eks-minimal", EndpointMode::Public, Role::Node, "role:control-plane", true),
        ];
        for (name, mode, role, peer, want) in cases {
            for style in Style::ALL {
                let b = builtin(name, mode, style).unwrap();
                assert_eq!(has(&b, role, OUT, https_out, peer), want, "{name}/{mode}/{style} {role} out 443 → {peer}");
            }
        }
        for style in Style::ALL {
            for mode in EndpointMode::ALL {
                let b = builtin("eks-minimal", mode, style).unwrap();
                assert!(has(&b, Role::Node, OUT, Traffic::All, "0.0.0.0/0"), "{mode}/{style}");
                assert_eq!(has(&b, Role::ControlPlane, IN, tcp(443), "vpc-cidr"), mode.api_in_vpc(), "{mode}/{style}");
            }
        }
    }

    #[test]
    fn each_style_tolerates_its_own_defaults_and_not_the_others() {
        use Style::*;
        // (rule, styles whose eks-minimal profile allows it)
        type Case = (Role, Direction, Traffic, &'static str, &'static [Style]);
        let cases: &[Case] = &[
            // eksctl IngressNodeToDefaultClusterSG on the cluster SG.
            (Role::Cluster, IN, Traffic::All, "role:node", &[Eksctl, Unknown]),
            // eksctl IngressDefaultClusterToNodeSG on the shared node SG.
            (Role::Node, IN, Traffic::All, "role:cluster", &[Eksctl, Unknown]),
            // terraform-aws-eks webhook rules.
            (Role::Node, IN, tcp(9443), "role:control-plane", &[Terraform, Unknown]),
            (Role::Node, IN, tcp(10251), "role:control-plane", &[Terraform, Unknown]),
            // Shared by every style.
            (Role::Node, IN, ephemeral(), "role:control-plane", &[Console, Eksctl, Terraform, AutoMode, Unknown]),
            (Role::Node, IN, Traffic::All, "self", &[Console, Eksctl, Terraform, AutoMode, Unknown]),
            (Role::Node, IN, udp(53), "role:node", &[Console, Eksctl, Terraform, AutoMode, Unknown]),
            (Role::Cluster, IN, Traffic::All, "self", &[Console, Eksctl, Terraform, AutoMode, Unknown]),
            (Role::Cluster, OUT, Traffic::All, "self", &[Console, Eksctl, Terraform, AutoMode, Unknown]),
            (Role::Cluster, OUT, Traffic::All, "::/0", &[Console, Eksctl, Terraform, AutoMode, Unknown]),
            (Role::ControlPlane, OUT, ephemeral(), "role:node", &[Console, Eksctl, Terraform, AutoMode, Unknown]),
            (Role::RemoteAccess, OUT, Traffic::All, "0.0.0.0/0", &[Console, Eksctl, Terraform, AutoMode, Unknown]),
            (Role::RemoteAccess, IN, tcp(22), "vpc-cidr", &[Eksctl, Unknown]),
            (Role::Endpoint, IN, tcp(443), "role:node", &[Console, Eksctl, Terraform, AutoMode, Unknown]),
            (Role::Endpoint, IN, tcp(443), "vpc-cidr", &[Console, Eksctl, Terraform, AutoMode, Unknown]),
            (Role::Endpoint, IN, Traffic::All, "self", &[Console, Eksctl, Terraform, AutoMode, Unknown]),
        ];
        for (role, dir, traffic, peer, styles) in cases {
            for style in Style::ALL {
                let b = builtin("eks-minimal", EndpointMode::Private, style).unwrap();
                assert_eq!(
                    has(&b, *role, *dir, *traffic, peer),
                    styles.contains(&style),
                    "{style}: {role} {dir} {traffic} {peer}"
                );
            }
        }
    }

    #[test]
    fn strict_drops_only_egress_that_minimal_tolerates() {
        // (role, direction, traffic, peer): in every eks-minimal/eksctl profile, in no eks-strict one.
        let dropped = [
            (Role::Node, OUT, Traffic::All, "0.0.0.0/0"),
            (Role::Cluster, OUT, Traffic::All, "0.0.0.0/0"),
            (Role::ControlPlane, OUT, Traffic::All, "::/0"),
            (Role::RemoteAccess, OUT, Traffic::All, "0.0.0.0/0"),
            (Role::Endpoint, OUT, Traffic::All, "0.0.0.0/0"),
            (Role::ControlPlane, OUT, ephemeral(), "role:node"),
        ];
        // In both: kubelet, API, DNS, EKS's recreated self rules, and each style's stock ingress.
        let kept = [
            (Role::Node, IN, tcp(10250), "role:control-plane"),
            (Role::Node, IN, tcp(443), "role:cluster"),
            (Role::Node, IN, tcp(53), "role:node"),
            (Role::ControlPlane, IN, tcp(443), "role:node"),
            (Role::ControlPlane, OUT, tcp(10250), "role:node"),
            (Role::Cluster, IN, Traffic::All, "self"),
            (Role::Cluster, OUT, Traffic::All, "self"),
            (Role::Cluster, OUT, ephemeral(), "role:node"),
            (Role::Node, IN, ephemeral(), "role:control-plane"),
            (Role::Cluster, IN, Traffic::All, "role:node"),
            (Role::Node, IN, Traffic::All, "role:cluster"),
            (Role::RemoteAccess, IN, tcp(22), "vpc-cidr"),
            (Role::RemoteAccess, OUT, tcp(53), "role:node"),
        ];
        for mode in EndpointMode::ALL {
            let minimal = builtin("eks-minimal", mode, Style::Eksctl).unwrap();
            let strict = builtin("eks-strict", mode, Style::Eksctl).unwrap();
            for (role, dir, traffic, peer) in dropped {
                assert!(has(&minimal, role, dir, traffic, peer), "minimal/{mode}: {role} {dir} {traffic} {peer}");
                assert!(!has(&strict, role, dir, traffic, peer), "strict/{mode}: {role} {dir} {traffic} {peer}");
            }
            for (role, dir, traffic, peer) in kept {
                assert!(has(&minimal, role, dir, traffic, peer), "minimal/{mode}: {role} {dir} {traffic} {peer}");
                assert!(has(&strict, role, dir, traffic, peer), "strict/{mode}: {role} {dir} {traffic} {peer}");
            }
            let ingress =
                |b: &Baseline| -> Vec<BaselineRule> { b.rules.iter().filter(|r| r.direction == IN).cloned().collect() };
            assert_eq!(ingress(&minimal), ingress(&strict), "{mode}: the profiles differ in egress only");
        }
    }

    /// A stock cluster of one style, as reference §2–§4 describe what each tool creates:
    /// (group id, role, rules as `direction protocol [ports] from|to peer`).
    type Layout = (Style, EndpointMode, &'static [(&'static str, Role, &'static [&'static str])]);

    const TERRAFORM: Layout = (
        Style::Terraform,
        EndpointMode::Private,
        &[
            (
                "sg-cluster",
                Role::Cluster,
                &["ingress all from sg-cluster", "egress all to 0.0.0.0/0", "egress all to ::/0"],
            ),
            ("sg-cp", Role::ControlPlane, &["ingress tcp 443 from sg-node"]),
            (
                "sg-node",
                Role::Node,
                &[
                    "ingress tcp 443 from sg-cp",
                    "ingress tcp 10250 from sg-cp",
                    "ingress tcp 53 from sg-node",
                    "ingress udp 53 from sg-node",
                    "ingress tcp 1025-65535 from sg-node",
                    "ingress tcp 4443 from sg-cp",
                    "ingress tcp 6443 from sg-cp",
                    "ingress tcp 8443 from sg-cp",
                    "ingress tcp 9443 from sg-cp",
                    "ingress tcp 10251 from sg-cp",
                    "egress all to 0.0.0.0/0",
                    "egress all to ::/0",
                    // v18 leftovers.
                    "egress tcp 443 to sg-cp",
                    "egress tcp 53 to sg-node",
                    "egress udp 53 to sg-node",
                    "egress tcp 443 to 0.0.0.0/0",
                    "egress udp 123 to 0.0.0.0/0",
                ],
            ),
            ("sg-efa", Role::Node, &["ingress all from sg-efa", "egress all to sg-efa"]),
        ],
    );

    const EKSCTL: Layout = (
        Style::Eksctl,
        EndpointMode::Public,
        &[
            (
                "sg-cluster",
                Role::Cluster,
                &["ingress all from sg-cluster", "ingress all from sg-shared", "egress all to 0.0.0.0/0"],
            ),
            (
                "sg-cp",
                Role::ControlPlane,
                &[
                    "egress all to 0.0.0.0/0",
                    "ingress tcp 443 from sg-ng",
                    "egress tcp 1025-65535 to sg-ng",
                    "egress tcp 443 to sg-ng",
                ],
            ),
            (
                "sg-shared",
                Role::Node,
                &["ingress all from sg-shared", "ingress all from sg-cluster", "egress all to 0.0.0.0/0"],
            ),
            (
                "sg-ng",
                Role::Node,
                &[
                    "ingress tcp 1025-65535 from sg-cp",
                    "ingress tcp 443 from sg-cp",
                    "ingress tcp 22 from 10.0.0.0/16",
                    "egress all to 0.0.0.0/0",
                ],
            ),
            ("sg-ssh", Role::RemoteAccess, &["ingress tcp 22 from 10.0.0.0/16", "egress all to 0.0.0.0/0"]),
        ],
    );

    const CONSOLE: Layout = (
        Style::Console,
        EndpointMode::PublicPrivate,
        &[
            (
                "sg-cluster",
                Role::Cluster,
                &[
                    "ingress all from sg-cluster",
                    "egress all to sg-cluster",
                    "egress all to 0.0.0.0/0",
                    "egress all to ::/0",
                ],
            ),
            (
                "sg-cp",
                Role::ControlPlane,
                &[
                    "egress all to 0.0.0.0/0",
                    "egress tcp 1025-65535 to sg-node",
                    "egress tcp 443 to sg-node",
                    "ingress tcp 443 from sg-node",
                    "ingress tcp 443 from 10.0.0.0/16",
                ],
            ),
            (
                "sg-node",
                Role::Node,
                &[
                    "ingress all from sg-node",
                    "ingress tcp 1025-65535 from sg-cp",
                    "ingress tcp 443 from sg-cp",
                    "egress all to 0.0.0.0/0",
                ],
            ),
            ("sg-ssh", Role::RemoteAccess, &["egress all to 0.0.0.0/0"]),
            (
                "sg-ep",
                Role::Endpoint,
                &["ingress tcp 443 from 10.0.0.0/16", "ingress all from sg-ep", "egress all to 0.0.0.0/0"],
            ),
        ],
    );

    fn stock(layout: &Layout) -> crate::model::ClusterSnapshot {
        use super::super::fixtures::{group, snapshot};
        let mut s = snapshot();
        s.style = layout.0;
        s.endpoint_mode = layout.1;
        s.groups = layout
            .2
            .iter()
            .map(|(id, role, rules)| {
                let rules = rules
                    .iter()
                    .map(|t| {
                        let (direction, traffic, peer) = super::super::Exception::parse_rule(t).unwrap();
                        let PeerSpec::Concrete(peer) = peer else { panic!("{t}: concrete peers only") };
                        crate::model::Rule::new(direction, traffic, peer)
                    })
                    .collect();
                (id.to_string(), group(id, id, *role, rules))
            })
            .collect();
        s
    }

    /// The rules of `snapshot` that the profile does not cover, as `group: rule`.
    fn uncovered(name: &str, style: Style, s: &crate::model::ClusterSnapshot) -> Vec<String> {
        let b = builtin(name, s.endpoint_mode, style).unwrap();
        let r = super::super::resolve(&b, s, &Default::default());
        let mut out = Vec::new();
        for g in s.groups.values() {
            let expected = r.by_group.get(&g.id).map(Vec::as_slice).unwrap_or_default();
            for rule in &g.rules {
                if !crate::model::union_covers(expected.iter().map(|x| &x.rule), rule) {
                    out.push(format!("{}: {rule}", g.id));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn each_styles_stock_cluster_is_inside_eks_minimal_for_its_style_and_for_unknown() {
        for layout in [TERRAFORM, EKSCTL, CONSOLE] {
            let s = stock(&layout);
            assert_eq!(uncovered("eks-minimal", layout.0, &s), Vec::<String>::new(), "{}", layout.0);
            assert_eq!(uncovered("eks-minimal", Style::Unknown, &s), Vec::<String>::new(), "{} as unknown", layout.0);
        }
    }

    #[test]
    fn a_style_is_not_tolerated_another_styles_extras() {
        assert_eq!(
            uncovered("eks-minimal", Style::Console, &stock(&EKSCTL)),
            [
                "sg-cluster: ingress all from sg-shared",
                "sg-ng: ingress tcp 22 from 10.0.0.0/16",
                "sg-shared: ingress all from sg-cluster",
                "sg-ssh: ingress tcp 22 from 10.0.0.0/16",
            ]
        );
        // terraform's webhook rules sit inside the 1025-65535 control-plane range every style's
        // eks-minimal allows, so they are no drift elsewhere either.
        assert_eq!(uncovered("eks-minimal", Style::Eksctl, &stock(&TERRAFORM)), Vec::<String>::new());
    }

    #[test]
    fn eks_strict_flags_exactly_the_stock_rules_beyond_the_hardened_minimum() {
        let cases: [(Layout, &[&str]); 3] = [
            (
                TERRAFORM,
                &[
                    "sg-cluster: egress all to 0.0.0.0/0",
                    "sg-cluster: egress all to ::/0",
                    "sg-node: egress all to 0.0.0.0/0",
                    "sg-node: egress all to ::/0",
                    // v18's egress_https is eks-strict's own replacement, private endpoint or not.
                    "sg-node: egress udp 123 to 0.0.0.0/0",
                ],
            ),
            (
                EKSCTL,
                &[
                    "sg-cluster: egress all to 0.0.0.0/0",
                    "sg-cp: egress all to 0.0.0.0/0",
                    "sg-cp: egress tcp 1025-65535 to sg-ng",
                    "sg-ng: egress all to 0.0.0.0/0",
                    "sg-shared: egress all to 0.0.0.0/0",
                    "sg-ssh: egress all to 0.0.0.0/0",
                ],
            ),
            (
                CONSOLE,
                &[
                    "sg-cluster: egress all to 0.0.0.0/0",
                    "sg-cluster: egress all to ::/0",
                    "sg-cp: egress all to 0.0.0.0/0",
                    "sg-cp: egress tcp 1025-65535 to sg-node",
                    "sg-ep: egress all to 0.0.0.0/0",
                    "sg-node: egress all to 0.0.0.0/0",
                    "sg-ssh: egress all to 0.0.0.0/0",
                ],
            ),
        ];
        for (layout, want) in cases {
            assert_eq!(uncovered("eks-strict", layout.0, &stock(&layout)), want, "{}", layout.0);
        }
    }

    #[test]
    fn ssh_from_the_internet_is_flagged_by_every_profile_and_style() {
        let mut layout = CONSOLE;
        layout.2 = &[("sg-ssh", Role::RemoteAccess, &["ingress tcp 22 from 0.0.0.0/0", "ingress tcp 22 from ::/0"])];
        let s = stock(&layout);
        for name in PROFILES {
            for style in Style::ALL {
                assert_eq!(uncovered(name, style, &s).len(), 2, "{name}/{style}");
            }
        }
    }
}
