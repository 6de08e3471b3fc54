//! The generic webhook's JSON: one POST per notification, an `events` array with a stable
//! `episode_id` per event so receivers can de-duplicate, and the finding as in the report.
//!
//! ```json
//! { "version": "1", "notification_id": "9f2c…", "created_at": "2026-11-28T10:00:00Z",
//!   "status": "firing", "account_id": "111122223333", "region": "eu-west-1", "cluster": "prod-eu1",
//!   "open_findings": 2, "status_url": "https://sgdrift.example.com/",
//!   "events": [ { "episode_id": "5d1e…", "status": "firing", "reminder": false,
//!                 "opened_at": "…", "resolved_at": null,
//!                 "account_id": "…", "region": "…", "cluster": "…",
//!                 "rule": "ingress tcp 22 from 0.0.0.0/0",
//!                 "finding": { "id": "5d1e…", "kind": "unexpected", "severity": "critical", … } } ] }
//! ```
//! `status` at the top is `firing` when any event fires, else `resolved`. An episode is one
//! `episode_id` with one `opened_at`: the same drift coming back later keeps its `episode_id`
//! and gets a new `opened_at`. Delivery is at least once: de-duplicate on `notification_id`.

use serde_json::{json, Value};

use super::policy::{EventStatus, Notification};

/// Bumped when a field changes meaning or disappears.
pub const VERSION: &str = "1";

pub fn payload(n: &Notification, external_url: Option<&str>) -> Value {
    let c = &n.cluster;
    let status = if n.events.iter().any(|e| e.status == EventStatus::Firing) { "firing" } else { "resolved" };
    let events: Vec<Value> = n
        .events
        .iter()
        .map(|e| {
            json!({
                "episode_id": e.episode_id,
                "status": e.status,
                "reminder": e.reminder,
                "opened_at": e.opened_at,
                "resolved_at": e.resolved_at,
                "account_id": c.account_id,
                "region": c.region,
                "cluster": c.name,
                "rule": e.finding.rule_text().to_string(),
                "finding": e.finding,
            })
        })
        .collect();
    let mut body = json!({
        "version": VERSION,
        "notification_id": n.id,
        "created_at": n.created_at,
        "status": status,
        "account_id": c.account_id,
        "region": c.region,
        "cluster": c.name,
        "open_findings": n.open_count(),
        "events": events,
    });
    if let Some(url) = external_url {
        body["status_url"] = json!(format!("{}/", url.trim_end_matches('/')));
    }
    body
}
