//! The command line: clap definitions (syntax) and one runner per subcommand. `main` only
//! parses, calls [`run`] and turns the result into an exit code.

pub mod lab;
mod serve;
mod trace;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use serve::ServeArgs;
pub use trace::TraceArgs;

/// hopdns: a recursive caching DNS resolver.
#[derive(Parser, Debug)]
#[command(name = "hopdns", version, about, long_about = None)]
pub struct Cli {
    /// Log level (error, warn, info, debug, trace); RUST_LOG overrides it. At debug,
    /// `serve` logs every resolution hop.
    #[arg(long, global = true, default_value = "info", value_name = "LEVEL")]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Answer DNS queries over UDP and TCP, resolving iteratively from the root.
    Serve(ServeArgs),
    /// Resolve one name from a cold cache and print every hop (root, TLD, authoritative).
    Trace(TraceArgs),
    /// Start the offline lab (authoritative servers on 127.53.N.x) and a resolver using it.
    Lab(lab::LabArgs),
}

/// Runs the chosen subcommand. Errors are printed once, here, with their fix.
pub fn run(cli: Cli) -> ExitCode {
    init_logging(&cli.log_level);
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Trace(args) => trace::run(args),
        Command::Lab(args) => lab::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hopdns: {e}");
            ExitCode::from(2)
        }
    }
}

fn init_logging(level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// A runtime with `threads` workers (at least one).
fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
}

/// Resolves when SIGINT (Ctrl-C) or SIGTERM arrives.
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

/// Anything a subcommand can fail with, printed by [`run`].
pub type CmdResult = Result<ExitCode, Box<dyn std::error::Error>>;
