//! Cache behaviour seen from clients. Lab networks 80..=89.

use hickory_proto::rr::RecordType;

use std::time::Duration;

use crate::util::{answers, udp, until, Env};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_identical_questions_cause_one_resolution() {
    let env = Env::start(80).await;
    let addr = env.addr;
    let clients: Vec<_> = (0..100)
        .map(|_| {
            tokio::spawn(
                async move { udp(addr, "chain.example.com", RecordType::A, Some(1232)).await },
            )
        })
        .collect();
    for c in clients {
        let m = c.await.unwrap();
        assert_eq!(answers(&m).last().unwrap(), "www.shop.com. A 192.0.2.60");
    }
    // One walk: root, com, example.com; root, net, example.net; root, org, net (glueless NS),
    // dnshost.net, example.org; com, shop.com = 13 queries, each sent once.
    let log = env.lab.query_log();
    assert_eq!(log.len(), 13, "{log:#?}");
    assert_eq!(env.resolver.in_flight(), 0);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nxdomain_covers_every_type_and_the_names_below_it() {
    use hickory_proto::op::ResponseCode;
    let env = Env::start(81).await;
    let m = env.udp("nope.example.com", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let n = env.lab.query_log().len();
    // RFC 2308 §5: the name does not exist, whatever the type; RFC 8020: nor anything below.
    for (name, t) in [
        ("nope.example.com", RecordType::AAAA),
        ("a.b.nope.example.com", RecordType::TXT),
    ] {
        let m = env.udp(name, t).await;
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NXDomain,
            "{name} {t}"
        );
        assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
    }
    assert_eq!(
        env.lab.query_log().len(),
        n,
        "answered from the cached NXDOMAIN"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_is_remembered_for_a_few_seconds() {
    use hickory_proto::op::ResponseCode;
    use hopdns::lab::Fault;
    let env = Env::start(82).await;
    for host in [20, 21] {
        env.lab.set_fault(
            std::net::IpAddr::V4(env.lab.addr(host)),
            Some(Fault::Refused),
        );
    }
    let m = env.udp("www.example.com", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    let n = env.lab.query_log().len();
    // RFC 9520: the failing name is not retried at once, even once the servers recover.
    for host in [20, 21] {
        env.lab
            .set_fault(std::net::IpAddr::V4(env.lab.addr(host)), None);
    }
    let m = env.udp("www.example.com", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(
        env.lab.query_log().len(),
        n,
        "no upstream query while the failure is cached"
    );
    // Other names in the zone are not affected.
    let m = env.udp("alias.example.com", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    // Past servfail-ttl (5 s) the name is asked for again, and now it resolves.
    env.clock.advance(std::time::Duration::from_secs(6));
    let m = env.udp("www.example.com", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_answers_when_every_authority_is_down() {
    use hickory_proto::op::ResponseCode;
    use hopdns::lab::Fault;
    let env = Env::start(83).await;
    // chain.example.com's last link, www.shop.com, has TTL 300; ttl5.example.com has TTL 5.
    let m = env.udp("ttl5.example.com", RecordType::A).await;
    assert_eq!(answers(&m), ["ttl5.example.com. A 192.0.2.5"]);
    for host in [20, 21] {
        env.lab
            .set_fault(std::net::IpAddr::V4(env.lab.addr(host)), Some(Fault::Drop));
    }
    env.clock.advance(std::time::Duration::from_secs(6));
    // Expired, and its servers are silent: RFC 8767 says answer from the stale entry, TTL 30.
    let m = env.udp("ttl5.example.com", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(answers(&m), ["ttl5.example.com. A 192.0.2.5"]);
    assert_eq!(m.answers[0].ttl, hopdns::cache::STALE_TTL);
    // That a name never cached has nothing stale to give (SERVFAIL only after the 4.5 s
    // deadline here) is checked in paused time: resolver::tests::time.
    env.stop().await;
}

/// Moves the clock a quarter second at a time, asking `name` after each step, until the
/// answer's TTL is down to 1 s (the last 10% of a 10 s TTL, where a hit asks for a
/// prefetch), and returns that answer. Steps under a second cannot jump over that last second.
async fn hit_until_last_tenth(env: &Env, name: &str) -> hickory_proto::op::Message {
    for _ in 0..60 {
        env.clock.advance(std::time::Duration::from_millis(250));
        let m = env.udp(name, RecordType::A).await;
        if m.answers.first().is_some_and(|r| r.ttl <= 1) {
            return m;
        }
    }
    panic!("the TTL never came down to 1 s");
}

fn cache_with(f: impl FnOnce(&mut hopdns::cache::CacheConfig)) -> hopdns::cache::CacheConfig {
    let mut c = hopdns::cache::CacheConfig::default();
    f(&mut c);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hit_in_the_last_tenth_of_the_ttl_is_prefetched_once() {
    // max-ttl 10 makes www.example.com's 300 s TTL a 10 s one.
    let env = Env::start_with(84, cache_with(|c| c.max_ttl = 10)).await;
    let m = env.udp("www.example.com", RecordType::A).await;
    assert_eq!(m.answers[0].ttl, 10, "TTLs are clamped to max-ttl");
    env.lab.clear_query_log();
    hit_until_last_tenth(&env, "www.example.com").await;
    until("the prefetch ends", Duration::from_secs(5), || {
        !env.lab.query_log().is_empty() && env.resolver.in_flight() == 0
    })
    .await;
    let log = env.lab.query_log();
    assert_eq!(
        log.len(),
        1,
        "one refresh, straight to example.com: {log:#?}"
    );
    // The refreshed entry is served with a full TTL again, and nothing more goes upstream.
    for _ in 0..5 {
        let m = env.udp("www.example.com", RecordType::A).await;
        assert!(m.answers[0].ttl >= 9, "refreshed: {m:?}");
    }
    assert_eq!(env.lab.query_log().len(), 1);
    assert_eq!(env.resolver.cache().stats().prefetches, 1);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_prefetch_nothing_goes_upstream_before_expiry() {
    let env = Env::start_with(
        85,
        cache_with(|c| {
            c.max_ttl = 10;
            c.prefetch = false;
        }),
    )
    .await;
    env.udp("www.example.com", RecordType::A).await;
    env.lab.clear_query_log();
    hit_until_last_tenth(&env, "www.example.com").await;
    // A prefetch would be in flight (and counted) before the hit's reply left.
    assert_eq!(env.resolver.in_flight(), 0, "--no-prefetch: no refresh");
    assert_eq!(env.resolver.cache().stats().prefetches, 0);
    assert_eq!(env.lab.query_log(), vec![], "--no-prefetch: no refresh");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_clamps_apply_to_what_clients_see() {
    let env = Env::start_with(86, cache_with(|c| c.min_ttl = 60)).await;
    // ttl5.example.com has TTL 5: raised to min-ttl, from upstream and from cache alike.
    for _ in 0..2 {
        let m = env.udp("ttl5.example.com", RecordType::A).await;
        assert!((59..=60).contains(&m.answers[0].ttl), "{m:?}");
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_stays_within_its_byte_bound_and_evicts_the_oldest() {
    // 1 MiB in all: half for RRsets, half for ready replies; 5000 names need more.
    let size = 1 << 20;
    let env = Env::start_with(87, cache_with(|c| c.size_bytes = size)).await;
    let addr = env.addr;
    for chunk in (0..5000).collect::<Vec<_>>().chunks(50) {
        let asks: Vec<_> = chunk
            .iter()
            .map(|i| {
                let n = format!("n{i}.wild.net");
                tokio::spawn(async move { udp(addr, &n, RecordType::A, Some(1232)).await })
            })
            .collect();
        for a in asks {
            let m = a.await.unwrap();
            assert_eq!(answers(&m).len(), 1);
        }
    }
    let st = env.resolver.cache().stats();
    assert!(st.rrsets.bytes <= size / 2, "{st:?}");
    assert!(st.messages.bytes <= size / 2, "{st:?}");
    assert!(
        st.rrsets.evictions > 0 && st.messages.evictions > 0,
        "{st:?}"
    );
    // The newest name is still cached; the first one was evicted and is asked again.
    env.lab.clear_query_log();
    env.udp("n4999.wild.net", RecordType::A).await;
    assert_eq!(env.lab.query_log(), vec![], "newest entry kept");
    env.udp("n0.wild.net", RecordType::A).await;
    assert_eq!(env.lab.query_log().len(), 1, "oldest entry evicted");
    env.stop().await;
}
