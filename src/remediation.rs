//! Remediation (design.md §2): for each finding, the exact change that restores the baseline,
//! proved safe on the snapshot before it is offered. Pure: snapshot and evaluation in, a plan out.
//!
//! `unexpected` → revoke that one atomic rule (one peer of a merged EC2 permission is its own
//! rule, so only that peer goes); `missing` and closed `flow` → authorize the baseline rule, with
//! a description, on the group that lacks it. Each step is tried on a patched copy of the
//! snapshot, re-evaluated by the caller's differ and flow checker: a step that would close a
//! flow that is open, create a finding that was not there, or take away a controller's rule is
//! refused with the reason. Suppressed findings (exceptions, guardrail exceptions) and owned
//! rules are never in a plan: they are not drift.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::diff::Evaluation;
use crate::flows::FlowStatus;
use crate::model::{
    canonicalize, ClusterSnapshot, Direction, Finding, FindingKind, FindingPeer, Peer, Remediation, RemediationAction,
    Role, Rule, SecurityGroup, Severity, Style, Traffic,
};

/// What the plan depends on besides the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The role the target is read through: its presence means the commands run in another
    /// account than the operator's, which the printed command says.
    pub role_arn: Option<String>,
    /// Findings below this are left alone.
    pub min_severity: Severity,
}

impl Default for Options {
    fn default() -> Self {
        Options { role_arn: None, min_severity: Severity::Low }
    }
}

/// One change to one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub action: RemediationAction,
    pub group_id: String,
    /// The atomic rule to revoke, or to authorize (with its description).
    pub rule: Rule,
    /// The findings this step resolves.
    pub finding_ids: Vec<String>,
}

impl Step {
    /// `revoke ingress tcp 22 from 0.0.0.0/0 on sg-0abc`.
    pub fn summary(&self) -> String {
        let verb = match self.action {
            RemediationAction::Revoke => "revoke",
            RemediationAction::Authorize => "authorize",
        };
        format!("{verb} {} on {}", self.rule, self.group_id)
    }
}

/// A step the plan will not take, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub step: Step,
    pub reason: String,
}

/// A finding no security-group rule can fix, and what to do instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfixable {
    pub finding_id: String,
    pub reason: String,
}

/// The checked plan for one cluster: authorizations first, so that a revoke never runs before
/// the rule that replaces it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub refused: Vec<Refusal>,
    pub unfixable: Vec<Unfixable>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty() && self.refused.is_empty() && self.unfixable.is_empty()
    }
}

/// Plans the remediation of `eval` (the evaluation of `snapshot`); `evaluate` is the differ and
/// flow checker the findings came from, run again on each patched snapshot.
pub fn plan(
    snapshot: &ClusterSnapshot,
    eval: &Evaluation,
    options: &Options,
    evaluate: impl Fn(&ClusterSnapshot) -> Evaluation,
) -> Plan {
    let (candidates, unfixable) = candidates(snapshot, eval, options.min_severity);
    let known: BTreeSet<&str> = eval.findings.iter().map(|f| f.id.as_str()).collect();
    let mut plan = Plan { unfixable, ..Plan::default() };
    let mut current = snapshot.clone();
    let mut current_eval = eval.clone();
    for step in candidates {
        let patched = patch(&current, &step);
        let after = evaluate(&patched);
        match unsafe_because(&current_eval, &after, &known) {
            Some(reason) => plan.refused.push(Refusal { step, reason }),
            None => {
                plan.steps.push(step);
                current = patched;
                current_eval = after;
            }
        }
    }
    plan
}

/// The steps the findings ask for, deduplicated, authorizations first; and the findings that
/// no rule can fix.
fn candidates(snapshot: &ClusterSnapshot, eval: &Evaluation, min: Severity) -> (Vec<Step>, Vec<Unfixable>) {
    let mut authorize: Vec<Step> = Vec::new();
    let mut revoke: Vec<Step> = Vec::new();
    let mut unfixable = Vec::new();
    for f in eval.findings.iter().filter(|f| f.is_drift() && f.severity >= min) {
        let Some(rule) = f.rule() else {
            unfixable.push(Unfixable { finding_id: f.id.clone(), reason: absent_endpoint_reason(f) });
            continue;
        };
        let (list, action, rule) = match f.kind {
            // The rule as AWS holds it, description included: EC2 matches a revoke without it,
            // but naming it makes the pasted command say exactly which rule goes.
            FindingKind::Unexpected => (&mut revoke, RemediationAction::Revoke, rule),
            FindingKind::Missing | FindingKind::Flow => {
                let description = Some(authorize_description(f));
                (&mut authorize, RemediationAction::Authorize, Rule { description, ..rule })
            }
        };
        if !snapshot.groups.contains_key(&f.group_id) {
            unfixable.push(Unfixable {
                finding_id: f.id.clone(),
                reason: format!("{} is not among the groups read from AWS", f.group_id),
            });
            continue;
        }
        match list.iter_mut().find(|s| s.group_id == f.group_id && s.rule.key() == rule.key()) {
            Some(step) => step.finding_ids.push(f.id.clone()),
            None => list.push(Step { action, group_id: f.group_id.clone(), rule, finding_ids: vec![f.id.clone()] }),
        }
    }
    authorize.extend(revoke);
    (authorize, unfixable)
}

fn absent_endpoint_reason(f: &Finding) -> String {
    match &f.peer {
        FindingPeer::AbsentEndpoint(service) => format!(
            "no security-group rule can open it: the VPC has no interface endpoint for {service}; create one \
             (with private DNS) or give the nodes a route out"
        ),
        FindingPeer::Peer(_) => "no security-group rule can fix it".to_string(),
    }
}

/// EC2 accepts descriptions of up to 255 characters from `a-zA-Z0-9. _-:/()#,@[]+=&;{}!$*`.
const DESCRIPTION_CHARS: &str = ". _-:/()#,@[]+=&;{}!$*";

/// The description an authorized rule gets: the baseline's reason for it where the finding
/// carries one, else the flow it opens; always within EC2's character set.
fn authorize_description(f: &Finding) -> String {
    let text = match (f.kind, f.flow) {
        // The differ writes a missing rule's reason as "recorded rule is gone (<why>)".
        (FindingKind::Missing, _) => {
            match f.reason.strip_prefix("recorded rule is gone (").and_then(|r| r.strip_suffix(')')) {
                Some(why) => format!("sgdrift baseline: {why}"),
                None => "sgdrift baseline rule".to_string(),
            }
        }
        (_, Some(flow)) => format!("sgdrift: EKS {flow} flow"),
        _ => "sgdrift baseline rule".to_string(),
    };
    ec2_description(&text)
}

fn ec2_description(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || DESCRIPTION_CHARS.contains(c) { c } else { ' ' })
        .take(255)
        .collect();
    cleaned.trim().to_string()
}

/// `snapshot` with `step` carried out.
pub fn patch(snapshot: &ClusterSnapshot, step: &Step) -> ClusterSnapshot {
    let mut out = snapshot.clone();
    if let Some(group) = out.groups.get_mut(&step.group_id) {
        match step.action {
            RemediationAction::Revoke => group.rules.retain(|r| r.key() != step.rule.key()),
            RemediationAction::Authorize => {
                group.rules.push(step.rule.clone());
                group.rules = canonicalize(std::mem::take(&mut group.rules));
            }
        }
    }
    out
}

/// Why a step must not be taken: `before` is the evaluation it starts from, `after` the one it
/// leads to, `known` the findings of the unpatched cluster.
fn unsafe_because(before: &Evaluation, after: &Evaluation, known: &BTreeSet<&str>) -> Option<String> {
    let closed: Vec<String> = before
        .flows
        .iter()
        .filter(|f| f.status == FlowStatus::Open)
        .filter_map(|f| {
            let now = after.flows.iter().find(|a| a.name == f.name && a.node_group == f.node_group)?;
            (now.status != FlowStatus::Open).then(|| {
                let ng = f.node_group.as_deref().map(|n| format!(" of node group {n}")).unwrap_or_default();
                format!("the {} flow{ng} ({})", f.name, now.detail)
            })
        })
        .collect();
    if !closed.is_empty() {
        let mut reason = format!("it would close {}", closed.join("; "));
        let first: Vec<String> = after
            .findings
            .iter()
            .filter(|f| f.kind == FindingKind::Flow && !known.contains(f.id.as_str()))
            .filter_map(|f| Some(format!("{} on {}", f.rule()?, f.group_id)))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if !first.is_empty() {
            let _ =
                write!(reason, "; authorize {} first (add it to the baseline if it is not there)", first.join(" and "));
        }
        return Some(reason);
    }
    let new: Vec<String> = after
        .findings
        .iter()
        .filter(|f| f.is_drift() && !known.contains(f.id.as_str()))
        .map(|f| format!("{} {} on {} ({})", f.kind.as_str(), f.rule_text(), f.group_id, f.reason))
        .collect();
    if !new.is_empty() {
        return Some(format!("it would create a new finding: {}", new.join("; ")));
    }
    let lost: Vec<String> = before
        .owned
        .iter()
        .filter(|o| !after.owned.iter().any(|a| a.group_id == o.group_id && a.rule.key() == o.rule.key()))
        .map(|o| format!("{} on {} ({})", o.rule, o.group_id, o.owned_by))
        .collect();
    if !lost.is_empty() {
        return Some(format!("it would remove a controller's rule: {}", lost.join("; ")));
    }
    None
}

/// Fills in each finding's `remediation` from `plan`: the command of its step, or, for a refused
/// step, the command commented out and the reason in `manual`.
pub fn annotate(findings: &mut [Finding], snapshot: &ClusterSnapshot, plan: &Plan, options: &Options) {
    for f in findings.iter_mut() {
        f.remediation = None;
    }
    let offered = plan.steps.iter().map(|s| (s, None));
    let refused = plan.refused.iter().map(|r| (&r.step, Some(r.reason.as_str())));
    for (step, refusal) in offered.chain(refused) {
        let remediation = remediation_of(step, snapshot, options, refusal);
        for f in findings.iter_mut().filter(|f| step.finding_ids.contains(&f.id)) {
            f.remediation = Some(remediation.clone());
        }
    }
}

fn remediation_of(step: &Step, snapshot: &ClusterSnapshot, options: &Options, refusal: Option<&str>) -> Remediation {
    let command = aws_cli(step, snapshot, options);
    let code = snapshot.groups.get(&step.group_id).and_then(|g| code_owner(snapshot, g));
    match refusal {
        None => Remediation { action: step.action, aws_cli: command, manual: code },
        Some(reason) => {
            let commented: Vec<String> = command.lines().map(|l| format!("# {}", l.trim_start_matches("# "))).collect();
            let mut manual = format!("sgdrift fix will not do this alone: {reason}.");
            if let Some(code) = code {
                manual.push(' ');
                manual.push_str(&code);
            }
            Remediation {
                action: step.action,
                aws_cli: format!("# not safe as it stands (see manual)\n{}", commented.join("\n")),
                manual: Some(manual),
            }
        }
    }
}

/// The AWS CLI command that carries out `step`, exactly as `sgdrift fix --apply` does: one
/// atomic rule, so a revoke takes only that peer of a merged permission. For a target read
/// through a role, a comment line first says which account it must run in.
pub fn aws_cli(step: &Step, snapshot: &ClusterSnapshot, options: &Options) -> String {
    let verb = match (step.action, step.rule.direction) {
        (RemediationAction::Revoke, Direction::Ingress) => "revoke-security-group-ingress",
        (RemediationAction::Revoke, Direction::Egress) => "revoke-security-group-egress",
        (RemediationAction::Authorize, Direction::Ingress) => "authorize-security-group-ingress",
        (RemediationAction::Authorize, Direction::Egress) => "authorize-security-group-egress",
    };
    let owner = snapshot.groups.get(&step.group_id).and_then(|g| g.owner_id.as_deref());
    let permissions = serde_json::Value::Array(vec![ip_permission(&step.rule, owner)]);
    let mut out = String::new();
    if let Some(role) = &options.role_arn {
        let _ = writeln!(
            out,
            "# run in account {} with deploy/iam/sgdrift-fix.json allowed (sgdrift reads this target through {role})",
            snapshot.id.account_id
        );
    }
    // EC2's descriptions hold no quote, so single quotes keep the JSON intact in any POSIX shell.
    let _ = write!(
        out,
        "aws ec2 {verb} --region {} --group-id {} --ip-permissions '{permissions}'",
        snapshot.id.region, step.group_id
    );
    out
}

/// One EC2 `IpPermission` naming exactly one peer, in the JSON shape of the AWS CLI and API.
pub fn ip_permission(rule: &Rule, group_owner: Option<&str>) -> serde_json::Value {
    use serde_json::{json, Map, Value};
    let (protocol, ports) = ec2_protocol(&rule.traffic);
    let mut perm = Map::new();
    perm.insert("IpProtocol".into(), Value::String(protocol));
    if let Some((from, to)) = ports {
        perm.insert("FromPort".into(), json!(from));
        perm.insert("ToPort".into(), json!(to));
    }
    let mut peer = Map::new();
    let list = match &rule.peer {
        Peer::Ipv4(net) => {
            peer.insert("CidrIp".into(), json!(net.to_string()));
            "IpRanges"
        }
        Peer::Ipv6(net) => {
            peer.insert("CidrIpv6".into(), json!(net.to_string()));
            "Ipv6Ranges"
        }
        Peer::PrefixList(id) => {
            peer.insert("PrefixListId".into(), json!(id));
            "PrefixListIds"
        }
        Peer::Group { id, owner } => {
            peer.insert("GroupId".into(), json!(id));
            // Only a cross-account reference names the other account.
            if let Some(o) = owner.as_deref().filter(|o| Some(*o) != group_owner) {
                peer.insert("UserId".into(), json!(o));
            }
            "UserIdGroupPairs"
        }
    };
    // A description outside EC2's character set (a quote) could not be pasted inside single
    // quotes: it is left out, which EC2's matching allows.
    if let Some(d) = rule.description.as_ref().filter(|d| ec2_description(d) == **d) {
        peer.insert("Description".into(), json!(d));
    }
    perm.insert(list.into(), Value::Array(vec![Value::Object(peer)]));
    Value::Object(perm)
}

/// EC2's `IpProtocol` and, where the protocol has them, `FromPort`/`ToPort` (ICMP: type/code,
/// -1 for any).
pub fn ec2_protocol(traffic: &Traffic) -> (String, Option<(i32, i32)>) {
    match traffic {
        Traffic::All => ("-1".to_string(), None),
        Traffic::Tcp(_) | Traffic::Udp(_) | Traffic::Icmp(_) | Traffic::Icmpv6(_) => {
            (traffic.protocol_name(), Some((traffic.from_port(), traffic.to_port())))
        }
        Traffic::Other(n) => (n.to_string(), None),
    }
}

/// When a group is managed in code, where the fix belongs: a console fix to it lasts only until
/// the next apply.
pub fn code_owner(snapshot: &ClusterSnapshot, group: &SecurityGroup) -> Option<String> {
    if let Some(stack) = group.tag("aws:cloudformation:stack-name") {
        let resource = group.tag("aws:cloudformation:logical-id").unwrap_or("its security group");
        let tool = if snapshot.style == Style::Eksctl || stack.starts_with("eksctl-") {
            "change the eksctl ClusterConfig and run `eksctl update`/`eksctl upgrade` (or edit the template) so that "
        } else {
            "change the template so that "
        };
        return Some(format!(
            "{} belongs to CloudFormation stack {stack} (resource {resource}): {tool}the stack says the same; \
             a stack update reverts a console fix.",
            group.id
        ));
    }
    let module = group.tag("terraform-aws-modules").is_some();
    let named = |suffix: &str| {
        let base = format!("{}-{suffix}", snapshot.id.name);
        group.name == base || group.name.starts_with(&format!("{base}-")) || group.tag("Name") == Some(base.as_str())
    };
    let resource = if group.has_role(Role::ControlPlane) && (module || named("cluster")) {
        Some("module.eks.aws_security_group.cluster (`cluster_security_group_additional_rules`)")
    } else if group.has_role(Role::Node) && (module || named("node")) {
        Some("module.eks.aws_security_group.node (`node_security_group_additional_rules`)")
    } else {
        None
    };
    match (resource, module || snapshot.style == Style::Terraform) {
        (Some(r), true) => Some(format!(
            "{} is managed by terraform ({r}): make the change in code and apply it; a terraform apply reverts a console fix.",
            group.id
        )),
        (None, true) if module => Some(format!(
            "{} is managed by terraform (tag terraform-aws-modules): make the change in code and apply it; a terraform apply reverts a console fix.",
            group.id
        )),
        _ => None,
    }
}

/// The plan as text for `sgdrift fix`: steps with their commands, then refusals and findings
/// no rule can fix.
pub fn render(plan: &Plan, snapshot: &ClusterSnapshot, options: &Options) -> String {
    let mut out = String::new();
    if plan.is_empty() {
        let _ = writeln!(out, "{}: nothing to fix", snapshot.id);
        return out;
    }
    let _ = writeln!(out, "{}: {} step(s)", snapshot.id, plan.steps.len());
    for (i, step) in plan.steps.iter().enumerate() {
        let _ = writeln!(out, "  {}. {}  (finding {})", i + 1, step.summary(), step.finding_ids.join(", "));
        for line in aws_cli(step, snapshot, options).lines() {
            let _ = writeln!(out, "     {line}");
        }
        if let Some(code) = snapshot.groups.get(&step.group_id).and_then(|g| code_owner(snapshot, g)) {
            let _ = writeln!(out, "     note: {code}");
        }
    }
    for r in &plan.refused {
        let _ =
            writeln!(out, "  refused: {}  (finding {}): {}", r.step.summary(), r.step.finding_ids.join(", "), r.reason);
    }
    for u in &plan.unfixable {
        let _ = writeln!(out, "  not fixable by a rule: finding {}: {}", u.finding_id, u.reason);
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::baseline::{self, BaselineRef, Controller, Exception, Profile};
    use crate::config::Target;
    use crate::engine::evaluate_snapshot;
    use crate::flows::fixtures::{rule, terraform_v19, with, without};
    use crate::model::EndpointMode;

    fn today() -> NaiveDate {
        "2026-11-28".parse().expect("date")
    }

    fn target(baseline: BaselineRef, trust: Vec<Controller>) -> Target {
        Target {
            regions: vec!["eu-west-1".into()],
            role_arn: None,
            clusters: vec!["*".into()],
            baseline,
            webhook_ports: vec![9443],
            trust_controllers: trust,
            organization: None,
        }
    }

    fn minimal() -> Target {
        target(BaselineRef::Profile(Profile::Minimal), Controller::ALL.to_vec())
    }

    /// The plan of `snap` under `t` and `exceptions`, as `sgdrift fix` makes it.
    fn plan_of(t: &Target, exceptions: &[Exception], snap: &ClusterSnapshot) -> Plan {
        let evaluate = |s: &ClusterSnapshot| evaluate_snapshot(t, exceptions, s, today());
        plan(snap, &evaluate(snap), &Options::default(), evaluate)
    }

    fn summaries(plan: &Plan) -> Vec<String> {
        plan.steps.iter().map(Step::summary).collect()
    }

    fn apply(snap: &ClusterSnapshot, plan: &Plan) -> ClusterSnapshot {
        plan.steps.iter().fold(snap.clone(), |s, step| patch(&s, step))
    }

    /// Every rule of every group but the ones the plan names, by key.
    fn untouched(snap: &ClusterSnapshot, plan: &Plan) -> Vec<(String, String)> {
        let named = |g: &str, r: &Rule| plan.steps.iter().any(|s| s.group_id == g && s.rule.key() == r.key());
        snap.groups
            .values()
            .flat_map(|g| g.rules.iter().filter(|r| !named(&g.id, r)).map(|r| (g.id.clone(), r.to_string())))
            .collect()
    }

    #[test]
    fn each_drift_class_is_planned_away_and_nothing_else_is_touched() {
        let healthy = terraform_v19(EndpointMode::Public);
        assert!(
            !evaluate_snapshot(&minimal(), &[], &healthy, today()).has_drift_at(Severity::Low),
            "fixture is healthy"
        );
        type Drift = fn(ClusterSnapshot) -> ClusterSnapshot;
        let cases: [(&str, Drift, &[&str]); 7] = [
            (
                "internet SSH",
                |s| with(s, "sg-node", "ingress tcp 22 from 0.0.0.0/0"),
                &["revoke ingress tcp 22 from 0.0.0.0/0 on sg-node"],
            ),
            (
                "wide NodePorts",
                |s| with(s, "sg-node", "ingress tcp 30000-32767 from 10.0.0.0/8"),
                &["revoke ingress tcp 30000-32767 from 10.0.0.0/8 on sg-node"],
            ),
            (
                "world-open control plane",
                |s| with(s, "sg-cp", "ingress tcp 443 from 0.0.0.0/0"),
                &["revoke ingress tcp 443 from 0.0.0.0/0 on sg-cp"],
            ),
            (
                "deleted kubelet rule",
                |s| without(s, "sg-node", "ingress tcp 10250 from sg-cp"),
                &["authorize ingress tcp 10250 from sg-cp on sg-node"],
            ),
            (
                "one peer of a merged permission",
                |s| with(s, "sg-node", "ingress tcp 443 from 0.0.0.0/0"),
                &["revoke ingress tcp 443 from 0.0.0.0/0 on sg-node"],
            ),
            ("deleted node egress", |s| without(s, "sg-node", "egress all to 0.0.0.0/0"), &[]),
            ("stripped cluster SG egress", |s| without(s, "sg-cluster", "egress all to 0.0.0.0/0"), &[]),
        ];
        for (name, drift, want) in cases {
            let snap = drift(healthy.clone());
            let plan = plan_of(&minimal(), &[], &snap);
            assert!(plan.refused.is_empty() && plan.unfixable.is_empty(), "{name}: {plan:#?}");
            if !want.is_empty() {
                assert_eq!(summaries(&plan), want, "{name}");
            }
            let fixed = apply(&snap, &plan);
            let after = evaluate_snapshot(&minimal(), &[], &fixed, today());
            assert!(!after.has_drift_at(Severity::Low), "{name}: drift left {:#?}", after.findings);
            let kept = untouched(&snap, &plan);
            assert!(kept.iter().all(|(g, r)| fixed.groups[g].rules.iter().any(|x| x.to_string() == *r)), "{name}");
            assert!(plan_of(&minimal(), &[], &fixed).is_empty(), "{name}: a second run plans nothing");
        }
    }

    #[test]
    fn a_deleted_node_egress_is_restored_with_the_rules_the_flows_need_and_a_description() {
        let snap = without(terraform_v19(EndpointMode::Public), "sg-node", "egress all to 0.0.0.0/0");
        let plan = plan_of(&minimal(), &[], &snap);
        assert!(!plan.steps.is_empty());
        for step in &plan.steps {
            assert_eq!(
                (step.action, step.group_id.as_str(), step.rule.direction),
                (RemediationAction::Authorize, "sg-node", Direction::Egress)
            );
            let d = step.rule.description.as_deref().expect("a description");
            assert!(d.starts_with("sgdrift: EKS ") && d.ends_with(" flow"), "{d}");
        }
    }

    #[test]
    fn a_revoke_that_would_remove_the_only_kubelet_rule_is_refused_with_the_reason() {
        let snap = with(
            without(terraform_v19(EndpointMode::Public), "sg-node", "ingress tcp 10250 from sg-cp"),
            "sg-node",
            "ingress tcp 10250 from 0.0.0.0/0",
        );
        let plan = plan_of(&minimal(), &[], &snap);
        assert!(plan.steps.is_empty(), "{plan:#?}");
        assert_eq!(plan.refused.len(), 1, "{plan:#?}");
        let r = &plan.refused[0];
        assert_eq!(r.step.summary(), "revoke ingress tcp 10250 from 0.0.0.0/0 on sg-node");
        assert!(r.reason.starts_with("it would close the kubelet flow of node group ng-1"), "{}", r.reason);
        assert!(r.reason.contains("authorize ingress tcp 10250 from sg-cp on sg-node first"), "{}", r.reason);
    }

    #[test]
    fn an_authorization_the_baseline_does_not_allow_is_refused_as_a_new_finding() {
        // A recorded baseline that lists no kubelet rule: opening the flow would be drift too.
        let file = baseline::parse_str(
            "profile = \"eks-minimal\"\n[[rule]]\nrole = \"node\"\ndirection = \"ingress\"\nprotocol = \"tcp\"\nports = \"22\"\npeer = \"10.0.0.0/16\"\nstatus = \"allowed\"\n",
            "recorded.toml",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let strict = target(BaselineRef::File(file), Controller::ALL.to_vec());
        let snap = without(terraform_v19(EndpointMode::Public), "sg-node", "ingress tcp 10250 from sg-cp");
        let eval = evaluate_snapshot(&strict, &[], &snap, today());
        let flow = eval.findings.iter().find(|f| f.flow == Some(crate::model::FlowName::Kubelet));
        let plan = plan_of(&strict, &[], &snap);
        match flow {
            // The profile of the file may already allow it; then the plan restores it.
            Some(_) if plan.refused.is_empty() => {
                assert_eq!(summaries(&plan), ["authorize ingress tcp 10250 from sg-cp on sg-node"])
            }
            Some(_) => assert!(
                plan.refused[0]
                    .reason
                    .starts_with("it would create a new finding: unexpected ingress tcp 10250 from sg-cp on sg-node"),
                "{plan:#?}"
            ),
            None => panic!("no kubelet flow finding: {:#?}", eval.findings),
        }
    }

    #[test]
    fn excepted_and_owned_rules_are_never_in_a_plan() {
        let exception = Exception::from_config(&crate::config::ExceptionConfig {
            account: None,
            region: None,
            tags: Default::default(),
            cluster: None,
            role: None,
            group_id: Some("sg-node".into()),
            rule: "ingress tcp 22 from 0.0.0.0/0".into(),
            reason: "bastion during the migration".into(),
            expires: "2027-03-31".into(),
        })
        .expect("exception");
        let mut snap = with(terraform_v19(EndpointMode::Public), "sg-node", "ingress tcp 22 from 0.0.0.0/0");
        snap = with(snap, "sg-node", "ingress tcp 3389 from 0.0.0.0/0");
        let lbc = Rule {
            description: Some("elbv2.k8s.aws/targetGroupBinding=shared".into()),
            ..rule("ingress tcp 30080 from 10.0.1.0/24")
        };
        snap.groups.get_mut("sg-node").expect("node").rules.push(lbc.clone());
        let plan = plan_of(&minimal(), &[exception], &snap);
        assert_eq!(summaries(&plan), ["revoke ingress tcp 3389 from 0.0.0.0/0 on sg-node"]);
        let fixed = apply(&snap, &plan);
        let node = &fixed.groups["sg-node"].rules;
        assert!(
            node.iter().any(|r| r.key() == lbc.key())
                && node.iter().any(|r| r.to_string() == "ingress tcp 22 from 0.0.0.0/0")
        );
        // The same rule from an untrusted controller is drift like any other.
        let untrusted = target(BaselineRef::Profile(Profile::Minimal), Vec::new());
        assert!(summaries(&plan_of(&untrusted, &[], &snap))
            .contains(&"revoke ingress tcp 30080 from 10.0.1.0/24 on sg-node".to_string()));
    }

    #[test]
    fn each_rule_form_becomes_one_ec2_permission_naming_one_peer() {
        let cases = [
            (
                "ingress tcp 22 from 0.0.0.0/0",
                r#"{"IpProtocol":"tcp","FromPort":22,"ToPort":22,"IpRanges":[{"CidrIp":"0.0.0.0/0"}]}"#,
            ),
            (
                "ingress tcp all from 10.0.0.0/16",
                r#"{"IpProtocol":"tcp","FromPort":0,"ToPort":65535,"IpRanges":[{"CidrIp":"10.0.0.0/16"}]}"#,
            ),
            ("egress all to 0.0.0.0/0", r#"{"IpProtocol":"-1","IpRanges":[{"CidrIp":"0.0.0.0/0"}]}"#),
            (
                "ingress udp 53 from ::/0",
                r#"{"IpProtocol":"udp","FromPort":53,"ToPort":53,"Ipv6Ranges":[{"CidrIpv6":"::/0"}]}"#,
            ),
            (
                "ingress icmp 8/0 from 10.0.0.0/8",
                r#"{"IpProtocol":"icmp","FromPort":8,"ToPort":0,"IpRanges":[{"CidrIp":"10.0.0.0/8"}]}"#,
            ),
            (
                "ingress icmp all from 10.0.0.0/8",
                r#"{"IpProtocol":"icmp","FromPort":-1,"ToPort":-1,"IpRanges":[{"CidrIp":"10.0.0.0/8"}]}"#,
            ),
            ("ingress 47 from 10.0.0.0/8", r#"{"IpProtocol":"47","IpRanges":[{"CidrIp":"10.0.0.0/8"}]}"#),
            (
                "egress tcp 443 to pl-6ea54007",
                r#"{"IpProtocol":"tcp","FromPort":443,"ToPort":443,"PrefixListIds":[{"PrefixListId":"pl-6ea54007"}]}"#,
            ),
            (
                "ingress tcp 10250 from sg-0cp",
                r#"{"IpProtocol":"tcp","FromPort":10250,"ToPort":10250,"UserIdGroupPairs":[{"GroupId":"sg-0cp"}]}"#,
            ),
            (
                "ingress tcp 10250 from 444455556666/sg-0cp",
                r#"{"IpProtocol":"tcp","FromPort":10250,"ToPort":10250,"UserIdGroupPairs":[{"GroupId":"sg-0cp","UserId":"444455556666"}]}"#,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(ip_permission(&rule(text), Some("111122223333")).to_string(), want, "{text}");
        }
        let described =
            Rule { description: Some("sgdrift: EKS kubelet flow".into()), ..rule("ingress tcp 10250 from sg-0cp") };
        assert!(ip_permission(&described, None)
            .to_string()
            .contains(r#""GroupId":"sg-0cp","Description":"sgdrift: EKS kubelet flow""#));
    }

    #[test]
    fn descriptions_keep_to_the_characters_ec2_accepts() {
        let cases = [
            ("kubelet API: logs, exec, metrics", "kubelet API: logs, exec, metrics"),
            ("CoreDNS — node→node 'udp'", "CoreDNS   node node  udp"),
            ("quotes \"here\" and \\back", "quotes  here  and  back"),
        ];
        for (text, want) in cases {
            assert_eq!(ec2_description(text), want, "{text}");
        }
        assert_eq!(ec2_description(&"x".repeat(300)).len(), 255);
    }

    #[test]
    fn the_printed_command_names_the_region_and_for_another_account_the_role() {
        let snap = with(terraform_v19(EndpointMode::Public), "sg-node", "ingress tcp 22 from 0.0.0.0/0");
        let plan = plan_of(&minimal(), &[], &snap);
        let want = r#"aws ec2 revoke-security-group-ingress --region eu-west-1 --group-id sg-node --ip-permissions '[{"IpProtocol":"tcp","FromPort":22,"ToPort":22,"IpRanges":[{"CidrIp":"0.0.0.0/0"}]}]'"#;
        assert_eq!(aws_cli(&plan.steps[0], &snap, &Options::default()), want);
        let cross =
            Options { role_arn: Some("arn:aws:iam::111122223333:role/sgdrift-read".into()), ..Options::default() };
        let text = aws_cli(&plan.steps[0], &snap, &cross);
        let (note, command) = text.split_once('\n').expect("two lines");
        assert!(
            note.starts_with("# run in account 111122223333 with deploy/iam/sgdrift-fix.json allowed")
                && note.contains("role/sgdrift-read"),
            "{note}"
        );
        assert_eq!(command, want);
    }

    #[test]
    fn findings_carry_their_step_and_refused_ones_a_commented_command_and_the_reason() {
        let snap = with(
            with(
                without(terraform_v19(EndpointMode::Public), "sg-node", "ingress tcp 10250 from sg-cp"),
                "sg-node",
                "ingress tcp 10250 from 0.0.0.0/0",
            ),
            "sg-cp",
            "ingress tcp 443 from 0.0.0.0/0",
        );
        let evaluate = |s: &ClusterSnapshot| evaluate_snapshot(&minimal(), &[], s, today());
        let mut eval = evaluate(&snap);
        let plan = plan(&snap, &eval, &Options::default(), evaluate);
        annotate(&mut eval.findings, &snap, &plan, &Options::default());
        let of = |group: &str| {
            eval.findings.iter().find(|f| f.group_id == group).and_then(|f| f.remediation.clone()).expect("remediation")
        };
        let cp = of("sg-cp");
        assert_eq!((cp.action, cp.manual), (RemediationAction::Revoke, None));
        assert!(cp.aws_cli.starts_with("aws ec2 revoke-security-group-ingress --region eu-west-1 --group-id sg-cp"));
        let node = of("sg-node");
        assert!(node.aws_cli.lines().all(|l| l.starts_with('#')), "{}", node.aws_cli);
        assert!(node.manual.expect("manual").contains("it would close the kubelet flow"));
    }

    #[test]
    fn groups_managed_in_code_say_where_the_fix_belongs() {
        let mut snap = terraform_v19(EndpointMode::Public);
        let mut node = snap.groups["sg-node"].clone();
        assert_eq!(code_owner(&snap, &node), None, "an untagged group of an unknown style");
        node.tags.insert("terraform-aws-modules".into(), "eks".into());
        let tf = code_owner(&snap, &node).expect("terraform");
        assert!(
            tf.contains("module.eks.aws_security_group.node") && tf.contains("a terraform apply reverts a console fix"),
            "{tf}"
        );
        node.tags.clear();
        node.tags.insert("aws:cloudformation:stack-name".into(), "eksctl-prod-cluster".into());
        node.tags.insert("aws:cloudformation:logical-id".into(), "ClusterSharedNodeSecurityGroup".into());
        snap.style = Style::Eksctl;
        let cfn = code_owner(&snap, &node).expect("eksctl");
        assert!(
            cfn.contains("stack eksctl-prod-cluster (resource ClusterSharedNodeSecurityGroup)")
                && cfn.contains("eksctl"),
            "{cfn}"
        );
    }
}
