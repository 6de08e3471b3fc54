//! A pass-through HTTP proxy on loopback, in front of the AWS emulator, that lets a test answer
//! some requests itself: what the emulator cannot do (throttle, refuse one account). One request
//! per connection: both sides get `Connection: close`, so each exchange ends with its connection
//! and no framing beyond `Content-Length` is needed.
//!
//! Use it with `#[path = "support/proxy.rs"] mod proxy;`.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Decides, per raw request, whether the proxy answers it (`Some(raw response)`) or forwards it.
pub type Rule = dyn Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync;

pub struct Proxy {
    pub url: String,
    forwarded: Arc<AtomicUsize>,
    answered: Arc<AtomicUsize>,
}

impl Proxy {
    /// Listens on a free loopback port, forwarding to `upstream` (`http://host:port`) whatever
    /// `rule` does not answer.
    pub fn start(upstream: &str, rule: Arc<Rule>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_start_matches("http://").to_string();
        let (forwarded, answered) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let counts = (forwarded.clone(), answered.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (upstream, rule, counts) = (upstream.clone(), rule.clone(), counts.clone());
                std::thread::spawn(move || exchange(client, &upstream, &*rule, &counts.0, &counts.1));
            }
        });
        Proxy { url, forwarded, answered }
    }

    /// Requests passed on to the emulator so far.
    pub fn forwarded(&self) -> usize {
        self.forwarded.load(Ordering::SeqCst)
    }

    /// Requests the rule answered so far.
    pub fn answered(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
    }
}

fn exchange(mut client: TcpStream, upstream: &str, rule: &Rule, forwarded: &AtomicUsize, answered: &AtomicUsize) {
    let Some(request) = read_request(&mut client) else { return };
    let response = match rule(&request) {
        Some(own) => {
            answered.fetch_add(1, Ordering::SeqCst);
            own
        }
        None => {
            forwarded.fetch_add(1, Ordering::SeqCst);
            let Ok(mut upstream) = TcpStream::connect(upstream) else { return };
            if upstream.write_all(&with_connection_close(&request)).is_err() {
                return;
            }
            let mut answer = Vec::new();
            if upstream.read_to_end(&mut answer).is_err() || answer.is_empty() {
                return;
            }
            with_connection_close(&answer)
        }
    };
    let _ = client.write_all(&response);
}

/// A whole HTTP response with `Connection: close`.
pub fn response(status: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()));
    out.into_bytes()
}

/// The service a SigV4-signed request is for: the `<service>` of its credential scope
/// (`Credential=<key>/<date>/<region>/<service>/aws4_request`).
pub fn signed_service(request: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(request);
    let head = &text[..text.find("\r\n\r\n")?];
    let auth = head.lines().find(|l| l.to_ascii_lowercase().starts_with("authorization:"))?;
    let scope = auth.split("Credential=").nth(1)?.split([',', ' ']).next()?;
    scope.split('/').nth(3).map(str::to_string)
}

/// One request: headers, then `Content-Length` bytes of body.
pub fn read_request(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap_or(0));
            while buf.len() < end + 4 + length {
                let n = stream.read(&mut chunk).ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Some(buf);
        }
    }
}

/// The message with its `Connection` header replaced by `close`: each side then ends the
/// connection after one exchange.
pub fn with_connection_close(message: &[u8]) -> Vec<u8> {
    let end = message.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(message.len());
    let head = String::from_utf8_lossy(&message[..end]);
    let mut lines: Vec<&str> =
        head.split("\r\n").filter(|l| !l.to_ascii_lowercase().starts_with("connection:")).collect();
    lines.push("Connection: close");
    let mut out = lines.join("\r\n").into_bytes();
    out.extend_from_slice(&message[end..]);
    out
}
