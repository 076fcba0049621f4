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
