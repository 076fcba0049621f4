//! The one question every front end asks: what is the answer to this, for this client.

use std::net::SocketAddr;

use async_trait::async_trait;

use super::{Outcome, Question};

/// What the front end asks for each allowed, well-formed query.
#[async_trait]
pub trait Answerer: Send + Sync + 'static {
    /// The outcome for `question`, asked by `client` (redirection rules may depend on who
    /// asks).
    async fn answer(&self, question: &Question, client: SocketAddr) -> Outcome;

    /// A complete reply to the raw UDP `query` from an allowed `client`, written into `out`
    /// without waiting (a cache hit): returns its length. `None` sends the query down the
    /// normal path (triage, then [`Answerer::answer`]). The default never answers fast.
    fn fast_reply(&self, _query: &[u8], _client: SocketAddr, _out: &mut [u8]) -> Option<usize> {
        None
    }
}
