//! The storage under the answer and message caches: sharded LRU maps bounded in bytes.
//!
//! Keys are the wire form of a question with the name lowercased ([`KeyBuf`]), so a lookup
//! borrows a stack buffer and allocates nothing. Each shard is one `Mutex` around an
//! unbounded `lru::LruCache` plus a byte count; an insert evicts least recently used
//! entries until the shard is back under its share of the budget. Counters live inside the
//! shard, updated under the lock already held, so counting a hit costs no shared cache line.

use std::sync::{Mutex, MutexGuard};

use hickory_proto::rr::{DNSClass, Name, RecordType};
use lru::LruCache;

use crate::dns::Question;

/// Shards per store: a question hashes to one, so workers rarely meet on a lock.
pub const STORE_SHARDS: usize = 64;

/// Bytes charged per entry beyond its key and value: the LRU node (two list pointers, the
/// key and value headers), the hash table slot and the allocator's headers of the two boxes.
/// Estimated from `size_of` and malloc's 16-byte granularity; `benches/load` checks it
/// against RSS.
pub const ENTRY_OVERHEAD: usize = 112;

/// Longest key: a 255-byte wire name, type and class.
pub const MAX_KEY: usize = 255 + 4;

/// A question key built on the stack: lowercase wire name, then type and class.
pub struct KeyBuf {
    buf: [u8; MAX_KEY],
    len: usize,
}

impl KeyBuf {
    /// The key of `q` (its name is already lowercase: [`Question`] keeps it so).
    pub fn of(q: &Question) -> Self {
        Self::from_parts(&q.name, q.qtype, q.qclass)
    }

    pub fn from_parts(name: &Name, qtype: RecordType, qclass: DNSClass) -> Self {
        let mut k = KeyBuf {
            buf: [0; MAX_KEY],
            len: 0,
        };
        for label in name.iter() {
            // A Name holds at most 255 wire bytes, so this never overruns.
            let n = label.len().min(63);
            if k.len + 1 + n + 1 + 4 > MAX_KEY {
                break;
            }
            k.buf[k.len] = n as u8;
            for (d, s) in k.buf[k.len + 1..k.len + 1 + n].iter_mut().zip(label) {
                *d = s.to_ascii_lowercase();
            }
            k.len += 1 + n;
        }
        k.buf[k.len] = 0;
        k.len += 1;
        k.push_type_class(u16::from(qtype), u16::from(qclass));
        k
    }

    /// The key of a wire name (uncompressed, already checked) with type and class,
    /// lowercasing as it copies: the fast path builds its key straight from the query bytes.
    #[inline(always)]
    pub fn from_wire(name: &[u8], qtype: u16, qclass: u16) -> Option<Self> {
        if name.len() + 4 > MAX_KEY {
            return None;
        }
        let mut k = KeyBuf {
            buf: [0; MAX_KEY],
            len: name.len(),
        };
        for (d, s) in k.buf[..name.len()].iter_mut().zip(name) {
            *d = s.to_ascii_lowercase();
        }
        k.push_type_class(qtype, qclass);
        Some(k)
    }

    fn push_type_class(&mut self, qtype: u16, qclass: u16) {
        self.buf[self.len..self.len + 2].copy_from_slice(&qtype.to_be_bytes());
        self.buf[self.len + 2..self.len + 4].copy_from_slice(&qclass.to_be_bytes());
        self.len += 4;
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The wire name part of the key.
    pub fn name(&self) -> &[u8] {
        &self.buf[..self.len - 4]
    }
}

/// The wire name at the start of a key.
pub fn key_name(key: &[u8]) -> &[u8] {
    &key[..key.len().saturating_sub(4)]
}

/// The offset just past the (possibly compressed) name at `at` in a message; `None` if it
/// runs off the end or holds a label type other than length or pointer.
pub fn skip_name(wire: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *wire.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => return Some(at + 2),
            l if l <= 63 => at += 1 + usize::from(l),
            _ => return None,
        }
    }
}

/// The labels of an uncompressed wire name.
pub fn wire_labels(name: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let len = usize::from(*name.get(at)?);
        if len == 0 {
            return None;
        }
        let label = name.get(at + 1..at + 1 + len)?;
        at += 1 + len;
        Some(label)
    })
}

/// Whether wire name `name` is `zone` or below it (both lowercase, uncompressed).
pub fn wire_is_under(name: &[u8], zone: &[u8]) -> bool {
    let mut at = 0;
    while at < name.len() {
        if name[at..] == *zone {
            return true;
        }
        let len = usize::from(name[at]);
        if len == 0 {
            break;
        }
        at += 1 + len;
    }
    zone == [0]
}

/// Which names a flush removes.
#[derive(Clone, Copy, Debug)]
pub enum Names<'a> {
    /// Exactly this wire name (every type).
    Exact(&'a [u8]),
    /// This wire name and every name below it.
    Zone(&'a [u8]),
}

impl Names<'_> {
    pub fn contains(&self, name: &[u8]) -> bool {
        match self {
            Names::Exact(n) => name == *n,
            Names::Zone(z) => wire_is_under(name, z),
        }
    }
}

/// Something whose heap footprint is known.
pub trait Weigh {
    /// Bytes held by the value beyond `size_of::<Self>()`.
    fn heap_bytes(&self) -> usize;
}

/// Counters of one store, summed over its shards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub entries: usize,
    pub bytes: usize,
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
}

pub struct Shard<V> {
    pub lru: LruCache<Box<[u8]>, V>,
    bytes: usize,
    limit: usize,
    pub hits: u64,
    pub misses: u64,
    evictions: u64,
}

fn charge<V: Weigh>(key: &[u8], value: &V) -> usize {
    key.len() + std::mem::size_of::<V>() + value.heap_bytes() + ENTRY_OVERHEAD
}

impl<V: Weigh> Shard<V> {
    /// Inserts or replaces, then evicts from the cold end until within the byte limit.
    /// An entry larger than the whole shard is not kept.
    pub fn put(&mut self, key: &[u8], value: V) {
        let cost = charge(key, &value);
        if cost > self.limit {
            self.remove(key);
            return;
        }
        if let Some(old) = self.lru.get_mut(key) {
            let old_cost = charge(key, old);
            *old = value;
            self.bytes = self.bytes + cost - old_cost;
        } else {
            self.lru.push(key.into(), value);
            self.bytes += cost;
        }
        while self.bytes > self.limit {
            let Some((k, v)) = self.lru.pop_lru() else {
                break;
            };
            self.bytes -= charge(&k, &v);
            self.evictions += 1;
        }
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<V> {
        let v = self.lru.pop(key)?;
        self.bytes -= charge(key, &v);
        Some(v)
    }

    /// Removes every entry whose key matches.
    pub fn remove_where(&mut self, mut matches: impl FnMut(&[u8]) -> bool) -> usize {
        let doomed: Vec<Box<[u8]>> = self
            .lru
            .iter()
            .filter(|(k, _)| matches(k))
            .map(|(k, _)| k.clone())
            .collect();
        for k in &doomed {
            self.remove(k);
        }
        doomed.len()
    }

    pub fn clear(&mut self) {
        self.lru.clear();
        self.bytes = 0;
    }
}

/// Shards of byte-bounded LRU maps; `limit` bytes in all.
pub struct Store<V> {
    shards: Box<[Mutex<Shard<V>>]>,
}

impl<V: Weigh> Store<V> {
    pub fn new(limit: usize) -> Self {
        let per_shard = (limit / STORE_SHARDS).max(1);
        Self {
            shards: (0..STORE_SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        lru: LruCache::unbounded(),
                        bytes: 0,
                        limit: per_shard,
                        hits: 0,
                        misses: 0,
                        evictions: 0,
                    })
                })
                .collect(),
        }
    }

    /// The shard holding `key`, locked. A poisoned lock only means another thread panicked
    /// mid-update of plain values; the map is still consistent enough to serve.
    pub fn shard(&self, key: &[u8]) -> MutexGuard<'_, Shard<V>> {
        self.shards[shard_index(key)]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    pub fn for_each_shard(&self, mut f: impl FnMut(&mut Shard<V>)) {
        for s in self.shards.iter() {
            f(&mut s.lock().unwrap_or_else(|e| e.into_inner()));
        }
    }

    /// Removes the entries whose key names one of `names`; returns how many.
    pub fn flush(&self, names: Names<'_>) -> usize {
        let mut gone = 0;
        self.for_each_shard(|s| gone += s.remove_where(|k| names.contains(key_name(k))));
        gone
    }

    pub fn stats(&self) -> StoreStats {
        let mut st = StoreStats::default();
        self.for_each_shard(|s| {
            st.entries += s.lru.len();
            st.bytes += s.bytes;
            st.hits += s.hits;
            st.misses += s.misses;
            st.evictions += s.evictions;
        });
        st
    }
}

/// FNV-1a over the key: cheap for short keys and spreads names well enough to pick a shard
/// (the map inside the shard has its own hasher).
fn shard_index(key: &[u8]) -> usize {
    let mut h: u32 = 0x811c_9dc5;
    for b in key {
        h = (h ^ u32::from(*b)).wrapping_mul(0x0100_0193);
    }
    (h as usize) % STORE_SHARDS
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Weigh for Vec<u8> {
        fn heap_bytes(&self) -> usize {
            self.capacity()
        }
    }

    #[test]
    fn keys_are_lowercase_wire_names_with_type_and_class() {
        let q = Question::new(Name::from_ascii("WwW.Example.").unwrap(), RecordType::A);
        let k = KeyBuf::of(&q);
        assert_eq!(k.as_bytes(), b"\x03www\x07example\x00\x00\x01\x00\x01");
        let w = KeyBuf::from_wire(b"\x03WWW\x07exAMPLE\x00", 1, 1).unwrap();
        assert_eq!(w.as_bytes(), k.as_bytes());
    }

    #[test]
    fn under_a_zone_means_at_a_label_boundary() {
        assert!(wire_is_under(b"\x03www\x07example\x00", b"\x07example\x00"));
        assert!(wire_is_under(b"\x07example\x00", b"\x07example\x00"));
        assert!(!wire_is_under(
            b"\x07example\x00",
            b"\x03www\x07example\x00"
        ));
        assert!(!wire_is_under(b"\x08xexample\x00", b"\x07example\x00"));
        assert!(wire_is_under(b"\x07example\x00", b"\x00"));
    }

    #[test]
    fn a_shard_stays_within_its_byte_limit() {
        let store: Store<Vec<u8>> = Store::new(STORE_SHARDS * 4096);
        for i in 0..10_000u32 {
            let key = i.to_be_bytes();
            store.shard(&key).put(&key, vec![0u8; 100]);
        }
        let st = store.stats();
        assert!(st.bytes <= STORE_SHARDS * 4096, "{st:?}");
        assert!(st.evictions > 0);
        // Each entry costs 4 + 24 + 100 + overhead bytes: the shards are nearly full.
        let per = 4 + std::mem::size_of::<Vec<u8>>() + 100 + ENTRY_OVERHEAD;
        assert!(
            st.entries >= STORE_SHARDS * (4096 / per) - STORE_SHARDS,
            "{st:?}"
        );
    }

    #[test]
    fn replacing_an_entry_recounts_its_bytes() {
        let store: Store<Vec<u8>> = Store::new(STORE_SHARDS * 100_000);
        store.shard(b"k").put(b"k", vec![0u8; 1000]);
        store.shard(b"k").put(b"k", vec![0u8; 10]);
        assert_eq!(
            store.stats().bytes,
            1 + std::mem::size_of::<Vec<u8>>() + 10 + ENTRY_OVERHEAD
        );
        assert!(store.shard(b"k").remove(b"k").is_some());
        assert_eq!(store.stats().bytes, 0);
    }
}
