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

/// Does the union of `parts` admit all of `target`? Port intervals are merged, so
/// `80-85` + `86-90` covers `80-90`, and `all` covers every protocol.
pub fn traffic_union_covers<'a>(parts: impl IntoIterator<Item = &'a Traffic>, target: &Traffic) -> bool {
    let mut ranges: Vec<PortRange> = Vec::new();
    for part in parts {
        match (part, target) {
            (Traffic::All, _) => return true,
            (Traffic::Tcp(p), Traffic::Tcp(_)) | (Traffic::Udp(p), Traffic::Udp(_)) => ranges.push(*p),
            (Traffic::Icmp(p), Traffic::Icmp(t)) | (Traffic::Icmpv6(p), Traffic::Icmpv6(t)) => {
                if p.contains(*t) {
                    return true;
                }
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
    let traffics: Vec<&Traffic> = rules
        .into_iter()
        .filter(|r| r.direction == target.direction && peer_covers(&r.peer, &target.peer))
        .map(|r| &r.traffic)
        .collect();
    traffic_union_covers(traffics, &target.traffic)
}
