//! The control room: `hopdns ctl` talks to a running `serve` over a Unix socket.
//!
//! * The socket is created owner-only (mode 0600) from the start: the umask is narrowed
//!   around `bind`. A stale socket left by a crash is replaced; a live one (another hopdns
//!   answering) is an error, and so is any other kind of file at the path (it is never
//!   deleted).
//! * One request per connection: a JSON object `{"command": "...", "arg": "..."}` on one
//!   line, answered by `{"ok": bool, "text": "..."}` on one line. JSON keeps names and file
//!   paths with spaces intact.
//! * What the commands act on is behind small traits, so rooms plug in without this module
//!   knowing them: [`CacheAdmin`] (flush, dump, load: the cache), [`Reloadable`] (`reload`
//!   and SIGHUP: the config's live settings now, the redirect rules when that layer lands)
//!   and the metrics' [`HealthSource`](crate::metrics::HealthSource) (`health`).
//!
//! Plugging in a room (the redirect layer, for instance): implement [`Reloadable`] for what
//! `reload` should re-read and push it onto [`Controls::reloaders`] where `serve` builds the
//! `Controls` (SIGHUP then reloads it too: there is one SIGHUP handler, in
//! `cli/serve_services.rs`); implement `HealthSource` and install it with
//! `metrics().set_health_source(Some(..))` for `ctl health` and `hopdns_pool_member_up`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::Name;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

/// Largest request line accepted.
const MAX_REQUEST: usize = 4096;
/// Time a client has to send its request (and the server to answer, on the client side).
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The commands, with their argument (for help and validation).
pub const COMMANDS: [(&str, Option<&str>, &str); 9] = [
    (
        "stats",
        None,
        "counters: replies, cache hits and misses, upstream, RRL",
    ),
    ("flush", Some("NAME"), "remove every cached entry for NAME"),
    (
        "flush-zone",
        Some("NAME"),
        "remove NAME and every name below it",
    ),
    ("flush-all", None, "empty the cache"),
    (
        "reload",
        None,
        "re-read the config file (and the redirect rules when present)",
    ),
    ("dump-cache", Some("FILE"), "write the cache to FILE"),
    (
        "load-cache",
        Some("FILE"),
        "add the entries of FILE to the cache",
    ),
    ("health", None, "state of every redirect pool member"),
    (
        "pause-blocking",
        Some("MINUTES"),
        "blocking rules answer as if absent for MINUTES (0 resumes)",
    ),
];

/// One request on the socket.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Request {
    pub command: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arg: Option<String>,
}

/// The answer to one request: `text` for people, `data` (the same facts as JSON values:
/// counters by name, pool members, entry counts) for `hopdns ctl --json` and scripts.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Response {
    pub ok: bool,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

impl Response {
    fn ok(text: impl Into<String>) -> Self {
        Self {
            ok: true,
            text: text.into(),
            data: None,
        }
    }

    fn err(text: impl Into<String>) -> Self {
        Self {
            ok: false,
            text: text.into(),
            data: None,
        }
    }

    fn with(mut self, data: serde_json::Value) -> Self {
        self.data = Some(data);
        self
    }
}

/// Something `reload` (and SIGHUP) refreshes. Returns a one-line report of what changed.
pub trait Reloadable: Send + Sync {
    /// What it is, for the report ("config", "redirect rules").
    fn name(&self) -> String;
    fn reload(&self) -> Result<String, String>;
}

/// The cache operations `ctl` offers (implemented by the resolver's cache).
pub trait CacheAdmin: Send + Sync {
    /// Entries removed.
    fn flush_name(&self, name: &Name) -> usize;
    fn flush_zone(&self, zone: &Name) -> usize;
    fn flush_all(&self) -> usize;
    /// Entries written.
    fn dump(&self, path: &Path) -> Result<usize, String>;
    /// Entries loaded (expired ones are skipped).
    fn load(&self, path: &Path) -> Result<usize, String>;
    /// Lines for `stats`.
    fn stats(&self) -> Vec<(String, u64)>;
}

/// Pausing the blocking rules (implemented by the redirect layer).
pub trait BlockingSwitch: Send + Sync {
    /// Pauses blocking for `minutes` (0 resumes); returns when blocking resumes (Unix
    /// seconds), `None` when it runs now. An error names the bound.
    fn pause(&self, minutes: u64) -> Result<Option<u64>, String>;
    /// When blocking resumes, while paused.
    fn paused_until(&self) -> Option<u64>;
}

/// What the control commands act on; built by `serve`.
#[derive(Default, Clone)]
pub struct Controls {
    pub cache: Option<Arc<dyn CacheAdmin>>,
    pub reloaders: Vec<Arc<dyn Reloadable>>,
    /// The redirect layer's pause of blocking (`None` without `--rules`).
    pub blocking: Option<Arc<dyn BlockingSwitch>>,
}

impl Controls {
    /// Runs one request.
    pub fn execute(&self, request: &Request) -> Response {
        let Some((_, takes, _)) = COMMANDS.iter().find(|(c, _, _)| *c == request.command) else {
            let known: Vec<&str> = COMMANDS.iter().map(|(c, _, _)| *c).collect();
            return Response::err(format!(
                "unknown command {:?}: use one of {}",
                request.command,
                known.join(", ")
            ));
        };
        let arg = request.arg.as_deref().unwrap_or("");
        match (takes, arg.is_empty()) {
            (Some(what), true) => {
                return Response::err(format!("{} needs {what}", request.command));
            }
            (None, false) => {
                return Response::err(format!("{} takes no argument", request.command));
            }
            _ => {}
        }
        match request.command.as_str() {
            "stats" => self.stats(),
            "health" => health(),
            "reload" => self.reload(),
            "pause-blocking" => self.pause_blocking(arg),
            cache_command => {
                let Some(cache) = &self.cache else {
                    return Response::err("this server has no cache to act on");
                };
                cache_op(&**cache, cache_command, arg)
            }
        }
    }

    fn stats(&self) -> Response {
        let mut lines: Vec<(String, u64)> = crate::metrics::metrics().summary();
        if let Some(cache) = &self.cache {
            lines.extend(cache.stats());
        }
        let text = lines
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join("\n");
        let data: serde_json::Map<String, serde_json::Value> =
            lines.into_iter().map(|(k, v)| (k, v.into())).collect();
        Response::ok(text).with(data.into())
    }

    /// `pause-blocking MINUTES`: blocking rules answer as if absent until the pause ends.
    pub fn pause_blocking(&self, arg: &str) -> Response {
        let Ok(minutes) = arg.trim().parse::<u64>() else {
            return Response::err(format!(
                "{arg:?} is not a number of minutes: give e.g. 5, or 0 to resume blocking"
            ));
        };
        let Some(switch) = &self.blocking else {
            return Response::err(
                "no redirect rules are loaded (serve --rules FILE): there is no blocking to \
                 pause",
            );
        };
        match switch.pause(minutes) {
            Ok(Some(until)) => Response::ok(format!(
                "blocking paused for {minutes} minutes (until Unix time {until})"
            ))
            .with(serde_json::json!({"paused_until": until})),
            Ok(None) => {
                Response::ok("blocking resumed").with(serde_json::json!({"paused_until": null}))
            }
            Err(e) => Response::err(e),
        }
    }

    /// Reloads everything reloadable; one line each. Also what SIGHUP does.
    pub fn reload(&self) -> Response {
        if self.reloaders.is_empty() {
            return Response::ok("nothing to reload: no config file and no redirect rules");
        }
        let mut ok = true;
        let mut lines = Vec::new();
        let mut data = Vec::new();
        for r in &self.reloaders {
            let (done, report) = match r.reload() {
                Ok(report) => (true, report),
                Err(error) => (false, error),
            };
            ok &= done;
            lines.push(if done {
                format!("{}: {report}", r.name())
            } else {
                format!("{}: not reloaded: {report}", r.name())
            });
            data.push(serde_json::json!({"name": r.name(), "ok": done, "report": report}));
        }
        Response {
            ok,
            text: lines.join("\n"),
            data: Some(data.into()),
        }
    }
}

fn health() -> Response {
    let members = crate::metrics::metrics().pool_health();
    if members.is_empty() {
        return Response::ok("no pools: no redirect pools are configured")
            .with(serde_json::json!([]));
    }
    let data: Vec<serde_json::Value> = members
        .iter()
        .map(|m| serde_json::json!({"pool": m.pool, "member": m.member, "up": m.healthy}))
        .collect();
    let text = members
        .iter()
        .map(|m| {
            let state = if m.healthy { "up" } else { "down" };
            format!("{} {} {state}", m.pool, m.member)
        })
        .collect::<Vec<_>>()
        .join("\n");
    Response::ok(text).with(data.into())
}

fn cache_op(cache: &dyn CacheAdmin, command: &str, arg: &str) -> Response {
    let name = || -> Result<Name, Response> {
        let mut n = Name::from_ascii(arg)
            .map_err(|e| Response::err(format!("{arg:?} is not a domain name: {e}")))?;
        n.set_fqdn(true);
        Ok(n.to_lowercase())
    };
    match command {
        "flush" => match name() {
            Ok(n) => {
                let k = cache.flush_name(&n);
                Response::ok(format!("flushed {k} entries for {n}"))
                    .with(serde_json::json!({"flushed": k, "name": n.to_string()}))
            }
            Err(r) => r,
        },
        "flush-zone" => match name() {
            Ok(n) => {
                let k = cache.flush_zone(&n);
                Response::ok(format!("flushed {k} entries at and below {n}"))
                    .with(serde_json::json!({"flushed": k, "zone": n.to_string()}))
            }
            Err(r) => r,
        },
        "flush-all" => {
            let k = cache.flush_all();
            Response::ok(format!("flushed {k} entries")).with(serde_json::json!({"flushed": k}))
        }
        "dump-cache" => match cache.dump(Path::new(arg)) {
            Ok(n) => Response::ok(format!("wrote {n} entries to {arg}"))
                .with(serde_json::json!({"entries": n, "file": arg})),
            Err(e) => Response::err(e),
        },
        "load-cache" => match cache.load(Path::new(arg)) {
            Ok(n) => Response::ok(format!("loaded {n} entries from {arg}"))
                .with(serde_json::json!({"entries": n, "file": arg})),
            Err(e) => Response::err(e),
        },
        other => Response::err(format!("unknown command {other:?}")),
    }
}

/// Why the control socket could not be set up or reached.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("another hopdns answers on the control socket {0}: stop it or choose another --control-socket")]
    InUse(PathBuf),
    #[error("{} exists and is not a socket: refusing to replace it; choose another --control-socket, or remove the file if it is not needed", .0.display())]
    NotASocket(PathBuf),
    #[error("cannot create the control socket {path}: {source} (does its directory exist and is it writable?)")]
    Bind {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot reach hopdns at {path}: {source} (is `hopdns serve --control-socket {path}` running, and may you open the socket?)", path = .path.display())]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("control socket {path}: {message}")]
    Protocol { path: PathBuf, message: String },
}

/// Binds the control socket at `path` (mode 0600) and serves requests until `shutdown`;
/// the socket file is removed when it stops.
pub async fn serve_control(
    path: &Path,
    controls: Arc<Controls>,
    shutdown: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, ControlError> {
    let bind_err = |source| ControlError::Bind {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            use std::os::unix::fs::FileTypeExt;
            // Only a socket (a stale one, left by a crash) may be replaced: anything else at
            // the path is someone's file (issue 11.6: it was deleted).
            if !meta.file_type().is_socket() {
                return Err(ControlError::NotASocket(path.to_path_buf()));
            }
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(ControlError::InUse(path.to_path_buf()));
            }
            std::fs::remove_file(path).map_err(bind_err)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(bind_err(e)),
    }
    // Created owner-only from the start: the umask is narrowed around bind, so there is
    // no moment when the socket has a wider mode (a chmod after bind leaves one).
    let listener = {
        // SAFETY: umask only swaps the process's file-creation mask.
        let old = unsafe { libc::umask(0o177) };
        let bound = UnixListener::bind(path);
        // SAFETY: as above, restoring the previous mask.
        unsafe { libc::umask(old) };
        bound.map_err(bind_err)?
    };
    let mode = std::fs::metadata(path)
        .map_err(bind_err)?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        let _ = std::fs::remove_file(path);
        return Err(bind_err(std::io::Error::other(format!(
            "created with mode {:o}, not owner-only",
            mode & 0o777
        ))));
    }
    let path = path.to_path_buf();
    Ok(tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, _)) => {
                    let controls = controls.clone();
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(IO_TIMEOUT, session(stream, controls)).await;
                    });
                }
                Err(error) => {
                    tracing::debug!(%error, "control accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        let _ = std::fs::remove_file(&path);
    }))
}

async fn session(stream: UnixStream, controls: Arc<Controls>) -> std::io::Result<()> {
    let (reader, mut writer) = stream.into_split();
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(reader).take(MAX_REQUEST as u64);
    reader.read_line(&mut line).await?;
    let response = match serde_json::from_str::<Request>(line.trim()) {
        Ok(request) => {
            tracing::info!(command = %request.command, arg = ?request.arg, "control command");
            // Dump, load and flush walk the cache: keep them off the async workers.
            tokio::task::spawn_blocking(move || controls.execute(&request))
                .await
                .unwrap_or_else(|e| Response::err(format!("command failed: {e}")))
        }
        Err(e) => Response::err(format!("malformed request: {e}")),
    };
    let mut out = serde_json::to_string(&response).unwrap_or_default();
    out.push('\n');
    writer.write_all(out.as_bytes()).await?;
    writer.shutdown().await
}

/// Sends one request to the server at `path` and returns its answer (blocking: `ctl` is a
/// short-lived command).
pub fn request(path: &Path, request: &Request) -> Result<Response, ControlError> {
    let connect = |source| ControlError::Connect {
        path: path.to_path_buf(),
        source,
    };
    let protocol = |message: String| ControlError::Protocol {
        path: path.to_path_buf(),
        message,
    };
    let mut stream = std::os::unix::net::UnixStream::connect(path).map_err(connect)?;
    stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(connect)?;
    let mut line = serde_json::to_string(request).map_err(|e| protocol(e.to_string()))?;
    line.push('\n');
    stream.write_all(line.as_bytes()).map_err(connect)?;
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .map_err(|e| protocol(format!("no answer: {e}")))?;
    serde_json::from_str(answer.trim()).map_err(|e| protocol(format!("bad answer: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_requests_get_clear_answers() {
        let c = Controls::default();
        let r = c.execute(&Request {
            command: "nuke".into(),
            arg: None,
        });
        assert!(!r.ok && r.text.contains("use one of stats"), "{r:?}");
        let r = c.execute(&Request {
            command: "flush".into(),
            arg: None,
        });
        assert!(!r.ok && r.text.contains("needs NAME"), "{r:?}");
        let r = c.execute(&Request {
            command: "flush-all".into(),
            arg: None,
        });
        assert!(!r.ok && r.text.contains("no cache"), "{r:?}");
        let r = c.execute(&Request {
            command: "reload".into(),
            arg: None,
        });
        assert!(r.ok && r.text.contains("nothing to reload"), "{r:?}");
        let r = c.execute(&Request {
            command: "pause-blocking".into(),
            arg: Some("soon".into()),
        });
        assert!(!r.ok && r.text.contains("number of minutes"), "{r:?}");
        let r = c.execute(&Request {
            command: "pause-blocking".into(),
            arg: Some("5".into()),
        });
        assert!(!r.ok && r.text.contains("serve --rules"), "{r:?}");
    }
}
