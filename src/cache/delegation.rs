//! The delegation cache: zone cuts learned from referrals (NS names and their glue), kept
//! apart from answers so a referral never fights an authoritative NS answer over one entry
//! (hickory-dns #3729). A question under a known zone starts at the closest cached cut.

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::Mutex;

use hickory_proto::rr::Name;
use lru::LruCache;

use super::{shard_of, SHARDS};

/// One name server of a zone cut, with the addresses known for it (glue, or looked up).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NsName {
    pub name: Name,
    pub addrs: Vec<IpAddr>,
}

/// A zone cut: the zone and its name servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delegation {
    pub zone: Name,
    pub servers: Vec<NsName>,
}

#[derive(Clone, Debug)]
struct Entry {
    delegation: Delegation,
    expires: u64,
}

#[derive(Debug)]
pub struct DelegationCache {
    shards: Vec<Mutex<LruCache<Name, Entry>>>,
    max_ttl: u32,
}

impl DelegationCache {
    pub fn new(entries: usize, max_ttl: u32) -> Self {
        let per_shard = NonZeroUsize::new((entries / SHARDS).max(1)).expect("max(1)");
        Self {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(LruCache::new(per_shard)))
                .collect(),
            max_ttl,
        }
    }

    fn shard(&self, zone: &Name) -> std::sync::MutexGuard<'_, LruCache<Name, Entry>> {
        self.shards[shard_of(zone)]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers a cut for `ttl` seconds (the NS RRset's TTL, capped by `max-ttl`).
    pub fn insert(&self, mut delegation: Delegation, ttl: u32, now: u64) {
        let ttl = ttl.min(self.max_ttl);
        if ttl == 0 || delegation.servers.is_empty() {
            return;
        }
        delegation.zone = delegation.zone.to_lowercase();
        let key = delegation.zone.clone();
        let entry = Entry {
            delegation,
            expires: now.saturating_add(u64::from(ttl)),
        };
        self.shard(&key).put(key, entry);
    }

    /// The cut for exactly `zone`, if cached and unexpired.
    pub fn get(&self, zone: &Name, now: u64) -> Option<Delegation> {
        let key = zone.to_lowercase();
        let mut shard = self.shard(&key);
        let entry = shard.get(&key)?;
        // More left than `max-ttl` means the system clock stepped back since the insert:
        // the cut is asked for again rather than trusted for that long.
        if entry.expires <= now || entry.expires - now > u64::from(self.max_ttl) {
            shard.pop(&key);
            return None;
        }
        Some(entry.delegation.clone())
    }

    /// Drops the cuts at or below `zone`; returns how many.
    pub fn flush_zone(&self, zone: &Name) -> usize {
        let zone = zone.to_lowercase();
        let mut gone = 0;
        for s in &self.shards {
            let mut s = s.lock().unwrap_or_else(|e| e.into_inner());
            let doomed: Vec<Name> = s
                .iter()
                .filter(|(k, _)| zone.zone_of(k))
                .map(|(k, _)| k.clone())
                .collect();
            for k in doomed {
                s.pop(&k);
                gone += 1;
            }
        }
        gone
    }

    pub fn clear(&self) {
        for s in &self.shards {
            s.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }

    /// Cuts held (expired ones included until touched or evicted).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The deepest cached cut at or above `name` (the closest enclosing zone we know).
    pub fn closest(&self, name: &Name, now: u64) -> Option<Delegation> {
        let mut zone = name.to_lowercase();
        loop {
            if let Some(d) = self.get(&zone, now) {
                return Some(d);
            }
            if zone.is_root() {
                return None;
            }
            zone = zone.base_name();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn cut(zone: &str) -> Delegation {
        Delegation {
            zone: name(zone),
            servers: vec![NsName {
                name: name(&format!("ns.{}", zone.trim_start_matches('.'))),
                addrs: vec!["192.0.2.53".parse().unwrap()],
            }],
        }
    }

    #[test]
    fn closest_cut_is_the_deepest_known_zone() {
        let c = DelegationCache::new(100, 86_400);
        c.insert(cut("."), 3600, 0);
        c.insert(cut("com."), 3600, 0);
        c.insert(cut("example.com."), 60, 0);
        let d = c.closest(&name("www.Example.COM."), 10).unwrap();
        assert_eq!(d.zone, name("example.com."));
        let d = c.closest(&name("www.example.com."), 60).unwrap();
        assert_eq!(d.zone, name("com."), "expired cut falls back to its parent");
        assert_eq!(c.closest(&name("org."), 0).unwrap().zone, name("."));
    }

    /// Issue 11.8: after the clock steps back, a cut whose time left exceeds `max-ttl`
    /// is asked for again, never trusted for the length of the step.
    #[test]
    fn a_clock_that_steps_back_far_retires_the_cut() {
        let c = DelegationCache::new(100, 3_600);
        c.insert(cut("com."), 3000, 1_000_000);
        assert!(c.get(&name("com."), 999_500).is_some(), "500 s back: kept");
        assert!(c.get(&name("com."), 0).is_none(), "a step of days: gone");
    }
}
