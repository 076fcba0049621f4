//! In-flight coalescing: any number of clients asking the same uncached question cause one
//! resolution, and all of them get its outcome (Unbound's mesh, Knot's request dedup).

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

use super::driver::Resolved;
use super::Question;

/// Questions being resolved now, each with a channel its waiters listen on.
#[derive(Debug, Default)]
pub struct InFlight {
    running: Mutex<HashMap<Question, watch::Receiver<Option<Resolved>>>>,
}

/// What a caller is to do about its question.
pub enum Role {
    /// Nobody is resolving it: resolve it, then [`Leader::finish`].
    Leader(Leader),
    /// Someone is: wait for their outcome.
    Follower(watch::Receiver<Option<Resolved>>),
}

/// The right and duty to resolve one question. Dropping it without `finish` (the task was
/// cancelled) closes the channel, and followers resolve on their own.
pub struct Leader {
    question: Question,
    tx: watch::Sender<Option<Resolved>>,
}

impl InFlight {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<Question, watch::Receiver<Option<Resolved>>>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Joins the resolution of `question`, or starts it.
    pub fn join(&self, question: &Question) -> Role {
        let mut running = self.lock();
        // One hash of the question for the look-up and the insert.
        match running.entry(question.clone()) {
            Entry::Occupied(e) if e.get().has_changed().is_ok() => Role::Follower(e.get().clone()),
            entry => {
                let (tx, rx) = watch::channel(None);
                let question = entry.key().clone();
                entry.insert_entry(rx);
                Role::Leader(Leader { question, tx })
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
        // Most resolutions have no follower: no copy of the outcome for nobody.
        if leader.tx.receiver_count() > 0 {
            let _ = leader.tx.send(Some(resolved.clone()));
        }
    }

    /// Forgets a question whose leader went away without an outcome.
    pub fn abandon(&self, question: &Question) {
        let mut running = self.lock();
        if running
            .get(question)
            .is_some_and(|rx| rx.has_changed().is_err())
        {
            running.remove(question);
        }
    }
}

/// Waits for a leader's outcome; `None` if the leader was cancelled first.
pub async fn wait(mut rx: watch::Receiver<Option<Resolved>>) -> Option<Resolved> {
    loop {
        if let Some(o) = rx.borrow_and_update().clone() {
            return Some(o);
        }
        if rx.changed().await.is_err() {
            return rx.borrow().clone();
        }
    }
}
