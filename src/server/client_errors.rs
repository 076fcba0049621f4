//! What remote clients get wrong, kept out of the log (issue 11.4): each condition is
//! counted in the metrics (`hopdns_client_errors_total{kind}`), described at debug level by
//! the caller, and summarised in one INFO line at most once per [`SUMMARY_INTERVAL`], so a
//! flood of bad packets costs a counter increment each, never a log line each.
//!
//! The summary is written by the first condition after the interval has passed (no timer
//! task): a burst is reported when it starts and then once a minute while it lasts; the
//! counts of its tail are in the metrics.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use tracing::info;

use crate::metrics::{metrics, ClientError};

/// At most one summary line per this interval.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(60);

/// Counts since the last summary, by kind.
static PENDING: [AtomicU64; ClientError::ALL.len()] =
    [const { AtomicU64::new(0) }; ClientError::ALL.len()];
/// When the last summary was written: milliseconds since [`EPOCH`] plus one (0: never).
static LAST: AtomicU64 = AtomicU64::new(0);
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Counts one condition caused by a client and writes the summary line if one is due.
pub fn note(kind: ClientError) {
    metrics().client_error(kind);
    PENDING[kind as usize].fetch_add(1, Relaxed);
    let now = u64::try_from(EPOCH.elapsed().as_millis()).unwrap_or(u64::MAX) + 1;
    let last = LAST.load(Relaxed);
    let interval = u64::try_from(SUMMARY_INTERVAL.as_millis()).unwrap_or(u64::MAX);
    if last != 0 && now.saturating_sub(last) < interval {
        return;
    }
    // One thread wins the right to write this interval's line.
    if LAST.compare_exchange(last, now, Relaxed, Relaxed).is_err() {
        return;
    }
    let [malformed, malformed_edns, not_allowed] =
        ClientError::ALL.map(|k| PENDING[k as usize].swap(0, Relaxed));
    info!(
        malformed,
        malformed_edns,
        not_allowed,
        "client errors since the last summary (at most one such line a minute; each is \
         counted in hopdns_client_errors_total and described at debug level)"
    );
}
