//! The dispatcher glues the pure policy to the sinks: it observes each poll into the state's
//! outbox (routed per sink by name, `min_severity` and `match`), starts one outbox worker per
//! sink, and keeps entries that no configured sink takes — never sending them elsewhere.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::metrics::AlertMetrics;
use super::outbox::{DeliveryOptions, Worker};
use super::policy::{self, AlertState, Policy, PollOutcome};
use super::routing::Route;
use super::sink::{Sink, SinkName};
use super::{build_sinks, AlertError};
use crate::config::Settings;
use crate::export::report::{ClusterReport, ClusterStatus};
use crate::model::ClusterId;
use crate::state::{StateError, StateStore};

/// A configured sink: where its notifications go, and the sink itself.
#[derive(Debug, Clone)]
pub struct Configured {
    pub route: Route,
    pub sink: Arc<dyn Sink>,
}

struct Slot {
    configured: Configured,
    wake: Arc<Notify>,
}

pub struct Dispatcher {
    slots: Vec<Slot>,
    policy: Policy,
    /// How long an entry for a sink that is not configured is kept: `repeat_interval` (24 h
    /// when reminders are off), enough for a sink removed by mistake to be put back.
    keep_orphans: Duration,
    metrics: Arc<AlertMetrics>,
    options: DeliveryOptions,
}

impl fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sinks: Vec<&Configured> = self.slots.iter().map(|s| &s.configured).collect();
        f.debug_struct("Dispatcher")
            .field("sinks", &sinks)
            .field("policy", &self.policy)
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
        let sinks = build_sinks(settings, &options)?;
        let repeat = settings.config.alerts.repeat_interval;
        Ok(Self::from_sinks(sinks, Policy { repeat_interval: repeat }, metrics, options))
    }

    /// A dispatcher over sinks built elsewhere (tests bring their own).
    pub fn from_sinks(
        sinks: Vec<Configured>,
        policy: Policy,
        metrics: Arc<AlertMetrics>,
        options: DeliveryOptions,
    ) -> Self {
        for c in &sinks {
            metrics.known(c.sink.kind());
        }
        let keep_orphans =
            if policy.repeat_interval.is_zero() { Duration::from_secs(24 * 3600) } else { policy.repeat_interval };
        let slots = sinks.into_iter().map(|configured| Slot { configured, wake: Arc::new(Notify::new()) }).collect();
        Dispatcher { slots, policy, keep_orphans, metrics, options }
    }

    fn configured(&self) -> HashSet<SinkName> {
        self.slots.iter().map(|s| s.configured.sink.name().clone()).collect()
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
            let routes: Vec<Route> = self.slots.iter().map(|s| s.configured.route.clone()).collect();
            let done = policy::enqueue(state, &n, &routes, now);
            tracing::debug!(
                notification_id = %n.id, eks_cluster = %cluster.name, events = n.events.len(),
                queued = done.added, "alert notification queued"
            );
            if done.overflowed > 0 {
                self.metrics.dropped.with_label_values(&["overflow"]).inc_by(done.overflowed as u64);
                tracing::error!(
                    dropped = done.overflowed,
                    limit = policy::MAX_QUEUED_PER_SINK,
                    "a sink's queue is full: its oldest notifications were dropped undelivered"
                );
            }
            for s in &self.slots {
                s.wake.notify_one();
            }
        }
        self.expire_orphans(state, now);
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

    fn expire_orphans(&self, state: &mut AlertState, now: DateTime<Utc>) {
        let configured = self.configured();
        for e in policy::expire_orphans(state, &configured, self.keep_orphans, now) {
            self.metrics.dropped.with_label_values(&["orphan_expired"]).inc();
            tracing::warn!(
                sink = %e.sink, notification_id = %e.notification.id, eks_cluster = %e.notification.cluster.name,
                enqueued_at = %e.enqueued_at.to_rfc3339(),
                "a notification queued for a sink that is not configured expired undelivered"
            );
        }
        self.metrics.orphaned.set(policy::orphans(state, &configured).count() as i64);
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

    /// Maps what an old state file queued by position where that is unambiguous, says what
    /// stays queued for sinks that are not configured, then delivers until `cancel`.
    pub async fn run(self: Arc<Self>, store: Arc<StateStore>, cancel: CancellationToken) {
        self.adopt(&store).await;
        let mut workers = tokio::task::JoinSet::new();
        for slot in &self.slots {
            let worker = Worker {
                sink: Arc::clone(&slot.configured.sink),
                wake: Arc::clone(&slot.wake),
                store: Arc::clone(&store),
                metrics: Arc::clone(&self.metrics),
                options: self.options.clone(),
            };
            workers.spawn(worker.run(cancel.clone()));
        }
        while let Some(done) = workers.join_next().await {
            if let Err(e) = done {
                tracing::error!(error = %e, "an alert delivery worker stopped");
            }
        }
        cancel.cancelled().await;
    }

    async fn adopt(&self, store: &StateStore) {
        let configured: Vec<_> =
            self.slots.iter().map(|s| (s.configured.sink.name().clone(), s.configured.sink.kind())).collect();
        let names = self.configured();
        let now = Utc::now();
        let result = store
            .update(|s| {
                let moved = policy::adopt_legacy(&mut s.alerts, &configured);
                self.expire_orphans(&mut s.alerts, now);
                self.metrics.queue_length.set(s.alerts.outbox.len() as i64);
                let mut orphans = std::collections::BTreeMap::<SinkName, usize>::new();
                for e in policy::orphans(&s.alerts, &names) {
                    *orphans.entry(e.sink.clone()).or_default() += 1;
                }
                (moved, orphans)
            })
            .await;
        let (moved, orphans) = match result {
            Ok(r) => r,
            Err(e) => return tracing::error!(error = %e, "cannot persist the outbox"),
        };
        for (legacy, name) in moved {
            tracing::info!(from = %legacy, to = %name, "a notification queued by an older sgdrift now goes to the only sink of its kind");
        }
        for (sink, count) in orphans {
            let why = if sink.legacy_position().is_some() {
                "queued by an older sgdrift by sink position, which no longer says which sink it meant: kept in quarantine"
            } else {
                "queued for a sink that is not configured: kept, never sent elsewhere"
            };
            tracing::warn!(sink = %sink, queued = count, keep_for_s = self.keep_orphans.as_secs(), "{why}");
        }
    }
}
