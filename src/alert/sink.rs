//! The `Sink` seam: what the outbox worker needs from a receiver of notifications (its stable
//! name, how fast it may be sent to, how it delivers), and the bounded ways a delivery fails.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::policy::Notification;
pub use super::SinkKind;

/// The stable key of a sink: the outbox keeps a queued alert under it across config edits,
/// reloads and restarts. An explicit `name = "…"` in the config, or by default the sink's kind
/// and where its URL comes from (`slack:env:SLACK_URL`, `webhook:file:/run/secrets/hook`,
/// `webhook:url:3f2a9c1b` for an inline URL, by a hash so the URL never shows) — never its
/// position in the file. Explicit names cannot contain `:`, so they never collide with a default.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SinkName(String);

impl SinkName {
    /// The longest explicit name accepted.
    pub const MAX: usize = 64;

    /// An explicit name from the config: a letter or digit, then letters, digits, `.`, `_`, `-`.
    pub fn explicit(s: &str) -> Result<Self, String> {
        let ok_first = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        let ok_rest = s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !ok_first || !ok_rest || s.len() > Self::MAX {
            return Err(format!(
                "sink name `{}` is not valid: use 1 to {} letters, digits, `.`, `_` or `-`, starting with a letter or digit",
                s.escape_debug(),
                Self::MAX
            ));
        }
        Ok(SinkName(s.to_string()))
    }

    /// The default name of a sink of `kind` whose URL comes from `source` (see [`SecretSource::describe`]).
    ///
    /// [`SecretSource::describe`]: super::secret::SecretSource::describe
    pub fn derived(kind: SinkKind, source: &str) -> Self {
        SinkName(format!("{}:{source}", kind.as_str()))
    }

    /// A key written by sgdrift ≤ 0.1, by position (`slack:0`), kept apart until it can be mapped:
    /// `legacy:slack:0`. No configured sink can have such a name.
    pub fn legacy(position_key: &str) -> Self {
        SinkName(format!("{LEGACY_PREFIX}{position_key}"))
    }

    /// For a legacy key: the kind and position it was written for.
    pub fn legacy_position(&self) -> Option<(SinkKind, usize)> {
        let rest = self.0.strip_prefix(LEGACY_PREFIX)?;
        if rest == "log" {
            return Some((SinkKind::Log, 0));
        }
        let (kind, index) = rest.split_once(':')?;
        Some((SinkKind::parse(kind)?, index.parse().ok()?))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

const LEGACY_PREFIX: &str = "legacy:";

impl fmt::Display for SinkName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How fast a sink may be sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pacing {
    /// As fast as the outbox fills (the log).
    Unpaced,
    /// At most one request per interval, measured from the end of the previous one (Slack asks
    /// for 1 message/s per webhook).
    Every(Duration),
}

/// What one outbox entry carries to a sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    /// One message per cluster and poll (Slack, the webhook, the log).
    Notification,
    /// One message per episode event, for receivers that key incidents by episode (PagerDuty's
    /// `dedup_key`): the outbox holds one entry per event.
    Episode,
}

/// One delivery attempt in flight.
pub type Delivery<'a> = Pin<Box<dyn Future<Output = Result<(), DeliveryError>> + Send + 'a>>;

/// A receiver of notifications. The outbox worker owns ordering, pacing, retries and the
/// metrics; a sink only turns one notification into one (or, per episode, several) requests.
pub trait Sink: Send + Sync + fmt::Debug {
    fn name(&self) -> &SinkName;
    fn kind(&self) -> SinkKind;
    fn pacing(&self) -> Pacing;
    fn granularity(&self) -> Granularity {
        Granularity::Notification
    }
    /// One attempt; `Err` says whether to retry ([`DeliveryError::is_retryable`]).
    fn deliver<'a>(&'a self, n: &'a Notification) -> Delivery<'a>;
}

/// Why one delivery attempt failed. Messages never contain the URL: reqwest's is stripped,
/// and a response body is scrubbed of it.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("the receiver refused the notification with HTTP {status}{}", body_suffix(.body))]
    Client { status: u16, body: String },
    #[error("the receiver failed with HTTP {status}")]
    Server { status: u16 },
    #[error("the receiver is rate limiting (HTTP 429){}", retry_suffix(.retry_after))]
    RateLimited { retry_after: Option<Duration> },
    #[error("the request timed out: {0}")]
    Timeout(String),
    #[error("the receiver refused the connection: {0}")]
    Refused(String),
    #[error("cannot reach the receiver: {0}")]
    Connect(String),
}

fn body_suffix(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

fn retry_suffix(after: &Option<Duration>) -> String {
    after.map(|d| format!(", retry after {}s", d.as_secs())).unwrap_or_default()
}

impl DeliveryError {
    /// Every label value `kind()` can return.
    pub const KINDS: [&'static str; 6] =
        ["client_error", "server_error", "rate_limited", "timeout", "connection_refused", "connect"];

    /// The bounded `reason` label of `sgdrift_notifications_failed_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            DeliveryError::Client { .. } => "client_error",
            DeliveryError::Server { .. } => "server_error",
            DeliveryError::RateLimited { .. } => "rate_limited",
            DeliveryError::Timeout(_) => "timeout",
            DeliveryError::Refused(_) => "connection_refused",
            DeliveryError::Connect(_) => "connect",
        }
    }

    /// A 4xx other than 429 will fail the same way again: the notification is dropped.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, DeliveryError::Client { .. })
    }

    /// How long the receiver asked to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            DeliveryError::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_client_errors_are_not_retried_and_every_kind_is_a_known_label() {
        let cases = [
            (DeliveryError::Client { status: 400, body: String::new() }, "client_error", false),
            (DeliveryError::Server { status: 503 }, "server_error", true),
            (DeliveryError::RateLimited { retry_after: None }, "rate_limited", true),
            (DeliveryError::Timeout("t".into()), "timeout", true),
            (DeliveryError::Refused("r".into()), "connection_refused", true),
            (DeliveryError::Connect("c".into()), "connect", true),
        ];
        for (e, kind, retry) in cases {
            assert_eq!((e.kind(), e.is_retryable()), (kind, retry), "{e}");
            assert!(DeliveryError::KINDS.contains(&e.kind()));
        }
    }

    #[test]
    fn explicit_names_are_plain_words_and_never_look_like_a_default_or_legacy_key() {
        for ok in ["siem", "platform-oncall", "a.b_c-1", "9"] {
            assert_eq!(SinkName::explicit(ok).unwrap().as_str(), ok);
        }
        for bad in ["", "-x", "slack:0", "legacy:slack:0", "a b", "é", &"x".repeat(65)] {
            assert!(SinkName::explicit(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_legacy_key_tells_the_kind_and_position_it_was_written_for() {
        let cases = [
            ("slack:0", Some((SinkKind::Slack, 0))),
            ("webhook:3", Some((SinkKind::Webhook, 3))),
            ("log", Some((SinkKind::Log, 0))),
            ("teams:0", None),
            ("webhook:x", None),
        ];
        for (key, want) in cases {
            assert_eq!(SinkName::legacy(key).legacy_position(), want, "{key}");
        }
        assert_eq!(SinkName::explicit("siem").unwrap().legacy_position(), None);
    }
}
