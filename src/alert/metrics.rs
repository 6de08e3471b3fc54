//! The notification metrics, registered once: attempts, failures by bounded reason, the queue,
//! what the outbox had to drop, and the round trip. Every label value that can be known ahead
//! (each configured sink's integration × each reason) starts at 0, so `rate()` sees the first.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts};

use super::sink::{DeliveryError, SinkKind};

/// Why the outbox dropped an entry it never delivered (the `reason` label of
/// `sgdrift_notifications_dropped_total`).
pub const DROP_REASONS: [&str; 2] = ["overflow", "orphan_expired"];

/// `sgdrift_notifications_total`, `…_failed_total`, `…_dropped_total`, the queue gauges and the
/// latency histogram.
pub struct AlertMetrics {
    /// Delivery attempts, by integration (`slack`, `webhook`, `log`).
    pub notifications: IntCounterVec,
    /// Failed attempts, by integration and bounded reason ([`DeliveryError::KINDS`]).
    pub failed: IntCounterVec,
    /// Entries dropped undelivered, by reason ([`DROP_REASONS`]).
    pub dropped: IntCounterVec,
    /// Entries in the outbox, all sinks together.
    pub queue_length: IntGauge,
    /// Entries in the outbox that no configured sink will deliver (sink removed or renamed, or
    /// a position-keyed entry of an old state file that could not be mapped).
    pub orphaned: IntGauge,
    /// Round trip of one attempt, by integration.
    pub latency: HistogramVec,
}

impl AlertMetrics {
    pub fn register(registry: &prometheus::Registry) -> Result<Self, prometheus::Error> {
        let counter = |name: &str, help: &str, labels: &[&str]| IntCounterVec::new(Opts::new(name, help), labels);
        let m = AlertMetrics {
            notifications: counter(
                "sgdrift_notifications_total",
                "Notification delivery attempts, by integration.",
                &["integration"],
            )?,
            failed: counter(
                "sgdrift_notifications_failed_total",
                "Failed notification delivery attempts, by integration and reason.",
                &["integration", "reason"],
            )?,
            dropped: counter(
                "sgdrift_notifications_dropped_total",
                "Queued notifications dropped undelivered: overflow of a sink's queue, or kept for a sink that is no longer configured past alerts.repeat_interval.",
                &["reason"],
            )?,
            queue_length: IntGauge::new(
                "sgdrift_notification_queue_length",
                "Notifications in the outbox waiting for delivery, all sinks together.",
            )?,
            orphaned: IntGauge::new(
                "sgdrift_notification_queue_orphaned",
                "Notifications in the outbox for a sink that is not configured; never sent elsewhere.",
            )?,
            latency: HistogramVec::new(
                HistogramOpts::new(
                    "sgdrift_notification_latency_seconds",
                    "Round trip of one notification delivery attempt, by integration.",
                )
                .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
                &["integration"],
            )?,
        };
        registry.register(Box::new(m.notifications.clone()))?;
        registry.register(Box::new(m.failed.clone()))?;
        registry.register(Box::new(m.dropped.clone()))?;
        registry.register(Box::new(m.queue_length.clone()))?;
        registry.register(Box::new(m.orphaned.clone()))?;
        registry.register(Box::new(m.latency.clone()))?;
        for reason in DROP_REASONS {
            m.dropped.with_label_values(&[reason]).inc_by(0);
        }
        Ok(m)
    }

    /// Every series of a configured sink's integration at 0.
    pub fn known(&self, kind: SinkKind) {
        self.notifications.with_label_values(&[kind.as_str()]).inc_by(0);
        for reason in DeliveryError::KINDS {
            self.failed.with_label_values(&[kind.as_str(), reason]).inc_by(0);
        }
    }
}
