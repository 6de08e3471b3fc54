//! Resolution: role-named baseline rules become concrete rules on concrete groups of one snapshot.

use std::collections::{BTreeMap, BTreeSet};

use super::{Baseline, BaselineRule, PeerSpec, RuleStatus};
use crate::model::{ClusterSnapshot, Direction, Peer, PortRange, Role, Rule, SecurityGroup, Traffic};

/// Facts from the target's config that a baseline may depend on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolveContext {
    /// `webhook_ports` of the target: control plane → nodes ports the profile allows.
    pub webhook_ports: Vec<u16>,
}

/// One baseline rule made concrete for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedRule {
    pub rule: Rule,
    pub status: RuleStatus,
    pub why: Option<String>,
    pub source: Option<String>,
}

/// The expected rules of each group of the snapshot, by group id. A group with no entry
/// expects nothing: every rule it has is unexpected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedBaseline {
    pub origin: String,
    pub by_group: BTreeMap<String, Vec<ResolvedRule>>,
}

/// Resolves `baseline` against `snapshot`: `role:` peers expand to every group of that role,
/// `self` to the holding group, `vpc-cidr` to the VPC's CIDRs, prefix-list names to ids.
/// A rule whose peer resolves to nothing (no group of that role) drops out.
///
/// The target's `webhook_ports` are allowed control plane → nodes whatever the baseline (a
/// profile or a file): the operator declared them, and the flow checker requires them, so
/// opening them must not be drift. Each group's rules come out sorted and without duplicates;
/// where two baseline rules resolve to the same concrete rule, `required` wins.
pub fn resolve(baseline: &Baseline, snapshot: &ClusterSnapshot, ctx: &ResolveContext) -> ResolvedBaseline {
    let webhooks = webhook_rules(&ctx.webhook_ports);
    let peers = SnapshotPeers::new(snapshot);
    let by_group = resolve_borrowed(&[&baseline.rules, &webhooks], &peers);
    ResolvedBaseline {
        origin: baseline.origin.clone(),
        by_group: by_group
            .into_iter()
            .map(|(id, rules)| (id.to_string(), rules.into_iter().map(Expected::into_owned).collect()))
            .collect(),
    }
}

/// A resolved rule that borrows its explanation from the baseline rule it came from and its
/// peer from the baseline or the [`SnapshotPeers`], so that the poll loop resolves a shared
/// profile without copying a string for every rule of every cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected<'a> {
    pub direction: Direction,
    pub traffic: Traffic,
    pub peer: &'a Peer,
    pub status: RuleStatus,
    pub why: Option<&'a str>,
    pub source: Option<&'a str>,
}

impl Expected<'_> {
    pub fn into_owned(self) -> ResolvedRule {
        ResolvedRule {
            rule: Rule::new(self.direction, self.traffic, self.peer.clone()),
            status: self.status,
            why: self.why.map(str::to_string),
            source: self.source.map(str::to_string),
        }
    }
}

/// The peers a snapshot offers baseline rules, made once per evaluation: each group as a peer,
/// the VPC's and the remote networks' CIDRs, the known prefix lists.
pub struct SnapshotPeers<'s> {
    snapshot: &'s ClusterSnapshot,
    /// `Peer::group` of each group, in the snapshot's order.
    groups: Vec<Peer>,
    /// The roles of each group, in the snapshot's order.
    roles: Vec<RoleMask>,
    vpc: Vec<Peer>,
    remote_nodes: Vec<Peer>,
    remote_pods: Vec<Peer>,
    /// Each prefix list the snapshot knows, with its name.
    prefix_lists: Vec<(Peer, &'s str)>,
}

impl<'s> SnapshotPeers<'s> {
    /// The snapshot the peers are of.
    pub fn snapshot(&self) -> &'s ClusterSnapshot {
        self.snapshot
    }

    pub fn new(snapshot: &'s ClusterSnapshot) -> Self {
        let remote = snapshot.remote_network.as_ref();
        SnapshotPeers {
            snapshot,
            groups: snapshot.groups.keys().map(Peer::group).collect(),
            roles: snapshot.groups.values().map(|g| RoleMask::of(&g.roles)).collect(),
            vpc: cidr_peers(&snapshot.vpc_cidrs),
            remote_nodes: remote.map_or_else(Vec::new, |n| cidr_peers(&n.node_cidrs)),
            remote_pods: remote.map_or_else(Vec::new, |n| cidr_peers(&n.pod_cidrs)),
            prefix_lists: snapshot
                .prefix_lists
                .iter()
                .map(|(id, name)| (Peer::PrefixList(id.clone()), name.as_str()))
                .collect(),
        }
    }

    /// Calls `f` with each concrete peer `spec` names, but for `self`, which is the holder's.
    /// A peer that resolves to nothing (no group of the role, no hybrid nodes, a prefix list
    /// unknown in this region or not visible to the source) calls it never: the rule drops out.
    fn each<'p>(&'p self, spec: &'p PeerSpec, mut f: impl FnMut(&'p Peer)) {
        let groups = || self.roles.iter().zip(&self.groups);
        match spec {
            PeerSpec::Concrete(p) => f(p),
            PeerSpec::SelfRef => {}
            PeerSpec::Role(r) => groups().filter(|(roles, _)| roles.has(*r)).for_each(|(_, p)| f(p)),
            PeerSpec::VpcCidr => self.vpc.iter().for_each(f),
            PeerSpec::RemoteNodeCidr => self.remote_nodes.iter().for_each(f),
            PeerSpec::RemotePodCidr => self.remote_pods.iter().for_each(f),
            PeerSpec::PrefixListName(name) => self.prefix_lists_named(name, f),
            PeerSpec::S3PrefixList => {
                self.prefix_lists_named(&format!("com.amazonaws.{}.s3", self.snapshot.id.region), f)
            }
        }
    }

    fn prefix_lists_named<'p>(&'p self, name: &str, mut f: impl FnMut(&'p Peer)) {
        self.prefix_lists.iter().filter(|(_, n)| *n == name).for_each(|(p, _)| f(p));
    }
}

/// What [`resolve`] does, over the rules of `sets` taken in order (a baseline's rules, then
/// e.g. [`webhook_rules`]), keyed by group id and borrowing from the rules and from `peers`
/// (made once per snapshot by [`SnapshotPeers::new`]).
pub fn resolve_borrowed<'a>(
    sets: &[&'a [BaselineRule]],
    peers: &'a SnapshotPeers<'a>,
) -> BTreeMap<&'a str, Vec<Expected<'a>>> {
    let rules: Vec<&'a BaselineRule> = sets.iter().flat_map(|s| s.iter()).collect();
    // Holders with the same roles (node groups' SGs) differ only in their `self` peer and the
    // rules naming a group: the rest is resolved and sorted once per set of roles.
    let holder_specific = |rule: &BaselineRule| rule.peer == PeerSpec::SelfRef || rule.group.is_some();
    let mut shared: Vec<(RoleMask, Vec<Found<'a>>)> = Vec::new();
    let mut own: Vec<Found<'a>> = Vec::new();
    let mut found: Vec<Found<'a>> = Vec::with_capacity(rules.len() * 2);
    let mut out = BTreeMap::new();
    for ((holder, self_peer), &roles) in peers.snapshot.groups.values().zip(&peers.groups).zip(&peers.roles) {
        // A holder meets only the rules of its roles; each rule's index keeps the baseline's order.
        let of_holder = || rules.iter().copied().enumerate().filter(|(_, r)| roles.has(r.role));
        let common = match shared.iter().position(|(r, _)| *r == roles) {
            Some(at) => &shared[at].1,
            None => {
                let mut common = Vec::with_capacity(rules.len());
                for (i, rule) in of_holder().filter(|(_, r)| !holder_specific(r)) {
                    peers.each(&rule.peer, |p| common.push((rule.direction, rule.traffic, p, i)));
                }
                common.sort_unstable();
                shared.push((roles, common));
                &shared[shared.len() - 1].1
            }
        };
        own.clear();
        for (i, rule) in of_holder().filter(|(_, r)| holder_specific(r)) {
            if rule.group.as_ref().is_some_and(|g| *g != holder.id && *g != holder.name) {
                continue;
            }
            let mut push = |p| own.push((rule.direction, rule.traffic, p, i));
            match rule.peer {
                PeerSpec::SelfRef => push(self_peer),
                _ => peers.each(&rule.peer, push),
            }
        }
        own.sort_unstable();
        found.clear();
        merge_sorted(common, &own, &mut found);
        if !found.is_empty() {
            out.insert(holder.id.as_str(), dedup(&found, &rules));
        }
    }
    out
}

/// A group's roles as bits, asked once per baseline rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RoleMask(u8);

impl RoleMask {
    fn of(roles: &BTreeSet<Role>) -> Self {
        RoleMask(roles.iter().fold(0, |m, r| m | (1 << *r as u8)))
    }

    fn has(self, role: Role) -> bool {
        self.0 & (1 << role as u8) != 0
    }
}

/// A concrete rule a baseline rule resolved to, with the index of that rule in the baseline.
type Found<'a> = (Direction, Traffic, &'a Peer, usize);

/// The two sorted runs `a` and `b` as one sorted run, appended to `out`.
fn merge_sorted<T: Ord + Copy>(a: &[T], b: &[T], out: &mut Vec<T>) {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i] <= b[j] {
            out.push(a[i]);
            i += 1;
        } else {
            out.push(b[j]);
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
}

/// One expected rule per concrete (direction, traffic, peer) of the sorted `found`. Of equal
/// statements the stronger wins with its own explanation; among equally strong ones the
/// first in the baseline's order.
fn dedup<'a>(found: &[Found<'a>], rules: &[&'a BaselineRule]) -> Vec<Expected<'a>> {
    let mut out = Vec::with_capacity(found.len());
    out.extend(found.chunk_by(|a, b| (a.0, a.1, a.2) == (b.0, b.1, b.2)).map(|same| {
        let required = same.iter().find(|f| rules[f.3].status == RuleStatus::Required);
        let (direction, traffic, peer, i) = *required.unwrap_or(&same[0]);
        let r = rules[i];
        Expected { direction, traffic, peer, status: r.status, why: r.why.as_deref(), source: r.source.as_deref() }
    }));
    out
}

/// The concrete peers `spec` names for a rule held by `holder`.
pub(crate) fn resolve_peer(spec: &PeerSpec, holder: &SecurityGroup, peers: &SnapshotPeers<'_>) -> Vec<Peer> {
    if let PeerSpec::SelfRef = spec {
        return vec![Peer::group(&holder.id)];
    }
    let mut out = Vec::new();
    peers.each(spec, |p| out.push(p.clone()));
    out
}

fn cidr_peers(nets: &[ipnet::IpNet]) -> Vec<Peer> {
    nets.iter()
        .map(|net| match net {
            ipnet::IpNet::V4(n) => Peer::Ipv4(n.trunc()),
            ipnet::IpNet::V6(n) => Peer::Ipv6(n.trunc()),
        })
        .collect()
}

/// Declared webhook ports: ingress on nodes from the control plane (its SGs and the cluster
/// SG it carries), egress from both to the nodes. Managed nodes may carry only the cluster SG,
/// so the control-plane SG may also send to it, and it may receive from the control-plane SG.
pub fn webhook_rules(ports: &[u16]) -> Vec<BaselineRule> {
    let mut ports = ports.to_vec();
    ports.sort_unstable();
    ports.dedup();
    let rule = |role, direction, port, peer| BaselineRule {
        role,
        group: None,
        direction,
        traffic: Traffic::Tcp(PortRange::single(port)),
        peer,
        status: RuleStatus::Allowed,
        why: Some(format!("webhook port {port} declared in the target's webhook_ports")),
        source: Some("config".into()),
    };
    ports
        .into_iter()
        .flat_map(|port| {
            [
                rule(Role::Node, Direction::Ingress, port, PeerSpec::Role(Role::ControlPlane)),
                rule(Role::Node, Direction::Ingress, port, PeerSpec::Role(Role::Cluster)),
                rule(Role::ControlPlane, Direction::Egress, port, PeerSpec::Role(Role::Node)),
                rule(Role::ControlPlane, Direction::Egress, port, PeerSpec::Role(Role::Cluster)),
                rule(Role::Cluster, Direction::Egress, port, PeerSpec::Role(Role::Node)),
                rule(Role::Cluster, Direction::Ingress, port, PeerSpec::Role(Role::ControlPlane)),
            ]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{group, snapshot};
    use super::super::parse_str;
    use super::*;

    fn baseline(rules: &str) -> Baseline {
        parse_str(rules, "test.toml").unwrap_or_else(|e| panic!("{e}"))
    }

    fn one(role: &str, group: Option<&str>, peer: &str) -> String {
        let group = group.map(|g| format!("group = \"{g}\"\n")).unwrap_or_default();
        format!("[[rule]]\nrole = \"{role}\"\n{group}direction = \"ingress\"\nprotocol = \"tcp\"\nports = \"443\"\npeer = \"{peer}\"\n")
    }

    /// The peers each group of the fixture gets for one rule, as strings.
    fn peers_by_group(resolved: &ResolvedBaseline) -> Vec<(String, Vec<String>)> {
        resolved
            .by_group
            .iter()
            .map(|(id, rules)| (id.clone(), rules.iter().map(|r| r.rule.peer.to_string()).collect()))
            .collect()
    }

    #[test]
    fn each_peer_kind_resolves_against_the_snapshot() {
        let s = snapshot();
        let g = |id: &str, peers: &[&str]| (id.to_string(), peers.iter().map(|p| p.to_string()).collect::<Vec<_>>());
        // (rule text, expected peers per holding group)
        type PeersByGroup = Vec<(String, Vec<String>)>;
        let cases: Vec<(String, PeersByGroup)> = vec![
            (one("node", None, "role:control-plane"), vec![g("sg-node-a", &["sg-cp"]), g("sg-node-b", &["sg-cp"])]),
            (one("control-plane", None, "role:node"), vec![g("sg-cp", &["sg-node-a", "sg-node-b"])]),
            (one("node", None, "self"), vec![g("sg-node-a", &["sg-node-a"]), g("sg-node-b", &["sg-node-b"])]),
            (
                one("endpoint", None, "vpc-cidr"),
                vec![g("sg-ep", &["10.0.0.0/16", "100.64.0.0/16", "2600:1f18:1:2300::/56"])],
            ),
            (one("node", Some("sg-node-b"), "prefix-list:s3"), vec![g("sg-node-b", &["pl-s3"])]),
            (
                one("node", Some("demo-node-a"), "prefix-list:com.amazonaws.eu-west-1.dynamodb"),
                vec![g("sg-node-a", &["pl-ddb"])],
            ),
            (one("node", Some("sg-node-a"), "prefix-list:pl-other"), vec![g("sg-node-a", &["pl-other"])]),
            (one("cluster", None, "cidr:10.1.2.3/8"), vec![g("sg-cluster", &["10.0.0.0/8"])]),
            (one("cluster", None, "sg:sg-elsewhere"), vec![g("sg-cluster", &["sg-elsewhere"])]),
            (one("cluster", None, "sg:444455556666/sg-peer"), vec![g("sg-cluster", &["444455556666/sg-peer"])]),
            // Peers that resolve to nothing, holders that do not exist: the rule drops out.
            (one("node", None, "role:remote-access"), vec![]),
            (one("remote-access", None, "cidr:10.0.0.0/8"), vec![]),
            (one("node", None, "prefix-list:com.amazonaws.eu-west-1.nothing"), vec![]),
            (one("node", Some("sg-nope"), "self"), vec![]),
        ];
        for (text, want) in cases {
            let got = peers_by_group(&resolve(&baseline(&text), &s, &ResolveContext::default()));
            assert_eq!(got, want, "{text}");
        }
    }

    #[test]
    fn the_s3_prefix_list_is_the_one_of_the_clusters_region_or_nothing() {
        let mut s = snapshot();
        let text = one("node", None, "prefix-list:s3");
        s.id.region = "us-east-1".into();
        assert!(resolve(&baseline(&text), &s, &ResolveContext::default()).by_group.is_empty());
        s.prefix_lists.insert("pl-63a5400a".into(), "com.amazonaws.us-east-1.s3".into());
        let got = peers_by_group(&resolve(&baseline(&text), &s, &ResolveContext::default()));
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|(_, p)| p == &vec!["pl-63a5400a".to_string()]));
    }

    #[test]
    fn duplicates_merge_and_required_wins_over_allowed() {
        // role:node and self name the same group for a node rule.
        let text = format!(
            "{}status = \"allowed\"\nwhy = \"a\"\n{}status = \"required\"\nwhy = \"b\"\n",
            one("node", Some("sg-node-a"), "role:node"),
            one("node", None, "self"),
        );
        let r = resolve(&baseline(&text), &snapshot(), &ResolveContext::default());
        let a = &r.by_group["sg-node-a"];
        assert_eq!(a.len(), 2, "{a:?}");
        let self_rule = a.iter().find(|x| x.rule.peer == Peer::group("sg-node-a")).unwrap();
        assert_eq!(self_rule.status, RuleStatus::Required);
        assert_eq!(self_rule.why.as_deref(), Some("b"));
        assert_eq!(a.iter().find(|x| x.rule.peer == Peer::group("sg-node-b")).unwrap().status, RuleStatus::Allowed);
        assert_eq!(r.origin, "test.toml");
    }

    #[test]
    fn declared_webhook_ports_are_allowed_from_the_control_plane_to_the_nodes() {
        let s = snapshot();
        let empty = Baseline { origin: "x".into(), profile: None, rules: vec![] };
        let r = resolve(&empty, &s, &ResolveContext { webhook_ports: vec![9443, 9443] });
        let rules = |id: &str| -> Vec<String> { r.by_group[id].iter().map(|x| x.rule.to_string()).collect() };
        assert_eq!(rules("sg-node-a"), ["ingress tcp 9443 from sg-cluster", "ingress tcp 9443 from sg-cp"]);
        assert_eq!(
            rules("sg-cp"),
            ["egress tcp 9443 to sg-cluster", "egress tcp 9443 to sg-node-a", "egress tcp 9443 to sg-node-b"]
        );
        assert_eq!(
            rules("sg-cluster"),
            ["ingress tcp 9443 from sg-cp", "egress tcp 9443 to sg-node-a", "egress tcp 9443 to sg-node-b"]
        );
        assert!(r.by_group["sg-cp"].iter().all(|x| x.status == RuleStatus::Allowed));
        assert!(!r.by_group.contains_key("sg-ep"));
        assert!(resolve(&empty, &s, &ResolveContext::default()).by_group.is_empty());
    }

    #[test]
    fn a_profile_resolves_on_every_group_and_only_to_groups_of_the_cluster_or_literal_peers() {
        let s = snapshot();
        for name in super::super::PROFILES {
            let b = super::super::builtin(name, s.endpoint_mode, s.style).unwrap();
            let r = resolve(&b, &s, &ResolveContext::default());
            for id in s.groups.keys() {
                assert!(r.by_group.get(id).is_some_and(|v| !v.is_empty()), "{name}: {id} expects nothing");
            }
            for (id, rules) in &r.by_group {
                for x in rules {
                    if let Peer::Group { id: peer, .. } = &x.rule.peer {
                        assert!(s.groups.contains_key(peer), "{name}: {id} → unknown group {peer}");
                    }
                }
            }
        }
        // A lone extra group of a role appears as soon as the snapshot has it.
        let mut s2 = s.clone();
        s2.groups.insert("sg-ssh".into(), group("sg-ssh", "eks-remoteAccess-1", Role::RemoteAccess, vec![]));
        let b = super::super::builtin("eks-minimal", s2.endpoint_mode, s2.style).unwrap();
        assert!(resolve(&b, &s2, &ResolveContext::default()).by_group.contains_key("sg-ssh"));
    }
}
