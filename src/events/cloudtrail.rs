//! Pure parsing of CloudTrail `AWS API Call` records, as EventBridge delivers them to SQS (the
//! envelope with `detail-type` and `detail`) and as `LookupEvents` returns them (the record
//! alone, in `CloudTrailEvent`): which change was made, to which security groups, rules,
//! clusters and VPCs, and by whom. No I/O.
//!
//! Field names follow CloudTrail's EC2 records, which are the EC2 Query API's names in
//! lowerCamelCase with lists as `{ "items": [...] }` (`groupId`, `ipPermissions.items[]`,
//! `securityGroupRuleSet.items[]`), except `ModifySecurityGroupRules`, whose request is logged
//! with the API's own capitalised names (`ModifySecurityGroupRulesRequest.GroupId`). The fixtures
//! in `tests/fixtures/events/` cite the AWS pages each shape was taken from.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::model::{traffic_from_ec2, ChangedBy, Direction, FindingKind, Peer, Traffic};

/// EventBridge's `detail-type` for CloudTrail management events.
pub const API_CALL: &str = "AWS API Call via CloudTrail";

/// Why a message is not a change sgdrift can use: counted as `malformed`, deleted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

/// What one message says.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// A change to something sgdrift reads.
    Change(Box<Change>),
    /// Well-formed, but nothing sgdrift reads changed (another API call, a failed call, a
    /// read-only call); the reason is for the debug log.
    Ignored(String),
}

/// What the call changes, as far as findings go: added rules explain `unexpected` findings,
/// removed ones `missing` and `flow` findings; `Any` explains either (a modified rule, a group
/// moved between interfaces, a cluster update).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Adds,
    Removes,
    Any,
}

impl Effect {
    pub fn explains(self, kind: FindingKind) -> bool {
        match self {
            Effect::Any => true,
            Effect::Adds => kind == FindingKind::Unexpected,
            Effect::Removes => kind != FindingKind::Unexpected,
        }
    }
}

/// One rule the request names, for matching a finding to the call that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleHint {
    pub direction: Direction,
    pub traffic: Traffic,
    /// Empty when the call gave no peer (a modification by rule id that changed ports only).
    pub peers: Vec<Peer>,
}

/// One CloudTrail change event, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The actor, the time and the names of the call (`changed_by` of design.md §3).
    pub actor: ChangedBy,
    /// `recipientAccountId` (the account whose resources changed), else the envelope's account.
    pub account_id: String,
    pub region: String,
    pub effect: Effect,
    /// The groups whose rules or attachments the call changed.
    pub groups: BTreeSet<String>,
    /// Every group id the call names, peers included: any of them may change a cluster's view.
    pub mentioned_groups: BTreeSet<String>,
    /// `sgr-…` ids the call names (a modification or revocation by rule id).
    pub rule_ids: BTreeSet<String>,
    /// EKS cluster names (EKS calls).
    pub clusters: BTreeSet<String>,
    /// VPC ids (endpoint and route calls name their VPC where CloudTrail logs it).
    pub vpcs: BTreeSet<String>,
    /// Rules the request spelled out; empty when it named none.
    pub rules: Vec<RuleHint>,
}

/// Calls that change only a group's rules: the re-poll reads rules anyway. Every other call of
/// [`CHANGES`] changes what sgdrift caches as metadata (node groups, endpoint access, ENI and
/// instance groups, VPC endpoints, routes, launch templates), which the re-poll must read again.
const RULE_ONLY: &[&str] = &[
    "AuthorizeSecurityGroupIngress",
    "AuthorizeSecurityGroupEgress",
    "RevokeSecurityGroupIngress",
    "RevokeSecurityGroupEgress",
    "ModifySecurityGroupRules",
    "UpdateSecurityGroupRuleDescriptionsIngress",
    "UpdateSecurityGroupRuleDescriptionsEgress",
];

impl Change {
    /// Whether the call changed more than rules: the clusters it concerns are re-read whole.
    pub fn changes_topology(&self) -> bool {
        !RULE_ONLY.contains(&self.actor.event_name.as_str())
    }
}

/// The EC2 and EKS calls that change what sgdrift reads, and their effect. The EventBridge rule
/// of deploy/events/sgdrift-events.json matches exactly these (tests/ops_events.rs).
pub const CHANGES: &[(&str, &str, Effect)] = &[
    ("ec2.amazonaws.com", "AuthorizeSecurityGroupIngress", Effect::Adds),
    ("ec2.amazonaws.com", "AuthorizeSecurityGroupEgress", Effect::Adds),
    ("ec2.amazonaws.com", "RevokeSecurityGroupIngress", Effect::Removes),
    ("ec2.amazonaws.com", "RevokeSecurityGroupEgress", Effect::Removes),
    ("ec2.amazonaws.com", "DeleteSecurityGroup", Effect::Removes),
    ("ec2.amazonaws.com", "ModifySecurityGroupRules", Effect::Any),
    ("ec2.amazonaws.com", "UpdateSecurityGroupRuleDescriptionsIngress", Effect::Any),
    ("ec2.amazonaws.com", "UpdateSecurityGroupRuleDescriptionsEgress", Effect::Any),
    ("ec2.amazonaws.com", "CreateSecurityGroup", Effect::Any),
    ("ec2.amazonaws.com", "ModifyNetworkInterfaceAttribute", Effect::Any),
    ("ec2.amazonaws.com", "ModifyInstanceAttribute", Effect::Any),
    ("ec2.amazonaws.com", "CreateVpcEndpoint", Effect::Any),
    ("ec2.amazonaws.com", "ModifyVpcEndpoint", Effect::Any),
    ("ec2.amazonaws.com", "DeleteVpcEndpoints", Effect::Any),
    ("ec2.amazonaws.com", "CreateRoute", Effect::Any),
    ("ec2.amazonaws.com", "ReplaceRoute", Effect::Any),
    ("ec2.amazonaws.com", "DeleteRoute", Effect::Any),
    ("ec2.amazonaws.com", "AssociateRouteTable", Effect::Any),
    ("ec2.amazonaws.com", "ReplaceRouteTableAssociation", Effect::Any),
    ("ec2.amazonaws.com", "DisassociateRouteTable", Effect::Any),
    ("ec2.amazonaws.com", "CreateLaunchTemplateVersion", Effect::Any),
    ("ec2.amazonaws.com", "ModifyLaunchTemplate", Effect::Any),
    ("eks.amazonaws.com", "CreateCluster", Effect::Any),
    ("eks.amazonaws.com", "UpdateClusterConfig", Effect::Any),
    ("eks.amazonaws.com", "UpdateClusterVersion", Effect::Any),
    ("eks.amazonaws.com", "CreateNodegroup", Effect::Any),
    ("eks.amazonaws.com", "UpdateNodegroupConfig", Effect::Any),
    ("eks.amazonaws.com", "UpdateNodegroupVersion", Effect::Any),
    ("eks.amazonaws.com", "DeleteNodegroup", Effect::Any),
    ("eks.amazonaws.com", "CreateFargateProfile", Effect::Any),
    ("eks.amazonaws.com", "DeleteFargateProfile", Effect::Any),
];

fn effect_of(source: &str, name: &str) -> Option<Effect> {
    CHANGES.iter().find(|(s, n, _)| *s == source && *n == name).map(|(_, _, e)| *e)
}

/// Parses one SQS message body: an EventBridge event whose `detail` is a CloudTrail record.
pub fn parse_message(body: &str) -> Result<Parsed, Malformed> {
    let v: Value = serde_json::from_str(body).map_err(|e| Malformed(format!("not JSON: {e}")))?;
    let kind = v
        .get("detail-type")
        .and_then(Value::as_str)
        .ok_or_else(|| Malformed("no `detail-type`: not an EventBridge event".into()))?;
    if kind != API_CALL {
        return Ok(Parsed::Ignored(format!("detail-type `{kind}`")));
    }
    let detail = v.get("detail").filter(|d| d.is_object()).ok_or_else(|| Malformed("no `detail` object".into()))?;
    let fallback = Envelope {
        account: v.get("account").and_then(Value::as_str),
        region: v.get("region").and_then(Value::as_str),
        id: v.get("id").and_then(Value::as_str),
    };
    parse_record(detail, &fallback)
}

/// What the EventBridge envelope adds when the record lacks it.
#[derive(Debug, Default, Clone, Copy)]
pub struct Envelope<'a> {
    pub account: Option<&'a str>,
    pub region: Option<&'a str>,
    pub id: Option<&'a str>,
}

/// Parses one CloudTrail record (the `detail` of the envelope, or `LookupEvents`' `CloudTrailEvent`).
pub fn parse_record(detail: &Value, envelope: &Envelope<'_>) -> Result<Parsed, Malformed> {
    let text = |k: &str| detail.get(k).and_then(Value::as_str);
    let name = text("eventName").ok_or_else(|| Malformed("the record has no `eventName`".into()))?;
    let source = text("eventSource").ok_or_else(|| Malformed("the record has no `eventSource`".into()))?;
    let Some(effect) = effect_of(source, name) else {
        return Ok(Parsed::Ignored(format!("{source} {name} changes nothing sgdrift reads")));
    };
    if let Some(code) = text("errorCode") {
        return Ok(Parsed::Ignored(format!("{name} failed ({code}): nothing changed")));
    }
    let time = text("eventTime").ok_or_else(|| Malformed(format!("{name}: no `eventTime`")))?;
    let event_time = DateTime::parse_from_rfc3339(time)
        .map_err(|e| Malformed(format!("{name}: eventTime `{time}` is not an RFC 3339 time: {e}")))?
        .with_timezone(&Utc);
    let event_id = text("eventID").or(envelope.id).ok_or_else(|| Malformed(format!("{name}: no `eventID`")))?;
    let identity = detail.get("userIdentity").unwrap_or(&Value::Null);
    let account_id = text("recipientAccountId")
        .or(envelope.account)
        .or_else(|| identity.get("accountId").and_then(Value::as_str))
        .ok_or_else(|| Malformed(format!("{name}: no account (`recipientAccountId`)")))?;
    let region = text("awsRegion").or(envelope.region).ok_or_else(|| Malformed(format!("{name}: no `awsRegion`")))?;
    let actor = ChangedBy {
        arn: principal(identity),
        source_ip: text("sourceIPAddress").map(str::to_string),
        user_agent: text("userAgent").map(str::to_string),
        event_time,
        event_name: name.to_string(),
        event_id: event_id.to_string(),
    };
    let request = detail.get("requestParameters").unwrap_or(&Value::Null);
    let response = detail.get("responseElements").unwrap_or(&Value::Null);
    let mut change = Change {
        actor,
        account_id: account_id.to_string(),
        region: region.to_string(),
        effect,
        groups: BTreeSet::new(),
        mentioned_groups: BTreeSet::new(),
        rule_ids: BTreeSet::new(),
        clusters: BTreeSet::new(),
        vpcs: BTreeSet::new(),
        rules: Vec::new(),
    };
    for part in [request, response] {
        collect_ids(part, &mut change);
    }
    subjects(name, request, response, &mut change);
    if source == "eks.amazonaws.com" {
        // EKS logs the cluster of its REST path as `name` (`clusterName` for some calls).
        let cluster = request.get("clusterName").or_else(|| request.get("name")).and_then(Value::as_str);
        change.clusters.extend(cluster.map(str::to_string));
    }
    change.rules = rule_hints(name, request);
    Ok(Parsed::Change(Box::new(change)))
}

/// Who made the call: the ARN of the identity; for a call made by an AWS service on the
/// customer's behalf (no ARN), the service's name; never empty.
fn principal(identity: &Value) -> String {
    let text = |k: &str| identity.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    text("arn")
        .or_else(|| text("invokedBy"))
        .or_else(|| identity.pointer("/sessionContext/sessionIssuer/arn").and_then(Value::as_str))
        .or_else(|| text("principalId"))
        .or_else(|| text("type"))
        .unwrap_or("unknown")
        .to_string()
}

/// Every `sg-…`, `sgr-…` and `vpc-…` id anywhere in `v`.
fn collect_ids(v: &Value, change: &mut Change) {
    match v {
        Value::String(s) if is_id(s, "sg-") => {
            change.mentioned_groups.insert(s.clone());
        }
        Value::String(s) if is_id(s, "sgr-") => {
            change.rule_ids.insert(s.clone());
        }
        Value::String(s) if is_id(s, "vpc-") => {
            change.vpcs.insert(s.clone());
        }
        Value::Array(items) => items.iter().for_each(|i| collect_ids(i, change)),
        Value::Object(map) => {
            map.values().for_each(|i| collect_ids(i, change));
        }
        _ => {}
    }
}

/// `sg-0abc…`: the prefix, then hex digits only.
fn is_id(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix)
        .is_some_and(|rest| !rest.is_empty() && rest.len() <= 17 && rest.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// The groups the call changed (as opposed to those it names as peers).
fn subjects(name: &str, request: &Value, response: &Value, change: &mut Change) {
    let mut add = |v: Option<&Value>| {
        if let Some(s) = v.and_then(Value::as_str).filter(|s| is_id(s, "sg-")) {
            change.groups.insert(s.to_string());
        }
    };
    add(request.get("groupId"));
    add(request.pointer("/ModifySecurityGroupRulesRequest/GroupId"));
    add(response.get("groupId"));
    for set in ["securityGroupRuleSet", "revokedSecurityGroupRuleSet"] {
        for item in items(response.get(set)) {
            add(item.get("groupId"));
        }
    }
    // Attachments: the groups now on an interface or endpoint, and those removed from it.
    if matches!(
        name,
        "ModifyNetworkInterfaceAttribute" | "ModifyInstanceAttribute" | "CreateVpcEndpoint" | "ModifyVpcEndpoint"
    ) {
        change.groups.extend(change.mentioned_groups.iter().cloned());
    }
}

/// `{ "items": [...] }` or a bare list (the shapes CloudTrail logs lists in), as a slice.
fn items(v: Option<&Value>) -> &[Value] {
    match v {
        Some(Value::Array(a)) => a,
        Some(Value::Object(o)) => o.get("items").and_then(Value::as_array).map_or(&[], Vec::as_slice),
        _ => &[],
    }
}

/// The rules an authorize, revoke or modify request spells out.
fn rule_hints(name: &str, request: &Value) -> Vec<RuleHint> {
    let direction = if name.ends_with("Egress") { Direction::Egress } else { Direction::Ingress };
    if name == "ModifySecurityGroupRules" {
        let rules = request.pointer("/ModifySecurityGroupRulesRequest/SecurityGroupRule");
        let list: Vec<&Value> = match rules {
            Some(Value::Array(a)) => a.iter().collect(),
            Some(v @ Value::Object(_)) => vec![v],
            _ => Vec::new(),
        };
        return list.into_iter().filter_map(|r| r.get("SecurityGroupRule")).filter_map(modified_rule).collect();
    }
    if !name.contains("SecurityGroup") {
        return Vec::new();
    }
    items(request.get("ipPermissions")).iter().filter_map(|p| permission(p, direction)).collect()
}

/// One `ipPermissions` item: protocol, ports and every peer it lists.
fn permission(p: &Value, direction: Direction) -> Option<RuleHint> {
    let protocol = scalar(p.get("ipProtocol"))?;
    let traffic = traffic_from_ec2(&protocol, int(p.get("fromPort")), int(p.get("toPort"))).ok()?;
    let mut peers = Vec::new();
    for (list, key) in
        [("ipRanges", "cidrIp"), ("ipv6Ranges", "cidrIpv6"), ("prefixListIds", "prefixListId"), ("groups", "groupId")]
    {
        for item in items(p.get(list)) {
            if let Some(peer) = item.get(key).and_then(Value::as_str).and_then(|s| Peer::parse(s).ok()) {
                peers.push(peer);
            }
        }
    }
    Some(RuleHint { direction, traffic, peers })
}

/// The new shape of a rule in `ModifySecurityGroupRules` (which does not say its direction:
/// the hint is given for both).
fn modified_rule(r: &Value) -> Option<RuleHint> {
    let protocol = scalar(r.get("IpProtocol"))?;
    let traffic = traffic_from_ec2(&protocol, int(r.get("FromPort")), int(r.get("ToPort"))).ok()?;
    let peers = ["CidrIpv4", "CidrIpv6", "PrefixListId", "ReferencedGroupId"]
        .iter()
        .filter_map(|k| r.get(*k).and_then(Value::as_str))
        .filter_map(|s| Peer::parse(s).ok())
        .collect();
    // Direction unknown: `Ingress` here; `matches` ignores direction for this call.
    Some(RuleHint { direction: Direction::Ingress, traffic, peers })
}

/// CloudTrail logs numbers as numbers, and sometimes as strings.
fn int(v: Option<&Value>) -> Option<i32> {
    match v? {
        Value::Number(n) => n.as_i64().and_then(|n| i32::try_from(n).ok()),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn scalar(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl RuleHint {
    /// Does this requested rule describe `finding`'s rule? Same traffic and, where the request
    /// named peers, one of them; the direction where the call says it.
    pub fn matches(&self, finding: &crate::model::Finding, event_name: &str) -> bool {
        let direction_known = event_name != "ModifySecurityGroupRules";
        if direction_known && self.direction != finding.direction {
            return false;
        }
        if self.traffic != finding.traffic {
            return false;
        }
        self.peers.is_empty() || finding.peer.as_peer().is_some_and(|p| self.peers.iter().any(|h| same_peer(h, p)))
    }
}

/// Peers compare by value, except that a group named with and without its owner is one group.
fn same_peer(a: &Peer, b: &Peer) -> bool {
    match (a, b) {
        (Peer::Group { id: x, .. }, Peer::Group { id: y, .. }) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!("{}/tests/fixtures/events/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn change(name: &str) -> Change {
        match parse_message(&fixture(name)) {
            Ok(Parsed::Change(c)) => *c,
            other => panic!("{name}: {other:?}"),
        }
    }

    #[test]
    fn an_authorize_event_names_its_group_rule_actor_and_time() {
        let c = change("authorize-ingress.json");
        assert_eq!(c.actor.event_name, "AuthorizeSecurityGroupIngress");
        assert_eq!(c.actor.arn, "arn:aws:sts::111122223333:assumed-role/Admin/jo");
        assert_eq!(c.actor.source_ip.as_deref(), Some("203.0.113.7"));
        assert_eq!(c.actor.user_agent.as_deref(), Some("aws-cli/2.15.0 Python/3.11.6 Linux/6.1 exe/x86_64.amzn.2"));
        assert_eq!(c.actor.event_time.to_rfc3339(), "2026-11-30T07:00:00+00:00");
        assert_eq!(c.account_id, "111122223333");
        assert_eq!(c.region, "eu-west-1");
        assert_eq!(c.effect, Effect::Adds);
        assert_eq!(c.groups, BTreeSet::from(["sg-0a1b2c3d4e5f60718".to_string()]));
        assert_eq!(c.rule_ids, BTreeSet::from(["sgr-0123456789abcdef0".to_string()]));
        assert_eq!(c.rules.len(), 1);
        assert_eq!(c.rules[0].peers, vec![Peer::parse("0.0.0.0/0").unwrap()]);
        assert_eq!(c.rules[0].traffic, Traffic::parse("tcp", Some("22")).unwrap());
    }

    #[test]
    fn the_calls_sgdrift_reads_are_changes_with_their_groups_and_effect() {
        let cases: &[(&str, &str, Effect, &[&str])] = &[
            ("revoke-ingress.json", "RevokeSecurityGroupIngress", Effect::Removes, &["sg-0a1b2c3d4e5f60718"]),
            ("modify-rules.json", "ModifySecurityGroupRules", Effect::Any, &["sg-0a1b2c3d4e5f60718"]),
            ("create-security-group.json", "CreateSecurityGroup", Effect::Any, &["sg-82d531f4"]),
            (
                "modify-network-interface.json",
                "ModifyNetworkInterfaceAttribute",
                Effect::Any,
                &["sg-0a1b2c3d4e5f60718", "sg-0ffee0000000000aa"],
            ),
            ("update-cluster-config.json", "UpdateClusterConfig", Effect::Any, &[]),
        ];
        for (file, name, effect, groups) in cases {
            let c = change(file);
            assert_eq!(&c.actor.event_name, name, "{file}");
            assert_eq!(c.effect, *effect, "{file}");
            let want: BTreeSet<String> = groups.iter().map(|g| g.to_string()).collect();
            assert_eq!(c.groups, want, "{file}");
        }
        assert_eq!(change("update-cluster-config.json").clusters, BTreeSet::from(["prod-eu1".to_string()]));
    }

    #[test]
    fn a_modification_by_rule_id_gives_the_rules_new_shape() {
        let c = change("modify-rules.json");
        assert_eq!(c.rule_ids, BTreeSet::from(["sgr-0123456789abcdef0".to_string()]));
        assert_eq!(c.rules.len(), 1);
        assert_eq!(c.rules[0].traffic, Traffic::parse("tcp", Some("22")).unwrap());
        assert_eq!(c.rules[0].peers, vec![Peer::parse("0.0.0.0/0").unwrap()]);
    }

    #[test]
    fn other_calls_failed_calls_and_other_event_types_are_ignored() {
        let ignored = [
            r#"{"detail-type":"EC2 Instance State-change Notification","detail":{}}"#.to_string(),
            fixture("authorize-ingress.json").replace("AuthorizeSecurityGroupIngress", "DescribeSecurityGroups"),
            fixture("authorize-ingress.json")
                .replace(r#""eventName""#, r#""errorCode": "Client.UnauthorizedOperation", "eventName""#),
        ];
        for body in &ignored {
            assert!(matches!(parse_message(body), Ok(Parsed::Ignored(_))), "{body}");
        }
    }

    #[test]
    fn bodies_that_are_not_cloudtrail_events_are_malformed_with_a_reason() {
        let cases = [
            ("not json", "not JSON"),
            ("{}", "no `detail-type`"),
            (r#"{"detail-type":"AWS API Call via CloudTrail"}"#, "no `detail` object"),
            (
                r#"{"detail-type":"AWS API Call via CloudTrail","detail":{"eventSource":"ec2.amazonaws.com"}}"#,
                "no `eventName`",
            ),
        ];
        for (body, reason) in cases {
            let err = parse_message(body).unwrap_err();
            assert!(err.0.contains(reason), "{body}: {err}");
        }
        let bad_time = fixture("authorize-ingress.json").replace("2026-11-30T07:00:00Z", "yesterday");
        assert!(parse_message(&bad_time).unwrap_err().0.contains("eventTime `yesterday`"));
    }

    #[test]
    fn a_call_by_an_aws_service_is_attributed_to_the_service() {
        let body = fixture("authorize-ingress.json").replace(
            r#""arn": "arn:aws:sts::111122223333:assumed-role/Admin/jo","#,
            r#""invokedBy": "eks.amazonaws.com","#,
        );
        let Ok(Parsed::Change(c)) = parse_message(&body) else { panic!("{body}") };
        assert_eq!(c.actor.arn, "eks.amazonaws.com");
    }

    #[test]
    fn only_calls_beyond_rule_edits_make_the_re_poll_read_metadata_again() {
        let rule_only = CHANGES.iter().filter(|(_, name, _)| RULE_ONLY.contains(name)).count();
        assert_eq!(rule_only, RULE_ONLY.len(), "every rule-only call is one the feed acts on");
        for (_, name, _) in CHANGES {
            let topology = !RULE_ONLY.contains(name);
            let expected = !name.contains("SecurityGroupIngress")
                && !name.contains("SecurityGroupEgress")
                && !name.contains("SecurityGroupRule");
            assert_eq!(topology, expected, "{name}");
        }
    }

    #[test]
    fn effects_explain_the_finding_kinds_they_can_cause() {
        use FindingKind::*;
        let cases = [
            (Effect::Adds, Unexpected, true),
            (Effect::Adds, Missing, false),
            (Effect::Removes, Missing, true),
            (Effect::Removes, Flow, true),
            (Effect::Removes, Unexpected, false),
            (Effect::Any, Flow, true),
        ];
        for (effect, kind, want) in cases {
            assert_eq!(effect.explains(kind), want, "{effect:?} {kind:?}");
        }
    }
}
