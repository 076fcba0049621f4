//! The encrypted front ends' common half and DNS over TLS (RFC 7858).
//!
//! * Certificates ([`TlsCerts`]): a PEM chain and key, read at start and again on
//!   [`TlsCerts::reload`] (SIGHUP, `ctl reload`). The key is swapped atomically and read at
//!   each new handshake, so open connections keep theirs and nothing is dropped; a file
//!   with errors changes nothing.
//! * rustls with the *ring* provider: TLS 1.2 and 1.3, session resumption by stateful
//!   cache and stateless tickets (RFC 8446 §2.2, RFC 5077). ring rather than aws-lc-rs:
//!   no cmake/NASM at build time, a faster build on small machines, and every suite DoT
//!   and DoH clients offer (ECDHE with AES-GCM or ChaCha20).
//! * Admission of a connection ([`accept`]), in this order so that a refused client costs
//!   no handshake: the PROXY protocol v2 header when the peer is a trusted proxy
//!   ([`super::proxy`]), the allow-list (a refused client is closed at once), a slot in the
//!   TCP connection slots (the same caps as plain TCP: `max-tcp-clients`,
//!   `max-tcp-per-client`), then the handshake within `tls-handshake-timeout`. A connection
//!   in its handshake counts as idle, so with every slot open it gives way to a new client
//!   as an idle connection does.
//! * DoT connections: 2-byte framing as TCP (RFC 7858 §3.3), pipelined queries answered
//!   concurrently and replied to as they are ready, out of order (RFC 7766 §6.2.1.1), at
//!   most [`PIPELINE`] at once per connection; the idle timeout and its shortening under
//!   load are TCP's (RFC 7766 §6.2.3, RFC 7858 §3.4); replies padded on request (RFC 8467).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::HandshakeKind;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::timeout;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, trace};

use super::request::Proto;
use super::tcp::{self, Close, Slot};
use super::{Shared, Tokens};
use crate::metrics::ConnectionGuard;

/// Queries one DoT connection may have in hand at once (Knot Resolver's `tcp_pipeline`
/// default); past it the connection is not read until one is answered.
pub const PIPELINE: usize = 100;

/// Default time a client has to finish the TLS handshake (and send its PROXY header).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the certificate or key cannot be used. Messages name the file and the fix.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot read the certificate {path}: {reason} (give a PEM file with --tls-cert)")]
    Cert { path: PathBuf, reason: String },
    #[error("cannot read the private key {path}: {reason} (give a PEM file with --tls-key)")]
    Key { path: PathBuf, reason: String },
    #[error(
        "the private key {key} does not fit the certificate {cert}: {reason} (give the key \
         the certificate was issued for)"
    )]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

/// The server's certificate chain and key, swapped whole on reload.
#[derive(Debug)]
pub struct TlsCerts {
    cert: PathBuf,
    key: PathBuf,
    current: ArcSwap<CertifiedKey>,
}

impl TlsCerts {
    /// Reads the PEM chain and key now, so that errors come before serving.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<TlsCerts>, CertError> {
        let current = ArcSwap::from_pointee(read_pair(cert, key)?);
        Ok(Arc::new(TlsCerts {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current,
        }))
    }

    /// Reads the files again; new handshakes use them, open connections keep the old key.
    /// On an error the running pair stays.
    pub fn reload(&self) -> Result<String, String> {
        let pair = read_pair(&self.cert, &self.key).map_err(|e| e.to_string())?;
        self.current.store(Arc::new(pair));
        Ok(format!(
            "certificate {} and key {} re-read",
            self.cert.display(),
            self.key.display()
        ))
    }

    /// The rustls configuration for one front end, offering `alpn` (RFC 7301).
    pub(crate) fn server_config(self: &Arc<Self>, alpn: &[&[u8]]) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .expect("ring supports TLS 1.2 and 1.3")
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        // Stateless tickets for TLS 1.2 and 1.3 beside the default in-memory session cache:
        // resumption survives a full cache and costs the server no memory per client.
        match rustls::crypto::ring::Ticketer::new() {
            Ok(ticketer) => config.ticketer = ticketer,
            Err(error) => debug!(%error, "no TLS session tickets; resumption by cache only"),
        }
        Arc::new(config)
    }
}

impl ResolvesServerCert for TlsCerts {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

fn read_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, CertError> {
    let cert_error = |reason: String| CertError::Cert {
        path: cert.to_path_buf(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_error("no CERTIFICATE block in it".into()));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| CertError::Key {
        path: key.to_path_buf(),
        reason: e.to_string(),
    })?;
    let provider: CryptoProvider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain, private, &provider).map_err(|e| CertError::Mismatch {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        reason: e.to_string(),
    })
}

/// What the encrypted listeners share.
#[derive(Debug)]
pub(crate) struct Encrypted {
    pub(crate) dot: Arc<rustls::ServerConfig>,
    pub(crate) doh: Arc<rustls::ServerConfig>,
    pub(crate) handshake_timeout: Duration,
    /// Where DoH answers (RFC 8484 §6 leaves the path to the server).
    pub(crate) https_path: String,
}

/// A connection past admission and handshake.
pub(super) struct Admitted {
    pub(super) stream: TlsStream<TcpStream>,
    /// The client: the peer, or the address its trusted proxy named.
    pub(super) client: SocketAddr,
    pub(super) slot: Slot,
    pub(super) _open: ConnectionGuard,
}

/// The accept loop of one DoT or DoH listener: each connection is admitted and served on
/// a task of its own, so a slow handshake never holds the loop.
pub(super) async fn serve(
    listener: TcpListener,
    proto: Proto,
    shared: Arc<Shared>,
    tokens: Tokens,
    tasks: TaskTracker,
) {
    let local = listener.local_addr().ok();
    debug!(?local, %proto, "listener started");
    let mut backoff = tcp::MIN_ACCEPT_BACKOFF;
    while let Some((stream, peer)) = tcp::accept(&listener, &tokens.stop, &mut backoff).await {
        let (shared, tokens) = (shared.clone(), tokens.clone());
        tasks.spawn(async move {
            tokio::select! {
                _ = tokens.abort.cancelled() => {}
                _ = connection(stream, peer, proto, shared, tokens.stop.clone()) => {}
            }
        });
    }
    debug!(?local, %proto, "listener stopped");
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    proto: Proto,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    let Some(admitted) = accept(stream, peer, proto, &shared, &stop).await else {
        return;
    };
    let client = admitted.client;
    let close = match proto {
        Proto::Https => super::https::serve_connection(admitted, shared, stop).await,
        _ => serve_dot(admitted, shared, stop).await,
    };
    tcp::log_close(proto, client, close);
}

/// PROXY header, allow-list, slot and handshake, in that order (module docs).
async fn accept(
    mut stream: TcpStream,
    peer: SocketAddr,
    proto: Proto,
    shared: &Shared,
    stop: &CancellationToken,
) -> Option<Admitted> {
    let enc = shared.encrypted.as_deref()?;
    let deadline = tokio::time::Instant::now() + enc.handshake_timeout;
    let client = if shared.is_proxy(peer) {
        super::proxy::read_client(&mut stream, peer, proto, deadline).await?
    } else {
        peer
    };
    // The allow-list first: a refused client gets no handshake and holds no slot.
    if !shared.admits_stream(client, proto) {
        return None;
    }
    let slot = loop {
        if let Some(slot) = shared.tcp_slots.admit(client.ip()) {
            break slot;
        }
        tokio::select! {
            _ = stop.cancelled() => return None,
            _ = tokio::time::sleep_until(deadline) => {
                debug!(%client, %proto, "no connection slot free in time; closed");
                return None;
            }
            _ = shared.tcp_slots.changed() => {}
        }
    };
    // Idle until the handshake is done: when the slots are full, a client that stalls its
    // handshake gives way to a new one instead of holding a slot to the deadline.
    slot.idle();
    let _ = stream.set_nodelay(true);
    let open = crate::metrics::metrics().connection_opened(proto);
    let config = match proto {
        Proto::Https => enc.doh.clone(),
        _ => enc.dot.clone(),
    };
    let handshake = tokio_rustls::TlsAcceptor::from(config).accept(stream);
    let stream = tokio::select! {
        _ = stop.cancelled() => return None,
        _ = slot.evict.cancelled() => {
            crate::metrics::metrics().handshake_failed(proto);
            debug!(%client, %proto, "closed in the TLS handshake to make room");
            return None;
        }
        done = tokio::time::timeout_at(deadline, handshake) => match done {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                crate::metrics::metrics().handshake_failed(proto);
                debug!(%client, %proto, %error, "TLS handshake failed");
                return None;
            }
            Err(_) => {
                crate::metrics::metrics().handshake_failed(proto);
                debug!(%client, %proto, "TLS handshake not done in time; closed");
                return None;
            }
        },
    };
    let resumed = stream.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed);
    crate::metrics::metrics().handshake(proto, resumed);
    trace!(%client, %proto, resumed, "TLS connection open");
    Some(Admitted {
        stream,
        client,
        slot,
        _open: open,
    })
}

/// Activity of one connection, for its idle timeout.
pub(super) struct Activity {
    start: Instant,
    /// Milliseconds since `start` of the last query in or reply out.
    last: AtomicU64,
    /// The idle timeout the slot gave when the connection last went idle.
    idle: Mutex<Duration>,
}

impl Activity {
    pub(super) fn new(slot: &Slot) -> Self {
        Self {
            start: Instant::now(),
            last: AtomicU64::new(0),
            idle: Mutex::new(slot.idle()),
        }
    }

    /// A query came in: the connection is busy.
    pub(super) fn busy(&self, slot: &Slot) {
        slot.busy();
        self.touch();
    }

    /// Nothing in hand any more: idle from now, with the slot's timeout.
    pub(super) fn idle(&self, slot: &Slot) {
        *self.idle.lock().unwrap_or_else(|e| e.into_inner()) = slot.idle();
        self.touch();
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Relaxed);
    }

    /// Resolves when the connection has had nothing in hand (`in_hand() == 0`) and no
    /// traffic for its idle timeout (RFC 7766 §6.2.3).
    pub(super) async fn idle_out(&self, in_hand: impl Fn() -> usize) {
        loop {
            let last = self.last.load(Relaxed);
            let idle = *self.idle.lock().unwrap_or_else(|e| e.into_inner());
            let deadline = self.start + Duration::from_millis(last) + idle;
            tokio::time::sleep_until(deadline.into()).await;
            if in_hand() == 0 && self.last.load(Relaxed) == last {
                return;
            }
            if in_hand() > 0 {
                // Busy: look again a timeout later (a reply written moves `last` anyway).
                tokio::time::sleep(idle.max(tcp::MIN_IDLE_TIMEOUT)).await;
            }
        }
    }
}

/// One DoT connection (module docs): a reader that starts an answer per query, a writer
/// that sends replies as they come, and the idle watch.
async fn serve_dot(conn: Admitted, shared: Arc<Shared>, stop: CancellationToken) -> Close {
    let Admitted {
        stream,
        client,
        slot,
        _open,
    } = conn;
    let limit = shared.tcp_idle_timeout;
    let (reader, mut writer) = tokio::io::split(stream);
    let permits = Arc::new(Semaphore::new(PIPELINE));
    let activity = Activity::new(&slot);
    let (tx, mut rx) = mpsc::unbounded_channel::<(Vec<u8>, OwnedSemaphorePermit)>();
    let (slot, activity, stop_ref) = (&slot, &activity, &stop);

    // Owns the sender: once it is dropped, the writer ends after the last answer in hand.
    let mut read = Box::pin({
        let permits = permits.clone();
        async move {
            // Buffered so pipelined queries cost one read, not two per message.
            let mut reader = BufReader::new(reader);
            // Where a cache hit is written (the fast path: no task, no decode).
            let mut hit = vec![0u8; tcp::HIT_SLOT];
            loop {
                let mut prefix = [0u8; 2];
                let read = tokio::select! {
                    _ = stop_ref.cancelled() => return Close::Shutdown,
                    read = reader.read_exact(&mut prefix) => read,
                };
                if let Err(error) = read {
                    return Close::Peer(error);
                }
                let mut message = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
                match timeout(limit, reader.read_exact(&mut message)).await {
                    Err(_) => return Close::Stalled,
                    Ok(Err(error)) => return Close::Peer(error),
                    Ok(Ok(_)) => {}
                }
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return Close::Shutdown;
                };
                activity.busy(slot);
                if let Some(len) = tcp::cache_hit(&shared, &message, client, Proto::Tls, &mut hit) {
                    let _ = tx.send((hit[..len].to_vec(), permit));
                    continue;
                }
                let (shared, tx) = (shared.clone(), tx.clone());
                // Answered on a task of its own, so replies leave in the order they are
                // ready (RFC 7766 §6.2.1.1); bounded by the resolver's deadline.
                tokio::spawn(async move {
                    if let Some(reply) = tcp::answer(&shared, &message, client, Proto::Tls).await {
                        let _ = tx.send((reply, permit));
                    }
                });
            }
        }
    });
    let mut write = Box::pin(async {
        let mut framed = Vec::new();
        let mut held = Vec::new();
        while let Some(first) = rx.recv().await {
            // The replies ready now leave together: one write, one TLS record (up to
            // tcp::FLUSH_AT bytes), not one each.
            let mut next = Some(first);
            while let Some((reply, permit)) = next.take() {
                // request::handle never returns more than 65535 bytes for a stream transport.
                if u16::try_from(reply.len()).is_ok() {
                    tcp::push_framed(&mut framed, &reply);
                }
                held.push(permit);
                if framed.len() < tcp::FLUSH_AT {
                    next = rx.try_recv().ok();
                }
            }
            let written = timeout(limit, async {
                writer.write_all(&framed).await?;
                writer.flush().await
            })
            .await;
            framed.clear();
            match written {
                Err(_) => return Close::Stalled,
                Ok(Err(error)) => return Close::Peer(error),
                Ok(Ok(())) => {}
            }
            held.clear();
            if permits.available_permits() == PIPELINE {
                activity.idle(slot);
            }
        }
        Close::Shutdown
    });
    let in_hand = || PIPELINE - permits.available_permits();
    let close = tokio::select! {
        close = &mut read => close,
        close = &mut write => return close,
        _ = activity.idle_out(in_hand) => return Close::Idle,
        _ = slot.evict.cancelled() => return Close::Evicted,
    };
    // Nothing more is read; the replies in hand are still sent (a client may half-close
    // after its last query, RFC 7766 §6.2.3), within the idle timeout.
    drop(read);
    let _ = timeout(limit, write).await;
    close
}
