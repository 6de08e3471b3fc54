//! Alerts: the pure episode policy, the Slack, webhook and log sinks, and the durable dispatcher.

pub mod dispatcher;
pub mod policy;

pub use dispatcher::{AlertError, AlertMetrics, Dispatcher};
pub use policy::AlertState;
