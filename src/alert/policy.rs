//! The pure alert policy: findings open and close episodes; per poll, one notification per
//! cluster that changed; reminders after `alerts.repeat_interval`; the outbox each sink reads.
//! Time is an argument, never read here. The outbox's bookkeeping is here too: which sink an
//! entry is for (by name, never by position), its bound, and entries no configured sink takes.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::routing::Route;
use super::sink::{Granularity, SinkKind, SinkName};
use crate::model::{ClusterId, Finding, Severity};

/// Entries one sink may have queued; past it the oldest is dropped and counted, so a receiver
/// that is down for weeks cannot grow the state without bound.
pub const MAX_QUEUED_PER_SINK: usize = 1000;

/// Episodes and the outbox of undelivered notifications; persisted inside the state file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertState {
    /// Clusters with at least one open episode, by cluster key (`account/region/name`).
    #[serde(default)]
    pub clusters: BTreeMap<String, ClusterEpisodes>,
    /// Notifications not yet delivered, oldest first, one entry per sink. An entry is written
    /// before it is sent and removed only after the sink accepted it (or refused it for good).
    #[serde(default)]
    pub outbox: Vec<OutboxEntry>,
}

/// The open episodes of one cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterEpisodes {
    pub cluster: ClusterId,
    /// By episode id.
    pub open: BTreeMap<String, Episode>,
}

/// One finding from the poll that first reported it to the poll that no longer does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Episode {
    /// The finding id: a hash of account, region, cluster, group, kind and rule, so the same
    /// drift keeps the same id across polls and restarts. `opened_at` tells episodes of a
    /// finding that drifted, was fixed and drifted again apart.
    pub episode_id: String,
    pub opened_at: DateTime<Utc>,
    /// The last notification that named this episode firing (the opening one or a reminder).
    pub last_notified_at: DateTime<Utc>,
    /// The finding as last seen.
    pub finding: Finding,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventStatus {
    Firing,
    Resolved,
}

impl EventStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Firing => "firing",
            EventStatus::Resolved => "resolved",
        }
    }
}

/// One episode's change, as a notification carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub episode_id: String,
    pub status: EventStatus,
    /// Firing again only because `alerts.repeat_interval` passed with the drift still there.
    #[serde(default)]
    pub reminder: bool,
    pub opened_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// The finding as last seen; for an episode closed by an exception, the suppressed
    /// finding, so `suppressed_by` says why it closed.
    pub finding: Finding,
}

impl Event {
    /// How long the drift lasted, for a resolved event.
    pub fn lasted(&self) -> Option<chrono::Duration> {
        self.resolved_at.map(|end| end - self.opened_at)
    }
}

/// What one poll of one cluster changed: the unit a sink delivers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notification {
    /// Stable across retries and restarts, unique per cluster and poll.
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub cluster: ClusterId,
    /// New firing episodes first, then reminders, then resolved ones; by severity within each.
    pub events: Vec<Event>,
    /// Episodes of the cluster still open after this poll, by severity.
    #[serde(default)]
    pub open: BTreeMap<Severity, usize>,
}

/// Where the runbooks live (docs/runbooks.md); its sections are named after the alert rules.
pub const RUNBOOKS: &str = "https://github.com/sgdrift/sgdrift/blob/main/docs/runbooks.md";

impl Notification {
    /// The runbook section for what this notification reports: a closed required flow, else the
    /// worst severity that fires, else (only resolutions) how each kind is fixed.
    pub fn runbook_url(&self) -> String {
        let firing = || self.events.iter().filter(|e| e.status == EventStatus::Firing).map(|e| &e.finding);
        let anchor = if firing().any(|f| f.kind == crate::model::FindingKind::Flow) {
            "sgdriftrequiredflowclosed"
        } else {
            match firing().map(|f| f.severity).max() {
                Some(Severity::Critical) => "sgdriftcriticalfinding",
                Some(Severity::High) => "sgdrifthighfinding",
                _ => "remediation-by-finding-kind",
            }
        };
        format!("{RUNBOOKS}#{anchor}")
    }

    /// Episodes still open after this poll.
    pub fn open_count(&self) -> usize {
        self.open.values().sum()
    }

    pub fn count(&self, status: EventStatus, reminder: bool) -> usize {
        self.events.iter().filter(|e| e.status == status && e.reminder == reminder).count()
    }

    /// The part `route` is told about; `None` when nothing is left.
    pub fn for_route(&self, route: &Route) -> Option<Notification> {
        let wants = |s: Severity| route.wants(&self.cluster, s);
        let events: Vec<Event> = self.events.iter().filter(|e| wants(e.finding.severity)).cloned().collect();
        if events.is_empty() {
            return None;
        }
        let open = self.open.iter().filter(|(s, _)| wants(**s)).map(|(s, n)| (*s, *n)).collect();
        Some(Notification {
            id: self.id.clone(),
            created_at: self.created_at,
            cluster: self.cluster.clone(),
            events,
            open,
        })
    }

    /// One notification per event, for sinks that deliver per episode.
    fn per_episode(self) -> impl Iterator<Item = (String, Notification)> {
        let Notification { id, created_at, cluster, events, open } = self;
        events.into_iter().map(move |e| {
            let part = Notification {
                id: id.clone(),
                created_at,
                cluster: cluster.clone(),
                events: vec![],
                open: open.clone(),
            };
            (format!("{id}.{}", e.episode_id), Notification { events: vec![e], ..part })
        })
    }
}

/// A notification waiting for one sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxEntry {
    /// `<notification id>@<sink name>` (`<notification id>.<episode id>@<sink name>` for a sink
    /// that takes one episode at a time): unique in the outbox.
    pub id: String,
    /// The sink's name; `legacy:<kind>:<position>` for an entry of a version-1 state file that
    /// could not be mapped to a sink yet.
    pub sink: SinkName,
    pub enqueued_at: DateTime<Utc>,
    pub notification: Notification,
}

/// What the poll of one cluster found.
#[derive(Debug, Clone, Copy)]
pub enum PollOutcome<'a> {
    /// A fresh, successful poll and every finding it reported (suppressed ones included).
    Ok(&'a [Finding]),
    /// A failed or stale poll: it says nothing about the drift, so it opens, closes and
    /// reminds nothing.
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Re-notify drift that persists this long after its last notification; zero disables it.
    pub repeat_interval: Duration,
}

impl Policy {
    /// Applies one poll of `cluster` to `state`; returns the notification to send, if anything
    /// changed or a reminder is due. The outbox is not touched (see [`enqueue`]).
    pub fn observe(
        &self,
        state: &mut AlertState,
        cluster: &ClusterId,
        poll: PollOutcome<'_>,
        now: DateTime<Utc>,
    ) -> Option<Notification> {
        let PollOutcome::Ok(findings) = poll else {
            return None;
        };
        // Suppressed findings are not drift: an exception that covers an open episode closes it,
        // and one that expires lets the finding open a new episode.
        let mut drift: BTreeMap<&str, &Finding> = BTreeMap::new();
        let mut suppressed: BTreeMap<&str, &Finding> = BTreeMap::new();
        for f in findings {
            if f.is_drift() {
                drift.insert(&f.id, f);
            } else {
                suppressed.insert(&f.id, f);
            }
        }

        let key = cluster_key(cluster);
        let mut episodes = state
            .clusters
            .remove(&key)
            .unwrap_or_else(|| ClusterEpisodes { cluster: cluster.clone(), open: BTreeMap::new() });
        let repeat = chrono::Duration::from_std(self.repeat_interval).ok().filter(|d| !d.is_zero());

        let mut events = Vec::new();
        let closed: Vec<String> = episodes.open.keys().filter(|id| !drift.contains_key(id.as_str())).cloned().collect();
        for id in closed {
            let Some(ep) = episodes.open.remove(&id) else { continue };
            let finding = suppressed.get(id.as_str()).map_or(ep.finding, |f| (*f).clone());
            events.push(Event {
                episode_id: ep.episode_id,
                status: EventStatus::Resolved,
                reminder: false,
                opened_at: ep.opened_at,
                resolved_at: Some(now),
                finding,
            });
        }
        for (id, finding) in &drift {
            events.extend(open_or_remind(&mut episodes, id, finding, repeat, now));
        }

        let mut open = BTreeMap::new();
        for ep in episodes.open.values() {
            *open.entry(ep.finding.severity).or_insert(0) += 1;
        }
        if !episodes.open.is_empty() {
            state.clusters.insert(key.clone(), episodes);
        }
        if events.is_empty() {
            return None;
        }
        events.sort_by(|a, b| order(a).cmp(&order(b)));
        Some(Notification {
            id: notification_id(&key, now, &events),
            created_at: now,
            cluster: cluster.clone(),
            events,
            open,
        })
    }
}

/// A drift finding of this poll: opens its episode if it is new (a firing event), or updates
/// it and returns a reminder if `repeat` passed since it was last notified.
fn open_or_remind(
    episodes: &mut ClusterEpisodes,
    id: &str,
    finding: &Finding,
    repeat: Option<chrono::Duration>,
    now: DateTime<Utc>,
) -> Option<Event> {
    let Some(ep) = episodes.open.get_mut(id) else {
        let episode =
            Episode { episode_id: id.to_string(), opened_at: now, last_notified_at: now, finding: finding.clone() };
        episodes.open.insert(id.to_string(), episode);
        return Some(Event {
            episode_id: id.to_string(),
            status: EventStatus::Firing,
            reminder: false,
            opened_at: now,
            resolved_at: None,
            finding: finding.clone(),
        });
    };
    ep.finding = finding.clone();
    if repeat.is_none_or(|r| now - ep.last_notified_at < r) {
        return None;
    }
    ep.last_notified_at = now;
    Some(Event {
        episode_id: ep.episode_id.clone(),
        status: EventStatus::Firing,
        reminder: true,
        opened_at: ep.opened_at,
        resolved_at: None,
        finding: ep.finding.clone(),
    })
}

/// New before reminders before resolved; then by severity, highest first; then group and
/// rule, so a long list reads in a stable, grouped order.
#[allow(clippy::type_complexity)]
fn order(e: &Event) -> (EventStatus, bool, std::cmp::Reverse<Severity>, &str, String, i32, i32, String, &str) {
    let f = &e.finding;
    (
        e.status,
        e.reminder,
        std::cmp::Reverse(f.severity),
        &f.group_id,
        f.traffic.protocol_name(),
        f.traffic.from_port(),
        f.traffic.to_port(),
        f.peer.to_string(),
        &e.episode_id,
    )
}

/// What [`enqueue`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Enqueued {
    pub added: usize,
    /// Oldest entries dropped because their sink had [`MAX_QUEUED_PER_SINK`] queued.
    pub overflowed: usize,
}

/// Writes `notification` into the outbox once per route that wants at least one of its events
/// (once per event for a route that takes episodes one at a time).
pub fn enqueue(state: &mut AlertState, notification: &Notification, routes: &[Route], now: DateTime<Utc>) -> Enqueued {
    let mut done = Enqueued::default();
    for route in routes {
        let Some(part) = notification.for_route(route) else { continue };
        let parts: Vec<(String, Notification)> = match route.granularity {
            Granularity::Notification => vec![(part.id.clone(), part)],
            Granularity::Episode => part.per_episode().collect(),
        };
        for (key, part) in parts {
            let id = format!("{key}@{}", route.sink);
            if state.outbox.iter().any(|e| e.id == id) {
                continue;
            }
            state.outbox.push(OutboxEntry { id, sink: route.sink.clone(), enqueued_at: now, notification: part });
            done.added += 1;
        }
        done.overflowed += bound(state, &route.sink);
    }
    done
}

/// Drops the oldest entries of `sink` beyond [`MAX_QUEUED_PER_SINK`]; returns how many.
fn bound(state: &mut AlertState, sink: &SinkName) -> usize {
    let queued = state.outbox.iter().filter(|e| &e.sink == sink).count();
    let mut excess = queued.saturating_sub(MAX_QUEUED_PER_SINK);
    let dropped = excess;
    state.outbox.retain(|e| {
        if excess > 0 && &e.sink == sink {
            excess -= 1;
            return false;
        }
        true
    });
    dropped
}

/// Maps entries of a version-1 state (`legacy:<kind>:<position>`) to a configured sink where
/// that is unambiguous: the config has exactly one sink of that kind and the entry was for the
/// first one. Anything else stays in quarantine: a position says nothing about which receiver
/// it meant once sinks were added, removed or reordered. Returns (legacy key, new name) per
/// entry moved.
pub fn adopt_legacy(state: &mut AlertState, configured: &[(SinkName, SinkKind)]) -> Vec<(SinkName, SinkName)> {
    let only = |kind: SinkKind| {
        let mut of_kind = configured.iter().filter(|(_, k)| *k == kind);
        match (of_kind.next(), of_kind.next()) {
            (Some((name, _)), None) => Some(name.clone()),
            _ => None,
        }
    };
    let existing: HashSet<String> = state.outbox.iter().map(|e| e.id.clone()).collect();
    let mut moved = Vec::new();
    for entry in &mut state.outbox {
        let Some((kind, 0)) = entry.sink.legacy_position() else { continue };
        let Some(name) = only(kind) else { continue };
        let key = entry.id.rsplit_once('@').map_or(entry.id.as_str(), |(k, _)| k);
        let id = format!("{key}@{name}");
        if existing.contains(&id) {
            continue;
        }
        moved.push((std::mem::replace(&mut entry.sink, name), entry.sink.clone()));
        entry.id = id;
    }
    moved
}

/// Entries no configured sink will deliver: their sink is gone, or they are legacy entries in
/// quarantine. They are never sent elsewhere.
pub fn orphans<'a>(state: &'a AlertState, configured: &'a HashSet<SinkName>) -> impl Iterator<Item = &'a OutboxEntry> {
    state.outbox.iter().filter(move |e| !configured.contains(&e.sink))
}

/// Drops orphans queued longer than `keep_for` ago (a sink removed by mistake and put back
/// within it gets them after all); returns the entries dropped.
pub fn expire_orphans(
    state: &mut AlertState,
    configured: &HashSet<SinkName>,
    keep_for: Duration,
    now: DateTime<Utc>,
) -> Vec<OutboxEntry> {
    let keep_for = chrono::Duration::from_std(keep_for).unwrap_or(chrono::Duration::MAX);
    let (expired, kept) = std::mem::take(&mut state.outbox)
        .into_iter()
        .partition(|e| !configured.contains(&e.sink) && now - e.enqueued_at > keep_for);
    state.outbox = kept;
    expired
}

/// Drops the episodes of every cluster `keep` rejects (no longer configured, or gone from
/// AWS), without notifying: nobody saw the drift end, so a "resolved" would be a lie. A
/// receiver keeps those episodes open until a human closes them. Notifications already in the
/// outbox are still delivered. Returns the clusters dropped.
pub fn forget_clusters(state: &mut AlertState, keep: impl Fn(&ClusterId) -> bool) -> Vec<ClusterId> {
    let gone: Vec<String> = state.clusters.iter().filter(|(_, c)| !keep(&c.cluster)).map(|(k, _)| k.clone()).collect();
    gone.into_iter().filter_map(|k| state.clusters.remove(&k)).map(|c| c.cluster).collect()
}

/// The key of a cluster in the state file: `account/region/name`.
pub fn cluster_key(cluster: &ClusterId) -> String {
    cluster.to_string()
}

fn notification_id(key: &str, now: DateTime<Utc>, events: &[Event]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(key.as_bytes());
    h.update([0u8]);
    h.update(now.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true).as_bytes());
    for e in events {
        h.update([0u8]);
        h.update(e.episode_id.as_bytes());
        h.update([0u8]);
        h.update(e.status.as_str().as_bytes());
    }
    let digest = h.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{finding_id, FindingKind};

    #[test]
    fn a_notification_links_the_runbook_section_of_what_it_reports() {
        let event = |f: Finding, status: EventStatus| Event {
            episode_id: "e".into(),
            status,
            reminder: false,
            opened_at: DateTime::UNIX_EPOCH,
            resolved_at: None,
            finding: f,
        };
        let notification = |events: Vec<Event>| Notification {
            id: "n".into(),
            created_at: DateTime::UNIX_EPOCH,
            cluster: cluster("prod"),
            events,
            open: BTreeMap::new(),
        };
        let (firing, resolved) = (EventStatus::Firing, EventStatus::Resolved);
        // (events, anchor)
        let cases = [
            (
                vec![
                    event(Finding::test().high().build(), firing),
                    event(Finding::test().critical().flow(crate::model::FlowName::Kubelet).build(), firing),
                ],
                "sgdriftrequiredflowclosed",
            ),
            (
                vec![
                    event(Finding::test().medium().build(), firing),
                    event(Finding::test().critical().build(), firing),
                ],
                "sgdriftcriticalfinding",
            ),
            (
                vec![
                    event(Finding::test().high().build(), firing),
                    event(Finding::test().critical().build(), resolved),
                ],
                "sgdrifthighfinding",
            ),
            (vec![event(Finding::test().critical().build(), resolved)], "remediation-by-finding-kind"),
        ];
        let runbooks = include_str!("../../docs/runbooks.md").to_lowercase();
        for (events, anchor) in cases {
            assert_eq!(notification(events).runbook_url(), format!("{RUNBOOKS}#{anchor}"));
            let heading = runbooks.lines().any(|l| l.starts_with("## ") && l[3..].trim().replace(' ', "-") == anchor);
            assert!(heading, "docs/runbooks.md has no section #{anchor}");
        }
    }

    /// A route by a name as the config would give it (`slack:0` style names stand for any).
    fn route(name: &str, min_severity: Severity) -> Route {
        Route {
            sink: SinkName::derived(SinkKind::Webhook, name),
            min_severity,
            matcher: Default::default(),
            granularity: Granularity::Notification,
        }
    }

    fn cluster(name: &str) -> ClusterId {
        ClusterId { account_id: "111122223333".into(), region: "eu-west-1".into(), name: name.into() }
    }

    /// A finding named by a short label; its id is the real finding id of that label.
    fn finding(cluster_name: &str, label: &str, severity: Severity) -> Finding {
        let id = finding_id(&cluster(cluster_name), "sg-0abc", FindingKind::Unexpected, label);
        Finding::test().severity(severity).on("sg-0abc").reason(&format!("{label} is open")).id(&id).build()
    }

    fn suppressed(mut f: Finding) -> Finding {
        f.suppressed_by = Some("internal NLB NodePorts".into());
        f
    }

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-28T10:00:00Z").unwrap().with_timezone(&Utc)
            + chrono::Duration::minutes(minutes)
    }

    const HOUR: Duration = Duration::from_secs(3600);

    /// What a poll produced, by label: (label, status, reminder).
    fn summary(n: &Option<Notification>, labels: &[(&str, &Finding)]) -> Vec<(String, EventStatus, bool)> {
        let name = |id: &str| labels.iter().find(|(_, f)| f.id == id).map_or(id.to_string(), |(l, _)| l.to_string());
        n.iter().flat_map(|n| &n.events).map(|e| (name(&e.episode_id), e.status, e.reminder)).collect()
    }

    enum Poll {
        Ok(Vec<Finding>),
        Failed,
    }

    struct Step {
        minute: i64,
        poll: Poll,
        expect: Vec<(&'static str, EventStatus, bool)>,
    }

    fn step(minute: i64, poll: Poll, expect: Vec<(&'static str, EventStatus, bool)>) -> Step {
        Step { minute, poll, expect }
    }

    use EventStatus::{Firing, Resolved};

    #[test]
    fn every_transition_of_the_policy_notifies_exactly_what_changed() {
        let ssh = finding("prod", "ssh", Severity::Critical);
        let http = finding("prod", "http", Severity::Medium);
        let labels = [("ssh", &ssh), ("http", &http)];
        let scenarios: Vec<(&str, Duration, Vec<Step>)> = vec![
            (
                "first drift fires once and an unchanged poll says nothing",
                HOUR,
                vec![
                    step(
                        0,
                        Poll::Ok(vec![ssh.clone(), http.clone()]),
                        vec![("ssh", Firing, false), ("http", Firing, false)],
                    ),
                    step(5, Poll::Ok(vec![http.clone(), ssh.clone()]), vec![]),
                ],
            ),
            (
                "a revoked rule resolves its episode",
                HOUR,
                vec![
                    step(0, Poll::Ok(vec![ssh.clone()]), vec![("ssh", Firing, false)]),
                    step(5, Poll::Ok(vec![]), vec![("ssh", Resolved, false)]),
                    step(10, Poll::Ok(vec![]), vec![]),
                ],
            ),
            (
                "a failed poll resolves nothing and the next good poll sees the drift still open",
                HOUR,
                vec![
                    step(0, Poll::Ok(vec![ssh.clone()]), vec![("ssh", Firing, false)]),
                    step(5, Poll::Failed, vec![]),
                    step(10, Poll::Ok(vec![ssh.clone()]), vec![]),
                    step(15, Poll::Ok(vec![]), vec![("ssh", Resolved, false)]),
                ],
            ),
            (
                "a failed poll opens nothing either",
                HOUR,
                vec![step(0, Poll::Failed, vec![]), step(5, Poll::Ok(vec![ssh.clone()]), vec![("ssh", Firing, false)])],
            ),
            (
                "a new finding and a resolved one travel in the same notification",
                HOUR,
                vec![
                    step(0, Poll::Ok(vec![ssh.clone()]), vec![("ssh", Firing, false)]),
                    step(5, Poll::Ok(vec![http.clone()]), vec![("http", Firing, false), ("ssh", Resolved, false)]),
                ],
            ),
            (
                "a second finding in a drifted cluster fires alone",
                HOUR,
                vec![
                    step(0, Poll::Ok(vec![ssh.clone()]), vec![("ssh", Firing, false)]),
                    step(5, Poll::Ok(vec![ssh.clone(), http.clone()]), vec![("http", Firing, false)]),
                ],
            ),
            (
                "drift that persists is repeated after the repeat interval, then not before the next one",
                HOUR,
                vec![
                    step(0, Poll::Ok(vec![ssh.clone()]), vec![("ssh", Firing, false)]),
                    step(59, Poll::Ok(vec![ssh.clone()]), vec![]),
                    step(60, Poll::Ok(vec![ssh.clone()]), vec![("ssh", Firing, true)]),
                    step(90, Poll::Ok(vec![ssh.clone(), http.clone()]), vec![("http", Firing, false)]),
                    step(120, Poll::Ok(vec![ssh.clone(), http.clone()]), vec![("ssh", Firing, true)]),
                    step(150, Poll::Ok(vec![ssh.clone(), http.clone()]), vec![("http", Firing, true)]),
                ],
            ),
            (
                "a zero repeat interval never repeats",
                Duration::ZERO,
                vec![
                    step(0, Poll::Ok(vec![ssh.clone()]), vec![("ssh", Firing, false)]),
                    step(60 * 24 * 30, Poll::Ok(vec![ssh.clone()]), vec![]),
                ],
            ),
            (
                "a suppressed finding never notifies",
                HOUR,
                vec![
                    step(0, Poll::Ok(vec![suppressed(ssh.clone())]), vec![]),
                    step(120, Poll::Ok(vec![suppressed(ssh.clone())]), vec![]),
                    step(180, Poll::Ok(vec![]), vec![]),
                ],
            ),
            (
                "an exception that expires makes its finding fire",
                HOUR,
                vec![
                    step(0, Poll::Ok(vec![suppressed(ssh.clone())]), vec![]),
                    step(5, Poll::Ok(vec![ssh.clone()]), vec![("ssh", Firing, false)]),
                ],
            ),
            (
                "an exception added for open drift closes its episode",
                HOUR,
                vec![
                    step(0, Poll::Ok(vec![ssh.clone()]), vec![("ssh", Firing, false)]),
                    step(5, Poll::Ok(vec![suppressed(ssh.clone())]), vec![("ssh", Resolved, false)]),
                    step(10, Poll::Ok(vec![suppressed(ssh.clone())]), vec![]),
                ],
            ),
            (
                "drift that comes back opens a new episode",
                HOUR,
                vec![
                    step(0, Poll::Ok(vec![ssh.clone()]), vec![("ssh", Firing, false)]),
                    step(5, Poll::Ok(vec![]), vec![("ssh", Resolved, false)]),
                    step(10, Poll::Ok(vec![ssh.clone()]), vec![("ssh", Firing, false)]),
                ],
            ),
        ];
        for (name, repeat, steps) in scenarios {
            let policy = Policy { repeat_interval: repeat };
            let mut state = AlertState::default();
            for (i, s) in steps.iter().enumerate() {
                let poll = match &s.poll {
                    Poll::Ok(f) => PollOutcome::Ok(f),
                    Poll::Failed => PollOutcome::Failed,
                };
                let n = policy.observe(&mut state, &cluster("prod"), poll, at(s.minute));
                let got = summary(&n, &labels);
                let want: Vec<_> = s.expect.iter().map(|(l, st, r)| (l.to_string(), *st, *r)).collect();
                assert_eq!(got, want, "scenario `{name}`, step {i} (minute {})", s.minute);
            }
        }
    }

    #[test]
    fn a_failed_poll_leaves_the_state_untouched() {
        let policy = Policy { repeat_interval: HOUR };
        let mut state = AlertState::default();
        policy.observe(&mut state, &cluster("prod"), PollOutcome::Ok(&[finding("prod", "ssh", Severity::High)]), at(0));
        let before = state.clone();
        assert_eq!(policy.observe(&mut state, &cluster("prod"), PollOutcome::Failed, at(600)), None);
        assert_eq!(state, before);
    }

    #[test]
    fn an_episode_keeps_its_opening_time_and_a_resolution_names_how_long_it_lasted() {
        let policy = Policy { repeat_interval: HOUR };
        let mut state = AlertState::default();
        let ssh = finding("prod", "ssh", Severity::Critical);
        policy.observe(&mut state, &cluster("prod"), PollOutcome::Ok(std::slice::from_ref(&ssh)), at(0));
        policy.observe(&mut state, &cluster("prod"), PollOutcome::Ok(std::slice::from_ref(&ssh)), at(90));
        let n = policy.observe(&mut state, &cluster("prod"), PollOutcome::Ok(&[]), at(107)).unwrap();
        let e = &n.events[0];
        assert_eq!((e.opened_at, e.resolved_at), (at(0), Some(at(107))));
        assert_eq!(e.lasted(), Some(chrono::Duration::minutes(107)));
        assert_eq!(e.episode_id, ssh.id);
        assert!(state.clusters.is_empty(), "a cluster without open episodes is not kept");
    }

    #[test]
    fn an_episode_closed_by_an_exception_says_which_exception() {
        let policy = Policy { repeat_interval: HOUR };
        let mut state = AlertState::default();
        let ssh = finding("prod", "ssh", Severity::Critical);
        policy.observe(&mut state, &cluster("prod"), PollOutcome::Ok(std::slice::from_ref(&ssh)), at(0));
        let n = policy.observe(&mut state, &cluster("prod"), PollOutcome::Ok(&[suppressed(ssh)]), at(5)).unwrap();
        assert_eq!(n.events[0].finding.suppressed_by.as_deref(), Some("internal NLB NodePorts"));
    }

    #[test]
    fn clusters_are_notified_independently() {
        let policy = Policy { repeat_interval: HOUR };
        let mut state = AlertState::default();
        let a =
            policy.observe(&mut state, &cluster("a"), PollOutcome::Ok(&[finding("a", "ssh", Severity::High)]), at(0));
        let b =
            policy.observe(&mut state, &cluster("b"), PollOutcome::Ok(&[finding("b", "ssh", Severity::High)]), at(0));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!((a.cluster.name.as_str(), b.cluster.name.as_str()), ("a", "b"));
        assert_ne!(a.id, b.id);
        let a_again = policy.observe(&mut state, &cluster("a"), PollOutcome::Ok(&[]), at(5)).unwrap();
        assert_eq!(a_again.events[0].status, Resolved);
        assert_eq!(state.clusters.len(), 1, "b is still open");
    }

    #[test]
    fn the_notification_counts_what_stays_open_by_severity() {
        let policy = Policy { repeat_interval: HOUR };
        let mut state = AlertState::default();
        let all = [
            finding("prod", "ssh", Severity::Critical),
            finding("prod", "http", Severity::Medium),
            finding("prod", "egress", Severity::Low),
        ];
        policy.observe(&mut state, &cluster("prod"), PollOutcome::Ok(&all), at(0));
        let n = policy.observe(&mut state, &cluster("prod"), PollOutcome::Ok(&all[1..]), at(5)).unwrap();
        assert_eq!(n.open, BTreeMap::from([(Severity::Low, 1), (Severity::Medium, 1)]));
        assert_eq!(n.open_count(), 2);
    }

    #[test]
    fn each_route_gets_only_the_events_at_or_above_its_minimum_severity() {
        let policy = Policy { repeat_interval: HOUR };
        let routes = [route("slack:0", Severity::High), route("webhook:0", Severity::Low)];
        // (case, findings, entries per sink with their event counts)
        type Case = (&'static str, Vec<Finding>, Vec<(&'static str, usize)>);
        let cases: Vec<Case> = vec![
            (
                "critical and low",
                vec![finding("prod", "ssh", Severity::Critical), finding("prod", "egress", Severity::Low)],
                vec![("webhook:slack:0", 1), ("webhook:webhook:0", 2)],
            ),
            ("low only", vec![finding("prod", "egress", Severity::Low)], vec![("webhook:webhook:0", 1)]),
            (
                "high only",
                vec![finding("prod", "api", Severity::High)],
                vec![("webhook:slack:0", 1), ("webhook:webhook:0", 1)],
            ),
        ];
        for (name, findings, want) in cases {
            let mut state = AlertState::default();
            let n = policy.observe(&mut state, &cluster("prod"), PollOutcome::Ok(&findings), at(0)).unwrap();
            let added = enqueue(&mut state, &n, &routes, at(0));
            let got: Vec<(&str, usize)> =
                state.outbox.iter().map(|e| (e.sink.as_str(), e.notification.events.len())).collect();
            assert_eq!(got, want, "{name}");
            assert_eq!(added.added, want.len(), "{name}");
            for e in &state.outbox {
                let floor = routes.iter().find(|r| r.sink == e.sink).unwrap().min_severity;
                assert!(e.notification.open.keys().all(|s| *s >= floor), "{name}: open counts filtered too");
            }
        }
    }

    #[test]
    fn enqueueing_the_same_notification_twice_adds_it_once() {
        let policy = Policy { repeat_interval: HOUR };
        let mut state = AlertState::default();
        let n = policy
            .observe(&mut state, &cluster("prod"), PollOutcome::Ok(&[finding("prod", "ssh", Severity::High)]), at(0))
            .unwrap();
        let routes = [route("log", Severity::Low)];
        assert_eq!(enqueue(&mut state, &n, &routes, at(0)).added, 1);
        assert_eq!(enqueue(&mut state, &n, &routes, at(0)).added, 0);
        assert_eq!(state.outbox.len(), 1);
    }

    #[test]
    fn a_vanished_cluster_is_forgotten_without_a_resolved_notification() {
        let policy = Policy { repeat_interval: HOUR };
        let mut state = AlertState::default();
        for name in ["kept", "gone"] {
            let f = finding(name, "ssh", Severity::High);
            let n = policy.observe(&mut state, &cluster(name), PollOutcome::Ok(&[f]), at(0)).unwrap();
            enqueue(&mut state, &n, &[route("log", Severity::Low)], at(0));
        }
        let forgotten = forget_clusters(&mut state, |c| c.name == "kept");
        assert_eq!(forgotten, vec![cluster("gone")]);
        assert_eq!(state.clusters.keys().collect::<Vec<_>>(), vec![&cluster_key(&cluster("kept"))]);
        assert_eq!(state.outbox.len(), 2, "what was already queued is still delivered");
        // If it comes back, its drift is news again.
        let back = policy.observe(
            &mut state,
            &cluster("gone"),
            PollOutcome::Ok(&[finding("gone", "ssh", Severity::High)]),
            at(9),
        );
        assert_eq!(back.unwrap().events[0].status, Firing);
    }

    #[test]
    fn the_state_survives_a_round_trip_through_json() {
        let policy = Policy { repeat_interval: HOUR };
        let mut state = AlertState::default();
        let n = policy
            .observe(&mut state, &cluster("prod"), PollOutcome::Ok(&[finding("prod", "ssh", Severity::High)]), at(0))
            .unwrap();
        enqueue(&mut state, &n, &[route("slack:0", Severity::Low)], at(0));
        let text = serde_json::to_string(&state).unwrap();
        assert_eq!(serde_json::from_str::<AlertState>(&text).unwrap(), state);
        assert_eq!(serde_json::from_str::<AlertState>("{}").unwrap(), AlertState::default());
    }

    fn drift(state: &mut AlertState, name: &str, minute: i64) -> Notification {
        let findings = [finding(name, "ssh", Severity::High), finding(name, "http", Severity::Medium)];
        Policy { repeat_interval: HOUR }.observe(state, &cluster(name), PollOutcome::Ok(&findings), at(minute)).unwrap()
    }

    #[test]
    fn a_sink_that_takes_episodes_gets_one_entry_per_event() {
        let mut state = AlertState::default();
        let n = drift(&mut state, "prod", 0);
        let mut per_episode = route("pagerduty", Severity::Low);
        per_episode.granularity = Granularity::Episode;
        assert_eq!(enqueue(&mut state, &n, &[per_episode], at(0)).added, 2);
        for e in &state.outbox {
            assert_eq!(e.notification.events.len(), 1);
            let episode = &e.notification.events[0].episode_id;
            assert_eq!(e.id, format!("{}.{episode}@webhook:pagerduty", n.id));
        }
    }

    #[test]
    fn a_sink_keeps_at_most_its_bound_dropping_the_oldest() {
        let mut state = AlertState::default();
        let r = route("hook", Severity::Low);
        let mut overflowed = 0;
        for i in 0..MAX_QUEUED_PER_SINK + 3 {
            let n = drift(&mut AlertState::default(), &format!("c{i}"), 0);
            overflowed += enqueue(&mut state, &n, std::slice::from_ref(&r), at(0)).overflowed;
        }
        assert_eq!((state.outbox.len(), overflowed), (MAX_QUEUED_PER_SINK, 3));
        assert_eq!(state.outbox[0].notification.cluster.name, "c3", "the oldest went first");
    }

    fn entry(sink: SinkName, minute: i64) -> OutboxEntry {
        let n = drift(&mut AlertState::default(), "prod", minute);
        OutboxEntry { id: format!("{}@{sink}", n.id), sink, enqueued_at: at(minute), notification: n }
    }

    #[test]
    fn legacy_entries_go_to_a_sink_only_where_their_position_names_one_beyond_doubt() {
        let slack = (SinkName::explicit("oncall").unwrap(), SinkKind::Slack);
        let hook_a = (SinkName::explicit("siem").unwrap(), SinkKind::Webhook);
        let hook_b = (SinkName::explicit("audit").unwrap(), SinkKind::Webhook);
        let log = (SinkName::explicit("log").unwrap(), SinkKind::Log);
        let cases: Vec<(&str, Vec<(SinkName, SinkKind)>, Option<&str>)> = vec![
            ("slack:0", vec![slack.clone(), hook_a.clone()], Some("oncall")),
            ("webhook:0", vec![slack.clone(), hook_a.clone()], Some("siem")),
            ("webhook:0", vec![hook_b.clone(), hook_a.clone()], None),
            ("webhook:1", vec![hook_a.clone()], None),
            ("slack:0", vec![hook_a.clone()], None),
            ("log", vec![log.clone(), slack.clone()], Some("log")),
        ];
        for (legacy, configured, want) in cases {
            let mut state = AlertState { outbox: vec![entry(SinkName::legacy(legacy), 0)], ..Default::default() };
            let moved = adopt_legacy(&mut state, &configured);
            let now = state.outbox[0].sink.to_string();
            match want {
                Some(name) => {
                    assert_eq!(now, name, "{legacy}");
                    assert!(state.outbox[0].id.ends_with(&format!("@{name}")));
                    assert_eq!(moved.len(), 1);
                }
                None => assert_eq!((now.as_str(), moved.len()), (format!("legacy:{legacy}").as_str(), 0), "{legacy}"),
            }
        }
    }

    #[test]
    fn orphans_are_kept_until_they_are_older_than_the_keep_time_and_never_rekeyed() {
        let kept = SinkName::explicit("siem").unwrap();
        let gone = SinkName::explicit("old").unwrap();
        let mut state = AlertState {
            outbox: vec![
                entry(gone.clone(), 0),
                entry(SinkName::legacy("webhook:1"), 10),
                entry(kept.clone(), 0),
                entry(gone.clone(), 50),
            ],
            ..Default::default()
        };
        let configured = HashSet::from([kept.clone()]);
        assert_eq!(orphans(&state, &configured).count(), 3);
        let expired = expire_orphans(&mut state, &configured, HOUR, at(75));
        assert_eq!(expired.iter().map(|e| e.sink.to_string()).collect::<Vec<_>>(), vec!["old", "legacy:webhook:1"]);
        let left: Vec<String> = state.outbox.iter().map(|e| e.sink.to_string()).collect();
        assert_eq!(left, vec!["siem", "old"], "the configured sink's entry and the young orphan stay");
    }
}
