//! The answer cache: positive RRsets and negative answers (RFC 2308), keyed by question.
//!
//! Each entry remembers when it expires on the system clock; readers get records whose TTL
//! is the time left (RFC 1035 §3.2.1: TTLs count down while cached). CNAME RRsets are cached
//! under their own (name, CNAME) key, so the resolver can rebuild a whole chain from cache.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use hickory_proto::rr::{Name, Record, RecordType};
use lru::LruCache;

use super::{shard_of, CacheConfig, SHARDS};
use crate::resolver::Question;

/// What a lookup finds: records with TTLs already decremented to the time left.
#[derive(Clone, Debug, PartialEq)]
pub enum Cached {
    /// The RRset for the question.
    Records(Vec<Record>),
    /// The name does not exist (RFC 2308 §2.1), with the SOA that set the negative TTL.
    NxDomain(Option<Record>),
    /// The name exists without data of this type (RFC 2308 §2.2).
    NoData(Option<Record>),
    /// Resolving this question failed moments ago (RFC 9520): answer SERVFAIL, do not retry.
    ServFail,
}

/// NXDOMAIN is about a name, not a type (RFC 2308 §5): it is kept under this type, which no
/// RRset has (type 0 is reserved), so one entry answers every type.
const NXDOMAIN_KEY_TYPE: RecordType = RecordType::Unknown(0);

fn nx_key(name: &Name, class: hickory_proto::rr::DNSClass) -> Question {
    Question::with_class(name.clone(), NXDOMAIN_KEY_TYPE, class)
}

#[derive(Clone, Debug)]
struct Entry {
    data: Cached,
    expires: u64,
}

#[derive(Debug)]
pub struct AnswerCache {
    shards: Vec<Mutex<LruCache<Question, Entry>>>,
    /// Recent failures (RFC 9520), apart from the data so a failure never evicts the entry
    /// that serve-stale may still need.
    failures: Mutex<LruCache<Question, u64>>,
    min_ttl: u32,
    max_ttl: u32,
    max_negative_ttl: u32,
    servfail_ttl: u32,
    stale_max_age: u32,
}

/// Recent failures remembered at most.
const FAILURE_ENTRIES: usize = 10_000;

/// TTL of a stale answer (RFC 8767 §4 recommends 30 s).
pub const STALE_TTL: u32 = 30;

impl AnswerCache {
    pub fn new(config: &CacheConfig) -> Self {
        let per_shard = NonZeroUsize::new((config.answer_entries / SHARDS).max(1)).expect("max(1)");
        Self {
            failures: Mutex::new(LruCache::new(
                NonZeroUsize::new(FAILURE_ENTRIES).expect("non-zero"),
            )),
            shards: (0..SHARDS)
                .map(|_| Mutex::new(LruCache::new(per_shard)))
                .collect(),
            min_ttl: config.min_ttl,
            max_ttl: config.max_ttl,
            max_negative_ttl: config.max_negative_ttl,
            servfail_ttl: config.servfail_ttl,
            stale_max_age: if config.serve_stale {
                config.stale_max_age
            } else {
                0
            },
        }
    }

    fn shard(&self, q: &Question) -> std::sync::MutexGuard<'_, LruCache<Question, Entry>> {
        // A poisoned lock only means another thread panicked mid-update of an LRU list of
        // plain values; the data is still consistent enough to serve.
        self.shards[shard_of(q)]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The entry for `q` with TTLs counted down to `now`, or `None` if absent or expired.
    /// Without an entry of its own, a cached NXDOMAIN for the name or any name above it
    /// answers (RFC 8020 §2: nothing exists below a name that does not exist).
    pub fn get(&self, q: &Question, now: u64) -> Option<Cached> {
        if let Some(hit) = self.get_exact(q, now) {
            return Some(hit);
        }
        if self.failed_recently(q, now) {
            return Some(Cached::ServFail);
        }
        let mut name = q.name.clone();
        loop {
            if let Some(hit @ Cached::NxDomain(_)) = self.get_exact(&nx_key(&name, q.qclass), now) {
                return Some(hit);
            }
            if name.is_root() {
                return None;
            }
            name = name.base_name();
        }
    }

    fn get_exact(&self, q: &Question, now: u64) -> Option<Cached> {
        self.lookup(q, now, false)
    }

    /// Like [`Self::get`] for one question, but an entry that expired less than
    /// `stale-max-age` ago is returned too, with TTL [`STALE_TTL`] (RFC 8767 §4): what to
    /// answer when every authority for the name has failed.
    pub fn get_stale(&self, q: &Question, now: u64) -> Option<Cached> {
        self.lookup(q, now, true)
            .or_else(|| self.lookup(&nx_key(&q.name, q.qclass), now, true))
            .filter(|c| !matches!(c, Cached::ServFail))
    }

    fn lookup(&self, q: &Question, now: u64, stale_ok: bool) -> Option<Cached> {
        let mut shard = self.shard(q);
        let entry = shard.get(q)?;
        if entry.expires > now {
            let left = (entry.expires - now).min(u64::from(u32::MAX)) as u32;
            return Some(with_ttl(&entry.data, left));
        }
        // Expired entries stay (within the LRU bound) while they may still be served stale.
        if now >= entry.expires + u64::from(self.stale_max_age) {
            shard.pop(q);
            return None;
        }
        stale_ok.then(|| with_ttl(&entry.data, STALE_TTL))
    }

    /// Caches an RRset (all records share the owner and type of `q`). The RRset's TTL is its
    /// lowest record TTL (RFC 2181 §5.2), clamped to `min-ttl..=max-ttl`.
    pub fn insert_records(&self, q: Question, records: Vec<Record>, now: u64) {
        let Some(ttl) = records.iter().map(|r| r.ttl).min() else {
            return;
        };
        let ttl = ttl.clamp(self.min_ttl, self.max_ttl.max(self.min_ttl));
        self.put(q, Cached::Records(records), ttl, now);
    }

    /// Caches a negative answer. Its TTL is min(SOA TTL, SOA MINIMUM) (RFC 2308 §5), capped by
    /// `max-negative-ttl`; without an SOA the answer is not cached (RFC 2308 §5).
    pub fn insert_negative(&self, q: Question, nxdomain: bool, soa: Option<Record>, now: u64) {
        let Some(ttl) = soa.as_ref().and_then(negative_ttl) else {
            return;
        };
        let ttl = ttl.min(self.max_negative_ttl);
        if nxdomain {
            self.put(nx_key(&q.name, q.qclass), Cached::NxDomain(soa), ttl, now);
        } else {
            self.put(q, Cached::NoData(soa), ttl, now);
        }
    }

    /// Remembers that resolving `q` failed, for `servfail-ttl` seconds (RFC 9520 §3.2: at
    /// least 1 s), so a failing name does not hammer its servers.
    pub fn insert_servfail(&self, q: Question, now: u64) {
        if self.servfail_ttl > 0 {
            let until = now + u64::from(self.servfail_ttl);
            self.failures
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .put(q, until);
        }
    }

    fn failed_recently(&self, q: &Question, now: u64) -> bool {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        match failures.get(q) {
            Some(until) if *until > now => true,
            Some(_) => {
                failures.pop(q);
                false
            }
            None => false,
        }
    }

    fn put(&self, q: Question, data: Cached, ttl: u32, now: u64) {
        if ttl == 0 {
            return;
        }
        let entry = Entry {
            data,
            expires: now + u64::from(ttl),
        };
        self.shard(&q).put(q, entry);
    }

    /// Number of entries held (expired ones included until they are touched or evicted).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// RFC 2308 §5: the negative TTL is the minimum of the SOA's own TTL and its MINIMUM field.
pub fn negative_ttl(soa: &Record) -> Option<u32> {
    match &soa.data {
        hickory_proto::rr::RData::SOA(s) => Some(soa.ttl.min(s.minimum)),
        _ => None,
    }
}

fn with_ttl(data: &Cached, left: u32) -> Cached {
    let set = |records: &[Record]| -> Vec<Record> {
        records
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r.ttl = left;
                r
            })
            .collect()
    };
    match data {
        Cached::Records(rs) => Cached::Records(set(rs)),
        Cached::NxDomain(soa) => {
            Cached::NxDomain(soa.as_ref().map(|s| set(std::slice::from_ref(s)).remove(0)))
        }
        Cached::NoData(soa) => {
            Cached::NoData(soa.as_ref().map(|s| set(std::slice::from_ref(s)).remove(0)))
        }
        Cached::ServFail => Cached::ServFail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, SOA};
    use hickory_proto::rr::RData;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn a(owner: &str, ttl: u32) -> Record {
        Record::from_rdata(name(owner), ttl, RData::A(A::new(192, 0, 2, 1)))
    }

    fn soa(ttl: u32, minimum: u32) -> Record {
        let s = SOA::new(name("ns.example."), name("h.example."), 1, 2, 3, 4, minimum);
        Record::from_rdata(name("example."), ttl, RData::SOA(s))
    }

    #[test]
    fn ttl_counts_down_and_entry_expires() {
        let c = AnswerCache::new(&CacheConfig::default());
        let q = Question::new(name("www.example."), RecordType::A);
        c.insert_records(q.clone(), vec![a("www.example.", 300)], 1000);
        let Some(Cached::Records(rs)) = c.get(&q, 1100) else {
            panic!("expected records")
        };
        assert_eq!(rs[0].ttl, 200);
        assert_eq!(c.get(&q, 1300), None);
    }

    #[test]
    fn lookup_ignores_case() {
        let c = AnswerCache::new(&CacheConfig::default());
        c.insert_records(
            Question::new(name("WWW.Example."), RecordType::A),
            vec![a("www.example.", 300)],
            0,
        );
        assert!(c
            .get(&Question::new(name("www.EXAMPLE."), RecordType::A), 1)
            .is_some());
    }

    #[test]
    fn ttls_are_clamped() {
        let cfg = CacheConfig {
            min_ttl: 60,
            max_ttl: 600,
            ..CacheConfig::default()
        };
        let c = AnswerCache::new(&cfg);
        let q1 = Question::new(name("a.example."), RecordType::A);
        let q2 = Question::new(name("b.example."), RecordType::A);
        c.insert_records(q1.clone(), vec![a("a.example.", 5)], 0);
        c.insert_records(q2.clone(), vec![a("b.example.", 86_400)], 0);
        assert!(matches!(c.get(&q1, 0), Some(Cached::Records(r)) if r[0].ttl == 60));
        assert!(matches!(c.get(&q2, 0), Some(Cached::Records(r)) if r[0].ttl == 600));
    }

    #[test]
    fn negative_ttl_is_min_of_soa_ttl_and_minimum_and_capped() {
        let c = AnswerCache::new(&CacheConfig::default());
        let q = Question::new(name("nx.example."), RecordType::A);
        c.insert_negative(q.clone(), true, Some(soa(900, 120)), 0);
        assert!(matches!(c.get(&q, 100), Some(Cached::NxDomain(Some(s))) if s.ttl == 20));
        assert_eq!(c.get(&q, 120), None);
        let q2 = Question::new(name("nodata.example."), RecordType::AAAA);
        c.insert_negative(q2.clone(), false, Some(soa(86_400, 86_400)), 0);
        assert!(matches!(c.get(&q2, 0), Some(Cached::NoData(Some(s))) if s.ttl == 3600));
        let q3 = Question::new(name("nosoa.example."), RecordType::A);
        c.insert_negative(q3.clone(), true, None, 0);
        assert_eq!(c.get(&q3, 0), None, "no SOA, no negative caching");
    }

    #[test]
    fn nxdomain_answers_every_type_and_every_name_below() {
        let c = AnswerCache::new(&CacheConfig::default());
        c.insert_negative(
            Question::new(name("nx.example."), RecordType::A),
            true,
            Some(soa(300, 300)),
            0,
        );
        for (n, t) in [
            ("nx.example.", RecordType::AAAA),
            ("a.b.nx.example.", RecordType::MX),
        ] {
            assert!(
                matches!(
                    c.get(&Question::new(name(n), t), 10),
                    Some(Cached::NxDomain(Some(_)))
                ),
                "{n} {t}"
            );
        }
        assert_eq!(
            c.get(&Question::new(name("example."), RecordType::A), 10),
            None
        );
        assert_eq!(
            c.get(&Question::new(name("other.example."), RecordType::A), 10),
            None
        );
    }

    #[test]
    fn expired_entries_are_served_stale_within_the_window() {
        let c = AnswerCache::new(&CacheConfig::default());
        let q = Question::new(name("www.example."), RecordType::A);
        c.insert_records(q.clone(), vec![a("www.example.", 300)], 0);
        assert!(
            matches!(c.get_stale(&q, 100), Some(Cached::Records(r)) if r[0].ttl == 200),
            "fresh"
        );
        assert_eq!(c.get(&q, 400), None, "expired for normal lookups");
        assert!(matches!(c.get_stale(&q, 400), Some(Cached::Records(r)) if r[0].ttl == STALE_TTL));
        assert_eq!(c.get_stale(&q, 300 + 86_400), None, "past stale-max-age");
        let off = AnswerCache::new(&CacheConfig {
            serve_stale: false,
            ..CacheConfig::default()
        });
        off.insert_records(q.clone(), vec![a("www.example.", 300)], 0);
        assert_eq!(off.get_stale(&q, 400), None, "serve-stale off");
    }

    #[test]
    fn servfail_is_remembered_briefly() {
        let c = AnswerCache::new(&CacheConfig::default());
        let q = Question::new(name("broken.example."), RecordType::A);
        c.insert_servfail(q.clone(), 100);
        assert_eq!(c.get(&q, 104), Some(Cached::ServFail));
        assert_eq!(c.get(&q, 105), None);
    }

    #[test]
    fn least_recently_used_is_evicted() {
        let cfg = CacheConfig {
            answer_entries: SHARDS, // one entry per shard
            ..CacheConfig::default()
        };
        let c = AnswerCache::new(&cfg);
        for i in 0..1000 {
            let n = format!("n{i}.example.");
            c.insert_records(Question::new(name(&n), RecordType::A), vec![a(&n, 300)], 0);
        }
        assert!(c.len() <= SHARDS);
    }
}
