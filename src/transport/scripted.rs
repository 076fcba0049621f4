//! Scripted authorities: canned replies keyed by (server, name, type), in-process and without
//! sockets (after hickory-dns' `MockNetworkHandler`). Unit tests of the state machine and the
//! resolution benchmarks run on it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use async_trait::async_trait;
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{CNAME, NS, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::{Exchange, OutQuery, TransportError};
use crate::cache::{Delegation, NsName};

/// What a scripted server does with one question.
#[derive(Clone, Debug)]
pub enum Script {
    Reply(Message),
    /// Truncated over UDP, this message over TCP.
    TruncatedThen(Message),
    /// FORMERR to EDNS queries, this message without EDNS.
    NoEdnsThen(Message),
    Timeout,
}

/// One query a scripted server received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub server: IpAddr,
    pub name: Name,
    pub qtype: RecordType,
    pub tcp: bool,
    pub edns: bool,
}

#[derive(Debug, Default)]
pub struct Scripted {
    scripts: Mutex<HashMap<(IpAddr, Name, RecordType), Script>>,
    /// Fallback per server for questions without their own script.
    defaults: Mutex<HashMap<IpAddr, Script>>,
    /// How long a server takes to reply (none: at once).
    delays: Mutex<HashMap<IpAddr, std::time::Duration>>,
    seen: Mutex<Vec<Seen>>,
}

fn n(s: &str) -> Name {
    let mut name = Name::from_ascii(s).expect("a valid test name");
    name.set_fqdn(true);
    name
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("a valid test address")
}

impl Scripted {
    pub fn new() -> Self {
        Self::default()
    }

    /// `server` answers `name`/`qtype` with `script`.
    pub fn on(&self, server: &str, name: &str, qtype: RecordType, script: Script) -> &Self {
        self.scripts
            .lock()
            .unwrap()
            .insert((ip(server), n(name).to_lowercase(), qtype), script);
        self
    }

    /// `server` answers every question without its own script with `script`.
    pub fn default_for(&self, server: &str, script: Script) -> &Self {
        self.defaults.lock().unwrap().insert(ip(server), script);
        self
    }

    /// `server` takes `delay` to reply (in the test's paused time, as in real time).
    pub fn delay(&self, server: &str, delay: std::time::Duration) -> &Self {
        self.delays.lock().unwrap().insert(ip(server), delay);
        self
    }

    /// Every query received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The reply `server` gives to a query (None: it stays silent).
    pub fn reply(
        &self,
        server: SocketAddr,
        name: &Name,
        qtype: RecordType,
        tcp: bool,
        edns: bool,
    ) -> Option<Message> {
        self.seen.lock().unwrap().push(Seen {
            server: server.ip(),
            name: name.clone(),
            qtype,
            tcp,
            edns,
        });
        let key = (server.ip(), name.to_lowercase(), qtype);
        let script = self
            .scripts
            .lock()
            .unwrap()
            .get(&key)
            .cloned()
            .or_else(|| self.defaults.lock().unwrap().get(&server.ip()).cloned())?;
        let mut msg = match script {
            Script::Reply(m) => m,
            Script::TruncatedThen(m) if tcp => m,
            Script::TruncatedThen(m) => {
                let mut t = Message::new(0, MessageType::Response, OpCode::Query);
                t.metadata.truncation = true;
                t.metadata.authoritative = m.metadata.authoritative;
                t
            }
            Script::NoEdnsThen(m) if !edns => m,
            Script::NoEdnsThen(_) => {
                let mut f = Message::new(0, MessageType::Response, OpCode::Query);
                f.metadata.response_code = ResponseCode::FormErr;
                f
            }
            Script::Timeout => return None,
        };
        msg.queries = vec![hickory_proto::op::Query::query(name.clone(), qtype)];
        Some(msg)
    }
}

#[async_trait]
impl Exchange for Scripted {
    async fn exchange(&self, q: &OutQuery) -> Result<Message, TransportError> {
        let delay = self.delays.lock().unwrap().get(&q.server.ip()).copied();
        if let Some(delay) = delay.filter(|d| *d < q.timeout) {
            tokio::time::sleep(delay).await;
        }
        match self.reply(q.server, &q.query.name, q.query.query_type, q.tcp, q.edns) {
            Some(m) => Ok(m),
            None => {
                tokio::time::sleep(q.timeout).await;
                Err(TransportError::Timeout)
            }
        }
    }
}

/// Root hints with one server, `a.root.` at `addr`: the top of a scripted world.
pub fn root_hints(addr: &str) -> Delegation {
    Delegation {
        zone: Name::root(),
        servers: vec![NsName {
            name: n("a.root."),
            addrs: vec![ip(addr)],
        }],
    }
}

fn response(aa: bool) -> Message {
    let mut m = Message::new(0, MessageType::Response, OpCode::Query);
    m.metadata.authoritative = aa;
    m
}

/// A record from text parts: `rec("www.example.", 300, a("192.0.2.1"))`.
pub fn rec(owner: &str, ttl: u32, data: RData) -> Record {
    Record::from_rdata(n(owner), ttl, data)
}

pub fn a(addr: &str) -> RData {
    RData::A(addr.parse::<std::net::Ipv4Addr>().expect("IPv4").into())
}

pub fn cname(target: &str) -> RData {
    RData::CNAME(CNAME(n(target)))
}

pub fn soa(zone: &str) -> Record {
    let under = |label: &str| {
        if zone == "." {
            format!("{label}.")
        } else {
            format!("{label}.{zone}")
        }
    };
    let s = SOA::new(n(&under("ns")), n(&under("host")), 1, 3600, 600, 86400, 300);
    Record::from_rdata(n(zone), 300, RData::SOA(s))
}

/// A referral to `zone` with NS names and (optional) glue addresses.
pub fn referral(zone: &str, servers: &[(&str, Option<&str>)]) -> Message {
    let mut m = response(false);
    for (ns, glue) in servers {
        m.add_authority(Record::from_rdata(n(zone), 86400, RData::NS(NS(n(ns)))));
        if let Some(g) = glue {
            m.add_additional(rec(ns, 86400, a(g)));
        }
    }
    m
}

/// An authoritative answer with these records.
pub fn answer(records: Vec<Record>) -> Message {
    let mut m = response(true);
    m.add_answers(records);
    m
}

/// An authoritative NXDOMAIN with the zone's SOA.
pub fn nxdomain(zone: &str) -> Message {
    let mut m = response(true);
    m.metadata.response_code = ResponseCode::NXDomain;
    m.add_authority(soa(zone));
    m
}

/// An authoritative NODATA with the zone's SOA.
pub fn nodata(zone: &str) -> Message {
    let mut m = response(true);
    m.add_authority(soa(zone));
    m
}

/// An error reply (REFUSED, SERVFAIL...).
pub fn error(rcode: ResponseCode) -> Message {
    let mut m = response(false);
    m.metadata.response_code = rcode;
    m
}
