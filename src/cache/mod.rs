//! The cache room: three stores kept apart, as Unbound keeps them (`services/cache`, `infra`):
//!
//! * [`AnswerCache`]: what clients are told (positive RRsets and negative answers), TTL-aware.
//! * [`DelegationCache`]: zone cuts (NS names + glue), so a later question under a known zone
//!   starts at the closest cached cut instead of the root.
//! * [`InfraCache`]: what we know of each server (smoothed RTT, timeouts, EDNS support).
//!
//! No I/O happens here. Time is passed in: `now` is whole seconds of the system clock (as
//! Unbound's and Knot's caches keep it) for TTLs, and a monotonic `Instant` for the infra cache.

mod answer;
mod delegation;
mod infra;

use std::time::{SystemTime, UNIX_EPOCH};

pub use answer::{AnswerCache, Cached, STALE_TTL};
pub use delegation::{Delegation, DelegationCache, NsName};
pub use infra::{InfraCache, ServerStats};

/// Seconds since the Unix epoch on the system clock: the time base of every TTL.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Bounds and clamps for cached TTLs.
#[derive(Clone, Debug)]
pub struct CacheConfig {
    /// Entries kept in the answer cache before the least recently used is evicted.
    pub answer_entries: usize,
    /// Zone cuts kept in the delegation cache.
    pub delegation_entries: usize,
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
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            answer_entries: 100_000,
            delegation_entries: 10_000,
            min_ttl: 0,
            max_ttl: 86_400,
            max_negative_ttl: 3_600,
            servfail_ttl: 5,
            serve_stale: true,
            stale_max_age: 86_400,
        }
    }
}

/// The three stores behind one handle, shared by every worker.
#[derive(Debug)]
pub struct Cache {
    pub answers: AnswerCache,
    pub delegations: DelegationCache,
    pub infra: InfraCache,
}

impl Cache {
    pub fn new(config: CacheConfig) -> Self {
        Self {
            answers: AnswerCache::new(&config),
            delegations: DelegationCache::new(config.delegation_entries, config.max_ttl),
            infra: InfraCache::default(),
        }
    }
}

impl Default for Cache {
    fn default() -> Self {
        Self::new(CacheConfig::default())
    }
}

/// Lock shards: a question hashes to one shard, so workers rarely wait on each other.
const SHARDS: usize = 16;

fn shard_of<K: std::hash::Hash>(key: &K) -> usize {
    use std::hash::{BuildHasher, BuildHasherDefault};
    let h =
        BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(key);
    (h as usize) % SHARDS
}
