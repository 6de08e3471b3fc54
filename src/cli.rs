//! The command line of design.md §3.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::baseline::Profile;
use crate::model::{EndpointMode, Severity, Style};

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
        #[arg(long, value_enum, default_value_t = Severity::Low)]
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
        #[arg(long, value_enum, default_value_t = Profile::Minimal)]
        profile: Profile,
        /// Endpoint mode.
        #[arg(long, value_enum, default_value_t = EndpointMode::Public)]
        mode: EndpointMode,
        /// Management style.
        #[arg(long, value_enum, default_value_t = Style::Unknown)]
        style: Style,
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

value_enum!(Severity => as_str, EndpointMode => as_str, Style => as_str, Profile => name);
