//! One test per lab case: hopdns answers over real UDP and TCP, asserting the answer section,
//! the rcode and the flags exactly. Each test owns lab network 127.53.N.0/24 (N = 1..=29).

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::util::{answers, flags, udp, Env};

/// Minimal replies (Unbound's default): QR RD RA, never AA, OPT only because we sent EDNS.
fn assert_minimal(m: &hickory_proto::op::Message) {
    assert_eq!(flags(m), "qr rd ra");
    assert!(m.additionals.is_empty(), "no additional records but OPT");
    assert!(m.edns.is_some(), "OPT answers OPT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_bailiwick_glue_walks_root_tld_authoritative() {
    let env = Env::start(1).await;
    let m = env.udp("www.example.com", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(answers(&m), ["www.example.com. A 192.0.2.1"]);
    assert!(m.authorities.is_empty());
    assert_minimal(&m);
    // The walk asked a root server, a com server, then an example.com server, in that order.
    let asked: Vec<u8> = env
        .lab
        .query_log()
        .iter()
        .map(|q| match q.server {
            std::net::IpAddr::V4(v4) => v4.octets()[3],
            _ => 0,
        })
        .collect();
    assert_eq!(asked.len(), 3, "{asked:?}");
    assert!(
        [1, 2].contains(&asked[0]) && [10, 11].contains(&asked[1]) && [20, 21].contains(&asked[2]),
        "{asked:?}"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aaaa_answer() {
    let env = Env::start(2).await;
    let m = env.udp("www.example.com", RecordType::AAAA).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(answers(&m), ["www.example.com. AAAA 2001:db8::1"]);
    assert_minimal(&m);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cname_chain_across_four_zones() {
    let env = Env::start(3).await;
    let m = env.udp("chain.example.com", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        answers(&m),
        [
            "chain.example.com. CNAME c2.example.net.",
            "c2.example.net. CNAME c3.example.org.",
            "c3.example.org. CNAME www.shop.com.",
            "www.shop.com. A 192.0.2.60",
        ]
    );
    assert_minimal(&m);
    // Served again from cache, whole chain, without asking anyone.
    let before = env.lab.query_log().len();
    let again = env.udp("chain.example.com", RecordType::A).await;
    assert_eq!(answers(&again), answers(&m));
    assert_eq!(
        env.lab.query_log().len(),
        before,
        "the repeat came from cache"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glueless_delegation_resolves_ns_in_another_tld() {
    let env = Env::start(4).await;
    let m = env.udp("www.example.org", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(answers(&m), ["www.example.org. A 192.0.2.30"]);
    assert_minimal(&m);
    let log = env.lab.query_log();
    assert!(
        log.iter().any(
            |q| q.name.to_string().eq_ignore_ascii_case("ns.dnshost.net.")
                && q.qtype == RecordType::A
        ),
        "the glueless NS name was looked up"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nxdomain_with_soa() {
    let env = Env::start(5).await;
    let m = env.udp("nope.example.com", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.answers.is_empty());
    assert_eq!(m.authorities.len(), 1);
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
    assert_eq!(m.authorities[0].name.to_string(), "example.com.");
    assert_minimal(&m);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodata_with_soa() {
    let env = Env::start(6).await;
    let m = env.udp("www.shop.com", RecordType::AAAA).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_eq!(m.authorities.len(), 1);
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
    assert_eq!(m.authorities[0].name.to_string(), "shop.com.");
    assert_minimal(&m);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_answers_any_name() {
    let env = Env::start(7).await;
    for label in ["anything", "x-42", "deep.er"] {
        let qname = format!("{label}.wild.net");
        let m = env.udp(&qname, RecordType::A).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(answers(&m), [format!("{qname}. A 192.0.2.50")]);
        assert_minimal(&m);
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_answer_forces_tc_then_tcp_upstream_and_downstream() {
    let env = Env::start(8).await;
    // Over UDP with a 1232-byte payload the answer does not fit: TC, no records.
    let m = env.udp("big.example.com", RecordType::TXT).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(flags(&m), "qr tc rd ra");
    assert!(m.answers.is_empty());
    // hopdns itself had to ask the authority over TCP after a truncated UDP reply.
    let log = env.lab.query_log();
    let big: Vec<bool> = log
        .iter()
        .filter(|q| q.name.to_string().eq_ignore_ascii_case("big.example.com."))
        .filter(|q| {
            [20, 21]
                .map(|h| std::net::IpAddr::V4(env.lab.addr(h)))
                .contains(&q.server)
        })
        .map(|q| q.tcp)
        .collect();
    assert_eq!(
        big,
        [false, true],
        "UDP, truncated, then TCP to the same server"
    );
    // Over TCP the client gets the whole answer.
    let m = env.tcp("big.example.com", RecordType::TXT).await;
    assert_eq!(flags(&m), "qr rd ra");
    assert_eq!(m.answers.len(), 8, "all eight TXT records");
    assert!(m.to_vec().unwrap().len() > 1232);
    // Without EDNS, a 512-byte limit applies to the client (RFC 1035 §4.2.1).
    let m = crate::util::udp(env.addr, "many.example.com", RecordType::A, None).await;
    assert!(m.metadata.truncation);
    assert!(m.edns.is_none());
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_client_gets_the_same_answers() {
    let env = Env::start(9).await;
    let m = env.tcp("www.example.com", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(answers(&m), ["www.example.com. A 192.0.2.1"]);
    assert_minimal(&m);
    let m = env.tcp("chain.example.com", RecordType::A).await;
    assert_eq!(m.answers.len(), 4);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_ns_times_out_one_is_lame_the_third_answers() {
    let env = Env::start(10).await;
    let m = env.udp("www.faulty.com", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(answers(&m), ["www.faulty.com. A 192.0.2.70"]);
    assert_minimal(&m);
    // Later names in the zone go straight to the server that works: the dead one carries a
    // timeout penalty in the infra cache (or, never asked, scores as unknown, well behind
    // the answering one), so no later name waits for its timeout.
    env.lab.clear_query_log();
    for i in 0..5 {
        let m = env.udp(&format!("n{i}.faulty.com"), RecordType::A).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    }
    let dead = std::net::IpAddr::V4(env.lab.addr(27));
    let log = env.lab.query_log();
    assert!(log.iter().all(|q| q.server != dead), "{log:#?}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_bailiwick_glue_is_not_believed() {
    let env = Env::start(11).await;
    let m = env.udp("www.poison.com", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(answers(&m), ["www.poison.com. A 192.0.2.77"]);
    let poison = env.lab.addr(66);
    assert!(
        !env.lab
            .query_log()
            .iter()
            .any(|q| q.server == std::net::IpAddr::V4(poison)),
        "the lying glue address was never asked"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edns_formerr_server_is_asked_again_without_edns() {
    let env = Env::start(12).await;
    let m = env.udp("www.oldedns.com", RecordType::A).await;
    assert_eq!(answers(&m), ["www.oldedns.com. A 192.0.2.80"]);
    let old = std::net::IpAddr::V4(env.lab.addr(32));
    let to_old: Vec<bool> = env
        .lab
        .query_log()
        .iter()
        .filter(|q| q.server == old)
        .map(|q| q.edns)
        .collect();
    assert_eq!(to_old, [true, false]);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_question_comes_from_cache_with_decremented_ttl() {
    let env = Env::start(13).await;
    let first = env.udp("ttl5.example.com", RecordType::A).await;
    assert_eq!(first.answers[0].ttl, 5);
    let n = env.lab.query_log().len();
    env.clock.advance(std::time::Duration::from_millis(2100));
    let second = env.udp("ttl5.example.com", RecordType::A).await;
    assert_eq!(env.lab.query_log().len(), n, "answered from cache");
    assert!(
        (2..=3).contains(&second.answers[0].ttl),
        "TTL counts down: {}",
        second.answers[0].ttl
    );
    // A sibling name starts at the cached example.com cut: one query, to example.com's servers.
    env.lab.clear_query_log();
    env.udp("www.example.com", RecordType::A).await;
    let log = env.lab.query_log();
    assert_eq!(log.len(), 1, "{log:?}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_upstream_query_without_a_client_question() {
    let env = Env::start(14).await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(
        env.lab.query_log().is_empty(),
        "nothing sent before a client asks"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priming_replaces_hints_with_the_root_ns_set() {
    let env = Env::start(15).await;
    assert!(env.resolver.prime(None).await);
    let log = env.lab.query_log();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].qtype, RecordType::NS);
    assert!(log[0].name.is_root());
    let m = env.udp("www.example.com", RecordType::A).await;
    assert_eq!(answers(&m), ["www.example.com. A 192.0.2.1"]);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_server_dead_ends_in_servfail_before_the_stub_gives_up() {
    let env = Env::start(16).await;
    for host in [20, 21] {
        env.lab.set_fault(
            std::net::IpAddr::V4(env.lab.addr(host)),
            Some(hopdns::lab::Fault::Drop),
        );
    }
    let started = std::time::Instant::now();
    let m = env.udp("www.example.com", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_replies_are_ignored() {
    use hopdns::lab::Fault;
    let env = Env::start(17).await;
    // Both example.com servers misbehave at the byte level: one answers with a wrong ID, the
    // other from a wrong source address. Neither reply is accepted: SERVFAIL, not a forgery.
    env.lab
        .set_fault(std::net::IpAddr::V4(env.lab.addr(20)), Some(Fault::WrongId));
    env.lab.set_fault(
        std::net::IpAddr::V4(env.lab.addr(21)),
        Some(Fault::WrongSource),
    );
    let m = env.udp("www.example.com", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    // Malformed from one, healthy other: the good answer wins.
    env.lab.set_fault(
        std::net::IpAddr::V4(env.lab.addr(20)),
        Some(Fault::Malformed),
    );
    env.lab
        .set_fault(std::net::IpAddr::V4(env.lab.addr(21)), None);
    // (Another name: the failure of www.example.com is remembered for a few seconds.)
    let m = env.udp("v4only.example.com", RecordType::A).await;
    assert_eq!(answers(&m), ["v4only.example.com. A 192.0.2.3"]);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_question_case_is_echoed() {
    let env = Env::start(18).await;
    let m = udp(env.addr, "WwW.ExAmPlE.CoM", RecordType::A, Some(1232)).await;
    assert!(m.queries[0]
        .name
        .eq_case(&crate::util::name("WwW.ExAmPlE.CoM")));
    assert_eq!(m.answers.len(), 1);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answer_without_aa_from_the_only_server_of_the_zone_is_believed() {
    let env = Env::start(19).await;
    // lame.com's only server answers without AA. RFC 1034 §5.3.3 and RFC 2181 §5.4.1 ask for
    // data from a server of the zone, not for the flag; Unbound and Knot answer too.
    let m = env.udp("www.lame.com", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(answers(&m), ["www.lame.com. A 192.0.2.90"]);
    assert_eq!(flags(&m), "qr rd ra");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_zone_cname_and_nodata_for_other_type() {
    let env = Env::start(20).await;
    let m = env.udp("alias.example.com", RecordType::A).await;
    assert_eq!(
        answers(&m),
        [
            "alias.example.com. CNAME www.example.com.",
            "www.example.com. A 192.0.2.1"
        ]
    );
    let m = env.udp("v4only.example.com", RecordType::AAAA).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
    env.stop().await;
}
