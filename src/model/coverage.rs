//! Semantic coverage: does a set of rules admit everything one rule admits? This is what makes
//! merged and split permissions, reordered CIDRs and renamed descriptions not drift.

use super::{Peer, PortRange, Rule, Traffic};

/// Does `outer` admit every packet `inner` admits? CIDRs by containment (IPv4 never covers IPv6),
/// groups by id (the owner only when both name one), prefix lists by id.
pub fn peer_covers(outer: &Peer, inner: &Peer) -> bool {
    match (outer, inner) {
        (Peer::Ipv4(o), Peer::Ipv4(i)) => o.contains(i),
        (Peer::Ipv6(o), Peer::Ipv6(i)) => o.contains(i),
        (Peer::PrefixList(o), Peer::PrefixList(i)) => o == i,
        (Peer::Group { id: o, owner: oo }, Peer::Group { id: i, owner: io }) => {
            o == i && (oo.is_none() || io.is_none() || oo == io)
        }
        _ => false,
    }
}

/// Where a group or prefix-list id goes in a sorted index of rules: its length and last eight
/// bytes (where AWS ids differ most). Sorting and searching by it never compares whole ids;
/// equal ids share a key, and the few different ids that might share one are told apart by
/// comparing the ids of the rules found under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct IdKey(usize, u64);

impl IdKey {
    pub(crate) fn new(id: &str) -> Self {
        let bytes = id.as_bytes();
        let tail = match bytes.len().checked_sub(8) {
            Some(start) => bytes[start..].try_into().map_or(0, u64::from_le_bytes),
            None => bytes.iter().fold(0, |t, b| t << 8 | u64::from(*b)),
        };
        IdKey(bytes.len(), tail)
    }
}

/// Does the union of `parts` admit all of `target`? Port intervals are merged, so
/// `80-85` + `86-90` covers `80-90`, and `all` covers every protocol.
pub fn traffic_union_covers<'a>(parts: impl IntoIterator<Item = &'a Traffic>, target: &Traffic) -> bool {
    let mut ranges: Vec<PortRange> = Vec::new();
    for part in parts {
        match (part, target) {
            (Traffic::All, _) => return true,
            // One range holding the whole target is the common case: no merging needed.
            (Traffic::Tcp(p), Traffic::Tcp(t)) | (Traffic::Udp(p), Traffic::Udp(t))
                if p.from() <= t.from() && t.to() <= p.to() =>
            {
                return true;
            }
            // A range that misses the target cannot help cover it.
            (Traffic::Tcp(p), Traffic::Tcp(t)) | (Traffic::Udp(p), Traffic::Udp(t))
                if p.from() <= t.to() && t.from() <= p.to() =>
            {
                ranges.push(*p)
            }
            (Traffic::Icmp(p), Traffic::Icmp(t)) | (Traffic::Icmpv6(p), Traffic::Icmpv6(t)) if p.contains(*t) => {
                return true;
            }
            (Traffic::Other(p), Traffic::Other(t)) if p == t => return true,
            _ => {}
        }
    }
    let want = match target {
        Traffic::Tcp(r) | Traffic::Udp(r) => *r,
        _ => return false,
    };
    ranges.sort();
    let mut next = want.from() as u32;
    for r in ranges {
        if (r.from() as u32) > next {
            break;
        }
        next = next.max(r.to() as u32 + 1);
        if next > want.to() as u32 {
            return true;
        }
    }
    next > want.to() as u32
}

/// Is `target` admitted by the union of `rules`: same direction, a peer that covers its peer,
/// and together the traffic. Descriptions play no part.
pub fn union_covers<'a>(rules: impl IntoIterator<Item = &'a Rule>, target: &Rule) -> bool {
    let traffics = rules
        .into_iter()
        .filter(|r| r.direction == target.direction && peer_covers(&r.peer, &target.peer))
        .map(|r| &r.traffic);
    traffic_union_covers(traffics, &target.traffic)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Direction, IcmpMatch};

    fn rule(text: &str) -> Rule {
        let words: Vec<&str> = text.split_whitespace().collect();
        let link = words.iter().position(|w| *w == "from" || *w == "to").expect("from/to");
        let traffic = Traffic::parse(words[1], (link == 3).then(|| words[2])).expect("traffic");
        Rule::new(Direction::parse(words[0]).expect("direction"), traffic, Peer::parse(words[link + 1]).expect("peer"))
    }

    fn covered(union: &[&str], target: &str) -> bool {
        let rules: Vec<Rule> = union.iter().map(|r| rule(r)).collect();
        union_covers(&rules, &rule(target))
    }

    #[test]
    fn rule_unions_cover_what_they_should_and_nothing_more() {
        let cases: [(&[&str], &str, bool); 24] = [
            (&["ingress tcp 80-85 from sg-a", "ingress tcp 86-90 from sg-a"], "ingress tcp 80-90 from sg-a", true),
            (&["ingress tcp 86-90 from sg-a", "ingress tcp 80-85 from sg-a"], "ingress tcp 80-90 from sg-a", true),
            (&["ingress tcp 80-88 from sg-a", "ingress tcp 85-90 from sg-a"], "ingress tcp 80-90 from sg-a", true),
            (&["ingress tcp 80-84 from sg-a", "ingress tcp 86-90 from sg-a"], "ingress tcp 80-90 from sg-a", false),
            (&["ingress tcp 80-85 from sg-a", "ingress tcp 86-90 from sg-b"], "ingress tcp 80-90 from sg-a", false),
            (&["ingress tcp 0-1000 from sg-a", "ingress tcp 1001-65535 from sg-a"], "ingress tcp all from sg-a", true),
            (&["ingress tcp 80-90 from sg-a"], "ingress tcp 80-85 from sg-a", true),
            (&["ingress all from sg-a"], "ingress tcp 443 from sg-a", true),
            (&["ingress all from sg-a"], "ingress icmp 8/0 from sg-a", true),
            (&["ingress all from sg-a"], "ingress 50 from sg-a", true),
            (&["ingress tcp all from sg-a"], "ingress all from sg-a", false),
            (&["ingress tcp all from sg-a", "ingress udp all from sg-a"], "ingress all from sg-a", false),
            (&["ingress tcp 53 from sg-a"], "ingress udp 53 from sg-a", false),
            (&["ingress tcp 443 from 10.0.0.0/8"], "ingress tcp 443 from 10.0.0.0/16", true),
            (&["ingress tcp 443 from 10.0.0.0/16"], "ingress tcp 443 from 10.0.0.0/8", false),
            (&["ingress tcp 443 from 0.0.0.0/0"], "ingress tcp 443 from ::/0", false),
            (&["ingress tcp 443 from 0.0.0.0/0"], "ingress tcp 443 from 2600:1f18::/56", false),
            (&["ingress tcp 443 from ::/0"], "ingress tcp 443 from 10.0.0.0/8", false),
            (&["ingress tcp 443 from ::/0"], "ingress tcp 443 from 2600:1f18::/56", true),
            (&["ingress tcp 443 from 0.0.0.0/0"], "ingress tcp 443 from sg-a", false),
            (&["ingress tcp 443 from pl-1"], "ingress tcp 443 from pl-1", true),
            (&["ingress tcp 443 from pl-1"], "ingress tcp 443 from pl-2", false),
            (&["egress tcp 443 to sg-a"], "ingress tcp 443 from sg-a", false),
            (&[], "egress all to 0.0.0.0/0", false),
        ];
        for (union, target, want) in cases {
            assert_eq!(covered(union, target), want, "{union:?} covering {target}");
        }
    }

    #[test]
    fn reordered_cidrs_and_renamed_descriptions_cover_each_other() {
        let a: Vec<Rule> = ["ingress tcp 443 from 10.0.0.0/8", "ingress tcp 443 from 172.16.0.0/12"].map(rule).to_vec();
        let mut b: Vec<Rule> = a.iter().rev().cloned().collect();
        for r in &mut b {
            r.description = Some("renamed".to_string());
        }
        assert!(a.iter().all(|r| union_covers(&b, r)));
        assert!(b.iter().all(|r| union_covers(&a, r)));
    }

    #[test]
    fn group_peers_compare_by_id_and_owner_only_when_both_name_one() {
        let g = |id: &str, owner: Option<&str>| Peer::Group { id: id.to_string(), owner: owner.map(str::to_string) };
        let cases = [
            (g("sg-a", None), g("sg-a", None), true),
            (g("sg-a", None), g("sg-a", Some("444455556666")), true),
            (g("sg-a", Some("444455556666")), g("sg-a", None), true),
            (g("sg-a", Some("444455556666")), g("sg-a", Some("444455556666")), true),
            (g("sg-a", Some("444455556666")), g("sg-a", Some("777788889999")), false),
            (g("sg-a", None), g("sg-b", None), false),
        ];
        for (outer, inner, want) in cases {
            assert_eq!(peer_covers(&outer, &inner), want, "{outer} covering {inner}");
        }
    }

    #[test]
    fn icmp_coverage_follows_type_then_code() {
        let icmp = |t: Option<u8>, c: Option<u8>| Traffic::Icmp(IcmpMatch { icmp_type: t, code: c });
        let cases = [
            (icmp(None, None), icmp(Some(8), Some(0)), true),
            (icmp(Some(8), None), icmp(Some(8), Some(0)), true),
            (icmp(Some(8), Some(0)), icmp(Some(8), None), false),
            (icmp(Some(8), Some(0)), icmp(Some(0), Some(0)), false),
            (icmp(None, None), Traffic::Icmpv6(IcmpMatch::ALL), false),
            (Traffic::Other(50), Traffic::Other(50), true),
            (Traffic::Other(50), Traffic::Other(51), false),
            (Traffic::Tcp(PortRange::ALL), Traffic::Other(6), false),
        ];
        for (part, target, want) in cases {
            assert_eq!(traffic_union_covers([&part], &target), want, "{part} covering {target}");
        }
    }
}
