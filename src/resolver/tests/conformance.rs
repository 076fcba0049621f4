//! Conformance with real-world authorities (issue 10): replies without AA, recursion-lame
//! servers, parent and child disagreeing, DNAME, case-folding, minimisation quirks. Each
//! test is named after the behaviour; the RFC section or the peer whose behaviour we match is
//! in its doc comment.
//!
//! The world: the root (10.0.0.1) refers every name under `test.` to 10.1.0.1, which refers
//! each test's zone as the test scripts it. Full names upstream unless a test minimises.

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::{NS, NULL, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::{a_records, minimising, name, q, run, run_with};
use crate::cache::{Cache, Cached};
use crate::resolver::machine::MinimiseMode;
use crate::resolver::{Failure, Outcome};
use crate::trace::{HopEvent, ReplyKind};
use crate::transport::scripted::{self as s, Script, Scripted};

const TLD: &str = "10.1.0.1";

fn world() -> Scripted {
    let w = Scripted::new();
    w.default_for(
        "10.0.0.1",
        Script::Reply(s::referral("test.", &[("ns.nic.test.", Some(TLD))])),
    );
    w.default_for(TLD, Script::Reply(s::nxdomain("test.")));
    w
}

/// test.'s server refers `names` (A and AAAA questions) to `zone`.
fn delegate(w: &Scripted, names: &[&str], zone: &str, servers: &[(&str, Option<&str>)]) {
    for n in names {
        for t in [RecordType::A, RecordType::AAAA, RecordType::TXT] {
            w.on(TLD, n, t, Script::Reply(s::referral(zone, servers)));
        }
    }
}

fn a(owner: &str, ip: &str) -> Record {
    s::rec(owner, 300, s::a(ip))
}

/// The world with `names` under `a.test.`, served by ns.a.test at 10.2.0.1 alone.
fn a_test(names: &[&str]) -> Scripted {
    let w = world();
    delegate(&w, names, "a.test.", &[("ns.a.test.", Some("10.2.0.1"))]);
    w
}

/// `server` answers `owner A` with `ip`, authoritatively.
fn serve_a(w: &Scripted, server: &str, owner: &str, ip: &str) {
    w.on(
        server,
        owner,
        RecordType::A,
        reply(s::answer(vec![a(owner, ip)])),
    );
}

/// `m` with AA cleared (and RA set when `ra`).
fn non_aa(mut m: Message, ra: bool) -> Message {
    m.metadata.authoritative = false;
    m.metadata.recursion_available = ra;
    m
}

fn reply(m: Message) -> Script {
    Script::Reply(m)
}

fn asked_servers(w: &Scripted) -> Vec<String> {
    w.seen().iter().map(|s| s.server.to_string()).collect()
}

fn soa_record(zone: &str, ttl: u32, minimum: u32) -> Record {
    let soa = SOA::new(
        name(&format!("ns.{zone}")),
        name(&format!("host.{zone}")),
        1,
        3600,
        600,
        86400,
        minimum,
    );
    Record::from_rdata(name(zone), ttl, RData::SOA(soa))
}

fn dname(owner: &str, target: &str) -> Record {
    use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
    let mut wire = Vec::new();
    name(target)
        .emit(&mut BinEncoder::new(&mut wire))
        .expect("a name encodes");
    Record::from_rdata(
        name(owner),
        300,
        RData::Unknown {
            code: RecordType::DNAME,
            rdata: NULL::with(wire),
        },
    )
}

// 1. Answers without AA (RFC 1034 §5.3.3 step 4, RFC 2181 §5.4.1: data from a server of the
//    zone; neither asks for the flag).

#[test]
fn answer_without_aa_from_a_server_of_the_zone_is_an_answer() {
    let w = a_test(&["www.a.test."]);
    w.on(
        "10.2.0.1",
        "www.a.test.",
        RecordType::A,
        reply(non_aa(
            s::answer(vec![a("www.a.test.", "192.0.2.1")]),
            false,
        )),
    );
    let r = run(&w, &Cache::default(), q("www.a.test.", RecordType::A));
    assert_eq!(a_records(&r.outcome), ["192.0.2.1"], "{:?}", r.outcome);
    assert_eq!(r.sent, 3);
}

#[test]
fn cname_without_aa_is_followed() {
    let w = a_test(&["www.a.test."]);
    delegate(
        &w,
        &["www.b.test."],
        "b.test.",
        &[("ns.b.test.", Some("10.2.0.2"))],
    );
    w.on(
        "10.2.0.1",
        "www.a.test.",
        RecordType::A,
        reply(non_aa(
            s::answer(vec![s::rec("www.a.test.", 300, s::cname("www.b.test."))]),
            false,
        )),
    );
    serve_a(&w, "10.2.0.2", "www.b.test.", "192.0.2.2");
    let r = run(&w, &Cache::default(), q("www.a.test.", RecordType::A));
    assert_eq!(a_records(&r.outcome), ["192.0.2.2"], "{:?}", r.outcome);
    assert_eq!(r.outcome.answers().len(), 2, "the CNAME, then the address");
}

/// Knot Resolver's "servers sending back CNAME with different delegation and no AA": follow
/// the CNAME; the NS set beside it is a hint, neither cached nor asked.
#[test]
fn cname_with_a_delegation_of_its_target_is_followed_and_the_delegation_ignored() {
    let w = a_test(&["www.a.test."]);
    let mut m = non_aa(
        s::answer(vec![s::rec(
            "www.a.test.",
            300,
            s::cname("www.sub.a.test."),
        )]),
        false,
    );
    m.add_authority(Record::from_rdata(
        name("sub.a.test."),
        300,
        RData::NS(NS(name("ns.sub.a.test."))),
    ));
    m.add_additional(a("ns.sub.a.test.", "10.2.0.99"));
    w.on("10.2.0.1", "www.a.test.", RecordType::A, reply(m));
    w.on(
        "10.2.0.1",
        "www.sub.a.test.",
        RecordType::A,
        reply(s::referral(
            "sub.a.test.",
            &[("ns.sub.a.test.", Some("10.2.0.3"))],
        )),
    );
    serve_a(&w, "10.2.0.3", "www.sub.a.test.", "192.0.2.3");
    let r = run(&w, &Cache::default(), q("www.a.test.", RecordType::A));
    assert_eq!(a_records(&r.outcome), ["192.0.2.3"], "{:?}", r.outcome);
    assert!(!asked_servers(&w).contains(&"10.2.0.99".to_string()));
}

#[test]
fn glueless_ns_address_answered_without_aa_is_used() {
    let w = world();
    delegate(
        &w,
        &["www.a.test."],
        "a.test.",
        &[("ns.host.b.test.", None)],
    );
    delegate(
        &w,
        &["ns.host.b.test."],
        "b.test.",
        &[("ns.b.test.", Some("10.2.0.2"))],
    );
    w.on(
        "10.2.0.2",
        "ns.host.b.test.",
        RecordType::A,
        reply(non_aa(
            s::answer(vec![a("ns.host.b.test.", "10.2.0.5")]),
            false,
        )),
    );
    serve_a(&w, "10.2.0.5", "www.a.test.", "192.0.2.5");
    let r = run(&w, &Cache::default(), q("www.a.test.", RecordType::A));
    assert_eq!(a_records(&r.outcome), ["192.0.2.5"], "{:?}", r.outcome);
}

// 2. Negative answers without AA (RFC 2308 §2.1, §2.2: the SOA makes the negative answer).

#[test]
fn nodata_and_nxdomain_without_aa_but_with_the_zone_soa_are_negative_answers() {
    let w = a_test(&["www.a.test.", "nx.a.test."]);
    w.on(
        "10.2.0.1",
        "www.a.test.",
        RecordType::AAAA,
        reply(non_aa(s::nodata("a.test."), false)),
    );
    w.on(
        "10.2.0.1",
        "nx.a.test.",
        RecordType::A,
        reply(non_aa(s::nxdomain("a.test."), false)),
    );
    let cache = Cache::default();
    let r = run(&w, &cache, q("www.a.test.", RecordType::AAAA));
    assert!(
        matches!(&r.outcome, Outcome::NoData { soa: Some(_), .. }),
        "{:?}",
        r.outcome
    );
    let r = run(&w, &cache, q("nx.a.test.", RecordType::A));
    assert!(
        matches!(&r.outcome, Outcome::NxDomain { soa: Some(_), .. }),
        "{:?}",
        r.outcome
    );
    // Both are cached for their negative TTL.
    assert_eq!(run(&w, &cache, q("www.a.test.", RecordType::AAAA)).sent, 0);
    assert_eq!(run(&w, &cache, q("nx.a.test.", RecordType::A)).sent, 0);
}

/// An empty NOERROR with neither SOA nor referral: Unbound asks another server first and
/// accepts it the second time (`EMPTY_NODATA_RETRY_COUNT`); Knot calls it lame without AA.
/// We ask the cut's other servers first and take it when none does better, AA set or not;
/// without an SOA it is not cached (RFC 2308 §5).
#[test]
fn empty_noerror_is_believed_only_when_no_other_server_does_better() {
    for aa in [true, false] {
        let empty = || {
            let mut m = s::answer(vec![]);
            m.metadata.authoritative = aa;
            reply(m)
        };
        // One server empty, the other answers: the answer wins.
        let w = world();
        delegate(
            &w,
            &["www.a.test."],
            "a.test.",
            &[
                ("ns1.a.test.", Some("10.2.0.1")),
                ("ns2.a.test.", Some("10.2.0.2")),
            ],
        );
        w.on("10.2.0.1", "www.a.test.", RecordType::A, empty());
        serve_a(&w, "10.2.0.2", "www.a.test.", "192.0.2.1");
        let r = run(&w, &Cache::default(), q("www.a.test.", RecordType::A));
        assert_eq!(
            a_records(&r.outcome),
            ["192.0.2.1"],
            "aa={aa}: {:?}",
            r.outcome
        );

        // Both empty: NODATA without SOA, not cached.
        w.on("10.2.0.2", "www.a.test.", RecordType::A, empty());
        let cache = Cache::default();
        let r = run(&w, &cache, q("www.a.test.", RecordType::A));
        assert!(
            matches!(&r.outcome, Outcome::NoData { soa: None, answers } if answers.is_empty()),
            "aa={aa}: {:?}",
            r.outcome
        );
        assert!(r
            .events
            .iter()
            .any(|e| matches!(e, HopEvent::Fallback { .. })));
        assert!(run(&w, &cache, q("www.a.test.", RecordType::A)).sent > 0);
    }
}

// 3. Recursion-lame servers (Unbound's REC_LAME: RA set, AA clear).

#[test]
fn recursion_lame_servers_are_skipped_and_used_when_every_server_is_one() {
    let w = world();
    delegate(
        &w,
        &["www.a.test."],
        "a.test.",
        &[
            ("ns1.a.test.", Some("10.2.0.1")),
            ("ns2.a.test.", Some("10.2.0.2")),
        ],
    );
    let cached = || {
        reply(non_aa(
            s::answer(vec![a("www.a.test.", "198.51.100.1")]),
            true,
        ))
    };
    w.on("10.2.0.1", "www.a.test.", RecordType::A, cached());
    serve_a(&w, "10.2.0.2", "www.a.test.", "192.0.2.1");
    let r = run(&w, &Cache::default(), q("www.a.test.", RecordType::A));
    assert_eq!(a_records(&r.outcome), ["192.0.2.1"], "{:?}", r.outcome);
    assert!(r.events.iter().any(|e| matches!(
        e,
        HopEvent::Reply {
            kind: ReplyKind::Provisional { .. },
            ..
        }
    )));

    // Every server of the cut answers from its cache: its answer, not SERVFAIL.
    w.on("10.2.0.2", "www.a.test.", RecordType::A, cached());
    let r = run(&w, &Cache::default(), q("www.a.test.", RecordType::A));
    assert_eq!(a_records(&r.outcome), ["198.51.100.1"], "{:?}", r.outcome);
}

// 4. Upward referral inside a negative answer.

#[test]
fn upward_referral_inside_an_authoritative_empty_answer_is_lame() {
    let w = world();
    delegate(
        &w,
        &["www.a.test."],
        "a.test.",
        &[
            ("ns1.a.test.", Some("10.2.0.1")),
            ("ns2.a.test.", Some("10.2.0.2")),
        ],
    );
    let mut up = s::answer(vec![]);
    up.add_authority(Record::from_rdata(
        Name::root(),
        86400,
        RData::NS(NS(name("a.root."))),
    ));
    w.on("10.2.0.1", "www.a.test.", RecordType::A, reply(up.clone()));
    serve_a(&w, "10.2.0.2", "www.a.test.", "192.0.2.1");
    let r = run(&w, &Cache::default(), q("www.a.test.", RecordType::A));
    assert_eq!(a_records(&r.outcome), ["192.0.2.1"], "{:?}", r.outcome);
    assert!(r.events.iter().any(|e| matches!(
        e,
        HopEvent::Reply {
            kind: ReplyKind::Lame(_),
            ..
        }
    )));
    // No other server: SERVFAIL, not NODATA.
    w.on("10.2.0.2", "www.a.test.", RecordType::A, reply(up));
    let r = run(&w, &Cache::default(), q("www.a.test.", RecordType::A));
    assert!(
        matches!(
            r.outcome,
            Outcome::ServFail(Failure::ServersExhausted { .. })
        ),
        "{:?}",
        r.outcome
    );
}

// 5. Records of the wrong type only.

#[test]
fn records_of_another_type_only_are_nodata_and_nothing_is_cached() {
    for aa in [true, false] {
        let w = a_test(&["www.a.test."]);
        let mut m = s::answer(vec![a("www.a.test.", "192.0.2.1")]);
        m.metadata.authoritative = aa;
        w.on("10.2.0.1", "www.a.test.", RecordType::AAAA, reply(m));
        let cache = Cache::default();
        let r = run(&w, &cache, q("www.a.test.", RecordType::AAAA));
        assert!(
            matches!(&r.outcome, Outcome::NoData { answers, soa: None } if answers.is_empty()),
            "aa={aa}: {:?}",
            r.outcome
        );
        assert_eq!(
            cache
                .answers
                .get(&q("www.a.test.", RecordType::A), super::NOW),
            None
        );
        assert_eq!(
            cache
                .answers
                .get(&q("www.a.test.", RecordType::AAAA), super::NOW),
            None
        );
    }
}

// 6. Parent glue against the child's own addresses (Unbound's parent-side fallback).

/// a.test.'s parent gives ns.a.test glue 10.2.0.1; the child says ns.a.test is 10.2.0.7.
fn parent_child_world() -> Scripted {
    let w = a_test(&["www.a.test.", "ns.a.test."]);
    for srv in ["10.2.0.1", "10.2.0.7"] {
        w.on(
            srv,
            "ns.a.test.",
            RecordType::A,
            reply(s::answer(vec![a("ns.a.test.", "10.2.0.7")])),
        );
        w.on(
            srv,
            "www.a.test.",
            RecordType::A,
            reply(s::answer(vec![a("www.a.test.", "192.0.2.1")])),
        );
    }
    w
}

#[test]
fn the_childs_own_ns_addresses_are_preferred_and_the_parents_glue_kept_beside() {
    let w = parent_child_world();
    let cache = Cache::default();
    let r = run(&w, &cache, q("ns.a.test.", RecordType::A));
    assert_eq!(a_records(&r.outcome), ["10.2.0.7"]);
    // The parent's glue has gone dead; the child's address answers.
    w.on("10.2.0.1", "www.a.test.", RecordType::A, Script::Timeout);
    let r = run(&w, &cache, q("www.a.test.", RecordType::A));
    assert_eq!(a_records(&r.outcome), ["192.0.2.1"], "{:?}", r.outcome);
    assert!(!w
        .seen()
        .iter()
        .any(|s| s.name == name("www.a.test.") && s.server.to_string() == "10.2.0.1"));
}

#[test]
fn parent_glue_is_tried_when_the_childs_ns_addresses_fail() {
    for dead in [
        Script::Timeout,
        reply(s::error(ResponseCode::ServFail)),
        reply(s::error(ResponseCode::Refused)),
    ] {
        let w = parent_child_world();
        let cache = Cache::default();
        run(&w, &cache, q("ns.a.test.", RecordType::A));
        w.on("10.2.0.7", "www.a.test.", RecordType::A, dead.clone());
        let r = run(&w, &cache, q("www.a.test.", RecordType::A));
        assert_eq!(
            a_records(&r.outcome),
            ["192.0.2.1"],
            "{dead:?}: {:?}",
            r.outcome
        );
        let asked: Vec<String> = w
            .seen()
            .iter()
            .filter(|s| s.name == name("www.a.test."))
            .map(|s| s.server.to_string())
            .collect();
        assert_eq!(
            asked.first().map(String::as_str),
            Some("10.2.0.7"),
            "{asked:?}"
        );
        assert_eq!(
            asked.last().map(String::as_str),
            Some("10.2.0.1"),
            "{asked:?}"
        );
    }
}

#[test]
fn parent_glue_is_used_when_the_child_denies_its_ns_or_sub_delegates_it() {
    let bogus = s::referral("ns.a.test.", &[("ns.nowhere.invalid.", None)]);
    for denial in [reply(s::nxdomain("a.test.")), reply(bogus)] {
        let w = parent_child_world();
        w.on("10.2.0.1", "ns.a.test.", RecordType::A, denial.clone());
        let cache = Cache::default();
        let r = run(&w, &cache, q("ns.a.test.", RecordType::A));
        assert!(
            !matches!(r.outcome, Outcome::Answer { .. }),
            "{:?}",
            r.outcome
        );
        let r = run(&w, &cache, q("www.a.test.", RecordType::A));
        assert_eq!(
            a_records(&r.outcome),
            ["192.0.2.1"],
            "{denial:?}: {:?}",
            r.outcome
        );
    }
}

// 7. Self-referring servers.

#[test]
fn self_referring_server_is_skipped_and_the_cuts_glueless_servers_still_tried() {
    for aa in [false, true] {
        let w = world();
        delegate(
            &w,
            &["www.a.test."],
            "a.test.",
            &[("ns1.a.test.", Some("10.2.0.1")), ("ns.b.test.", None)],
        );
        let mut selfref = s::referral("a.test.", &[("ns1.a.test.", Some("10.2.0.1"))]);
        selfref.metadata.authoritative = aa;
        w.on("10.2.0.1", "www.a.test.", RecordType::A, reply(selfref));
        delegate(
            &w,
            &["ns.b.test."],
            "b.test.",
            &[("ns.b.test.", Some("10.2.0.2"))],
        );
        serve_a(&w, "10.2.0.2", "ns.b.test.", "10.2.0.2");
        serve_a(&w, "10.2.0.2", "www.a.test.", "192.0.2.1");
        let r = run(&w, &Cache::default(), q("www.a.test.", RecordType::A));
        assert_eq!(
            a_records(&r.outcome),
            ["192.0.2.1"],
            "aa={aa}: {:?}",
            r.outcome
        );
    }
}

// 8. DNAME (RFC 6672).

fn dname_world() -> Scripted {
    let w = world();
    delegate(
        &w,
        &["www.old.test."],
        "old.test.",
        &[("ns.old.test.", Some("10.2.0.1"))],
    );
    delegate(
        &w,
        &["www.new.test."],
        "new.test.",
        &[("ns.new.test.", Some("10.2.0.2"))],
    );
    w.on(
        "10.2.0.1",
        "www.old.test.",
        RecordType::A,
        reply(s::answer(vec![dname("old.test.", "new.test.")])),
    );
    serve_a(&w, "10.2.0.2", "www.new.test.", "192.0.2.9");
    w
}

/// RFC 6672 §3.4: the DNAME first, then the synthesised CNAME, then the target's records,
/// whether the server sent its own CNAME beside the DNAME or not; and from the cache, for the
/// same name and for another one below the DNAME (§3.3).
#[test]
fn dname_answer_carries_the_dname_then_the_cname_fresh_and_from_cache() {
    let with_cname = dname_world();
    with_cname.on(
        "10.2.0.1",
        "www.old.test.",
        RecordType::A,
        reply(s::answer(vec![
            dname("old.test.", "new.test."),
            s::rec("www.old.test.", 300, s::cname("www.new.test.")),
        ])),
    );
    for w in [dname_world(), with_cname] {
        let cache = Cache::default();
        for round in ["fresh", "cached"] {
            let r = run(&w, &cache, q("www.old.test.", RecordType::A));
            let types: Vec<RecordType> = r
                .outcome
                .answers()
                .iter()
                .map(|r| r.record_type())
                .collect();
            assert_eq!(
                types,
                [RecordType::DNAME, RecordType::CNAME, RecordType::A],
                "{round}: {:?}",
                r.outcome
            );
            if round == "cached" {
                assert_eq!(r.sent, 0);
            }
        }
        // Another name below the DNAME: rewritten from the cache, only its target is asked.
        serve_a(&w, "10.2.0.2", "mail.new.test.", "192.0.2.10");
        delegate(
            &w,
            &["mail.new.test."],
            "new.test.",
            &[("ns.new.test.", Some("10.2.0.2"))],
        );
        let before = w.seen().len();
        let r = run(&w, &cache, q("mail.old.test.", RecordType::A));
        assert_eq!(a_records(&r.outcome), ["192.0.2.10"], "{:?}", r.outcome);
        assert!(
            !w.seen()[before..]
                .iter()
                .any(|s| s.name == name("mail.old.test.")),
            "the DNAME came from the cache"
        );
        assert_eq!(r.outcome.answers()[0].record_type(), RecordType::DNAME);
    }
}

/// RFC 6672 §2.2: YXDOMAIN when the substituted name would pass 255 octets. It is the
/// authority's final word, passed on with the DNAME, not a server failure.
#[test]
fn yxdomain_after_a_dname_is_a_final_answer_with_the_dname() {
    let w = dname_world();
    // 4 labels of 60 octets under test.: 250 octets; a 9-octet label in front passes 255.
    let long = format!("{}test.", format!("{}.", "x".repeat(60)).repeat(4));
    let qname = "wwwwwwww.old.test.";
    delegate(
        &w,
        &[qname],
        "old.test.",
        &[("ns.old.test.", Some("10.2.0.1"))],
    );
    let mut m = s::answer(vec![dname("old.test.", &long)]);
    m.metadata.response_code = ResponseCode::YXDomain;
    w.on("10.2.0.1", qname, RecordType::A, reply(m));
    let r = run(&w, &Cache::default(), q(qname, RecordType::A));
    assert!(
        matches!(&r.outcome, Outcome::YxDomain { answers } if answers.len() == 1
            && answers[0].record_type() == RecordType::DNAME),
        "{:?}",
        r.outcome
    );
    assert_eq!(r.outcome.rcode(), ResponseCode::YXDomain);
}

#[test]
fn trace_prints_dname_data_in_presentation_form() {
    let w = dname_world();
    let r = run(&w, &Cache::default(), q("www.old.test.", RecordType::A));
    let mut out = Vec::new();
    {
        use crate::trace::TraceSink;
        let mut printer = crate::trace::TextPrinter::new(&mut out);
        r.events.iter().for_each(|e| printer.event(e));
    }
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("old.test. 300 IN DNAME new.test."), "{text}");
}

// 9. QNAME minimisation, relaxed mode (RFC 9156 §2.3 and its note on RFC 8020).

/// a.test.'s server answers the minimised `x.a.test` with `ent`; the full name holds data.
fn min_world(ent: Message) -> Scripted {
    let w = Scripted::new();
    w.default_for(
        "10.0.0.1",
        Script::Reply(s::referral("test.", &[("ns.nic.test.", Some(TLD))])),
    );
    w.default_for(
        TLD,
        Script::Reply(s::referral("a.test.", &[("ns.a.test.", Some("10.2.0.1"))])),
    );
    w.default_for("10.2.0.1", reply(s::nodata("a.test.")));
    for t in [RecordType::A, RecordType::NS] {
        w.on("10.2.0.1", "x.a.test.", t, reply(ent.clone()));
    }
    serve_a(&w, "10.2.0.1", "www.x.a.test.", "192.0.2.7");
    w
}

#[test]
fn minimised_nxdomain_without_aa_or_soa_makes_the_same_server_get_the_full_name() {
    let mut nx = s::error(ResponseCode::NXDomain);
    nx.metadata.authoritative = false;
    let w = min_world(nx);
    let r = run_with(
        &w,
        &Cache::default(),
        q("www.x.a.test.", RecordType::A),
        minimising(MinimiseMode::Relaxed, RecordType::A),
    );
    assert_eq!(a_records(&r.outcome), ["192.0.2.7"], "{:?}", r.outcome);
}

#[test]
fn minimised_reply_repeating_the_zones_own_ns_set_means_no_cut_here() {
    for aa in [false, true] {
        let mut own = s::referral("a.test.", &[("ns.a.test.", Some("10.2.0.1"))]);
        own.metadata.authoritative = aa;
        let w = min_world(own);
        let r = run_with(
            &w,
            &Cache::default(),
            q("www.x.a.test.", RecordType::A),
            minimising(MinimiseMode::Relaxed, RecordType::A),
        );
        assert_eq!(
            a_records(&r.outcome),
            ["192.0.2.7"],
            "aa={aa}: {:?}",
            r.outcome
        );
    }
}

#[test]
fn minimised_empty_answer_without_aa_but_with_the_zone_soa_means_no_cut_here() {
    let w = min_world(non_aa(s::nodata("a.test."), false));
    let r = run_with(
        &w,
        &Cache::default(),
        q("www.x.a.test.", RecordType::A),
        minimising(MinimiseMode::Relaxed, RecordType::A),
    );
    assert_eq!(a_records(&r.outcome), ["192.0.2.7"], "{:?}", r.outcome);
}

// 10. Negative TTL (RFC 2308 §3 and §5).

#[test]
fn negative_ttl_is_min_of_soa_ttl_and_minimum_on_the_soa_the_client_sees() {
    let w = a_test(&["nx.a.test."]);
    let mut nx = s::error(ResponseCode::NXDomain);
    nx.metadata.authoritative = true;
    nx.add_authority(soa_record("a.test.", 3600, 60));
    w.on("10.2.0.1", "nx.a.test.", RecordType::A, reply(nx));
    let cache = Cache::default();
    let r = run(&w, &cache, q("nx.a.test.", RecordType::A));
    assert_eq!(r.outcome.soa().map(|s| s.ttl), Some(60), "{:?}", r.outcome);
    match cache
        .answers
        .get(&q("nx.a.test.", RecordType::A), super::NOW)
    {
        Some(Cached::NxDomain(Some(soa))) => assert_eq!(soa.ttl, 60),
        other => panic!("{other:?}"),
    }
}

// 13. Honest failure reasons.

#[test]
fn delegation_cycle_is_reported_as_a_delegation_loop() {
    let w = world();
    delegate(
        &w,
        &["www.a.test.", "ns.a.test."],
        "a.test.",
        &[("ns.b.test.", None)],
    );
    delegate(&w, &["ns.b.test."], "b.test.", &[("ns.a.test.", None)]);
    let r = run(&w, &Cache::default(), q("www.a.test.", RecordType::A));
    assert!(
        matches!(r.outcome, Outcome::ServFail(Failure::DelegationLoop { .. })),
        "{:?}",
        r.outcome
    );
}
