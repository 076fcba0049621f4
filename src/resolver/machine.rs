//! The resolution state machine: plain data and transitions (sans-IO).
//!
//! A [`Resolution`] answers one question. It is driven with two calls, after quinn-proto's
//! `Connection` and Knot Resolver's consume/produce loop:
//!
//! * [`Resolution::poll`] runs the machine until it must wait, and returns what to do next:
//!   [`Action::Ask`] (ask one of these servers this question) or [`Action::Done`].
//! * [`Resolution::handle`] feeds back what happened to the last `Ask`: a response, no
//!   response, or the deadline.
//!
//! The machine never opens a socket, never sleeps and never reads the clock: `now` (seconds
//! of the resolver's `dns::Clock`, for TTLs) is an argument. Its one side effect is on the [`Cache`]
//! (plain data behind locks): it reads answers, cuts and server addresses, and writes what a
//! reply teaches, all in `learn.rs` (cuts, chains, negative answers, failures). Glueless NS
//! lookups and CNAME restarts are explicit frames on a stack with budgets (Knot's
//! `kr_rplan`), never recursion on the async stack.
//!
//! Priming (RFC 8109) is a resolution of its own ([`Resolution::priming`], Unbound's
//! priming state): `. NS` asked of the root hints, at most [`PRIMING_TRIES`] servers, the
//! reply checked by `hints::primed` and learnt as the root cut.
//!
//! Each frame walks: `Start` (cache, then closest zone cut) -> `Query { cut }` (choose the
//! servers to ask, or look up a glueless NS address first) -> `Waiting { cut, sent }` ->
//! classify the reply, hear QNAME minimisation's verdict (`minimise.rs`), and one match sets
//! the next phase (answer, restart at a CNAME target, descend on a referral, skip a lame
//! server, keep a provisional reply, retry over TCP or without EDNS) -> ... -> `Finished`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::classify::{classify, classify_recursive, ns_target, Reply};
use super::cut::Cut;
pub use super::cut::{is_loopback_like, usable};
use super::forward::ZoneRules;
use super::learn::{
    cache_chain, cached_dname, chain_end, learn_referral, negative_soa, outcome_from_cached,
    remember_failure,
};
pub use super::learn::{MAX_GLUE_PER_NS, MAX_NS_PER_CUT};
use super::minimise::{minimised_verdict, Minimise, Verdict};
pub use super::minimise::{MinimiseMode, MAX_MINIMISE_COUNT, MINIMISE_ONE_LAB};
use super::{Failure, Limits, Outcome, Question};
use crate::cache::{Cache, Delegation};
use crate::dns::DnssecRecords;
use crate::dnssec::{self, chain, judge};
use crate::local::LocalZones;
use crate::trace::{CutSource, HopEvent, ReplyKind};
use crate::transport::Upstream;

/// Transport choices that constrain which addresses the machine may ask.
#[derive(Clone, Debug)]
pub struct Settings {
    pub ipv4: bool,
    pub ipv6: bool,
    /// Ask 127.0.0.0/8 and ::1 addresses learned from referrals (off by default, as Unbound's
    /// `do-not-query-localhost`). Root hints are used whatever their address.
    pub query_loopback: bool,
    /// QNAME minimisation (RFC 9156): how much of the name each zone's servers are told.
    pub minimise: MinimiseMode,
    /// The QTYPE of minimised queries: A (RFC 9156 §2.1 recommends it: NS queries are rare
    /// and some servers answer them badly) or NS (as Knot Resolver sends).
    pub minimise_qtype: RecordType,
    pub limits: Limits,
    /// hopdns's own listen addresses: never asked upstream (a referral to them would make
    /// hopdns query itself), whatever `query_loopback` says.
    pub own_addrs: Vec<IpAddr>,
    /// DNSSEC validation settings; `None` is `--no-dnssec` (docs/dnssec.md): the client's
    /// outcome is validated with DS/DNSKEY fetch frames before it is given.
    pub dnssec: Option<Arc<crate::dnssec::Config>>,
    /// Forward and stub zones (`[[forward]]`, `[[stub]]`, `--forward`, `--stub`).
    pub zones: Arc<ZoneRules>,
    /// Zones answered here without any query (`--local-zone`; RFC 6761, RFC 6303...).
    pub local: Arc<LocalZones>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            ipv4: true,
            ipv6: true,
            query_loopback: false,
            minimise: MinimiseMode::Relaxed,
            minimise_qtype: RecordType::A,
            limits: Limits::default(),
            own_addrs: Vec::new(),
            dnssec: None,
            zones: Arc::default(),
            local: Arc::default(),
        }
    }
}

/// What the driver must do next.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Send `query` to one of `candidates` (the driver picks by RTT) and report back.
    Ask(Ask),
    /// The resolution is over.
    Done(Outcome),
}

/// One upstream query to make (named so it does not shadow the `Send` trait).
#[derive(Clone, Debug, PartialEq)]
pub struct Ask {
    pub query: Query,
    /// The zone the candidates serve (for the infra cache and logs).
    pub zone: Name,
    pub candidates: Vec<SocketAddr>,
    /// The parent's glue for the cut's name servers, where it differs from the child's own
    /// addresses in `candidates`: the driver may ask one of these instead when every
    /// candidate is known to be timing out (a child whose NS addresses are dead), rather
    /// than wait out their timeouts first.
    pub fallback: Vec<SocketAddr>,
    pub tcp: bool,
    pub edns: bool,
    /// RD set: the candidates are a forward zone's recursive servers.
    pub rd: bool,
    /// A forward or stub zone's configured servers: how each candidate is reached (TCP
    /// only, DNS over TLS). Empty for cuts learned from referrals (UDP, TCP after TC).
    pub upstreams: Arc<[Upstream]>,
    /// Set DO (RFC 4035 §3.2.1): validation is on and wants RRSIGs and proofs.
    pub dnssec_ok: bool,
}

/// How the driver reaches the server it chose among an [`Ask`]'s candidates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Route {
    pub tcp: bool,
    /// DNS over TLS, the certificate checked against this name.
    pub tls: Option<Arc<str>>,
    /// RD set (a forwarder).
    pub rd: bool,
}

impl Ask {
    /// How to reach `server`, one of the candidates: over TCP (`tcp` or a `tcp://`
    /// server), over TLS for a `tls://` one, with RD for a forwarder.
    pub fn route(&self, server: SocketAddr) -> Route {
        let (tcp, tls) = match self.upstreams.iter().find(|u| u.addr == server) {
            Some(u) => match &u.protocol {
                crate::transport::Protocol::Udp => (self.tcp, None),
                crate::transport::Protocol::Tcp => (true, None),
                crate::transport::Protocol::Tls { name } => (true, Some(name.clone())),
            },
            None => (self.tcp, None),
        };
        Route {
            tcp,
            tls,
            rd: self.rd,
        }
    }
}

/// What happened to the last `Ask`.
#[derive(Clone, Debug)]
pub enum Event {
    /// A response that the transport matched to our query (ID, address, question).
    /// `edns` says whether the query that was actually sent carried EDNS.
    Response {
        from: SocketAddr,
        message: Message,
        rtt: Duration,
        edns: bool,
        /// How it came (the trace shows it for forwarders: TLS connection new or reused).
        via: crate::transport::Via,
    },
    /// A reply came back but could not be used (it did not decode): skip this server here.
    Unusable {
        from: SocketAddr,
        error: String,
        after: Duration,
    },
    /// No usable response: timeout or network error.
    NoReply {
        from: SocketAddr,
        error: String,
        after: Duration,
    },
    /// The request's deadline passed.
    Deadline,
}

/// Where one frame stands. The phases that work in a zone cut carry it, and the one that
/// waits carries what it sent, so no phase reads state another phase may not have set.
/// A frame's phase moves out of the frame and back at every step of [`Resolution::poll`] and
/// [`Resolution::handle`]: the zone cut (712 bytes) is boxed so those moves copy a pointer,
/// not the cut (issue 17.1).
#[derive(Clone, Debug)]
enum Phase {
    /// Answer from the cache, or find the closest zone cut.
    Start,
    /// Choose what to ask in `cut`; a `retry` of one server (over TCP, without EDNS, with
    /// the full name) comes first.
    Query {
        cut: Box<Cut>,
        retry: Option<Retry>,
    },
    /// `sent` is out: waiting for [`Resolution::handle`].
    Waiting {
        cut: Box<Cut>,
        sent: Ask,
    },
    /// The bottom frame's outcome is being validated (`Resolution::val`): fetch frames run
    /// above it until the walk and the judgement are done.
    Validate,
    Finished(Outcome),
}

/// A retry of the same server: over TCP after TC, without EDNS after FORMERR, or with the
/// full name after a bad answer to a minimised one.
#[derive(Clone, Debug)]
struct Retry {
    server: SocketAddr,
    tcp: bool,
    edns: bool,
}

#[derive(Clone, Debug)]
struct Frame {
    /// The question this frame was created for.
    question: Question,
    /// The name being resolved now (differs from the question's after a CNAME/DNAME).
    qname: Name,
    /// CNAME/DNAME records followed so far.
    chain: Vec<Record>,
    referrals: usize,
    phase: Phase,
    /// For a glueless-NS lookup: the NS name whose address the parent frame needs.
    ns_for: Option<Name>,
    /// QNAME minimisation progress in the current cut.
    min: Minimise,
    /// The forwarders of a forward-first zone all failed: iterate instead.
    no_forward: bool,
    /// A DS or DNSKEY fetch for validation: its outcome feeds the chain walk.
    fetch: bool,
    /// RRSIG, NSEC and NSEC3 records of the replies that made this frame's outcome, kept
    /// for validation (only when validating).
    sigs: Vec<Record>,
    /// The zones whose servers gave those replies: each is walked to before judging, so
    /// unsigned data is found insecure rather than missing its RRSIGs.
    zones: Vec<Name>,
}

impl Frame {
    fn new(question: Question, ns_for: Option<Name>) -> Self {
        Self {
            qname: question.name.clone(),
            question,
            chain: Vec::new(),
            referrals: 0,
            phase: Phase::Start,
            ns_for,
            min: Minimise::default(),
            no_forward: false,
            fetch: false,
            sigs: Vec::new(),
            zones: Vec::new(),
        }
    }

    /// The question to send now: the full one, or its minimised form (RFC 9156 §3).
    fn to_ask(&self, settings: &Settings) -> Question {
        self.min.question(self.current(), settings)
    }

    /// Moves to a new cut: minimisation starts again below it.
    fn enter(&mut self, cut: Box<Cut>) {
        self.min.known = cut.zone.iter().len();
        self.phase = Phase::Query { cut, retry: None };
    }

    fn current(&self) -> Question {
        Question::with_class(
            self.qname.clone(),
            self.question.qtype,
            self.question.qclass,
        )
    }
}

/// Hint servers a priming resolution asks before it gives up (the hints stay in use).
pub const PRIMING_TRIES: usize = 3;

/// Transitions one [`Resolution::poll`] may make before it gives up. A walk needs a few
/// dozen; the bound keeps a hostile reply from buying unbounded CPU between two sends.
pub const MAX_STEPS_PER_POLL: usize = 2_000;

// One Step per poll iteration, returned at once: boxing the Ask would cost an allocation
// per upstream query for nothing.
#[allow(clippy::large_enum_variant)]
enum Step {
    Continue,
    Ask(Ask),
}

/// One resolution: a stack of frames (the client's question at the bottom, glueless-NS
/// lookups above it) and the budgets they share.
#[derive(Debug)]
pub struct Resolution {
    frames: Vec<Frame>,
    /// Shared, not copied per resolution: only a cold cache falls back to it.
    root: Arc<Delegation>,
    settings: Arc<Settings>,
    queries: usize,
    ns_lookups: usize,
    finished: Option<Outcome>,
    events: Option<Vec<HopEvent>>,
    /// Prefetch: the client's question (and its CNAME chain) is asked upstream even though
    /// the cache still holds it; sub-resolutions use the cache as usual.
    refresh: bool,
    /// RFC 8109 priming: `. NS` of the hint servers, learnt as the root cut.
    priming: bool,
    /// DNSSEC validation of the client's outcome; `None` with `--no-dnssec` and priming.
    /// Boxed: it is most of a resolution's size, and a resolution is moved a few times.
    val: Option<Box<Validation>>,
    /// The validation state of the outcome, once it is known.
    verdict: Option<dnssec::Verdict>,
    /// The outcome's RRSIGs and NSEC/NSEC3 proof, for clients that set DO (RFC 4035
    /// §3.2.1): chosen from the records that came with it once it is validated.
    dnssec_records: DnssecRecords,
    /// The outcome was synthesised from cached NSEC ranges (RFC 8198): `Some(true)` for
    /// NXDOMAIN, `Some(false)` for NODATA.
    aggressive: Option<bool>,
    /// The RRSIG/NSEC/NSEC3/SOA records that came with the outcome, kept when asked
    /// ([`Resolution::keeping_signatures`]: the RFC 5011 refresh checks them itself).
    signatures: Option<Vec<Record>>,
}

/// Where validation of the bottom frame's outcome stands.
#[derive(Debug)]
struct Validation {
    config: Arc<dnssec::Config>,
    /// One budget per client request (KeyTrap, CVE-2023-50387; NSEC3, CVE-2023-50868).
    budget: dnssec::Budget,
    /// The outcome being judged, and the RRSIG/NSEC/NSEC3 records that came with it.
    pending: Option<(Outcome, Vec<Record>)>,
    /// Zones that answered, still to walk to before judging.
    zones: Vec<Name>,
    /// The least secure verdict of a walk that found no keys (insecure, indeterminate).
    unsigned: Option<dnssec::Verdict>,
    /// Walks started: a bound on the signers one outcome may name.
    walks: usize,
    /// The walk under way to a signer's keys.
    walk: Option<chain::Walk>,
    /// Validated key sets of the signers walked to.
    keys: Vec<dnssec::verify::KeySet>,
    /// Lowest TTL of the last fetch: how long an insecure verdict it proved is kept.
    last_ttl: u32,
    done: bool,
    /// CD from the client (RFC 6840 §5.9): a bogus outcome is given as it is.
    unchecked: bool,
    /// DS sets (with their RRSIGs) that came in the authority section of referrals on the
    /// way down (RFC 4035 §3.1.4.1), by child zone: a walk takes them instead of asking
    /// the parent again, as Unbound does. They are verified like fetched ones.
    referral_ds: Vec<(Name, Vec<Record>, Vec<Record>)>,
}

/// Referral DS sets kept per resolution at most (a chain of delegations is far shorter).
const MAX_REFERRAL_DS: usize = 16;

impl Resolution {
    /// A resolution of `question`, starting from `root` (hints or primed) when the cache has
    /// no closer cut. With `trace`, hop events are recorded for [`Self::take_events`].
    pub fn new(
        question: Question,
        root: Arc<Delegation>,
        settings: Arc<Settings>,
        trace: bool,
    ) -> Self {
        let mut r = Self {
            frames: vec![Frame::new(question.clone(), None)],
            root,
            settings,
            queries: 0,
            ns_lookups: 0,
            finished: None,
            events: trace.then(Vec::new),
            refresh: false,
            priming: false,
            val: None,
            verdict: None,
            dnssec_records: DnssecRecords::default(),
            aggressive: None,
            signatures: None,
        };
        if let Some(config) = r.settings.dnssec.clone() {
            r.val = Some(Box::new(Validation {
                config,
                budget: dnssec::Budget::default(),
                pending: None,
                zones: Vec::new(),
                unsigned: None,
                walks: 0,
                walk: None,
                keys: Vec::new(),
                last_ttl: 0,
                done: false,
                unchecked: false,
                referral_ds: Vec::new(),
            }));
        }
        r.emit(|| HopEvent::Start { depth: 0, question });
        r
    }

    /// RFC 8109 priming: asks the servers of the root hints `root` for the root NS set
    /// (never from the cache), at most [`PRIMING_TRIES`] of them, each with the usual TCP
    /// and no-EDNS retries; a valid reply (`hints::primed`) becomes the cached root cut and
    /// the outcome is its NS records. Its trace shows only the exchanges.
    pub fn priming(root: Arc<Delegation>, settings: Arc<Settings>, trace: bool) -> Self {
        let question = Question::new(Name::root(), RecordType::NS);
        let mut r = Self::new(question, root, settings, false).refreshing();
        r.priming = true;
        r.val = None;
        r.events = trace.then(Vec::new);
        r
    }

    /// For a client that set CD (RFC 6840 §5.9): validation still runs (its verdict says
    /// whether AD may be set) but a bogus outcome is not turned into SERVFAIL.
    pub fn unchecked(mut self) -> Self {
        if let Some(v) = self.val.as_mut() {
            v.unchecked = true;
        }
        self
    }

    /// Makes this a refresh (prefetch): answers for the question itself are not taken from
    /// the cache, zone cuts and server addresses are.
    pub fn refreshing(mut self) -> Self {
        self.refresh = true;
        self
    }

    /// Keeps the RRSIG, NSEC, NSEC3 and SOA records that came with the outcome, for
    /// [`Resolution::signatures`] (with validation on).
    pub fn keeping_signatures(mut self) -> Self {
        self.signatures = Some(Vec::new());
        self
    }

    /// The records kept by [`Resolution::keeping_signatures`] once validation is over.
    pub fn signatures(&self) -> &[Record] {
        self.signatures.as_deref().unwrap_or(&[])
    }

    /// Upstream queries asked for so far (sub-resolutions included).
    pub fn queries_sent(&self) -> usize {
        self.queries
    }

    /// The outcome's validation state (RFC 4035 §4.3): `None` with `--no-dnssec` or before
    /// the outcome is known.
    pub fn verdict(&self) -> Option<&dnssec::Verdict> {
        self.verdict.as_ref()
    }

    /// The outcome's RRSIGs and NSEC/NSEC3 proof for a client that set DO (RFC 4035
    /// §3.2.1, §3.1.3): empty without validation, for unsigned data and for a bogus
    /// outcome given as SERVFAIL; for secure, insecure-but-signed and (CD) unchecked bogus
    /// data, what the authorities sent with it. TTLs as received.
    pub fn dnssec_records(&self) -> &DnssecRecords {
        &self.dnssec_records
    }

    /// Whether the outcome was synthesised from the validated cache without asking (RFC
    /// 8198): `Some(true)` NXDOMAIN, `Some(false)` NODATA.
    pub fn aggressive(&self) -> Option<bool> {
        self.aggressive
    }

    /// Signature verifications and NSEC3 hashes spent by validation so far.
    pub fn validation_cost(&self) -> (u32, u32) {
        self.val
            .as_ref()
            .map_or((0, 0), |v| (v.budget.verifications(), v.budget.hashes()))
    }

    /// Hop events recorded since the last call.
    pub fn take_events(&mut self) -> Vec<HopEvent> {
        self.events.as_mut().map(std::mem::take).unwrap_or_default()
    }

    fn emit(&mut self, f: impl FnOnce() -> HopEvent) {
        if let Some(ev) = self.events.as_mut() {
            let event = f();
            let exchange = matches!(
                event,
                HopEvent::Reply { .. } | HopEvent::NoReply { .. } | HopEvent::Fallback { .. }
            );
            if exchange || !self.priming {
                ev.push(event);
            }
        }
    }

    fn depth(&self) -> usize {
        self.frames.len().saturating_sub(1)
    }

    fn top(&mut self) -> &mut Frame {
        self.frames
            .last_mut()
            .expect("a live resolution has a frame")
    }

    /// Runs until the machine needs the network or is done. At most [`MAX_STEPS_PER_POLL`]
    /// transitions: whatever a reply said, one poll costs bounded CPU.
    pub fn poll(&mut self, cache: &Cache, now: u64) -> Action {
        let mut steps = 0;
        loop {
            if let Some(o) = &self.finished {
                return Action::Done(o.clone());
            }
            steps += 1;
            if steps > MAX_STEPS_PER_POLL {
                self.finish(
                    Outcome::ServFail(Failure::StepBudget(MAX_STEPS_PER_POLL)),
                    cache,
                    now,
                );
                continue;
            }
            // Each arm leaves the frame in its next phase.
            let phase = std::mem::replace(&mut self.top().phase, Phase::Start);
            let step = match phase {
                Phase::Start => self.start(cache, now),
                Phase::Query { cut, retry } => self.next_query(cut, retry, cache, now),
                // Polled again without an event: ask again for the same thing.
                Phase::Waiting { cut, sent } => {
                    self.top().phase = Phase::Waiting {
                        cut,
                        sent: sent.clone(),
                    };
                    Step::Ask(sent)
                }
                Phase::Validate => self.validate(cache, now),
                Phase::Finished(outcome) => {
                    self.pop(outcome, cache, now);
                    Step::Continue
                }
            };
            if let Step::Ask(send) = step {
                return Action::Ask(send);
            }
        }
    }

    /// Feeds back what happened to the last [`Action::Ask`].
    pub fn handle(&mut self, event: Event, cache: &Cache, now: u64) {
        if self.finished.is_some() {
            return;
        }
        if let Event::Deadline = event {
            self.finish(Outcome::ServFail(Failure::Deadline), cache, now);
            return;
        }
        // Only a waiting frame expects an event; anything else is ignored.
        let frame = self.top();
        let (cut, mut sent) = match std::mem::replace(&mut frame.phase, Phase::Start) {
            Phase::Waiting { cut, sent } => (cut, sent),
            other => {
                frame.phase = other;
                return;
            }
        };
        match event {
            Event::Deadline => {}
            Event::NoReply { from, error, after } => {
                self.no_reply(cut, &sent, from, error, after, false)
            }
            // A reply came but did not decode: skip this server here.
            Event::Unusable { from, error, after } => {
                self.no_reply(cut, &sent, from, error, after, true)
            }
            Event::Response {
                from,
                message,
                rtt,
                edns,
                via,
            } => {
                sent.edns = edns;
                // A tcp:// or tls:// forwarder: the reply came over a stream (TC means
                // nothing more to fetch, and the trace says so).
                sent.tcp |= via != crate::transport::Via::Udp;
                if cut.configured.is_some() {
                    let depth = self.depth();
                    let (zone, server_name) = (cut.zone.clone(), cut.server_name(from.ip()));
                    self.emit(|| HopEvent::Forwarded {
                        depth,
                        zone,
                        server: from,
                        server_name,
                        forward: cut.is_forward(),
                        via: via.label(),
                        rtt,
                    });
                }
                self.on_response(from, &message, rtt, cut, &sent, cache, now);
            }
        }
    }

    /// Nothing usable came back from `from`: count the try (and with `unusable`, skip the
    /// server in this cut), then choose again.
    fn no_reply(
        &mut self,
        mut cut: Box<Cut>,
        sent: &Ask,
        from: SocketAddr,
        error: String,
        after: Duration,
        unusable: bool,
    ) {
        *cut.attempts.entry(from.ip()).or_default() += 1;
        if unusable {
            cut.bad.insert(from.ip());
        }
        let depth = self.depth();
        let (zone, server_name) = (cut.zone.clone(), cut.server_name(from.ip()));
        self.top().phase = Phase::Query { cut, retry: None };
        self.emit(|| HopEvent::NoReply {
            depth,
            zone,
            server: from,
            server_name,
            question: Question::from_query(&sent.query),
            tcp: sent.tcp,
            error,
            after,
        });
    }

    /// The whole resolution ends now with `outcome` (deadline, step budget).
    fn finish(&mut self, outcome: Outcome, cache: &Cache, now: u64) {
        let depth = self.depth();
        if !self.priming {
            remember_failure(cache, &self.frames[0].question, &outcome, now);
        }
        self.emit(|| HopEvent::Done {
            depth,
            outcome: outcome.clone(),
        });
        self.finished = Some(outcome);
    }

    /// Start of a frame (or a restart after a CNAME): answer from the cache if we can, else
    /// find the closest zone cut.
    fn start(&mut self, cache: &Cache, now: u64) -> Step {
        let depth = self.depth();
        let q = self.top().current();
        // A configured forward or stub zone as specific as a locally served one wins over it
        // (RFC 6303 §3: the operator may serve these zones otherwise).
        // Priming asks the root hints themselves (RFC 8109): no configured or cached cut.
        let rule = (!self.priming)
            .then(|| self.settings.zones.find(&q.name).cloned())
            .flatten();
        let local = (!self.priming)
            .then(|| self.settings.local.find(&q.name, q.qclass))
            .flatten();
        if let Some(local) = local {
            if rule
                .as_ref()
                .is_none_or(|r| r.zone.num_labels() < local.zone.num_labels())
            {
                let outcome = local.answer(&q);
                let zone = local.zone.clone();
                let frame = self.top();
                let outcome = outcome_after_chain(std::mem::take(&mut frame.chain), outcome);
                self.emit(|| HopEvent::Local {
                    depth,
                    zone,
                    question: q,
                    records: outcome.answers().to_vec(),
                    rcode: outcome.rcode(),
                });
                self.top().phase = Phase::Finished(outcome);
                // Locally served data is ours, not signed: it is given as it is, without
                // AD and never as bogus (Unbound answers local zones before its validator).
                if self.frames.len() == 1 {
                    if let Some(val) = self.val.as_mut() {
                        val.done = true;
                        self.verdict = Some(dnssec::Verdict::indeterminate());
                    }
                }
                return Step::Continue;
            }
        }
        if let Some(step) = self.synthesise(cache, now) {
            return step;
        }
        // The answer cache keeps no validation state: a validated outcome and the fetches
        // for it are asked upstream (validated replies are cached whole in the message
        // cache).
        let bottom = self.frames.len() == 1;
        let use_cache = !(bottom && (self.refresh || self.val.is_some())
            || self.frames.len() > 1 && self.top().fetch);
        let own = use_cache.then(|| cache.answers.get_own(&q, now)).flatten();
        if let Some((hit, _)) = own {
            return self.answered_from_cache(depth, q, hit);
        }
        // DS records live in the parent zone (RFC 4035 §3.1.4.1): look for the cut above.
        let cut_for = if q.qtype == RecordType::DS && !q.name.is_root() {
            q.name.base_name()
        } else {
            q.name.clone()
        };
        let cached = (!self.priming)
            .then(|| cache.delegations.closest(&cut_for, now))
            .flatten();
        // The cut's zone and the names above it exist: the NXDOMAIN walk stops below it.
        let exists = cached.as_ref().map_or(0, |d| d.zone.iter().count());
        let nx = use_cache
            .then(|| cache.answers.nxdomain_above(&q, exists, now))
            .flatten();
        if let Some(hit) = nx {
            return self.answered_from_cache(depth, q, hit);
        }
        if q.qtype != RecordType::CNAME && use_cache {
            // Class IN only reaches the machine (the driver fails the others).
            if let Some(rs) = cache.answers.records(&q.name, RecordType::CNAME, now) {
                // The CNAME, after the DNAME it was synthesised from, if any.
                let target = rs.iter().find_map(|r| match &r.data {
                    RData::CNAME(c) => Some(c.0.clone()),
                    _ => None,
                });
                if let Some(target) = target {
                    self.follow(rs, target);
                    return Step::Continue;
                }
            }
        }
        if q.qtype != RecordType::DNAME && use_cache {
            if let Some((dname, cname, target)) = cached_dname(cache, &q.name, now) {
                self.follow(vec![dname, cname], target);
                return Step::Continue;
            }
        }
        let rule = if cut_for == q.name {
            rule
        } else {
            self.settings.zones.find(&cut_for).cloned()
        };
        let rule = rule.filter(|r| !(r.is_forward() && self.top().no_forward));
        let cut = match (rule, cached) {
            // A forward zone's servers answer for everything below it.
            (Some(r), _) if r.is_forward() => (Cut::configured(r), CutSource::Forward),
            // A stub zone: its servers, unless a referral from them is cached below.
            (Some(r), Some(d)) if r.zone.zone_of(&d.zone) && r.zone != d.zone => {
                (Cut::new(d, cache, now, &self.settings), CutSource::Cache)
            }
            (Some(r), _) => (Cut::configured(r), CutSource::Stub),
            (None, Some(d)) => (Cut::new(d, cache, now, &self.settings), CutSource::Cache),
            (None, None) => {
                let root = Delegation::clone(&self.root);
                (Cut::new(root, cache, now, &self.settings), CutSource::Hints)
            }
        };
        let (cut, source) = cut;
        let zone = cut.zone.clone();
        self.top().enter(Box::new(cut));
        self.emit(|| HopEvent::Cut {
            depth,
            zone,
            source,
        });
        Step::Continue
    }

    /// Finishes the top frame with `hit`, an entry of the answer cache.
    fn answered_from_cache(
        &mut self,
        depth: usize,
        q: Question,
        hit: crate::cache::Cached,
    ) -> Step {
        let frame = self.top();
        let answers = std::mem::take(&mut frame.chain);
        let outcome = outcome_from_cached(answers, hit);
        self.emit(|| HopEvent::CacheAnswer {
            depth,
            question: q,
            records: outcome.answers().to_vec(),
            rcode: outcome.rcode(),
        });
        self.top().phase = Phase::Finished(outcome);
        Step::Continue
    }

    /// Adds chain records and moves the top frame to `target`, within the chain budget.
    fn follow(&mut self, records: Vec<Record>, target: Name) {
        let max = self.settings.limits.max_chain;
        let frame = self.top();
        let looped =
            target == frame.question.name || cname_owners(&frame.chain).any(|n| *n == target);
        frame.chain.extend(records);
        let links = frame
            .chain
            .iter()
            .filter(|r| r.record_type() == RecordType::CNAME)
            .count();
        frame.phase = if looped {
            Phase::Finished(Outcome::ServFail(Failure::Loop(target)))
        } else if links > max {
            Phase::Finished(Outcome::ServFail(Failure::ChainTooLong(max)))
        } else {
            frame.qname = target;
            frame.referrals = 0;
            frame.min = Minimise::default();
            Phase::Start
        };
    }

    /// Chooses what to ask next in `cut`: a retry first, then its fresh addresses, then the
    /// parent's glue where the child's addresses differ, then a glueless NS lookup, then a
    /// provisional reply kept from a server that did not do well, then a second round for
    /// servers that only timed out; else the cut has failed.
    fn next_query(
        &mut self,
        mut cut: Box<Cut>,
        retry: Option<Retry>,
        cache: &Cache,
        now: u64,
    ) -> Step {
        let settings = self.settings.clone();
        let limits = &settings.limits;
        let zone = cut.zone.clone();
        let retrying = retry.is_some();
        let (mut candidates, tcp, edns) = match retry {
            Some(r) => (vec![r.server], r.tcp, r.edns),
            None => (cut.candidates(&settings), false, true),
        };
        if self.priming && cut.attempts.len() >= PRIMING_TRIES && !retrying {
            // Tried enough hint servers (a pending TCP or no-EDNS retry still goes out).
            candidates.clear();
        }
        if candidates.is_empty() && !cut.parent_side && !self.priming {
            cut.parent_side = true;
            candidates = cut.candidates(&settings);
        }
        if !candidates.is_empty() {
            if self.queries >= limits.max_queries {
                self.top().phase =
                    Phase::Finished(Outcome::ServFail(Failure::QueryBudget(limits.max_queries)));
                return Step::Continue;
            }
            let fallback = if cut.parent_side || tcp || !edns {
                Vec::new()
            } else {
                cut.parent_glue_besides(&candidates, &settings)
            };
            let forward = cut.is_forward();
            let upstreams = cut
                .configured
                .as_ref()
                .map_or_else(|| Arc::from([]), |r| r.servers.clone());
            let frame = self.top();
            // Forwarders get the full name: they resolve it themselves (RFC 9156 §2 is for
            // iterating resolvers).
            let q = if forward {
                frame.current()
            } else {
                frame.to_ask(&settings)
            };
            if q.name != frame.qname || q.qtype != frame.question.qtype {
                frame.min.count += 1;
            }
            let sent = Ask {
                query: q.to_query(),
                zone,
                candidates,
                fallback,
                tcp,
                edns,
                rd: forward,
                upstreams,
                dnssec_ok: settings.dnssec.is_some(),
            };
            frame.phase = Phase::Waiting {
                cut,
                sent: sent.clone(),
            };
            self.queries += 1;
            return Step::Ask(sent);
        }

        if self.priming {
            self.top().phase = Phase::Finished(Outcome::ServFail(cut.failure()));
            return Step::Continue;
        }
        if let Some(sub) = self.glueless_lookup(&mut cut) {
            // The cut waits here for the address; the lookup runs above it.
            self.top().phase = Phase::Query { cut, retry: None };
            self.push_lookup(sub);
            return Step::Continue;
        }

        // Nobody did better than a provisional reply: believe it now.
        if let Some((reply, from, asked)) = cut.fallback.take() {
            let depth = self.depth();
            let server_name = cut.server_name(from.ip());
            self.emit(|| HopEvent::Fallback {
                depth,
                zone: zone.clone(),
                server: from,
                server_name,
            });
            self.apply(reply, &asked, (&zone, Vec::new()), cache, now);
            return Step::Continue;
        }

        // A second round for servers that only timed out, then give up on this cut.
        let timed_out = cut.attempts.keys().any(|ip| !cut.bad.contains(ip));
        if timed_out && cut.round < limits.attempts_per_server {
            cut.round += 1;
            self.top().phase = Phase::Query { cut, retry: None };
            return Step::Continue;
        }
        // Forward first (Unbound's forward-first): the forwarders all failed, iterate.
        if matches!(&cut.configured, Some(r) if r.kind == super::forward::ZoneKind::Forward { first: true })
        {
            let depth = self.depth();
            let failure = cut.failure();
            self.emit(|| HopEvent::ForwardFailed {
                depth,
                zone,
                failure,
            });
            let frame = self.top();
            frame.no_forward = true;
            frame.phase = Phase::Start;
            return Step::Continue;
        }
        self.top().phase = Phase::Finished(Outcome::ServFail(cut.failure()));
        Step::Continue
    }

    /// Every address of `cut` is spent: the next glueless NS name whose address should be
    /// looked up, if one is left within the budgets. Names that could only be found
    /// through the cut itself, or through a lookup already under way, are cycles.
    fn glueless_lookup(&mut self, cut: &mut Cut) -> Option<(Name, RecordType)> {
        let limits = &self.settings.limits;
        let depth = self.depth();
        loop {
            let (ns, qtype) = cut.next_glueless(&self.settings)?;
            // Any frame already after this name (for A or AAAA) means a dependency loop.
            let looped = self
                .frames
                .iter()
                .any(|f| f.qname == ns || f.question.name == ns || f.ns_for.as_ref() == Some(&ns));
            if looped {
                cut.cycle.get_or_insert(ns);
                continue; // this NS cannot be reached; try the next one
            }
            if depth + 1 > limits.max_sub_depth || self.ns_lookups >= limits.max_ns_lookups {
                continue;
            }
            return Some((ns, qtype));
        }
    }

    /// Pushes the frame that looks up the address of glueless name server `ns`.
    fn push_lookup(&mut self, (ns, qtype): (Name, RecordType)) {
        let depth = self.depth() + 1;
        let sub = Question::new(ns.clone(), qtype);
        // Addresses already cached were filled in when the cut was built.
        self.ns_lookups += 1;
        self.emit(|| HopEvent::LookupNs {
            depth,
            ns: ns.clone(),
        });
        self.frames.push(Frame::new(sub.clone(), Some(ns)));
        self.emit(|| HopEvent::Start {
            depth,
            question: sub,
        });
    }

    /// A frame ended: report it, and hand a glueless-NS result to the frame that asked.
    fn pop(&mut self, outcome: Outcome, cache: &Cache, now: u64) {
        // The bottom frame's outcome is validated before it is given (RFC 4035 §5).
        if self.frames.len() == 1 {
            let validatable = matches!(
                outcome,
                Outcome::Answer { .. } | Outcome::NxDomain { .. } | Outcome::NoData { .. }
            );
            if let Some(val) = self.val.as_mut().filter(|v| !v.done) {
                if validatable {
                    let frame = &mut self.frames[0];
                    val.zones = std::mem::take(&mut frame.zones);
                    val.zones.reverse();
                    val.pending = Some((outcome, std::mem::take(&mut frame.sigs)));
                    frame.phase = Phase::Validate;
                    return;
                }
                val.done = true;
            }
        }
        let depth = self.depth();
        self.emit(|| HopEvent::Done {
            depth,
            outcome: outcome.clone(),
        });
        if !self.priming {
            remember_failure(cache, &self.top().question, &outcome, now);
        }
        if self.frames.len() > 1 && self.top().fetch {
            let frame = self.frames.pop().expect("more than one frame");
            self.fetched(frame, &outcome, now);
            return;
        }
        let ns_for = if self.frames.len() > 1 {
            self.frames.pop().and_then(|f| f.ns_for)
        } else {
            None
        };
        let Some(ns) = ns_for else {
            self.finished = Some(outcome);
            return;
        };
        let found: Vec<IpAddr> = match &outcome {
            Outcome::Answer { answers } => {
                answers.iter().filter_map(|r| r.data.ip_addr()).collect()
            }
            _ => Vec::new(),
        };
        if let Phase::Query { cut, .. } = &mut self.top().phase {
            // The name server's own lookup ran into a cycle: so does this cut, if it fails.
            if let Outcome::ServFail(Failure::DelegationLoop { .. }) = &outcome {
                cut.cycle.get_or_insert_with(|| ns.clone());
            }
            cut.add_addresses(&ns, &found);
        }
    }

    /// A reply to what `cut`'s servers were asked (`sent`): classify it against what was
    /// asked, let QNAME minimisation have its say, then one match sets the next phase.
    #[allow(clippy::too_many_arguments)]
    fn on_response(
        &mut self,
        from: SocketAddr,
        msg: &Message,
        rtt: Duration,
        mut cut: Box<Cut>,
        sent: &Ask,
        cache: &Cache,
        now: u64,
    ) {
        let depth = self.depth();
        let mode = self.settings.minimise;
        // Classify against what was asked: the minimised question, if it was one.
        let q = Question::from_query(&sent.query);
        let minimised = q != self.top().current();
        *cut.attempts.entry(from.ip()).or_default() += 1;
        let zone = cut.zone.clone();
        let mut reply = if cut.is_forward() {
            classify_recursive(msg, &q, &zone, sent.edns, sent.tcp)
        } else {
            classify(msg, &q, &zone, sent.edns, sent.tcp)
        };
        let mut primed = None;
        if self.priming && !matches!(reply, Reply::Truncated | Reply::EdnsRejected) {
            primed = super::hints::primed(msg);
            if primed.is_none() {
                reply = Reply::Lame("not a valid priming answer".into());
            }
        }

        if self.events.is_some() {
            let kind = match &primed {
                Some((d, _)) => ReplyKind::RootNs {
                    ns: d.servers.iter().map(|s| s.name.clone()).collect(),
                    glue: d
                        .servers
                        .iter()
                        .flat_map(|s| s.addrs.iter().map(|a| (s.name.clone(), *a)))
                        .collect(),
                },
                None => reply_kind(&reply),
            };
            let m = &msg.metadata;
            let server_name = cut.server_name(from.ip());
            self.emit(|| HopEvent::Reply {
                depth,
                zone: zone.clone(),
                server: from,
                server_name,
                question: q.clone(),
                tcp: sent.tcp,
                rcode: m.response_code,
                flags: crate::trace::flags(m),
                kind,
                rtt,
            });
        }

        if let Some((root, ttl)) = primed {
            tracing::debug!(servers = root.servers.len(), ttl, "primed the root NS set");
            cache.delegations.insert(root, ttl, now);
            let answers = msg
                .answers
                .iter()
                .filter(|r| r.name.is_root() && r.record_type() == RecordType::NS)
                .cloned()
                .collect();
            self.top().phase = Phase::Finished(Outcome::Answer { answers });
            return;
        }
        let verdict = if minimised {
            minimised_verdict(&reply, msg, &zone, mode)
        } else {
            Verdict::Act
        };
        let again = |tcp: bool, edns: bool| Retry {
            server: from,
            tcp,
            edns,
        };
        let frame = self.top();
        frame.phase = match (verdict, reply) {
            (Verdict::Deeper, _) => {
                frame.min.known = q.name.iter().len();
                cut.attempts.remove(&from.ip());
                Phase::Query { cut, retry: None }
            }
            (Verdict::FullName, _) => {
                frame.min.off = true;
                cut.attempts.remove(&from.ip());
                let retry = Some(again(sent.tcp, sent.edns));
                Phase::Query { cut, retry }
            }
            (Verdict::Act, Reply::Truncated) => {
                let retry = Some(again(true, sent.edns));
                Phase::Query { cut, retry }
            }
            (Verdict::Act, Reply::EdnsRejected) => {
                let retry = Some(again(sent.tcp, false));
                Phase::Query { cut, retry }
            }
            (Verdict::Act, Reply::Lame(_)) => {
                cut.bad.insert(from.ip());
                Phase::Query { cut, retry: None }
            }
            (Verdict::Act, Reply::Provisional { reply, .. }) => {
                cut.bad.insert(from.ip());
                cut.fallback.get_or_insert((*reply, from, q));
                Phase::Query { cut, retry: None }
            }
            (Verdict::Act, reply) => {
                if let (Some(val), Reply::Referral { zone: child, .. }) =
                    (self.val.as_mut(), &reply)
                {
                    val.keep_referral_ds(msg, &zone, child);
                }
                let sigs = if self.val.is_some() {
                    dnssec_records(msg, &zone, &q)
                } else {
                    Vec::new()
                };
                self.apply(reply, &q, (&zone, sigs), cache, now);
                return;
            }
        };
    }

    /// Acts on a reply that ends the current cut's work: an answer, a negative answer, a
    /// chain to follow or a referral to go down. `q` is what was asked. The cache writes
    /// are the reply's lessons (`learn.rs`).
    /// `from` is the zone whose servers sent it, with the RRSIG/NSEC/NSEC3/SOA records of
    /// the reply when validating.
    fn apply(
        &mut self,
        reply: Reply,
        q: &Question,
        (from, sigs): (&Name, Vec<Record>),
        cache: &Cache,
        now: u64,
    ) {
        let max_referrals = self.settings.limits.max_referrals;
        let settings = self.settings.clone();
        let validating = self.val.is_some();
        let frame = self.top();
        if validating && !matches!(reply, Reply::Referral { .. }) {
            frame.sigs.extend(sigs.iter().cloned());
            if !frame.zones.contains(from) {
                frame.zones.push(from.clone());
            }
        }
        let nxdomain = matches!(reply, Reply::NxDomain { .. });
        frame.phase = match reply {
            Reply::Answer { chain, records } => {
                cache_chain(cache, &chain, &sigs, now);
                let final_name = records[0].name.clone();
                cache.answers.insert_signed(
                    Question::with_class(final_name.clone(), q.qtype, q.qclass),
                    &records,
                    &covering(&sigs, &final_name, q.qtype),
                    now,
                );
                let mut answers = std::mem::take(&mut frame.chain);
                answers.extend(chain);
                if cname_owners(&answers).any(|n| *n == final_name) && q.qtype != RecordType::CNAME
                {
                    Phase::Finished(Outcome::ServFail(Failure::Loop(final_name)))
                } else {
                    answers.extend(records);
                    Phase::Finished(Outcome::Answer { answers })
                }
            }
            Reply::Cname { chain, target } => {
                cache_chain(cache, &chain, &sigs, now);
                self.follow(chain, target);
                return;
            }
            Reply::YxDomain { chain } => {
                // Not cached: the DNAME is, and a fresh question is rewritten again.
                cache_chain(cache, &chain, &sigs, now);
                let mut answers = std::mem::take(&mut frame.chain);
                answers.extend(chain);
                Phase::Finished(Outcome::YxDomain { answers })
            }
            Reply::NxDomain { chain, soa } | Reply::NoData { chain, soa } => {
                cache_chain(cache, &chain, &sigs, now);
                let end = chain_end(&q.name, &chain);
                let soa = soa.map(|soa| negative_soa(cache, soa));
                // A cut for a name that does not exist is gone (see `DelegationCache::forget`).
                if nxdomain {
                    cache.delegations.forget(&end);
                }
                // A minimised question answered NXDOMAIN (strict mode only) caches the name
                // as nonexistent, and everything below it with it (RFC 8020).
                let end_q = Question::with_class(end, q.qtype, q.qclass);
                cache
                    .answers
                    .insert_negative(end_q, nxdomain, soa.clone(), now);
                let mut answers = std::mem::take(&mut frame.chain);
                answers.extend(chain);
                Phase::Finished(if nxdomain {
                    Outcome::NxDomain { answers, soa }
                } else {
                    Outcome::NoData { answers, soa }
                })
            }
            Reply::Referral {
                zone: child,
                ns,
                glue,
            } => {
                frame.referrals += 1;
                if frame.referrals > max_referrals {
                    Phase::Finished(Outcome::ServFail(Failure::TooManyReferrals(max_referrals)))
                } else {
                    let d = learn_referral(child, &ns, &glue);
                    let ttl = ns.iter().map(|r| r.ttl).min().unwrap_or(0);
                    cache.delegations.insert(d.clone(), ttl, now);
                    // The Reply event already names the new cut.
                    frame.enter(Box::new(Cut::new(d, cache, now, &settings)));
                    return;
                }
            }
            // on_response keeps these in the cut; should one come here, start over.
            Reply::Lame(_) | Reply::Provisional { .. } | Reply::Truncated | Reply::EdnsRejected => {
                Phase::Start
            }
        };
    }
}

/// DNSKEY or DS records as a trace shows them: key tag, algorithm, role or digest type;
/// then their signatures.
fn describe_records(records: &[Record], rrsigs: &[Record]) -> String {
    let mut parts = Vec::new();
    for r in records {
        if let Some(k) = dnssec::verify::dnskey(r) {
            let tag = k
                .calculate_key_tag()
                .map_or(String::from("?"), |t| t.to_string());
            let role = if k.revoke() {
                "revoked"
            } else if k.secure_entry_point() {
                "KSK"
            } else {
                "ZSK"
            };
            parts.push(format!(
                "key {tag} alg {} {role}",
                u8::from(hickory_proto::dnssec::Verifier::algorithm(k))
            ));
        } else if let Some(d) = dnssec::verify::ds(r) {
            parts.push(format!(
                "DS {} alg {} digest {}",
                d.key_tag(),
                u8::from(d.algorithm()),
                u8::from(d.digest_type())
            ));
        }
    }
    format!("{}{}", parts.join(", "), describe_sigs(rrsigs))
}

/// RRSIGs as a trace shows them: covered type, signer, key tag, algorithm, validity window.
fn describe_sigs(rrsigs: &[Record]) -> String {
    let sigs: Vec<String> = rrsigs
        .iter()
        .filter_map(dnssec::verify::rrsig)
        .map(|s| {
            let i = s.input();
            format!(
                "RRSIG {} by {} key {} alg {} valid {}..{}",
                i.type_covered,
                i.signer_name,
                i.key_tag,
                u8::from(i.algorithm),
                i.sig_inception.get(),
                i.sig_expiration.get()
            )
        })
        .collect();
    if sigs.is_empty() {
        "; no RRSIG".into()
    } else {
        format!("; {}", sigs.join("; "))
    }
}

/// What validation does next.
enum ValStep {
    Fetch(Name, RecordType),
    Conclude(dnssec::Verdict),
}

/// Most signer zones one outcome may need walks to (a chain through that many signed
/// zones is far beyond any real one; the budget bounds the work anyway).
const MAX_WALKS: usize = 16;

impl Resolution {
    /// The bottom frame's outcome is waiting for validation: walk to the keys of every zone
    /// that answered and every signer named, fetching DS and DNSKEY sets as frames, then
    /// judge the outcome with those keys.
    fn validate(&mut self, cache: &Cache, now: u64) -> Step {
        let qname = self.frames[0].question.name.clone();
        let qtype = self.frames[0].question.qtype;
        let Some(val) = self.val.as_mut() else {
            self.top().phase = Phase::Finished(Outcome::ServFail(Failure::Deadline));
            return Step::Continue;
        };
        val.budget.attach_memo(|| cache.keys.memo());
        let step = val.next(cache, now, &qname, qtype);
        match step {
            ValStep::Fetch(name, rtype) if rtype == RecordType::DS => {
                let kept = self.val.as_mut().and_then(|v| v.take_referral_ds(&name));
                match kept {
                    Some((records, rrsigs)) => {
                        // The referral already brought this DS set: no query. The
                        // bottom frame stays in validation for the walk's next step.
                        self.frames[0].phase = Phase::Validate;
                        let mut frame = Frame::new(Question::new(name, rtype), None);
                        frame.fetch = true;
                        frame.sigs = rrsigs;
                        let outcome = Outcome::Answer { answers: records };
                        if let Some((zone, step)) = self.feed_walk(frame, &outcome, now) {
                            let depth = self.depth();
                            let step = step.replacen("DS: ", "DS (from the referral): ", 1);
                            self.emit(|| HopEvent::Dnssec { depth, zone, step });
                        }
                        Step::Continue
                    }
                    None => self.push_fetch(name, rtype),
                }
            }
            ValStep::Fetch(name, rtype) => self.push_fetch(name, rtype),
            ValStep::Conclude(v) => {
                if v.proof == dnssec::Proof::Secure {
                    if let Some((outcome, sigs)) =
                        self.val.as_ref().and_then(|v| v.pending.as_ref())
                    {
                        keep_nsec_ranges(cache, outcome, sigs, now);
                    }
                }
                if v.proof == dnssec::Proof::Bogus {
                    // The bogus records were cached as they came; they must not answer
                    // later questions (or be served stale).
                    if let Some((outcome, _)) = &self.val.as_ref().and_then(|v| v.pending.as_ref())
                    {
                        let mut owners: Vec<&Name> =
                            outcome.answers().iter().map(|r| &r.name).collect();
                        owners.push(&qname);
                        owners.dedup();
                        for owner in owners {
                            cache.flush_name(owner);
                        }
                    }
                }
                self.conclude(v)
            }
        }
    }

    /// Pushes a frame that fetches `name`/`rtype` for the walk (as a glueless NS lookup is
    /// pushed), within the sub-resolution depth.
    fn push_fetch(&mut self, name: Name, rtype: RecordType) -> Step {
        if self.depth() + 1 > self.settings.limits.max_sub_depth {
            return self.conclude(dnssec::Verdict::bogus(dnssec::Reason::DnskeyMissing));
        }
        self.frames[0].phase = Phase::Validate;
        let depth = self.depth() + 1;
        let sub = Question::new(name, rtype);
        self.emit(|| HopEvent::Start {
            depth,
            question: sub.clone(),
        });
        let mut frame = Frame::new(sub, None);
        frame.fetch = true;
        self.frames.push(frame);
        Step::Continue
    }

    /// Validation is over: the outcome is given with its verdict, bogus as SERVFAIL.
    fn conclude(&mut self, verdict: dnssec::Verdict) -> Step {
        let Some(val) = self.val.as_mut() else {
            return Step::Continue;
        };
        if let (Some(keep), Some((_, sigs))) = (self.signatures.as_mut(), val.pending.as_ref()) {
            keep.clone_from(sigs);
        }
        val.done = true;
        let signed = val
            .pending
            .as_ref()
            .filter(|_| self.events.is_some())
            .map(|(o, s)| (o.clone(), s.clone()));
        let outcome = match val.pending.take() {
            Some((_, _)) if verdict.proof == dnssec::Proof::Bogus && !val.unchecked => {
                let reason = verdict
                    .reason
                    .clone()
                    .unwrap_or(dnssec::Reason::Bogus("bogus"));
                Outcome::ServFail(Failure::Dnssec {
                    ede: reason.ede(),
                    why: reason.to_string(),
                })
            }
            Some((o, sigs)) => {
                self.dnssec_records = DnssecRecords::select(&o, &sigs);
                o
            }
            None => Outcome::ServFail(Failure::Deadline),
        };
        tracing::debug!(
            question = %self.frames[0].question.name,
            state = ?verdict.proof,
            reason = ?verdict.reason,
            "dnssec: outcome validated"
        );
        if self.events.is_some() {
            if let Some((o, sigs)) = &signed {
                let zone = sigs
                    .iter()
                    .filter_map(dnssec::verify::rrsig)
                    .map(|s| s.input().signer_name.clone())
                    .next()
                    .unwrap_or_else(|| self.frames[0].question.name.clone());
                let step = format!(
                    "outcome: {} record(s){}",
                    o.answers().len(),
                    describe_sigs(sigs)
                );
                self.emit(|| HopEvent::Dnssec {
                    depth: 0,
                    zone,
                    step,
                });
            }
            let (state, ede, reason) = (
                format!("{:?}", verdict.proof).to_lowercase(),
                verdict.ede(),
                verdict.reason.as_ref().map(|r| r.to_string()),
            );
            self.emit(|| HopEvent::Validated {
                depth: 0,
                state,
                ede,
                reason,
            });
        }
        self.verdict = Some(verdict);
        self.frames[0].phase = Phase::Finished(outcome);
        Step::Continue
    }

    /// A fetch frame ended: its outcome goes to the walk.
    fn fetched(&mut self, frame: Frame, outcome: &Outcome, now: u64) {
        let step = self.feed_walk(frame, outcome, now);
        if let Some((zone, step)) = step {
            let depth = self.depth();
            self.emit(|| HopEvent::Dnssec { depth, zone, step });
        }
    }

    /// Feeds a fetch's outcome to the walk; with trace on, says what it brought and proved.
    fn feed_walk(&mut self, frame: Frame, outcome: &Outcome, now: u64) -> Option<(Name, String)> {
        let traced = self.events.is_some();
        let val = &mut **self.val.as_mut()?;
        let Validation {
            walk: Some(walk),
            budget,
            last_ttl,
            ..
        } = val
        else {
            return None;
        };
        let (name, rtype) = walk.need()?;
        let mut seen = String::new();
        let rrsigs: Vec<Record> = frame
            .sigs
            .iter()
            .filter(|r| r.record_type() == RecordType::RRSIG)
            .cloned()
            .collect();
        let proof: Vec<Record> = frame
            .sigs
            .iter()
            .filter(|r| matches!(r.record_type(), RecordType::NSEC | RecordType::NSEC3))
            .cloned()
            .collect();
        match outcome {
            Outcome::Answer { answers } => {
                let records: Vec<Record> = answers
                    .iter()
                    .filter(|r| r.name == name && r.record_type() == rtype)
                    .cloned()
                    .collect();
                *last_ttl = records.iter().map(|r| r.ttl).min().unwrap_or(0);
                if traced {
                    seen = describe_records(&records, &rrsigs);
                }
                walk.feed(
                    chain::Fetched::Records {
                        records: &records,
                        sigs: &rrsigs,
                    },
                    now,
                    budget,
                );
            }
            Outcome::NxDomain { soa, .. } | Outcome::NoData { soa, .. } => {
                *last_ttl = soa
                    .as_ref()
                    .map(|s| s.ttl)
                    .or_else(|| proof.iter().map(|r| r.ttl).min())
                    .unwrap_or(0);
                if traced {
                    seen = format!(
                        "no {rtype} ({}): {} NSEC/NSEC3 record(s) as proof{}",
                        if matches!(outcome, Outcome::NxDomain { .. }) {
                            "NXDOMAIN"
                        } else {
                            "NODATA"
                        },
                        proof.len(),
                        describe_sigs(&rrsigs)
                    );
                }
                walk.feed(
                    chain::Fetched::Negative {
                        nxdomain: matches!(outcome, Outcome::NxDomain { .. }),
                        proof: &proof,
                        sigs: &rrsigs,
                    },
                    now,
                    budget,
                );
            }
            _ => {
                seen = format!("no usable {rtype} answer");
                walk.feed(chain::Fetched::Failed, now, budget);
            }
        }
        if !traced {
            return None;
        }
        let proved = match walk.done() {
            Some(Ok(keys)) => format!(
                "keys of {} trusted (entry key tag {})",
                keys.zone, keys.entry_key_tag
            ),
            Some(Err(v)) => match &v.reason {
                Some(r) => format!("{:?}: {r}", v.proof),
                None => format!("{:?}", v.proof),
            },
            None => match walk.need() {
                Some((n, RecordType::DS)) if rtype == RecordType::DNSKEY => {
                    format!("keys of {name} trusted; next DS of {n}")
                }
                Some((n, RecordType::DNSKEY)) if rtype == RecordType::DS => {
                    format!("DS verified; next DNSKEY of {n}")
                }
                Some((n, t)) => format!("next {t} of {n}"),
                None => String::new(),
            },
        };
        Some((name, format!("{rtype}: {seen} -> {proved}")))
    }
}

impl Validation {
    /// Keeps the DS set of `child` (and its RRSIGs) from a referral sent by `zone`'s servers.
    fn keep_referral_ds(&mut self, msg: &Message, zone: &Name, child: &Name) {
        if self.referral_ds.len() >= MAX_REFERRAL_DS || !zone.zone_of(child) || zone == child {
            return;
        }
        let child = child.to_lowercase();
        let at_child = |r: &&Record| {
            r.name.to_lowercase() == child && r.dns_class == hickory_proto::rr::DNSClass::IN
        };
        let ds: Vec<Record> = msg
            .authorities
            .iter()
            .filter(at_child)
            .filter(|r| r.record_type() == RecordType::DS)
            .cloned()
            .collect();
        let rrsigs: Vec<Record> = msg
            .authorities
            .iter()
            .filter(at_child)
            .filter(|r| {
                dnssec::verify::rrsig(r).is_some_and(|s| s.input().type_covered == RecordType::DS)
            })
            .cloned()
            .collect();
        if ds.is_empty() || rrsigs.is_empty() {
            return;
        }
        self.referral_ds.retain(|(c, _, _)| *c != child);
        self.referral_ds.push((child, ds, rrsigs));
    }

    /// The DS set a referral brought for `child`, if any (taken: used once).
    fn take_referral_ds(&mut self, child: &Name) -> Option<(Vec<Record>, Vec<Record>)> {
        let child = child.to_lowercase();
        let i = self.referral_ds.iter().position(|(c, _, _)| *c == child)?;
        let (_, ds, rrsigs) = self.referral_ds.swap_remove(i);
        Some((ds, rrsigs))
    }

    fn next(&mut self, cache: &Cache, now: u64, qname: &Name, qtype: RecordType) -> ValStep {
        loop {
            if let Some(walk) = &self.walk {
                if let Some((name, rtype)) = walk.need() {
                    return ValStep::Fetch(name, rtype);
                }
                let walk = self.walk.take().expect("just matched");
                for keys in &walk.validated {
                    cache.keys.insert_keys(keys.clone(), now);
                }
                match walk.done() {
                    Some(Ok(keys)) if !self.keys.iter().any(|k| k.zone == keys.zone) => {
                        self.keys.push(keys.clone());
                    }
                    Some(Ok(_)) => {}
                    Some(Err(v)) => {
                        if let Some((zone, _)) = walk.fetched.last() {
                            cache
                                .keys
                                .insert_verdict(zone, v.clone(), self.last_ttl, now);
                        }
                        if v.proof == dnssec::Proof::Bogus {
                            return ValStep::Conclude(v.clone());
                        }
                        let v = match self.unsigned.take() {
                            Some(u) => judge::worse(u, v.clone()),
                            None => v.clone(),
                        };
                        self.unsigned = Some(v);
                    }
                    None => {}
                }
                continue;
            }
            if let Some(zone) = self.zones.pop() {
                if !self.keys.iter().any(|k| k.zone == zone) {
                    self.start_walk(&zone, cache, now);
                }
                continue;
            }
            if let Some(v) = self.unsigned.take() {
                // Some of the data comes from a zone with no chain of trust: insecure (or
                // indeterminate without an anchor), never bogus for its missing RRSIGs.
                return ValStep::Conclude(v);
            }
            let Some((outcome, sigs)) = &self.pending else {
                return ValStep::Conclude(dnssec::Verdict::indeterminate());
            };
            let skew = self.config.skew;
            match judge_outcome(
                outcome,
                sigs,
                qname,
                qtype,
                &self.keys,
                now,
                skew,
                &mut self.budget,
            ) {
                judge::Judged::Done(v) => return ValStep::Conclude(v),
                judge::Judged::NeedKeys(zone) => {
                    if self.walks >= MAX_WALKS || self.keys.iter().any(|k| k.zone == zone) {
                        return ValStep::Conclude(dnssec::Verdict::bogus(
                            dnssec::Reason::DnskeyMissing,
                        ));
                    }
                    self.start_walk(&zone, cache, now);
                }
            }
        }
    }

    fn start_walk(&mut self, zone: &Name, cache: &Cache, now: u64) {
        self.walks += 1;
        self.last_ttl = 0;
        self.walk = Some(chain::Walk::from_cache(
            zone,
            &self.config,
            &cache.keys,
            now,
        ));
    }
}

impl Resolution {
    /// RFC 8198: the client's question answered NXDOMAIN or NODATA from cached, validated
    /// NSEC ranges (`cache.nsec`) without asking, when they prove it (`denial::synthesise`)
    /// and the zone's SOA is cached too (§5.1). Secure, with the proof for DO clients; its
    /// TTL the least of the NSEC records', the SOA's and the SOA MINIMUM (§5.4), capped by
    /// `max-negative-ttl`. Only while validating, for the bottom frame before any CNAME,
    /// never for CD (the data would be validated, not the client's choice), a refresh
    /// (it must ask), priming, or a name under a negative trust anchor.
    fn synthesise(&mut self, cache: &Cache, now: u64) -> Option<Step> {
        let val = self.val.as_mut()?;
        if self.frames.len() != 1 || val.unchecked || val.done || self.refresh || self.priming {
            return None;
        }
        let frame = &self.frames[0];
        if !frame.chain.is_empty() || frame.qname != frame.question.name {
            return None;
        }
        let q = frame.current();
        if val.config.negative.load().covers(&q.name) {
            return None;
        }
        let found = cache.nsec.closest(&q.name, now)?;
        let synth = dnssec::denial::synthesise(
            &q.name,
            q.qtype,
            &found.zone,
            &found.nsecs,
            &mut val.budget,
        )?;
        let soa = found
            .soa
            .iter()
            .find(|r| r.record_type() == RecordType::SOA)?;
        let RData::SOA(rdata) = &soa.data else {
            return None;
        };
        let ttl = synth
            .proof
            .iter()
            .map(|r| r.ttl)
            .chain([soa.ttl, rdata.minimum])
            .min()?;
        let mut soa = soa.clone();
        soa.ttl = ttl;
        let soa = negative_soa(cache, soa);
        let outcome = if synth.nxdomain {
            Outcome::NxDomain {
                answers: Vec::new(),
                soa: Some(soa),
            }
        } else {
            Outcome::NoData {
                answers: Vec::new(),
                soa: Some(soa),
            }
        };
        let owners: Vec<&Name> = synth.proof.iter().map(|r| &r.name).collect();
        let mut records: Vec<Record> = found.soa.clone();
        records.extend(synth.proof.iter().cloned());
        records.extend(
            found
                .nsecs
                .iter()
                .filter(|r| {
                    matches!(
                        crate::dns::rrsig_covers(r),
                        Some(RecordType::NSEC | RecordType::NSEC3)
                    ) && owners.contains(&&r.name)
                })
                .cloned(),
        );
        val.done = true;
        self.dnssec_records = DnssecRecords::select(&outcome, &records);
        self.verdict = Some(dnssec::Verdict::secure());
        self.aggressive = Some(synth.nxdomain);
        let depth = self.depth();
        let zone = found.zone;
        let step = format!(
            "{} synthesised from cached NSEC/NSEC3 {} (RFC 8198), TTL {ttl}",
            if synth.nxdomain { "NXDOMAIN" } else { "NODATA" },
            owners
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        tracing::debug!(question = %q, %zone, "dnssec: {step}");
        self.emit(|| HopEvent::Dnssec { depth, zone, step });
        self.emit(|| HopEvent::CacheAnswer {
            depth,
            question: q,
            records: Vec::new(),
            rcode: outcome.rcode(),
        });
        self.frames[0].phase = Phase::Finished(outcome);
        Some(Step::Continue)
    }
}

/// After a negative outcome validated secure: its NSEC ranges and SOA, with their RRSIGs,
/// go to the cache for RFC 8198 synthesis. Only a denial with no chain before it (all of
/// its records then come from the one zone whose keys verified them), with NSEC or NSEC3
/// records (the SOA's signer must be the SOA's zone).
fn keep_nsec_ranges(cache: &Cache, outcome: &Outcome, sigs: &[Record], now: u64) {
    let (Outcome::NxDomain { answers, soa } | Outcome::NoData { answers, soa }) = outcome else {
        return;
    };
    let Some(zone) = soa.as_ref().map(|s| &s.name).filter(|_| answers.is_empty()) else {
        return;
    };
    let signed_by_zone = sigs.iter().any(|r| {
        r.name == *zone
            && dnssec::verify::rrsig(r).is_some_and(|s| {
                s.input().type_covered == RecordType::SOA && s.input().signer_name == *zone
            })
    });
    let denial = |r: &Record| matches!(r.record_type(), RecordType::NSEC | RecordType::NSEC3);
    if !signed_by_zone || !sigs.iter().any(denial) {
        return;
    }
    cache.nsec.insert(zone, sigs, sigs, now);
}

/// Judges an outcome (its answer section, then the denial of a negative answer) with the
/// RRSIG, NSEC, NSEC3 and SOA records that came with it.
#[allow(clippy::too_many_arguments)]
fn judge_outcome(
    outcome: &Outcome,
    sigs: &[Record],
    qname: &Name,
    qtype: RecordType,
    keys: &[dnssec::verify::KeySet],
    now: u64,
    skew: dnssec::Skew,
    budget: &mut dnssec::Budget,
) -> judge::Judged {
    let chain = outcome.answers();
    // A CNAME synthesised from a DNAME is unsigned; the DNAME before it is what is
    // validated (RFC 6672 §5.3.3).
    let mut answer: Vec<Record> = chain
        .iter()
        .enumerate()
        .filter(|(i, r)| {
            !(r.record_type() == RecordType::CNAME
                && i.checked_sub(1)
                    .is_some_and(|p| chain[p].record_type() == RecordType::DNAME))
        })
        .map(|(_, r)| r.clone())
        .collect();
    answer.extend(
        sigs.iter()
            .filter(|r| r.record_type() == RecordType::RRSIG)
            .cloned(),
    );
    let authority: Vec<Record> = sigs
        .iter()
        .filter(|r| {
            r.record_type() != RecordType::SOA || !matches!(outcome, Outcome::Answer { .. })
        })
        .cloned()
        .collect();
    let positive = judge::judge_answer(&answer, &authority, keys, now, skew, budget);
    let (Outcome::NxDomain { .. } | Outcome::NoData { .. }) = outcome else {
        return positive;
    };
    let first = match positive {
        judge::Judged::Done(v) if v.proof == dnssec::Proof::Secure => v,
        other => return other,
    };
    let end = chain_end(qname, chain);
    let nxdomain = matches!(outcome, Outcome::NxDomain { .. });
    match judge::judge_negative(&end, qtype, nxdomain, &authority, keys, now, skew, budget) {
        judge::Judged::Done(v) => judge::Judged::Done(judge::worse(first, v)),
        need => need,
    }
}

/// The DNSSEC records of a reply from a server of `zone` that validation needs: RRSIGs,
/// NSEC and NSEC3 records, and the SOA of a negative answer as signed (its TTL untouched).
fn dnssec_records(msg: &Message, zone: &Name, q: &Question) -> Vec<Record> {
    let keep = |r: &&Record| r.dns_class == q.qclass && zone.zone_of(&r.name);
    msg.answers
        .iter()
        .filter(keep)
        .filter(|r| r.record_type() == RecordType::RRSIG)
        .chain(msg.authorities.iter().filter(keep).filter(|r| {
            matches!(
                r.record_type(),
                RecordType::RRSIG | RecordType::NSEC | RecordType::NSEC3 | RecordType::SOA
            )
        }))
        .cloned()
        .collect()
}

/// The RRSIGs among `sigs` over the RRset `name`/`rtype`.
pub(super) fn covering(sigs: &[Record], name: &Name, rtype: RecordType) -> Vec<Record> {
    sigs.iter()
        .filter(|s| s.name == *name && crate::dns::rrsig_covers(s) == Some(rtype))
        .cloned()
        .collect()
}

/// Owners of the CNAME records in a chain (DNAME owners are not names we were sent to).
fn cname_owners(chain: &[Record]) -> impl Iterator<Item = &Name> {
    chain
        .iter()
        .filter(|r| r.record_type() == RecordType::CNAME)
        .map(|r| &r.name)
}

fn reply_kind(reply: &Reply) -> ReplyKind {
    match reply {
        Reply::Answer { chain, records } => {
            ReplyKind::Answer(chain.iter().chain(records).cloned().collect())
        }
        Reply::Cname { chain, target } => ReplyKind::Cname {
            chain: chain.clone(),
            target: target.clone(),
        },
        Reply::NxDomain { soa, .. } => ReplyKind::NxDomain(soa.clone()),
        Reply::NoData { soa, .. } => ReplyKind::NoData(soa.clone()),
        Reply::Referral { zone, ns, glue } => ReplyKind::Referral {
            zone: zone.clone(),
            ns: ns.iter().filter_map(ns_target).cloned().collect(),
            glue: glue
                .iter()
                .filter_map(|g| g.data.ip_addr().map(|ip| (g.name.clone(), ip)))
                .collect(),
        },
        Reply::YxDomain { chain } => ReplyKind::YxDomain(chain.clone()),
        Reply::Provisional { reply, why } => ReplyKind::Provisional {
            kind: Box::new(reply_kind(reply)),
            why,
        },
        Reply::Lame(why) => ReplyKind::Lame(why.clone()),
        Reply::Truncated => ReplyKind::Truncated,
        Reply::EdnsRejected => ReplyKind::EdnsRejected,
    }
}

/// A locally served answer after the chain that led to it (a CNAME into a local zone).
fn outcome_after_chain(chain: Vec<Record>, outcome: Outcome) -> Outcome {
    if chain.is_empty() {
        return outcome;
    }
    let with = |mut answers: Vec<Record>| {
        let mut all = chain.clone();
        all.append(&mut answers);
        all
    };
    match outcome {
        Outcome::Answer { answers } => Outcome::Answer {
            answers: with(answers),
        },
        Outcome::NxDomain { answers, soa } => Outcome::NxDomain {
            answers: with(answers),
            soa,
        },
        Outcome::NoData { answers, soa } => Outcome::NoData {
            answers: with(answers),
            soa,
        },
        other => other,
    }
}
