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
use std::net::{IpAddr, SocketAddr};
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

/// One reply as the query log sees it: what a [`ReplyTap`] is handed. Read from the
/// reply's bytes in place (no message decode, no allocation), so a tap costs the reply path
/// little; the tap copies only what it keeps.
#[derive(Clone, Debug)]
pub struct Logged<'a> {
    /// The client's address (an IPv4-mapped address as the IPv4 address it is).
    pub client: IpAddr,
    /// With `--query-log-hash-clients`: the keyed hash that replaces the address (the
    /// log's, so both show the same value).
    pub client_hash: Option<u64>,
    /// The question's name in presentation form, lowercase, with its trailing dot; `-`
    /// without a question.
    pub name: &'a str,
    /// The question's type code (0 without a question).
    pub qtype: u16,
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

/// Longest presentation form of a name: 254 bytes of labels and lengths, each byte at
/// most four characters (`\DDD`, RFC 1035 §5.1).
const MAX_NAME_TEXT: usize = 1024;

/// The first question of `msg`: its name in presentation form (lowercase, trailing dot;
/// bytes other than letters, digits, `-`, `_` and `*` as `\DDD`, RFC 1035 §5.1) written
/// into `buf`, and its type. `None` without a question or for a question that does not
/// read (a compressed or truncated name).
pub fn question_text<'b>(msg: &[u8], buf: &'b mut [u8; MAX_NAME_TEXT]) -> Option<(&'b str, u16)> {
    use crate::dns::wire::u16_at;
    if u16_at(msg, 4)? == 0 {
        return None;
    }
    let (mut at, mut len) = (12usize, 0usize);
    loop {
        let n = usize::from(*msg.get(at)?);
        at += 1;
        if n == 0 {
            break;
        }
        if n > 63 {
            return None;
        }
        for &b in msg.get(at..at + n)? {
            if len + 5 > buf.len() {
                return None;
            }
            let b = b.to_ascii_lowercase();
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'*') {
                buf[len] = b;
                len += 1;
            } else {
                buf[len] = b'\\';
                buf[len + 1] = b'0' + b / 100;
                buf[len + 2] = b'0' + b / 10 % 10;
                buf[len + 3] = b'0' + b % 10;
                len += 4;
            }
        }
        buf[len] = b'.';
        len += 1;
        at += n;
    }
    if len == 0 {
        buf[0] = b'.';
        len = 1;
    }
    let qtype = u16_at(msg, at)?;
    Some((std::str::from_utf8(&buf[..len]).ok()?, qtype))
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
        if let Some(tap) = &self.tap {
            self.feed(&**tap, reply, client, proto, fast_hit);
        }
        if !self.lines {
            return;
        }
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

    /// Hands one reply to `tap`, read in place.
    fn feed(
        &self,
        tap: &dyn ReplyTap,
        reply: &[u8],
        client: SocketAddr,
        proto: Proto,
        fast_hit: bool,
    ) {
        let (Some(&flags), Some(&rcode)) = (reply.get(2), reply.get(3)) else {
            return;
        };
        let mut buf = [0u8; MAX_NAME_TEXT];
        let (name, qtype) = question_text(reply, &mut buf).unwrap_or(("-", 0));
        let note = crate::metrics::note::current();
        let (cache, upstream, latency_ms, rule, action) = match &note {
            Some(n) => (
                n.cache(),
                n.upstream.load(std::sync::atomic::Ordering::Relaxed),
                (n.start.elapsed().as_micros() as f64 / 1000.0),
                n.rule.as_deref(),
                n.action,
            ),
            None if fast_hit => ("hit", 0, 0.0, None, None),
            None => ("-", 0, 0.0, None, None),
        };
        let ip = client.ip().to_canonical();
        tap.reply(&Logged {
            client: ip,
            client_hash: self.hasher.as_ref().map(|h| h.hash_one(ip)),
            name,
            qtype,
            rcode: crate::metrics::rcode_name(u16::from(rcode & 0x0f)),
            proto: proto.name(),
            tc: flags & 0x02 != 0,
            bytes: reply.len(),
            cache,
            upstream,
            latency_ms,
            rule,
            action,
            blocked: action.is_some_and(|a| {
                crate::metrics::RULE_ACTIONS
                    .iter()
                    .any(|(name, block)| *block && *name == a)
            }),
        });
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
    fn question_text_is_lowercase_presentation_form() {
        let mut m = hickory_proto::op::Message::query();
        m.add_query(Query::query(
            hickory_proto::rr::Name::from_ascii("WwW.Ex\\.ample.COM.").unwrap(),
            hickory_proto::rr::RecordType::AAAA,
        ));
        let wire = m.to_vec().unwrap();
        let mut buf = [0u8; MAX_NAME_TEXT];
        assert_eq!(
            question_text(&wire, &mut buf),
            Some(("www.ex\\046ample.com.", 28))
        );
        let mut root = hickory_proto::op::Message::query();
        root.add_query(Query::query(
            hickory_proto::rr::Name::root(),
            hickory_proto::rr::RecordType::NS,
        ));
        let wire = root.to_vec().unwrap();
        assert_eq!(question_text(&wire, &mut buf), Some((".", 2)));
        assert_eq!(question_text(&wire[..12], &mut buf), None, "no question");
    }

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
