//! `sgdrift run`: wires the config, source, state, metrics, alert dispatcher, HTTP server and
//! scheduler together, and owns the lifecycle: SIGTERM/SIGINT stop it cleanly within
//! [`SHUTDOWN_BOUND`], SIGHUP reloads the config and baselines (keeping the running ones when
//! the new ones are invalid).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::alert::{AlertMetrics, Dispatcher};
use crate::config::Settings;
use crate::engine::Engine;
use crate::events::Events;
use crate::export::metrics::Metrics;
use crate::http::{self, AppState};
use crate::scheduler::{self, Generation, Readiness, Scheduler};
use crate::source::Source;
use crate::state::StateStore;

/// From SIGTERM to exit: polls are abandoned, the HTTP server drains, the state is written.
pub const SHUTDOWN_BOUND: Duration = Duration::from_secs(5);
/// The part of the bound given to tasks; the rest is for the final state write.
const TASKS_BOUND: Duration = Duration::from_secs(3);

/// Runs the daemon until SIGTERM or SIGINT; `Ok` after a clean shutdown. With `reset_state`, a
/// state file that cannot be read is moved aside instead of stopping the start.
pub async fn run(config_path: &Path, reset_state: bool) -> anyhow::Result<()> {
    // Before anything else: a SIGHUP or SIGTERM that arrives during start-up must not kill the
    // process with the default action.
    let mut signals = Signals::install().context("cannot install the signal handlers")?;

    let Started { settings, store, metrics, alert_metrics, generation } = start(config_path, reset_state).await?;
    let state_path = settings.config.alerts.state_file.clone();
    let listen = settings.config.server.listen.clone();
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (server.listen in {})", config_path.display()))?;
    tracing::info!(%listen, config = %config_path.display(), state = %state_path.display(), "sgdrift running");

    let cancel = CancellationToken::new();
    let readiness = Arc::new(Readiness::default());
    let server = serve_http(listener, &settings, &store, &metrics, &readiness, &cancel)?;
    let mut scheduler = Scheduler::new(Arc::clone(&store), Arc::clone(&metrics), Arc::clone(&readiness));
    let events = Events::from_config(&settings.config, &metrics, &store, scheduler.trigger()).await;
    let feed = Stage::new(&cancel);
    if let Some(Events { attribution, feed: queue }) = events {
        scheduler = scheduler.with_attribution(attribution);
        if let Some(queue) = queue {
            feed.tracker.spawn(queue.run(feed.cancel.clone()));
        }
    }
    let scheduler = Arc::new(scheduler);
    let (accounts_tx, accounts_changed) = tokio::sync::mpsc::channel(1);
    let mut running = Running {
        config_path: config_path.to_path_buf(),
        generation: Arc::clone(&generation),
        accounts_tx,
        accounts_changed,
        settings,
        store: Arc::clone(&store),
        metrics,
        alert_metrics,
        scheduler,
        polls: Stage::new(&cancel),
        delivery: Stage::new(&cancel),
        feed,
    };
    running.start(generation);

    let reason = loop {
        tokio::select! {
            received = signals.next() => match received {
                Received::Hangup => running.reload().await,
                other => break other,
            },
            Some(()) = running.accounts_changed.recv() => running.on_accounts_changed().await,
        }
    };
    tracing::info!(signal = reason.name(), "shutting down");
    readiness.set_not_ready();
    cancel.cancel();
    stop(&running, &server, &store, &state_path).await;
    Ok(())
}

/// What start-up builds before anything runs.
struct Started {
    settings: Arc<Settings>,
    store: Arc<StateStore>,
    metrics: Arc<Metrics>,
    alert_metrics: Arc<AlertMetrics>,
    generation: Arc<Generation>,
}

/// Loads the config and the state, registers the metrics, builds the first generation and
/// drops from the state what the config no longer names.
async fn start(config_path: &Path, reset_state: bool) -> anyhow::Result<Started> {
    let settings = Arc::new(crate::config::load(config_path)?);
    for warning in &settings.warnings {
        tracing::warn!("{warning}");
    }
    let state_path = settings.config.alerts.state_file.clone();
    // A refused file's error already names `--reset-state` as the way out.
    let (store, moved) = StateStore::load_or_reset(state_path.clone(), reset_state)?;
    if let Some(aside) = moved {
        tracing::warn!(state = %state_path.display(), moved_to = %aside.display(), "--reset-state: the refused state file was moved aside; starting empty (drift still present is alerted again)");
    }
    let store = Arc::new(store);
    let metrics = Arc::new(Metrics::new(Arc::clone(&store)).context("cannot register the metrics")?);
    let alert_metrics =
        Arc::new(AlertMetrics::register(metrics.registry()).context("cannot register the alert metrics")?);
    let source = Source::from_config(&settings.config, metrics.aws_calls.clone()).await?;
    let engine = Arc::new(Engine::new(Arc::clone(&settings), source));
    let dispatcher = Arc::new(Dispatcher::new(&settings, Arc::clone(&alert_metrics))?);
    metrics.config_loaded(true, Utc::now());
    let discovered = discover(&engine).await;
    // Also proves at start that the state file can be written.
    for key in prune(&store, &engine, &dispatcher, discovered).await? {
        tracing::info!(cluster = %key, "dropped from the state: no configured target names it");
    }
    Ok(Started { settings, store, metrics, alert_metrics, generation: Arc::new(Generation { engine, dispatcher }) })
}

/// Lists the accounts of the organization targets; `false` when a listing failed (logged), so
/// the caller keeps what the state holds for accounts it could not list.
async fn discover(engine: &Engine) -> bool {
    let (_, failures) = engine.discover_accounts().await;
    for (i, e) in &failures {
        tracing::error!(target_index = i + 1, error = %e, "cannot list the accounts of the organization; its accounts are polled as last known");
    }
    failures.is_empty()
}

/// Drops the clusters no target of `engine` names, and their alert episodes; returns their keys.
/// With `complete` false (an organization could not be listed) the clusters of organization
/// targets are kept: absence from a failed listing says nothing.
async fn prune(
    store: &StateStore,
    engine: &Engine,
    dispatcher: &Dispatcher,
    complete: bool,
) -> Result<Vec<String>, crate::state::StateError> {
    if !complete {
        return Ok(Vec::new());
    }
    let specs = engine.target_specs();
    store
        .update(|s| {
            let pruned = scheduler::prune_unconfigured(s, &specs);
            scheduler::forget_vanished(s, dispatcher);
            pruned
        })
        .await
}

/// Spawns the HTTP server on `listener`; it drains and stops at `cancel`.
fn serve_http(
    listener: tokio::net::TcpListener,
    settings: &Settings,
    store: &Arc<StateStore>,
    metrics: &Arc<Metrics>,
    readiness: &Arc<Readiness>,
    cancel: &CancellationToken,
) -> anyhow::Result<TaskTracker> {
    let calls = metrics.aws_calls.clone();
    let app = AppState {
        store: Arc::clone(store),
        metrics: Arc::clone(metrics),
        readiness: Arc::clone(readiness),
        aws_calls: Arc::new(move || calls.call_counts()),
    };
    let limits = settings.config.server.limits();
    // Checked when the config was loaded; a file that went bad since stops the start here.
    let security = settings.config.server.security()?;
    let server = TaskTracker::new();
    let cancel = cancel.clone();
    server.spawn(async move {
        if let Err(e) = http::serve(listener, app, limits, security, cancel).await {
            tracing::error!(error = %e, "the HTTP server stopped");
        }
    });
    Ok(server)
}

/// After the cancellation: waits for the tasks within [`TASKS_BOUND`], then writes the state
/// within what is left of [`SHUTDOWN_BOUND`].
async fn stop(running: &Running, server: &TaskTracker, store: &StateStore, state_path: &Path) {
    let stopped = tokio::time::timeout(TASKS_BOUND, async {
        running.feed.stop().await;
        running.polls.stop().await;
        running.delivery.stop().await;
        server.close();
        server.wait().await;
    })
    .await;
    if stopped.is_err() {
        tracing::warn!(bound_s = TASKS_BOUND.as_secs(), "tasks did not stop in time; exiting without them");
    }
    match tokio::time::timeout(SHUTDOWN_BOUND - TASKS_BOUND, store.flush()).await {
        Ok(Ok(())) => tracing::info!(state = %state_path.display(), "state written; bye"),
        Ok(Err(e)) => tracing::error!(error = %e, "cannot write the state at shutdown"),
        Err(_) => tracing::error!(state = %state_path.display(), "writing the state at shutdown took too long"),
    }
}

/// A set of tasks that stop together.
struct Stage {
    parent: CancellationToken,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl Stage {
    fn new(parent: &CancellationToken) -> Self {
        Stage { parent: parent.clone(), cancel: parent.child_token(), tracker: TaskTracker::new() }
    }

    async fn stop(&self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// Stops the current tasks and gets ready for new ones.
    async fn restart(&mut self) {
        self.stop().await;
        *self = Stage::new(&self.parent);
    }
}

/// The parts a reload replaces, and what it needs to build them.
struct Running {
    config_path: PathBuf,
    /// What the polls run on now; kept to restart them when the organization's accounts change.
    generation: Arc<Generation>,
    accounts_tx: tokio::sync::mpsc::Sender<()>,
    accounts_changed: tokio::sync::mpsc::Receiver<()>,
    settings: Arc<Settings>,
    store: Arc<StateStore>,
    metrics: Arc<Metrics>,
    alert_metrics: Arc<AlertMetrics>,
    scheduler: Arc<Scheduler>,
    polls: Stage,
    delivery: Stage,
    /// The change feed, started once: `[events]` takes effect at a restart.
    feed: Stage,
}

impl Running {
    fn start(&mut self, generation: Arc<Generation>) {
        let dispatcher = Arc::clone(&generation.dispatcher);
        self.delivery.tracker.spawn(dispatcher.run(Arc::clone(&self.store), self.delivery.cancel.clone()));
        self.spawn_polls(generation);
    }

    fn spawn_polls(&mut self, generation: Arc<Generation>) {
        self.generation = Arc::clone(&generation);
        if generation.engine.settings.targets.iter().any(|t| t.organization.is_some()) {
            let every = generation.engine.settings.config.poll.metadata_interval;
            let watch = watch_accounts(
                Arc::clone(&generation.engine),
                every,
                self.accounts_tx.clone(),
                self.polls.cancel.clone(),
            );
            self.polls.tracker.spawn(watch);
        }
        self.scheduler.spawn(generation, &self.polls.tracker, self.polls.cancel.clone());
    }

    /// The organization's accounts changed: the (target, region) pairs of new accounts get
    /// their polls, those of accounts gone stop, the others run on; and the state forgets the
    /// clusters of accounts that left. Before the first cycle has finished every poll restarts
    /// instead, so that readiness waits for the new accounts too.
    async fn on_accounts_changed(&mut self) {
        let generation = Arc::clone(&self.generation);
        if self.scheduler.readiness.is_ready() {
            self.scheduler.reconcile(Arc::clone(&generation), &self.polls.tracker, self.polls.cancel.clone());
        } else {
            self.polls.restart().await;
            self.spawn_polls(Arc::clone(&generation));
        }
        match prune(&self.store, &generation.engine, &generation.dispatcher, true).await {
            Ok(pruned) => {
                for key in pruned {
                    tracing::info!(cluster = %key, "dropped from the state: its account left the organization's targets");
                }
            }
            Err(e) => {
                self.metrics.state_write_failures.inc();
                tracing::error!(error = %e, "cannot persist the state after the accounts changed");
            }
        }
        tracing::info!(
            specs = generation.engine.target_specs().len(),
            "organization accounts changed; polls reconciled"
        );
    }

    /// SIGHUP: a new config, baselines, source and alert sinks, all or nothing.
    async fn reload(&mut self) {
        let now = Utc::now();
        let built = async {
            let settings = crate::config::load(&self.config_path)?;
            let source = Source::from_config(&settings.config, self.metrics.aws_calls.clone()).await?;
            let dispatcher = Dispatcher::new(&settings, Arc::clone(&self.alert_metrics))?;
            anyhow::Ok((Arc::new(settings), source, Arc::new(dispatcher)))
        }
        .await;
        let (settings, source, dispatcher) = match built {
            Ok(b) => b,
            Err(e) => {
                self.metrics.config_loaded(false, now);
                tracing::error!(config = %self.config_path.display(), error = %format!("{e:#}"), "config reload failed; the running config stays in use");
                return;
            }
        };
        for warning in &settings.warnings {
            tracing::warn!("{warning}");
        }
        if settings.config.server.listen != self.settings.config.server.listen {
            tracing::warn!("server.listen changed: it takes effect at the next restart");
        }
        if settings.config.events != self.settings.config.events {
            tracing::warn!("[events] changed: it takes effect at the next restart");
        }
        if settings.config.alerts.state_file != self.settings.config.alerts.state_file {
            tracing::warn!("alerts.state_file changed: it takes effect at the next restart");
        }

        self.polls.restart().await;
        self.delivery.restart().await;
        let engine = Arc::new(Engine::new(Arc::clone(&settings), source));
        let discovered = discover(&engine).await;
        match prune(&self.store, &engine, &dispatcher, discovered).await {
            Ok(pruned) => {
                for key in pruned {
                    tracing::info!(cluster = %key, "dropped from the state: no configured target names it any more");
                }
            }
            Err(e) => {
                self.metrics.state_write_failures.inc();
                tracing::error!(error = %e, "cannot persist the state after the reload");
            }
        }
        self.settings = settings;
        self.start(Arc::new(Generation { engine, dispatcher }));
        self.metrics.config_loaded(true, now);
        tracing::info!(config = %self.config_path.display(), "config reloaded");
    }
}

/// Lists the organization's accounts again every `every` (`poll.metadata_interval`), and says
/// so on `changed` when the list differs: new accounts get polled, closed ones stop.
async fn watch_accounts(
    engine: Arc<Engine>,
    every: Duration,
    changed: tokio::sync::mpsc::Sender<()>,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let (differs, failures) = engine.discover_accounts().await;
        for (i, e) in &failures {
            tracing::warn!(target_index = i + 1, error = %e, "cannot list the accounts of the organization; keeping the last known");
        }
        if differs {
            // A full channel already holds a restart request: this change rides on it.
            let _ = changed.try_send(());
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Received {
    Terminate,
    Interrupt,
    Hangup,
}

impl Received {
    fn name(self) -> &'static str {
        match self {
            Received::Terminate => "SIGTERM",
            Received::Interrupt => "SIGINT",
            Received::Hangup => "SIGHUP",
        }
    }
}

struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    async fn next(&mut self) -> Received {
        tokio::select! {
            _ = self.term.recv() => Received::Terminate,
            _ = self.int.recv() => Received::Interrupt,
            _ = self.hup.recv() => Received::Hangup,
        }
    }
}
