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
    let proto = perm.ip_protocol.trim().to_ascii_lowercase();
    let ports = || -> Result<PortRange, ParseError> {
        match (perm.from_port, perm.to_port) {
            (None, _) | (_, None) | (Some(-1), _) | (_, Some(-1)) => Ok(PortRange::ALL),
            (Some(f), Some(t)) => {
                let conv = |p: i32| {
                    u16::try_from(p).map_err(|_| ParseError(format!("port {p} is outside 0-65535")))
                };
                PortRange::new(conv(f)?, conv(t)?)
            }
        }
    };
    let icmp = || -> Result<IcmpMatch, ParseError> {
        let conv = |p: Option<i32>| match p {
            None | Some(-1) => Ok(None),
            Some(v) => u8::try_from(v)
                .map(Some)
                .map_err(|_| ParseError(format!("ICMP type/code {v} is outside 0-255"))),
        };
        let icmp_type = conv(perm.from_port)?;
        // A code without a type cannot be expressed; EC2 treats it as every type.
        let code = if icmp_type.is_some() { conv(perm.to_port)? } else { None };
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
