//! The storage under the answer and message caches: sharded LRU maps bounded in bytes.
//!
//! Keys are the wire form of a question with the name lowercased ([`KeyBuf`]), so a lookup
//! borrows a stack buffer and allocates nothing. Each shard is one `Mutex` around an
//! unbounded `lru::LruCache` plus a byte count; an insert evicts least recently used
//! entries until the shard is back under its share of the budget. Counters live inside the
//! shard, updated under the lock already held, so counting a hit costs no shared cache line.

use std::sync::{Mutex, MutexGuard};

use lru::LruCache;

use crate::dns::wire::{key_name, wire_is_under};

/// Shards per store: a question hashes to one, so workers rarely meet on a lock.
pub const STORE_SHARDS: usize = 64;

/// Bytes charged per entry beyond its key and value: the LRU node (two list pointers, the
/// key and value headers), the hash table slot and the allocator's headers of the two boxes.
/// Estimated from `size_of` and malloc's 16-byte granularity; `benches/load` checks it
/// against RSS.
pub const ENTRY_OVERHEAD: usize = 112;

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
        // The LRU is unbounded (the byte limit below evicts), so `push` gives back only the
        // entry it replaced under the same key: one hash lookup for a new key, not two.
        match self.lru.push(key.into(), value) {
            Some((_, old)) => self.bytes = self.bytes + cost - charge(key, &old),
            None => self.bytes += cost,
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
    picker: ShardPicker,
}

/// Picks a key's shard: foldhash, seeded per cache, so names cannot be chosen to crowd one
/// shard (and its share of the budget), and a key is read a word at a time.
#[derive(Debug, Default)]
pub struct ShardPicker(hashbrown::DefaultHashBuilder);

impl ShardPicker {
    /// The shard of `key` among `shards`, from the high bits of its hash (the map inside
    /// the shard uses the low ones of its own).
    pub fn pick(&self, key: &[u8], shards: usize) -> usize {
        use std::hash::BuildHasher;
        (self.0.hash_one(key) >> 32) as usize % shards
    }
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
            picker: ShardPicker::default(),
        }
    }

    /// The shard holding `key`, locked. A poisoned lock only means another thread panicked
    /// mid-update of plain values; the map is still consistent enough to serve.
    pub fn shard(&self, key: &[u8]) -> MutexGuard<'_, Shard<V>> {
        self.shards[self.picker.pick(key, STORE_SHARDS)]
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

#[cfg(test)]
mod tests {
    use super::*;

    impl Weigh for Vec<u8> {
        fn heap_bytes(&self) -> usize {
            self.capacity()
        }
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
