//! UDP exchange: a new socket on a random source port per query (RFC 5452 §9.2), connected to
//! the server so the kernel drops datagrams from elsewhere; we check the source again anyway.

use std::io;
use std::net::{IpAddr, SocketAddr};

use hickory_proto::op::{Message, Query};
use tokio::net::UdpSocket;

use super::{matches, TransportError};

/// Largest datagram we accept: the UDP maximum, so an oversized reply is read whole (and then
/// judged) rather than cut by the kernel into something that does not decode.
const RECV_BUF: usize = 65_535;

/// Tries random ports in the unprivileged range before letting the kernel pick one.
const PORT_TRIES: usize = 8;

pub(super) async fn exchange(
    local: IpAddr,
    server: SocketAddr,
    id: u16,
    query: &Query,
    wire: &[u8],
) -> Result<Message, TransportError> {
    let sock = bind_random(local).await?;
    sock.connect(server).await?;
    sock.send(wire).await?;
    // Capacity only: the kernel writes what arrives, so no 64 KiB is zeroed (and faulted in)
    // per query.
    let mut buf = Vec::with_capacity(RECV_BUF);
    loop {
        buf.clear();
        let (n, from) = sock.recv_buf_from(&mut buf).await?;
        if from != server {
            tracing::debug!(%from, %server, "dropping reply from unexpected source");
            continue;
        }
        match Message::from_vec(&buf[..n]) {
            Ok(msg) if matches(&msg, id, query) => return Ok(msg),
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
