//! The `log` sink (`[alerts] log = true`): the same events the webhook gets, as one structured
//! tracing line each, for log pipelines that alert on their own.

use super::policy::Notification;
use super::sink::{Delivery, Pacing, Sink, SinkKind, SinkName};

/// The log sink's name in the outbox.
pub fn name() -> SinkName {
    SinkName::explicit("log").unwrap_or_else(|_| unreachable!("`log` is a valid name"))
}

/// `[alerts] log = true`.
#[derive(Debug)]
pub struct LogSink {
    name: SinkName,
}

impl Default for LogSink {
    fn default() -> Self {
        LogSink { name: name() }
    }
}

impl Sink for LogSink {
    fn name(&self) -> &SinkName {
        &self.name
    }

    fn kind(&self) -> SinkKind {
        SinkKind::Log
    }

    fn pacing(&self) -> Pacing {
        Pacing::Unpaced
    }

    fn deliver<'a>(&'a self, n: &'a Notification) -> Delivery<'a> {
        emit(n);
        Box::pin(std::future::ready(Ok(())))
    }
}

/// The tracing target of alert events, so a filter can route them (`sgdrift::alert::event=info`).
pub const TARGET: &str = "sgdrift::alert::event";

pub fn emit(n: &Notification) {
    let c = &n.cluster;
    for e in &n.events {
        let f = &e.finding;
        tracing::info!(
            target: TARGET,
            notification_id = %n.id,
            episode_id = %e.episode_id,
            status = e.status.as_str(),
            reminder = e.reminder,
            account_id = %c.account_id,
            region = %c.region,
            eks_cluster = %c.name,
            group_id = %f.group_id,
            role = f.role.as_str(),
            kind = f.kind.as_str(),
            severity = f.severity.as_str(),
            rule = %f.rule_text(),
            direction = %f.direction,
            protocol = %f.traffic.protocol_name(),
            from_port = f.traffic.from_port(),
            to_port = f.traffic.to_port(),
            peer = %f.peer,
            flow = f.flow.map_or("", |n| n.as_str()),
            suppressed_by = f.suppressed_by.as_deref().unwrap_or(""),
            opened_at = %e.opened_at.to_rfc3339(),
            resolved_at = %e.resolved_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
            reason = %f.reason,
            "alert {}",
            e.status.as_str()
        );
    }
}
