//! RFC 8767 §5 client response timers, one per client waiting on a resolution.
//!
//! Every timer has the same length ([`super::driver::CLIENT_RESPONSE_TIMER`]), so they fall
//! due in the order they were set: a queue serves them, not a timer wheel. One task (spawned
//! when the queue gains its first timer, ending when it is empty) sleeps until the earliest
//! and wakes the clients whose time has come, at most once per [`TICK`]. A client answered
//! first only marks its place free. A tokio `Sleep` per miss (its clock read, its entry in
//! the runtime's wheel, set and removed) was 2% of a cache miss's CPU (docs/performance.md,
//! round 12).
//!
//! Two threads may set timers a few microseconds out of order; the later of the two then
//! fires with the earlier one, those microseconds late.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::Instant;

/// How often, at most, the timer task wakes while timers keep falling due: under load one
/// wake-up serves every timer due within it, and a client waits at most this much longer.
pub const TICK: Duration = Duration::from_millis(10);

/// The queue of timers, shared by every thread of a resolver.
#[derive(Debug, Default)]
pub struct ClientTimers {
    queue: Mutex<Queue>,
}

#[derive(Debug, Default)]
struct Queue {
    /// (when, slot, generation), in the order set.
    due: VecDeque<(Instant, u32, u32)>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Whether the timer task is running (it ends when `due` is empty), and which it is.
    ticking: bool,
    task: u64,
}

/// One timer's place. Its generation changes each time it is freed, so an entry of `due`
/// left by a timer that ended early cannot fire the place's next timer.
#[derive(Debug, Default)]
struct Slot {
    generation: u32,
    state: State,
}

#[derive(Debug, Default)]
enum State {
    #[default]
    Free,
    Waiting(Waker),
    Fired,
}

impl Queue {
    fn free(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        s.generation = s.generation.wrapping_add(1);
        s.state = State::Free;
        self.free.push(slot);
    }
}

impl ClientTimers {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A timer that fires at `due`. Set when first polled; freed when dropped.
    pub fn at(self: &Arc<Self>, due: Instant) -> ClientTimer {
        ClientTimer {
            timers: self.clone(),
            due,
            set: None,
            fired: false,
        }
    }

    /// Timers set and not yet fired or dropped (tests).
    #[cfg(test)]
    fn waiting(&self) -> usize {
        let q = self.lock();
        q.slots
            .iter()
            .filter(|s| matches!(s.state, State::Waiting(_)))
            .count()
    }

    /// Starts the timer task unless it runs (`q` is this queue, locked).
    fn start_ticking(self: &Arc<Self>, mut q: MutexGuard<'_, Queue>) {
        if !std::mem::replace(&mut q.ticking, true) {
            q.task += 1;
            let task = q.task;
            drop(q);
            tokio::spawn(self.clone().task(task));
        }
    }

    /// The timer task ([`Self::tick`]), number `task`.
    fn task(self: Arc<Self>, task: u64) -> impl Future<Output = ()> + Send + 'static {
        /// A task dropped before it ended (with its runtime, polled or not) wakes every
        /// waiting client, whose next poll starts a task again.
        struct Ticking(Arc<ClientTimers>, u64);
        impl Drop for Ticking {
            fn drop(&mut self) {
                let mut q = self.0.lock();
                if q.ticking && q.task == self.1 {
                    q.ticking = false;
                    for s in &q.slots {
                        if let State::Waiting(waker) = &s.state {
                            waker.wake_by_ref();
                        }
                    }
                }
            }
        }
        let ticking = Ticking(self.clone(), task);
        async move {
            let _ticking = ticking;
            self.tick().await;
        }
    }

    /// Wakes the clients whose time has come, then sleeps until the next timer falls due (a
    /// [`TICK`] at least); returns when no timer is left.
    async fn tick(&self) {
        let mut last: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let next = {
                let mut q = self.lock();
                while let Some(&(due, slot, generation)) = q.due.front() {
                    if due > now {
                        break;
                    }
                    q.due.pop_front();
                    let s = &mut q.slots[slot as usize];
                    if s.generation == generation {
                        if let State::Waiting(waker) = std::mem::replace(&mut s.state, State::Fired)
                        {
                            waker.wake();
                        }
                    }
                }
                match q.due.front() {
                    Some(&(due, ..)) => due,
                    None => {
                        q.ticking = false;
                        return;
                    }
                }
            };
            let next = last.map_or(next, |l| next.max(l + TICK));
            last = Some(now);
            tokio::time::sleep_until(next).await;
        }
    }
}

/// One client's timer ([`ClientTimers::at`]): ready once it has fired.
#[derive(Debug)]
pub struct ClientTimer {
    timers: Arc<ClientTimers>,
    due: Instant,
    /// (slot, generation) while set.
    set: Option<(u32, u32)>,
    fired: bool,
}

impl Future for ClientTimer {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if this.fired {
            return Poll::Ready(());
        }
        let mut q = this.timers.lock();
        let Some((slot, generation)) = this.set else {
            let slot = match q.free.pop() {
                Some(slot) => slot,
                None => {
                    q.slots.push(Slot::default());
                    (q.slots.len() - 1) as u32
                }
            };
            let s = &mut q.slots[slot as usize];
            s.state = State::Waiting(cx.waker().clone());
            let generation = s.generation;
            q.due.push_back((this.due, slot, generation));
            this.set = Some((slot, generation));
            this.timers.start_ticking(q);
            return Poll::Pending;
        };
        let s = &mut q.slots[slot as usize];
        debug_assert_eq!(s.generation, generation, "only its timer frees a place");
        if let State::Waiting(waker) = &mut s.state {
            if !waker.will_wake(cx.waker()) {
                *waker = cx.waker().clone();
            }
            this.timers.start_ticking(q);
            return Poll::Pending;
        }
        q.free(slot);
        this.set = None;
        this.fired = true;
        Poll::Ready(())
    }
}

impl Drop for ClientTimer {
    fn drop(&mut self) {
        if let Some((slot, _)) = self.set.take() {
            self.timers.lock().free(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Timers fire in paused time exactly when due (the first of a burst) or within a
    /// [`TICK`] after (the rest), in order; a dropped timer fires nobody, and its place
    /// serves the next; the timer task ends once no timer is left.
    #[tokio::test(start_paused = true)]
    async fn timers_fire_when_due_in_order_and_dropped_ones_never() {
        let timers = Arc::new(ClientTimers::default());
        let start = Instant::now();
        let delay = Duration::from_millis(1800);
        let fired = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..5u64 {
            let (timers, fired) = (timers.clone(), fired.clone());
            let set = Instant::now();
            tasks.push(tokio::spawn(async move {
                timers.at(set + delay).await;
                fired.lock().unwrap().push((i, Instant::now() - start));
            }));
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        // One more, dropped before it is due.
        let dropped = timers.at(start + Duration::from_millis(100));
        let mut dropped = Box::pin(dropped);
        assert!(futures_poll_once(dropped.as_mut()).is_pending());
        drop(dropped);
        for t in tasks {
            t.await.unwrap();
        }
        let fired = fired.lock().unwrap().clone();
        assert_eq!(
            fired.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
        assert_eq!(fired[0].1, delay, "the first fires when due");
        for (i, at) in &fired {
            let due = delay + Duration::from_millis(3 * i);
            assert!(*at >= due && *at <= due + TICK, "timer {i} at {at:?}");
        }
        assert_eq!(timers.waiting(), 0);
        tokio::task::yield_now().await;
        assert!(!timers.lock().ticking, "the task ends with the queue");
        // The places are reused, and the task starts again.
        let t = timers.at(Instant::now() + delay);
        let before = Instant::now();
        t.await;
        assert_eq!(Instant::now() - before, delay);
        assert!(timers.lock().slots.len() <= 6);
    }

    /// The timer task dropped with its runtime before the timer was due: the waiting client
    /// is woken, and its next poll (here on another runtime) starts a task that fires it.
    #[test]
    fn a_timer_task_lost_with_its_runtime_is_started_again() {
        struct Flag(std::sync::atomic::AtomicBool);
        impl std::task::Wake for Flag {
            fn wake(self: Arc<Self>) {
                self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let runtime = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap()
        };
        let timers = Arc::new(ClientTimers::default());
        let woken = Arc::new(Flag(Default::default()));
        let waker = Waker::from(woken.clone());
        let first = runtime();
        let mut timer = Box::pin(timers.at(Instant::now() + Duration::from_secs(2)));
        first.block_on(async {
            let poll = timer.as_mut().poll(&mut Context::from_waker(&waker));
            assert!(poll.is_pending());
        });
        assert!(timers.lock().ticking);
        drop(first);
        assert!(woken.0.load(std::sync::atomic::Ordering::SeqCst));
        assert!(!timers.lock().ticking);
        runtime().block_on(async {
            let before = Instant::now();
            timer.as_mut().await;
            assert!(Instant::now() > before);
        });
        assert_eq!(timers.waiting(), 0);
    }

    fn futures_poll_once<F: Future + ?Sized>(f: Pin<&mut F>) -> Poll<F::Output> {
        let waker = Waker::noop();
        f.poll(&mut Context::from_waker(waker))
    }
}
