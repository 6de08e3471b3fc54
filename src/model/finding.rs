//! What the differ and the flow checker report: one finding per drifted rule or closed flow.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{traffic_from_ec2, Direction, FlowName, ParseError, Peer, Role, Rule, RuleText, Traffic};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [Severity::Low, Severity::Medium, Severity::High, Severity::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| ParseError(format!("unknown severity `{s}`: expected low, medium, high or critical")))
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FindingKind {
    Unexpected,
    Missing,
    Flow,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Unexpected => "unexpected",
            FindingKind::Missing => "missing",
            FindingKind::Flow => "flow",
        }
    }
}

/// An interface VPC endpoint's service, `com.amazonaws.<region>.<service>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EndpointService(String);

impl EndpointService {
    const PREFIX: &'static str = "com.amazonaws.";

    pub fn new(region: &str, service: &str) -> Self {
        EndpointService(format!("{}{region}.{service}", Self::PREFIX))
    }

    /// Parses `com.amazonaws.<region>.<service>`.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        match s.strip_prefix(Self::PREFIX).and_then(|rest| rest.split_once('.')) {
            Some((region, service)) if !region.is_empty() && !service.is_empty() => Ok(EndpointService(s.to_string())),
            _ => Err(ParseError(format!("bad VPC endpoint service `{s}`: expected com.amazonaws.<region>.<service>"))),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EndpointService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The far end a finding names: a rule's peer, or, for a closed flow that no rule can open
/// yet, the interface endpoint the VPC lacks.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FindingPeer {
    Peer(Peer),
    AbsentEndpoint(EndpointService),
}

impl FindingPeer {
    /// Parses what [`Display`](fmt::Display) writes: a peer, or an endpoint service name.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.starts_with(EndpointService::PREFIX) {
            return EndpointService::parse(s).map(FindingPeer::AbsentEndpoint);
        }
        Peer::parse(s).map(FindingPeer::Peer)
    }

    /// The rule's peer; `None` for an absent endpoint.
    pub fn as_peer(&self) -> Option<&Peer> {
        match self {
            FindingPeer::Peer(p) => Some(p),
            FindingPeer::AbsentEndpoint(_) => None,
        }
    }
}

impl From<Peer> for FindingPeer {
    fn from(p: Peer) -> Self {
        FindingPeer::Peer(p)
    }
}

impl fmt::Display for FindingPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FindingPeer::Peer(p) => p.fmt(f),
            FindingPeer::AbsentEndpoint(s) => s.fmt(f),
        }
    }
}

/// One finding. Values stay typed; the JSON of design.md §3 (EC2's `protocol`, `from_port`,
/// `to_port` and `peer` as text) is written and read by the `Serialize`/`Deserialize` below.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "FindingJson")]
pub struct Finding {
    /// Stable across polls and restarts: a hash of cluster, group, kind and rule (or flow).
    pub id: String,
    pub kind: FindingKind,
    pub severity: Severity,
    pub group_id: String,
    pub role: Role,
    /// The rule that drifted, or for a `flow` finding the rule that would open the flow.
    pub direction: Direction,
    pub traffic: Traffic,
    pub peer: FindingPeer,
    pub reason: String,
    pub flow: Option<FlowName>,
    /// The rule's description in AWS, shown, never compared.
    pub description: Option<String>,
    pub suppressed_by: Option<String>,
    /// When sgdrift first saw the finding: the daemon remembers it across polls and restarts;
    /// `check`, which has no memory, says the time of its poll.
    pub first_seen: Option<DateTime<Utc>>,
    /// Who made the change that introduced the finding, where known (design.md §2 events).
    pub changed_by: Option<ChangedBy>,
    /// The change that restores the baseline, where one is known (design.md §2 remediation).
    pub remediation: Option<Remediation>,
}

/// The CloudTrail actor of the change behind a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangedBy {
    /// `userIdentity.arn`.
    pub arn: String,
    pub source_ip: Option<String>,
    /// `userAgent`: the console, the CLI, terraform, a controller.
    #[serde(default)]
    pub user_agent: Option<String>,
    pub event_time: DateTime<Utc>,
    pub event_name: String,
    pub event_id: String,
}

impl fmt::Display for ChangedBy {
    /// `arn:aws:sts::…:assumed-role/admin/jo (AuthorizeSecurityGroupIngress from 203.0.113.7 at 2026-11-30 07:00:00 UTC)`:
    /// the one line every output shows.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}", self.arn, self.event_name)?;
        if let Some(ip) = &self.source_ip {
            write!(f, " from {ip}")?;
        }
        write!(f, " at {})", self.event_time.format("%Y-%m-%d %H:%M:%S UTC"))
    }
}

/// What restores the baseline for one finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remediation {
    pub action: RemediationAction,
    /// The AWS CLI command that carries it out.
    pub aws_cli: String,
    /// Set when the fix belongs in code (a terraform-managed rule): what to change there.
    pub manual: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RemediationAction {
    /// Revoke the rule, by its `SecurityGroupRuleId`.
    Revoke,
    /// Authorize the rule, with the baseline's description.
    Authorize,
}

impl Finding {
    /// Suppressed findings stay in the report but are not drift.
    pub fn is_drift(&self) -> bool {
        self.suppressed_by.is_none()
    }

    /// The finding's rule, as every output writes it.
    pub fn rule_text(&self) -> RuleText<'_, FindingPeer> {
        RuleText { direction: self.direction, traffic: &self.traffic, peer: &self.peer }
    }

    /// The security-group rule of the finding; `None` when its far end is an absent endpoint.
    pub fn rule(&self) -> Option<Rule> {
        let peer = self.peer.as_peer()?.clone();
        Some(Rule { description: self.description.clone(), ..Rule::new(self.direction, self.traffic, peer) })
    }
}

impl Serialize for Finding {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Finding", 17)?;
        s.serialize_field("id", &self.id)?;
        s.serialize_field("kind", &self.kind)?;
        s.serialize_field("severity", &self.severity)?;
        s.serialize_field("group_id", &self.group_id)?;
        s.serialize_field("role", &self.role)?;
        s.serialize_field("direction", &self.direction)?;
        s.serialize_field("protocol", &self.traffic.protocol_name())?;
        s.serialize_field("from_port", &self.traffic.from_port())?;
        s.serialize_field("to_port", &self.traffic.to_port())?;
        s.serialize_field("peer", &self.peer.to_string())?;
        s.serialize_field("reason", &self.reason)?;
        s.serialize_field("flow", &self.flow)?;
        match &self.description {
            Some(d) => s.serialize_field("description", d)?,
            None => s.skip_field("description")?,
        }
        s.serialize_field("suppressed_by", &self.suppressed_by)?;
        s.serialize_field("first_seen", &self.first_seen)?;
        s.serialize_field("changed_by", &self.changed_by)?;
        s.serialize_field("remediation", &self.remediation)?;
        s.end()
    }
}

/// A finding as the report and the state file write it.
#[derive(Deserialize)]
struct FindingJson {
    id: String,
    kind: FindingKind,
    severity: Severity,
    group_id: String,
    role: Role,
    direction: Direction,
    protocol: String,
    from_port: i32,
    to_port: i32,
    peer: String,
    reason: String,
    flow: Option<FlowName>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    suppressed_by: Option<String>,
    // Absent from state files written before they were reported.
    #[serde(default)]
    first_seen: Option<DateTime<Utc>>,
    #[serde(default)]
    changed_by: Option<ChangedBy>,
    #[serde(default)]
    remediation: Option<Remediation>,
}

impl TryFrom<FindingJson> for Finding {
    type Error = ParseError;

    fn try_from(j: FindingJson) -> Result<Self, ParseError> {
        let context = |e: ParseError| ParseError(format!("finding {}: {}", j.id, e.0));
        let traffic = traffic_from_ec2(&j.protocol, Some(j.from_port), Some(j.to_port)).map_err(context)?;
        let peer = FindingPeer::parse(&j.peer).map_err(context)?;
        Ok(Finding {
            id: j.id,
            kind: j.kind,
            severity: j.severity,
            group_id: j.group_id,
            role: j.role,
            direction: j.direction,
            traffic,
            peer,
            reason: j.reason,
            flow: j.flow,
            description: j.description,
            suppressed_by: j.suppressed_by,
            first_seen: j.first_seen,
            changed_by: j.changed_by,
            remediation: j.remediation,
        })
    }
}

/// The stable id of a finding: the first 16 hex digits of SHA-256 over its identity, so it
/// survives restarts, reordering and description edits.
pub fn finding_id(cluster: &super::ClusterId, group_id: &str, kind: FindingKind, subject: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [&cluster.account_id, &cluster.region, &cluster.name, group_id, kind.as_str(), subject] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    let digest = h.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_form_is_written_as_the_ec2_triple_and_read_back() {
        let cases = [
            ("ingress tcp 22 from 0.0.0.0/0", ("tcp", 22, 22, "0.0.0.0/0")),
            ("ingress tcp all from 10.0.0.0/16", ("tcp", 0, 65535, "10.0.0.0/16")),
            ("ingress tcp 30000-32767 from 10.0.0.0/8", ("tcp", 30000, 32767, "10.0.0.0/8")),
            ("egress udp 53 to sg-0dns", ("udp", 53, 53, "sg-0dns")),
            ("egress all to 0.0.0.0/0", ("all", -1, -1, "0.0.0.0/0")),
            ("ingress icmp 8/0 from 0.0.0.0/0", ("icmp", 8, 0, "0.0.0.0/0")),
            ("ingress icmp 3 from 10.0.0.0/8", ("icmp", 3, -1, "10.0.0.0/8")),
            ("ingress icmpv6 all from ::/0", ("icmpv6", -1, -1, "::/0")),
            ("ingress 47 from 10.0.0.0/8", ("47", -1, -1, "10.0.0.0/8")),
            ("egress tcp 443 to pl-6ea54007", ("tcp", 443, 443, "pl-6ea54007")),
            ("ingress tcp 10250 from 444455556666/sg-0cp", ("tcp", 10250, 10250, "444455556666/sg-0cp")),
            ("egress tcp 443 to com.amazonaws.eu-west-1.sts", ("tcp", 443, 443, "com.amazonaws.eu-west-1.sts")),
        ];
        for (text, (protocol, from, to, peer)) in cases {
            let f = Finding::test().rule(text).build();
            assert_eq!(f.rule_text().to_string(), text);
            let json = serde_json::to_value(&f).expect("serializes");
            let got = (
                json["protocol"].as_str(),
                json["from_port"].as_i64(),
                json["to_port"].as_i64(),
                json["peer"].as_str(),
            );
            assert_eq!(got, (Some(protocol), Some(from), Some(to), Some(peer)), "{text}");
            let back: Finding = serde_json::from_value(json).expect("reads back");
            assert_eq!(back, f, "{text}");
        }
    }

    #[test]
    fn a_finding_is_written_field_for_field_as_design_section_3_shows_it() {
        let f = Finding::test().critical().on("sg-0abc").id("5d1e").reason("SSH open to the internet").build();
        let want = r#"{"id":"5d1e","kind":"unexpected","severity":"critical","group_id":"sg-0abc","role":"node","direction":"ingress","protocol":"tcp","from_port":22,"to_port":22,"peer":"0.0.0.0/0","reason":"SSH open to the internet","flow":null,"suppressed_by":null,"first_seen":null,"changed_by":null,"remediation":null}"#;
        assert_eq!(serde_json::to_string(&f).expect("serializes"), want);
        let flow = Finding::test().flow(FlowName::AwsApis).description("x").suppressed_by("y").id("f").build();
        let json = serde_json::to_string(&flow).expect("serializes");
        assert!(
            json.contains(r#""flow":"aws-apis","description":"x","suppressed_by":"y","first_seen":null,"#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Finding>(want).expect("reads back"), f);
    }

    #[test]
    fn a_finding_that_cannot_be_read_names_itself_and_what_is_wrong() {
        let good = serde_json::to_value(Finding::test().id("f-1").build()).expect("serializes");
        let cases = [
            ("protocol", "gre", "unknown IpProtocol `gre`"),
            ("peer", "bastion", "bad peer `bastion`"),
            ("peer", "com.amazonaws.sts", "bad VPC endpoint service"),
        ];
        for (field, value, want) in cases {
            let mut bad = good.clone();
            bad[field] = value.into();
            let err = serde_json::from_value::<Finding>(bad).expect_err("refused").to_string();
            assert!(err.contains("finding f-1: ") && err.contains(want), "{field}={value}: {err}");
        }
    }
}
