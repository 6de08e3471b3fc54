//! The poll loop: one task per configured (target, region), each polled every `poll.interval`
//! plus a random jitter, at most `poll.concurrency` at once; a poll that overruns its interval
//! makes the next ticks be skipped (and counted), never stacked. Besides its timer, a cluster
//! can be asked to poll now through the [`Trigger`]. After each poll the state is updated and
//! persisted together with the alert episodes it opened or closed.
//!
//! A failed poll keeps the last findings, marks them stale and resolves nothing.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::alert::{AlertState, Dispatcher};
use crate::engine::{self, ClusterOutcome, Engine};
use crate::events::Attribution;
use crate::export::metrics::Metrics;
use crate::export::report::{ClusterReport, ClusterStatus};
use crate::model::ClusterId;
use crate::source::{SourceError, TargetSpec};
use crate::state::{cluster_key, ClusterState, Origin, PersistedState, PollError, StateStore};

/// What polls run with; replaced as a whole by a config reload.
pub struct Generation {
    pub engine: Arc<Engine>,
    pub dispatcher: Arc<Dispatcher>,
}

/// `/readyz`: not ready until every target of the config has been polled once.
#[derive(Debug, Default)]
pub struct Readiness {
    ready: AtomicBool,
    generation: AtomicU64,
    remaining: AtomicUsize,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// At shutdown: stop taking traffic before anything else stops.
    pub fn set_not_ready(&self) {
        self.ready.store(false, Ordering::Release);
    }

    /// A new set of `targets` polls starts; returns its generation number.
    fn start(&self, targets: usize) -> u64 {
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.remaining.store(targets, Ordering::Release);
        if targets == 0 {
            self.ready.store(true, Ordering::Release);
        }
        generation
    }

    /// One target of `generation` finished its first poll.
    fn polled_once(&self, generation: u64) {
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.ready.store(true, Ordering::Release);
        }
    }
}

/// Why a whole target poll produced nothing.
#[derive(Debug, Clone)]
pub struct TargetFailure {
    /// Bounded: `SourceError::kind()`, or `internal` for a poll that panicked.
    pub kind: &'static str,
    pub message: String,
}

impl From<&SourceError> for TargetFailure {
    fn from(e: &SourceError) -> Self {
        TargetFailure { kind: e.kind(), message: e.to_string() }
    }
}

/// What one applied poll did, for the metrics and the log.
#[derive(Debug, Default, PartialEq)]
pub struct Applied {
    /// (account, region) of every cluster poll, and whether it succeeded.
    pub polls: Vec<(String, String, bool)>,
    /// Clusters that failed after succeeding before, or recovered (key, now ok).
    pub changed_health: Vec<(String, bool)>,
    /// Keys of clusters no longer returned by their target.
    pub removed: Vec<String>,
}

/// Applies one target poll to `state`: successes replace the cluster's view (keeping first-seen
/// times of findings still present), failures keep the last view and mark it stale, clusters
/// the target no longer returns are removed. `observe` sees every cluster's new report with
/// whether its poll succeeded, and the alert state to record episodes in.
pub fn apply_poll(
    state: &mut PersistedState,
    spec: &TargetSpec,
    result: &Result<Vec<ClusterOutcome>, TargetFailure>,
    now: DateTime<Utc>,
    observe: &mut dyn FnMut(&mut AlertState, &ClusterReport, bool),
) -> Applied {
    let origin = Origin { region: spec.region.clone(), role_arn: spec.role_arn.clone() };
    let mut applied = Applied::default();
    match result {
        Ok(outcomes) => {
            let mut seen = HashSet::new();
            for outcome in outcomes {
                let key = cluster_key(&outcome.id);
                seen.insert(key.clone());
                let was_ok = state.clusters.get(&key).map(ClusterState::poll_ok);
                let ok = match &outcome.result {
                    Ok(_) => {
                        let next = succeeded(state.clusters.get(&key), outcome, origin.clone(), now);
                        state.clusters.insert(key.clone(), next);
                        true
                    }
                    Err(e) => {
                        let failure = TargetFailure::from(e);
                        let next = failed(state.clusters.get(&key), &outcome.id, origin.clone(), &failure, now);
                        state.clusters.insert(key.clone(), next);
                        false
                    }
                };
                if was_ok.is_some_and(|w| w != ok) {
                    applied.changed_health.push((key.clone(), ok));
                }
                observe(&mut state.alerts, &state.clusters[&key].report, ok);
                applied.polls.push((outcome.id.account_id.clone(), outcome.id.region.clone(), ok));
            }
            let gone: Vec<String> = state
                .clusters
                .iter()
                .filter(|(key, c)| c.origin == origin && spec.wants(&c.report.cluster) && !seen.contains(*key))
                .map(|(key, _)| key.clone())
                .collect();
            for key in gone {
                state.clusters.remove(&key);
                applied.removed.push(key);
            }
        }
        Err(failure) => {
            let hit: Vec<String> = state
                .clusters
                .iter()
                .filter(|(_, c)| c.origin == origin && spec.wants(&c.report.cluster))
                .map(|(key, _)| key.clone())
                .collect();
            for key in &hit {
                let previous = &state.clusters[key];
                let id = previous.id();
                if previous.poll_ok() {
                    applied.changed_health.push((key.clone(), false));
                }
                let next = failed(Some(previous), &id, origin.clone(), failure, now);
                state.clusters.insert(key.clone(), next);
                observe(&mut state.alerts, &state.clusters[key].report, false);
                applied.polls.push((id.account_id, id.region, false));
            }
            if hit.is_empty() {
                // Nothing known yet to mark: count it against the account the role names, if any.
                let account = spec.role_arn.as_deref().and_then(arn_account).unwrap_or_default();
                applied.polls.push((account.to_string(), spec.region.clone(), false));
            }
        }
    }
    applied
}

fn succeeded(
    previous: Option<&ClusterState>,
    outcome: &ClusterOutcome,
    origin: Origin,
    now: DateTime<Utc>,
) -> ClusterState {
    let mut report = engine::cluster_report(outcome);
    report.mark_polled(now, |id| previous.and_then(|p| p.first_seen.get(id)).copied());
    if let Some(p) = previous {
        keep_changed_by(&mut report, &p.report);
    }
    let first_seen = report.findings.iter().map(|f| (f.id.clone(), f.first_seen.unwrap_or(now))).collect();
    ClusterState { report, first_seen, origin, last_attempt: Some(now), last_error: None }
}

/// A finding keeps the actor it was attributed to when it first appeared (the poll that sees it
/// again has no event for it), as it keeps its first-seen time.
fn keep_changed_by(report: &mut ClusterReport, previous: &ClusterReport) {
    for f in report.findings.iter_mut().filter(|f| f.changed_by.is_none()) {
        f.changed_by = previous.findings.iter().find(|p| p.id == f.id).and_then(|p| p.changed_by.clone());
    }
}

fn failed(
    previous: Option<&ClusterState>,
    id: &ClusterId,
    origin: Origin,
    failure: &TargetFailure,
    now: DateTime<Utc>,
) -> ClusterState {
    let error = PollError { kind: failure.kind.to_string(), message: failure.message.clone(), at: now };
    match previous {
        Some(p) => {
            let mut report = p.report.clone();
            report.status = ClusterStatus::Error;
            report.error = Some(failure.message.clone());
            report.stale = report.last_success.is_some();
            ClusterState {
                report,
                first_seen: p.first_seen.clone(),
                origin,
                last_attempt: Some(now),
                last_error: Some(error),
            }
        }
        None => ClusterState {
            report: ClusterReport::failed(&id.account_id, &id.region, &id.name, Some(failure.message.clone())),
            first_seen: BTreeMap::new(),
            origin,
            last_attempt: Some(now),
            last_error: Some(error),
        },
    }
}

/// Drops clusters no configured target names any more (after a reload, or at start with a
/// state file from another config). Returns their keys.
pub fn prune_unconfigured(state: &mut PersistedState, specs: &[(usize, TargetSpec)]) -> Vec<String> {
    let gone: Vec<String> = state
        .clusters
        .iter()
        .filter(|(_, c)| {
            !specs.iter().any(|(_, s)| {
                s.region == c.origin.region && s.role_arn == c.origin.role_arn && s.wants(&c.report.cluster)
            })
        })
        .map(|(key, _)| key.clone())
        .collect();
    for key in &gone {
        state.clusters.remove(key);
    }
    gone
}

/// Drops the alert episodes of clusters the state no longer holds (gone from their target, or
/// no longer configured): no "resolved" is sent for them, see `Dispatcher::forget_clusters`.
pub fn forget_vanished(state: &mut PersistedState, dispatcher: &Dispatcher) {
    let clusters = &state.clusters;
    dispatcher.forget_clusters(&mut state.alerts, |id| clusters.contains_key(&cluster_key(id)));
}

/// `arn:aws:iam::111122223333:role/x` → `111122223333`.
pub fn arn_account(arn: &str) -> Option<&str> {
    arn.split(':').nth(4).filter(|a| !a.is_empty())
}

/// Runs the polls of one generation of the config.
pub struct Scheduler {
    pub store: Arc<StateStore>,
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<Readiness>,
    trigger: Trigger,
    /// Says who made the changes behind new findings, before they are recorded and alerted.
    attribution: Option<Arc<Attribution>>,
    running: std::sync::Mutex<RunningTasks>,
}

/// The target tasks spawned last, so that a change of the organization's accounts starts and
/// stops only the (target, region) pairs it adds or removes.
#[derive(Default)]
struct RunningTasks {
    permits: Option<Arc<Semaphore>>,
    tasks: Vec<RunningTask>,
}

struct RunningTask {
    index: usize,
    spec: TargetSpec,
    cancel: CancellationToken,
    route: Route,
}

/// The permits of `poll.concurrency`, shared by every target task of a generation.
fn poll_permits(generation: &Generation) -> Arc<Semaphore> {
    Arc::new(Semaphore::new(generation.engine.settings.config.poll.concurrency.max(1)))
}

/// Going from the `running` (target index, spec) pairs to the `wanted` ones: the positions in
/// `running` whose task stops, and those in `wanted` that need a new one. A pair in both keeps
/// its task, and with it its timer's phase and its cached view.
fn reconcile_plan(running: &[(usize, &TargetSpec)], wanted: &[(usize, &TargetSpec)]) -> (Vec<usize>, Vec<usize>) {
    let stop = (0..running.len()).filter(|&i| !wanted.contains(&running[i])).collect();
    let start = (0..wanted.len()).filter(|&i| !running.contains(&wanted[i])).collect();
    (stop, start)
}

impl Scheduler {
    pub fn new(store: Arc<StateStore>, metrics: Arc<Metrics>, readiness: Arc<Readiness>) -> Self {
        Scheduler {
            store,
            metrics,
            readiness,
            trigger: Trigger::default(),
            attribution: None,
            running: Default::default(),
        }
    }

    /// Attributes the new findings of every poll through `attribution` (design.md §2 events).
    pub fn with_attribution(mut self, attribution: Arc<Attribution>) -> Self {
        self.attribution = Some(attribution);
        self
    }

    /// The handle that asks for polls besides the timer's; it follows every generation.
    pub fn trigger(&self) -> Trigger {
        self.trigger.clone()
    }

    /// Spawns one task per (target, region) of `generation` on `tracker`; they stop at `cancel`
    /// (an in-flight poll is abandoned; a state write in progress completes).
    pub fn spawn(self: &Arc<Self>, generation: Arc<Generation>, tracker: &TaskTracker, cancel: CancellationToken) {
        let specs = generation.engine.target_specs();
        let first_cycle = if self.readiness.is_ready() { None } else { Some(self.readiness.start(specs.len())) };
        let permits = poll_permits(&generation);
        let tasks: Vec<RunningTask> = specs
            .into_iter()
            .map(|(index, spec)| {
                let task = TargetTask { generation: Arc::clone(&generation), index, spec, first_cycle };
                self.start_task(task, &permits, tracker, &cancel)
            })
            .collect();
        self.trigger.route_to(tasks.iter().map(|t| t.route.clone()).collect());
        *self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            RunningTasks { permits: Some(permits), tasks };
    }

    /// The (target, region) pairs of `generation` changed (an organization's accounts did):
    /// the tasks of pairs that remain keep running on their timers, those of pairs gone stop,
    /// new pairs get a task that polls at once. Restarting every task instead would poll the
    /// whole fleet at once each time one account joins or leaves.
    pub fn reconcile(self: &Arc<Self>, generation: Arc<Generation>, tracker: &TaskTracker, cancel: CancellationToken) {
        let wanted = generation.engine.target_specs();
        let mut running = self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let permits = Arc::clone(running.permits.get_or_insert_with(|| poll_permits(&generation)));
        let (stop, start) = {
            let now: Vec<(usize, &TargetSpec)> = running.tasks.iter().map(|t| (t.index, &t.spec)).collect();
            let want: Vec<(usize, &TargetSpec)> = wanted.iter().map(|(i, s)| (*i, s)).collect();
            reconcile_plan(&now, &want)
        };
        for (i, task) in std::mem::take(&mut running.tasks).into_iter().enumerate() {
            if stop.contains(&i) {
                task.cancel.cancel();
            } else {
                running.tasks.push(task);
            }
        }
        for i in start {
            let (index, spec) = wanted[i].clone();
            let task = TargetTask { generation: Arc::clone(&generation), index, spec, first_cycle: None };
            running.tasks.push(self.start_task(task, &permits, tracker, &cancel));
        }
        self.trigger.route_to(running.tasks.iter().map(|t| t.route.clone()).collect());
    }

    /// Spawns the task of one (target, region) pair; it stops at its own token, a child of
    /// `cancel`.
    fn start_task(
        self: &Arc<Self>,
        task: TargetTask,
        permits: &Arc<Semaphore>,
        tracker: &TaskTracker,
        cancel: &CancellationToken,
    ) -> RunningTask {
        let poll = &task.generation.engine.settings.config.poll;
        let asked = Arc::new(Asked::default());
        let forget: Arc<dyn Fn(&str) + Send + Sync> = {
            let (engine, spec) = (Arc::clone(&task.generation.engine), task.spec.clone());
            Arc::new(move |name: &str| engine.source.invalidate_metadata(&spec, name))
        };
        let route = Route { spec: task.spec.clone(), asked: Arc::clone(&asked), forget };
        let schedule =
            Schedule::new(Timer::new(Instant::now(), poll.interval, poll.jitter), asked, Arc::clone(permits));
        let (index, spec, own) = (task.index, task.spec.clone(), cancel.child_token());
        tracker.spawn(Arc::clone(self).run_target(task, schedule, own.clone()));
        RunningTask { index, spec, cancel: own, route }
    }

    async fn run_target(self: Arc<Self>, task: TargetTask, mut schedule: Schedule, cancel: CancellationToken) {
        let mut first = true;
        while let Some((due, permit)) = schedule.next(&cancel).await {
            let spec = match &due {
                Due::Timer => task.spec.clone(),
                Due::Asked(names) => TargetSpec { clusters: names.iter().cloned().collect(), ..task.spec.clone() },
            };
            let started = Instant::now();
            let Some(mut result) = self.poll_once(&task, spec.clone(), &cancel).await else { return };
            drop(permit);
            if due == Due::Timer {
                // The histogram is of whole-target polls; one asked for a few clusters is not one.
                self.metrics.poll_duration.observe(started.elapsed().as_secs_f64());
            }
            if let (Some(attribution), Ok(outcomes)) = (&self.attribution, &mut result) {
                attribution.attribute(&spec, outcomes, &self.store).await;
            }
            let polled: Vec<String> = match &result {
                Ok(outcomes) => outcomes.iter().filter(|o| o.result.is_ok()).map(|o| cluster_key(&o.id)).collect(),
                Err(_) => Vec::new(),
            };
            self.record(&spec, &task, result).await;
            self.trigger.polled(polled, started);
            let skipped = schedule.done(&due, Instant::now());
            if due == Due::Timer && std::mem::take(&mut first) {
                if let Some(generation) = task.first_cycle {
                    self.readiness.polled_once(generation);
                }
            }
            if skipped > 0 {
                self.metrics.polls_skipped.inc_by(skipped);
                tracing::warn!(
                    region = %task.spec.region,
                    skipped,
                    took_s = started.elapsed().as_secs_f64(),
                    interval_s = schedule.timer.interval.as_secs_f64(),
                    "a poll overran its interval; skipped the ticks it overlapped"
                );
            }
        }
    }

    /// Polls `spec` of one target; `None` when cancelled. A panicking poll becomes a failure of
    /// the target, never the end of its loop.
    async fn poll_once(
        &self,
        task: &TargetTask,
        spec: TargetSpec,
        cancel: &CancellationToken,
    ) -> Option<Result<Vec<ClusterOutcome>, TargetFailure>> {
        let engine = Arc::clone(&task.generation.engine);
        let index = task.index;
        let mut handle = tokio::spawn(async move { engine.poll_target(index, &spec).await });
        let joined = tokio::select! {
            _ = cancel.cancelled() => {
                handle.abort();
                return None;
            }
            joined = &mut handle => joined,
        };
        Some(match joined {
            Ok(Ok(outcomes)) => Ok(outcomes),
            Ok(Err(e)) => Err(TargetFailure::from(&e)),
            Err(e) => {
                tracing::error!(region = %task.spec.region, error = %e, "a poll panicked; counted as a failed poll");
                Err(TargetFailure { kind: "internal", message: format!("internal error while polling: {e}") })
            }
        })
    }

    /// Applies a poll of `spec` to the state and the alert episodes, persists both, updates the
    /// metrics.
    async fn record(&self, spec: &TargetSpec, task: &TargetTask, result: Result<Vec<ClusterOutcome>, TargetFailure>) {
        let now = Utc::now();
        let dispatcher = Arc::clone(&task.generation.dispatcher);
        let (applied, written) = self
            .store
            .apply(|state| {
                let applied = apply_poll(state, spec, &result, now, &mut |alerts, report, ok| {
                    dispatcher.observe(alerts, report, ok, now);
                });
                if !applied.removed.is_empty() {
                    forget_vanished(state, &dispatcher);
                }
                applied
            })
            .await;
        if let Err(e) = written {
            self.metrics.state_write_failures.inc();
            tracing::error!(error = %e, "cannot persist the state; keeping it in memory and retrying on the next poll");
        }
        for (account, region, ok) in &applied.polls {
            self.metrics.poll_recorded(account, region, *ok);
        }
        log_applied(spec, &result, &applied);
    }
}

fn log_applied(spec: &TargetSpec, result: &Result<Vec<ClusterOutcome>, TargetFailure>, applied: &Applied) {
    match result {
        Err(failure) => {
            tracing::warn!(region = %spec.region, kind = failure.kind, error = %failure.message, "target poll failed; keeping the last findings, marked stale");
        }
        Ok(outcomes) => {
            for o in outcomes {
                if let Err(e) = &o.result {
                    tracing::warn!(cluster = %o.id, kind = e.kind(), error = %e, "cluster poll failed; keeping the last findings, marked stale");
                }
            }
        }
    }
    for (key, ok) in &applied.changed_health {
        if *ok {
            tracing::info!(cluster = %key, "cluster poll recovered");
        }
    }
    for key in &applied.removed {
        tracing::info!(cluster = %key, "cluster no longer returned by its target; dropped");
    }
    tracing::debug!(region = %spec.region, clusters = applied.polls.len(), "poll recorded");
}

struct TargetTask {
    generation: Arc<Generation>,
    index: usize,
    spec: TargetSpec,
    first_cycle: Option<u64>,
}

/// Asks for polls besides the timer's: "poll these clusters now" (the event feed of
/// design.md §2 will, when a change names their security groups). The task of each target that
/// names a cluster polls it as soon as it is free and has a permit of the concurrency cap; a
/// request never stacks a second poll of a target on one in flight, requests for the same
/// cluster before its poll starts are one, and a timer poll that starts after a request covers
/// it. Polling on the timer goes on regardless: it is the safety net.
#[derive(Clone, Default)]
pub struct Trigger {
    routes: Arc<std::sync::Mutex<Vec<Route>>>,
    polled: Arc<Polled>,
}

/// When the last successful poll of each cluster that has been recorded in the state started:
/// what the event feed waits on before it deletes the messages that asked for the poll.
#[derive(Default)]
struct Polled {
    started: std::sync::Mutex<std::collections::HashMap<String, Instant>>,
    changed: Notify,
}

/// One target task's share of the requests.
#[derive(Clone)]
struct Route {
    spec: TargetSpec,
    asked: Arc<Asked>,
    /// Makes the source read a cluster's metadata again at its next poll.
    forget: Arc<dyn Fn(&str) + Send + Sync>,
}

impl Route {
    /// Does this target read `id`? By region and name, and by account where its role names one.
    fn reads(&self, id: &ClusterId) -> bool {
        let account = self.spec.role_arn.as_deref().and_then(arn_account);
        self.spec.region == id.region && self.spec.wants(&id.name) && account.is_none_or(|a| a == id.account_id)
    }
}

impl Trigger {
    /// Asks for a poll of each of `clusters` now. Returns how many of them a target reads:
    /// the others are unknown to the running config and ignored.
    pub fn poll_now<'a>(&self, clusters: impl IntoIterator<Item = &'a ClusterId>) -> usize {
        let routes = self.routes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut routed = 0;
        for id in clusters {
            let mut hit = false;
            for route in routes.iter().filter(|r| r.reads(id)) {
                route.asked.ask(&id.name);
                hit = true;
            }
            routed += usize::from(hit);
        }
        routed
    }

    /// Makes the next poll of each of `clusters` read its metadata (cluster, node groups,
    /// instances, endpoints, routes) again instead of the cached copy.
    pub fn forget_metadata<'a>(&self, clusters: impl IntoIterator<Item = &'a ClusterId>) {
        let routes = self.routes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for id in clusters {
            for route in routes.iter().filter(|r| r.reads(id)) {
                (route.forget)(&id.name);
            }
        }
    }

    /// Waits until a successful poll of each of `clusters` that started at or after `since` is
    /// recorded in the state; `false` when `bound` passes first (a poll failed, or is slow).
    pub async fn wait_polled(&self, clusters: &[ClusterId], since: Instant, bound: Duration) -> bool {
        let keys: Vec<String> = clusters.iter().map(cluster_key).collect();
        let done = || {
            let started = self.polled.started.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            keys.iter().all(|k| started.get(k).is_some_and(|t| *t >= since))
        };
        let wait = async {
            loop {
                let notified = self.polled.changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if done() {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(bound, wait).await.is_ok()
    }

    /// Polls of `clusters` that started at `started` succeeded and are in the state.
    fn polled(&self, clusters: Vec<String>, started: Instant) {
        if clusters.is_empty() {
            return;
        }
        let mut map = self.polled.started.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for key in clusters {
            map.insert(key, started);
        }
        drop(map);
        self.polled.changed.notify_waiters();
    }

    /// Sends requests to the tasks of a new generation from now on.
    fn route_to(&self, routes: Vec<Route>) {
        *self.routes.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = routes;
    }
}

/// Clusters asked for and not yet polled, for one target task.
#[derive(Debug, Default)]
struct Asked {
    names: std::sync::Mutex<BTreeSet<String>>,
    /// Holds one wake-up when none is awaited, so a request made during a poll is not lost.
    wake: Notify,
}

impl Asked {
    fn ask(&self, name: &str) {
        self.lock().insert(name.to_string());
        self.wake.notify_one();
    }

    fn take(&self) -> BTreeSet<String> {
        std::mem::take(&mut *self.lock())
    }

    fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.names.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What a target task polls next.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Due {
    /// Everything the target names, on the timer.
    Timer,
    /// The clusters asked for through the [`Trigger`].
    Asked(BTreeSet<String>),
}

/// When a target's scheduled polls are due: the first at once (the semaphore spreads the load),
/// later ones on ticks `interval` apart, each delayed by its own jitter. A poll that overruns
/// makes the ticks it overlapped be skipped (and counted), never stacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Timer {
    interval: Duration,
    jitter: Duration,
    tick: Instant,
    due: Instant,
}

impl Timer {
    fn new(now: Instant, interval: Duration, jitter: Duration) -> Self {
        // The config refuses a zero interval; this keeps the skip loop finite whatever it gets.
        let interval = interval.max(Duration::from_millis(1));
        Timer { interval, jitter, tick: now, due: now }
    }

    /// After a scheduled poll that ended at `now`: the next tick after `now`, delayed by
    /// `jitter`; returns how many ticks the poll overlapped.
    fn advance(&mut self, now: Instant, jitter: Duration) -> u64 {
        self.tick += self.interval;
        let mut skipped = 0;
        while self.tick <= now {
            self.tick += self.interval;
            skipped += 1;
        }
        self.due = self.tick + jitter;
        skipped
    }
}

/// One target task's view of time and requests: which poll is due next, and its permit.
struct Schedule {
    timer: Timer,
    asked: Arc<Asked>,
    permits: Arc<Semaphore>,
    /// The jitter of each tick, at most the configured one (random; fixed in tests).
    draw: fn(Duration) -> Duration,
}

impl Schedule {
    fn new(timer: Timer, asked: Arc<Asked>, permits: Arc<Semaphore>) -> Self {
        Schedule { timer, asked, permits, draw: random_jitter }
    }

    /// Waits for the next poll — the timer's tick, or clusters asked for — and for a permit of
    /// the concurrency cap; `None` at `cancel`. What an asked poll covers is fixed when it gets
    /// its permit, and a timer poll then takes the requests made so far with it.
    async fn next(&mut self, cancel: &CancellationToken) -> Option<(Due, OwnedSemaphorePermit)> {
        loop {
            let on_timer = tokio::select! {
                // The timer first: when both are ready, its poll covers the request.
                biased;
                _ = cancel.cancelled() => return None,
                _ = tokio::time::sleep_until(self.timer.due) => true,
                _ = self.asked.wake.notified() => false,
            };
            // A wake-up left by a request that a timer poll has since covered.
            if !on_timer && self.asked.is_empty() {
                continue;
            }
            let permit = tokio::select! {
                _ = cancel.cancelled() => return None,
                permit = Arc::clone(&self.permits).acquire_owned() => permit.ok()?,
            };
            let asked = self.asked.take();
            if on_timer {
                return Some((Due::Timer, permit));
            }
            if !asked.is_empty() {
                return Some((Due::Asked(asked), permit));
            }
        }
    }

    /// After the poll `due` ended at `now`; returns the ticks it made the timer skip.
    fn done(&mut self, due: &Due, now: Instant) -> u64 {
        match due {
            Due::Timer => self.timer.advance(now, (self.draw)(self.timer.jitter)),
            // The timer keeps its ticks; one it passed meanwhile fires at once.
            Due::Asked(_) => 0,
        }
    }
}

/// A uniformly random delay in `[0, max)`.
fn random_jitter(max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    Duration::from_secs_f64(rand::rng().random_range(0.0..max.as_secs_f64()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::Evaluation;
    use crate::model::{ClusterSnapshot, EndpointMode, Finding, FindingKind, Role, SecurityGroup, Style};

    fn id(name: &str) -> ClusterId {
        ClusterId { account_id: "111122223333".into(), region: "eu-west-1".into(), name: name.into() }
    }

    fn spec() -> TargetSpec {
        TargetSpec { region: "eu-west-1".into(), role_arn: None, clusters: vec!["*".into()] }
    }

    fn finding(cluster: &str, port: i32) -> Finding {
        let id =
            crate::model::finding_id(&id(cluster), "sg-0123456789abcdef0", FindingKind::Unexpected, &port.to_string());
        let rule = format!("ingress tcp {port} from 0.0.0.0/0");
        Finding::test().critical().rule(&rule).reason("open to the internet").id(&id).build()
    }

    fn snapshot(name: &str) -> ClusterSnapshot {
        let group = SecurityGroup {
            id: "sg-0123456789abcdef0".into(),
            name: "nodes".into(),
            description: String::new(),
            owner_id: None,
            vpc_id: None,
            tags: BTreeMap::new(),
            roles: [Role::Node].into(),
            rules: vec![],
        };
        ClusterSnapshot {
            id: id(name),
            endpoint_mode: EndpointMode::Public,
            public_access_cidrs: vec![],
            style: Style::Eksctl,
            ip_family: crate::model::IpFamily::Ipv4,
            remote_network: None,
            vpc_id: "vpc-0123456789abcdef0".into(),
            vpc_cidrs: vec![],
            cluster_security_group_id: None,
            control_plane_security_group_ids: vec![],
            groups: [(group.id.clone(), group)].into(),
            node_groups: vec![],
            vpc_endpoints: vec![],
            pod_security_group_sets: vec![],
            data_plane: Default::default(),
            peer_groups: BTreeMap::new(),
            prefix_lists: BTreeMap::new(),
            warnings: vec![],
        }
    }

    fn ok(name: &str, findings: Vec<Finding>) -> ClusterOutcome {
        ClusterOutcome {
            id: id(name),
            target: 0,
            result: Ok((snapshot(name), Evaluation { findings, flows: vec![], owned: vec![] })),
        }
    }

    fn err(name: &str) -> ClusterOutcome {
        ClusterOutcome { id: id(name), target: 0, result: Err(SourceError::Input("x.json:1:2: bad".into())) }
    }

    fn at(s: u32) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + i64::from(s), 0).unwrap()
    }

    /// Applies and records what the alert observer saw: (cluster, poll ok, stale).
    fn run(
        state: &mut PersistedState,
        result: Result<Vec<ClusterOutcome>, TargetFailure>,
        now: DateTime<Utc>,
    ) -> (Applied, Vec<(String, bool, bool)>) {
        let mut seen = Vec::new();
        let applied =
            apply_poll(state, &spec(), &result, now, &mut |_, r, ok| seen.push((r.cluster.clone(), ok, r.stale)));
        (applied, seen)
    }

    #[test]
    fn a_finding_keeps_its_first_seen_time_across_polls_and_a_new_one_gets_now() {
        let mut state = PersistedState::default();
        run(&mut state, Ok(vec![ok("prod", vec![finding("prod", 22)])]), at(0));
        run(&mut state, Ok(vec![ok("prod", vec![finding("prod", 22), finding("prod", 23)])]), at(60));
        let c = &state.clusters["111122223333/eu-west-1/prod"];
        let times: Vec<DateTime<Utc>> = c.report.findings.iter().map(|f| c.first_seen[&f.id]).collect();
        assert_eq!(times, vec![at(0), at(60)]);
    }

    #[test]
    fn a_finding_keeps_the_actor_it_was_attributed_to_across_polls() {
        let by = crate::model::ChangedBy {
            arn: "arn:aws:sts::111122223333:assumed-role/Admin/jo".into(),
            source_ip: Some("203.0.113.7".into()),
            user_agent: None,
            event_time: at(0),
            event_name: "AuthorizeSecurityGroupIngress".into(),
            event_id: "e-1".into(),
        };
        let mut state = PersistedState::default();
        let attributed = Finding { changed_by: Some(by.clone()), ..finding("prod", 22) };
        run(&mut state, Ok(vec![ok("prod", vec![attributed])]), at(0));
        run(&mut state, Ok(vec![ok("prod", vec![finding("prod", 22), finding("prod", 23)])]), at(60));
        let c = &state.clusters["111122223333/eu-west-1/prod"];
        let actors: Vec<Option<&str>> =
            c.report.findings.iter().map(|f| f.changed_by.as_ref().map(|b| b.event_id.as_str())).collect();
        assert_eq!(actors, vec![Some("e-1"), None]);
    }

    #[test]
    fn a_failed_poll_keeps_the_findings_marks_them_stale_and_tells_the_observer_it_failed() {
        let mut state = PersistedState::default();
        run(&mut state, Ok(vec![ok("prod", vec![finding("prod", 22)])]), at(0));
        let (applied, seen) = run(&mut state, Ok(vec![err("prod")]), at(60));
        let c = &state.clusters["111122223333/eu-west-1/prod"];
        assert_eq!(c.report.findings, vec![Finding { first_seen: Some(at(0)), ..finding("prod", 22) }]);
        assert_eq!((c.report.status, c.report.stale, c.report.last_success), (ClusterStatus::Error, true, Some(at(0))));
        assert_eq!(c.first_seen.len(), 1);
        assert!(!c.poll_ok());
        assert_eq!(seen, vec![("prod".to_string(), false, true)]);
        assert_eq!(applied.polls, vec![("111122223333".into(), "eu-west-1".into(), false)]);
        assert_eq!(applied.changed_health, vec![("111122223333/eu-west-1/prod".into(), false)]);
    }

    #[test]
    fn a_failed_target_marks_every_cluster_it_named_stale_and_removes_none() {
        let mut state = PersistedState::default();
        run(&mut state, Ok(vec![ok("a", vec![finding("a", 22)]), ok("b", vec![])]), at(0));
        let failure =
            TargetFailure { kind: "throttled", message: "throttled by AWS on ListClusters: slow down".into() };
        let (applied, seen) = run(&mut state, Err(failure), at(60));
        assert_eq!(state.clusters.len(), 2);
        assert!(state.clusters.values().all(|c| c.report.stale && !c.poll_ok()));
        assert_eq!(state.clusters["111122223333/eu-west-1/a"].report.findings.len(), 1);
        assert_eq!(seen.iter().filter(|(_, ok, _)| !ok).count(), 2);
        assert_eq!(applied.polls.len(), 2);
    }

    #[test]
    fn a_failure_before_any_success_is_an_error_without_stale_findings() {
        let mut state = PersistedState::default();
        run(&mut state, Ok(vec![err("new")]), at(0));
        let c = &state.clusters["111122223333/eu-west-1/new"];
        assert_eq!((c.report.status, c.report.stale, c.report.last_success), (ClusterStatus::Error, false, None));
        assert_eq!(c.report.error.as_deref(), Some("x.json:1:2: bad"));
    }

    #[test]
    fn recovery_replaces_the_stale_view_and_clears_the_error() {
        let mut state = PersistedState::default();
        run(&mut state, Ok(vec![ok("prod", vec![finding("prod", 22)])]), at(0));
        run(&mut state, Ok(vec![err("prod")]), at(60));
        let (applied, _) = run(&mut state, Ok(vec![ok("prod", vec![finding("prod", 22)])]), at(120));
        let c = &state.clusters["111122223333/eu-west-1/prod"];
        assert_eq!((c.report.status, c.report.stale, c.report.error.clone()), (ClusterStatus::Drift, false, None));
        assert_eq!(c.first_seen.values().copied().collect::<Vec<_>>(), vec![at(0)]);
        assert_eq!(applied.changed_health, vec![("111122223333/eu-west-1/prod".into(), true)]);
    }

    #[test]
    fn a_cluster_its_target_no_longer_returns_is_removed() {
        let mut state = PersistedState::default();
        run(&mut state, Ok(vec![ok("a", vec![]), ok("b", vec![])]), at(0));
        let (applied, _) = run(&mut state, Ok(vec![ok("a", vec![])]), at(60));
        assert_eq!(state.clusters.keys().cloned().collect::<Vec<_>>(), vec!["111122223333/eu-west-1/a".to_string()]);
        assert_eq!(applied.removed, vec!["111122223333/eu-west-1/b".to_string()]);
    }

    #[test]
    fn clusters_no_target_names_are_pruned_and_named_ones_kept() {
        let mut state = PersistedState::default();
        run(&mut state, Ok(vec![ok("a", vec![]), ok("b", vec![])]), at(0));
        let only_a = TargetSpec { clusters: vec!["a".into()], ..spec() };
        let other_region = TargetSpec { region: "us-east-1".into(), ..spec() };
        let gone = prune_unconfigured(&mut state, &[(0, only_a), (1, other_region)]);
        assert_eq!(gone, vec!["111122223333/eu-west-1/b".to_string()]);
        assert_eq!(state.clusters.len(), 1);
    }

    #[test]
    fn a_target_failure_with_nothing_known_is_counted_against_the_role_account() {
        let mut state = PersistedState::default();
        let spec = TargetSpec { role_arn: Some("arn:aws:iam::444455556666:role/read".into()), ..spec() };
        let failure = Err(TargetFailure { kind: "access_denied", message: "denied".into() });
        let applied = apply_poll(&mut state, &spec, &failure, at(0), &mut |_, _, _| {});
        assert_eq!(applied.polls, vec![("444455556666".into(), "eu-west-1".into(), false)]);
    }

    #[test]
    fn reconciling_stops_the_pairs_gone_starts_the_new_ones_and_leaves_the_others_running() {
        let pair = |i: usize, region: &str, account: Option<&str>| {
            let role_arn = account.map(|a| format!("arn:aws:iam::{a}:role/sgdrift"));
            (i, TargetSpec { region: region.into(), role_arn, clusters: vec!["*".into()] })
        };
        let (a, b, c) =
            (pair(0, "eu-west-1", Some("111")), pair(0, "eu-west-1", Some("222")), pair(0, "us-east-1", Some("111")));
        let other_target = pair(1, "eu-west-1", Some("111"));
        // (running, wanted, positions in running that stop, positions in wanted that start)
        let table: [(Vec<_>, Vec<_>, Vec<usize>, Vec<usize>); 5] = [
            (vec![a.clone(), b.clone()], vec![a.clone(), b.clone()], vec![], vec![]),
            // An account joins: its pair starts, the others keep their tasks.
            (vec![a.clone()], vec![a.clone(), b.clone()], vec![], vec![1]),
            // One leaves.
            (vec![a.clone(), b.clone(), c.clone()], vec![a.clone(), c.clone()], vec![1], vec![]),
            (vec![a.clone()], vec![b.clone()], vec![0], vec![0]),
            // The same spec under another target is another task.
            (vec![a.clone()], vec![other_target.clone()], vec![0], vec![0]),
        ];
        for (running, wanted, stop, start) in table {
            let r: Vec<(usize, &TargetSpec)> = running.iter().map(|(i, s)| (*i, s)).collect();
            let w: Vec<(usize, &TargetSpec)> = wanted.iter().map(|(i, s)| (*i, s)).collect();
            assert_eq!(reconcile_plan(&r, &w), (stop, start), "{running:?} → {wanted:?}");
        }
    }

    #[test]
    fn readiness_comes_when_every_target_of_the_current_generation_polled_once() {
        let r = Readiness::default();
        let old = r.start(2);
        let new = r.start(2);
        r.polled_once(old);
        r.polled_once(new);
        assert!(!r.is_ready());
        r.polled_once(new);
        assert!(r.is_ready());
    }

    /// Time under test control: the runtime's clock is paused and jumps to the next timer
    /// whenever every task waits, so these run in no wall time and cannot be flaky.
    mod timing {
        use std::sync::Mutex;

        use super::*;

        fn secs(n: u64) -> Duration {
            Duration::from_secs(n)
        }

        /// (seconds after the start at which a poll began, what it polled, ticks it skipped).
        type Log = Arc<Mutex<Vec<(u64, Due, u64)>>>;

        struct Run {
            start: Instant,
            trigger: Trigger,
            permits: Arc<Semaphore>,
            cancel: CancellationToken,
            log: Log,
            task: tokio::task::JoinHandle<()>,
        }

        /// A target task over a real `Schedule` whose polls each take `took`; the jitter drawn
        /// is half the configured one.
        fn start(interval: u64, jitter: u64, took: u64) -> Run {
            let start = Instant::now();
            let permits = Arc::new(Semaphore::new(1));
            let asked = Arc::new(Asked::default());
            let trigger = Trigger::default();
            trigger.route_to(vec![Route { spec: spec(), asked: Arc::clone(&asked), forget: Arc::new(|_: &str| {}) }]);
            let mut schedule =
                Schedule::new(Timer::new(start, secs(interval), secs(jitter)), asked, Arc::clone(&permits));
            schedule.draw = |max| max / 2;
            let (cancel, log) = (CancellationToken::new(), Log::default());
            let task = tokio::spawn({
                let (cancel, log) = (cancel.clone(), Arc::clone(&log));
                async move {
                    while let Some((due, permit)) = schedule.next(&cancel).await {
                        let began = (Instant::now() - start).as_secs();
                        tokio::time::sleep(secs(took)).await;
                        drop(permit);
                        let skipped = schedule.done(&due, Instant::now());
                        log.lock().unwrap().push((began, due, skipped));
                    }
                }
            });
            Run { start, trigger, permits, cancel, log, task }
        }

        impl Run {
            async fn at(&self, seconds: u64) {
                tokio::time::sleep_until(self.start + secs(seconds)).await;
            }

            async fn ask(&self, seconds: u64, names: &[&str]) {
                self.at(seconds).await;
                let ids: Vec<ClusterId> = names.iter().map(|n| id(n)).collect();
                assert_eq!(self.trigger.poll_now(&ids), ids.len());
            }

            /// Everything logged by `seconds`.
            async fn until(self, seconds: u64) -> Vec<(u64, Due, u64)> {
                self.at(seconds).await;
                self.cancel.cancel();
                self.task.await.unwrap();
                Arc::try_unwrap(self.log).unwrap().into_inner().unwrap()
            }
        }

        fn asked(names: &[&str]) -> Due {
            Due::Asked(names.iter().map(|n| n.to_string()).collect())
        }

        #[tokio::test(start_paused = true)]
        async fn timer_polls_start_at_once_then_follow_ticks_an_interval_apart() {
            let run = start(60, 0, 10);
            let log = run.until(200).await;
            assert_eq!(log, vec![(0, Due::Timer, 0), (60, Due::Timer, 0), (120, Due::Timer, 0), (180, Due::Timer, 0)]);
        }

        #[tokio::test(start_paused = true)]
        async fn a_poll_that_overruns_skips_the_ticks_it_overlapped_and_never_stacks_them() {
            let run = start(60, 0, 150);
            let log = run.until(350).await;
            // 0–150 overlaps the ticks at 60 and 120; the next poll is on the tick at 180.
            assert_eq!(log, vec![(0, Due::Timer, 2), (180, Due::Timer, 2)]);
        }

        #[tokio::test(start_paused = true)]
        async fn each_tick_is_delayed_by_its_own_jitter_which_never_accumulates() {
            let run = start(60, 30, 1);
            let log = run.until(200).await;
            let began: Vec<u64> = log.iter().map(|(t, _, _)| *t).collect();
            assert_eq!(began, vec![0, 75, 135, 195], "ticks at 60, 120, 180, each 15 s late");
        }

        #[test]
        fn random_jitter_stays_within_zero_and_its_bound() {
            assert_eq!(random_jitter(Duration::ZERO), Duration::ZERO);
            let max = Duration::from_secs(30);
            assert!((0..1000).map(|_| random_jitter(max)).all(|j| j < max));
        }

        #[tokio::test(start_paused = true)]
        async fn a_cluster_asked_for_between_ticks_is_polled_at_once_and_the_timer_keeps_its_ticks() {
            let run = start(60, 0, 1);
            run.ask(10, &["prod"]).await;
            let log = run.until(100).await;
            assert_eq!(log, vec![(0, Due::Timer, 0), (10, asked(&["prod"]), 0), (60, Due::Timer, 0)]);
        }

        #[tokio::test(start_paused = true)]
        async fn requests_during_a_poll_become_one_poll_after_it_never_a_stacked_one() {
            let run = start(60, 0, 20);
            run.ask(5, &["a"]).await;
            run.ask(6, &["b"]).await;
            run.ask(7, &["a"]).await;
            let log = run.until(100).await;
            assert_eq!(log, vec![(0, Due::Timer, 0), (20, asked(&["a", "b"]), 0), (60, Due::Timer, 0)]);
        }

        #[tokio::test(start_paused = true)]
        async fn a_timer_poll_that_starts_after_a_request_covers_it_and_both_wait_for_a_permit() {
            let run = start(60, 0, 1);
            run.at(50).await;
            let held = Arc::clone(&run.permits).acquire_owned().await.unwrap();
            // The tick at 60 waits for the permit; a request comes meanwhile.
            run.ask(65, &["a"]).await;
            run.at(70).await;
            drop(held);
            let log = run.until(150).await;
            assert_eq!(log, vec![(0, Due::Timer, 0), (70, Due::Timer, 0), (120, Due::Timer, 0)]);
        }

        #[tokio::test(start_paused = true)]
        async fn a_request_waits_for_a_permit_of_the_concurrency_cap() {
            let run = start(60, 0, 1);
            run.at(5).await;
            let held = Arc::clone(&run.permits).acquire_owned().await.unwrap();
            run.ask(10, &["a"]).await;
            run.at(30).await;
            drop(held);
            let log = run.until(50).await;
            assert_eq!(log, vec![(0, Due::Timer, 0), (30, asked(&["a"]), 0)]);
        }

        #[tokio::test(start_paused = true)]
        async fn a_waiter_is_released_only_by_a_poll_that_started_after_its_request() {
            let trigger = Trigger::default();
            let before = Instant::now();
            tokio::time::advance(secs(1)).await;
            let since = Instant::now();
            let key = cluster_key(&id("prod"));
            let waiter = {
                let trigger = trigger.clone();
                tokio::spawn(async move { trigger.wait_polled(&[id("prod")], since, secs(30)).await })
            };
            tokio::task::yield_now().await;
            trigger.polled(vec![key.clone()], before);
            tokio::task::yield_now().await;
            assert!(!waiter.is_finished(), "a poll that started before the request does not cover it");
            trigger.polled(vec![key], since + secs(2));
            assert!(waiter.await.unwrap());
            let never = trigger.wait_polled(&[id("other")], since, secs(5)).await;
            assert!(!never, "a cluster never polled releases its waiter at the bound, as failed");
        }

        #[test]
        fn the_trigger_reaches_only_the_targets_that_read_the_cluster() {
            let routes = [
                TargetSpec { clusters: vec!["*".into()], ..spec() },
                TargetSpec { clusters: vec!["prod".into()], region: "us-east-1".into(), ..spec() },
                TargetSpec { role_arn: Some("arn:aws:iam::444455556666:role/read".into()), ..spec() },
            ]
            .map(|spec| Route { spec, asked: Arc::new(Asked::default()), forget: Arc::new(|_: &str| {}) });
            let asked: Vec<Arc<Asked>> = routes.iter().map(|r| Arc::clone(&r.asked)).collect();
            let trigger = Trigger::default();
            trigger.route_to(routes.into());
            let other_region = ClusterId { region: "us-east-1".into(), ..id("prod") };
            let unknown = ClusterId { region: "ap-south-1".into(), ..id("prod") };
            let other_account = ClusterId { account_id: "444455556666".into(), ..id("dev") };
            assert_eq!(trigger.poll_now([&id("prod"), &other_region, &unknown, &other_account]), 3);
            let names = |a: &Asked| a.take().into_iter().collect::<Vec<_>>();
            assert_eq!(names(&asked[0]), vec!["dev".to_string(), "prod".to_string()]);
            assert_eq!(names(&asked[1]), vec!["prod".to_string()]);
            assert_eq!(names(&asked[2]), vec!["dev".to_string()], "the role's account is 444455556666");
        }

        #[test]
        fn forgetting_metadata_reaches_the_sources_of_the_targets_that_read_the_cluster_only() {
            let forgotten: Arc<std::sync::Mutex<Vec<(usize, String)>>> = Arc::default();
            let routes: Vec<Route> = [
                TargetSpec { clusters: vec!["*".into()], ..spec() },
                TargetSpec { clusters: vec!["prod".into()], region: "us-east-1".into(), ..spec() },
            ]
            .into_iter()
            .enumerate()
            .map(|(i, spec)| {
                let log = Arc::clone(&forgotten);
                let forget: Arc<dyn Fn(&str) + Send + Sync> =
                    Arc::new(move |name: &str| log.lock().unwrap().push((i, name.to_string())));
                Route { spec, asked: Arc::new(Asked::default()), forget }
            })
            .collect();
            let trigger = Trigger::default();
            trigger.route_to(routes);
            let other_region = ClusterId { region: "us-east-1".into(), ..id("prod") };
            trigger.forget_metadata([&id("dev"), &other_region, &ClusterId { region: "ap-south-1".into(), ..id("x") }]);
            assert_eq!(*forgotten.lock().unwrap(), vec![(0, "dev".to_string()), (1, "prod".to_string())]);
        }
    }
}
