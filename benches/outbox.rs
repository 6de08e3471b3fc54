//! What one delivery costs the state file (issue 10): a ~10 MB state, then deliveries recorded
//! the old way (a full atomic rewrite of the state per delivery) and the current way (one line
//! appended to `<state>.delivered`, fsynced). Run with `cargo bench --bench outbox`; in a debug
//! build (`cargo test --bench outbox`) serialization is slower, so the gap is wider.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use sgdrift::alert::policy::{Notification, OutboxEntry};
use sgdrift::alert::SinkName;
use sgdrift::model::ClusterId;
use sgdrift::state::{ClusterState, PersistedState, StateStore};

const TARGET_BYTES: usize = 10 * 1024 * 1024;
const DELIVERIES: usize = 20;

/// A state of about [`TARGET_BYTES`]: clusters with many first-seen times, and queued entries.
fn state() -> PersistedState {
    let mut state = PersistedState::default();
    let now = Utc::now();
    let per_cluster = 500;
    let clusters = TARGET_BYTES / (per_cluster * 60);
    for c in 0..clusters {
        let report = serde_json::json!({
            "account_id": "111122223333", "region": "eu-west-1", "cluster": format!("cluster-{c:04}"),
            "endpoint_mode": null, "style": null, "status": "ok", "error": null,
            "groups": [], "findings": [], "flows": [] });
        let first_seen: BTreeMap<String, _> = (0..per_cluster).map(|i| (format!("{c:04}{i:036x}"), now)).collect();
        let cluster = ClusterState {
            report: serde_json::from_value(report).expect("a minimal cluster report"),
            first_seen,
            origin: serde_json::from_value(serde_json::json!({"region": "eu-west-1", "role_arn": null})).unwrap(),
            last_attempt: Some(now),
            last_error: None,
        };
        state.clusters.insert(format!("111122223333/eu-west-1/cluster-{c:04}"), cluster);
    }
    let sink = SinkName::explicit("hook").unwrap();
    for i in 0..2 * DELIVERIES {
        let cluster = ClusterId {
            account_id: "111122223333".into(),
            region: "eu-west-1".into(),
            name: format!("cluster-{i:04}"),
        };
        let notification =
            Notification { id: format!("n{i}"), created_at: now, cluster, events: vec![], open: BTreeMap::new() };
        state.alerts.outbox.push(OutboxEntry {
            id: format!("n{i}@hook"),
            sink: sink.clone(),
            enqueued_at: now,
            notification,
        });
    }
    state
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let store = StateStore::with_state(path.clone(), state());
    rt.block_on(store.flush()).unwrap();
    let size = std::fs::metadata(&path).unwrap().len() as f64 / 1e6;

    let ids: Vec<String> = (0..2 * DELIVERIES).map(|i| format!("n{i}@hook")).collect();
    let (rewrite, journal) = ids.split_at(DELIVERIES);
    let started = Instant::now();
    for id in rewrite {
        rt.block_on(store.update(|s| s.alerts.outbox.retain(|e| &e.id != id))).unwrap();
    }
    let full = started.elapsed() / DELIVERIES as u32;
    let started = Instant::now();
    for id in journal {
        rt.block_on(store.outbox_delivered(std::slice::from_ref(id), |_| ())).unwrap();
    }
    let append = started.elapsed() / DELIVERIES as u32;
    let rate = |d: Duration| 1.0 / d.as_secs_f64();
    println!(
        "outbox: state {size:.1} MB; per delivery: full rewrite {full:.1?} ({:.1} msg/s at most), journal append {append:.2?} ({:.0} msg/s at most)",
        rate(full),
        rate(append)
    );
}
