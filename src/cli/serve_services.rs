//! What `serve` runs beside the listeners: metrics endpoint, control socket, warm restart
//! (`--cache-file`), signals (SIGTERM/SIGINT drain, SIGHUP reload) and the `reload` of the
//! config file. Kept out of `serve.rs` so that file stays a short list of steps.

use std::ffi::OsString;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hickory_proto::rr::Name;
use tokio_util::sync::CancellationToken;

use super::admin::{parse_with_config, ParseFailure};
use super::serve::ServeArgs;
use super::Command;
use crate::config::file::{self, ConfigFile};
use crate::config::service::OpsArgs;
use crate::control::{self, CacheAdmin, Controls, Reloadable};
use crate::resolver::Resolver;

/// The resolver's cache as `ctl` and the metrics see it.
pub struct ResolverCache(pub Resolver);

impl std::fmt::Debug for ResolverCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResolverCache")
    }
}

impl crate::metrics::CacheSource for ResolverCache {
    fn cache_stats(&self) -> crate::cache::CacheStats {
        self.0.cache().stats()
    }
}

impl CacheAdmin for ResolverCache {
    fn flush_name(&self, name: &Name) -> usize {
        self.0.cache().flush_name(name)
    }

    fn flush_zone(&self, zone: &Name) -> usize {
        self.0.cache().flush_zone(zone)
    }

    fn flush_all(&self) -> usize {
        let stats = self.0.cache().stats();
        self.0.cache().flush_all();
        stats.rrsets.entries + stats.messages.entries + stats.delegations
    }

    fn dump(&self, path: &Path) -> Result<usize, String> {
        super::cache_file::save(self.0.cache(), path)
    }

    fn load(&self, path: &Path) -> Result<usize, String> {
        let file = std::fs::File::open(path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let cache = self.0.cache();
        cache
            .load(&mut BufReader::new(file), cache.clock.unix_secs())
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    fn stats(&self) -> Vec<(String, u64)> {
        let s = self.0.cache().stats();
        let n = |v: usize| v as u64;
        vec![
            ("cache_rrsets".into(), n(s.rrsets.entries)),
            ("cache_rrset_bytes".into(), n(s.rrsets.bytes)),
            ("cache_messages".into(), n(s.messages.entries)),
            ("cache_message_bytes".into(), n(s.messages.bytes)),
            ("cache_delegations".into(), n(s.delegations)),
            (
                "cache_evictions".into(),
                s.rrsets.evictions + s.messages.evictions,
            ),
        ]
    }
}

/// `reload` of the config file: re-reads it, applies what can change while running (the
/// log level) and names the keys that differ from what the process runs with and so need a
/// restart. The comparison is with the file as read at start, not as last reloaded: a key
/// changed once stays reported at every reload until it is put back or hopdns restarts
/// (issue 12.4). A file with errors changes nothing.
pub struct ConfigReloader {
    path: PathBuf,
    /// The command line `serve` was started with, to merge the file again the same way.
    argv: Vec<OsString>,
    /// The file's keys as read at start: what the running process uses.
    running: Vec<(String, Vec<OsString>)>,
    /// Validation settings, whose negative trust anchors a reload replaces (RFC 7646 §2.2:
    /// operators add and remove them while running).
    dnssec: Option<Arc<crate::dnssec::Config>>,
}

impl ConfigReloader {
    /// A reloader when `serve` runs with a config file.
    pub fn for_args(
        args: &ServeArgs,
        dnssec: Option<Arc<crate::dnssec::Config>>,
    ) -> Option<Arc<dyn Reloadable>> {
        let path = args.ops.config.clone()?;
        let entries = load_entries(&path).ok()?;
        Some(Arc::new(ConfigReloader {
            path,
            argv: std::env::args_os().collect(),
            running: entries,
            dnssec,
        }))
    }
}

fn load_entries(path: &Path) -> Result<Vec<(String, Vec<OsString>)>, String> {
    let serve = file::serve_command(<super::Cli as clap::CommandFactory>::command());
    let config = ConfigFile::load(path, &serve).map_err(|e| e.to_string())?;
    Ok(config
        .entries
        .into_iter()
        .map(|e| (e.key, e.tokens))
        .collect())
}

impl Reloadable for ConfigReloader {
    fn name(&self) -> String {
        format!("config {}", self.path.display())
    }

    fn reload(&self) -> Result<String, String> {
        let entries = load_entries(&self.path)?;
        let (level, insecure) = match parse_with_config(self.argv.clone()) {
            Ok(cli) => match cli.command {
                Command::Serve(args) => (cli.log_level, args.upstream.dnssec.insecure_domain),
                _ => return Err("not started as `serve`".into()),
            },
            Err(ParseFailure::Config(e)) => return Err(e.to_string()),
            Err(ParseFailure::Clap(e)) => return Err(e.to_string()),
        };
        let negative = crate::dnssec::anchor::NegativeAnchors::parse(&insecure)?;
        super::logging::set_level(&level)?;
        let nta = match &self.dnssec {
            Some(d) if !negative.domains().is_empty() => format!("; {}", d.set_negative(negative)),
            Some(d) => {
                d.set_negative(negative);
                String::new()
            }
            None => String::new(),
        };
        let running = &self.running;
        let mut changed: Vec<&str> = entries
            .iter()
            .filter(|(k, v)| !running.iter().any(|(rk, rv)| rk == k && rv == v))
            .map(|(k, _)| k.as_str())
            .chain(
                running
                    .iter()
                    .filter(|(k, _)| !entries.iter().any(|(ek, _)| ek == k))
                    .map(|(k, _)| k.as_str()),
            )
            .filter(|k| *k != "log-level" && *k != "insecure-domain")
            .collect();
        changed.sort_unstable();
        changed.dedup();
        let report = if changed.is_empty() {
            format!("re-read; log level {level}; nothing else changed{nta}")
        } else {
            format!(
                "re-read; log level {level}; changed but applied only at restart: {}{nta}",
                changed.join(", ")
            )
        };
        Ok(report)
    }
}

/// `--query-log-file`, reopened by SIGHUP and `ctl reload` (logrotate moves it away first).
pub struct QueryLogFile(pub crate::server::querylog::QueryLog);

impl Reloadable for QueryLogFile {
    fn name(&self) -> String {
        "query log file".into()
    }

    fn reload(&self) -> Result<String, String> {
        self.0.reopen().unwrap_or(Ok(String::new()))
    }
}

/// `--tls-cert` and `--tls-key`, read again by SIGHUP and `ctl reload` (certbot and
/// other ACME clients renew them in place); open DoT and DoH connections are kept.
pub struct TlsCertFiles(pub Arc<crate::server::TlsCerts>);

impl Reloadable for TlsCertFiles {
    fn name(&self) -> String {
        "TLS certificate".into()
    }

    fn reload(&self) -> Result<String, String> {
        self.0.reload()
    }
}

/// The operational services of one `serve` run.
pub struct OpsRuntime {
    controls: Arc<Controls>,
    cache_file: Option<PathBuf>,
    cache: Option<Arc<dyn CacheAdmin>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    hup: Option<tokio::task::JoinHandle<()>>,
    /// SIGTERM/SIGINT, registered at start: a stop asked for just after READY=1 drains
    /// instead of killing the process with the default action.
    stop: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    /// The periodic cache save (`--cache-save-interval`), stopped before the final save.
    saver: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
}

impl OpsRuntime {
    /// Loads the cache file, starts the metrics endpoint and the control socket and the
    /// SIGHUP handler. Binding errors end `serve` before it answers anything.
    pub async fn start(
        ops: &OpsArgs,
        controls: Controls,
        shutdown: &CancellationToken,
    ) -> Result<OpsRuntime, Box<dyn std::error::Error>> {
        let cache = controls.cache.clone();
        let mut tasks = Vec::new();
        let mut saver = None;
        if let (Some(path), Some(cache)) = (&ops.cache_file, &cache) {
            super::cache_file::check_at_start(path)?;
            if path.exists() {
                match cache.load(path) {
                    Ok(n) => tracing::info!(file = %path.display(), entries = n, "cache loaded"),
                    Err(error) => tracing::warn!(%error, "cache file not loaded; starting cold"),
                }
            } else {
                tracing::info!(file = %path.display(), "no cache file yet; starting cold");
            }
            if ops.cache_save_interval > 0 {
                let every = std::time::Duration::from_secs(ops.cache_save_interval);
                let stop = CancellationToken::new();
                let task = save_periodically(path.clone(), cache.clone(), every, stop.clone());
                saver = Some((stop, task));
            }
        }
        let controls = Arc::new(controls);
        if let Some(addr) = ops.metrics {
            let (bound, task) = crate::metrics::serve_metrics(addr, shutdown.clone()).await?;
            tracing::info!(addr = %bound, "metrics at http://{bound}/metrics");
            tasks.push(task);
        }
        if let Some(path) = &ops.control_socket {
            let task = control::serve_control(path, controls.clone(), shutdown.clone()).await?;
            tracing::info!(socket = %path.display(), "control socket ready");
            tasks.push(task);
        }
        let hup = reload_on_hangup(controls.clone());
        let stop = stop_signals()?;
        Ok(OpsRuntime {
            controls,
            cache_file: ops.cache_file.clone(),
            cache,
            tasks,
            hup,
            stop,
            saver,
        })
    }

    /// Resolves on SIGTERM or SIGINT (received at any time since [`OpsRuntime::start`]).
    pub async fn wait_for_stop(&mut self) {
        (&mut self.stop).await;
    }

    /// After the listeners stopped: saves the cache (if asked) and stops the services.
    pub async fn finish(self) {
        if let Some(hup) = self.hup {
            hup.abort();
        }
        if let Some((stop, task)) = self.saver {
            // A save in progress completes first, so it cannot land after the final one.
            stop.cancel();
            let _ = task.await;
        }
        if let (Some(path), Some(cache)) = (&self.cache_file, &self.cache) {
            let (path, cache) = (path.clone(), cache.clone());
            let saved = tokio::task::spawn_blocking(move || cache.dump(&path)).await;
            match saved {
                Ok(Ok(n)) => tracing::info!(entries = n, "cache saved"),
                Ok(Err(error)) => tracing::warn!(%error, "cache not saved"),
                Err(error) => tracing::warn!(%error, "cache not saved"),
            }
        }
        for task in self.tasks {
            let _ = tokio::time::timeout(std::time::Duration::from_millis(500), task).await;
        }
        drop(self.controls);
    }
}

/// Saves the cache every `every`, so a crash loses at most that much (the save at stop
/// still runs). A failed save is logged and retried at the next tick.
fn save_periodically(
    path: PathBuf,
    cache: Arc<dyn CacheAdmin>,
    every: std::time::Duration,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            let (path, cache) = (path.clone(), cache.clone());
            match tokio::task::spawn_blocking(move || cache.dump(&path)).await {
                Ok(Ok(n)) => tracing::debug!(entries = n, "cache saved"),
                Ok(Err(error)) => tracing::warn!(%error, "periodic cache save failed"),
                Err(error) => tracing::warn!(%error, "periodic cache save failed"),
            }
        }
    })
}

/// SIGTERM and SIGINT, handled from now on (tokio installs the handler when the stream is
/// made, not when it is first awaited).
fn stop_signals() -> std::io::Result<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>
{
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(Box::pin(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }))
}

/// SIGHUP runs the same reload as `hopdns ctl reload` and logs its report.
fn reload_on_hangup(controls: Arc<Controls>) -> Option<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup()).ok()?;
    Some(tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let controls = controls.clone();
            super::notify::reloading();
            let report = tokio::task::spawn_blocking(move || controls.reload()).await;
            super::notify::send("READY=1\nSTATUS=answering queries");
            match report {
                Ok(r) if r.ok => tracing::info!(report = %r.text, "SIGHUP: reloaded"),
                Ok(r) => tracing::warn!(report = %r.text, "SIGHUP: reload failed"),
                Err(error) => tracing::warn!(%error, "SIGHUP: reload failed"),
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::CacheAdmin;
    use crate::dns::{Clock, Outcome, Question};
    use crate::resolver::machine::MinimiseMode;
    use crate::resolver::ResolverConfig;
    use crate::transport::scripted::{self as s, Script, Scripted};
    use hickory_proto::rr::RecordType;

    /// Warm restart (`--cache-file`) in one process on one manual clock: what the stopping
    /// resolver saves, the starting one loads with the time that passed between taken off
    /// the TTLs, and answers without asking upstream. Paused time, so the TTL is exact (the
    /// `serve` test in tests/ops.rs covers the signals and the file, without a wait).
    #[tokio::test(start_paused = true)]
    async fn a_warm_restart_takes_off_the_time_that_passed() {
        let clock = Clock::manual();
        let resolver = |w: &Arc<Scripted>| {
            let mut config = ResolverConfig::new(s::root_hints("10.0.0.1"));
            config.settings.ipv6 = false;
            config.settings.minimise = MinimiseMode::Off;
            config.clock = clock.clone();
            Resolver::new(config, w.clone())
        };
        let www = Question::new(Name::from_ascii("www.example.").unwrap(), RecordType::A);
        let up = Arc::new(Scripted::new());
        up.default_for(
            "10.0.0.1",
            Script::Reply(s::answer(vec![s::rec(
                "www.example.",
                300,
                s::a("192.0.2.1"),
            )])),
        );
        let first = ResolverCache(resolver(&up));
        assert!(matches!(
            first.0.resolve(&www).await,
            Outcome::Answer { .. }
        ));
        let dir = std::env::temp_dir().join(format!("hopdns-warm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("cache");
        assert!(first.dump(&file).unwrap() >= 1);

        clock.advance(std::time::Duration::from_secs(3));
        let silent = Arc::new(Scripted::new());
        let second = ResolverCache(resolver(&silent));
        assert!(second.load(&file).unwrap() >= 1);
        let _ = std::fs::remove_dir_all(&dir);
        match second.0.resolve(&www).await {
            Outcome::Answer { answers } => assert_eq!(answers[0].ttl, 297, "{answers:?}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(silent.seen(), vec![], "answered from the loaded cache");
    }
}
