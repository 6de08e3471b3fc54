//! `sgdrift run` end to end: the real binary on the demo data (files source, 1 s interval) on a
//! loopback port, observed through /metrics, /api/v1/report, /, /readyz and its state file.

use crate::daemon_harness;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::daemon_harness::{
    assert_matches_report_schema, find, mentions_resolved, select, write_atomically, Daemon, Fixture, Receiver, Sample,
    PATIENCE,
};
use serde_json::{json, Value};

/// Account, region and name of a cluster of the report, as metric labels.
fn ids(cluster: &Value) -> [(&'static str, String); 3] {
    [
        ("account_id", cluster["account_id"].as_str().unwrap().to_string()),
        ("region", cluster["region"].as_str().unwrap().to_string()),
        ("eks_cluster", cluster["cluster"].as_str().unwrap().to_string()),
    ]
}

fn labels<'a>(ids: &'a [(&'static str, String); 3], extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    ids.iter().map(|(k, v)| (*k, v.as_str())).chain(extra.iter().copied()).collect()
}

fn clusters(report: &Value) -> Vec<Value> {
    report["clusters"].as_array().expect("clusters in the report").clone()
}

fn cluster_named(report: &Value, name: &str) -> Value {
    clusters(report).into_iter().find(|c| c["cluster"] == name).unwrap_or_else(|| panic!("`{name}` not in the report"))
}

/// The (labels, value) of every series of `name` for one cluster.
fn series(
    samples: &[Sample],
    name: &str,
    ids: &[(&'static str, String); 3],
) -> BTreeSet<(Vec<(String, String)>, String)> {
    select(samples, name, &labels(ids, &[]))
        .into_iter()
        .map(|s| (s.labels.clone().into_iter().collect(), s.value.to_string()))
        .collect()
}

fn finding_ids(cluster: &Value) -> BTreeSet<String> {
    cluster["findings"].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap().to_string()).collect()
}

fn now_s() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}

fn sum(samples: &[Sample], name: &str) -> f64 {
    samples.iter().filter(|s| s.name == name).map(|s| s.value).sum()
}

#[test]
fn injected_drift_shows_in_the_metrics_and_disappears_when_the_rule_is_removed() {
    let fx = Fixture::demo();
    let started = now_s();
    let mut d = fx.start();
    d.wait_ready();
    let report = d.report();
    let clean = clusters(&report)
        .into_iter()
        .find(|c| c["status"] == "ok")
        .expect("the demo has a cluster without drift under eks-minimal");
    let name = clean["cluster"].as_str().unwrap().to_string();
    let ids = ids(&clean);
    let sg = clean["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["role"] == "cluster")
        .and_then(|g| g["id"].as_str())
        .expect("the clean cluster has a cluster security group")
        .to_string();
    let group = [("security_group_id", sg.as_str()), ("role", "cluster")];

    let r = d.get("/metrics");
    assert_eq!(r.header("content-type"), Some("text/plain; version=0.0.4"));
    let m = daemon_harness::parse_metrics(&r.body);
    assert_eq!(find(&m, "sgdrift_security_group_drifted", &labels(&ids, &group)).map(|s| s.value), Some(0.0));
    assert!(find(&m, "sgdrift_security_group_info", &labels(&ids, &group)).is_some());
    assert!(series(&m, "sgdrift_findings", &ids).is_empty(), "a clean cluster has no findings series");
    assert!(find(&m, "sgdrift_security_group_drift_first_seen_timestamp_seconds", &labels(&ids, &group)).is_none());
    let mode = clean["endpoint_mode"].as_str().unwrap();
    let style = clean["style"].as_str().unwrap();
    let info = labels(&ids, &[("endpoint_mode", mode), ("style", style)]);
    assert_eq!(find(&m, "sgdrift_cluster_info", &info).map(|s| s.value), Some(1.0));
    let flows = select(&m, "sgdrift_required_flow_open", &labels(&ids, &[]));
    let flow_names: BTreeSet<&str> = flows.iter().map(|s| s.label("flow")).collect();
    for flow in ["kubelet", "api", "dns"] {
        assert!(flow_names.contains(flow), "no sgdrift_required_flow_open for {flow}: {flow_names:?}");
    }
    assert!(flows.iter().all(|s| s.value == 1.0), "a clean cluster has every required flow open: {flows:?}");
    assert_eq!(find(&m, "sgdrift_cluster_poll_success", &labels(&ids, &[])).map(|s| s.value), Some(1.0));
    let last = find(&m, "sgdrift_cluster_last_successful_poll_timestamp_seconds", &labels(&ids, &[])).unwrap().value;
    assert!(last >= started.floor() && last <= now_s() + 1.0, "last success {last} not between {started} and now");
    let region = [("account_id", ids[0].1.as_str()), ("region", ids[1].1.as_str())];
    assert!(find(&m, "sgdrift_polls_total", &region).unwrap().value >= 1.0);
    assert_eq!(find(&m, "sgdrift_poll_failures_total", &region).map_or(0.0, |s| s.value), 0.0);
    assert!(find(&m, "sgdrift_poll_duration_seconds_count", &[]).unwrap().value >= 1.0);
    assert_eq!(find(&m, "sgdrift_build_info", &[("version", env!("CARGO_PKG_VERSION"))]).map(|s| s.value), Some(1.0));

    // SSH from anywhere on the cluster security group.
    let file = fx.cluster_dir(&name).join("describe-security-groups.json");
    let original = fs::read_to_string(&file).unwrap();
    let mut groups: Value = serde_json::from_str(&original).unwrap();
    let target = groups["SecurityGroups"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|g| g["GroupId"] == sg.as_str())
        .expect("the cluster security group is in describe-security-groups.json");
    target["IpPermissions"].as_array_mut().unwrap().push(json!({
        "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
        "IpRanges": [{"CidrIp": "0.0.0.0/0", "Description": "debugging"}],
        "Ipv6Ranges": [], "PrefixListIds": [], "UserIdGroupPairs": []
    }));
    let injected = now_s();
    write_atomically(&file, &serde_json::to_string_pretty(&groups).unwrap());

    let drifted = labels(&ids, &group);
    d.wait_for("the cluster SG to be drifted", |d| {
        (d.value("sgdrift_security_group_drifted", &drifted) == Some(1.0)).then_some(())
    });
    let m = d.metrics();
    let critical = labels(&ids, &[("role", "cluster"), ("kind", "unexpected"), ("severity", "critical")]);
    assert_eq!(
        find(&m, "sgdrift_findings", &critical).map(|s| s.value),
        Some(1.0),
        "{:?}",
        series(&m, "sgdrift_findings", &ids)
    );
    let first = find(&m, "sgdrift_security_group_drift_first_seen_timestamp_seconds", &drifted)
        .expect("a drifted SG has a first-seen time")
        .value;
    assert!(
        first >= injected.floor() && first <= now_s() + 1.0,
        "first seen {first} is not after the injection at {injected}"
    );
    let report = d.report();
    let finding = cluster_named(&report, &name)["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["from_port"] == 22 && f["peer"] == "0.0.0.0/0")
        .cloned()
        .expect("the injected rule is a finding in the report");
    assert_eq!((finding["kind"].as_str(), finding["severity"].as_str()), (Some("unexpected"), Some("critical")));

    write_atomically(&file, &original);
    d.wait_for("the drift to be gone", |d| {
        (d.value("sgdrift_security_group_drifted", &drifted) == Some(0.0)).then_some(())
    });
    let m = d.metrics();
    assert!(series(&m, "sgdrift_findings", &ids).is_empty(), "{:?}", series(&m, "sgdrift_findings", &ids));
    assert!(find(&m, "sgdrift_security_group_drift_first_seen_timestamp_seconds", &drifted).is_none());
    assert_eq!(cluster_named(&d.report(), &name)["status"], "ok");
}

#[test]
fn a_failed_poll_keeps_the_findings_marked_stale_resolves_nothing_and_recovers_by_itself() {
    let receiver = Receiver::start();
    let mut fx = Fixture::demo();
    fx.webhooks.push(receiver.url());
    let mut d = fx.start();
    d.wait_ready();
    let report = d.report();
    let drifted =
        clusters(&report).into_iter().find(|c| c["status"] == "drift").expect("the demo has a drifted cluster");
    let name = drifted["cluster"].as_str().unwrap().to_string();
    let ids = ids(&drifted);
    let before_ids = finding_ids(&drifted);
    let before_series = series(&d.metrics(), "sgdrift_findings", &ids);
    assert!(!before_series.is_empty());
    d.wait_for("the firing notification at the webhook", |_| (!receiver.bodies().is_empty()).then_some(()));
    for body in receiver.bodies() {
        let payload: Value = serde_json::from_str(&body).expect("the webhook body is JSON");
        daemon_harness::schema::assert_matches_schema("webhook.schema.json", "the daemon's webhook payload", &payload);
    }

    let file = fx.cluster_dir(&name).join("describe-security-groups.json");
    let original = fs::read_to_string(&file).unwrap();
    write_atomically(&file, "{\"SecurityGroups\": [ {\"GroupId\": ");
    let success = labels(&ids, &[]);
    d.wait_for("the cluster's poll to fail", |d| {
        (d.value("sgdrift_cluster_poll_success", &success) == Some(0.0)).then_some(())
    });
    let region = [("account_id", ids[0].1.as_str()), ("region", ids[1].1.as_str())];
    let polls = d.value("sgdrift_polls_total", &region).unwrap();
    d.wait_for("two more polls", |d| (d.value("sgdrift_polls_total", &region)? >= polls + 2.0).then_some(()));

    let m = d.metrics();
    assert_eq!(series(&m, "sgdrift_findings", &ids), before_series, "a failed poll changed the findings");
    assert!(find(&m, "sgdrift_poll_failures_total", &region).unwrap().value >= 1.0);
    assert!(find(&m, "sgdrift_cluster_last_successful_poll_timestamp_seconds", &success).is_some());
    let failing = cluster_named(&d.report(), &name);
    assert_eq!(failing["stale"], true);
    assert_eq!(failing["status"], "error");
    let error = failing["error"].as_str().expect("the error is in the report");
    assert!(error.contains("describe-security-groups.json"), "the error does not name the file: {error}");
    assert_eq!(finding_ids(&failing), before_ids);
    let resolved: Vec<String> = receiver
        .bodies()
        .into_iter()
        .filter(|b| serde_json::from_str::<Value>(b).map(|v| mentions_resolved(&v)).unwrap_or(false))
        .collect();
    assert!(resolved.is_empty(), "a failed poll resolved something: {resolved:?}");

    write_atomically(&file, &original);
    d.wait_for("the cluster's poll to recover", |d| {
        (d.value("sgdrift_cluster_poll_success", &success) == Some(1.0)).then_some(())
    });
    let recovered = cluster_named(&d.report(), &name);
    assert_eq!(recovered["stale"], false);
    assert_eq!(recovered["status"], "drift");
    assert!(recovered["error"].is_null());
    assert_eq!(finding_ids(&recovered), before_ids);
    assert_eq!(series(&d.metrics(), "sgdrift_findings", &ids), before_series);
    assert!(receiver
        .bodies()
        .iter()
        .all(|b| !serde_json::from_str::<Value>(b).map(|v| mentions_resolved(&v)).unwrap_or(false)));
}

/// Every `sgdrift_security_group_drift_first_seen_timestamp_seconds` series → its value.
fn first_seen(d: &Daemon) -> BTreeMap<Vec<(String, String)>, f64> {
    d.metrics()
        .into_iter()
        .filter(|s| s.name == "sgdrift_security_group_drift_first_seen_timestamp_seconds")
        .map(|s| (s.labels.into_iter().collect(), s.value))
        .collect()
}

#[test]
fn sigterm_exits_zero_with_the_state_written_and_a_restart_keeps_first_seen_times() {
    let fx = Fixture::demo();
    let mut d = fx.start();
    d.wait_ready();
    let before = first_seen(&d);
    assert!(!before.is_empty(), "the demo has drift, so first-seen times");
    let report = d.report();

    d.signal("TERM");
    // The contract of design.md: a clean shutdown within 5 s (Kubernetes waits longer).
    let status =
        d.wait_exit(Duration::from_secs(5)).unwrap_or_else(|| panic!("no exit 5 s after SIGTERM\n{}", d.log_text()));
    assert_eq!(status.code(), Some(0), "{}", d.log_text());
    let state: Value = serde_json::from_str(&fs::read_to_string(&fx.state_file).expect("the state file is written"))
        .expect("the state file is JSON");
    for cluster in clusters(&report) {
        let key = format!(
            "{}/{}/{}",
            cluster["account_id"].as_str().unwrap(),
            cluster["region"].as_str().unwrap(),
            cluster["cluster"].as_str().unwrap()
        );
        let saved = &state["clusters"][&key];
        assert_eq!(
            saved["report"]["findings"].as_array().map(Vec::len),
            cluster["findings"].as_array().map(Vec::len),
            "{key}"
        );
        assert_eq!(
            saved["first_seen"].as_object().map(|m| m.len()),
            cluster["findings"].as_array().map(Vec::len),
            "{key}"
        );
    }

    // First-seen times have millisecond resolution and the restart polls later than any poll
    // of the first run: times a lost state gave afresh would differ.
    let latest = before.values().copied().fold(f64::MIN, f64::max);
    assert!(now_s() > latest, "the first run's first-seen times ({latest}) lie in the past");
    let mut again = fx.start();
    again.wait_ready();
    assert_eq!(first_seen(&again), before);
}

#[test]
fn sighup_with_a_broken_config_keeps_the_running_one_and_a_valid_one_takes_effect() {
    let fx = Fixture::demo();
    let mut d = fx.start();
    d.wait_ready();
    assert_eq!(d.value("sgdrift_config_last_reload_successful", &[]), Some(1.0));
    let loaded = d.value("sgdrift_config_last_reload_success_timestamp_seconds", &[]).unwrap();
    let names: Vec<String> = clusters(&d.report()).iter().map(|c| c["cluster"].as_str().unwrap().to_string()).collect();
    assert!(names.len() >= 2, "the demo has several clusters");

    let good = fs::read_to_string(&fx.config).unwrap();
    write_atomically(&fx.config, &format!("{good}\n[[targets]\nregions = [\n"));
    d.signal("HUP");
    d.wait_for("the failed reload", |d| {
        (d.value("sgdrift_config_last_reload_successful", &[]) == Some(0.0)).then_some(())
    });
    assert!(d.log_text().contains(&fx.config.display().to_string()), "the reload error names the config file");
    let polls = sum(&d.metrics(), "sgdrift_polls_total");
    d.wait_for("polls to go on", |d| (sum(&d.metrics(), "sgdrift_polls_total") >= polls + 2.0).then_some(()));
    assert_eq!(clusters(&d.report()).len(), names.len());
    assert_eq!(d.try_get("/readyz").map(|r| r.status), Some(200));

    // A valid config that names only one cluster: the others leave /metrics.
    let mut doc: toml::Table = good.parse().unwrap();
    for target in doc["targets"].as_array_mut().unwrap() {
        target.as_table_mut().unwrap().insert("clusters".into(), toml::Value::Array(vec![names[0].clone().into()]));
    }
    write_atomically(&fx.config, &toml::to_string(&doc).unwrap());
    d.signal("HUP");
    d.wait_for("the successful reload", |d| {
        (d.value("sgdrift_config_last_reload_successful", &[]) == Some(1.0)).then_some(())
    });
    assert!(d.value("sgdrift_config_last_reload_success_timestamp_seconds", &[]).unwrap() > loaded);
    d.wait_for("only the named cluster in /metrics", |d| {
        let m = d.metrics();
        let left: BTreeSet<&str> =
            m.iter().filter(|s| s.name == "sgdrift_cluster_info").map(|s| s.label("eks_cluster")).collect();
        (left == BTreeSet::from([names[0].as_str()])).then_some(())
    });
    let m = d.metrics();
    for other in &names[1..] {
        assert!(m.iter().all(|s| s.label("eks_cluster") != other), "{other} still in /metrics");
    }
}

#[test]
fn readyz_is_503_until_the_first_poll_cycle_has_finished() {
    let fx = Fixture::demo();
    // (name, region) of every demo cluster, from its ARN.
    let demo: Vec<(String, String)> = fs::read_dir(fx.path("demo"))
        .unwrap()
        .filter_map(|e| {
            let text = fs::read_to_string(e.ok()?.path().join("describe-cluster.json")).ok()?;
            let v: Value = serde_json::from_str(&text).ok()?;
            let region = v["cluster"]["arn"].as_str()?.split(':').nth(3)?.to_string();
            Some((v["cluster"]["name"].as_str()?.to_string(), region))
        })
        .collect();
    let (name, region) = demo.first().expect("a demo cluster").clone();
    let (elsewhere, _) = demo.iter().find(|(_, r)| *r != region).expect("the demo has clusters in two regions").clone();
    // This cluster's groups behind a FIFO: its first poll blocks until the test writes them.
    let file = fx.cluster_dir(&name).join("describe-security-groups.json");
    let content = fs::read_to_string(&file).unwrap();
    fs::remove_file(&file).unwrap();
    let made = std::process::Command::new("mkfifo").arg(&file).status().expect("mkfifo (coreutils) is needed");
    assert!(made.success());

    let mut d = fx.start();
    d.wait_for("/healthz", |d| d.try_get("/healthz").filter(|r| r.status == 200).map(|_| ()));
    let r = d.get("/readyz");
    assert_eq!(r.status, 503, "ready before the first poll cycle finished: {}", r.body);
    // The other region's target is polled meanwhile: a stuck target delays no other.
    d.wait_for("the other region's cluster to be polled", |d| {
        let m = d.metrics();
        let polled = m
            .iter()
            .any(|s| s.name == "sgdrift_cluster_poll_success" && s.label("eks_cluster") == elsewhere && s.value == 1.0);
        polled.then_some(())
    });
    let r = d.get("/readyz");
    assert_eq!(r.status, 503, "ready while a target's first poll is still running: {}", r.body);

    let mut writer = open_fifo_for_writing(&file, &d);
    // Later polls read a regular file again; the daemon's open FIFO still gets the content.
    write_atomically(&file, &content);
    write_all_nonblocking(&mut writer, content.as_bytes());
    drop(writer);

    d.wait_ready();
    let report = d.report();
    let polled = cluster_named(&report, &name);
    assert_ne!(polled["status"], "error", "{polled}");
}

/// Opens `fifo` for writing once the daemon has opened it for reading.
fn open_fifo_for_writing(fifo: &Path, d: &Daemon) -> fs::File {
    use std::os::unix::fs::OpenOptionsExt;
    const O_NONBLOCK: i32 = 0o4000;
    let deadline = Instant::now() + PATIENCE;
    loop {
        // Without a reader, a non-blocking open for writing fails (ENXIO) instead of hanging.
        match fs::OpenOptions::new().write(true).custom_flags(O_NONBLOCK).open(fifo) {
            Ok(f) => return f,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("the daemon never opened {} for reading: {e}\n{}", fifo.display(), d.log_text()),
        }
    }
}

fn write_all_nonblocking(f: &mut fs::File, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        match f.write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("write to the FIFO: {e}"),
        }
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

#[test]
fn the_status_page_lists_every_demo_cluster_and_finding_and_never_a_secret() {
    const SECRET: &str = "T0SECRET-d41d8cd98f00b204";
    let mut fx = Fixture::demo();
    // Nothing listens on the discard port: deliveries fail, and their errors must not leak it.
    fx.webhooks.push(format!("http://127.0.0.1:9/hooks/{SECRET}"));
    let mut d = fx.start();
    d.wait_ready();
    d.wait_for("a failed delivery", |d| (sum(&d.metrics(), "sgdrift_notifications_failed_total") >= 1.0).then_some(()));

    let page = d.get("/");
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").is_some_and(|t| t.starts_with("text/html")), "{:?}", page.headers);
    let report = d.report();
    let all = clusters(&report);
    assert!(all.len() >= 3, "the demo has at least three clusters");
    let mut findings = 0;
    for cluster in &all {
        assert!(
            page.body.contains(&html_escape(cluster["cluster"].as_str().unwrap())),
            "{} missing from the page",
            cluster["cluster"]
        );
        for f in cluster["findings"].as_array().unwrap() {
            findings += 1;
            let reason = html_escape(f["reason"].as_str().unwrap());
            assert!(page.body.contains(&reason), "finding `{reason}` missing from the page");
            assert!(page.body.contains(f["group_id"].as_str().unwrap()));
        }
    }
    assert!(findings > 0, "the demo has findings");
    for external in ["<script", "<link", "src=\"http", "href=\"http"] {
        assert!(!page.body.contains(external), "the page loads `{external}`");
    }
    for (what, text) in [
        ("the page", page.body.clone()),
        ("the report", d.get("/api/v1/report").body),
        ("the metrics", d.get("/metrics").body),
        ("the log", d.log_text()),
    ] {
        assert!(!text.contains(SECRET), "the webhook URL leaked into {what}");
    }
}

#[test]
fn a_corrupt_state_file_stops_the_start_with_its_name_line_and_column_and_is_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let garbage = "{\"version\": 1,\n  \"clusters\": {\"a\": ]\n}";
    fs::write(&state, garbage).unwrap();
    // The files source's directory must exist (the config is refused otherwise); it may be empty.
    fs::create_dir(dir.path().join("clusters")).unwrap();
    let config = dir.path().join("sgdrift.toml");
    let port = daemon_harness::free_port();
    fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[source]\nkind = \"files\"\ndir = \"clusters\"\n\
             [[targets]]\nregions = [\"eu-west-1\"]\n[alerts]\nstate_file = \"state.json\"\n"
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sgdrift"))
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("{} is not a sgdrift state: line 2, column 21", state.display())), "{stderr}");
    assert!(stderr.contains("move it aside"), "{stderr}");
    assert_eq!(fs::read_to_string(&state).unwrap(), garbage);
    assert!(daemon_harness::http_get(port, "/healthz").is_none(), "nothing listens after a refused start");
}

/// `doc` with every timestamp replaced by `<time>`: what stays is the shape and every value.
fn without_times(doc: &Value) -> Value {
    let is_time = |s: &str| chrono::DateTime::parse_from_rfc3339(s).is_ok();
    match doc {
        Value::String(s) if is_time(s) => json!("<time>"),
        Value::Array(items) => Value::Array(items.iter().map(without_times).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), without_times(v))).collect()),
        other => other.clone(),
    }
}

#[test]
fn check_prints_the_report_the_daemon_serves_and_both_follow_the_published_schema() {
    let fx = Fixture::demo();
    let mut d = fx.start();
    d.wait_ready();
    let served = d.report();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sgdrift"))
        .args(["check", "--format", "json", "--config"])
        .arg(&fx.config)
        .output()
        .expect("run sgdrift check");
    assert_eq!(out.status.code(), Some(1), "the demo drifts: {}", String::from_utf8_lossy(&out.stderr));
    let printed: Value = serde_json::from_slice(&out.stdout).expect("check prints JSON");
    assert_eq!(printed["schema_version"], 1);
    assert_matches_report_schema("sgdrift check --format json", &printed);
    assert_matches_report_schema("/api/v1/report", &served);
    assert_eq!(without_times(&printed), without_times(&served));
    let first = &printed["clusters"][0]["findings"][0];
    assert!(first["first_seen"].is_string() && first["changed_by"].is_null(), "{first}");
    // The daemon's findings carry the same remediation as check's (the equality above): the
    // command for the cluster's own region, wherever a rule can fix the finding.
    let mut fixes = 0;
    for c in printed["clusters"].as_array().expect("clusters") {
        for f in c["findings"].as_array().expect("findings") {
            if let Some(cli) = f["remediation"]["aws_cli"].as_str() {
                assert!(
                    cli.contains("aws ec2 ") && cli.contains(&format!("--region {}", c["region"].as_str().unwrap())),
                    "{f}"
                );
                fixes += 1;
            }
        }
    }
    assert!(fixes > 0, "no finding of the demo carries a remediation");
}
