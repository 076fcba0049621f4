//! Validated NSEC ranges by zone, for aggressive use of the DNSSEC-validated cache (RFC
//! 8198; Unbound's `val_neg.c`, `aggressive-nsec: yes`).
//!
//! Only the resolver puts records here, and only the NSEC or NSEC3 records (with their
//! RRSIGs) and the SOA (with its RRSIGs) of a negative answer it validated *secure*: never insecure,
//! bogus or unchecked (CD) data (RFC 8198 §4). Each range and the SOA expire with their
//! lowest TTL. Bounded: at most [`MAX_ZONES`] zones (least recently used go first) and
//! [`MAX_RANGES_PER_ZONE`] ranges per zone (the one expiring first goes first), a few
//! hundred bytes each: a few MiB at most, outside `cache-size`.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use hickory_proto::rr::{Name, Record, RecordType};
use lru::LruCache;

/// Zones whose ranges are kept at most.
pub const MAX_ZONES: usize = 1024;
/// Ranges kept per zone at most.
pub const MAX_RANGES_PER_ZONE: usize = 64;

/// One record set kept: an NSEC (or the SOA) and its RRSIGs, until `expires`.
#[derive(Clone, Debug)]
struct Kept {
    expires: u64,
    records: Vec<Record>,
}

impl Kept {
    /// `records` (one owner) with their lowest TTL as the time left; `None` if that is 0.
    fn new(records: Vec<Record>, now: u64) -> Option<Kept> {
        let ttl = records.iter().map(|r| r.ttl).min()?;
        (ttl > 0).then(|| Kept {
            expires: now.saturating_add(u64::from(ttl)),
            records,
        })
    }

    fn owner(&self) -> Option<&Name> {
        self.records.first().map(|r| &r.name)
    }

    /// Whether this range matches or covers one of `names`. An NSEC3 range may: which
    /// names it covers is known only after hashing them, which the proof does.
    fn touches(&self, names: &[Name]) -> bool {
        use hickory_proto::dnssec::rdata::DNSSECRData;
        self.records.iter().any(|r| match &r.data {
            hickory_proto::rr::RData::DNSSEC(DNSSECRData::NSEC(n)) => names.iter().any(|name| {
                r.name == *name
                    || crate::dnssec::denial::nsec_covers(&r.name, n.next_domain_name(), name)
            }),
            hickory_proto::rr::RData::DNSSEC(DNSSECRData::NSEC3(_)) => true,
            _ => false,
        })
    }

    /// The records with TTLs counted down to `now`, if still fresh (a clock stepped back
    /// gives no more than was kept).
    fn fresh(&self, now: u64) -> Option<Vec<Record>> {
        let left = self.expires.checked_sub(now).filter(|l| *l > 0)?;
        Some(
            self.records
                .iter()
                .map(|r| {
                    let mut r = r.clone();
                    r.ttl = r.ttl.min(u32::try_from(left).unwrap_or(u32::MAX));
                    r
                })
                .collect(),
        )
    }
}

#[derive(Debug, Default)]
struct Zone {
    soa: Option<Kept>,
    ranges: Vec<Kept>,
}

/// What the cache holds for the zone closest to a name: its SOA and NSEC records with
/// their RRSIGs, fresh, TTLs counted down.
#[derive(Clone, Debug, PartialEq)]
pub struct NsecZone {
    pub zone: Name,
    /// The SOA and its RRSIGs.
    pub soa: Vec<Record>,
    /// NSEC records and their RRSIGs.
    pub nsecs: Vec<Record>,
}

pub struct NsecCache {
    zones: Mutex<LruCache<Name, Zone>>,
}

impl std::fmt::Debug for NsecCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NsecCache")
            .field("zones", &self.lock().len())
            .finish()
    }
}

impl Default for NsecCache {
    fn default() -> Self {
        Self {
            zones: Mutex::new(LruCache::new(
                NonZeroUsize::new(MAX_ZONES).expect("non-zero"),
            )),
        }
    }
}

impl NsecCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<Name, Zone>> {
        self.zones.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps the validated `soa` (SOA and RRSIGs) and `nsecs` (NSEC or NSEC3 records and
    /// RRSIGs) of
    /// `zone`, TTLs as received at `now`. Records outside the zone are ignored; a range
    /// with the same owner as one kept replaces it.
    pub fn insert(&self, zone: &Name, soa: &[Record], nsecs: &[Record], now: u64) {
        let zone = zone.to_lowercase();
        let inside = |r: &&Record| zone.zone_of(&r.name);
        let denial = |t: RecordType| matches!(t, RecordType::NSEC | RecordType::NSEC3);
        let mut owners: Vec<(&Name, RecordType)> = nsecs
            .iter()
            .filter(inside)
            .filter(|r| denial(r.record_type()))
            .map(|r| (&r.name, r.record_type()))
            .collect();
        owners.dedup();
        let ranges: Vec<Kept> = owners
            .into_iter()
            .filter_map(|(owner, t)| {
                let set = nsecs
                    .iter()
                    .filter(|r| r.name == *owner)
                    .filter(|r| r.record_type() == t || crate::dns::rrsig_covers(r) == Some(t))
                    .cloned()
                    .collect();
                Kept::new(set, now)
            })
            .collect();
        let soa_set: Vec<Record> = soa
            .iter()
            .filter(|r| r.name == zone)
            .filter(|r| {
                r.record_type() == RecordType::SOA
                    || crate::dns::rrsig_covers(r) == Some(RecordType::SOA)
            })
            .cloned()
            .collect();
        let soa = soa_set
            .iter()
            .any(|r| r.record_type() == RecordType::SOA)
            .then(|| Kept::new(soa_set, now))
            .flatten();
        if ranges.is_empty() && soa.is_none() {
            return;
        }
        let mut zones = self.lock();
        let z = zones.get_or_insert_mut(zone, Zone::default);
        if soa.is_some() {
            z.soa = soa;
        }
        for kept in ranges {
            z.ranges.retain(|k| k.owner() != kept.owner());
            z.ranges.push(kept);
        }
        z.ranges.retain(|k| k.expires > now);
        while z.ranges.len() > MAX_RANGES_PER_ZONE {
            let first = (0..z.ranges.len())
                .min_by_key(|i| z.ranges[*i].expires)
                .expect("not empty");
            z.ranges.swap_remove(first);
        }
    }

    /// The fresh SOA of the closest zone at or above `name` that has a fresh SOA and a
    /// fresh range touching the name, with the ranges that could prove something about it:
    /// those matching or covering the name, or a wildcard at one of its ancestors in the
    /// zone (a few, however many the zone holds, so a miss copies little).
    pub fn closest(&self, name: &Name, now: u64) -> Option<NsecZone> {
        let mut zones = self.lock();
        let name = name.to_lowercase();
        let mut at = name.clone();
        loop {
            if let Some(z) = zones.get_mut(&at) {
                z.ranges.retain(|k| k.expires > now);
                let soa = z.soa.as_ref().and_then(|s| s.fresh(now));
                let mut wanted = vec![name.clone()];
                let mut ancestor = name.clone();
                while at.zone_of(&ancestor) {
                    wanted.extend(ancestor.prepend_label("*").ok());
                    if ancestor == at {
                        break;
                    }
                    ancestor = ancestor.base_name();
                }
                let nsecs: Vec<Record> = z
                    .ranges
                    .iter()
                    .filter(|k| k.touches(&wanted))
                    .filter_map(|k| k.fresh(now))
                    .flatten()
                    .collect();
                if let Some(soa) = soa.filter(|_| !nsecs.is_empty()) {
                    return Some(NsecZone {
                        zone: at,
                        soa,
                        nsecs,
                    });
                }
            }
            if at.is_root() {
                return None;
            }
            at = at.base_name();
        }
    }

    /// Forgets the zones at or below `zone`. Returns how many went.
    pub fn flush_zone(&self, zone: &Name) -> usize {
        let mut zones = self.lock();
        let doomed: Vec<Name> = zones
            .iter()
            .filter(|(z, _)| zone.zone_of(z))
            .map(|(z, _)| z.clone())
            .collect();
        for z in &doomed {
            zones.pop(z);
        }
        doomed.len()
    }

    /// Forgets every range that matches or covers `name` (what could deny it), in every
    /// zone above it.
    pub fn flush_name(&self, name: &Name) -> usize {
        let mut zones = self.lock();
        let mut gone = 0;
        for (zone, z) in zones.iter_mut() {
            if !zone.zone_of(name) {
                continue;
            }
            let before = z.ranges.len();
            z.ranges.retain(|k| {
                let nsec = k.records.iter().find_map(|r| match &r.data {
                    hickory_proto::rr::RData::DNSSEC(
                        hickory_proto::dnssec::rdata::DNSSECRData::NSEC(n),
                    ) => Some((&r.name, n)),
                    _ => None,
                });
                // An NSEC3 range says nothing readable about a name: it stays.
                !nsec.is_some_and(|(owner, n)| {
                    owner == name
                        || crate::dnssec::denial::nsec_covers(owner, n.next_domain_name(), name)
                })
            });
            gone += before - z.ranges.len();
        }
        gone
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Zones held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::dnssec::rdata::{DNSSECRData, NSEC};
    use hickory_proto::rr::rdata::SOA;
    use hickory_proto::rr::RData;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn nsec(owner: &str, next: &str, ttl: u32) -> Record {
        let types = vec![RecordType::A, RecordType::NSEC, RecordType::RRSIG];
        let rdata = RData::DNSSEC(DNSSECRData::NSEC(NSEC::new(name(next), types)));
        Record::from_rdata(name(owner), ttl, rdata)
    }

    fn soa(ttl: u32) -> Record {
        let s = SOA::new(name("ns.example."), name("h.example."), 1, 2, 3, 4, 300);
        Record::from_rdata(name("example."), ttl, RData::SOA(s))
    }

    fn sig(owner: &str, t: RecordType, ttl: u32) -> Record {
        crate::dns::fake_rrsig(owner, t, ttl)
    }

    #[test]
    fn ranges_are_found_from_below_and_expire() {
        let c = NsecCache::default();
        c.insert(
            &name("Example."),
            &[soa(300), sig("example.", RecordType::SOA, 300)],
            &[
                nsec("a.example.", "c.example.", 100),
                sig("a.example.", RecordType::NSEC, 100),
                nsec("c.example.", "example.", 600),
                sig("c.example.", RecordType::NSEC, 600),
                // Outside the zone: ignored.
                nsec("a.other.", "b.other.", 600),
            ],
            1000,
        );
        let z = c.closest(&name("b.X.example."), 1050).unwrap();
        assert_eq!(z.zone, name("example."));
        assert_eq!(z.soa.len(), 2);
        assert_eq!(
            z.nsecs.len(),
            2,
            "c→apex covers b.x and *.x (x sorts after c)"
        );
        assert_eq!(z.nsecs[0].name, name("c.example."));
        assert!(z
            .nsecs
            .iter()
            .all(|r| r.name.to_ascii().ends_with("example.")));
        assert_eq!(z.nsecs[0].ttl, 550, "counted down");
        let z = c.closest(&name("b.example."), 1050).unwrap();
        assert_eq!(z.nsecs[0].name, name("a.example."), "a→c covers b");
        assert_eq!(z.nsecs.len(), 2, "nothing here covers *.example");
        assert_eq!(z.nsecs[0].ttl, 50, "counted down");
        assert_eq!(
            c.closest(&name("b.example."), 1100),
            None,
            "a's range expired"
        );
        assert!(c.closest(&name("d.example."), 1299).is_some());
        assert_eq!(
            c.closest(&name("d.example."), 1300),
            None,
            "the SOA expired"
        );
        assert_eq!(c.closest(&name("b.other."), 1000), None);
    }

    #[test]
    fn flushes_take_what_could_deny_a_name() {
        let c = NsecCache::default();
        let ranges = [
            nsec("a.example.", "c.example.", 600),
            nsec("c.example.", "example.", 600),
        ];
        c.insert(&name("example."), &[soa(600)], &ranges, 0);
        assert_eq!(c.flush_name(&name("b.example.")), 1, "a→c covers b");
        assert_eq!(c.closest(&name("b.example."), 1), None);
        assert_eq!(c.closest(&name("d.example."), 1).unwrap().nsecs.len(), 1);
        assert_eq!(c.flush_zone(&name("example.")), 1);
        assert!(c.is_empty());
    }

    #[test]
    fn ranges_per_zone_are_bounded() {
        let c = NsecCache::default();
        let many: Vec<Record> = (0..MAX_RANGES_PER_ZONE + 10)
            .map(|i| nsec(&format!("n{i}.example."), "example.", 100 + i as u32))
            .collect();
        c.insert(&name("example."), &[soa(600)], &many, 0);
        let held = |n: &str| c.closest(&name(n), 1).is_some();
        assert!(!held("n0.example."), "the first to expire went");
        assert!(held(&format!("n{}.example.", MAX_RANGES_PER_ZONE + 9)));
        let z = c.lock();
        assert_eq!(
            z.peek(&name("example.")).unwrap().ranges.len(),
            MAX_RANGES_PER_ZONE
        );
    }
}
