//! Alerts: the pure episode policy and routing, the sinks behind the [`Sink`] trait (Slack,
//! webhook, log: one file each), and the durable delivery (the dispatcher and its outbox workers).
//!
//! A finding that is drift (not suppressed by an exception) opens an episode; the episode's id
//! is the finding id, stable across polls and restarts. Each successful poll of a cluster yields
//! at most one notification: the episodes it opened, the ones it closed, and reminders for drift
//! still open after `alerts.repeat_interval`. A failed or stale poll opens and closes nothing.
//! The notification goes into the outbox once per sink that wants it (its `min_severity` and
//! `match`), keyed by the sink's stable name, and that sink's worker delivers it from there.
//!
//! A cluster that vanishes (removed from the config, or gone from AWS) is forgotten through
//! [`Dispatcher::forget_clusters`]: its open episodes are dropped without a "resolved", since
//! no poll saw the drift end; what was already queued for it is still delivered.
//!
//! Adding a sink kind (PagerDuty, say) touches three files: the new `alert/<kind>.rs` with its
//! `Sink` impl (returning [`Granularity::Episode`] to get one outbox entry per episode), this
//! file (`pub mod`, a [`SinkKind`] variant, a loop in [`build_sinks`]), and its
//! `[[alerts.<kind>]]` table in `config.rs`.

pub mod backoff;
pub mod dispatcher;
pub mod http;
pub mod log;
pub mod metrics;
pub mod outbox;
pub mod policy;
pub mod routing;
pub mod secret;
pub mod sink;
pub mod slack;
pub mod webhook;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use dispatcher::{Configured, Dispatcher};
pub use metrics::AlertMetrics;
pub use outbox::DeliveryOptions;
pub use policy::AlertState;
pub use routing::{Match, Route};
pub use secret::{Secret, SecretSource};
pub use sink::{DeliveryError, Granularity, Pacing, Sink, SinkName};

use crate::config::Settings;

/// A sink that cannot be built from the configuration. Messages name the sink and where its
/// secret comes from, never the secret.
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

/// The kinds of sink; `as_str` is the `integration` label of the notification metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SinkKind {
    Slack,
    Webhook,
    Log,
}

impl SinkKind {
    pub const ALL: [SinkKind; 3] = [SinkKind::Slack, SinkKind::Webhook, SinkKind::Log];

    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::Slack => "slack",
            SinkKind::Webhook => "webhook",
            SinkKind::Log => "log",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// What every sink is built with.
pub struct BuildContext<'a> {
    /// Relative secret files are relative to the config file's directory.
    pub base: &'a Path,
    pub poster: &'a http::Poster,
    pub external_url: Option<&'a str>,
    pub min_interval: Duration,
}

/// Every configured sink with its route, secrets read now: what `run` and a reload use, and
/// what `config check` calls to prove each secret resolves.
pub fn build_sinks(settings: &Settings, options: &DeliveryOptions) -> Result<Vec<Configured>, AlertError> {
    let alerts = &settings.config.alerts;
    let poster = http::Poster::new(options.request_timeout, options.connect_timeout)
        .map_err(|e| AlertError::Client(e.to_string()))?;
    let ctx = BuildContext {
        base: settings.path.parent().unwrap_or(Path::new("")),
        poster: &poster,
        external_url: settings.config.server.external_url.as_deref(),
        min_interval: options.min_interval,
    };
    let failed = |kind: SinkKind, i: usize, name: &SinkName, e: String| {
        AlertError::Config(format!("[[alerts.{}]] #{} `{name}`: {e}", kind.as_str(), i + 1))
    };
    let mut sinks = Vec::new();
    for (i, c) in alerts.slack.iter().enumerate() {
        let sink = slack::SlackSink::build(c, &ctx).map_err(|e| failed(SinkKind::Slack, i, &c.name, e))?;
        sinks.push(configured(Arc::new(sink), c.min_severity, &c.matcher));
    }
    for (i, c) in alerts.webhook.iter().enumerate() {
        let sink = webhook::WebhookSink::build(c, &ctx).map_err(|e| failed(SinkKind::Webhook, i, &c.name, e))?;
        sinks.push(configured(Arc::new(sink), c.min_severity, &c.matcher));
    }
    if alerts.log {
        sinks.push(configured(Arc::new(log::LogSink::default()), crate::model::Severity::Low, &Match::default()));
    }
    Ok(sinks)
}

fn configured(sink: Arc<dyn Sink>, min_severity: crate::model::Severity, matcher: &Match) -> Configured {
    let route =
        Route { sink: sink.name().clone(), min_severity, matcher: matcher.clone(), granularity: sink.granularity() };
    Configured { route, sink }
}
