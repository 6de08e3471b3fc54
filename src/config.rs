//! The configuration of design.md §3: a TOML file read with the `config` crate, overridden by
//! `SGDRIFT__SECTION__KEY` environment variables; unknown keys rejected, durations in humantime.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub poll: PollConfig,
    #[serde(default)]
    pub source: SourceConfig,
    #[serde(default)]
    pub targets: Vec<TargetConfig>,
    #[serde(default)]
    pub alerts: AlertsConfig,
    #[serde(default)]
    pub exceptions: Vec<ExceptionConfig>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "default_listen")]
    pub listen: String,
    pub external_url: Option<String>,
}

fn default_listen() -> String {
    "0.0.0.0:9787".into()
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig { listen: default_listen(), external_url: None }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PollConfig {
    #[serde(with = "humantime_serde", default = "d_interval")]
    pub interval: Duration,
    #[serde(with = "humantime_serde", default = "d_jitter")]
    pub jitter: Duration,
    #[serde(with = "humantime_serde", default = "d_timeout")]
    pub timeout: Duration,
    #[serde(default = "d_concurrency")]
    pub concurrency: usize,
    #[serde(with = "humantime_serde", default = "d_metadata")]
    pub metadata_interval: Duration,
}

fn d_interval() -> Duration {
    Duration::from_secs(300)
}
fn d_jitter() -> Duration {
    Duration::from_secs(30)
}
fn d_timeout() -> Duration {
    Duration::from_secs(60)
}
fn d_concurrency() -> usize {
    8
}
fn d_metadata() -> Duration {
    Duration::from_secs(1800)
}

impl Default for PollConfig {
    fn default() -> Self {
        PollConfig {
            interval: d_interval(),
            jitter: d_jitter(),
            timeout: d_timeout(),
            concurrency: d_concurrency(),
            metadata_interval: d_metadata(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    #[default]
    Aws,
    Files,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    #[serde(default)]
    pub kind: SourceKind,
    /// For `files`: a directory with one sub-directory of AWS-CLI JSON per cluster. Relative
    /// paths are relative to the config file.
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    pub regions: Vec<String>,
    pub role_arn: Option<String>,
    #[serde(default = "d_clusters")]
    pub clusters: Vec<String>,
    #[serde(default = "d_baseline")]
    pub baseline: String,
    #[serde(default)]
    pub webhook_ports: Vec<u16>,
}

fn d_clusters() -> Vec<String> {
    vec!["*".into()]
}
fn d_baseline() -> String {
    "eks-minimal".into()
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    #[serde(default = "d_state_file")]
    pub state_file: PathBuf,
    #[serde(with = "humantime_serde", default = "d_repeat")]
    pub repeat_interval: Duration,
    #[serde(default)]
    pub slack: Vec<SlackConfig>,
    #[serde(default)]
    pub webhook: Vec<WebhookConfig>,
    /// Write alert events as structured log lines too.
    #[serde(default)]
    pub log: bool,
}

fn d_state_file() -> PathBuf {
    PathBuf::from("/var/lib/sgdrift/state.json")
}
fn d_repeat() -> Duration {
    Duration::from_secs(24 * 3600)
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            state_file: d_state_file(),
            repeat_interval: d_repeat(),
            slack: Vec::new(),
            webhook: Vec::new(),
            log: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    pub webhook_url_file: Option<PathBuf>,
    pub webhook_url_env: Option<String>,
    #[serde(default = "d_slack_sev")]
    pub min_severity: String,
}

fn d_slack_sev() -> String {
    "medium".into()
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: Option<String>,
    pub url_env: Option<String>,
    pub url_file: Option<PathBuf>,
    #[serde(default = "d_hook_sev")]
    pub min_severity: String,
}

fn d_hook_sev() -> String {
    "low".into()
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExceptionConfig {
    pub cluster: Option<String>,
    pub role: Option<String>,
    pub group_id: Option<String>,
    pub rule: String,
    pub reason: String,
    pub expires: String,
}

/// A loaded, validated configuration: the raw file plus everything parsed out of it.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The config file it came from (relative paths in it are relative to its directory).
    pub path: PathBuf,
    pub config: Config,
    pub targets: Vec<Target>,
    pub exceptions: Vec<crate::baseline::Exception>,
    /// Non-fatal problems: expired exceptions, …
    pub warnings: Vec<String>,
}

/// One `[[targets]]` entry with its baseline loaded.
#[derive(Debug, Clone)]
pub struct Target {
    pub regions: Vec<String>,
    pub role_arn: Option<String>,
    pub clusters: Vec<String>,
    pub baseline: crate::baseline::BaselineRef,
    pub webhook_ports: Vec<u16>,
}

/// A configuration that cannot be used; the message names the file and, where there is one,
/// the line and column.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Said in one sentence: the I/O error is in the message, not chained again as a source.
    #[error("{}", io_message(.path, .cause))]
    Io { path: String, cause: std::io::Error },
    #[error("{path}:{line}:{column}: {message}")]
    At { path: String, line: usize, column: usize, message: String },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error(transparent)]
    Baseline(#[from] crate::baseline::BaselineError),
}

impl ConfigError {
    pub fn kind(&self) -> &'static str {
        match self {
            ConfigError::Io { .. } => "io",
            ConfigError::At { .. } | ConfigError::Invalid { .. } => "invalid",
            ConfigError::Baseline(_) => "baseline",
        }
    }
}

fn io_message(path: &str, cause: &std::io::Error) -> String {
    if cause.kind() == std::io::ErrorKind::NotFound {
        format!(
            "config file {path} does not exist: name yours with --config FILE or SGDRIFT_CONFIG \
             (config/sgdrift.toml in the repository is an annotated example)"
        )
    } else {
        format!("cannot read config file {path}: {cause}")
    }
}

/// Reads, overrides from the environment, and validates the config at `path`.
pub fn load(path: &std::path::Path) -> Result<Settings, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Io { path: shown.clone(), cause })?;
    load_str(&text, path)
}

/// As [`load`], from text already read; `path` names the file in messages and anchors relative paths.
pub fn load_str(text: &str, path: &std::path::Path) -> Result<Settings, ConfigError> {
    let shown = path.display().to_string();
    // toml first: its errors carry a span, so the user gets line and column.
    toml::from_str::<Config>(text).map_err(|e| {
        let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
        ConfigError::At { path: shown.clone(), line, column, message: e.message().trim().to_string() }
    })?;
    let config: Config = ::config::Config::builder()
        .add_source(::config::File::from_str(text, ::config::FileFormat::Toml))
        .add_source(
            ::config::Environment::with_prefix("SGDRIFT")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true),
        )
        .build()
        .and_then(|c| c.try_deserialize())
        .map_err(|e| ConfigError::Invalid {
            path: shown.clone(),
            message: format!("after applying SGDRIFT__* environment overrides: {e}"),
        })?;
    validate(config, text, path)
}

fn validate(config: Config, text: &str, path: &std::path::Path) -> Result<Settings, ConfigError> {
    let shown = path.display().to_string();
    let at = |needle: &str, message: String| match locate(text, needle) {
        Some((line, column)) => ConfigError::At { path: shown.clone(), line, column, message },
        None => ConfigError::Invalid { path: shown.clone(), message },
    };
    let base_dir = path.parent().map(std::path::Path::to_path_buf).unwrap_or_default();

    if config.server.listen.parse::<std::net::SocketAddr>().is_err() {
        return Err(at(
            &config.server.listen,
            format!("server.listen `{}` is not an address:port such as 0.0.0.0:9787", config.server.listen),
        ));
    }
    if config.poll.interval.is_zero() {
        return Err(at("interval", "poll.interval must be longer than zero".into()));
    }
    if config.poll.concurrency == 0 {
        return Err(at("concurrency", "poll.concurrency must be at least 1".into()));
    }
    if config.source.kind == SourceKind::Files && config.source.dir.is_none() {
        return Err(at("files", "source.kind = \"files\" needs `dir`, the directory of AWS-CLI JSON".into()));
    }
    if config.targets.is_empty() {
        return Err(ConfigError::Invalid {
            path: shown.clone(),
            message: "no [[targets]]: add at least one with `regions` (and `clusters`, `baseline`)".into(),
        });
    }
    let mut targets = Vec::new();
    for t in &config.targets {
        if t.regions.is_empty() {
            return Err(at("regions", "a [[targets]] entry has an empty `regions` list".into()));
        }
        let baseline = if crate::baseline::PROFILES.contains(&t.baseline.as_str()) {
            crate::baseline::BaselineRef::Profile(t.baseline.clone())
        } else if t.baseline.ends_with(".toml") || t.baseline.contains('/') {
            let file = base_dir.join(&t.baseline);
            crate::baseline::BaselineRef::File(crate::baseline::load_file(&file)?)
        } else {
            return Err(at(
                &format!("\"{}\"", t.baseline),
                format!(
                    "unknown baseline `{}`: name a built-in profile ({}) or a path to a .toml baseline file",
                    t.baseline,
                    crate::baseline::PROFILES.join(", ")
                ),
            ));
        };
        targets.push(Target {
            regions: t.regions.clone(),
            role_arn: t.role_arn.clone(),
            clusters: t.clusters.clone(),
            baseline,
            webhook_ports: t.webhook_ports.clone(),
        });
    }
    for s in &config.alerts.slack {
        crate::model::Severity::parse(&s.min_severity).map_err(|e| at(&s.min_severity, e.0))?;
        if s.webhook_url_file.is_some() == s.webhook_url_env.is_some() {
            return Err(at(
                "[[alerts.slack]]",
                "an [[alerts.slack]] entry needs exactly one of webhook_url_file or webhook_url_env (a Slack URL is a secret, never inline)".into(),
            ));
        }
    }
    for w in &config.alerts.webhook {
        crate::model::Severity::parse(&w.min_severity).map_err(|e| at(&w.min_severity, e.0))?;
        let given = [w.url.is_some(), w.url_env.is_some(), w.url_file.is_some()].iter().filter(|b| **b).count();
        if given != 1 {
            return Err(at("[[alerts.webhook]]", "an [[alerts.webhook]] entry needs exactly one of url, url_env or url_file".into()));
        }
    }
    let today = chrono::Utc::now().date_naive();
    let mut exceptions = Vec::new();
    let mut warnings = Vec::new();
    for e in &config.exceptions {
        let exception = crate::baseline::Exception::from_config(e).map_err(|m| at(&e.rule, m))?;
        if exception.is_expired(today) {
            warnings.push(format!(
                "{shown}: exception `{}` expired on {}: it no longer suppresses anything",
                e.rule, exception.expires
            ));
        }
        exceptions.push(exception);
    }
    let mut config = config;
    if let Some(dir) = &config.source.dir {
        config.source.dir = Some(base_dir.join(dir));
    }
    if config.alerts.state_file.is_relative() {
        config.alerts.state_file = base_dir.join(&config.alerts.state_file);
    }
    Ok(Settings { path: path.to_path_buf(), config, targets, exceptions, warnings })
}

/// 1-based line and column of byte `offset` in `text`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Where `needle` first appears in `text`, for errors found after parsing.
fn locate(text: &str, needle: &str) -> Option<(usize, usize)> {
    if needle.is_empty() {
        return None;
    }
    text.find(needle).map(|o| line_col(text, o))
}
