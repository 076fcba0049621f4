//! Cold versus warm resolution over scripted authorities (no sockets), after hickory-dns'
//! `crates/resolver/benches/recursor.rs`. Cold = a fresh cache walks root -> TLD ->
//! authoritative (three exchanges); warm = the answer comes from the cache.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use hickory_proto::rr::{Name, RecordType};
use hopdns::resolver::classify::classify;
use hopdns::resolver::{Question, Resolver, ResolverConfig};
use hopdns::transport::scripted::{self as s, Script, Scripted};

fn world() -> Arc<Scripted> {
    let w = Scripted::new();
    w.on(
        "10.0.0.1",
        "www.example.com.",
        RecordType::A,
        Script::Reply(s::referral("com.", &[("ns.nic.com.", Some("10.0.1.1"))])),
    );
    w.on(
        "10.0.1.1",
        "www.example.com.",
        RecordType::A,
        Script::Reply(s::referral(
            "example.com.",
            &[
                ("ns1.example.com.", Some("10.0.2.1")),
                ("ns2.example.com.", Some("10.0.2.2")),
            ],
        )),
    );
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
    }
    Arc::new(w)
}

fn config() -> ResolverConfig {
    let mut c = ResolverConfig::new(s::root_hints("10.0.0.1"));
    c.settings.ipv6 = false;
    c
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let w = world();
    let q = Question::new(Name::from_ascii("www.example.com.").unwrap(), RecordType::A);

    c.bench_function("resolve/cold (3 scripted hops)", |b| {
        b.iter(|| {
            let r = Resolver::new(config(), w.clone());
            black_box(rt.block_on(r.resolve(&q)))
        })
    });

    let warm = Resolver::new(config(), w.clone());
    rt.block_on(warm.resolve(&q));
    c.bench_function("resolve/warm (cache hit)", |b| {
        b.iter(|| black_box(rt.block_on(warm.resolve(&q))))
    });

    let referral = s::referral(
        "example.com.",
        &[
            ("ns1.example.com.", Some("10.0.2.1")),
            ("ns2.example.com.", Some("10.0.2.2")),
        ],
    );
    let com = Name::from_ascii("com.").unwrap();
    c.bench_function("classify/referral", |b| {
        b.iter(|| black_box(classify(&referral, &q, &com, true, false)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
