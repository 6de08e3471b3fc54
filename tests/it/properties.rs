//! Property tests of the pure core: normalize is idempotent, and the differ reports exactly the
//! rules that were added or removed relative to a baseline, never more.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::FileFailurePersistence;

use sgdrift::baseline::{self, guardrails, ResolveContext, ResolvedBaseline, ResolvedRule, RuleStatus};
use sgdrift::diff::{diff_rules, evaluate};
use sgdrift::flows::FlowContext;
use sgdrift::model::{
    canonicalize, normalize, union_covers, ClusterId, ClusterSnapshot, Direction, EndpointMode, Finding, FindingKind,
    IcmpMatch, NodeGroup, NodeGroupKind, Peer, PortRange, RawPeer, RawPermission, Role, Rule, SecurityGroup, Style,
    Traffic,
};

const OWNER: &str = "111122223333";
const OTHER_ACCOUNT: &str = "444455556666";
/// Group ids a generated snapshot uses, in order; rules may also name one outside the cluster.
const GROUP_IDS: [&str; 4] = ["sg-0a01", "sg-0b02", "sg-0c03", "sg-0d04"];
const FOREIGN_GROUP: &str = "sg-0f99";

/// Ports that EKS rules use, so that generated ranges touch, overlap and nest often.
fn port() -> impl Strategy<Value = u16> {
    prop_oneof![select(vec![0u16, 22, 53, 80, 443, 1024, 1025, 8443, 9443, 10250, 30000, 32767, 65535]), any::<u16>()]
}

fn port_range() -> impl Strategy<Value = PortRange> {
    prop_oneof![
        Just(PortRange::ALL),
        port().prop_map(PortRange::single),
        (port(), port()).prop_map(|(a, b)| PortRange::new(a.min(b), a.max(b)).expect("ordered")),
    ]
}

fn icmp() -> impl Strategy<Value = IcmpMatch> {
    (prop::option::of(0u8..=16), prop::option::of(0u8..=4))
        .prop_map(|(icmp_type, code)| IcmpMatch { icmp_type, code: icmp_type.and(code) })
}

fn traffic() -> impl Strategy<Value = Traffic> {
    prop_oneof![
        1 => Just(Traffic::All),
        4 => port_range().prop_map(Traffic::Tcp),
        2 => port_range().prop_map(Traffic::Udp),
        1 => icmp().prop_map(Traffic::Icmp),
        1 => icmp().prop_map(Traffic::Icmpv6),
        // Protocol numbers that have no name of their own (1, 6, 17 and 58 do).
        1 => select(vec![4u8, 41, 47, 50, 51, 132]).prop_map(Traffic::Other),
    ]
}

fn ipv4() -> impl Strategy<Value = Ipv4Net> {
    let known = ["0.0.0.0/0", "10.0.0.0/8", "10.0.0.0/16", "10.0.1.0/24", "172.16.0.0/12", "192.168.0.10/32"];
    prop_oneof![
        select(known.to_vec()).prop_map(|s| s.parse::<Ipv4Net>().expect("cidr")),
        (any::<u32>(), 0u8..=32).prop_map(|(a, len)| Ipv4Net::new(Ipv4Addr::from(a), len).expect("len").trunc()),
    ]
}

fn ipv6() -> impl Strategy<Value = Ipv6Net> {
    let known = ["::/0", "2600:1f18::/32", "2600:1f18::/56", "2600:1f18:0:1::/64"];
    prop_oneof![
        select(known.to_vec()).prop_map(|s| s.parse::<Ipv6Net>().expect("cidr")),
        (any::<u128>(), 0u8..=128).prop_map(|(a, len)| Ipv6Net::new(Ipv6Addr::from(a), len).expect("len").trunc()),
    ]
}

fn peer(group_ids: Vec<&'static str>) -> impl Strategy<Value = Peer> {
    let owner = prop::option::weighted(0.2, Just(OTHER_ACCOUNT.to_string()));
    prop_oneof![
        3 => ipv4().prop_map(Peer::Ipv4),
        1 => ipv6().prop_map(Peer::Ipv6),
        1 => select(vec!["pl-6ea54007", "pl-0b1c2d3e"]).prop_map(|id| Peer::PrefixList(id.to_string())),
        3 => (select(group_ids), owner).prop_map(|(id, owner)| Peer::Group { id: id.to_string(), owner }),
    ]
}

fn rule(group_ids: Vec<&'static str>) -> impl Strategy<Value = Rule> {
    let direction = select(vec![Direction::Ingress, Direction::Egress]);
    let description = prop::option::of(select(vec!["kubelet", "CoreDNS", "managed by terraform"]));
    (direction, traffic(), peer(group_ids), description).prop_map(|(direction, traffic, peer, description)| Rule {
        direction,
        traffic,
        peer,
        description: description.map(str::to_string),
    })
}

/// Drops every rule the union of the others covers, until none is: then removing any one rule
/// loses something, and nothing is listed twice.
fn non_redundant(rules: Vec<Rule>) -> Vec<Rule> {
    let mut rules = canonicalize(rules);
    while let Some(i) = (0..rules.len()).find(|&i| {
        let others: Vec<&Rule> = rules.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, r)| r).collect();
        union_covers(others, &rules[i])
    }) {
        rules.remove(i);
    }
    rules
}

fn rule_set(group_ids: Vec<&'static str>) -> impl Strategy<Value = Vec<Rule>> {
    prop::collection::vec(rule(group_ids), 0..10).prop_map(non_redundant)
}

/// A cluster of one to four groups with generated roles and non-redundant rules whose group
/// peers name the cluster's own groups (and one foreign group).
fn snapshot() -> impl Strategy<Value = ClusterSnapshot> {
    (1usize..=4)
        .prop_flat_map(|n| {
            let mut ids: Vec<&'static str> = GROUP_IDS[..n].to_vec();
            ids.push(FOREIGN_GROUP);
            let roles = prop::collection::vec(select(Role::ALL.to_vec()), n);
            let rules = prop::collection::vec(rule_set(ids), n);
            let mode = select(EndpointMode::ALL.to_vec());
            (roles, rules, mode)
        })
        .prop_map(|(roles, rules, mode)| {
            let groups: Vec<SecurityGroup> = roles
                .into_iter()
                .zip(rules)
                .enumerate()
                .map(|(i, (role, rules))| SecurityGroup {
                    id: GROUP_IDS[i].to_string(),
                    name: format!("group-{i}"),
                    description: format!("generated {role} group"),
                    owner_id: Some(OWNER.to_string()),
                    vpc_id: Some("vpc-0123".to_string()),
                    tags: BTreeMap::new(),
                    roles: [role].into(),
                    rules,
                })
                .collect();
            let with_role = |role: Role| -> Vec<String> {
                groups.iter().filter(|g| g.has_role(role)).map(|g| g.id.clone()).collect()
            };
            let node_ids = with_role(Role::Node);
            ClusterSnapshot {
                id: ClusterId {
                    account_id: OWNER.to_string(),
                    region: "eu-west-1".to_string(),
                    name: "prod".to_string(),
                },
                endpoint_mode: mode,
                public_access_cidrs: vec!["0.0.0.0/0".to_string()],
                style: Style::Unknown,
                ip_family: sgdrift::model::IpFamily::Ipv4,
                remote_network: None,
                vpc_id: "vpc-0123".to_string(),
                vpc_cidrs: vec!["10.0.0.0/16".parse().expect("cidr")],
                cluster_security_group_id: with_role(Role::Cluster).into_iter().next(),
                control_plane_security_group_ids: with_role(Role::ControlPlane),
                node_groups: if node_ids.is_empty() {
                    Vec::new()
                } else {
                    vec![NodeGroup {
                        name: "ng-1".to_string(),
                        kind: NodeGroupKind::Managed,
                        security_group_ids: node_ids,
                        route_out_v4: sgdrift::model::RouteOut::NoData,
                        route_out_v6: sgdrift::model::RouteOut::NoData,
                    }]
                },
                groups: groups.into_iter().map(|g| (g.id.clone(), g)).collect(),
                vpc_endpoints: Vec::new(),
                pod_security_group_sets: Vec::new(),
                data_plane: Default::default(),
                peer_groups: BTreeMap::new(),
                prefix_lists: BTreeMap::from([("pl-6ea54007".to_string(), "com.amazonaws.eu-west-1.s3".to_string())]),
                warnings: Vec::new(),
            }
        })
}

/// Every rule of every group, required: the baseline `record` is meant to produce.
fn baseline_of(snapshot: &ClusterSnapshot) -> ResolvedBaseline {
    ResolvedBaseline {
        origin: "itself".to_string(),
        by_group: snapshot
            .groups
            .values()
            .map(|g| {
                let rules = g.rules.iter().map(|r| ResolvedRule {
                    rule: r.clone(),
                    status: RuleStatus::Required,
                    why: None,
                    source: None,
                });
                (g.id.clone(), rules.collect())
            })
            .collect(),
    }
}

/// Findings of `after` that `before` does not have (by id): what a change introduced, with the
/// guardrail findings the unchanged rules give either way left out.
fn introduced(before: &[Finding], after: Vec<Finding>) -> Vec<Finding> {
    after.into_iter().filter(|f| !before.iter().any(|b| b.id == f.id)).collect()
}

/// The rules of `snapshot` that cross a guardrail: each gives a finding whatever the baseline.
fn guardrail_rules(snapshot: &ClusterSnapshot) -> usize {
    snapshot.groups.values().flat_map(|g| &g.rules).filter(|r| guardrails::reason(r).is_some()).count()
}

/// A rule as EC2 would return it: one permission with one peer.
fn to_raw(rule: &Rule) -> RawPermission {
    let ip_protocol = match rule.traffic {
        Traffic::All => "-1".to_string(),
        Traffic::Other(n) => n.to_string(),
        ref t => t.protocol_name(),
    };
    let description = rule.description.clone();
    let peer = match &rule.peer {
        Peer::Ipv4(n) => RawPeer::Ipv4 { cidr: n.to_string(), description },
        Peer::Ipv6(n) => RawPeer::Ipv6 { cidr: n.to_string(), description },
        Peer::PrefixList(id) => RawPeer::PrefixList { id: id.clone(), description },
        Peer::Group { id, owner } => RawPeer::Group { group_id: id.clone(), user_id: owner.clone(), description },
    };
    RawPermission {
        ip_protocol,
        from_port: Some(rule.traffic.from_port()),
        to_port: Some(rule.traffic.to_port()),
        peers: vec![peer],
    }
}

/// EC2-shaped permissions: protocols by name or number, several peers per permission, the
/// account's own id on some group pairs.
fn raw_permission() -> impl Strategy<Value = RawPermission> {
    let ids: Vec<&'static str> = GROUP_IDS.to_vec();
    let raw_peer = (peer(ids), prop::option::of(select(vec!["", "nodes", "bastion"])), any::<bool>()).prop_map(
        |(peer, description, same_account)| {
            let description = description.map(str::to_string);
            match peer {
                Peer::Ipv4(n) => RawPeer::Ipv4 { cidr: n.to_string(), description },
                Peer::Ipv6(n) => RawPeer::Ipv6 { cidr: n.to_string(), description },
                Peer::PrefixList(id) => RawPeer::PrefixList { id, description },
                Peer::Group { id, owner } => RawPeer::Group {
                    group_id: id,
                    user_id: owner.or_else(|| same_account.then(|| OWNER.to_string())),
                    description,
                },
            }
        },
    );
    let protocol_word = |t: &Traffic, numeric: bool| match (t, numeric) {
        (Traffic::All, _) => "-1".to_string(),
        (Traffic::Tcp(_), true) => "6".to_string(),
        (Traffic::Udp(_), true) => "17".to_string(),
        (Traffic::Icmp(_), true) => "1".to_string(),
        (Traffic::Icmpv6(_), true) => "58".to_string(),
        (Traffic::Other(n), _) => n.to_string(),
        (t, false) => t.protocol_name(),
    };
    (traffic(), any::<bool>(), prop::collection::vec(raw_peer, 1..5)).prop_map(move |(t, numeric, peers)| {
        RawPermission {
            ip_protocol: protocol_word(&t, numeric),
            from_port: Some(t.from_port()),
            to_port: Some(t.to_port()),
            peers,
        }
    })
}

/// Failures are kept next to this file, so a shrunk case is replayed first on the next run.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("tests/properties.proptest-regressions"))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn normalize_is_idempotent(perms in prop::collection::vec(raw_permission(), 0..6), ingress in any::<bool>()) {
        let direction = if ingress { Direction::Ingress } else { Direction::Egress };
        let once = normalize(direction, &perms, Some(OWNER)).expect("generated permissions are valid");
        let raw_again: Vec<RawPermission> = once.iter().map(to_raw).collect();
        let twice = normalize(direction, &raw_again, Some(OWNER)).expect("normalized rules are valid");
        prop_assert_eq!(&twice, &once);
        prop_assert_eq!(canonicalize(once.clone()), once.clone());
        // One atomic rule per peer, duplicates merged: never more rules than peers.
        prop_assert!(once.len() <= perms.iter().map(|p| p.peers.len()).sum::<usize>());
    }

    #[test]
    fn a_snapshot_checked_against_itself_has_no_findings_but_its_guardrails(snap in snapshot()) {
        let base = baseline_of(&snap);
        let findings = diff_rules(&snap, &base);
        prop_assert_eq!(findings.len(), guardrail_rules(&snap), "{:?}", findings);
        prop_assert!(findings.iter().all(|f| f.kind == FindingKind::Unexpected && f.reason.starts_with("guardrail: ")));
        let today = "2026-11-28".parse().expect("date");
        let eval = evaluate(&snap, &base, &FlowContext::default(), &[], &baseline::Controller::ALL, today);
        prop_assert!(eval.findings.iter().all(|f| f.kind == FindingKind::Flow || findings.contains(f)), "{:?}", eval.findings);
    }

    #[test]
    fn adding_a_rule_the_baseline_does_not_cover_gives_exactly_one_unexpected(
        snap in snapshot(),
        pick in any::<prop::sample::Index>(),
        extra in rule(GROUP_IDS.to_vec()),
    ) {
        let base = baseline_of(&snap);
        let id = pick.get(&snap.groups.keys().cloned().collect::<Vec<_>>()).clone();
        prop_assume!(!union_covers(&snap.groups[&id].rules, &extra));
        let mut drifted = snap.clone();
        let group = drifted.groups.get_mut(&id).expect("picked group");
        group.rules.push(extra.clone());
        group.rules = canonicalize(std::mem::take(&mut group.rules));

        let findings = introduced(&diff_rules(&snap, &base), diff_rules(&drifted, &base));
        prop_assert_eq!(findings.len(), 1, "{:?}", findings);
        let f = &findings[0];
        prop_assert_eq!(f.kind, FindingKind::Unexpected);
        prop_assert_eq!(&f.group_id, &id);
        prop_assert_eq!((f.direction, f.traffic, f.peer.as_peer()), (extra.direction, extra.traffic, Some(&extra.peer)));
    }

    #[test]
    fn deleting_any_rule_gives_exactly_one_missing(
        snap in snapshot(),
        pick in any::<prop::sample::Index>(),
        victim in any::<prop::sample::Index>(),
    ) {
        let base = baseline_of(&snap);
        let id = pick.get(&snap.groups.keys().cloned().collect::<Vec<_>>()).clone();
        prop_assume!(!snap.groups[&id].rules.is_empty());
        let mut drifted = snap.clone();
        let rules = &mut drifted.groups.get_mut(&id).expect("picked group").rules;
        let gone = rules.remove(victim.index(rules.len()));

        let findings = introduced(&diff_rules(&snap, &base), diff_rules(&drifted, &base));
        prop_assert_eq!(findings.len(), 1, "{:?}", findings);
        let f = &findings[0];
        prop_assert_eq!(f.kind, FindingKind::Missing);
        prop_assert_eq!(&f.group_id, &id);
        prop_assert_eq!((f.direction, f.traffic, f.peer.as_peer()), (gone.direction, gone.traffic, Some(&gone.peer)));
    }

    #[test]
    fn splitting_a_port_range_in_two_is_not_drift(snap in snapshot(), pick in any::<prop::sample::Index>(), at in any::<prop::sample::Index>()) {
        let base = baseline_of(&snap);
        let ranged: Vec<(String, usize)> = snap
            .groups
            .values()
            .flat_map(|g| g.rules.iter().enumerate().map(move |(i, r)| (g.id.clone(), i, r)))
            .filter(|(_, _, r)| matches!(r.traffic, Traffic::Tcp(p) | Traffic::Udp(p) if p.from() < p.to()))
            .map(|(id, i, _)| (id, i))
            .collect();
        prop_assume!(!ranged.is_empty());
        let (id, i) = pick.get(&ranged).clone();
        let mut split = snap.clone();
        let rules = &mut split.groups.get_mut(&id).expect("group").rules;
        let whole = rules.remove(i);
        let (Traffic::Tcp(range) | Traffic::Udp(range)) = whole.traffic else { unreachable!("filtered above") };
        let cut = range.from() + at.index(usize::from(range.to() - range.from())) as u16;
        for part in [PortRange::new(range.from(), cut), PortRange::new(cut + 1, range.to())] {
            let part = part.expect("ordered");
            let traffic = match whole.traffic { Traffic::Tcp(_) => Traffic::Tcp(part), _ => Traffic::Udp(part) };
            rules.push(Rule { traffic, ..whole.clone() });
        }
        *rules = canonicalize(std::mem::take(rules));
        let drift: Vec<Finding> = diff_rules(&split, &base).into_iter().filter(|f| !f.reason.starts_with("guardrail: ")).collect();
        prop_assert_eq!(drift, Vec::new());
    }
}

proptest! {
    // Slower: goes through TOML both ways.
    #![proptest_config(config(64))]

    #[test]
    fn a_recorded_baseline_read_back_and_resolved_has_no_findings_but_its_guardrails(snap in snapshot()) {
        let recording = baseline::record(&snap);
        let text = &recording.text;
        let parsed = baseline::parse_str(text, "recorded.toml")
            .map_err(|e| TestCaseError::fail(format!("record wrote a baseline parse_str refuses: {e}\n{text}")))?;
        let resolved = baseline::resolve(&parsed, &snap, &ResolveContext::default());
        let findings = diff_rules(&snap, &resolved);
        // The guardrail rules were left out of the recording, each with a warning, and are the
        // only findings.
        prop_assert_eq!(recording.warnings.len(), guardrail_rules(&snap));
        prop_assert_eq!(findings.len(), guardrail_rules(&snap), "{:?}\n{}", findings, text);
        prop_assert!(findings.iter().all(|f| f.reason.starts_with("guardrail: ")), "{:?}\n{}", findings, text);
    }
}
