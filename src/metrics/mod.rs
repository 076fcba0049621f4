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

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, LazyLock, Mutex, RwLock};
use std::time::Duration;

use prometheus_client::collector::Collector;
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
const LATENCY_BUCKETS: [f64; 12] = [
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
    client_errors: [AtomicU64; ClientError::ALL.len()],
    latency: Histogram,
    upstream: RwLock<HashMap<IpAddr, Arc<ServerCounters>>>,
    upstream_other: ServerCounters,
    health: RwLock<Option<Arc<dyn HealthSource>>>,
}

/// The counters every cache hit touches, one block per thread (single writer).
#[derive(Debug, Default)]
struct Hot {
    /// Replies sent, by query type and RCODE.
    replies: QueryTable,
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

/// One upstream server's counters.
#[derive(Debug, Default)]
struct ServerCounters {
    queries: AtomicU64,
    timeouts: AtomicU64,
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
#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
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
    pub fn count_reply(&self, reply: &[u8]) {
        let rcode = reply.get(3).map_or(RCODES.len() - 1, |b| {
            usize::from(b & 0x0f).min(RCODES.len() - 1)
        });
        let qtype = reply_qtype(reply)
            .and_then(|t| QTYPES.iter().position(|(code, _)| *code == t))
            .unwrap_or(QTYPES.len());
        self.with_hot(|h| bump(&h.replies.0[qtype][rcode]));
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

    /// A resolution starts waiting on authorities; the guard ends it and records its latency.
    pub fn resolution_started(&'static self) -> InFlightGuard {
        self.in_flight.fetch_add(1, Relaxed);
        InFlightGuard {
            metrics: self,
            start: std::time::Instant::now(),
        }
    }

    /// One query sent to `server`, and whether it timed out (or failed to get any reply).
    pub fn upstream_query(&self, server: IpAddr, timed_out: bool) {
        let row = self.server_row(server);
        let row = row.as_deref().unwrap_or(&self.upstream_other);
        row.queries.fetch_add(1, Relaxed);
        if timed_out {
            row.timeouts.fetch_add(1, Relaxed);
        }
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
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_micros
            .fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }
}

/// The query type of a reply's (single) question, read without decoding the message.
fn reply_qtype(msg: &[u8]) -> Option<u16> {
    if msg.get(4..6)? == [0, 0] {
        return None;
    }
    let at = crate::cache::skip_name(msg, 12)?;
    let t = msg.get(at..at + 2)?;
    Some(u16::from_be_bytes([t[0], t[1]]))
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
        encoder
            .encode_descriptor(
                "hopdns_resolutions_in_flight",
                "Resolutions waiting on authorities now",
                None,
                MetricType::Gauge,
            )?
            .encode_gauge(&m.in_flight.load(Relaxed).max(0))?;
        {
            let h = &m.latency;
            let mut cumulative = 0;
            let buckets: Vec<(f64, u64)> = LATENCY_BUCKETS
                .iter()
                .zip(&h.buckets)
                .map(|(bound, c)| {
                    cumulative += c.load(Relaxed);
                    (*bound, cumulative)
                })
                .chain(std::iter::once((f64::INFINITY, h.count.load(Relaxed))))
                .collect();
            let sum = h.sum_micros.load(Relaxed) as f64 / 1e6;
            encoder
                .encode_descriptor(
                    "hopdns_resolution_duration_seconds",
                    "Time from a cache miss to its outcome (authorities asked)",
                    None,
                    MetricType::Histogram,
                )?
                .encode_histogram::<NoLabelSet>(sum, h.count.load(Relaxed), &buckets, None)?;
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
            for (name, help, timeouts) in [
                (
                    "hopdns_upstream_queries",
                    "Queries sent to each authoritative server",
                    false,
                ),
                (
                    "hopdns_upstream_timeouts",
                    "Queries to each server that got no usable reply in time",
                    true,
                ),
            ] {
                let mut family =
                    encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
                for (server, row) in &rows {
                    let v = if timeouts {
                        &row.timeouts
                    } else {
                        &row.queries
                    };
                    let labels = [("server", server.as_str())];
                    family
                        .encode_family(&labels)?
                        .encode_counter::<NoLabelSet, u64, u64>(&v.load(Relaxed), None)?;
                }
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
        assert_eq!(reply_qtype(&bytes), Some(28));
        let m = Metrics::default();
        m.count_reply(&bytes);
        m.count_reply(&bytes[..5]);
        assert_eq!(m.replies(7, 3), 1, "AAAA NXDOMAIN");
        assert_eq!(m.replies(QTYPES.len(), 3), 1, "no question: type other");
        // Counts from another thread land in its own block and are summed.
        std::thread::scope(|s| {
            s.spawn(|| m.count_reply(&bytes));
        });
        assert_eq!(m.replies(7, 3), 2);
    }

    #[test]
    fn the_histogram_is_cumulative_in_the_text_format() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(30));
        h.observe(Duration::from_secs(9));
        assert_eq!(h.count.load(Relaxed), 3);
        assert_eq!(h.buckets[0].load(Relaxed), 1);
        assert_eq!(h.buckets[5].load(Relaxed), 1);
        let text = render();
        assert!(
            text.contains("hopdns_resolution_duration_seconds_bucket{le=\"+Inf\"}"),
            "{text}"
        );
    }
}
