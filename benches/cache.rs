//! Cache costs: RRset lookup (hit and miss), insert, insert with eviction at the byte bound;
//! and the client-facing hit path on raw bytes: the fast path (parse the query, copy and
//! patch the ready reply) against the general path (decode, resolver, encode) it bypasses.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hopdns::cache::{AnswerCache, CacheConfig};
use hopdns::dns::Clock;
use hopdns::resolver::{Question, Resolver, ResolverConfig};
use hopdns::server::fast::reply_from_cache;
use hopdns::server::{request, Policy, Proto};
use hopdns::transport::scripted::{self as s, Scripted};
use std::net::SocketAddr;
use std::sync::Arc;

fn question(i: usize) -> Question {
    Question::new(
        Name::from_ascii(format!("h{i}.example.com.")).unwrap(),
        RecordType::A,
    )
}

fn record(q: &Question) -> Vec<Record> {
    vec![Record::from_rdata(
        q.name.clone(),
        300,
        RData::A(A::new(192, 0, 2, 1)),
    )]
}

fn bench(c: &mut Criterion) {
    const N: usize = 10_000;
    let cache = AnswerCache::new(&CacheConfig::default());
    let qs: Vec<Question> = (0..N).map(question).collect();
    for q in &qs {
        cache.insert_records(q.clone(), &record(q), 0);
    }
    let mut i = 0;
    c.bench_function("answer_cache/get hit", |b| {
        b.iter(|| {
            i = (i + 1) % N;
            black_box(cache.get(&qs[i], 1))
        })
    });
    let miss = question(N + 1);
    c.bench_function("answer_cache/get miss", |b| {
        b.iter(|| black_box(cache.get(&miss, 1)))
    });
    let new: Vec<(Question, Vec<Record>)> = (N..2 * N)
        .map(|i| {
            let q = question(i);
            let r = record(&q);
            (q, r)
        })
        .collect();
    let mut j = 0;
    c.bench_function("answer_cache/insert", |b| {
        b.iter(|| {
            j = (j + 1) % N;
            let (q, r) = &new[j];
            cache.insert_records(q.clone(), r, 0)
        })
    });
    let small = AnswerCache::new(&CacheConfig {
        size_bytes: 256 << 10,
        ..CacheConfig::default()
    });
    let mut k = 0;
    c.bench_function("answer_cache/insert with eviction", |b| {
        b.iter(|| {
            k = (k + 1) % N;
            let (q, r) = &new[k];
            small.insert_records(q.clone(), r, 0)
        })
    });
}

/// A query as a stub sends it: RD, EDNS 1232, mixed case.
fn wire_query(name: &str) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = 0x4242;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    let mut e = Edns::new();
    e.set_max_payload(1232);
    m.set_edns(e);
    m.to_vec().unwrap()
}

fn hit_path(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let resolver = Resolver::new(
        ResolverConfig::new(s::root_hints("10.0.0.1")),
        Arc::new(Scripted::new()),
    );
    const N: usize = 10_000;
    let now = Clock::system().unix_secs();
    for i in 0..N {
        let q = question(i);
        let rs = record(&q);
        // Both stores, as a resolution leaves them: the fast path reads the message cache,
        // the general path the RRset cache.
        resolver
            .cache()
            .messages
            .insert(&q, ResponseCode::NoError, &rs, None, 300, now, false);
        resolver.cache().answers.insert_records(q, &rs, now);
    }
    let queries: Vec<Vec<u8>> = (0..N)
        .map(|i| wire_query(&format!("H{i}.Example.com.")))
        .collect();
    let client: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let mut out = vec![0u8; 1232];
    let mut i = 0;
    c.bench_function("hit_path/reply_from_cache on raw bytes", |b| {
        b.iter(|| {
            i = (i + 1) % N;
            black_box(reply_from_cache(
                resolver.cache(),
                &resolver,
                &queries[i],
                client,
                &mut out,
            ))
        })
    });
    let policy = Policy::default();
    let mut j = 0;
    c.bench_function("hit_path/general path (decode, resolver, encode)", |b| {
        b.iter(|| {
            j = (j + 1) % N;
            black_box(rt.block_on(request::handle(
                &queries[j],
                client,
                Proto::Udp,
                &policy,
                &resolver,
            )))
        })
    });
    // What the UDP loop adds to a fast-path hit before sending (`Shared::outgoing`): the
    // hit and reply counters, then the same with response rate limiting on.
    let metrics = hopdns::metrics::metrics();
    let mut k = 0;
    c.bench_function("hit_path/reply_from_cache + reply counters", |b| {
        b.iter(|| {
            k = (k + 1) % N;
            let len = reply_from_cache(resolver.cache(), &resolver, &queries[k], client, &mut out)
                .unwrap();
            metrics.count_reply(&out[..len], hopdns::dns::Proto::Udp);
            black_box(len)
        })
    });
    let rrl = hopdns::server::rrl::Rrl::new(hopdns::server::rrl::RrlConfig {
        rate: u32::MAX,
        // The bench client is on loopback: measure the limiter, not its exemption.
        exempt_loopback: false,
        ..Default::default()
    })
    .unwrap();
    let mut l = 0;
    c.bench_function("hit_path/reply_from_cache + reply counters + RRL", |b| {
        b.iter(|| {
            l = (l + 1) % N;
            let len = reply_from_cache(resolver.cache(), &resolver, &queries[l], client, &mut out)
                .unwrap();
            let verdict = rrl.check(client.ip(), std::time::Instant::now());
            metrics.count_reply(&out[..len], hopdns::dns::Proto::Udp);
            black_box((len, verdict))
        })
    });
}

criterion_group!(benches, bench, hit_path);
criterion_main!(benches);
