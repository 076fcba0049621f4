//! The lab's own UDP and TCP loops ("approach B" in LAB-NOTES): every query is logged, then
//! the server's fault is applied at the byte level around `Engine::answer`.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::answers::{encode, error_reply, udp_limit, Engine};
use super::{Fault, LoggedQuery};

/// How long an idle TCP connection to a lab server stays open.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// State shared by all servers of one lab and the `Lab` handle.
#[derive(Default)]
pub(crate) struct Shared {
    pub faults: Mutex<HashMap<IpAddr, Fault>>,
    pub log: Mutex<Vec<LoggedQuery>>,
}

/// Locks a mutex, ignoring poisoning (the data stays usable: plain maps and vectors).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One running lab server.
pub(crate) struct Server {
    pub ip: IpAddr,
    pub engine: Engine,
    pub shared: Arc<Shared>,
    /// The socket `Fault::WrongSource` replies leave from (another lab address).
    pub alt: Arc<UdpSocket>,
}

/// Where a reply goes out.
enum Reply {
    Normal(Vec<u8>),
    FromOtherAddress(Vec<u8>),
}

/// Spawns `fut` on `tracker`, ending it early when `token` is cancelled.
pub(crate) fn spawn_cancellable(
    tracker: &TaskTracker,
    token: &CancellationToken,
    fut: impl Future<Output = ()> + Send + 'static,
) {
    let token = token.clone();
    tracker.spawn(async move {
        tokio::select! {
            _ = token.cancelled() => {}
            _ = fut => {}
        }
    });
}

/// Receives datagrams; each is handled in its own task so a delayed reply blocks nothing.
pub(crate) async fn udp_loop(
    server: Arc<Server>,
    sock: Arc<UdpSocket>,
    tracker: TaskTracker,
    token: CancellationToken,
) {
    let mut buf = vec![0u8; 65535];
    loop {
        let (n, src) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(server = %server.ip, error = %e, "lab: UDP receive error");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let pkt = buf[..n].to_vec();
        let (server, sock) = (server.clone(), sock.clone());
        spawn_cancellable(&tracker, &token, async move {
            let sent = match server.respond(&pkt, src, false).await {
                None => return,
                Some(Reply::Normal(b)) => sock.send_to(&b, src).await,
                Some(Reply::FromOtherAddress(b)) => server.alt.send_to(&b, src).await,
            };
            if let Err(e) = sent {
                tracing::debug!(server = %server.ip, error = %e, "lab: UDP send error");
            }
        });
    }
}

/// Accepts TCP connections; each connection is served in its own task.
pub(crate) async fn tcp_loop(
    server: Arc<Server>,
    listener: TcpListener,
    tracker: TaskTracker,
    token: CancellationToken,
) {
    loop {
        let (stream, src) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(server = %server.ip, error = %e, "lab: TCP accept error");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let server = server.clone();
        spawn_cancellable(&tracker, &token, async move {
            if let Err(e) = server.serve_tcp(stream, src).await {
                tracing::debug!(server = %server.ip, error = %e, "lab: TCP connection ended");
            }
        });
    }
}

impl Server {
    /// Queries on one TCP connection, in order. A dropped query closes the connection.
    async fn serve_tcp(&self, mut stream: TcpStream, src: SocketAddr) -> std::io::Result<()> {
        loop {
            let mut len = [0u8; 2];
            match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut len)).await {
                Ok(Ok(_)) => {}
                _ => return Ok(()),
            }
            let mut pkt = vec![0u8; usize::from(u16::from_be_bytes(len))];
            tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut pkt)).await??;
            if matches!(
                lock(&self.shared.faults).get(&self.ip),
                Some(Fault::TruncateTcpReset)
            ) {
                // SO_LINGER 0: close sends RST instead of FIN, as a server refusing TCP does.
                stream.set_zero_linger()?;
                return Ok(());
            }
            let bytes = match self.respond(&pkt, src, true).await {
                None => return Ok(()),
                Some(Reply::Normal(b) | Reply::FromOtherAddress(b)) => b,
            };
            let Ok(n) = u16::try_from(bytes.len()) else {
                return Ok(());
            };
            let mut framed = Vec::with_capacity(bytes.len() + 2);
            framed.extend_from_slice(&n.to_be_bytes());
            framed.extend_from_slice(&bytes);
            stream.write_all(&framed).await?;
        }
    }

    /// The reply bytes for one query, wherever they would be sent from (for tests).
    #[cfg(test)]
    pub(crate) async fn respond_bytes(
        &self,
        pkt: &[u8],
        src: SocketAddr,
        tcp: bool,
    ) -> Option<Vec<u8>> {
        match self.respond(pkt, src, tcp).await? {
            Reply::Normal(b) | Reply::FromOtherAddress(b) => Some(b),
        }
    }

    /// Logs the query, applies this server's fault, answers. `None` means no reply.
    async fn respond(&self, pkt: &[u8], src: SocketAddr, tcp: bool) -> Option<Reply> {
        // Too short for a header, or a response (never answer those: no loops).
        if pkt.len() < 12 || pkt[2] & 0x80 != 0 {
            return None;
        }
        let fault = lock(&self.shared.faults).get(&self.ip).cloned();
        let query = match Message::from_vec(pkt) {
            Ok(m) => m,
            Err(_) if matches!(fault, Some(Fault::Drop)) => return None,
            Err(_) => return Some(Reply::Normal(formerr_for_garbage(pkt))),
        };
        if let Some(q) = query.queries.first() {
            lock(&self.shared.log).push(LoggedQuery {
                server: self.ip,
                name: q.name.clone(),
                qtype: q.query_type,
                tcp,
                edns: query.edns.is_some(),
            });
        }
        let limit = if tcp {
            usize::from(u16::MAX)
        } else {
            udp_limit(&query)
        };
        let answer = || self.engine.answer(pkt, &query, src, tcp);
        let reply = match fault {
            None => answer().await,
            Some(Fault::Drop) => return None,
            Some(Fault::Delay(d)) => {
                tokio::time::sleep(d).await;
                answer().await
            }
            Some(Fault::Truncate) if !tcp => answer().await.truncate(),
            Some(Fault::Truncate) => answer().await,
            Some(Fault::WrongId) => {
                let mut bytes = encode(&answer().await, limit)?;
                bytes[0] ^= 0x5a;
                bytes[1] ^= 0xa5;
                return Some(Reply::Normal(bytes));
            }
            Some(Fault::WrongSource) => {
                let bytes = encode(&answer().await, limit)?;
                return Some(if tcp {
                    Reply::Normal(bytes)
                } else {
                    Reply::FromOtherAddress(bytes)
                });
            }
            Some(Fault::Malformed) => return Some(Reply::Normal(garbage(query.metadata.id))),
            Some(Fault::Refused) => error_reply(&query, ResponseCode::Refused),
            Some(Fault::NoAa) => {
                let mut reply = answer().await;
                reply.metadata.authoritative = false;
                reply
            }
            Some(Fault::ServFail) => error_reply(&query, ResponseCode::ServFail),
            Some(Fault::FormErrOnEdns) if query.edns.is_some() => {
                // An old server that does not know OPT: FORMERR, no OPT in the reply.
                let mut reply = error_reply(&query, ResponseCode::FormErr);
                reply.edns = None;
                reply
            }
            Some(Fault::FormErrOnEdns) => answer().await,
            Some(Fault::LowercaseQuestion) => {
                let mut reply = answer().await;
                for q in &mut reply.queries {
                    q.name = q.name.to_lowercase();
                }
                reply
            }
            Some(Fault::WrongQuestion) => {
                let mut reply = answer().await;
                if let Ok(other) = hickory_proto::rr::Name::from_ascii("mismatch.invalid.") {
                    for q in &mut reply.queries {
                        q.name = other.clone();
                    }
                }
                reply
            }
            Some(Fault::UpwardReferral) => self.engine.upward_referral(&query, self.net()),
            Some(Fault::SelfReferral) => self.engine.self_referral(&query),
            Some(Fault::TruncateTcpReset) => answer().await.truncate(),
            Some(Fault::NxDomainForNoData) => {
                let mut reply = answer().await;
                if reply.metadata.response_code == ResponseCode::NoError
                    && reply.answers.is_empty()
                    && reply.metadata.authoritative
                {
                    reply.metadata.response_code = ResponseCode::NXDomain;
                }
                reply
            }
            Some(Fault::ForeignRecords) => {
                let mut reply = answer().await;
                add_foreign_records(&mut reply);
                reply
            }
        };
        encode(&reply, limit).map(Reply::Normal)
    }
}

impl Server {
    /// N of this server's 127.53.N.x address.
    fn net(&self) -> u8 {
        match self.ip {
            IpAddr::V4(v4) => v4.octets()[2],
            IpAddr::V6(_) => 0,
        }
    }
}

/// The records of `Fault::ForeignRecords`: claims about names no lab server under attack
/// is authoritative for (out of bailiwick).
fn add_foreign_records(reply: &mut Message) {
    use hickory_proto::rr::rdata::{A, NS};
    use hickory_proto::rr::{Name, RData, Record};
    let n = |s: &str| Name::from_ascii(s).expect("a literal name");
    let evil = RData::A(A::new(198, 51, 100, 66));
    reply.add_answer(Record::from_rdata(n("www.example.net."), 300, evil.clone()));
    reply.add_authority(Record::from_rdata(
        n("example.net."),
        300,
        RData::NS(NS(n("ns.evil.example.net."))),
    ));
    reply.add_additional(Record::from_rdata(n("ns1.example.net."), 300, evil.clone()));
    reply.add_additional(Record::from_rdata(n("www.shop.com."), 300, evil));
}

/// FORMERR for a query whose header is readable but whose body is not: header only.
fn formerr_for_garbage(pkt: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 12];
    out[0] = pkt[0];
    out[1] = pkt[1];
    out[2] = 0x80 | (pkt[2] & 0x79); // QR, the query's opcode and RD
    out[3] = 0x01; // FORMERR
    out
}

/// Bytes that look like a reply with the right ID but do not decode: the header promises a
/// question and five answers, then the question's first label claims 63 bytes and has 3.
fn garbage(id: u16) -> Vec<u8> {
    let [hi, lo] = id.to_be_bytes();
    vec![
        hi, lo, 0x84, 0x00, 0, 1, 0, 5, 0, 0, 0, 0, 63, b'b', b'a', b'd',
    ]
}
