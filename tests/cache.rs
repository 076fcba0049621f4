//! Cache behaviour seen from clients. Lab networks 80..=99.

use hickory_proto::rr::RecordType;

use crate::util::{answers, udp, Env};

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
    tokio::time::sleep(std::time::Duration::from_millis(6000)).await;
    // Expired, and its servers are silent: RFC 8767 says answer from the stale entry, TTL 30.
    let m = env.udp("ttl5.example.com", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(answers(&m), ["ttl5.example.com. A 192.0.2.5"]);
    assert_eq!(m.answers[0].ttl, hopdns::cache::STALE_TTL);
    // A name never cached has nothing stale to give: SERVFAIL.
    let m = env.udp("www.example.com", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    env.stop().await;
}
