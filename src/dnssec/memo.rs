//! Signatures already verified, so the same RRSIG over the same data with the same key is
//! checked once, not once per answer: an NSEC3 record covering many names, a wildcard's
//! RRSIG (the same signed data for every expansion, RFC 4035 §5.3.2), a zone's DNSKEY set.
//! Unbound gets the same effect by keeping validated RRsets with their security status in
//! its RRset cache (`validator/val_utils.c`, `rrset_check_sec_status`).
//!
//! An entry is keyed by a SHA-256 digest of exactly what the cryptography decides on: the
//! signed data (RRSIG RDATA without the signature, then the canonical RRset, RFC 4034
//! §3.1.8.1, built by hickory-proto's [`TBS`]), the signature, the algorithm and the public
//! key. A changed record, a different signature or another key gives another digest, so
//! it never hits; only successes are kept. An entry lives for the validated data's TTL,
//! which [`super::verify::verify_rrset`] caps at the signature's expiration; the
//! validity window is checked on every use before the memo is consulted. Bounded (least
//! recently used go first) and cleared with the key cache ([`super::keycache::KeyCache`]).

use std::num::NonZeroUsize;
use std::sync::Mutex;

use hickory_proto::dnssec::crypto::Digest;
use hickory_proto::dnssec::{DigestType, TBS};
use lru::LruCache;

/// Entries kept at most, over all shards: about 100 bytes each (a 32-byte digest, an
/// expiry, the LRU's links), so about 3 MB when full.
pub const MAX_ENTRIES: usize = 32_768;

/// Shards, so workers validating at once rarely wait on one lock.
const SHARDS: usize = 16;

/// What one (signed data, signature, key) triple is remembered by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MemoKey([u8; 32]);

impl MemoKey {
    /// The digest of the signed data, the signature, the algorithm and the public key, each
    /// with its length first so no two inputs concatenate alike.
    pub fn new(tbs: &TBS, signature: &[u8], algorithm: u8, public_key: &[u8]) -> MemoKey {
        let tbs = tbs.as_ref();
        let (l1, l2, l3) = (
            (tbs.len() as u32).to_be_bytes(),
            (signature.len() as u32).to_be_bytes(),
            (public_key.len() as u32).to_be_bytes(),
        );
        let parts: [&[u8]; 7] = [&l1, tbs, &l2, signature, &[algorithm], &l3, public_key];
        let digest =
            Digest::from_iter(parts, DigestType::SHA256).expect("SHA-256 is always available");
        let mut out = [0; 32];
        out.copy_from_slice(&digest.as_ref()[..32]);
        MemoKey(out)
    }

    fn shard(&self) -> usize {
        usize::from(self.0[0]) % SHARDS
    }
}

/// The successful verifications, each with the time (seconds since the epoch) it expires.
#[derive(Debug)]
pub struct SigMemo {
    shards: Vec<Mutex<LruCache<MemoKey, u64>>>,
}

impl Default for SigMemo {
    fn default() -> SigMemo {
        SigMemo::new(MAX_ENTRIES)
    }
}

impl SigMemo {
    /// A memo of at most `max` entries (at least one per shard).
    pub fn new(max: usize) -> SigMemo {
        let per = NonZeroUsize::new(max.div_ceil(SHARDS).max(1)).expect("max(1)");
        SigMemo {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(LruCache::new(per)))
                .collect(),
        }
    }

    fn lock(&self, key: &MemoKey) -> std::sync::MutexGuard<'_, LruCache<MemoKey, u64>> {
        self.shards[key.shard()]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Whether this triple verified before and its entry is still live at `now`.
    pub fn contains(&self, key: &MemoKey, now: u64) -> bool {
        let mut shard = self.lock(key);
        match shard.get(key) {
            Some(&expires) if expires > now => true,
            Some(_) => {
                shard.pop(key);
                false
            }
            None => false,
        }
    }

    /// Remembers a successful verification for `ttl` seconds (nothing for a TTL of 0).
    pub fn insert(&self, key: MemoKey, ttl: u32, now: u64) {
        if ttl == 0 {
            return;
        }
        self.lock(&key).put(key, now + u64::from(ttl));
    }

    /// Forgets everything (with the key cache: `ctl flush-zone`, `flush-all`).
    pub fn clear(&self) {
        for s in &self.shards {
            s.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> MemoKey {
        MemoKey::new(&TBS::from(&n.to_be_bytes()[..]), b"sig", 13, b"public")
    }

    #[test]
    fn a_remembered_verification_hits_until_its_ttl_runs_out() {
        let memo = SigMemo::default();
        assert!(
            !memo.contains(&key(1), 100),
            "nothing before the first insert"
        );
        memo.insert(key(1), 60, 100);
        assert!(memo.contains(&key(1), 159));
        assert!(!memo.contains(&key(2), 159), "other data misses");
        assert!(!memo.contains(&key(1), 160), "expired at 100 + 60");
        assert!(memo.is_empty(), "the expired entry went on the way");
        memo.insert(key(3), 0, 100);
        assert!(memo.is_empty(), "a TTL of 0 is not kept");
    }

    #[test]
    fn every_part_of_the_triple_is_in_the_key() {
        let tbs = TBS::from(&b"signed data"[..]);
        let base = MemoKey::new(&tbs, b"sig", 13, b"key");
        assert_ne!(
            base,
            MemoKey::new(&TBS::from(&b"signed datA"[..]), b"sig", 13, b"key")
        );
        assert_ne!(base, MemoKey::new(&tbs, b"siG", 13, b"key"));
        assert_ne!(base, MemoKey::new(&tbs, b"sig", 15, b"key"));
        assert_ne!(base, MemoKey::new(&tbs, b"sig", 13, b"keY"));
        // Moving a byte from one part to the next changes the key (lengths are hashed).
        assert_ne!(
            MemoKey::new(&TBS::from(&b"ab"[..]), b"c", 13, b"k"),
            MemoKey::new(&TBS::from(&b"a"[..]), b"bc", 13, b"k")
        );
        assert_eq!(base, MemoKey::new(&tbs, b"sig", 13, b"key"));
    }

    #[test]
    fn the_memo_is_bounded_and_clear_empties_it() {
        let memo = SigMemo::new(64);
        for n in 0..10_000 {
            memo.insert(key(n), 3600, 0);
        }
        assert!(memo.len() <= 64, "{} entries", memo.len());
        assert!(memo.contains(&key(9_999), 1), "the newest stays");
        assert!(!memo.contains(&key(0), 1), "the oldest went first");
        memo.clear();
        assert!(memo.is_empty());
    }
}
