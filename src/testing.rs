//! Fixture builders for tests and benchmarks, public so integration tests and benches share
//! them: `Finding::test().critical().on("sg-0abc").rule("ingress tcp 22 from 0.0.0.0/0").build()`.
//! Nothing on sgdrift's own code path calls them.

use crate::model::{
    finding_id, ClusterId, Direction, Finding, FindingKind, FindingPeer, FlowName, Role, Severity, Traffic,
};

/// A finding under construction; every field has a plausible default (an unexpected, medium
/// `ingress tcp 22 from 0.0.0.0/0` on a node group of `111122223333/eu-west-1/prod-eu1`).
#[derive(Debug, Clone)]
pub struct FindingBuilder {
    cluster: ClusterId,
    id: Option<String>,
    finding: Finding,
}

impl Finding {
    /// Starts a test fixture; see [`FindingBuilder`].
    pub fn test() -> FindingBuilder {
        FindingBuilder {
            cluster: test_cluster("prod-eu1"),
            id: None,
            finding: Finding {
                id: String::new(),
                kind: FindingKind::Unexpected,
                severity: Severity::Medium,
                group_id: "sg-0123456789abcdef0".to_string(),
                role: Role::Node,
                direction: Direction::Ingress,
                traffic: Traffic::parse("tcp", Some("22")).expect("tcp 22"),
                peer: FindingPeer::parse("0.0.0.0/0").expect("internet"),
                reason: "not in the baseline".to_string(),
                flow: None,
                description: None,
                suppressed_by: None,
                first_seen: None,
                changed_by: None,
                remediation: None,
            },
        }
    }
}

/// `111122223333/eu-west-1/<name>`.
pub fn test_cluster(name: &str) -> ClusterId {
    ClusterId { account_id: "111122223333".to_string(), region: "eu-west-1".to_string(), name: name.to_string() }
}

impl FindingBuilder {
    pub fn severity(mut self, severity: Severity) -> Self {
        self.finding.severity = severity;
        self
    }

    pub fn critical(self) -> Self {
        self.severity(Severity::Critical)
    }

    pub fn high(self) -> Self {
        self.severity(Severity::High)
    }

    pub fn medium(self) -> Self {
        self.severity(Severity::Medium)
    }

    pub fn low(self) -> Self {
        self.severity(Severity::Low)
    }

    pub fn kind(mut self, kind: FindingKind) -> Self {
        self.finding.kind = kind;
        self
    }

    pub fn missing(self) -> Self {
        self.kind(FindingKind::Missing)
    }

    /// A `flow` finding of `name`, critical as every closed flow is.
    pub fn flow(mut self, name: FlowName) -> Self {
        self.finding.flow = Some(name);
        self.kind(FindingKind::Flow).critical()
    }

    /// The group the finding is on.
    pub fn on(mut self, group_id: &str) -> Self {
        self.finding.group_id = group_id.to_string();
        self
    }

    pub fn role(mut self, role: Role) -> Self {
        self.finding.role = role;
        self
    }

    /// The rule in the grammar every output writes: `ingress tcp 22 from 0.0.0.0/0`,
    /// `egress all to sg-0abc`, `ingress icmp 8/0 from ::/0`, `egress tcp 443 to
    /// com.amazonaws.eu-west-1.sts`. Panics on anything else: it is a test fixture.
    pub fn rule(mut self, text: &str) -> Self {
        let words: Vec<&str> = text.split_whitespace().collect();
        let (direction, protocol, ports, peer) = match words.as_slice() {
            [d, p, "from" | "to", peer] => (*d, *p, None, *peer),
            [d, p, ports, "from" | "to", peer] => (*d, *p, Some(*ports), *peer),
            _ => panic!("test rule `{text}`: expected `<direction> <protocol> [<ports>] from|to <peer>`"),
        };
        let bad = |e: crate::model::ParseError| format!("test rule `{text}`: {e}");
        self.finding.direction = Direction::parse(direction).map_err(bad).expect("direction");
        self.finding.traffic = Traffic::parse(protocol, ports).map_err(bad).expect("traffic");
        self.finding.peer = FindingPeer::parse(peer).map_err(bad).expect("peer");
        self
    }

    pub fn reason(mut self, reason: &str) -> Self {
        self.finding.reason = reason.to_string();
        self
    }

    pub fn description(mut self, description: &str) -> Self {
        self.finding.description = Some(description.to_string());
        self
    }

    pub fn suppressed_by(mut self, reason: &str) -> Self {
        self.finding.suppressed_by = Some(reason.to_string());
        self
    }

    /// The cluster the id is derived from (default `prod-eu1`).
    pub fn in_cluster(mut self, cluster: &ClusterId) -> Self {
        self.cluster = cluster.clone();
        self
    }

    /// A fixed id instead of the one derived from cluster, group, kind, flow and rule.
    pub fn id(mut self, id: &str) -> Self {
        self.id = Some(id.to_string());
        self
    }

    pub fn build(self) -> Finding {
        let mut f = self.finding;
        f.id = self.id.unwrap_or_else(|| {
            let flow = f.flow.map(|n| format!("{n} ")).unwrap_or_default();
            finding_id(&self.cluster, &f.group_id, f.kind, &format!("{flow}{}", f.rule_text()))
        });
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EndpointService, PortRange};

    #[test]
    fn the_builder_sets_what_it_is_told_and_derives_a_stable_id() {
        let f = Finding::test().critical().on("sg-0abc").rule("egress udp 53 to sg-0dns").build();
        assert_eq!((f.severity, f.group_id.as_str(), f.direction), (Severity::Critical, "sg-0abc", Direction::Egress));
        assert_eq!(f.traffic, Traffic::Udp(PortRange::single(53)));
        assert_eq!(f.peer, FindingPeer::parse("sg-0dns").expect("peer"));
        assert_eq!(f.id, Finding::test().critical().on("sg-0abc").rule("egress udp 53 to sg-0dns").build().id);
        assert_ne!(f.id, Finding::test().on("sg-0abd").rule("egress udp 53 to sg-0dns").build().id);
        let flow =
            Finding::test().flow(FlowName::AwsApis).rule("egress tcp 443 to com.amazonaws.eu-west-1.sts").build();
        assert_eq!((flow.kind, flow.severity), (FindingKind::Flow, Severity::Critical));
        assert_eq!(flow.peer, FindingPeer::AbsentEndpoint(EndpointService::new("eu-west-1", "sts")));
    }
}
