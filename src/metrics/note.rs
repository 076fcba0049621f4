//! What one query's line in the query log says about how it was answered: which redirect
//! rule (if any), cache hit or miss, upstream queries, latency. The front end opens a note
//! (a tokio task-local) around one query only when the query log is on; the redirect layer
//! and the resolver write into it when it is there, and pay one failed task-local lookup
//! when it is not.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use tokio_util::either::Either;

tokio::task_local! {
    static NOTE: RefCell<Note>;
    /// Inside a resolution task: the leader client's upstream-query counter.
    static UPSTREAM: Option<Arc<AtomicU32>>;
}

/// One query's note.
#[derive(Clone, Debug)]
pub struct Note {
    pub start: Instant,
    /// The redirect rule that answered: its name pattern and where it was defined.
    pub rule: Option<String>,
    /// Its action, as the metrics name it (`block`, `override`, ...).
    pub action: Option<&'static str>,
    /// Upstream queries sent by the resolution this query started.
    pub upstream: Arc<AtomicU32>,
    /// The resolver was asked (false: a rule or the front end answered alone).
    pub resolved: bool,
    /// It joined a resolution another client had started (its upstream queries are not
    /// counted here).
    pub joined: bool,
}

impl Note {
    /// `hit` (no authority asked), `miss`, `joined` (waited on another client's miss), or
    /// `-` (no resolution: a rule or an error answered).
    pub fn cache(&self) -> &'static str {
        match (self.resolved, self.joined, self.upstream.load(Relaxed)) {
            (false, _, _) => "-",
            (true, true, _) => "joined",
            (true, false, 0) => "hit",
            (true, false, _) => "miss",
        }
    }
}

/// Runs `f` with a fresh note open. (A plain function, as [`counting`].)
pub fn scope<F: std::future::Future>(f: F) -> impl std::future::Future<Output = F::Output> {
    let note = Note {
        start: Instant::now(),
        rule: None,
        action: None,
        upstream: Arc::new(AtomicU32::new(0)),
        resolved: false,
        joined: false,
    };
    NOTE.scope(RefCell::new(note), f)
}

/// Writes into the open note, if there is one.
pub fn with(f: impl FnOnce(&mut Note)) {
    let _ = NOTE.try_with(|n| f(&mut n.borrow_mut()));
}

/// The open note, if there is one.
pub fn current() -> Option<Note> {
    NOTE.try_with(|n| n.borrow().clone()).ok()
}

/// The open note's upstream counter (to hand to the resolution task it starts).
pub fn upstream_counter() -> Option<Arc<AtomicU32>> {
    NOTE.try_with(|n| n.borrow().upstream.clone()).ok()
}

/// Runs a resolution with `counter` counting its upstream queries. Without a counter (the
/// query log is off) the resolution runs bare: a task-local scope swaps its value in and
/// out on every poll (0.9% of a miss's CPU, A/B in docs/performance.md). (A plain
/// function returning an enum of the two: an `async fn` would hold `f` twice, as its
/// argument and inside the scope.)
pub fn counting<F: std::future::Future>(
    counter: Option<Arc<AtomicU32>>,
    f: F,
) -> impl std::future::Future<Output = F::Output> {
    match counter {
        Some(counter) => Either::Left(UPSTREAM.scope(Some(counter), f)),
        None => Either::Right(f),
    }
}

/// One upstream query sent by the current resolution.
pub fn count_upstream() {
    let _ = UPSTREAM.try_with(|c| {
        if let Some(c) = c {
            c.fetch_add(1, Relaxed);
        }
    });
}
