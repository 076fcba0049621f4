//! State machine tests: scripted authorities, no sockets, no clock (but `time.rs`: the driver on
//! a manual clock).

use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

use super::machine::{Action, Event, MinimiseMode, Resolution, Settings};
use super::run::Pick;
use super::{Failure, Outcome, Question};
use crate::cache::{Cache, Delegation};
use crate::trace::{HopEvent, ReplyKind};
use crate::transport::scripted::{self as s, Script, Scripted};

const NOW: u64 = 1_000_000;

fn name(x: &str) -> Name {
    Name::from_ascii(x).unwrap()
}

fn q(x: &str, t: RecordType) -> Question {
    Question::new(name(x), t)
}

fn root() -> Delegation {
    s::root_hints("10.0.0.1")
}

/// A small world: root -> com/org/net -> example.com (two NS with glue).
fn world() -> Scripted {
    let w = Scripted::new();
    w.default_for("10.0.0.1", Script::Reply(s::nxdomain(".")));
    for (tld, ns, ip) in [
        ("com.", "ns.nic.com.", "10.0.1.1"),
        ("org.", "ns.nic.org.", "10.0.1.2"),
        ("net.", "ns.nic.net.", "10.0.1.3"),
    ] {
        for qname in [
            "www.example.com.",
            "alias.example.com.",
            "nx.example.com.",
            "example.org.",
            "www.example.org.",
            "ns.host.net.",
            "www.poison.com.",
            "ns.host.org.",
            "a.loop.com.",
            "www.loop.com.",
            "www.lame.com.",
            "www.big.com.",
            "www.old.com.",
            "www.dname.com.",
            "www.example.net.",
        ] {
            if qname.ends_with(tld) {
                for t in [RecordType::A, RecordType::AAAA, RecordType::TXT] {
                    w.on(
                        "10.0.0.1",
                        qname,
                        t,
                        Script::Reply(s::referral(tld, &[(ns, Some(ip))])),
                    );
                }
            }
        }
    }
    let ex = s::referral(
        "example.com.",
        &[
            ("ns1.example.com.", Some("10.0.2.1")),
            ("ns2.example.com.", Some("10.0.2.2")),
        ],
    );
    for qname in ["www.example.com.", "alias.example.com.", "nx.example.com."] {
        for t in [RecordType::A, RecordType::AAAA] {
            w.on("10.0.1.1", qname, t, Script::Reply(ex.clone()));
        }
    }
    for srv in ["10.0.2.1", "10.0.2.2"] {
        w.on(
            srv,
            "www.example.com.",
            RecordType::A,
            Script::Reply(s::answer(vec![s::rec(
                "www.example.com.",
                300,
                s::a("192.0.2.1"),
            )])),
        );
        w.on(
            srv,
            "www.example.com.",
            RecordType::AAAA,
            Script::Reply(s::nodata("example.com.")),
        );
        w.on(
            srv,
            "alias.example.com.",
            RecordType::A,
            Script::Reply(s::answer(vec![
                s::rec("alias.example.com.", 300, s::cname("www.example.com.")),
                s::rec("www.example.com.", 300, s::a("192.0.2.1")),
            ])),
        );
        w.on(
            srv,
            "nx.example.com.",
            RecordType::A,
            Script::Reply(s::nxdomain("example.com.")),
        );
    }
    w
}

/// Full names upstream: these tests pin the walk itself; QNAME minimisation has its own
/// tests below (and the lab tests run with it on, the default).
fn settings() -> Settings {
    Settings {
        ipv6: false,
        minimise: MinimiseMode::Off,
        ..Settings::default()
    }
}

struct Run {
    outcome: Outcome,
    events: Vec<HopEvent>,
    sent: usize,
}

/// Drives `m` with the scripted world through the one drive loop (`run.rs`), always
/// picking the first candidate, in paused time, on the fixed clock `NOW`.
fn drive(w: &Scripted, cache: &Cache, m: &mut Resolution) -> (Outcome, Vec<HopEvent>) {
    let mut events = crate::trace::Collect::default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a test runtime");
    let outcome = rt.block_on(async {
        let deadline = std::time::Instant::now() + Duration::from_secs(3600);
        super::run::Run::new(cache, w, Pick::First, deadline)
            .with_unix_clock(|| NOW)
            .drive(m, Some(&mut events), || None)
            .await
    });
    (outcome, events.0)
}

fn run_with(w: &Scripted, cache: &Cache, question: Question, settings: Settings) -> Run {
    let mut m = Resolution::new(question, Arc::new(root()), Arc::new(settings), true);
    let (outcome, events) = drive(w, cache, &mut m);
    Run {
        outcome,
        events,
        sent: m.queries_sent(),
    }
}

fn run(w: &Scripted, cache: &Cache, question: Question) -> Run {
    run_with(w, cache, question, settings())
}

fn a_records(o: &Outcome) -> Vec<String> {
    o.answers()
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect()
}

fn servers_asked(w: &Scripted) -> Vec<String> {
    w.seen().iter().map(|s| s.server.to_string()).collect()
}

#[test]
fn follows_referrals_root_tld_authoritative() {
    let w = world();
    let cache = Cache::default();
    let r = run(&w, &cache, q("www.example.com.", RecordType::A));
    assert_eq!(a_records(&r.outcome), ["192.0.2.1"]);
    assert_eq!(r.sent, 3);
    assert_eq!(servers_asked(&w), ["10.0.0.1", "10.0.1.1", "10.0.2.1"]);
    let zones: Vec<String> = r
        .events
        .iter()
        .filter_map(|e| match e {
            HopEvent::Reply {
                zone,
                kind: ReplyKind::Referral { zone: to, .. },
                ..
            } => Some(format!("{zone}->{to}")),
            _ => None,
        })
        .collect();
    assert_eq!(zones, [".->com.", "com.->example.com."]);
    for e in &w.seen() {
        assert!(e.edns, "EDNS on every query");
        assert!(!e.tcp);
    }
}

#[test]
fn repeated_question_is_answered_from_cache_and_delegations_are_reused() {
    let w = world();
    let cache = Cache::default();
    run(&w, &cache, q("www.example.com.", RecordType::A));
    let again = run(&w, &cache, q("WWW.example.com.", RecordType::A));
    assert_eq!(again.sent, 0);
    assert!(again
        .events
        .iter()
        .any(|e| matches!(e, HopEvent::CacheAnswer { .. })));
    let sibling = run(&w, &cache, q("nx.example.com.", RecordType::A));
    assert_eq!(sibling.sent, 1, "starts at the cached example.com cut");
    assert_eq!(sibling.outcome.rcode(), ResponseCode::NXDomain);
}

#[test]
fn nxdomain_and_nodata_carry_the_soa() {
    let w = world();
    let cache = Cache::default();
    let nx = run(&w, &cache, q("nx.example.com.", RecordType::A));
    assert!(
        matches!(&nx.outcome, Outcome::NxDomain { soa: Some(s), .. } if s.name == name("example.com."))
    );
    let nodata = run(&w, &cache, q("www.example.com.", RecordType::AAAA));
    assert!(
        matches!(&nodata.outcome, Outcome::NoData { soa: Some(_), answers } if answers.is_empty())
    );
    let cached = run(&w, &cache, q("nx.example.com.", RecordType::A));
    assert_eq!(cached.sent, 0, "negative answers are cached");
    assert_eq!(cached.outcome.rcode(), ResponseCode::NXDomain);
}

#[test]
fn in_zone_cname_is_returned_with_its_target() {
    let w = world();
    let cache = Cache::default();
    let r = run(&w, &cache, q("alias.example.com.", RecordType::A));
    let types: Vec<RecordType> = r
        .outcome
        .answers()
        .iter()
        .map(|r| r.record_type())
        .collect();
    assert_eq!(types, [RecordType::CNAME, RecordType::A]);
    let from_cache = run(&w, &cache, q("alias.example.com.", RecordType::A));
    assert_eq!(from_cache.sent, 0, "the whole chain comes from cache");
    assert_eq!(from_cache.outcome.answers().len(), 2);
}

#[test]
fn cname_chain_across_zones_restarts_at_each_target() {
    let w = world();
    let cache = Cache::default();
    // www.example.net -> CNAME www.example.com (answered by the example.com servers).
    w.on(
        "10.0.1.3",
        "www.example.net.",
        RecordType::A,
        Script::Reply(s::referral(
            "example.net.",
            &[("ns.example.net.", Some("10.0.3.1"))],
        )),
    );
    w.on(
        "10.0.3.1",
        "www.example.net.",
        RecordType::A,
        Script::Reply(s::answer(vec![s::rec(
            "www.example.net.",
            60,
            s::cname("www.example.com."),
        )])),
    );
    let r = run(&w, &cache, q("www.example.net.", RecordType::A));
    assert_eq!(r.outcome.answers().len(), 2);
    assert_eq!(a_records(&r.outcome), ["192.0.2.1"]);
    assert!(r.events.iter().any(|e| matches!(
        e,
        HopEvent::Reply {
            kind: ReplyKind::Cname { .. },
            ..
        }
    )));
}

#[test]
fn dname_is_followed_with_a_synthesised_cname() {
    use hickory_proto::rr::rdata::NULL;
    let w = world();
    let cache = Cache::default();
    w.on(
        "10.0.1.1",
        "www.dname.com.",
        RecordType::A,
        Script::Reply(s::referral(
            "dname.com.",
            &[("ns.dname.com.", Some("10.0.4.1"))],
        )),
    );
    let target = name("example.com.");
    let mut wire = Vec::new();
    {
        use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
        let mut enc = BinEncoder::new(&mut wire);
        target.emit(&mut enc).unwrap();
    }
    let dname = hickory_proto::rr::Record::from_rdata(
        name("dname.com."),
        300,
        RData::Unknown {
            code: RecordType::DNAME,
            rdata: NULL::with(wire),
        },
    );
    w.on(
        "10.0.4.1",
        "www.dname.com.",
        RecordType::A,
        Script::Reply(s::answer(vec![dname])),
    );
    let r = run(&w, &cache, q("www.dname.com.", RecordType::A));
    assert_eq!(a_records(&r.outcome), ["192.0.2.1"]);
    assert!(r
        .outcome
        .answers()
        .iter()
        .any(|r| matches!(&r.data, RData::CNAME(c) if c.0 == name("www.example.com."))));
}

#[test]
fn glueless_ns_is_looked_up_only_when_needed() {
    let w = world();
    let cache = Cache::default();
    // example.org: one NS with glue (silent), one glueless under net.
    w.on(
        "10.0.1.2",
        "www.example.org.",
        RecordType::A,
        Script::Reply(s::referral(
            "example.org.",
            &[
                ("ns1.example.org.", Some("10.0.5.1")),
                ("ns.host.net.", None),
            ],
        )),
    );
    w.on(
        "10.0.1.3",
        "ns.host.net.",
        RecordType::A,
        Script::Reply(s::referral(
            "host.net.",
            &[("ns.host.net.", Some("10.0.6.1"))],
        )),
    );
    w.on(
        "10.0.6.1",
        "ns.host.net.",
        RecordType::A,
        Script::Reply(s::answer(vec![s::rec(
            "ns.host.net.",
            300,
            s::a("10.0.5.2"),
        )])),
    );
    w.on(
        "10.0.5.2",
        "www.example.org.",
        RecordType::A,
        Script::Reply(s::answer(vec![s::rec(
            "www.example.org.",
            300,
            s::a("192.0.2.30"),
        )])),
    );
    // First, with the glued server answering: no lookup of the glueless name at all.
    w.on(
        "10.0.5.1",
        "www.example.org.",
        RecordType::A,
        Script::Reply(s::answer(vec![s::rec(
            "www.example.org.",
            300,
            s::a("192.0.2.30"),
        )])),
    );
    let r = run(&w, &Cache::default(), q("www.example.org.", RecordType::A));
    assert_eq!(a_records(&r.outcome), ["192.0.2.30"]);
    assert!(
        !w.seen().iter().any(|s| s.name == name("ns.host.net.")),
        "no speculative NS lookups"
    );
    // Then with the glued server silent: the glueless name is resolved, then asked.
    w.on(
        "10.0.5.1",
        "www.example.org.",
        RecordType::A,
        Script::Timeout,
    );
    let r = run(&w, &cache, q("www.example.org.", RecordType::A));
    assert_eq!(a_records(&r.outcome), ["192.0.2.30"]);
    assert!(r
        .events
        .iter()
        .any(|e| matches!(e, HopEvent::LookupNs { ns, .. } if *ns == name("ns.host.net."))));
}

#[test]
fn out_of_bailiwick_glue_is_not_believed() {
    let w = world();
    let cache = Cache::default();
    // The com server hands out glue for an org name: a lie we must not use.
    w.on(
        "10.0.1.1",
        "www.poison.com.",
        RecordType::A,
        Script::Reply(s::referral(
            "poison.com.",
            &[("ns.host.org.", Some("10.6.6.6"))],
        )),
    );
    w.on(
        "10.0.1.2",
        "ns.host.org.",
        RecordType::A,
        Script::Reply(s::referral(
            "host.org.",
            &[("ns.host.org.", Some("10.0.7.1"))],
        )),
    );
    w.on(
        "10.0.7.1",
        "ns.host.org.",
        RecordType::A,
        Script::Reply(s::answer(vec![s::rec(
            "ns.host.org.",
            300,
            s::a("10.0.7.2"),
        )])),
    );
    w.on(
        "10.0.7.2",
        "www.poison.com.",
        RecordType::A,
        Script::Reply(s::answer(vec![s::rec(
            "www.poison.com.",
            300,
            s::a("192.0.2.77"),
        )])),
    );
    w.on(
        "10.6.6.6",
        "www.poison.com.",
        RecordType::A,
        Script::Reply(s::answer(vec![s::rec(
            "www.poison.com.",
            300,
            s::a("198.51.100.66"),
        )])),
    );
    let r = run(&w, &cache, q("www.poison.com.", RecordType::A));
    assert_eq!(a_records(&r.outcome), ["192.0.2.77"]);
    assert!(!servers_asked(&w).contains(&"10.6.6.6".to_string()));
}

#[test]
fn lame_refused_servfail_and_timeouts_move_to_the_next_server() {
    for bad in [
        Script::Reply(s::error(ResponseCode::Refused)),
        Script::Reply(s::error(ResponseCode::ServFail)),
        // A recursive server answering from its cache (RA, no AA): another server is
        // better.
        Script::Reply({
            let mut m = s::answer(vec![s::rec("www.example.com.", 300, s::a("198.51.100.1"))]);
            m.metadata.authoritative = false;
            m.metadata.recursion_available = true;
            m
        }),
        Script::Timeout,
    ] {
        let w = world();
        w.on("10.0.2.1", "www.example.com.", RecordType::A, bad.clone());
        let r = run(&w, &Cache::default(), q("www.example.com.", RecordType::A));
        assert_eq!(a_records(&r.outcome), ["192.0.2.1"], "{bad:?}");
        assert_eq!(
            servers_asked(&w),
            ["10.0.0.1", "10.0.1.1", "10.0.2.1", "10.0.2.2"],
            "{bad:?}"
        );
    }
}

#[test]
fn all_servers_failing_ends_in_servfail_with_retries_bounded() {
    let w = world();
    w.on(
        "10.0.2.1",
        "www.example.com.",
        RecordType::A,
        Script::Timeout,
    );
    w.on(
        "10.0.2.2",
        "www.example.com.",
        RecordType::A,
        Script::Timeout,
    );
    let r = run(&w, &Cache::default(), q("www.example.com.", RecordType::A));
    assert!(
        matches!(
            r.outcome,
            Outcome::ServFail(Failure::ServersExhausted { .. })
        ),
        "{:?}",
        r.outcome
    );
    assert_eq!(r.sent, 2 + 2 * 2, "each silent server is tried twice");
}

#[test]
fn truncated_udp_is_retried_over_tcp_on_the_same_server() {
    let w = world();
    w.on(
        "10.0.2.1",
        "www.example.com.",
        RecordType::A,
        Script::TruncatedThen(s::answer(vec![s::rec(
            "www.example.com.",
            300,
            s::a("192.0.2.1"),
        )])),
    );
    let r = run(&w, &Cache::default(), q("www.example.com.", RecordType::A));
    assert_eq!(a_records(&r.outcome), ["192.0.2.1"]);
    let last: Vec<_> = w
        .seen()
        .into_iter()
        .skip(2)
        .map(|s| (s.server.to_string(), s.tcp))
        .collect();
    assert_eq!(
        last,
        [
            ("10.0.2.1".to_string(), false),
            ("10.0.2.1".to_string(), true)
        ]
    );
}

#[test]
fn formerr_to_edns_is_retried_without_edns() {
    let w = world();
    w.on(
        "10.0.2.1",
        "www.example.com.",
        RecordType::A,
        Script::NoEdnsThen(s::answer(vec![s::rec(
            "www.example.com.",
            300,
            s::a("192.0.2.1"),
        )])),
    );
    let r = run(&w, &Cache::default(), q("www.example.com.", RecordType::A));
    assert_eq!(a_records(&r.outcome), ["192.0.2.1"]);
    let last: Vec<_> = w
        .seen()
        .into_iter()
        .skip(2)
        .map(|s| (s.server.to_string(), s.edns))
        .collect();
    assert_eq!(
        last,
        [
            ("10.0.2.1".to_string(), true),
            ("10.0.2.1".to_string(), false)
        ]
    );
}

#[test]
fn cname_loop_ends_in_servfail() {
    let w = world();
    w.on(
        "10.0.1.1",
        "a.loop.com.",
        RecordType::A,
        Script::Reply(s::referral(
            "loop.com.",
            &[("ns.loop.com.", Some("10.0.8.1"))],
        )),
    );
    w.on(
        "10.0.8.1",
        "a.loop.com.",
        RecordType::A,
        Script::Reply(s::answer(vec![s::rec(
            "a.loop.com.",
            300,
            s::cname("b.loop.com."),
        )])),
    );
    w.on(
        "10.0.8.1",
        "b.loop.com.",
        RecordType::A,
        Script::Reply(s::answer(vec![s::rec(
            "b.loop.com.",
            300,
            s::cname("a.loop.com."),
        )])),
    );
    let r = run(&w, &Cache::default(), q("a.loop.com.", RecordType::A));
    assert!(
        matches!(r.outcome, Outcome::ServFail(Failure::Loop(_))),
        "{:?}",
        r.outcome
    );
    assert!(r.sent <= 5);
}

#[test]
fn long_cname_chain_hits_the_chain_limit() {
    let w = world();
    w.on(
        "10.0.1.1",
        "www.lame.com.",
        RecordType::A,
        Script::Reply(s::referral(
            "lame.com.",
            &[("ns.lame.com.", Some("10.0.9.1"))],
        )),
    );
    w.on(
        "10.0.9.1",
        "www.lame.com.",
        RecordType::A,
        Script::Reply(s::answer(vec![s::rec(
            "www.lame.com.",
            300,
            s::cname("c1.lame.com."),
        )])),
    );
    for i in 1..40 {
        w.on(
            "10.0.9.1",
            &format!("c{i}.lame.com."),
            RecordType::A,
            Script::Reply(s::answer(vec![s::rec(
                &format!("c{i}.lame.com."),
                300,
                s::cname(&format!("c{}.lame.com.", i + 1)),
            )])),
        );
    }
    let r = run(&w, &Cache::default(), q("www.lame.com.", RecordType::A));
    assert!(
        matches!(r.outcome, Outcome::ServFail(Failure::ChainTooLong(12))),
        "{:?}",
        r.outcome
    );
}

#[test]
fn upward_and_self_referrals_are_lame() {
    // Upward: the loop.com server refers back to com (its NS are scrubbed: not its zone).
    // Self: it refers to loop.com itself.
    for (to, ns, ip) in [
        ("com.", "ns.nic.com.", "10.0.1.1"),
        ("loop.com.", "ns.loop.com.", "10.0.8.1"),
    ] {
        let w = world();
        w.on(
            "10.0.1.1",
            "www.loop.com.",
            RecordType::A,
            Script::Reply(s::referral(
                "loop.com.",
                &[("ns.loop.com.", Some("10.0.8.1"))],
            )),
        );
        w.on(
            "10.0.8.1",
            "www.loop.com.",
            RecordType::A,
            Script::Reply(s::referral(to, &[(ns, Some(ip))])),
        );
        let r = run(&w, &Cache::default(), q("www.loop.com.", RecordType::A));
        assert!(
            matches!(
                r.outcome,
                Outcome::ServFail(Failure::ServersExhausted { .. })
            ),
            "{:?}",
            r.outcome
        );
        assert!(r.events.iter().any(|e| matches!(
            e,
            HopEvent::Reply {
                kind: ReplyKind::Lame(_),
                ..
            }
        )));
        assert_eq!(r.sent, 3, "the lame server is not asked again");
    }
}

#[test]
fn ns_names_inside_each_others_zones_end_quickly() {
    let w = world();
    // a.loop.com is served by ns.b.net, and b.net by ns.a.loop.com: neither can be reached.
    w.on(
        "10.0.1.1",
        "www.loop.com.",
        RecordType::A,
        Script::Reply(s::referral("loop.com.", &[("ns.b.net.", None)])),
    );
    w.on(
        "10.0.0.1",
        "ns.b.net.",
        RecordType::A,
        Script::Reply(s::referral("net.", &[("ns.nic.net.", Some("10.0.1.3"))])),
    );
    w.on(
        "10.0.1.3",
        "ns.b.net.",
        RecordType::A,
        Script::Reply(s::referral("b.net.", &[("ns.loop.com.", None)])),
    );
    w.on(
        "10.0.1.1",
        "ns.loop.com.",
        RecordType::A,
        Script::Reply(s::referral("loop.com.", &[("ns.b.net.", None)])),
    );
    let r = run(&w, &Cache::default(), q("www.loop.com.", RecordType::A));
    assert!(matches!(r.outcome, Outcome::ServFail(_)), "{:?}", r.outcome);
    assert!(r.sent <= 10, "sent {}", r.sent);
}

#[test]
fn query_budget_bounds_upstream_queries() {
    let w = world();
    // A delegation with 30 glueless NS names that all lead nowhere (NXNS-style).
    let names: Vec<String> = (0..30).map(|i| format!("ns{i}.nx.net.")).collect();
    let servers: Vec<(&str, Option<&str>)> = names.iter().map(|n| (n.as_str(), None)).collect();
    w.on(
        "10.0.1.1",
        "www.lame.com.",
        RecordType::A,
        Script::Reply(s::referral("lame.com.", &servers)),
    );
    for n in &names {
        w.on(
            "10.0.0.1",
            n,
            RecordType::A,
            Script::Reply(s::referral("net.", &[("ns.nic.net.", Some("10.0.1.3"))])),
        );
        w.on(
            "10.0.1.3",
            n,
            RecordType::A,
            Script::Reply(s::nxdomain("net.")),
        );
    }
    let limits = super::Limits::default();
    let r = run(&w, &Cache::default(), q("www.lame.com.", RecordType::A));
    assert!(matches!(r.outcome, Outcome::ServFail(_)));
    assert!(r.sent <= limits.max_queries, "sent {}", r.sent);
    assert!(r.sent <= 2 + 2 * limits.max_ns_lookups, "sent {}", r.sent);
}

#[test]
fn loopback_referrals_need_query_loopback() {
    let w = world();
    w.on(
        "10.0.1.1",
        "www.lame.com.",
        RecordType::A,
        Script::Reply(s::referral(
            "lame.com.",
            &[("ns.lame.com.", Some("127.0.0.9"))],
        )),
    );
    let r = run(&w, &Cache::default(), q("www.lame.com.", RecordType::A));
    assert!(
        matches!(r.outcome, Outcome::ServFail(Failure::NoAddress)),
        "{:?}",
        r.outcome
    );
    assert!(!servers_asked(&w).contains(&"127.0.0.9".to_string()));
    let with = Settings {
        query_loopback: true,
        ..settings()
    };
    let r = run_with(
        &w,
        &Cache::default(),
        q("www.lame.com.", RecordType::A),
        with,
    );
    assert!(
        servers_asked(&w).contains(&"127.0.0.9".to_string()),
        "{:?}",
        r.outcome
    );
}

/// Issue 11, item 2: loopback hides in IPv6 spellings (mapped, compatible, NAT64), and the
/// unspecified addresses and hopdns's own listen address are never asked either.
#[test]
fn loopback_in_every_spelling_and_our_own_address_are_never_asked() {
    use super::machine::is_loopback_like;
    use std::net::IpAddr;
    for spelled in [
        "::ffff:127.0.0.9",
        "::127.0.0.9",
        "64:ff9b::127.0.0.9",
        "127.1.2.3",
        "::1",
    ] {
        let ip: IpAddr = spelled.parse().unwrap();
        assert!(is_loopback_like(ip), "{spelled}");
    }
    for other in [
        "::ffff:192.0.2.1",
        "64:ff9b::192.0.2.1",
        "2001:db8::1",
        "192.0.2.1",
    ] {
        assert!(!is_loopback_like(other.parse().unwrap()), "{other}");
    }
    for glue in [
        "::ffff:127.0.0.9",
        "::127.0.0.9",
        "64:ff9b::7f00:9",
        "0.0.0.0",
        "::",
        "::ffff:0.0.0.0",
        "192.0.2.53",
    ] {
        let w = world();
        let ns_glue = hickory_proto::rr::Record::from_rdata(
            name("ns.lame.com."),
            300,
            match glue.parse::<IpAddr>().unwrap() {
                IpAddr::V4(v4) => RData::A(v4.into()),
                IpAddr::V6(v6) => RData::AAAA(v6.into()),
            },
        );
        let mut referral = s::referral("lame.com.", &[("ns.lame.com.", None)]);
        referral.add_additional(ns_glue);
        w.on(
            "10.0.1.1",
            "www.lame.com.",
            RecordType::A,
            Script::Reply(referral),
        );
        let own = Settings {
            ipv6: true,
            own_addrs: vec!["192.0.2.53".parse().unwrap()],
            ..settings()
        };
        let r = run_with(
            &w,
            &Cache::default(),
            q("www.lame.com.", RecordType::A),
            own,
        );
        assert!(
            matches!(r.outcome, Outcome::ServFail(_)),
            "{glue}: {:?}",
            r.outcome
        );
        assert_eq!(r.sent, 2, "{glue}: only root and com were asked");
    }
}

#[test]
fn deadline_ends_in_servfail() {
    let cache = Cache::default();
    let mut m = Resolution::new(
        q("www.example.com.", RecordType::A),
        Arc::new(root()),
        Arc::new(settings()),
        false,
    );
    assert!(matches!(m.poll(&cache, NOW), Action::Ask(_)));
    m.handle(Event::Deadline, &cache, NOW);
    assert_eq!(
        m.poll(&cache, NOW),
        Action::Done(Outcome::ServFail(Failure::Deadline))
    );
}

#[test]
fn ds_is_asked_at_the_parent_side_of_a_cached_cut() {
    let w = world();
    let cache = Cache::default();
    run(&w, &cache, q("www.example.com.", RecordType::A));
    // The com server holds the DS; the example.com servers would only say NODATA.
    let ds = hickory_proto::rr::Record::from_rdata(
        name("example.com."),
        300,
        RData::Unknown {
            code: RecordType::DS,
            rdata: hickory_proto::rr::rdata::NULL::with(vec![1, 2, 3, 4]),
        },
    );
    w.on(
        "10.0.1.1",
        "example.com.",
        RecordType::DS,
        Script::Reply(s::answer(vec![ds])),
    );
    w.on(
        "10.0.2.1",
        "example.com.",
        RecordType::DS,
        Script::Reply(s::nodata("example.com.")),
    );
    w.on(
        "10.0.2.2",
        "example.com.",
        RecordType::DS,
        Script::Reply(s::nodata("example.com.")),
    );
    let r = run(&w, &cache, q("example.com.", RecordType::DS));
    assert!(
        matches!(&r.outcome, Outcome::Answer { answers } if answers.len() == 1),
        "{:?}",
        r.outcome
    );
    assert_eq!(w.seen().last().unwrap().server.to_string(), "10.0.1.1");
}

#[test]
fn nxdomain_with_a_cname_out_of_the_zone_follows_the_cname() {
    let w = world();
    let mut reply = s::nxdomain("example.com.");
    reply.add_answer(s::rec("nx.example.com.", 300, s::cname("www.example.net.")));
    for srv in ["10.0.2.1", "10.0.2.2"] {
        w.on(
            srv,
            "nx.example.com.",
            RecordType::A,
            Script::Reply(reply.clone()),
        );
    }
    w.on(
        "10.0.1.3",
        "www.example.net.",
        RecordType::A,
        Script::Reply(s::referral(
            "example.net.",
            &[("ns.example.net.", Some("10.0.3.1"))],
        )),
    );
    w.on(
        "10.0.3.1",
        "www.example.net.",
        RecordType::A,
        Script::Reply(s::answer(vec![s::rec(
            "www.example.net.",
            60,
            s::a("192.0.2.22"),
        )])),
    );
    let r = run(&w, &Cache::default(), q("nx.example.com.", RecordType::A));
    assert_eq!(r.outcome.rcode(), ResponseCode::NoError, "{:?}", r.outcome);
    assert_eq!(a_records(&r.outcome), ["192.0.2.22"]);
}

#[test]
fn undecodable_reply_skips_the_server_without_waiting() {
    let w = world();
    let cache = Cache::default();
    let mut m = Resolution::new(
        q("www.example.com.", RecordType::A),
        Arc::new(root()),
        Arc::new(settings()),
        false,
    );
    // Walk to the example.com cut.
    for _ in 0..2 {
        let Action::Ask(send) = m.poll(&cache, NOW) else {
            panic!()
        };
        let from = send.candidates[0];
        let message = w
            .reply(from, &send.query.name, send.query.query_type, false, true)
            .unwrap();
        m.handle(
            Event::Response {
                from,
                message,
                rtt: Duration::ZERO,
                edns: true,
                via: crate::transport::Via::Udp,
            },
            &cache,
            NOW,
        );
    }
    let Action::Ask(send) = m.poll(&cache, NOW) else {
        panic!()
    };
    assert_eq!(send.candidates.len(), 2);
    let bad = send.candidates[0];
    m.handle(
        Event::Unusable {
            from: bad,
            error: "garbage".into(),
            after: Duration::ZERO,
        },
        &cache,
        NOW,
    );
    let Action::Ask(next) = m.poll(&cache, NOW) else {
        panic!()
    };
    assert_eq!(next.candidates.len(), 1);
    assert_ne!(
        next.candidates[0], bad,
        "the server that sent garbage is not asked again"
    );
}

/// RFC 8767 §4 updates RFC 2181 §8: a TTL with the top bit set is a large positive value,
/// not zero; the cache caps it at `max-ttl` like any other.
#[test]
fn ttl_with_the_top_bit_set_is_positive_and_capped() {
    let w = world();
    for srv in ["10.0.2.1", "10.0.2.2"] {
        w.on(
            srv,
            "www.example.com.",
            RecordType::A,
            Script::Reply(s::answer(vec![s::rec(
                "www.example.com.",
                0x8000_0001,
                s::a("192.0.2.1"),
            )])),
        );
    }
    let cache = Cache::default();
    let r = run(&w, &cache, q("www.example.com.", RecordType::A));
    assert_eq!(r.outcome.answers()[0].ttl, i32::MAX as u32, "RFC 8767 §4");
    let again = run(&w, &cache, q("www.example.com.", RecordType::A));
    assert_eq!(again.sent, 0, "cached, not treated as TTL 0");
    assert_eq!(again.outcome.answers()[0].ttl, 86_400, "capped at max-ttl");
}

#[test]
fn ns_address_loops_across_types_end_quickly() {
    let w = world();
    let with_v6 = Settings::default();
    // loop.com's only NS lives in b.net, whose only NS lives in loop.com; both families tried.
    w.on(
        "10.0.1.1",
        "www.loop.com.",
        RecordType::A,
        Script::Reply(s::referral("loop.com.", &[("ns.b.net.", None)])),
    );
    for t in [RecordType::A, RecordType::AAAA] {
        w.on(
            "10.0.0.1",
            "ns.b.net.",
            t,
            Script::Reply(s::referral("net.", &[("ns.nic.net.", Some("10.0.1.3"))])),
        );
        w.on(
            "10.0.1.3",
            "ns.b.net.",
            t,
            Script::Reply(s::referral("b.net.", &[("ns.loop.com.", None)])),
        );
        w.on(
            "10.0.0.1",
            "ns.loop.com.",
            t,
            Script::Reply(s::referral("com.", &[("ns.nic.com.", Some("10.0.1.1"))])),
        );
        w.on(
            "10.0.1.1",
            "ns.loop.com.",
            t,
            Script::Reply(s::referral("loop.com.", &[("ns.b.net.", None)])),
        );
    }
    let r = run_with(
        &w,
        &Cache::default(),
        q("www.loop.com.", RecordType::A),
        with_v6,
    );
    assert!(matches!(r.outcome, Outcome::ServFail(_)), "{:?}", r.outcome);
    assert!(r.sent <= 8, "sent {}", r.sent);
}

// QNAME minimisation (RFC 9156).

/// root -> com -> example.com; `a.example.com` is an empty non-terminal (NODATA), and
/// `www.a.example.com` holds the data. `ent` says what example.com's server answers for the
/// ENT (the broken ones say NXDOMAIN or REFUSED).
fn min_world(ent: Script) -> Scripted {
    let w = Scripted::new();
    w.default_for(
        "10.0.0.1",
        Script::Reply(s::referral("com.", &[("ns.nic.com.", Some("10.0.1.1"))])),
    );
    w.default_for(
        "10.0.1.1",
        Script::Reply(s::referral(
            "example.com.",
            &[("ns.example.com.", Some("10.0.2.1"))],
        )),
    );
    w.default_for("10.0.2.1", Script::Reply(s::nodata("example.com.")));
    for t in [RecordType::A, RecordType::NS] {
        w.on("10.0.2.1", "a.example.com.", t, ent.clone());
    }
    w.on(
        "10.0.2.1",
        "www.a.example.com.",
        RecordType::A,
        Script::Reply(s::answer(vec![s::rec(
            "www.a.example.com.",
            300,
            s::a("192.0.2.7"),
        )])),
    );
    w
}

fn minimising(mode: MinimiseMode, qtype: RecordType) -> Settings {
    Settings {
        ipv6: false,
        minimise: mode,
        minimise_qtype: qtype,
        ..Settings::default()
    }
}

fn asked(w: &Scripted) -> Vec<String> {
    w.seen()
        .iter()
        .map(|s| format!("{} {} {}", s.server, s.name, s.qtype))
        .collect()
}

#[test]
fn minimised_walk_reveals_one_label_per_zone_and_steps_through_an_empty_non_terminal() {
    let w = min_world(Script::Reply(s::nodata("example.com.")));
    let cache = Cache::default();
    let question = q("www.a.example.com.", RecordType::A);
    let r = run_with(
        &w,
        &cache,
        question,
        minimising(MinimiseMode::Relaxed, RecordType::A),
    );
    assert_eq!(a_records(&r.outcome), ["192.0.2.7"]);
    assert_eq!(
        asked(&w),
        [
            "10.0.0.1 com. A",
            "10.0.1.1 example.com. A",
            "10.0.2.1 a.example.com. A",
            "10.0.2.1 www.a.example.com. A",
        ]
    );
    // The trace shows the minimised questions as they were sent.
    let traced: Vec<String> = r
        .events
        .iter()
        .filter_map(|e| match e {
            HopEvent::Reply { question, .. } => Some(question.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(
        traced,
        [
            "com. A",
            "example.com. A",
            "a.example.com. A",
            "www.a.example.com. A"
        ]
    );
}

#[test]
fn minimised_qtype_ns_is_configurable() {
    let w = min_world(Script::Reply(s::nodata("example.com.")));
    let cache = Cache::default();
    let question = q("www.a.example.com.", RecordType::AAAA);
    w.on(
        "10.0.2.1",
        "www.a.example.com.",
        RecordType::AAAA,
        Script::Reply(s::nodata("example.com.")),
    );
    let r = run_with(
        &w,
        &cache,
        question,
        minimising(MinimiseMode::Relaxed, RecordType::NS),
    );
    assert!(
        matches!(r.outcome, Outcome::NoData { .. }),
        "{:?}",
        r.outcome
    );
    assert_eq!(
        asked(&w),
        [
            "10.0.0.1 com. NS",
            "10.0.1.1 example.com. NS",
            "10.0.2.1 a.example.com. NS",
            "10.0.2.1 www.a.example.com. AAAA",
        ]
    );
}

#[test]
fn relaxed_mode_asks_the_full_name_after_nxdomain_or_an_error_for_a_minimised_one() {
    for broken in [
        Script::Reply(s::nxdomain("example.com.")),
        Script::Reply(s::error(ResponseCode::Refused)),
        Script::Reply(s::error(ResponseCode::ServFail)),
        Script::Reply(s::error(ResponseCode::NotImp)),
    ] {
        let w = min_world(broken.clone());
        let cache = Cache::default();
        let question = q("www.a.example.com.", RecordType::A);
        let r = run_with(
            &w,
            &cache,
            question,
            minimising(MinimiseMode::Relaxed, RecordType::A),
        );
        assert_eq!(a_records(&r.outcome), ["192.0.2.7"], "{broken:?}");
        assert_eq!(
            asked(&w)[2..],
            ["10.0.2.1 a.example.com. A", "10.0.2.1 www.a.example.com. A"],
            "{broken:?}"
        );
    }
}

#[test]
fn strict_mode_believes_nxdomain_for_a_minimised_name_and_caches_the_cut() {
    let w = min_world(Script::Reply(s::nxdomain("example.com.")));
    let cache = Cache::default();
    let settings = minimising(MinimiseMode::Strict, RecordType::A);
    let r = run_with(
        &w,
        &cache,
        q("www.a.example.com.", RecordType::A),
        settings.clone(),
    );
    assert!(
        matches!(r.outcome, Outcome::NxDomain { .. }),
        "{:?}",
        r.outcome
    );
    assert_eq!(r.sent, 3, "the full name is never sent");
    // RFC 8020: every name below the NXDOMAIN cut is answered from the cache.
    let before = w.seen().len();
    let r = run_with(
        &w,
        &cache,
        q("deep.x.a.example.com.", RecordType::TXT),
        settings.clone(),
    );
    assert!(
        matches!(r.outcome, Outcome::NxDomain { .. }),
        "{:?}",
        r.outcome
    );
    assert_eq!(
        w.seen().len(),
        before,
        "no upstream query below a cached NXDOMAIN"
    );
    // Errors are not a reason to reveal the name in strict mode: the server is lame.
    let w = min_world(Script::Reply(s::error(ResponseCode::Refused)));
    let r = run_with(
        &w,
        &Cache::default(),
        q("www.a.example.com.", RecordType::A),
        settings,
    );
    assert!(matches!(r.outcome, Outcome::ServFail(_)), "{:?}", r.outcome);
    assert!(!asked(&w).contains(&"10.0.2.1 www.a.example.com. A".to_string()));
}

#[test]
fn minimisation_off_sends_the_full_name_everywhere() {
    let w = min_world(Script::Reply(s::nodata("example.com.")));
    let r = run_with(
        &w,
        &Cache::default(),
        q("www.a.example.com.", RecordType::A),
        minimising(MinimiseMode::Off, RecordType::A),
    );
    assert_eq!(a_records(&r.outcome), ["192.0.2.7"]);
    assert!(
        asked(&w).iter().all(|a| a.contains("www.a.example.com. A")),
        "{:?}",
        asked(&w)
    );
}

#[test]
fn a_long_name_costs_at_most_max_minimise_count_minimised_queries() {
    use super::machine::{MAX_MINIMISE_COUNT, MINIMISE_ONE_LAB};
    // 30 labels below example.com, all empty non-terminals but the last.
    let labels: Vec<String> = (0..30).map(|i| format!("l{i}")).collect();
    let long = format!("{}.example.com.", labels.join("."));
    let w = min_world(Script::Reply(s::nodata("example.com.")));
    w.on(
        "10.0.2.1",
        &long,
        RecordType::A,
        Script::Reply(s::answer(vec![s::rec(&long, 300, s::a("192.0.2.8"))])),
    );
    let r = run_with(
        &w,
        &Cache::default(),
        q(&long, RecordType::A),
        minimising(MinimiseMode::Relaxed, RecordType::A),
    );
    assert_eq!(a_records(&r.outcome), ["192.0.2.8"]);
    let names: Vec<Name> = w.seen().iter().map(|s| s.name.clone()).collect();
    let minimised = names.iter().filter(|n| **n != name(&long)).count();
    assert!(
        minimised <= MAX_MINIMISE_COUNT,
        "{minimised} minimised queries: {names:?}"
    );
    // The first MINIMISE_ONE_LAB steps add one label each (com, example.com, l29..., l28...).
    for (i, n) in names.iter().take(MINIMISE_ONE_LAB).enumerate() {
        assert_eq!(n.iter().len(), i + 1, "{names:?}");
    }
    assert_eq!(r.sent, names.len());
}

/// Issue 10: replies from real-world authorities, judged as Unbound and Knot Resolver judge them.
mod conformance;

/// Issue 13.4: TTLs, serve-stale, the failure cache and infra expiry on a manual clock.
mod time;

/// Issue 11, item 1: a referral with thousands of NS names (glueless, outside the child zone)
/// is cut to [`super::machine::MAX_NS_PER_CUT`] names before anything is kept or scanned, so
/// it costs the cache and the CPU what an ordinary one does.
#[test]
fn a_fat_referral_keeps_at_most_thirteen_ns_names() {
    use super::machine::MAX_NS_PER_CUT;
    let w = world();
    let mut fat = s::referral("example.com.", &[]);
    for i in 0..5000 {
        let ns = format!("ns{i}.example.com.");
        fat.add_authority(hickory_proto::rr::Record::from_rdata(
            name("example.com."),
            86400,
            RData::NS(hickory_proto::rr::rdata::NS(name(&format!(
                "ns{i}.elsewhere.org."
            )))),
        ));
        // In-zone names with glue too: the glue filter must not scan every NS per record.
        fat.add_authority(hickory_proto::rr::Record::from_rdata(
            name("example.com."),
            86400,
            RData::NS(hickory_proto::rr::rdata::NS(name(&ns))),
        ));
        fat.add_additional(s::rec(&ns, 300, s::a("10.9.0.1")));
    }
    w.on(
        "10.0.1.1",
        "www.example.com.",
        RecordType::A,
        Script::Reply(fat),
    );
    let cache = Cache::default();
    let started = std::time::Instant::now();
    let r = run(&w, &cache, q("www.example.com.", RecordType::A));
    let cut = cache
        .delegations
        .get(&name("example.com."), NOW)
        .expect("the cut is cached");
    assert_eq!(cut.servers.len(), MAX_NS_PER_CUT);
    assert!(r.sent <= 48, "{} queries", r.sent);
    // Not a timing target: a guard against the quadratic scans coming back (0.19 s each).
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

/// Issue 17.1: the NXDOMAIN walk of a resolution's start stops at the closest cached cut,
/// so learning that a cut's own name does not exist (its zone was removed; the parent says
/// NXDOMAIN) must drop the cut, or it would hide that NXDOMAIN from the names below it.
#[test]
fn an_nxdomain_for_a_cached_cut_drops_the_cut() {
    let w = min_world(Script::Reply(s::nodata("example.com.")));
    // A cut for a.example.com. learnt before the zone went away; asked for its DS, the
    // parent now says the name does not exist.
    w.on(
        "10.0.2.1",
        "a.example.com.",
        RecordType::DS,
        Script::Reply(s::nxdomain("example.com.")),
    );
    let cache = Cache::default();
    let cut = |zone: &str, ns: &str, addr: &str| Delegation {
        zone: Name::from_ascii(zone).unwrap(),
        servers: vec![crate::cache::NsName {
            name: Name::from_ascii(ns).unwrap(),
            addrs: vec![addr.parse().unwrap()],
        }],
    };
    cache.delegations.insert(
        cut("example.com.", "ns.example.com.", "10.0.2.1"),
        3600,
        NOW,
    );
    cache.delegations.insert(
        cut("a.example.com.", "ns.a.example.com.", "10.0.3.1"),
        3600,
        NOW,
    );
    let r = run(&w, &cache, q("a.example.com.", RecordType::DS));
    assert!(
        matches!(r.outcome, Outcome::NxDomain { .. }),
        "{:?}",
        r.outcome
    );
    assert!(cache
        .delegations
        .get(&Name::from_ascii("a.example.com.").unwrap(), NOW)
        .is_none());
    let before = w.seen().len();
    let r = run(&w, &cache, q("www.a.example.com.", RecordType::A));
    assert!(
        matches!(r.outcome, Outcome::NxDomain { .. }),
        "{:?}",
        r.outcome
    );
    assert_eq!(w.seen().len(), before, "answered from the cached NXDOMAIN");
}

/// Hint servers `10.9.0.1`..`10.9.0.n`, named `h1.root.`...
fn hints(n: u8) -> Delegation {
    Delegation {
        zone: Name::root(),
        servers: (1..=n)
            .map(|i| crate::cache::NsName {
                name: Name::from_ascii(format!("h{i}.root.")).unwrap(),
                addrs: vec![format!("10.9.0.{i}").parse().unwrap()],
            })
            .collect(),
    }
}

/// A valid priming reply: the root NS set with glue, AA.
fn priming_reply() -> Message {
    let mut m = s::answer(vec![s::rec(
        ".",
        518400,
        RData::NS(hickory_proto::rr::rdata::NS(
            Name::from_ascii("p.root.").unwrap(),
        )),
    )]);
    m.add_additional(s::rec("p.root.", 518400, s::a("10.9.9.9")));
    m
}

fn prime(w: &Scripted, cache: &Cache, root: Delegation) -> (Outcome, Vec<HopEvent>, usize) {
    let mut m = Resolution::priming(Arc::new(root), Arc::new(settings()), true);
    let (outcome, events) = drive(w, cache, &mut m);
    (outcome, events, m.queries_sent())
}

/// Issue 13.3: priming is a resolution like any other, driven by the same loop: a hint
/// server that times out and one that answers without AA are skipped, the next one's root
/// NS set becomes the cached root cut, and its trace holds only the exchanges (as before).
#[test]
fn priming_is_a_resolution_that_learns_the_root_cut() {
    let w = Scripted::new();
    w.default_for("10.9.0.1", Script::Timeout);
    let mut not_aa = priming_reply();
    not_aa.metadata.authoritative = false;
    w.default_for("10.9.0.2", Script::Reply(not_aa));
    w.default_for("10.9.0.3", Script::NoEdnsThen(priming_reply()));
    let cache = Cache::default();
    let (outcome, events, sent) = prime(&w, &cache, hints(3));
    let Outcome::Answer { answers } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(answers.len(), 1);
    assert_eq!(
        sent, 4,
        "timeout, lame, FORMERR to EDNS, the retry without EDNS"
    );
    let root = cache
        .delegations
        .closest(&Name::root(), NOW)
        .expect("root cut");
    assert_eq!(root.servers[0].name, Name::from_ascii("p.root.").unwrap());
    assert!(events
        .iter()
        .all(|e| matches!(e, HopEvent::Reply { .. } | HopEvent::NoReply { .. })));
    assert!(events.iter().any(|e| matches!(
        e,
        HopEvent::Reply {
            kind: ReplyKind::RootNs { .. },
            ..
        }
    )));
    assert!(!cache
        .infra
        .edns_ok("10.9.0.3".parse().unwrap(), std::time::Instant::now()));
}

/// Priming gives up after three hint servers; nothing is cached, not even a failure for
/// `. NS` (a client asking it is resolved as usual).
#[test]
fn priming_asks_at_most_three_hint_servers() {
    let w = Scripted::new();
    for i in 1..=5 {
        w.default_for(&format!("10.9.0.{i}"), Script::Timeout);
    }
    let cache = Cache::default();
    let (outcome, _, sent) = prime(&w, &cache, hints(5));
    assert!(matches!(outcome, Outcome::ServFail(_)), "{outcome:?}");
    assert_eq!(sent, 3);
    assert!(cache.delegations.closest(&Name::root(), NOW).is_none());
    let q = Question::new(Name::root(), RecordType::NS);
    assert!(cache.answers.get(&q, NOW).is_none());
}

/// Issue 15: settings with one forward zone for `zone` to `server`.
fn forwarding(zone: &str, server: &str, first: bool) -> Settings {
    use super::forward::{ZoneKind, ZoneRule, ZoneRules};
    let rule = ZoneRule {
        zone: name(zone),
        kind: ZoneKind::Forward { first },
        servers: vec![format!("{server}:53").parse().unwrap()].into(),
    };
    Settings {
        zones: Arc::new(ZoneRules::new(vec![rule]).unwrap()),
        ..settings()
    }
}

/// A forwarder's recursive answer (RA set, AA clear) is final: no REC_LAME, no iteration,
/// the full name asked (no minimisation), and the trace names the forwarder.
#[test]
fn a_forwarders_recursive_answer_is_final() {
    let w = world();
    let mut reply = s::answer(vec![s::rec("www.example.com.", 300, s::a("192.0.2.99"))]);
    reply.metadata.authoritative = false;
    reply.metadata.recursion_available = true;
    w.on(
        "10.9.9.9",
        "www.example.com.",
        RecordType::A,
        Script::Reply(reply),
    );
    let cache = Cache::default();
    let settings = Settings {
        minimise: MinimiseMode::Relaxed,
        ..forwarding("example.com.", "10.9.9.9", false)
    };
    let r = run_with(&w, &cache, q("www.example.com.", RecordType::A), settings);
    assert_eq!(a_records(&r.outcome), ["192.0.2.99"]);
    assert_eq!(servers_asked(&w), ["10.9.9.9"]);
    assert!(r
        .events
        .iter()
        .any(|e| matches!(e, HopEvent::Forwarded { forward: true, .. })));
}

/// Forward first (Unbound's forward-first): when the forwarders fail, iterate; without it,
/// SERVFAIL naming the forward zone.
#[test]
fn forward_first_iterates_when_the_forwarders_fail() {
    let w = world();
    let cache = Cache::default();
    let first = forwarding("example.com.", "10.9.9.8", true);
    let r = run_with(&w, &cache, q("www.example.com.", RecordType::A), first);
    assert_eq!(a_records(&r.outcome), ["192.0.2.1"]);
    assert!(r
        .events
        .iter()
        .any(|e| matches!(e, HopEvent::ForwardFailed { .. })));
    let w = world();
    let cache = Cache::default();
    let only = forwarding("example.com.", "10.9.9.8", false);
    let r = run_with(&w, &cache, q("www.example.com.", RecordType::A), only);
    assert_eq!(
        r.outcome,
        Outcome::ServFail(Failure::ServersExhausted {
            zone: name("example.com.")
        })
    );
    assert_eq!(
        servers_asked(&w),
        ["10.9.9.8", "10.9.9.8"],
        "two rounds, no iteration"
    );
}
