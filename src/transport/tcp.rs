//! TCP exchange (RFC 1035 §4.2.2, RFC 7766): two-byte length framing, one query per connection.
//! Used when a UDP reply comes back truncated.

use std::net::{IpAddr, SocketAddr};

use hickory_proto::op::{Message, Query};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

use super::{matches_ignoring_case, TransportError};

pub(super) async fn exchange(
    local: IpAddr,
    server: SocketAddr,
    id: u16,
    query: &Query,
    wire: &[u8],
) -> Result<Message, TransportError> {
    let sock = match server {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if !local.is_unspecified() {
        sock.bind(SocketAddr::new(local, 0))?;
    }
    let mut stream = sock.connect(server).await?;
    let len =
        u16::try_from(wire.len()).map_err(|_| TransportError::Encode("query too long".into()))?;
    let mut out = Vec::with_capacity(wire.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(wire);
    stream.write_all(&out).await?;
    loop {
        let n = stream.read_u16().await? as usize;
        let mut buf = vec![0u8; n];
        stream.read_exact(&mut buf).await?;
        match Message::from_vec(&buf) {
            // No 0x20 over TCP: the connection ties the reply to us, and a server may fold
            // the question's case (RFC 4343).
            Ok(msg) if matches_ignoring_case(&msg, id, query) => return Ok(msg),
            Ok(_) => tracing::debug!(%server, "dropping TCP reply with wrong ID or question"),
            Err(e) => return Err(TransportError::Malformed(e.to_string())),
        }
    }
}
