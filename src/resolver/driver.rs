//! The driver: runs [`Resolution`]s against a transport, the cache and the clock.
//!
//! It does everything the machine must not: reads the clock, picks one server among the
//! machine's candidates by smoothed RTT (the infra cache), applies per-server timeouts and the
//! request's deadline, performs the exchange, feeds results back and hands hop events to a
//! [`TraceSink`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hickory_proto::op::{Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};

use super::hints;
use super::inflight::{self, InFlight, Role};
use super::machine::{usable, Action, Event, Resolution, Route, Settings};
use super::{Failure, Outcome, Question};
use crate::cache::{unix_now, Cache, CacheConfig, Cached, Delegation, Feedback, Patch};
use crate::dns::Answerer;
use crate::trace::{HopEvent, LogSink, ReplyKind, TraceSink};
use crate::transport::{choose, choose_configured, Exchange, OutQuery, TransportError};

/// Shortest timeout for a TCP exchange (connection set-up included).
const MIN_TCP_TIMEOUT: Duration = Duration::from_millis(1500);
/// Hint servers tried by priming before falling back to the hints.
const PRIMING_TRIES: usize = 3;
/// Wait before priming again after a failure (and the shortest wait between primings).
const PRIMING_RETRY: Duration = Duration::from_secs(60);

/// Resolutions waiting on authorities at once, by default. Each holds a few KiB; past the
/// bound new cache misses get SERVFAIL at once instead of growing memory and latency for
/// everyone (Unbound's `num-queries-per-thread` is 1024 per thread).
pub const DEFAULT_MAX_PENDING: usize = 4096;

/// Everything a [`Resolver`] needs besides its transport.
#[derive(Clone, Debug)]
pub struct ResolverConfig {
    /// The root zone cut to start from: parsed root hints.
    pub root_hints: Delegation,
    pub settings: Settings,
    pub cache: CacheConfig,
    /// Bound on resolutions waiting on authorities ([`DEFAULT_MAX_PENDING`]).
    pub max_pending: usize,
}

impl ResolverConfig {
    pub fn new(root_hints: Delegation) -> Self {
        Self {
            root_hints,
            settings: Settings::default(),
            cache: CacheConfig::default(),
            max_pending: DEFAULT_MAX_PENDING,
        }
    }
}

/// RFC 8767 §5 "client response timer": a client whose question is still being resolved
/// after this long gets the stale answer if there is one (the resolution goes on and
/// refreshes the cache). 1.8 s is the RFC's suggestion, under common stub timeouts.
pub const CLIENT_RESPONSE_TIMER: Duration = Duration::from_millis(1800);

/// The recursive resolver: shared by every worker of the front end. Cloning is cheap (one
/// `Arc`); resolutions run as tasks of their own, so a client that goes away does not
/// cancel work that others (or the cache) will use.
#[derive(Clone)]
pub struct Resolver(Arc<Core>);

pub struct Core {
    cache: Arc<Cache>,
    exchange: Arc<dyn Exchange>,
    settings: Arc<Settings>,
    root: Delegation,
    inflight: InFlight,
    pending: Pending,
}

/// The bounded count of resolutions waiting on authorities.
pub struct Pending {
    now: std::sync::atomic::AtomicUsize,
    max: usize,
}

/// One pending resolution; dropping it frees the place (and ends its in-flight metric).
struct PendingSlot<'a> {
    pending: &'a Pending,
    _metric: crate::metrics::InFlightGuard,
}

impl Pending {
    fn enter(&self) -> Option<PendingSlot<'_>> {
        use std::sync::atomic::Ordering::Relaxed;
        let taken = self
            .now
            .fetch_update(Relaxed, Relaxed, |n| (n < self.max).then_some(n + 1));
        taken.ok().map(|_| PendingSlot {
            pending: self,
            _metric: crate::metrics::metrics().resolution_started(),
        })
    }
}

impl Drop for PendingSlot<'_> {
    fn drop(&mut self) {
        self.pending
            .now
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl std::ops::Deref for Resolver {
    type Target = Core;
    fn deref(&self) -> &Core {
        &self.0
    }
}

impl Resolver {
    pub fn new(config: ResolverConfig, exchange: Arc<dyn Exchange>) -> Self {
        Self(Arc::new(Core {
            cache: Arc::new(Cache::new(config.cache)),
            exchange,
            settings: Arc::new(config.settings),
            root: config.root_hints,
            inflight: InFlight::default(),
            pending: Pending {
                now: Default::default(),
                max: config.max_pending.max(1),
            },
        }))
    }

    pub fn cache(&self) -> &Arc<Cache> {
        &self.cache
    }

    /// RFC 8109 priming: asks hint servers for the root NS set and caches the answer as the
    /// root zone cut. Returns whether it worked; on failure the hints stay in use.
    pub async fn prime(&self, sink: Option<&mut dyn TraceSink>) -> bool {
        self.prime_for(sink).await.is_some()
    }

    /// Keeps the root NS set fresh (RFC 8109 §4: prime again before it expires): primes
    /// now, then again at 90% of the TTL it got, or after [`PRIMING_RETRY`] if it failed.
    /// Runs until the task is dropped; `serve` starts it unless `--no-prime` is given.
    pub async fn keep_primed(&self) {
        loop {
            let wait = match self.prime_for(None).await {
                Some(ttl) => Duration::from_secs(u64::from(ttl) * 9 / 10).max(PRIMING_RETRY),
                None => PRIMING_RETRY,
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Priming; the TTL of the root NS set on success.
    async fn prime_for(&self, sink: Option<&mut dyn TraceSink>) -> Option<u32> {
        let mut sink = sink;
        let root = Name::root();
        let question = Question::new(root.clone(), RecordType::NS);
        // The same address rule as the machine applies to the root cut.
        let mut left: Vec<_> = self
            .root
            .servers
            .iter()
            .flat_map(|s| s.addrs.iter())
            .filter(|ip| usable(**ip, true, &self.settings))
            .map(|ip| std::net::SocketAddr::new(*ip, 53))
            .collect();
        let mut edns_formerr = None;
        let deadline = Instant::now() + self.settings.limits.deadline;
        for _ in 0..PRIMING_TRIES {
            let now = Instant::now();
            let Some(server) = choose(&left, &self.cache.infra, now).filter(|_| now < deadline)
            else {
                break;
            };
            left.retain(|c| *c != server);
            let server_name = self
                .root
                .servers
                .iter()
                .find(|s| s.addrs.contains(&server.ip()))
                .map(|s| s.name.clone());
            let query = Query::query(root.clone(), RecordType::NS);
            let route = Route::default();
            let mut event = self
                .ask(
                    server,
                    &query,
                    route.clone(),
                    true,
                    deadline,
                    &mut edns_formerr,
                )
                .await;
            // FORMERR to EDNS: the same server once more without it (RFC 6891 §7).
            if let Event::Response { message, edns, .. } = &event {
                if super::classify::edns_rejected(message, *edns) {
                    event = self
                        .ask(server, &query, route, false, deadline, &mut edns_formerr)
                        .await;
                }
            }
            let Event::Response { message, rtt, .. } = event else {
                report_no_reply(&mut sink, &root, &question, server, server_name, event);
                continue;
            };
            let primed = hints::primed(&message);
            if let Some(sink) = sink.as_deref_mut() {
                let kind = match &primed {
                    Some((d, _)) => ReplyKind::RootNs {
                        ns: d.servers.iter().map(|s| s.name.clone()).collect(),
                        glue: d
                            .servers
                            .iter()
                            .flat_map(|s| s.addrs.iter().map(|a| (s.name.clone(), *a)))
                            .collect(),
                    },
                    None => ReplyKind::Lame("not a valid priming answer".into()),
                };
                sink.event(&HopEvent::Reply {
                    depth: 0,
                    zone: root.clone(),
                    server,
                    server_name,
                    question: question.clone(),
                    tcp: false,
                    rcode: message.metadata.response_code,
                    flags: crate::trace::flags(&message.metadata),
                    kind,
                    rtt,
                });
            }
            if let Some((d, ttl)) = primed {
                tracing::debug!(servers = d.servers.len(), ttl, "primed the root NS set");
                self.cache.delegations.insert(d, ttl, unix_now());
                return Some(ttl);
            }
        }
        tracing::warn!("priming failed; using the root hints as they are");
        None
    }

    /// Resolves `question` for a client, logging hops at debug level when that level is
    /// enabled. Concurrent identical questions share one resolution. With serve-stale on, a
    /// client still waiting after [`CLIENT_RESPONSE_TIMER`] gets a stale answer if one exists.
    pub async fn resolve(&self, question: &Question) -> Outcome {
        loop {
            crate::metrics::note::with(|n| n.resolved = true);
            let rx = match self.inflight.join(question) {
                Role::Leader(leader) => self.spawn_resolution(question.clone(), leader, false),
                Role::Follower(rx) => {
                    crate::metrics::note::with(|n| n.joined = true);
                    rx
                }
            };
            let waited = if self.cache.config.serve_stale {
                tokio::select! {
                    outcome = inflight::wait(rx.clone()) => outcome,
                    _ = tokio::time::sleep(CLIENT_RESPONSE_TIMER) => match self.stale(question) {
                        Some(stale) => {
                            tracing::debug!(%question, "slow resolution: serving stale (RFC 8767 §5)");
                            return stale;
                        }
                        None => inflight::wait(rx).await,
                    },
                }
            } else {
                inflight::wait(rx).await
            };
            match waited {
                Some(outcome) => return outcome,
                // The resolution task was cancelled (the runtime is stopping): start again.
                None => self.inflight.abandon(question),
            }
        }
    }

    /// Runs one resolution as its own task and publishes its outcome to every waiter.
    fn spawn_resolution(
        &self,
        question: Question,
        leader: inflight::Leader,
        refresh: bool,
    ) -> tokio::sync::watch::Receiver<Option<Outcome>> {
        let rx = leader.subscribe();
        let this = self.clone();
        // The query log's count of upstream queries (when it is on) follows the leader.
        let counter = crate::metrics::note::upstream_counter();
        let resolution = async move {
            let traced = tracing::enabled!(target: "hopdns::trace", tracing::Level::DEBUG);
            let mut sink = LogSink;
            let sink: Option<&mut dyn TraceSink> = if traced { Some(&mut sink) } else { None };
            let mut outcome = this.run(&question, sink, refresh).await;
            match &outcome {
                Outcome::ServFail(why) if !matches!(why, Failure::UnsupportedClass(_)) => {
                    if let Some(stale) = this.stale(&question) {
                        tracing::debug!(%question, %why, "serving stale (RFC 8767)");
                        outcome = stale;
                    }
                }
                Outcome::ServFail(_) => {}
                _ => {
                    this.clamp_ttls(&mut outcome);
                    this.remember_reply(&question, &outcome);
                }
            }
            this.inflight.finish(leader, &outcome);
        };
        // Without the query log there is nothing to count into: no task-local to swap in and
        // out on every poll of the resolution.
        match counter {
            Some(c) => drop(tokio::spawn(crate::metrics::note::counting(
                Some(c),
                resolution,
            ))),
            None => drop(tokio::spawn(resolution)),
        }
        rx
    }

    /// Refreshes `question` in the background (prefetch) unless it is being resolved now.
    pub fn prefetch(&self, question: Question) {
        if !self.cache.config.prefetch {
            return;
        }
        // A question being resolved now joins as a follower: nothing more to do.
        if let Role::Leader(leader) = self.inflight.join(&question) {
            tracing::debug!(%question, "prefetch");
            self.cache.count_prefetch();
            crate::metrics::metrics().prefetch();
            drop(self.spawn_resolution(question, leader, true));
        }
    }

    /// Answer TTLs within `min-ttl..=max-ttl`, as the cache keeps them, so every client sees
    /// the same TTLs whether its answer came from upstream or from the cache.
    fn clamp_ttls(&self, outcome: &mut Outcome) {
        let clamp = |r: &mut hickory_proto::rr::Record| r.ttl = self.cache.answers.clamp(r.ttl);
        match outcome {
            Outcome::Answer { answers }
            | Outcome::YxDomain { answers }
            | Outcome::NxDomain { answers, .. }
            | Outcome::NoData { answers, .. } => answers.iter_mut().for_each(clamp),
            Outcome::ServFail(_) | Outcome::Drop => {}
        }
    }

    /// Keeps the reply to `question` ready for the fast path, for as long as its shortest
    /// TTL (negative answers: the SOA's negative TTL; without an SOA, not at all).
    fn remember_reply(&self, question: &Question, outcome: &Outcome) {
        let answers_ttl = outcome.answers().iter().map(|r| r.ttl).min();
        let ttl = match outcome {
            Outcome::Answer { .. } | Outcome::YxDomain { .. } => answers_ttl,
            Outcome::NxDomain { soa, .. } | Outcome::NoData { soa, .. } => self
                .cache
                .answers
                .negative_ttl(soa.as_ref())
                .map(|t| answers_ttl.map_or(t, |a| a.min(t))),
            // Drop is made only by redirect rules and never reaches the resolver's cache.
            Outcome::ServFail(_) | Outcome::Drop => None,
        };
        if let Some(ttl) = ttl {
            self.cache.messages.insert(
                question,
                outcome.rcode(),
                outcome.answers(),
                outcome.soa(),
                ttl,
                unix_now(),
            );
        }
    }

    /// The answer from expired cache entries, following a stale CNAME chain, when resolution
    /// failed or is slow (RFC 8767), counted as a stale answer. `None` if any link is missing.
    fn stale(&self, question: &Question) -> Option<Outcome> {
        let stale = self.stale_chain(question);
        if stale.is_some() {
            crate::metrics::metrics().stale_answer();
        }
        stale
    }

    fn stale_chain(&self, question: &Question) -> Option<Outcome> {
        let now = unix_now();
        let mut answers = Vec::new();
        let mut name = question.name.clone();
        for _ in 0..=self.settings.limits.max_chain {
            let q = Question::with_class(name.clone(), question.qtype, question.qclass);
            if let Some(hit) = self.cache.answers.get_stale(&q, now) {
                return Some(super::learn::outcome_from_cached(answers, hit));
            }
            let cq = Question::with_class(name.clone(), RecordType::CNAME, question.qclass);
            let Some(Cached::Records(rs)) = self.cache.answers.get_stale(&cq, now) else {
                return None;
            };
            let Some(hickory_proto::rr::RData::CNAME(target)) = rs.first().map(|r| &r.data) else {
                return None;
            };
            name = target.0.clone();
            answers.extend(rs);
        }
        None
    }

    /// Resolutions running now (after coalescing).
    pub fn in_flight(&self) -> usize {
        self.inflight.len()
    }

    /// Resolves `question`, handing every hop event to `sink` (trace mode; no coalescing).
    pub async fn resolve_traced(
        &self,
        question: &Question,
        sink: Option<&mut dyn TraceSink>,
    ) -> Outcome {
        self.run(question, sink, false).await
    }

    /// One resolution; `refresh` asks upstream even if the cache holds the answer.
    async fn run(
        &self,
        question: &Question,
        mut sink: Option<&mut dyn TraceSink>,
        refresh: bool,
    ) -> Outcome {
        if question.qclass != DNSClass::IN {
            let outcome = Outcome::ServFail(Failure::UnsupportedClass(question.qclass));
            return ended(&mut sink, outcome);
        }
        let deadline = Instant::now() + self.settings.limits.deadline;
        // A server that answered FORMERR to EDNS: it is marked EDNS-less only once the same
        // query without EDNS works, so one odd reply cannot strip EDNS from a good server.
        let mut edns_formerr: Option<std::net::IpAddr> = None;
        let mut m = Resolution::new(
            question.clone(),
            self.root.clone(),
            self.settings.clone(),
            sink.is_some(),
        );
        if refresh {
            m = m.refreshing();
        }
        // Taken at the first query to an authority: the resolution is then a cache miss
        // and counts against the pending bound.
        let mut slot = None;
        loop {
            let action = m.poll(&self.cache, unix_now());
            flush(&mut m, &mut sink);
            let send = match action {
                Action::Done(outcome) => {
                    if slot.is_none() && !refresh {
                        crate::metrics::metrics().cache_hit();
                    }
                    return outcome;
                }
                Action::Ask(send) => send,
            };
            if slot.is_none() {
                if !refresh {
                    crate::metrics::metrics().cache_miss();
                }
                slot = self.pending.enter();
                if slot.is_none() {
                    crate::metrics::metrics().overloaded();
                    let outcome = Outcome::ServFail(Failure::Overloaded(self.pending.max));
                    return ended(&mut sink, outcome);
                }
            }
            let now = Instant::now();
            // A forward or stub zone's servers: each measured, a dead one probed now and then.
            let pick = if send.upstreams.is_empty() {
                choose
            } else {
                choose_configured
            };
            let Some(mut server) =
                pick(&send.candidates, &self.cache.infra, now).filter(|_| now < deadline)
            else {
                m.handle(Event::Deadline, &self.cache, unix_now());
                continue;
            };
            // Every child address of the cut has been timing out: the parent's glue, if it
            // scores better, is asked now rather than after those timeouts.
            if !send.fallback.is_empty() && self.cache.infra.timing_out(server.ip(), now) {
                if let Some(alt) = choose(&send.fallback, &self.cache.infra, now) {
                    let infra = &self.cache.infra;
                    if infra.score(alt.ip(), now) < infra.score(server.ip(), now) {
                        server = alt;
                    }
                }
            }
            let event = self
                .ask(
                    server,
                    &send.query,
                    send.route(server),
                    send.edns,
                    deadline,
                    &mut edns_formerr,
                )
                .await;
            m.handle(event, &self.cache, unix_now());
            if Instant::now() >= deadline {
                m.handle(Event::Deadline, &self.cache, unix_now());
            }
        }
    }
}

impl Resolver {
    /// Asks `server` one question and reports what happened, both to server selection (one
    /// [`Feedback`] per exchange, through [`InfraCache::report`]) and as the machine's
    /// [`Event`]. Resolutions and priming share it, so both learn the same things: RTT,
    /// timeouts (never our own shortage of sockets or memory), EDNS and 0x20 fallbacks.
    ///
    /// `edns_formerr` remembers a server that answered FORMERR to EDNS in this resolution: it
    /// is marked EDNS-less only once the same query without EDNS works, so one odd reply
    /// cannot strip EDNS from a good server.
    async fn ask(
        &self,
        server: std::net::SocketAddr,
        query: &Query,
        route: Route,
        want_edns: bool,
        deadline: Instant,
        edns_formerr: &mut Option<std::net::IpAddr>,
    ) -> Event {
        let infra = &self.cache.infra;
        let now = Instant::now();
        let tcp = route.tcp;
        let mut timeout = infra.rto(server.ip(), now);
        if tcp {
            timeout = timeout.saturating_mul(2).max(MIN_TCP_TIMEOUT);
        }
        let timeout = timeout.min(deadline.saturating_duration_since(now));
        let edns = want_edns && infra.edns_ok(server.ip(), now);
        let out = OutQuery {
            server,
            query: query.clone(),
            tcp,
            edns,
            timeout,
            case_0x20: infra.case_ok(server.ip(), now),
            rd: route.rd,
            tls: route.tls,
        };
        let mut result = self.exchange.exchange_via(&out).await;
        crate::metrics::note::count_upstream();
        if matches!(result, Err(TransportError::CaseMismatch)) {
            // It answers, but not with our case (RFC 4343 lets servers fold case): ask it
            // again at once without 0x20, on a new port with a new ID, and from now on
            // compare its questions without case. One round trip, not a timeout.
            let at = Instant::now();
            infra.report(server.ip(), Feedback::NoCase, at);
            let again = OutQuery {
                case_0x20: false,
                timeout: out.timeout.min(deadline.saturating_duration_since(at)),
                ..out.clone()
            };
            result = self.exchange.exchange_via(&again).await;
            crate::metrics::note::count_upstream();
        }
        let done = Instant::now();
        let after = done - now;
        let metrics = crate::metrics::metrics();
        match &result {
            Ok((m, _)) => {
                metrics
                    .upstream_query(server.ip(), Some(u16::from(m.metadata.response_code.low())));
                metrics.upstream_rtt(server.ip(), after);
            }
            // Our own shortage (EMFILE, ENOBUFS) says nothing about the server.
            Err(e) if e.is_local() => metrics.upstream_local_error(),
            Err(_) => metrics.upstream_query(server.ip(), None),
        }
        match result {
            Ok((message, via)) => {
                let rcode = message.metadata.response_code;
                let feedback = match rcode {
                    ResponseCode::Refused | ResponseCode::ServFail | ResponseCode::NotImp => {
                        Feedback::Refused
                    }
                    _ => Feedback::Answered(after),
                };
                infra.report(server.ip(), feedback, done);
                if super::classify::edns_rejected(&message, edns) {
                    *edns_formerr = Some(server.ip());
                } else if !edns
                    && rcode != ResponseCode::FormErr
                    && *edns_formerr == Some(server.ip())
                {
                    infra.report(server.ip(), Feedback::NoEdns, done);
                }
                Event::Response {
                    from: server,
                    message,
                    rtt: after,
                    edns,
                    via,
                }
            }
            // Not even the retry without 0x20 matched (it cannot, as it compares without
            // case): nothing usable from this server now.
            Err(e @ TransportError::CaseMismatch) => Event::NoReply {
                from: server,
                error: e.to_string(),
                after,
            },
            Err(TransportError::Malformed(error)) => Event::Unusable {
                from: server,
                error: format!("malformed reply: {error}"),
                after,
            },
            Err(e) => {
                if !matches!(e, TransportError::Encode(_)) && !e.is_local() {
                    infra.report(server.ip(), Feedback::TimedOut, done);
                }
                Event::NoReply {
                    from: server,
                    error: e.to_string(),
                    after,
                }
            }
        }
    }
}

/// A priming query that got no usable reply, as a trace event.
fn report_no_reply(
    sink: &mut Option<&mut dyn TraceSink>,
    root: &Name,
    question: &Question,
    server: std::net::SocketAddr,
    server_name: Option<Name>,
    event: Event,
) {
    let (error, after) = match event {
        Event::NoReply { error, after, .. } | Event::Unusable { error, after, .. } => {
            (error, after)
        }
        Event::Deadline | Event::Response { .. } => ("deadline".to_string(), Duration::ZERO),
    };
    if let Some(sink) = sink.as_deref_mut() {
        sink.event(&HopEvent::NoReply {
            depth: 0,
            zone: root.clone(),
            server,
            server_name,
            question: question.clone(),
            tcp: false,
            error,
            after,
        });
    }
}

/// A resolution that ends before the machine could say so: its result line, for the sink.
fn ended(sink: &mut Option<&mut dyn TraceSink>, outcome: Outcome) -> Outcome {
    if let Some(sink) = sink.as_deref_mut() {
        sink.event(&HopEvent::Done {
            depth: 0,
            outcome: outcome.clone(),
        });
    }
    outcome
}

fn flush(m: &mut Resolution, sink: &mut Option<&mut dyn TraceSink>) {
    if let Some(sink) = sink.as_deref_mut() {
        for ev in m.take_events() {
            sink.event(&ev);
        }
    }
}

#[async_trait]
impl Answerer for Resolver {
    async fn answer(&self, question: &Question, _client: std::net::SocketAddr) -> Outcome {
        self.resolve(question).await
    }

    /// A cache hit answered from the message cache: no decode, no resolver, no allocation.
    /// A hit in the last 10% of its TTL also starts a prefetch.
    fn fast_reply(
        &self,
        query: &[u8],
        _client: std::net::SocketAddr,
        out: &mut [u8],
    ) -> Option<usize> {
        let fq = crate::server::fast::parse(query)?;
        let ours = out.len();
        let patch = Patch {
            id: fq.id,
            rd: fq.rd,
            cd: fq.cd,
            qname: fq.qname,
            opt_payload: fq
                .edns_payload
                .map(|_| u16::try_from(ours).unwrap_or(u16::MAX)),
            limit: fq.udp_limit(ours),
        };
        let written = self
            .cache
            .messages
            .write_reply(fq.key.as_bytes(), unix_now(), &patch, out)
            .ok()?;
        crate::metrics::metrics().cache_hit();
        if written.prefetch && self.cache.config.prefetch {
            if let Some(q) = question_of(&fq) {
                self.prefetch(q);
            }
        }
        Some(written.len)
    }
}

/// The question of a fast-path query, built only when a prefetch needs it.
fn question_of(fq: &crate::server::fast::FastQuery<'_>) -> Option<Question> {
    let name = Name::from_labels(crate::cache::wire_labels(fq.key.name())).ok()?;
    Some(Question::with_class(
        name,
        RecordType::from(fq.qtype),
        DNSClass::from(fq.qclass),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::scripted::{self as s, Script, Scripted};
    use hickory_proto::rr::rdata::NS;
    use hickory_proto::rr::{RData, Record};

    /// Issue 10, behaviour 6, through the driver: once the child's own address for its name
    /// server is known to time out, later names go to the parent's glue at once instead of
    /// waiting out that timeout again (the machine alone would ask the dead one first).
    #[tokio::test(start_paused = true)]
    async fn a_childs_dead_ns_address_is_not_waited_for_twice() {
        let w = Arc::new(Scripted::new());
        let referral =
            || Script::Reply(s::referral("a.test.", &[("ns.a.test.", Some("10.2.0.1"))]));
        w.default_for("10.0.0.1", referral());
        // The parent's glue (10.2.0.1) works; the child says its server is 10.2.0.7, dead.
        w.on(
            "10.2.0.1",
            "ns.a.test.",
            RecordType::A,
            Script::Reply(s::answer(vec![s::rec("ns.a.test.", 300, s::a("10.2.0.7"))])),
        );
        for n in ["www1.a.test.", "www2.a.test.", "www3.a.test."] {
            w.on(
                "10.2.0.1",
                n,
                RecordType::A,
                Script::Reply(s::answer(vec![s::rec(n, 300, s::a("192.0.2.1"))])),
            );
        }
        w.default_for("10.2.0.7", Script::Timeout);
        let mut config = ResolverConfig::new(s::root_hints("10.0.0.1"));
        config.settings.ipv6 = false;
        config.settings.minimise = super::super::machine::MinimiseMode::Off;
        let resolver = Resolver::new(config, w.clone());
        let ask = |n: &str| Question::new(Name::from_ascii(n).unwrap(), RecordType::A);
        resolver.resolve(&ask("ns.a.test.")).await;
        for n in ["www1.a.test.", "www2.a.test.", "www3.a.test."] {
            let o = resolver.resolve(&ask(n)).await;
            assert!(matches!(o, Outcome::Answer { .. }), "{n}: {o:?}");
        }
        let dead = w
            .seen()
            .iter()
            .filter(|q| q.server.to_string() == "10.2.0.7")
            .count();
        assert_eq!(dead, 1, "the dead address is asked once, then avoided");
    }

    /// The priming answer of a one-server root: `. NS a.root.`, `a.root. A 10.0.0.1`, TTL 1000.
    fn root_ns_reply() -> hickory_proto::op::Message {
        let mut reply = s::answer(vec![Record::from_rdata(
            Name::root(),
            1000,
            RData::NS(NS(Name::from_ascii("a.root.").unwrap())),
        )]);
        reply.add_additional(s::rec("a.root.", 1000, s::a("10.0.0.1")));
        reply
    }

    /// Issue 13.3: priming asks through the same exchange as resolutions, so a root server
    /// that rejects EDNS is asked again without it (and remembered), as any other server.
    #[tokio::test(start_paused = true)]
    async fn priming_learns_what_resolutions_learn_about_a_server() {
        let w = Arc::new(Scripted::new());
        w.on(
            "10.0.0.1",
            ".",
            RecordType::NS,
            Script::NoEdnsThen(root_ns_reply()),
        );
        let resolver = Resolver::new(ResolverConfig::new(s::root_hints("10.0.0.1")), w.clone());
        assert!(
            resolver.prime(None).await,
            "primed after the retry without EDNS"
        );
        let seen: Vec<bool> = w.seen().iter().map(|q| q.edns).collect();
        assert_eq!(seen, [true, false]);
        let ip = "10.0.0.1".parse().unwrap();
        assert!(!resolver.cache().infra.edns_ok(ip, Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn the_root_is_primed_again_before_its_ns_set_expires() {
        let w = Arc::new(Scripted::new());
        w.on(
            "10.0.0.1",
            ".",
            RecordType::NS,
            Script::Reply(root_ns_reply()),
        );
        let resolver = Arc::new(Resolver::new(
            ResolverConfig::new(s::root_hints("10.0.0.1")),
            w.clone(),
        ));
        let r = resolver.clone();
        let task = tokio::spawn(async move { r.keep_primed().await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(w.seen().len(), 1, "primed at start");
        tokio::time::sleep(Duration::from_secs(899)).await;
        assert_eq!(w.seen().len(), 1, "not before 90% of the 1000 s TTL");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(w.seen().len(), 2, "primed again at 900 s");
        task.abort();
    }
}
