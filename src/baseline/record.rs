//! `sgdrift record`: a baseline written from a cluster's live groups, every rule `required`,
//! peers that point at the cluster's own groups written as roles.

use std::collections::BTreeMap;

use super::format::write_rule;
use super::{guardrails, owners, BaselineRule, PeerSpec, RuleStatus};
use crate::model::{ClusterSnapshot, Peer, Role, SecurityGroup};

/// What `record` produced: the baseline text and the warnings to show the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    pub text: String,
    /// One sentence per rule that crosses a guardrail and was written commented out.
    pub warnings: Vec<String>,
}

/// A TOML baseline of `snapshot` (stable order, each group's name in a comment). Checking the
/// same snapshot against it gives no findings but the guardrails (design.md §2): a rule that
/// crosses one is written commented out, with a warning in the file and in `warnings`, so
/// recording never approves SSH from the internet. A controller-owned rule is written
/// commented out too: recorded as `required`, it would be `missing` once its object is gone.
///
/// Peers: the holding group is `self`; another group of the cluster is `role:<r>` when it is
/// the only group of its role (so the file survives that group being replaced), else `sg:<id>`.
/// Where a role has several groups, each rule carries `group = "<id>"`, since the groups of one
/// role need not have the same rules. The AWS description becomes `why`. No timestamp: the same
/// cluster records to the same bytes, so recordings diff cleanly.
pub fn record(snapshot: &ClusterSnapshot) -> Recording {
    let mut per_role: BTreeMap<Role, usize> = BTreeMap::new();
    for g in snapshot.groups.values() {
        *per_role.entry(g.primary_role()).or_default() += 1;
    }
    let single = |role: Role| per_role.get(&role) == Some(&1);

    let mut warnings = Vec::new();
    let mut groups: Vec<&SecurityGroup> = snapshot.groups.values().collect();
    groups.sort_by(|a, b| (a.primary_role(), &a.id).cmp(&(b.primary_role(), &b.id)));

    let id = &snapshot.id;
    let mut out = format!(
        "# sgdrift baseline recorded by `sgdrift record` (sgdrift {}) from the live security groups of\n\
         # cluster {} (account {}, region {}; endpoint mode {}, style {}).\n\
         #\n\
         # Every rule is `required`: one that disappears is drift (`missing`), and a rule not listed\n\
         # here is `unexpected`. Review before use: delete what should not be there, mark optional\n\
         # rules `status = \"allowed\"`, or add `profile = \"eks-minimal\"` to allow that envelope too.\n\
         # Peers: `self` is the group itself, `role:<r>` the only group of that role, `sg:<id>` a\n\
         # group among several or outside the cluster. `group` pins a rule to one of several groups\n\
         # of a role. `why` is the rule's description in AWS.\n",
        env!("CARGO_PKG_VERSION"),
        one_line(&id.name),
        one_line(&id.account_id),
        one_line(&id.region),
        snapshot.endpoint_mode,
        snapshot.style,
    );

    for g in groups {
        out.push_str(&format!("\n# {} ({}), role {}\n", one_line(&g.name), one_line(&g.id), g.primary_role()));
        let mut rules: Vec<_> = g.rules.iter().collect();
        rules.sort_by(|a, b| a.key().cmp(&b.key()));
        if rules.is_empty() {
            out.push_str("# (no rules)\n");
        }
        for rule in rules {
            let peer = match &rule.peer {
                Peer::Group { id, owner: None } if *id == g.id => PeerSpec::SelfRef,
                Peer::Group { id, owner: None } => match snapshot.groups.get(id) {
                    Some(other) if single(other.primary_role()) => PeerSpec::Role(other.primary_role()),
                    _ => PeerSpec::Concrete(rule.peer.clone()),
                },
                other => PeerSpec::Concrete(other.clone()),
            };
            let recorded = BaselineRule {
                role: g.primary_role(),
                group: (!single(g.primary_role())).then(|| g.id.clone()),
                direction: rule.direction,
                traffic: rule.traffic,
                peer,
                status: RuleStatus::Required,
                why: rule.description.clone(),
                source: None,
            };
            out.push('\n');
            if let Some(reason) = guardrails::reason(rule) {
                let warning = format!("{} ({}): {rule} not recorded, {reason}", one_line(&g.name), one_line(&g.id));
                let note = format!(
                    "WARNING: {reason}. Not recorded: `check` reports this rule whatever a baseline says;\n\
                     # if it must stay, approve it with an [[exceptions]] entry (reason and expiry) in the config"
                );
                write_commented_out(&mut out, &recorded, &note);
                warnings.push(warning);
            } else if let Some(controller) = owners::owner(snapshot, g, rule) {
                // Recorded as required, it would turn `missing` when its Kubernetes object goes.
                let note = format!(
                    "owned by {controller}: it comes and goes with Kubernetes objects, so it is not\n\
                     # recorded; `check` lists it under `owned` while the target trusts {controller}"
                );
                write_commented_out(&mut out, &recorded, &note);
            } else {
                write_rule(&mut out, &recorded);
            }
        }
    }
    Recording { text: out, warnings }
}

/// A rule that must not be approved by recording, commented out under `note` (a sentence,
/// continued on `# ` lines).
fn write_commented_out(out: &mut String, rule: &BaselineRule, note: &str) {
    out.push_str(&format!("# {note}.\n"));
    let mut block = String::new();
    write_rule(&mut block, rule);
    for line in block.lines() {
        out.push_str("# ");
        out.push_str(line);
        out.push('\n');
    }
}

/// Names and ids go into `#` comments: a newline in one must not end the comment.
fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::fixtures::{group, rule, snapshot};
    use super::super::{parse_str, resolve, ResolveContext};
    use super::*;
    use crate::model::{canonicalize, Rule};

    /// Record, read back, resolve against the same snapshot: each group must expect exactly
    /// its own rules, all `required`.
    fn assert_round_trip(s: &ClusterSnapshot) {
        let text = record(s).text;
        let parsed = parse_str(&text, "recorded.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(parsed.profile.is_none());
        let resolved = resolve(&parsed, s, &ResolveContext::default());
        for g in s.groups.values() {
            // Guardrail and controller-owned rules are written commented out: they resolve to nothing.
            let recorded = |r: &&Rule| guardrails::reason(r).is_none() && owners::owner(s, g, r).is_none();
            let want: Vec<_> = g.rules.iter().filter(recorded).map(Rule::key).collect();
            let got: Vec<_> =
                resolved.by_group.get(&g.id).map(|v| v.iter().map(|r| r.rule.key()).collect()).unwrap_or_default();
            assert_eq!(got, want, "group {}\n{text}", g.id);
            if let Some(v) = resolved.by_group.get(&g.id) {
                assert!(v.iter().all(|r| r.status == RuleStatus::Required));
            }
        }
        for id in resolved.by_group.keys() {
            assert!(s.groups.contains_key(id), "resolved rules for unknown group {id}");
        }
    }

    #[test]
    fn a_recording_resolves_back_to_exactly_the_snapshots_rules() {
        assert_round_trip(&snapshot());
    }

    #[test]
    fn peers_are_written_as_self_roles_or_ids_and_shared_roles_pin_their_group() {
        let text = record(&snapshot()).text;
        let blocks: Vec<&str> = text.split("\n\n").filter(|b| b.contains("[[rule]]")).collect();
        let block = |needles: &[&str]| -> &str {
            blocks
                .iter()
                .find(|b| needles.iter().all(|n| b.contains(n)))
                .unwrap_or_else(|| panic!("no rule block with {needles:?} in\n{text}"))
        };
        // The one control-plane group is a role; the holding group is `self`.
        block(&["role = \"node\"", "group = \"sg-node-a\"", "ports = \"10250\"", "peer = \"role:control-plane\""]);
        block(&["role = \"cluster\"", "protocol = \"all\"", "peer = \"self\""]);
        block(&["role = \"node\"", "group = \"sg-node-a\"", "ports = \"53\"", "peer = \"self\""]);
        // Two node groups: by id, and node rules are pinned to their group.
        block(&["role = \"node\"", "group = \"sg-node-a\"", "ports = \"53\"", "peer = \"sg:sg-node-b\""]);
        block(&["role = \"control-plane\"", "peer = \"sg:sg-node-a\""]);
        assert!(!block(&["role = \"cluster\""]).contains("group ="));
        // Everything else as it is.
        block(&["role = \"endpoint\"", "peer = \"sg:444455556666/sg-peer\""]);
        block(&["peer = \"prefix-list:pl-s3\""]);
        block(&["protocol = \"icmp\"", "ports = \"8/0\"", "peer = \"cidr:10.0.0.0/16\""]);
        block(&["protocol = \"47\"", "peer = \"cidr:10.0.0.0/16\""]);
        assert!(blocks.iter().all(|b| b.contains("status = \"required\"")));
        // Each group is introduced by its name and id, in role order.
        let order: Vec<usize> = [
            "# eks-cluster-sg-demo-1234 (sg-cluster)",
            "# demo-cluster-2024 (sg-cp)",
            "# demo-node-a (sg-node-a)",
            "# demo-node-b (sg-node-b)",
            "# demo-endpoints (sg-ep)",
        ]
        .iter()
        .map(|c| text.find(c).unwrap_or_else(|| panic!("no `{c}` in\n{text}")))
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
        assert!(text.starts_with("# sgdrift baseline recorded by `sgdrift record`"));
        assert!(text
            .contains("cluster demo (account 111122223333, region eu-west-1; endpoint mode private, style terraform)"));
    }

    #[test]
    fn a_rule_that_crosses_a_guardrail_is_written_commented_out_with_a_warning() {
        let rec = record(&snapshot());
        assert_eq!(
            rec.warnings,
            ["demo-node-b (sg-node-b): ingress tcp 22 from 0.0.0.0/0 not recorded, guardrail: SSH open to the internet"]
        );
        let at =
            rec.text.find("# WARNING: guardrail: SSH open to the internet.").unwrap_or_else(|| panic!("{}", rec.text));
        let block: Vec<&str> = rec.text[at..].lines().skip(2).take(7).collect();
        assert_eq!(
            block,
            [
                "# [[rule]]",
                "# role = \"node\"",
                "# group = \"sg-node-b\"",
                "# direction = \"ingress\"",
                "# protocol = \"tcp\"",
                "# ports = \"22\"",
                "# peer = \"cidr:0.0.0.0/0\"",
            ]
        );
        let parsed = parse_str(&rec.text, "recorded.toml").unwrap();
        assert!(parsed.rules.iter().all(|r| !matches!(&r.peer, PeerSpec::Concrete(p) if p.is_internet() && r.direction == crate::model::Direction::Ingress)));
    }

    #[test]
    fn recording_is_deterministic_whatever_order_rules_arrive_in() {
        let s = snapshot();
        let mut shuffled = s.clone();
        for g in shuffled.groups.values_mut() {
            g.rules.reverse();
        }
        assert_eq!(record(&s), record(&shuffled));
    }

    #[test]
    fn descriptions_become_why_and_odd_names_stay_inside_their_comment() {
        let mut s = snapshot();
        let g = s.groups.get_mut("sg-cp").unwrap();
        g.name = "evil\nprofile = \"eks-minimal\"".into();
        g.rules[0].description = Some("Node groups to \"cluster\" API".into());
        let text = record(&s).text;
        let parsed = parse_str(&text, "r.toml").unwrap();
        assert!(parsed.profile.is_none(), "a group name escaped its comment:\n{text}");
        assert!(parsed.rules.iter().any(|r| r.why.as_deref() == Some("Node groups to \"cluster\" API")));
        assert_round_trip(&s);
    }

    #[test]
    fn a_group_without_rules_records_none_and_expects_none() {
        let mut s = snapshot();
        s.groups.insert("sg-ssh".into(), group("sg-ssh", "eks-remoteAccess-1", Role::RemoteAccess, vec![]));
        let text = record(&s).text;
        assert!(text.contains("# eks-remoteAccess-1 (sg-ssh), role remote-access\n# (no rules)\n"), "{text}");
        assert_round_trip(&s);
    }

    #[test]
    fn a_lone_group_of_a_role_is_named_by_role_from_every_other_group() {
        let mut s = snapshot();
        s.groups.remove("sg-node-b");
        for g in s.groups.values_mut() {
            g.rules.retain(|r| r.peer.group_id() != Some("sg-node-b"));
        }
        let ep = s.groups.get_mut("sg-ep").unwrap();
        ep.rules.push(rule("egress", "tcp", "443", "sg-node-a"));
        ep.rules = canonicalize(std::mem::take(&mut ep.rules));
        let text = record(&s).text;
        assert!(text.contains("peer = \"role:node\""), "{text}");
        assert!(!text.contains("group ="), "{text}");
        assert_round_trip(&s);
    }

    fn arb_rule(ids: Vec<&'static str>) -> impl Strategy<Value = Rule> {
        let direction = prop_oneof![Just("ingress"), Just("egress")];
        let traffic = prop_oneof![
            Just(("all", String::new())),
            (0u16..=65535, 0u16..=200).prop_map(|(a, n)| ("tcp", format!("{}-{}", a, a.saturating_add(n)))),
            (0u16..=65535).prop_map(|p| ("udp", p.to_string())),
            (0u8..=255, 0u8..=16).prop_map(|(t, c)| ("icmp", format!("{t}/{c}"))),
            Just(("icmpv6", "all".to_string())),
            Just(("47", String::new())),
        ];
        let mut peers: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        peers.extend(
            [
                "0.0.0.0/0",
                "::/0",
                "10.0.0.0/16",
                "10.0.3.4/32",
                "pl-s3",
                "pl-zzz",
                "sg-outside",
                "444455556666/sg-peer",
            ]
            .map(String::from),
        );
        (direction, traffic, prop::sample::select(peers)).prop_map(|(d, (p, ports), peer)| rule(d, p, &ports, &peer))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_snapshot_records_and_resolves_back_to_its_rules(
            rules in prop::collection::vec(prop::collection::vec(arb_rule(vec!["sg-cluster", "sg-cp", "sg-node-a", "sg-node-b", "sg-ep"]), 0..12), 5),
            described in any::<bool>(),
        ) {
            let mut s = snapshot();
            for (g, mut rs) in s.groups.values_mut().zip(rules) {
                if described {
                    for (i, r) in rs.iter_mut().enumerate() {
                        r.description = Some(format!("rule {i} of {}", g.id));
                    }
                }
                g.rules = canonicalize(rs);
            }
            assert_round_trip(&s);
        }
    }
}
