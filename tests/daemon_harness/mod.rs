//! The daemon tests' harness: a copy of the demo in a temp dir, the real `sgdrift run` on a free
//! loopback port, a small blocking HTTP client, a Prometheus text parser, and a webhook receiver.
#![allow(dead_code)]

pub use crate::support::schema;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a test waits for something the daemon should do within a few 1 s poll intervals.
/// A bound on waiting, not a performance assertion: the machine running tests may be slow.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind a loopback port").local_addr().unwrap().port()
}

/// A temp dir with a copy of `config/demo` and a config that polls it every second.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub state_file: PathBuf,
    /// `[[alerts.webhook]]` URLs to add, if any.
    pub webhooks: Vec<String>,
    /// Keys to add to `[server]` (TLS, basic auth).
    pub server: toml::Table,
}

impl Fixture {
    pub fn demo() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let demo = repo().join("config/demo");
        assert!(demo.is_dir(), "the demo data {} is missing", demo.display());
        copy_dir(&demo, &dir.path().join("demo"));
        let config = dir.path().join("sgdrift.toml");
        let state_file = dir.path().join("state/state.json");
        Fixture { dir, config, state_file, webhooks: Vec::new(), server: toml::Table::new() }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes the config: `config/demo.toml` with the server on `port`, a 1 s interval without
    /// jitter, the copied demo dir and a state file in the temp dir.
    pub fn write_config(&self, port: u16) {
        let demo_toml = repo().join("config/demo.toml");
        let text = fs::read_to_string(&demo_toml).unwrap_or_else(|e| panic!("read {}: {e}", demo_toml.display()));
        let mut doc: toml::Table = text.parse().unwrap_or_else(|e| panic!("parse {}: {e}", demo_toml.display()));
        let table = |doc: &mut toml::Table, key: &str| -> toml::Table {
            doc.get(key).and_then(|v| v.as_table()).cloned().unwrap_or_default()
        };
        let mut server = table(&mut doc, "server");
        server.insert("listen".into(), format!("127.0.0.1:{port}").into());
        server.remove("external_url");
        server.extend(self.server.clone());
        doc.insert("server".into(), server.into());
        let mut poll = table(&mut doc, "poll");
        poll.insert("interval".into(), "1s".into());
        poll.insert("jitter".into(), "0s".into());
        poll.insert("timeout".into(), "5s".into());
        doc.insert("poll".into(), poll.into());
        let mut source = toml::Table::new();
        source.insert("kind".into(), "files".into());
        source.insert("dir".into(), self.path("demo").display().to_string().into());
        doc.insert("source".into(), source.into());
        let mut alerts = toml::Table::new();
        alerts.insert("state_file".into(), self.state_file.display().to_string().into());
        if !self.webhooks.is_empty() {
            let hooks: Vec<toml::Value> = self
                .webhooks
                .iter()
                .map(|url| {
                    let mut t = toml::Table::new();
                    t.insert("url".into(), url.clone().into());
                    t.insert("min_severity".into(), "low".into());
                    t.into()
                })
                .collect();
            alerts.insert("webhook".into(), hooks.into());
        }
        doc.insert("alerts".into(), alerts.into());
        write_atomically(&self.config, &toml::to_string(&doc).unwrap());
    }

    /// The directory of the demo cluster `name` (the one whose describe-cluster.json names it).
    pub fn cluster_dir(&self, name: &str) -> PathBuf {
        for entry in fs::read_dir(self.path("demo")).unwrap() {
            let dir = entry.unwrap().path();
            let Ok(text) = fs::read_to_string(dir.join("describe-cluster.json")) else { continue };
            let json: serde_json::Value = serde_json::from_str(&text).unwrap();
            if json["cluster"]["name"] == name {
                return dir;
            }
        }
        panic!("no demo cluster directory for `{name}`");
    }

    /// Starts `sgdrift run` on a fresh port (the config is rewritten for it).
    pub fn start(&self) -> Daemon {
        let port = free_port();
        self.write_config(port);
        Daemon::spawn(&self.config, port, &self.path(&format!("daemon-{port}.log")))
    }
}

pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Replaces a file whole, so that the daemon never reads half of it.
pub fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp-write");
    fs::write(&tmp, text).unwrap();
    fs::rename(&tmp, path).unwrap();
}

pub struct Daemon {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Daemon {
    pub fn spawn(config: &Path, port: u16, log: &Path) -> Daemon {
        let bin = env!("CARGO_BIN_EXE_sgdrift");
        let stderr = fs::File::create(log).unwrap();
        let child = Command::new(bin)
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "info,sgdrift=debug")
            .env_remove("SGDRIFT_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        Daemon { child, port, log: log.to_path_buf() }
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET `path`; `None` while the server does not answer.
    pub fn try_get(&self, path: &str) -> Option<Response> {
        http_get(self.port, path)
    }

    pub fn get(&self, path: &str) -> Response {
        self.try_get(path)
            .unwrap_or_else(|| panic!("GET {path} got no answer\n--- daemon log ---\n{}", self.log_text()))
    }

    pub fn metrics(&self) -> Vec<Sample> {
        let r = self.get("/metrics");
        assert_eq!(r.status, 200, "{}", r.body);
        parse_metrics(&r.body)
    }

    pub fn report(&self) -> serde_json::Value {
        let r = self.get("/api/v1/report");
        assert_eq!(r.status, 200, "{}", r.body);
        serde_json::from_str(&r.body).unwrap()
    }

    /// Waits until `check` returns `Some`, failing the test with the daemon's log after
    /// [`PATIENCE`].
    pub fn wait_for<T>(&mut self, what: &str, check: impl FnMut(&Daemon) -> Option<T>) -> T {
        self.wait_for_within(PATIENCE, what, check)
    }

    /// [`wait_for`](Self::wait_for) with its own bound, for what takes longer by design (a
    /// delivery that backs off through several failures).
    pub fn wait_for_within<T>(
        &mut self,
        bound: Duration,
        what: &str,
        mut check: impl FnMut(&Daemon) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "the daemon exited ({status}) while waiting for {what}\n--- daemon log ---\n{}",
                    self.log_text()
                );
            }
            if let Some(v) = check(self) {
                return v;
            }
            if Instant::now() > deadline {
                panic!("gave up waiting for {what}\n--- daemon log ---\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until `more` cluster polls beyond those counted now are recorded in
    /// `sgdrift_polls_total`: a few poll cycles, counted rather than slept.
    pub fn wait_for_more_polls(&mut self, more: f64) {
        let now = self.total("sgdrift_polls_total");
        self.wait_for(&format!("{more} more polls"), |d| (d.total("sgdrift_polls_total") >= now + more).then_some(()));
    }

    /// The sum of every series named `name` (0 when there is none).
    pub fn total(&self, name: &str) -> f64 {
        self.metrics().iter().filter(|s| s.name == name).map(|s| s.value).sum()
    }

    pub fn wait_ready(&mut self) {
        self.wait_for("/readyz to say ready", |d| d.try_get("/readyz").filter(|r| r.status == 200).map(|_| ()));
    }

    /// The first value of the series `name` with (at least) these labels.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        find(&self.metrics(), name, labels).map(|s| s.value)
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").arg(format!("-{signal}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits for the process to exit, at most `bound`.
    pub fn wait_exit(&mut self, bound: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + bound;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }
}

/// A minimal HTTP/1.0 GET on loopback; `None` if nothing listens or the answer is cut.
pub fn http_get(port: u16, path: &str) -> Option<Response> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(PATIENCE)).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some(Response { status, headers, body: body.to_string() })
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }
}

/// Parses the Prometheus text format (0.0.4).
pub fn parse_metrics(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => line.split_at(i),
            None => continue,
        };
        let mut labels = BTreeMap::new();
        let mut rest = rest;
        if let Some(inner) = rest.strip_prefix('{') {
            let mut end = inner.len();
            let (mut key, mut value, mut in_value, mut escaped) = (String::new(), String::new(), false, false);
            for (i, c) in inner.char_indices() {
                if in_value {
                    match (escaped, c) {
                        (true, 'n') => {
                            value.push('\n');
                            escaped = false;
                        }
                        (true, c) => {
                            value.push(c);
                            escaped = false;
                        }
                        (false, '\\') => escaped = true,
                        (false, '"') => {
                            labels.insert(std::mem::take(&mut key), std::mem::take(&mut value));
                            in_value = false;
                        }
                        (false, c) => value.push(c),
                    }
                } else {
                    match c {
                        '}' => {
                            end = i + 1;
                            break;
                        }
                        '"' => in_value = true,
                        '=' | ',' | ' ' => {}
                        c => key.push(c),
                    }
                }
            }
            rest = &inner[end..];
        }
        let value = rest.split_whitespace().next().unwrap_or("NaN");
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or(f64::NAN),
        };
        out.push(Sample { name: name.to_string(), labels, value });
    }
    out
}

/// The first sample named `name` carrying every label of `labels`.
pub fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    select(samples, name, labels).into_iter().next()
}

/// Every sample named `name` carrying every label of `labels`.
pub fn select<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .collect()
}

/// A webhook consumer on loopback that records every request body and answers 200.
pub struct Receiver {
    pub port: u16,
    pub bodies: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    pub fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&bodies);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                if let Some(body) = read_request(&mut stream) {
                    recorded.lock().unwrap().push(body);
                }
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            }
        });
        Receiver { port, bodies }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    pub fn bodies(&self) -> Vec<String> {
        self.bodies.lock().unwrap().clone()
    }
}

/// The body of one request (read by the proxy's reader), waiting at most 10 s for it.
fn read_request(stream: &mut TcpStream) -> Option<String> {
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let raw = crate::support::proxy::read_request(stream)?;
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    Some(String::from_utf8_lossy(&raw[end + 4..]).into_owned())
}

/// Does `json` hold `"status": "resolved"` anywhere?
pub fn mentions_resolved(json: &serde_json::Value) -> bool {
    match json {
        serde_json::Value::Object(map) => {
            map.get("status").and_then(|s| s.as_str()) == Some("resolved") || map.values().any(mentions_resolved)
        }
        serde_json::Value::Array(items) => items.iter().any(mentions_resolved),
        _ => false,
    }
}

/// Validates `doc` against the published `docs/schema/report.schema.json`; a missing tool
/// fails the test.
pub fn assert_matches_report_schema(what: &str, doc: &serde_json::Value) {
    schema::assert_matches_schema("report.schema.json", what, doc);
}
