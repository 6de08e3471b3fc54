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
use crate::source::{AwsCallMetrics, Source, TargetSpec};

/// Exit codes of design.md §3.
const EXIT_DRIFT: u8 = 1;
const EXIT_ERROR: u8 = 2;

pub fn main(cli: Cli) -> ExitCode {
    crate::telemetry::init(cli.log_format);
    let result = match cli.command {
        Command::Run { config, reset_state } => runtime().and_then(|rt| {
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
    let mut entry = ClusterReport::failed("", &target.regions.join(","), &target.clusters.join(","), None);
    entry.error = Some(format!("cannot list the accounts of the organization (target {}): {error}", index + 1));
    entry
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
    let (_, discovery_failures) = engine.discover_accounts().await;
    let specs = narrow(engine.target_specs(), &[cluster.to_string()]);
    let mut last_error = discovery_failures.first().map(|(_, e)| format!("AWS Organizations: {e}"));
    for (_, spec) in specs {
        let poll = engine.source.poll(&spec).await;
        if let Some((_, e)) = poll.error {
            last_error = Some(e.to_string());
            continue;
        }
        for c in poll.clusters {
            if c.id.name != cluster {
                continue;
            }
            let snapshot = c.result.map_err(|e| anyhow!("cannot read cluster {cluster}: {e}"))?;
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
            return Ok(());
        }
    }
    match last_error {
        Some(e) => bail!("cannot find cluster {cluster}: {e}"),
        None => bail!("cluster {cluster} was not found in any target of {}", config.display()),
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
