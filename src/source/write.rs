//! The only place sgdrift writes to AWS: `sgdrift fix --apply` carrying out the steps of a
//! checked remediation plan, one call each. Never used by the daemon. Its calls are exactly the
//! ones `deploy/iam/sgdrift-fix.json` allows (see [`OPERATIONS`]).
//!
//! A revoke names the rule by `SecurityGroupRuleId`, found with `DescribeSecurityGroupRules`
//! (filtered by group) and matched on the canonical atomic rule, so it removes that one rule and
//! nothing a wider or merged permission shares with it. A rule already gone, or already there,
//! counts as done: a second run changes nothing.

use std::time::Duration;

use crate::source::session;
use aws_config::SdkConfig;
use aws_sdk_ec2::types::{self as ec2, Filter};

use super::convert::{classify, CallFailure, Operation};
use super::SourceError;
use crate::model::{traffic_from_ec2, Direction, ParseError, Peer, RemediationAction, Rule};
use crate::remediation::{ec2_protocol, Step};

const DESCRIBE_SECURITY_GROUP_RULES: Operation = Operation::new("ec2", "DescribeSecurityGroupRules");
const REVOKE_INGRESS: Operation = Operation::new("ec2", "RevokeSecurityGroupIngress");
const REVOKE_EGRESS: Operation = Operation::new("ec2", "RevokeSecurityGroupEgress");
const AUTHORIZE_INGRESS: Operation = Operation::new("ec2", "AuthorizeSecurityGroupIngress");
const AUTHORIZE_EGRESS: Operation = Operation::new("ec2", "AuthorizeSecurityGroupEgress");

/// Every call `fix --apply` makes through this module (the read of the cluster before and after
/// is the `aws` source's, allowed by the read policy).
pub const OPERATIONS: [Operation; 5] =
    [DESCRIBE_SECURITY_GROUP_RULES, REVOKE_INGRESS, REVOKE_EGRESS, AUTHORIZE_INGRESS, AUTHORIZE_EGRESS];

/// What carrying out one step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Revoked these rule ids.
    Revoked(Vec<String>),
    Authorized,
    /// Nothing to do: the rule was already gone (revoke) or already there (authorize).
    AlreadyDone,
}

/// EC2 writes for one account and region.
pub struct Writer {
    ec2: aws_sdk_ec2::Client,
    timeout: Duration,
}

impl Writer {
    /// Credentials from the standard chain, through `role_arn` when the target names one; each
    /// call bounded by `timeout`.
    pub async fn new(region: &str, role_arn: Option<&str>, timeout: Duration) -> Writer {
        Writer::from_sdk_config(&session::load(timeout).await, region, role_arn, timeout).await
    }

    pub async fn from_sdk_config(base: &SdkConfig, region: &str, role_arn: Option<&str>, timeout: Duration) -> Writer {
        let base = session::with_timeout(base.clone(), timeout);
        let conf = session::scoped(&base, region, role_arn, "sgdrift-fix").await;
        Writer { ec2: aws_sdk_ec2::Client::new(&conf), timeout }
    }

    /// Carries out `step`.
    pub async fn apply(&self, step: &Step) -> Result<Applied, SourceError> {
        match step.action {
            RemediationAction::Revoke => self.revoke(step).await,
            RemediationAction::Authorize => self.authorize(step).await,
        }
    }

    async fn revoke(&self, step: &Step) -> Result<Applied, SourceError> {
        let ids = self.rule_ids(&step.group_id, &step.rule).await?;
        if ids.is_empty() {
            return Ok(Applied::AlreadyDone);
        }
        let result = match step.rule.direction {
            Direction::Ingress => self
                .ec2
                .revoke_security_group_ingress()
                .group_id(&step.group_id)
                .set_security_group_rule_ids(Some(ids.clone()))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify(REVOKE_INGRESS, e, self.timeout)),
            Direction::Egress => self
                .ec2
                .revoke_security_group_egress()
                .group_id(&step.group_id)
                .set_security_group_rule_ids(Some(ids.clone()))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify(REVOKE_EGRESS, e, self.timeout)),
        };
        result.map(|()| Applied::Revoked(ids)).map_err(|f| f.error)
    }

    async fn authorize(&self, step: &Step) -> Result<Applied, SourceError> {
        let permission = ip_permission(&step.rule);
        let result = match step.rule.direction {
            Direction::Ingress => self
                .ec2
                .authorize_security_group_ingress()
                .group_id(&step.group_id)
                .ip_permissions(permission)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify(AUTHORIZE_INGRESS, e, self.timeout)),
            Direction::Egress => self
                .ec2
                .authorize_security_group_egress()
                .group_id(&step.group_id)
                .ip_permissions(permission)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify(AUTHORIZE_EGRESS, e, self.timeout)),
        };
        match result {
            Ok(()) => Ok(Applied::Authorized),
            Err(CallFailure { code: Some(code), .. }) if code == "InvalidPermission.Duplicate" => {
                Ok(Applied::AlreadyDone)
            }
            Err(f) => Err(f.error),
        }
    }

    /// The ids of the group's rules whose canonical form is `rule` (same direction, traffic and
    /// peer; descriptions ignored).
    async fn rule_ids(&self, group_id: &str, rule: &Rule) -> Result<Vec<String>, SourceError> {
        let mut ids = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .ec2
                .describe_security_group_rules()
                .filters(Filter::builder().name("group-id").values(group_id).build())
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| classify(DESCRIBE_SECURITY_GROUP_RULES, e, self.timeout).error)?;
            for r in out.security_group_rules() {
                let atomic = atomic_rule(r).map_err(|e| SourceError::Server {
                    operation: DESCRIBE_SECURITY_GROUP_RULES.action(),
                    message: format!("rule {} of {group_id}: {}", r.security_group_rule_id().unwrap_or("?"), e.0),
                })?;
                if same_rule(&atomic, rule) {
                    ids.extend(r.security_group_rule_id().map(str::to_string));
                }
            }
            match out.next_token().filter(|t| !t.is_empty()) {
                Some(t) => token = Some(t.to_string()),
                None => return Ok(ids),
            }
        }
    }
}

/// Is `found` the rule `wanted` names? Group references compare by group id alone: ids are
/// unique across accounts, and `DescribeSecurityGroupRules` may leave out `GroupOwnerId`, without
/// which a same-account `UserId` cannot be told from a cross-account one.
fn same_rule(found: &Rule, wanted: &Rule) -> bool {
    let peers = match (&found.peer, &wanted.peer) {
        (Peer::Group { id: a, .. }, Peer::Group { id: b, .. }) => a == b,
        (a, b) => a == b,
    };
    found.direction == wanted.direction && found.traffic == wanted.traffic && peers
}

/// A `SecurityGroupRule` (one peer each) as sgdrift's canonical rule.
pub fn atomic_rule(r: &ec2::SecurityGroupRule) -> Result<Rule, ParseError> {
    let direction = if r.is_egress().unwrap_or(false) { Direction::Egress } else { Direction::Ingress };
    let traffic = traffic_from_ec2(r.ip_protocol().unwrap_or("-1"), r.from_port(), r.to_port())?;
    let peer = if let Some(cidr) = r.cidr_ipv4().or(r.cidr_ipv6()) {
        Peer::parse(cidr)?
    } else if let Some(pl) = r.prefix_list_id() {
        Peer::PrefixList(pl.to_string())
    } else if let Some(g) = r.referenced_group_info() {
        let id = g.group_id().ok_or_else(|| ParseError("a group reference without GroupId".into()))?;
        // As in normalize: the holder's own account is not a cross-account owner.
        let owner = g.user_id().filter(|u| Some(*u) != r.group_owner_id()).map(str::to_string);
        Peer::Group { id: id.to_string(), owner }
    } else {
        return Err(ParseError("a rule with no peer".into()));
    };
    Ok(Rule { direction, traffic, peer, description: r.description().map(str::to_string) })
}

/// The SDK form of `remediation::ip_permission`: one permission, one peer, its description.
fn ip_permission(rule: &Rule) -> ec2::IpPermission {
    let (protocol, ports) = ec2_protocol(&rule.traffic);
    let description = rule.description.clone();
    let b = ec2::IpPermission::builder()
        .ip_protocol(protocol)
        .set_from_port(ports.map(|p| p.0))
        .set_to_port(ports.map(|p| p.1));
    match &rule.peer {
        Peer::Ipv4(net) => {
            b.ip_ranges(ec2::IpRange::builder().cidr_ip(net.to_string()).set_description(description).build())
        }
        Peer::Ipv6(net) => {
            b.ipv6_ranges(ec2::Ipv6Range::builder().cidr_ipv6(net.to_string()).set_description(description).build())
        }
        Peer::PrefixList(id) => {
            b.prefix_list_ids(ec2::PrefixListId::builder().prefix_list_id(id).set_description(description).build())
        }
        Peer::Group { id, owner } => b.user_id_group_pairs(
            ec2::UserIdGroupPair::builder()
                .group_id(id)
                .set_user_id(owner.clone())
                .set_description(description)
                .build(),
        ),
    }
    .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sgr(proto: &str, ports: (i32, i32), egress: bool) -> ec2::builders::SecurityGroupRuleBuilder {
        ec2::SecurityGroupRule::builder()
            .security_group_rule_id("sgr-1")
            .group_id("sg-node")
            .group_owner_id("111122223333")
            .is_egress(egress)
            .ip_protocol(proto)
            .from_port(ports.0)
            .to_port(ports.1)
    }

    #[test]
    fn each_security_group_rule_shape_reads_as_one_canonical_rule() {
        let group = |user: &str| ec2::ReferencedSecurityGroup::builder().group_id("sg-cp").user_id(user).build();
        let cases = [
            (sgr("tcp", (22, 22), false).cidr_ipv4("0.0.0.0/0").build(), "ingress tcp 22 from 0.0.0.0/0"),
            (sgr("-1", (-1, -1), true).cidr_ipv4("0.0.0.0/0").build(), "egress all to 0.0.0.0/0"),
            (sgr("udp", (53, 53), false).cidr_ipv6("::/0").build(), "ingress udp 53 from ::/0"),
            (sgr("tcp", (443, 443), true).prefix_list_id("pl-6ea54007").build(), "egress tcp 443 to pl-6ea54007"),
            (
                sgr("tcp", (10250, 10250), false).referenced_group_info(group("111122223333")).build(),
                "ingress tcp 10250 from sg-cp",
            ),
            (
                sgr("tcp", (10250, 10250), false).referenced_group_info(group("444455556666")).build(),
                "ingress tcp 10250 from 444455556666/sg-cp",
            ),
            (sgr("icmp", (8, 0), false).cidr_ipv4("10.0.0.0/8").build(), "ingress icmp 8/0 from 10.0.0.0/8"),
        ];
        for (raw, want) in cases {
            assert_eq!(atomic_rule(&raw).expect("reads").to_string(), want);
        }
        assert!(atomic_rule(&sgr("tcp", (1, 1), false).build()).expect_err("no peer").0.contains("no peer"));
    }

    #[test]
    fn a_rule_is_found_by_direction_traffic_and_peer_and_a_group_by_its_id_alone() {
        let rule = |direction, proto: &str, from, to, peer: &str| {
            let traffic = traffic_from_ec2(proto, Some(from), Some(to)).expect("traffic");
            Rule::new(direction, traffic, Peer::parse(peer).expect("peer"))
        };
        let wanted = rule(Direction::Egress, "tcp", 5432, 5432, "sg-cp");
        let cases = [
            (rule(Direction::Egress, "tcp", 5432, 5432, "sg-cp"), true),
            (rule(Direction::Egress, "tcp", 5432, 5432, "123456789012/sg-cp"), true),
            (rule(Direction::Ingress, "tcp", 5432, 5432, "sg-cp"), false),
            (rule(Direction::Egress, "tcp", 5432, 5433, "sg-cp"), false),
            (rule(Direction::Egress, "udp", 5432, 5432, "sg-cp"), false),
            (rule(Direction::Egress, "tcp", 5432, 5432, "sg-other"), false),
            (rule(Direction::Egress, "tcp", 5432, 5432, "10.0.0.0/16"), false),
        ];
        for (found, want) in cases {
            assert_eq!(same_rule(&found, &wanted), want, "{found}");
        }
    }

    #[test]
    fn the_sdk_permission_says_what_the_printed_command_says() {
        let rule = Rule {
            description: Some("sgdrift: EKS kubelet flow".into()),
            ..Rule::new(
                Direction::Ingress,
                crate::model::Traffic::Tcp(crate::model::PortRange::single(10250)),
                Peer::group("sg-cp"),
            )
        };
        let p = ip_permission(&rule);
        assert_eq!((p.ip_protocol(), p.from_port(), p.to_port()), (Some("tcp"), Some(10250), Some(10250)));
        let pair = &p.user_id_group_pairs()[0];
        assert_eq!(
            (pair.group_id(), pair.user_id(), pair.description()),
            (Some("sg-cp"), None, Some("sgdrift: EKS kubelet flow"))
        );
        let all = ip_permission(&Rule::new(
            Direction::Egress,
            crate::model::Traffic::All,
            Peer::parse("0.0.0.0/0").expect("peer"),
        ));
        assert_eq!(
            (all.ip_protocol(), all.from_port(), all.ip_ranges()[0].cidr_ip()),
            (Some("-1"), None, Some("0.0.0.0/0"))
        );
    }
}
