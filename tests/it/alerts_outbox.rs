//! The outbox survives a crash: notifications queued while the receiver is down are in the
//! state file, and a new dispatcher over a new `StateStore` of the same file delivers each
//! exactly once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::alerting::{at, cluster, finding, quick_backoff, report, settings, Running};
use crate::support::receiver::Receiver;
use sgdrift::model::Severity;
use sgdrift::state::StateStore;

const SLACK: &str = "/services/T000/B000/slack";
const HOOK: &str = "/hooks/sgdrift";

/// A config whose sinks point at `base` (scheme, host and port). The webhook is named: its URL
/// changes across the restart, and the name is what keeps its queue with it.
fn config(dir: &std::path::Path, base: &str) -> sgdrift::config::Settings {
    std::fs::write(dir.join("slack-url"), format!("{base}{SLACK}")).unwrap();
    settings(
        dir,
        &format!(
            "[[alerts.slack]]\nwebhook_url_file = \"slack-url\"\nmin_severity = \"low\"\n\n\
             [[alerts.webhook]]\nname = \"hook\"\nurl = \"{base}{HOOK}\"\nmin_severity = \"low\"\n"
        ),
    )
}

/// An address nothing listens on: bound, then released.
async fn dead_address() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_queued_while_the_receiver_is_down_survive_a_kill_and_are_delivered_once() {
    let dir = tempfile::tempdir().unwrap();
    let state_file = dir.path().join("state.json");
    let clusters = [cluster("prod-a"), cluster("prod-b"), cluster("prod-c")];
    let findings: Vec<_> =
        clusters.iter().map(|c| finding(c, "sg-0abc", 22, "0.0.0.0/0", Severity::Critical)).collect();

    // Before the kill: the receiver is down, every attempt fails to connect.
    {
        let down = config(dir.path(), &dead_address().await);
        let store = Arc::new(StateStore::load(state_file.clone()).unwrap());
        let run = Running::start(&down, store, quick_backoff()).await;
        for (c, f) in clusters.iter().zip(&findings) {
            run.poll(&report(c, vec![f.clone()]), true, at(0)).await;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while run.metric(
            "sgdrift_notifications_failed_total",
            &[("integration", "webhook"), ("reason", "connection_refused")],
        ) < 2.0
        {
            assert!(Instant::now() < deadline, "no delivery attempt against the dead receiver");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(run.outbox_len().await, 6, "three clusters, two sinks, nothing delivered");
        // The kill: no graceful stop, everything in memory dropped.
        run.task.abort();
    }

    // After the restart: a new store from the same file, a new dispatcher, the receiver up.
    let receiver = Receiver::start().await;
    let up = config(dir.path(), &format!("http://{}", receiver.addr));
    let store = Arc::new(StateStore::load(state_file.clone()).unwrap());
    assert_eq!(
        store.read(|s| s.alerts.outbox.len()).await,
        6,
        "the outbox was not in the state file: a restart would lose these alerts"
    );
    let mut run = Running::start(&up, store, quick_backoff()).await;
    run.drained().await;
    run.stop().await;

    let mut delivered: BTreeMap<String, usize> = BTreeMap::new();
    for r in receiver.requests(HOOK) {
        for e in r.body["events"].as_array().unwrap() {
            assert_eq!(e["status"], "firing");
            *delivered.entry(e["episode_id"].as_str().unwrap().to_string()).or_default() += 1;
        }
    }
    let expected: BTreeMap<String, usize> = findings.iter().map(|f| (f.id.clone(), 1)).collect();
    assert_eq!(delivered, expected, "each episode delivered exactly once to the webhook");
    let mut slack_clusters: Vec<String> = receiver
        .requests(SLACK)
        .iter()
        .map(|r| r.body["blocks"][0]["text"]["text"].as_str().unwrap().rsplit(' ').next().unwrap().to_string())
        .collect();
    slack_clusters.sort();
    assert_eq!(slack_clusters, vec!["prod-a", "prod-b", "prod-c"], "one Slack message per cluster, once");

    // The episodes survived too: the same drift on the next poll is not news.
    let store = Arc::new(StateStore::load(state_file).unwrap());
    let run = Running::start(&up, store, quick_backoff()).await;
    run.poll(&report(&clusters[0], vec![findings[0].clone()]), true, at(5)).await;
    assert_eq!(run.outbox_len().await, 0, "a restart made old drift fire again");
}

/// Two webhooks whose URLs come from files, each routed to its own clusters (`a-*`, `b-*`), in
/// the order given; `extra` adds sinks before them.
fn routed(dir: &std::path::Path, order: &[&str], extra: &str) -> sgdrift::config::Settings {
    let sinks: String = order
        .iter()
        .map(|s| format!("[[alerts.webhook]]\nurl_file = \"{s}-url\"\nmatch = {{ clusters = [\"{s}-*\"] }}\n\n"))
        .collect();
    settings(dir, &format!("{extra}{sinks}"))
}

fn point(dir: &std::path::Path, sink: &str, base: &str) {
    std::fs::write(dir.join(format!("{sink}-url")), format!("{base}/{sink}")).unwrap();
}

/// The clusters each receiver path got, with how many times.
fn received(receiver: &Receiver, path: &str) -> BTreeMap<String, usize> {
    let mut got = BTreeMap::new();
    for r in receiver.requests(path) {
        *got.entry(r.body["cluster"].as_str().unwrap().to_string()).or_default() += 1;
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reordering_and_inserting_sinks_with_alerts_queued_sends_each_receiver_exactly_its_own() {
    for restart in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let state_file = dir.path().join("state.json");
        let dead = dead_address().await;
        point(dir.path(), "a", &dead);
        point(dir.path(), "b", &dead);
        let before = routed(dir.path(), &["a", "b"], "");
        let store = Arc::new(StateStore::load(state_file.clone()).unwrap());
        let mut run = Running::start(&before, store.clone(), quick_backoff()).await;
        for name in ["a-1", "a-2", "b-1"] {
            let c = cluster(name);
            run.poll(&report(&c, vec![finding(&c, "sg-0abc", 22, "0.0.0.0/0", Severity::Critical)]), true, at(0)).await;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while run.metric(
            "sgdrift_notifications_failed_total",
            &[("integration", "webhook"), ("reason", "connection_refused")],
        ) < 2.0
        {
            assert!(Instant::now() < deadline, "no delivery attempt against the dead receiver");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(run.outbox_len().await, 3);
        if restart {
            run.task.abort(); // a kill: nothing flushed
        } else {
            run.stop().await; // a SIGHUP stops the workers and keeps the store
        }

        // The edit: a new sink inserted first, the two others swapped; the receivers are up.
        let receiver = Receiver::start().await;
        let live = format!("http://{}", receiver.addr);
        for s in ["a", "b", "c"] {
            point(dir.path(), s, &live);
        }
        let after = routed(dir.path(), &["b", "a"], "[[alerts.webhook]]\nurl_file = \"c-url\"\n\n");
        let store = if restart { Arc::new(StateStore::load(state_file.clone()).unwrap()) } else { store };
        let mut run = Running::start(&after, store, quick_backoff()).await;
        run.drained().await;
        run.stop().await;

        let once = |names: &[&str]| names.iter().map(|n| (n.to_string(), 1)).collect::<BTreeMap<_, _>>();
        let mode = if restart { "restart" } else { "reload" };
        assert_eq!(received(&receiver, "/a"), once(&["a-1", "a-2"]), "{mode}: receiver a");
        assert_eq!(received(&receiver, "/b"), once(&["b-1"]), "{mode}: receiver b");
        assert_eq!(received(&receiver, "/c"), BTreeMap::new(), "{mode}: the new sink gets no old alert");
    }
}

/// Rewrites a state file as sgdrift 0.1 wrote it: version 1, the outbox keyed by position.
fn as_version_1(state_file: &std::path::Path, position_of: &dyn Fn(&str) -> String) {
    let mut state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(state_file).unwrap()).unwrap();
    state["version"] = 1.into();
    for entry in state["alerts"]["outbox"].as_array_mut().unwrap() {
        let position = position_of(entry["sink"].as_str().unwrap());
        let id = format!("{}@{position}", entry["notification"]["id"].as_str().unwrap());
        entry["sink"] = position.into();
        entry["id"] = id.into();
    }
    std::fs::write(state_file, serde_json::to_string(&state).unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_position_keyed_outbox_goes_only_where_its_position_is_beyond_doubt_and_the_rest_is_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let state_file = dir.path().join("state.json");
    let dead = dead_address().await;
    point(dir.path(), "a", &dead);
    point(dir.path(), "b", &dead);
    // Queue one alert per sink with the receivers down, then make the file an old one.
    {
        let store = Arc::new(StateStore::load(state_file.clone()).unwrap());
        let settings = routed(dir.path(), &["a", "b"], "");
        let run = Running::start(&settings, store, quick_backoff()).await;
        for name in ["a-1", "b-1"] {
            let c = cluster(name);
            // Queued now: a quarantined entry is kept for repeat_interval from when it was queued.
            run.poll(
                &report(&c, vec![finding(&c, "sg-0abc", 22, "0.0.0.0/0", Severity::Critical)]),
                true,
                chrono::Utc::now(),
            )
            .await;
        }
        run.task.abort();
    }
    as_version_1(&state_file, &|sink| if sink.ends_with("a-url") { "webhook:0".into() } else { "webhook:1".into() });

    let receiver = Receiver::start().await;
    let live = format!("http://{}", receiver.addr);
    point(dir.path(), "a", &live);
    point(dir.path(), "b", &live);
    // Two webhooks: which was webhook:0 cannot be known, so nothing is sent.
    let store = Arc::new(StateStore::load(state_file.clone()).unwrap());
    let mut run = Running::start(&routed(dir.path(), &["b", "a"], ""), store.clone(), quick_backoff()).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while run.metric("sgdrift_notification_queue_orphaned", &[]) < 2.0 {
        assert!(Instant::now() < deadline, "the legacy entries were not counted as quarantined");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    run.stop().await;
    assert_eq!(receiver.requests("/a").len() + receiver.requests("/b").len(), 0, "a position was guessed");

    // One webhook left: webhook:0 is its alert beyond doubt; webhook:1 stays quarantined.
    let mut run = Running::start(&routed(dir.path(), &["a"], ""), store, quick_backoff()).await;
    receiver.wait_for("/a", 1).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while run.outbox_len().await > 1 {
        assert!(Instant::now() < deadline, "the delivered entry did not leave the outbox");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    run.stop().await;
    assert_eq!(received(&receiver, "/a"), BTreeMap::from([("a-1".to_string(), 1)]));
    assert_eq!(run.metric("sgdrift_notification_queue_orphaned", &[]), 1.0);
    let left = run.store.read(|s| s.alerts.outbox.iter().map(|e| e.sink.to_string()).collect::<Vec<_>>()).await;
    assert_eq!(left, vec!["legacy:webhook:1"]);
}
