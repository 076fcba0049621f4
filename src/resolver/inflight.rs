//! In-flight coalescing: any number of clients asking the same uncached question cause one
//! resolution, and all of them get its outcome (Unbound's mesh, Knot's request dedup).

use hashbrown::hash_map::Entry;
use hashbrown::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::driver::Resolved;
use super::Question;

/// Questions being resolved now, each with the slot its outcome goes to. hashbrown's map
/// hashes with foldhash, seeded per map (as the cache's shard picker does): std's SipHash
/// was over 1% of a cache miss.
#[derive(Debug, Default)]
pub struct InFlight {
    running: Mutex<HashMap<Question, Waiter>>,
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
    question: Question,
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
    fn lock(&self) -> MutexGuard<'_, HashMap<Question, Waiter>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Joins the resolution of `question`, or starts it.
    pub fn join(&self, question: &Question) -> Role {
        let mut running = self.lock();
        // One hash of the question for the look-up and the insert.
        match running.entry(question.clone()) {
            Entry::Occupied(e) if e.get().0.running() => Role::Follower(e.get().clone()),
            entry => {
                let slot = Arc::new(Slot::default());
                let question = entry.key().clone();
                entry.insert(Waiter(slot.clone()));
                Role::Leader(Leader { question, slot })
            }
        }
    }

    /// Resolutions running now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Publishes the outcome to every follower and forgets the question.
    pub fn finish(&self, leader: Leader, resolved: &Resolved) {
        self.lock().remove(&leader.question);
        // The map's handle is gone: any other one is a follower's. Most resolutions have
        // none, and no copy of the outcome is made for nobody.
        if Arc::strong_count(&leader.slot) > 1 {
            leader.slot.end(State::Done(Box::new(resolved.clone())));
        }
    }

    /// Forgets a question whose leader went away without an outcome.
    pub fn abandon(&self, question: &Question) {
        let mut running = self.lock();
        if running.get(question).is_some_and(|w| !w.0.running()) {
            running.remove(question);
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
