//! Hardening in the lab (issue 6): QNAME minimisation, 0x20, poisoning defences, attack
//! budgets and fault tolerance. Lab networks 130-159. Upstream query counts come from the
//! lab's query log; each budget test states the bound it checks (docs/security.md).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use hopdns::lab::{Fault, LoggedQuery};
use hopdns::resolver::machine::MinimiseMode;
use hopdns::resolver::Limits;

use crate::util::{answers, Env};

fn ip(env: &Env, host: u8) -> IpAddr {
    IpAddr::V4(env.lab.addr(host))
}

fn asked(log: &[LoggedQuery], env: &Env, host: u8) -> Vec<String> {
    log.iter()
        .filter(|q| q.server == ip(env, host))
        .map(|q| format!("{} {}", q.name.to_lowercase(), q.qtype))
        .collect()
}

/// One client question: its rcode, the time it took and the upstream queries it cost.
async fn cost(env: &Env, name: &str, qtype: RecordType) -> (ResponseCode, Duration, usize) {
    env.lab.clear_query_log();
    let t = Instant::now();
    let m = env.udp(name, qtype).await;
    (
        m.metadata.response_code,
        t.elapsed(),
        env.lab.query_log().len(),
    )
}

// --- QNAME minimisation (RFC 9156) ---

#[tokio::test]
async fn minimised_queries_reveal_one_label_more_per_zone() {
    let env = Env::start(130).await;
    let m = env.udp("www.example.com", RecordType::AAAA).await;
    assert_eq!(answers(&m), ["www.example.com. AAAA 2001:db8::1"]);
    let log = env.lab.query_log();
    let roots: Vec<String> = [1, 2].iter().flat_map(|h| asked(&log, &env, *h)).collect();
    assert_eq!(roots, ["com. A"], "the root learns only the TLD");
    let tld: Vec<String> = [10, 11]
        .iter()
        .flat_map(|h| asked(&log, &env, *h))
        .collect();
    assert_eq!(tld, ["example.com. A"], "com learns only example.com");
    let auth: Vec<String> = [20, 21]
        .iter()
        .flat_map(|h| asked(&log, &env, *h))
        .collect();
    assert_eq!(auth, ["www.example.com. AAAA"]);
    // The trace prints the minimised questions as they were sent.
    let mut out = Vec::new();
    let question =
        hopdns::resolver::Question::new(crate::util::name("www.shop.com"), RecordType::TXT);
    env.resolver
        .resolve_traced(
            &question,
            Some(&mut hopdns::trace::TextPrinter::new(&mut out)),
        )
        .await;
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains(") shop.com. A over UDP"), "{text}");
    assert!(text.contains(") www.shop.com. TXT over UDP"), "{text}");
    env.stop().await;
}

#[tokio::test]
async fn qtype_ns_and_off_are_configurable() {
    let env = Env::start_configured(131, |c| c.settings.minimise_qtype = RecordType::NS).await;
    env.udp("www.example.com", RecordType::A).await;
    let log = env.lab.query_log();
    assert_eq!(asked(&log, &env, 1).len() + asked(&log, &env, 2).len(), 1);
    assert!(log
        .iter()
        .any(|q| q.qtype == RecordType::NS && q.name.to_lowercase().to_string() == "example.com."));
    env.stop().await;
    let env = Env::start_configured(132, |c| c.settings.minimise = MinimiseMode::Off).await;
    env.udp("www.example.com", RecordType::A).await;
    let log = env.lab.query_log();
    assert!(
        log.iter()
            .all(|q| q.name.to_lowercase().to_string() == "www.example.com."),
        "{log:?}"
    );
    env.stop().await;
}

#[tokio::test]
async fn relaxed_mode_falls_back_where_strict_mode_believes_a_broken_nxdomain() {
    let env = Env::start(133).await;
    // deep.ent.shop.com exists below the empty non-terminal ent.shop.com, but shop.com's
    // server says NXDOMAIN for the ENT.
    env.lab
        .set_fault(ip(&env, 26), Some(Fault::NxDomainForNoData));
    let m = env.udp("deep.ent.shop.com", RecordType::A).await;
    assert_eq!(answers(&m), ["deep.ent.shop.com. A 192.0.2.61"]);
    let log = env.lab.query_log();
    assert_eq!(
        asked(&log, &env, 26),
        ["ent.shop.com. A", "deep.ent.shop.com. A"],
        "relaxed: the full name after NXDOMAIN for the minimised one"
    );
    env.lab.set_fault(ip(&env, 26), None);
    // A real NXDOMAIN costs one minimised query and one full query in relaxed mode.
    let (rcode, _, _) = cost(&env, "y.x.shop.com", RecordType::A).await;
    assert_eq!(rcode, ResponseCode::NXDomain);
    let log = env.lab.query_log();
    assert_eq!(asked(&log, &env, 26), ["x.shop.com. A", "y.x.shop.com. A"]);
    env.stop().await;

    let env = Env::start_configured(134, |c| c.settings.minimise = MinimiseMode::Strict).await;
    let m = env.udp("deep.ent.shop.com", RecordType::A).await;
    assert_eq!(
        answers(&m),
        ["deep.ent.shop.com. A 192.0.2.61"],
        "a correct ENT answer"
    );
    let (rcode, _, _) = cost(&env, "y.x.shop.com", RecordType::A).await;
    assert_eq!(rcode, ResponseCode::NXDomain);
    let log = env.lab.query_log();
    assert_eq!(
        asked(&log, &env, 26),
        ["x.shop.com. A"],
        "strict: RFC 8020 cut"
    );
    // Every name below the NXDOMAIN cut is answered from the cache.
    let (rcode, _, n) = cost(&env, "z.y.x.shop.com", RecordType::TXT).await;
    assert_eq!((rcode, n), (ResponseCode::NXDomain, 0));
    env.stop().await;
}

// --- 0x20 ---

#[tokio::test]
async fn upstream_questions_have_random_case_and_a_server_that_lowercases_gets_a_fallback() {
    let env = Env::start(135).await;
    for i in 0..6 {
        env.udp(&format!("nx{i}.example.com"), RecordType::A).await;
    }
    let log = env.lab.query_log();
    let mixed = log
        .iter()
        .filter(|q| q.name.to_string() != q.name.to_lowercase().to_string())
        .count();
    assert!(
        mixed * 2 > log.len(),
        "most upstream names carry random case: {log:?}"
    );

    // shop.com's only server lowercases the question: its first reply is refused at once
    // and it is asked again without 0x20 (remembered in the infra cache), one extra round
    // trip instead of a wait for the timeout (400 ms for an unknown server).
    env.lab
        .set_fault(ip(&env, 26), Some(Fault::LowercaseQuestion));
    env.lab.clear_query_log();
    let t = Instant::now();
    let m = env.udp("www.shop.com", RecordType::A).await;
    assert_eq!(answers(&m), ["www.shop.com. A 192.0.2.60"]);
    assert!(
        t.elapsed() < Duration::from_millis(390),
        "no wait for the timeout: {:?}",
        t.elapsed()
    );
    let to_shop = env
        .lab
        .query_log()
        .iter()
        .filter(|q| {
            q.server == ip(&env, 26) && q.name.to_lowercase().to_string() == "www.shop.com."
        })
        .count();
    assert_eq!(to_shop, 2, "one extra query, no more");
    let now = Instant::now();
    assert!(!env.resolver.cache().infra.case_ok(ip(&env, 26), now));
    assert!(env.resolver.cache().infra.case_ok(ip(&env, 10), now));
    env.lab.clear_query_log();
    let t = Instant::now();
    let m = env.udp("nope.shop.com", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(t.elapsed() < Duration::from_millis(300), "no second wait");
    let log = env.lab.query_log();
    assert!(log
        .iter()
        .all(|q| q.name.to_string() == q.name.to_lowercase().to_string()));
    env.stop().await;
}

// --- poisoning ---

#[tokio::test]
async fn out_of_bailiwick_records_are_never_cached_or_served() {
    let env = Env::start(136).await;
    // com's servers add records about other names to their referrals (www.shop.com A is
    // within com's bailiwick but nobody asked; example.net NS is outside it), and
    // example.com's servers add the same to their answers (all outside their bailiwick).
    for h in [10, 11, 20, 21] {
        env.lab.set_fault(ip(&env, h), Some(Fault::ForeignRecords));
    }
    let m = env.udp("www.example.com", RecordType::A).await;
    assert_eq!(
        answers(&m),
        ["www.example.com. A 192.0.2.1"],
        "only in-zone data"
    );
    // The forged www.example.net A, example.net NS and ns1.example.net / www.shop.com
    // glue were neither cached nor used: asking for them goes to their real servers.
    env.lab.clear_query_log();
    let m = env.udp("www.example.net", RecordType::A).await;
    assert_eq!(answers(&m), ["www.example.net. A 192.0.2.22"]);
    assert!(!asked(&env.lab.query_log(), &env, 22).is_empty());
    let m = env.udp("www.shop.com", RecordType::A).await;
    assert_eq!(answers(&m), ["www.shop.com. A 192.0.2.60"]);
    assert!(!asked(&env.lab.query_log(), &env, 26).is_empty());
    env.stop().await;
}

// --- attack budgets ---

/// NXNS (CVE-2020-12662): a referral to 100 glueless NS names under victim.net. Bound:
/// at most `max_ns_lookups` (12) address lookups, and `max_queries` (48) upstream queries
/// in all, per client request.
#[tokio::test]
async fn nxns_referral_with_100_glueless_names_costs_a_bounded_number_of_queries() {
    let env = Env::start(140).await;
    let limits = Limits::default();
    let (rcode, took, total) = cost(&env, "www.attack.nxns.com", RecordType::A).await;
    let log = env.lab.query_log();
    let victim = asked(&log, &env, 43).len();
    println!("NXNS: {total} upstream queries, {victim} to the victim, {took:?}");
    assert_eq!(rcode, ResponseCode::ServFail);
    assert!(victim <= limits.max_ns_lookups, "{victim} victim queries");
    assert!(total <= limits.max_queries, "{total} upstream queries");
    assert!(took < Duration::from_secs(2), "{took:?}");
    env.stop().await;
}

#[tokio::test]
async fn cname_loops_end_in_servfail_within_the_budget() {
    let env = Env::start(141).await;
    for name in ["loop1.loops.com", "self1.loops.com"] {
        let (rcode, took, n) = cost(&env, name, RecordType::A).await;
        println!("CNAME loop {name}: {n} upstream queries, {took:?}");
        assert_eq!(rcode, ResponseCode::ServFail, "{name}");
        assert!(n <= 8, "{name}: {n} queries");
        assert!(took < Duration::from_secs(1), "{name}: {took:?}");
    }
    env.stop().await;
}

#[tokio::test]
async fn endless_wildcard_cname_chain_ends_at_the_chain_budget() {
    let env = Env::start(142).await;
    let max_chain = Limits::default().max_chain;
    let (rcode, took, n) = cost(&env, "start.c1.loops.com", RecordType::A).await;
    println!("wildcard chain: {n} upstream queries, {took:?}");
    assert_eq!(rcode, ResponseCode::ServFail);
    // Each link lives in the other zone: with QNAME minimisation a link costs two queries
    // (the empty non-terminal cN, then the name), so the chain budget, not the query budget,
    // ends it: at most 2 per link plus the walk down to loops.com and loops.net.
    assert!(
        n >= max_chain,
        "{n} queries: ended before the chain budget?"
    );
    assert!(n <= 2 * (max_chain + 1) + 6, "{n} queries");
    assert!(n <= Limits::default().max_queries, "{n} queries");
    assert!(took < Duration::from_secs(1), "{took:?}");
    env.stop().await;
}

#[tokio::test]
async fn delegation_loop_ends_in_servfail_within_the_budget() {
    let env = Env::start(143).await;
    let (rcode, took, n) = cost(&env, "www.a.loops.com", RecordType::A).await;
    println!("delegation loop: {n} upstream queries, {took:?}");
    assert_eq!(rcode, ResponseCode::ServFail);
    assert!(n <= 12, "{n} queries");
    assert!(took < Duration::from_secs(1), "{took:?}");
    env.stop().await;
}

#[tokio::test]
async fn upward_and_self_referrals_end_in_servfail_within_the_budget() {
    let env = Env::start(144).await;
    for fault in [Fault::UpwardReferral, Fault::SelfReferral] {
        env.lab.set_fault(ip(&env, 26), Some(fault.clone()));
        let name = format!("n{}.shop.com", rand::random::<u16>());
        let (rcode, took, n) = cost(&env, &name, RecordType::A).await;
        println!("{fault:?}: {n} upstream queries, {took:?}");
        assert_eq!(rcode, ResponseCode::ServFail, "{fault:?}");
        assert!(n <= 6, "{fault:?}: {n} queries");
        assert!(took < Duration::from_secs(1), "{fault:?}: {took:?}");
    }
    env.stop().await;
}

// --- fault tolerance ---

#[tokio::test]
async fn one_dead_ns_of_three_is_avoided_after_its_first_timeout() {
    let env = Env::start(145).await;
    // faulty.com: .27 drops, .28 (normally REFUSED) made good, .29 good.
    env.lab.set_fault(ip(&env, 28), None);
    env.udp("www.faulty.com", RecordType::A).await; // may meet the dead server once
                                                    // Only the dead server makes an answer slow (its timeout): that it is not asked again
                                                    // says the answers stay fast, without timing them on a loaded machine.
    for i in 0..8 {
        let (rcode, _, _) = cost(&env, &format!("nx{i}.faulty.com"), RecordType::A).await;
        assert_eq!(rcode, ResponseCode::NXDomain);
    }
    let dead = env
        .lab
        .query_log()
        .iter()
        .filter(|q| q.server == ip(&env, 27))
        .count();
    assert_eq!(dead, 0, "the dead server is not asked again");
    env.stop().await;
}

#[tokio::test]
async fn all_ns_dead_gives_servfail_or_a_stale_answer() {
    let env = Env::start(146).await;
    let m = env.udp("ttl5.example.com", RecordType::A).await;
    assert_eq!(answers(&m), ["ttl5.example.com. A 192.0.2.5"]);
    for h in [20, 21] {
        env.lab.set_fault(ip(&env, h), Some(Fault::Drop));
    }
    let m = env.udp("www.example.com", RecordType::A).await;
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::ServFail,
        "nothing cached"
    );
    env.clock.advance(Duration::from_secs(6)); // ttl5 expires
    let m = env.udp("ttl5.example.com", RecordType::A).await;
    assert_eq!(
        answers(&m),
        ["ttl5.example.com. A 192.0.2.5"],
        "served stale"
    );
    assert_eq!(m.answers[0].ttl, 30, "RFC 8767 stale TTL");
    env.stop().await;
}

#[tokio::test]
async fn the_faster_of_two_servers_is_preferred() {
    let env = Env::start(147).await;
    // 300 ms: well clear of the RTT band (50 ms) even when a loaded test machine adds tens
    // of milliseconds to the fast server's replies (150 ms was not), and still under the
    // 400 ms initial timeout, so the slow server is measured as slow, not dead.
    env.lab
        .set_fault(ip(&env, 20), Some(Fault::Delay(Duration::from_millis(300))));
    env.udp("www.example.com", RecordType::A).await;
    env.lab.clear_query_log();
    for i in 0..10 {
        env.udp(&format!("nx{i}.example.com"), RecordType::A).await;
    }
    let log = env.lab.query_log();
    let (slow, fast) = (asked(&log, &env, 20).len(), asked(&log, &env, 21).len());
    println!("slow server: {slow} queries, fast server: {fast}");
    assert!(fast >= 9, "slow {slow}, fast {fast}");
    env.stop().await;
}

#[tokio::test]
async fn truncated_reply_then_tcp_reset_moves_to_the_next_server() {
    let env = Env::start(148).await;
    env.lab
        .set_fault(ip(&env, 20), Some(Fault::TruncateTcpReset));
    env.lab
        .set_fault(ip(&env, 21), Some(Fault::TruncateTcpReset));
    let (rcode, took, _) = cost(&env, "big.example.com", RecordType::TXT).await;
    assert_eq!(rcode, ResponseCode::ServFail, "both reset TCP");
    assert!(
        took < Duration::from_secs(1),
        "a reset is no timeout: {took:?}"
    );
    env.lab.set_fault(ip(&env, 21), Some(Fault::Truncate));
    env.clock.advance(Duration::from_secs(6)); // past the RFC 9520 failure cache (5 s)
    let m = env.tcp("big.example.com", RecordType::TXT).await;
    assert_eq!(m.answers.len(), 8, "complete over TCP from .21");
    assert!(env
        .lab
        .query_log()
        .iter()
        .any(|q| q.tcp && q.server == ip(&env, 21)));
    env.stop().await;
}

#[tokio::test]
async fn malformed_and_mismatched_replies_move_to_the_other_server() {
    let env = Env::start(149).await;
    for (fault, name, other) in [
        (Fault::Malformed, "www.example.com", "v4only.example.com"),
        (
            Fault::WrongQuestion,
            "alias.example.com",
            "nope.example.com",
        ),
    ] {
        env.lab.set_fault(ip(&env, 20), Some(fault.clone()));
        env.lab.set_fault(ip(&env, 21), None);
        let m = env.udp(name, RecordType::A).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{fault:?}");
        assert!(answers(&m).contains(&"www.example.com. A 192.0.2.1".to_string()));
        // Only the broken server left: SERVFAIL, never its data.
        env.lab.set_fault(ip(&env, 21), Some(fault.clone()));
        let (rcode, _, _) = cost(&env, other, RecordType::A).await;
        assert_eq!(rcode, ResponseCode::ServFail, "{fault:?}");
    }
    env.stop().await;
}

// --- Kaminsky-style race ---

/// What the forger did.
#[derive(Debug, Default)]
struct ForgeStats {
    /// Forged replies sent.
    attempts: u64,
    /// Distinct resolver ports seen waiting on an example.com server and aimed at.
    ports: usize,
}

/// The forger: reads which of the resolver's UDP sockets wait on example.com's servers
/// (from /proc/net/udp: a stronger attacker than a real one, who must guess the port too)
/// and floods each with replies forged from the server's address and port 53, with random
/// IDs, for every name in flight, saying `198.51.100.66`. A raw socket (root) sets the
/// forged source; everything stays on 127.53.net.0/24, and it stops after `budget`
/// packets or when `stop` is set.
fn forge(
    net: u8,
    names: Vec<String>,
    budget: u64,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> ForgeStats {
    use hickory_proto::op::{Message, MessageType, OpCode, Query};
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{Name, RData, Record};
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    use std::collections::HashSet;
    use std::net::{Ipv4Addr, SocketAddrV4};
    use std::sync::atomic::Ordering;

    let servers = [
        Ipv4Addr::new(127, 53, net, 20),
        Ipv4Addr::new(127, 53, net, 21),
    ];
    // IPPROTO_RAW (255) implies IP_HDRINCL: we write the IP header, forged source included.
    let raw = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(255)))
        .expect("a raw socket (tests run as root)");
    let templates: Vec<Vec<u8>> = names
        .iter()
        .map(|n| {
            let name = Name::from_ascii(format!("{n}.")).unwrap();
            let mut m = Message::new(0, MessageType::Response, OpCode::Query);
            m.metadata.authoritative = true;
            m.add_query(Query::query(name.clone(), RecordType::A));
            m.add_answer(Record::from_rdata(
                name,
                86400,
                RData::A(A::new(198, 51, 100, 66)),
            ));
            m.to_vec().unwrap()
        })
        .collect();
    let mut stats = ForgeStats::default();
    let mut seen_ports = HashSet::new();
    let started = Instant::now();
    while stats.attempts < budget
        && !stop.load(Ordering::Relaxed)
        && started.elapsed() < Duration::from_secs(20)
    {
        let waiting = waiting_sockets(&servers);
        if waiting.is_empty() {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        for &(local, port, server) in &waiting {
            seen_ports.insert(port);
            for t in &templates {
                for _ in 0..16 {
                    let mut dns = t.clone();
                    dns[..2].copy_from_slice(&rand::random::<u16>().to_be_bytes());
                    let packet = ip_udp(server, local, port, &dns);
                    let to = SockAddr::from(SocketAddrV4::new(local, 0));
                    if raw.send_to(&packet, &to).is_ok() {
                        stats.attempts += 1;
                    }
                }
            }
        }
    }
    stats.ports = seen_ports.len();
    stats
}

/// (local address, local port, server) of UDP sockets connected to one of `servers`:53.
fn waiting_sockets(
    servers: &[std::net::Ipv4Addr],
) -> Vec<(std::net::Ipv4Addr, u16, std::net::Ipv4Addr)> {
    let parse = |s: &str| -> Option<(std::net::Ipv4Addr, u16)> {
        let (ip, port) = s.split_once(':')?;
        let ip = u32::from_str_radix(ip, 16).ok()?;
        Some((ip.to_le_bytes().into(), u16::from_str_radix(port, 16).ok()?))
    };
    let text = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut f = line.split_whitespace().skip(1);
            let (local, port) = parse(f.next()?)?;
            let (remote, rport) = parse(f.next()?)?;
            (rport == 53 && servers.contains(&remote)).then_some((local, port, remote))
        })
        .collect()
}

/// An IPv4 + UDP packet (UDP checksum 0: none, allowed over IPv4; the kernel fills in the
/// IP checksum and length).
fn ip_udp(src: std::net::Ipv4Addr, dst: std::net::Ipv4Addr, dport: u16, dns: &[u8]) -> Vec<u8> {
    let udp_len = 8 + dns.len();
    let total = 20 + udp_len;
    let mut p = Vec::with_capacity(total);
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&53u16.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&(udp_len as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(dns);
    p
}

/// A flood of forged answers for random subdomains of example.com while queries for them
/// are in flight (the authorities are slowed to 250 ms to hold the window open). Bounded:
/// 4 rounds of 16 names, at most 200,000 forged packets. Poisoned entries must be 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kaminsky_race_poisons_nothing() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let env = Env::start(150).await;
    // Control: a forged packet does reach a UDP socket connected to the server it imitates.
    {
        use socket2::{Domain, Protocol, SockAddr, Socket, Type};
        let server = env.lab.addr(20);
        let victim = std::net::UdpSocket::bind((env.lab.addr(254), 0)).unwrap();
        victim.connect((server, 53)).unwrap();
        victim
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let port = victim.local_addr().unwrap().port();
        let raw = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(255))).unwrap();
        let packet = ip_udp(server, env.lab.addr(254), port, b"forged");
        let to = SockAddr::from(std::net::SocketAddrV4::new(env.lab.addr(254), 0));
        raw.send_to(&packet, &to).unwrap();
        let mut buf = [0u8; 64];
        let n = victim.recv(&mut buf).expect("the forged packet arrives");
        assert_eq!(&buf[..n], b"forged");
    }
    for h in [20, 21] {
        env.lab
            .set_fault(ip(&env, h), Some(Fault::Delay(Duration::from_millis(250))));
    }
    let mut attempts = 0;
    let mut ports = 0;
    let mut poisoned = 0;
    let mut all_names = Vec::new();
    for round in 0..4 {
        let names: Vec<String> = (0..16)
            .map(|i| format!("k{:08x}-{round}-{i}.example.com", rand::random::<u32>()))
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let forger = {
            let (names, stop, net) = (names.clone(), stop.clone(), env.lab.net());
            std::thread::spawn(move || forge(net, names, 50_000, stop))
        };
        let mut clients = tokio::task::JoinSet::new();
        for n in &names {
            let (addr, n) = (env.addr, n.clone());
            clients
                .spawn(async move { crate::util::udp(addr, &n, RecordType::A, Some(1232)).await });
        }
        while let Some(m) = clients.join_next().await {
            let m = m.unwrap();
            if answers(&m).iter().any(|a| a.contains("198.51.100.66")) {
                poisoned += 1;
            }
        }
        stop.store(true, Ordering::Relaxed);
        let stats = forger.join().unwrap();
        attempts += stats.attempts;
        ports += stats.ports;
        all_names.extend(names);
    }
    // What the cache now holds for every name: asked again, nothing may be forged.
    for n in &all_names {
        let m = env.udp(n, RecordType::A).await;
        if answers(&m).iter().any(|a| a.contains("198.51.100.66")) {
            poisoned += 1;
        }
    }
    println!(
        "Kaminsky race: {attempts} forged replies at {ports} resolver ports for {} names; \
         {poisoned} poisoned",
        all_names.len()
    );
    assert!(attempts > 1_000, "the forger ran ({attempts} packets)");
    assert_eq!(poisoned, 0);
    env.stop().await;
}
