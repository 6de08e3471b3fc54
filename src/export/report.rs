//! The report of design.md §3 (`check --format json`, `/api/v1/report`) and its text and HTML
//! renderings.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{EndpointMode, Finding, FlowName, Role, Style};
use crate::source::CallCounts;

/// The version of the report's JSON (docs/schema/report.schema.json): bumped when a field changes
/// meaning or disappears, never for an added field.
pub const SCHEMA_VERSION: u32 = 1;

/// The report of `check --format json` and `/api/v1/report`: one type, one constructor, so
/// the two print the same document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    pub generated_at: DateTime<Utc>,
    pub clusters: Vec<ClusterReport>,
    #[serde(default)]
    pub stats: Stats,
}

impl Report {
    pub fn new(generated_at: DateTime<Utc>, clusters: Vec<ClusterReport>, stats: Stats) -> Self {
        Report { schema_version: SCHEMA_VERSION, generated_at, clusters, stats }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Stats {
    pub aws_calls: CallCounts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClusterStatus {
    Ok,
    Drift,
    Error,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterReport {
    pub account_id: String,
    pub region: String,
    pub cluster: String,
    pub endpoint_mode: Option<EndpointMode>,
    pub style: Option<Style>,
    pub status: ClusterStatus,
    pub error: Option<String>,
    pub groups: Vec<GroupRef>,
    pub findings: Vec<Finding>,
    pub flows: Vec<FlowReport>,
    /// Rules a trusted controller owns (design.md §1): not drift, listed for the auditor.
    #[serde(default)]
    pub owned: Vec<OwnedReport>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The findings are from an earlier poll because the last one failed (the daemon only:
    /// `check` has no earlier poll).
    #[serde(default)]
    pub stale: bool,
    /// When the cluster was last polled successfully; `null` if never.
    #[serde(default)]
    pub last_success: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRef {
    pub id: String,
    pub name: String,
    pub role: Role,
}

/// One controller-owned rule: `{ "group_id": "sg-…", "rule": "ingress tcp 8080 from sg-…",
/// "owned_by": "aws-load-balancer-controller" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnedReport {
    pub group_id: String,
    pub rule: String,
    pub owned_by: String,
}

impl OwnedReport {
    pub fn from_owned(o: &crate::baseline::OwnedRule) -> Self {
        OwnedReport { group_id: o.group_id.clone(), rule: o.rule.to_string(), owned_by: o.owned_by.to_string() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowReport {
    pub name: FlowName,
    pub status: crate::flows::FlowStatus,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_group: Option<String>,
}

impl ClusterReport {
    /// An entry for a cluster (or a whole target) that could not be read.
    pub fn failed(account_id: &str, region: &str, cluster: &str, error: Option<String>) -> Self {
        ClusterReport {
            account_id: account_id.to_string(),
            region: region.to_string(),
            cluster: cluster.to_string(),
            endpoint_mode: None,
            style: None,
            status: ClusterStatus::Error,
            error,
            groups: Vec::new(),
            findings: Vec::new(),
            flows: Vec::new(),
            owned: Vec::new(),
            warnings: Vec::new(),
            stale: false,
            last_success: None,
        }
    }

    /// Records a successful poll at `now`: fresh, and each finding first seen when `remembered`
    /// says (the daemon's memory), else now.
    pub fn mark_polled(&mut self, now: DateTime<Utc>, remembered: impl Fn(&str) -> Option<DateTime<Utc>>) {
        self.stale = false;
        self.last_success = Some(now);
        for f in &mut self.findings {
            f.first_seen = Some(remembered(&f.id).unwrap_or(now));
        }
    }

    /// Unsuppressed findings: what counts as drift.
    pub fn drift(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.is_drift())
    }
}

/// Counts by severity, highest first: "2 critical, 1 high".
fn severity_counts<'a>(findings: impl Iterator<Item = &'a Finding>) -> String {
    let mut counts = [0usize; 4];
    for f in findings {
        counts[f.severity as usize] += 1;
    }
    crate::model::Severity::ALL
        .iter()
        .rev()
        .filter(|s| counts[**s as usize] > 0)
        .map(|s| format!("{} {}", counts[*s as usize], s))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The human report of `sgdrift check`: per cluster, per group, findings with severity and
/// reason; closed flows; a one-line verdict.
pub fn render_text(report: &Report, fail_on: crate::model::Severity) -> String {
    let mut out = String::new();
    for c in &report.clusters {
        render_cluster(&mut out, c);
    }
    render_verdict(&mut out, report, fail_on);
    out
}

/// One cluster's block: its header, errors and warnings, findings per group, owned rules, and
/// the flows that are not open.
fn render_cluster(out: &mut String, c: &ClusterReport) {
    use std::fmt::Write;
    let what = [c.style.map(|s| s.as_str().to_string()), c.endpoint_mode.map(|m| m.as_str().to_string())]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ");
    let status = match c.status {
        ClusterStatus::Ok => "OK".to_string(),
        ClusterStatus::Error => "ERROR".to_string(),
        ClusterStatus::Drift => format!("DRIFT: {}", severity_counts(c.drift())),
    };
    let sep = if what.is_empty() { "" } else { ", " };
    let _ = writeln!(out, "{}  ({} {}{sep}{what})  {status}", c.cluster, c.account_id, c.region);
    if let Some(e) = &c.error {
        let _ = writeln!(out, "  error: {e}");
    }
    for w in &c.warnings {
        let _ = writeln!(out, "  warning: {w}");
    }
    for g in &c.groups {
        let findings: Vec<&Finding> = c.findings.iter().filter(|f| f.group_id == g.id).collect();
        if findings.is_empty() {
            continue;
        }
        let _ = writeln!(out, "  {}  {}  ({})", g.id, g.name, g.role);
        for f in findings {
            render_finding(out, f);
        }
    }
    for o in &c.owned {
        let _ = writeln!(out, "  owned by {}: {} on {}", o.owned_by, o.rule, o.group_id);
    }
    for flow in c.flows.iter().filter(|f| f.status != crate::flows::FlowStatus::Open) {
        let ng = flow.node_group.as_deref().map(|n| format!(" [{n}]")).unwrap_or_default();
        let status = flow.status.as_str().to_ascii_uppercase();
        let _ = writeln!(out, "  flow {} {status}{}: {}", flow.name, ng, flow.detail);
    }
    out.push('\n');
}

/// One finding's line, then its fix for drift.
fn render_finding(out: &mut String, f: &Finding) {
    use std::fmt::Write;
    let sev = f.severity.as_str().to_ascii_uppercase();
    let _ = write!(out, "    {sev:<8}  {:<10}  {:<44}  {}", f.kind.as_str(), f.rule_text().to_string(), f.reason);
    if let Some(d) = &f.description {
        let _ = write!(out, "  [\"{d}\"]");
    }
    if let Some(s) = &f.suppressed_by {
        let _ = write!(out, "  (suppressed: {s})");
    }
    if let Some(by) = &f.changed_by {
        let _ = write!(out, "  changed by {by}");
    }
    out.push('\n');
    if let Some(r) = f.remediation.as_ref().filter(|_| f.is_drift()) {
        for line in r.aws_cli.lines() {
            let _ = writeln!(out, "              fix: {line}");
        }
        if let Some(m) = &r.manual {
            let _ = writeln!(out, "              note: {m}");
        }
    }
}

/// The closing line: how many clusters drifted, by severity, suppressed, unchecked.
fn render_verdict(out: &mut String, report: &Report, fail_on: crate::model::Severity) {
    use std::fmt::Write;
    let total = report.clusters.len();
    let drifted = report.clusters.iter().filter(|c| c.status == ClusterStatus::Drift).count();
    let errors = report.clusters.iter().filter(|c| c.status == ClusterStatus::Error).count();
    let all_drift: Vec<&Finding> = report.clusters.iter().flat_map(|c| c.drift()).collect();
    let suppressed = report.clusters.iter().flat_map(|c| &c.findings).filter(|f| !f.is_drift()).count();
    let at_or_above = all_drift.iter().filter(|f| f.severity >= fail_on).count();
    let _ = write!(out, "verdict: {drifted} of {total} cluster(s) drifted");
    if !all_drift.is_empty() {
        let _ = write!(out, " ({} finding(s): {})", all_drift.len(), severity_counts(all_drift.iter().copied()));
    }
    if suppressed > 0 {
        let _ = write!(out, "; {suppressed} suppressed by exceptions");
    }
    if errors > 0 {
        let _ = write!(out, "; {errors} could not be checked");
    }
    let _ = writeln!(out, "; {at_or_above} at or above {fail_on}.");
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::alert::policy::{Event, EventStatus, Notification};
    use crate::model::{FlowName, Severity};
    use crate::testing::test_cluster;

    /// Every form a rule can take, as every output must write it.
    const FORMS: [&str; 12] = [
        "ingress tcp 22 from 0.0.0.0/0",
        "ingress tcp all from 10.0.0.0/16",
        "ingress tcp 30000-32767 from 10.0.0.0/8",
        "egress udp 53 to sg-0dns",
        "egress all to 0.0.0.0/0",
        "ingress icmp 8/0 from 0.0.0.0/0",
        "ingress icmp 3 from 10.0.0.0/8",
        "ingress icmpv6 all from ::/0",
        "ingress 47 from 10.0.0.0/8",
        "egress tcp 443 to pl-6ea54007",
        "ingress tcp 10250 from 444455556666/sg-0cp",
        "egress tcp 443 to com.amazonaws.eu-west-1.sts",
    ];

    fn finding(text: &str) -> Finding {
        let f = Finding::test().high().on("sg-0abc").rule(text);
        if text.contains("com.amazonaws") { f.flow(FlowName::AwsApis) } else { f }.build()
    }

    fn report(f: &Finding) -> Report {
        let mut c = ClusterReport::failed("111122223333", "eu-west-1", "prod-eu1", None);
        c.status = ClusterStatus::Drift;
        c.groups = vec![GroupRef { id: f.group_id.clone(), name: "nodes".into(), role: f.role }];
        c.findings = vec![f.clone()];
        Report::new("2026-11-28T10:00:00Z".parse().expect("time"), vec![c], Stats::default())
    }

    fn notification(f: &Finding) -> Notification {
        let at = "2026-11-28T10:00:00Z".parse().expect("time");
        let event = Event {
            episode_id: f.id.clone(),
            status: EventStatus::Firing,
            reminder: false,
            opened_at: at,
            resolved_at: None,
            finding: f.clone(),
        };
        Notification {
            id: "n1".into(),
            created_at: at,
            cluster: test_cluster("prod-eu1"),
            events: vec![event],
            open: BTreeMap::from([(f.severity, 1)]),
        }
    }

    /// What the log sink writes for `n`, captured from a subscriber of this thread only.
    fn logged(n: &Notification) -> String {
        #[derive(Clone, Default)]
        struct Captured(Arc<Mutex<Vec<u8>>>);
        impl Write for Captured {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().expect("lock").extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
        tracing::subscriber::with_default(subscriber, || crate::alert::log::emit(n));
        let bytes = out.0.lock().expect("lock").clone();
        String::from_utf8(bytes).expect("utf-8")
    }

    #[test]
    fn every_output_writes_every_rule_form_the_same_way() {
        for text in FORMS {
            let f = finding(text);
            assert_eq!(f.rule_text().to_string(), text, "the finding's own rendering");
            let report = report(&f);
            let plain = render_text(&report, Severity::Low);
            assert!(plain.contains(text), "text report lacks `{text}`:\n{plain}");
            let page = crate::export::html::render(&report, &crate::export::html::Filter::default());
            assert!(page.contains(&format!("<code>{text}</code>")), "page lacks `{text}`");
            let n = notification(&f);
            let slack = serde_json::to_string(&crate::alert::slack::payload(&n, None)).expect("json");
            assert!(slack.contains(&format!("`{text}`")), "Slack lacks `{text}`: {slack}");
            let webhook = crate::alert::webhook::payload(&n, None);
            assert_eq!(webhook["events"][0]["rule"], text, "webhook");
            let log = logged(&n);
            assert!(log.contains(&format!("rule={text} ")), "log lacks `{text}`: {log}");
        }
    }

    #[test]
    fn drifting_findings_show_their_fix_and_where_it_belongs_in_code() {
        use crate::model::{Remediation, RemediationAction};
        let mut f = finding("ingress tcp 22 from 0.0.0.0/0");
        f.remediation = Some(Remediation {
            action: RemediationAction::Revoke,
            aws_cli: "aws ec2 revoke-security-group-ingress --region eu-west-1 --group-id sg-0abc".into(),
            manual: Some("sg-0abc is managed by terraform".into()),
        });
        let text = render_text(&report(&f), Severity::Low);
        assert!(
            text.contains("fix: aws ec2 revoke-security-group-ingress --region eu-west-1 --group-id sg-0abc\n"),
            "{text}"
        );
        assert!(text.contains("note: sg-0abc is managed by terraform\n"), "{text}");
        let page = crate::export::html::render(&report(&f), &crate::export::html::Filter::default());
        assert!(
            page.contains("<summary>Fix: revoke</summary><code class=\"cmd\">aws ec2 revoke-security-group-ingress"),
            "{page}"
        );
        f.suppressed_by = Some("bastion (until 2027-03-31)".into());
        assert!(!render_text(&report(&f), Severity::Low).contains("fix: "), "a suppressed finding is not drift to fix");
    }
}
