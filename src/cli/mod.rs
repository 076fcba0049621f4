//! The command line: clap definitions (syntax) and one runner per subcommand. `main` only
//! parses, calls [`run`] and turns the result into an exit code.

mod cache_file;
/// `println!` for the CLI's output: a closed standard output (`hopdns ctl stats | head -1`)
/// ends the program quietly instead of panicking. See [`write_stdout`].
macro_rules! outln {
    () => { $crate::cli::write_stdout(b"\n") };
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format!("{}\n", format_args!($($arg)*)).as_bytes())
    };
}

pub mod admin;
#[cfg(feature = "lab")]
pub mod lab;
pub mod logging;
mod man;
mod notify;
mod serve;
mod serve_services;
mod trace;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use serve::ServeArgs;
pub use trace::TraceArgs;

/// hopdns: a recursive caching DNS resolver.
#[derive(Parser, Debug)]
#[command(name = "hopdns", version, about, long_about = None)]
pub struct Cli {
    /// Log level (error, warn, info, debug, trace, off), or a filter such as
    /// `info,hopdns::trace=debug`; RUST_LOG overrides it. At debug, `serve` logs every
    /// resolution hop.
    #[arg(long, global = true, default_value = "info", value_name = "LEVEL",
          value_parser = logging::parse_level)]
    pub log_level: String,
    /// Log line format: human-readable text, or one JSON object per line.
    #[arg(long, global = true, default_value = "text", value_name = "FORMAT")]
    pub log_format: logging::LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size difference between subcommands does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Answer DNS queries over UDP and TCP, resolving iteratively from the root.
    Serve(ServeArgs),
    /// Resolve one name from a cold cache and print every hop (root, TLD, authoritative).
    Trace(TraceArgs),
    /// Start the offline lab (authoritative servers on 127.53.N.x) and a resolver using it.
    #[cfg(feature = "lab")]
    Lab(lab::LabArgs),
    /// Check a config file, or print one with every key and its default.
    #[command(subcommand)]
    Config(admin::ConfigCommand),
    /// Check a redirect rules file (--rules): every error with its file and line.
    #[command(subcommand)]
    Rules(admin::RulesCommand),
    /// Control a running `hopdns serve` over its Unix socket (--control-socket).
    Ctl(admin::CtlArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(admin::CompletionsArgs),
    /// Print the man page (roff) to standard output, or write every page to a directory.
    Man(admin::ManArgs),
    /// Read a password on standard input and print its argon2id hash for
    /// --web-password-hash (the dashboard's login).
    WebPassword,
}

/// The whole program: parse the command line (applying the config file to `serve`), run.
pub fn main() -> ExitCode {
    match admin::parse_with_config(std::env::args_os().collect()) {
        Ok(cli) => run(cli),
        Err(admin::ParseFailure::Clap(e)) => e.exit(),
        Err(admin::ParseFailure::Config(e)) => {
            eprintln!("hopdns: {e}");
            ExitCode::from(2)
        }
    }
}

/// Runs the chosen subcommand. Errors are printed once, here, with their fix.
pub fn run(cli: Cli) -> ExitCode {
    let query_log = matches!(&cli.command, Command::Serve(a) if a.ops.query_log);
    logging::init(&cli.log_level, cli.log_format, query_log);
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Trace(args) => trace::run(args),
        #[cfg(feature = "lab")]
        Command::Lab(args) => lab::run(args),
        Command::Config(c) => admin::config(c),
        Command::Rules(c) => admin::rules(c),
        Command::Ctl(args) => admin::ctl(args),
        Command::Completions(args) => admin::completions(args),
        Command::Man(args) => admin::man(args),
        Command::WebPassword => admin::web_password(),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hopdns: {e}");
            ExitCode::from(2)
        }
    }
}

/// Scheduler ticks (task polls) between polls of the I/O driver while tasks are ready
/// (tokio's default is 61). Misses yield before their upstream send and before their reply
/// until the next driver poll, so that they leave together; a longer interval makes those
/// batches larger. 127 gave 2-7% more cache misses per second in four A/B pairs against 61,
/// with a lower mean latency and hits unchanged (docs/performance.md).
const EVENT_INTERVAL: u32 = 127;

/// A runtime with `threads` workers (at least one). One worker is the calling thread itself
/// (tokio's current-thread scheduler): a multi-thread runtime with a single worker pays for
/// work stealing and cross-thread wake-ups it cannot use, and the main thread beside it. On
/// the one-core miss load that was 2-3% of the rate (docs/performance.md).
fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut multi = tokio::runtime::Builder::new_multi_thread();
        multi.worker_threads(threads);
        multi
    };
    builder.event_interval(EVENT_INTERVAL).enable_all().build()
}

/// Resolves when SIGINT (Ctrl-C) or SIGTERM arrives (the lab's stop; `serve` installs its own
/// handlers before it says READY).
#[cfg(feature = "lab")]
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Writes `bytes` to standard output. When the reader has gone (EPIPE: `| head`, `| true`),
/// exits at once with status 0 and no message, as ripgrep does: the reader took what it
/// wanted. Any other write error ends with status 2 and says so. (Rust ignores SIGPIPE, so
/// `println!` would panic instead.)
pub fn write_stdout(bytes: &[u8]) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(bytes).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("hopdns: cannot write to standard output: {e}");
        std::process::exit(2);
    }
}

/// Anything a subcommand can fail with, printed by [`run`].
pub type CmdResult = Result<ExitCode, Box<dyn std::error::Error>>;
