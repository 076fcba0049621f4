//! The transport room: one exchange with one authority.
//!
//! Every query gets a fresh random ID and, over UDP, a fresh random source port; a response is
//! accepted only if it comes from the address and port we sent to, carries our ID, and echoes
//! our question (RFC 5452 §4.1-4.3). Anything else is ignored while we keep waiting. Deciding
//! what to ask next is not done here; that is the resolver's job.

/// Canned authorities: built for tests, benches and fuzzing only (feature `testkit`).
#[cfg(any(test, feature = "testkit"))]
pub mod scripted;
mod select;
mod tcp;
pub mod tls;
mod udp;
mod upstream;

pub use udp::{SocketPool, MAX_AGE, MAX_USES};

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData};

use crate::dns::lowercase;
use crate::dns::wire::{opt_record, HEADER_LEN, OPT_LEN};

pub use select::{choose, choose_configured};
pub use upstream::{Protocol, Upstream, UpstreamError, DOT_PORT};

/// The UDP payload we advertise upstream (DNS flag day 2020: 1232 avoids IP fragmentation).
pub const EDNS_PAYLOAD: u16 = 1232;

/// One query to one server, as the resolver asks for it.
#[derive(Clone, Debug)]
pub struct OutQuery {
    pub server: SocketAddr,
    pub query: Query,
    pub tcp: bool,
    pub edns: bool,
    /// Set DO in our OPT (RFC 4035 §3.2.1): validation wants the RRSIGs and NSEC/NSEC3
    /// proofs. Only with `edns`.
    pub dnssec_ok: bool,
    pub timeout: Duration,
    /// Randomise the case of the question (0x20) if the transport does it at all: the
    /// driver clears it for servers known not to echo case.
    pub case_0x20: bool,
    /// RD set: a forwarder is asked to recurse. Clear for authorities (RD to an authority
    /// invites resolver loops).
    pub rd: bool,
    /// DNS over TLS (RFC 7858), the certificate checked against this name.
    pub tls: Option<std::sync::Arc<str>>,
}

impl OutQuery {
    /// A query to an authority: RD clear, no TLS.
    pub fn new(server: SocketAddr, query: Query, tcp: bool, edns: bool, timeout: Duration) -> Self {
        Self {
            server,
            query,
            tcp,
            edns,
            timeout,
            case_0x20: false,
            rd: false,
            tls: None,
            dnssec_ok: false,
        }
    }
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
    /// A reply matched in all but the case of the question (0x20 in use): the server does
    /// not echo case (or someone forged it); ask it again at once without 0x20.
    #[error("question case not echoed (0x20)")]
    CaseMismatch,
    /// DNS over TLS could not be set up: the certificate was refused (wrong name, unknown
    /// CA, expired) or the handshake failed.
    #[error("{0}")]
    Tls(String),
}

impl TransportError {
    /// This host ran out of something (file descriptors, socket buffers, memory) before the
    /// query left: not the server's fault, so it must not be counted as its timeout.
    pub fn is_local(&self) -> bool {
        matches!(self, TransportError::Io(e) if matches!(
            e.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
        ))
    }
}

/// How a reply came: the trace shows it for forwarders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    Udp,
    Tcp,
    /// DNS over TLS on a connection opened for this query.
    TlsNew,
    /// DNS over TLS on a connection already open (RFC 7858 §3.4 reuse).
    TlsReused,
}

impl Via {
    pub fn label(self) -> &'static str {
        match self {
            Via::Udp => "udp",
            Via::Tcp => "tcp",
            Via::TlsNew => "tls, new connection",
            Via::TlsReused => "tls, reused connection",
        }
    }
}

/// Sends one query and returns the matching response. The real one is [`NetTransport`];
/// tests and benchmarks plug in scripted authorities.
#[async_trait]
pub trait Exchange: Send + Sync + 'static {
    async fn exchange(&self, q: &OutQuery) -> Result<Message, TransportError>;

    /// [`Exchange::exchange`], also saying how the reply came.
    async fn exchange_via(&self, q: &OutQuery) -> Result<(Message, Via), TransportError> {
        let via = if q.tcp { Via::Tcp } else { Via::Udp };
        self.exchange(q).await.map(|m| (m, via))
    }
}

/// Upstream over real UDP and TCP sockets.
#[derive(Clone, Debug)]
pub struct NetTransport {
    /// Source address for IPv4 upstream sockets (`--outgoing-address`).
    pub outgoing_v4: Option<IpAddr>,
    /// Source address for IPv6 upstream sockets.
    pub outgoing_v6: Option<IpAddr>,
    /// Randomise the case of UDP questions (draft-vixie-dnsext-dns0x20): each letter of the
    /// name is one more bit a forger must guess, on top of the 16-bit ID and the port.
    pub case_randomisation: bool,
    /// Connected UDP sockets kept for a few more queries to the same server (`udp.rs`).
    pub sockets: Arc<udp::SocketPool>,
    /// The DNS-over-TLS client, when a forwarder is configured with `tls://`.
    pub tls: Option<Arc<tls::TlsClient>>,
}

impl Default for NetTransport {
    fn default() -> Self {
        Self {
            outgoing_v4: None,
            outgoing_v6: None,
            case_randomisation: true,
            sockets: Arc::default(),
            tls: None,
        }
    }
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
        self.exchange_via(q).await.map(|(m, _)| m)
    }

    async fn exchange_via(&self, q: &OutQuery) -> Result<(Message, Via), TransportError> {
        let local = self.local_for(&q.server);
        if let Some(name) = &q.tls {
            let client = self.tls.as_ref().ok_or_else(|| {
                TransportError::Tls("DNS over TLS asked for, but no TLS client is set up".into())
            })?;
            let (_, wire) = encode_query(q, &q.query)?;
            let (msg, reused) = client
                .exchange(local, q.server, name, &q.query, &wire, q.timeout)
                .await?;
            return Ok((msg, if reused { Via::TlsReused } else { Via::TlsNew }));
        }
        if q.tcp {
            let (id, wire) = encode_query(q, &q.query)?;
            let fut = tcp::exchange(local, q.server, id, &q.query, &wire);
            return tokio::time::timeout(q.timeout, fut)
                .await
                .map_err(|_| TransportError::Timeout)?
                .map(|m| (m, Via::Tcp));
        }
        let randomised = self.case_randomisation && q.case_0x20;
        // The 0x20 name goes into the query as built; the reply is matched against it, then
        // read as if the name had been sent as asked (`udp::judge`).
        let names = randomised
            .then(|| {
                Some((
                    WireName::randomised(&q.query.name)?,
                    WireName::exact(&q.query.name)?,
                ))
            })
            .flatten();
        let ((id, wire), case) = match &names {
            Some((sent, asked)) => {
                let case = udp::Case0x20 {
                    sent: sent.as_bytes(),
                    asked: asked.as_bytes(),
                };
                (encode_named(q, sent, &q.query), Some(case))
            }
            None => (encode_query(q, &q.query)?, None),
        };
        let mut msg = udp::exchange(
            &self.sockets,
            local,
            q.server,
            id,
            &q.query,
            &wire,
            q.timeout,
            case,
        )
        .await?;
        // Give the rest of hopdns the names as it asked them: the random case only served to
        // match the reply. Names compressed against the question decoded in the asked case
        // already; a server that writes them out in full may have copied our random case,
        // and one that folds case (taken without 0x20) folds them all.
        let as_asked = msg
            .queries
            .first()
            .is_none_or(|r| r.name.eq_case(&q.query.name));
        if as_asked && case.is_none() {
            return Ok((msg, Via::Udp));
        }
        if !as_asked {
            msg.queries = vec![q.query.clone()];
        }
        for r in msg
            .answers
            .iter_mut()
            .chain(msg.authorities.iter_mut())
            .chain(msg.additionals.iter_mut())
        {
            lowercase(&mut r.name);
            match &mut r.data {
                RData::CNAME(c) => lowercase(&mut c.0),
                RData::NS(ns) => lowercase(&mut ns.0),
                // Names inside RDATA too: a server that compresses without regard to case
                // points them at our randomised question (seen from a forwarder's SOA).
                RData::SOA(soa) => {
                    lowercase(&mut soa.mname);
                    lowercase(&mut soa.rname);
                }
                RData::PTR(p) => lowercase(&mut p.0),
                RData::MX(mx) => lowercase(&mut mx.exchange),
                RData::SRV(srv) => lowercase(&mut srv.target),
                _ => {}
            }
        }
        Ok((msg, Via::Udp))
    }
}

/// A question's name in wire form, as it goes into a query: its labels uncompressed (one
/// name needs no compression), then the root. Built on the stack and written into the
/// query as it is: hickory's `Name::emit` keeps pointer bookkeeping per label, and the
/// 0x20 name was built in wire form anyway.
struct WireName {
    // A name's wire form is at most 255 bytes (RFC 1035 §3.1).
    buf: [u8; 256],
    len: usize,
}

impl WireName {
    /// `name` with each ASCII letter's case chosen at random (draft-vixie-dnsext-dns0x20
    /// §4); other bytes unchanged. Built on the stack: no allocation per label.
    fn randomised(name: &Name) -> Option<Self> {
        let (mut bits, mut left) = (0u64, 0);
        Self::build(name, |label, to| {
            for (to, b) in to.iter_mut().zip(label) {
                if left == 0 {
                    (bits, left) = (rand::random(), 64);
                }
                let flip = bits & 1 == 1;
                (bits, left) = (bits >> 1, left - 1);
                *to = if flip && b.is_ascii_alphabetic() {
                    b ^ 0x20
                } else {
                    *b
                };
            }
        })
    }

    /// `name` as it is.
    fn exact(name: &Name) -> Option<Self> {
        Self::build(name, |label, to| to.copy_from_slice(label))
    }

    fn build(name: &Name, copy: impl FnMut(&[u8], &mut [u8])) -> Option<Self> {
        let mut buf = [0; 256];
        let len = crate::dns::wire::write_name(name, &mut buf, copy).ok()?;
        Some(WireName { buf, len })
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    #[cfg(test)]
    fn to_name(&self, fqdn: bool) -> Option<Name> {
        use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
        let mut name = Name::read(&mut BinDecoder::new(self.as_bytes())).ok()?;
        name.set_fqdn(fqdn);
        Some(name)
    }
}

/// Builds the wire query: random ID, RD as asked (clear for authorities: we iterate
/// ourselves, and RD to an authority invites resolver loops), EDNS with our payload (and DO
/// when validating) unless asked for none.
pub fn encode_query(q: &OutQuery, query: &Query) -> Result<(u16, Vec<u8>), TransportError> {
    let name = WireName::exact(&query.name)
        .ok_or_else(|| TransportError::Encode(format!("name too long: {}", query.name)))?;
    Ok(encode_named(q, &name, query))
}

/// [`encode_query`] with the question's name already in wire form (`name`, which may
/// differ from `query.name` in case alone).
fn encode_named(q: &OutQuery, name: &WireName, query: &Query) -> (u16, Vec<u8>) {
    let id: u16 = rand::random();
    // Written as `Message::to_vec` would write it, without building a message or an `Edns`
    // (which becomes a cloned record on the way): one query per cache miss. The header
    // (RFC 1035 §4.1.1): our ID, QUERY, RD as asked, one question, our OPT if any.
    let [i0, i1] = id.to_be_bytes();
    let rd = if q.rd { 0x01 } else { 0 };
    let mut wire = Vec::with_capacity(HEADER_LEN + name.as_bytes().len() + 4 + OPT_LEN);
    wire.extend_from_slice(&[i0, i1, rd, 0, 0, 1, 0, 0, 0, 0, 0, u8::from(q.edns)]);
    wire.extend_from_slice(name.as_bytes());
    wire.extend_from_slice(&u16::from(query.query_type).to_be_bytes());
    wire.extend_from_slice(&u16::from(query.query_class).to_be_bytes());
    if q.edns {
        wire.extend_from_slice(&opt_record(EDNS_PAYLOAD, q.dnssec_ok));
    }
    (id, wire)
}

/// Does `resp` answer our query? ID, QR, opcode and the question (name compared with its
/// exact case, so a 0x20-randomised name must come back as sent; type and class) must match.
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

/// [`matches`] with the question's name compared without case: a server that does not
/// echo 0x20 case (or a forger that did not guess it).
pub fn matches_ignoring_case(resp: &Message, id: u16, query: &Query) -> bool {
    matches(resp, id, query)
        || resp.queries.len() == 1 && resp.queries[0].name == query.name && {
            let mut q = query.clone();
            q.name = resp.queries[0].name.clone();
            matches(resp, id, &q)
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 0x20 name exchange_via sends, as a `Name` (the name itself if it cannot be built).
    fn randomise_case(name: &Name) -> Name {
        WireName::randomised(name)
            .and_then(|wire| wire.to_name(name.is_fqdn()))
            .unwrap_or_else(|| name.clone())
    }

    /// Issue 11.5: running out of descriptors is ours, not the server's.
    #[test]
    fn out_of_descriptors_is_a_local_error() {
        let e = |code| TransportError::Io(std::io::Error::from_raw_os_error(code));
        assert!(e(libc::EMFILE).is_local() && e(libc::ENFILE).is_local());
        assert!(!e(libc::ECONNREFUSED).is_local() && !TransportError::Timeout.is_local());
    }
    use hickory_proto::rr::{Name, RecordType};

    fn q() -> Query {
        Query::query(Name::from_ascii("www.example.com.").unwrap(), RecordType::A)
    }

    /// The query emitted part by part is the message hickory would encode, byte for byte.
    #[test]
    fn encoded_query_is_the_message_hickory_encodes() {
        for (edns, dnssec_ok, rd) in [
            (false, false, false),
            (true, false, false),
            (true, true, false),
            (true, true, true),
            (false, false, true),
        ] {
            let out = OutQuery {
                server: "127.0.0.1:53".parse().unwrap(),
                query: Query::query(
                    Name::from_ascii("wWw.Example.COM.").unwrap(),
                    RecordType::MX,
                ),
                tcp: false,
                edns,
                dnssec_ok,
                timeout: Duration::from_secs(1),
                case_0x20: false,
                rd,
                tls: None,
            };
            let (id, wire) = encode_query(&out, &out.query).unwrap();
            let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
            msg.metadata.recursion_desired = rd;
            msg.add_query(out.query.clone());
            if edns {
                let mut opt = hickory_proto::op::Edns::new();
                opt.set_max_payload(EDNS_PAYLOAD);
                opt.set_dnssec_ok(dnssec_ok);
                msg.set_edns(opt);
            }
            assert_eq!(
                wire,
                msg.to_vec().unwrap(),
                "edns {edns}, DO {dnssec_ok}, RD {rd}"
            );
        }
    }

    #[test]
    fn response_must_match_id_and_question() {
        let out = OutQuery {
            server: "127.0.0.1:53".parse().unwrap(),
            query: q(),
            tcp: false,
            edns: true,
            dnssec_ok: false,
            timeout: Duration::from_secs(1),
            case_0x20: false,
            rd: false,
            tls: None,
        };
        let (id, wire) = encode_query(&out, &out.query).unwrap();
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

    /// RFC 5452 in practice, on lab unit-test network 213: while our query waits, replies
    /// from the right address but another port, from another address with the right port,
    /// and with a wrong ID all arrive first, each saying 198.51.100.66. Only the genuine
    /// reply is accepted. (A reply with the question's case changed is never accepted
    /// either: `a_reply_in_another_case_is_refused_at_once_and_matched_without_case_after`.)
    #[tokio::test]
    async fn only_the_genuine_reply_is_accepted() {
        use hickory_proto::rr::rdata::A;
        use hickory_proto::rr::{RData, Record};
        use tokio::net::UdpSocket;

        let server: SocketAddr = "127.53.213.1:53".parse().unwrap();
        let auth = UdpSocket::bind(server)
            .await
            .expect("bind 127.53.213.1:53 (root)");
        let other_port = UdpSocket::bind("127.53.213.1:5353").await.unwrap();
        let other_addr = UdpSocket::bind("127.53.213.2:53").await.unwrap();
        let name = Name::from_ascii("www.example.com.").unwrap();
        let out = OutQuery {
            server,
            query: Query::query(name.clone(), RecordType::A),
            tcp: false,
            edns: true,
            dnssec_ok: false,
            timeout: Duration::from_secs(2),
            case_0x20: true,
            rd: false,
            tls: None,
        };
        let transport = NetTransport {
            outgoing_v4: Some("127.53.213.253".parse().unwrap()),
            ..NetTransport::default()
        };
        let task = tokio::spawn(async move { transport.exchange(&out).await });

        let mut buf = vec![0u8; 1500];
        let (n, client) = auth.recv_from(&mut buf).await.unwrap();
        let query = Message::from_vec(&buf[..n]).unwrap();
        let sent = query.queries[0].name.clone();
        let reply = |id: u16, qname: &Name, ip: A| {
            let mut m = Message::new(id, MessageType::Response, OpCode::Query);
            m.metadata.authoritative = true;
            m.add_query(Query::query(qname.clone(), RecordType::A));
            m.add_answer(Record::from_rdata(qname.clone(), 300, RData::A(ip)));
            m.to_vec().unwrap()
        };
        let evil = A::new(198, 51, 100, 66);
        let id = query.metadata.id;
        other_port
            .send_to(&reply(id, &sent, evil), client)
            .await
            .unwrap();
        other_addr
            .send_to(&reply(id, &sent, evil), client)
            .await
            .unwrap();
        auth.send_to(&reply(id.wrapping_add(1), &sent, evil), client)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        auth.send_to(&reply(id, &sent, A::new(192, 0, 2, 1)), client)
            .await
            .unwrap();

        let msg = task.await.unwrap().expect("the genuine reply");
        assert_eq!(msg.answers.len(), 1);
        assert_eq!(msg.answers[0].data, RData::A(A::new(192, 0, 2, 1)));
        // The rest of hopdns sees the name as it asked it, whatever case went out.
        assert!(msg.queries[0].name.eq_case(&name));
        assert!(msg.answers[0].name.eq_case(&name));
    }

    /// A server that folds the question's case: with 0x20 the transport refuses the reply at
    /// once (no wait for the timeout) and gives none of its data; without 0x20 the question
    /// is compared without case (RFC 4343) and the reply is taken. Lab unit-test network 214.
    #[tokio::test]
    async fn a_reply_in_another_case_is_refused_at_once_and_matched_without_case_after() {
        use hickory_proto::rr::rdata::A;
        use hickory_proto::rr::{RData, Record};
        use tokio::net::UdpSocket;

        let server: SocketAddr = "127.53.214.1:53".parse().unwrap();
        let auth = UdpSocket::bind(server).await.expect("bind 127.53.214.1:53");
        let name = Name::from_ascii("www.example.com.").unwrap();
        let transport = NetTransport {
            outgoing_v4: Some("127.53.214.253".parse().unwrap()),
            ..NetTransport::default()
        };
        for case_0x20 in [true, false] {
            let out = OutQuery {
                server,
                query: Query::query(name.clone(), RecordType::A),
                tcp: false,
                edns: true,
                dnssec_ok: false,
                timeout: Duration::from_secs(3),
                case_0x20,
                rd: false,
                tls: None,
            };
            let t = transport.clone();
            let started = std::time::Instant::now();
            let task = tokio::spawn(async move { t.exchange(&out).await });
            let mut buf = vec![0u8; 1500];
            let (n, client) = auth.recv_from(&mut buf).await.unwrap();
            let query = Message::from_vec(&buf[..n]).unwrap();
            // Upper case whatever was sent: a case-folding server.
            let folded = Name::from_ascii(query.queries[0].name.to_ascii().to_uppercase()).unwrap();
            let mut m = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
            m.metadata.authoritative = true;
            m.add_query(Query::query(folded.clone(), RecordType::A));
            m.add_answer(Record::from_rdata(
                folded,
                300,
                RData::A(A::new(192, 0, 2, 1)),
            ));
            auth.send_to(&m.to_vec().unwrap(), client).await.unwrap();
            let result = task.await.unwrap();
            if case_0x20 {
                assert!(
                    matches!(result, Err(TransportError::CaseMismatch)),
                    "{result:?}"
                );
                assert!(
                    started.elapsed() < Duration::from_secs(2),
                    "said at once, not at the timeout"
                );
            } else {
                let msg = result.expect("taken without 0x20");
                assert_eq!(msg.answers[0].data, RData::A(A::new(192, 0, 2, 1)));
                assert!(
                    msg.queries[0].name.eq_case(&name),
                    "names handed back as asked"
                );
                assert!(msg.answers[0].name.eq_case(&name));
            }
        }
    }

    /// Issue 17: a socket whose exchange ended cleanly serves the next query to the same
    /// server, from the same source port, for at most `MAX_USES` queries; one that saw a
    /// stray datagram (wrong ID) before or behind the reply, or while idle, is closed, never
    /// reused. Lab unit-test network 215.
    #[tokio::test]
    async fn clean_sockets_are_reused_a_few_times_and_stray_datagrams_retire_them() {
        use tokio::net::UdpSocket;

        #[derive(Clone, Copy, PartialEq)]
        enum Stray {
            No,
            Before,
            Behind,
        }
        let server: SocketAddr = "127.53.215.1:53".parse().unwrap();
        let auth = UdpSocket::bind(server).await.expect("bind 127.53.215.1:53");
        let transport = NetTransport {
            outgoing_v4: Some("127.53.215.253".parse().unwrap()),
            case_randomisation: false,
            ..NetTransport::default()
        };
        let out = OutQuery::new(server, q(), false, false, Duration::from_secs(3));
        // Answers one query, with a reply of the wrong ID before or behind the right one.
        let answer = |stray: Stray| {
            let (t, out, auth) = (transport.clone(), out.clone(), &auth);
            async move {
                let task = tokio::spawn(async move { t.exchange(&out).await });
                let mut buf = vec![0u8; 1500];
                let (n, client) = auth.recv_from(&mut buf).await.unwrap();
                let query = Message::from_vec(&buf[..n]).unwrap();
                let reply = |id: u16| {
                    let mut m = Message::new(id, MessageType::Response, OpCode::Query);
                    m.add_query(query.queries[0].clone());
                    m.to_vec().unwrap()
                };
                let (right, wrong) = (query.metadata.id, query.metadata.id.wrapping_add(1));
                let ids = match stray {
                    Stray::No => vec![right],
                    Stray::Before => vec![wrong, right],
                    Stray::Behind => vec![right, wrong],
                };
                for id in ids {
                    auth.send_to(&reply(id), client).await.unwrap();
                }
                task.await.unwrap().expect("answered");
                client.port()
            }
        };
        let mut ports = Vec::new();
        for _ in 0..MAX_USES + 1 {
            ports.push(answer(Stray::No).await);
        }
        let first = ports[0];
        assert!(
            ports[..MAX_USES as usize].iter().all(|p| *p == first),
            "{ports:?}"
        );
        assert_ne!(ports[MAX_USES as usize], first, "a new port after MAX_USES");
        assert_eq!(transport.sockets.idle(), 1);
        let before = answer(Stray::Before).await;
        assert_eq!(
            transport.sockets.idle(),
            0,
            "a socket that saw a stray is closed"
        );
        // Behind the reply: read with it, or after it while the socket sits in the pool.
        let behind = answer(Stray::Behind).await;
        assert_ne!(behind, before);
        let fresh = answer(Stray::No).await;
        assert_ne!(fresh, behind, "not reused after a stray behind the reply");
        // A datagram queued while the socket sits idle retires it too, even when the next
        // query follows at once (the exchange yields to the I/O driver before it asks the
        // pool, so the socket's readiness is known).
        assert_eq!(transport.sockets.idle(), 1);
        auth.send_to(b"early", ("127.53.215.253", fresh))
            .await
            .unwrap();
        let next = answer(Stray::No).await;
        assert_ne!(next, fresh, "not reused after an idle stray");
        // A late one too.
        auth.send_to(b"late", ("127.53.215.253", next))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_ne!(
            answer(Stray::No).await,
            next,
            "not reused after an idle stray"
        );
    }

    /// The 0x20 name goes into the query byte for byte as built, and the query is the one
    /// hickory would encode for the name `sent` carries to match the reply.
    #[test]
    fn a_randomised_query_carries_its_name_as_built() {
        let name = Name::from_ascii("www.example-1.com.").unwrap();
        let wire = WireName::randomised(&name).unwrap();
        let sent = Query::query(wire.to_name(true).unwrap(), RecordType::AAAA);
        let out = OutQuery {
            server: "127.0.0.1:53".parse().unwrap(),
            query: Query::query(name, RecordType::AAAA),
            tcp: false,
            edns: true,
            dnssec_ok: true,
            timeout: Duration::from_secs(1),
            case_0x20: true,
            rd: false,
            tls: None,
        };
        let (_, built) = encode_named(&out, &wire, &sent);
        let msg = Message::from_vec(&built).unwrap();
        assert!(msg.queries[0].name.eq_case(&sent.name));
        assert_eq!(msg.queries[0], sent);
        assert_eq!(built, msg.to_vec().unwrap(), "as hickory encodes it");
        assert!(built
            .windows(wire.as_bytes().len())
            .any(|w| w == wire.as_bytes()));
    }

    #[test]
    fn randomised_case_keeps_the_name_and_varies_the_letters() {
        let name = Name::from_ascii("www.example-1.com.").unwrap();
        let variants: std::collections::HashSet<String> =
            (0..50).map(|_| randomise_case(&name).to_string()).collect();
        assert!(variants.len() > 40, "{} variants", variants.len());
        for v in &variants {
            assert_eq!(Name::from_ascii(v).unwrap(), name);
        }
        // The root, and a name of the longest wire form (255 bytes), come back whole.
        assert!(randomise_case(&Name::root()).is_root());
        let (l63, l61) = ("x".repeat(63), "x".repeat(61));
        let longest = Name::from_ascii(format!("{l63}.{l63}.{l63}.{l61}.")).unwrap();
        assert_eq!(longest.len(), 254, "254 characters: 255 bytes in wire form");
        assert_eq!(randomise_case(&longest), longest);
    }
}
