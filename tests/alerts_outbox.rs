//! The outbox survives a crash: notifications queued while the receiver is down are in the
//! state file, and a new dispatcher over a new `StateStore` of the same file delivers each
//! exactly once.

#[path = "support/alerting.rs"]
mod alerting;
#[path = "support/receiver.rs"]
mod receiver;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alerting::{at, cluster, finding, quick_backoff, report, settings, Running};
use receiver::Receiver;
use sgdrift::model::Severity;
use sgdrift::state::StateStore;

const SLACK: &str = "/services/T000/B000/slack";
const HOOK: &str = "/hooks/sgdrift";

/// A config whose sinks point at `base` (scheme, host and port).
fn config(dir: &std::path::Path, base: &str) -> sgdrift::config::Settings {
    std::fs::write(dir.join("slack-url"), format!("{base}{SLACK}")).unwrap();
    settings(
        dir,
        &format!(
            "[[alerts.slack]]\nwebhook_url_file = \"slack-url\"\nmin_severity = \"low\"\n\n\
             [[alerts.webhook]]\nurl = \"{base}{HOOK}\"\nmin_severity = \"low\"\n"
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
        while run.metric("sgdrift_notifications_failed_total", &[("integration", "webhook"), ("reason", "connect")])
            < 2.0
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
