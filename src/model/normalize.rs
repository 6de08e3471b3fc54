//! One canonical form for what EC2 returns: a permission naming several peers becomes one atomic
//! rule per peer; protocol names and numbers are unified; `-1` ports become the full range.

use super::{Direction, IcmpMatch, ParseError, Peer, PortRange, Rule, Traffic};

/// An EC2 `IpPermission` as plain data: the shape of `aws ec2 describe-security-groups` output
/// and of the SDK type, without depending on either.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawPermission {
    pub ip_protocol: String,
    pub from_port: Option<i32>,
    pub to_port: Option<i32>,
    pub peers: Vec<RawPeer>,
}

/// One entry of `IpRanges`, `Ipv6Ranges`, `PrefixListIds` or `UserIdGroupPairs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawPeer {
    Ipv4 { cidr: String, description: Option<String> },
    Ipv6 { cidr: String, description: Option<String> },
    PrefixList { id: String, description: Option<String> },
    Group { group_id: String, user_id: Option<String>, description: Option<String> },
}

/// Turns EC2 permissions into canonical atomic rules (sorted, duplicates merged). `owner_id` is
/// the account of the group holding the rules: a `UserId` equal to it is not cross-account.
pub fn normalize(
    direction: Direction,
    permissions: &[RawPermission],
    owner_id: Option<&str>,
) -> Result<Vec<Rule>, ParseError> {
    let mut rules = Vec::new();
    for perm in permissions {
        let traffic = traffic_of(perm)?;
        for raw in &perm.peers {
            let (peer, description) = match raw {
                RawPeer::Ipv4 { cidr, description } | RawPeer::Ipv6 { cidr, description } => {
                    (Peer::parse(cidr)?, description.clone())
                }
                RawPeer::PrefixList { id, description } => (Peer::PrefixList(id.clone()), description.clone()),
                RawPeer::Group { group_id, user_id, description } => {
                    let owner = user_id.clone().filter(|u| Some(u.as_str()) != owner_id);
                    (Peer::Group { id: group_id.clone(), owner }, description.clone())
                }
            };
            let description = description.filter(|d| !d.is_empty());
            rules.push(Rule { direction, traffic, peer, description });
        }
    }
    Ok(canonicalize(rules))
}

/// Sorts rules and merges exact duplicates (keeping the first description); idempotent.
pub fn canonicalize(mut rules: Vec<Rule>) -> Vec<Rule> {
    rules.sort_by(|a, b| a.key().cmp(&b.key()).then_with(|| a.description.cmp(&b.description)));
    rules.dedup_by(|later, first| later.key() == first.key());
    rules
}

fn traffic_of(perm: &RawPermission) -> Result<Traffic, ParseError> {
    traffic_from_ec2(&perm.ip_protocol, perm.from_port, perm.to_port)
}

/// The traffic of EC2's `IpProtocol`/`FromPort`/`ToPort` triple (also the rule fields of a
/// finding in the report, which are written that way).
pub fn traffic_from_ec2(
    ip_protocol: &str,
    from_port: Option<i32>,
    to_port: Option<i32>,
) -> Result<Traffic, ParseError> {
    let proto = ip_protocol.trim().to_ascii_lowercase();
    let ports = || -> Result<PortRange, ParseError> {
        match (from_port, to_port) {
            (None, _) | (_, None) | (Some(-1), _) | (_, Some(-1)) => Ok(PortRange::ALL),
            (Some(f), Some(t)) => {
                let conv = |p: i32| u16::try_from(p).map_err(|_| ParseError(format!("port {p} is outside 0-65535")));
                PortRange::new(conv(f)?, conv(t)?)
            }
        }
    };
    let icmp = || -> Result<IcmpMatch, ParseError> {
        let conv = |p: Option<i32>| match p {
            None | Some(-1) => Ok(None),
            Some(v) => {
                u8::try_from(v).map(Some).map_err(|_| ParseError(format!("ICMP type/code {v} is outside 0-255")))
            }
        };
        let icmp_type = conv(from_port)?;
        // A code without a type cannot be expressed; EC2 treats it as every type.
        let code = if icmp_type.is_some() { conv(to_port)? } else { None };
        Ok(IcmpMatch { icmp_type, code })
    };
    Ok(match proto.as_str() {
        "-1" | "all" => Traffic::All,
        "tcp" | "6" => Traffic::Tcp(ports()?),
        "udp" | "17" => Traffic::Udp(ports()?),
        "icmp" | "1" => Traffic::Icmp(icmp()?),
        "icmpv6" | "58" => Traffic::Icmpv6(icmp()?),
        other => Traffic::Other(other.parse::<u8>().map_err(|_| {
            ParseError(format!("unknown IpProtocol `{other}`: expected tcp, udp, icmp, icmpv6, -1 or a number 0-255"))
        })?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER: &str = "111122223333";

    fn v4(cidr: &str) -> RawPeer {
        RawPeer::Ipv4 { cidr: cidr.to_string(), description: None }
    }

    fn v6(cidr: &str) -> RawPeer {
        RawPeer::Ipv6 { cidr: cidr.to_string(), description: None }
    }

    fn sg(id: &str, user: Option<&str>) -> RawPeer {
        RawPeer::Group { group_id: id.to_string(), user_id: user.map(str::to_string), description: None }
    }

    fn perm(protocol: &str, from: Option<i32>, to: Option<i32>, peers: Vec<RawPeer>) -> RawPermission {
        RawPermission { ip_protocol: protocol.to_string(), from_port: from, to_port: to, peers }
    }

    fn rules(direction: Direction, permissions: &[RawPermission]) -> Vec<String> {
        normalize(direction, permissions, Some(OWNER)).expect("normalizes").iter().map(Rule::to_string).collect()
    }

    #[test]
    fn every_ec2_peer_shape_becomes_one_atomic_rule() {
        let cases = [
            (v4("10.0.0.0/16"), "ingress tcp 443 from 10.0.0.0/16"),
            (v4("10.1.2.3/8"), "ingress tcp 443 from 10.0.0.0/8"),
            (v6("2600:1f18::/56"), "ingress tcp 443 from 2600:1f18::/56"),
            (v6("::/0"), "ingress tcp 443 from ::/0"),
            (sg("sg-0abc", None), "ingress tcp 443 from sg-0abc"),
            (sg("sg-0abc", Some(OWNER)), "ingress tcp 443 from sg-0abc"),
            (sg("sg-0abc", Some("444455556666")), "ingress tcp 443 from 444455556666/sg-0abc"),
            (
                RawPeer::PrefixList { id: "pl-6ea54007".to_string(), description: None },
                "ingress tcp 443 from pl-6ea54007",
            ),
        ];
        for (peer, want) in cases {
            let got = rules(Direction::Ingress, &[perm("tcp", Some(443), Some(443), vec![peer.clone()])]);
            assert_eq!(got, vec![want.to_string()], "{peer:?}");
        }
    }

    #[test]
    fn a_cross_account_group_keeps_its_owner_and_a_same_account_one_does_not() {
        let got = normalize(
            Direction::Ingress,
            &[perm("-1", None, None, vec![sg("sg-a", Some("444455556666")), sg("sg-b", Some(OWNER))])],
            Some(OWNER),
        )
        .expect("normalizes");
        let peers: Vec<&Peer> = got.iter().map(|r| &r.peer).collect();
        assert_eq!(
            peers,
            vec![
                &Peer::Group { id: "sg-a".to_string(), owner: Some("444455556666".to_string()) },
                &Peer::Group { id: "sg-b".to_string(), owner: None },
            ]
        );
    }

    #[test]
    fn protocol_names_and_numbers_are_unified() {
        let cases: [(&str, Option<i32>, Option<i32>, Traffic); 16] = [
            ("-1", None, None, Traffic::All),
            ("-1", Some(-1), Some(-1), Traffic::All),
            ("all", None, None, Traffic::All),
            ("tcp", Some(443), Some(443), Traffic::Tcp(PortRange::single(443))),
            ("6", Some(443), Some(443), Traffic::Tcp(PortRange::single(443))),
            ("TCP", Some(443), Some(443), Traffic::Tcp(PortRange::single(443))),
            ("udp", Some(53), Some(53), Traffic::Udp(PortRange::single(53))),
            ("17", Some(53), Some(53), Traffic::Udp(PortRange::single(53))),
            ("icmp", Some(-1), Some(-1), Traffic::Icmp(IcmpMatch::ALL)),
            ("1", None, None, Traffic::Icmp(IcmpMatch::ALL)),
            ("icmpv6", Some(-1), Some(-1), Traffic::Icmpv6(IcmpMatch::ALL)),
            ("58", Some(128), Some(0), Traffic::Icmpv6(IcmpMatch { icmp_type: Some(128), code: Some(0) })),
            ("50", None, None, Traffic::Other(50)),
            ("50", Some(-1), Some(-1), Traffic::Other(50)),
            ("47", None, None, Traffic::Other(47)),
            ("tcp", Some(0), Some(65535), Traffic::Tcp(PortRange::ALL)),
        ];
        for (protocol, from, to, want) in cases {
            let got = normalize(Direction::Egress, &[perm(protocol, from, to, vec![v4("0.0.0.0/0")])], None)
                .expect("normalizes");
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].traffic, want, "{protocol} {from:?} {to:?}");
        }
    }

    #[test]
    fn port_ranges_become_intervals_and_minus_one_the_full_range() {
        let cases: [(&str, Option<i32>, Option<i32>, &str); 6] = [
            ("tcp", Some(1025), Some(65535), "tcp 1025-65535"),
            ("tcp", Some(443), Some(443), "tcp 443"),
            ("tcp", Some(-1), Some(-1), "tcp all"),
            ("udp", None, None, "udp all"),
            ("tcp", Some(0), Some(0), "tcp 0"),
            ("udp", Some(30000), Some(32767), "udp 30000-32767"),
        ];
        for (protocol, from, to, want) in cases {
            let got = normalize(Direction::Ingress, &[perm(protocol, from, to, vec![v4("10.0.0.0/8")])], None)
                .expect("normalizes");
            assert_eq!(got[0].traffic.to_string(), want);
        }
    }

    #[test]
    fn icmp_keeps_type_and_code() {
        let cases: [(Option<i32>, Option<i32>, IcmpMatch); 5] = [
            (Some(8), Some(0), IcmpMatch { icmp_type: Some(8), code: Some(0) }),
            (Some(3), Some(-1), IcmpMatch { icmp_type: Some(3), code: None }),
            (Some(-1), Some(-1), IcmpMatch::ALL),
            // A code without a type means every type to EC2.
            (Some(-1), Some(4), IcmpMatch::ALL),
            (None, None, IcmpMatch::ALL),
        ];
        for (from, to, want) in cases {
            let got = normalize(Direction::Ingress, &[perm("icmp", from, to, vec![v4("10.0.0.0/8")])], None)
                .expect("normalizes");
            assert_eq!(got[0].traffic, Traffic::Icmp(want), "{from:?} {to:?}");
        }
    }

    #[test]
    fn a_permission_with_several_peers_splits_into_sorted_atomic_rules() {
        let got = rules(
            Direction::Ingress,
            &[perm(
                "tcp",
                Some(443),
                Some(443),
                vec![
                    sg("sg-b", None),
                    v4("192.168.0.0/16"),
                    v6("::/0"),
                    v4("10.0.0.0/8"),
                    RawPeer::PrefixList { id: "pl-1".to_string(), description: None },
                ],
            )],
        );
        assert_eq!(
            got,
            vec![
                "ingress tcp 443 from 10.0.0.0/8",
                "ingress tcp 443 from 192.168.0.0/16",
                "ingress tcp 443 from ::/0",
                "ingress tcp 443 from pl-1",
                "ingress tcp 443 from sg-b",
            ]
        );
    }

    #[test]
    fn merged_and_split_permissions_normalize_to_the_same_rules() {
        let merged = [perm("tcp", Some(443), Some(443), vec![v4("10.0.0.0/8"), v4("172.16.0.0/12"), sg("sg-a", None)])];
        let split = [
            perm("6", Some(443), Some(443), vec![sg("sg-a", None)]),
            perm("tcp", Some(443), Some(443), vec![v4("172.16.0.0/12")]),
            perm("tcp", Some(443), Some(443), vec![v4("10.0.0.0/8")]),
        ];
        assert_eq!(rules(Direction::Ingress, &merged), rules(Direction::Ingress, &split));
    }

    #[test]
    fn descriptions_are_kept_but_do_not_make_rules_distinct() {
        let described = |d: &str| RawPeer::Ipv4 { cidr: "10.0.0.0/8".to_string(), description: Some(d.to_string()) };
        let got = normalize(
            Direction::Ingress,
            &[
                perm("tcp", Some(22), Some(22), vec![described("bastion")]),
                perm("tcp", Some(22), Some(22), vec![described("admin VPN")]),
            ],
            None,
        )
        .expect("normalizes");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].description.as_deref(), Some("admin VPN"));

        let empty = normalize(Direction::Ingress, &[perm("tcp", Some(22), Some(22), vec![described("")])], None)
            .expect("normalizes");
        assert_eq!(empty[0].description, None);
    }

    #[test]
    fn bad_permissions_are_refused_with_a_clear_message() {
        let cases: [(RawPermission, &str); 5] = [
            (perm("gre", None, None, vec![v4("10.0.0.0/8")]), "unknown IpProtocol `gre`"),
            (perm("tcp", Some(90), Some(80), vec![v4("10.0.0.0/8")]), "port range 90-80 is reversed"),
            (perm("tcp", Some(70000), Some(70000), vec![v4("10.0.0.0/8")]), "port 70000 is outside 0-65535"),
            (perm("icmp", Some(300), Some(0), vec![v4("10.0.0.0/8")]), "ICMP type/code 300 is outside 0-255"),
            (perm("tcp", Some(22), Some(22), vec![v4("10.0.0.0/33")]), "bad peer `10.0.0.0/33`"),
        ];
        for (p, want) in cases {
            let err = normalize(Direction::Ingress, &[p], None).expect_err("refused");
            assert!(err.0.contains(want), "{} does not contain {want}", err.0);
        }
    }

    #[test]
    fn canonicalize_is_idempotent_and_order_independent() {
        let raw = [
            perm("tcp", Some(443), Some(443), vec![v4("10.0.0.0/8"), sg("sg-a", None)]),
            perm("-1", None, None, vec![v6("::/0")]),
            perm("udp", Some(53), Some(53), vec![sg("sg-a", None), sg("sg-a", None)]),
        ];
        let once = normalize(Direction::Egress, &raw, None).expect("normalizes");
        assert_eq!(canonicalize(once.clone()), once);
        let mut reversed = once.clone();
        reversed.reverse();
        assert_eq!(canonicalize(reversed), once);
        assert_eq!(once.len(), 4);
    }
}
