//! The generic webhook's JSON: one POST per notification, an `events` array with a stable
//! `episode_id` per event so receivers can de-duplicate, and the finding as in the report.
//!
//! ```json
//! { "schema_version": 1, "version": "1", "notification_id": "9f2c…", "created_at": "2026-11-28T10:00:00Z",
//!   "status": "firing", "account_id": "111122223333", "region": "eu-west-1", "cluster": "prod-eu1",
//!   "open_findings": 2, "status_url": "https://sgdrift.example.com/#cluster-111122223333-eu-west-1-prod-eu1",
//!   "events": [ { "episode_id": "5d1e…", "status": "firing", "reminder": false,
//!                 "opened_at": "…", "resolved_at": null,
//!                 "account_id": "…", "region": "…", "cluster": "…",
//!                 "rule": "ingress tcp 22 from 0.0.0.0/0",
//!                 "finding": { "id": "5d1e…", "kind": "unexpected", "severity": "critical", … } } ] }
//! ```
//! `status` at the top is `firing` when any event fires, else `resolved`. An episode is one
//! `episode_id` with one `opened_at`: the same drift coming back later keeps its `episode_id`
//! and gets a new `opened_at`. Delivery is at least once: de-duplicate on `notification_id`.
//! `schema_version` is bumped when a field changes meaning or disappears (`version`, its string
//! form from before, stays for receivers written against it).
//!
//! With `signing_secret_env`, each request carries `X-Sgdrift-Timestamp` (Unix seconds) and
//! `X-Sgdrift-Signature-256: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`; docs/webhooks.md
//! shows how a receiver verifies it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::Url;
use serde_json::{json, Value};
use sha2::Sha256;

use super::http::{headers, Poster};
use super::policy::{EventStatus, Notification};
use super::secret::{parse_url, Secret, SecretSource};
use super::sink::{Delivery, Pacing, Sink, SinkKind, SinkName};
use super::BuildContext;
use crate::config::WebhookConfig;

/// The payload's schema: bumped when a field changes meaning or disappears.
pub const SCHEMA_VERSION: u32 = 1;
/// The same, as the string receivers of the first release read.
pub const VERSION: &str = "1";
/// Unix seconds of the request, covered by the signature.
pub const TIMESTAMP_HEADER: &str = "x-sgdrift-timestamp";
/// `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "x-sgdrift-signature-256";

/// An `[[alerts.webhook]]` endpoint.
#[derive(Debug)]
pub struct WebhookSink {
    name: SinkName,
    url: Secret<Url>,
    poster: Poster,
    external_url: Option<String>,
    pacing: Pacing,
    headers: Vec<(HeaderName, Secret<HeaderValue>)>,
    signing_key: Option<Secret<String>>,
}

impl WebhookSink {
    /// Reads the URL, the headers and the signing key from their sources; messages name the
    /// source, never a value.
    pub fn build(config: &WebhookConfig, ctx: &BuildContext<'_>) -> Result<Self, String> {
        let url = config.url.read(ctx.base).and_then(|raw| parse_url(&raw))?;
        let mut headers = Vec::new();
        for (name, var) in &config.headers_env {
            let value =
                SecretSource::Env(var.clone()).read(ctx.base).map_err(|e| format!("headers_env.{name}: {e}"))?;
            headers.push(header(name, value.expose()).map_err(|e| format!("headers_env.{name}: {e}"))?);
        }
        if let Some(file) = &config.headers_file {
            headers.extend(read_headers_file(file, ctx.base)?);
        }
        let signing_key = match &config.signing_secret_env {
            Some(var) => {
                Some(SecretSource::Env(var.clone()).read(ctx.base).map_err(|e| format!("signing_secret_env: {e}"))?)
            }
            None => None,
        };
        Ok(WebhookSink {
            name: config.name.clone(),
            url,
            poster: ctx.poster.clone(),
            external_url: ctx.external_url.map(str::to_string),
            pacing: Pacing::Every(ctx.min_interval),
            headers,
            signing_key,
        })
    }
}

impl Sink for WebhookSink {
    fn name(&self) -> &SinkName {
        &self.name
    }

    fn kind(&self) -> SinkKind {
        SinkKind::Webhook
    }

    fn pacing(&self) -> Pacing {
        self.pacing
    }

    fn deliver<'a>(&'a self, n: &'a Notification) -> Delivery<'a> {
        Box::pin(async move {
            let body = serde_json::to_vec(&payload(n, self.external_url.as_deref())).unwrap_or_default();
            let mut map = headers(self.headers.iter().map(|(k, v)| (k, v.expose().clone())));
            if let Some(key) = &self.signing_key {
                let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                for (name, value) in signature_headers(key.expose().as_bytes(), now, &body) {
                    map.insert(HeaderName::from_static(name), value);
                }
            }
            self.poster.post(&self.url, body, map).await
        })
    }
}

/// `X-Sgdrift-Timestamp` and `X-Sgdrift-Signature-256` for `body` sent at `timestamp`.
pub fn signature_headers(key: &[u8], timestamp: u64, body: &[u8]) -> [(&'static str, HeaderValue); 2] {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    let value =
        |s: String| HeaderValue::from_str(&s).unwrap_or_else(|_| unreachable!("digits and hex are header-safe"));
    [(TIMESTAMP_HEADER, value(timestamp.to_string())), (SIGNATURE_HEADER, value(format!("sha256={hex}")))]
}

/// Headers sgdrift sets itself, or that would change how the request is framed.
const RESERVED: [&str; 5] = ["host", "content-type", "content-length", "transfer-encoding", "connection"];

/// A header name a webhook may carry.
pub fn check_header_name(name: &str) -> Result<HeaderName, String> {
    let parsed = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("`{}` is not a valid header name", name.escape_debug()))?;
    if RESERVED.contains(&parsed.as_str()) || parsed.as_str().starts_with("x-sgdrift-") {
        return Err(format!("`{name}` is set by sgdrift and cannot be configured"));
    }
    Ok(parsed)
}

fn header(name: &str, value: &str) -> Result<(HeaderName, Secret<HeaderValue>), String> {
    let name = check_header_name(name)?;
    let mut value = HeaderValue::from_str(value).map_err(|_| "the value is not a valid header value".to_string())?;
    value.set_sensitive(true);
    Ok((name, Secret::new(value)))
}

/// `Name: value` per line; blank lines and `#` comments skipped. Errors name the file and line,
/// never a value.
fn read_headers_file(file: &Path, base: &Path) -> Result<Vec<(HeaderName, Secret<HeaderValue>)>, String> {
    let path = if file.is_relative() { base.join(file) } else { file.to_path_buf() };
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("headers_file: cannot read {}: {e}", path.display()))?;
    let mut seen = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |e: String| format!("headers_file {}:{}: {e}", path.display(), i + 1);
        let (name, value) = line.split_once(':').ok_or_else(|| at("expected `Name: value`".into()))?;
        let (name, value) = header(name.trim(), value.trim()).map_err(at)?;
        seen.insert(name.as_str().to_string(), (name, value));
    }
    Ok(seen.into_values().collect())
}

pub fn payload(n: &Notification, external_url: Option<&str>) -> Value {
    let c = &n.cluster;
    let status = if n.events.iter().any(|e| e.status == EventStatus::Firing) { "firing" } else { "resolved" };
    let events: Vec<Value> = n
        .events
        .iter()
        .map(|e| {
            json!({
                "episode_id": e.episode_id,
                "status": e.status,
                "reminder": e.reminder,
                "opened_at": e.opened_at,
                "resolved_at": e.resolved_at,
                "account_id": c.account_id,
                "region": c.region,
                "cluster": c.name,
                "rule": e.finding.rule_text().to_string(),
                "finding": e.finding,
            })
        })
        .collect();
    let mut body = json!({
        "schema_version": SCHEMA_VERSION,
        "version": VERSION,
        "notification_id": n.id,
        "created_at": n.created_at,
        "status": status,
        "account_id": c.account_id,
        "region": c.region,
        "cluster": c.name,
        "open_findings": n.open_count(),
        "runbook_url": n.runbook_url(),
        "events": events,
    });
    if let Some(url) = external_url {
        let c = &n.cluster;
        body["status_url"] = json!(crate::export::html::cluster_link(url, &c.account_id, &c.region, &c.name));
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hmac_sha256_of_the_timestamp_a_dot_and_the_body() {
        // Computed independently: python3 -c "import hmac,hashlib;
        //   print(hmac.new(b'key', b'1764000000.{}', hashlib.sha256).hexdigest())"
        let [(ts_name, ts), (sig_name, sig)] = signature_headers(b"key", 1764000000, b"{}");
        assert_eq!((ts_name, ts.to_str().unwrap()), ("x-sgdrift-timestamp", "1764000000"));
        assert_eq!(
            (sig_name, sig.to_str().unwrap()),
            ("x-sgdrift-signature-256", "sha256=135a1a8c79ff2a07661486422c8068924d01c7a70da314a29ce512bc61231899")
        );
    }

    #[test]
    fn reserved_or_malformed_header_names_are_refused() {
        for ok in ["Authorization", "X-Api-Key"] {
            assert!(check_header_name(ok).is_ok(), "{ok}");
        }
        for bad in ["Content-Type", "host", "X-Sgdrift-Signature-256", "bad header", ""] {
            assert!(check_header_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_headers_file_is_read_line_by_line_and_a_bad_line_is_named_without_its_value() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("h"), "# tokens\nAuthorization: Bearer s3cret\n\nX-Team: platform\n").unwrap();
        let got = read_headers_file(Path::new("h"), dir.path()).unwrap();
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["authorization", "x-team"]);
        assert_eq!(got[0].1.expose().to_str().unwrap(), "Bearer s3cret");
        std::fs::write(dir.path().join("bad"), "Authorization Bearer s3cret\n").unwrap();
        let err = read_headers_file(Path::new("bad"), dir.path()).unwrap_err();
        assert!(err.ends_with("bad:1: expected `Name: value`") && !err.contains("s3cret"), "{err}");
    }
}
