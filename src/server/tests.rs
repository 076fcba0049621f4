//! Socket tests of the front end on loopback addresses 127.54.0.x (one per test, port 0),
//! with fake answerers.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::task::JoinHandle;

use crate::dns::{Outcome, Question};
use tokio_util::sync::CancellationToken;

use super::*;

/// Answers every question with one A record, 192.0.2.1.
struct Fake;

#[async_trait]
impl Answerer for Fake {
    async fn answer(&self, question: &Question, _client: SocketAddr) -> Outcome {
        let record = Record::from_rdata(
            question.name.clone(),
            60,
            RData::A(A(Ipv4Addr::new(192, 0, 2, 1))),
        );
        Outcome::Answer {
            answers: vec![record],
        }
    }
}

/// Never answers (a resolution that takes forever).
struct Stuck;

#[async_trait]
impl Answerer for Stuck {
    async fn answer(&self, _question: &Question, _client: SocketAddr) -> Outcome {
        std::future::pending().await
    }
}

fn config(ip: &str) -> ServerConfig {
    ServerConfig {
        listen: vec![format!("{ip}:0").parse().expect("addr")],
        threads: 1,
        tcp_idle_timeout: Duration::from_secs(5),
        ..ServerConfig::default()
    }
}

struct Running {
    addr: SocketAddr,
    token: CancellationToken,
    handle: JoinHandle<Result<(), ServeError>>,
}

impl Running {
    async fn stop(self) {
        self.token.cancel();
        let result = tokio::time::timeout(Duration::from_secs(1), self.handle)
            .await
            .expect("run returns within 1 s of cancel")
            .expect("run does not panic");
        assert!(result.is_ok(), "{result:?}");
    }
}

fn start(server: BoundServer, answerer: Arc<dyn Answerer>) -> Running {
    let addr = server.local_addrs()[0];
    let token = CancellationToken::new();
    let handle = tokio::spawn(server.run(answerer, token.clone()));
    Running {
        addr,
        token,
        handle,
    }
}

fn query(id: u16, qname: &str) -> Vec<u8> {
    let mut msg = Message::query();
    msg.metadata.id = id;
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(
        Name::from_ascii(qname).expect("name"),
        RecordType::A,
    ));
    msg.to_vec().expect("encode")
}

fn framed(wire: &[u8]) -> Vec<u8> {
    let mut out = u16::try_from(wire.len())
        .expect("short")
        .to_be_bytes()
        .to_vec();
    out.extend_from_slice(wire);
    out
}

async fn udp_exchange(server: SocketAddr, wire: &[u8]) -> Message {
    let client = UdpSocket::bind("127.0.0.1:0").await.expect("client socket");
    client.send_to(wire, server).await.expect("send");
    let mut buf = vec![0u8; 4096];
    let (len, from) = tokio::time::timeout(Duration::from_secs(2), client.recv_from(&mut buf))
        .await
        .expect("UDP reply in time")
        .expect("recv");
    assert_eq!(from, server);
    Message::from_vec(&buf[..len]).expect("reply decodes")
}

async fn read_framed(stream: &mut TcpStream) -> Message {
    let mut prefix = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut prefix))
        .await
        .expect("TCP reply in time")
        .expect("length");
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
    stream.read_exact(&mut body).await.expect("body");
    Message::from_vec(&body).expect("reply decodes")
}

fn assert_answered(reply: &Message, id: u16) {
    assert_eq!(reply.metadata.id, id);
    assert_eq!(reply.metadata.message_type, MessageType::Response);
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(reply.metadata.recursion_available);
    assert_eq!(reply.answers.len(), 1);
}

/// Waits until the peer closes the connection; returns how long that took.
async fn time_to_close(stream: &mut TcpStream) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf))
        .await
        .expect("server closes the connection");
    assert!(matches!(read, Ok(0) | Err(_)), "expected EOF, got {read:?}");
    started.elapsed()
}

#[tokio::test]
async fn udp_round_trip() {
    let server = BoundServer::bind(&config("127.54.0.1")).expect("bind");
    let running = start(server, Arc::new(Fake));
    assert_ne!(running.addr.port(), 0);
    let reply = udp_exchange(running.addr, &query(7, "Www.Example.Com.")).await;
    assert_answered(&reply, 7);
    assert!(reply.queries[0]
        .name
        .eq_case(&Name::from_ascii("Www.Example.Com.").expect("name")));
    running.stop().await;
}

/// A queue that backed up before the worker started (more than three batches) is answered
/// whole, and once it has run dry a lone query still wakes the worker: the worker polled
/// the backed-up queue outside the epoll set and joined it again (`udp::Endpoint`).
#[tokio::test]
async fn udp_backed_up_queue_is_drained_and_the_worker_wakes_again() {
    let server = BoundServer::bind(&config("127.54.0.15")).expect("bind");
    let addr = server.local_addrs()[0];
    let client = UdpSocket::bind("127.0.0.1:0").await.expect("client socket");
    for id in 0..100u16 {
        client
            .send_to(&query(id, "example.com."), addr)
            .await
            .expect("send");
    }
    let running = start(server, Arc::new(Fake));
    let mut ids = Vec::new();
    let mut buf = vec![0u8; 4096];
    while ids.len() < 100 {
        let (len, _) = tokio::time::timeout(Duration::from_secs(2), client.recv_from(&mut buf))
            .await
            .expect("every queued query answered in time")
            .expect("recv");
        let reply = Message::from_vec(&buf[..len]).expect("reply decodes");
        assert_answered(&reply, reply.metadata.id);
        ids.push(reply.metadata.id);
    }
    ids.sort_unstable();
    assert_eq!(ids, (0..100).collect::<Vec<u16>>());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_answered(
        &udp_exchange(running.addr, &query(500, "example.com.")).await,
        500,
    );
    running.stop().await;
}

#[tokio::test]
async fn tcp_round_trip() {
    let server = BoundServer::bind(&config("127.54.0.2")).expect("bind");
    let running = start(server, Arc::new(Fake));
    let mut stream = TcpStream::connect(running.addr).await.expect("connect");
    stream
        .write_all(&framed(&query(8, "example.com.")))
        .await
        .expect("write");
    assert_answered(&read_framed(&mut stream).await, 8);
    running.stop().await;
}

#[tokio::test]
async fn tcp_three_pipelined_queries_answered_in_order() {
    let server = BoundServer::bind(&config("127.54.0.3")).expect("bind");
    let running = start(server, Arc::new(Fake));
    let mut stream = TcpStream::connect(running.addr).await.expect("connect");
    let mut burst = Vec::new();
    for id in [101, 102, 103] {
        burst.extend(framed(&query(id, &format!("q{id}.example."))));
    }
    stream.write_all(&burst).await.expect("write");
    for id in [101, 102, 103] {
        assert_answered(&read_framed(&mut stream).await, id);
    }
    running.stop().await;
}

/// Answers like [`Fake`] and counts the questions that reached it.
#[derive(Default)]
struct Counting(std::sync::atomic::AtomicUsize);

#[async_trait]
impl Answerer for Counting {
    async fn answer(&self, question: &Question, client: SocketAddr) -> Outcome {
        self.0.fetch_add(1, Ordering::Relaxed);
        Fake.answer(question, client).await
    }
}

/// Pipelined TCP queries for cached names are answered by the fast path (the answerer never
/// hears of them), in order, with the client's ID and question case, around one that does
/// go to the answerer; the replies of a burst may share one write.
#[tokio::test]
async fn tcp_pipelined_cache_hits_come_from_the_cache_in_order() {
    let cache = Arc::new(crate::cache::Cache::new(Default::default()));
    let name = Name::from_ascii("hit.example.").expect("name");
    let cached = Record::from_rdata(name.clone(), 300, RData::A(A(Ipv4Addr::new(192, 0, 2, 7))));
    cache.messages.insert(
        &Question::new(name, RecordType::A),
        ResponseCode::NoError,
        &[cached],
        None,
        300,
        cache.clock.unix_secs(),
        false,
    );
    let server = BoundServer::bind(&config("127.54.0.13"))
        .expect("bind")
        .serve_hits_from(cache);
    let answerer = Arc::new(Counting::default());
    let running = start(server, answerer.clone());
    let mut stream = TcpStream::connect(running.addr).await.expect("connect");
    let mut burst = Vec::new();
    for (id, qname) in [
        (201, "Hit.Example."),
        (202, "miss.example."),
        (203, "hit.example."),
    ] {
        burst.extend(framed(&query(id, qname)));
    }
    stream.write_all(&burst).await.expect("write");
    for (id, qname, addr) in [
        (201, "Hit.Example.", [192, 0, 2, 7]),
        (202, "miss.example.", [192, 0, 2, 1]),
        (203, "hit.example.", [192, 0, 2, 7]),
    ] {
        let reply = read_framed(&mut stream).await;
        assert_answered(&reply, id);
        assert!(reply.queries[0]
            .name
            .eq_case(&Name::from_ascii(qname).expect("name")));
        assert_eq!(
            reply.answers[0].data,
            RData::A(A(Ipv4Addr::from(addr))),
            "reply {id}"
        );
    }
    assert_eq!(
        answerer.0.load(Ordering::Relaxed),
        1,
        "only the miss is asked"
    );
    running.stop().await;
}

/// Stores a template with 192.0.2.9 for each question in the cache it is given, as the
/// resolver does when it learns an answer, and returns [`Fake`]'s outcome (192.0.2.1): a
/// reply with .9 came from the template, one with .1 was encoded from the outcome.
struct Storing(Arc<crate::cache::Cache>);

#[async_trait]
impl Answerer for Storing {
    async fn answer(&self, question: &Question, client: SocketAddr) -> Outcome {
        let stored = Record::from_rdata(
            question.name.clone(),
            120,
            RData::A(A(Ipv4Addr::new(192, 0, 2, 9))),
        );
        let now = self.0.clock.unix_secs();
        let code = ResponseCode::NoError;
        (self.0.messages).insert(question, code, &[stored], None, 120, now, false);
        Fake.answer(question, client).await
    }
}

/// A UDP miss is answered from the template its resolution has just stored, as the hit after
/// it will be (with the client's ID and question case), and not counted as a hit; a DO
/// client's reply is encoded from the outcome.
#[tokio::test]
async fn udp_miss_is_answered_from_the_template_its_resolution_stored() {
    let cache = Arc::new(crate::cache::Cache::new(Default::default()));
    let server = BoundServer::bind(&config("127.54.0.14"))
        .expect("bind")
        .serve_hits_from(cache.clone());
    let running = start(server, Arc::new(Storing(cache.clone())));

    let reply = udp_exchange(running.addr, &query(301, "Stored.Example.")).await;
    assert_answered(&reply, 301);
    assert!(reply.queries[0]
        .name
        .eq_case(&Name::from_ascii("Stored.Example.").expect("name")));
    assert_eq!(
        reply.answers[0].data,
        RData::A(A(Ipv4Addr::new(192, 0, 2, 9)))
    );
    assert_eq!(reply.answers[0].ttl, 120);
    assert_eq!(cache.messages.stats().hits, 0, "the miss is no hit");

    let mut signed = Message::query();
    signed.metadata.id = 302;
    signed.metadata.recursion_desired = true;
    signed.add_query(Query::query(
        Name::from_ascii("signed.example.").expect("name"),
        RecordType::A,
    ));
    let mut edns = hickory_proto::op::Edns::new();
    edns.set_dnssec_ok(true);
    signed.set_edns(edns);
    let reply = udp_exchange(running.addr, &signed.to_vec().expect("encode")).await;
    assert_answered(&reply, 302);
    assert_eq!(
        reply.answers[0].data,
        RData::A(A(Ipv4Addr::new(192, 0, 2, 1)))
    );
    running.stop().await;
}

/// Says every answer was validated secure, and counts how often it was asked.
struct Secure {
    inner: Storing,
    asked: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl Answerer for Secure {
    async fn answer(&self, question: &Question, client: SocketAddr) -> Outcome {
        self.inner.answer(question, client).await
    }

    fn secure(&self, _question: &Question) -> bool {
        self.asked.fetch_add(1, Ordering::Relaxed);
        true
    }
}

/// A UDP miss answered from its template does not look up its AD bit (the template carries
/// its own); one encoded from the outcome does, and carries AD to a client that set it
/// (RFC 6840 §5.7).
#[tokio::test]
async fn a_udp_miss_looks_up_its_ad_bit_only_when_it_encodes_the_reply() {
    let cache = Arc::new(crate::cache::Cache::new(Default::default()));
    let answerer = Arc::new(Secure {
        inner: Storing(cache.clone()),
        asked: Default::default(),
    });
    let mut ad = Message::from_vec(&query(303, "ad.example.")).expect("decode");
    ad.metadata.authentic_data = true;
    let ad = ad.to_vec().expect("encode");

    // From the template (the fast path on), then encoded from the outcome (fast path off).
    for (addr, fast, last, asked) in [("127.54.0.17", true, 9, 0), ("127.54.0.18", false, 1, 1)] {
        let mut server = BoundServer::bind(&config(addr)).expect("bind");
        if fast {
            server = server.serve_hits_from(cache.clone());
        }
        let running = start(server, answerer.clone());
        let reply = udp_exchange(running.addr, &ad).await;
        assert_answered(&reply, 303);
        assert_eq!(
            reply.answers[0].data,
            RData::A(A(Ipv4Addr::new(192, 0, 2, last)))
        );
        assert_eq!(
            answerer.asked.load(Ordering::Relaxed),
            asked,
            "fast path {fast}"
        );
        assert!(
            fast || reply.metadata.authentic_data,
            "secure, to a client that set AD"
        );
        running.stop().await;
    }
}

#[tokio::test]
async fn tcp_idle_connection_is_closed() {
    let mut cfg = config("127.54.0.4");
    cfg.tcp_idle_timeout = Duration::from_millis(200);
    let running = start(BoundServer::bind(&cfg).expect("bind"), Arc::new(Fake));

    // Idle from the start.
    let mut idle = TcpStream::connect(running.addr).await.expect("connect");
    let waited = time_to_close(&mut idle).await;
    assert!(waited >= Duration::from_millis(150), "{waited:?}");

    // Idle after one answered query.
    let mut used = TcpStream::connect(running.addr).await.expect("connect");
    used.write_all(&framed(&query(9, "example.com.")))
        .await
        .expect("write");
    assert_answered(&read_framed(&mut used).await, 9);
    time_to_close(&mut used).await;

    // A message that never completes.
    let mut stalled = TcpStream::connect(running.addr).await.expect("connect");
    stalled.write_all(&[0, 50, 1, 2, 3]).await.expect("write");
    time_to_close(&mut stalled).await;

    running.stop().await;
}

#[tokio::test]
async fn shutdown_returns_within_a_second_with_work_in_flight() {
    let running = start(
        BoundServer::bind(&config("127.54.0.5")).expect("bind"),
        Arc::new(Stuck),
    );
    // A UDP query stuck in the answerer, and a TCP connection stuck in the answerer.
    let client = UdpSocket::bind("127.0.0.1:0").await.expect("client");
    client
        .send_to(&query(1, "slow.example."), running.addr)
        .await
        .expect("send");
    let mut stream = TcpStream::connect(running.addr).await.expect("connect");
    stream
        .write_all(&framed(&query(2, "slow.example.")))
        .await
        .expect("write");
    let _idle = TcpStream::connect(running.addr).await.expect("connect");
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = Instant::now();
    running.stop().await;
    assert!(started.elapsed() < Duration::from_secs(1));
    // The server's side of the connection is gone.
    time_to_close(&mut stream).await;
}

#[tokio::test]
async fn address_in_use_gives_the_helpful_message() {
    // Someone else (no SO_REUSEPORT) holds the UDP port.
    let other = std::net::UdpSocket::bind("127.54.0.6:0").expect("bind other");
    let taken = other.local_addr().expect("addr");
    let mut cfg = config("127.54.0.6");
    cfg.listen = vec![taken];
    let error = BoundServer::bind(&cfg).expect_err("port is taken");
    assert!(matches!(error, BindError::InUse { addr, proto: Proto::Udp } if addr == taken));
    let text = error.to_string();
    assert!(text.contains(&taken.to_string()), "{text}");
    assert!(text.contains("already in use"), "{text}");
    assert!(text.contains("systemd-resolved"), "{text}");
    assert!(text.contains("--listen"), "{text}");

    // Another hopdns on the same address: UDP shares through SO_REUSEPORT, TCP cannot.
    let first = BoundServer::bind(&config("127.54.0.6")).expect("bind");
    let mut second = config("127.54.0.6");
    second.listen = first.local_addrs();
    let error = BoundServer::bind(&second).expect_err("port is taken");
    assert!(
        matches!(
            error,
            BindError::InUse {
                proto: Proto::Tcp,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn other_bind_errors_explain_the_fix() {
    let not_local: SocketAddr = "192.0.2.55:5300".parse().expect("addr");
    let mut cfg = config("127.54.0.10");
    cfg.listen = vec![not_local];
    let text = BoundServer::bind(&cfg).expect_err("not ours").to_string();
    assert!(text.contains("is not an address of this machine"), "{text}");

    let privileged = BindError::Privileged {
        addr: "127.0.0.53:53".parse().expect("addr"),
    }
    .to_string();
    assert!(privileged.contains("binding port 53 needs root or CAP_NET_BIND_SERVICE"));
    assert!(privileged.contains("setcap cap_net_bind_service=+ep $(which hopdns)"));

    cfg.listen = vec![];
    assert!(matches!(BoundServer::bind(&cfg), Err(BindError::NoListen)));
    cfg.listen = vec!["127.54.0.10:5300".parse().expect("addr"); 2];
    assert!(matches!(
        BoundServer::bind(&cfg),
        Err(BindError::Duplicate { .. })
    ));
}

#[tokio::test]
async fn port_zero_is_resolved_per_listen_entry() {
    let mut cfg = config("127.54.0.8");
    cfg.listen.push("127.54.0.9:0".parse().expect("addr"));
    cfg.threads = 3;
    let server = BoundServer::bind(&cfg).expect("bind");
    let addrs = server.local_addrs();
    assert_eq!(addrs.len(), 2);
    assert_eq!(addrs[0].ip(), cfg.listen[0].ip());
    assert_eq!(addrs[1].ip(), cfg.listen[1].ip());
    assert!(addrs.iter().all(|a| a.port() != 0));
    let running = start(server, Arc::new(Fake));
    assert_answered(&udp_exchange(addrs[1], &query(5, "example.com.")).await, 5);
    running.stop().await;
}

#[tokio::test]
async fn binds_port_53_as_root() {
    let mut cfg = config("127.54.0.12");
    cfg.listen = vec!["127.54.0.12:53".parse().expect("addr")];
    cfg.threads = 2;
    let server = match BoundServer::bind(&cfg) {
        Ok(server) => server,
        // Not root: the message must name the fix; nothing else to test here.
        Err(error @ BindError::Privileged { .. }) => {
            assert!(error.to_string().contains("CAP_NET_BIND_SERVICE"));
            return;
        }
        Err(error) => panic!("{error}"),
    };
    assert_eq!(server.local_addrs(), cfg.listen);
    let running = start(server, Arc::new(Fake));
    assert_answered(
        &udp_exchange(running.addr, &query(53, "example.com.")).await,
        53,
    );
    let mut stream = TcpStream::connect(running.addr).await.expect("connect");
    stream
        .write_all(&framed(&query(54, "example.com.")))
        .await
        .expect("write");
    assert_answered(&read_framed(&mut stream).await, 54);
    running.stop().await;
}

#[tokio::test]
async fn several_workers_on_one_port_all_receive() {
    let mut cfg = config("127.54.0.7");
    cfg.threads = 2;
    let server = BoundServer::bind(&cfg).expect("bind");
    let stats = server.stats();
    let running = start(server, Arc::new(Fake));
    // SO_REUSEPORT hashes the client's address and port: 64 clients reach both sockets
    // except with probability 2^-63.
    for i in 0..64u16 {
        assert_answered(
            &udp_exchange(running.addr, &query(i, "example.com.")).await,
            i,
        );
    }
    let per_worker: Vec<u64> = stats
        .udp_received
        .iter()
        .map(|c| c.0.load(Ordering::Relaxed))
        .collect();
    assert_eq!(per_worker.len(), 2);
    assert_eq!(per_worker.iter().sum::<u64>(), 64);
    assert!(per_worker.iter().all(|&n| n > 0), "{per_worker:?}");
    running.stop().await;
}

#[tokio::test]
async fn udp_errors_and_refusals_over_the_wire() {
    let mut cfg = config("127.54.0.11");
    cfg.threads = 1;
    let running = start(BoundServer::bind(&cfg).expect("bind"), Arc::new(Fake));
    // Garbage after a valid header: FORMERR with our ID.
    let mut wire = query(77, "example.com.")[..12].to_vec();
    wire.extend_from_slice(&[0xde, 0xad]);
    let reply = udp_exchange(running.addr, &wire).await;
    assert_eq!(reply.metadata.id, 77);
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
    // The loop survives garbage and keeps answering.
    assert_answered(
        &udp_exchange(running.addr, &query(78, "example.com.")).await,
        78,
    );
    running.stop().await;
}
