//! The Slack message of a notification: Block Kit with a `text` fallback, kept inside Slack's
//! documented limits (ecosystem.md §4.2), dynamic text escaped for mrkdwn; and the Slack sink
//! that posts it, paced to Slack's 1 message/s per webhook.

use reqwest::header::HeaderMap;
use reqwest::Url;
use serde_json::{json, Value};

use super::http::Poster;
use super::policy::{Event, EventStatus, Notification};
use super::secret::{parse_url, Secret};
use super::sink::{Delivery, Pacing, Sink, SinkKind, SinkName};
use super::BuildContext;
use crate::config::SlackConfig;
use crate::model::{FindingKind, FlowName};

/// Blocks per message.
pub const MAX_BLOCKS: usize = 50;
/// Characters of one section's text.
pub const MAX_SECTION_TEXT: usize = 3000;
/// Characters of the header's plain text.
pub const MAX_HEADER: usize = 150;
/// Fields per section, and characters per field.
pub const MAX_FIELDS: usize = 10;
pub const MAX_FIELD: usize = 2000;
/// Characters of all the finding lists together: Slack has refused messages of about 13k
/// characters of blocks (`msg_blocks_too_long`), well below the per-block limits.
pub const LIST_BUDGET: usize = 8000;
/// Characters of one finding line; a long reason or description is cut.
const MAX_LINE: usize = 400;
/// Security groups named in the fields before "… and N more".
const MAX_GROUPS: usize = 10;
/// Blocks that are not finding lists: header, fields, "… and N more", the fix, context.
const RESERVED_BLOCKS: usize = 5;
/// AWS CLI commands shown in a message; the rest are on the status page.
pub const MAX_FIX_COMMANDS: usize = 3;

/// An `[[alerts.slack]]` incoming webhook.
#[derive(Debug)]
pub struct SlackSink {
    name: SinkName,
    url: Secret<Url>,
    poster: Poster,
    external_url: Option<String>,
    pacing: Pacing,
}

impl SlackSink {
    /// Reads the URL from its source; the message names the source, never the URL.
    pub fn build(config: &SlackConfig, ctx: &BuildContext<'_>) -> Result<Self, String> {
        let url = config.webhook_url.read(ctx.base).and_then(|raw| parse_url(&raw))?;
        Ok(SlackSink {
            name: config.name.clone(),
            url,
            poster: ctx.poster.clone(),
            external_url: ctx.external_url.map(str::to_string),
            pacing: Pacing::Every(ctx.min_interval),
        })
    }
}

impl Sink for SlackSink {
    fn name(&self) -> &SinkName {
        &self.name
    }

    fn kind(&self) -> SinkKind {
        SinkKind::Slack
    }

    fn pacing(&self) -> Pacing {
        self.pacing
    }

    fn deliver<'a>(&'a self, n: &'a Notification) -> Delivery<'a> {
        Box::pin(async move {
            let body = serde_json::to_vec(&payload(n, self.external_url.as_deref())).unwrap_or_default();
            self.poster.post(&self.url, body, HeaderMap::new()).await
        })
    }
}

/// The JSON body to POST to a Slack incoming webhook.
pub fn payload(n: &Notification, external_url: Option<&str>) -> Value {
    // The cluster's own section of the status page, not the page's top.
    let status_url = external_url
        .map(|u| crate::export::html::cluster_link(u, &n.cluster.account_id, &n.cluster.region, &n.cluster.name));
    let mut blocks = vec![json!({
        "type": "header",
        "text": { "type": "plain_text", "text": truncate(&header(n), MAX_HEADER), "emoji": true }
    })];
    blocks.push(json!({ "type": "section", "fields": fields(n) }));

    let (sections, omitted) = lists(n);
    // Header, fields, "… and N more", the fix and context are reserved.
    for text in sections.into_iter().take(MAX_BLOCKS - RESERVED_BLOCKS) {
        blocks.push(json!({ "type": "section", "text": { "type": "mrkdwn", "text": text } }));
    }
    if let Some(text) = fix_section(n, status_url.as_deref()) {
        blocks.push(
            json!({ "type": "section", "text": { "type": "mrkdwn", "text": truncate(&text, MAX_SECTION_TEXT) } }),
        );
    }
    if !omitted.is_empty() {
        let total: usize = omitted.iter().map(|(_, k)| k).sum();
        let parts: Vec<String> = omitted.iter().map(|(title, k)| format!("{k} {}", title.to_lowercase())).collect();
        let mut text = format!("… and {total} more ({})", parts.join(", "));
        if let Some(url) = &status_url {
            text.push_str(&format!(": see the <{}|status page>", esc(url)));
        }
        blocks.push(
            json!({ "type": "section", "text": { "type": "mrkdwn", "text": truncate(&text, MAX_SECTION_TEXT) } }),
        );
    }
    blocks.push(json!({ "type": "context", "elements": context(n, status_url.as_deref()) }));

    json!({ "text": fallback(n), "blocks": blocks })
}

fn header(n: &Notification) -> String {
    let new = n.count(EventStatus::Firing, false);
    let reminded = n.count(EventStatus::Firing, true);
    let resolved = n.count(EventStatus::Resolved, false);
    let open = n.open_count();
    let name = &n.cluster.name;
    if new > 0 {
        let mut h = format!(":red_circle: Drift: {} in {name}", plural(new, "new finding"));
        if resolved > 0 {
            h.push_str(&format!(", {resolved} resolved"));
        }
        h
    } else if reminded > 0 {
        let mut h = format!(":large_orange_circle: Still drifting: {} open in {name}", plural(open, "finding"));
        if resolved > 0 {
            h.push_str(&format!(", {resolved} resolved"));
        }
        h
    } else if open == 0 {
        format!(":large_green_circle: Resolved: all drift in {name} ({})", plural(resolved, "finding"))
    } else {
        format!(":large_green_circle: Resolved: {} in {name}, {open} still open", plural(resolved, "finding"))
    }
}

fn fallback(n: &Notification) -> String {
    let new = n.count(EventStatus::Firing, false);
    let reminded = n.count(EventStatus::Firing, true);
    let resolved = n.count(EventStatus::Resolved, false);
    let tag = if new > 0 {
        ":red_circle: [DRIFT]"
    } else if reminded > 0 {
        ":large_orange_circle: [STILL DRIFTING]"
    } else {
        ":large_green_circle: [RESOLVED]"
    };
    let mut parts = Vec::new();
    if new > 0 {
        parts.push(format!("{new} new"));
    }
    if resolved > 0 {
        parts.push(format!("{resolved} resolved"));
    }
    parts.push(format!("{} open", n.open_count()));
    let c = &n.cluster;
    esc(&format!("{tag} {} ({} / {}): {}", c.name, c.account_id, c.region, parts.join(", ")))
}

fn fields(n: &Notification) -> Vec<Value> {
    let mut groups: Vec<(&str, &str)> = Vec::new();
    for e in &n.events {
        let g = (e.finding.group_id.as_str(), e.finding.role.as_str());
        if !g.0.is_empty() && !groups.contains(&g) {
            groups.push(g);
        }
    }
    let mut shown: Vec<String> =
        groups.iter().take(MAX_GROUPS).map(|(id, role)| format!("`{}` ({role})", esc(id))).collect();
    if groups.len() > MAX_GROUPS {
        shown.push(format!("… and {} more", groups.len() - MAX_GROUPS));
    }
    let c = &n.cluster;
    let fields = [
        ("Account", esc(&c.account_id)),
        ("Region", esc(&c.region)),
        ("Cluster", esc(&c.name)),
        ("Open findings", n.open_count().to_string()),
        ("Security groups", if shown.is_empty() { "none".into() } else { shown.join(", ") }),
    ];
    fields
        .iter()
        .take(MAX_FIELDS)
        .map(|(k, v)| json!({ "type": "mrkdwn", "text": truncate(&format!("*{k}*\n{v}"), MAX_FIELD) }))
        .collect()
}

/// The finding lists as section texts, and what did not fit, by list title.
fn lists(n: &Notification) -> (Vec<String>, Vec<(&'static str, usize)>) {
    let is_flow = |e: &&Event| e.finding.kind == FindingKind::Flow;
    let new: Vec<&Event> = n.events.iter().filter(|e| e.status == EventStatus::Firing && !e.reminder).collect();
    let lists: [(&'static str, Vec<&Event>); 4] = [
        ("New drift", new.iter().copied().filter(|e| !is_flow(e)).collect()),
        ("Closed flows", new.iter().copied().filter(is_flow).collect()),
        ("Still drifting", n.events.iter().filter(|e| e.status == EventStatus::Firing && e.reminder).collect()),
        ("Resolved", n.events.iter().filter(|e| e.status == EventStatus::Resolved).collect()),
    ];

    let mut sections: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut used = 0;
    let mut full = false;
    let mut omitted = Vec::new();
    // Leave room for header, fields, "… and N more", the fix and context.
    let max_sections = MAX_BLOCKS - RESERVED_BLOCKS;
    for (title, events) in lists {
        if events.is_empty() {
            continue;
        }
        let mut left_out = 0;
        for (i, e) in events.iter().enumerate() {
            let line = truncate(&line(e, n), MAX_LINE);
            let piece = if i == 0 { format!("*{title} ({})*\n{line}", events.len()) } else { line };
            let len = piece.chars().count() + 1;
            if !full && used + len > LIST_BUDGET {
                full = true;
            }
            if !full && current.chars().count() + len > MAX_SECTION_TEXT {
                if sections.len() + 1 >= max_sections {
                    full = true;
                } else {
                    sections.push(std::mem::take(&mut current));
                }
            }
            if full {
                left_out += 1;
                continue;
            }
            if !current.is_empty() {
                current.push('\n');
            }
            current.push_str(&piece);
            used += len;
        }
        if left_out > 0 {
            omitted.push((title, left_out));
        }
    }
    if !current.is_empty() {
        sections.push(current);
    }
    (sections, omitted)
}

/// The first few commands that fix the firing findings (design.md §2 remediation), then a link to
/// the cluster's section of the status page for the rest. Refused steps (commented out) are
/// left to the page, which says why.
fn fix_section(n: &Notification, status_url: Option<&str>) -> Option<String> {
    let mut fixes: Vec<&crate::model::Remediation> = Vec::new();
    for e in n.events.iter().filter(|e| e.status == EventStatus::Firing && e.finding.is_drift()) {
        let Some(r) = &e.finding.remediation else { continue };
        if r.aws_cli.lines().any(|l| l.starts_with("aws ")) && !fixes.iter().any(|f| f.aws_cli == r.aws_cli) {
            fixes.push(r);
        }
    }
    if fixes.is_empty() {
        return None;
    }
    let shown = &fixes[..fixes.len().min(MAX_FIX_COMMANDS)];
    let mut text = if fixes.len() > shown.len() {
        format!("*Fix (first {} of {} commands)*", shown.len(), fixes.len())
    } else {
        "*Fix*".to_string()
    };
    let commands: Vec<&str> = shown.iter().map(|r| r.aws_cli.as_str()).collect();
    text.push_str(&format!("\n```{}```", esc(&commands.join("\n"))));
    let mut notes: Vec<&str> = shown.iter().filter_map(|r| r.manual.as_deref()).collect();
    notes.dedup();
    for note in notes {
        text.push_str(&format!("\n_{}_", esc(note)));
    }
    match status_url {
        Some(url) if fixes.len() > shown.len() => text.push_str(&format!("\nThe rest: <{}|status page>", esc(url))),
        Some(url) => text.push_str(&format!(
            "\nOr run `sgdrift fix --cluster {}` · <{}|status page>",
            esc(&n.cluster.name),
            esc(url)
        )),
        None => text.push_str(&format!("\nAll of them: `sgdrift fix --cluster {}`", esc(&n.cluster.name))),
    }
    Some(text)
}

/// One event as a bullet line.
fn line(e: &Event, n: &Notification) -> String {
    let f = &e.finding;
    let mut s = format!("• *{}* ", f.severity);
    if f.kind == FindingKind::Flow {
        let name = f.flow.map_or("flow", FlowName::as_str);
        s.push_str(&format!("flow `{name}` closed: {}", esc(&f.reason)));
        s.push_str(&format!(" (needs `{}` on `{}`)", esc(&f.rule_text().to_string()), esc(&f.group_id)));
    } else {
        let kind = if f.kind == FindingKind::Missing { "missing " } else { "" };
        s.push_str(&format!("{kind}`{}` on `{}` ({})", esc(&f.rule_text().to_string()), esc(&f.group_id), f.role));
        if !f.reason.is_empty() {
            s.push_str(&format!(": {}", esc(&f.reason)));
        }
    }
    if let (EventStatus::Firing, Some(by)) = (e.status, &f.changed_by) {
        s.push_str(&format!(" · changed by {}", esc(&by.to_string())));
    }
    match e.status {
        EventStatus::Firing if e.reminder => {
            s.push_str(&format!(" · open for {}", human(n.created_at - e.opened_at)));
        }
        EventStatus::Firing => {}
        EventStatus::Resolved => {
            if let Some(lasted) = e.lasted() {
                s.push_str(&format!(" · lasted {}", human(lasted)));
            }
            if let Some(by) = &f.suppressed_by {
                s.push_str(&format!(" · now suppressed by an exception: {}", esc(by)));
            }
        }
    }
    s
}

fn context(n: &Notification, status_url: Option<&str>) -> Vec<Value> {
    let mut parts = Vec::new();
    let resolved_only = n.events.iter().all(|e| e.status == EventStatus::Resolved);
    if resolved_only && n.open_count() == 0 {
        if let Some(first) = n.events.iter().map(|e| e.opened_at).min() {
            parts.push(format!(
                "Drift lasted {} ({} → {})",
                human(n.created_at - first),
                first.format("%Y-%m-%d %H:%M:%SZ"),
                n.created_at.format("%Y-%m-%d %H:%M:%SZ")
            ));
        }
    } else {
        parts.push(format!("Seen {}", n.created_at.format("%Y-%m-%d %H:%M:%SZ")));
    }
    if let Some(url) = status_url {
        parts.push(format!("<{}|Status page>", esc(url)));
    }
    parts.push(format!("<{}|Runbook>", esc(&n.runbook_url())));
    parts.push(format!("notification `{}`", esc(&n.id)));
    parts.into_iter().map(|t| json!({ "type": "mrkdwn", "text": t })).collect()
}

/// Escapes the three characters mrkdwn reserves (`&`, `<`, `>`), and only those.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    // Never leave half an escape sequence.
    if let Some(amp) = out.rfind('&') {
        if !out[amp..].contains(';') {
            out.truncate(amp);
        }
    }
    out.push('…');
    out
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// `45s`, `47m`, `3h 5m`, `2d 4h`.
pub fn human(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86399 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{DateTime, Utc};

    use super::*;
    use crate::model::{ClusterId, Finding, Severity};

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-28T10:00:00Z").unwrap().with_timezone(&Utc)
            + chrono::Duration::minutes(minutes)
    }

    fn event(label: &str, kind: FindingKind, status: EventStatus, reminder: bool, opened: i64, now: i64) -> Event {
        Event {
            episode_id: format!("id-{label}"),
            status,
            reminder,
            opened_at: at(opened),
            resolved_at: (status == EventStatus::Resolved).then(|| at(now)),
            finding: {
                let f = Finding::test()
                    .on("sg-0abc")
                    .rule("ingress tcp 10250 from sg-0cp")
                    .reason(&format!("{label} reason"));
                let f = match kind {
                    FindingKind::Flow => f.flow(FlowName::parse(label).unwrap_or(FlowName::Kubelet)),
                    other => f.kind(other),
                };
                f.high().id(&format!("id-{label}")).build()
            },
        }
    }

    fn notification(now: i64, events: Vec<Event>, open: usize) -> Notification {
        Notification {
            id: "n1".into(),
            created_at: at(now),
            cluster: ClusterId {
                account_id: "111122223333".into(),
                region: "eu-west-1".into(),
                name: "prod-eu1".into(),
            },
            events,
            open: if open > 0 { BTreeMap::from([(Severity::High, open)]) } else { BTreeMap::new() },
        }
    }

    fn texts(v: &Value) -> String {
        serde_json::to_string(v).unwrap()
    }

    #[test]
    fn the_header_states_status_and_count_for_every_kind_of_notification() {
        use EventStatus::{Firing, Resolved};
        use FindingKind::{Flow, Unexpected};
        let cases = [
            (
                "new only",
                0,
                vec![event("a", Unexpected, Firing, false, 0, 0), event("b", Unexpected, Firing, false, 0, 0)],
                2,
                ":red_circle: Drift: 2 new findings in prod-eu1",
            ),
            (
                "new and resolved",
                5,
                vec![event("a", Unexpected, Firing, false, 5, 5), event("b", Unexpected, Resolved, false, 0, 5)],
                1,
                ":red_circle: Drift: 1 new finding in prod-eu1, 1 resolved",
            ),
            (
                "reminder",
                1440,
                vec![event("a", Flow, Firing, true, 0, 1440)],
                3,
                ":large_orange_circle: Still drifting: 3 findings open in prod-eu1",
            ),
            (
                "all resolved",
                47,
                vec![event("a", Unexpected, Resolved, false, 0, 47)],
                0,
                ":large_green_circle: Resolved: all drift in prod-eu1 (1 finding)",
            ),
            (
                "some resolved",
                47,
                vec![event("a", Unexpected, Resolved, false, 0, 47)],
                2,
                ":large_green_circle: Resolved: 1 finding in prod-eu1, 2 still open",
            ),
        ];
        for (name, now, events, open, want) in cases {
            let p = payload(&notification(now, events, open), None);
            assert_eq!(p["blocks"][0]["type"], "header", "{name}");
            assert_eq!(p["blocks"][0]["text"]["text"], want, "{name}");
            assert!(!p["text"].as_str().unwrap().is_empty(), "{name}: a text fallback");
        }
    }

    #[test]
    fn a_firing_line_names_who_made_the_change_where_known() {
        let mut e = event("ssh", FindingKind::Unexpected, EventStatus::Firing, false, 0, 0);
        e.finding.changed_by = Some(crate::model::ChangedBy {
            arn: "arn:aws:sts::111122223333:assumed-role/Admin/jo".into(),
            source_ip: Some("203.0.113.7".into()),
            user_agent: Some("aws-cli/2.15.0".into()),
            event_time: at(-1),
            event_name: "AuthorizeSecurityGroupIngress".into(),
            event_id: "e-1".into(),
        });
        let n = notification(0, vec![e], 1);
        let text = line(&n.events[0], &n);
        assert!(
            text.ends_with(" · changed by arn:aws:sts::111122223333:assumed-role/Admin/jo (AuthorizeSecurityGroupIngress from 203.0.113.7 at 2026-11-28 09:59:00 UTC)"),
            "{text}"
        );
    }

    #[test]
    fn a_resolved_message_names_how_long_the_drift_lasted() {
        let n = notification(47, vec![event("a", FindingKind::Unexpected, EventStatus::Resolved, false, 0, 47)], 0);
        let p = texts(&payload(&n, None));
        assert!(p.contains("lasted 47m"), "{p}");
        assert!(p.contains("Drift lasted 47m (2026-11-28 10:00:00Z → 2026-11-28 10:47:00Z)"), "{p}");
        assert!(p.contains("[RESOLVED] prod-eu1"), "{p}");
    }

    #[test]
    fn closed_flows_are_listed_apart_from_rule_drift() {
        let n = notification(
            0,
            vec![
                event("kubelet", FindingKind::Flow, EventStatus::Firing, false, 0, 0),
                event("ssh", FindingKind::Unexpected, EventStatus::Firing, false, 0, 0),
            ],
            2,
        );
        let p = payload(&n, None);
        let sections: Vec<&str> =
            p["blocks"].as_array().unwrap().iter().filter_map(|b| b["text"]["text"].as_str()).collect();
        let list = sections.iter().find(|t| t.starts_with("*New drift")).unwrap();
        assert!(
            list.contains("*New drift (1)*\n• *high* `ingress tcp 10250 from sg-0cp` on `sg-0abc` (node): ssh reason"),
            "{list}"
        );
        assert!(list.contains("*Closed flows (1)*\n• *high* flow `kubelet` closed: kubelet reason"), "{list}");
    }

    #[test]
    fn the_status_page_is_linked_only_when_an_external_url_is_set() {
        let n = notification(0, vec![event("a", FindingKind::Unexpected, EventStatus::Firing, false, 0, 0)], 1);
        assert!(texts(&payload(&n, Some("https://sgdrift.example.com")))
            .contains("<https://sgdrift.example.com/#cluster-111122223333-eu-west-1-prod-eu1|Status page>"));
        assert!(!texts(&payload(&n, None)).contains("Status page"));
    }

    #[test]
    fn durations_read_as_a_human_would_write_them() {
        let cases = [
            (0, "0s"),
            (59, "59s"),
            (60, "1m"),
            (47 * 60 + 12, "47m"),
            (3 * 3600 + 300, "3h 5m"),
            (2 * 86400 + 4 * 3600, "2d 4h"),
        ];
        for (secs, want) in cases {
            assert_eq!(human(chrono::Duration::seconds(secs)), want, "{secs}s");
        }
    }

    #[test]
    fn mrkdwn_escaping_touches_only_ampersand_and_angle_brackets() {
        assert_eq!(esc("a & b <c> *d* `e`"), "a &amp; b &lt;c&gt; *d* `e`");
    }

    #[test]
    fn truncation_never_splits_an_escape_sequence() {
        let cut = truncate("abc &amp; def", 7);
        assert_eq!(cut, "abc …");
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("0123456789", 5).chars().count(), 5);
    }
}

#[cfg(test)]
mod fix_tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::model::{ClusterId, Finding, Remediation, RemediationAction};

    fn firing(i: usize, aws_cli: &str, manual: Option<&str>) -> Event {
        let at: DateTime<Utc> = "2026-11-28T10:00:00Z".parse().expect("time");
        let mut finding = Finding::test()
            .on("sg-0abc")
            .rule(&format!("ingress tcp {} from 0.0.0.0/0", 1000 + i))
            .critical()
            .id(&format!("f{i}"))
            .build();
        finding.remediation = Some(Remediation {
            action: RemediationAction::Revoke,
            aws_cli: aws_cli.to_string(),
            manual: manual.map(str::to_string),
        });
        Event {
            episode_id: format!("f{i}"),
            status: EventStatus::Firing,
            reminder: false,
            opened_at: at,
            resolved_at: None,
            finding,
        }
    }

    fn notification(events: Vec<Event>) -> Notification {
        Notification {
            id: "n1".into(),
            created_at: "2026-11-28T10:00:00Z".parse().expect("time"),
            cluster: ClusterId {
                account_id: "111122223333".into(),
                region: "eu-west-1".into(),
                name: "prod-eu1".into(),
            },
            open: [(crate::model::Severity::Critical, events.len())].into(),
            events,
        }
    }

    fn fix_block(n: &Notification, url: Option<&str>) -> Option<String> {
        let body = payload(n, url);
        body["blocks"]
            .as_array()
            .expect("blocks")
            .iter()
            .filter_map(|b| b["text"]["text"].as_str())
            .find(|t| t.starts_with("*Fix"))
            .map(str::to_string)
    }

    #[test]
    fn the_first_few_commands_are_shown_then_the_status_page_for_the_rest() {
        let url = "https://sgdrift.example.com";
        let cases: [(usize, &str, bool); 3] =
            [(1, "*Fix*\n", false), (3, "*Fix*\n", false), (5, "*Fix (first 3 of 5 commands)*\n", true)];
        for (count, head, rest) in cases {
            let events = (0..count)
                .map(|i| {
                    firing(
                        i,
                        &format!("aws ec2 revoke-security-group-ingress --group-id sg-{i} --ip-permissions '[]'"),
                        None,
                    )
                })
                .collect();
            let text = fix_block(&notification(events), Some(url)).expect("a fix section");
            assert!(text.starts_with(head), "{count}: {text}");
            assert_eq!(text.matches("aws ec2 revoke").count(), count.min(MAX_FIX_COMMANDS), "{count}: {text}");
            assert_eq!(text.contains("The rest: <https://sgdrift.example.com/#cluster-"), rest, "{count}: {text}");
        }
    }

    #[test]
    fn refused_steps_are_left_to_the_page_and_notes_on_code_are_shown() {
        let refused = firing(
            0,
            "# not safe as it stands (see manual)\n# aws ec2 revoke-security-group-ingress",
            Some("would close kubelet"),
        );
        assert_eq!(fix_block(&notification(vec![refused]), None), None);
        let coded =
            firing(1, "aws ec2 authorize-security-group-ingress --group-id sg-1", Some("sg-1 is managed by terraform"));
        let text = fix_block(&notification(vec![coded]), None).expect("a fix section");
        assert!(
            text.contains("_sg-1 is managed by terraform_") && text.contains("`sgdrift fix --cluster prod-eu1`"),
            "{text}"
        );
    }
}
