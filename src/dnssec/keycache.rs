//! Validated DNSKEY sets by zone, and the zones found insecure or bogus, with their expiry
//! (Unbound's key cache, validator/val_kcache.c): a walk starts from the deepest entry at or
//! above its signer instead of the anchor. Plain data behind a lock; time is passed in.
//! It holds the [`SigMemo`] of verified signatures too, so a flush forgets both.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use hickory_proto::rr::Name;
use lru::LruCache;

use super::memo::SigMemo;
use super::verify::KeySet;
use super::Verdict;

/// How long a bogus verdict is kept: Unbound's `val-bogus-ttl` (60 s). Short, so a zone
/// fixed by its operator validates again soon, long enough that a bogus zone is not
/// re-walked for every query.
pub const BOGUS_TTL: u64 = 60;

/// Zones kept at most; the least recently used go first.
pub const MAX_ZONES: usize = 10_000;

/// What the cache knows of a zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Known {
    /// Its validated keys.
    Keys(KeySet),
    /// Insecure (an unsigned delegation at or above it) or bogus: no keys to be had.
    Verdict(Verdict),
}

#[derive(Debug)]
struct Entry {
    known: Known,
    expires: u64,
}

#[derive(Debug)]
pub struct KeyCache {
    zones: Mutex<LruCache<Name, Entry>>,
    memo: Arc<SigMemo>,
}

impl Default for KeyCache {
    fn default() -> KeyCache {
        KeyCache::new(MAX_ZONES)
    }
}

impl KeyCache {
    pub fn new(max: usize) -> KeyCache {
        KeyCache {
            zones: Mutex::new(LruCache::new(
                NonZeroUsize::new(max.max(1)).expect("max(1)"),
            )),
            memo: Arc::new(SigMemo::default()),
        }
    }

    /// The verified signatures, for a request's [`super::Budget`] to consult and fill.
    pub fn memo(&self) -> Arc<SigMemo> {
        Arc::clone(&self.memo)
    }

    /// Keeps a validated key set for its TTL.
    pub fn insert_keys(&self, keys: KeySet, now: u64) {
        let zone = keys.zone.to_lowercase();
        let expires = now + u64::from(keys.ttl);
        self.put(zone, Known::Keys(keys), expires);
    }

    /// Keeps a zone's insecure verdict for `ttl` (the TTL of the records that proved it), or
    /// a bogus one for [`BOGUS_TTL`].
    pub fn insert_verdict(&self, zone: &Name, verdict: Verdict, ttl: u32, now: u64) {
        let expires = if verdict.proof == super::Proof::Bogus {
            now + BOGUS_TTL
        } else {
            now + u64::from(ttl)
        };
        self.put(zone.to_lowercase(), Known::Verdict(verdict), expires);
    }

    fn put(&self, zone: Name, known: Known, expires: u64) {
        let mut zones = self.zones.lock().unwrap_or_else(|e| e.into_inner());
        zones.put(zone, Entry { known, expires });
    }

    /// The deepest live entry at or above `name`, with its zone.
    pub fn closest(&self, name: &Name, now: u64) -> Option<(Name, Known)> {
        let name = name.to_lowercase();
        let mut zones = self.zones.lock().unwrap_or_else(|e| e.into_inner());
        for k in (0..=name.iter().count()).rev() {
            let zone = name.trim_to(k);
            match zones.get(&zone) {
                Some(e) if e.expires > now => return Some((zone, e.known.clone())),
                Some(_) => {
                    zones.pop(&zone);
                }
                None => {}
            }
        }
        None
    }

    /// Forgets the key sets and verdicts of `zone` and every zone below it (Unbound's
    /// `flush_zone` drops them from its key cache too); returns how many went. The memo of
    /// verified signatures is emptied whole: its entries are digests, not names.
    pub fn flush_zone(&self, zone: &Name) -> usize {
        self.memo.clear();
        let zone = zone.to_lowercase();
        let mut zones = self.zones.lock().unwrap_or_else(|e| e.into_inner());
        let gone: Vec<Name> = zones
            .iter()
            .filter(|(z, _)| zone.zone_of(z))
            .map(|(z, _)| z.clone())
            .collect();
        for z in &gone {
            zones.pop(z);
        }
        gone.len()
    }

    /// Forgets everything (`ctl flush` of the whole cache).
    pub fn clear(&self) {
        self.memo.clear();
        self.zones.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    pub fn len(&self) -> usize {
        self.zones.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dnssec::testkit::{name, ZoneKey};
    use crate::dnssec::{Proof, Reason};

    fn keys(zone: &str, ttl: u32) -> KeySet {
        let k = ZoneKey::ed25519(zone, true);
        KeySet {
            zone: name(zone),
            keys: vec![k.dnskey],
            ttl,
            entry_key_tag: k.tag,
        }
    }

    #[test]
    fn the_deepest_live_entry_wins_and_entries_expire() {
        let cache = KeyCache::default();
        cache.insert_keys(keys(".", 172_800), 1000);
        cache.insert_keys(keys("com.", 100), 1000);
        let (zone, known) = cache.closest(&name("www.Example.COM."), 1050).unwrap();
        assert_eq!(zone, name("com."));
        assert!(matches!(known, Known::Keys(k) if k.zone == name("com.")));
        // com.'s keys expire at 1100; the root's are still there.
        let (zone, _) = cache.closest(&name("www.example.com."), 1100).unwrap();
        assert!(zone.is_root());
        assert_eq!(cache.len(), 1, "the expired entry is dropped on the way");
    }

    #[test]
    fn bogus_verdicts_last_sixty_seconds_and_insecure_ones_their_ttl() {
        let cache = KeyCache::default();
        cache.insert_verdict(
            &name("bad.example."),
            Verdict::bogus(Reason::DnskeyMissing),
            3600,
            0,
        );
        cache.insert_verdict(&name("plain.example."), Verdict::insecure(None), 3600, 0);
        let at = |n: &str, t| cache.closest(&name(n), t).map(|(_, k)| k);
        assert!(
            matches!(at("www.bad.example.", 59), Some(Known::Verdict(v)) if v.proof == Proof::Bogus)
        );
        assert_eq!(at("www.bad.example.", 60), None);
        assert!(
            matches!(at("www.plain.example.", 3599), Some(Known::Verdict(v)) if v.proof == Proof::Insecure)
        );
    }

    #[test]
    fn a_zone_flush_takes_its_keys_and_those_below_and_clear_takes_all() {
        let cache = KeyCache::default();
        for z in [
            ".",
            "com.",
            "example.com.",
            "sub.example.com.",
            "example.net.",
        ] {
            cache.insert_keys(keys(z, 100), 0);
        }
        let memo_key = crate::dnssec::memo::MemoKey::new(
            &hickory_proto::dnssec::TBS::from(&b"data"[..]),
            b"sig",
            15,
            b"key",
        );
        cache.memo().insert(memo_key, 100, 0);
        assert_eq!(cache.flush_zone(&name("Example.COM.")), 2);
        assert!(
            cache.memo().is_empty(),
            "verified signatures go with a flush"
        );
        let (zone, _) = cache.closest(&name("www.sub.example.com."), 1).unwrap();
        assert_eq!(zone, name("com."), "the keys above stay");
        assert_eq!(cache.len(), 3);
        cache.clear();
        assert!(cache.is_empty());
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = KeyCache::new(2);
        for z in ["a.", "b.", "c."] {
            cache.insert_keys(keys(z, 100), 0);
        }
        assert_eq!(cache.len(), 2);
        assert!(
            cache.closest(&name("x.a."), 1).is_none(),
            "least recently used went first"
        );
    }
}
