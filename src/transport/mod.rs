//! The transport room: one exchange with one authority.
//!
//! Every query gets a fresh random ID and, over UDP, a fresh random source port; a response is
//! accepted only if it comes from the address and port we sent to, carries our ID, and echoes
//! our question (RFC 5452 §4.1-4.3). Anything else is ignored while we keep waiting. Deciding
//! what to ask next is not done here; that is the resolver's job.

pub mod scripted;
mod select;
mod tcp;
mod udp;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use async_trait::async_trait;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};

pub use select::choose;

/// The UDP payload we advertise upstream (DNS flag day 2020: 1232 avoids IP fragmentation).
pub const EDNS_PAYLOAD: u16 = 1232;

/// One query to one server, as the resolver asks for it.
#[derive(Clone, Debug)]
pub struct OutQuery {
    pub server: SocketAddr,
    pub query: Query,
    pub tcp: bool,
    pub edns: bool,
    pub timeout: Duration,
}

/// Why an exchange produced no response.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("timed out")]
    Timeout,
    #[error("network error: {0}")]
    Io(#[from] std::io::Error),
    #[error("could not encode the query: {0}")]
    Encode(String),
    /// The server answered (right address, port and ID) but the reply does not decode.
    #[error("malformed reply: {0}")]
    Malformed(String),
}

/// Sends one query and returns the matching response. The real one is [`NetTransport`];
/// tests and benchmarks plug in scripted authorities.
#[async_trait]
pub trait Exchange: Send + Sync + 'static {
    async fn exchange(&self, q: &OutQuery) -> Result<Message, TransportError>;
}

/// Upstream over real UDP and TCP sockets.
#[derive(Clone, Debug, Default)]
pub struct NetTransport {
    /// Source address for IPv4 upstream sockets (`--outgoing-address`).
    pub outgoing_v4: Option<IpAddr>,
    /// Source address for IPv6 upstream sockets.
    pub outgoing_v6: Option<IpAddr>,
}

impl NetTransport {
    fn local_for(&self, server: &SocketAddr) -> IpAddr {
        match server {
            SocketAddr::V4(_) => self
                .outgoing_v4
                .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
            SocketAddr::V6(_) => self
                .outgoing_v6
                .unwrap_or(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)),
        }
    }
}

#[async_trait]
impl Exchange for NetTransport {
    async fn exchange(&self, q: &OutQuery) -> Result<Message, TransportError> {
        let (id, wire) = encode_query(q)?;
        let local = self.local_for(&q.server);
        let fut = async {
            if q.tcp {
                tcp::exchange(local, q.server, id, &q.query, &wire).await
            } else {
                udp::exchange(local, q.server, id, &q.query, &wire).await
            }
        };
        tokio::time::timeout(q.timeout, fut)
            .await
            .map_err(|_| TransportError::Timeout)?
    }
}

/// Builds the wire query: random ID, RD=0 (we iterate ourselves; RD to an authority invites
/// resolver loops), EDNS with our payload and DO clear when asked.
pub fn encode_query(q: &OutQuery) -> Result<(u16, Vec<u8>), TransportError> {
    let id: u16 = rand::random();
    let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = false;
    msg.add_query(q.query.clone());
    if q.edns {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        msg.set_edns(edns);
    }
    let wire = msg
        .to_vec()
        .map_err(|e| TransportError::Encode(e.to_string()))?;
    Ok((id, wire))
}

/// Does `resp` answer our query? ID, QR, opcode and the question (name compared with its
/// exact case, so 0x20 randomisation can be layered on later, type and class) must match.
/// A FORMERR or NOTIMP without a question is accepted: servers that reject EDNS often send
/// one (RFC 6891 §7), and the source address and ID still tie it to our query.
pub fn matches(resp: &Message, id: u16, query: &Query) -> bool {
    let header = resp.metadata.id == id
        && resp.metadata.message_type == MessageType::Response
        && resp.metadata.op_code == OpCode::Query;
    if header
        && resp.queries.is_empty()
        && matches!(
            resp.metadata.response_code,
            hickory_proto::op::ResponseCode::FormErr | hickory_proto::op::ResponseCode::NotImp
        )
    {
        return true;
    }
    header
        && resp.queries.len() == 1
        && resp.queries[0].name.eq_case(&query.name)
        && resp.queries[0].query_type == query.query_type
        && resp.queries[0].query_class == query.query_class
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::{Name, RecordType};

    fn q() -> Query {
        Query::query(Name::from_ascii("www.example.com.").unwrap(), RecordType::A)
    }

    #[test]
    fn response_must_match_id_and_question() {
        let out = OutQuery {
            server: "127.0.0.1:53".parse().unwrap(),
            query: q(),
            tcp: false,
            edns: true,
            timeout: Duration::from_secs(1),
        };
        let (id, wire) = encode_query(&out).unwrap();
        let sent = Message::from_vec(&wire).unwrap();
        assert!(!sent.metadata.recursion_desired);
        assert_eq!(sent.edns.as_ref().unwrap().max_payload(), EDNS_PAYLOAD);
        let mut resp = sent.clone();
        resp.metadata.message_type = MessageType::Response;
        assert!(matches(&resp, id, &q()));
        let mut wrong_id = resp.clone();
        wrong_id.metadata.id = id.wrapping_add(1);
        assert!(!matches(&wrong_id, id, &q()));
        let mut wrong_q = resp.clone();
        wrong_q.queries[0].query_type = RecordType::AAAA;
        assert!(!matches(&wrong_q, id, &q()));
        let mut formerr = Message::new(id, MessageType::Response, OpCode::Query);
        formerr.metadata.response_code = hickory_proto::op::ResponseCode::FormErr;
        assert!(
            matches(&formerr, id, &q()),
            "FORMERR without a question (RFC 6891 §7)"
        );
        formerr.metadata.id = id.wrapping_add(1);
        assert!(!matches(&formerr, id, &q()));
        let mut wrong_case = resp;
        wrong_case.queries[0].name = Name::from_ascii("WWW.example.com.").unwrap();
        assert!(!matches(&wrong_case, id, &q()));
    }
}
