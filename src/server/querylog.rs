//! The query log (`--query-log`, off by default): one line per reply sent, at INFO under the
//! tracing target `hopdns::query`, so it goes wherever the other logs go, in text or JSON.
//!
//! Fields: `client` (address, or with `--query-log-hash-clients` a keyed hash of the IP so
//! one client's queries can be told apart without recording who it is; the key is random
//! per process, so hashes do not link across restarts), `name`, `qtype`, `rcode`, `proto`
//! (`udp`, `tcp`), `tc`, `bytes`, `cache` (`hit`, `miss`, `joined`, `-`), `upstream`
//! (queries sent to authorities), `latency_ms`, `rule` and `action` (the redirect rule that
//! answered, `-` for none) and `blocked`. Only the reply's header and question are decoded;
//! the rest comes from the query's note ([`crate::metrics::note`]).
//!
//! With `--query-log-file`, lines go to that file as JSON (with a `timestamp`) instead of
//! the log; SIGHUP and `ctl reload` reopen it, for logrotate.
//!
//! A [`ReplyTap`] (the dashboard's query log ring, `--web`) hears every reply with the same
//! fields, with or without log lines: `serve --web` opens a tap-only query log when
//! `--query-log` is off. Without a tap and without lines there is no `QueryLog` at all, so
//! replies pay nothing.

use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, RandomState};
use std::io::{LineWriter, Write};
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Header, Query};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use super::Proto;

/// Tracing target of query log lines.
pub const TARGET: &str = "hopdns::query";

#[derive(Clone, Debug)]
pub struct QueryLog {
    /// Set when client addresses are hashed; the hasher holds the per-process key.
    hasher: Option<RandomState>,
    /// `--query-log-file`: JSON lines to a file of their own instead of the log.
    file: Option<Arc<LogFile>>,
    /// Write lines (to the log or the file): false for a tap-only log.
    lines: bool,
    /// Who else hears every reply (the dashboard).
    tap: Option<Arc<dyn ReplyTap>>,
}

/// One reply as the query log sees it: what a [`ReplyTap`] is handed. Borrowed, so a tap
/// copies only what it keeps.
#[derive(Clone, Debug)]
pub struct Logged<'a> {
    /// The client as the log shows it (hashed with `--query-log-hash-clients`).
    pub client: &'a str,
    pub name: &'a str,
    pub qtype: &'a str,
    pub rcode: &'static str,
    pub proto: &'static str,
    pub tc: bool,
    pub bytes: usize,
    /// `hit`, `miss`, `joined` or `-` ([`crate::metrics::note::Note::cache`]).
    pub cache: &'static str,
    pub upstream: u32,
    pub latency_ms: f64,
    /// The redirect rule that answered (`pattern (origin)`), if one did.
    pub rule: Option<&'a str>,
    /// Its action, as the metrics name it.
    pub action: Option<&'static str>,
    /// The action withholds the answer (block, sinkhole, nodata, drop).
    pub blocked: bool,
}

/// Hears every reply the query log sees (called on the sending task: keep it short).
pub trait ReplyTap: Send + Sync + std::fmt::Debug {
    fn reply(&self, logged: &Logged<'_>);
}

/// The query log's own file, reopened on SIGHUP (and `ctl reload`) so logrotate can move
/// it away.
#[derive(Debug)]
struct LogFile {
    path: PathBuf,
    out: Mutex<LineWriter<File>>,
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

impl QueryLog {
    pub fn new(hash_clients: bool) -> Self {
        Self {
            hasher: hash_clients.then(RandomState::new),
            file: None,
            lines: true,
            tap: None,
        }
    }

    /// A query log that writes no lines and only feeds `tap` (`--web` without
    /// `--query-log`).
    pub fn tap_only(hash_clients: bool, tap: Arc<dyn ReplyTap>) -> Self {
        Self {
            lines: false,
            ..Self::new(hash_clients).with_tap(tap)
        }
    }

    /// Also hands every reply to `tap`.
    pub fn with_tap(mut self, tap: Arc<dyn ReplyTap>) -> Self {
        self.tap = Some(tap);
        self
    }

    /// Lines go to `path` (appended; created 0640) instead of the log.
    pub fn to_file(mut self, path: &Path) -> Result<Self, String> {
        let file =
            open_append(path).map_err(|e| format!("query log file {}: {e}", path.display()))?;
        self.file = Some(Arc::new(LogFile {
            path: path.to_path_buf(),
            out: Mutex::new(LineWriter::new(file)),
        }));
        Ok(self)
    }

    /// Whether lines go to a file of their own.
    pub fn has_file(&self) -> bool {
        self.file.is_some()
    }

    /// Opens the file again at its path (after logrotate renamed it); `None` without one.
    pub fn reopen(&self) -> Option<Result<String, String>> {
        let f = self.file.as_ref()?;
        Some(match open_append(&f.path) {
            Ok(file) => {
                let mut out = f.out.lock().unwrap_or_else(|e| e.into_inner());
                let _ = out.flush();
                *out = LineWriter::new(file);
                Ok(format!("query log {} reopened", f.path.display()))
            }
            Err(e) => Err(format!(
                "query log {}: {e}; still writing the old file",
                f.path.display()
            )),
        })
    }

    /// How `client` appears in the log.
    pub fn client(&self, client: SocketAddr) -> String {
        match &self.hasher {
            Some(h) => format!("{:016x}", h.hash_one(client.ip().to_canonical())),
            None => client.ip().to_canonical().to_string(),
        }
    }

    /// Logs one encoded reply to `client`. `fast_hit`: it came from the UDP fast path (a
    /// cache hit, answered in the receive loop with no note open).
    pub fn reply(&self, reply: &[u8], client: SocketAddr, proto: Proto, fast_hit: bool) {
        let mut decoder = BinDecoder::new(reply);
        let Ok(header) = Header::read(&mut decoder) else {
            return;
        };
        let query = (header.counts.queries > 0)
            .then(|| Query::read(&mut decoder).ok())
            .flatten();
        let (name, qtype) = match &query {
            Some(q) => (q.name.to_string(), q.query_type.to_string()),
            None => ("-".to_string(), "-".to_string()),
        };
        let rcode = crate::metrics::rcode_name(u16::from(header.metadata.response_code));
        let proto = proto.name();
        let note = crate::metrics::note::current();
        let (cache, upstream, latency_ms, rule, action) = match &note {
            Some(n) => (
                n.cache(),
                n.upstream.load(std::sync::atomic::Ordering::Relaxed),
                (n.start.elapsed().as_micros() as f64 / 1000.0),
                n.rule.clone().unwrap_or_else(|| "-".into()),
                n.action.unwrap_or("-"),
            ),
            None if fast_hit => ("hit", 0, 0.0, "-".into(), "-"),
            None => ("-", 0, 0.0, "-".into(), "-"),
        };
        let blocked = crate::metrics::RULE_ACTIONS
            .iter()
            .any(|(a, b)| *b && *a == action);
        let client = self.client(client);
        if let Some(tap) = &self.tap {
            tap.reply(&Logged {
                client: &client,
                name: &name,
                qtype: &qtype,
                rcode,
                proto,
                tc: header.metadata.truncation,
                bytes: reply.len(),
                cache,
                upstream,
                latency_ms,
                rule: (rule != "-").then_some(rule.as_str()),
                action: (action != "-").then_some(action),
                blocked,
            });
        }
        if !self.lines {
            return;
        }
        if let Some(f) = &self.file {
            let line = serde_json::json!({
                "timestamp": humantime_now(),
                "client": client,
                "name": name,
                "qtype": qtype,
                "rcode": rcode,
                "proto": proto,
                "tc": header.metadata.truncation,
                "bytes": reply.len(),
                "cache": cache,
                "upstream": upstream,
                "latency_ms": latency_ms,
                "rule": rule,
                "action": action,
                "blocked": blocked,
            });
            let mut out = f.out.lock().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(out, "{line}");
            return;
        }
        tracing::info!(
            target: TARGET,
            client = %client,
            name = %name,
            qtype = %qtype,
            rcode = %rcode,
            proto = proto,
            tc = header.metadata.truncation,
            bytes = reply.len(),
            cache = cache,
            upstream = upstream,
            latency_ms = latency_ms,
            rule = %rule,
            action = action,
            blocked = blocked,
            "query"
        );
    }
}

/// Seconds since the epoch with microseconds, for the query log file's lines.
fn humantime_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| (d.as_micros() as f64) / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_clients_are_stable_within_a_process_and_hide_the_address() {
        let log = QueryLog::new(true);
        let a: SocketAddr = "192.0.2.7:4000".parse().unwrap();
        let b: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        assert_eq!(log.client(a), log.client(b), "same host, any port");
        assert!(!log.client(a).contains("192.0.2.7"));
        assert_eq!(QueryLog::new(false).client(a), "192.0.2.7");
    }
}
