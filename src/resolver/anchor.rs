//! A timer kept a little ahead of the resolver's own while misses come in, so that setting
//! those does not wake the runtime's I/O driver.
//!
//! tokio wakes its I/O driver (an eventfd write, then one more `epoll_wait`) whenever a task
//! sets a timer earlier than the wake-up the driver planned when it last parked, even from
//! the driver's own thread, where no wake-up is needed (tokio-rs/tokio#5207). The planned
//! wake-up is the earliest timer pending at that park; with none pending it is "never", and
//! every timer set before the next park writes. A miss sets two (the exchange's timeout and
//! the serve-stale client timer): at 5,000 misses a second that was 1.9 eventfd writes per
//! miss, 0.26 at the saturating load. A timer [`TICK`] out, set again while misses keep
//! coming, plans the wake-up ahead of every timer the resolver sets (the shortest is
//! `MIN_RTO`, 50 ms). Without misses for a tick it waits without a timer: an idle resolver
//! is not woken.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use tokio::sync::Notify;

/// How far ahead the anchor's timer is set; under `MIN_RTO` (50 ms), the resolver's
/// shortest timer.
pub const TICK: Duration = Duration::from_millis(20);

/// Misses seen, and the anchor's task waiting while there are none.
#[derive(Debug, Default)]
pub struct Anchor {
    misses: AtomicU64,
    idle: AtomicBool,
    wake: Notify,
}

impl Anchor {
    /// A miss starts: counted, and the anchor's task woken if it was waiting.
    pub fn busy(&self) {
        self.misses.fetch_add(1, SeqCst);
        if self.idle.load(SeqCst) && self.idle.swap(false, SeqCst) {
            self.wake.notify_one();
        }
    }

    /// The anchor's task, for the life of the runtime: one timer [`TICK`] out at a time while
    /// misses come in.
    pub async fn run(&self) {
        loop {
            let before = self.misses.load(SeqCst);
            tokio::time::sleep(TICK).await;
            if self.misses.load(SeqCst) != before {
                continue;
            }
            // Nothing started for a whole tick: wait for the next miss. A miss that counted
            // itself before `idle` was set did not notify, so look at the count again.
            let woken = self.wake.notified();
            self.idle.store(true, SeqCst);
            if self.misses.load(SeqCst) != before {
                self.idle.store(false, SeqCst);
                continue;
            }
            woken.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// Issue 17: the anchor keeps a timer while misses come in, waits without one after a
    /// tick without misses (an idle resolver is not woken), and the next miss starts it
    /// again. The eventfd writes it saves show only under real load: `perf stat -e
    /// syscalls:sys_enter_write` on the miss load (docs/performance.md).
    #[tokio::test(start_paused = true)]
    async fn the_anchor_ticks_while_misses_come_in_and_waits_without_a_timer_when_idle() {
        let anchor = Arc::new(Anchor::default());
        let task = tokio::spawn({
            let anchor = anchor.clone();
            async move { anchor.run().await }
        });
        let idle = || anchor.idle.load(SeqCst);
        for _ in 0..10 {
            anchor.busy();
            tokio::time::sleep(TICK / 2).await;
            assert!(!idle(), "a miss every half tick keeps it ticking");
        }
        tokio::time::sleep(TICK * 3).await;
        assert!(idle(), "idle after a tick without misses");
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert!(idle(), "and stays so without misses");
        anchor.busy();
        assert!(!idle(), "the next miss wakes it");
        tokio::time::sleep(TICK / 2).await;
        assert!(!idle());
        tokio::time::sleep(TICK * 3).await;
        assert!(idle(), "and it goes idle again");
        assert!(!task.is_finished());
        task.abort();
    }
}
