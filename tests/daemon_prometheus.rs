//! A real Prometheus (Debian's, installed by `scripts/setup-test-deps`) scrapes `sgdrift run` on
//! loopback: the target is up, and PromQL sees exactly the findings the daemon exposes.

mod daemon_harness;

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use daemon_harness::{free_port, http_get, Fixture};
use serde_json::Value;

fn prometheus_binary() -> PathBuf {
    let candidates = [std::env::var_os("SGDRIFT_PROMETHEUS").map(PathBuf::from), Some(PathBuf::from("/usr/bin/prometheus"))];
    candidates.into_iter().flatten().find(|p| p.is_file()).unwrap_or_else(|| {
        panic!("Prometheus is not installed (/usr/bin/prometheus or $SGDRIFT_PROMETHEUS): run scripts/setup-test-deps")
    })
}

struct Prometheus {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// The result vector of an instant query, `None` until Prometheus answers.
    fn query(&self, promql: &str) -> Option<Vec<Value>> {
        let r = http_get(self.port, &format!("/api/v1/query?query={promql}"))?;
        let json: Value = serde_json::from_str(&r.body).ok()?;
        (json["status"] == "success").then(|| json["data"]["result"].as_array().cloned().unwrap_or_default())
    }
}

/// A series as (labels without job and instance, value), comparable across both sides.
type Series = BTreeSet<(Vec<(String, String)>, String)>;

#[test]
fn a_real_prometheus_scrapes_the_daemon_and_promql_returns_its_findings() {
    let binary = prometheus_binary();
    let fx = Fixture::demo();
    let mut d = fx.start();
    d.wait_ready();

    let port = free_port();
    let config = fx.path("prometheus.yml");
    fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: sgdrift\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            d.port
        ),
    )
    .unwrap();
    let log = fx.path("prometheus.log");
    let prometheus = Prometheus {
        child: Command::new(&binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", fx.path("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display())),
        port,
        log,
    };
    let prometheus_log = || fs::read_to_string(&prometheus.log).unwrap_or_default();

    d.wait_for("Prometheus to find the target up", |_| {
        let up = prometheus.query("up")?;
        up.iter().any(|s| s["metric"]["job"] == "sgdrift" && s["value"][1] == "1").then_some(())
    });

    let expected: Series = d
        .metrics()
        .into_iter()
        .filter(|s| s.name == "sgdrift_findings")
        .map(|s| (s.labels.into_iter().collect(), s.value.to_string()))
        .collect();
    assert!(!expected.is_empty(), "the demo has findings");
    let mut last = Series::new();
    let seen = d.wait_for("PromQL to return the daemon's sgdrift_findings", |_| {
        let result = prometheus.query("sgdrift_findings")?;
        last = result
            .iter()
            .map(|s| {
                let labels = s["metric"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .filter(|(k, _)| !["__name__", "job", "instance"].contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                    .collect();
                let value: f64 = s["value"][1].as_str().unwrap().parse().unwrap();
                (labels, value.to_string())
            })
            .collect();
        (last == expected).then(|| last.clone())
    });
    assert_eq!(seen, expected, "Prometheus log:\n{}", prometheus_log());
    for (labels, _) in &seen {
        let names: Vec<&str> = labels.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["account_id", "eks_cluster", "kind", "region", "role", "severity"]);
    }
}

#[test]
fn promtool_finds_nothing_to_lint_in_the_metrics() {
    let promtool = ["/usr/bin/promtool"].into_iter().map(PathBuf::from).find(|p| p.is_file()).unwrap_or_else(|| {
        panic!("promtool is not installed (/usr/bin/promtool): run scripts/setup-test-deps")
    });
    let fx = Fixture::demo();
    let mut d = fx.start();
    d.wait_ready();
    let body = d.get("/metrics").body;
    assert!(body.contains("sgdrift_findings{"), "the demo's findings are in the scrape");
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), body.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics: {said}");
}
