//! The dashboard's listener: HTTP/1.1 by hyper (HTTPS with rustls when a certificate is
//! given), hardened as the DNS front end treats stream clients.
//!
//! * Admission: the DNS listeners' allow-list (`--allow`; loopback always): anyone else
//!   gets one 403 and the connection closes, without taking a connection slot.
//! * At most [`MAX_CONNECTIONS`] connections (the oldest is closed to make room, as the
//!   metrics endpoint does) and [`MAX_PER_CLIENT`] from one address (more are closed at
//!   once), so idle connections can neither use up descriptors nor lock the operator out.
//! * Timeouts: [`TLS_HANDSHAKE_TIMEOUT`] for the handshake, [`HEADER_TIMEOUT`] to send a
//!   request head (at most [`MAX_HEAD`] bytes), [`BODY_TIMEOUT`] for a body of at most
//!   [`MAX_BODY`] bytes (413 past it), and [`IDLE_TIMEOUT`] with no request and no event
//!   sent (an event stream whose reader stalls is closed too).
//! * Every response carries the security headers ([`secure`]): a CSP of `default-src
//!   'self'` with `frame-ancestors 'none'`, `X-Content-Type-Options: nosniff`, no
//!   referrer, no caching.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::Dashboard;

/// A response body: a whole one or an event stream.
pub type Body = BoxBody<Bytes, Infallible>;

/// Connections held at once (a few browsers with an event stream each, plus scripts).
pub const MAX_CONNECTIONS: usize = 64;
/// Connections from one address at once (a browser opens six per host).
pub const MAX_PER_CLIENT: usize = 16;
/// A keep-alive connection with nothing in hand is closed after this.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Time a client has to send a request head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head (hyper's read buffer).
pub const MAX_HEAD: usize = 16 << 10;
/// Largest request body: the API's bodies are a few short fields.
pub const MAX_BODY: usize = 4096;
/// Time a client has to send its body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a client has to finish the TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The Content-Security-Policy of every response: nothing from elsewhere, no framing, no
/// inline script (the page has none).
const CSP: &str = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Why the dashboard cannot listen. Messages name the address and the fix.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error(
        "the dashboard address {addr} is already in use: another program (a second hopdns? \
         a web server?) listens there; stop it or choose another --web address"
    )]
    InUse { addr: SocketAddr },
    #[error(
        "the dashboard on port {} needs root or CAP_NET_BIND_SERVICE: use a port above 1023 \
         (e.g. --web 127.0.0.1:8053)",
        addr.port()
    )]
    Privileged { addr: SocketAddr },
    #[error(
        "{} is not an address of this machine (--web {addr}): choose one shown by `ip \
         address`, or 127.0.0.1",
        addr.ip()
    )]
    NotLocal { addr: SocketAddr },
    #[error("cannot listen for the dashboard on {addr}: {source} (choose another --web address)")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl WebError {
    fn from_io(addr: SocketAddr, source: std::io::Error) -> Self {
        match source.kind() {
            std::io::ErrorKind::AddrInUse => WebError::InUse { addr },
            std::io::ErrorKind::PermissionDenied => WebError::Privileged { addr },
            std::io::ErrorKind::AddrNotAvailable => WebError::NotLocal { addr },
            _ => WebError::Bind { addr, source },
        }
    }
}

/// Binds `addr` and lets it go: what `hopdns config check` does to find an address that
/// is taken before `serve` runs.
pub fn probe(addr: SocketAddr) -> Result<(), WebError> {
    std::net::TcpListener::bind(addr)
        .map(drop)
        .map_err(|e| WebError::from_io(addr, e))
}

/// The open connections, oldest first, each with the token that closes it, and how many
/// each address holds.
#[derive(Default)]
struct Open {
    order: VecDeque<(u64, CancellationToken)>,
    per_client: HashMap<IpAddr, usize>,
}

/// Binds now (so errors come before serving), starts the sampler, and serves until
/// `shutdown`. Returns the bound address and the task.
pub async fn serve_web(
    dash: Arc<Dashboard>,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), WebError> {
    let addr = dash.config.addr;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| WebError::from_io(addr, e))?;
    let local = listener.local_addr().unwrap_or(addr);
    let sampler = dash.collector.spawn_sampler(shutdown.clone());
    let tls = dash
        .config
        .tls
        .as_ref()
        .map(|c| tokio_rustls::TlsAcceptor::from(c.server_config(&[b"http/1.1"])));
    let open: Arc<Mutex<Open>> = Arc::default();
    let task = tokio::spawn(async move {
        let mut next_id = 0u64;
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(error) => {
                    tracing::debug!(%error, "dashboard accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if !dash.config.acl.allows(peer.ip()) {
                // Outside the allow-list: one 403 and close, within a short deadline, and
                // no slot taken from the clients that are allowed.
                let dash = dash.clone();
                tokio::spawn(async move {
                    let refuse = refuse(stream, peer, dash);
                    let _ = tokio::time::timeout(HEADER_TIMEOUT, refuse).await;
                });
                continue;
            }
            let ip = peer.ip().to_canonical();
            next_id += 1;
            let (id, token) = (next_id, shutdown.child_token());
            {
                let mut open = open.lock().unwrap_or_else(|e| e.into_inner());
                let mine = open.per_client.entry(ip).or_default();
                if *mine >= MAX_PER_CLIENT {
                    tracing::debug!(%peer, "dashboard: too many connections from one client");
                    continue;
                }
                *mine += 1;
                if open.order.len() >= MAX_CONNECTIONS {
                    if let Some((_, oldest)) = open.order.pop_front() {
                        tracing::debug!(
                            "dashboard: {MAX_CONNECTIONS} connections open; closing the oldest"
                        );
                        oldest.cancel();
                    }
                }
                open.order.push_back((id, token.clone()));
            }
            let (dash, open, tls) = (dash.clone(), open.clone(), tls.clone());
            tokio::spawn(async move {
                let _ = stream.set_nodelay(true);
                match tls {
                    None => connection(stream, peer, true, dash, token).await,
                    Some(acceptor) => {
                        let handshake =
                            tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                        tokio::select! {
                            _ = token.cancelled() => {}
                            done = handshake => match done {
                                Ok(Ok(tls)) => connection(tls, peer, true, dash, token).await,
                                Ok(Err(error)) => tracing::debug!(%peer, %error, "dashboard TLS handshake failed"),
                                Err(_) => tracing::debug!(%peer, "dashboard TLS handshake timed out"),
                            }
                        }
                    }
                }
                let mut open = open.lock().unwrap_or_else(|e| e.into_inner());
                open.order.retain(|(other, _)| *other != id);
                if let Some(n) = open.per_client.get_mut(&ip) {
                    *n -= 1;
                    if *n == 0 {
                        open.per_client.remove(&ip);
                    }
                }
            });
        }
        let _ = sampler.await;
    });
    Ok((local, task))
}

/// A client outside the allow-list: its first request gets 403 (over TLS when the
/// dashboard has a certificate), then the connection closes.
async fn refuse(stream: tokio::net::TcpStream, peer: SocketAddr, dash: Arc<Dashboard>) {
    tracing::debug!(%peer, "dashboard: client not in the allow-list");
    let tls = dash.config.tls.clone();
    let stop = CancellationToken::new();
    match tls {
        None => connection(stream, peer, false, dash, stop).await,
        Some(certs) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(certs.server_config(&[b"http/1.1"]));
            if let Ok(tls) = acceptor.accept(stream).await {
                connection(tls, peer, false, dash, stop).await;
            }
        }
    }
}

/// When a connection last did something, for the idle timeout.
#[derive(Debug)]
pub struct Activity {
    last: Mutex<tokio::time::Instant>,
}

/// One request (or event stream) in hand: it marks the connection active when it starts,
/// when it ends, and (an event stream) at every event it sends.
#[derive(Debug)]
pub struct Busy(Arc<Activity>);

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            last: Mutex::new(tokio::time::Instant::now()),
        })
    }

    fn busy(self: &Arc<Self>) -> Busy {
        self.touch();
        Busy(self.clone())
    }

    fn touch(&self) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = tokio::time::Instant::now();
    }

    /// Resolves once the connection did nothing for [`IDLE_TIMEOUT`]: no request, and no
    /// event sent (a stream whose reader stopped reading stalls and is closed too). No
    /// request takes that long: bodies get [`BODY_TIMEOUT`], lookups and traces 10 s.
    async fn idle_out(&self) {
        loop {
            let deadline = *self.last.lock().unwrap_or_else(|e| e.into_inner()) + IDLE_TIMEOUT;
            if tokio::time::Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

impl Busy {
    /// Marks the connection active now.
    pub fn touch(&self) {
        self.0.touch();
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
    }
}

/// One connection: hyper serves requests until the client closes, it idles out, it is
/// closed to make room, or the server stops.
async fn connection<S>(
    io: S,
    peer: SocketAddr,
    allowed: bool,
    dash: Arc<Dashboard>,
    stop: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Activity::new();
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |request| {
            let (dash, busy) = (dash.clone(), activity.busy());
            async move {
                let mut response = if allowed {
                    super::api::route(request, peer, &dash, busy).await
                } else {
                    drop(busy);
                    error(
                        StatusCode::FORBIDDEN,
                        "your address is not in the allow-list of this resolver (--allow)",
                    )
                };
                secure(&mut response);
                Ok::<_, Infallible>(response)
            }
        })
    };
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .keep_alive(allowed)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    tokio::select! {
        served = connection.as_mut() => {
            if let Err(error) = served {
                tracing::debug!(%peer, %error, "dashboard connection failed");
            }
        }
        _ = stop.cancelled() => {}
        _ = activity.idle_out() => {}
    }
}

/// Adds the headers every response carries.
pub fn secure(response: &mut Response<Body>) {
    let h = response.headers_mut();
    let set = |h: &mut hyper::HeaderMap, name: &'static str, value: &'static str| {
        h.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    };
    set(h, "content-security-policy", CSP);
    set(h, "x-content-type-options", "nosniff");
    set(h, "x-frame-options", "DENY");
    set(h, "referrer-policy", "no-referrer");
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// A response of `status` with `body` of `content_type`.
pub fn respond(status: StatusCode, content_type: &'static str, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A JSON response.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    respond(status, "application/json", full(body))
}

/// A JSON error: `{"error": message}`.
pub fn error(status: StatusCode, message: &str) -> Response<Body> {
    json(status, &serde_json::json!({ "error": message }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::Controls;
    use crate::dns::Clock;
    use crate::resolver::{Resolver, ResolverConfig};
    use crate::server::Acl;
    use crate::transport::scripted::{self as s, Scripted};
    use crate::web::{Collector, Dashboard, Engine, WebConfig};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn dashboard() -> Arc<Dashboard> {
        dashboard_with(None)
    }

    fn dashboard_with(password_hash: Option<String>) -> Arc<Dashboard> {
        let resolver = Arc::new(Resolver::new(
            ResolverConfig::new(s::root_hints("10.0.0.1")),
            Arc::new(Scripted::new()),
        ));
        let engine = Engine {
            resolver: resolver.clone(),
            redirect: None,
            answerer: resolver,
            controls: Controls::default(),
            cold: None,
        };
        let config = WebConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            password_hash,
            tls: None,
            acl: Acl::default(),
        };
        Dashboard::new(config, Collector::new(1 << 20, Clock::system()), engine)
    }

    /// Sends `request` on a fresh in-memory connection and returns what came back.
    async fn exchange(allowed: bool, request: &[u8]) -> String {
        exchange_with(dashboard(), allowed, request).await
    }

    async fn exchange_with(dash: Arc<Dashboard>, allowed: bool, request: &[u8]) -> String {
        let (mut client, server) = tokio::io::duplex(64 << 10);
        let peer: SocketAddr = "192.0.2.7:40000".parse().unwrap();
        let task = tokio::spawn(connection(
            server,
            peer,
            allowed,
            dash,
            CancellationToken::new(),
        ));
        client.write_all(request).await.unwrap();
        let mut out = Vec::new();
        let _ = client.read_to_end(&mut out).await;
        task.await.unwrap();
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn clients_outside_the_allow_list_get_one_403_and_the_connection_closes() {
        // No `Connection: close`: the server closes it itself.
        let out = exchange(false, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(out.starts_with("HTTP/1.1 403"), "{out}");
        assert!(out.contains("allow-list"), "{out}");
        assert!(
            out.contains("content-security-policy: default-src 'self'"),
            "{out}"
        );
        let out = exchange(
            true,
            b"GET /api/session HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    }

    #[tokio::test]
    async fn bodies_and_heads_are_bounded() {
        let big = "x".repeat(MAX_BODY + 1);
        let request = format!(
            "POST /api/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{big}",
            big.len()
        );
        // With a password set, login reads the body (and refuses it before any hashing).
        let dash = dashboard_with(Some("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into()));
        let out = exchange_with(dash, true, request.as_bytes()).await;
        assert!(out.starts_with("HTTP/1.1 413"), "{out}");
        let head = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "y".repeat(MAX_HEAD)
        );
        let out = exchange(true, head.as_bytes()).await;
        assert!(out.starts_with("HTTP/1.1 431"), "{out}");
        let out = exchange(
            true,
            b"DELETE /api/session HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(
            out.starts_with("HTTP/1.1 405") && out.contains("allow: GET"),
            "{out}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_keep_alive_connection_is_closed() {
        let (mut client, server) = tokio::io::duplex(64 << 10);
        let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let task = tokio::spawn(connection(
            server,
            peer,
            true,
            dashboard(),
            CancellationToken::new(),
        ));
        client
            .write_all(b"GET /api/session HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 4096];
        let n = client.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        // Paused time: the idle timeout fires without a wait.
        tokio::time::timeout(IDLE_TIMEOUT * 2, task)
            .await
            .expect("closed after the idle timeout")
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn an_event_stream_lives_while_read_and_closes_when_its_reader_stalls() {
        let request = b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n";
        let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        // A reader that keeps reading: still open after six idle timeouts (100 ticks).
        let (mut client, server) = tokio::io::duplex(64 << 10);
        let task = tokio::spawn(connection(
            server,
            peer,
            true,
            dashboard(),
            CancellationToken::new(),
        ));
        client.write_all(request).await.unwrap();
        let reading = async {
            let mut buf = vec![0u8; 64 << 10];
            let mut ticks = 0;
            while ticks < 100 {
                let n = client.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed while read");
                ticks += String::from_utf8_lossy(&buf[..n])
                    .matches("event: tick")
                    .count();
            }
        };
        tokio::time::timeout(IDLE_TIMEOUT * 10, reading)
            .await
            .expect("ticks every 2 s");
        assert!(!task.is_finished());
        task.abort();
        // A reader that stops: the stream fills the pipe, stalls, and is closed.
        let (mut client, server) = tokio::io::duplex(4096);
        let task = tokio::spawn(connection(
            server,
            peer,
            true,
            dashboard(),
            CancellationToken::new(),
        ));
        client.write_all(request).await.unwrap();
        tokio::time::timeout(IDLE_TIMEOUT * 10, task)
            .await
            .expect("a stalled stream is closed")
            .unwrap();
    }
}
