//! Wiring: from a parsed command line to a finished command and its exit code. The only place,
//! with `main`, where errors are `anyhow` and end as one sentence on stderr.

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use chrono::Utc;

use crate::cli::{BaselineCommand, Cli, Command, ConfigCommand, OutputFormat};
use crate::config::Settings;
use crate::engine::{self, ClusterOutcome, Engine};
use crate::export::report::{self, ClusterReport, ClusterStatus, Report, Stats};
use crate::model::{EndpointMode, Severity, Style};
use crate::remediation;
use crate::source::write::{Applied, Writer};
use crate::source::{AwsCallMetrics, Source, TargetSpec};

/// Exit codes of design.md §3.
const EXIT_DRIFT: u8 = 1;
const EXIT_ERROR: u8 = 2;

pub fn main(cli: Cli) -> ExitCode {
    crate::telemetry::init(cli.log_format);
    let result = match cli.command {
        Command::Run { config, reset_state } => runtime()
            .and_then(|rt| {
                let done = rt.block_on(crate::daemon::run(&config, reset_state));
                // A files read stuck on a hung mount must not hold the exit past the shutdown bound.
                rt.shutdown_timeout(std::time::Duration::from_secs(1));
                done
            })
            .map(|()| 0),
        Command::Check { config, clusters, format, fail_on } => {
            runtime().and_then(|rt| rt.block_on(check(&config, &clusters, format, fail_on)))
        }
        Command::Record { cluster, config, out } => {
            runtime().and_then(|rt| rt.block_on(record(&config, &cluster, out.as_deref()))).map(|()| 0)
        }
        Command::Fix { cluster, config, min_severity, apply } => {
            runtime().and_then(|rt| rt.block_on(fix(&config, &cluster, min_severity, apply)))
        }
        Command::Baseline { command: BaselineCommand::Show { profile, mode, style } } => {
            baseline_show(profile, mode, style).map(|()| 0)
        }
        Command::Config { command: ConfigCommand::Check { config } } => config_check(&config).map(|()| 0),
        Command::Completions { shell } => {
            crate::cli::write_completions(shell, &mut std::io::stdout());
            Ok(0)
        }
        Command::Man { dir: None } => crate::cli::write_man_page(&mut std::io::stdout())
            .context("cannot write the man page to stdout")
            .map(|()| 0),
        Command::Man { dir: Some(dir) } => crate::cli::write_man_pages(&dir)
            .with_context(|| format!("cannot write man pages into {}", dir.display()))
            .map(|()| 0),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", one_sentence(&e));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// The error chain on one line: "context: cause: cause".
fn one_sentence(e: &anyhow::Error) -> String {
    e.chain().map(|c| c.to_string()).collect::<Vec<_>>().join(": ")
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")
}

fn load(config: &std::path::Path) -> anyhow::Result<Settings> {
    let settings = crate::config::load(config)?;
    for w in &settings.warnings {
        tracing::warn!("{w}");
    }
    Ok(settings)
}

/// The configured source for a one-shot command: its AWS calls are counted for `stats` only.
async fn source(settings: &Settings) -> anyhow::Result<Source> {
    Ok(Source::from_config(&settings.config, AwsCallMetrics::unregistered()).await?)
}

/// Narrows each target to the clusters named on the command line.
fn narrow(specs: Vec<(usize, TargetSpec)>, only: &[String]) -> Vec<(usize, TargetSpec)> {
    if only.is_empty() {
        return specs;
    }
    specs
        .into_iter()
        .filter_map(|(i, mut spec)| {
            let keep: Vec<String> = only.iter().filter(|n| spec.wants(n)).cloned().collect();
            if keep.is_empty() {
                return None;
            }
            spec.clusters = keep;
            Some((i, spec))
        })
        .collect()
}

/// Polls every (target, region) concurrently; a whole-target failure becomes an error entry.
async fn poll_all(engine: Arc<Engine>, specs: Vec<(usize, TargetSpec)>) -> (Vec<ClusterOutcome>, Vec<ClusterReport>) {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, spec) in specs {
        let engine = engine.clone();
        tasks.spawn(async move {
            let r = engine.poll_target(i, &spec).await;
            (spec, r)
        });
    }
    let mut outcomes = Vec::new();
    let mut failures = Vec::new();
    let mut seen = BTreeSet::new();
    while let Some(joined) = tasks.join_next().await {
        let Ok((spec, result)) = joined else { continue };
        match result {
            Ok(list) => {
                // A cluster named by two targets is reported once, by the first.
                outcomes.extend(list.into_iter().filter(|o| seen.insert(o.id.clone())));
            }
            Err(e) => failures.push(target_failure(&spec, &e.to_string())),
        }
    }
    outcomes.sort_by(|a, b| a.id.cmp(&b.id));
    (outcomes, failures)
}

/// The entry of a (target, region) that could not be read at all: the account is the role's
/// where one is named (an organization member whose role cannot be assumed shows as itself).
fn target_failure(spec: &TargetSpec, error: &str) -> ClusterReport {
    let account = spec.role_arn.as_deref().and_then(crate::scheduler::arn_account).unwrap_or_default();
    ClusterReport::failed(account, &spec.region, &spec.clusters.join(","), Some(error.to_string()))
}

/// The entry of an organization target whose accounts could not be listed.
fn organization_failure(settings: &Settings, index: usize, error: &crate::source::SourceError) -> ClusterReport {
    let target = &settings.targets[index];
    let why = format!("cannot list the accounts of the organization (target {}): {error}", index + 1);
    ClusterReport::failed("", &target.regions.join(","), &target.clusters.join(","), Some(why))
}

async fn check(
    config: &std::path::Path,
    only: &[String],
    format: OutputFormat,
    fail_on: Severity,
) -> anyhow::Result<u8> {
    let settings = Arc::new(load(config)?);
    let source = source(&settings).await?;
    let engine = Arc::new(Engine::new(settings.clone(), source));
    let (_, discovery_failures) = engine.discover_accounts().await;
    let specs = narrow(engine.target_specs(), only);
    if specs.is_empty() && discovery_failures.is_empty() {
        bail!("no target of {} names cluster {}", config.display(), only.join(", "));
    }
    let (outcomes, mut failures) = poll_all(engine.clone(), specs).await;
    failures.extend(discovery_failures.iter().map(|(i, e)| organization_failure(&settings, *i, e)));
    let now = Utc::now();
    let mut clusters: Vec<ClusterReport> = outcomes.iter().map(engine::cluster_report).collect();
    for c in clusters.iter_mut().filter(|c| c.status != ClusterStatus::Error) {
        c.mark_polled(now, |_| None);
    }
    clusters.extend(failures);
    for name in only {
        if !clusters.iter().any(|c| &c.cluster == name) {
            bail!("cluster {name} was not found in any target of {}", config.display());
        }
    }
    let report = Report::new(now, clusters, Stats { aws_calls: engine.source.call_counts() });
    match format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Text => print!("{}", report::render_text(&report, fail_on)),
        OutputFormat::Asff => println!("{}", serde_json::to_string_pretty(&crate::export::asff::findings(&report))?),
    }
    Ok(exit_code(&report, fail_on))
}

/// 2 when any cluster could not be checked (the verdict is incomplete), else 1 on drift at or
/// above `fail_on`, else 0.
pub fn exit_code(report: &Report, fail_on: Severity) -> u8 {
    if report.clusters.iter().any(|c| c.status == ClusterStatus::Error) {
        return EXIT_ERROR;
    }
    let drift = report.clusters.iter().flat_map(|c| &c.findings).any(|f| f.is_drift() && f.severity >= fail_on);
    if drift {
        EXIT_DRIFT
    } else {
        0
    }
}

async fn record(config: &std::path::Path, cluster: &str, out: Option<&std::path::Path>) -> anyhow::Result<()> {
    let settings = Arc::new(load(config)?);
    let source = source(&settings).await?;
    let engine = Engine::new(settings.clone(), source);
    let (_, snapshot) = read_cluster(&engine, cluster, config).await?;
    let crate::baseline::Recording { text, warnings } = crate::baseline::record(&snapshot);
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    match out {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("recorded {} groups of {} into {}", snapshot.groups.len(), snapshot.id, path.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// Reads one cluster through the first target that names it: the target's index and the snapshot.
async fn read_cluster(
    engine: &Engine,
    cluster: &str,
    config: &std::path::Path,
) -> anyhow::Result<(usize, crate::model::ClusterSnapshot)> {
    let (_, discovery_failures) = engine.discover_accounts().await;
    let specs = narrow(engine.target_specs(), &[cluster.to_string()]);
    let mut last_error = discovery_failures.first().map(|(_, e)| format!("AWS Organizations: {e}"));
    for (index, spec) in specs {
        let poll = engine.source.poll(&spec).await;
        if let Some((_, e)) = poll.error {
            last_error = Some(e.to_string());
            continue;
        }
        if let Some(c) = poll.clusters.into_iter().find(|c| c.id.name == cluster) {
            let snapshot = c.result.map_err(|e| anyhow!("cannot read cluster {cluster}: {e}"))?;
            return Ok((index, snapshot));
        }
    }
    match last_error {
        Some(e) => bail!("cannot find cluster {cluster}: {e}"),
        None => bail!("cluster {cluster} was not found in any target of {}", config.display()),
    }
}

/// `sgdrift fix`: the checked plan; with `apply`, carried out step by step (stopping at the first
/// error), then the cluster read and reported again.
async fn fix(config: &std::path::Path, cluster: &str, min: Severity, apply: bool) -> anyhow::Result<u8> {
    let settings = Arc::new(load(config)?);
    if apply && settings.config.source.kind != crate::config::SourceKind::Aws {
        bail!(
            "{}: `fix --apply` writes to AWS, so it needs source.kind = \"aws\"; without --apply it prints the plan",
            config.display()
        );
    }
    let source = source(&settings).await?;
    let engine = Engine::new(settings.clone(), source);
    let (index, snapshot) = read_cluster(&engine, cluster, config).await?;
    let target = &settings.targets[index];
    let today = Utc::now().date_naive();
    let evaluate =
        |s: &crate::model::ClusterSnapshot| engine::evaluate_snapshot(target, &settings.exceptions, s, today);
    let options = remediation::Options { role_arn: target.role_for(&snapshot.id), min_severity: min };
    let eval = evaluate(&snapshot);
    let plan = remediation::plan(&snapshot, &eval, &options, evaluate);
    print!("{}", remediation::render(&plan, &snapshot, &options));
    if !apply || plan.steps.is_empty() {
        return Ok(if eval.has_drift_at(min) { EXIT_DRIFT } else { 0 });
    }
    let role = target.role_for(&snapshot.id);
    let writer = Writer::new(&snapshot.id.region, role.as_deref(), settings.config.poll.timeout).await;
    let mut failed = false;
    for (i, step) in plan.steps.iter().enumerate() {
        match writer.apply(step).await {
            Ok(done) => {
                println!("applied {}/{}: {} ({})", i + 1, plan.steps.len(), step.summary(), applied_text(&done))
            }
            Err(e) => {
                eprintln!(
                    "error: step {} ({}) failed: {e}; stopped, {} step(s) not applied",
                    i + 1,
                    step.summary(),
                    plan.steps.len() - i
                );
                failed = true;
                break;
            }
        }
    }
    let (_, after) = read_cluster(&engine, cluster, config).await?;
    let outcome = ClusterOutcome {
        id: after.id.clone(),
        target: index,
        result: Ok((after.clone(), engine::evaluate_with_remediation(target, &settings.exceptions, &after, today))),
    };
    let mut report = engine::cluster_report(&outcome);
    report.mark_polled(Utc::now(), |_| None);
    let drift_left = report.drift().any(|f| f.severity >= min);
    println!("\nafter:");
    print!("{}", report::render_text(&Report::new(Utc::now(), vec![report], Stats::default()), min));
    Ok(if failed {
        EXIT_ERROR
    } else if drift_left {
        EXIT_DRIFT
    } else {
        0
    })
}

fn applied_text(done: &Applied) -> String {
    match done {
        Applied::Revoked(ids) => format!("revoked {}", ids.join(", ")),
        Applied::Authorized => "authorized".to_string(),
        Applied::AlreadyDone => "already done".to_string(),
    }
}

fn baseline_show(profile: crate::baseline::Profile, mode: EndpointMode, style: Style) -> anyhow::Result<()> {
    print!("{}", crate::baseline::to_toml(&profile.build(mode, style)));
    Ok(())
}

fn config_check(config: &std::path::Path) -> anyhow::Result<()> {
    let settings = crate::config::load(config)?;
    for w in &settings.warnings {
        eprintln!("warning: {w}");
    }
    // Exactly what `run` does with each sink's secret: an unset variable, a missing file or an
    // invalid URL fails here, naming the sink.
    let sinks = crate::alert::build_sinks(&settings, &crate::alert::DeliveryOptions::default())
        .with_context(|| format!("{}: alert sinks", config.display()))?;
    let baselines: Vec<String> = settings
        .targets
        .iter()
        .map(|t| match &t.baseline {
            crate::baseline::BaselineRef::Profile(p) => p.to_string(),
            crate::baseline::BaselineRef::File(b) => format!("{} ({} rules)", b.origin, b.rules.len()),
        })
        .collect();
    println!(
        "{}: OK — {} target(s), {} exception(s), {} alert sink(s), baselines: {}",
        config.display(),
        settings.targets.len(),
        settings.exceptions.len(),
        sinks.len(),
        baselines.join(", ")
    );
    Ok(())
}
