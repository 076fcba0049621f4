//! What time does, through the driver on a manual clock in paused tokio time (issue 13.4):
//! TTLs count down, expired entries are served stale when the authorities are silent (RFC
//! 8767), a failure is remembered for `servfail-ttl` (RFC 9520) and what the infra cache
//! learned of a server is forgotten after `HOST_TTL`. Tests move the clock; nothing sleeps.

use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use super::q;
use crate::cache::STALE_TTL;
use crate::dns::{Clock, Outcome};
use crate::resolver::machine::MinimiseMode;
use crate::resolver::{Resolver, ResolverConfig};
use crate::transport::scripted::{self as s, Script, Scripted};

const ROOT: &str = "10.0.0.1";

/// A resolver on a manual clock whose only server, the root, answers as `w` says (full names:
/// no minimisation, so one question is one query).
fn resolver(w: &Arc<Scripted>) -> (Resolver, Clock) {
    let clock = Clock::manual();
    let mut config = ResolverConfig::new(s::root_hints(ROOT));
    config.settings.ipv6 = false;
    config.settings.minimise = MinimiseMode::Off;
    config.clock = clock.clone();
    (Resolver::new(config, w.clone()), clock)
}

/// The root answers `www.test.` with one A record of TTL `ttl`.
fn answering(w: &Scripted, ttl: u32) {
    w.on(
        ROOT,
        "www.test.",
        RecordType::A,
        Script::Reply(s::answer(vec![s::rec("www.test.", ttl, s::a("192.0.2.1"))])),
    );
}

fn ttl_of(o: &Outcome) -> u32 {
    match o {
        Outcome::Answer { answers } => answers[0].ttl,
        other => panic!("not an answer: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn ttls_count_down_on_the_clock_and_an_expired_entry_is_asked_again() {
    let w = Arc::new(Scripted::new());
    answering(&w, 5);
    let (r, clock) = resolver(&w);
    let www = q("www.test.", RecordType::A);
    assert_eq!(ttl_of(&r.resolve(&www).await), 5);
    clock.advance(Duration::from_secs(2));
    assert_eq!(
        ttl_of(&r.resolve(&www).await),
        3,
        "from the cache, 2 s later"
    );
    assert_eq!(w.seen().len(), 1);
    clock.advance(Duration::from_secs(3));
    assert_eq!(ttl_of(&r.resolve(&www).await), 5, "expired: asked again");
    assert_eq!(w.seen().len(), 2);
}

/// A resolver (as [`resolver`]) that has resolved and cached `www.test. A` with TTL 5, and
/// that question.
async fn www_cached() -> (Arc<Scripted>, Resolver, Clock, crate::dns::Question) {
    let w = Arc::new(Scripted::new());
    answering(&w, 5);
    let (r, clock) = resolver(&w);
    let www = q("www.test.", RecordType::A);
    r.resolve(&www).await;
    (w, r, clock, www)
}

/// RFC 8767: past its TTL, with the authority silent, the entry is served with the stale
/// TTL. The client response timer (1.8 s) and the upstream timeouts run in paused time.
#[tokio::test(start_paused = true)]
async fn an_expired_answer_is_served_stale_when_the_authority_is_silent() {
    let (w, r, clock, www) = www_cached().await;
    w.on(ROOT, "www.test.", RecordType::A, Script::Timeout);
    clock.advance(Duration::from_secs(6));
    assert_eq!(ttl_of(&r.resolve(&www).await), STALE_TTL);
    // A name never cached has nothing stale to give.
    let other = q("other.test.", RecordType::A);
    assert!(matches!(r.resolve(&other).await, Outcome::ServFail(_)));
}

/// RFC 8767 §5: with an expired answer cached and the authority silent, the client gets it
/// when the client response timer fires, not when the resolution gives up; the resolution
/// goes on.
#[tokio::test(start_paused = true)]
async fn a_stale_answer_comes_when_the_client_response_timer_fires() {
    let (w, r, clock, www) = www_cached().await;
    // Now the root refers to servers that never answer: trying them all takes longer than
    // the timer.
    let servers: Vec<(String, String)> = (1..=5)
        .map(|i| (format!("ns{i}.test."), format!("10.0.1.{i}")))
        .collect();
    let glue: Vec<(&str, Option<&str>)> = servers
        .iter()
        .map(|(n, a)| (n.as_str(), Some(a.as_str())))
        .collect();
    w.on(
        ROOT,
        "www.test.",
        RecordType::A,
        Script::Reply(s::referral("test.", &glue)),
    );
    for (_, a) in &servers {
        w.default_for(a, Script::Timeout);
    }
    clock.advance(Duration::from_secs(6));
    let asked = w.seen().len();
    let start = tokio::time::Instant::now();
    assert_eq!(ttl_of(&r.resolve(&www).await), STALE_TTL);
    assert_eq!(
        start.elapsed(),
        crate::resolver::driver::CLIENT_RESPONSE_TIMER
    );
    // The resolution went on after the stale answer: it tried the silent servers.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(w.seen().len() > asked + 1, "{:?}", w.seen());
}

/// RFC 9520 §3.2: a failed resolution is answered SERVFAIL from the cache for
/// `servfail-ttl` (5 s), even once the server is repaired; after that it is asked again.
#[tokio::test(start_paused = true)]
async fn a_failure_is_remembered_for_servfail_ttl_then_asked_again() {
    let w = Arc::new(Scripted::new());
    w.on(
        ROOT,
        "www.test.",
        RecordType::A,
        Script::Reply(s::error(ResponseCode::Refused)),
    );
    let (r, clock) = resolver(&w);
    let www = q("www.test.", RecordType::A);
    assert!(matches!(r.resolve(&www).await, Outcome::ServFail(_)));
    let asked = w.seen().len();
    answering(&w, 300);
    clock.advance(Duration::from_secs(4));
    assert!(matches!(r.resolve(&www).await, Outcome::ServFail(_)));
    assert_eq!(w.seen().len(), asked, "not asked within servfail-ttl");
    clock.advance(Duration::from_secs(2));
    assert_eq!(ttl_of(&r.resolve(&www).await), 300, "asked again after it");
}

/// Unbound's `infra-host-ttl`: a server that timed out carries its penalty until
/// `HOST_TTL` (900 s) has passed on the clock, then starts again at the initial timeout.
#[tokio::test(start_paused = true)]
async fn what_was_learned_of_a_server_is_forgotten_after_host_ttl() {
    let w = Arc::new(Scripted::new());
    w.default_for(ROOT, Script::Timeout);
    let (r, clock) = resolver(&w);
    assert!(matches!(
        r.resolve(&q("www.test.", RecordType::A)).await,
        Outcome::ServFail(_)
    ));
    let ip = ROOT.parse().unwrap();
    let infra = &r.cache().infra;
    assert!(infra.timing_out(ip, clock.now()));
    assert!(infra.rto(ip, clock.now()) > crate::cache::INITIAL_RTO);
    clock.advance(crate::cache::HOST_TTL);
    assert!(!infra.timing_out(ip, clock.now()));
    assert_eq!(infra.rto(ip, clock.now()), crate::cache::INITIAL_RTO);
}
