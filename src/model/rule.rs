//! One atomic security-group rule: a direction, the traffic it admits and one peer.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::Peer;

/// Why a textual rule component could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        match s.to_ascii_lowercase().as_str() {
            "ingress" | "in" | "inbound" => Ok(Direction::Ingress),
            "egress" | "out" | "outbound" => Ok(Direction::Egress),
            other => Err(ParseError(format!("unknown direction `{other}`: expected `ingress` or `egress`"))),
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An inclusive port interval; construction guarantees `from <= to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    from: u16,
    to: u16,
}

impl PortRange {
    pub const ALL: PortRange = PortRange { from: 0, to: 65535 };

    pub fn new(from: u16, to: u16) -> Result<Self, ParseError> {
        if from > to {
            return Err(ParseError(format!(
                "port range {from}-{to} is reversed: the first port must not exceed the second"
            )));
        }
        Ok(PortRange { from, to })
    }

    pub fn single(port: u16) -> Self {
        PortRange { from: port, to: port }
    }

    pub fn from(self) -> u16 {
        self.from
    }

    pub fn to(self) -> u16 {
        self.to
    }

    pub fn is_all(self) -> bool {
        self == Self::ALL
    }

    pub fn contains(self, other: PortRange) -> bool {
        self.from <= other.from && other.to <= self.to
    }

    /// Parses `443`, `1025-65535`, `all` or `*`.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("all") || s == "*" || s == "-1" {
            return Ok(Self::ALL);
        }
        let port = |p: &str| {
            p.trim()
                .parse::<u16>()
                .map_err(|_| ParseError(format!("bad port `{p}` in `{s}`: ports are whole numbers from 0 to 65535")))
        };
        match s.split_once('-') {
            Some((a, b)) => PortRange::new(port(a)?, port(b)?),
            None => Ok(PortRange::single(port(s)?)),
        }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_all() {
            f.write_str("all")
        } else if self.from == self.to {
            write!(f, "{}", self.from)
        } else {
            write!(f, "{}-{}", self.from, self.to)
        }
    }
}

/// ICMP type and code; `None` means every type (or every code of the type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IcmpMatch {
    pub icmp_type: Option<u8>,
    pub code: Option<u8>,
}

impl IcmpMatch {
    pub const ALL: IcmpMatch = IcmpMatch { icmp_type: None, code: None };

    pub fn contains(self, other: IcmpMatch) -> bool {
        match (self.icmp_type, other.icmp_type) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) if a != b => false,
            _ => match (self.code, other.code) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(a), Some(b)) => a == b,
            },
        }
    }
}

impl fmt::Display for IcmpMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.icmp_type, self.code) {
            (None, _) => f.write_str("all"),
            (Some(t), None) => write!(f, "{t}"),
            (Some(t), Some(c)) => write!(f, "{t}/{c}"),
        }
    }
}

/// The traffic a rule admits: protocol plus, where the protocol has them, ports or ICMP type/code.
/// Each protocol carries exactly the qualifier it can have, so `tcp` without ports cannot exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Traffic {
    /// IpProtocol `-1`: every protocol and port.
    All,
    Tcp(PortRange),
    Udp(PortRange),
    Icmp(IcmpMatch),
    Icmpv6(IcmpMatch),
    /// Any other IP protocol number; EC2 applies such rules to all ports.
    Other(u8),
}

impl Traffic {
    /// The protocol as EC2 and design.md §3 JSON name it: `all`, `tcp`, `udp`, `icmp`, `icmpv6` or the number.
    pub fn protocol_name(&self) -> String {
        match self {
            Traffic::All => "all".into(),
            Traffic::Tcp(_) => "tcp".into(),
            Traffic::Udp(_) => "udp".into(),
            Traffic::Icmp(_) => "icmp".into(),
            Traffic::Icmpv6(_) => "icmpv6".into(),
            Traffic::Other(n) => n.to_string(),
        }
    }

    /// `from_port` as EC2 reports it: the first port, the ICMP type, or -1.
    pub fn from_port(&self) -> i32 {
        match self {
            Traffic::Tcp(r) | Traffic::Udp(r) => r.from() as i32,
            Traffic::Icmp(m) | Traffic::Icmpv6(m) => m.icmp_type.map_or(-1, i32::from),
            Traffic::All | Traffic::Other(_) => -1,
        }
    }

    /// `to_port` as EC2 reports it: the last port, the ICMP code, or -1.
    pub fn to_port(&self) -> i32 {
        match self {
            Traffic::Tcp(r) | Traffic::Udp(r) => r.to() as i32,
            Traffic::Icmp(m) | Traffic::Icmpv6(m) => m.code.map_or(-1, i32::from),
            Traffic::All | Traffic::Other(_) => -1,
        }
    }

    /// Parses the protocol and port words of the rule grammar: `all`, `tcp 443`, `udp 53`,
    /// `tcp 1025-65535`, `icmp 8/0`, `icmp all`, `47`.
    pub fn parse(protocol: &str, ports: Option<&str>) -> Result<Self, ParseError> {
        let proto = protocol.trim().to_ascii_lowercase();
        let icmp = |p: Option<&str>| -> Result<IcmpMatch, ParseError> {
            let Some(p) = p.map(str::trim).filter(|p| !p.is_empty()) else {
                return Ok(IcmpMatch::ALL);
            };
            if p.eq_ignore_ascii_case("all") || p == "-1" {
                return Ok(IcmpMatch::ALL);
            }
            let num = |x: &str| {
                x.trim().parse::<u8>().map_err(|_| {
                    ParseError(format!("bad ICMP type/code `{p}`: expected `type` or `type/code`, numbers 0-255"))
                })
            };
            match p.split_once('/') {
                Some((t, c)) => Ok(IcmpMatch { icmp_type: Some(num(t)?), code: Some(num(c)?) }),
                None => Ok(IcmpMatch { icmp_type: Some(num(p)?), code: None }),
            }
        };
        let range = |p: Option<&str>| match p.map(str::trim).filter(|p| !p.is_empty()) {
            Some(p) => PortRange::parse(p),
            None => Ok(PortRange::ALL),
        };
        match proto.as_str() {
            "all" | "-1" | "any" => match ports.map(str::trim) {
                None | Some("") | Some("all") | Some("-1") => Ok(Traffic::All),
                Some(p) => Err(ParseError(format!(
                    "protocol `all` takes no ports (got `{p}`): name tcp or udp to limit ports"
                ))),
            },
            "tcp" | "6" => Ok(Traffic::Tcp(range(ports)?)),
            "udp" | "17" => Ok(Traffic::Udp(range(ports)?)),
            "icmp" | "1" => Ok(Traffic::Icmp(icmp(ports)?)),
            "icmpv6" | "58" => Ok(Traffic::Icmpv6(icmp(ports)?)),
            other => other.parse::<u8>().map(Traffic::Other).map_err(|_| {
                ParseError(format!(
                    "unknown protocol `{other}`: expected all, tcp, udp, icmp, icmpv6 or a protocol number 0-255"
                ))
            }),
        }
    }
}

impl fmt::Display for Traffic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Traffic::All => f.write_str("all"),
            Traffic::Tcp(r) => write!(f, "tcp {r}"),
            Traffic::Udp(r) => write!(f, "udp {r}"),
            Traffic::Icmp(m) => write!(f, "icmp {m}"),
            Traffic::Icmpv6(m) => write!(f, "icmpv6 {m}"),
            Traffic::Other(n) => write!(f, "{n}"),
        }
    }
}

/// One atomic rule of one security group. Descriptions are carried for display only:
/// equality and coverage ignore them (see [`Rule::key`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    pub direction: Direction,
    pub traffic: Traffic,
    pub peer: Peer,
    pub description: Option<String>,
}

impl Rule {
    pub fn new(direction: Direction, traffic: Traffic, peer: Peer) -> Self {
        Rule { direction, traffic, peer, description: None }
    }

    /// The rule without its description: what identity and comparison use.
    pub fn key(&self) -> (Direction, Traffic, &Peer) {
        (self.direction, self.traffic, &self.peer)
    }
}

impl fmt::Display for Rule {
    /// The rule grammar of exceptions: `ingress tcp 22 from 0.0.0.0/0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        RuleText { direction: self.direction, traffic: &self.traffic, peer: &self.peer }.fmt(f)
    }
}

/// The one text form of a rule, for every output (text report, page, Slack, webhook, logs,
/// exceptions): `ingress tcp 22 from 0.0.0.0/0`, `egress all to sg-0abc`, `ingress icmp 8/0
/// from ::/0`, `ingress tcp all from pl-1`. Generic over the peer so that a finding whose far
/// end no rule can name yet (a missing VPC endpoint) reads the same way.
#[derive(Debug, Clone, Copy)]
pub struct RuleText<'a, P> {
    pub direction: Direction,
    pub traffic: &'a Traffic,
    pub peer: &'a P,
}

impl<P: fmt::Display> fmt::Display for RuleText<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = match self.direction {
            Direction::Ingress => "from",
            Direction::Egress => "to",
        };
        write!(f, "{} {} {} {}", self.direction, self.traffic, word, self.peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges_parse_and_print_back() {
        let cases = [
            ("443", "443"),
            ("1025-65535", "1025-65535"),
            ("all", "all"),
            ("*", "all"),
            ("-1", "all"),
            ("0-65535", "all"),
            (" 80 - 90 ", "80-90"),
        ];
        for (text, want) in cases {
            assert_eq!(PortRange::parse(text).expect("parses").to_string(), want, "{text}");
        }
    }

    #[test]
    fn bad_port_ranges_are_refused_with_a_clear_message() {
        let cases = [
            ("90-80", "port range 90-80 is reversed"),
            ("70000", "bad port `70000`"),
            ("https", "bad port `https`"),
            ("", "bad port ``"),
        ];
        for (text, want) in cases {
            let err = PortRange::parse(text).expect_err("refused");
            assert!(err.0.contains(want), "{text}: {}", err.0);
        }
    }

    #[test]
    fn traffic_parses_the_rule_grammar_and_prints_it_back() {
        let cases: [(&str, Option<&str>, &str); 12] = [
            ("all", None, "all"),
            ("-1", Some("all"), "all"),
            ("tcp", Some("443"), "tcp 443"),
            ("6", Some("443"), "tcp 443"),
            ("udp", Some("53"), "udp 53"),
            ("tcp", Some("1025-65535"), "tcp 1025-65535"),
            ("tcp", None, "tcp all"),
            ("icmp", Some("8/0"), "icmp 8/0"),
            ("icmp", Some("3"), "icmp 3"),
            ("icmp", Some("all"), "icmp all"),
            ("icmpv6", None, "icmpv6 all"),
            ("47", None, "47"),
        ];
        for (protocol, ports, want) in cases {
            let traffic = Traffic::parse(protocol, ports).expect("parses");
            assert_eq!(traffic.to_string(), want, "{protocol} {ports:?}");
            let mut words = want.splitn(2, ' ');
            let again = Traffic::parse(words.next().expect("protocol"), words.next()).expect("reparses");
            assert_eq!(again, traffic, "{want}");
        }
    }

    #[test]
    fn bad_traffic_is_refused_with_a_clear_message() {
        let cases: [(&str, Option<&str>, &str); 4] = [
            ("all", Some("443"), "protocol `all` takes no ports"),
            ("gre", None, "unknown protocol `gre`"),
            ("300", None, "unknown protocol `300`"),
            ("icmp", Some("8/x"), "bad ICMP type/code `8/x`"),
        ];
        for (protocol, ports, want) in cases {
            let err = Traffic::parse(protocol, ports).expect_err("refused");
            assert!(err.0.contains(want), "{protocol} {ports:?}: {}", err.0);
        }
    }

    #[test]
    fn ec2_port_fields_follow_the_protocol() {
        let cases = [
            (Traffic::All, ("all", -1, -1)),
            (Traffic::Tcp(PortRange::new(1025, 65535).expect("range")), ("tcp", 1025, 65535)),
            (Traffic::Udp(PortRange::single(53)), ("udp", 53, 53)),
            (Traffic::Icmp(IcmpMatch { icmp_type: Some(8), code: Some(0) }), ("icmp", 8, 0)),
            (Traffic::Icmp(IcmpMatch { icmp_type: Some(3), code: None }), ("icmp", 3, -1)),
            (Traffic::Icmpv6(IcmpMatch::ALL), ("icmpv6", -1, -1)),
            (Traffic::Other(50), ("50", -1, -1)),
        ];
        for (traffic, (protocol, from, to)) in cases {
            let got = (traffic.protocol_name(), traffic.from_port(), traffic.to_port());
            assert_eq!(got, (protocol.to_string(), from, to), "{traffic}");
        }
    }

    #[test]
    fn directions_accept_the_usual_words() {
        let cases = [
            ("ingress", Direction::Ingress),
            ("IN", Direction::Ingress),
            ("inbound", Direction::Ingress),
            ("egress", Direction::Egress),
            ("out", Direction::Egress),
            ("Outbound", Direction::Egress),
        ];
        for (text, want) in cases {
            assert_eq!(Direction::parse(text).expect("parses"), want, "{text}");
        }
        assert!(Direction::parse("sideways").expect_err("refused").0.contains("expected `ingress` or `egress`"));
    }

    #[test]
    fn rules_print_in_the_exception_grammar_without_their_description() {
        let mut rule = Rule::new(Direction::Ingress, Traffic::Tcp(PortRange::single(22)), "0.0.0.0/0".parse_peer());
        rule.description = Some("bastion".to_string());
        assert_eq!(rule.to_string(), "ingress tcp 22 from 0.0.0.0/0");
        let egress = Rule::new(Direction::Egress, Traffic::All, "sg-0abc".parse_peer());
        assert_eq!(egress.to_string(), "egress all to sg-0abc");
    }

    #[test]
    fn a_rules_key_ignores_its_description() {
        let plain = Rule::new(Direction::Ingress, Traffic::Udp(PortRange::single(53)), "sg-a".parse_peer());
        let described = Rule { description: Some("CoreDNS".to_string()), ..plain.clone() };
        assert_eq!(plain.key(), described.key());
        let other = Rule::new(Direction::Egress, Traffic::Udp(PortRange::single(53)), "sg-a".parse_peer());
        assert_ne!(plain.key(), other.key());
    }

    trait ParsePeer {
        fn parse_peer(self) -> Peer;
    }

    impl ParsePeer for &str {
        fn parse_peer(self) -> Peer {
            Peer::parse(self).expect("peer")
        }
    }
}
