//! DNS over TLS to forwarders (RFC 7858), with connections kept open and shared.
//!
//! * The server's certificate must chain to a trusted root and be valid for the name given
//!   in `tls://IP@NAME` (RFC 8310 §8.1, strict privacy profile): otherwise no query is
//!   sent, and the refusal is logged once per connection attempt with the server and name.
//! * Roots: the system's store, read through `rustls-native-certs` (the rustls project's
//!   crate; it reads the same files OpenSSL does, so the distribution's CA updates apply), or
//!   only the certificates of `--forward-ca-file` when it is given (a private CA).
//! * One connection per (server, name), shared by every query to it: queries are pipelined
//!   with distinct IDs and replies matched by ID in whatever order they come (RFC 7766 §6.2.1.1,
//!   RFC 7858 §3.3). A connection idle for [`IDLE_TIMEOUT`] is closed (RFC 7766 §6.2.3); at
//!   most [`MAX_CONNECTIONS`] are open, the least recently used closed first.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

use super::{matches_ignoring_case, TransportError};

/// An idle DoT connection is closed after this long (RFC 7766 §6.2.3 leaves it to the
/// client; Unbound keeps outgoing TCP/TLS streams 60 s by default, `tcp-reuse-timeout`).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// DoT connections open at once, all forwarders together (Unbound's `outgoing-tcp-mux`
/// pool is 1 stream per server, `max-reuse-tcp-queries` 200 queries on it).
pub const MAX_CONNECTIONS: usize = 64;
/// Queries waiting on one connection at once; past it a query waits for a fresh one.
pub const MAX_PIPELINED: usize = 256;

/// Why a TLS setup failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("--forward-ca-file {0}: {1}")]
    CaFile(String, String),
    #[error("no trusted root certificates: the system store is empty or unreadable ({0}); install ca-certificates or give --forward-ca-file")]
    NoRoots(String),
}

/// The DoT client: TLS settings and the pool of open connections.
pub struct TlsClient {
    connector: TlsConnector,
    pool: Mutex<HashMap<ConnKey, Arc<Conn>>>,
    /// Per server, held while its connection is being set up, so that queries arriving
    /// together share one new connection instead of each opening its own (a dead server's
    /// slow set-up holds up only its own queries).
    connecting: Mutex<HashMap<ConnKey, Arc<tokio::sync::Mutex<()>>>>,
    /// When each refusal was last logged at WARN: once a minute per server and name, the
    /// rest at DEBUG, so a misconfigured forwarder does not flood the log under load.
    warned: Mutex<HashMap<ConnKey, Instant>>,
}

/// Least time between two WARN lines about the same refused server.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// A connection is for one server address and one certificate name.
type ConnKey = (SocketAddr, Arc<str>);

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsClient")
    }
}

/// One open connection: a writer task fed by `tx`, a reader task that hands each reply to
/// the query waiting for its ID.
struct Conn {
    tx: mpsc::Sender<Vec<u8>>,
    pending: Mutex<HashMap<u16, oneshot::Sender<Vec<u8>>>>,
    closed: AtomicBool,
    stop: CancellationToken,
    used: Mutex<Instant>,
}

impl Conn {
    fn live(&self) -> bool {
        !self.closed.load(Ordering::Acquire)
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.stop.cancel();
        // Waiters see their sender dropped: a network error, at once.
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

impl TlsClient {
    /// A client trusting the certificates in `ca_file` (PEM), or the system's roots.
    pub fn new(ca_file: Option<&Path>) -> Result<Self, TlsSetupError> {
        let mut roots = RootCertStore::empty();
        match ca_file {
            Some(path) => {
                let shown = path.display().to_string();
                let certs = CertificateDer::pem_file_iter(path)
                    .map_err(|e| TlsSetupError::CaFile(shown.clone(), e.to_string()))?;
                for cert in certs {
                    let cert =
                        cert.map_err(|e| TlsSetupError::CaFile(shown.clone(), e.to_string()))?;
                    roots
                        .add(cert)
                        .map_err(|e| TlsSetupError::CaFile(shown.clone(), e.to_string()))?;
                }
                if roots.is_empty() {
                    return Err(TlsSetupError::CaFile(
                        shown,
                        "no PEM certificate in it".into(),
                    ));
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    let why = found
                        .errors
                        .first()
                        .map_or_else(|| "no certificate found".to_string(), |e| e.to_string());
                    return Err(TlsSetupError::NoRoots(why));
                }
            }
        }
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsSetupError::NoRoots(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            connector: TlsConnector::from(Arc::new(config)),
            pool: Mutex::new(HashMap::new()),
            connecting: Mutex::new(HashMap::new()),
            warned: Mutex::new(HashMap::new()),
        })
    }

    /// Sends `wire` (whose ID is patched to one free on the connection) to `server` and
    /// returns the matching reply, reusing an open connection when there is one. `reused`
    /// says which it was.
    pub(super) async fn exchange(
        &self,
        local: IpAddr,
        server: SocketAddr,
        name: &Arc<str>,
        query: &Query,
        wire: &[u8],
        timeout: Duration,
    ) -> Result<(Message, bool), TransportError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let (conn, reused) =
            match tokio::time::timeout_at(deadline, self.connection(local, server, name)).await {
                Ok(r) => r?,
                Err(_) => return Err(TransportError::Timeout),
            };
        let (id, rx) = {
            let mut pending = conn.pending.lock().unwrap_or_else(|e| e.into_inner());
            let mut id: u16 = rand::random();
            while pending.contains_key(&id) {
                id = rand::random();
            }
            let (tx, rx) = oneshot::channel();
            pending.insert(id, tx);
            (id, rx)
        };
        let mut framed = Vec::with_capacity(wire.len() + 2);
        let len = u16::try_from(wire.len())
            .map_err(|_| TransportError::Encode("query too long".into()))?;
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(wire);
        framed[2..4].copy_from_slice(&id.to_be_bytes());
        let forget = || {
            conn.pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
        };
        if conn.tx.send(framed).await.is_err() {
            forget();
            return Err(closed());
        }
        let reply = match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => return Err(closed()),
            Err(_) => {
                forget();
                return Err(TransportError::Timeout);
            }
        };
        match Message::from_vec(&reply) {
            Ok(msg) if matches_ignoring_case(&msg, id, query) => Ok((msg, reused)),
            Ok(_) => Err(TransportError::Malformed(
                "DoT reply with our ID but another question".into(),
            )),
            Err(e) => Err(TransportError::Malformed(e.to_string())),
        }
    }

    /// The open connection to (`server`, `name`), or a new one.
    async fn connection(
        &self,
        local: IpAddr,
        server: SocketAddr,
        name: &Arc<str>,
    ) -> Result<(Arc<Conn>, bool), TransportError> {
        let key = (server, name.clone());
        if let Some(c) = self.open(&key) {
            return Ok((c, true));
        }
        let gate = self
            .connecting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        let _one = gate.lock().await;
        // Another query may have connected while this one waited.
        if let Some(c) = self.open(&key) {
            return Ok((c, true));
        }
        let conn = self.connect(local, server, name).await?;
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        pool.retain(|_, c| c.live());
        while pool.len() >= MAX_CONNECTIONS {
            let oldest = pool
                .iter()
                .min_by_key(|(_, c)| *c.used.lock().unwrap_or_else(|e| e.into_inner()))
                .map(|(k, _)| k.clone());
            match oldest.and_then(|k| pool.remove(&k)) {
                Some(c) => c.close(),
                None => break,
            }
        }
        if let Some(old) = pool.insert(key, conn.clone()) {
            // Another query connected at the same time: the old one finishes its queries.
            drop(old);
        }
        Ok((conn, false))
    }

    /// An open connection for `key` with room for one more query.
    fn open(&self, key: &ConnKey) -> Option<Arc<Conn>> {
        let pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        let c = pool.get(key).filter(|c| c.live())?;
        let busy = c.pending.lock().unwrap_or_else(|e| e.into_inner()).len();
        if busy >= MAX_PIPELINED {
            return None;
        }
        *c.used.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        Some(c.clone())
    }

    async fn connect(
        &self,
        local: IpAddr,
        server: SocketAddr,
        name: &Arc<str>,
    ) -> Result<Arc<Conn>, TransportError> {
        let sni = ServerName::try_from(name.to_string()).map_err(|e| {
            TransportError::Tls(format!("{name:?} is not a valid TLS server name: {e}"))
        })?;
        let sock = match server {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        if !local.is_unspecified() {
            sock.bind(SocketAddr::new(local, 0))?;
        }
        let tcp = sock.connect(server).await?;
        let _ = tcp.set_nodelay(true);
        let tls = match self.connector.connect(sni, tcp).await {
            Ok(tls) => tls,
            Err(e) => {
                let now = Instant::now();
                let loud = {
                    let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
                    let key = (server, name.clone());
                    let last = warned.get(&key).copied();
                    let loud = last.is_none_or(|t| now.duration_since(t) >= WARN_EVERY);
                    if loud {
                        warned.insert(key, now);
                    }
                    loud
                };
                let msg =
                    "DNS over TLS: certificate or handshake refused; not asking this forwarder";
                if loud {
                    tracing::warn!(%server, tls_name = %name, error = %e, "{msg}");
                } else {
                    tracing::debug!(%server, tls_name = %name, error = %e, "{msg}");
                }
                return Err(TransportError::Tls(format!(
                    "TLS with {server} as {name} refused: {e}"
                )));
            }
        };
        tracing::debug!(%server, tls_name = %name, "DNS over TLS: new connection");
        let (mut rd, mut wr) = tokio::io::split(tls);
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(MAX_PIPELINED);
        let conn = Arc::new(Conn {
            tx,
            pending: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            stop: CancellationToken::new(),
            used: Mutex::new(Instant::now()),
        });
        let stop = conn.stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    frame = rx.recv() => match frame {
                        Some(frame) => {
                            if wr.write_all(&frame).await.is_err() || wr.flush().await.is_err() {
                                break;
                            }
                        }
                        None => break,
                    },
                }
            }
            // TLS close_notify, then FIN.
            let _ = wr.shutdown().await;
        });
        let reader = Arc::downgrade(&conn);
        tokio::spawn(async move {
            loop {
                let frame = tokio::time::timeout(IDLE_TIMEOUT, async {
                    let n = rd.read_u16().await? as usize;
                    let mut buf = vec![0u8; n];
                    rd.read_exact(&mut buf).await?;
                    Ok::<_, std::io::Error>(buf)
                })
                .await;
                let Some(conn) = reader.upgrade() else { break };
                match frame {
                    Ok(Ok(buf)) if buf.len() >= 12 => {
                        let id = u16::from_be_bytes([buf[0], buf[1]]);
                        let waiter = conn
                            .pending
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&id);
                        match waiter {
                            Some(w) => drop(w.send(buf)),
                            None => tracing::debug!("DoT reply for no pending query dropped"),
                        }
                    }
                    // Idle with nothing pending: close (RFC 7766 §6.2.3).
                    Err(_)
                        if conn
                            .pending
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .is_empty() =>
                    {
                        conn.close();
                        break;
                    }
                    Err(_) => {}
                    Ok(_) => {
                        conn.close();
                        break;
                    }
                }
            }
        });
        Ok(conn)
    }
}

fn closed() -> TransportError {
    TransportError::Io(std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "DNS over TLS connection closed",
    ))
}
