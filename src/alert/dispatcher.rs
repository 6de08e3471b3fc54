//! Delivery: the outbox (written before sending, removed after a 2xx), per-sink rate limits,
//! retries with backoff, and the notification metrics.
//!
//! Each sink has its own worker reading its entries from the outbox in order, so a slow or
//! rate-limited Slack never delays the webhook, and a "resolved" never overtakes its "firing".
//! Delivery is at least once: a crash between a 2xx and the removal being persisted sends
//! that notification again after the restart (same `notification_id`).

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts};
use rand::Rng;
use reqwest::Url;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::policy::{self, AlertState, Notification, OutboxEntry, Policy, PollOutcome, Route};
use super::secret::Secret;
use super::{log as log_sink, slack, webhook};
use crate::config::Settings;
use crate::export::report::{ClusterReport, ClusterStatus};
use crate::model::{ClusterId, Severity};
use crate::state::{StateError, StateStore};

/// A sink that cannot be built from the configuration. Messages never contain a URL.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("{0}")]
    Config(String),
    #[error("cannot build the HTTP client for alerts: {0}")]
    Client(String),
}

impl AlertError {
    pub fn kind(&self) -> &'static str {
        match self {
            AlertError::Config(_) => "config",
            AlertError::Client(_) => "client",
        }
    }
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
    /// The bounded `reason` label of `sgdrift_notifications_failed_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            DeliveryError::Client { .. } => "client_error",
            DeliveryError::Server { .. } => "server_error",
            DeliveryError::RateLimited { .. } => "rate_limited",
            DeliveryError::Timeout(_) => "timeout",
            DeliveryError::Connect(_) => "connect",
        }
    }

    /// Every label value `kind()` can return.
    pub const KINDS: [&'static str; 5] = ["client_error", "server_error", "rate_limited", "timeout", "connect"];

    /// A 4xx other than 429 will fail the same way again: the notification is dropped.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, DeliveryError::Client { .. })
    }

    fn from_transport(e: reqwest::Error, url: &Secret<Url>) -> Self {
        let e = e.without_url();
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        let message = scrub(&message, url);
        if e.is_timeout() {
            DeliveryError::Timeout(message)
        } else {
            DeliveryError::Connect(message)
        }
    }
}

/// `sgdrift_notifications_total`, `…_failed_total`, `…_queue_length`, latency histogram.
pub struct AlertMetrics {
    /// Delivery attempts, by integration (`slack`, `webhook`, `log`).
    pub notifications: IntCounterVec,
    /// Failed attempts, by integration and bounded reason ([`DeliveryError::KINDS`]).
    pub failed: IntCounterVec,
    /// Entries in the outbox, all sinks together.
    pub queue_length: IntGauge,
    /// Round trip of one attempt, by integration.
    pub latency: HistogramVec,
}

impl AlertMetrics {
    pub fn register(registry: &prometheus::Registry) -> Result<Self, prometheus::Error> {
        let notifications = IntCounterVec::new(
            Opts::new("sgdrift_notifications_total", "Notification delivery attempts, by integration."),
            &["integration"],
        )?;
        let failed = IntCounterVec::new(
            Opts::new(
                "sgdrift_notifications_failed_total",
                "Failed notification delivery attempts, by integration and reason.",
            ),
            &["integration", "reason"],
        )?;
        let queue_length = IntGauge::new(
            "sgdrift_notification_queue_length",
            "Notifications in the outbox waiting for delivery, all sinks together.",
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "sgdrift_notification_latency_seconds",
                "Round trip of one notification delivery attempt, by integration.",
            )
            .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            &["integration"],
        )?;
        registry.register(Box::new(notifications.clone()))?;
        registry.register(Box::new(failed.clone()))?;
        registry.register(Box::new(queue_length.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        Ok(AlertMetrics { notifications, failed, queue_length, latency })
    }
}

/// Timing of delivery. The defaults are what Slack asks for; tests shorten the backoff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryOptions {
    /// Whole request, response included.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// At most one request per this interval to each HTTP sink (Slack: 1 message/s).
    pub min_interval: Duration,
    /// First retry delay after a 5xx, a timeout or a connection failure; doubles up to
    /// `max_backoff`, with jitter.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// A `Retry-After` longer than this is cut to it.
    pub max_retry_after: Duration,
    /// How often an idle worker looks at the outbox without being woken.
    pub idle_recheck: Duration,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        DeliveryOptions {
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            min_interval: Duration::from_secs(1),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(300),
            idle_recheck: Duration::from_secs(1),
        }
    }
}

#[derive(Debug)]
enum Target {
    Slack(Secret<Url>),
    Webhook(Secret<Url>),
    Log,
}

#[derive(Debug)]
struct Sink {
    /// `slack:0`, `webhook:1`, `log`: the outbox key, stable while the config keeps its order.
    key: String,
    integration: &'static str,
    min_severity: Severity,
    target: Target,
    wake: Notify,
}

pub struct Dispatcher {
    sinks: Vec<Sink>,
    routes: Vec<Route>,
    policy: Policy,
    external_url: Option<String>,
    metrics: Arc<AlertMetrics>,
    client: reqwest::Client,
    options: DeliveryOptions,
}

impl fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatcher")
            .field("sinks", &self.sinks)
            .field("policy", &self.policy)
            .field("external_url", &self.external_url)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// Builds the sinks from `settings` (secrets read from files/env now, never logged).
    pub fn new(settings: &Settings, metrics: Arc<AlertMetrics>) -> Result<Self, AlertError> {
        Self::with_options(settings, metrics, DeliveryOptions::default())
    }

    pub fn with_options(
        settings: &Settings,
        metrics: Arc<AlertMetrics>,
        options: DeliveryOptions,
    ) -> Result<Self, AlertError> {
        let alerts = &settings.config.alerts;
        let base = settings.path.parent().unwrap_or(Path::new(""));
        let mut sinks = Vec::new();
        for (i, s) in alerts.slack.iter().enumerate() {
            let what = format!("[[alerts.slack]] #{}", i + 1);
            let url = read_url(&what, s.webhook_url_file.as_deref(), s.webhook_url_env.as_deref(), None, base)?;
            sinks.push(sink(format!("slack:{i}"), "slack", severity(&what, &s.min_severity)?, Target::Slack(url)));
        }
        for (i, w) in alerts.webhook.iter().enumerate() {
            let what = format!("[[alerts.webhook]] #{}", i + 1);
            let url = read_url(&what, w.url_file.as_deref(), w.url_env.as_deref(), w.url.as_deref(), base)?;
            sinks.push(sink(
                format!("webhook:{i}"),
                "webhook",
                severity(&what, &w.min_severity)?,
                Target::Webhook(url),
            ));
        }
        if alerts.log {
            sinks.push(sink("log".into(), "log", Severity::Low, Target::Log));
        }
        let client = reqwest::Client::builder()
            .timeout(options.request_timeout)
            .connect_timeout(options.connect_timeout)
            // A webhook that redirects is misconfigured; following it could hand the payload
            // to a host nobody configured.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("sgdrift/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AlertError::Client(e.without_url().to_string()))?;
        for s in &sinks {
            metrics.notifications.with_label_values(&[s.integration]).inc_by(0);
            if !matches!(s.target, Target::Log) {
                for reason in DeliveryError::KINDS {
                    metrics.failed.with_label_values(&[s.integration, reason]).inc_by(0);
                }
            }
        }
        let routes = sinks.iter().map(|s| Route { sink: s.key.clone(), min_severity: s.min_severity }).collect();
        Ok(Dispatcher {
            sinks,
            routes,
            policy: Policy { repeat_interval: alerts.repeat_interval },
            external_url: settings.config.server.external_url.clone(),
            metrics,
            client,
            options,
        })
    }

    /// Applies the policy to one cluster's poll and queues what must be sent in `state`'s outbox.
    /// `poll_ok` false (failed or stale poll) never resolves anything; neither does a report
    /// whose status is `error` or that is marked stale. Call it inside `StateStore::update`
    /// (or use [`Dispatcher::observe_persisted`]) so the outbox is on disk before it is sent.
    pub fn observe(&self, state: &mut AlertState, report: &ClusterReport, poll_ok: bool, now: DateTime<Utc>) {
        let cluster = ClusterId {
            account_id: report.account_id.clone(),
            region: report.region.clone(),
            name: report.cluster.clone(),
        };
        let fresh = poll_ok && report.status != ClusterStatus::Error && !report.stale;
        let outcome = if fresh { PollOutcome::Ok(&report.findings) } else { PollOutcome::Failed };
        if let Some(n) = self.policy.observe(state, &cluster, outcome, now) {
            let added = policy::enqueue(state, &n, &self.routes, now);
            tracing::debug!(
                notification_id = %n.id,
                eks_cluster = %cluster.name,
                events = n.events.len(),
                queued = added,
                "alert notification queued"
            );
            for s in &self.sinks {
                s.wake.notify_one();
            }
        }
        self.metrics.queue_length.set(state.outbox.len() as i64);
    }

    /// [`Dispatcher::observe`] inside one `StateStore::update`: the outbox entry is on disk
    /// when this returns.
    pub async fn observe_persisted(
        &self,
        store: &StateStore,
        report: &ClusterReport,
        poll_ok: bool,
        now: DateTime<Utc>,
    ) -> Result<(), StateError> {
        store.update(|s| self.observe(&mut s.alerts, report, poll_ok, now)).await
    }

    /// Forgets the episodes of clusters `keep` rejects: clusters removed from the config or
    /// gone from AWS. No "resolved" is sent (nobody saw the drift end, see
    /// [`policy::forget_clusters`]). Call it only with clusters known to be gone, never with
    /// those a failed listing did not return.
    pub fn forget_clusters(&self, state: &mut AlertState, keep: impl Fn(&ClusterId) -> bool) {
        for c in policy::forget_clusters(state, keep) {
            tracing::info!(
                account_id = %c.account_id, region = %c.region, eks_cluster = %c.name,
                "cluster no longer monitored: its open alert episodes are dropped without a resolved notification"
            );
        }
    }

    /// Delivers the outbox until `cancel`: sends, and removes each entry only after a 2xx.
    pub async fn run(self: Arc<Self>, store: Arc<StateStore>, cancel: CancellationToken) {
        let keys: HashSet<&str> = self.sinks.iter().map(|s| s.key.as_str()).collect();
        let dropped = store
            .update(|s| {
                let before = s.alerts.outbox.len();
                s.alerts.outbox.retain(|e| keys.contains(e.sink.as_str()));
                before - s.alerts.outbox.len()
            })
            .await;
        match dropped {
            Ok(0) => {}
            Ok(n) => tracing::warn!(dropped = n, "outbox entries for sinks no longer configured were dropped"),
            Err(e) => tracing::error!(error = %e, "cannot persist the outbox"),
        }
        let mut workers = tokio::task::JoinSet::new();
        for index in 0..self.sinks.len() {
            workers.spawn(self.clone().deliver(index, store.clone(), cancel.clone()));
        }
        while let Some(done) = workers.join_next().await {
            if let Err(e) = done {
                tracing::error!(error = %e, "an alert delivery worker stopped");
            }
        }
        cancel.cancelled().await;
    }

    /// One sink's worker: its outbox entries, oldest first, one at a time.
    async fn deliver(self: Arc<Self>, index: usize, store: Arc<StateStore>, cancel: CancellationToken) {
        let sink = &self.sinks[index];
        let rate_limited = !matches!(sink.target, Target::Log);
        let mut last_request: Option<Instant> = None;
        let mut attempt: u32 = 0;
        // Delivered, but the removal is not persisted yet: never send these again.
        let mut delivered: HashSet<String> = HashSet::new();
        while !cancel.is_cancelled() {
            if !delivered.is_empty() {
                let ids = delivered.clone();
                match store.update(|s| s.alerts.outbox.retain(|e| !ids.contains(&e.id))).await {
                    Ok(()) => delivered.clear(),
                    Err(e) => tracing::error!(error = %e, sink = %sink.key, "cannot persist the outbox"),
                }
            }
            let (next, length) = store
                .read(|s| {
                    let next =
                        s.alerts.outbox.iter().find(|e| e.sink == sink.key && !delivered.contains(&e.id)).cloned();
                    (next, s.alerts.outbox.len())
                })
                .await;
            self.metrics.queue_length.set(length as i64);
            let Some(entry) = next else {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = sink.wake.notified() => {}
                    _ = tokio::time::sleep(self.options.idle_recheck) => {}
                }
                continue;
            };
            if rate_limited {
                if let Some(last) = last_request {
                    let ready = last + self.options.min_interval;
                    if !pause(&cancel, ready.saturating_duration_since(Instant::now())).await {
                        return;
                    }
                }
            }

            let started = Instant::now();
            let result = tokio::select! {
                _ = cancel.cancelled() => return,
                r = self.send(sink, &entry.notification) => r,
            };
            // Spaced from the end of the previous request: the receiver then sees at most one
            // message per interval however long connecting took.
            if rate_limited {
                last_request = Some(Instant::now());
            }
            self.metrics.latency.with_label_values(&[sink.integration]).observe(started.elapsed().as_secs_f64());
            self.metrics.notifications.with_label_values(&[sink.integration]).inc();
            attempt += 1;
            match result {
                Ok(()) => {
                    tracing::info!(
                        integration = sink.integration, sink = %sink.key, notification_id = %entry.notification.id,
                        eks_cluster = %entry.notification.cluster.name, attempts = attempt,
                        "alert notification delivered"
                    );
                    attempt = 0;
                    self.remove(&store, &entry, &mut delivered).await;
                }
                Err(e) => {
                    self.metrics.failed.with_label_values(&[sink.integration, e.kind()]).inc();
                    if !e.is_retryable() {
                        tracing::error!(
                            integration = sink.integration, sink = %sink.key, notification_id = %entry.notification.id,
                            reason = e.kind(), error = %e, attempts = attempt,
                            "alert notification refused: dropped, not retried"
                        );
                        attempt = 0;
                        self.remove(&store, &entry, &mut delivered).await;
                        continue;
                    }
                    let delay = match &e {
                        DeliveryError::RateLimited { retry_after: Some(after) } => {
                            (*after).min(self.options.max_retry_after)
                        }
                        _ => self.backoff(attempt - 1),
                    };
                    tracing::warn!(
                        integration = sink.integration, sink = %sink.key, notification_id = %entry.notification.id,
                        reason = e.kind(), error = %e, attempts = attempt, retry_in_ms = delay.as_millis() as u64,
                        "alert notification not delivered: will retry"
                    );
                    if !pause(&cancel, delay).await {
                        return;
                    }
                }
            }
        }
    }

    async fn remove(&self, store: &StateStore, entry: &OutboxEntry, delivered: &mut HashSet<String>) {
        // The gauge moves with the outbox, under the same lock, so it never lags a delivery.
        let gauge = &self.metrics.queue_length;
        let removed = store
            .update(|s| {
                s.alerts.outbox.retain(|o| o.id != entry.id);
                gauge.set(s.alerts.outbox.len() as i64);
            })
            .await;
        if let Err(e) = removed {
            tracing::error!(error = %e, "cannot persist the outbox: will retry");
            delivered.insert(entry.id.clone());
        }
    }

    async fn send(&self, sink: &Sink, n: &Notification) -> Result<(), DeliveryError> {
        let external = self.external_url.as_deref();
        match &sink.target {
            Target::Log => {
                log_sink::emit(n);
                Ok(())
            }
            Target::Slack(url) => self.post(url, &slack::payload(n, external)).await,
            Target::Webhook(url) => self.post(url, &webhook::payload(n, external)).await,
        }
    }

    async fn post(&self, url: &Secret<Url>, body: &serde_json::Value) -> Result<(), DeliveryError> {
        let response = self
            .client
            .post(url.expose().clone())
            .json(body)
            .send()
            .await
            .map_err(|e| DeliveryError::from_transport(e, url))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = response.text().await.unwrap_or_default();
        Err(match status.as_u16() {
            429 => DeliveryError::RateLimited { retry_after },
            500..=599 => DeliveryError::Server { status: status.as_u16() },
            code => DeliveryError::Client { status: code, body: scrub(&text, url) },
        })
    }

    /// Exponential from `initial_backoff`, capped at `max_backoff`, with "equal jitter": at
    /// least half the step, so retries from many daemons spread without ever hurrying.
    fn backoff(&self, retry: u32) -> Duration {
        let step = self.options.initial_backoff.as_secs_f64() * 2f64.powi(retry.min(30) as i32);
        let step = step.min(self.options.max_backoff.as_secs_f64());
        Duration::from_secs_f64(rand::rng().random_range(step / 2.0..=step))
    }
}

fn sink(key: String, integration: &'static str, min_severity: Severity, target: Target) -> Sink {
    Sink { key, integration, min_severity, target, wake: Notify::new() }
}

fn severity(what: &str, s: &str) -> Result<Severity, AlertError> {
    Severity::parse(s).map_err(|e| AlertError::Config(format!("{what}: min_severity: {}", e.0)))
}

/// Reads a webhook URL from a file, an environment variable or the config, in that order.
/// Messages name the file or the variable, never the URL.
fn read_url(
    what: &str,
    file: Option<&Path>,
    env: Option<&str>,
    inline: Option<&str>,
    base: &Path,
) -> Result<Secret<Url>, AlertError> {
    let raw = if let Some(file) = file {
        let path = if file.is_relative() { base.join(file) } else { file.to_path_buf() };
        std::fs::read_to_string(&path).map_err(|e| {
            AlertError::Config(format!("{what}: cannot read the webhook URL from {}: {e}", path.display()))
        })?
    } else if let Some(var) = env {
        std::env::var(var).map_err(|_| {
            AlertError::Config(format!(
                "{what}: the environment variable {var} that should hold the webhook URL is not set"
            ))
        })?
    } else if let Some(url) = inline {
        url.to_string()
    } else {
        return Err(AlertError::Config(format!("{what}: no webhook URL: give url, url_env or url_file")));
    };
    let raw = Secret::new(raw);
    let url = Url::parse(raw.expose().trim())
        .map_err(|e| AlertError::Config(format!("{what}: the webhook URL is not a valid URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(AlertError::Config(format!(
            "{what}: the webhook URL must be an http:// or https:// URL with a host"
        )));
    }
    Ok(Secret::new(url))
}

/// `text` without the URL or its secret parts, on one line, at most 200 characters.
fn scrub(text: &str, url: &Secret<Url>) -> String {
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

async fn pause(cancel: &CancellationToken, d: Duration) -> bool {
    if d.is_zero() {
        return !cancel.is_cancelled();
    }
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
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
    fn only_client_errors_are_not_retried() {
        let cases = [
            (DeliveryError::Client { status: 400, body: String::new() }, "client_error", false),
            (DeliveryError::Server { status: 503 }, "server_error", true),
            (DeliveryError::RateLimited { retry_after: None }, "rate_limited", true),
            (DeliveryError::Timeout("t".into()), "timeout", true),
            (DeliveryError::Connect("c".into()), "connect", true),
        ];
        for (e, kind, retry) in cases {
            assert_eq!((e.kind(), e.is_retryable()), (kind, retry), "{e}");
            assert!(DeliveryError::KINDS.contains(&e.kind()));
        }
    }

    #[test]
    fn a_url_that_is_not_http_is_refused_without_being_shown() {
        for raw in
            ["ftp://hooks.example.com/s3cret", "not a url s3cret", "mailto:s3cret@example.com", "https://[s3cret"]
        {
            let err = read_url("[[alerts.webhook]] #1", None, None, Some(raw), Path::new("")).unwrap_err();
            assert!(!err.to_string().contains("s3cret"), "{err}");
            assert!(err.to_string().starts_with("[[alerts.webhook]] #1: "), "{err}");
        }
    }

    #[test]
    fn a_relative_url_file_is_read_next_to_the_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("slack-url"), "https://hooks.slack.com/services/T/B/X\n").unwrap();
        let url = read_url("s", Some(Path::new("slack-url")), None, None, dir.path()).unwrap();
        assert_eq!(url.expose().as_str(), "https://hooks.slack.com/services/T/B/X");
    }

    #[test]
    fn backoff_doubles_from_the_initial_delay_and_stops_at_the_cap() {
        let registry = prometheus::Registry::new();
        let metrics = Arc::new(AlertMetrics::register(&registry).unwrap());
        let d = Dispatcher {
            sinks: Vec::new(),
            routes: Vec::new(),
            policy: Policy { repeat_interval: Duration::ZERO },
            external_url: None,
            metrics,
            client: reqwest::Client::new(),
            options: DeliveryOptions::default(),
        };
        for (retry, step) in [(0u32, 1.0f64), (1, 2.0), (2, 4.0), (5, 32.0), (6, 60.0), (40, 60.0)] {
            let got = d.backoff(retry).as_secs_f64();
            assert!(got >= step / 2.0 && got <= step, "retry {retry}: {got}s not within [{}, {step}]", step / 2.0);
        }
    }
}
