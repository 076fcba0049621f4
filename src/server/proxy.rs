//! PROXY protocol version 2 (haproxy's proxy-protocol.txt §2.2) on every listener: a TLS
//! terminator or a balancer such as dnsdist (`useProxyProtocol`) in front names the real
//! client, so that the allow-list, RRL, redirect rules scoped to client networks, the
//! per-client connection budget and the query log judge the client, not the balancer.
//!
//! Only peers in `proxy-protocol-from` send it, and they must (a connection or datagram
//! from one of them without a valid header is refused); everyone else speaks DNS (or TLS) at
//! once, as dnsdist's `setProxyProtocolACL` does. Over UDP the header leads every datagram
//! (dnsdist's format); the reply goes back to the balancer without one. The header is parsed by the `ppp` crate. A LOCAL
//! header (the proxy's own health check) or one for a non-IP family keeps the peer as the
//! client.

use std::net::SocketAddr;

use ppp::v2::{Addresses, Command, Header, ParseError};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The fixed part of a v2 header: 12-byte signature, version and command, family, 2-byte
/// length (proxy-protocol.txt §2.2).
const FIXED: usize = 16;

/// Why a header was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot read the PROXY header: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a PROXY protocol v2 header: {0}")]
    Parse(ParseError),
}

/// Reads exactly one v2 header from `stream` (nothing past it: the TLS handshake follows)
/// and returns the client it names, or `peer` for LOCAL and non-IP headers.
pub async fn read_header(
    stream: &mut TcpStream,
    peer: SocketAddr,
) -> Result<SocketAddr, ProxyError> {
    let mut bytes = vec![0u8; FIXED];
    stream.read_exact(&mut bytes).await?;
    // The fixed part tells how much follows; `ppp` says so as `Partial(have, need)`.
    let rest = match Header::try_from(bytes.as_slice()) {
        Ok(_) => 0,
        Err(ParseError::Partial(_, need)) => need,
        Err(e) => return Err(ProxyError::Parse(e)),
    };
    bytes.resize(FIXED + rest, 0);
    stream.read_exact(&mut bytes[FIXED..]).await?;
    let header = Header::try_from(bytes.as_slice()).map_err(ProxyError::Parse)?;
    Ok(client_of(&header, peer))
}

/// The client named by the header a trusted balancer's connection starts with, read by
/// `deadline`; `None` (logged; a bad header counted as malformed) when it does not come in
/// time or does not parse: the connection is then closed.
pub(super) async fn read_client(
    stream: &mut TcpStream,
    peer: SocketAddr,
    proto: crate::dns::Proto,
    deadline: tokio::time::Instant,
) -> Option<SocketAddr> {
    match tokio::time::timeout_at(deadline, read_header(stream, peer)).await {
        Ok(Ok(client)) => Some(client),
        Ok(Err(error)) => {
            super::client_errors::note(crate::metrics::ClientError::Malformed);
            tracing::debug!(%peer, %error, %proto, "bad PROXY protocol header; closed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, %proto, "no PROXY protocol header in time; closed");
            None
        }
    }
}

/// The client a datagram's leading v2 header names, and where the DNS message starts.
pub fn strip_datagram(
    datagram: &[u8],
    peer: SocketAddr,
) -> Result<(SocketAddr, usize), ProxyError> {
    let header = Header::try_from(datagram).map_err(ProxyError::Parse)?;
    Ok((client_of(&header, peer), header.len()))
}

/// The client a parsed header names.
fn client_of(header: &Header<'_>, peer: SocketAddr) -> SocketAddr {
    match (header.command, header.addresses) {
        (Command::Proxy, Addresses::IPv4(a)) => {
            SocketAddr::new(a.source_address.into(), a.source_port)
        }
        (Command::Proxy, Addresses::IPv6(a)) => {
            SocketAddr::new(a.source_address.into(), a.source_port)
        }
        _ => peer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ppp::v2::{Builder, Protocol, Version};

    fn header(command: Command, addresses: Addresses) -> Vec<u8> {
        Builder::with_addresses(Version::Two | command, Protocol::Stream, addresses)
            .build()
            .unwrap()
    }

    #[test]
    fn the_source_of_a_proxy_header_is_the_client_and_local_keeps_the_peer() {
        let peer: SocketAddr = "192.0.2.1:40000".parse().unwrap();
        let v4 = header(
            Command::Proxy,
            (
                "198.51.100.7:5353".parse::<SocketAddr>().unwrap(),
                "192.0.2.1:853".parse::<SocketAddr>().unwrap(),
            )
                .into(),
        );
        let parsed = Header::try_from(v4.as_slice()).unwrap();
        assert_eq!(
            client_of(&parsed, peer),
            "198.51.100.7:5353".parse().unwrap()
        );
        let v6 = header(
            Command::Proxy,
            (
                "[2001:db8::7]:5353".parse::<SocketAddr>().unwrap(),
                "[2001:db8::1]:853".parse::<SocketAddr>().unwrap(),
            )
                .into(),
        );
        let parsed = Header::try_from(v6.as_slice()).unwrap();
        assert_eq!(
            client_of(&parsed, peer),
            "[2001:db8::7]:5353".parse().unwrap()
        );
        let local = header(Command::Local, Addresses::Unspecified);
        let parsed = Header::try_from(local.as_slice()).unwrap();
        assert_eq!(client_of(&parsed, peer), peer);
    }

    #[tokio::test]
    async fn exactly_the_header_is_read_and_what_follows_is_left() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (mut server, peer) = listener.accept().await.unwrap();
        let mut bytes = header(
            Command::Proxy,
            ("198.51.100.7:5000".parse::<SocketAddr>().unwrap(), addr).into(),
        );
        bytes.extend_from_slice(b"hello");
        client.write_all(&bytes).await.unwrap();
        let named = read_header(&mut server, peer).await.unwrap();
        assert_eq!(named, "198.51.100.7:5000".parse().unwrap());
        let mut rest = [0u8; 5];
        server.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"hello");
    }
}
