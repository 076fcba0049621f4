//! The one clock every room reads time from (issue 13.4), so tests can stop and move it.
//!
//! It gives two readings: [`Clock::unix_secs`], whole seconds since the Unix epoch, the time
//! base of every TTL (caches, the cache file, prefetch, serve-stale, the RFC 9520 failure
//! cache), as Unbound's and Knot's caches keep it; and [`Clock::now`], a monotonic
//! [`Instant`] for durations (RTTs, timeouts, the request deadline, infra-cache expiry).
//!
//! * [`Clock::system`] (the default) reads the system: `CLOCK_REALTIME_COARSE` for the
//!   seconds and tokio's `Instant::now()` (the system's monotonic clock in every build but
//!   the tests', where a `start_paused` runtime stops it).
//! * [`Clock::manual`], for tests, starts at the system's time and then moves only with
//!   tokio's clock and with [`Clock::advance`]: in a `#[tokio::test(start_paused = true)]`
//!   it stands still until the test advances it (or tokio's auto-advance runs a timer); in
//!   a test on real sockets, where tokio's clock cannot pause, it runs as the system's does
//!   and `advance` jumps it forward, so a TTL runs out without a wall-clock sleep.
//!
//! Both readings of a manual clock move together: `advance(d)` adds `d` to each.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The clock of one resolver: cheap to clone (at most one `Arc`), shared by its cache, its
/// driver and everything that keeps time for them.
#[derive(Clone, Debug, Default)]
pub struct Clock(Option<Arc<Manual>>);

/// A test clock's origin and how far tests moved it.
#[derive(Debug)]
struct Manual {
    /// Wall time since the epoch when the clock was made.
    unix_at_start: Duration,
    /// tokio's clock when it was made.
    mono_at_start: tokio::time::Instant,
    /// What [`Clock::advance`] added, in nanoseconds.
    advanced_ns: AtomicU64,
}

impl Manual {
    fn advanced(&self) -> Duration {
        Duration::from_nanos(self.advanced_ns.load(Ordering::Acquire))
    }
}

impl Clock {
    /// The system's clocks: what `serve`, `trace` and `lab` run on.
    pub fn system() -> Self {
        Self(None)
    }

    /// A clock for tests: the system's time now, then tokio's clock plus [`Clock::advance`].
    pub fn manual() -> Self {
        Self(Some(Arc::new(Manual {
            unix_at_start: system_unix(),
            mono_at_start: tokio::time::Instant::now(),
            advanced_ns: AtomicU64::new(0),
        })))
    }

    /// Whether this is a [`Clock::manual`] one.
    pub fn is_manual(&self) -> bool {
        self.0.is_some()
    }

    /// Moves a manual clock forward by `by` (both readings, at once, for every clone).
    ///
    /// # Panics
    ///
    /// On the system clock, which nobody may move: make the clock with [`Clock::manual`].
    pub fn advance(&self, by: Duration) {
        let Some(m) = &self.0 else {
            panic!("Clock::advance on the system clock: make it with Clock::manual()");
        };
        let ns = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        m.advanced_ns.fetch_add(ns, Ordering::AcqRel);
    }

    /// Seconds since the Unix epoch: the time base of every TTL. On the system clock this is
    /// one coarse clock read (no lock, no allocation): the hit path reads it once per query.
    #[inline]
    pub fn unix_secs(&self) -> u64 {
        match &self.0 {
            None => system_unix_secs(),
            Some(m) => {
                let run = tokio::time::Instant::now().saturating_duration_since(m.mono_at_start);
                (m.unix_at_start + run + m.advanced()).as_secs()
            }
        }
    }

    /// The monotonic time, for durations and deadlines.
    #[inline]
    pub fn now(&self) -> Instant {
        let now = tokio::time::Instant::now().into_std();
        match &self.0 {
            None => now,
            Some(m) => now + m.advanced(),
        }
    }
}

/// Seconds since the Unix epoch on the system clock, read from `CLOCK_REALTIME_COARSE` (the
/// time of the last tick, a few ms old) on Linux: a TTL counts whole seconds, and the coarse
/// clock costs a fraction of the precise one.
fn system_unix_secs() -> u64 {
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid timespec to write into; the clock id is a constant.
        if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) } == 0 {
            return u64::try_from(ts.tv_sec).unwrap_or(0);
        }
    }
    system_unix().as_secs()
}

/// The precise wall time since the epoch (zero before 1970).
fn system_unix() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_reads_the_system() {
        let c = Clock::system();
        let wall = system_unix().as_secs();
        assert!(c.unix_secs().abs_diff(wall) <= 1);
        assert!(!c.is_manual());
    }

    #[tokio::test(start_paused = true)]
    async fn a_manual_clock_stands_still_in_paused_time_and_moves_when_told() {
        let c = Clock::manual();
        let (unix, mono) = (c.unix_secs(), c.now());
        assert_eq!(
            (c.unix_secs(), c.now()),
            (unix, mono),
            "paused: no movement"
        );
        let other = c.clone();
        other.advance(Duration::from_secs(5));
        assert_eq!(c.unix_secs(), unix + 5, "clones share the clock");
        assert_eq!(c.now() - mono, Duration::from_secs(5));
        // tokio's clock moves it too, so timers and readings agree.
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(c.unix_secs(), unix + 7);
        assert_eq!(c.now() - mono, Duration::from_secs(7));
    }

    #[test]
    #[should_panic(expected = "Clock::manual")]
    fn the_system_clock_cannot_be_moved() {
        Clock::system().advance(Duration::from_secs(1));
    }
}
