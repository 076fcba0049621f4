//! The front end: UDP and TCP listeners, ACL, EDNS payload and truncation.
//! It knows nothing of how answers are found: it asks an [`Answerer`].

use async_trait::async_trait;

use crate::resolver::{Outcome, Question};

/// What the front end asks for each allowed, well-formed query.
#[async_trait]
pub trait Answerer: Send + Sync + 'static {
    async fn answer(&self, question: &Question) -> Outcome;
}
