//! The cache room: three stores kept apart, as Unbound keeps them (`services/cache`, `infra`):
//!
//! * [`AnswerCache`]: what clients are told (positive RRsets and negative answers), TTL-aware,
//!   kept in wire form and bounded in bytes.
//! * [`MessageCache`]: whole replies as ready bytes for the front end's fast hit path.
//! * [`DelegationCache`]: zone cuts (NS names + glue), so a later question under a known zone
//!   starts at the closest cached cut instead of the root.
//! * [`InfraCache`]: what we know of each server (smoothed RTT, timeouts, EDNS support).
//!
//! No I/O happens here. Time is passed in: `now` is whole seconds of the wall clock (as
//! Unbound's and Knot's caches keep it) for TTLs, and a monotonic `Instant` for the infra
//! cache, both read by the caller from [`Cache::clock`], the resolver's one [`Clock`] (tests
//! make it manual and advance it instead of sleeping).

mod answer;
mod delegation;
mod infra;
mod message;
mod nsec;
mod persist;
mod store;

use std::sync::atomic::{AtomicU64, Ordering};

use hickory_proto::rr::{DNSClass, Name};

use crate::dns::Clock;

pub use answer::{AnswerCache, Cached, STALE_TTL};
pub use delegation::{Delegation, DelegationCache, NsName};
pub use infra::{Feedback, InfraCache, ServerStats, HOST_TTL, INITIAL_RTO, PROBE_AFTER};
pub use message::{MessageCache, Miss, Patch, Written};
pub use nsec::{NsecCache, NsecZone, MAX_RANGES_PER_ZONE, MAX_ZONES};
pub use persist::{is_cache_header, LoadError, MAGIC_PREFIX};
pub use store::StoreStats;

/// Bounds and clamps for cached TTLs.
#[derive(Clone, Debug)]
pub struct CacheConfig {
    /// Bytes for the cache (`cache-size`): an eighth for zone cuts, the rest half for RRsets
    /// and negative answers, half for ready replies; past its share each store evicts its
    /// least recently used entries.
    pub size_bytes: usize,
    /// TTLs below this are raised to it (Unbound `cache-min-ttl`, default 0).
    pub min_ttl: u32,
    /// TTLs above this are lowered to it (Unbound `cache-max-ttl`, default 86400).
    pub max_ttl: u32,
    /// Cap on negative TTLs (RFC 2308 §5 suggests 1-3 hours; Unbound uses 3600).
    pub max_negative_ttl: u32,
    /// How long a failed resolution is answered with SERVFAIL without retrying (RFC 9520
    /// §3.2 asks for at least 1 s; a few seconds keep a failing name off its servers without
    /// hiding a repair for long).
    pub servfail_ttl: u32,
    /// Answer from expired entries when every authority fails (RFC 8767).
    pub serve_stale: bool,
    /// How long after expiry an entry may still be served stale (RFC 8767 §5 suggests 1-3
    /// days; default 1 day).
    pub stale_max_age: u32,
    /// Refresh an entry hit in the last 10% of its TTL (Unbound `prefetch`).
    pub prefetch: bool,
}

/// Default `cache-size`: 64 MiB.
pub const DEFAULT_CACHE_SIZE: usize = 64 << 20;

impl CacheConfig {
    /// The delegation cache's share of `cache-size`: zone cuts are counted in bytes like
    /// answers, since one referral can be fat (issue 11).
    pub fn delegation_bytes(&self) -> usize {
        self.size_bytes / 8
    }

    /// The RRset store's share of `cache-size`.
    pub fn rrset_bytes(&self) -> usize {
        (self.size_bytes - self.delegation_bytes()) / 2
    }

    /// The reply-template store's share of `cache-size`.
    pub fn message_bytes(&self) -> usize {
        self.size_bytes - self.delegation_bytes() - self.rrset_bytes()
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            size_bytes: DEFAULT_CACHE_SIZE,
            min_ttl: 0,
            max_ttl: 86_400,
            max_negative_ttl: 3_600,
            servfail_ttl: 5,
            serve_stale: true,
            stale_max_age: 86_400,
            prefetch: true,
        }
    }
}

/// The stores behind one handle, shared by every worker.
#[derive(Debug)]
pub struct Cache {
    pub answers: AnswerCache,
    pub messages: MessageCache,
    pub delegations: DelegationCache,
    pub infra: InfraCache,
    /// Validated DNSSEC key sets and insecure/bogus zones (the validator's key cache).
    pub keys: crate::dnssec::keycache::KeyCache,
    /// Validated NSEC ranges by zone, for RFC 8198 synthesis.
    pub nsec: NsecCache,
    pub config: CacheConfig,
    /// The clock every TTL and expiry of these stores is read from (issue 13.4).
    pub clock: Clock,
    prefetches: AtomicU64,
}

/// What the cache holds and has done, for `hopdns ctl stats` and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub rrsets: StoreStats,
    pub messages: StoreStats,
    pub delegations: usize,
    /// Prefetches started since start-up.
    pub prefetches: u64,
}

impl Cache {
    /// The stores on the system clock.
    pub fn new(config: CacheConfig) -> Self {
        Self::with_clock(config, Clock::system())
    }

    /// The stores on `clock` (a [`Clock::manual`] one in tests).
    pub fn with_clock(config: CacheConfig, clock: Clock) -> Self {
        Self {
            answers: AnswerCache::new(&config),
            messages: MessageCache::new(config.message_bytes()),
            delegations: DelegationCache::new(config.delegation_bytes(), config.max_ttl),
            infra: InfraCache::default(),
            keys: crate::dnssec::keycache::KeyCache::default(),
            nsec: NsecCache::default(),
            config,
            clock,
            prefetches: AtomicU64::new(0),
        }
    }

    /// Forgets everything cached for `name` (every type; its NXDOMAIN; ready replies).
    /// Returns how many entries went.
    pub fn flush_name(&self, name: &Name) -> usize {
        let key = crate::dns::wire::KeyBuf::from_parts(
            name,
            hickory_proto::rr::RecordType::A,
            DNSClass::IN,
        );
        self.answers.flush_name(key.name())
            + self.messages.flush_name(key.name())
            + self.nsec.flush_name(name)
    }

    /// Forgets everything at or below `zone`, zone cuts and validated keys included
    /// (Unbound `flush_zone`).
    pub fn flush_zone(&self, zone: &Name) -> usize {
        let key = crate::dns::wire::KeyBuf::from_parts(
            zone,
            hickory_proto::rr::RecordType::A,
            DNSClass::IN,
        );
        self.answers.flush_zone(key.name())
            + self.messages.flush_zone(key.name())
            + self.delegations.flush_zone(zone)
            + self.keys.flush_zone(zone)
            + self.nsec.flush_zone(zone)
    }

    /// Forgets every answer, zone cut and validated key set (server facts in the infra
    /// cache stay).
    pub fn flush_all(&self) {
        self.answers.clear();
        self.messages.clear();
        self.delegations.clear();
        self.keys.clear();
        self.nsec.clear();
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            rrsets: self.answers.stats(),
            messages: self.messages.stats(),
            delegations: self.delegations.len(),
            prefetches: self.prefetches.load(Ordering::Relaxed),
        }
    }

    /// Counts one prefetch started.
    pub fn count_prefetch(&self) {
        self.prefetches.fetch_add(1, Ordering::Relaxed);
    }
}

impl Default for Cache {
    fn default() -> Self {
        Self::new(CacheConfig::default())
    }
}
