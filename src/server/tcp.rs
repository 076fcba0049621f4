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
//! * At most `max_tcp_clients` connections per listener (a `Semaphore`); further clients
//!   wait in the kernel's accept backlog.
//! * Accept errors (EMFILE, ENFILE, ECONNABORTED, ...) back off briefly instead of ending
//!   the loop.
//!
//! TCP replies are never truncated ([`request`] sizes them up to 65535 bytes).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, trace};

use super::request::{self, Proto};
use super::Shared;

/// First pause after a failed accept, doubled up to [`MAX_ACCEPT_BACKOFF`].
const MIN_ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

pub(super) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    token: CancellationToken,
    tasks: TaskTracker,
) {
    let local = listener.local_addr().ok();
    let slots = Arc::new(Semaphore::new(shared.max_tcp_clients));
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
        // Replies are written whole; Nagle would only delay them.
        let _ = stream.set_nodelay(true);
        let (shared, token) = (shared.clone(), token.clone());
        tasks.spawn(connection(stream, peer, permit, shared, token));
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
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    _permit: OwnedSemaphorePermit,
    shared: Arc<Shared>,
    token: CancellationToken,
) {
    trace!(%peer, "TCP connection opened");
    let close = tokio::select! {
        _ = token.cancelled() => {
            trace!(%peer, "TCP connection closed: shutting down");
            return;
        }
        close = serve_connection(stream, peer, &shared) => close,
    };
    match close {
        Close::Peer(error) => trace!(%peer, %error, "TCP connection closed by the client"),
        Close::Idle => trace!(%peer, "TCP connection closed: idle"),
        Close::Stalled => debug!(%peer, "TCP connection closed: message or reply stalled"),
    }
}

async fn serve_connection(mut stream: TcpStream, peer: SocketAddr, shared: &Shared) -> Close {
    let limit = shared.tcp_idle_timeout;
    let (reader, mut writer) = stream.split();
    // Buffered so pipelined queries cost one read, not two per message.
    let mut reader = BufReader::new(reader);
    let mut message = Vec::new();
    loop {
        let mut prefix = [0u8; 2];
        match timeout(limit, reader.read_exact(&mut prefix)).await {
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

        let Some(reply) = request::handle(
            &message,
            peer,
            Proto::Tcp,
            &shared.policy,
            &*shared.answerer,
        )
        .await
        else {
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
