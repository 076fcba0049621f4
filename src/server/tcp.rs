//! DNS over TCP (RFC 1035 §4.2.2, RFC 7766): an accept loop with a connection cap, and one
//! task per connection that serves its queries in order.
//!
//! * Framing: each message is preceded by its length in two octets (RFC 1035 §4.2.2).
//! * Several queries per connection, including pipelined ones (RFC 7766 §6.2.1); they are
//!   answered one after the other, in the order received (allowed by RFC 7766 §6.2.1.1).
//!   No task per message, so one client cannot multiply its load.
//! * Timeouts (RFC 7766 §6.2.3): a connection waiting longer than the idle timeout for the
//!   next message is closed; so is one whose started message or whose reply does not move
//!   within that time (slow clients must not hold a slot).
//! * At most `max_tcp_clients` connections over all listeners (one `Semaphore`); further
//!   clients wait in the kernel's accept backlog. At most `max_tcp_per_client` from one
//!   client address ([`PerClient`]); a connection past that is closed at once, so one host
//!   cannot take every slot.
//! * Shutdown: a connection waiting for its next message closes at once; one whose query is
//!   being answered finishes it (within the server's drain time) and then closes.
//! * Accept errors (EMFILE, ENFILE, ECONNABORTED, ...) back off briefly instead of ending
//!   the loop.
//!
//! TCP replies are never truncated ([`request`] sizes them up to 65535 bytes).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, trace};

use super::request::{self, Proto};
use super::{Shared, Tokens};

/// First pause after a failed accept, doubled up to [`MAX_ACCEPT_BACKOFF`].
const MIN_ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Open connections per client address, with the cap.
#[derive(Debug)]
pub(crate) struct PerClient {
    max: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One counted connection; dropping it releases the client's slot.
struct ClientSlot {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerClient {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            open: Arc::default(),
        }
    }

    /// A slot for one more connection from `ip`, or `None` at the cap.
    fn enter(&self, ip: IpAddr) -> Option<ClientSlot> {
        let ip = ip.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            ip,
            open: self.open.clone(),
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

pub(super) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    tokens: Tokens,
    tasks: TaskTracker,
) {
    let token = tokens.stop.clone();
    let local = listener.local_addr().ok();
    let slots = shared.tcp_slots.clone();
    let mut backoff = MIN_ACCEPT_BACKOFF;
    debug!(?local, "TCP listener started");

    loop {
        let permit = tokio::select! {
            biased;
            _ = token.cancelled() => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break, // the semaphore is never closed
            },
        };
        let accepted = tokio::select! {
            biased;
            _ = token.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff = MIN_ACCEPT_BACKOFF;
                accepted
            }
            Err(error) => {
                debug!(?local, %error, ?backoff, "TCP accept failed; backing off");
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                continue;
            }
        };
        let Some(client_slot) = shared.tcp_per_client.enter(peer.ip()) else {
            debug!(%peer, "too many TCP connections from this client; closing");
            crate::metrics::metrics().tcp_refused();
            continue;
        };
        // Replies are written whole; Nagle would only delay them.
        let _ = stream.set_nodelay(true);
        let (shared, tokens) = (shared.clone(), tokens.clone());
        tasks.spawn(connection(
            stream,
            peer,
            (permit, client_slot),
            shared,
            tokens,
        ));
    }
    debug!(?local, "TCP listener stopped");
}

/// Why a connection ended.
#[derive(Debug)]
enum Close {
    /// The client closed it (EOF between messages) or reset it.
    Peer(std::io::Error),
    /// No new message within the idle timeout.
    Idle,
    /// A started message or a reply did not complete within the timeout.
    Stalled,
    /// The server is stopping.
    Shutdown,
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    _slots: (OwnedSemaphorePermit, ClientSlot),
    shared: Arc<Shared>,
    tokens: Tokens,
) {
    trace!(%peer, "TCP connection opened");
    let close = tokio::select! {
        _ = tokens.abort.cancelled() => {
            trace!(%peer, "TCP connection closed: drain time over");
            return;
        }
        close = serve_connection(stream, peer, &shared, &tokens.stop) => close,
    };
    match close {
        Close::Peer(error) => trace!(%peer, %error, "TCP connection closed by the client"),
        Close::Idle => trace!(%peer, "TCP connection closed: idle"),
        Close::Stalled => debug!(%peer, "TCP connection closed: message or reply stalled"),
        Close::Shutdown => trace!(%peer, "TCP connection closed: shutting down"),
    }
}

async fn serve_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
    stop: &CancellationToken,
) -> Close {
    let limit = shared.tcp_idle_timeout;
    let (reader, mut writer) = stream.split();
    // Buffered so pipelined queries cost one read, not two per message.
    let mut reader = BufReader::new(reader);
    let mut message = Vec::new();
    loop {
        let mut prefix = [0u8; 2];
        if stop.is_cancelled() {
            return Close::Shutdown;
        }
        let read = tokio::select! {
            _ = stop.cancelled() => return Close::Shutdown,
            read = timeout(limit, reader.read_exact(&mut prefix)) => read,
        };
        match read {
            Err(_) => return Close::Idle,
            Ok(Err(error)) => return Close::Peer(error),
            Ok(Ok(_)) => {}
        }
        let len = usize::from(u16::from_be_bytes(prefix));
        message.clear();
        message.resize(len, 0);
        match timeout(limit, reader.read_exact(&mut message)).await {
            Err(_) => return Close::Stalled,
            Ok(Err(error)) => return Close::Peer(error),
            Ok(Ok(_)) => {}
        }

        let answered = async {
            let mut reply = request::handle(
                &message,
                peer,
                Proto::Tcp,
                &shared.policy,
                &*shared.answerer,
            )
            .await?;
            shared
                .outgoing_vec(&mut reply, peer, Proto::Tcp)
                .then_some(reply)
        };
        // With the query log on, a note follows the query (rule, cache, latency).
        let answered = match shared.query_log {
            Some(_) => crate::metrics::note::scope(answered).await,
            None => answered.await,
        };
        let Some(reply) = answered else {
            continue;
        };
        // request::handle never returns more than 65535 bytes for TCP.
        let Ok(reply_len) = u16::try_from(reply.len()) else {
            debug!(%peer, len = reply.len(), "reply too long for TCP; dropped");
            continue;
        };
        let mut framed = Vec::with_capacity(reply.len() + 2);
        framed.extend_from_slice(&reply_len.to_be_bytes());
        framed.extend_from_slice(&reply);
        match timeout(limit, writer.write_all(&framed)).await {
            Err(_) => return Close::Stalled,
            Ok(Err(error)) => return Close::Peer(error),
            Ok(Ok(())) => {}
        }
    }
}
