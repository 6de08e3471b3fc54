//! The command line of design.md §3. Every flag says what it does and lists its values (value
//! enums list themselves); `completions` and `man` are generated from this definition.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::baseline::Profile;
use crate::model::{EndpointMode, Severity, Style};

#[derive(Debug, Parser)]
#[command(
    name = "sgdrift",
    version,
    about = "Watches EKS security groups for drift from a minimal baseline",
    long_about = "Watches the security groups of Amazon EKS clusters and reports drift from a minimal \
baseline: rules that open more than the baseline allows, rules the cluster needs that have gone \
missing, and traffic EKS needs that no longer flows. `check` polls once; `run` is the daemon \
(Prometheus /metrics, JSON API, status page, Slack and webhook alerts).",
    after_help = "The config file defaults to /etc/sgdrift/sgdrift.toml; give another with --config FILE or \
SGDRIFT_CONFIG. AWS credentials come from the standard chain (AWS_* variables, AWS_PROFILE, IRSA, \
EKS Pod Identity, instance role)."
)]
pub struct Cli {
    /// Log format on stderr: text for people, json for log collectors.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "SGDRIFT_LOG_FORMAT")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// A report for people: findings per cluster and group, closed flows, a verdict.
    Text,
    /// The JSON report that /api/v1/report serves.
    Json,
    /// The drift as a JSON array of AWS Security Finding Format findings, for
    /// `aws securityhub batch-import-findings --findings file://…` (100 per call).
    Asff,
}

pub const DEFAULT_CONFIG: &str = "/etc/sgdrift/sgdrift.toml";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: poll, serve /metrics and the status page, send alerts.
    Run {
        /// The config file (TOML; config/sgdrift.toml documents every key).
        #[arg(long, short, value_name = "FILE", default_value = DEFAULT_CONFIG, env = "SGDRIFT_CONFIG")]
        config: PathBuf,
        /// Move a state file sgdrift refuses (corrupt, foreign, newer) aside and start empty,
        /// instead of refusing to start; its queued alerts are lost and open drift alerts again.
        #[arg(long)]
        reset_state: bool,
    },
    /// Poll every configured cluster once and report; exit 1 on drift, 2 on error.
    Check {
        /// The config file (TOML; config/sgdrift.toml documents every key).
        #[arg(long, short, value_name = "FILE", default_value = DEFAULT_CONFIG, env = "SGDRIFT_CONFIG")]
        config: PathBuf,
        /// Check only the cluster of this name (repeat for several); default: every cluster the
        /// config's targets name.
        #[arg(long = "cluster", value_name = "NAME")]
        clusters: Vec<String>,
        /// Report format on stdout.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
        /// Lowest severity that counts as drift for the exit code (1); findings below it are
        /// still reported.
        #[arg(long, value_enum, default_value_t = Severity::Low)]
        fail_on: Severity,
    },
    /// Write a baseline file from a cluster's live groups, peers expressed by role.
    Record {
        /// The cluster to record, as its config target names it.
        #[arg(long, value_name = "NAME")]
        cluster: String,
        /// The config file (TOML; config/sgdrift.toml documents every key).
        #[arg(long, short, value_name = "FILE", default_value = DEFAULT_CONFIG, env = "SGDRIFT_CONFIG")]
        config: PathBuf,
        /// Where to write the baseline (TOML); stdout when absent.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Print the plan that restores a cluster's baseline; with --apply, carry it out and check
    /// again. Exit 0 when no drift (at or above --min-severity) is left, 1 when some is, 2 on error.
    #[command(long_about = "Print the remediation plan of one cluster: for each finding, the change that restores \
the baseline (revoke an unexpected rule, authorize a missing one with a description), as AWS CLI commands. \
Every step is checked on the cluster's snapshot first: a step that would close a required flow, create a \
new finding or touch a controller's rule is refused with the reason; excepted findings and owned rules are \
never in a plan. With --apply, carry the plan out through the AWS API (credentials allowed \
deploy/iam/sgdrift-fix.json), stop at the first error, read the cluster again and report what is left. \
A second run plans nothing.")]
    Fix {
        /// The cluster to fix, as its config target names it.
        #[arg(long, value_name = "NAME")]
        cluster: String,
        /// The config file (TOML; config/sgdrift.toml documents every key).
        #[arg(long, short, value_name = "FILE", default_value = DEFAULT_CONFIG, env = "SGDRIFT_CONFIG")]
        config: PathBuf,
        /// Leave findings below this severity alone (and out of the exit code).
        #[arg(long, value_enum, default_value_t = Severity::Low)]
        min_severity: Severity,
        /// Carry the plan out (writes to AWS); without it, only print the plan.
        #[arg(long)]
        apply: bool,
    },
    /// Built-in baselines.
    Baseline {
        #[command(subcommand)]
        command: BaselineCommand,
    },
    /// The configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print shell completions to stdout, e.g. `sgdrift completions bash > /etc/bash_completion.d/sgdrift`.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout, e.g. `sgdrift man > /usr/local/share/man/man1/sgdrift.1`.
    Man {
        /// Write sgdrift.1 and one page per subcommand (sgdrift-check.1, …) into this directory instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum BaselineCommand {
    /// Print a built-in baseline as TOML, as a starting point for a baseline file.
    Show {
        /// The built-in profile: eks-minimal (the AWS-documented minimum and the defaults EKS and
        /// the tools create) or eks-strict (the hardened minimum).
        #[arg(long, value_enum, default_value_t = Profile::Minimal)]
        profile: Profile,
        /// The cluster's endpoint mode (endpointPublicAccess / endpointPrivateAccess), which
        /// decides what the nodes need.
        #[arg(long, value_enum, default_value_t = EndpointMode::Public)]
        mode: EndpointMode,
        /// How the cluster was made (the tool whose known extra rules the baseline tolerates).
        #[arg(long, value_enum, default_value_t = Style::Unknown)]
        style: Style,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the config and every baseline it names; exit 0 when valid, 2 when not.
    Check {
        /// The config file (TOML; config/sgdrift.toml documents every key).
        #[arg(long, short, value_name = "FILE", default_value = DEFAULT_CONFIG, env = "SGDRIFT_CONFIG")]
        config: PathBuf,
    },
}

/// The domain's own enums as clap values, spelled as in the config and the report; their
/// lists come from the enums, so a new variant is a new value without an edit here.
macro_rules! value_enum {
    ($($ty:ty => $name:ident),* $(,)?) => {$(
        impl ValueEnum for $ty {
            fn value_variants<'a>() -> &'a [Self] {
                &<$ty>::ALL
            }

            fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
                Some(clap::builder::PossibleValue::new(self.$name()))
            }
        }
    )*};
}

/// Writes the completion script for `shell` to `out`.
pub fn write_completions(shell: clap_complete::Shell, out: &mut dyn std::io::Write) {
    let mut command = <Cli as clap::CommandFactory>::command();
    clap_complete::generate(shell, &mut command, "sgdrift", out);
}

/// Writes the man page of `sgdrift` (roff) to `out`.
pub fn write_man_page(out: &mut dyn std::io::Write) -> std::io::Result<()> {
    clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).render(out)
}

/// Writes `sgdrift.1` and a page per subcommand (`sgdrift-check.1`, …) into `dir`.
pub fn write_man_pages(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    clap_mangen::generate_to(<Cli as clap::CommandFactory>::command(), dir)
}

value_enum!(Severity => as_str, EndpointMode => as_str, Style => as_str, Profile => name);
