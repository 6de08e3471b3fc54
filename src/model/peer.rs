//! The other end of a rule, as EC2 states it: a CIDR, a prefix list or a security group.

use std::fmt;

use ipnet::{Ipv4Net, Ipv6Net};

use super::ParseError;

/// A concrete peer. Baselines name peers by role (`baseline::PeerSpec`); resolution against a
/// snapshot turns those into these.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Peer {
    Ipv4(Ipv4Net),
    Ipv6(Ipv6Net),
    /// A managed prefix list, by id (`pl-…`).
    PrefixList(String),
    /// A security group by id; `owner` is the account of a cross-account `UserId` reference.
    Group { id: String, owner: Option<String> },
}

impl Peer {
    pub fn group(id: impl Into<String>) -> Self {
        Peer::Group { id: id.into(), owner: None }
    }

    /// Parses a CIDR (`10.0.0.0/8`, `::/0`; a bare address is a host route), `pl-…` or `sg-…`.
    /// Host bits are cleared, so `10.1.2.3/8` reads as `10.0.0.0/8`, as EC2 stores it.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let s = s.trim();
        if s.starts_with("pl-") {
            return Ok(Peer::PrefixList(s.to_string()));
        }
        if s.starts_with("sg-") {
            return Ok(Peer::group(s));
        }
        if let Some((owner, id)) = s.split_once('/') {
            if id.starts_with("sg-") {
                return Ok(Peer::Group { id: id.to_string(), owner: Some(owner.to_string()) });
            }
        }
        parse_cidr(s)
    }

    pub fn is_internet(&self) -> bool {
        match self {
            Peer::Ipv4(n) => n.prefix_len() == 0,
            Peer::Ipv6(n) => n.prefix_len() == 0,
            _ => false,
        }
    }

    /// Wider than a /16 (IPv4) or /32 (IPv6): more addresses than one VPC holds.
    pub fn is_wide(&self) -> bool {
        match self {
            Peer::Ipv4(n) => n.prefix_len() < 16,
            Peer::Ipv6(n) => n.prefix_len() < 32,
            _ => false,
        }
    }

    pub fn group_id(&self) -> Option<&str> {
        match self {
            Peer::Group { id, .. } => Some(id),
            _ => None,
        }
    }
}

fn parse_cidr(s: &str) -> Result<Peer, ParseError> {
    let bad = || {
        ParseError(format!(
            "bad peer `{s}`: expected an IPv4 or IPv6 CIDR (10.0.0.0/16, ::/0), a prefix list (pl-…) or a security group (sg-…)"
        ))
    };
    if s.contains(':') {
        let net = if s.contains('/') {
            s.parse::<Ipv6Net>().map_err(|_| bad())?
        } else {
            Ipv6Net::new(s.parse().map_err(|_| bad())?, 128).map_err(|_| bad())?
        };
        Ok(Peer::Ipv6(net.trunc()))
    } else {
        let net = if s.contains('/') {
            s.parse::<Ipv4Net>().map_err(|_| bad())?
        } else {
            Ipv4Net::new(s.parse().map_err(|_| bad())?, 32).map_err(|_| bad())?
        };
        Ok(Peer::Ipv4(net.trunc()))
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Ipv4(n) => write!(f, "{n}"),
            Peer::Ipv6(n) => write!(f, "{n}"),
            Peer::PrefixList(id) => f.write_str(id),
            Peer::Group { id, owner: None } => f.write_str(id),
            Peer::Group { id, owner: Some(o) } => write!(f, "{o}/{id}"),
        }
    }
}
