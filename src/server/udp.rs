//! One UDP worker: its own `SO_REUSEPORT` socket, a receive loop that never waits on
//! resolution, and one task per query that needs the answerer.
//!
//! The loop reads into one reusable 64 KiB buffer and runs the cheap synchronous checks
//! ([`request::triage`]) in place: malformed or refused queries are answered at once with
//! a non-blocking send (dropped if the socket buffer is full, as under overload), and only
//! queries for the answerer get a task. Tasks are capped per worker; over the cap the query
//! is dropped and the client retries (RFC 1035 §4.2.1: UDP is best effort; a recursive
//! resolver under load drops rather than queues). Replies are sized by [`request`]
//! (512 bytes, or the EDNS payload of RFC 6891 §6.2.5, with TC=1 beyond).
//!
//! Receive errors never end the loop: ICMP-induced `ECONNREFUSED`/`ECONNRESET` from an
//! earlier send are skipped, anything else backs off briefly.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, trace};

use super::request::{self, Proto, Triage};
use super::Shared;

/// Largest UDP payload that can arrive (65535 minus the 8-byte UDP and 20-byte IP headers).
const RECV_BUFFER: usize = 65_507;
/// Queries awaiting the answerer per worker. Beyond this, datagrams are dropped.
const MAX_IN_FLIGHT: usize = 4096;
/// Pause after an unexpected receive error, doubled up to [`MAX_ERROR_BACKOFF`].
const MIN_ERROR_BACKOFF: Duration = Duration::from_millis(5);
const MAX_ERROR_BACKOFF: Duration = Duration::from_millis(500);

pub(super) async fn serve(
    socket: UdpSocket,
    worker: usize,
    shared: Arc<Shared>,
    token: CancellationToken,
    tasks: TaskTracker,
) {
    let socket = Arc::new(socket);
    let local = socket.local_addr().ok();
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut buf = vec![0u8; RECV_BUFFER];
    let mut backoff = MIN_ERROR_BACKOFF;
    debug!(?local, worker, "UDP worker started");

    loop {
        let received = tokio::select! {
            biased;
            _ = token.cancelled() => break,
            received = socket.recv_from(&mut buf) => received,
        };
        let (len, client) = match received {
            Ok(received) => {
                backoff = MIN_ERROR_BACKOFF;
                received
            }
            Err(error) if is_transient(&error) => {
                trace!(?local, %error, "UDP receive error (ignored)");
                continue;
            }
            Err(error) => {
                debug!(?local, %error, ?backoff, "UDP receive error; backing off");
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_ERROR_BACKOFF);
                continue;
            }
        };
        shared.stats.count_udp(worker);

        let Some(bytes) = buf.get(..len) else {
            continue;
        };
        match request::triage(bytes, client, Proto::Udp, &shared.policy) {
            Triage::Drop => {}
            Triage::Reply(reply) => send_now(&socket, &reply, client),
            Triage::Ask(req) => {
                let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                    debug!(?local, %client, "too many queries in flight; dropping");
                    continue;
                };
                let (socket, shared, token) = (socket.clone(), shared.clone(), token.clone());
                tasks.spawn(async move {
                    let _permit = permit;
                    let outcome = tokio::select! {
                        _ = token.cancelled() => return,
                        outcome = shared.answerer.answer(req.question(), client) => outcome,
                    };
                    if let Some(reply) = request::respond(&req, &outcome, &shared.policy) {
                        if let Err(error) = socket.send_to(&reply, client).await {
                            debug!(%client, %error, "UDP send failed");
                        }
                    }
                });
            }
        }
    }
    debug!(?local, worker, "UDP worker stopped");
}

/// Sends without waiting: the receive loop must not stall on a full socket buffer.
fn send_now(socket: &UdpSocket, reply: &[u8], client: SocketAddr) {
    if let Err(error) = socket.try_send_to(reply, client) {
        debug!(%client, %error, "UDP send failed");
    }
}

/// Errors that describe an earlier datagram (ICMP unreachable, reset) or a signal, not the
/// socket: receive again at once.
fn is_transient(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}
