//! What a client that sets DO gets (issue 14.4; RFC 4035 §3.2.1, §3.1.3): the RRSIGs after
//! each answer RRset and, for NXDOMAIN, NODATA and wildcard answers, the SOA's RRSIG and the
//! NSEC/NSEC3 proof in the authority section, resolved and from the cache alike; a client
//! without DO gets none of them. Lab networks 226-229.

use std::net::SocketAddr;

use hickory_proto::op::{Edns, Message, ResponseCode};
use hickory_proto::rr::{Record, RecordType};
use hopdns::dns::rrsig_covers;

use crate::util::Env;

/// One UDP query with EDNS (DO as given) and CD as given.
async fn ask(
    addr: SocketAddr,
    qname: &str,
    qtype: RecordType,
    dnssec_ok: bool,
    cd: bool,
) -> Message {
    let mut q = crate::util::query(qname, qtype, None);
    q.metadata.checking_disabled = cd;
    let mut e = Edns::new();
    e.set_max_payload(4096).set_dnssec_ok(dnssec_ok);
    q.set_edns(e);
    let m = crate::util::udp_message(addr, &q).await;
    assert!(!m.metadata.truncation, "{qname}: truncated");
    m
}

/// A section as `TYPE` or `RRSIG(COVERED)` strings, in order.
fn shape(section: &[Record]) -> Vec<String> {
    section
        .iter()
        .map(|r| match rrsig_covers(r) {
            Some(t) => format!("RRSIG({t})"),
            None => r.record_type().to_string(),
        })
        .collect()
}

fn has(section: &[Record], what: &str) -> bool {
    shape(section).iter().any(|s| s == what)
}

/// A DO reply to `qname`: answer RRSIGs and authority proof as expected, DO echoed.
fn check_signed(m: &Message, qname: &str, answer: &[&str], authority: &[&str]) {
    assert_eq!(shape(&m.answers), answer, "{qname}: answer section");
    for want in authority {
        assert!(
            has(&m.authorities, want),
            "{qname}: no {want} in the authority section {:?}",
            shape(&m.authorities)
        );
    }
    assert!(
        m.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok),
        "{qname}: DO copied into the reply (RFC 3225 §3)"
    );
}

/// The same question without DO: no RRSIG, NSEC or NSEC3 anywhere.
fn check_plain(m: &Message, qname: &str) {
    for r in m.answers.iter().chain(&m.authorities) {
        assert!(
            !matches!(
                r.record_type(),
                RecordType::RRSIG | RecordType::NSEC | RecordType::NSEC3
            ),
            "{qname}: {r} to a client without DO"
        );
    }
}

/// A question, its rcode, and the answer and authority shapes a DO client gets.
type Case = (
    &'static str,
    RecordType,
    ResponseCode,
    &'static [&'static str],
    &'static [&'static str],
);

/// Secure answers (NSEC and NSEC3 zones), NXDOMAIN, NODATA and wildcard answers with their
/// proofs for DO clients, on the resolved reply and on the cached one (no upstream query),
/// none of it without DO, and AD as before.
#[tokio::test]
async fn do_clients_get_rrsigs_and_denial_proofs() {
    let env = Env::start_validating(226).await;
    let cases: &[Case] = &[
        (
            "www.secure.net.",
            RecordType::A,
            ResponseCode::NoError,
            &["A", "RRSIG(A)"],
            &[],
        ),
        (
            "nope.secure.net.",
            RecordType::A,
            ResponseCode::NXDomain,
            &[],
            &["SOA", "RRSIG(SOA)", "NSEC", "RRSIG(NSEC)"],
        ),
        (
            "www.secure.net.",
            RecordType::AAAA,
            ResponseCode::NoError,
            &[],
            &["SOA", "RRSIG(SOA)", "NSEC", "RRSIG(NSEC)"],
        ),
        (
            "x.wild.secure.net.",
            RecordType::A,
            ResponseCode::NoError,
            &["A", "RRSIG(A)"],
            &["NSEC", "RRSIG(NSEC)"],
        ),
        (
            "nope.secure.org.",
            RecordType::A,
            ResponseCode::NXDomain,
            &[],
            &["SOA", "RRSIG(SOA)", "NSEC3", "RRSIG(NSEC3)"],
        ),
        (
            "x.wild.secure.org.",
            RecordType::A,
            ResponseCode::NoError,
            &["A", "RRSIG(A)"],
            &["NSEC3", "RRSIG(NSEC3)"],
        ),
    ];
    for round in ["resolved", "cached"] {
        env.lab.clear_query_log();
        for (qname, qtype, rcode, answer, authority) in cases {
            let what = format!("{round} {qname} {qtype}");
            let m = ask(env.addr, qname, *qtype, true, false).await;
            assert_eq!(m.metadata.response_code, *rcode, "{what}");
            assert!(m.metadata.authentic_data, "{what}: secure, asked with DO");
            check_signed(&m, &what, answer, authority);
            let m = ask(env.addr, qname, *qtype, false, false).await;
            assert_eq!(m.metadata.response_code, *rcode, "{what}");
            check_plain(&m, &what);
        }
        if round == "cached" {
            assert_eq!(
                env.lab.query_log().len(),
                0,
                "DO and plain replies both from the cache: {:?}",
                env.lab.query_log()
            );
        }
    }
    // The wildcard's RRSIG says it was expanded (RFC 4035 §5.3.4: fewer labels than its
    // owner), which is why the NSEC proof comes with it.
    let m = ask(env.addr, "x.wild.secure.net.", RecordType::A, true, false).await;
    let sig = m
        .answers
        .iter()
        .find(|r| rrsig_covers(r).is_some())
        .unwrap();
    let hickory_proto::rr::RData::DNSSEC(hickory_proto::dnssec::rdata::DNSSECRData::RRSIG(s)) =
        &sig.data
    else {
        panic!("{sig}")
    };
    assert!(s.input().num_labels < sig.name.num_labels(), "{sig}");
    env.stop().await;
}

/// The general path (TCP: it never reads the message cache) gives DO clients the same
/// sections; a CD+DO client gets bogus data with
/// its (expired) RRSIGs and without AD, and insecure-but-signed data keeps its proof.
#[tokio::test]
async fn do_over_tcp_with_cd_and_for_insecure_signed_data() {
    let env = Env::start_validating(227).await;
    // TCP with DO: the general path builds the sections (src/server/request.rs).
    let mut q = crate::util::query("nope.secure.net.", RecordType::A, None);
    let mut e = Edns::new();
    e.set_max_payload(1232).set_dnssec_ok(true);
    q.set_edns(e);
    let m = crate::util::tcp_message(env.addr, &q).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    check_signed(
        &m,
        "tcp",
        &[],
        &["SOA", "RRSIG(SOA)", "NSEC", "RRSIG(NSEC)"],
    );
    // CD+DO: the expired signature is given as it came, unchecked, without AD.
    let m = ask(env.addr, "www.expired.net.", RecordType::A, true, true).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(!m.metadata.authentic_data && m.metadata.checking_disabled);
    check_signed(&m, "cd", &["A", "RRSIG(A)"], &[]);
    // Without CD the same name is still SERVFAIL (CD data is kept apart).
    let m = ask(env.addr, "www.expired.net.", RecordType::A, true, false).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(m.answers.is_empty());
    // NSEC3 with 500 iterations: the denial is insecure (RFC 9276), but the proof the zone
    // sent still goes to a DO client, without AD.
    let m = ask(env.addr, "nope.iter500.org.", RecordType::A, true, false).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(!m.metadata.authentic_data);
    check_signed(
        &m,
        "iter500",
        &[],
        &["SOA", "RRSIG(SOA)", "NSEC3", "RRSIG(NSEC3)"],
    );
    // Unsigned data has nothing to add.
    let m = ask(env.addr, "www.insecure.net.", RecordType::A, true, false).await;
    assert_eq!(shape(&m.answers), ["A"]);
    env.stop().await;
}

/// RFC 8198 aggressive use of the DNSSEC-validated cache: after one validated NXDOMAIN in
/// secure.net (NSEC), another name in the same range is NXDOMAIN with AD and its proof at
/// once, without any upstream query; after a validated NODATA, another missing type at the
/// name is NODATA likewise; each counted in `hopdns_aggressive_nsec_total`. Never for a CD
/// query, and never from an insecure zone.
#[tokio::test]
async fn aggressive_nsec_answers_from_validated_ranges_only() {
    use hopdns::metrics::{metrics, Aggressive};
    let env = Env::start_validating(228).await;
    let m = ask(env.addr, "nope.secure.net.", RecordType::A, true, false).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.metadata.authentic_data);
    let nx = metrics().aggressive_nsec_count(Aggressive::NxDomain);
    env.lab.clear_query_log();
    // "a" sorts between the apex and ns1, as "nope" does: the apex NSEC covers it and
    // *.secure.net.
    let m = ask(env.addr, "a.secure.net.", RecordType::A, true, false).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.metadata.authentic_data, "secure, as validated data");
    check_signed(
        &m,
        "synthesised",
        &[],
        &["SOA", "RRSIG(SOA)", "NSEC", "RRSIG(NSEC)"],
    );
    let soa = m
        .authorities
        .iter()
        .find(|r| r.record_type() == RecordType::SOA);
    assert!(
        soa.is_some_and(|s| s.ttl <= 300),
        "TTL within the SOA MINIMUM: {soa:?}"
    );
    assert_eq!(env.lab.query_log().len(), 0, "{:?}", env.lab.query_log());
    assert!(metrics().aggressive_nsec_count(Aggressive::NxDomain) > nx);
    // Without DO: the same NXDOMAIN (and AD when asked for), no proof.
    let m = ask(env.addr, "b.secure.net.", RecordType::A, false, false).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    check_plain(&m, "synthesised, no DO");
    assert_eq!(env.lab.query_log().len(), 0, "{:?}", env.lab.query_log());

    // NODATA: www has A and TXT; its NSEC says no AAAA, and no MX either.
    let m = ask(env.addr, "www.secure.net.", RecordType::AAAA, true, false).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    let nodata = metrics().aggressive_nsec_count(Aggressive::NoData);
    env.lab.clear_query_log();
    let m = ask(env.addr, "www.secure.net.", RecordType::MX, true, false).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty() && m.metadata.authentic_data);
    check_signed(
        &m,
        "nodata",
        &[],
        &["SOA", "RRSIG(SOA)", "NSEC", "RRSIG(NSEC)"],
    );
    assert_eq!(env.lab.query_log().len(), 0, "{:?}", env.lab.query_log());
    assert!(metrics().aggressive_nsec_count(Aggressive::NoData) > nodata);
    // The types the NSEC lists are never denied: TXT is asked for and answered.
    let m = ask(env.addr, "www.secure.net.", RecordType::TXT, false, false).await;
    assert_eq!(crate::util::answers(&m).len(), 1, "{m:?}");

    // CD: asked upstream, not synthesised (RFC 8198 is about validated answers).
    env.lab.clear_query_log();
    let m = ask(env.addr, "c.secure.net.", RecordType::A, false, true).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(!env.lab.query_log().is_empty(), "a CD query goes upstream");

    // An insecure zone: its NXDOMAIN is never kept as a range, so every name is asked.
    let m = ask(env.addr, "nope.insecure.net.", RecordType::A, true, false).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(!m.metadata.authentic_data);
    env.lab.clear_query_log();
    let m = ask(env.addr, "nope2.insecure.net.", RecordType::A, true, false).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(!m.metadata.authentic_data);
    assert!(
        !env.lab.query_log().is_empty(),
        "insecure data is never synthesised from"
    );
    env.stop().await;
}

/// RFC 8198 §5.2 with NSEC3 (secure.org): once the chain's ranges are cached from validated
/// NXDOMAINs, further names are NXDOMAIN with AD and their NSEC3 proof without asking; an
/// opt-out zone (optout.com) is never synthesised from (§6), its denials being insecure.
#[tokio::test]
async fn aggressive_nsec3_answers_from_a_validated_chain_but_never_from_opt_out() {
    use hopdns::metrics::{metrics, Aggressive};
    let env = Env::start_validating(229).await;
    let mut synthesised = 0;
    for i in 0..24 {
        let qname = format!("n{i}.secure.org.");
        env.lab.clear_query_log();
        let before = metrics().aggressive_nsec_count(Aggressive::NxDomain);
        let m = ask(env.addr, &qname, RecordType::A, true, false).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{qname}");
        assert!(m.metadata.authentic_data, "{qname}");
        check_signed(
            &m,
            &qname,
            &[],
            &["SOA", "RRSIG(SOA)", "NSEC3", "RRSIG(NSEC3)"],
        );
        if env.lab.query_log().is_empty() {
            synthesised += 1;
            assert!(metrics().aggressive_nsec_count(Aggressive::NxDomain) > before);
            let n = m
                .authorities
                .iter()
                .filter(|r| r.record_type() == RecordType::NSEC3)
                .count();
            assert!(
                (1..=3).contains(&n),
                "{qname}: {n} NSEC3, not the whole chain"
            );
        }
    }
    assert!(
        synthesised >= 12,
        "the chain's ranges answer most names once learnt: {synthesised} of 24"
    );
    for i in 0..6 {
        let qname = format!("n{i}.optout.com.");
        env.lab.clear_query_log();
        let m = ask(env.addr, &qname, RecordType::A, true, false).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{qname}");
        assert!(
            !env.lab.query_log().is_empty(),
            "{qname}: an opt-out span never proves NXDOMAIN"
        );
    }
    env.stop().await;
}
