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
    Group {
        id: String,
        owner: Option<String>,
    },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_to_their_canonical_form() {
        let cases = [
            ("10.0.0.0/16", "10.0.0.0/16"),
            ("10.1.2.3/8", "10.0.0.0/8"),
            ("192.168.1.10", "192.168.1.10/32"),
            (" 0.0.0.0/0 ", "0.0.0.0/0"),
            ("::/0", "::/0"),
            ("2600:1f18:abcd::1/40", "2600:1f18:ab00::/40"),
            ("2600:1f18::1", "2600:1f18::1/128"),
            ("pl-6ea54007", "pl-6ea54007"),
            ("sg-0abc", "sg-0abc"),
            ("444455556666/sg-0abc", "444455556666/sg-0abc"),
        ];
        for (text, want) in cases {
            let peer = Peer::parse(text).expect("parses");
            assert_eq!(peer.to_string(), want, "{text}");
            assert_eq!(Peer::parse(&peer.to_string()).expect("reparses"), peer, "{text}");
        }
    }

    #[test]
    fn a_cross_account_group_reference_keeps_its_owner() {
        assert_eq!(
            Peer::parse("444455556666/sg-0abc").expect("parses"),
            Peer::Group { id: "sg-0abc".to_string(), owner: Some("444455556666".to_string()) }
        );
        assert_eq!(Peer::parse("sg-0abc").expect("parses").group_id(), Some("sg-0abc"));
        assert_eq!(Peer::parse("10.0.0.0/8").expect("parses").group_id(), None);
    }

    #[test]
    fn bad_peers_are_refused_with_a_clear_message() {
        for text in ["10.0.0.0/33", "10.0.0", "::/129", "bastion", "", "10.0.0.0/8/1"] {
            let err = Peer::parse(text).expect_err("refused");
            assert!(err.0.starts_with(&format!("bad peer `{}`", text.trim())), "{text}: {}", err.0);
        }
    }

    #[test]
    fn internet_and_wide_ranges_are_told_apart() {
        let cases = [
            ("0.0.0.0/0", true, true),
            ("::/0", true, true),
            ("10.0.0.0/8", false, true),
            ("10.0.0.0/15", false, true),
            ("10.0.0.0/16", false, false),
            ("10.0.1.0/24", false, false),
            ("2600::/24", false, true),
            ("2600:1f18::/32", false, false),
            ("2600:1f18::/56", false, false),
            ("pl-1", false, false),
            ("sg-1", false, false),
        ];
        for (text, internet, wide) in cases {
            let peer = Peer::parse(text).expect("parses");
            assert_eq!((peer.is_internet(), peer.is_wide()), (internet, wide), "{text}");
        }
    }
}
