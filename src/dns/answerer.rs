//! The one question every front end asks: what is the answer to this, for this client;
//! and the two things the server's cache-hit path tells whoever answers.

use std::net::SocketAddr;

use async_trait::async_trait;

use super::{DnssecRecords, Outcome, Question};

/// An answer for a client that set DO: the outcome, whether it was validated secure, and
/// the DNSSEC records that go with it (RFC 4035 §3.2.1).
#[derive(Clone, Debug)]
pub struct Answered {
    pub outcome: Outcome,
    pub secure: bool,
    pub dnssec: DnssecRecords,
}

/// What the front end asks for each allowed, well-formed query.
#[async_trait]
pub trait Answerer: Send + Sync + 'static {
    /// The outcome for `question`, asked by `client` (redirection rules may depend on who
    /// asks).
    async fn answer(&self, question: &Question, client: SocketAddr) -> Outcome;

    /// Whether a ready `reply` from the message cache may answer `client`'s question named
    /// `qname` (wire form, as the client wrote it) on the server's cache-hit path. A
    /// redirect layer says no when a rule covers the name or the reply's CNAME chain; its
    /// answers never enter the cache. `false` sends the query down the normal path.
    fn may_serve_cached(&self, _qname: &[u8], _reply: &[u8], _client: SocketAddr) -> bool {
        true
    }

    /// A cached reply just served is in the last 10% of its TTL: refresh `question` in the
    /// background (Unbound's `prefetch`). The default does nothing.
    fn prefetch(&self, _question: Question) {}

    /// The answer just given for `question` was validated secure (DNSSEC, RFC 4035 §4.3):
    /// the server sets AD for clients that asked with AD or DO (RFC 6840 §5.7-5.8). The
    /// default (answers not from a validating resolver) says no.
    fn secure(&self, _question: &Question) -> bool {
        false
    }

    /// The answer to a client that set CD (RFC 6840 §5.9): data is returned without
    /// enforcing validation (bogus data comes back as it is, without AD), and whether it
    /// was validated secure. The default answers as for any client.
    async fn answer_unchecked(&self, question: &Question, client: SocketAddr) -> (Outcome, bool) {
        let outcome = self.answer(question, client).await;
        (outcome, self.secure(question))
    }

    /// The answer to a client that set DO (RFC 4035 §3.2.1), and with `cd` CD as well
    /// (unchecked as [`Self::answer_unchecked`]): the outcome, whether it was validated
    /// secure, and its RRSIGs and NSEC/NSEC3 proof. The default gives the outcome without
    /// DNSSEC records (an answerer that does not validate has none).
    async fn answer_dnssec(&self, question: &Question, client: SocketAddr, cd: bool) -> Answered {
        let (outcome, secure) = if cd {
            self.answer_unchecked(question, client).await
        } else {
            let outcome = self.answer(question, client).await;
            (outcome, self.secure(question))
        };
        Answered {
            outcome,
            secure,
            dnssec: DnssecRecords::default(),
        }
    }
}
