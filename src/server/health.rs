//! A health check answered by hopdns itself: one configured name (`--health-check-name`)
//! that a load balancer in front (dnsdist's `healthCheck`, a keepalived script) can ask
//! without the answer depending on any authority, so "the instance is down" means this
//! process, not a zone somewhere.
//!
//! The name gets A 127.0.0.1 and TXT "ok"; other types get NODATA. The answer is made here,
//! in a wrapper in front of the real answerer, so it never enters the cache and no upstream
//! query is sent. On SIGTERM, `serve --health-fail-before-stop SECS` calls
//! [`HealthCheck::fail`] first: the name then gets SERVFAIL while every other query is
//! still answered, so the balancer takes the instance out of rotation before its
//! listeners close (the drain). dnsdist cannot see a drain any other way: a closed UDP
//! socket only shows as timeouts, which cost the queries sent meanwhile.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use hickory_proto::rr::rdata::{A, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::Answerer;
use crate::dns::{Failure, Outcome, Question};

/// TTL of the health answer: 0, so no cache between the balancer and us keeps it
/// (RFC 1035 §3.2.1: zero means "use only for the transaction in progress").
const HEALTH_TTL: u32 = 0;

/// Answers the health-check name itself and hands every other question to `inner`.
pub struct HealthCheck {
    inner: Arc<dyn Answerer>,
    name: Name,
    failing: AtomicBool,
}

impl HealthCheck {
    /// `name` is compared without case (RFC 4343); it is made absolute.
    pub fn new(inner: Arc<dyn Answerer>, mut name: Name) -> Self {
        name.set_fqdn(true);
        Self {
            inner,
            name,
            failing: AtomicBool::new(false),
        }
    }

    /// From now on the health name gets SERVFAIL (the instance is stopping).
    pub fn fail(&self) {
        self.failing.store(true, Ordering::Relaxed);
    }

    fn outcome(&self, question: &Question) -> Outcome {
        if self.failing.load(Ordering::Relaxed) {
            return Outcome::ServFail(Failure::Stopping);
        }
        let data = match question.qtype {
            RecordType::A => RData::A(A(Ipv4Addr::LOCALHOST)),
            RecordType::TXT => RData::TXT(TXT::new(vec!["ok".to_string()])),
            _ => {
                return Outcome::NoData {
                    answers: Vec::new(),
                    soa: None,
                }
            }
        };
        Outcome::Answer {
            answers: vec![Record::from_rdata(question.name.clone(), HEALTH_TTL, data)],
        }
    }
}

#[async_trait]
impl Answerer for HealthCheck {
    async fn answer(&self, question: &Question, client: SocketAddr) -> Outcome {
        if question.name == self.name {
            return self.outcome(question);
        }
        self.inner.answer(question, client).await
    }

    fn may_serve_cached(&self, qname: &[u8], reply: &[u8], client: SocketAddr) -> bool {
        self.inner.may_serve_cached(qname, reply, client)
    }

    fn prefetch(&self, question: Question) {
        self.inner.prefetch(question)
    }

    // The rest goes to the inner answerer as it is (the health name is never validated).
    fn secure(&self, question: &Question) -> bool {
        question.name != self.name && self.inner.secure(question)
    }

    async fn answer_unchecked(&self, question: &Question, client: SocketAddr) -> (Outcome, bool) {
        if question.name == self.name {
            return (self.outcome(question), false);
        }
        self.inner.answer_unchecked(question, client).await
    }

    async fn answer_dnssec(
        &self,
        question: &Question,
        client: SocketAddr,
        cd: bool,
    ) -> crate::dns::Answered {
        if question.name == self.name {
            return crate::dns::Answered {
                outcome: self.outcome(question),
                secure: false,
                dnssec: crate::dns::DnssecRecords::default(),
            };
        }
        self.inner.answer_dnssec(question, client, cd).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails the test if asked: the health name must never reach it.
    struct Upstream;

    #[async_trait]
    impl Answerer for Upstream {
        async fn answer(&self, question: &Question, _client: SocketAddr) -> Outcome {
            assert_ne!(question.name.to_ascii(), "health.fleet.");
            Outcome::NoData {
                answers: Vec::new(),
                soa: None,
            }
        }
    }

    async fn ask(h: &HealthCheck, name: &str, qtype: RecordType) -> Outcome {
        let q = Question::new(Name::from_ascii(name).unwrap(), qtype);
        let client = SocketAddr::from(([127, 0, 0, 1], 5300));
        h.answer(&q, client).await
    }

    #[tokio::test]
    async fn the_name_is_answered_locally_until_it_fails() {
        let h = HealthCheck::new(
            Arc::new(Upstream),
            Name::from_ascii("Health.Fleet").unwrap(),
        );
        let a = ask(&h, "health.fleet.", RecordType::A).await;
        assert_eq!(a.answers().len(), 1);
        assert_eq!(a.answers()[0].data, RData::A(A(Ipv4Addr::LOCALHOST)));
        let txt = ask(&h, "health.fleet.", RecordType::TXT).await;
        assert_eq!(txt.answers()[0].record_type(), RecordType::TXT);
        assert!(matches!(
            ask(&h, "health.fleet.", RecordType::AAAA).await,
            Outcome::NoData { .. }
        ));
        // Other names go to the answerer behind.
        assert!(matches!(
            ask(&h, "www.example.com.", RecordType::A).await,
            Outcome::NoData { .. }
        ));
        h.fail();
        assert_eq!(
            ask(&h, "health.fleet.", RecordType::A).await,
            Outcome::ServFail(Failure::Stopping)
        );
        assert!(matches!(
            ask(&h, "www.example.com.", RecordType::A).await,
            Outcome::NoData { .. }
        ));
    }
}
