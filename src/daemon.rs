//! `sgdrift run`: wires the config, source, state, metrics, alert dispatcher, HTTP server and
//! scheduler together, and owns the lifecycle: SIGTERM/SIGINT stop it cleanly within
//! [`SHUTDOWN_BOUND`], SIGHUP reloads the config and baselines (keeping the running ones when
//! the new ones are invalid).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::alert::{AlertMetrics, Dispatcher};
use crate::config::Settings;
use crate::engine::Engine;
use crate::export::metrics::{AwsCallView, AwsStatsFn, Metrics};
use crate::http::{self, AppState};
use crate::scheduler::{self, Generation, Readiness, Scheduler};
use crate::source::{CallCounts, Source};
use crate::state::StateStore;

/// From SIGTERM to exit: polls are abandoned, the HTTP server drains, the state is written.
pub const SHUTDOWN_BOUND: Duration = Duration::from_secs(5);
/// The part of the bound given to tasks; the rest is for the final state write.
const TASKS_BOUND: Duration = Duration::from_secs(3);

/// Runs the daemon until SIGTERM or SIGINT; `Ok` after a clean shutdown.
pub async fn run(config_path: &Path, reset_state: bool) -> anyhow::Result<()> {
    // Before anything else: a SIGHUP or SIGTERM that arrives during start-up must not kill the
    // process with the default action.
    let mut signals = Signals::install().context("cannot install the signal handlers")?;

    let settings = Arc::new(crate::config::load(config_path)?);
    for warning in &settings.warnings {
        tracing::warn!("{warning}");
    }
    let state_path = settings.config.alerts.state_file.clone();
    let (store, moved) = StateStore::load_or_reset(state_path.clone(), reset_state)?;
    if let Some(aside) = moved {
        tracing::warn!(state = %state_path.display(), moved_to = %aside.display(), "--reset-state: the refused state file was moved aside; starting empty");
    }
    let store = Arc::new(store);
    let engine = Arc::new(Engine::new(Arc::clone(&settings), crate::app::build_source(&settings).await?));
    let sources = Arc::new(Sources { current: RwLock::new(Arc::clone(&engine)), retired: Mutex::new(AwsCallView::default()) });
    let aws_stats: AwsStatsFn = {
        let sources = Arc::clone(&sources);
        Arc::new(move || sources.aws_view())
    };
    let metrics = Arc::new(Metrics::new(Arc::clone(&store), aws_stats).context("cannot register the metrics")?);
    let alert_metrics = Arc::new(AlertMetrics::register(metrics.registry()).context("cannot register the alert metrics")?);
    let dispatcher = Arc::new(Dispatcher::new(&settings, Arc::clone(&alert_metrics))?);
    metrics.config_loaded(true, Utc::now());
    // Also proves at start that the state file can be written.
    let specs = engine.target_specs();
    let pruned = store
        .update(|s| {
            let pruned = scheduler::prune_unconfigured(s, &specs);
            scheduler::forget_vanished(s, &dispatcher);
            pruned
        })
        .await?;
    for key in pruned {
        tracing::info!(cluster = %key, "dropped from the state: no configured target names it");
    }

    let listen = settings.config.server.listen.clone();
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (server.listen in {})", config_path.display()))?;
    tracing::info!(%listen, config = %config_path.display(), state = %state_path.display(), "sgdrift running");

    let cancel = CancellationToken::new();
    let readiness = Arc::new(Readiness::default());
    let server = TaskTracker::new();
    let app = http::router(AppState {
        store: Arc::clone(&store),
        metrics: Arc::clone(&metrics),
        readiness: Arc::clone(&readiness),
        aws_calls: {
            let sources = Arc::clone(&sources);
            Arc::new(move || sources.call_counts())
        },
    });
    server.spawn({
        let cancel = cancel.clone();
        async move {
            if let Err(e) = http::serve(listener, app, cancel).await {
                tracing::error!(error = %e, "the HTTP server stopped");
            }
        }
    });

    let scheduler = Arc::new(Scheduler { store: Arc::clone(&store), metrics: Arc::clone(&metrics), readiness: Arc::clone(&readiness) });
    let mut running = Running {
        config_path: config_path.to_path_buf(),
        settings,
        store: Arc::clone(&store),
        metrics: Arc::clone(&metrics),
        alert_metrics,
        sources,
        scheduler,
        polls: Stage::new(&cancel),
        delivery: Stage::new(&cancel),
    };
    running.start(Arc::new(Generation { engine, dispatcher }));

    let reason = loop {
        match signals.next().await {
            Received::Hangup => running.reload().await,
            other => break other,
        }
    };
    tracing::info!(signal = reason.name(), "shutting down");

    readiness.set_not_ready();
    cancel.cancel();
    let stopped = tokio::time::timeout(TASKS_BOUND, async {
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
    Ok(())
}

/// The engine polls run with, and the AWS call counts of engines a reload replaced (counters
/// must not go backwards).
struct Sources {
    current: RwLock<Arc<Engine>>,
    retired: Mutex<AwsCallView>,
}

impl Sources {
    fn current(&self) -> Arc<Engine> {
        Arc::clone(&self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    fn aws_view(&self) -> AwsCallView {
        let mut view = self.retired.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        view.merge(&source_view(&self.current().source));
        view
    }

    fn call_counts(&self) -> CallCounts {
        self.aws_view().requests.into_iter().map(|((s, o), n)| (format!("{s}:{o}"), n)).collect()
    }

    fn replace(&self, engine: Arc<Engine>) {
        let old = std::mem::replace(&mut *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner), engine);
        self.retired.lock().unwrap_or_else(std::sync::PoisonError::into_inner).merge(&source_view(&old.source));
    }
}

/// What the source can tell about its AWS calls: for AWS, requests, errors by kind and latency.
fn source_view(source: &Source) -> AwsCallView {
    let Source::Aws(aws) = source else {
        return AwsCallView::from_call_counts(&source.call_counts());
    };
    let mut view = AwsCallView::default();
    for (op, s) in aws.stats().snapshot() {
        let key = (op.service.to_string(), op.name.to_string());
        view.requests.insert(key.clone(), s.requests);
        for (kind, n) in &s.errors {
            view.errors.insert((key.0.clone(), key.1.clone(), (*kind).to_string()), *n);
        }
        let buckets = s.cumulative_buckets();
        view.latency.insert(
            key,
            crate::export::metrics::LatencyView {
                bounds: buckets.iter().map(|(b, _)| *b).collect(),
                cumulative: buckets.iter().map(|(_, n)| *n).collect(),
                count: s.requests,
                sum: s.duration_sum_seconds,
            },
        );
    }
    view
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
    settings: Arc<Settings>,
    store: Arc<StateStore>,
    metrics: Arc<Metrics>,
    alert_metrics: Arc<AlertMetrics>,
    sources: Arc<Sources>,
    scheduler: Arc<Scheduler>,
    polls: Stage,
    delivery: Stage,
}

impl Running {
    fn start(&mut self, generation: Arc<Generation>) {
        let dispatcher = Arc::clone(&generation.dispatcher);
        self.delivery.tracker.spawn(dispatcher.run(Arc::clone(&self.store), self.delivery.cancel.clone()));
        self.scheduler.spawn(generation, &self.polls.tracker, self.polls.cancel.clone());
    }

    /// SIGHUP: a new config, baselines, source and alert sinks, all or nothing.
    async fn reload(&mut self) {
        let now = Utc::now();
        let built = async {
            let settings = crate::config::load(&self.config_path)?;
            let source = crate::app::build_source(&settings).await?;
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
        if settings.config.alerts.state_file != self.settings.config.alerts.state_file {
            tracing::warn!("alerts.state_file changed: it takes effect at the next restart");
        }

        self.polls.restart().await;
        self.delivery.restart().await;
        let engine = Arc::new(Engine::new(Arc::clone(&settings), source));
        self.sources.replace(Arc::clone(&engine));
        let specs = engine.target_specs();
        let pruning = self.store.update(|s| {
            let pruned = scheduler::prune_unconfigured(s, &specs);
            scheduler::forget_vanished(s, &dispatcher);
            pruned
        });
        match pruning.await {
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
