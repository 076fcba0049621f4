//! In-flight coalescing: any number of clients asking the same uncached question cause one
//! resolution, and all of them get its outcome (Unbound's mesh, Knot's request dedup).

use hashbrown::hash_table::Entry;
use hashbrown::{DefaultHashBuilder, HashTable};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::driver::Resolved;
use super::Question;

/// Questions being resolved now, each with the slot its outcome goes to. Hashed with
/// foldhash, seeded per table (as the cache's shard picker does): std's SipHash was over
/// 1% of a cache miss. A question is hashed once: its leader keeps the hash and finds its
/// entry again by its slot.
#[derive(Default)]
pub struct InFlight {
    running: Mutex<HashTable<(Question, Waiter)>>,
    hasher: DefaultHashBuilder,
}

impl std::fmt::Debug for InFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // As std's Mutex prints itself: without waiting for the lock.
        let running = self.running.try_lock().map(|t| t.len()).ok();
        f.debug_struct("InFlight")
            .field("running", &running)
            .finish_non_exhaustive()
    }
}

/// What a caller is to do about its question.
pub enum Role {
    /// Nobody is resolving it: resolve it, then [`Leader::finish`].
    Leader(Leader),
    /// Someone is: wait for their outcome.
    Follower(Waiter),
}

/// Where one resolution's outcome is published. One `Notify` and a lock: every cache miss
/// makes one, and most have no follower (a `watch` channel cost a miss about 2% of its
/// time, in its set-up and in waking its eight waiter lists on drop).
#[derive(Debug, Default)]
struct Slot {
    state: Mutex<State>,
    changed: Notify,
}

#[derive(Debug, Default)]
enum State {
    #[default]
    Running,
    Done(Box<Resolved>),
    /// The leader went away without an outcome (its task was cancelled).
    Abandoned,
}

/// A follower's handle on a resolution it waits for.
#[derive(Clone, Debug)]
pub struct Waiter(Arc<Slot>);

/// The right and duty to resolve one question. Dropping it without `finish` (the task was
/// cancelled) tells the followers, and they resolve on their own.
pub struct Leader {
    hash: u64,
    slot: Arc<Slot>,
}

impl Slot {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn running(&self) -> bool {
        matches!(*self.state(), State::Running)
    }

    /// Ends the slot with `end` and wakes every waiter, if it was still running.
    fn end(&self, end: State) {
        {
            let mut state = self.state();
            if !matches!(*state, State::Running) {
                return;
            }
            *state = end;
        }
        self.changed.notify_waiters();
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        self.slot.end(State::Abandoned);
    }
}

impl InFlight {
    fn lock(&self) -> MutexGuard<'_, HashTable<(Question, Waiter)>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn hash(&self, question: &Question) -> u64 {
        self.hasher.hash_one(question)
    }

    /// Joins the resolution of `question`, or starts it.
    pub fn join(&self, question: &Question) -> Role {
        let hash = self.hash(question);
        let mut running = self.lock();
        let entry = running.entry(hash, |(q, _)| q == question, |(q, _)| self.hash(q));
        let waiter = match entry {
            Entry::Occupied(e) if e.get().1 .0.running() => {
                return Role::Follower(e.get().1.clone());
            }
            // A question whose leader went away: this caller leads it anew.
            Entry::Occupied(mut e) => {
                e.get_mut().1 = Waiter(Arc::default());
                e.get().1.clone()
            }
            Entry::Vacant(e) => e
                .insert((question.clone(), Waiter(Arc::default())))
                .get()
                .1
                .clone(),
        };
        Role::Leader(Leader {
            hash,
            slot: waiter.0,
        })
    }

    /// Resolutions running now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Publishes the outcome to every follower and forgets the question.
    pub fn finish(&self, leader: Leader, resolved: &Resolved) {
        if let Ok(entry) = self
            .lock()
            .find_entry(leader.hash, |(_, w)| Arc::ptr_eq(&w.0, &leader.slot))
        {
            entry.remove();
        }
        // The table's handle is gone: any other one is a follower's. Most resolutions have
        // none, and no copy of the outcome is made for nobody.
        if Arc::strong_count(&leader.slot) > 1 {
            leader.slot.end(State::Done(Box::new(resolved.clone())));
        }
    }

    /// Forgets a question whose leader went away without an outcome.
    pub fn abandon(&self, question: &Question) {
        let hash = self.hash(question);
        if let Ok(entry) = self
            .lock()
            .find_entry(hash, |(q, w)| q == question && !w.0.running())
        {
            entry.remove();
        }
    }
}

/// Waits for a leader's outcome; `None` if the leader was cancelled first.
pub async fn wait(waiter: Waiter) -> Option<Resolved> {
    let slot = &waiter.0;
    loop {
        // Registered before the state is read, so an `end` in between still wakes it.
        let changed = slot.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        match &*slot.state() {
            State::Running => {}
            State::Done(resolved) => return Some((**resolved).clone()),
            State::Abandoned => return None,
        }
        changed.await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use hickory_proto::rr::{Name, RecordType};

    use super::*;
    use crate::dns::Outcome;

    fn question() -> Question {
        Question::new(Name::from_ascii("www.test.").unwrap(), RecordType::A)
    }

    fn resolved() -> Resolved {
        Resolved {
            outcome: Outcome::Answer { answers: vec![] },
            secure: true,
            dnssec: Arc::default(),
        }
    }

    /// The first asker of `question()` leads; the second follows.
    fn leader_and_follower(inflight: &InFlight) -> (Leader, Waiter) {
        let Role::Leader(leader) = inflight.join(&question()) else {
            panic!("the first asker leads")
        };
        let Role::Follower(waiter) = inflight.join(&question()) else {
            panic!("the second asker follows")
        };
        (leader, waiter)
    }

    #[tokio::test]
    async fn followers_get_the_leaders_outcome_and_the_question_is_forgotten() {
        let inflight = InFlight::default();
        let (leader, waiter) = leader_and_follower(&inflight);
        let waiting = tokio::spawn(wait(waiter.clone()));
        tokio::task::yield_now().await;
        inflight.finish(leader, &resolved());
        assert!(waiting.await.unwrap().is_some_and(|r| r.secure));
        // A follower that comes to the slot after the end still reads the outcome.
        assert!(wait(waiter).await.is_some());
        assert_eq!(inflight.len(), 0);
        assert!(matches!(inflight.join(&question()), Role::Leader(_)));
    }

    #[tokio::test]
    async fn a_leader_gone_without_an_outcome_releases_its_followers() {
        let inflight = InFlight::default();
        let (leader, waiter) = leader_and_follower(&inflight);
        let waiting = tokio::spawn(wait(waiter));
        tokio::task::yield_now().await;
        drop(leader);
        assert!(waiting.await.unwrap().is_none(), "told, not left waiting");
        // The abandoned question is led anew, after `abandon` or by the next asker.
        assert!(matches!(inflight.join(&question()), Role::Leader(_)));
        inflight.abandon(&question());
        assert_eq!(inflight.len(), 0);
    }

    #[test]
    fn a_resolution_without_followers_finishes_alone() {
        let inflight = InFlight::default();
        let Role::Leader(leader) = inflight.join(&question()) else {
            panic!("the first asker leads")
        };
        inflight.finish(leader, &resolved());
        assert_eq!(inflight.len(), 0);
    }
}
