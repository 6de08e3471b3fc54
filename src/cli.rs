//! The command line of design.md §3.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::model::Severity;

#[derive(Debug, Parser)]
#[command(name = "sgdrift", version, about = "Watches EKS security groups for drift from a minimal baseline")]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "SGDRIFT_LOG_FORMAT")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

pub const DEFAULT_CONFIG: &str = "/etc/sgdrift/sgdrift.toml";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: poll, serve /metrics and the status page, send alerts.
    Run {
        #[arg(long, short, default_value = DEFAULT_CONFIG, env = "SGDRIFT_CONFIG")]
        config: PathBuf,
        /// Move a state file sgdrift refuses (corrupt, foreign, newer) aside and start empty,
        /// instead of refusing to start; its queued alerts are lost and open drift alerts again.
        #[arg(long)]
        reset_state: bool,
    },
    /// Poll every configured cluster once and report; exit 1 on drift, 2 on error.
    Check {
        #[arg(long, short, default_value = DEFAULT_CONFIG, env = "SGDRIFT_CONFIG")]
        config: PathBuf,
        /// Only these clusters (repeatable).
        #[arg(long = "cluster")]
        clusters: Vec<String>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
        /// Lowest severity that counts as drift for the exit code.
        #[arg(long, value_parser = parse_severity, default_value = "low")]
        fail_on: Severity,
    },
    /// Write a baseline file from a cluster's live groups.
    Record {
        #[arg(long)]
        cluster: String,
        #[arg(long, short, default_value = DEFAULT_CONFIG, env = "SGDRIFT_CONFIG")]
        config: PathBuf,
        /// Where to write it; stdout when absent.
        #[arg(long)]
        out: Option<PathBuf>,
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
}

#[derive(Debug, Subcommand)]
pub enum BaselineCommand {
    /// Print a built-in baseline as TOML.
    Show {
        #[arg(long, default_value = "eks-minimal")]
        profile: String,
        /// Endpoint mode: public, public-private or private.
        #[arg(long, default_value = "public")]
        mode: String,
        /// Management style: console, eksctl, terraform or unknown.
        #[arg(long, default_value = "unknown")]
        style: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the config and every baseline it names.
    Check {
        #[arg(long, short, default_value = DEFAULT_CONFIG, env = "SGDRIFT_CONFIG")]
        config: PathBuf,
    },
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    Severity::parse(s).map_err(|e| e.0)
}
