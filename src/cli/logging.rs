//! Logs: `tracing-subscriber` to standard error, filtered by `--log-level` (or `RUST_LOG`,
//! which wins), as text or one JSON object per line (`--log-format`). The filter sits in a
//! reload layer so `reload` (ctl or SIGHUP) can change the level of a running server.

use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

/// How log lines are written.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

static HANDLE: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();
static QUERY_LOG: OnceLock<bool> = OnceLock::new();

/// The filter for `level`, with the query log's target switched on when asked.
fn filter(level: &str, query_log: bool) -> Result<EnvFilter, String> {
    let base = match std::env::var("RUST_LOG") {
        Ok(env) if !env.is_empty() => env,
        _ => level.to_string(),
    };
    let mut filter = EnvFilter::try_new(&base).map_err(|e| format!("log level {base:?}: {e}"))?;
    // hickory-proto warns once per odd message it decodes (malformed EDNS options, CAA
    // flags): input from remote clients and authorities must not write a line each (issue
    // 11.4). Its warnings show from `debug` up, or with RUST_LOG.
    if !base.contains("hickory") && !matches!(level, "debug" | "trace") {
        filter = filter.add_directive("hickory_proto=error".parse().map_err(|e| format!("{e}"))?);
    }
    if query_log {
        let directive = format!("{}=info", crate::server::querylog::TARGET);
        filter = filter.add_directive(directive.parse().map_err(|e| format!("{e}"))?);
    }
    Ok(filter)
}

/// Installs the subscriber once per process (later calls do nothing).
pub fn init(level: &str, format: LogFormat, query_log: bool) {
    let filter = filter(level, query_log).unwrap_or_else(|e| {
        eprintln!("hopdns: {e}; using info");
        EnvFilter::new("info")
    });
    let (filter, handle) = reload::Layer::new(filter);
    let output = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    if tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .try_init()
        .is_ok()
    {
        let _ = HANDLE.set(handle);
        let _ = QUERY_LOG.set(query_log);
    }
}

/// Changes the level of the running subscriber (RUST_LOG, if set, still wins).
pub fn set_level(level: &str) -> Result<(), String> {
    let query_log = QUERY_LOG.get().copied().unwrap_or(false);
    let filter = filter(level, query_log)?;
    let handle = HANDLE.get().ok_or("logging is not set up")?;
    handle.reload(filter).map_err(|e| e.to_string())
}
