//! What the alert path writes to logs: the `log` sink's structured events, and never a
//! webhook URL, whatever goes wrong. Every log line of this test binary is captured.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::support::alerting::{at, cluster, finding, quick_backoff, report, settings, Running};
use crate::support::receiver::{Receiver, Reply};
use sgdrift::alert::{AlertMetrics, DeliveryOptions, Dispatcher};
use sgdrift::model::Severity;
use sgdrift::state::StateStore;

/// The secret part of the URLs in this file: it must never be printed.
const TOKEN: &str = "XoXb-s3cr3t-t0ken";

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every log line of every level from every crate, as JSON, since the first call.
fn logs() -> String {
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    let buffer = BUFFER.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = Capture(buffer.clone());
        tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .init();
        buffer
    });
    String::from_utf8_lossy(&buffer.lock().unwrap()).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_url_never_appears_in_logs_errors_or_debug_output() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    let hook_path = format!("/hooks/{TOKEN}");
    let hook_url = format!("{}?token={TOKEN}", receiver.url(&hook_path));
    // The receiver misbehaves every way it can, echoing the URL back in a body too.
    receiver.script(
        &hook_path,
        [
            Reply::status(500).body(&hook_url),
            Reply::ok().delay(Duration::from_secs(2)),
            Reply::status(429).header("retry-after", "1"),
            Reply::status(404).body(&format!("no_service: {hook_url}")),
        ],
    );
    // Slack's URL (from the environment) points where nothing listens.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slack_url = format!("http://{}/services/T0/B0/{TOKEN}", dead.local_addr().unwrap());
    drop(dead);
    std::env::set_var("SGDRIFT_TEST_SLACK_URL", &slack_url);
    let settings = settings(
        dir.path(),
        &format!(
            "log = true\n\n[[alerts.slack]]\nwebhook_url_env = \"SGDRIFT_TEST_SLACK_URL\"\n\n\
             [[alerts.webhook]]\nurl = \"{hook_url}\"\n"
        ),
    );
    let options = DeliveryOptions { request_timeout: Duration::from_millis(500), ..quick_backoff() };
    let store = Arc::new(StateStore::load(dir.path().join("state.json")).unwrap());
    let mut run = Running::start(&settings, store, options).await;
    let c = cluster("prod");

    run.poll(&report(&c, vec![finding(&c, "sg-0abc", 22, "0.0.0.0/0", Severity::Critical)]), true, at(0)).await;
    receiver.wait_for(&hook_path, 4).await;
    // Slack keeps failing to connect: wait for a few attempts, then stop.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while run
        .metric("sgdrift_notifications_failed_total", &[("integration", "slack"), ("reason", "connection_refused")])
        < 2.0
    {
        assert!(std::time::Instant::now() < deadline, "no failed Slack attempt");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let debug = format!("{:?} {:?}", run.dispatcher, settings.config.alerts.slack);
    run.stop().await;

    let failed =
        |reason| run.metric("sgdrift_notifications_failed_total", &[("integration", "webhook"), ("reason", reason)]);
    assert_eq!(
        [failed("server_error"), failed("timeout"), failed("rate_limited"), failed("client_error")],
        [1.0, 1.0, 1.0, 1.0],
        "every failure happened"
    );
    let logs = logs();
    assert!(logs.contains("alert notification not delivered"), "failures were logged");
    assert!(logs.contains("alert notification refused"), "the 404 was logged");
    assert!(!logs.contains(TOKEN), "a webhook URL leaked into the logs:\n{}", leaks(&logs));
    assert!(!debug.contains(TOKEN), "a webhook URL leaked into Debug output: {debug}");
    assert!(debug.contains("[redacted]"), "{debug}");
    let metrics = prometheus::TextEncoder::new().encode_to_string(&run.registry.gather()).unwrap();
    assert!(!metrics.contains(TOKEN), "{metrics}");

    // Configuration errors name the sink, the file or the variable, never the URL.
    for extra in [
        format!("[[alerts.webhook]]\nurl = \"ftp://example.com/{TOKEN}\"\n"),
        format!("[[alerts.webhook]]\nurl = \"http://[{TOKEN}/x\"\n"),
    ] {
        let bad = settings_dir(&extra);
        let err = Dispatcher::new(&bad, Arc::new(AlertMetrics::register(&prometheus::Registry::new()).unwrap()))
            .expect_err("a broken URL is refused");
        assert!(!err.to_string().contains(TOKEN), "{err}");
        assert!(err.to_string().starts_with("[[alerts.webhook]] #1 `webhook:url:"), "{err}");
    }
}

fn settings_dir(extra: &str) -> sgdrift::config::Settings {
    let dir = tempfile::tempdir().unwrap();
    settings(dir.path(), extra)
}

fn leaks(logs: &str) -> String {
    logs.lines().filter(|l| l.contains(TOKEN)).collect::<Vec<_>>().join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_sink_writes_each_event_as_a_structured_line() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(dir.path(), "log = true\n");
    let store = Arc::new(StateStore::load(dir.path().join("state.json")).unwrap());
    let mut run = Running::start(&settings, store, quick_backoff()).await;
    let c = cluster("logged-cluster");
    let ssh = finding(&c, "sg-0abc", 22, "0.0.0.0/0", Severity::Critical);
    let http = finding(&c, "sg-0abc", 8080, "10.0.0.0/8", Severity::Low);

    run.poll(&report(&c, vec![ssh.clone(), http.clone()]), true, at(0)).await;
    run.drained().await;
    run.poll(&report(&c, vec![http.clone()]), true, at(30)).await;
    run.drained().await;
    run.stop().await;

    let events: Vec<serde_json::Value> = logs()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "sgdrift::alert::event" && v["fields"]["eks_cluster"] == "logged-cluster")
        .collect();
    let got: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|v| {
            let f = &v["fields"];
            (f["episode_id"].as_str().unwrap(), f["status"].as_str().unwrap(), f["severity"].as_str().unwrap())
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (ssh.id.as_str(), "firing", "critical"),
            (http.id.as_str(), "firing", "low"),
            (ssh.id.as_str(), "resolved", "critical"),
        ]
    );
    let resolved = &events[2]["fields"];
    assert_eq!(resolved["account_id"], "111122223333");
    assert_eq!(resolved["group_id"], "sg-0abc");
    assert_eq!(resolved["opened_at"], "2026-11-28T10:00:00+00:00");
    assert_eq!(resolved["resolved_at"], "2026-11-28T10:30:00+00:00");
    assert_eq!(events[0]["fields"]["notification_id"], events[1]["fields"]["notification_id"]);
    assert_eq!(run.metric("sgdrift_notifications_total", &[("integration", "log")]), 2.0);
}

/// `sgdrift config check` on a config with `sinks` appended; (exit code, stderr).
fn config_check(sinks: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sgdrift.toml");
    std::fs::write(&path, format!("[[targets]]\nregions = [\"eu-west-1\"]\n\n{sinks}")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sgdrift"))
        .args(["config", "check", "--config"])
        .arg(&path)
        .env_remove("SGDRIFT_TEST_UNSET_URL")
        .env("SGDRIFT_TEST_SET_URL", "https://hooks.example.com/XoXb-s3cr3t-t0ken")
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn config_check_resolves_every_sink_secret_as_run_would_and_names_the_sink() {
    let cases = [
        (
            "[[alerts.slack]]\nname = \"oncall\"\nwebhook_url_env = \"SGDRIFT_TEST_UNSET_URL\"\n",
            "[[alerts.slack]] #1 `oncall`: the environment variable SGDRIFT_TEST_UNSET_URL is not set",
        ),
        (
            "[[alerts.webhook]]\nurl_file = \"absent-url\"\n",
            "[[alerts.webhook]] #1 `webhook:file:absent-url`: cannot read",
        ),
        (
            &format!("[[alerts.webhook]]\nname = \"siem\"\nurl = \"ftp://example.com/{TOKEN}\"\n"),
            "[[alerts.webhook]] #1 `siem`: the webhook URL must be an http:// or https:// URL",
        ),
        (
            "[[alerts.webhook]]\nname = \"siem\"\nurl_env = \"SGDRIFT_TEST_SET_URL\"\nsigning_secret_env = \"SGDRIFT_TEST_UNSET_URL\"\n",
            "[[alerts.webhook]] #1 `siem`: signing_secret_env: the environment variable SGDRIFT_TEST_UNSET_URL is not set",
        ),
        (
            "[[alerts.webhook]]\nname = \"x\"\nurl_env = \"A\"\n\n[[alerts.webhook]]\nname = \"x\"\nurl_env = \"B\"\n",
            "[[alerts.webhook]] #1 and [[alerts.webhook]] #2 are both named `x`",
        ),
        ("[[alerts.webhook]]\nurl_env = \"A\"\nurl_file = \"f\"\n", "give exactly one of url, url_env or url_file"),
        ("[[alerts.slack]]\nwebhook_url_env = \"A\"\nmatch = { clusters = [] }\n", "match.clusters is empty"),
    ];
    for (sinks, want) in cases {
        let (code, stderr) = config_check(sinks);
        assert_eq!(code, 2, "{sinks}: {stderr}");
        assert!(stderr.contains(want), "{sinks}\nwanted: {want}\ngot: {stderr}");
        assert!(!stderr.contains(TOKEN), "{stderr}");
    }
    let (code, stderr) = config_check("[[alerts.webhook]]\nname = \"siem\"\nurl_env = \"SGDRIFT_TEST_SET_URL\"\n");
    assert_eq!(code, 0, "{stderr}");
}
