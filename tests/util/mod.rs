//! Test helpers: a lab plus an in-process hopdns on it, and a small DNS client.

#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use hopdns::dns::Clock;
use hopdns::lab::{Lab, LabConfig};
use hopdns::resolver::{Resolver, ResolverConfig};
use hopdns::server::{Answerer, BoundServer, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;

/// Host number of the resolver under test inside a lab network.
pub const RESOLVER_HOST: u8 = 253;

/// A running lab with a hopdns resolver in front of it.
pub struct Env {
    pub lab: Lab,
    pub resolver: Arc<Resolver>,
    pub addr: SocketAddr,
    /// The resolver's clock, manual: [`Clock::advance`] runs TTLs out without a sleep.
    pub clock: Clock,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<()>,
}

impl Env {
    /// Lab network `net` (127.53.net.0/24) and a resolver on 127.53.net.253:53, no priming,
    /// on a manual clock (it runs with real time; tests advance it instead of sleeping).
    pub async fn start(net: u8) -> Env {
        Self::start_with(net, hopdns::cache::CacheConfig::default()).await
    }

    /// [`Env::start`] with cache settings of the test's own.
    pub async fn start_with(net: u8, cache: hopdns::cache::CacheConfig) -> Env {
        Self::start_configured(net, |c| c.cache = cache).await
    }

    /// [`Env::start`] with the lab resolver's configuration changed by `change`.
    pub async fn start_configured(net: u8, change: impl FnOnce(&mut ResolverConfig)) -> Env {
        Self::start_inner(net, false, change).await
    }

    /// [`Env::start`] with DNSSEC validation from the lab's trust anchor, as `hopdns lab`
    /// runs it.
    pub async fn start_validating(net: u8) -> Env {
        Self::start_inner(net, true, |_| {}).await
    }

    async fn start_inner(net: u8, validate: bool, change: impl FnOnce(&mut ResolverConfig)) -> Env {
        let lab = Lab::start(LabConfig { net })
            .await
            .expect("lab starts (tests run as root)");
        let mut config = hopdns::cli::lab::lab_config(&lab).unwrap();
        config.clock = Clock::manual();
        // Tests count upstream queries and hops as a non-validating resolver makes them;
        // the validation tests (`validate.rs`) keep it on.
        if !validate {
            config.settings.dnssec = None;
        }
        change(&mut config);
        let clock = config.clock.clone();
        let resolver = Arc::new(Resolver::new(
            config,
            Arc::new(hopdns::transport::NetTransport::default()),
        ));
        let addr = SocketAddr::new(IpAddr::V4(lab.addr(RESOLVER_HOST)), 53);
        let bound = BoundServer::bind(&ServerConfig {
            listen: vec![addr],
            threads: 1,
            ..ServerConfig::default()
        })
        .expect("resolver binds")
        .serve_hits_from(resolver.cache().clone());
        let shutdown = CancellationToken::new();
        let answerer: Arc<dyn Answerer> = resolver.clone();
        let token = shutdown.clone();
        let server = tokio::spawn(async move {
            let _ = bound.run(answerer, token).await;
        });
        Env {
            lab,
            resolver,
            addr,
            clock,
            shutdown,
            server,
        }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.server.await;
        self.lab.shutdown().await;
    }

    pub async fn udp(&self, name: &str, qtype: RecordType) -> Message {
        udp(self.addr, name, qtype, Some(1232)).await
    }

    pub async fn tcp(&self, name: &str, qtype: RecordType) -> Message {
        tcp(self.addr, name, qtype).await
    }
}

/// Waits in 10 ms steps until `done` holds; panics naming `what` after `limit`. For waits
/// on real sockets and processes, which no clock of ours can advance.
pub async fn until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn name(s: &str) -> Name {
    let mut n = Name::from_ascii(s).unwrap();
    n.set_fqdn(true);
    n
}

pub fn query(name_: &str, qtype: RecordType, edns: Option<u16>) -> Message {
    let mut m = Message::new(rand::random(), MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(name(name_), qtype));
    if let Some(payload) = edns {
        let mut e = Edns::new();
        e.set_max_payload(payload);
        m.set_edns(e);
    }
    m
}

/// One UDP query; panics if no answer within 6 s (longer than the resolver's deadline).
pub async fn udp(addr: SocketAddr, name_: &str, qtype: RecordType, edns: Option<u16>) -> Message {
    udp_message(addr, &query(name_, qtype, edns)).await
}

/// Sends `q` over UDP and returns the reply with its ID; panics if none within 6 s.
pub async fn udp_message(addr: SocketAddr, q: &Message) -> Message {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(&q.to_vec().unwrap(), addr).await.unwrap();
    let mut buf = vec![0u8; 65535];
    let (n, _) = tokio::time::timeout(Duration::from_secs(6), sock.recv_from(&mut buf))
        .await
        .expect("an answer within 6 s")
        .unwrap();
    let m = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(m.metadata.id, q.metadata.id);
    m
}

/// One TCP query with two-byte length framing.
pub async fn tcp(addr: SocketAddr, name_: &str, qtype: RecordType) -> Message {
    tcp_message(addr, &query(name_, qtype, Some(1232))).await
}

/// Sends `q` over a new TCP connection and returns the reply; panics if none within 6 s.
pub async fn tcp_message(addr: SocketAddr, q: &Message) -> Message {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let q = q.to_vec().unwrap();
    s.write_all(&(q.len() as u16).to_be_bytes()).await.unwrap();
    s.write_all(&q).await.unwrap();
    let len = tokio::time::timeout(Duration::from_secs(6), s.read_u16())
        .await
        .expect("an answer within 6 s")
        .unwrap();
    let mut buf = vec![0u8; len as usize];
    s.read_exact(&mut buf).await.unwrap();
    Message::from_vec(&buf).unwrap()
}

/// The answer section as `name TYPE data` lines (TTLs left out: they count down).
pub fn answers(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .map(|r| format!("{} {} {}", r.name, r.record_type(), r.data))
        .collect()
}

/// Header flags as dig prints them.
pub fn flags(m: &Message) -> String {
    let md = &m.metadata;
    let mut f = vec![];
    for (on, s) in [
        (md.message_type == MessageType::Response, "qr"),
        (md.authoritative, "aa"),
        (md.truncation, "tc"),
        (md.recursion_desired, "rd"),
        (md.recursion_available, "ra"),
    ] {
        if on {
            f.push(s);
        }
    }
    f.join(" ")
}

pub fn a(addr: &str) -> RData {
    RData::A(addr.parse::<std::net::Ipv4Addr>().unwrap().into())
}

/// Path of the built `hopdns` binary.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_hopdns")
}

/// Answers every question with one A record (192.0.2.1), at once: for front-end tests that
/// need no resolver.
pub struct Fixed;

#[async_trait::async_trait]
impl Answerer for Fixed {
    async fn answer(
        &self,
        question: &hopdns::resolver::Question,
        _client: SocketAddr,
    ) -> hopdns::resolver::Outcome {
        let a = RData::A(std::net::Ipv4Addr::new(192, 0, 2, 1).into());
        hopdns::resolver::Outcome::Answer {
            answers: vec![hickory_proto::rr::Record::from_rdata(
                question.name.clone(),
                60,
                a,
            )],
        }
    }
}

/// A one-thread front end on `addr` answering with [`Fixed`], under `cfg` otherwise.
pub async fn fixed_server(addr: SocketAddr, cfg: ServerConfig) -> (CancellationToken, SocketAddr) {
    let bound = BoundServer::bind(&ServerConfig {
        listen: vec![addr],
        threads: 1,
        ..cfg
    })
    .unwrap();
    let token = CancellationToken::new();
    tokio::spawn(bound.run(Arc::new(Fixed), token.clone()));
    (token, addr)
}

/// `hopdns trace ARGS` against the lab of `env`: its root hints are written to `hints`
/// first. Returns stdout and the exit code.
pub fn trace_against(env: &Env, hints: &std::path::Path, args: &[&str]) -> (String, i32) {
    std::fs::write(hints, env.lab.root_hints()).unwrap();
    let out = std::process::Command::new(bin())
        .arg("trace")
        .args(args)
        .args([
            "--root-hints",
            hints.to_str().unwrap(),
            "--query-loopback",
            "--no-dnssec",
            "--no-ipv6",
        ])
        .output()
        .unwrap();
    (
        String::from_utf8(out.stdout).unwrap(),
        out.status.code().unwrap_or(-1),
    )
}
