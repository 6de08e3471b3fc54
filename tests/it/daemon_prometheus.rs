//! A real Prometheus (Debian's, installed by `scripts/setup-test-deps`) scrapes `sgdrift run` on
//! loopback: the target is up, and PromQL sees exactly the findings the daemon exposes.

use crate::daemon_harness;

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::daemon_harness::{free_port, http_get, Fixture};
use serde_json::Value;

fn prometheus_binary() -> PathBuf {
    let candidates =
        [std::env::var_os("SGDRIFT_PROMETHEUS").map(PathBuf::from), Some(PathBuf::from("/usr/bin/prometheus"))];
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
    /// `binary` with `config`, its data in the fixture's directory, on loopback `port`.
    fn start(binary: &std::path::Path, fx: &Fixture, config: &std::path::Path, port: u16) -> Prometheus {
        let log = fx.path("prometheus.log");
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", fx.path("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        Prometheus { child, port, log }
    }

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
    let prometheus = Prometheus::start(&binary, &fx, &config, port);
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
    let promtool = ["/usr/bin/promtool"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("promtool is not installed (/usr/bin/promtool): run scripts/setup-test-deps"));
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

/// A self-signed certificate for 127.0.0.1 and localhost, written as PEM; the certificate is
/// also what a client trusts.
fn self_signed(cert: &std::path::Path, key: &std::path::Path) -> String {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    // Key first: the daemon reloads when both files changed and the pair matches.
    daemon_harness::write_atomically(key, &made.key_pair.serialize_pem());
    daemon_harness::write_atomically(cert, &made.cert.pem());
    made.cert.pem()
}

/// GET `https://127.0.0.1:{port}{path}` trusting only `ca_pem`, with basic auth when given:
/// the status and the `WWW-Authenticate` header, or the error text.
fn https_get(port: u16, path: &str, ca_pem: &str, auth: Option<(&str, &str)>) -> Result<(u16, String), String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
            .tls_built_in_root_certs(false)
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap();
        let mut request = client.get(format!("https://127.0.0.1:{port}{path}"));
        if let Some((user, password)) = auth {
            request = request.basic_auth(user, Some(password));
        }
        let response = request.send().await.map_err(|e| format!("{e:?}"))?;
        let challenge =
            response.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        Ok((response.status().as_u16(), challenge))
    })
}

#[test]
fn a_real_prometheus_scrapes_over_tls_with_basic_auth_and_a_renewed_certificate_is_served_without_a_restart() {
    let binary = prometheus_binary();
    let mut fx = Fixture::demo();
    let (cert, key, users) = (fx.path("tls.crt"), fx.path("tls.key"), fx.path("users"));
    let ca = self_signed(&cert, &key);
    fs::write(&users, format!("# htpasswd -B\nprometheus:{}\n", bcrypt::hash("scrape-pass", 4).unwrap())).unwrap();
    for (k, v) in [("tls_cert_file", &cert), ("tls_key_file", &key), ("basic_auth_users_file", &users)] {
        fx.server.insert(k.into(), v.display().to_string().into());
    }
    let mut d = fx.start();
    d.wait_for("the TLS listener", |d| {
        https_get(d.port, "/healthz", &ca, None).ok().filter(|(s, _)| *s == 200).map(|_| ())
    });

    // Probes need no password; everything else does, and says how to give it.
    assert_eq!(https_get(d.port, "/readyz", &ca, None).map(|(s, _)| s == 200 || s == 503), Ok(true));
    for (auth, want) in [
        (None, 401),
        (Some(("prometheus", "wrong")), 401),
        (Some(("grafana", "scrape-pass")), 401),
        (Some(("prometheus", "scrape-pass")), 200),
    ] {
        let (status, challenge) = https_get(d.port, "/metrics", &ca, auth).unwrap();
        assert_eq!(status, want, "{auth:?}");
        if want == 401 {
            assert!(challenge.starts_with("Basic realm=\"sgdrift\""), "{challenge}");
        }
    }
    assert_eq!(https_get(d.port, "/api/v1/report", &ca, None).unwrap().0, 401);
    assert!(d.try_get("/healthz").is_none_or(|r| r.status != 200), "plain HTTP must not be served on the TLS port");

    let port = free_port();
    let config = fx.path("prometheus.yml");
    fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: sgdrift\n    scheme: https\n    tls_config:\n      ca_file: {}\n\
             \x20   basic_auth:\n      username: prometheus\n      password: scrape-pass\n\
             \x20   static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            cert.display(),
            d.port
        ),
    )
    .unwrap();
    let prometheus = Prometheus::start(&binary, &fx, &config, port);
    d.wait_for("Prometheus to scrape sgdrift's findings over TLS with basic auth", |_| {
        let found = prometheus.query("count(sgdrift_findings)")?;
        found.first().map(|_| ())
    });

    // A renewal: new key and certificate in place; the next handshake serves them.
    let renewed = self_signed(&cert, &key);
    let (status, _) = https_get(d.port, "/healthz", &renewed, None).expect("the renewed certificate is served");
    assert_eq!(status, 200);
    assert!(https_get(d.port, "/healthz", &ca, None).is_err(), "the old certificate is still served");
}
