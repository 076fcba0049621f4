//! The delegation cache: zone cuts learned from referrals (NS names and their glue), kept
//! apart from answers so a referral never fights an authoritative NS answer over one entry
//! (hickory-dns #3729). A question under a known zone starts at the closest cached cut.

use std::net::IpAddr;
use std::sync::Mutex;

use hickory_proto::rr::{DNSClass, Name, RecordType};
use lru::LruCache;

use super::store::ShardPicker;
use crate::dns::wire::KeyBuf;

/// Lock shards of the delegation cache: a zone hashes to one, so workers rarely wait on
/// each other.
const CUT_SHARDS: usize = 16;

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
    /// What this entry is charged against the byte budget ([`Delegation::cost`]).
    cost: usize,
}

/// One shard: an LRU of cuts and the bytes they are charged.
#[derive(Debug)]
struct Shard {
    /// By the zone's lowercase wire name: a closest-cut walk looks up each suffix of one
    /// buffer, with no name built per label.
    lru: LruCache<Box<[u8]>, Entry>,
    bytes: usize,
}

/// Zone cuts, bounded in bytes (not entries): one referral with thousands of NS names must
/// not cost what a thousand ordinary ones do. Least recently used cuts go first.
#[derive(Debug)]
pub struct DelegationCache {
    shards: Vec<Mutex<Shard>>,
    picker: ShardPicker,
    /// Byte budget of each shard.
    shard_bytes: usize,
    max_ttl: u32,
}

impl Delegation {
    /// Bytes this cut is charged in the delegation cache: the structs, the names' wire
    /// lengths and the addresses, plus the LRU's bookkeeping.
    pub fn cost(&self) -> usize {
        const BOOKKEEPING: usize = 96;
        let names = |n: &Name| std::mem::size_of::<Name>() + n.len();
        std::mem::size_of::<Entry>()
            + BOOKKEEPING
            + 2 * names(&self.zone)
            + self
                .servers
                .iter()
                .map(|s| {
                    std::mem::size_of::<NsName>()
                        + names(&s.name)
                        + s.addrs.len() * std::mem::size_of::<IpAddr>()
                })
                .sum::<usize>()
    }
}

impl DelegationCache {
    /// A cache of at most about `bytes` bytes (at least one cut per shard fits).
    pub fn new(bytes: usize, max_ttl: u32) -> Self {
        Self {
            shards: (0..CUT_SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        lru: LruCache::unbounded(),
                        bytes: 0,
                    })
                })
                .collect(),
            picker: ShardPicker::default(),
            shard_bytes: (bytes / CUT_SHARDS).max(1),
            max_ttl,
        }
    }

    fn shard(&self, zone: &[u8]) -> std::sync::MutexGuard<'_, Shard> {
        self.shards[self.picker.pick(zone, CUT_SHARDS)]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers a cut for `ttl` seconds (the NS RRset's TTL, capped by `max-ttl`), evicting
    /// least recently used cuts beyond the byte budget.
    pub fn insert(&self, mut delegation: Delegation, ttl: u32, now: u64) {
        let ttl = ttl.min(self.max_ttl);
        if ttl == 0 || delegation.servers.is_empty() {
            return;
        }
        delegation.zone = delegation.zone.to_lowercase();
        let key: Box<[u8]> = wire_key(&delegation.zone).name().into();
        let cost = delegation.cost();
        let entry = Entry {
            delegation,
            expires: now.saturating_add(u64::from(ttl)),
            cost,
        };
        let mut shard = self.shard(&key);
        if let Some(old) = shard.lru.put(key, entry) {
            shard.bytes -= old.cost;
        }
        shard.bytes += cost;
        while shard.bytes > self.shard_bytes && shard.lru.len() > 1 {
            match shard.lru.pop_lru() {
                Some((_, gone)) => shard.bytes -= gone.cost,
                None => break,
            }
        }
    }

    /// Bytes charged for the cuts held.
    pub fn bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).bytes)
            .sum()
    }

    /// The cut for exactly `zone`, if cached and unexpired.
    pub fn get(&self, zone: &Name, now: u64) -> Option<Delegation> {
        self.get_wire(wire_key(zone).name(), now)
    }

    /// [`Self::get`] by the zone's lowercase wire name.
    fn get_wire(&self, key: &[u8], now: u64) -> Option<Delegation> {
        let mut shard = self.shard(key);
        let entry = shard.lru.get(key)?;
        // More left than `max-ttl` means the system clock stepped back since the insert:
        // the cut is asked for again rather than trusted for that long.
        if entry.expires <= now || entry.expires - now > u64::from(self.max_ttl) {
            if let Some(gone) = shard.lru.pop(key) {
                shard.bytes -= gone.cost;
            }
            return None;
        }
        Some(entry.delegation.clone())
    }

    /// Drops the cut for exactly `zone`: its parent has since answered that the name does
    /// not exist. A resolution's NXDOMAIN walk (RFC 8020 §2) stops at the closest cached
    /// cut, so a cut kept beside that NXDOMAIN would hide it.
    pub fn forget(&self, zone: &Name) {
        let key = wire_key(zone);
        let mut shard = self.shard(key.name());
        if let Some(gone) = shard.lru.pop(key.name()) {
            shard.bytes -= gone.cost;
        }
    }

    /// Drops the cuts at or below `zone`; returns how many.
    pub fn flush_zone(&self, zone: &Name) -> usize {
        let zone = zone.to_lowercase();
        let mut gone = 0;
        for s in &self.shards {
            let mut s = s.lock().unwrap_or_else(|e| e.into_inner());
            let doomed: Vec<Box<[u8]>> = s
                .lru
                .iter()
                .filter(|(_, e)| zone.zone_of(&e.delegation.zone))
                .map(|(k, _)| k.clone())
                .collect();
            for k in doomed {
                if let Some(e) = s.lru.pop(&k) {
                    s.bytes -= e.cost;
                }
                gone += 1;
            }
        }
        gone
    }

    pub fn clear(&self) {
        for s in &self.shards {
            let mut s = s.lock().unwrap_or_else(|e| e.into_inner());
            s.lru.clear();
            s.bytes = 0;
        }
    }

    /// Cuts held (expired ones included until touched or evicted).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).lru.len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The deepest cached cut at or above `name` (the closest enclosing zone we know).
    pub fn closest(&self, name: &Name, now: u64) -> Option<Delegation> {
        let key = wire_key(name);
        let wire = key.name();
        let mut at = 0;
        loop {
            if let Some(d) = self.get_wire(&wire[at..], now) {
                return Some(d);
            }
            match wire.get(at) {
                Some(&len) if len != 0 => at += 1 + usize::from(len),
                _ => return None,
            }
        }
    }
}

/// A zone's key: its lowercase wire name (the type and class after it are not used).
fn wire_key(zone: &Name) -> KeyBuf {
    KeyBuf::from_parts(zone, RecordType::NS, DNSClass::IN)
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
        let c = DelegationCache::new(1 << 20, 86_400);
        c.insert(cut("."), 3600, 0);
        c.insert(cut("com."), 3600, 0);
        c.insert(cut("example.com."), 60, 0);
        let d = c.closest(&name("www.Example.COM."), 10).unwrap();
        assert_eq!(d.zone, name("example.com."));
        let d = c.closest(&name("www.example.com."), 60).unwrap();
        assert_eq!(d.zone, name("com."), "expired cut falls back to its parent");
        assert_eq!(c.closest(&name("org."), 0).unwrap().zone, name("."));
    }

    /// Issue 11, item 1: the cache is bounded in bytes, so fat cuts evict others instead of
    /// growing memory, and the oldest go first.
    #[test]
    fn cuts_are_bounded_in_bytes_and_the_least_recently_used_go_first() {
        let budget = 64 << 10;
        let c = DelegationCache::new(budget, 86_400);
        let fat = |i: usize| Delegation {
            zone: name(&format!("zone{i}.example.")),
            servers: (0..13)
                .map(|n| NsName {
                    name: name(&format!(
                        "ns{n}.some-rather-long-name-server-host{i}.example."
                    )),
                    addrs: vec!["192.0.2.53".parse().unwrap(); 8],
                })
                .collect(),
        };
        let one = fat(0).cost();
        assert!(one > 1000, "a fat cut is charged what it holds: {one}");
        for i in 0..1000 {
            c.insert(fat(i), 3600, 0);
            assert!(
                c.bytes() <= budget + CUT_SHARDS * one,
                "{} bytes",
                c.bytes()
            );
        }
        assert!(c.len() < 1000 && !c.is_empty());
        assert!(
            c.get(&name("zone999.example."), 0).is_some(),
            "the newest stays"
        );
        assert!(
            c.get(&name("zone0.example."), 0).is_none(),
            "the oldest went"
        );
        c.clear();
        assert_eq!(c.bytes(), 0);
    }

    /// Issue 11.8: after the clock steps back, a cut whose time left exceeds `max-ttl`
    /// is asked for again, never trusted for the length of the step.
    #[test]
    fn a_clock_that_steps_back_far_retires_the_cut() {
        let c = DelegationCache::new(1 << 20, 3_600);
        c.insert(cut("com."), 3000, 1_000_000);
        assert!(c.get(&name("com."), 999_500).is_some(), "500 s back: kept");
        assert!(c.get(&name("com."), 0).is_none(), "a step of days: gone");
    }
}
