//! The dashboard and the alert rules against real data: the demo daemon (`sgdrift run` on
//! config/demo.toml, files source) on a free loopback port, scraped every second by a real
//! Prometheus that also loads the alert rules. Then every dashboard query (variables set to
//! their All value, `$__rate_interval` to 1m) must succeed and return at least one series,
//! every variable must offer values, and every alert rule must evaluate without error.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::ops_common::{dashboard_queries, read, read_json, repo, tool, variable_query};

/// How long start-up may take before the test gives up; a bound on waiting, not a measurement.
const START_BOUND: Duration = Duration::from_secs(90);
/// Samples per series before queries run, so that 1m rates have enough points.
const MIN_SAMPLES: u32 = 5;

/// A child process killed when the test ends, its output kept in files for failure messages.
struct Process {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Process {
    fn start(name: &'static str, cmd: &mut Command, dir: &Path) -> Process {
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Process { name, child, log }
    }

    /// The last lines the process printed.
    fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited ({status}) early:\n{}", self.name, self.tail());
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port").local_addr().expect("address").port()
}

/// Waits until `check` returns Some, failing with `what` and the processes' output after the bound.
async fn wait_for<T, F, Fut>(what: &str, processes: &mut [&mut Process], mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + START_BOUND;
    loop {
        for p in processes.iter_mut() {
            p.assert_running();
        }
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = processes.iter().map(|p| format!("--- {}\n{}", p.name, p.tail())).collect();
            panic!("gave up waiting for {what} after {START_BOUND:?}\n{}", logs.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// An instant query through the HTTP API: Ok(result list) or Err(the API's error).
async fn query(http: &reqwest::Client, prom: &str, expr: &str) -> Result<Vec<Value>, String> {
    let resp = http
        .get(format!("{prom}/api/v1/query"))
        .query(&[("query", expr)])
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let body: Value = resp.json().await.map_err(|e| format!("not JSON: {e}"))?;
    if body["status"] != "success" {
        return Err(format!("{}: {}", body["errorType"], body["error"]));
    }
    Ok(body["data"]["result"].as_array().cloned().unwrap_or_default())
}

/// The dashboard's variables with the value they take when "All" is selected.
fn all_values(dashboard: &Value) -> Vec<(String, String)> {
    let mut subs: Vec<(String, String)> = dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .filter(|v| v["type"] == "query")
        .map(|v| (format!("${}", v["name"].as_str().unwrap()), v["allValue"].as_str().unwrap_or(".*").to_string()))
        .collect();
    subs.push(("$__rate_interval".into(), "1m".into()));
    // Longest first, so `$instance` is not replaced inside a longer name.
    subs.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
    subs
}

fn substitute(expr: &str, subs: &[(String, String)]) -> String {
    subs.iter().fold(expr.to_string(), |e, (k, v)| e.replace(k, v))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_answers_every_dashboard_and_alert_query_on_the_demo() {
    let demo = repo().join("config/demo.toml");
    assert!(demo.exists(), "{} does not exist: the demo configuration has not landed yet", demo.display());
    let prometheus = tool("prometheus");
    let dir = tempfile::tempdir().expect("temp dir");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("HTTP client");

    // The demo daemon, on its own port and state file; nothing may reach real AWS.
    let daemon_port = free_port();
    let daemon_url = format!("http://127.0.0.1:{daemon_port}");
    let mut daemon = Process::start(
        "sgdrift",
        Command::new(env!("CARGO_BIN_EXE_sgdrift"))
            .args(["run", "--config"])
            .arg(&demo)
            .env("SGDRIFT__SERVER__LISTEN", format!("127.0.0.1:{daemon_port}"))
            .env("SGDRIFT__ALERTS__STATE_FILE", dir.path().join("state.json"))
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        dir.path(),
    );
    wait_for("the demo daemon's /readyz", &mut [&mut daemon], || {
        let http = http.clone();
        let url = format!("{daemon_url}/readyz");
        async move { http.get(url).send().await.ok().filter(|r| r.status().is_success()).map(|_| ()) }
    })
    .await;

    // Prometheus scraping it every second and evaluating the alert rules every second.
    let prom_port = free_port();
    let prom = format!("http://127.0.0.1:{prom_port}");
    let rules = repo().join("deploy/prometheus/sgdrift-alerts.yaml");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             rule_files: [{rules:?}]\n\
             scrape_configs:\n  - job_name: sgdrift\n    static_configs: [{{targets: [\"127.0.0.1:{daemon_port}\"]}}]\n"
        ),
    )
    .expect("write prometheus.yml");
    let mut prometheus = Process::start(
        "prometheus",
        Command::new(prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .arg("--log.level=warn"),
        dir.path(),
    );
    let enough = format!("count_over_time(sgdrift_build_info{{job=\"sgdrift\"}}[1m]) >= {MIN_SAMPLES}");
    wait_for("Prometheus to hold a few scrapes of the daemon", &mut [&mut daemon, &mut prometheus], || {
        let (http, prom, enough) = (http.clone(), prom.clone(), enough.clone());
        async move { query(&http, &prom, &enough).await.ok().filter(|r| !r.is_empty()).map(|_| ()) }
    })
    .await;
    let up = query(&http, &prom, "up{job=\"sgdrift\"}").await.expect("up query");
    assert_eq!(up.first().map(|s| s["value"][1].clone()), Some(Value::from("1")), "the daemon is not up: {up:?}");

    let mut problems = Vec::new();

    // Every panel query: no error, and data on the demo.
    let dashboard = read_json("dashboards/sgdrift-overview.json");
    let subs = all_values(&dashboard);
    for (title, expr) in dashboard_queries(&dashboard) {
        let promql = substitute(&expr, &subs);
        match query(&http, &prom, &promql).await {
            Ok(result) if result.is_empty() => problems.push(format!("panel {title}: no series for `{promql}`")),
            Ok(_) => {}
            Err(e) => problems.push(format!("panel {title}: `{promql}` failed: {e}")),
        }
    }

    // Every variable offers at least one value.
    for var in dashboard["templating"]["list"].as_array().unwrap().iter().filter(|v| v["type"] == "query") {
        let q = variable_query(var);
        let inner = q.strip_prefix("label_values(").and_then(|s| s.strip_suffix(')')).expect("label_values(…)");
        let (selector, label) = inner.rsplit_once(',').expect("label_values(selector, label)");
        let selector = substitute(selector.trim(), &subs);
        let body: Value = http
            .get(format!("{prom}/api/v1/label/{}/values", label.trim()))
            .query(&[("match[]", selector.as_str())])
            .send()
            .await
            .expect("label values request")
            .json()
            .await
            .expect("JSON");
        if body["data"].as_array().is_none_or(|v| v.is_empty()) {
            problems.push(format!("variable {}: no values for `{q}`: {body}", var["name"]));
        }
    }

    // Every alert rule loaded, evaluated cleanly, and its expression runs.
    let defined = read("deploy/prometheus/sgdrift-alerts.yaml")
        .lines()
        .filter(|l| l.trim_start().starts_with("- alert:"))
        .count();
    let rules: Vec<Value> = wait_for("every alert rule to be evaluated", &mut [&mut daemon, &mut prometheus], || {
        let (http, prom) = (http.clone(), prom.clone());
        async move {
            let body: Value = http.get(format!("{prom}/api/v1/rules")).send().await.ok()?.json().await.ok()?;
            let rules: Vec<Value> = body["data"]["groups"]
                .as_array()?
                .iter()
                .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
                .collect();
            let evaluated = rules.iter().all(|r| !r["lastEvaluation"].as_str().unwrap_or("0001").starts_with("0001"));
            (evaluated && !rules.is_empty()).then_some(rules)
        }
    })
    .await;
    assert_eq!(rules.len(), defined, "Prometheus loaded {} rules, the file defines {defined}", rules.len());
    for rule in &rules {
        let name = rule["name"].as_str().unwrap_or_default();
        if rule["health"] != "ok" {
            problems.push(format!("alert {name}: health {} ({})", rule["health"], rule["lastError"]));
        }
        if let Err(e) = query(&http, &prom, rule["query"].as_str().unwrap_or_default()).await {
            problems.push(format!("alert {name}: expression failed: {e}"));
        }
    }
    let down: Vec<&str> = rules
        .iter()
        .filter(|r| r["name"] == "SgDriftDown" && r["state"] != "inactive")
        .map(|_| "SgDriftDown")
        .collect();
    assert!(down.is_empty(), "SgDriftDown is pending or firing while the daemon is scraped as job sgdrift");

    assert!(
        problems.is_empty(),
        "{} problem(s) against the demo:\n  {}\n--- sgdrift\n{}",
        problems.len(),
        problems.join("\n  "),
        daemon.tail()
    );
}
