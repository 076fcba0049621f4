//! Test helpers: a lab plus an in-process hopdns on it, and a small DNS client.

#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use hopdns::lab::{Lab, LabConfig};
use hopdns::resolver::Resolver;
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
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<()>,
}

impl Env {
    /// Lab network `net` (127.53.net.0/24) and a resolver on 127.53.net.253:53, no priming.
    pub async fn start(net: u8) -> Env {
        Self::start_with(net, hopdns::cache::CacheConfig::default()).await
    }

    /// [`Env::start`] with cache settings of the test's own.
    pub async fn start_with(net: u8, cache: hopdns::cache::CacheConfig) -> Env {
        let lab = Lab::start(LabConfig { net })
            .await
            .expect("lab starts (tests run as root)");
        let resolver = Arc::new(hopdns::cli::lab::lab_resolver_with(&lab, cache).unwrap());
        let addr = SocketAddr::new(IpAddr::V4(lab.addr(RESOLVER_HOST)), 53);
        let bound = BoundServer::bind(&ServerConfig {
            listen: vec![addr],
            threads: 1,
            ..ServerConfig::default()
        })
        .expect("resolver binds");
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
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let q = query(name_, qtype, edns);
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
    let mut s = TcpStream::connect(addr).await.unwrap();
    let q = query(name_, qtype, Some(1232)).to_vec().unwrap();
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
