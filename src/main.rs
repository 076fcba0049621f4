//! The `hopdns` binary: parse the command line, run the subcommand, exit with its code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    hopdns::cli::run(hopdns::cli::Cli::parse())
}
