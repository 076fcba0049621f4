//! The `hopdns` binary: parse the command line, run the subcommand, exit with its code.

use std::process::ExitCode;

fn main() -> ExitCode {
    hopdns::cli::main()
}
