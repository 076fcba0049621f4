//! The trace room: hop events emitted by the resolution state machine, and their printers.
//! Nothing here changes behaviour: `hopdns trace` prints these events, `serve` logs them at
//! debug level through `tracing`.

mod json;
mod text;
pub use crate::dns::record_text;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, Record};

use crate::dns::{Outcome, Question};

pub use json::{to_json, JsonPrinter};
pub use text::TextPrinter;

/// Where a resolution (or sub-resolution) starts its walk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CutSource {
    /// The root hints (or the primed root NS set).
    Hints,
    /// A zone cut remembered from an earlier referral.
    Cache,
    /// A forward zone from the configuration: its servers recurse for us.
    Forward,
    /// A stub zone from the configuration: iteration starts at its servers.
    Stub,
}

/// What one reply was judged to be.
#[derive(Clone, Debug, PartialEq)]
pub enum ReplyKind {
    Answer(Vec<Record>),
    /// A CNAME/DNAME chain that leaves this server's zone; resolution restarts at `target`.
    Cname {
        chain: Vec<Record>,
        target: Name,
    },
    Referral {
        zone: Name,
        ns: Vec<Name>,
        glue: Vec<(Name, IpAddr)>,
    },
    NxDomain(Option<Record>),
    NoData(Option<Record>),
    /// YXDOMAIN after a DNAME: a final answer (RFC 6672 §2.2).
    YxDomain(Vec<Record>),
    /// A reply believed only if no other server of the cut does better; the server is
    /// skipped for now.
    Provisional {
        kind: Box<ReplyKind>,
        why: &'static str,
    },
    /// Skipped: REFUSED, SERVFAIL, non-authoritative, upward referral...
    Lame(String),
    /// TC set over UDP: the same server is asked again over TCP.
    Truncated,
    /// FORMERR to a query with EDNS: the same server is asked again without it.
    EdnsRejected,
    /// The answer to the priming query (RFC 8109): the root NS set and its addresses.
    RootNs {
        ns: Vec<Name>,
        glue: Vec<(Name, IpAddr)>,
    },
}

/// A response's header flags as dig prints them ("qr aa tc rd ra", those that are set).
pub fn flags(m: &hickory_proto::op::Metadata) -> String {
    let mut out = String::from("qr");
    for (on, f) in [
        (m.authoritative, " aa"),
        (m.truncation, " tc"),
        (m.recursion_desired, " rd"),
        (m.recursion_available, " ra"),
    ] {
        if on {
            out.push_str(f);
        }
    }
    out
}

/// An rcode as dig prints it (NOERROR, NXDOMAIN, SERVFAIL...).
pub fn rcode_name(rcode: ResponseCode) -> String {
    match rcode {
        ResponseCode::NoError => "NOERROR".into(),
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::NXDomain => "NXDOMAIN".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        ResponseCode::Refused => "REFUSED".into(),
        ResponseCode::YXDomain => "YXDOMAIN".into(),
        other => format!("RCODE{}", u16::from(other)),
    }
}

/// One step of a resolution. Built only when someone listens, so size is no concern.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum HopEvent {
    /// A (sub-)resolution starts. `depth` is 0 for the client's question.
    Start { depth: usize, question: Question },
    /// The walk for `name` starts at `zone`.
    Cut {
        depth: usize,
        zone: Name,
        source: CutSource,
    },
    /// Answered from the cache without asking anyone.
    CacheAnswer {
        depth: usize,
        question: Question,
        records: Vec<Record>,
        rcode: ResponseCode,
    },
    /// A server answered.
    Reply {
        depth: usize,
        zone: Name,
        server: SocketAddr,
        server_name: Option<Name>,
        question: Question,
        tcp: bool,
        rcode: ResponseCode,
        flags: String,
        kind: ReplyKind,
        rtt: Duration,
    },
    /// A server did not answer in time (or the network refused).
    NoReply {
        depth: usize,
        zone: Name,
        server: SocketAddr,
        server_name: Option<Name>,
        question: Question,
        tcp: bool,
        error: String,
        after: Duration,
    },
    /// No server of the cut did better than a provisional reply kept from `server`: that
    /// reply is used now.
    Fallback {
        depth: usize,
        zone: Name,
        server: SocketAddr,
        server_name: Option<Name>,
    },
    /// A forward or stub zone's configured server answered: which one, how (transport, TLS
    /// connection new or reused) and how fast. The Reply event follows.
    Forwarded {
        depth: usize,
        zone: Name,
        server: SocketAddr,
        server_name: Option<Name>,
        /// A forwarder (RD set) rather than a stub zone's authority.
        forward: bool,
        via: &'static str,
        rtt: Duration,
    },
    /// Answered by a locally served zone (`--local-zone`), without any query.
    Local {
        depth: usize,
        zone: Name,
        question: Question,
        records: Vec<Record>,
        rcode: ResponseCode,
    },
    /// Every forwarder of a forward-first zone failed: iteration takes over.
    ForwardFailed {
        depth: usize,
        zone: Name,
        failure: crate::dns::Failure,
    },
    /// Glueless name server: its address is looked up first.
    LookupNs { depth: usize, ns: Name },
    /// A redirect rule matched the question (`hopdns trace --rules`): the rule's pattern
    /// and where it is defined, what it does, and for a pool its members (health, check
    /// RTT, state changes so far, and which were picked).
    Redirect {
        depth: usize,
        question: Question,
        rule: String,
        origin: String,
        action: String,
        members: Vec<MemberView>,
    },
    /// The resolution ended.
    Done { depth: usize, outcome: Outcome },
    /// A DNSSEC check (`trace --dnssec`): what a DS or DNSKEY fetch, or the outcome's own
    /// records, brought for `zone` (key tags, algorithms, RRSIG validity windows) and what
    /// it proved.
    Dnssec {
        depth: usize,
        zone: Name,
        step: String,
    },
    /// The outcome's validation state (RFC 4035 §4.3) and its Extended DNS Error, if any.
    Validated {
        depth: usize,
        state: String,
        ede: Option<u16>,
        reason: Option<String>,
    },
}

impl HopEvent {
    /// A DNSSEC event, shown only by `trace --dnssec` (and the debug log).
    pub fn is_dnssec(&self) -> bool {
        matches!(self, HopEvent::Dnssec { .. } | HopEvent::Validated { .. })
    }
}

/// Passes every event but the DNSSEC ones to `inner` (`trace` without `--dnssec`).
pub struct WithoutDnssec<'a>(pub &'a mut dyn TraceSink);

impl TraceSink for WithoutDnssec<'_> {
    fn event(&mut self, event: &HopEvent) {
        if !event.is_dnssec() {
            self.0.event(event);
        }
    }
}

/// One pool member as a [`HopEvent::Redirect`] shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberView {
    pub address: IpAddr,
    pub weight: u32,
    pub up: bool,
    /// Smoothed health-check RTT, once a check succeeded.
    pub rtt: Option<Duration>,
    /// Up/down changes so far.
    pub changes: u64,
    /// In this answer.
    pub chosen: bool,
}

/// Receives hop events as they happen.
pub trait TraceSink: Send {
    fn event(&mut self, event: &HopEvent);
}

/// Sends hop events to `tracing` at debug level (what `serve` uses).
#[derive(Default)]
pub struct LogSink;

impl TraceSink for LogSink {
    fn event(&mut self, event: &HopEvent) {
        tracing::debug!(target: "hopdns::trace", "{}", text::line(event));
    }
}

/// Discards events (the fast path when nobody listens).
#[derive(Default)]
pub struct NoSink;

impl TraceSink for NoSink {
    fn event(&mut self, _: &HopEvent) {}
}

/// Keeps every event (tests and the trace command).
#[derive(Default)]
pub struct Collect(pub Vec<HopEvent>);

impl TraceSink for Collect {
    fn event(&mut self, event: &HopEvent) {
        self.0.push(event.clone());
    }
}
