//! Budgets: every resolution carries counters that end it in SERVFAIL, never in a hang or an
//! amplification. First values follow Unbound's `iterator.h` and Knot Resolver's `rplan`.

use std::time::Duration;

/// Limits on one client request (its sub-resolutions included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Referrals followed by one (sub-)resolution. Real names need fewer than 10; Unbound's
    /// `MAX_REFERRAL_COUNT` is larger only because QNAME minimisation adds steps.
    pub max_referrals: usize,
    /// CNAME/DNAME links in one answer (Unbound `max-restart-count` 11, Knot 13).
    pub max_chain: usize,
    /// Upstream queries for one client request, all sub-resolutions included (Unbound's
    /// `MAX_SENT_COUNT` is 32 per query; this bounds NXNS-style amplification).
    pub max_queries: usize,
    /// Nesting of glueless-NS sub-resolutions (Unbound `target-fetch-policy` has 5 levels).
    pub max_sub_depth: usize,
    /// Glueless NS address lookups per client request (Unbound `MAX_TARGET_COUNT`-like).
    pub max_ns_lookups: usize,
    /// Queries to one address within one zone cut: a second try only after a timeout.
    pub attempts_per_server: u8,
    /// Wall-clock budget for the whole request: under the 5 s a stub resolver waits.
    pub deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_referrals: 20,
            max_chain: 12,
            max_queries: 48,
            max_sub_depth: 4,
            max_ns_lookups: 12,
            attempts_per_server: 2,
            deadline: Duration::from_millis(4500),
        }
    }
}
