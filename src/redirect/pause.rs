//! Pausing the blocking rules for a while: Pi-hole's `pihole disable 5m`, as `hopdns ctl
//! pause-blocking MINUTES` and the dashboard's pause button.
//!
//! While paused, rules whose action withholds the answer (block, sinkhole, RPZ NODATA and
//! DROP: [`Action::is_block`](super::Action::is_block)) are looked up as if they were
//! absent, so a less specific rule or the resolver answers; overrides, aliases, local data
//! and pools still apply. The pause is a deadline in Unix seconds on the resolver's
//! [`Clock`]: it ends by itself when the clock passes it, with no timer task, and a reload
//! keeps it (it belongs to the [`Redirector`](super::Redirector), not to a rule set).
//! Not paused costs one relaxed atomic load per lookup, with no clock read.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::dns::Clock;

/// Longest pause: a week. Pi-hole has no bound; a typo of minutes should not disable
/// blocking for a year.
pub const MAX_PAUSE_MINUTES: u64 = 7 * 24 * 60;

/// The pause deadline of one redirect layer.
#[derive(Debug, Default)]
pub struct BlockingPause {
    /// Unix seconds when blocking resumes; 0 when not paused.
    until: AtomicU64,
    clock: Clock,
}

impl BlockingPause {
    pub fn new(clock: Clock) -> Self {
        Self {
            until: AtomicU64::new(0),
            clock,
        }
    }

    /// Pauses blocking for `minutes` from now (0 resumes at once); returns when it
    /// resumes, `None` when it runs now.
    pub fn pause(&self, minutes: u64) -> Result<Option<u64>, String> {
        if minutes > MAX_PAUSE_MINUTES {
            return Err(format!(
                "{minutes} minutes is too long a pause: give at most {MAX_PAUSE_MINUTES} (a \
                 week), or 0 to resume blocking"
            ));
        }
        let until = match minutes {
            0 => 0,
            m => self.clock.unix_secs() + m * 60,
        };
        self.until.store(until, Relaxed);
        Ok(self.paused_until())
    }

    /// When blocking resumes, while paused.
    pub fn paused_until(&self) -> Option<u64> {
        let until = self.until.load(Relaxed);
        (until != 0 && self.clock.unix_secs() < until).then_some(until)
    }

    /// Whether blocking rules are paused now (the lookup's check).
    #[inline]
    pub fn is_paused(&self) -> bool {
        let until = self.until.load(Relaxed);
        until != 0 && self.clock.unix_secs() < until
    }

    /// The clock the deadline is read on.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_pause_ends_by_itself_when_the_clock_passes_it() {
        let clock = Clock::manual();
        let p = BlockingPause::new(clock.clone());
        assert!(!p.is_paused());
        let until = p.pause(5).unwrap().expect("paused");
        assert_eq!(until, clock.unix_secs() + 300);
        assert!(p.is_paused());
        clock.advance(Duration::from_secs(299));
        assert!(p.is_paused(), "one second left");
        clock.advance(Duration::from_secs(1));
        assert!(!p.is_paused(), "over at the deadline");
        assert_eq!(p.paused_until(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_resumes_and_too_long_is_refused_with_the_bound() {
        let p = BlockingPause::new(Clock::manual());
        p.pause(10).unwrap();
        assert_eq!(p.pause(0).unwrap(), None);
        assert!(!p.is_paused());
        let e = p.pause(MAX_PAUSE_MINUTES + 1).unwrap_err();
        assert!(e.contains("at most 10080"), "{e}");
        assert!(!p.is_paused(), "a refused pause changes nothing");
    }
}
