//! A real HTTP receiver on loopback standing in for Slack and webhook consumers: it records
//! every request with the time it arrived and answers from a per-path script (then `200 ok`).
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// When the request arrived.
    pub at: Instant,
    pub path: String,
    pub headers: HeaderMap,
    pub body: serde_json::Value,
    /// The body as it arrived, byte for byte (what a signature covers).
    pub raw: Vec<u8>,
    /// The status the receiver answered with.
    pub answered: u16,
}

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    /// Wait this long before answering (to make the client time out).
    pub delay: Duration,
    /// Answer with `Retry-After` as the HTTP-date this long after the answer (the header's
    /// second form), computed when the request arrives rather than when the script is written.
    pub retry_after_date_in: Option<Duration>,
}

impl Reply {
    pub fn ok() -> Self {
        Reply::status(200).body("ok")
    }

    pub fn status(status: u16) -> Self {
        Reply { status, headers: Vec::new(), body: String::new(), delay: Duration::ZERO, retry_after_date_in: None }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }

    pub fn body(mut self, body: &str) -> Self {
        self.body = body.to_string();
        self
    }

    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// `Retry-After: <HTTP-date>` for `after` from the moment of answering (RFC 9110 §10.2.3).
    pub fn retry_after_date(mut self, after: Duration) -> Self {
        self.retry_after_date_in = Some(after);
        self
    }
}

#[derive(Default)]
struct Inner {
    requests: Vec<Recorded>,
    scripts: HashMap<String, VecDeque<Reply>>,
}

pub struct Receiver {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener =
            tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("the test receiver needs a free loopback port");
        let addr = listener.local_addr().expect("a bound listener has an address");
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("the test receiver stopped");
        });
        Receiver { addr, inner, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Answers the next requests to `path` with `replies`, in order; then `200 ok` again.
    pub fn script(&self, path: &str, replies: impl IntoIterator<Item = Reply>) {
        let mut inner = self.inner.lock().unwrap();
        inner.scripts.entry(path.to_string()).or_default().extend(replies);
    }

    /// Drops what is left of `path`'s script: its next requests get `200 ok`.
    pub fn clear_script(&self, path: &str) {
        self.inner.lock().unwrap().scripts.remove(path);
    }

    /// Every request to `path` so far, in arrival order.
    pub fn requests(&self, path: &str) -> Vec<Recorded> {
        self.inner.lock().unwrap().requests.iter().filter(|r| r.path == path).cloned().collect()
    }

    /// Waits (up to a minute, then panics) until `path` has had at least `n` requests.
    pub async fn wait_for(&self, path: &str, n: usize) -> Vec<Recorded> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = self.requests(path);
            if got.len() >= n {
                return got;
            }
            assert!(Instant::now() < deadline, "{path}: {} request(s) after 60s, expected {n}", got.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(State(inner): State<Arc<Mutex<Inner>>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let at = Instant::now();
    let reply = {
        let mut inner = inner.lock().unwrap();
        let reply = inner.scripts.get_mut(uri.path()).and_then(VecDeque::pop_front).unwrap_or_else(Reply::ok);
        let parsed = serde_json::from_slice(&body)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&body).into_owned()));
        inner.requests.push(Recorded {
            at,
            path: uri.path().to_string(),
            headers,
            body: parsed,
            raw: body.to_vec(),
            answered: reply.status,
        });
        reply
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut response = (StatusCode::from_u16(reply.status).expect("a valid status"), reply.body).into_response();
    if let Some(after) = reply.retry_after_date_in {
        let at = chrono::Utc::now() + chrono::Duration::from_std(after).expect("a short delay");
        let date = at.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        response.headers_mut().insert("retry-after", HeaderValue::from_str(&date).expect("an HTTP-date"));
    }
    for (name, value) in reply.headers {
        response
            .headers_mut()
            .insert(HeaderName::from_static(name), HeaderValue::from_str(&value).expect("a header value"));
    }
    response
}
