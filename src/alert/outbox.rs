//! The outbox worker: one per sink, reading that sink's entries oldest first, one at a time,
//! so a slow or rate-limited Slack never delays the webhook and a "resolved" never overtakes
//! its "firing". An entry is on disk before it is sent and removed only after a 2xx (or a final
//! refusal). Pacing, backoff and `Retry-After` come from [`super::backoff`].
//!
//! Delivery holds while the state cannot be written: an alert sent that cannot be recorded as
//! sent would be sent again after a restart. What is left is the at-least-once bound: a crash
//! between a receiver's 2xx and the one-line journal append that records it sends that one
//! notification again after the restart, with the same `notification_id`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::backoff::{Backoff, Pacer};
use super::metrics::AlertMetrics;
use super::policy::OutboxEntry;
use super::sink::{DeliveryError, Pacing, Sink};
use crate::state::StateStore;

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

impl DeliveryOptions {
    fn backoff(&self) -> Backoff {
        Backoff { initial: self.initial_backoff, max: self.max_backoff }
    }
}

/// One sink's delivery loop.
pub struct Worker {
    pub sink: Arc<dyn Sink>,
    pub wake: Arc<Notify>,
    pub store: Arc<StateStore>,
    pub metrics: Arc<AlertMetrics>,
    pub options: DeliveryOptions,
}

/// What became of one attempt.
enum Settled {
    /// Delivered, or refused for good: the entry leaves the outbox.
    Done,
    /// Try again after this long.
    Retry(Duration),
}

impl Worker {
    /// Delivers this sink's entries until `cancel`.
    pub async fn run(self, cancel: CancellationToken) {
        let mut pacer = match self.sink.pacing() {
            Pacing::Every(interval) => Some(Pacer::new(interval)),
            Pacing::Unpaced => None,
        };
        let mut attempt: u32 = 0;
        let mut held: u32 = 0;
        while !cancel.is_cancelled() {
            let Some(entry) = self.next().await else {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(self.options.idle_recheck) => {}
                }
                continue;
            };
            if !self.state_writable(held).await {
                held += 1;
                if !pause(&cancel, self.options.backoff().next(held - 1)).await {
                    return;
                }
                continue;
            }
            held = 0;
            if let Some(p) = &pacer {
                if !pause(&cancel, p.wait(Instant::now())).await {
                    return;
                }
            }
            let started = Instant::now();
            let result = tokio::select! {
                _ = cancel.cancelled() => return,
                r = self.sink.deliver(&entry.notification) => r,
            };
            if let Some(p) = &mut pacer {
                p.sent(Instant::now());
            }
            let kind = self.sink.kind().as_str();
            self.metrics.latency.with_label_values(&[kind]).observe(started.elapsed().as_secs_f64());
            self.metrics.notifications.with_label_values(&[kind]).inc();
            attempt += 1;
            match self.settle(&entry, result, attempt) {
                Settled::Done => {
                    attempt = 0;
                    self.remove(&entry).await;
                }
                Settled::Retry(delay) => {
                    if !pause(&cancel, delay).await {
                        return;
                    }
                }
            }
        }
    }

    /// The oldest entry for this sink.
    async fn next(&self) -> Option<OutboxEntry> {
        let name = self.sink.name();
        // The queue-length gauge is set only where the outbox changes, under the state's writer
        // (enqueue, delivery, adoption): set from a read here it could overwrite a newer value.
        self.store.read(|s| s.alerts.outbox.iter().find(|e| &e.sink == name).cloned()).await
    }

    /// Whether a send may go out now: the state is writable, or becomes so with a flush.
    async fn state_writable(&self, held: u32) -> bool {
        if self.store.writable_settled().await {
            return true;
        }
        match self.store.flush().await {
            Ok(()) => {
                if held > 0 {
                    tracing::info!(sink = %self.sink.name(), "the state file is writable again: delivery resumes");
                }
                true
            }
            Err(e) => {
                if held == 0 {
                    tracing::error!(
                        sink = %self.sink.name(), error = %e,
                        "alert delivery held: the state file cannot be written, so a delivery could not be recorded and would repeat after a restart"
                    );
                }
                false
            }
        }
    }

    fn settle(&self, entry: &OutboxEntry, result: Result<(), DeliveryError>, attempt: u32) -> Settled {
        let (kind, sink, id) = (self.sink.kind().as_str(), self.sink.name(), &entry.notification.id);
        let e = match result {
            Ok(()) => {
                tracing::info!(
                    integration = kind, sink = %sink, notification_id = %id,
                    eks_cluster = %entry.notification.cluster.name, attempts = attempt,
                    "alert notification delivered"
                );
                return Settled::Done;
            }
            Err(e) => e,
        };
        self.metrics.failed.with_label_values(&[kind, e.kind()]).inc();
        if !e.is_retryable() {
            tracing::error!(
                integration = kind, sink = %sink, notification_id = %id, reason = e.kind(), error = %e,
                attempts = attempt, "alert notification refused: dropped, not retried"
            );
            return Settled::Done;
        }
        let delay = match e.retry_after() {
            Some(after) => after.min(self.options.max_retry_after),
            None => self.options.backoff().next(attempt - 1),
        };
        tracing::warn!(
            integration = kind, sink = %sink, notification_id = %id, reason = e.kind(), error = %e,
            attempts = attempt, retry_in_ms = delay.as_millis() as u64, "alert notification not delivered: will retry"
        );
        Settled::Retry(delay)
    }

    /// Out of the outbox, recorded in the journal. When that append fails the entry is gone
    /// from memory all the same (it is never sent twice by this process), and the next send
    /// waits until the state can be written.
    async fn remove(&self, entry: &OutboxEntry) {
        let gauge = &self.metrics.queue_length;
        let recorded =
            self.store.outbox_delivered(std::slice::from_ref(&entry.id), |left| gauge.set(left as i64)).await;
        if let Err(e) = recorded {
            tracing::error!(error = %e, sink = %self.sink.name(), "cannot record a delivery in the state");
        }
    }
}

/// Sleeps `d` unless cancelled first; false when cancelled.
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
    //! Time is tokio's paused clock: every wait below is virtual, measured exactly.

    use std::collections::VecDeque;
    use std::sync::Mutex;

    use chrono::Utc;

    use super::*;
    use crate::alert::policy::Notification;
    use crate::alert::sink::{Delivery, SinkKind, SinkName};
    use crate::model::ClusterId;

    /// A sink that answers from a script (then `Ok`) and notes when each attempt started.
    #[derive(Debug)]
    struct Scripted {
        name: SinkName,
        replies: Mutex<VecDeque<Result<(), DeliveryError>>>,
        attempts: Mutex<Vec<(Instant, String)>>,
    }

    impl Sink for Scripted {
        fn name(&self) -> &SinkName {
            &self.name
        }
        fn kind(&self) -> SinkKind {
            SinkKind::Webhook
        }
        fn pacing(&self) -> Pacing {
            Pacing::Every(Duration::from_secs(1))
        }
        fn deliver<'a>(&'a self, n: &'a Notification) -> Delivery<'a> {
            self.attempts.lock().unwrap().push((Instant::now(), n.id.clone()));
            let reply = self.replies.lock().unwrap().pop_front().unwrap_or(Ok(()));
            Box::pin(std::future::ready(reply))
        }
    }

    struct Bench {
        sink: Arc<Scripted>,
        store: Arc<StateStore>,
        cancel: CancellationToken,
        task: tokio::task::JoinHandle<()>,
        _dir: tempfile::TempDir,
    }

    fn entry(sink: &SinkName, id: &str) -> OutboxEntry {
        let now = Utc::now();
        let cluster = ClusterId { account_id: "111122223333".into(), region: "eu-west-1".into(), name: "prod".into() };
        let notification =
            Notification { id: id.into(), created_at: now, cluster, events: vec![], open: Default::default() };
        OutboxEntry { id: format!("{id}@{sink}"), sink: sink.clone(), enqueued_at: now, notification }
    }

    /// A worker over a real state file holding `ids`, its sink answering `replies`.
    async fn bench(ids: &[&str], replies: Vec<Result<(), DeliveryError>>, options: DeliveryOptions) -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(StateStore::load(dir.path().join("state/state.json")).unwrap());
        let name = SinkName::explicit("hook").unwrap();
        store.update(|s| s.alerts.outbox.extend(ids.iter().map(|id| entry(&name, id)))).await.unwrap();
        let sink = Arc::new(Scripted { name, replies: Mutex::new(replies.into()), attempts: Mutex::default() });
        let metrics = Arc::new(AlertMetrics::register(&prometheus::Registry::new()).unwrap());
        let worker = Worker { sink: sink.clone(), wake: Arc::default(), store: store.clone(), metrics, options };
        let cancel = CancellationToken::new();
        let task = tokio::spawn(worker.run(cancel.clone()));
        Bench { sink, store, cancel, task, _dir: dir }
    }

    impl Bench {
        /// Waits (in virtual time) for the outbox to empty; the attempts as (ms since the first, id).
        async fn drained(self) -> Vec<(u128, String)> {
            while self.store.read(|s| !s.alerts.outbox.is_empty()).await {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            self.cancel.cancel();
            self.task.await.unwrap();
            let attempts = self.sink.attempts.lock().unwrap().clone();
            let first = attempts[0].0;
            attempts.into_iter().map(|(at, id)| ((at - first).as_millis(), id)).collect()
        }
    }

    fn gaps(attempts: &[(u128, String)]) -> Vec<u128> {
        attempts.windows(2).map(|w| w[1].0 - w[0].0).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_paced_sink_gets_one_request_a_second_oldest_first() {
        let b = bench(&["n1", "n2", "n3"], vec![], DeliveryOptions::default()).await;
        let attempts = b.drained().await;
        assert_eq!(attempts, vec![(0, "n1".into()), (1000, "n2".into()), (2000, "n3".into())]);
    }

    #[tokio::test(start_paused = true)]
    async fn server_errors_back_off_exponentially_with_jitter_then_deliver_once() {
        let options = DeliveryOptions { initial_backoff: Duration::from_secs(4), ..DeliveryOptions::default() };
        let errors = vec![Err(DeliveryError::Server { status: 502 }), Err(DeliveryError::Server { status: 503 })];
        let attempts = bench(&["n1"], errors, options).await.drained().await;
        assert_eq!(attempts.len(), 3);
        let g = gaps(&attempts);
        assert!((2000..=4000).contains(&g[0]) && (4000..=8000).contains(&g[1]), "gaps {g:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_waited_exactly_and_capped() {
        let cases = [(30, 30_000), (3600, 300_000), (0, 1000)];
        for (after, want) in cases {
            let limited = vec![Err(DeliveryError::RateLimited { retry_after: Some(Duration::from_secs(after)) })];
            let attempts = bench(&["n1"], limited, DeliveryOptions::default()).await.drained().await;
            assert_eq!(gaps(&attempts), vec![want], "Retry-After: {after}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_error_drops_the_entry_and_the_next_one_follows() {
        let refused = vec![Err(DeliveryError::Client { status: 400, body: "invalid_payload".into() })];
        let attempts = bench(&["n1", "n2"], refused, DeliveryOptions::default()).await.drained().await;
        assert_eq!(attempts, vec![(0, "n1".into()), (1000, "n2".into())]);
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_is_sent_while_the_state_cannot_be_written_and_nothing_repeats_after_a_restart() {
        let b = bench(&[], vec![], DeliveryOptions::default()).await;
        let state_dir = b.store.path.parent().unwrap().to_path_buf();
        // The state directory becomes unusable (as a full or read-only disk would be; the tests
        // run as root, so a mode change would not stop a write).
        let moved = state_dir.with_extension("moved");
        std::fs::rename(&state_dir, &moved).unwrap();
        std::fs::write(&state_dir, "").unwrap();
        let name = SinkName::explicit("hook").unwrap();
        assert!(b.store.update(|s| s.alerts.outbox.push(entry(&name, "n1"))).await.is_err());
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert!(b.sink.attempts.lock().unwrap().is_empty(), "sent although it could not be recorded");

        std::fs::remove_file(&state_dir).unwrap();
        std::fs::rename(&moved, &state_dir).unwrap();
        let path = b.store.path.clone();
        let attempts = b.drained().await;
        assert_eq!(attempts.len(), 1, "delivered once the state is writable again");
        let again = StateStore::load(path).unwrap();
        assert_eq!(again.read_now(|s| s.alerts.outbox.len()), 0, "a restart would send it again");
    }
}
