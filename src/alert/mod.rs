//! Alerts: the pure episode policy, the Slack, webhook and log sinks, and the durable dispatcher.
//!
//! A finding that is drift (not suppressed by an exception) opens an episode; the episode's id
//! is the finding id, stable across polls and restarts. Each successful poll of a cluster yields
//! at most one notification: the episodes it opened, the ones it closed, and reminders for drift
//! still open after `alerts.repeat_interval`. A failed or stale poll opens and closes nothing.
//! The notification goes into the outbox once per sink whose `min_severity` it reaches, and the
//! dispatcher delivers it from there.
//!
//! A cluster that vanishes (removed from the config, or gone from AWS) is forgotten through
//! [`Dispatcher::forget_clusters`]: its open episodes are dropped without a "resolved", since
//! no poll saw the drift end; what was already queued for it is still delivered.

pub mod dispatcher;
pub mod log;
pub mod policy;
pub mod secret;
pub mod slack;
pub mod webhook;

pub use dispatcher::{AlertError, AlertMetrics, DeliveryError, DeliveryOptions, Dispatcher};
pub use policy::AlertState;
pub use secret::Secret;
