//! The resolution state machine: plain data and pure transitions (sans-IO).
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
//! of the system clock, for TTLs) is an argument. It reads and fills the [`Cache`], which is
//! plain data behind locks. Glueless NS lookups and CNAME restarts are explicit frames on a
//! stack with budgets (Knot's `kr_rplan`), never recursion on the async stack.
//!
//! Each frame walks: `Start` (cache, then closest zone cut) -> `Query` (choose the servers to
//! ask, or look up a glueless NS address first) -> `Waiting` -> classify the reply and act
//! (answer, restart at a CNAME target, descend on a referral, skip a lame server, retry over
//! TCP or without EDNS) -> ... -> `Finished`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::classify::{classify, ns_target, Reply};
use super::cut::Cut;
pub use super::cut::{is_loopback_like, usable};
use super::learn::{cache_chain, cached_dname, chain_end, learn_referral, remember_failure};
pub use super::learn::{MAX_GLUE_PER_NS, MAX_NS_PER_CUT};
use super::minimise::{minimised_verdict, Minimise, Verdict};
pub use super::minimise::{MinimiseMode, MAX_MINIMISE_COUNT, MINIMISE_ONE_LAB};
use super::{Failure, Limits, Outcome, Question};
use crate::cache::{Cache, Cached, Delegation};
use crate::trace::{CutSource, HopEvent, ReplyKind};

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

// One Phase per frame, a handful of frames per resolution: size does not matter here.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
enum Phase {
    Start,
    Query,
    Waiting,
    Finished(Outcome),
}

/// A retry of the same server: over TCP after TC, or without EDNS after FORMERR.
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
    cut: Option<Cut>,
    referrals: usize,
    phase: Phase,
    retry: Option<Retry>,
    /// For a glueless-NS lookup: the NS name whose address the parent frame needs.
    ns_for: Option<Name>,
    /// What was last sent, with its EDNS/TCP choice, for classifying the reply.
    in_flight: Option<Ask>,
    /// QNAME minimisation progress in the current cut.
    min: Minimise,
}

impl Frame {
    fn new(question: Question, ns_for: Option<Name>) -> Self {
        Self {
            qname: question.name.clone(),
            question,
            chain: Vec::new(),
            cut: None,
            referrals: 0,
            phase: Phase::Start,
            retry: None,
            ns_for,
            in_flight: None,
            min: Minimise::default(),
        }
    }

    /// The question to send now: the full one, or its minimised form (RFC 9156 §3).
    fn to_ask(&self, settings: &Settings) -> Question {
        self.min.question(self.current(), settings)
    }

    /// Moves to a new cut: minimisation starts again below it.
    fn set_cut(&mut self, cut: Cut) {
        self.min.known = cut.zone.iter().len();
        self.cut = Some(cut);
    }

    fn current(&self) -> Question {
        Question::with_class(
            self.qname.clone(),
            self.question.qtype,
            self.question.qclass,
        )
    }
}

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
    root: Delegation,
    settings: Arc<Settings>,
    queries: usize,
    ns_lookups: usize,
    finished: Option<Outcome>,
    events: Option<Vec<HopEvent>>,
    /// Prefetch: the client's question (and its CNAME chain) is asked upstream even though
    /// the cache still holds it; sub-resolutions use the cache as usual.
    refresh: bool,
}

impl Resolution {
    /// A resolution of `question`, starting from `root` (hints or primed) when the cache has
    /// no closer cut. With `trace`, hop events are recorded for [`Self::take_events`].
    pub fn new(question: Question, root: Delegation, settings: Arc<Settings>, trace: bool) -> Self {
        let mut r = Self {
            frames: vec![Frame::new(question.clone(), None)],
            root,
            settings,
            queries: 0,
            ns_lookups: 0,
            finished: None,
            events: trace.then(Vec::new),
            refresh: false,
        };
        r.emit(|| HopEvent::Start { depth: 0, question });
        r
    }

    /// Makes this a refresh (prefetch): answers for the question itself are not taken from
    /// the cache, zone cuts and server addresses are.
    pub fn refreshing(mut self) -> Self {
        self.refresh = true;
        self
    }

    /// Upstream queries asked for so far (sub-resolutions included).
    pub fn queries_sent(&self) -> usize {
        self.queries
    }

    /// Hop events recorded since the last call.
    pub fn take_events(&mut self) -> Vec<HopEvent> {
        self.events.as_mut().map(std::mem::take).unwrap_or_default()
    }

    fn emit(&mut self, f: impl FnOnce() -> HopEvent) {
        if let Some(ev) = self.events.as_mut() {
            ev.push(f());
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
                let outcome = Outcome::ServFail(Failure::StepBudget(MAX_STEPS_PER_POLL));
                remember_failure(cache, &self.frames[0].question, &outcome, now);
                let depth = self.depth();
                self.emit(|| HopEvent::Done {
                    depth,
                    outcome: outcome.clone(),
                });
                self.finished = Some(outcome);
                continue;
            }
            let step = match self.top().phase.clone() {
                Phase::Start => self.start(cache, now),
                Phase::Query => self.next_query(cache, now),
                Phase::Waiting => match self.top().in_flight.clone() {
                    // Polled again without an event: ask again for the same thing.
                    Some(send) => Step::Ask(send),
                    None => {
                        self.top().phase = Phase::Query;
                        Step::Continue
                    }
                },
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
        let unusable = matches!(event, Event::Unusable { .. });
        match event {
            Event::Deadline => {
                let depth = self.depth();
                let outcome = Outcome::ServFail(Failure::Deadline);
                remember_failure(cache, &self.frames[0].question, &outcome, now);
                self.emit(|| HopEvent::Done {
                    depth,
                    outcome: outcome.clone(),
                });
                self.finished = Some(outcome);
            }
            Event::NoReply { from, error, after } | Event::Unusable { from, error, after } => {
                let Some(sent) = self.take_in_flight() else {
                    return;
                };
                let depth = self.depth();
                let frame = self.top();
                let cut = frame.cut.as_mut().expect("waiting frames have a cut");
                *cut.attempts.entry(from.ip()).or_default() += 1;
                if unusable {
                    cut.bad.insert(from.ip());
                }
                let (zone, server_name) = (cut.zone.clone(), cut.server_name(from.ip()));
                let question = Question::from_query(&sent.query);
                frame.phase = Phase::Query;
                self.emit(|| HopEvent::NoReply {
                    depth,
                    zone,
                    server: from,
                    server_name,
                    question,
                    tcp: sent.tcp,
                    error,
                    after,
                });
            }
            Event::Response {
                from,
                message,
                rtt,
                edns,
            } => {
                let Some(mut sent) = self.take_in_flight() else {
                    return;
                };
                sent.edns = edns;
                self.on_response(from, &message, rtt, &sent, cache, now);
            }
        }
    }

    fn take_in_flight(&mut self) -> Option<Ask> {
        let frame = self.top();
        if !matches!(frame.phase, Phase::Waiting) {
            return None;
        }
        frame.in_flight.take()
    }

    /// Start of a frame (or a restart after a CNAME): answer from the cache if we can, else
    /// find the closest zone cut.
    fn start(&mut self, cache: &Cache, now: u64) -> Step {
        let depth = self.depth();
        let q = self.top().current();
        let use_cache = !(self.refresh && self.frames.len() == 1);
        if let Some(hit) = use_cache.then(|| cache.answers.get(&q, now)).flatten() {
            let frame = self.top();
            let answers = std::mem::take(&mut frame.chain);
            let outcome = Outcome::from_cached(answers, hit);
            self.emit(|| HopEvent::CacheAnswer {
                depth,
                question: q,
                records: outcome.answers().to_vec(),
                rcode: outcome.rcode(),
            });
            self.top().phase = Phase::Finished(outcome);
            return Step::Continue;
        }
        if q.qtype != RecordType::CNAME && use_cache {
            let cq = Question::with_class(q.name.clone(), RecordType::CNAME, q.qclass);
            if let Some(Cached::Records(rs)) = cache.answers.get(&cq, now) {
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
        // DS records live in the parent zone (RFC 4035 §3.1.4.1): look for the cut above.
        let cut_for = if q.qtype == RecordType::DS && !q.name.is_root() {
            q.name.base_name()
        } else {
            q.name.clone()
        };
        let (delegation, source) = match cache.delegations.closest(&cut_for, now) {
            Some(d) => (d, CutSource::Cache),
            None => (self.root.clone(), CutSource::Hints),
        };
        let zone = delegation.zone.clone();
        let frame = self.top();
        frame.set_cut(Cut::new(delegation, cache, now));
        frame.phase = Phase::Query;
        self.emit(|| HopEvent::Cut {
            depth,
            zone,
            source,
        });
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
        if looped {
            frame.phase = Phase::Finished(Outcome::ServFail(Failure::Loop(target)));
        } else if links > max {
            frame.phase = Phase::Finished(Outcome::ServFail(Failure::ChainTooLong(max)));
        } else {
            frame.qname = target;
            frame.cut = None;
            frame.referrals = 0;
            frame.min = Minimise::default();
            frame.phase = Phase::Start;
        }
    }

    /// Chooses what to ask next in the current cut: its fresh addresses, then the parent's
    /// glue where the child's addresses differ, then a glueless NS lookup, then a provisional
    /// reply kept from a server that did not do well, then a second round for servers that
    /// only timed out; else the cut has failed.
    fn next_query(&mut self, cache: &Cache, now: u64) -> Step {
        let settings = self.settings.clone();
        let limits = &settings.limits;
        let queries = self.queries;
        let frame = self.top();
        let q = frame.to_ask(&settings);
        let cut = frame.cut.as_mut().expect("query phase has a cut");
        let zone = cut.zone.clone();

        let retry = frame.retry.take();
        let (mut candidates, tcp, edns) = match retry {
            Some(r) => (vec![r.server], r.tcp, r.edns),
            None => (cut.candidates(&settings), false, true),
        };
        if candidates.is_empty() && !cut.parent_side {
            cut.parent_side = true;
            candidates = cut.candidates(&settings);
        }
        let fallback = if cut.parent_side || tcp || !edns {
            Vec::new()
        } else {
            cut.parent_side = true;
            let all = cut.candidates(&settings);
            cut.parent_side = false;
            all.into_iter()
                .filter(|a| !candidates.contains(a))
                .collect()
        };
        if !candidates.is_empty() {
            if queries >= limits.max_queries {
                frame.phase =
                    Phase::Finished(Outcome::ServFail(Failure::QueryBudget(limits.max_queries)));
                return Step::Continue;
            }
            let send = Ask {
                query: q.to_query(),
                zone,
                candidates,
                fallback,
                tcp,
                edns,
            };
            frame.in_flight = Some(send.clone());
            frame.phase = Phase::Waiting;
            if q.name != frame.qname || q.qtype != frame.question.qtype {
                frame.min.count += 1;
            }
            self.queries += 1;
            return Step::Ask(send);
        }

        if self.lookup_glueless() {
            return Step::Continue;
        }

        // Nobody did better than a provisional reply: believe it now.
        let frame = self.top();
        let cut = frame.cut.as_mut().expect("query phase has a cut");
        if let Some((reply, from, asked)) = cut.fallback.take() {
            let depth = self.depth();
            let server_name = self
                .top()
                .cut
                .as_ref()
                .and_then(|c| c.server_name(from.ip()));
            self.emit(|| HopEvent::Fallback {
                depth,
                zone: zone.clone(),
                server: from,
                server_name,
            });
            self.apply(reply, &asked, cache, now);
            return Step::Continue;
        }

        // A second round for servers that only timed out, then give up on this cut.
        let timed_out = cut.attempts.keys().any(|ip| !cut.bad.contains(ip));
        if timed_out && cut.round < limits.attempts_per_server {
            cut.round += 1;
            return Step::Continue;
        }
        let failure = if !cut.attempts.is_empty() || !cut.bad.is_empty() {
            Failure::ServersExhausted { zone }
        } else if cut
            .servers
            .iter()
            .any(|s| s.addrs.iter().chain(&s.parent_glue).next().is_some())
        {
            Failure::NoAddress
        } else if let Some(ns) = cut.cycle.clone() {
            Failure::DelegationLoop { zone, ns }
        } else {
            Failure::NoServerAddress { zone }
        };
        frame.phase = Phase::Finished(Outcome::ServFail(failure));
        Step::Continue
    }

    /// Every address of the cut is spent: pushes a frame that looks up the address of a
    /// glueless NS name, if one is left. Returns whether it did.
    fn lookup_glueless(&mut self) -> bool {
        let settings = self.settings.clone();
        let limits = &settings.limits;
        let depth = self.depth();
        let frame = self.top();
        let cut = frame.cut.as_mut().expect("query phase has a cut");
        let zone_of_cut = cut.zone.clone();
        loop {
            let frame = self.top();
            let cut = frame.cut.as_mut().expect("query phase has a cut");
            let mut cycle = None;
            let next = cut.servers.iter_mut().find_map(|s| {
                if s.addrs
                    .iter()
                    .chain(&s.parent_glue)
                    .any(|ip| usable(*ip, false, &settings) || zone_of_cut.is_root())
                {
                    return None;
                }
                // A glueless NS inside the zone it serves can only be found by asking that
                // zone: a delegation cycle.
                if !zone_of_cut.is_root() && zone_of_cut.zone_of(&s.name) {
                    if s.addrs.is_empty() && s.parent_glue.is_empty() {
                        cycle.get_or_insert_with(|| s.name.clone());
                    }
                    return None;
                }
                if settings.ipv4 && !s.tried_a {
                    s.tried_a = true;
                    Some((s.name.clone(), RecordType::A))
                } else if settings.ipv6 && !s.tried_aaaa {
                    s.tried_aaaa = true;
                    Some((s.name.clone(), RecordType::AAAA))
                } else {
                    None
                }
            });
            if cut.cycle.is_none() {
                cut.cycle = cycle;
            }
            let Some((ns, qtype)) = next else {
                return false;
            };
            let sub = Question::new(ns.clone(), qtype);
            // Any frame already after this name (for A or AAAA) means a dependency loop.
            let looped = self
                .frames
                .iter()
                .any(|f| f.qname == ns || f.question.name == ns || f.ns_for.as_ref() == Some(&ns));
            if looped {
                let cut = self.top().cut.as_mut().expect("query phase has a cut");
                cut.cycle.get_or_insert(ns);
                continue; // this NS cannot be reached; try the next one
            }
            if depth + 1 > limits.max_sub_depth || self.ns_lookups >= limits.max_ns_lookups {
                continue;
            }
            // Addresses already cached were filled in when the cut was built.
            self.ns_lookups += 1;
            self.emit(|| HopEvent::LookupNs {
                depth: depth + 1,
                ns: ns.clone(),
            });
            self.frames.push(Frame::new(sub.clone(), Some(ns)));
            self.emit(|| HopEvent::Start {
                depth: depth + 1,
                question: sub,
            });
            return true;
        }
    }

    /// A frame ended: report it, and hand a glueless-NS result to the frame that asked.
    fn pop(&mut self, outcome: Outcome, cache: &Cache, now: u64) {
        let depth = self.depth();
        self.emit(|| HopEvent::Done {
            depth,
            outcome: outcome.clone(),
        });
        let frame = self.frames.pop().expect("a frame to pop");
        remember_failure(cache, &frame.question, &outcome, now);
        let Some(ns) = frame.ns_for else {
            self.finished = Some(outcome);
            return;
        };
        let found: Vec<IpAddr> = match &outcome {
            Outcome::Answer { answers } => {
                answers.iter().filter_map(|r| r.data.ip_addr()).collect()
            }
            _ => Vec::new(),
        };
        if let Some(cut) = self.top().cut.as_mut() {
            // The name server's own lookup ran into a cycle: so does this cut, if it fails.
            if let Outcome::ServFail(Failure::DelegationLoop { .. }) = &outcome {
                cut.cycle.get_or_insert_with(|| ns.clone());
            }
            for s in cut.servers.iter_mut().filter(|s| s.name == ns) {
                for ip in &found {
                    if !s.addrs.contains(ip) {
                        s.addrs.push(*ip);
                    }
                }
            }
        }
    }

    /// A reply to the in-flight query: classify it against what was asked, let QNAME
    /// minimisation have its say, then act.
    fn on_response(
        &mut self,
        from: SocketAddr,
        msg: &Message,
        rtt: Duration,
        sent: &Ask,
        cache: &Cache,
        now: u64,
    ) {
        let depth = self.depth();
        let mode = self.settings.minimise;
        let frame = self.top();
        // Classify against what was asked: the minimised question, if it was one.
        let q = Question::from_query(&sent.query);
        let minimised = q != frame.current();
        let cut = frame.cut.as_mut().expect("waiting frames have a cut");
        *cut.attempts.entry(from.ip()).or_default() += 1;
        let zone = cut.zone.clone();
        let server_name = cut.server_name(from.ip());
        let reply = classify(msg, &q, &zone, sent.edns, sent.tcp);

        if self.events.is_some() {
            let kind = reply_kind(&reply);
            let m = &msg.metadata;
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

        let frame = self.top();
        frame.phase = Phase::Query;
        if minimised {
            match minimised_verdict(&reply, msg, &zone, mode) {
                Verdict::Deeper => {
                    let cut = frame.cut.as_mut().expect("waiting frames have a cut");
                    frame.min.known = q.name.iter().len();
                    cut.attempts.remove(&from.ip());
                    return;
                }
                Verdict::FullName => {
                    let cut = frame.cut.as_mut().expect("waiting frames have a cut");
                    frame.min.off = true;
                    cut.attempts.remove(&from.ip());
                    frame.retry = Some(Retry {
                        server: from,
                        tcp: sent.tcp,
                        edns: sent.edns,
                    });
                    return;
                }
                Verdict::Act => {}
            }
        }
        match reply {
            Reply::Truncated => {
                frame.retry = Some(Retry {
                    server: from,
                    tcp: true,
                    edns: sent.edns,
                })
            }
            Reply::EdnsRejected => {
                frame.retry = Some(Retry {
                    server: from,
                    tcp: sent.tcp,
                    edns: false,
                })
            }
            Reply::Lame(_) => {
                let cut = frame.cut.as_mut().expect("waiting frames have a cut");
                cut.bad.insert(from.ip());
            }
            Reply::Provisional { reply, .. } => {
                let cut = frame.cut.as_mut().expect("waiting frames have a cut");
                cut.bad.insert(from.ip());
                cut.fallback.get_or_insert((*reply, from, q));
            }
            reply => self.apply(reply, &q, cache, now),
        }
    }

    /// Acts on a reply that ends this cut's work: an answer, a negative answer, a chain to
    /// follow or a referral to go down. `q` is what was asked.
    fn apply(&mut self, reply: Reply, q: &Question, cache: &Cache, now: u64) {
        let max_referrals = self.settings.limits.max_referrals;
        let frame = self.top();
        let nxdomain = matches!(reply, Reply::NxDomain { .. });
        match reply {
            Reply::Answer { chain, records } => {
                cache_chain(cache, &chain, now);
                let final_name = records[0].name.clone();
                cache.answers.insert_records(
                    Question::with_class(final_name.clone(), q.qtype, q.qclass),
                    records.clone(),
                    now,
                );
                let mut answers = std::mem::take(&mut frame.chain);
                answers.extend(chain);
                if cname_owners(&answers).any(|n| *n == final_name) && q.qtype != RecordType::CNAME
                {
                    frame.phase = Phase::Finished(Outcome::ServFail(Failure::Loop(final_name)));
                } else {
                    answers.extend(records);
                    frame.phase = Phase::Finished(Outcome::Answer { answers });
                }
            }
            Reply::Cname { chain, target } => {
                cache_chain(cache, &chain, now);
                self.follow(chain, target);
            }
            Reply::YxDomain { chain } => {
                // Not cached: the DNAME is, and a fresh question is rewritten again.
                cache_chain(cache, &chain, now);
                let mut answers = std::mem::take(&mut frame.chain);
                answers.extend(chain);
                frame.phase = Phase::Finished(Outcome::YxDomain { answers });
            }
            Reply::NxDomain { chain, soa } | Reply::NoData { chain, soa } => {
                cache_chain(cache, &chain, now);
                let end = chain_end(&q.name, &chain);
                let soa = soa.map(|mut soa| {
                    // RFC 2308 §3 and §5: the client sees the negative TTL on the SOA.
                    if let Some(ttl) = cache.answers.negative_ttl(Some(&soa)) {
                        soa.ttl = ttl;
                    }
                    soa
                });
                // A minimised question answered NXDOMAIN (strict mode only) caches the name
                // as nonexistent, and everything below it with it (RFC 8020).
                let end_q = Question::with_class(end, q.qtype, q.qclass);
                cache
                    .answers
                    .insert_negative(end_q, nxdomain, soa.clone(), now);
                let mut answers = std::mem::take(&mut frame.chain);
                answers.extend(chain);
                frame.phase = Phase::Finished(if nxdomain {
                    Outcome::NxDomain { answers, soa }
                } else {
                    Outcome::NoData { answers, soa }
                });
            }
            Reply::Referral {
                zone: child,
                ns,
                glue,
            } => {
                frame.referrals += 1;
                if frame.referrals > max_referrals {
                    frame.phase = Phase::Finished(Outcome::ServFail(Failure::TooManyReferrals(
                        max_referrals,
                    )));
                    return;
                }
                let d = learn_referral(child, &ns, &glue);
                let ttl = ns.iter().map(|r| r.ttl).min().unwrap_or(0);
                cache.delegations.insert(d.clone(), ttl, now);
                // The Reply event already names the new cut.
                frame.set_cut(Cut::new(d, cache, now));
            }
            // on_response deals with these before anything is applied.
            Reply::Lame(_) | Reply::Provisional { .. } | Reply::Truncated | Reply::EdnsRejected => {
            }
        }
    }
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
