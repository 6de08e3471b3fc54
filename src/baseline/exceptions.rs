//! `[[exceptions]]`: operator-approved drift, with a reason and an expiry date.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::model::{peer_covers, traffic_union_covers, ClusterId, Direction, Finding, ParseError, Role, Traffic};

use super::{PeerSpec, SnapshotPeers};

/// One configured exception. Parsed at config load; `rule` uses the grammar
/// `<direction> <protocol> [<ports>] from|to <peer>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exception {
    /// The AWS account id the cluster lives in.
    pub account: Option<String>,
    pub region: Option<String>,
    pub cluster: Option<String>,
    pub role: Option<Role>,
    pub group_id: Option<String>,
    /// Tags the finding's group must carry, each with this value (`*`: any value). The way to
    /// scope one exception to every group a team owns, across accounts and clusters.
    pub tags: BTreeMap<String, String>,
    pub direction: Direction,
    pub traffic: Traffic,
    pub peer: PeerSpec,
    /// The rule text as written, for messages.
    pub rule_text: String,
    pub reason: String,
    pub expires: NaiveDate,
}

/// How an exception relates to a finding on a given day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExceptionMatch {
    /// Suppresses the finding.
    Suppresses,
    /// Would match but has expired: the finding fires.
    Expired,
    NoMatch,
}

const GRAMMAR: &str =
    "expected `<direction> <protocol> [<ports>] from|to <peer>`, e.g. `ingress tcp 30000-32767 from 10.0.0.0/8`";

impl Exception {
    /// Parses the rule text of an exception: `ingress tcp 30000-32767 from 10.0.0.0/8`,
    /// `egress all to 0.0.0.0/0`, `ingress icmp 8/0 from ::/0`, `ingress tcp 443 from sg:sg-0abc`.
    /// Ingress names its peer with `from`, egress with `to`; the peer is as in a baseline file.
    /// Errors do not repeat the text: callers name it.
    pub fn parse_rule(text: &str) -> Result<(Direction, Traffic, PeerSpec), ParseError> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let is_link = |w: &str| w == "from" || w == "to";
        let (direction, protocol, ports, link, peer) = match words.as_slice() {
            [d, p, l, peer] if is_link(l) => (*d, *p, None, *l, *peer),
            [d, p, ports, l, peer] if is_link(l) => (*d, *p, Some(*ports), *l, *peer),
            _ => return Err(ParseError(GRAMMAR.to_string())),
        };
        let direction = Direction::parse(direction)?;
        let want = match direction {
            Direction::Ingress => "from",
            Direction::Egress => "to",
        };
        if link != want {
            return Err(ParseError(format!("an {direction} rule names its peer with `{want}`, not `{link}`")));
        }
        let traffic = Traffic::parse(protocol, ports)?;
        let peer = PeerSpec::parse(peer)?;
        Ok((direction, traffic, peer))
    }

    pub fn is_expired(&self, today: NaiveDate) -> bool {
        today > self.expires
    }

    /// Whether this exception covers `finding` of `cluster` on `today`; `group_tags` are the
    /// tags of the finding's group (empty when the group is gone).
    ///
    /// Every kind of finding can match (`unexpected`, `missing`, and `flow` findings through
    /// the rule that would open them). The filters compare exactly: `account`, `region` and
    /// `cluster` with the cluster's identity, `role`, `group_id`, and every tag in `tags` with
    /// the group's tag of that key (`*` accepts any value). The rule must cover the finding's
    /// rule: same direction, traffic covered (ports by range, `all` covers everything), and the peer:
    /// - a concrete peer (CIDR, `pl-…`, `sg-…`) covers by containment, as in the differ;
    /// - `self` covers a finding whose peer is the finding's own group;
    /// - `role:…`, `vpc-cidr`, prefix-list names and remote CIDRs need the cluster to resolve:
    ///   here they match nothing; [`matches_in`](Self::matches_in), which the differ calls,
    ///   resolves them against the snapshot.
    ///
    /// A finding towards a VPC endpoint that does not exist has no peer a rule can name: only
    /// the filters and traffic could match it, so no exception covers it.
    pub fn matches(
        &self,
        cluster: &ClusterId,
        group_tags: &BTreeMap<String, String>,
        finding: &Finding,
        today: NaiveDate,
    ) -> ExceptionMatch {
        self.verdict(cluster, group_tags, finding, today, self.peer_covers(finding))
    }

    /// [`matches`](Self::matches) with the exception's peer resolved against `snapshot`, the
    /// finding's cluster, as a baseline rule's is: `role:…`, `vpc-cidr`, prefix-list names and
    /// the remote CIDRs of hybrid nodes cover what they name in that cluster.
    pub fn matches_in(&self, peers: &SnapshotPeers<'_>, finding: &Finding, today: NaiveDate) -> ExceptionMatch {
        let snapshot = peers.snapshot();
        let no_tags = BTreeMap::new();
        let holder = snapshot.groups.get(&finding.group_id);
        let tags = holder.map_or(&no_tags, |g| &g.tags);
        let covers = match (&self.peer, holder) {
            (PeerSpec::Concrete(_) | PeerSpec::SelfRef, _) => self.peer_covers(finding),
            (spec, Some(holder)) => finding.peer.as_peer().is_some_and(|inner| {
                super::resolve::resolve_peer(spec, holder, peers).iter().any(|outer| peer_covers(outer, inner))
            }),
            (_, None) => false,
        };
        self.verdict(&snapshot.id, tags, finding, today, covers)
    }

    fn verdict(
        &self,
        cluster: &ClusterId,
        group_tags: &BTreeMap<String, String>,
        finding: &Finding,
        today: NaiveDate,
        peer_covered: bool,
    ) -> ExceptionMatch {
        let rule = finding.direction == self.direction
            && traffic_union_covers([&self.traffic], &finding.traffic)
            && peer_covered;
        match (self.scope_covers(cluster, group_tags, finding) && rule, self.is_expired(today)) {
            (false, _) => ExceptionMatch::NoMatch,
            (true, true) => ExceptionMatch::Expired,
            (true, false) => ExceptionMatch::Suppresses,
        }
    }

    fn scope_covers(&self, cluster: &ClusterId, group_tags: &BTreeMap<String, String>, finding: &Finding) -> bool {
        let same = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        same(&self.account, &cluster.account_id)
            && same(&self.region, &cluster.region)
            && same(&self.cluster, &cluster.name)
            && self.role.is_none_or(|r| r == finding.role)
            && same(&self.group_id, &finding.group_id)
            && self.tags.iter().all(|(key, want)| group_tags.get(key).is_some_and(|have| want == "*" || want == have))
    }

    fn peer_covers(&self, finding: &Finding) -> bool {
        match &self.peer {
            PeerSpec::Concrete(outer) => finding.peer.as_peer().is_some_and(|inner| peer_covers(outer, inner)),
            PeerSpec::SelfRef => {
                finding.peer.as_peer().is_some_and(|p| p.group_id() == Some(finding.group_id.as_str()))
            }
            _ => false,
        }
    }
}

impl Exception {
    /// Builds an exception from its config entry: `reason` must say why, `expires` is YYYY-MM-DD.
    pub fn from_config(cfg: &crate::config::ExceptionConfig) -> Result<Exception, String> {
        let (direction, traffic, peer) =
            Self::parse_rule(&cfg.rule).map_err(|e| format!("exception rule `{}`: {}", cfg.rule.trim(), e.0))?;
        let reason = cfg.reason.trim();
        if reason.is_empty() {
            return Err(format!(
                "exception `{}` has an empty `reason`: say why this drift is accepted",
                cfg.rule.trim()
            ));
        }
        let expires = NaiveDate::parse_from_str(cfg.expires.trim(), "%Y-%m-%d").map_err(|_| {
            format!(
                "exception `{}`: expires `{}` is not a date in YYYY-MM-DD form (e.g. 2027-03-31)",
                cfg.rule.trim(),
                cfg.expires
            )
        })?;
        let role = cfg
            .role
            .as_deref()
            .map(Role::parse)
            .transpose()
            .map_err(|e| format!("exception `{}`: {}", cfg.rule.trim(), e.0))?;
        let nonempty = |s: &Option<String>| s.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(String::from);
        let account = nonempty(&cfg.account);
        if let Some(a) = &account {
            if a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "exception `{}`: account `{a}` is not a 12-digit AWS account id (e.g. \"111122223333\"; quote it so it stays a string)",
                    cfg.rule.trim()
                ));
            }
        }
        if let Some((key, _)) = cfg.tags.iter().find(|(k, _)| k.trim().is_empty()) {
            return Err(format!("exception `{}`: tag key `{key}` is empty: name the tag to match", cfg.rule.trim()));
        }
        Ok(Exception {
            account,
            region: nonempty(&cfg.region),
            cluster: nonempty(&cfg.cluster),
            role,
            group_id: nonempty(&cfg.group_id),
            tags: cfg.tags.clone(),
            direction,
            traffic,
            peer,
            rule_text: cfg.rule.trim().to_string(),
            reason: reason.to_string(),
            expires,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ExceptionConfig;
    use crate::model::{FindingKind, FlowName, IcmpMatch, Peer, PortRange};

    #[test]
    fn the_rule_grammar_reads_every_documented_form() {
        let tcp = |a, b| Traffic::Tcp(PortRange::new(a, b).unwrap());
        let cidr = |c: &str| PeerSpec::Concrete(Peer::parse(c).unwrap());
        let cases = [
            ("ingress tcp 30000-32767 from 10.0.0.0/8", Direction::Ingress, tcp(30000, 32767), cidr("10.0.0.0/8")),
            ("egress all to 0.0.0.0/0", Direction::Egress, Traffic::All, cidr("0.0.0.0/0")),
            (
                "ingress icmp 8/0 from ::/0",
                Direction::Ingress,
                Traffic::Icmp(IcmpMatch { icmp_type: Some(8), code: Some(0) }),
                cidr("::/0"),
            ),
            (
                "ingress tcp from role:node",
                Direction::Ingress,
                Traffic::Tcp(PortRange::ALL),
                PeerSpec::Role(Role::Node),
            ),
            ("  egress   udp 53   to self ", Direction::Egress, Traffic::Udp(PortRange::single(53)), PeerSpec::SelfRef),
            (
                "ingress tcp 443 from sg:sg-0abc",
                Direction::Ingress,
                tcp(443, 443),
                PeerSpec::Concrete(Peer::group("sg-0abc")),
            ),
            (
                "ingress tcp 443 from sg-0abc",
                Direction::Ingress,
                tcp(443, 443),
                PeerSpec::Concrete(Peer::group("sg-0abc")),
            ),
            ("egress tcp 443 to prefix-list:s3", Direction::Egress, tcp(443, 443), PeerSpec::S3PrefixList),
            ("egress 47 to vpc-cidr", Direction::Egress, Traffic::Other(47), PeerSpec::VpcCidr),
        ];
        for (text, d, t, p) in cases {
            assert_eq!(Exception::parse_rule(text), Ok((d, t, p)), "{text}");
        }
    }

    #[test]
    fn bad_rule_text_is_refused_with_a_reason() {
        // (text, words the error must contain)
        let cases = [
            ("", "expected `<direction>"),
            ("ingress tcp 443", "expected `<direction>"),
            ("ingress tcp 443 10.0.0.0/8", "expected `<direction>"),
            ("ingress tcp 443 from 10.0.0.0/8 extra", "expected `<direction>"),
            ("ingress tcp 443 to 10.0.0.0/8", "with `from`"),
            ("egress all from 0.0.0.0/0", "with `to`"),
            ("sideways tcp 443 from 10.0.0.0/8", "unknown direction"),
            ("ingress sctp 443 from 10.0.0.0/8", "unknown protocol"),
            ("ingress tcp 443-80 from 10.0.0.0/8", "reversed"),
            ("ingress all 443 from 10.0.0.0/8", "takes no ports"),
            ("ingress tcp 443 from 10.0.0.300/8", "bad peer"),
            ("ingress tcp 443 from role:worker", "unknown role"),
        ];
        for (text, words) in cases {
            let err = Exception::parse_rule(text).expect_err(text);
            assert!(err.0.contains(words), "{text}: `{}` lacks `{words}`", err.0);
        }
    }

    fn cfg(rule: &str) -> ExceptionConfig {
        ExceptionConfig {
            account: None,
            region: None,
            tags: BTreeMap::new(),
            cluster: Some("prod-eu1".into()),
            role: Some("node".into()),
            group_id: None,
            rule: rule.into(),
            reason: "internal NLB NodePorts".into(),
            expires: "2027-03-31".into(),
        }
    }

    #[test]
    fn config_entries_need_a_reason_a_date_and_a_known_role() {
        let ok = Exception::from_config(&cfg("ingress tcp 30000-32767 from 10.0.0.0/8")).unwrap();
        assert_eq!(ok.expires, NaiveDate::from_ymd_opt(2027, 3, 31).unwrap());
        assert_eq!(ok.role, Some(Role::Node));
        assert_eq!(ok.cluster.as_deref(), Some("prod-eu1"));
        assert_eq!(ok.rule_text, "ingress tcp 30000-32767 from 10.0.0.0/8");
        assert_eq!(ok.reason, "internal NLB NodePorts");

        let bad = |f: &dyn Fn(&mut ExceptionConfig), words: &str| {
            let mut c = cfg("ingress tcp 30000-32767 from 10.0.0.0/8");
            f(&mut c);
            let err = Exception::from_config(&c).expect_err(words);
            assert!(err.contains(words), "`{err}` lacks `{words}`");
        };
        bad(&|c| c.reason = "  ".into(), "empty `reason`");
        bad(&|c| c.expires = "31/03/2027".into(), "YYYY-MM-DD");
        bad(&|c| c.expires = "2027-02-30".into(), "YYYY-MM-DD");
        bad(&|c| c.expires = "".into(), "YYYY-MM-DD");
        bad(&|c| c.role = Some("worker".into()), "unknown role");
        bad(
            &|c| c.rule = "ingress tcp 30000-32767 to 10.0.0.0/8".into(),
            "exception rule `ingress tcp 30000-32767 to 10.0.0.0/8`",
        );
    }

    fn finding(kind: FindingKind, role: Role, group: &str, rule: &str) -> Finding {
        let f = Finding::test().kind(kind).role(role).on(group).rule(rule);
        match kind {
            FindingKind::Flow => f.flow(FlowName::Webhooks),
            _ => f,
        }
        .build()
    }

    fn exception(rule: &str, cluster: Option<&str>, role: Option<Role>, group: Option<&str>) -> Exception {
        let (direction, traffic, peer) = Exception::parse_rule(rule).unwrap();
        Exception {
            account: None,
            region: None,
            cluster: cluster.map(String::from),
            role,
            group_id: group.map(String::from),
            tags: BTreeMap::new(),
            direction,
            traffic,
            peer,
            rule_text: rule.into(),
            reason: "r".into(),
            expires: NaiveDate::from_ymd_opt(2027, 3, 31).unwrap(),
        }
    }

    #[test]
    fn an_exception_matches_findings_its_filters_and_rule_cover() {
        use ExceptionMatch::*;
        use FindingKind::*;
        let prod = ClusterId { account_id: "111122223333".into(), region: "eu-west-1".into(), name: "prod-eu1".into() };
        let today = NaiveDate::from_ymd_opt(2026, 11, 28).unwrap();
        let nodeports = "ingress tcp 30000-32767 from 10.0.0.0/8";
        // (exception rule, cluster, role, group, finding kind, finding role, finding group, finding rule, expected)
        type Case<'a> = (
            &'a str,
            Option<&'a str>,
            Option<Role>,
            Option<&'a str>,
            FindingKind,
            Role,
            &'a str,
            &'a str,
            ExceptionMatch,
        );
        #[rustfmt::skip]
        let cases: &[Case] = &[
            (nodeports, Some("prod-eu1"), None, None, Unexpected, Role::Node, "sg-1", "ingress tcp 30080 from 10.1.0.0/16", Suppresses),
            (nodeports, Some("prod-eu1"), None, None, Unexpected, Role::Node, "sg-1", "ingress tcp 30000-32767 from 10.0.0.0/8", Suppresses),
            (nodeports, Some("prod-eu1"), None, None, Missing, Role::Node, "sg-1", "ingress tcp 31000 from 10.2.3.4/32", Suppresses),
            // Filters.
            (nodeports, Some("prod-us1"), None, None, Unexpected, Role::Node, "sg-1", "ingress tcp 30080 from 10.1.0.0/16", NoMatch),
            (nodeports, None, Some(Role::Node), None, Unexpected, Role::Node, "sg-1", "ingress tcp 30080 from 10.1.0.0/16", Suppresses),
            (nodeports, None, Some(Role::Cluster), None, Unexpected, Role::Node, "sg-1", "ingress tcp 30080 from 10.1.0.0/16", NoMatch),
            (nodeports, None, None, Some("sg-1"), Unexpected, Role::Node, "sg-1", "ingress tcp 30080 from 10.1.0.0/16", Suppresses),
            (nodeports, None, None, Some("sg-2"), Unexpected, Role::Node, "sg-1", "ingress tcp 30080 from 10.1.0.0/16", NoMatch),
            // The rule must cover: ports, protocol, direction, peer.
            (nodeports, None, None, None, Unexpected, Role::Node, "sg-1", "ingress tcp 29999-30001 from 10.1.0.0/16", NoMatch),
            (nodeports, None, None, None, Unexpected, Role::Node, "sg-1", "ingress udp 30080 from 10.1.0.0/16", NoMatch),
            (nodeports, None, None, None, Unexpected, Role::Node, "sg-1", "ingress all from 10.1.0.0/16", NoMatch),
            (nodeports, None, None, None, Unexpected, Role::Node, "sg-1", "egress tcp 30080 to 10.1.0.0/16", NoMatch),
            (nodeports, None, None, None, Unexpected, Role::Node, "sg-1", "ingress tcp 30080 from 0.0.0.0/0", NoMatch),
            (nodeports, None, None, None, Unexpected, Role::Node, "sg-1", "ingress tcp 30080 from ::/0", NoMatch),
            (nodeports, None, None, None, Unexpected, Role::Node, "sg-1", "ingress tcp 30080 from sg-9", NoMatch),
            ("egress all to 0.0.0.0/0", None, None, None, Unexpected, Role::Node, "sg-1", "egress all to 0.0.0.0/0", Suppresses),
            ("egress all to 0.0.0.0/0", None, None, None, Unexpected, Role::Node, "sg-1", "egress udp 123 to 0.0.0.0/0", Suppresses),
            ("egress all to 0.0.0.0/0", None, None, None, Unexpected, Role::Node, "sg-1", "egress 47 to 10.0.0.0/8", Suppresses),
            ("egress all to 0.0.0.0/0", None, None, None, Unexpected, Role::Node, "sg-1", "egress all to ::/0", NoMatch),
            ("ingress icmp 8 from ::/0", None, None, None, Unexpected, Role::Node, "sg-1", "ingress icmp 8/0 from ::/0", Suppresses),
            ("ingress icmp 8/0 from ::/0", None, None, None, Unexpected, Role::Node, "sg-1", "ingress icmp 8 from ::/0", NoMatch),
            ("ingress icmp 8/0 from ::/0", None, None, None, Unexpected, Role::Node, "sg-1", "ingress icmpv6 8/0 from ::/0", NoMatch),
            ("ingress tcp 443 from sg:sg-9", None, None, None, Unexpected, Role::Node, "sg-1", "ingress tcp 443 from sg-9", Suppresses),
            ("ingress tcp 443 from sg:sg-9", None, None, None, Unexpected, Role::Node, "sg-1", "ingress tcp 443 from 444455556666/sg-9", Suppresses),
            ("egress tcp 443 to pl-1", None, None, None, Unexpected, Role::Node, "sg-1", "egress tcp 443 to pl-1", Suppresses),
            ("egress tcp 443 to pl-1", None, None, None, Unexpected, Role::Node, "sg-1", "egress tcp 443 to pl-2", NoMatch),
            // `self` is the finding's own group; role peers cannot be resolved here.
            ("ingress all from self", None, None, None, Unexpected, Role::Node, "sg-1", "ingress tcp 22 from sg-1", Suppresses),
            ("ingress all from self", None, None, None, Unexpected, Role::Node, "sg-1", "ingress tcp 22 from sg-2", NoMatch),
            ("ingress tcp 9443 from role:control-plane", None, None, None, Flow, Role::Node, "sg-1", "ingress tcp 9443 from sg-1", NoMatch),
            ("egress tcp 443 to 10.0.0.0/8", None, None, None, Flow, Role::Node, "sg-1", "egress tcp 443 to com.amazonaws.eu-west-1.sts", NoMatch),
            ("ingress tcp 9443 from role:control-plane", None, None, None, Unexpected, Role::Node, "sg-1", "ingress tcp 9443 from sg-cp", NoMatch),
            // Flow findings match like the others when the rule fits.
            ("egress tcp 443 to 0.0.0.0/0", None, None, None, Flow, Role::Node, "sg-1", "egress tcp 443 to 0.0.0.0/0", Suppresses),
        ];
        for (rule, cluster, role, group, kind, frole, fgroup, frule, want) in cases {
            let e = exception(rule, *cluster, *role, *group);
            let f = finding(*kind, *frole, fgroup, frule);
            assert_eq!(
                e.matches(&prod, &BTreeMap::new(), &f, today),
                *want,
                "`{rule}` vs {kind:?} `{frule}` on {fgroup}"
            );
        }
    }

    #[test]
    fn account_region_and_tag_filters_scope_an_exception_to_the_groups_they_name() {
        use ExceptionMatch::*;
        let today = NaiveDate::from_ymd_opt(2026, 11, 28).unwrap();
        let at = |account: &str, region: &str| ClusterId {
            account_id: account.into(),
            region: region.into(),
            name: "prod-eu1".into(),
        };
        let tags = |pairs: &[(&str, &str)]| {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>()
        };
        let f = finding(FindingKind::Unexpected, Role::Node, "sg-1", "ingress tcp 30080 from 10.1.0.0/16");
        let scoped = |account: Option<&str>, region: Option<&str>, want: &[(&str, &str)]| Exception {
            account: account.map(String::from),
            region: region.map(String::from),
            tags: tags(want),
            ..exception("ingress tcp 30000-32767 from 10.0.0.0/8", None, None, None)
        };
        let team = tags(&[("team", "payments"), ("env", "prod")]);
        // (exception's account, region, tags; cluster's account, region; group tags; expected)
        #[rustfmt::skip]
        let cases: &[(Option<&str>, Option<&str>, &[(&str, &str)], (&str, &str), &BTreeMap<String, String>, ExceptionMatch)] = &[
            (Some("111122223333"), None, &[], ("111122223333", "eu-west-1"), &team, Suppresses),
            (Some("111122223333"), None, &[], ("444455556666", "eu-west-1"), &team, NoMatch),
            (None, Some("eu-west-1"), &[], ("444455556666", "eu-west-1"), &team, Suppresses),
            (None, Some("us-east-1"), &[], ("111122223333", "eu-west-1"), &team, NoMatch),
            (None, None, &[("team", "payments")], ("111122223333", "eu-west-1"), &team, Suppresses),
            (None, None, &[("team", "payments"), ("env", "prod")], ("111122223333", "eu-west-1"), &team, Suppresses),
            (None, None, &[("team", "*")], ("111122223333", "eu-west-1"), &team, Suppresses),
            (None, None, &[("team", "search")], ("111122223333", "eu-west-1"), &team, NoMatch),
            (None, None, &[("team", "payments"), ("env", "dev")], ("111122223333", "eu-west-1"), &team, NoMatch),
            // A group without tags (or one that is gone) matches no tag filter, not even `*`.
            (None, None, &[("team", "*")], ("111122223333", "eu-west-1"), &BTreeMap::new(), NoMatch),
            (Some("111122223333"), Some("eu-west-1"), &[("team", "payments")], ("111122223333", "eu-west-1"), &team, Suppresses),
        ];
        for (account, region, want, (acc, reg), group_tags, expect) in cases {
            let e = scoped(*account, *region, want);
            assert_eq!(
                e.matches(&at(acc, reg), group_tags, &f, today),
                *expect,
                "{account:?} {region:?} {want:?} vs {acc}/{reg} {group_tags:?}"
            );
        }
    }

    #[test]
    fn an_account_filter_must_be_a_twelve_digit_id_and_tag_keys_must_be_named() {
        let mut c = cfg("ingress tcp 30000-32767 from 10.0.0.0/8");
        c.account = Some("1111-2222-3333".into());
        let err = Exception::from_config(&c).unwrap_err();
        assert!(err.contains("12-digit AWS account id"), "{err}");
        c.account = Some("111122223333".into());
        c.region = Some("eu-west-1".into());
        c.tags = BTreeMap::from([("team".to_string(), "payments".to_string())]);
        let ok = Exception::from_config(&c).unwrap();
        assert_eq!((ok.account.as_deref(), ok.region.as_deref()), (Some("111122223333"), Some("eu-west-1")));
        assert_eq!(ok.tags.get("team").map(String::as_str), Some("payments"));
        c.tags = BTreeMap::from([(" ".to_string(), "x".to_string())]);
        assert!(Exception::from_config(&c).unwrap_err().contains("tag key"));
    }

    #[test]
    fn an_exception_stops_suppressing_the_day_after_it_expires() {
        let prod = ClusterId { account_id: "1".into(), region: "eu-west-1".into(), name: "prod-eu1".into() };
        let e = exception("ingress tcp 22 from 10.0.0.0/8", None, None, None);
        let f = finding(FindingKind::Unexpected, Role::Node, "sg-1", "ingress tcp 22 from 10.9.0.0/16");
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert_eq!(e.matches(&prod, &BTreeMap::new(), &f, day(2027, 3, 30)), ExceptionMatch::Suppresses);
        assert_eq!(e.matches(&prod, &BTreeMap::new(), &f, day(2027, 3, 31)), ExceptionMatch::Suppresses);
        assert_eq!(e.matches(&prod, &BTreeMap::new(), &f, day(2027, 4, 1)), ExceptionMatch::Expired);
        assert!(e.is_expired(day(2027, 4, 1)) && !e.is_expired(day(2027, 3, 31)));
        // An expired exception that would not match anyway says so.
        let other = finding(FindingKind::Unexpected, Role::Node, "sg-1", "ingress tcp 23 from 10.9.0.0/16");
        assert_eq!(e.matches(&prod, &BTreeMap::new(), &other, day(2027, 4, 1)), ExceptionMatch::NoMatch);
    }
}
