//! The HTTP side of the Slack and webhook sinks: one client (timeouts, no redirects), a POST
//! whose error body is read at most [`MAX_ERROR_BODY`] bytes, and the classification of every
//! result into a [`DeliveryError`] with a bounded kind.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{StatusCode, Url};

use super::backoff::parse_retry_after;
use super::secret::Secret;
use super::sink::DeliveryError;

/// Bytes of an error response kept for the log line; the rest is never read (a receiver that
/// answers with 50 MB must not cost 50 MB).
pub const MAX_ERROR_BODY: usize = 4096;

/// The client every HTTP sink of one dispatcher shares.
#[derive(Debug, Clone)]
pub struct Poster {
    client: reqwest::Client,
}

impl Poster {
    pub fn new(request_timeout: Duration, connect_timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(request_timeout)
            .connect_timeout(connect_timeout)
            // A webhook that redirects is misconfigured; following it could hand the payload
            // to a host nobody configured.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("sgdrift/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(reqwest::Error::without_url)?;
        Ok(Poster { client })
    }

    /// POSTs `body` as JSON with `headers`; a 2xx is `Ok`.
    pub async fn post(&self, url: &Secret<Url>, body: Vec<u8>, headers: HeaderMap) -> Result<(), DeliveryError> {
        let response = self
            .client
            .post(url.expose().clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|e| from_transport(e, url))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let body = read_bounded(response, MAX_ERROR_BODY).await;
        Err(classify(status, retry_after, &scrub(&body, url)))
    }
}

/// At most `max` bytes of the body; the connection is dropped rather than drained.
async fn read_bounded(mut response: reqwest::Response, max: usize) -> String {
    let mut kept = Vec::new();
    while kept.len() < max {
        match response.chunk().await {
            Ok(Some(chunk)) => kept.extend_from_slice(&chunk[..chunk.len().min(max - kept.len())]),
            Ok(None) | Err(_) => break,
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

/// A non-2xx answer as a delivery error: 429 waits, 5xx retries, any other status is final.
pub fn classify(status: StatusCode, retry_after: Option<Duration>, body: &str) -> DeliveryError {
    match status.as_u16() {
        429 => DeliveryError::RateLimited { retry_after },
        500..=599 => DeliveryError::Server { status: status.as_u16() },
        code => DeliveryError::Client { status: code, body: body.to_string() },
    }
}

/// A request that got no answer: a timeout, a refused connection, or any other failure to
/// connect (DNS, TLS, reset).
fn from_transport(e: reqwest::Error, url: &Secret<Url>) -> DeliveryError {
    let e = e.without_url();
    let mut message = e.to_string();
    let mut refused = false;
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        refused |=
            s.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused);
        source = s.source();
    }
    let message = scrub(&message, url);
    if e.is_timeout() {
        DeliveryError::Timeout(message)
    } else if refused {
        DeliveryError::Refused(message)
    } else {
        DeliveryError::Connect(message)
    }
}

/// `text` without the URL or its secret parts, on one line, at most 200 characters.
pub fn scrub(text: &str, url: &Secret<Url>) -> String {
    let url = url.expose();
    let mut out = text.replace(url.as_str(), "[redacted]");
    let path = url.path();
    if path.len() > 1 {
        out = out.replace(path, "[redacted]");
    }
    if let Some(q) = url.query() {
        out = out.replace(q, "[redacted]");
    }
    let out: String = out.chars().map(|c| if c.is_control() { ' ' } else { c }).take(200).collect();
    out.trim().to_string()
}

/// A header map from (name, value) pairs already checked at config time.
pub fn headers<'a>(pairs: impl IntoIterator<Item = (&'a reqwest::header::HeaderName, HeaderValue)>) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, mut value) in pairs {
        value.set_sensitive(true);
        map.insert(name.clone(), value);
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_body_is_scrubbed_of_the_url_and_its_parts() {
        let url = Secret::new(Url::parse("https://hooks.example.com/T0/B0/s3cret?token=abc").unwrap());
        let body = "no_service for https://hooks.example.com/T0/B0/s3cret?token=abc and /T0/B0/s3cret or token=abc\n";
        let out = scrub(body, &url);
        assert!(!out.contains("s3cret") && !out.contains("token=abc"), "{out}");
        assert!(out.starts_with("no_service for [redacted]"), "{out}");
    }

    #[test]
    fn every_status_is_classified_by_what_a_retry_could_change() {
        let cases = [
            (429, Some(3), "rate_limited", Some(3)),
            (429, None, "rate_limited", None),
            (500, None, "server_error", None),
            (503, Some(9), "server_error", None),
            (400, None, "client_error", None),
            (404, None, "client_error", None),
            (301, None, "client_error", None),
        ];
        for (status, after, kind, waits) in cases {
            let e = classify(StatusCode::from_u16(status).unwrap(), after.map(Duration::from_secs), "b");
            assert_eq!((e.kind(), e.retry_after()), (kind, waits.map(Duration::from_secs)), "{status}");
        }
    }

    #[tokio::test]
    async fn a_connection_nobody_accepts_is_refused_not_a_server_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = Secret::new(Url::parse(&format!("http://{}/hook", listener.local_addr().unwrap())).unwrap());
        drop(listener);
        let poster = Poster::new(Duration::from_secs(5), Duration::from_secs(5)).unwrap();
        let err = poster.post(&url, b"{}".to_vec(), HeaderMap::new()).await.unwrap_err();
        assert_eq!(err.kind(), "connection_refused", "{err}");
    }
}
