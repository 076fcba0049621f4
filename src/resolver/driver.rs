//! The resolver service: what `serve` needs around the one drive loop (`run.rs`).
//!
//! Identical questions in flight share one resolution (`inflight.rs`), which runs as its own
//! task; serve-stale (RFC 8767) answers slow or failed ones; answer TTLs are clamped as the
//! cache keeps them; finished outcomes refill the message cache for the server's hit path;
//! a bound on pending resolutions turns overload into quick SERVFAILs; priming (RFC 8109)
//! is kept fresh. Each resolution itself is a [`Resolution`] driven by [`Run::drive`]. Time
//! comes from the cache's [`Clock`] (one per resolver, manual in tests).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hickory_proto::rr::{DNSClass, Record, RecordType};

use super::anchor::Anchor;
use super::inflight::{self, InFlight, Role};
use super::machine::{Resolution, Settings};
use super::run::{Pick, Run};
use super::{Failure, Outcome, Question};
use crate::cache::{Cache, CacheConfig, Cached, Delegation};
use crate::dns::{Answered, Answerer, Clock, DnssecRecords};
use crate::trace::{LogSink, TraceSink};
use crate::transport::Exchange;

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
    /// Where the cache and the drive loop read time ([`Clock::system`]; tests: manual).
    pub clock: Clock,
}

impl ResolverConfig {
    pub fn new(root_hints: Delegation) -> Self {
        Self {
            root_hints,
            settings: Settings::default(),
            cache: CacheConfig::default(),
            max_pending: DEFAULT_MAX_PENDING,
            clock: Clock::system(),
        }
    }
}

/// RFC 8767 §5 "client response timer": a client whose question is still being resolved
/// after this long gets the stale answer if there is one (the resolution goes on and
/// refreshes the cache). 1.8 s is the RFC's suggestion, under common stub timeouts.
pub const CLIENT_RESPONSE_TIMER: Duration = Duration::from_millis(1800);

/// One resolution's result as each of its clients gets it: the outcome, whether it was
/// validated secure, and its DNSSEC records for clients that set DO (RFC 4035 §3.2.1),
/// shared rather than copied between coalesced clients.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub outcome: Outcome,
    pub secure: bool,
    pub dnssec: Arc<DnssecRecords>,
}

impl Resolved {
    fn unsigned(outcome: Outcome) -> Self {
        Self {
            outcome,
            secure: false,
            dnssec: Arc::default(),
        }
    }
}

/// A leader's resolution that outlives its client: dropped unfinished, it goes on in a task
/// of its own (when a runtime is there to run it).
struct Detach<F: Future<Output = Resolved> + Send + 'static>(Option<Pin<Box<F>>>);

impl<F: Future<Output = Resolved> + Send + 'static> Detach<F> {
    /// Runs the resolution here to its end; then nothing is left to move on drop.
    async fn finish(&mut self) -> Resolved {
        let outcome = match self.0.as_mut() {
            Some(resolution) => resolution.await,
            // Finished already: `lead` finishes once.
            None => Resolved::unsigned(Outcome::ServFail(Failure::Deadline)),
        };
        self.0 = None;
        outcome
    }
}

impl<F: Future<Output = Resolved> + Send + 'static> Drop for Detach<F> {
    fn drop(&mut self) {
        if let (Some(resolution), Ok(rt)) = (self.0.take(), tokio::runtime::Handle::try_current()) {
            drop(rt.spawn(resolution));
        }
    }
}

/// The recursive resolver: shared by every worker of the front end. Cloning is cheap (one
/// `Arc`); resolutions run as tasks of their own, so a client that goes away does not
/// cancel work that others (or the cache) will use.
#[derive(Clone)]
pub struct Resolver(Arc<Core>);

pub struct Core {
    cache: Arc<Cache>,
    exchange: Arc<dyn Exchange>,
    settings: Arc<Settings>,
    root: Arc<Delegation>,
    inflight: InFlight,
    pending: Pending,
    anchor: Anchor,
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
            cache: Arc::new(Cache::with_clock(config.cache, config.clock)),
            exchange,
            settings: Arc::new(config.settings),
            root: Arc::new(config.root_hints),
            inflight: InFlight::default(),
            anchor: Anchor::default(),
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

    /// Keeps a timer ahead of the ones resolutions set, while misses come in, so that setting
    /// those does not wake the I/O driver (`anchor.rs`). Runs until the task is dropped;
    /// `serve` starts it.
    pub async fn keep_timers_ahead(&self) {
        self.anchor.run().await
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

    /// Priming ([`Resolution::priming`], driven like any resolution); the TTL of the root
    /// NS set on success.
    async fn prime_for(&self, sink: Option<&mut dyn TraceSink>) -> Option<u32> {
        let mut m = Resolution::priming(self.root.clone(), self.settings.clone(), sink.is_some());
        let deadline = self.cache.clock.now() + self.settings.limits.deadline;
        let mut run = Run::new(&self.cache, &*self.exchange, Pick::Rtt, deadline);
        match run.drive(&mut m, sink, || None).await {
            Outcome::Answer { answers } => answers.iter().map(|r| r.ttl).min(),
            _ => {
                tracing::warn!("priming failed; using the root hints as they are");
                None
            }
        }
    }

    /// Asks `question` upstream (never from the cache), validating as usual but giving
    /// bogus data as it is (as for CD), with the RRSIG, NSEC, NSEC3 and SOA records that
    /// came with the outcome: the RFC 5011 refresh ([`super::trustpoints`]) judges a
    /// trust point's DNSKEY set against its own trusted keys.
    pub async fn fetch_signed(&self, question: &Question) -> (Outcome, Vec<Record>) {
        let mut m = Resolution::new(
            question.clone(),
            self.root.clone(),
            self.settings.clone(),
            false,
        )
        .refreshing()
        .unchecked()
        .keeping_signatures();
        let deadline = self.cache.clock.now() + self.settings.limits.deadline;
        let mut run = Run::new(&self.cache, &*self.exchange, Pick::Rtt, deadline);
        let outcome = run.drive(&mut m, None, || None).await;
        (outcome, m.signatures().to_vec())
    }

    /// Resolves `question` for a client, logging hops at debug level when that level is
    /// enabled. Concurrent identical questions share one resolution. With serve-stale on, a
    /// client still waiting after [`CLIENT_RESPONSE_TIMER`] gets a stale answer if one exists.
    ///
    /// The first client to ask runs the resolution in its own task (one task per cache
    /// miss); only if it leaves early with a stale answer does the resolution move to a task
    /// of its own, so that it still refreshes the cache for everyone.
    pub async fn resolve(&self, question: &Question) -> Outcome {
        self.resolve_full(question).await.outcome
    }

    /// [`Self::resolve`], with whether the outcome was validated secure and its DNSSEC
    /// records (for clients that set DO).
    pub async fn resolve_full(&self, question: &Question) -> Resolved {
        loop {
            crate::metrics::note::with(|n| n.resolved = true);
            let rx = match self.inflight.join(question) {
                Role::Leader(leader) => {
                    self.anchor.busy();
                    let resolution = Box::pin(self.resolution(question.clone(), leader, false));
                    // (Boxed so it can move to a task of its own if the client leaves early.)
                    return self.lead(question, resolution).await;
                }
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

    /// The leading client's wait: its own resolution, or a stale answer after
    /// [`CLIENT_RESPONSE_TIMER`] while the resolution goes on in a task of its own. If the
    /// client's task goes away first (a DoH stream reset, shutdown), the resolution goes on
    /// too: followers and the cache still get its outcome.
    async fn lead<F>(&self, question: &Question, resolution: Pin<Box<F>>) -> Resolved
    where
        F: Future<Output = Resolved> + Send + 'static,
    {
        let mut own = Detach(Some(resolution));
        if self.cache.config.serve_stale {
            tokio::select! {
                outcome = own.finish() => return outcome,
                _ = tokio::time::sleep(CLIENT_RESPONSE_TIMER) => {}
            }
            if let Some(stale) = self.stale(question) {
                tracing::debug!(%question, "slow resolution: serving stale (RFC 8767 §5)");
                return stale; // `own` moves the resolution to a task of its own
            }
        }
        own.finish().await
    }

    /// One resolution of `question` that publishes its outcome to every waiter and returns
    /// it: a failure is answered stale if it can be (RFC 8767), anything else has its TTLs
    /// clamped and refills the message cache.
    fn resolution(
        &self,
        question: Question,
        leader: inflight::Leader,
        refresh: bool,
    ) -> impl Future<Output = Resolved> + Send + 'static {
        let this = self.clone();
        // The query log's count of upstream queries (when it is on) follows the leader.
        let counter = crate::metrics::note::upstream_counter();
        let resolution = async move {
            let traced = tracing::enabled!(target: "hopdns::trace", tracing::Level::DEBUG);
            let mut sink = LogSink;
            let sink: Option<&mut dyn TraceSink> = if traced { Some(&mut sink) } else { None };
            let mut resolved = this.run(&question, sink, refresh, false).await;
            match &resolved.outcome {
                // Bogus data is never served, stale or not (RFC 8767 §4 serves data that
                // could not be refreshed, not data that failed validation).
                Outcome::ServFail(why)
                    if !matches!(why, Failure::UnsupportedClass(_) | Failure::Dnssec { .. }) =>
                {
                    if let Some(stale) = this.stale(&question) {
                        tracing::debug!(%question, %why, "serving stale (RFC 8767)");
                        resolved = stale;
                    }
                }
                Outcome::ServFail(_) => {}
                _ => {
                    this.finish_ttls(&mut resolved);
                    this.remember_reply(&question, &resolved);
                }
            }
            this.inflight.finish(leader, &resolved);
            resolved
        };
        // `counting` picks with or without a counter (without the query log there is none)
        // outside the future: a `match` with the resolution awaited in each arm held it
        // twice over, and the future, boxed and moved once per miss, was three times the size.
        crate::metrics::note::counting(counter, resolution)
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
            drop(tokio::spawn(self.resolution(question, leader, true)));
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

    /// [`Self::clamp_ttls`], then the DNSSEC records' TTLs made to fit the outcome's
    /// ([`DnssecRecords::align_ttls`]).
    fn finish_ttls(&self, resolved: &mut Resolved) {
        self.clamp_ttls(&mut resolved.outcome);
        if !resolved.dnssec.is_empty() {
            Arc::make_mut(&mut resolved.dnssec).align_ttls(&resolved.outcome);
        }
    }

    /// Keeps the reply to `question` ready for the fast path, for as long as its shortest
    /// TTL (negative answers: the SOA's negative TTL; without an SOA, not at all), with AD
    /// when it was validated secure, and a signed template for DO clients when it has
    /// DNSSEC records.
    fn remember_reply(&self, question: &Question, resolved: &Resolved) {
        let outcome = &resolved.outcome;
        let answers_ttl = outcome
            .answers()
            .iter()
            .chain(&resolved.dnssec.authority)
            .map(|r| r.ttl)
            .min();
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
            self.cache.messages.insert_with_dnssec(
                question,
                outcome.rcode(),
                outcome.answers(),
                outcome.soa(),
                ttl,
                self.cache.clock.unix_secs(),
                resolved.secure,
                &resolved.dnssec,
            );
        }
    }

    /// The answer from expired cache entries, following a stale CNAME chain, when resolution
    /// failed or is slow (RFC 8767), counted as a stale answer, with the RRSIGs kept beside
    /// its RRsets (never AD: it could not be validated again). `None` if any link is missing.
    fn stale(&self, question: &Question) -> Option<Resolved> {
        let stale = self.stale_chain(question);
        if stale.is_some() {
            crate::metrics::metrics().stale_answer();
        }
        stale
    }

    fn stale_chain(&self, question: &Question) -> Option<Resolved> {
        let now = self.cache.clock.unix_secs();
        let mut answers = Vec::new();
        let mut sigs = Vec::new();
        let mut name = question.name.clone();
        for _ in 0..=self.settings.limits.max_chain {
            let q = Question::with_class(name.clone(), question.qtype, question.qclass);
            if let Some((hit, more)) = self.cache.answers.get_stale_signed(&q, now) {
                sigs.extend(more);
                let outcome = super::learn::outcome_from_cached(answers, hit);
                let dnssec = DnssecRecords::select(&outcome, &sigs);
                return Some(Resolved {
                    outcome,
                    secure: false,
                    dnssec: Arc::new(dnssec),
                });
            }
            let cq = Question::with_class(name.clone(), RecordType::CNAME, question.qclass);
            let Some((Cached::Records(rs), more)) = self.cache.answers.get_stale_signed(&cq, now)
            else {
                return None;
            };
            sigs.extend(more);
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
        self.run(question, sink, false, false).await.outcome
    }

    /// Resolves `question` for a client that set CD (RFC 6840 §5.9): validation is not
    /// enforced, and the outcome is neither shared with other clients nor kept in the
    /// message cache (CD data is cached apart from validated data: here, not at all).
    pub async fn resolve_unchecked(&self, question: &Question) -> (Outcome, bool) {
        let resolved = self.resolve_unchecked_full(question).await;
        (resolved.outcome, resolved.secure)
    }

    /// [`Self::resolve_unchecked`], with the DNSSEC records (a CD client that set DO gets
    /// them as for any data, RFC 6840 §5.9).
    pub async fn resolve_unchecked_full(&self, question: &Question) -> Resolved {
        let mut resolved = self.run(question, None, false, true).await;
        self.finish_ttls(&mut resolved);
        resolved
    }

    /// One resolution; `refresh` asks upstream even if the cache holds the answer. Also says
    /// whether the outcome was validated secure, and gives its DNSSEC records.
    async fn run(
        &self,
        question: &Question,
        mut sink: Option<&mut dyn TraceSink>,
        refresh: bool,
        unchecked: bool,
    ) -> Resolved {
        if question.qclass != DNSClass::IN {
            let outcome = Outcome::ServFail(Failure::UnsupportedClass(question.qclass));
            return Resolved::unsigned(super::run::ended(&mut sink, outcome));
        }
        // A bogus answer is remembered for 60 s (Unbound's val-bogus-ttl); CD clients and
        // refreshes resolve again.
        if !unchecked && !refresh {
            if let Some((ede, why)) = self
                .cache
                .answers
                .bogus(question, self.cache.clock.unix_secs())
            {
                let outcome = Outcome::ServFail(Failure::Dnssec { ede, why });
                return Resolved::unsigned(super::run::ended(&mut sink, outcome));
            }
        }
        let deadline = self.cache.clock.now() + self.settings.limits.deadline;
        let mut m = Resolution::new(
            question.clone(),
            self.root.clone(),
            self.settings.clone(),
            sink.is_some(),
        );
        if refresh {
            m = m.refreshing();
        }
        if unchecked {
            m = m.unchecked();
        }
        // Taken at the first query to an authority: the resolution is then a cache miss and
        // counts against the pending bound until it ends.
        let mut slot = None;
        let admit = || {
            if !refresh {
                crate::metrics::metrics().cache_miss();
            }
            slot = self.pending.enter();
            if slot.is_some() {
                return None;
            }
            crate::metrics::metrics().overloaded();
            Some(Outcome::ServFail(Failure::Overloaded(self.pending.max)))
        };
        let mut run = Run::new(&self.cache, &*self.exchange, Pick::Rtt, deadline);
        let outcome = run.drive(&mut m, sink, admit).await;
        if m.queries_sent() == 0 && !refresh {
            crate::metrics::metrics().cache_hit();
        }
        let secure = m
            .verdict()
            .is_some_and(|v| v.proof == crate::dnssec::Proof::Secure);
        if let Some(v) = m.verdict() {
            use crate::dnssec::Proof;
            use crate::metrics::Validated;
            crate::metrics::metrics().validated(match v.proof {
                Proof::Secure => Validated::Secure,
                Proof::Insecure => Validated::Insecure,
                Proof::Bogus => Validated::Bogus,
                Proof::Indeterminate => Validated::Indeterminate,
            });
        }
        if let Some(nxdomain) = m.aggressive() {
            crate::metrics::metrics().aggressive_nsec(if nxdomain {
                crate::metrics::Aggressive::NxDomain
            } else {
                crate::metrics::Aggressive::NoData
            });
        }
        if let Outcome::ServFail(Failure::Dnssec { ede, why }) = &outcome {
            let now = self.cache.clock.unix_secs();
            self.cache
                .answers
                .insert_bogus(question, *ede, why.clone(), now);
        }
        let dnssec = m.dnssec_records();
        Resolved {
            outcome,
            secure,
            dnssec: if dnssec.is_empty() {
                Arc::default()
            } else {
                Arc::new(dnssec.clone())
            },
        }
    }
}

#[async_trait]
impl Answerer for Resolver {
    async fn answer(&self, question: &Question, _client: std::net::SocketAddr) -> Outcome {
        self.resolve(question).await
    }

    /// The reply kept for `question` was validated secure (one message-cache lookup, on
    /// the slow path only).
    fn secure(&self, question: &Question) -> bool {
        self.cache
            .messages
            .secure(question, self.cache.clock.unix_secs())
    }

    async fn answer_unchecked(
        &self,
        question: &Question,
        _client: std::net::SocketAddr,
    ) -> (Outcome, bool) {
        self.resolve_unchecked(question).await
    }

    /// A DO client's answer with its RRSIGs and proof, shared by coalesced clients; with CD,
    /// resolved unchecked and apart as [`Self::answer_unchecked`].
    async fn answer_dnssec(
        &self,
        question: &Question,
        _client: std::net::SocketAddr,
        cd: bool,
    ) -> Answered {
        let resolved = if cd {
            self.resolve_unchecked_full(question).await
        } else {
            self.resolve_full(question).await
        };
        Answered {
            outcome: resolved.outcome,
            secure: resolved.secure,
            dnssec: Arc::unwrap_or_clone(resolved.dnssec),
        }
    }

    /// The server's cache-hit path found a reply near the end of its TTL.
    fn prefetch(&self, question: Question) {
        Resolver::prefetch(self, question);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::scripted::{self as s, Script, Scripted};
    use hickory_proto::rr::rdata::NS;
    use hickory_proto::rr::{Name, RData, Record};

    /// Issue 17.1: a miss boxes and moves its resolution future once, so its size is paid in
    /// copies per miss. The wrappers around the machine's run (the upstream counter, the
    /// publishing to followers) must hold the run once, not once per `match` arm or per
    /// `async fn` argument (they held it three times over: 9.7 KB instead of 3.2 KB).
    #[tokio::test(start_paused = true)]
    async fn a_resolution_future_holds_its_run_once() {
        let w = Arc::new(Scripted::new());
        let r = Resolver::new(ResolverConfig::new(s::root_hints("10.0.0.1")), w.clone());
        let q = Question::new(Name::from_ascii("www.test.").unwrap(), RecordType::A);
        let run = std::mem::size_of_val(&r.run(&q, None, false, false));
        let Role::Leader(leader) = r.inflight.join(&q) else {
            panic!("the first asker leads")
        };
        let resolution = std::mem::size_of_val(&r.resolution(q.clone(), leader, false));
        assert!(
            resolution < run + 1024,
            "resolution {resolution} bytes against its run's {run}"
        );
    }

    /// Issue 17.1: the first client runs the resolution in its own task; if that task is
    /// cancelled (a DoH stream reset, a client that went away), the resolution still ends
    /// and fills the cache for the next client.
    #[tokio::test(start_paused = true)]
    async fn a_resolution_outlives_its_cancelled_client() {
        let w = Arc::new(Scripted::new());
        w.default_for(
            "10.0.0.1",
            Script::Reply(s::answer(vec![s::rec("www.test.", 300, s::a("192.0.2.1"))])),
        );
        w.delay("10.0.0.1", Duration::from_millis(300));
        let mut config = ResolverConfig::new(s::root_hints("10.0.0.1"));
        config.settings.ipv6 = false;
        config.settings.minimise = super::super::machine::MinimiseMode::Off;
        let resolver = Resolver::new(config, w.clone());
        let q = Question::new(Name::from_ascii("www.test.").unwrap(), RecordType::A);
        let gone = tokio::time::timeout(Duration::from_millis(100), resolver.resolve(&q)).await;
        assert!(gone.is_err(), "the client gave up first");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(resolver.in_flight(), 0, "the resolution ended");
        let o = resolver.resolve(&q).await;
        assert!(matches!(o, Outcome::Answer { .. }), "{o:?}");
        assert_eq!(
            w.seen().len(),
            1,
            "the second client was answered from the cache"
        );
    }

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
        assert!(!resolver
            .cache()
            .infra
            .edns_ok(ip, resolver.cache().clock.now()));
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
