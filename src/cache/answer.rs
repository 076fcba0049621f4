//! The answer cache: positive RRsets and negative answers (RFC 2308), keyed by question.
//!
//! Each entry remembers when it expires on the system clock; readers get records whose TTL
//! is the time left (RFC 1035 §3.2.1: TTLs count down while cached). CNAME RRsets are cached
//! under their own (name, CNAME) key, so the resolver can rebuild a whole chain from cache.
//! An RRset's RRSIGs are kept beside it in the same entry (after its records; Unbound's
//! packed RRset holds both), so an answer rebuilt from the cache, a CNAME chain or a stale
//! answer, has its signatures for clients that set DO (RFC 4035 §3.2.1).

use std::num::NonZeroUsize;
use std::sync::Mutex;

use hickory_proto::rr::{Record, RecordType};
use hickory_proto::serialize::binary::{
    BinDecodable, BinDecoder, BinEncodable, BinEncoder, NameEncoding,
};
use lru::LruCache;

use super::store::{Names, Store, StoreStats, Weigh};
use super::CacheConfig;
use crate::dns::wire::{key_name, wire_labels, KeyBuf};
use crate::dns::Question;

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
const NXDOMAIN_KEY_TYPE: u16 = 0;

/// What an entry holds; its records are in `Entry::data`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Records = 0,
    NxDomain = 1,
    NoData = 2,
}

impl Kind {
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Kind::Records),
            1 => Some(Kind::NxDomain),
            2 => Some(Kind::NoData),
            _ => None,
        }
    }
}

/// One cached RRset or negative answer, its records in wire form (names compressed within
/// the entry): a few dozen bytes where decoded `Record`s would take hundreds.
#[derive(Clone, Debug)]
struct Entry {
    expires: u64,
    kind: Kind,
    data: Box<[u8]>,
}

impl Weigh for Entry {
    fn heap_bytes(&self) -> usize {
        self.data.len()
    }
}

pub struct AnswerCache {
    store: Store<Entry>,
    /// Recent failures (RFC 9520), apart from the data so a failure never evicts the entry
    /// that serve-stale may still need.
    failures: Mutex<LruCache<Box<[u8]>, u64>>,
    /// Questions whose answer was found bogus, with until when and the EDE code and reason,
    /// kept [`crate::dnssec::keycache::BOGUS_TTL`] (Unbound's `val-bogus-ttl`, 60 s) so a
    /// bogus name is not resolved and validated again for every query.
    bogus: Mutex<LruCache<Box<[u8]>, Bogus>>,
    min_ttl: u32,
    max_ttl: u32,
    max_negative_ttl: u32,
    servfail_ttl: u32,
    stale_max_age: u32,
    /// A DNAME was ever cached: until then nobody needs to look for one above a name (most
    /// caches never hold one, and the walk costs a lookup per label on every miss).
    dnames: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for AnswerCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnswerCache")
            .field("stats", &self.stats())
            .finish()
    }
}

/// A bogus answer remembered: until when, its EDE code and reason.
type Bogus = (u64, u16, String);

/// Recent failures remembered at most.
const FAILURE_ENTRIES: usize = 10_000;

/// TTL of a stale answer (RFC 8767 §4 recommends 30 s).
pub const STALE_TTL: u32 = 30;

/// Encodes records back to back, names compressed; `None` if one cannot be encoded.
pub(super) fn encode_records(records: &[&Record]) -> Option<Box<[u8]>> {
    let mut buf = Vec::with_capacity(64);
    let mut encoder = BinEncoder::new(&mut buf);
    // A lone address record has no name that compression could shorten (its owner comes
    // first, its RDATA holds none): written uncompressed it is the same bytes, without the
    // encoder's bookkeeping (a heap copy of each suffix of the owner name). The commonest
    // RRset a miss stores.
    if let [r] = records {
        if matches!(r.record_type(), RecordType::A | RecordType::AAAA) {
            encoder.set_name_encoding(NameEncoding::Uncompressed);
        }
    }
    for r in records {
        r.emit(&mut encoder).ok()?;
    }
    Some(buf.into_boxed_slice())
}

/// Decodes what [`encode_records`] wrote, every TTL set to `ttl`.
pub(super) fn decode_records(data: &[u8], ttl: u32) -> Vec<Record> {
    let mut decoder = BinDecoder::new(data);
    let mut out = Vec::new();
    while !decoder.is_empty() {
        match Record::read(&mut decoder) {
            Ok(mut r) => {
                r.ttl = ttl;
                out.push(r);
            }
            Err(e) => {
                // Only our own encoder wrote these bytes; a failure is a bug, not input.
                tracing::warn!(error = %e, "undecodable cache entry dropped");
                return Vec::new();
            }
        }
    }
    out
}

impl AnswerCache {
    pub fn new(config: &CacheConfig) -> Self {
        Self {
            store: Store::new(config.rrset_bytes()),
            failures: Mutex::new(LruCache::new(
                NonZeroUsize::new(FAILURE_ENTRIES).expect("non-zero"),
            )),
            bogus: Mutex::new(LruCache::new(
                NonZeroUsize::new(FAILURE_ENTRIES).expect("non-zero"),
            )),
            min_ttl: config.min_ttl,
            max_ttl: config.max_ttl,
            max_negative_ttl: config.max_negative_ttl,
            servfail_ttl: config.servfail_ttl,
            stale_max_age: if config.serve_stale {
                config.stale_max_age
            } else {
                0
            },
            dnames: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether any DNAME may be in the cache (see `dnames`).
    pub fn may_hold_dnames(&self) -> bool {
        self.dnames.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Only the records cached under exactly `name`/`qtype` (class IN): no failure memory, no
    /// walk for an NXDOMAIN above. What a zone cut needs to know of its name servers' own
    /// addresses, cheaply, every time a cut is entered, and a resolution's start of its
    /// name's CNAME once [`Self::get`] for its own type has looked for both.
    pub fn records(
        &self,
        name: &hickory_proto::rr::Name,
        qtype: hickory_proto::rr::RecordType,
        now: u64,
    ) -> Option<Vec<Record>> {
        let key = KeyBuf::from_parts(name, qtype, hickory_proto::rr::DNSClass::IN);
        match self.lookup(key.as_bytes(), now, false)? {
            Cached::Records(rs) => Some(rs),
            _ => None,
        }
    }

    /// The entry for `q` with TTLs counted down to `now`, or `None` if absent or expired.
    /// Without an entry of its own, a cached NXDOMAIN for the name or any name above it
    /// answers (RFC 8020 §2: nothing exists below a name that does not exist).
    pub fn get(&self, q: &Question, now: u64) -> Option<Cached> {
        self.get_signed(q, now).map(|(hit, _)| hit)
    }

    /// [`Self::get`], with the RRSIGs kept beside a cached RRset (none for negative
    /// answers and failures).
    pub fn get_signed(&self, q: &Question, now: u64) -> Option<(Cached, Vec<Record>)> {
        self.get_own(q, now)
            .or_else(|| Some((self.nxdomain_above(q, 0, now)?, Vec::new())))
    }

    /// The entry of `q` itself, or its recent failure: [`Self::get_signed`] without the
    /// walk up the name, for a caller that knows where it can stop
    /// ([`Self::nxdomain_above`]).
    pub fn get_own(&self, q: &Question, now: u64) -> Option<(Cached, Vec<Record>)> {
        let key = KeyBuf::of(q);
        if let Some(hit) = self.lookup_signed(key.as_bytes(), now, false) {
            return Some(hit);
        }
        self.failed_recently(key.as_bytes(), now)
            .then(|| (Cached::ServFail, Vec::new()))
    }

    /// A cached NXDOMAIN for `q`'s name or a name above it with more than `exists` labels
    /// (RFC 8020 §2). Names of `exists` labels or fewer above it are known to exist (the
    /// closest cached zone cut and its ancestors; the root always), so a resolution's start
    /// probes one name per label between the question and its zone, not up to the root.
    /// The question's own name is always probed.
    pub fn nxdomain_above(&self, q: &Question, exists: usize, now: u64) -> Option<Cached> {
        let key = KeyBuf::of(q);
        let name = key.name();
        let class = u16::from(q.qclass);
        // Every label counts, a leading `*` too (unlike `Name::num_labels`), as the caller's
        // count of the cut's labels does.
        let mut labels = wire_labels(name).count();
        let mut at = 0;
        loop {
            let nx = KeyBuf::from_wire(&name[at..], NXDOMAIN_KEY_TYPE, class)?;
            if let Some(hit @ Cached::NxDomain(_)) = self.lookup(nx.as_bytes(), now, false) {
                return Some(hit);
            }
            at += 1 + usize::from(*name.get(at)?);
            labels = labels.checked_sub(1)?;
            if labels <= exists {
                return None;
            }
        }
    }

    /// [`Self::get_stale`], with the RRSIGs kept beside a cached RRset.
    pub fn get_stale_signed(&self, q: &Question, now: u64) -> Option<(Cached, Vec<Record>)> {
        let key = KeyBuf::of(q);
        let nx = KeyBuf::from_wire(key.name(), NXDOMAIN_KEY_TYPE, u16::from(q.qclass))?;
        self.lookup_signed(key.as_bytes(), now, true)
            .or_else(|| self.lookup_signed(nx.as_bytes(), now, true))
    }

    /// Like [`Self::get`] for one question, but an entry that expired less than
    /// `stale-max-age` ago is returned too, with TTL [`STALE_TTL`] (RFC 8767 §4): what to
    /// answer when every authority for the name has failed.
    pub fn get_stale(&self, q: &Question, now: u64) -> Option<Cached> {
        let key = KeyBuf::of(q);
        let nx = KeyBuf::from_wire(key.name(), NXDOMAIN_KEY_TYPE, u16::from(q.qclass))?;
        self.lookup(key.as_bytes(), now, true)
            .or_else(|| self.lookup(nx.as_bytes(), now, true))
    }

    fn lookup(&self, key: &[u8], now: u64, stale_ok: bool) -> Option<Cached> {
        self.lookup_signed(key, now, stale_ok).map(|(hit, _)| hit)
    }

    /// [`Self::lookup`], with the RRSIGs kept beside an RRset.
    fn lookup_signed(&self, key: &[u8], now: u64, stale_ok: bool) -> Option<(Cached, Vec<Record>)> {
        let mut shard = self.store.shard(key);
        let Some((expires, kind, data)) = shard
            .lru
            .get(key)
            .map(|e| (e.expires, e.kind, e.data.clone()))
        else {
            shard.misses += 1;
            return None;
        };
        let ttl = if expires > now {
            // Never more than `max-ttl`: more is left only when the system clock stepped
            // back since the insert, and a client must not keep our answer that long.
            (expires - now).min(u64::from(self.clamp(u32::MAX))) as u32
        } else if now >= expires.saturating_add(u64::from(self.stale_max_age)) {
            // Expired entries stay (within the byte bound) while they may be served stale.
            shard.remove(key);
            shard.misses += 1;
            return None;
        } else if stale_ok {
            STALE_TTL
        } else {
            shard.misses += 1;
            return None;
        };
        shard.hits += 1;
        drop(shard);
        let mut records = decode_records(&data, ttl);
        Some(match kind {
            Kind::Records => {
                // The RRSIGs after the RRset, unless the RRset is itself one of RRSIGs.
                let rrsig = u16::from(hickory_proto::rr::RecordType::RRSIG);
                let sigs = if key_type(key) == Some(rrsig) {
                    Vec::new()
                } else {
                    let at = records
                        .iter()
                        .position(|r| r.record_type() == hickory_proto::rr::RecordType::RRSIG)
                        .unwrap_or(records.len());
                    records.split_off(at)
                };
                (Cached::Records(records), sigs)
            }
            Kind::NxDomain => (Cached::NxDomain(records.pop()), Vec::new()),
            Kind::NoData => (Cached::NoData(records.pop()), Vec::new()),
        })
    }

    /// Caches an RRset (all records share the owner and type of `q`). The RRset's TTL is its
    /// lowest record TTL (RFC 2181 §5.2), clamped to `min-ttl..=max-ttl`.
    pub fn insert_records(&self, q: Question, records: &[Record], now: u64) {
        self.insert_signed(q, records, &[], now);
    }

    /// [`Self::insert_records`] with the RRset's RRSIGs, kept beside it (their TTLs do not
    /// shorten the entry: a signature is served with its RRset's TTL).
    pub fn insert_signed(&self, q: Question, records: &[Record], sigs: &[Record], now: u64) {
        if q.qtype == hickory_proto::rr::RecordType::DNAME {
            self.dnames
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let Some(ttl) = records.iter().map(|r| r.ttl).min() else {
            return;
        };
        let ttl = self.clamp(ttl);
        let rrsig = hickory_proto::rr::RecordType::RRSIG;
        let sigs = sigs.iter().filter(|_| q.qtype != rrsig);
        let refs: Vec<&Record> = records.iter().chain(sigs).collect();
        if let Some(data) = encode_records(&refs) {
            self.put(KeyBuf::of(&q).as_bytes(), Kind::Records, data, ttl, now);
        }
    }

    /// `ttl` within `min-ttl..=max-ttl`.
    pub fn clamp(&self, ttl: u32) -> u32 {
        ttl.clamp(self.min_ttl, self.max_ttl.max(self.min_ttl))
    }

    /// The TTL a negative answer with this SOA is cached for: min(SOA TTL, SOA MINIMUM)
    /// (RFC 2308 §5), capped by `max-negative-ttl`; `None` (not cached) without an SOA.
    pub fn negative_ttl(&self, soa: Option<&Record>) -> Option<u32> {
        soa.and_then(negative_ttl)
            .map(|t| t.min(self.max_negative_ttl))
    }

    /// Caches a negative answer. Its TTL is min(SOA TTL, SOA MINIMUM) (RFC 2308 §5), capped by
    /// `max-negative-ttl`; without an SOA the answer is not cached (RFC 2308 §5).
    pub fn insert_negative(&self, q: Question, nxdomain: bool, soa: Option<Record>, now: u64) {
        let Some(ttl) = self.negative_ttl(soa.as_ref()) else {
            return;
        };
        let Some(data) = soa.as_ref().and_then(|s| encode_records(&[s])) else {
            return;
        };
        let key = KeyBuf::of(&q);
        if nxdomain {
            let Some(nx) = KeyBuf::from_wire(key.name(), NXDOMAIN_KEY_TYPE, u16::from(q.qclass))
            else {
                return;
            };
            self.put(nx.as_bytes(), Kind::NxDomain, data, ttl, now);
        } else {
            self.put(key.as_bytes(), Kind::NoData, data, ttl, now);
        }
    }

    /// Remembers that resolving `q` failed, for `servfail-ttl` seconds (RFC 9520 §3.2: at
    /// least 1 s), so a failing name does not hammer its servers.
    pub fn insert_servfail(&self, q: Question, now: u64) {
        if self.servfail_ttl > 0 {
            let until = now.saturating_add(u64::from(self.servfail_ttl));
            self.failures
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .put(KeyBuf::of(&q).as_bytes().into(), until);
        }
    }

    /// Remembers that the answer to `q` was bogus (EDE `ede`, `why`) for 60 s.
    pub fn insert_bogus(&self, q: &Question, ede: u16, why: String, now: u64) {
        let until = now.saturating_add(crate::dnssec::keycache::BOGUS_TTL);
        self.bogus
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .put(KeyBuf::of(q).as_bytes().into(), (until, ede, why));
    }

    /// The EDE code and reason of a bogus answer to `q` remembered less than 60 s ago.
    pub fn bogus(&self, q: &Question, now: u64) -> Option<(u16, String)> {
        let key = KeyBuf::of(q);
        let mut bogus = self.bogus.lock().unwrap_or_else(|e| e.into_inner());
        match bogus.get(key.as_bytes()) {
            Some((until, ede, why))
                if *until > now && *until - now <= crate::dnssec::keycache::BOGUS_TTL =>
            {
                Some((*ede, why.clone()))
            }
            Some(_) => {
                bogus.pop(key.as_bytes());
                None
            }
            None => None,
        }
    }

    fn failed_recently(&self, key: &[u8], now: u64) -> bool {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        match failures.get(key) {
            // Longer left than `servfail-ttl`: the clock stepped back; forget the failure.
            Some(until) if *until > now && *until - now <= u64::from(self.servfail_ttl) => true,
            Some(_) => {
                failures.pop(key);
                false
            }
            None => false,
        }
    }

    fn put(&self, key: &[u8], kind: Kind, data: Box<[u8]>, ttl: u32, now: u64) {
        if ttl == 0 {
            return;
        }
        let entry = Entry {
            expires: now.saturating_add(u64::from(ttl)),
            kind,
            data,
        };
        self.store.shard(key).put(key, entry);
    }

    /// Drops every entry for `name` (all types, and its NXDOMAIN), and a failure remembered
    /// for it. Returns how many entries went.
    pub fn flush_name(&self, name: &[u8]) -> usize {
        self.flush(Names::Exact(name))
    }

    /// Drops every entry at or below `zone`.
    pub fn flush_zone(&self, zone: &[u8]) -> usize {
        self.flush(Names::Zone(zone))
    }

    fn flush(&self, names: Names<'_>) -> usize {
        let gone = self.store.flush(names);
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let doomed: Vec<Box<[u8]>> = failures
            .iter()
            .filter(|(k, _)| names.contains(key_name(k)))
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            failures.pop(&k);
        }
        drop(failures);
        let mut bogus = self.bogus.lock().unwrap_or_else(|e| e.into_inner());
        let doomed: Vec<Box<[u8]>> = bogus
            .iter()
            .filter(|(k, _)| names.contains(key_name(k)))
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            bogus.pop(&k);
        }
        gone
    }

    pub fn clear(&self) {
        self.store.for_each_shard(|s| s.clear());
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.bogus.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Every entry not yet past serve-stale, as (key, expiry, kind, wire records), for
    /// `dump-cache`.
    pub fn export(&self, mut each: impl FnMut(&[u8], u64, Kind, &[u8])) {
        self.store.for_each_shard(|s| {
            for (k, e) in s.lru.iter().rev() {
                each(k, e.expires, e.kind, &e.data);
            }
        });
    }

    /// Takes back one exported entry if it has not expired by `now`. Returns whether it did.
    /// The records are checked by decoding them first: a dump file is input, not trusted.
    pub fn import(&self, key: &[u8], expires: u64, kind: Kind, data: &[u8], now: u64) -> bool {
        if expires <= now || key.len() < 5 || key.len() > crate::dns::wire::MAX_KEY {
            return false;
        }
        let records = decode_records(data, 0);
        let valid = match kind {
            Kind::Records => !records.is_empty(),
            Kind::NxDomain | Kind::NoData => records.len() == 1,
        };
        if !valid {
            return false;
        }
        let entry = Entry {
            expires,
            kind,
            data: data.into(),
        };
        self.store.shard(key).put(key, entry);
        true
    }

    pub fn stats(&self) -> StoreStats {
        self.store.stats()
    }

    /// Number of entries held (expired ones included until they are touched or evicted).
    pub fn len(&self) -> usize {
        self.stats().entries
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The type at the end of a key (name, type, class).
fn key_type(key: &[u8]) -> Option<u16> {
    let at = key.len().checked_sub(4)?;
    Some(u16::from_be_bytes([key[at], key[at + 1]]))
}

/// RFC 2308 §5: the negative TTL is the minimum of the SOA's own TTL and its MINIMUM field.
fn negative_ttl(soa: &Record) -> Option<u32> {
    match &soa.data {
        hickory_proto::rr::RData::SOA(s) => Some(soa.ttl.min(s.minimum)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, AAAA, SOA};
    use hickory_proto::rr::{Name, RData};

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

    /// Issue 17.1: a lone address record is written without the compression bookkeeping;
    /// its bytes are those compression writes, and larger sets are still compressed.
    #[test]
    fn a_lone_address_record_is_stored_as_compression_would_write_it() {
        let compressed = |records: &[&Record]| {
            let mut buf = Vec::new();
            let mut encoder = BinEncoder::new(&mut buf);
            for r in records {
                r.emit(&mut encoder).unwrap();
            }
            buf
        };
        let aaaa = Record::from_rdata(
            name("www.example."),
            300,
            RData::AAAA(AAAA::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
        );
        for r in [a("www.example.", 300), aaaa] {
            assert_eq!(&*encode_records(&[&r]).unwrap(), &compressed(&[&r])[..]);
        }
        let (one, two) = (a("www.example.", 300), a("www.example.", 300));
        let set = encode_records(&[&one, &two]).unwrap();
        assert_eq!(&*set, &compressed(&[&one, &two])[..]);
        assert_eq!(
            set.len(),
            (13 + 14) + (2 + 14),
            "the second owner is a pointer"
        );
        let back = decode_records(&set, 60);
        assert_eq!(back.len(), 2);
    }

    #[test]
    fn ttl_counts_down_and_entry_expires() {
        let c = AnswerCache::new(&CacheConfig::default());
        let q = Question::new(name("www.example."), RecordType::A);
        c.insert_records(q.clone(), &[a("www.example.", 300)], 1000);
        let Some(Cached::Records(rs)) = c.get(&q, 1100) else {
            panic!("expected records")
        };
        assert_eq!(rs[0].ttl, 200);
        assert_eq!(c.get(&q, 1300), None);
    }

    /// Issue 11.8: the system clock stepping back (NTP, a restored VM) must not panic, and
    /// no answer may then be served with more than `max-ttl` left or a failure remembered
    /// for longer than `servfail-ttl`.
    #[test]
    fn a_clock_that_steps_back_keeps_ttls_within_their_bounds() {
        let config = CacheConfig {
            max_ttl: 3_600,
            ..CacheConfig::default()
        };
        let c = AnswerCache::new(&config);
        let q = Question::new(name("www.example."), RecordType::A);
        c.insert_records(q.clone(), &[a("www.example.", 300)], 1_000_000);
        let Some(Cached::Records(rs)) = c.get(&q, 999_900) else {
            panic!("expected records")
        };
        assert_eq!(rs[0].ttl, 400, "100 s back: 100 s more, within max-ttl");
        let Some(Cached::Records(rs)) = c.get(&q, 0) else {
            panic!("expected records")
        };
        assert_eq!(rs[0].ttl, 3_600, "a step of days: capped at max-ttl");
        let failed = Question::new(name("fail.example."), RecordType::A);
        c.insert_servfail(failed.clone(), 1_000_000);
        assert_eq!(c.get(&failed, 1_000_001), Some(Cached::ServFail));
        assert_eq!(
            c.get(&failed, 0),
            None,
            "the failure is forgotten, not kept for days"
        );
    }

    #[test]
    fn lookup_ignores_case() {
        let c = AnswerCache::new(&CacheConfig::default());
        c.insert_records(
            Question::new(name("WWW.Example."), RecordType::A),
            &[a("www.example.", 300)],
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
        c.insert_records(q1.clone(), &[a("a.example.", 5)], 0);
        c.insert_records(q2.clone(), &[a("b.example.", 86_400)], 0);
        assert!(matches!(c.get(&q1, 0), Some(Cached::Records(r)) if r[0].ttl == 60));
        assert!(matches!(c.get(&q2, 0), Some(Cached::Records(r)) if r[0].ttl == 600));
    }

    /// RFC 8020 §2 with a bound: the walk up from the question stops at the names known to
    /// exist (`exists` labels or fewer), but always probes the question's own name.
    #[test]
    fn nxdomain_walk_stops_at_the_names_known_to_exist() {
        let c = AnswerCache::new(&CacheConfig::default());
        let nx = |name: &str| Question::new(Name::from_ascii(name).unwrap(), RecordType::A);
        c.insert_negative(nx("a.example.com."), true, Some(soa(900, 120)), 0);
        let below = nx("www.x.A.example.com.");
        for exists in 0..=2 {
            assert!(
                matches!(
                    c.nxdomain_above(&below, exists, 1),
                    Some(Cached::NxDomain(_))
                ),
                "exists {exists}"
            );
        }
        assert!(
            c.nxdomain_above(&below, 3, 1).is_none(),
            "a.example.com. exists"
        );
        let own = nx("a.example.com.");
        assert!(matches!(
            c.nxdomain_above(&own, 3, 1),
            Some(Cached::NxDomain(_))
        ));
        assert!(matches!(c.get(&below, 1), Some(Cached::NxDomain(_))));
        assert!(c
            .nxdomain_above(&Question::new(Name::root(), RecordType::NS), 0, 1)
            .is_none());
        assert_eq!(wire_labels(&[1, b'*', 3, b'c', b'o', b'm', 0]).count(), 2);
        assert_eq!(wire_labels(&[0]).count(), 0);
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
        c.insert_records(q.clone(), &[a("www.example.", 300)], 0);
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
        off.insert_records(q.clone(), &[a("www.example.", 300)], 0);
        assert_eq!(off.get_stale(&q, 400), None, "serve-stale off");
    }

    /// RRSIGs are kept beside their RRset: a signed lookup returns them apart from the
    /// data, a plain one leaves them out, and the CNAME link of a chain keeps its own.
    #[test]
    fn rrsigs_are_kept_beside_their_rrset() {
        let c = AnswerCache::new(&CacheConfig::default());
        let q = Question::new(name("www.example."), RecordType::A);
        let sig = crate::dns::fake_rrsig("www.example.", RecordType::A, 300);
        c.insert_signed(q.clone(), &[a("www.example.", 300)], &[sig], 1000);
        let Some((Cached::Records(rs), sigs)) = c.get_signed(&q, 1100) else {
            panic!("expected records")
        };
        assert_eq!(rs.len(), 1);
        assert_eq!(rs[0].record_type(), RecordType::A);
        assert_eq!(sigs.len(), 1);
        assert_eq!(sigs[0].ttl, 200, "counted down with its RRset");
        assert!(matches!(c.get(&q, 1100), Some(Cached::Records(r)) if r.len() == 1));
        assert!(
            matches!(c.get_stale_signed(&q, 1400), Some((Cached::Records(_), s)) if s.len() == 1 && s[0].ttl == STALE_TTL),
            "served stale with its signature"
        );
        // An RRset of RRSIGs (asked for by type) is data, not signatures.
        let rq = Question::new(name("www.example."), RecordType::RRSIG);
        let rrsig = crate::dns::fake_rrsig("www.example.", RecordType::A, 300);
        c.insert_signed(rq.clone(), &[rrsig], &[], 1000);
        assert!(
            matches!(c.get_signed(&rq, 1000), Some((Cached::Records(r), s)) if r.len() == 1 && s.is_empty())
        );
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
        // 1 MiB in all: half of it for RRsets.
        let cfg = CacheConfig {
            size_bytes: 1 << 20,
            ..CacheConfig::default()
        };
        let c = AnswerCache::new(&cfg);
        for i in 0..100_000 {
            let n = format!("n{i}.example.");
            c.insert_records(Question::new(name(&n), RecordType::A), &[a(&n, 300)], 0);
        }
        let st = c.stats();
        assert!(st.bytes <= cfg.rrset_bytes(), "{st:?}");
        assert!(st.evictions > 0, "{st:?}");
        // The most recent names are still there; the first ones went.
        let last = Question::new(name("n99999.example."), RecordType::A);
        assert!(c.get(&last, 1).is_some());
        let first = Question::new(name("n0.example."), RecordType::A);
        assert_eq!(c.get(&first, 1), None);
    }
}
