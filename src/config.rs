//! The configuration of design.md §3: a TOML file read with the `config` crate, overridden by
//! `SGDRIFT__SECTION__KEY` environment variables; unknown keys rejected, durations in humantime.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::model::Severity;

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
    /// `[events]`: the change feed and CloudTrail attribution; absent, neither runs.
    pub events: Option<EventsConfig>,
    #[serde(default)]
    pub exceptions: Vec<ExceptionConfig>,
}

/// `[events]` (design.md §2 `events`): an SQS queue that EventBridge fills with CloudTrail's
/// `AWS API Call` events, and where the actor of a new finding is looked up.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    /// `https://sqs.<region>.amazonaws.com/<account>/<name>`; absent: attribution only.
    pub queue_url: Option<String>,
    #[serde(default)]
    pub attribution: Attribution,
    /// The quiet time that ends a burst of events (at most 4 of these in all): a burst of rule
    /// edits is one poll.
    #[serde(with = "humantime_serde", default = "d_coalesce")]
    pub coalesce: Duration,
}

fn d_coalesce() -> Duration {
    Duration::from_millis(500)
}

/// Where the actor of a new finding no feed event explains is looked up.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Attribution {
    /// CloudTrail `LookupEvents` for the finding's group, since the cluster's last clean poll.
    #[default]
    Cloudtrail,
    Off,
}

impl EventsConfig {
    /// The region of an AWS queue URL (`sqs.eu-west-1.amazonaws.com`); `None` for another host
    /// (a local emulator), where the SDK's own region applies.
    pub fn queue_region(&self) -> Option<String> {
        let url = self.queue_url.as_deref()?;
        let host = url.split("://").nth(1)?.split('/').next()?;
        let mut parts = host.split('.');
        (parts.next() == Some("sqs")).then(|| parts.next().map(str::to_string)).flatten()
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "default_listen")]
    pub listen: String,
    pub external_url: Option<String>,
    /// From accepting a connection to the end of its request's headers.
    #[serde(with = "humantime_serde", default = "d_header_read_timeout")]
    pub header_read_timeout: Duration,
    /// How long a keep-alive connection may sit unused between requests.
    #[serde(with = "humantime_serde", default = "d_idle_timeout")]
    pub idle_timeout: Duration,
    /// Open connections at most; beyond it the stalest connection without a request is closed.
    #[serde(default = "d_max_connections")]
    pub max_connections: usize,
    /// TLS: a PEM certificate chain and its key, both or neither; re-read when they change.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// Basic auth: `user:bcrypt-hash` lines (`htpasswd -B -n user`); /healthz and /readyz stay open.
    pub basic_auth_users_file: Option<PathBuf>,
}

fn default_listen() -> String {
    "0.0.0.0:9787".into()
}
fn d_header_read_timeout() -> Duration {
    Duration::from_secs(10)
}
fn d_idle_timeout() -> Duration {
    Duration::from_secs(60)
}
fn d_max_connections() -> usize {
    512
}

/// The bounds `config check` and `run` hold every numeric setting to.
pub const CONCURRENCY: std::ops::RangeInclusive<usize> = 1..=1024;
pub const MAX_CONNECTIONS: std::ops::RangeInclusive<usize> = 1..=65536;
/// Far above any AWS API's rate: a larger value is a typo.
pub const MAX_REQUESTS_PER_SECOND: u32 = 10_000;
const LONGEST_INTERVAL: Duration = Duration::from_secs(7 * 24 * 3600);
const LONGEST_TIMEOUT: Duration = Duration::from_secs(3600);

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            external_url: None,
            header_read_timeout: d_header_read_timeout(),
            idle_timeout: d_idle_timeout(),
            max_connections: d_max_connections(),
            tls_cert_file: None,
            tls_key_file: None,
            basic_auth_users_file: None,
        }
    }
}

impl ServerConfig {
    /// TLS and basic auth as configured, with every file read and checked.
    pub fn security(&self) -> Result<crate::http::Security, crate::http::security::SecurityError> {
        let tls = match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
            _ => None,
        };
        crate::http::Security::load(tls, self.basic_auth_users_file.as_deref())
    }

    pub fn limits(&self) -> crate::http::Limits {
        crate::http::Limits {
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections,
        }
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
    /// EKS calls in flight at once per account and region.
    #[serde(default = "d_eks_concurrency")]
    pub eks_concurrency: usize,
    /// EC2 calls in flight at once per account and region.
    #[serde(default = "d_ec2_concurrency")]
    pub ec2_concurrency: usize,
    /// EKS calls started per second per account and region; 0: no limit.
    #[serde(default)]
    pub eks_requests_per_second: u32,
    /// EC2 calls started per second per account and region; 0: no limit. EC2's `Describe*`
    /// calls share one bucket per account and region with every other tool (refilled at 20 a
    /// second): the default leaves half of it to them.
    #[serde(default = "d_ec2_requests_per_second")]
    pub ec2_requests_per_second: u32,
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
fn d_eks_concurrency() -> usize {
    8
}
fn d_ec2_concurrency() -> usize {
    4
}
fn d_ec2_requests_per_second() -> u32 {
    10
}

impl Default for PollConfig {
    fn default() -> Self {
        PollConfig {
            interval: d_interval(),
            jitter: d_jitter(),
            timeout: d_timeout(),
            concurrency: d_concurrency(),
            metadata_interval: d_metadata(),
            eks_concurrency: d_eks_concurrency(),
            ec2_concurrency: d_ec2_concurrency(),
            eks_requests_per_second: 0,
            ec2_requests_per_second: d_ec2_requests_per_second(),
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
    /// Controllers whose rules are owned, not drift; absent: every recognised controller.
    pub trust_controllers: Option<Vec<String>>,
    /// Instead of `role_arn`: every active account of the organization (or of some OUs).
    pub organization: Option<OrganizationConfig>,
}

/// `organization = { role_name = "sgdrift-read", ous = ["ou-…"] }` of a target.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OrganizationConfig {
    /// The role assumed in each member account (`arn:aws:iam::<account>:role/<role_name>`).
    pub role_name: String,
    /// Organizational units (and everything below them) to read; empty: the whole organization.
    #[serde(default)]
    pub ous: Vec<String>,
    /// Accounts to leave out, such as the management account, which has no member role.
    #[serde(default)]
    pub exclude_accounts: Vec<String>,
}

fn d_clusters() -> Vec<String> {
    vec!["*".into()]
}
fn d_baseline() -> String {
    "eks-minimal".into()
}

/// `[alerts]`: the state file, the repeat interval and the sinks, typed once here. Every sink
/// has a stable name (explicit, or its kind and URL source); two sinks with one name are refused.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(try_from = "RawAlerts")]
pub struct AlertsConfig {
    pub state_file: PathBuf,
    pub repeat_interval: Duration,
    pub slack: Vec<SlackConfig>,
    pub webhook: Vec<WebhookConfig>,
    /// Write alert events as structured log lines too (the sink named `log`).
    pub log: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlerts {
    #[serde(default = "d_state_file")]
    state_file: PathBuf,
    #[serde(with = "humantime_serde", default = "d_repeat")]
    repeat_interval: Duration,
    #[serde(default)]
    slack: Vec<SlackConfig>,
    #[serde(default)]
    webhook: Vec<WebhookConfig>,
    #[serde(default)]
    log: bool,
}

impl TryFrom<RawAlerts> for AlertsConfig {
    type Error = String;

    fn try_from(raw: RawAlerts) -> Result<Self, String> {
        let alerts = AlertsConfig {
            state_file: raw.state_file,
            repeat_interval: raw.repeat_interval,
            slack: raw.slack,
            webhook: raw.webhook,
            log: raw.log,
        };
        let mut seen = std::collections::BTreeMap::new();
        for (what, name) in alerts.sink_names() {
            if let Some(first) = seen.insert(name.clone(), what.clone()) {
                return Err(format!(
                    "{first} and {what} are both named `{name}`: give each sink its own `name` (queued alerts are kept by it)"
                ));
            }
        }
        Ok(alerts)
    }
}

impl AlertsConfig {
    /// Every configured sink as (`[[alerts.kind]] #n`, name), in config order.
    pub fn sink_names(&self) -> Vec<(String, crate::alert::SinkName)> {
        let slack =
            self.slack.iter().enumerate().map(|(i, s)| (format!("[[alerts.slack]] #{}", i + 1), s.name.clone()));
        let hook =
            self.webhook.iter().enumerate().map(|(i, w)| (format!("[[alerts.webhook]] #{}", i + 1), w.name.clone()));
        let log = self.log.then(|| ("[alerts] log".to_string(), crate::alert::log::name()));
        slack.chain(hook).chain(log).collect()
    }
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

/// `[[alerts.slack]]`. A Slack URL is a secret: from a file or the environment, never inline.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(try_from = "RawSlack")]
pub struct SlackConfig {
    pub name: crate::alert::SinkName,
    pub webhook_url: crate::alert::SecretSource,
    pub min_severity: Severity,
    pub matcher: crate::alert::Match,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlack {
    name: Option<String>,
    webhook_url_file: Option<PathBuf>,
    webhook_url_env: Option<String>,
    #[serde(default = "d_slack_sev")]
    min_severity: Severity,
    #[serde(rename = "match", default)]
    matcher: crate::alert::Match,
}

fn d_slack_sev() -> Severity {
    Severity::Medium
}

impl TryFrom<RawSlack> for SlackConfig {
    type Error = String;

    fn try_from(raw: RawSlack) -> Result<Self, String> {
        use crate::alert::{SecretSource, SinkKind};
        let source = SecretSource::one_of(
            ["", "webhook_url_env", "webhook_url_file"],
            None,
            raw.webhook_url_env,
            raw.webhook_url_file,
        )
        .map_err(|e| format!("[[alerts.slack]]: {e} (a Slack URL is a secret, never inline)"))?;
        raw.matcher.check().map_err(|e| format!("[[alerts.slack]]: {e}"))?;
        Ok(SlackConfig {
            name: sink_name(raw.name.as_deref(), SinkKind::Slack, &source)?,
            webhook_url: source,
            min_severity: raw.min_severity,
            matcher: raw.matcher,
        })
    }
}

/// `[[alerts.webhook]]`: any HTTP endpoint that takes JSON, optionally with headers and an
/// HMAC signature.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(try_from = "RawWebhook")]
pub struct WebhookConfig {
    pub name: crate::alert::SinkName,
    pub url: crate::alert::SecretSource,
    pub min_severity: Severity,
    pub matcher: crate::alert::Match,
    /// Header name → the environment variable that holds its value.
    pub headers_env: std::collections::BTreeMap<String, String>,
    /// A file of `Name: value` lines.
    pub headers_file: Option<PathBuf>,
    /// The environment variable holding the HMAC-SHA256 key of `X-Sgdrift-Signature-256`.
    pub signing_secret_env: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    name: Option<String>,
    url: Option<String>,
    url_env: Option<String>,
    url_file: Option<PathBuf>,
    #[serde(default = "d_hook_sev")]
    min_severity: Severity,
    #[serde(rename = "match", default)]
    matcher: crate::alert::Match,
    #[serde(default)]
    headers_env: std::collections::BTreeMap<String, String>,
    headers_file: Option<PathBuf>,
    signing_secret_env: Option<String>,
}

fn d_hook_sev() -> Severity {
    Severity::Low
}

impl TryFrom<RawWebhook> for WebhookConfig {
    type Error = String;

    fn try_from(raw: RawWebhook) -> Result<Self, String> {
        use crate::alert::{SecretSource, SinkKind};
        let source = SecretSource::one_of(["url", "url_env", "url_file"], raw.url, raw.url_env, raw.url_file)
            .map_err(|e| format!("[[alerts.webhook]]: {e}"))?;
        let name = sink_name(raw.name.as_deref(), SinkKind::Webhook, &source)?;
        let what = format!("[[alerts.webhook]] `{name}`");
        raw.matcher.check().map_err(|e| format!("{what}: {e}"))?;
        for header in raw.headers_env.keys() {
            crate::alert::webhook::check_header_name(header).map_err(|e| format!("{what}: headers_env: {e}"))?;
        }
        if raw.signing_secret_env.as_deref() == Some("") {
            return Err(format!(
                "{what}: signing_secret_env is empty: name the environment variable that holds the key"
            ));
        }
        Ok(WebhookConfig {
            name,
            url: source,
            min_severity: raw.min_severity,
            matcher: raw.matcher,
            headers_env: raw.headers_env,
            headers_file: raw.headers_file,
            signing_secret_env: raw.signing_secret_env,
        })
    }
}

fn sink_name(
    explicit: Option<&str>,
    kind: crate::alert::SinkKind,
    source: &crate::alert::SecretSource,
) -> Result<crate::alert::SinkName, String> {
    match explicit {
        Some(name) => crate::alert::SinkName::explicit(name).map_err(|e| format!("[[alerts.{}]]: {e}", kind.as_str())),
        None => Ok(crate::alert::SinkName::derived(kind, &source.describe())),
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExceptionConfig {
    pub account: Option<String>,
    pub region: Option<String>,
    pub cluster: Option<String>,
    pub role: Option<String>,
    pub group_id: Option<String>,
    pub rule: String,
    pub reason: String,
    pub expires: String,
    /// Tags the finding's group must carry (`*`: any value).
    #[serde(default)]
    pub tags: std::collections::BTreeMap<String, String>,
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
    /// The controllers of `trust_controllers` (default: every recognised one).
    pub trust_controllers: Vec<crate::baseline::Controller>,
    /// Accounts come from AWS Organizations instead of `role_arn`.
    pub organization: Option<crate::source::Organization>,
}

impl Target {
    /// The role sgdrift reads (and `fix` writes) cluster `id` through: `role_arn`, or for an
    /// organization target the member role of the cluster's account.
    pub fn role_for(&self, id: &crate::model::ClusterId) -> Option<String> {
        match &self.organization {
            Some(org) => Some(org.role_arn(&id.account_id, &id.region)),
            None => self.role_arn.clone(),
        }
    }
}

/// A configuration that cannot be used; the message names the file and, where there is one,
/// the line and column, or the environment variable the bad value came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Said in one sentence: the I/O error is in the message, not chained again as a source.
    #[error("{}", io_message(.path, .cause))]
    Io { path: String, cause: std::io::Error },
    #[error("{path}:{line}:{column}: {message}")]
    At { path: String, line: usize, column: usize, message: String },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("environment variable {var} (overriding {path}): {message}")]
    Env { var: String, path: String, message: String },
    #[error(transparent)]
    Baseline(#[from] crate::baseline::BaselineError),
}

impl ConfigError {
    pub fn kind(&self) -> &'static str {
        match self {
            ConfigError::Io { .. } => "io",
            ConfigError::At { .. } | ConfigError::Invalid { .. } | ConfigError::Env { .. } => "invalid",
            ConfigError::Baseline(_) => "baseline",
        }
    }
}

/// The environment prefix of overrides: `SGDRIFT__POLL__TIMEOUT` sets `poll.timeout`.
const ENV_PREFIX: &str = "SGDRIFT__";

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
pub fn load(path: &Path) -> Result<Settings, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Io { path: shown.clone(), cause })?;
    load_str(&text, path)
}

/// As [`load`], from text already read; `path` names the file in messages and anchors relative paths.
pub fn load_str(text: &str, path: &Path) -> Result<Settings, ConfigError> {
    let env: BTreeMap<String, String> = std::env::vars().filter(|(k, _)| k.starts_with(ENV_PREFIX)).collect();
    load_with_env(text, path, &env)
}

/// As [`load_str`], with the `SGDRIFT__*` variables given rather than read from the process.
pub fn load_with_env(text: &str, path: &Path, env: &BTreeMap<String, String>) -> Result<Settings, ConfigError> {
    let shown = path.display().to_string();
    // toml first: its errors carry a span, so the user gets line and column.
    toml::from_str::<Config>(text).map_err(|e| {
        let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
        ConfigError::At { path: shown.clone(), line, column, message: e.message().trim().to_string() }
    })?;
    let origins = Origins::new(path, text, env);
    let mut layered =
        ::config::Environment::with_prefix("SGDRIFT").prefix_separator("__").separator("__").try_parsing(true);
    layered = layered.source(Some(env.iter().map(|(k, v)| (k.clone(), v.clone())).collect()));
    let config: Config = ::config::Config::builder()
        .add_source(::config::File::from_str(text, ::config::FileFormat::Toml))
        .add_source(layered)
        .build()
        .and_then(|c| c.try_deserialize())
        .map_err(|e| origins.env_error(&e.to_string()))?;
    validate(config, &origins)
}

/// Where each setting came from, for errors found after parsing: a span of the file (from the
/// TOML parser, never a text search) or the environment variable that overrides it.
struct Origins<'a> {
    path: &'a Path,
    text: &'a str,
    doc: Option<toml_edit::ImDocument<&'a str>>,
    /// `poll.timeout` → `SGDRIFT__POLL__TIMEOUT`.
    env: BTreeMap<String, String>,
}

/// One step of a path into the config: a key or an array index.
#[derive(Debug, Clone, Copy)]
enum Key<'k> {
    Name(&'k str),
    Index(usize),
}

impl<'k> From<&'k str> for Key<'k> {
    fn from(name: &'k str) -> Self {
        Key::Name(name)
    }
}

impl From<usize> for Key<'_> {
    fn from(index: usize) -> Self {
        Key::Index(index)
    }
}

impl<'a> Origins<'a> {
    fn new(path: &'a Path, text: &'a str, env: &BTreeMap<String, String>) -> Self {
        let env = env
            .keys()
            .filter_map(|var| {
                let key = var
                    .strip_prefix(ENV_PREFIX)?
                    .split("__")
                    .map(str::to_ascii_lowercase)
                    .collect::<Vec<_>>()
                    .join(".");
                Some((key, var.clone()))
            })
            .collect();
        Origins { path, text, doc: toml_edit::ImDocument::parse(text).ok(), env }
    }

    fn shown(&self) -> String {
        self.path.display().to_string()
    }

    /// An error about the value at `keys`: at its environment variable if one overrides it, else
    /// at its position in the file, else at the nearest enclosing table that is written there.
    fn error(&self, keys: &[Key<'_>], message: impl Into<String>) -> ConfigError {
        let message = message.into();
        let dotted = keys.iter().map(|k| match k {
            Key::Name(n) => (*n).to_string(),
            Key::Index(i) => i.to_string(),
        });
        let dotted = dotted.collect::<Vec<_>>().join(".");
        if let Some(var) = self.env.get(&dotted) {
            return ConfigError::Env { var: var.clone(), path: self.shown(), message };
        }
        match self.span(keys) {
            Some(offset) => {
                let (line, column) = line_col(self.text, offset);
                ConfigError::At { path: self.shown(), line, column, message }
            }
            None => ConfigError::Invalid { path: self.shown(), message },
        }
    }

    /// The start of the deepest item of `keys` the file has.
    fn span(&self, keys: &[Key<'_>]) -> Option<usize> {
        let mut item = self.doc.as_ref()?.as_item();
        let mut found = None;
        for key in keys {
            let next = match key {
                Key::Name(n) => item.get(*n),
                Key::Index(i) => item.get(*i),
            };
            let Some(next) = next else { break };
            found = next.span().map(|s| s.start).or(found);
            item = next;
        }
        found
    }

    /// A value that does not deserialize once the environment is applied (the file alone did):
    /// name the variables.
    fn env_error(&self, cause: &str) -> ConfigError {
        if self.env.is_empty() {
            return ConfigError::Invalid { path: self.shown(), message: cause.to_string() };
        }
        let vars: Vec<&str> = self.env.values().map(String::as_str).collect();
        ConfigError::Env { var: vars.join(", "), path: self.shown(), message: cause.to_string() }
    }
}

fn validate(mut config: Config, at: &Origins<'_>) -> Result<Settings, ConfigError> {
    let base_dir = at.path.parent().map(Path::to_path_buf).unwrap_or_default();
    for file in
        [&mut config.server.tls_cert_file, &mut config.server.tls_key_file, &mut config.server.basic_auth_users_file]
    {
        if let Some(path) = file.as_mut() {
            *path = base_dir.join(&*path);
        }
    }
    validate_server(&config.server, at)?;
    validate_poll(&config.poll, at)?;
    if let Some(dir) = &config.source.dir {
        config.source.dir = Some(base_dir.join(dir));
    }
    validate_source(&config.source, at)?;
    if let Some(events) = &config.events {
        validate_events(events, at)?;
    }
    let targets = targets(&config.targets, &base_dir, at)?;
    if config.source.kind == SourceKind::Files {
        if let Some(i) = targets.iter().position(|t| t.organization.is_some()) {
            return Err(at.error(
                &[Key::Name("targets"), Key::Index(i), Key::Name("organization")],
                "`organization` needs source.kind = \"aws\": the files source has no AWS Organizations to ask",
            ));
        }
    }
    let (exceptions, warnings) = exceptions(&config.exceptions, at)?;
    if config.alerts.state_file.is_relative() {
        config.alerts.state_file = base_dir.join(&config.alerts.state_file);
    }
    Ok(Settings { path: at.path.to_path_buf(), config, targets, exceptions, warnings })
}

fn validate_server(server: &ServerConfig, at: &Origins<'_>) -> Result<(), ConfigError> {
    if server.listen.parse::<std::net::SocketAddr>().is_err() {
        return Err(at.error(
            &["server".into(), "listen".into()],
            format!("server.listen `{}` is not an address:port such as 0.0.0.0:9787", server.listen),
        ));
    }
    for (key, value) in [("header_read_timeout", server.header_read_timeout), ("idle_timeout", server.idle_timeout)] {
        if value.is_zero() || value > LONGEST_TIMEOUT {
            return Err(at.error(
                &["server".into(), key.into()],
                format!("server.{key} must be between 1ms and 1h, such as \"10s\""),
            ));
        }
    }
    if !MAX_CONNECTIONS.contains(&server.max_connections) {
        return Err(at.error(
            &["server".into(), "max_connections".into()],
            format!(
                "server.max_connections = {} is out of range: use {} to {}",
                server.max_connections,
                MAX_CONNECTIONS.start(),
                MAX_CONNECTIONS.end()
            ),
        ));
    }
    if let Some(url) = &server.external_url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(at.error(
                &["server".into(), "external_url".into()],
                format!("server.external_url `{url}` is not an http(s) URL"),
            ));
        }
    }
    match (&server.tls_cert_file, &server.tls_key_file) {
        (Some(_), None) | (None, Some(_)) => {
            let present = if server.tls_cert_file.is_some() { "tls_cert_file" } else { "tls_key_file" };
            return Err(at.error(
                &["server".into(), present.into()],
                "TLS needs both server.tls_cert_file and server.tls_key_file",
            ));
        }
        _ => {}
    }
    // Read now, as `run` would: a bad certificate or users file fails `config check`, not the start.
    server.security().map_err(|e| {
        let key = if e.0.contains("basic_auth_users_file") { "basic_auth_users_file" } else { "tls_cert_file" };
        at.error(&["server".into(), key.into()], e.0)
    })?;
    Ok(())
}

fn validate_poll(poll: &PollConfig, at: &Origins<'_>) -> Result<(), ConfigError> {
    let key = |k: &'static str| [Key::Name("poll"), Key::Name(k)];
    let durations = [
        ("interval", poll.interval, LONGEST_INTERVAL),
        ("metadata_interval", poll.metadata_interval, LONGEST_INTERVAL),
        ("timeout", poll.timeout, LONGEST_TIMEOUT),
    ];
    for (name, value, longest) in durations {
        if value.is_zero() {
            return Err(at.error(&key(name), format!("poll.{name} must be longer than zero")));
        }
        if value > longest {
            return Err(at.error(
                &key(name),
                format!(
                    "poll.{name} = {} is longer than {}",
                    humantime::format_duration(value),
                    humantime::format_duration(longest)
                ),
            ));
        }
    }
    if poll.jitter > poll.interval {
        return Err(at.error(
            &key("jitter"),
            format!(
                "poll.jitter ({}) is longer than poll.interval ({}): polls of one target would overtake each other; use at most the interval",
                humantime::format_duration(poll.jitter),
                humantime::format_duration(poll.interval)
            ),
        ));
    }
    for (name, value, what) in [
        ("concurrency", poll.concurrency, "polls"),
        ("eks_concurrency", poll.eks_concurrency, "EKS calls"),
        ("ec2_concurrency", poll.ec2_concurrency, "EC2 calls"),
    ] {
        if !CONCURRENCY.contains(&value) {
            return Err(at.error(
                &key(name),
                format!(
                    "poll.{name} = {value} is out of range: use {} to {} {what} at a time",
                    CONCURRENCY.start(),
                    CONCURRENCY.end()
                ),
            ));
        }
    }
    for (name, value) in [
        ("eks_requests_per_second", poll.eks_requests_per_second),
        ("ec2_requests_per_second", poll.ec2_requests_per_second),
    ] {
        if value > MAX_REQUESTS_PER_SECOND {
            return Err(at.error(
                &key(name),
                format!("poll.{name} = {value} is out of range: use 0 (no limit) to {MAX_REQUESTS_PER_SECOND}"),
            ));
        }
    }
    Ok(())
}

fn validate_source(source: &SourceConfig, at: &Origins<'_>) -> Result<(), ConfigError> {
    if source.kind != SourceKind::Files {
        return Ok(());
    }
    let Some(dir) = &source.dir else {
        return Err(at.error(
            &["source".into(), "kind".into()],
            "source.kind = \"files\" needs `dir`, the directory of AWS-CLI JSON",
        ));
    };
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(at.error(&["source".into(), "dir".into()], format!("source.dir {} is not a directory", dir.display()))),
        Err(e) => Err(at.error(
            &["source".into(), "dir".into()],
            format!("source.dir {}: {e}; it must be a directory of AWS-CLI JSON (relative paths are relative to the config file)", dir.display()),
        )),
    }
}

fn validate_events(events: &EventsConfig, at: &Origins<'_>) -> Result<(), ConfigError> {
    if let Some(url) = &events.queue_url {
        let path_ok =
            url.split("://").nth(1).is_some_and(|rest| rest.split('/').filter(|p| !p.is_empty()).count() >= 3);
        if !(url.starts_with("https://") || url.starts_with("http://")) || !path_ok {
            return Err(at.error(
                &["events".into(), "queue_url".into()],
                format!("events.queue_url `{url}` is not an SQS queue URL such as https://sqs.eu-west-1.amazonaws.com/111122223333/sgdrift-events"),
            ));
        }
    }
    if events.coalesce.is_zero() || events.coalesce > Duration::from_secs(10) {
        return Err(at.error(
            &["events".into(), "coalesce".into()],
            "events.coalesce must be between 1ms and 10s, such as \"500ms\": events are held that long before their clusters are polled",
        ));
    }
    Ok(())
}

/// The `[[targets]]`, each with its baseline loaded; two that would poll the same clusters the
/// same way are refused (every AWS call would be made twice).
fn targets(raw: &[TargetConfig], base_dir: &Path, at: &Origins<'_>) -> Result<Vec<Target>, ConfigError> {
    if raw.is_empty() {
        return Err(ConfigError::Invalid {
            path: at.shown(),
            message: "no [[targets]]: add at least one with `regions` (and `clusters`, `baseline`)".into(),
        });
    }
    let mut targets: Vec<Target> = Vec::with_capacity(raw.len());
    for (i, t) in raw.iter().enumerate() {
        let key = |k: &'static str| [Key::Name("targets"), Key::Index(i), Key::Name(k)];
        if t.regions.is_empty() {
            return Err(at.error(&key("regions"), "a [[targets]] entry has an empty `regions` list"));
        }
        if t.clusters.is_empty() {
            return Err(at.error(
                &key("clusters"),
                "a [[targets]] entry has an empty `clusters` list: name clusters, or \"*\" for all",
            ));
        }
        let baseline = match t.baseline.parse::<crate::baseline::Profile>() {
            Ok(profile) => crate::baseline::BaselineRef::Profile(profile),
            Err(_) if t.baseline.ends_with(".toml") || t.baseline.contains('/') => {
                crate::baseline::BaselineRef::File(crate::baseline::load_file(&base_dir.join(&t.baseline))?)
            }
            Err(unknown) => {
                return Err(at.error(&key("baseline"), format!("{unknown}, or a path to a .toml baseline file")));
            }
        };
        if let Some(first) = raw[..i].iter().position(|other| same_polls(other, t)) {
            return Err(at.error(
                &[Key::Name("targets"), Key::Index(i)],
                format!(
                    "this [[targets]] entry polls the same regions, role and clusters as entry {} (every AWS call would be made twice): remove one, or merge their settings",
                    first + 1
                ),
            ));
        }
        let trust_controllers = match &t.trust_controllers {
            None => crate::baseline::Controller::ALL.to_vec(),
            Some(names) => names
                .iter()
                .map(|n| crate::baseline::Controller::parse(n).map_err(|e| at.error(&key("trust_controllers"), e.0)))
                .collect::<Result<_, _>>()?,
        };
        let organization = t.organization.as_ref().map(|o| organization(o, t, &key, at)).transpose()?;
        targets.push(Target {
            regions: t.regions.clone(),
            role_arn: t.role_arn.clone(),
            clusters: t.clusters.clone(),
            baseline,
            webhook_ports: t.webhook_ports.clone(),
            trust_controllers,
            organization,
        });
    }
    Ok(targets)
}

/// The `organization` of a target, checked: a role name IAM accepts, OU and root ids as AWS
/// writes them, account ids of 12 digits; not together with `role_arn`.
fn organization(
    o: &OrganizationConfig,
    t: &TargetConfig,
    key: &dyn Fn(&'static str) -> [Key<'static>; 3],
    at: &Origins<'_>,
) -> Result<crate::source::Organization, ConfigError> {
    if t.role_arn.is_some() {
        return Err(at.error(
            &key("organization"),
            "a [[targets]] entry has both `role_arn` and `organization`: the organization names one role per account; keep one",
        ));
    }
    let role_ok = (1..=64).contains(&o.role_name.len())
        && o.role_name.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
    if !role_ok {
        return Err(at.error(
            &key("organization"),
            format!("organization.role_name `{}` is not an IAM role name (1–64 of letters, digits and +=,.@_-; no path, no ARN)", o.role_name),
        ));
    }
    if let Some(bad) = o.ous.iter().find(|ou| !crate::source::Organization::is_parent_id(ou)) {
        return Err(at.error(
            &key("organization"),
            format!("organization.ous: `{bad}` is not an OU id (ou-xxxx-xxxxxxxx) or a root id (r-xxxx)"),
        ));
    }
    if let Some(bad) = o.exclude_accounts.iter().find(|a| a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit())) {
        return Err(at.error(
            &key("organization"),
            format!("organization.exclude_accounts: `{bad}` is not a 12-digit AWS account id (quote it so it stays a string)"),
        ));
    }
    Ok(crate::source::Organization {
        role_name: o.role_name.clone(),
        ous: o.ous.clone(),
        exclude_accounts: o.exclude_accounts.iter().cloned().collect(),
    })
}

/// Do two targets poll the same clusters through the same role in some region?
fn same_polls(a: &TargetConfig, b: &TargetConfig) -> bool {
    let set = |v: &[String]| v.iter().cloned().collect::<std::collections::BTreeSet<_>>();
    a.role_arn == b.role_arn
        && a.organization == b.organization
        && !set(&a.regions).is_disjoint(&set(&b.regions))
        && set(&a.clusters) == set(&b.clusters)
}

/// The `[[exceptions]]`, and a warning for each that has expired.
fn exceptions(
    raw: &[ExceptionConfig],
    at: &Origins<'_>,
) -> Result<(Vec<crate::baseline::Exception>, Vec<String>), ConfigError> {
    let today = chrono::Utc::now().date_naive();
    let mut exceptions = Vec::new();
    let mut warnings = Vec::new();
    for (i, e) in raw.iter().enumerate() {
        let exception = crate::baseline::Exception::from_config(e)
            .map_err(|m| at.error(&[Key::Name("exceptions"), Key::Index(i)], m))?;
        if exception.is_expired(today) {
            warnings.push(format!(
                "{}: exception `{}` expired on {}: it no longer suppresses anything",
                at.shown(),
                e.rule,
                exception.expires
            ));
        }
        exceptions.push(exception);
    }
    Ok((exceptions, warnings))
}

/// 1-based line and column of byte `offset` in `text`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[source]\nkind = \"files\"\ndir = \".\"\n\n[[targets]]\nregions = [\"eu-west-1\"]\n";

    fn path() -> PathBuf {
        // A directory that exists, so that `dir = "."` is valid.
        std::env::temp_dir().join("sgdrift.toml")
    }

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Settings, String> {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        load_with_env(text, &path(), &env).map_err(|e| e.to_string())
    }

    #[test]
    fn an_organization_target_is_checked_for_role_name_ous_accounts_and_source() {
        let aws = |org: &str| {
            format!("[source]\nkind = \"aws\"\n\n[[targets]]\nregions = [\"eu-west-1\"]\norganization = {org}\n")
        };
        let ok = load(
            &aws(
                "{ role_name = \"sgdrift-read\", ous = [\"ou-ab12-cdef3456\"], exclude_accounts = [\"111122223333\"] }",
            ),
            &[],
        )
        .unwrap();
        let org = ok.targets[0].organization.as_ref().unwrap();
        assert_eq!((org.role_name.as_str(), org.ous.len(), org.exclude_accounts.len()), ("sgdrift-read", 1, 1));
        // (organization, words the error must contain)
        let cases = [
            ("{ role_name = \"arn:aws:iam::1:role/x\" }", "not an IAM role name"),
            ("{ role_name = \"\" }", "not an IAM role name"),
            ("{ role_name = \"r\", ous = [\"ou-1\"] }", "not an OU id"),
            ("{ role_name = \"r\", exclude_accounts = [\"1234\"] }", "12-digit"),
            ("{ role_name = \"r\", region = \"x\" }", "unknown field"),
        ];
        for (org, words) in cases {
            let err = load(&aws(org), &[]).unwrap_err();
            assert!(err.contains(words), "{org}: `{err}` lacks `{words}`");
            assert!(err.contains("sgdrift.toml"), "{err}");
        }
        let files = format!("{BASE}organization = {{ role_name = \"r\" }}\n");
        assert!(load(&files, &[]).unwrap_err().contains("needs source.kind = \"aws\""));
    }

    #[test]
    fn the_events_table_is_optional_and_attributes_through_cloudtrail_by_default() {
        assert_eq!(load(BASE, &[]).unwrap().config.events, None);
        let text = format!(
            "[events]\nqueue_url = \"https://sqs.eu-west-1.amazonaws.com/111122223333/sgdrift-events\"\n{BASE}"
        );
        let events = load(&text, &[]).unwrap().config.events.unwrap();
        assert_eq!(events.attribution, Attribution::Cloudtrail);
        assert_eq!(events.coalesce, Duration::from_millis(500));
        assert_eq!(events.queue_region().as_deref(), Some("eu-west-1"));
        let local = EventsConfig { queue_url: Some("http://127.0.0.1:5055/123456789012/q".into()), ..events };
        assert_eq!(local.queue_region(), None, "an emulator's URL names no region");
        let off = load(&format!("[events]\nattribution = \"off\"\n{BASE}"), &[]).unwrap().config.events.unwrap();
        assert_eq!((off.attribution, off.queue_url), (Attribution::Off, None));
        let typo = load(&format!("[events]\nattribution = \"cloudwatch\"\n{BASE}"), &[]).unwrap_err();
        assert!(typo.contains("cloudwatch"), "{typo}");
    }

    #[test]
    fn the_base_config_loads_with_its_profile_typed() {
        let settings = load(BASE, &[]).unwrap();
        assert_eq!(
            settings.targets[0].baseline,
            crate::baseline::BaselineRef::Profile(crate::baseline::Profile::Minimal)
        );
        assert_eq!(settings.config.server.limits().max_connections, 512);
    }

    #[test]
    fn out_of_range_values_are_refused_at_their_line_and_column() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "[poll]\nconcurrency = 4611686018427387904\n",
                "2:15",
                "poll.concurrency = 4611686018427387904 is out of range: use 1 to 1024",
            ),
            ("[poll]\nconcurrency = 0\n", "2:15", "poll.concurrency = 0 is out of range"),
            (
                "[poll]\neks_concurrency = 0\n",
                "2:19",
                "poll.eks_concurrency = 0 is out of range: use 1 to 1024 EKS calls",
            ),
            ("[poll]\nec2_concurrency = 2000\n", "2:19", "poll.ec2_concurrency = 2000 is out of range"),
            (
                "[poll]\nec2_requests_per_second = 20000\n",
                "2:27",
                "poll.ec2_requests_per_second = 20000 is out of range: use 0 (no limit) to 10000",
            ),
            ("[poll]\ntimeout = \"0s\"\n", "2:11", "poll.timeout must be longer than zero"),
            ("[poll]\ninterval = \"0s\"\n", "2:12", "poll.interval must be longer than zero"),
            (
                "[poll]\ninterval = \"1m\"\njitter = \"2m\"\n",
                "3:10",
                "poll.jitter (2m) is longer than poll.interval (1m)",
            ),
            ("[poll]\ntimeout = \"2h\"\n", "2:11", "poll.timeout = 2h is longer than 1h"),
            ("[server]\nlisten = \"localhost\"\n", "2:10", "server.listen `localhost` is not an address:port"),
            (
                "[server]\nheader_read_timeout = \"0s\"\n",
                "2:23",
                "server.header_read_timeout must be between 1ms and 1h",
            ),
            ("[server]\nmax_connections = 0\n", "2:19", "server.max_connections = 0 is out of range"),
            ("[server]\nexternal_url = \"ftp://x\"\n", "2:16", "server.external_url `ftp://x` is not an http(s) URL"),
            (
                "[events]\nqueue_url = \"sgdrift-events\"\n",
                "2:13",
                "events.queue_url `sgdrift-events` is not an SQS queue URL",
            ),
            ("[events]\ncoalesce = \"1m\"\n", "2:12", "events.coalesce must be between 1ms and 10s"),
        ];
        for (extra, at, message) in cases {
            let err = load(&format!("{extra}{BASE}"), &[]).unwrap_err();
            let expected = format!("{}:{at}: {message}", path().display());
            assert!(err.starts_with(&expected), "{extra:?}:\n  got      {err}\n  expected {expected}…");
        }
    }

    #[test]
    fn target_problems_point_at_the_target() {
        let shown = path().display().to_string();
        let cases: &[(String, String)] = &[
            (
                format!("{BASE}\n[[targets]]\nregions = [\"eu-west-1\", \"us-east-1\"]\n"),
                format!("{shown}:8:1: this [[targets]] entry polls the same regions, role and clusters as entry 1"),
            ),
            (
                format!("{BASE}baseline = \"eks-lax\"\n"),
                format!("{shown}:7:12: unknown profile `eks-lax`: expected one of eks-minimal, eks-strict, or a path to a .toml baseline file"),
            ),
            (format!("{BASE}clusters = []\n"), format!("{shown}:7:12: a [[targets]] entry has an empty `clusters` list")),
            ("[source]\nkind = \"files\"\ndir = \"no-such-dir-for-sgdrift\"\n[[targets]]\nregions = [\"eu-west-1\"]\n".into(), format!("{shown}:3:7: source.dir ")),
        ];
        for (text, expected) in cases {
            let err = load(text, &[]).unwrap_err();
            assert!(err.starts_with(expected.as_str()), "{text:?}:\n  got      {err}\n  expected {expected}…");
        }
        let other_role = format!(
            "{BASE}\n[[targets]]\nregions = [\"eu-west-1\"]\nrole_arn = \"arn:aws:iam::111122223333:role/r\"\n"
        );
        assert!(load(&other_role, &[]).is_ok(), "another role polls other clusters");
    }

    #[test]
    fn a_bad_value_from_the_environment_names_the_variable_not_a_file_line() {
        let shown = path().display().to_string();
        let cases: &[(&str, &str, String)] = &[
            ("SGDRIFT__POLL__TIMEOUT", "0s", format!("environment variable SGDRIFT__POLL__TIMEOUT (overriding {shown}): poll.timeout must be longer than zero")),
            ("SGDRIFT__POLL__CONCURRENCY", "5000", format!("environment variable SGDRIFT__POLL__CONCURRENCY (overriding {shown}): poll.concurrency = 5000 is out of range")),
            ("SGDRIFT__POLL__CONCURRENCY", "many", format!("environment variable SGDRIFT__POLL__CONCURRENCY (overriding {shown}): ")),
        ];
        for (var, value, expected) in cases {
            // Also set in the file: the error must still name the variable.
            let err = load(&format!("[poll]\ntimeout = \"5s\"\nconcurrency = 4\n{BASE}"), &[(var, value)]).unwrap_err();
            assert!(err.starts_with(expected.as_str()), "{var}={value}:\n  got      {err}\n  expected {expected}…");
        }
        let ok = load(BASE, &[("SGDRIFT__POLL__TIMEOUT", "7s")]).unwrap();
        assert_eq!(ok.config.poll.timeout, Duration::from_secs(7));
    }
}
