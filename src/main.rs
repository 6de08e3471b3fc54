use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = sgdrift::cli::Cli::parse();
    sgdrift::app::main(cli)
}
