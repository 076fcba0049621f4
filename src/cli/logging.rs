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

/// Levels a filter directive may name (tracing's, case-insensitive).
const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];

/// Checks `--log-level` (and the config file's `log-level`) when the command line is
/// parsed: a level, or comma-separated `TARGET=LEVEL` directives. tracing reads a bare
/// word such as `warning` as a *target* and then logs nothing else, errors included; that
/// is refused here with the valid values.
pub fn parse_level(value: &str) -> Result<String, String> {
    let valid = || {
        format!(
            "use one of {}, or a filter such as `info,hopdns::trace=debug`",
            LEVELS.join(", ")
        )
    };
    let is_level = |l: &str| LEVELS.iter().any(|v| v.eq_ignore_ascii_case(l.trim()));
    if value.trim().is_empty() {
        return Err(format!("empty log level: {}", valid()));
    }
    for directive in value.split(',') {
        let directive = directive.trim();
        match directive.rsplit_once('=') {
            Some((target, level)) => {
                if target.trim().is_empty() {
                    return Err(format!("`{directive}` names no target: write TARGET=LEVEL"));
                }
                if !is_level(level) {
                    return Err(format!(
                        "unknown log level `{}` in `{directive}`: {}",
                        level.trim(),
                        valid()
                    ));
                }
            }
            None if is_level(directive) => {}
            None => {
                return Err(format!("unknown log level `{directive}`: {}", valid()));
            }
        }
    }
    EnvFilter::try_new(value).map_err(|e| format!("log filter `{value}`: {e}"))?;
    Ok(value.to_string())
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
        // The lab's catalog (hickory-server with DNSSEC) warns "unexpected lookup skip" on
        // every positive answer from a zone without an NSEC3 chain: not a fault.
        filter = filter.add_directive("hickory_server=error".parse().map_err(|e| format!("{e}"))?);
    }
    if query_log {
        let directive = format!("{}=info", crate::server::querylog::TARGET);
        filter = filter.add_directive(directive.parse().map_err(|e| format!("{e}"))?);
    }
    Ok(filter)
}

/// Colour (ANSI escapes) only for a person at a terminal: never into a file, a pipe or
/// journald, and never when `NO_COLOR` is set to anything but "" (no-color.org).
fn colour(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
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
            .with_ansi(colour(
                std::io::IsTerminal::is_terminal(&std::io::stderr()),
                std::env::var_os("NO_COLOR"),
            ))
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
    parse_level(level)?;
    let query_log = QUERY_LOG.get().copied().unwrap_or(false);
    let filter = filter(level, query_log)?;
    let handle = HANDLE.get().ok_or("logging is not set up")?;
    handle.reload(filter).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::{colour, parse_level};

    /// Issue 12.7: escape codes landed in log files and journald.
    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some("".into())));
        assert!(!colour(true, Some("1".into())));
        assert!(!colour(false, None));
    }

    /// Issue 12.2: `warning` (or a typo) was taken as a target name and switched off every
    /// log line, errors included.
    #[test]
    fn unknown_levels_are_refused_with_the_valid_ones() {
        for ok in [
            "info",
            "WARN",
            "off",
            "info,hopdns::trace=debug",
            "hopdns=trace",
        ] {
            assert_eq!(parse_level(ok).as_deref(), Ok(ok), "{ok}");
        }
        for bad in ["warning", "inf", "", "info,hopdns::trace=verbose", "=debug"] {
            let e = parse_level(bad).unwrap_err();
            assert!(
                e.contains("error, warn, info, debug, trace, off") || e.contains("TARGET=LEVEL"),
                "{bad}: {e}"
            );
        }
    }
}
