//! UDP exchange: a new socket on a random source port per query (RFC 5452 §9.2), connected to
//! the server so the kernel drops datagrams from elsewhere; we check the source again anyway.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, Query};
use tokio::net::UdpSocket;

use super::{matches, matches_ignoring_case, TransportError};

/// Largest reply datagram we read. We advertise 1232 bytes (EDNS) or 512 (without), so a
/// reply above 4096 breaks the protocol anyway: the kernel cuts it, it does not decode, and
/// the server is skipped. A small buffer matters under load: one per upstream query in
/// flight (thousands), where 64 KiB each would cost hundreds of MiB.
const RECV_BUF: usize = 4096;

/// Tries random ports in the unprivileged range before letting the kernel pick one.
const PORT_TRIES: usize = 8;

/// Sends `wire` and waits up to `timeout` for the reply that matches `id` and `query`.
/// With `exact_case` (0x20 in use) the question's name must come back with the case we sent;
/// without, it is compared without case (RFC 4343).
pub(super) async fn exchange(
    local: IpAddr,
    server: SocketAddr,
    id: u16,
    query: &Query,
    wire: &[u8],
    timeout: Duration,
    exact_case: bool,
) -> Result<Message, TransportError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let sock = bind_random(local).await?;
    sock.connect(server).await?;
    sock.send(wire).await?;
    // Capacity only: the kernel writes what arrives, so no buffer is zeroed (and faulted in)
    // per query.
    let mut buf = Vec::with_capacity(RECV_BUF);
    loop {
        buf.clear();
        let (n, from) = match tokio::time::timeout_at(deadline, sock.recv_buf_from(&mut buf)).await
        {
            Ok(r) => r?,
            Err(_) => return Err(TransportError::Timeout),
        };
        if from != server {
            tracing::debug!(%from, %server, "dropping reply from unexpected source");
            continue;
        }
        match Message::from_vec(&buf[..n]) {
            Ok(msg) if matches(&msg, id, query) => return Ok(msg),
            Ok(msg) if matches_ignoring_case(&msg, id, query) => {
                if !exact_case {
                    return Ok(msg);
                }
                // Right source, port and ID, wrong case: a server that does not echo case
                // (or a forger who guessed all but the case). Say so now, so the driver
                // asks again at once without 0x20 on a new port and ID, rather than wait
                // out the timeout.
                tracing::debug!(%server, "reply whose question case differs (0x20)");
                return Err(TransportError::CaseMismatch);
            }
            Ok(_) => tracing::debug!(%server, "dropping reply with wrong ID or question"),
            // Our ID and QR set but undecodable: the server is broken, say so now rather
            // than wait out the timeout (a forger would have to guess the ID and port too).
            Err(e) if n >= 12 && buf[..2] == id.to_be_bytes() && buf[2] & 0x80 != 0 => {
                return Err(TransportError::Malformed(e.to_string()))
            }
            Err(e) => tracing::debug!(%server, error = %e, "dropping malformed reply"),
        }
    }
}

async fn bind_random(local: IpAddr) -> io::Result<UdpSocket> {
    for _ in 0..PORT_TRIES {
        let port = rand::random_range(1024..=u16::MAX);
        match UdpSocket::bind(SocketAddr::new(local, port)).await {
            Ok(s) => return Ok(s),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(e),
        }
    }
    UdpSocket::bind(SocketAddr::new(local, 0)).await
}
