//! The status page (`GET /`): the report rendered as one self-contained HTML page for a person:
//! a summary of every cluster (failing and drifted first), then per cluster its findings,
//! required flows and groups, each cluster under a stable `#cluster-…` anchor that alerts link
//! to. A query string filters it (`?status=drift&account=…&severity=high`) through a plain form,
//! so it works without scripts and scales to hundreds of clusters. Every value is escaped; no
//! scripts, no external assets; every badge meets WCAG AA contrast and nothing is wider than a
//! 390 px phone (wide tables scroll inside their own box).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::export::report::{ClusterReport, ClusterStatus, FlowReport, Report};
use crate::flows::FlowStatus;
use crate::model::{Finding, Severity};

/// The page's CSS. Badge colours are checked for a contrast of at least 4.5 against their text
/// by `every_badge_and_text_colour_meets_wcag_aa_contrast` below; keep them in `.name{…}` form.
const STYLE: &str = "
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:1200px;padding:1rem 1.5rem;color:#1d2330;background:#fbfbfc}
h1{font-size:1.5rem;margin:.2rem 0}h2{font-size:1.2rem;margin:0 0 .3rem;overflow-wrap:anywhere}h3{font-size:1rem;margin:1rem 0 .3rem}
header p,.meta{color:#5b6372;margin:.2rem 0}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;width:100%;margin:.3rem 0 .6rem;background:#fff}
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #e3e6eb;vertical-align:top;overflow-wrap:break-word}
th{font-weight:600;color:#5b6372;font-size:.85rem;background:#f3f4f7;white-space:nowrap}
code{font:12.5px ui-monospace,SFMono-Regular,Menlo,monospace}
section{border:1px solid #e3e6eb;border-radius:6px;padding:.8rem 1rem;margin:1rem 0;background:#fff}
summary{cursor:pointer;font-weight:600;margin:1rem 0 .3rem}
form{display:flex;flex-wrap:wrap;gap:.4rem .8rem;align-items:end;margin:.6rem 0}
label{display:flex;flex-direction:column;font-size:.85rem;color:#5b6372}
select,button{font:inherit;padding:.15rem .3rem}
.b{display:inline-block;border-radius:3px;padding:0 .45rem;font-size:.8rem;font-weight:600;color:#fff;white-space:nowrap}
.ok{background:#2e7d32}.open{background:#2e7d32}
.drift{background:#bf360c}.high{background:#bf360c}
.error{background:#b71c1c}.critical{background:#b71c1c}.closed{background:#b71c1c}
.medium{background:#f0b400;color:#1d2330}
.low{background:#546e7a}.stale{background:#7b5ea7}.suppressed{background:#6b7280}.unknown{background:#5d4037}
tr.sup td{color:#6b7280}.err{color:#b71c1c}.none{color:#5b6372;font-style:italic}
a{color:#1f5fbf;text-decoration:none}a:hover{text-decoration:underline}
footer{color:#5b6372;font-size:.85rem;margin-top:2rem}
.cmd{display:block;white-space:pre-wrap;overflow-wrap:anywhere;border-left:3px solid #e3e6eb;padding:.1rem .4rem;margin:.2rem 0}
td details summary{margin:.2rem 0;font-weight:400}
@media (max-width:600px){body{padding:.5rem}section{padding:.6rem}th,td{padding:.25rem .35rem}}
";

/// The anchor of a cluster's section, `cluster-<account>-<region>-<name>`: stable across polls,
/// unique across accounts and regions (cluster names repeat between them).
pub fn cluster_anchor(account_id: &str, region: &str, cluster: &str) -> String {
    let raw = format!("cluster-{account_id}-{region}-{cluster}");
    raw.chars().map(|ch| if ch.is_ascii_alphanumeric() || ch == '-' || ch == '_' { ch } else { '_' }).collect()
}

/// The status page's link to one cluster's section, for alerts (`server.external_url` + anchor).
pub fn cluster_link(external_url: &str, account_id: &str, region: &str, cluster: &str) -> String {
    format!("{}/#{}", external_url.trim_end_matches('/'), cluster_anchor(account_id, region, cluster))
}

/// What the page shows, from its query string: `status` and `account` (each repeatable) keep
/// the clusters that match any of their values; `severity` keeps the clusters with drift at or
/// above it and, in them, only those findings. Unknown values are reported on the page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    statuses: Vec<ClusterStatus>,
    accounts: Vec<String>,
    min_severity: Option<Severity>,
    problems: Vec<String>,
}

impl Filter {
    /// Reads the decoded query pairs; keys other than status, account and severity are ignored.
    pub fn from_pairs(pairs: &[(String, String)]) -> Filter {
        let mut filter = Filter::default();
        for (key, value) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
            match key.as_str() {
                "status" => match status_named(value) {
                    Some(status) => filter.statuses.push(status),
                    None => filter.problems.push(format!("unknown status `{value}`: expected ok, drift or error")),
                },
                "account" => filter.accounts.push(value.clone()),
                "severity" => match Severity::parse(value) {
                    Ok(severity) => filter.min_severity = Some(severity),
                    Err(e) => filter.problems.push(e.0),
                },
                _ => {}
            }
        }
        filter
    }

    fn is_empty(&self) -> bool {
        self.statuses.is_empty() && self.accounts.is_empty() && self.min_severity.is_none()
    }

    fn keeps_cluster(&self, c: &ClusterReport) -> bool {
        (self.statuses.is_empty() || self.statuses.contains(&c.status))
            && (self.accounts.is_empty() || self.accounts.contains(&c.account_id))
            && self.min_severity.is_none_or(|_| c.findings.iter().any(|f| f.is_drift() && self.keeps_finding(f)))
    }

    fn keeps_finding(&self, f: &Finding) -> bool {
        self.min_severity.is_none_or(|min| f.severity >= min)
    }
}

fn status_named(s: &str) -> Option<ClusterStatus> {
    [ClusterStatus::Ok, ClusterStatus::Drift, ClusterStatus::Error].into_iter().find(|st| status_str(*st) == s)
}

fn status_str(status: ClusterStatus) -> &'static str {
    match status {
        ClusterStatus::Ok => "ok",
        ClusterStatus::Drift => "drift",
        ClusterStatus::Error => "error",
    }
}

/// The clusters in page order: failing first, then drifted, then clean; worst drift first
/// within each; then by account, region and name.
fn page_order(report: &Report) -> Vec<&ClusterReport> {
    let rank = |c: &ClusterReport| match c.status {
        ClusterStatus::Error => 0,
        ClusterStatus::Drift => 1,
        ClusterStatus::Ok => 2,
    };
    let worst = |c: &ClusterReport| c.findings.iter().filter(|f| f.is_drift()).map(|f| f.severity).max();
    let mut clusters: Vec<&ClusterReport> = report.clusters.iter().collect();
    clusters.sort_by(|a, b| {
        (rank(a), std::cmp::Reverse(worst(a)), &a.account_id, &a.region, &a.cluster).cmp(&(
            rank(b),
            std::cmp::Reverse(worst(b)),
            &b.account_id,
            &b.region,
            &b.cluster,
        ))
    });
    clusters
}

/// The page for `report`, narrowed by `filter`; `first_seen` maps finding ids to when each was
/// first seen.
pub fn render(report: &Report, filter: &Filter) -> String {
    let drifted = report.clusters.iter().filter(|c| c.status == ClusterStatus::Drift).count();
    let failing = report.clusters.iter().filter(|c| c.status == ClusterStatus::Error).count();
    let mut out = String::with_capacity(16 * 1024);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>sgdrift: {} clusters, {} drifted</title><style>{STYLE}</style></head><body>\n",
        report.clusters.len(),
        drifted
    );
    let _ = writeln!(
        out,
        "<header><h1>sgdrift</h1><p>Security-group drift of {} EKS cluster{}: {} drifted, {} failing to poll. Generated {}.</p></header>",
        report.clusters.len(),
        if report.clusters.len() == 1 { "" } else { "s" },
        drifted,
        failing,
        time(report.generated_at)
    );
    let shown: Vec<&ClusterReport> = page_order(report).into_iter().filter(|c| filter.keeps_cluster(c)).collect();
    filter_form(&mut out, report, filter, shown.len());
    summary(&mut out, report, &shown);
    for cluster in &shown {
        section(&mut out, cluster, filter);
    }
    out.push_str(
        "<footer>Machine-readable: <a href=\"api/v1/report\">api/v1/report</a> (JSON) and \
         <a href=\"metrics\">metrics</a> (Prometheus).</footer>\n</body></html>\n",
    );
    out
}

/// The filter form: a GET to the page itself, so it needs no script.
fn filter_form(out: &mut String, report: &Report, filter: &Filter, shown: usize) {
    if report.clusters.is_empty() {
        return;
    }
    let accounts: BTreeSet<&str> = report.clusters.iter().map(|c| c.account_id.as_str()).collect();
    let option = |value: &str, label: &str, selected: bool| {
        format!("<option value=\"{}\"{}>{}</option>", esc(value), if selected { " selected" } else { "" }, esc(label))
    };
    let mut status = option("", "any", filter.statuses.is_empty());
    for st in [ClusterStatus::Error, ClusterStatus::Drift, ClusterStatus::Ok] {
        status.push_str(&option(status_str(st), status_str(st), filter.statuses == [st]));
    }
    let mut account = option("", "any", filter.accounts.is_empty());
    for a in &accounts {
        account.push_str(&option(a, a, filter.accounts.len() == 1 && filter.accounts[0] == *a));
    }
    let mut severity = option("", "any", filter.min_severity.is_none());
    for sev in Severity::ALL.iter().rev() {
        severity.push_str(&option(sev.as_str(), &format!("{sev} and above"), filter.min_severity == Some(*sev)));
    }
    let _ = writeln!(
        out,
        "<form method=\"get\" action=\"\" aria-label=\"Filter clusters\">\
         <label>Status<select name=\"status\">{status}</select></label>\
         <label>Account<select name=\"account\">{account}</select></label>\
         <label>Severity<select name=\"severity\">{severity}</select></label>\
         <button type=\"submit\">Filter</button></form>"
    );
    for problem in &filter.problems {
        let _ = writeln!(out, "<p class=\"err\">Filter ignored: {}</p>", esc(problem));
    }
    if !filter.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"meta\">Showing {shown} of {} clusters. <a href=\"?\">Show all</a></p>",
            report.clusters.len()
        );
    }
}
fn summary(out: &mut String, report: &Report, shown: &[&ClusterReport]) {
    if report.clusters.is_empty() {
        out.push_str("<p class=\"none\">No cluster polled yet.</p>\n");
        return;
    }
    if shown.is_empty() {
        out.push_str("<p class=\"none\">No cluster matches the filter.</p>\n");
        return;
    }
    out.push_str(
        "<div class=\"scroll\"><table><thead><tr><th>Cluster</th><th>Account</th><th>Region</th><th>Endpoint</th><th>Style</th>\
         <th>Status</th><th>Critical</th><th>High</th><th>Medium</th><th>Low</th><th>Last success</th></tr></thead><tbody>\n",
    );
    for c in shown {
        let count = |s: Severity| c.findings.iter().filter(|f| f.is_drift() && f.severity == s).count();
        let _ = writeln!(
            out,
            "<tr><td><a href=\"#{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            anchor(c),
            esc(&c.cluster),
            esc(&c.account_id),
            esc(&c.region),
            c.endpoint_mode.map_or("", |m| m.as_str()),
            c.style.map_or("", |s| s.as_str()),
            status_badges(c),
            count(Severity::Critical),
            count(Severity::High),
            count(Severity::Medium),
            count(Severity::Low),
            c.last_success.map_or_else(|| "never".to_string(), time),
        );
    }
    out.push_str("</tbody></table></div>\n");
}

fn section(out: &mut String, c: &ClusterReport, filter: &Filter) {
    let _ = writeln!(
        out,
        "<section id=\"{}\"><h2><a href=\"#{0}\">{}</a> {}</h2>",
        anchor(c),
        esc(&c.cluster),
        status_badges(c)
    );
    let _ = writeln!(
        out,
        "<p class=\"meta\">account {} · {} · endpoint {} · style {} · last success {}</p>",
        esc(&c.account_id),
        esc(&c.region),
        c.endpoint_mode.map_or("unknown", |m| m.as_str()),
        c.style.map_or("unknown", |s| s.as_str()),
        c.last_success.map_or_else(|| "never".to_string(), time),
    );
    if let Some(error) = &c.error {
        let _ = writeln!(out, "<p class=\"err\">Last poll failed: {}</p>", esc(error));
        if c.stale {
            out.push_str("<p class=\"meta\">The findings below are from the last successful poll.</p>\n");
        }
    }
    findings_table(out, c, filter);
    flows_table(out, &c.flows);
    if !c.groups.is_empty() {
        let _ = writeln!(
            out,
            "<details><summary>Security groups ({})</summary><div class=\"scroll\"><table><thead><tr><th>Id</th><th>Name</th><th>Role</th></tr></thead><tbody>",
            c.groups.len()
        );
        for g in &c.groups {
            let _ = writeln!(
                out,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                esc(&g.id),
                esc(&g.name),
                g.role
            );
        }
        out.push_str("</tbody></table></div></details>\n");
    }
    if !c.warnings.is_empty() {
        out.push_str("<h3>Warnings</h3><ul>\n");
        for w in &c.warnings {
            let _ = writeln!(out, "<li>{}</li>", esc(w));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</section>\n");
}

fn findings_table(out: &mut String, c: &ClusterReport, filter: &Filter) {
    let mut findings: Vec<&Finding> = c.findings.iter().filter(|f| filter.keeps_finding(f)).collect();
    // Drift first, worst first; suppressed ones last.
    findings.sort_by(|a, b| {
        (a.suppressed_by.is_some(), std::cmp::Reverse(a.severity), &a.group_id).cmp(&(
            b.suppressed_by.is_some(),
            std::cmp::Reverse(b.severity),
            &b.group_id,
        ))
    });
    let names: BTreeMap<&str, &str> = c.groups.iter().map(|g| (g.id.as_str(), g.name.as_str())).collect();
    let _ = writeln!(out, "<h3>Findings ({})</h3>", findings.len());
    if findings.is_empty() {
        out.push_str(if c.findings.is_empty() {
            "<p class=\"none\">No drift from the baseline.</p>\n"
        } else {
            "<p class=\"none\">None at the filtered severity.</p>\n"
        });
        return;
    }
    out.push_str(
        "<div class=\"scroll\"><table><thead><tr><th>Severity</th><th>Kind</th><th>Group</th><th>Rule</th><th>Reason</th>\
         <th>First seen</th><th>Suppressed by</th></tr></thead><tbody>\n",
    );
    for f in findings {
        let group = match names.get(f.group_id.as_str()) {
            Some(name) if !name.is_empty() => {
                format!("<code>{}</code><br>{} ({})", esc(&f.group_id), esc(name), f.role)
            }
            _ => format!("<code>{}</code> ({})", esc(&f.group_id), f.role),
        };
        let kind = match &f.flow {
            Some(flow) => format!("{} {flow}", f.kind.as_str()),
            None => f.kind.as_str().to_string(),
        };
        let description = match &f.description {
            Some(d) if !d.is_empty() => format!("<br><span class=\"meta\">“{}”</span>", esc(d)),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "<tr{}><td><span class=\"b {}\">{}</span></td><td>{}</td><td>{}</td><td><code>{}</code>{}</td>\
             <td>{}{}</td><td>{}</td><td>{}</td></tr>",
            if f.suppressed_by.is_some() { " class=\"sup\"" } else { "" },
            if f.suppressed_by.is_some() { "suppressed" } else { f.severity.as_str() },
            f.severity,
            kind,
            group,
            esc(&f.rule_text().to_string()),
            description,
            esc(&f.reason),
            remediation_html(f),
            f.first_seen.map_or_else(String::new, time)
                + &f.changed_by.as_ref().map_or_else(String::new, |by| format!(
                    "<br><span class=\"meta\">by {}</span>",
                    esc(&by.to_string())
                )),
            f.suppressed_by.as_deref().map_or_else(String::new, esc),
        );
    }
    out.push_str("</tbody></table></div>\n");
}

/// A finding's fix, folded under its reason: the AWS CLI command as printed by `sgdrift fix`, and
/// where the fix belongs in code.
fn remediation_html(f: &Finding) -> String {
    let Some(r) = &f.remediation else { return String::new() };
    let action = match r.action {
        crate::model::RemediationAction::Revoke => "revoke",
        crate::model::RemediationAction::Authorize => "authorize",
    };
    let manual = r.manual.as_deref().map_or_else(String::new, |m| format!("<p class=\"meta\">{}</p>", esc(m)));
    format!("<details><summary>Fix: {action}</summary><code class=\"cmd\">{}</code>{manual}</details>", esc(&r.aws_cli))
}

/// The required flows: collapsed to one line when all are open (most clusters, most of the
/// time), shown open with the failing ones first otherwise.
fn flows_table(out: &mut String, flows: &[FlowReport]) {
    if flows.is_empty() {
        out.push_str("<h3>Required flows</h3>\n<p class=\"none\">Not evaluated.</p>\n");
        return;
    }
    let open = flows.iter().filter(|f| f.status == FlowStatus::Open).count();
    if open == flows.len() {
        let _ = write!(out, "<details><summary>Required flows: all {open} open</summary>");
    } else {
        let _ = write!(
            out,
            "<details open><summary>Required flows: {} of {} not open</summary>",
            flows.len() - open,
            flows.len()
        );
    }
    out.push_str("<div class=\"scroll\"><table><thead><tr><th>Flow</th><th>Node group</th><th>Status</th><th>Detail</th></tr></thead><tbody>\n");
    let mut ordered: Vec<&FlowReport> = flows.iter().collect();
    ordered.sort_by_key(|f| f.status == FlowStatus::Open);
    for flow in ordered {
        let status = flow.status.as_str();
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td><span class=\"b {status}\">{status}</span></td><td>{}</td></tr>",
            flow.name,
            flow.node_group.as_deref().map_or_else(String::new, esc),
            esc(&flow.detail),
        );
    }
    out.push_str("</tbody></table></div></details>\n");
}

fn status_badges(c: &ClusterReport) -> String {
    let status = status_str(c.status);
    let mut s = format!("<span class=\"b {status}\">{status}</span>");
    if c.stale {
        s.push_str(" <span class=\"b stale\">stale</span>");
    }
    s
}

fn anchor(c: &ClusterReport) -> String {
    cluster_anchor(&c.account_id, &c.region, &c.cluster)
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Escapes text for HTML element content and double- or single-quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::report::GroupRef;
    use crate::model::Role;

    fn finding(reason: &str, suppressed: Option<&str>) -> Finding {
        let f = Finding::test().critical().id("f1").reason(reason).description("<b>ssh</b>");
        match suppressed {
            Some(by) => f.suppressed_by(by),
            None => f,
        }
        .build()
    }

    fn report(findings: Vec<Finding>) -> Report {
        Report {
            schema_version: crate::export::report::SCHEMA_VERSION,
            generated_at: "2026-11-28T10:00:00Z".parse().unwrap(),
            clusters: vec![ClusterReport {
                account_id: "111122223333".into(),
                region: "eu-west-1".into(),
                cluster: "prod<eu>".into(),
                endpoint_mode: None,
                style: None,
                status: ClusterStatus::Drift,
                error: Some("x.json:1:1: \"bad\" & worse".into()),
                groups: vec![GroupRef {
                    id: "sg-0123456789abcdef0".into(),
                    name: "nodes & co".into(),
                    role: Role::Node,
                }],
                findings,
                flows: vec![],
                owned: Vec::new(),
                warnings: vec!["<script>alert(1)</script>".into()],
                stale: true,
                last_success: None,
            }],
            stats: Default::default(),
        }
    }

    #[test]
    fn every_value_from_the_report_is_escaped() {
        let page = render(&report(vec![finding("SSH <open> to the \"internet\"", None)]), &Filter::default());
        for raw in ["<script>", "prod<eu>", "<b>ssh</b>", "<open>", "\"bad\" & worse", "nodes & co"] {
            assert!(!page.contains(raw), "unescaped `{raw}` in the page");
        }
        for escaped in
            ["&lt;script&gt;", "prod&lt;eu&gt;", "SSH &lt;open&gt; to the &quot;internet&quot;", "nodes &amp; co"]
        {
            assert!(page.contains(escaped), "missing `{escaped}`");
        }
    }

    #[test]
    fn a_finding_shows_its_rule_reason_first_seen_and_suppression() {
        let mut f = finding("SSH open", Some("internal bastion"));
        f.first_seen = Some("2026-11-01T08:00:00Z".parse().unwrap());
        let page = render(&report(vec![f]), &Filter::default());
        assert!(page.contains("ingress tcp 22 from 0.0.0.0/0"));
        assert!(page.contains("2026-11-01T08:00:00Z"));
        assert!(page.contains("internal bastion"));
        assert!(page.contains("class=\"b stale\""));
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        let page = render(&report(vec![finding("x", None)]), &Filter::default());
        for external in ["<script", "<link", "http://", "https://", "src="] {
            assert!(!page.contains(external), "`{external}` in the page");
        }
    }

    fn cluster(account: &str, name: &str, status: ClusterStatus, severities: &[Severity]) -> ClusterReport {
        let findings = severities
            .iter()
            .enumerate()
            .map(|(i, severity)| Finding { id: format!("{name}-{i}"), severity: *severity, ..finding("r", None) })
            .collect();
        ClusterReport {
            account_id: account.into(),
            cluster: name.into(),
            status,
            error: None,
            warnings: vec![],
            stale: false,
            findings,
            ..report(vec![]).clusters.remove(0)
        }
    }

    fn fleet() -> Report {
        Report {
            clusters: vec![
                cluster("111111111111", "clean", ClusterStatus::Ok, &[]),
                cluster("111111111111", "medium-drift", ClusterStatus::Drift, &[Severity::Medium]),
                cluster("222222222222", "broken", ClusterStatus::Error, &[]),
                cluster("222222222222", "critical-drift", ClusterStatus::Drift, &[Severity::Low, Severity::Critical]),
            ],
            ..report(vec![])
        }
    }

    /// The cluster names in the order their sections appear on `page`.
    fn sections(page: &str) -> Vec<String> {
        page.split("<section id=\"")
            .skip(1)
            .map(|s| {
                let name = &s[s.find("\">").unwrap() + 2..];
                let name = &name[name.find("\">").unwrap() + 2..];
                name[..name.find("</a>").unwrap()].to_string()
            })
            .collect()
    }

    fn pairs(query: &[(&str, &str)]) -> Vec<(String, String)> {
        query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn failing_clusters_come_first_then_the_worst_drift_then_clean_ones() {
        let page = render(&fleet(), &Filter::default());
        let names = sections(&page);
        assert_eq!(names, ["broken", "critical-drift", "medium-drift", "clean"]);
        let summary = &page[..page.find("<section").unwrap()];
        let positions: Vec<usize> = names.iter().map(|n| summary.find(&format!(">{n}</a>")).unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "the summary lists them in the same order");
    }

    #[test]
    fn each_cluster_has_an_anchor_that_names_its_account_region_and_cluster() {
        assert_eq!(cluster_anchor("111122223333", "eu-west-1", "prod-eu1"), "cluster-111122223333-eu-west-1-prod-eu1");
        assert_eq!(cluster_anchor("111122223333", "eu-west-1", "a b<c>"), "cluster-111122223333-eu-west-1-a_b_c_");
        assert_eq!(
            cluster_link("https://sgdrift.example.com/", "111122223333", "eu-west-1", "prod-eu1"),
            "https://sgdrift.example.com/#cluster-111122223333-eu-west-1-prod-eu1"
        );
        let page = render(&fleet(), &Filter::default());
        for c in fleet().clusters {
            let id = cluster_anchor(&c.account_id, &c.region, &c.cluster);
            assert!(page.contains(&format!("<section id=\"{id}\">")), "no section {id}");
            assert!(
                page.contains(&format!("<a href=\"#{id}\">{}</a></td>", c.cluster)),
                "the summary does not link {id}"
            );
        }
    }

    #[test]
    fn the_query_string_narrows_the_clusters_and_findings_shown() {
        let cases: [(&[(&str, &str)], &[&str]); 7] = [
            (&[], &["broken", "critical-drift", "medium-drift", "clean"]),
            (&[("status", "drift")], &["critical-drift", "medium-drift"]),
            (&[("status", "error"), ("status", "ok")], &["broken", "clean"]),
            (&[("account", "222222222222")], &["broken", "critical-drift"]),
            (&[("severity", "high")], &["critical-drift"]),
            (&[("severity", "medium"), ("account", "111111111111")], &["medium-drift"]),
            (
                &[("status", ""), ("account", ""), ("severity", "")],
                &["broken", "critical-drift", "medium-drift", "clean"],
            ),
        ];
        for (query, want) in cases {
            let page = render(&fleet(), &Filter::from_pairs(&pairs(query)));
            assert_eq!(sections(&page), want, "{query:?}");
        }
        let page = render(&fleet(), &Filter::from_pairs(&pairs(&[("severity", "critical")])));
        assert!(page.contains("<h3>Findings (1)</h3>"), "the low finding of critical-drift is filtered out");
        assert!(page.contains("Showing 1 of 4 clusters"));
        assert!(page.contains("<option value=\"critical\" selected>"), "the form shows the filter in force");
    }

    #[test]
    fn a_filter_value_that_means_nothing_is_named_and_ignored() {
        let filter = Filter::from_pairs(&pairs(&[("severity", "severe"), ("status", "red")]));
        let page = render(&fleet(), &filter);
        assert!(page.contains("Filter ignored: unknown severity `severe`"), "{page}");
        assert!(page.contains("Filter ignored: unknown status `red`: expected ok, drift or error"));
        assert_eq!(sections(&page).len(), 4);
    }

    #[test]
    fn flows_are_collapsed_when_all_are_open_and_expanded_with_the_closed_first_otherwise() {
        let flow = |name: &str, status| FlowReport {
            name: crate::model::FlowName::parse(name).unwrap(),
            status,
            detail: "d".into(),
            node_group: None,
        };
        let mut out = String::new();
        flows_table(&mut out, &[flow("kubelet", FlowStatus::Open), flow("dns", FlowStatus::Open)]);
        assert!(out.starts_with("<details><summary>Required flows: all 2 open</summary>"), "{out}");
        let mut out = String::new();
        flows_table(&mut out, &[flow("kubelet", FlowStatus::Open), flow("dns", FlowStatus::Closed)]);
        assert!(out.starts_with("<details open><summary>Required flows: 1 of 2 not open</summary>"), "{out}");
        assert!(out.find(">dns<").unwrap() < out.find(">kubelet<").unwrap(), "the closed flow comes first");
    }

    /// WCAG 2.x relative luminance of `#rgb` or `#rrggbb`.
    fn luminance(hex: &str) -> f64 {
        let hex = hex.trim_start_matches('#');
        let hex: String = if hex.len() == 3 { hex.chars().flat_map(|c| [c, c]).collect() } else { hex.to_string() };
        let channel = |i: usize| {
            let c = f64::from(u8::from_str_radix(&hex[i..i + 2], 16).unwrap()) / 255.0;
            if c <= 0.03928 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * channel(0) + 0.7152 * channel(2) + 0.0722 * channel(4)
    }

    fn contrast(a: &str, b: &str) -> f64 {
        let (la, lb) = (luminance(a), luminance(b));
        (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
    }

    /// The `color` and `background` the STYLE gives each selector, as written.
    fn css_colours() -> BTreeMap<String, (Option<String>, Option<String>)> {
        let mut out: BTreeMap<String, (Option<String>, Option<String>)> = BTreeMap::new();
        for rule in STYLE.split('}') {
            let Some((selectors, body)) = rule.split_once('{') else { continue };
            for decl in body.split(';') {
                let Some((prop, value)) = decl.split_once(':') else { continue };
                for selector in selectors.split(',') {
                    let entry = out.entry(selector.trim().to_string()).or_default();
                    match prop.trim() {
                        "color" => entry.0 = Some(value.trim().to_string()),
                        "background" => entry.1 = Some(value.trim().to_string()),
                        _ => {}
                    }
                }
            }
        }
        out
    }

    #[test]
    fn every_badge_and_text_colour_meets_wcag_aa_contrast() {
        let css = css_colours();
        let colour = |selector: &str, fg: bool| {
            let (c, b) = css.get(selector).cloned().unwrap_or_default();
            if fg {
                c
            } else {
                b
            }
        };
        let badge_text = colour(".b", true).expect(".b sets the badge text colour");
        let badges = [
            "ok",
            "open",
            "drift",
            "high",
            "error",
            "critical",
            "closed",
            "medium",
            "low",
            "stale",
            "suppressed",
            "unknown",
        ];
        for class in badges {
            let selector = format!(".{class}");
            let background = colour(&selector, false).unwrap_or_else(|| panic!("{selector} has no background"));
            let text = colour(&selector, true).unwrap_or_else(|| badge_text.clone());
            let ratio = contrast(&text, &background);
            assert!(ratio >= 4.5, "badge {class}: {text} on {background} has contrast {ratio:.2} < 4.5");
        }
        let body = colour("body", false).unwrap();
        let texts = [
            ("body", colour("body", true).unwrap(), body.clone()),
            (".meta", colour(".meta", true).unwrap(), body.clone()),
            (".meta in a table", colour(".meta", true).unwrap(), colour("table", false).unwrap()),
            ("th", colour("th", true).unwrap(), colour("th", false).unwrap()),
            ("suppressed row", colour("tr.sup td", true).unwrap(), colour("table", false).unwrap()),
            (".err", colour(".err", true).unwrap(), colour("section", false).unwrap()),
            ("links", colour("a", true).unwrap(), colour("section", false).unwrap()),
            ("footer", colour("footer", true).unwrap(), body),
        ];
        for (what, text, background) in texts {
            let ratio = contrast(&text, &background);
            assert!(ratio >= 4.5, "{what}: {text} on {background} has contrast {ratio:.2} < 4.5");
        }
    }

    #[test]
    fn the_contrast_formula_matches_known_wcag_values() {
        assert!((contrast("#000", "#fff") - 21.0).abs() < 0.01);
        assert!((contrast("#777", "#fff") - 4.48).abs() < 0.01);
    }
}
