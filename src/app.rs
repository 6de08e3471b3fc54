//! Wiring: from a parsed command line to a finished command and its exit code.

use std::process::ExitCode;

use crate::cli::Cli;

pub fn main(cli: Cli) -> ExitCode {
    let _ = cli;
    ExitCode::SUCCESS
}
