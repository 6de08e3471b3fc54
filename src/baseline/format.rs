//! The baseline TOML format of design.md §3: parsing with file/line/column errors, and printing.

use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::{Baseline, BaselineRule, PeerSpec, RuleStatus, PROFILES};
use crate::model::{Direction, Role, Traffic};

/// A baseline that could not be read; every variant names the file and, where there is one,
/// the line and column.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("cannot read baseline file {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid { path: String, line: usize, column: usize, message: String },
    #[error("{path}: {message}")]
    Other { path: String, message: String },
}

impl BaselineError {
    /// A bounded label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            BaselineError::Io { .. } => "io",
            BaselineError::Invalid { .. } => "invalid",
            BaselineError::Other { .. } => "other",
        }
    }
}

/// The file as written. Values that need checking after TOML parsing keep their span, so a
/// bad CIDR or port range is reported where it stands, not where its table starts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    profile: Option<Spanned<String>>,
    #[serde(default)]
    rule: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    role: Spanned<String>,
    group: Option<String>,
    direction: Spanned<String>,
    protocol: Spanned<RawScalar>,
    ports: Option<Spanned<RawScalar>>,
    peer: Spanned<String>,
    status: Option<Spanned<String>>,
    why: Option<String>,
    source: Option<String>,
}

/// `ports = 443` and `ports = "443"` (likewise `protocol = 6`) mean the same; people write both.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawScalar {
    Int(i64),
    Text(String),
}

impl RawScalar {
    fn text(&self) -> String {
        match self {
            RawScalar::Int(n) => n.to_string(),
            RawScalar::Text(s) => s.clone(),
        }
    }
}

pub fn load_file(path: &Path) -> Result<Baseline, BaselineError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| BaselineError::Io { path: path.display().to_string(), source })?;
    parse_str(&text, &path.display().to_string())
}

/// Parses baseline TOML; `origin` names the text in errors (a path) and becomes `Baseline::origin`.
/// Rules without `status` are `required`: a file usually states what must be there.
pub fn parse_str(text: &str, origin: &str) -> Result<Baseline, BaselineError> {
    let at = |span: Range<usize>, message: String| {
        let (line, column) = line_col(text, span.start);
        BaselineError::Invalid { path: origin.to_string(), line, column, message }
    };
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        at(span, e.message().trim().to_string())
    })?;

    let profile = match raw.profile {
        None => None,
        Some(p) if PROFILES.contains(&p.get_ref().as_str()) => Some(p.into_inner()),
        Some(p) => {
            return Err(at(
                p.span(),
                format!("unknown profile `{}`: expected one of {}", p.get_ref(), PROFILES.join(", ")),
            ))
        }
    };

    let mut rules = Vec::with_capacity(raw.rule.len());
    for r in raw.rule {
        let role = Role::parse(r.role.get_ref()).map_err(|e| at(r.role.span(), e.0))?;
        let direction = Direction::parse(r.direction.get_ref()).map_err(|e| at(r.direction.span(), e.0))?;
        let protocol = r.protocol.get_ref().text();
        // The protocol alone first, so an unknown protocol is reported at `protocol` and a bad
        // range at `ports`.
        Traffic::parse(&protocol, None).map_err(|e| at(r.protocol.span(), e.0))?;
        let traffic = match &r.ports {
            None => Traffic::parse(&protocol, None).map_err(|e| at(r.protocol.span(), e.0)),
            Some(p) => Traffic::parse(&protocol, Some(&p.get_ref().text())).map_err(|e| at(p.span(), e.0)),
        }?;
        let peer = PeerSpec::parse(r.peer.get_ref()).map_err(|e| at(r.peer.span(), e.0))?;
        let status = match &r.status {
            None => RuleStatus::Required,
            Some(s) => match s.get_ref().as_str() {
                "required" => RuleStatus::Required,
                "allowed" => RuleStatus::Allowed,
                other => {
                    return Err(at(s.span(), format!("unknown status `{other}`: expected `required` or `allowed`")))
                }
            },
        };
        rules.push(BaselineRule {
            role,
            group: r.group,
            direction,
            traffic,
            peer,
            status,
            why: r.why,
            source: r.source,
        });
    }
    Ok(Baseline { origin: origin.to_string(), profile, rules })
}

/// Prints a baseline as TOML in the format `parse_str` reads (round-trips).
pub fn to_toml(baseline: &Baseline) -> String {
    let mut out = String::new();
    out.push_str(&format!("# sgdrift baseline: {}\n", baseline.origin));
    out.push_str("# status: required (gone is drift: missing) | allowed (may be there). A rule nothing here covers is unexpected.\n");
    if let Some(p) = &baseline.profile {
        out.push_str(&format!("profile = {}\n", quote(p)));
    }
    let mut last_role = None;
    for rule in &baseline.rules {
        if last_role != Some(rule.role) {
            out.push_str(&format!("\n# ── role {} ──\n", rule.role));
            last_role = Some(rule.role);
        }
        out.push('\n');
        write_rule(&mut out, rule);
    }
    out
}

/// One `[[rule]]` table; shared with `record` so both print the same way.
pub(super) fn write_rule(out: &mut String, rule: &BaselineRule) {
    out.push_str("[[rule]]\n");
    out.push_str(&format!("role = {}\n", quote(rule.role.as_str())));
    if let Some(g) = &rule.group {
        out.push_str(&format!("group = {}\n", quote(g)));
    }
    out.push_str(&format!("direction = {}\n", quote(rule.direction.as_str())));
    out.push_str(&format!("protocol = {}\n", quote(&rule.traffic.protocol_name())));
    if let Some(ports) = ports_text(&rule.traffic) {
        out.push_str(&format!("ports = {}\n", quote(&ports)));
    }
    out.push_str(&format!("peer = {}\n", quote(&rule.peer.to_string())));
    let status = match rule.status {
        RuleStatus::Required => "required",
        RuleStatus::Allowed => "allowed",
    };
    out.push_str(&format!("status = {}\n", quote(status)));
    if let Some(why) = &rule.why {
        out.push_str(&format!("why = {}\n", quote(why)));
    }
    if let Some(source) = &rule.source {
        out.push_str(&format!("source = {}\n", quote(source)));
    }
}

/// The `ports` value of a traffic: port range for tcp/udp, `type/code` for ICMP, none otherwise.
fn ports_text(traffic: &Traffic) -> Option<String> {
    match traffic {
        Traffic::Tcp(r) | Traffic::Udp(r) => Some(r.to_string()),
        Traffic::Icmp(m) | Traffic::Icmpv6(m) => Some(m.to_string()),
        Traffic::All | Traffic::Other(_) => None,
    }
}

/// A TOML string literal, escaped by the toml crate itself.
fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{IcmpMatch, Peer, PortRange};

    fn rule(text: &str) -> String {
        format!("[[rule]]\n{text}\n")
    }

    #[test]
    fn every_bad_input_is_reported_at_its_file_line_and_column() {
        // (what is wrong, file text, line, column, words the message must contain)
        let cases: &[(&str, String, usize, usize, &str)] = &[
            ("malformed TOML", "profile = \"eks-minimal\n".into(), 1, 23, "string"),
            (
                "unknown key",
                rule("role = \"node\"\ndirection = \"ingress\"\nprotocol = \"tcp\"\npeer = \"self\"\nprot = \"tcp\""),
                6,
                1,
                "unknown field `prot`",
            ),
            (
                "bad CIDR",
                rule("role = \"node\"\ndirection = \"ingress\"\nprotocol = \"tcp\"\nports = \"443\"\npeer = \"cidr:10.0.0.300/8\""),
                6,
                8,
                "10.0.0.300/8",
            ),
            (
                "bad port range",
                rule("role = \"node\"\ndirection = \"ingress\"\nprotocol = \"tcp\"\nports = \"443-80\"\npeer = \"self\""),
                5,
                9,
                "reversed",
            ),
            (
                "port out of range",
                rule("role = \"node\"\ndirection = \"ingress\"\nprotocol = \"tcp\"\nports = 70000\npeer = \"self\""),
                5,
                9,
                "70000",
            ),
            (
                "unknown role",
                rule("role = \"worker\"\ndirection = \"ingress\"\nprotocol = \"tcp\"\npeer = \"self\""),
                2,
                8,
                "unknown role `worker`",
            ),
            (
                "unknown role in a peer",
                rule("role = \"node\"\ndirection = \"ingress\"\nprotocol = \"tcp\"\npeer = \"role:worker\""),
                5,
                8,
                "unknown role `worker`",
            ),
            (
                "unknown protocol",
                rule("role = \"node\"\ndirection = \"ingress\"\nprotocol = \"sctp\"\npeer = \"self\""),
                4,
                12,
                "unknown protocol `sctp`",
            ),
            (
                "ports on protocol all",
                rule("role = \"node\"\ndirection = \"ingress\"\nprotocol = \"all\"\nports = \"443\"\npeer = \"self\""),
                5,
                9,
                "takes no ports",
            ),
            (
                "bad status",
                rule("role = \"node\"\ndirection = \"ingress\"\nprotocol = \"tcp\"\npeer = \"self\"\nstatus = \"maybe\""),
                6,
                10,
                "unknown status `maybe`",
            ),
            (
                "bad direction",
                rule("role = \"node\"\ndirection = \"sideways\"\nprotocol = \"tcp\"\npeer = \"self\""),
                3,
                13,
                "unknown direction",
            ),
            ("unknown profile", "profile = \"eks-lax\"\n".into(), 1, 11, "unknown profile `eks-lax`"),
            (
                "missing peer",
                rule("role = \"node\"\ndirection = \"ingress\"\nprotocol = \"tcp\""),
                1,
                1,
                "missing field `peer`",
            ),
            ("unknown top-level key", "profiles = \"eks-minimal\"\n".into(), 1, 1, "unknown field `profiles`"),
        ];
        for (what, text, line, column, words) in cases {
            let err = parse_str(text, "baselines/b.toml").expect_err(what);
            let shown = err.to_string();
            match &err {
                BaselineError::Invalid { path, line: l, column: c, message } => {
                    assert_eq!(path, "baselines/b.toml", "{what}");
                    assert_eq!((*l, *c), (*line, *column), "{what}: {shown}");
                    assert!(message.contains(words), "{what}: `{message}` lacks `{words}`");
                }
                other => panic!("{what}: expected Invalid, got {other:?}"),
            }
            assert!(shown.starts_with(&format!("baselines/b.toml:{line}:{column}: ")), "{what}: {shown}");
        }
    }

    #[test]
    fn a_rule_without_status_is_required_and_ports_default_to_all() {
        let b = parse_str(
            &rule("role = \"node\"\ndirection = \"egress\"\nprotocol = \"udp\"\npeer = \"role:node\""),
            "f.toml",
        )
        .unwrap();
        assert_eq!(b.rules.len(), 1);
        assert_eq!(b.rules[0].status, RuleStatus::Required);
        assert_eq!(b.rules[0].traffic, Traffic::Udp(PortRange::ALL));
        assert_eq!(b.rules[0].peer, PeerSpec::Role(Role::Node));
    }

    #[test]
    fn the_design_example_parses_as_written() {
        let text = r#"
profile = "eks-minimal"
[[rule]]
role = "node"
direction = "ingress"
protocol = "tcp"
ports = "10250"
peer = "role:control-plane"   # role:<r>, self, cidr:<v4|v6>, prefix-list:<pl-id|name>, sg:<id>, vpc-cidr
status = "required"           # required | allowed
why = "kubelet API: logs, exec, metrics"
"#;
        let b = parse_str(text, "x.toml").unwrap();
        assert_eq!(b.profile.as_deref(), Some("eks-minimal"));
        assert_eq!(
            b.rules,
            vec![BaselineRule {
                role: Role::Node,
                group: None,
                direction: Direction::Ingress,
                traffic: Traffic::Tcp(PortRange::single(10250)),
                peer: PeerSpec::Role(Role::ControlPlane),
                status: RuleStatus::Required,
                why: Some("kubelet API: logs, exec, metrics".into()),
                source: None,
            }]
        );
    }

    #[test]
    fn numeric_ports_and_protocol_numbers_read_like_their_text() {
        let a = parse_str(
            &rule("role = \"node\"\ndirection = \"ingress\"\nprotocol = 6\nports = 443\npeer = \"self\""),
            "a",
        )
        .unwrap();
        let b = parse_str(
            &rule("role = \"node\"\ndirection = \"ingress\"\nprotocol = \"tcp\"\nports = \"443\"\npeer = \"self\""),
            "a",
        )
        .unwrap();
        assert_eq!(a, b);
    }

    fn every_kind_of_rule() -> Baseline {
        let r = |role,
                 group: Option<&str>,
                 direction,
                 traffic,
                 peer: &str,
                 status,
                 why: Option<&str>,
                 source: Option<&str>| {
            BaselineRule {
                role,
                group: group.map(String::from),
                direction,
                traffic,
                peer: PeerSpec::parse(peer).unwrap(),
                status,
                why: why.map(String::from),
                source: source.map(String::from),
            }
        };
        use Direction::*;
        use RuleStatus::*;
        Baseline {
            origin: "round-trip.toml".into(),
            profile: Some("eks-strict".into()),
            rules: vec![
                r(
                    Role::Node,
                    None,
                    Ingress,
                    Traffic::Tcp(PortRange::single(10250)),
                    "role:control-plane",
                    Required,
                    Some("kubelet"),
                    Some("D-2018, TF"),
                ),
                r(
                    Role::Node,
                    Some("sg-0abc"),
                    Ingress,
                    Traffic::Tcp(PortRange::new(1025, 65535).unwrap()),
                    "self",
                    Allowed,
                    None,
                    None,
                ),
                r(
                    Role::Node,
                    Some("my \"quoted\" name"),
                    Egress,
                    Traffic::All,
                    "cidr:0.0.0.0/0",
                    Allowed,
                    Some("line one\nline two \\ with 'quotes' and \"more\""),
                    Some("TF"),
                ),
                r(Role::Cluster, None, Egress, Traffic::All, "cidr:::/0", Allowed, None, Some("D-2024")),
                r(
                    Role::Endpoint,
                    None,
                    Ingress,
                    Traffic::Tcp(PortRange::single(443)),
                    "vpc-cidr",
                    Required,
                    None,
                    None,
                ),
                r(
                    Role::Node,
                    None,
                    Egress,
                    Traffic::Tcp(PortRange::single(443)),
                    "prefix-list:s3",
                    Allowed,
                    None,
                    None,
                ),
                r(
                    Role::Node,
                    None,
                    Egress,
                    Traffic::Tcp(PortRange::single(443)),
                    "prefix-list:com.amazonaws.eu-west-1.dynamodb",
                    Allowed,
                    None,
                    None,
                ),
                r(
                    Role::Node,
                    None,
                    Egress,
                    Traffic::Tcp(PortRange::single(443)),
                    "prefix-list:pl-6ea54007",
                    Allowed,
                    None,
                    None,
                ),
                r(
                    Role::RemoteAccess,
                    None,
                    Ingress,
                    Traffic::Tcp(PortRange::single(22)),
                    "sg:sg-0bastion",
                    Required,
                    None,
                    None,
                ),
                r(
                    Role::ControlPlane,
                    None,
                    Ingress,
                    Traffic::Tcp(PortRange::single(443)),
                    "sg:111122223333/sg-0peer",
                    Required,
                    None,
                    None,
                ),
                r(
                    Role::Node,
                    None,
                    Ingress,
                    Traffic::Icmp(IcmpMatch { icmp_type: Some(8), code: Some(0) }),
                    "cidr:10.0.0.0/8",
                    Allowed,
                    None,
                    None,
                ),
                r(
                    Role::Node,
                    None,
                    Ingress,
                    Traffic::Icmp(IcmpMatch { icmp_type: Some(3), code: None }),
                    "cidr:10.0.0.0/8",
                    Allowed,
                    None,
                    None,
                ),
                r(Role::Node, None, Ingress, Traffic::Icmpv6(IcmpMatch::ALL), "cidr:fd00::/8", Allowed, None, None),
                r(Role::Node, None, Ingress, Traffic::Udp(PortRange::ALL), "role:node", Allowed, None, None),
                r(Role::Node, None, Ingress, Traffic::Other(47), "cidr:10.1.2.3/32", Allowed, None, None),
            ],
        }
    }

    #[test]
    fn printed_baselines_read_back_identically() {
        let b = every_kind_of_rule();
        let text = to_toml(&b);
        let back = parse_str(&text, &b.origin).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(back, b, "{text}");
        // And printing is stable: the second print is the first.
        assert_eq!(to_toml(&back), text);
    }

    #[test]
    fn a_baseline_without_profile_prints_no_profile_key() {
        let mut b = every_kind_of_rule();
        b.profile = None;
        let text = to_toml(&b);
        assert!(!text.contains("profile ="), "{text}");
        assert_eq!(parse_str(&text, &b.origin).unwrap(), b);
    }

    #[test]
    fn parsed_peers_are_concrete_where_the_text_is() {
        let cases = [
            ("cidr:10.1.2.3/8", PeerSpec::Concrete(Peer::parse("10.0.0.0/8").unwrap())),
            ("sg:sg-1", PeerSpec::Concrete(Peer::group("sg-1"))),
            ("vpc-cidr", PeerSpec::VpcCidr),
            ("self", PeerSpec::SelfRef),
        ];
        for (text, want) in cases {
            let b = parse_str(
                &rule(&format!("role = \"node\"\ndirection = \"ingress\"\nprotocol = \"all\"\npeer = \"{text}\"")),
                "p.toml",
            )
            .unwrap();
            assert_eq!(b.rules[0].peer, want, "{text}");
        }
    }

    #[test]
    fn the_example_baselines_in_config_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/baselines");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let b = load_file(&path).unwrap_or_else(|e| panic!("{e}"));
                assert!(!b.rules.is_empty(), "{} has no rules", path.display());
                seen += 1;
            }
        }
        assert!(seen >= 2, "expected example baselines in {}", dir.display());
    }

    #[test]
    fn a_missing_file_names_its_path() {
        let err = load_file(Path::new("/nonexistent/sgdrift/b.toml")).unwrap_err();
        assert_eq!(err.kind(), "io");
        assert!(err.to_string().contains("/nonexistent/sgdrift/b.toml"));
    }
}
