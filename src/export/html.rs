//! The status page (`GET /`): the report rendered as one self-contained HTML page for a person:
//! a summary of every cluster, then per cluster its findings, required flows and groups. Every
//! value is escaped; no scripts, no external assets.

use std::collections::BTreeMap;
use std::fmt::Write;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::export::report::{ClusterReport, ClusterStatus, Report};
use crate::flows::FlowStatus;
use crate::model::{Finding, Severity};

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:1200px;padding:1rem 1.5rem;color:#1d2330;background:#fbfbfc}
h1{font-size:1.5rem;margin:.2rem 0}h2{font-size:1.2rem;margin:0 0 .3rem}h3{font-size:1rem;margin:1rem 0 .3rem}
header p,.meta{color:#5b6372;margin:.2rem 0}
table{border-collapse:collapse;width:100%;margin:.3rem 0 .6rem;background:#fff}
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #e3e6eb;vertical-align:top}
th{font-weight:600;color:#5b6372;font-size:.85rem;background:#f3f4f7}
code{font:12.5px ui-monospace,SFMono-Regular,Menlo,monospace}
section{border:1px solid #e3e6eb;border-radius:6px;padding:.8rem 1rem;margin:1rem 0;background:#fff}
.b{display:inline-block;border-radius:3px;padding:0 .45rem;font-size:.8rem;font-weight:600;color:#fff}
.ok,.open{background:#2e7d32}.drift,.high{background:#d84315}.error,.critical,.closed{background:#b71c1c}
.medium{background:#ef8f00}.low{background:#607d8b}.stale{background:#7b5ea7}.suppressed{background:#9aa1ad}
tr.sup td{color:#8a919c}.err{color:#b71c1c}.none{color:#5b6372;font-style:italic}
a{color:#1f5fbf;text-decoration:none}a:hover{text-decoration:underline}
footer{color:#5b6372;font-size:.85rem;margin-top:2rem}
";

/// The page for `report`; `first_seen` maps finding ids to when each was first seen.
pub fn render(report: &Report, first_seen: &BTreeMap<String, DateTime<Utc>>) -> String {
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
    summary(&mut out, report);
    for cluster in &report.clusters {
        section(&mut out, cluster, first_seen);
    }
    out.push_str(
        "<footer>Machine-readable: <a href=\"api/v1/report\">api/v1/report</a> (JSON) and \
         <a href=\"metrics\">metrics</a> (Prometheus).</footer>\n</body></html>\n",
    );
    out
}

fn summary(out: &mut String, report: &Report) {
    if report.clusters.is_empty() {
        out.push_str("<p class=\"none\">No cluster polled yet.</p>\n");
        return;
    }
    out.push_str(
        "<table><thead><tr><th>Cluster</th><th>Account</th><th>Region</th><th>Endpoint</th><th>Style</th>\
         <th>Status</th><th>Critical</th><th>High</th><th>Medium</th><th>Low</th><th>Last success</th></tr></thead><tbody>\n",
    );
    for c in &report.clusters {
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
    out.push_str("</tbody></table>\n");
}

fn section(out: &mut String, c: &ClusterReport, first_seen: &BTreeMap<String, DateTime<Utc>>) {
    let _ = writeln!(out, "<section id=\"{}\"><h2>{} {}</h2>", anchor(c), esc(&c.cluster), status_badges(c));
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

    let mut findings: Vec<&Finding> = c.findings.iter().collect();
    // Drift first, worst first; suppressed ones last.
    findings.sort_by(|a, b| {
        (a.suppressed_by.is_some(), std::cmp::Reverse(a.severity), &a.group_id).cmp(&(
            b.suppressed_by.is_some(),
            std::cmp::Reverse(b.severity),
            &b.group_id,
        ))
    });
    let names: BTreeMap<&str, &str> = c.groups.iter().map(|g| (g.id.as_str(), g.name.as_str())).collect();
    let _ = writeln!(out, "<h3>Findings ({})</h3>", c.findings.len());
    if findings.is_empty() {
        out.push_str("<p class=\"none\">No drift from the baseline.</p>\n");
    } else {
        out.push_str(
            "<table><thead><tr><th>Severity</th><th>Kind</th><th>Group</th><th>Rule</th><th>Reason</th>\
             <th>First seen</th><th>Suppressed by</th></tr></thead><tbody>\n",
        );
        for f in findings {
            let group = match names.get(f.group_id.as_str()) {
                Some(name) if !name.is_empty() => format!("<code>{}</code><br>{} ({})", esc(&f.group_id), esc(name), f.role),
                _ => format!("<code>{}</code> ({})", esc(&f.group_id), f.role),
            };
            let kind = match f.flow {
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
                 <td>{}</td><td>{}</td><td>{}</td></tr>",
                if f.suppressed_by.is_some() { " class=\"sup\"" } else { "" },
                if f.suppressed_by.is_some() { "suppressed" } else { f.severity.as_str() },
                f.severity,
                kind,
                group,
                esc(&f.rule_text().to_string()),
                description,
                esc(&f.reason),
                first_seen.get(&f.id).map_or_else(String::new, |t| time(*t)),
                f.suppressed_by.as_deref().map_or_else(String::new, esc),
            );
        }
        out.push_str("</tbody></table>\n");
    }

    out.push_str("<h3>Required flows</h3>\n");
    if c.flows.is_empty() {
        out.push_str("<p class=\"none\">Not evaluated.</p>\n");
    } else {
        out.push_str("<table><thead><tr><th>Flow</th><th>Node group</th><th>Status</th><th>Detail</th></tr></thead><tbody>\n");
        for flow in &c.flows {
            let status = match flow.status {
                FlowStatus::Open => "open",
                FlowStatus::Closed => "closed",
            };
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td><span class=\"b {status}\">{status}</span></td><td>{}</td></tr>",
                flow.name,
                flow.node_group.as_deref().map_or_else(String::new, esc),
                esc(&flow.detail),
            );
        }
        out.push_str("</tbody></table>\n");
    }

    if !c.groups.is_empty() {
        out.push_str("<h3>Security groups</h3>\n<table><thead><tr><th>Id</th><th>Name</th><th>Role</th></tr></thead><tbody>\n");
        for g in &c.groups {
            let _ = writeln!(out, "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>", esc(&g.id), esc(&g.name), g.role);
        }
        out.push_str("</tbody></table>\n");
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

fn status_badges(c: &ClusterReport) -> String {
    let status = match c.status {
        ClusterStatus::Ok => "ok",
        ClusterStatus::Drift => "drift",
        ClusterStatus::Error => "error",
    };
    let mut s = format!("<span class=\"b {status}\">{status}</span>");
    if c.stale {
        s.push_str(" <span class=\"b stale\">stale</span>");
    }
    s
}

fn anchor(c: &ClusterReport) -> String {
    let raw = format!("{}-{}-{}", c.account_id, c.region, c.cluster);
    raw.chars().map(|ch| if ch.is_ascii_alphanumeric() || ch == '-' || ch == '_' { ch } else { '_' }).collect()
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
                groups: vec![GroupRef { id: "sg-0123456789abcdef0".into(), name: "nodes & co".into(), role: Role::Node }],
                findings,
                flows: vec![],
                warnings: vec!["<script>alert(1)</script>".into()],
                stale: true,
                last_success: None,
            }],
            stats: Default::default(),
        }
    }

    #[test]
    fn every_value_from_the_report_is_escaped() {
        let page = render(&report(vec![finding("SSH <open> to the \"internet\"", None)]), &BTreeMap::new());
        for raw in ["<script>", "prod<eu>", "<b>ssh</b>", "<open>", "\"bad\" & worse", "nodes & co"] {
            assert!(!page.contains(raw), "unescaped `{raw}` in the page");
        }
        for escaped in ["&lt;script&gt;", "prod&lt;eu&gt;", "SSH &lt;open&gt; to the &quot;internet&quot;", "nodes &amp; co"] {
            assert!(page.contains(escaped), "missing `{escaped}`");
        }
    }

    #[test]
    fn a_finding_shows_its_rule_reason_first_seen_and_suppression() {
        let seen = [("f1".to_string(), "2026-11-01T08:00:00Z".parse().unwrap())].into();
        let page = render(&report(vec![finding("SSH open", Some("internal bastion"))]), &seen);
        assert!(page.contains("ingress tcp 22 from 0.0.0.0/0"));
        assert!(page.contains("2026-11-01T08:00:00Z"));
        assert!(page.contains("internal bastion"));
        assert!(page.contains("class=\"b stale\""));
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        let page = render(&report(vec![finding("x", None)]), &BTreeMap::new());
        for external in ["<script", "<link", "http://", "https://", "src="] {
            assert!(!page.contains(external), "`{external}` in the page");
        }
    }
}
