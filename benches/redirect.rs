//! Redirect layer costs: rule lookup among 100k suffix rules (hit and miss), the fast
//! (cache-hit) reply path with and without the layer, and loading a 1M-line blocklist.
//!
//! The hit path is the resolver's real fast path: a message cache warmed with 10,000 names,
//! answered from raw query bytes. "direct" calls the resolver; "redirect, no rules" goes
//! through a `Redirector` with nothing loaded (the zero-cost claim); "redirect, 100k rules,
//! no match" adds the name parse and lookup a loaded rule set costs on every query.

use std::hint::black_box;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hopdns::redirect::{file, Redirector};
use hopdns::resolver::{Question, Resolver, ResolverConfig};
use hopdns::server::fast::reply_from_cache;
use hopdns::transport::scripted::{self as s, Scripted};

/// A query as a stub sends it: RD, EDNS 1232, mixed case.
fn wire(name: &str) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    let mut e = Edns::new();
    e.set_max_payload(1232);
    m.set_edns(e);
    m.to_vec().unwrap()
}

/// A rules file with `n` `*.domainN.test` block rules, as a domain list.
fn suffix_rules(dir: &Path, n: usize) -> std::path::PathBuf {
    let list = dir.join("domains.txt");
    let mut text = String::with_capacity(n * 24);
    for i in 0..n {
        text.push_str(&format!("*.domain{i}.test\n"));
    }
    std::fs::write(&list, text).unwrap();
    let rules = dir.join("rules.toml");
    std::fs::write(
        &rules,
        format!(
            "[[blocklist]]\nfile = \"{}\"\nformat = \"domains\"\n",
            list.display()
        ),
    )
    .unwrap();
    rules
}

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("hopdns-bench-redirect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let client: SocketAddr = "192.168.1.50:40000".parse().unwrap();

    // Rule lookup among 100k suffix rules.
    let set = file::load(&suffix_rules(&dir, 100_000)).unwrap();
    let hit = Question::new(
        Name::from_ascii("a.b.domain77777.test.").unwrap(),
        RecordType::A,
    );
    let miss = Question::new(
        Name::from_ascii("www.some.other.example.com.").unwrap(),
        RecordType::A,
    );
    let mut g = c.benchmark_group("redirect/lookup (100k suffix rules)");
    g.bench_function("hit: decide a.b.domain77777.test", |b| {
        b.iter(|| black_box(set.decide(black_box(&hit), client.ip(), false)))
    });
    g.bench_function("miss: decide www.some.other.example.com", |b| {
        b.iter(|| black_box(set.decide(black_box(&miss), client.ip(), false)))
    });
    g.finish();

    // The hit path: the resolver's message cache, warmed as resolutions leave it.
    const N: usize = 10_000;
    let resolver = Arc::new(Resolver::new(
        ResolverConfig::new(s::root_hints("10.0.0.1")),
        Arc::new(Scripted::new()),
    ));
    let now = hopdns::dns::Clock::system().unix_secs();
    for i in 0..N {
        let q = Question::new(
            Name::from_ascii(format!("h{i}.example.com.")).unwrap(),
            RecordType::A,
        );
        let rs = vec![Record::from_rdata(
            q.name.clone(),
            300,
            RData::A(A::new(192, 0, 2, 1)),
        )];
        resolver
            .cache()
            .messages
            .insert(&q, ResponseCode::NoError, &rs, None, 300, now, false);
        resolver.cache().answers.insert_records(q, &rs, now);
    }
    let queries: Vec<Vec<u8>> = (0..N)
        .map(|i| wire(&format!("H{i}.Example.com.")))
        .collect();
    let mut out = vec![0u8; 1232];
    let empty = Redirector::new(resolver.clone());
    let loaded = Redirector::new(resolver.clone());
    loaded.install(file::load(&suffix_rules(&dir, 100_000)).unwrap());
    let mut i = 0;
    let mut next = || {
        i = (i + 1) % N;
        &queries[i]
    };
    assert!(
        reply_from_cache(resolver.cache(), &*resolver, next(), client, &mut out).is_some(),
        "a warm hit"
    );
    let mut g = c.benchmark_group("redirect/hit path (reply_from_cache)");
    g.bench_function("direct (no layer)", |b| {
        b.iter(|| {
            black_box(reply_from_cache(
                resolver.cache(),
                &*resolver,
                next(),
                client,
                &mut out,
            ))
        })
    });
    g.bench_function("redirect, no rules", |b| {
        b.iter(|| {
            black_box(reply_from_cache(
                resolver.cache(),
                &empty,
                next(),
                client,
                &mut out,
            ))
        })
    });
    g.bench_function("redirect, 100k rules, no match", |b| {
        b.iter(|| {
            black_box(reply_from_cache(
                resolver.cache(),
                &loaded,
                next(),
                client,
                &mut out,
            ))
        })
    });
    g.finish();

    // Loading a 1M-line hosts-format blocklist.
    let hosts = dir.join("hosts.txt");
    let mut text = String::with_capacity(1_000_000 * 36);
    for i in 0..1_000_000 {
        text.push_str(&format!("0.0.0.0 ads{i}.tracker{}.example.com\n", i % 1000));
    }
    std::fs::write(&hosts, text).unwrap();
    let rules = dir.join("hosts.toml");
    std::fs::write(
        &rules,
        format!(
            "[[blocklist]]\nfile = \"{}\"\nformat = \"hosts\"\n",
            hosts.display()
        ),
    )
    .unwrap();
    let start = Instant::now();
    let big = file::load(&rules).unwrap();
    eprintln!(
        "1M-line hosts blocklist: {} names in {:?}, name table {:.1} MiB",
        big.len(),
        start.elapsed(),
        big.name_bytes() as f64 / (1 << 20) as f64
    );
    drop(big);
    let mut g = c.benchmark_group("redirect/load");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.bench_function("1M-line hosts blocklist", |b| {
        b.iter(|| black_box(file::load(&rules).unwrap().len()))
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
