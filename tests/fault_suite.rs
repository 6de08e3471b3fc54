//! The fault suite (issue 10): the real `sgdrift run`, on loopback only, driven through what an
//! attacker or a bad day can do to it: half-open and slow HTTP clients at a low descriptor
//! limit, a state directory that cannot be written, corrupt state files, SIGHUP with bad and
//! good configs, an AWS endpoint that refuses or hangs. Each case prints one `fault <case>:`
//! line with its figure; `scripts/fault-suite` runs them all and closes with `N passed, N failed`.

mod daemon_harness;

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use daemon_harness::{free_port, Daemon, Fixture, PATIENCE};

/// The descriptor limit of issue 10: systemd's default soft limit.
const NOFILE: u32 = 1024;
/// Half-open connections held against it: twice what the limit could hold.
const HELD: usize = 2000;
/// The `[server]` timeouts of these tests: short, so that the test is short.
const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
const IDLE_TIMEOUT: Duration = Duration::from_secs(3);
/// Scheduling slack granted on top of a configured timeout on a loaded test machine.
const SLACK: Duration = Duration::from_millis(1500);

fn figure(case: &str, text: impl std::fmt::Display) {
    println!("fault {case}: {text}");
}

/// Rewrites the fixture's config with `edit` applied to it (after `write_config(port)`).
fn edit_config(fx: &Fixture, edit: impl FnOnce(&mut toml::Table)) {
    let mut doc: toml::Table = fs::read_to_string(&fx.config).unwrap().parse().unwrap();
    edit(&mut doc);
    daemon_harness::write_atomically(&fx.config, &toml::to_string(&doc).unwrap());
}

fn set(doc: &mut toml::Table, section: &str, key: &str, value: impl Into<toml::Value>) {
    let table = doc.entry(section).or_insert_with(|| toml::Table::new().into());
    table.as_table_mut().unwrap().insert(key.into(), value.into());
}

/// `sgdrift run` on the fixture's config under `ulimit -n nofile` (soft and hard).
fn spawn_limited(fx: &Fixture, port: u16, nofile: u32) -> Daemon {
    let log = fx.path(&format!("daemon-{port}.log"));
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {nofile} && exec \"$0\" run --config \"$1\""))
        .arg(env!("CARGO_BIN_EXE_sgdrift"))
        .arg(&fx.config)
        .env("RUST_LOG", "info,sgdrift=debug")
        .env_remove("SGDRIFT_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .expect("sh is needed to set the descriptor limit");
    Daemon { child, port, log }
}

/// The open descriptors of process `pid`.
fn open_fds(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

fn nofile_of(pid: u32) -> String {
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).unwrap_or_default();
    limits.lines().find(|l| l.starts_with("Max open files")).unwrap_or("").split_whitespace().nth(3).unwrap_or("?").to_string()
}

/// A connection that sent half a request.
fn half_open(port: u16) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect on loopback");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n").expect("send half a request");
    s
}

/// Waits until the server closes `s` (EOF or reset); `None` if it is still open at `until`.
fn closed_by(s: &mut TcpStream, until: Instant) -> Option<Instant> {
    let mut buf = [0u8; 1024];
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return Some(Instant::now()),
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return None,
            Err(_) => return Some(Instant::now()),
        }
    }
}

fn limited_daemon(nofile: u32) -> (Fixture, Daemon) {
    let fx = Fixture::demo();
    let port = free_port();
    fx.write_config(port);
    edit_config(&fx, |doc| {
        set(doc, "server", "header_read_timeout", format!("{}s", HEADER_TIMEOUT.as_secs()));
        set(doc, "server", "idle_timeout", format!("{}s", IDLE_TIMEOUT.as_secs()));
    });
    let mut d = spawn_limited(&fx, port, nofile);
    d.wait_ready();
    assert_eq!(nofile_of(d.child.id()), NOFILE.to_string(), "the daemon runs under the limit");
    (fx, d)
}

#[test]
fn two_thousand_half_open_connections_at_a_1024_descriptor_limit_neither_starve_metrics_nor_the_state() {
    let (_fx, mut d) = limited_daemon(NOFILE);
    let pid = d.child.id();
    let started = Instant::now();
    let mut held: Vec<(Instant, TcpStream)> = (0..HELD).map(|_| (Instant::now(), half_open(d.port))).collect();
    let last_opened = Instant::now();

    let asked = Instant::now();
    let r = d.get("/metrics");
    let answered = asked.elapsed();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        answered < Duration::from_secs(1),
        "/metrics took {answered:?} with {HELD} half-open connections held (bound: 1 s)"
    );
    let peak = open_fds(pid);
    assert!(peak < NOFILE as usize, "{peak} descriptors open");
    assert_eq!(d.get("/readyz").status, 200, "the state is still written");

    // Every held connection is closed by the server: evicted to make room, or at the header
    // timeout counted from when it was opened.
    let until = last_opened + HEADER_TIMEOUT + SLACK;
    let mut slowest = Duration::ZERO;
    for (opened, s) in &mut held {
        let closed = closed_by(s, until).unwrap_or_else(|| {
            panic!("a half-open connection opened {:?} into the test was still open after {:?}", opened.duration_since(started), until.duration_since(*opened))
        });
        slowest = slowest.max(closed.duration_since(*opened));
    }
    let m = d.metrics();
    let closed = |reason: &str| daemon_harness::find(&m, "sgdrift_http_connections_closed_total", &[("reason", reason)]).map_or(0.0, |s| s.value);
    assert!(closed("header_timeout") >= 1.0 && closed("evicted") >= 1.0, "{m:?}");
    assert!(!d.log_text().contains("Too many open files"), "{}", d.log_text());
    d.wait_for("another poll with the state written", |d| (d.get("/readyz").status == 200).then_some(()));
    figure(
        "half-open",
        format!(
            "{HELD} held at nofile={NOFILE}: /metrics answered in {:.3}s, peak {peak} fds, every held connection closed within {:.2}s (header_read_timeout {}s; {} evicted, {} timed out)",
            answered.as_secs_f64(),
            slowest.as_secs_f64(),
            HEADER_TIMEOUT.as_secs(),
            closed("evicted"),
            closed("header_timeout")
        ),
    );
}

#[test]
fn a_client_trickling_its_headers_is_closed_at_the_header_timeout_and_an_idle_keep_alive_at_the_idle_timeout() {
    let (_fx, d) = limited_daemon(NOFILE);
    let mut slow = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    let opened = Instant::now();
    let request = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut trickle_closed = None;
    for byte in request {
        if slow.write_all(&[*byte]).is_err() {
            trickle_closed = Some(opened.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        if opened.elapsed() > HEADER_TIMEOUT + SLACK {
            break;
        }
    }
    let trickle = trickle_closed
        .or_else(|| closed_by(&mut slow, opened + HEADER_TIMEOUT + SLACK).map(|t| t.duration_since(opened)))
        .expect("a client sending one byte every 100 ms is closed at the header timeout");

    let mut keep = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    keep.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut buf = [0u8; 512];
    keep.set_read_timeout(Some(PATIENCE)).unwrap();
    let n = keep.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
    let answered = Instant::now();
    let idle = closed_by(&mut keep, answered + IDLE_TIMEOUT + SLACK)
        .expect("an unused keep-alive connection is closed at the idle timeout")
        .duration_since(answered);
    assert!(idle + Duration::from_millis(100) >= IDLE_TIMEOUT, "closed after {idle:?}, before the idle timeout");
    figure(
        "slow-client",
        format!(
            "trickling client closed after {:.2}s (header_read_timeout {}s); idle keep-alive closed after {:.2}s (idle_timeout {}s)",
            trickle.as_secs_f64(),
            HEADER_TIMEOUT.as_secs(),
            idle.as_secs_f64(),
            IDLE_TIMEOUT.as_secs()
        ),
    );
}

#[test]
fn the_status_page_carries_security_headers_and_metrics_are_gzipped_when_asked() {
    let (_fx, d) = limited_daemon(NOFILE);
    let page = d.get("/");
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");

    let raw = raw_get(d.port, "/metrics", "Accept-Encoding: gzip\r\n");
    let (head, body) = split_response(&raw);
    assert!(head.to_ascii_lowercase().contains("content-encoding: gzip"), "{head}");
    let mut plain = String::new();
    flate2::read::GzDecoder::new(body).read_to_string(&mut plain).expect("a gzip body");
    assert!(plain.contains("sgdrift_build_info"), "{plain}");
    let unasked = d.get("/metrics");
    assert_eq!(unasked.header("content-encoding"), None);

    let big = raw_get(d.port, "/", &format!("X-Big: {}\r\n", "a".repeat(32 * 1024)));
    let (head, _) = split_response(&big);
    assert!(head.starts_with("HTTP/1.1 431"), "a 32 KiB header is refused: {head}");
    let with_body = raw_get(d.port, "/metrics", "Content-Length: 5\r\n");
    assert!(split_response(&with_body).0.starts_with("HTTP/1.1 413"), "{}", split_response(&with_body).0);
    figure("http-limits", format!("/metrics {} B plain, {} B gzip; 32 KiB header → 431; request body → 413", plain.len(), body.len()));
}

fn raw_get(port: u16, path: &str, extra: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let _ = write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{extra}\r\n");
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    raw
}

fn split_response(raw: &[u8]) -> (String, &[u8]) {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").map_or(raw.len(), |i| i + 4);
    (String::from_utf8_lossy(&raw[..end]).into_owned(), &raw[end..])
}

