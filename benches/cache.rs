//! Answer cache costs: lookup (hit and miss), insert, and insert with eviction at capacity.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hopdns::cache::{AnswerCache, CacheConfig};
use hopdns::resolver::Question;

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
        cache.insert_records(q.clone(), record(q), 0);
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
            cache.insert_records(q.clone(), r.clone(), 0)
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
            small.insert_records(q.clone(), r.clone(), 0)
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
