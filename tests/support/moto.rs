//! A local AWS for tests: one moto server per test binary on a free loopback port, SDK configs
//! pointed at it, and the Python fixture builder (`tests/fixtures/aws/build.py`).
//!
//! Use it from a test file with `#[path = "support/moto.rs"] mod moto;`. `server()` is shared by
//! every test of the binary, so tests keep apart by region (or by account, through a role of
//! another account) instead of resetting it; it stops when the test binary exits. A test that
//! needs to stop AWS under the daemon takes its own with `Moto::start()` and `stop()`s it (or
//! drops it).
//!
//! The binary comes from `SGDRIFT_MOTO_SERVER` (default `<repo>/.venv/bin/moto_server`) and
//! Python from `SGDRIFT_PYTHON` (default `<repo>/.venv/bin/python`); a missing one fails the test
//! with a message saying to run `scripts/setup-test-deps`.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ec2::config::{Credentials, SharedCredentialsProvider};

pub struct Moto {
    pub url: String,
    pub port: u16,
    /// The watchdog shell that owns the server (see `start`).
    watchdog: Child,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tool(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| repo().join(default))
}

/// The moto server of the test module `module` (pass `module_path!()`), started on its first
/// use. One per module, as when each module was a test binary of its own: the regions and
/// accounts one module seeds never meet another's, and a module may reset its server.
pub fn server_for(module: &'static str) -> &'static Moto {
    static SERVERS: OnceLock<Mutex<HashMap<&'static str, &'static Moto>>> = OnceLock::new();
    let mut servers = SERVERS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    servers.entry(module).or_insert_with(|| Box::leak(Box::new(Moto::start())))
}

impl Moto {
    /// A server of the caller's own, on a free port, ready to answer.
    pub fn start() -> Moto {
        start(free_port())
    }

    /// A new server on `port`: an emulator that "comes back" where a daemon expects it.
    pub fn start_on(port: u16) -> Moto {
        start(port)
    }

    /// Stops the server and waits until its port no longer answers.
    pub fn stop(&mut self) {
        // SIGTERM runs the watchdog's trap, which kills the server (SIGKILL could not be trapped).
        let _ = Command::new("kill").arg(self.watchdog.id().to_string()).status();
        let _ = self.watchdog.wait();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if matches!(self.watchdog.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}

fn start(port: u16) -> Moto {
    let bin = tool("SGDRIFT_MOTO_SERVER", ".venv/bin/moto_server");
    assert!(
        bin.is_file(),
        "the AWS emulator is missing: no moto server at {} (set SGDRIFT_MOTO_SERVER, or run scripts/setup-test-deps)",
        bin.display()
    );
    // The server must not outlive the test binary, whose statics are never dropped: a shell
    // starts it and kills it as soon as the test process is gone.
    let script = r#"
        "$0" -H 127.0.0.1 -p "$1" >"$3" 2>&1 &
        server=$!
        trap 'kill $server 2>/dev/null' EXIT INT TERM
        while kill -0 "$2" 2>/dev/null && kill -0 "$server" 2>/dev/null; do sleep 0.5; done
    "#;
    let log = std::env::temp_dir().join(format!("sgdrift-moto-{}-{port}.log", std::process::id()));
    let watchdog = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(&bin)
        .arg(port.to_string())
        .arg(std::process::id().to_string())
        .arg(&log)
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the moto server {}: {e}", bin.display()));
    let moto = Moto { url: format!("http://127.0.0.1:{port}"), port, watchdog };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !moto.ready() {
        assert!(
            Instant::now() < deadline,
            "the moto server at {} did not answer within 60 s; its log: {}",
            moto.url,
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    moto
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free loopback port")
}

impl Moto {
    fn ready(&self) -> bool {
        self.http("GET", "/moto-api/", "").is_some_and(|(status, _)| status == 200)
    }

    /// A plain HTTP/1.0 request to the server (no client library needed for its own API).
    pub fn http(&self, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
        write!(s, "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n{body}", body.len())
            .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        let status = out.split_whitespace().nth(1)?.parse().ok()?;
        let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        Some((status, body))
    }

    /// Wipes every account and region. Only for a server no other test is using.
    pub fn reset(&self) {
        let answer = self.http("POST", "/moto-api/reset", "");
        assert!(matches!(answer, Some((200, _))), "moto reset failed: {answer:?}");
    }

    /// Points a `sgdrift` process at this server only, in `region`: static test credentials, no
    /// profile, no IMDS, one attempt per call.
    pub fn point(&self, command: &mut Command, region: &str) {
        point_at(command, &self.url, region);
    }

    /// An SDK config for `region` that talks to this server only: static test credentials, no
    /// profile, no IMDS, one attempt per call (an unimplemented API fails at once).
    pub fn sdk_config(&self, region: &str) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .endpoint_url(&self.url)
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "testing",
                "testing",
                None,
                None,
                "sgdrift-tests",
            )))
            .retry_config(aws_smithy_types::retry::RetryConfig::standard().with_max_attempts(1))
            .build()
    }

    /// Runs the sgdrift binary with the standard AWS variables aimed at this server, and nothing
    /// else of AWS (no profile, no IMDS, one attempt per call).
    pub fn sgdrift(&self, region: &str, args: &[&str]) -> std::process::Output {
        sgdrift_at(&self.url, region, args)
    }

    /// Runs `script` with boto3 against this server (as its default account, which is the
    /// management account of an organization made there), `session` and `endpoint` defined,
    /// and returns what it prints, as JSON.
    pub fn boto3(&self, script: &str) -> serde_json::Value {
        let python = tool("SGDRIFT_PYTHON", ".venv/bin/python");
        let out = Command::new(&python)
            .arg("-c")
            .arg(format!(
                "import boto3, json\nsession = boto3.Session(aws_access_key_id='testing', aws_secret_access_key='testing', region_name='us-east-1')\nendpoint = '{}'\n{script}",
                self.url
            ))
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", python.display()));
        assert!(out.status.success(), "boto3 failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// One small cluster (the `scale` scenario's, named `<prefix>-000`) in `account`, made
    /// through the `sgdrift-read` role there, as an organization target reads it.
    pub fn member_cluster(&self, region: &str, account: &str, prefix: &str) -> serde_json::Value {
        let role = format!("arn:aws:iam::{account}:role/sgdrift-read");
        let args = ["--region", region, "--scenario", "scale", "--count", "1", "--prefix", prefix, "--role-arn", &role];
        self.build_fixture(&args)
    }

    /// Runs the fixture builder against this server and returns its manifest (see build.py).
    pub fn build_fixture(&self, args: &[&str]) -> serde_json::Value {
        let python = tool("SGDRIFT_PYTHON", ".venv/bin/python");
        assert!(
            python.is_file(),
            "Python for the AWS fixtures is missing: nothing at {} (set SGDRIFT_PYTHON, or run scripts/setup-test-deps)",
            python.display()
        );
        let script = repo().join("tests/fixtures/aws/build.py");
        let out = Command::new(&python)
            .arg(&script)
            .arg("--endpoint")
            .arg(&self.url)
            .args(args)
            .env("AWS_ENDPOINT_URL", &self.url)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_MAX_ATTEMPTS", "1")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
        assert!(
            out.status.success(),
            "{} {} failed: {}",
            script.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("build.py printed no manifest ({e}): {}", String::from_utf8_lossy(&out.stdout)))
    }
}

/// The group ids of `role` for `cluster` in a build.py manifest.
pub fn manifest_groups(manifest: &serde_json::Value, cluster: &str, role: &str) -> Vec<String> {
    manifest["clusters"][cluster]["groups"][role]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// Every cluster name in a build.py manifest, sorted.
pub fn manifest_clusters(manifest: &serde_json::Value) -> Vec<String> {
    let mut names: Vec<String> =
        manifest["clusters"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
    names.sort();
    names
}

/// Every group id a build.py manifest gives `cluster`, whatever its role.
pub fn manifest_all_groups(manifest: &serde_json::Value, cluster: &str) -> std::collections::BTreeSet<String> {
    manifest["clusters"][cluster]["groups"]
        .as_object()
        .map(|roles| {
            roles
                .values()
                .filter_map(|v| v.as_array())
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub fn path_of(p: &Path) -> String {
    p.display().to_string()
}

/// Points a `sgdrift` process at AWS on `endpoint` only (the emulator, or a proxy in front of
/// it), in `region`: static test credentials, no profile, no IMDS, one attempt per call.
pub fn point_at(command: &mut Command, endpoint: &str, region: &str) {
    command
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", region)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_MAX_ATTEMPTS", "1")
        .env_remove("AWS_PROFILE");
}

/// Runs the sgdrift binary with AWS at `endpoint` only (see [`point_at`]).
pub fn sgdrift_at(endpoint: &str, region: &str, args: &[&str]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sgdrift"));
    point_at(&mut command, endpoint, region);
    command.args(args).output().expect("the sgdrift binary runs")
}
