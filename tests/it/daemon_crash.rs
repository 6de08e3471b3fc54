//! The outbox across a crash: the daemon killed with SIGKILL while the webhook receiver is down,
//! restarted once it is back, delivers every pending message exactly once and repeats none.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::daemon_harness::{free_port, Daemon, Fixture};

/// A webhook receiver on a fixed port that answers 200 and keeps every body.
fn receive_on(port: u16) -> Arc<Mutex<Vec<serde_json::Value>>> {
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("the receiver's port is free again");
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let store = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0u8; length];
            if reader.read_exact(&mut body).is_ok() {
                if let Ok(json) = serde_json::from_slice(&body) {
                    store.lock().unwrap().push(json);
                }
            }
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    bodies
}

/// (episode_id, status) → how many times it arrived.
fn deliveries(bodies: &[serde_json::Value]) -> BTreeMap<(String, String), usize> {
    let mut count = BTreeMap::new();
    for b in bodies {
        for e in b["events"].as_array().expect("a webhook body has events") {
            let key = (e["episode_id"].as_str().unwrap().to_string(), e["status"].as_str().unwrap().to_string());
            *count.entry(key).or_insert(0) += 1;
        }
    }
    count
}

/// The webhook events waiting in the state file's outbox, less the deliveries its journal
/// (`<state file>.delivered`, one quoted entry id per line) records.
fn pending(state_file: &std::path::Path) -> BTreeMap<(String, String), usize> {
    let Ok(text) = std::fs::read_to_string(state_file) else { return BTreeMap::new() };
    let Ok(state) = serde_json::from_str::<serde_json::Value>(&text) else { return BTreeMap::new() };
    let journal = std::fs::read_to_string(format!("{}.delivered", state_file.display())).unwrap_or_default();
    let delivered: Vec<String> = journal.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let mut count = BTreeMap::new();
    for entry in state["alerts"]["outbox"].as_array().cloned().unwrap_or_default() {
        let id = entry["id"].as_str().unwrap_or_default().to_string();
        if !entry.to_string().contains("webhook") || delivered.contains(&id) {
            continue;
        }
        let text = entry.to_string();
        let mut ids = Vec::new();
        collect_events(&entry, &mut ids);
        assert!(!ids.is_empty(), "an outbox entry names its episodes: {text}");
        for key in ids {
            *count.entry(key).or_insert(0) += 1;
        }
    }
    count
}

/// Finds (episode_id, status) pairs anywhere in an outbox entry, whatever its exact layout.
fn collect_events(v: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::Object(map) => {
            if let Some(id) = map.get("episode_id").and_then(|x| x.as_str()) {
                let status = map.get("status").and_then(|x| x.as_str()).unwrap_or("firing");
                out.push((id.to_string(), status.to_string()));
                return;
            }
            map.values().for_each(|x| collect_events(x, out));
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_events(x, out)),
        _ => {}
    }
}

#[test]
fn a_kill_9_while_the_receiver_is_down_loses_and_repeats_no_alert() {
    let hook_port = free_port();
    let mut fx = Fixture::demo();
    fx.webhooks.push(format!("http://127.0.0.1:{hook_port}/hook"));
    let mut first = fx.start();
    first.wait_ready();

    // Nothing listens on the receiver's port: every attempt fails to connect and the messages
    // wait in the outbox, on disk.
    let queued = first.wait_for(&format!("a webhook message queued in {}", fx.state_file.display()), |d| {
        let p = pending(&fx.state_file);
        (!p.is_empty() && d.log_text().contains("connect")).then_some(p)
    });
    first.signal("KILL");
    first.wait_exit(Duration::from_secs(5)).expect("SIGKILL ends the daemon");
    let queued_again = pending(&fx.state_file);
    assert_eq!(
        queued_again.keys().collect::<Vec<_>>(),
        queued.keys().collect::<Vec<_>>(),
        "the state on disk after the kill"
    );

    let bodies = receive_on(hook_port);
    let port = first.port;
    drop(first);
    let mut second = Daemon::spawn(&fx.config, port, &fx.path("daemon-after-kill.log"));
    second.wait_for("every queued message to arrive", |_| {
        let got = deliveries(&bodies.lock().unwrap());
        queued.keys().all(|k| got.contains_key(k)).then_some(())
    });
    // A few more poll cycles, and whatever they queued delivered: nothing may arrive twice, and
    // nothing new (the drift is unchanged).
    let clusters = second.report()["clusters"].as_array().map_or(1, Vec::len);
    second.wait_for_more_polls(3.0 * clusters as f64);
    second.wait_for("the outbox to empty", |_| pending(&fx.state_file).is_empty().then_some(()));
    let got = deliveries(&bodies.lock().unwrap());
    for (key, n) in &got {
        assert_eq!(*n, 1, "{key:?} was delivered {n} times");
    }
    assert_eq!(got.keys().collect::<Vec<_>>(), queued.keys().collect::<Vec<_>>(), "exactly the queued messages");
}
