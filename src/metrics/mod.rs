//! The metrics room: process-wide counters and their Prometheus text endpoint
//! (`serve --metrics ADDR`, off by default). `docs/operations.md` lists every metric.
//!
//! Counting is separate from exporting. Every counter is a plain `AtomicU64` updated with
//! `Relaxed` ordering through [`metrics()`] (a static: no lock, no allocation, no `Arc` to
//! thread through the rooms). The two counted on every cache hit (replies by type and
//! RCODE, cache hits) are kept per thread instead ([`Hot`]): each thread writes only its own
//! block, with a plain load and store, so UDP workers on different cores never write the
//! same cache line; a scrape sums the blocks. The per-upstream-server table, keyed by
//! address, takes a read lock on a small map once per upstream exchange (which costs a
//! network round trip anyway).
//!
//! Exporting uses the `prometheus-client` crate: one [`Collector`] reads the atomics at each
//! scrape and writes them in the OpenMetrics text format ([`render`]); `http` serves it.
//! Pool member health is not stored here: it is asked of the [`HealthSource`] that `serve`
//! installs (the redirect layer), at scrape time.

mod http;
pub mod note;

use hashbrown::HashMap;
use std::cell::RefCell;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, LazyLock, Mutex, RwLock};
use std::time::Duration;

use prometheus_client::collector::Collector;

use crate::dns::Proto;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

pub use http::{serve_metrics, MetricsError};

/// The process's counters.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::default);
    &METRICS
}

/// Query types counted by name; anything else is counted as `other`.
const QTYPES: [(u16, &str); 16] = [
    (1, "A"),
    (2, "NS"),
    (5, "CNAME"),
    (6, "SOA"),
    (12, "PTR"),
    (15, "MX"),
    (16, "TXT"),
    (28, "AAAA"),
    (33, "SRV"),
    (35, "NAPTR"),
    (43, "DS"),
    (48, "DNSKEY"),
    (64, "SVCB"),
    (65, "HTTPS"),
    (255, "ANY"),
    (257, "CAA"),
];
const QTYPE_SLOTS: usize = QTYPES.len() + 1;
/// RCODE names (RFC 1035 §4.1.1, RFC 2136), indexed by the 4-bit header RCODE; 11-15 are
/// counted as `other`.
const RCODES: [&str; 12] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
    "NXRRSET", "NOTAUTH", "NOTZONE", "other",
];

/// The mnemonic of an RCODE (`NOERROR`, `NXDOMAIN`, ...), `other` past NOTZONE.
pub fn rcode_name(code: u16) -> &'static str {
    RCODES[usize::from(code).min(RCODES.len() - 1)]
}

/// Upper bounds (seconds) of the resolution latency buckets: from a quick local authority
/// (1 ms) to the resolver's deadline (4.5 s).
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Conditions a remote client causes (issue 11.4): counted here, logged at debug level and
/// summarised at most once a minute (`server::client_errors`), never one log line each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// A query that does not decode (FORMERR).
    Malformed,
    /// A query whose EDNS options do not parse (FORMERR, as Unbound answers).
    MalformedEdns,
    /// A query from outside the allow-list (REFUSED, or closed at once over TCP).
    NotAllowed,
}

impl ClientError {
    pub const ALL: [ClientError; 3] = [Self::Malformed, Self::MalformedEdns, Self::NotAllowed];

    /// The `kind` label of `hopdns_client_errors_total`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::MalformedEdns => "malformed_edns",
            Self::NotAllowed => "not_allowed",
        }
    }
}

/// What an answer synthesised from the DNSSEC-validated cache said (RFC 8198).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggressive {
    NxDomain = 0,
    NoData = 1,
}

impl Aggressive {
    pub const ALL: [Aggressive; 2] = [Self::NxDomain, Self::NoData];

    /// The `kind` label of `hopdns_aggressive_nsec_total`.
    pub fn name(self) -> &'static str {
        match self {
            Self::NxDomain => "nxdomain",
            Self::NoData => "nodata",
        }
    }
}

/// The validation state of a resolution's outcome (RFC 4035 §4.3), as the metrics name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validated {
    Secure = 0,
    Insecure = 1,
    Bogus = 2,
    Indeterminate = 3,
}

impl Validated {
    pub const ALL: [Validated; 4] = [
        Self::Secure,
        Self::Insecure,
        Self::Bogus,
        Self::Indeterminate,
    ];

    /// The `state` label of `hopdns_dnssec_validations_total`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Secure => "secure",
            Self::Insecure => "insecure",
            Self::Bogus => "bogus",
            Self::Indeterminate => "indeterminate",
        }
    }
}

/// Upstream servers tracked one by one; past this, they share the `other` row (bounds the
/// map when authorities are many).
const MAX_SERVERS: usize = 4096;

/// Every counter hopdns exports.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Per-thread blocks of the hit-path counters, summed when read.
    hot: Mutex<Vec<Arc<Hot>>>,
    cache_misses: AtomicU64,
    stale_answers: AtomicU64,
    prefetches: AtomicU64,
    /// Resolutions waiting on authorities now.
    in_flight: AtomicI64,
    /// New cache misses refused with SERVFAIL because `max-pending` resolutions were waiting.
    overloaded: AtomicU64,
    rrl_dropped: AtomicU64,
    rrl_slipped: AtomicU64,
    tcp_refused: AtomicU64,
    tcp_evicted: AtomicU64,
    /// Connections of the stream transports, by [`Proto::index`] (UDP's stays zero).
    connections: [ConnCounters; Proto::ALL.len()],
    client_errors: [AtomicU64; ClientError::ALL.len()],
    /// Answers synthesised from cached, validated NSEC ranges (RFC 8198), by kind.
    aggressive_nsec: [AtomicU64; Aggressive::ALL.len()],
    /// Resolutions whose outcome the validator judged, by state (Unbound's
    /// `num.answer.secure` / `num.answer.bogus`).
    validations: [AtomicU64; Validated::ALL.len()],
    latency: Histogram,
    upstream: RwLock<HashMap<IpAddr, Arc<ServerCounters>>>,
    upstream_other: ServerCounters,
    /// Upstream replies by RCODE.
    upstream_rcodes: [AtomicU64; RCODES.len()],
    /// Upstream queries that failed on our side (no socket: EMFILE, ENOBUFS, ...). Not
    /// counted as the server's timeouts.
    upstream_local_errors: AtomicU64,
    /// Answers given by a redirect rule, by [`RULE_ACTIONS`] slot.
    rule_answers: [AtomicU64; RULE_ACTIONS.len()],
    health: RwLock<Option<Arc<dyn HealthSource>>>,
    cache: RwLock<Option<Arc<dyn CacheSource>>>,
}

/// Redirect actions as the metrics name them, and whether each is a block (the answer
/// withheld) rather than a redirection (another answer given).
pub const RULE_ACTIONS: [(&str, bool); 9] = [
    ("block", true),
    ("sinkhole", true),
    ("nodata", true),
    ("drop", true),
    ("override", false),
    ("alias", false),
    ("pool", false),
    ("local", false),
    ("passthru", false),
];

/// Who knows the cache's size (the resolver); `serve` installs it with
/// [`Metrics::set_cache_source`], and a scrape asks it.
pub trait CacheSource: Send + Sync + std::fmt::Debug {
    fn cache_stats(&self) -> crate::cache::CacheStats;
}

/// The counters every cache hit touches, one block per thread (single writer).
#[derive(Debug, Default)]
struct Hot {
    /// Replies sent, by query type and RCODE.
    replies: QueryTable,
    /// Replies sent, by transport ([`Proto::index`]).
    by_transport: [AtomicU64; Proto::ALL.len()],
    cache_hits: AtomicU64,
}

/// Adds one to a counter only this thread writes: no locked instruction needed.
fn bump(c: &AtomicU64) {
    c.store(c.load(Relaxed).wrapping_add(1), Relaxed);
}

thread_local! {
    /// This thread's block, with the address of the [`Metrics`] it belongs to.
    static HOT: RefCell<Option<(usize, Arc<Hot>)>> = const { RefCell::new(None) };
}

/// The connections of one stream transport.
#[derive(Debug, Default)]
struct ConnCounters {
    open: AtomicI64,
    /// TLS handshakes completed, and how many of them resumed a session.
    handshakes: AtomicU64,
    resumptions: AtomicU64,
    /// Handshakes that failed or timed out (a client that does not trust the certificate,
    /// speaks no TLS, or stalls).
    handshake_failures: AtomicU64,
}

/// One open connection of a stream transport; dropping it closes it in the metrics.
#[must_use]
pub struct ConnectionGuard {
    metrics: &'static Metrics,
    proto: Proto,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.metrics.connections[self.proto.index()]
            .open
            .fetch_sub(1, Relaxed);
    }
}

/// One upstream server's counters.
#[derive(Debug, Default)]
struct ServerCounters {
    queries: AtomicU64,
    timeouts: AtomicU64,
    /// Replies and the sum of their round-trip times (mean RTT per server, forwarders
    /// included).
    replies: AtomicU64,
    rtt_micros: AtomicU64,
}

/// Replies by (query type, RCODE): a fixed table of atomics.
#[derive(Debug)]
struct QueryTable([[AtomicU64; RCODES.len()]; QTYPE_SLOTS]);

impl Default for QueryTable {
    fn default() -> Self {
        Self(std::array::from_fn(|_| {
            std::array::from_fn(|_| AtomicU64::new(0))
        }))
    }
}

/// A fixed-bucket histogram of atomics (the crate's own takes a lock per observation).
/// Each bucket counts only its own range (the last one everything past 5 s); the text
/// format's cumulative counts and `_count` are derived from one read of the buckets at
/// scrape time, so `_count` always equals the `+Inf` bucket even while observations land.
#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

/// The state of one member of a redirect pool, as `ctl health` and the metrics show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberHealth {
    pub pool: String,
    pub member: String,
    pub healthy: bool,
}

/// Who knows the pools' health (the redirect layer); `serve` installs it with
/// [`Metrics::set_health_source`].
pub trait HealthSource: Send + Sync + std::fmt::Debug {
    fn health(&self) -> Vec<MemberHealth>;
}

impl Metrics {
    /// Counts one reply from its bytes: query type from the question, RCODE from the header.
    /// Cheap enough for every reply: it walks the question name's labels, nothing more.
    pub fn count_reply(&self, reply: &[u8], proto: Proto) {
        let rcode = reply.get(3).map_or(RCODES.len() - 1, |b| {
            usize::from(b & 0x0f).min(RCODES.len() - 1)
        });
        let qtype = crate::dns::wire::first_question_type(reply)
            .and_then(|t| QTYPES.iter().position(|(code, _)| *code == t))
            .unwrap_or(QTYPES.len());
        self.with_hot(|h| {
            bump(&h.replies.0[qtype][rcode]);
            bump(&h.by_transport[proto.index()]);
        });
    }

    /// Replies sent over `proto`, summed over threads.
    fn replies_over(&self, proto: Proto) -> u64 {
        let hot = self.hot.lock().unwrap_or_else(|e| e.into_inner());
        hot.iter()
            .map(|h| h.by_transport[proto.index()].load(Relaxed))
            .sum()
    }

    /// A connection of a stream transport opened; it counts as open until the guard drops.
    pub fn connection_opened(&'static self, proto: Proto) -> ConnectionGuard {
        self.connections[proto.index()].open.fetch_add(1, Relaxed);
        ConnectionGuard {
            metrics: self,
            proto,
        }
    }

    /// A TLS handshake completed over `proto` (DoT or DoH); `resumed`: it resumed a session.
    pub fn handshake(&self, proto: Proto, resumed: bool) {
        let c = &self.connections[proto.index()];
        c.handshakes.fetch_add(1, Relaxed);
        if resumed {
            c.resumptions.fetch_add(1, Relaxed);
        }
    }

    /// A TLS handshake over `proto` failed or timed out.
    pub fn handshake_failed(&self, proto: Proto) {
        self.connections[proto.index()]
            .handshake_failures
            .fetch_add(1, Relaxed);
    }

    /// Runs `f` on this thread's block of hit-path counters, registering it on first use.
    fn with_hot(&self, f: impl FnOnce(&Hot)) {
        let me = self as *const Metrics as usize;
        HOT.with(|cell| {
            let mut cell = cell.borrow_mut();
            match cell.as_ref() {
                Some((owner, hot)) if *owner == me => f(hot),
                _ => {
                    let hot = Arc::new(Hot::default());
                    self.hot
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(hot.clone());
                    f(&hot);
                    *cell = Some((me, hot));
                }
            }
        });
    }

    /// Replies of type slot `t` and RCODE `r`, summed over threads.
    fn replies(&self, t: usize, r: usize) -> u64 {
        let hot = self.hot.lock().unwrap_or_else(|e| e.into_inner());
        hot.iter().map(|h| h.replies.0[t][r].load(Relaxed)).sum()
    }

    fn cache_hits(&self) -> u64 {
        let hot = self.hot.lock().unwrap_or_else(|e| e.into_inner());
        hot.iter().map(|h| h.cache_hits.load(Relaxed)).sum()
    }

    /// A question answered from the cache without asking any authority.
    pub fn cache_hit(&self) {
        self.with_hot(|h| bump(&h.cache_hits));
    }

    /// A question that had to go to the authorities.
    pub fn cache_miss(&self) {
        self.cache_misses.fetch_add(1, Relaxed);
    }

    /// An expired answer served because every authority failed (RFC 8767).
    pub fn stale_answer(&self) {
        self.stale_answers.fetch_add(1, Relaxed);
    }

    /// A popular entry refreshed before it expired.
    pub fn prefetch(&self) {
        self.prefetches.fetch_add(1, Relaxed);
    }

    /// A new cache miss refused because too many resolutions were pending.
    pub fn overloaded(&self) {
        self.overloaded.fetch_add(1, Relaxed);
    }

    /// A UDP reply dropped by response rate limiting.
    pub fn rrl_dropped(&self) {
        self.rrl_dropped.fetch_add(1, Relaxed);
    }

    /// A UDP reply sent truncated (TC=1) by response rate limiting.
    pub fn rrl_slipped(&self) {
        self.rrl_slipped.fetch_add(1, Relaxed);
    }

    /// A TCP connection closed at once: its client is outside the allow-list.
    pub fn tcp_refused(&self) {
        self.tcp_refused.fetch_add(1, Relaxed);
    }

    /// An idle TCP connection closed to make room for a new one.
    pub fn tcp_evicted(&self) {
        self.tcp_evicted.fetch_add(1, Relaxed);
    }

    /// One condition caused by a remote client (see [`ClientError`]).
    pub fn client_error(&self, kind: ClientError) {
        self.client_errors[kind as usize].fetch_add(1, Relaxed);
    }

    /// How many of `kind` were counted since start.
    pub fn client_errors(&self, kind: ClientError) -> u64 {
        self.client_errors[kind as usize].load(Relaxed)
    }

    /// An NXDOMAIN or NODATA synthesised from the validated cache without asking (RFC 8198).
    pub fn aggressive_nsec(&self, kind: Aggressive) {
        self.aggressive_nsec[kind as usize].fetch_add(1, Relaxed);
    }

    /// How many answers of `kind` were synthesised since start.
    pub fn aggressive_nsec_count(&self, kind: Aggressive) -> u64 {
        self.aggressive_nsec[kind as usize].load(Relaxed)
    }

    /// A resolution's outcome was judged `state` by the validator.
    pub fn validated(&self, state: Validated) {
        self.validations[state as usize].fetch_add(1, Relaxed);
    }

    /// How many outcomes were judged `state` since start.
    pub fn validations(&self, state: Validated) -> u64 {
        self.validations[state as usize].load(Relaxed)
    }

    /// A resolution starts waiting on authorities; the guard ends it and records its latency.
    pub fn resolution_started(&'static self) -> InFlightGuard {
        self.in_flight.fetch_add(1, Relaxed);
        InFlightGuard {
            metrics: self,
            start: std::time::Instant::now(),
        }
    }

    /// One query sent to `server`: its reply's RCODE, or that none came (`timed_out`,
    /// which covers every failure of the server or the path to it).
    pub fn upstream_query(&self, server: IpAddr, reply: Option<u16>) {
        let row = self.server_row(server);
        let row = row.as_deref().unwrap_or(&self.upstream_other);
        row.queries.fetch_add(1, Relaxed);
        match reply {
            Some(rcode) => {
                self.upstream_rcodes[usize::from(rcode).min(RCODES.len() - 1)]
                    .fetch_add(1, Relaxed);
            }
            None => {
                row.timeouts.fetch_add(1, Relaxed);
            }
        }
    }

    /// A reply from `server` after `rtt`.
    pub fn upstream_rtt(&self, server: IpAddr, rtt: std::time::Duration) {
        let row = self.server_row(server);
        let row = row.as_deref().unwrap_or(&self.upstream_other);
        row.replies.fetch_add(1, Relaxed);
        let us = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX);
        row.rtt_micros.fetch_add(us, Relaxed);
    }

    /// A query that never left: this process ran out of something (file descriptors,
    /// buffers). Counted apart so a healthy server is not blamed for it.
    pub fn upstream_local_error(&self) {
        self.upstream_local_errors.fetch_add(1, Relaxed);
    }

    /// A redirect rule answered with `action` (a name from [`RULE_ACTIONS`]).
    pub fn rule_answer(&self, action: &str) {
        if let Some(i) = RULE_ACTIONS.iter().position(|(a, _)| *a == action) {
            self.rule_answers[i].fetch_add(1, Relaxed);
        }
    }

    /// Installs who reports the cache's size (for `hopdns_cache_*`).
    pub fn set_cache_source(&self, source: Option<Arc<dyn CacheSource>>) {
        *self.cache.write().unwrap_or_else(|e| e.into_inner()) = source;
    }

    fn server_row(&self, server: IpAddr) -> Option<Arc<ServerCounters>> {
        let read = self.upstream.read().unwrap_or_else(|e| e.into_inner());
        if let Some(row) = read.get(&server) {
            return Some(row.clone());
        }
        drop(read);
        let mut write = self.upstream.write().unwrap_or_else(|e| e.into_inner());
        if write.len() >= MAX_SERVERS && !write.contains_key(&server) {
            return None;
        }
        Some(write.entry(server).or_default().clone())
    }

    /// Installs who reports pool health (for `hopdns_pool_member_up`).
    pub fn set_health_source(&self, source: Option<Arc<dyn HealthSource>>) {
        *self.health.write().unwrap_or_else(|e| e.into_inner()) = source;
    }

    /// Pool member states now (empty without a health source).
    pub fn pool_health(&self) -> Vec<MemberHealth> {
        let source = self
            .health
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        source.map(|s| s.health()).unwrap_or_default()
    }

    /// A few headline numbers, for `hopdns ctl stats`.
    pub fn summary(&self) -> Vec<(String, u64)> {
        let by_rcode = |i: usize| -> u64 { (0..QTYPE_SLOTS).map(|t| self.replies(t, i)).sum() };
        let replies: u64 = (0..RCODES.len()).map(by_rcode).sum();
        let (queries, timeouts) = self.upstream_totals();
        vec![
            ("replies".into(), replies),
            ("replies_noerror".into(), by_rcode(0)),
            ("replies_nxdomain".into(), by_rcode(3)),
            ("replies_servfail".into(), by_rcode(2)),
            ("replies_refused".into(), by_rcode(5)),
            ("cache_hits".into(), self.cache_hits()),
            ("cache_misses".into(), self.cache_misses.load(Relaxed)),
            ("stale_answers".into(), self.stale_answers.load(Relaxed)),
            ("prefetches".into(), self.prefetches.load(Relaxed)),
            (
                "in_flight".into(),
                self.in_flight.load(Relaxed).max(0) as u64,
            ),
            ("overloaded".into(), self.overloaded.load(Relaxed)),
            ("upstream_queries".into(), queries),
            ("upstream_timeouts".into(), timeouts),
            ("rrl_dropped".into(), self.rrl_dropped.load(Relaxed)),
            ("rrl_slipped".into(), self.rrl_slipped.load(Relaxed)),
            ("tcp_refused".into(), self.tcp_refused.load(Relaxed)),
            ("tcp_evicted".into(), self.tcp_evicted.load(Relaxed)),
        ]
        .into_iter()
        .chain(
            ClientError::ALL
                .map(|k| (format!("client_errors_{}", k.name()), self.client_errors(k))),
        )
        .chain(Aggressive::ALL.map(|k| {
            (
                format!("aggressive_nsec_{}", k.name()),
                self.aggressive_nsec_count(k),
            )
        }))
        .chain(Validated::ALL.map(|k| (format!("dnssec_{}", k.name()), self.validations(k))))
        .collect()
    }

    fn upstream_totals(&self) -> (u64, u64) {
        let map = self.upstream.read().unwrap_or_else(|e| e.into_inner());
        map.values()
            .map(|r| r.as_ref())
            .chain(std::iter::once(&self.upstream_other))
            .fold((0, 0), |(q, t), r| {
                (q + r.queries.load(Relaxed), t + r.timeouts.load(Relaxed))
            })
    }
}

/// The counters the dashboard samples (`serve --web`), all totals since start: the sampler
/// keeps the differences, so reading costs the hot path nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Replies sent (every transport, every RCODE).
    pub replies: u64,
    /// Questions answered from the cache without asking an authority.
    pub cache_hits: u64,
    /// Questions that went to the authorities.
    pub cache_misses: u64,
    /// Answers withheld by a blocking rule (block, sinkhole, nodata, drop).
    pub blocked: u64,
    /// Answers given by another rule (override, alias, pool, local data); PASSTHRU is not
    /// counted, as it resolves normally.
    pub redirected: u64,
    /// Replies with SERVFAIL or REFUSED.
    pub failed: u64,
    /// Queries sent to authorities and forwarders.
    pub upstream_queries: u64,
    /// Resolution latencies, per [`LATENCY_BUCKETS`] bucket alone (the last: past 5 s).
    pub latency: [u64; LATENCY_BUCKETS.len() + 1],
}

impl Metrics {
    /// The dashboard's counters now (one pass over the per-thread blocks).
    pub fn snapshot(&self) -> Snapshot {
        let (mut replies, mut failed, mut cache_hits) = (0u64, 0u64, 0u64);
        {
            let hot = self.hot.lock().unwrap_or_else(|e| e.into_inner());
            for h in hot.iter() {
                for t in &h.replies.0 {
                    for (r, c) in t.iter().enumerate() {
                        let n = c.load(Relaxed);
                        replies += n;
                        // SERVFAIL (2) and REFUSED (5), RFC 1035 §4.1.1.
                        if r == 2 || r == 5 {
                            failed += n;
                        }
                    }
                }
                cache_hits += h.cache_hits.load(Relaxed);
            }
        }
        let (mut blocked, mut redirected) = (0, 0);
        for ((name, block), c) in RULE_ACTIONS.iter().zip(&self.rule_answers) {
            match (block, *name) {
                (true, _) => blocked += c.load(Relaxed),
                (false, "passthru") => {}
                (false, _) => redirected += c.load(Relaxed),
            }
        }
        Snapshot {
            replies,
            cache_hits,
            cache_misses: self.cache_misses.load(Relaxed),
            blocked,
            redirected,
            failed,
            upstream_queries: self.upstream_totals().0,
            latency: std::array::from_fn(|i| self.latency.buckets[i].load(Relaxed)),
        }
    }

    /// What the cache source (the resolver) reports, if one is installed.
    pub fn cache_stats(&self) -> Option<crate::cache::CacheStats> {
        let source = self.cache.read().unwrap_or_else(|e| e.into_inner()).clone();
        source.map(|s| s.cache_stats())
    }
}

/// Ends one in-flight resolution when dropped (cancelled ones included).
#[must_use]
pub struct InFlightGuard {
    metrics: &'static Metrics,
    start: std::time::Instant,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.metrics.in_flight.fetch_sub(1, Relaxed);
        self.metrics.latency.observe(self.start.elapsed());
    }
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_micros
            .fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }

    /// `(upper bound, count in that bucket alone)` pairs ending with `+Inf`, and their
    /// total: what `encode_histogram` takes (it accumulates the counts itself).
    fn snapshot(&self) -> (Vec<(f64, u64)>, u64) {
        let buckets: Vec<(f64, u64)> = LATENCY_BUCKETS
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(&self.buckets)
            .map(|(bound, c)| (bound, c.load(Relaxed)))
            .collect();
        let count = buckets.iter().map(|(_, c)| c).sum();
        (buckets, count)
    }
}

/// Open file descriptors (entries of /proc/self/fd) and the soft limit, as Prometheus's
/// process collector names them; `None` where /proc is missing.
/// jemalloc's own byte counts, read fresh (its statistics are refreshed by advancing the
/// epoch); `None` where jemalloc is not the allocator in use (the library's tests).
fn allocator_bytes() -> Option<[(&'static str, i64); 4]> {
    use tikv_jemalloc_ctl::{epoch, stats};
    epoch::advance().ok()?;
    let get = |v: Result<usize, tikv_jemalloc_ctl::Error>| v.ok().map(|b| b as i64);
    let allocated = get(stats::allocated::read())?;
    if allocated == 0 {
        return None;
    }
    Some([
        ("allocated", allocated),
        ("active", get(stats::active::read())?),
        ("resident", get(stats::resident::read())?),
        ("retained", get(stats::retained::read())?),
    ])
}

fn process_fds() -> Option<(i64, i64)> {
    let open = std::fs::read_dir("/proc/self/fd").ok()?.count();
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit to write into.
    let max = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        i64::try_from(lim.rlim_cur).unwrap_or(i64::MAX)
    } else {
        -1
    };
    // The directory listing itself held one descriptor while it was read.
    Some((i64::try_from(open).unwrap_or(i64::MAX) - 1, max))
}

/// Every metric in the Prometheus/OpenMetrics text format.
pub fn render() -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Exporter(metrics())));
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

/// OpenMetrics text rewritten in the Prometheus text format 0.0.4: a counter family `x`
/// has samples `x_total`, which the older format names in its `# HELP` and `# TYPE` lines;
/// `# UNIT` and `# EOF` do not exist there. Everything else is the same.
pub fn to_text_format(open_metrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = open_metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len());
    for line in open_metrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let rest = line
            .strip_prefix("# HELP ")
            .map(|r| ("# HELP ", r))
            .or_else(|| line.strip_prefix("# TYPE ").map(|r| ("# TYPE ", r)));
        match rest {
            Some((tag, r)) => {
                let (name, tail) = r.split_once(' ').unwrap_or((r, ""));
                if counters.contains(name) {
                    out.push_str(&format!("{tag}{name}_total {tail}\n"));
                } else {
                    out.push_str(line);
                    out.push('\n');
                }
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

#[derive(Debug)]
struct Exporter(&'static Metrics);

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    encoder
        .encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, u64, u64>(&value, None)
}

impl Collector for Exporter {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = self.0;
        {
            let mut family = encoder.encode_descriptor(
                "hopdns_replies",
                "Replies sent to clients, by query type and RCODE",
                None,
                MetricType::Counter,
            )?;
            for t in 0..QTYPE_SLOTS {
                let qtype = QTYPES.get(t).map_or("other", |(_, n)| n);
                for (r, rcode) in RCODES.iter().enumerate() {
                    let v = m.replies(t, r);
                    if v == 0 {
                        continue;
                    }
                    let labels = [("qtype", qtype), ("rcode", *rcode)];
                    family
                        .encode_family(&labels)?
                        .encode_counter::<NoLabelSet, u64, u64>(&v, None)?;
                }
            }
        }
        let hits = AtomicU64::new(m.cache_hits());
        let simple = [
            (
                "hopdns_cache_hits",
                "Questions answered from the cache",
                &hits,
            ),
            (
                "hopdns_cache_misses",
                "Questions that went to the authorities",
                &m.cache_misses,
            ),
            (
                "hopdns_stale_answers",
                "Expired answers served because the authorities failed (RFC 8767)",
                &m.stale_answers,
            ),
            (
                "hopdns_prefetches",
                "Cache entries refreshed before expiry",
                &m.prefetches,
            ),
            (
                "hopdns_overloaded",
                "New cache misses answered SERVFAIL because max-pending resolutions were waiting",
                &m.overloaded,
            ),
            (
                "hopdns_rrl_dropped",
                "UDP replies dropped by response rate limiting",
                &m.rrl_dropped,
            ),
            (
                "hopdns_rrl_slipped",
                "UDP replies sent truncated (TC=1) by response rate limiting",
                &m.rrl_slipped,
            ),
            (
                "hopdns_tcp_refused",
                "TCP connections closed at once: client outside the allow-list",
                &m.tcp_refused,
            ),
            (
                "hopdns_tcp_evicted",
                "Idle TCP connections closed to make room for a new one",
                &m.tcp_evicted,
            ),
        ];
        for (name, help, value) in simple {
            counter(&mut encoder, name, help, value.load(Relaxed))?;
        }
        {
            let mut family = encoder.encode_descriptor(
                "hopdns_client_errors",
                "Conditions caused by clients: malformed queries, malformed EDNS, not allowed",
                None,
                MetricType::Counter,
            )?;
            for kind in ClientError::ALL {
                family
                    .encode_family(&[("kind", kind.name())])?
                    .encode_counter::<NoLabelSet, u64, u64>(&m.client_errors(kind), None)?;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "hopdns_aggressive_nsec",
                "NXDOMAIN and NODATA answers synthesised from cached, validated NSEC records \
                 without asking upstream (RFC 8198), by kind",
                None,
                MetricType::Counter,
            )?;
            for kind in Aggressive::ALL {
                family
                    .encode_family(&[("kind", kind.name())])?
                    .encode_counter::<NoLabelSet, u64, u64>(&m.aggressive_nsec_count(kind), None)?;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "hopdns_dnssec_validations",
                "Resolutions whose outcome the validator judged, by state (RFC 4035 §4.3): \
                 secure, insecure, bogus (answered SERVFAIL), indeterminate (no trust anchor \
                 above the name)",
                None,
                MetricType::Counter,
            )?;
            for state in Validated::ALL {
                family
                    .encode_family(&[("state", state.name())])?
                    .encode_counter::<NoLabelSet, u64, u64>(&m.validations(state), None)?;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "hopdns_transport_replies",
                "Replies sent to clients, by transport (udp, tcp, tls: DoT, https: DoH)",
                None,
                MetricType::Counter,
            )?;
            for proto in Proto::ALL {
                family
                    .encode_family(&[("transport", proto.name())])?
                    .encode_counter::<NoLabelSet, u64, u64>(&m.replies_over(proto), None)?;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "hopdns_connections_open",
                "Client connections open now, by transport",
                None,
                MetricType::Gauge,
            )?;
            for proto in [Proto::Tcp, Proto::Tls, Proto::Https] {
                let open = m.connections[proto.index()].open.load(Relaxed).max(0);
                family
                    .encode_family(&[("transport", proto.name())])?
                    .encode_gauge(&open)?;
            }
        }
        for (name, help, field) in [
            (
                "hopdns_tls_handshakes",
                "TLS handshakes completed with clients, by transport",
                (|c: &ConnCounters| c.handshakes.load(Relaxed)) as fn(&ConnCounters) -> u64,
            ),
            (
                "hopdns_tls_resumptions",
                "TLS handshakes that resumed a session, by transport",
                |c: &ConnCounters| c.resumptions.load(Relaxed),
            ),
            (
                "hopdns_tls_handshake_failures",
                "TLS handshakes with clients that failed or timed out, by transport",
                |c: &ConnCounters| c.handshake_failures.load(Relaxed),
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for proto in [Proto::Tls, Proto::Https] {
                family
                    .encode_family(&[("transport", proto.name())])?
                    .encode_counter::<NoLabelSet, u64, u64>(
                        &field(&m.connections[proto.index()]),
                        None,
                    )?;
            }
        }
        encoder
            .encode_descriptor(
                "hopdns_resolutions_in_flight",
                "Resolutions waiting on authorities now",
                None,
                MetricType::Gauge,
            )?
            .encode_gauge(&m.in_flight.load(Relaxed).max(0))?;
        {
            let (buckets, count) = m.latency.snapshot();
            let sum = m.latency.sum_micros.load(Relaxed) as f64 / 1e6;
            encoder
                .encode_descriptor(
                    "hopdns_resolution_duration_seconds",
                    "Time from a cache miss to its outcome (authorities asked)",
                    None,
                    MetricType::Histogram,
                )?
                .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        }
        {
            let map = m.upstream.read().unwrap_or_else(|e| e.into_inner());
            let mut rows: Vec<(String, &ServerCounters)> = map
                .iter()
                .map(|(ip, r)| (ip.to_string(), r.as_ref()))
                .collect();
            rows.sort_by(|a, b| a.0.cmp(&b.0));
            if m.upstream_other.queries.load(Relaxed) > 0 {
                rows.push(("other".to_string(), &m.upstream_other));
            }
            type Pick = fn(&ServerCounters) -> &AtomicU64;
            let table: [(&str, &str, Pick); 3] = [
                (
                    "hopdns_upstream_queries",
                    "Queries sent to each upstream server (authorities and forwarders)",
                    |r| &r.queries,
                ),
                (
                    "hopdns_upstream_timeouts",
                    "Queries to each server that got no usable reply in time",
                    |r| &r.timeouts,
                ),
                (
                    "hopdns_upstream_answered",
                    "Replies from each server (the count behind the RTT sum)",
                    |r| &r.replies,
                ),
            ];
            for (name, help, pick) in table {
                let mut family =
                    encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
                for (server, row) in &rows {
                    let labels = [("server", server.as_str())];
                    family
                        .encode_family(&labels)?
                        .encode_counter::<NoLabelSet, u64, u64>(&pick(row).load(Relaxed), None)?;
                }
            }
            let mut family = encoder.encode_descriptor(
                "hopdns_upstream_rtt_seconds",
                "Sum of each server's reply round-trip times (mean = this / answered)",
                None,
                MetricType::Counter,
            )?;
            for (server, row) in &rows {
                let labels = [("server", server.as_str())];
                let seconds = row.rtt_micros.load(Relaxed) as f64 / 1e6;
                family
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, f64, u64>(&seconds, None)?;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "hopdns_upstream_replies",
                "Replies from authoritative servers, by RCODE",
                None,
                MetricType::Counter,
            )?;
            for (rcode, c) in RCODES.iter().zip(&m.upstream_rcodes) {
                let labels = [("rcode", *rcode)];
                family
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, u64, u64>(&c.load(Relaxed), None)?;
            }
        }
        counter(
            &mut encoder,
            "hopdns_upstream_local_errors",
            "Upstream queries that failed on this host (out of file descriptors or buffers), \
             not counted against the server",
            m.upstream_local_errors.load(Relaxed),
        )?;
        for (name, help, blocked) in [
            (
                "hopdns_blocked",
                "Questions a redirect rule answered by withholding the answer, by action",
                true,
            ),
            (
                "hopdns_redirected",
                "Questions a redirect rule answered with other data, by action",
                false,
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for ((action, is_block), c) in RULE_ACTIONS.iter().zip(&m.rule_answers) {
                if *is_block == blocked {
                    let labels = [("action", *action)];
                    family
                        .encode_family(&labels)?
                        .encode_counter::<NoLabelSet, u64, u64>(&c.load(Relaxed), None)?;
                }
            }
        }
        let cache = m.cache.read().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(cache) = cache {
            let s = cache.cache_stats();
            let stores = [("rrset", &s.rrsets), ("message", &s.messages)];
            for (name, help, value) in [
                (
                    "hopdns_cache_bytes",
                    "Bytes held by each answer store (bounded together by cache-size)",
                    (|st: &crate::cache::StoreStats| st.bytes as i64) as fn(&_) -> i64,
                ),
                (
                    "hopdns_cache_entries",
                    "Entries held by each cache store",
                    |st| st.entries as i64,
                ),
            ] {
                let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
                for (store, st) in stores {
                    family
                        .encode_family(&[("store", store)])?
                        .encode_gauge(&value(st))?;
                }
                if name == "hopdns_cache_entries" {
                    family
                        .encode_family(&[("store", "delegation")])?
                        .encode_gauge(&(s.delegations as i64))?;
                }
            }
            let mut family = encoder.encode_descriptor(
                "hopdns_cache_evictions",
                "Entries evicted (least recently used) to stay within cache-size, by store",
                None,
                MetricType::Counter,
            )?;
            for (store, st) in stores {
                family
                    .encode_family(&[("store", store)])?
                    .encode_counter::<NoLabelSet, u64, u64>(&st.evictions, None)?;
            }
        }
        if let Some(bytes) = allocator_bytes() {
            let mut family = encoder.encode_descriptor(
                "hopdns_allocator_bytes",
                "jemalloc's bytes: allocated (in live objects), active (in pages holding them), \
                 resident (in RAM, including its own slack), retained (address space kept unmapped from RAM)",
                None,
                MetricType::Gauge,
            )?;
            for (state, v) in bytes {
                family
                    .encode_family(&[("state", state)])?
                    .encode_gauge(&v)?;
            }
        }
        if let Some((open, max)) = process_fds() {
            for (name, help, v) in [
                ("process_open_fds", "Number of open file descriptors", open),
                (
                    "process_max_fds",
                    "Maximum number of open file descriptors (soft RLIMIT_NOFILE)",
                    max,
                ),
            ] {
                encoder
                    .encode_descriptor(name, help, None, MetricType::Gauge)?
                    .encode_gauge(&v)?;
            }
        }
        {
            let health = m.pool_health();
            let mut family = encoder.encode_descriptor(
                "hopdns_pool_member_up",
                "Health of each redirect pool member (1 healthy, 0 down)",
                None,
                MetricType::Gauge,
            )?;
            for h in &health {
                let labels = [("pool", h.pool.as_str()), ("member", h.member.as_str())];
                family
                    .encode_family(&labels)?
                    .encode_gauge(&i64::from(h.healthy))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_type_and_rcode_are_read_from_the_bytes() {
        use hickory_proto::op::{Message, Query, ResponseCode};
        use hickory_proto::rr::{Name, RecordType};
        let mut msg = Message::query();
        msg.add_query(Query::query(
            Name::from_ascii("www.example.com.").unwrap(),
            RecordType::AAAA,
        ));
        msg.metadata.response_code = ResponseCode::NXDomain;
        let bytes = msg.to_vec().unwrap();
        assert_eq!(crate::dns::wire::first_question_type(&bytes), Some(28));
        let m = Metrics::default();
        m.count_reply(&bytes, Proto::Udp);
        m.count_reply(&bytes[..5], Proto::Udp);
        assert_eq!(m.replies(7, 3), 1, "AAAA NXDOMAIN");
        assert_eq!(m.replies(QTYPES.len(), 3), 1, "no question: type other");
        // Counts from another thread land in its own block and are summed.
        std::thread::scope(|s| {
            s.spawn(|| m.count_reply(&bytes, Proto::Tcp));
        });
        assert_eq!(m.replies(7, 3), 2);
    }

    #[test]
    fn the_histogram_is_cumulative_in_the_text_format() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(30));
        h.observe(Duration::from_secs(9));
        let (buckets, count) = h.snapshot();
        assert_eq!(count, 3);
        assert_eq!(buckets[0], (0.001, 1));
        assert_eq!(buckets[5], (0.05, 1));
        assert_eq!(
            buckets[LATENCY_BUCKETS.len()],
            (f64::INFINITY, 1),
            "past 5 s"
        );
        // The encoder accumulates: +Inf must equal _count (issue 12.3: it was summed twice).
        let mut registry = Registry::default();
        #[derive(Debug)]
        struct One(Histogram);
        impl Collector for One {
            fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
                let (b, n) = self.0.snapshot();
                e.encode_descriptor("h", "h", None, MetricType::Histogram)?
                    .encode_histogram::<NoLabelSet>(0.0, n, &b, None)
            }
        }
        registry.register_collector(Box::new(One(h)));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("h_bucket{le=\"0.05\"} 2\n"), "{text}");
        assert!(text.contains("h_bucket{le=\"5.0\"} 2\n"), "{text}");
        assert!(text.contains("h_bucket{le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("h_count 3\n"), "{text}");
    }
}
