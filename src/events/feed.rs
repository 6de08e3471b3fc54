//! The SQS loop: long-polls the queue, gathers a burst of events over `[events] coalesce`, asks
//! the scheduler to poll now the clusters they concern (one poll for the whole burst), and
//! deletes each message only once its re-poll is recorded in the state: a crash before that
//! leaves it in the queue, and it comes back after its visibility timeout (at least once).
//! Messages that are not CloudTrail events, or name nothing sgdrift reads, are counted and
//! deleted at once: they never hold up the queue.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::export::metrics::Metrics;
use crate::model::ClusterId;
use crate::scheduler::Trigger;
use crate::state::StateStore;

use super::attribution::Attribution;
use super::aws::{Message, Queue};
use super::cloudtrail::{parse_message, Parsed};

/// Between two receive errors, doubling up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A burst that keeps arriving is cut after this many `coalesce` windows, so that a steady
/// stream of changes still gets polled.
const LONGEST_BURST: u32 = 4;
/// Beyond the re-poll bound, before an undeleted message becomes visible again.
const VISIBILITY_MARGIN: Duration = Duration::from_secs(10);

pub struct Feed {
    pub queue: Queue,
    pub trigger: Trigger,
    pub store: Arc<StateStore>,
    pub metrics: Arc<Metrics>,
    pub attribution: Arc<Attribution>,
    /// How long a burst is gathered before its clusters are polled.
    pub coalesce: Duration,
    /// How long the re-poll of a burst may take before its messages are left for redelivery.
    pub repoll_bound: Duration,
}

/// A message that asked for polls, waiting for them.
struct Pending<'a> {
    message: &'a Message,
    event_time: chrono::DateTime<Utc>,
}

impl Feed {
    /// Runs until `cancel`. Receive errors are logged, counted in the AWS call metrics and
    /// retried with backoff; the stalled-feed alert watches the last successful receive.
    pub async fn run(self, cancel: CancellationToken) {
        match self.queue.has_dead_letter_queue().await {
            Ok(true) => tracing::info!("change feed started; the queue has a dead-letter queue"),
            Ok(false) => tracing::warn!("change feed started; the queue has no dead-letter queue (RedrivePolicy): messages sgdrift cannot delete are retried forever"),
            Err(e) => tracing::warn!(kind = e.kind(), error = %e, "cannot read the change queue's attributes; receiving anyway"),
        }
        self.metrics.events_feed_receiving(Utc::now());
        let visibility = self.repoll_bound + self.coalesce * LONGEST_BURST + VISIBILITY_MARGIN;
        let mut backoff = FIRST_BACKOFF;
        loop {
            let received = tokio::select! {
                _ = cancel.cancelled() => return,
                r = self.queue.receive(super::aws::MAX_WAIT, visibility) => r,
            };
            let first = match received {
                Ok(messages) => messages,
                Err(e) => {
                    tracing::warn!(kind = e.kind(), error = %e, retry_in_s = backoff.as_secs(), "cannot receive from the change queue");
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            backoff = FIRST_BACKOFF;
            self.metrics.events_feed_receiving(Utc::now());
            if first.is_empty() {
                continue;
            }
            let batch = self.gather(first, visibility, &cancel).await;
            tokio::select! {
                _ = cancel.cancelled() => return,
                () = self.handle(&batch) => {}
            }
        }
    }

    /// `first` and what follows it until the queue has been quiet for `coalesce` (a burst that
    /// is still arriving is one burst), but no longer than [`LONGEST_BURST`] `coalesce`s.
    async fn gather(&self, mut batch: Vec<Message>, visibility: Duration, cancel: &CancellationToken) -> Vec<Message> {
        let cap = Instant::now() + self.coalesce * LONGEST_BURST;
        let mut quiet_until = Instant::now() + self.coalesce;
        while Instant::now() < quiet_until.min(cap) && !cancel.is_cancelled() {
            match self.queue.receive(Duration::ZERO, visibility).await {
                Ok(more) if !more.is_empty() => {
                    batch.extend(more);
                    quiet_until = Instant::now() + self.coalesce;
                }
                // A short receive samples the queue: a few samples over the window, not dozens.
                Ok(_) => {
                    let left = quiet_until.min(cap).saturating_duration_since(Instant::now());
                    tokio::time::sleep((self.coalesce / 4).max(Duration::from_millis(50)).min(left)).await;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "a receive while gathering a burst failed; handling what arrived");
                    break;
                }
            }
        }
        batch
    }

    /// Parses, counts, polls and deletes one burst.
    async fn handle(&self, batch: &[Message]) {
        let index = self.store.read_now(|s| self.attribution.index(s));
        let mut settled: Vec<&Message> = Vec::new();
        let mut pending: Vec<Pending<'_>> = Vec::new();
        let mut clusters: BTreeSet<ClusterId> = BTreeSet::new();
        let mut reread: BTreeSet<ClusterId> = BTreeSet::new();
        for m in batch {
            let change = match parse_message(&m.body) {
                Err(e) => {
                    self.metrics.event_received("malformed");
                    tracing::warn!(message_id = %m.id, error = %e, "a change-feed message is not a CloudTrail event; deleted");
                    settled.push(m);
                    continue;
                }
                Ok(Parsed::Ignored(why)) => {
                    self.metrics.event_received("ignored");
                    tracing::debug!(message_id = %m.id, why, "change-feed message ignored");
                    settled.push(m);
                    continue;
                }
                Ok(Parsed::Change(c)) => Arc::new(*c),
            };
            let concerned = index.clusters_for(&change);
            tracing::info!(event = %change.actor.event_name, event_id = %change.actor.event_id, by = %change.actor.arn, clusters = concerned.len(), "change event");
            self.attribution.remember(Arc::clone(&change));
            if concerned.is_empty() {
                self.metrics.event_received("unknown_group");
                settled.push(m);
            } else {
                self.metrics.event_received("matched");
                if change.changes_topology() {
                    reread.extend(concerned.iter().cloned());
                }
                clusters.extend(concerned);
                pending.push(Pending { message: m, event_time: change.actor.event_time });
            }
        }
        let since = Instant::now();
        // An EKS, ENI, endpoint, route or launch-template change: cached metadata is stale now.
        self.trigger.forget_metadata(&reread);
        let asked: Vec<ClusterId> = clusters.into_iter().filter(|id| self.trigger.poll_now([id]) > 0).collect();
        self.delete(&settled).await;
        if asked.is_empty() {
            // Clusters the state still holds but the running config no longer reads: nothing to wait for.
            let done: Vec<&Message> = pending.iter().map(|p| p.message).collect();
            self.delete(&done).await;
            return;
        }
        if !self.trigger.wait_polled(&asked, since, self.repoll_bound).await {
            tracing::warn!(
                clusters = asked.len(),
                messages = pending.len(),
                bound_s = self.repoll_bound.as_secs(),
                "the re-poll did not complete in time (a poll failed, or is slow): its messages stay in the queue and come back after their visibility timeout"
            );
            return;
        }
        let now = Utc::now();
        for p in &pending {
            self.metrics.detection_latency.observe((now - p.event_time).num_milliseconds().max(0) as f64 / 1000.0);
        }
        let done: Vec<&Message> = pending.iter().map(|p| p.message).collect();
        self.delete(&done).await;
    }

    async fn delete(&self, messages: &[&Message]) {
        if messages.is_empty() {
            return;
        }
        match self.queue.delete(messages).await {
            Ok(failed) if failed.is_empty() => {}
            Ok(failed) => tracing::warn!(
                count = failed.len(),
                "SQS did not delete some change-feed messages; they come back and are handled again"
            ),
            Err(e) => {
                tracing::warn!(kind = e.kind(), error = %e, "cannot delete change-feed messages; they come back and are handled again")
            }
        }
    }
}
