//! Signature checks: an RRset against a zone's key set (RFC 4035 §5.3), a DNSKEY set against
//! its DS set or trust anchors (§5.2), validity windows with skew, and the per-request budget.
//!
//! The cryptography is hickory-proto's [`Verifier::verify_rrsig`], which builds the canonical
//! signed data (RFC 4034 §3.1.8.1, §6) itself; here we choose which (key, signature) pairs to
//! try, in what order, and how many.

use hickory_proto::dnssec::rdata::{DNSSECRData, DNSKEY, DS, RRSIG};
use std::sync::Arc;

use hickory_proto::dnssec::{DigestType, PublicKey, Verifier, TBS};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::algo::{algorithm_supported, digest_len, digest_supported};
use super::memo::{MemoKey, SigMemo};
use super::Reason;

/// Signature verifications tried for one RRset before it is bogus: Unbound 1.19.1's
/// `MAX_VALIDATE_RRSIGS` (validator/val_sigcrypt.c), the KeyTrap fix (CVE-2023-50387).
/// Counts every (key, signature) pair tried, so colliding key tags cannot multiply it.
pub const MAX_VERIFY_PER_RRSET: u32 = 8;

/// DS digests computed for one DNSKEY set that match no key before it is bogus: Unbound
/// 1.19.1's `MAX_DS_MATCH_FAILURES` (validator/val_utils.c).
pub const MAX_DS_MATCH_FAILURES: u32 = 4;

/// Signature verifications for one client request, all zones and sub-lookups included.
/// Unbound bounds a request by `MAX_VALIDATE_AT_ONCE` (8) RRsets per pass and
/// `MAX_VALIDATION_SUSPENDS` (16) passes; a real resolution needs about one verification
/// per zone on the way down plus one per answer or proof RRset (a 12-link CNAME chain across
/// separate zones stays under 64), while KeyTrap needs thousands.
pub const MAX_VERIFY_PER_REQUEST: u32 = 64;

/// NSEC3 hash computations for one request (CVE-2023-50868). Unbound allows
/// `MAX_NSEC3_CALCULATIONS` (8) per pass and 16 passes; a closest-encloser proof hashes one
/// name per label of the question, so 128 covers any legitimate proof of a 127-label name.
pub const MAX_NSEC3_HASHES_PER_REQUEST: u32 = 128;

/// Work a request may spend on validation. Counts, not time, so tests can assert it.
/// With a [`SigMemo`] attached, a signature verified before (same data, signature and key)
/// is taken from it and costs no verification.
#[derive(Clone, Debug)]
pub struct Budget {
    max_verifications: u32,
    max_hashes: u32,
    verifications: u32,
    hashes: u32,
    memo: Option<Arc<SigMemo>>,
    memo_hits: u32,
}

impl Default for Budget {
    fn default() -> Budget {
        Budget::new(MAX_VERIFY_PER_REQUEST, MAX_NSEC3_HASHES_PER_REQUEST)
    }
}

impl Budget {
    pub fn new(max_verifications: u32, max_hashes: u32) -> Budget {
        Budget {
            max_verifications,
            max_hashes,
            verifications: 0,
            hashes: 0,
            memo: None,
            memo_hits: 0,
        }
    }

    /// Consults and fills `memo` from now on.
    pub fn with_memo(mut self, memo: Arc<SigMemo>) -> Budget {
        self.memo = Some(memo);
        self
    }

    /// Attaches `memo` unless one is attached already.
    pub fn attach_memo(&mut self, memo: impl FnOnce() -> Arc<SigMemo>) {
        if self.memo.is_none() {
            self.memo = Some(memo());
        }
    }

    /// Verifications answered by the memo instead of the cryptography.
    pub fn memo_hits(&self) -> u32 {
        self.memo_hits
    }

    /// Signature verifications performed so far.
    pub fn verifications(&self) -> u32 {
        self.verifications
    }

    /// NSEC3 hashes computed so far.
    pub fn hashes(&self) -> u32 {
        self.hashes
    }

    fn spend_verification(&mut self) -> Result<(), Reason> {
        if self.verifications >= self.max_verifications {
            return Err(Reason::BudgetSpent("signature verifications per request"));
        }
        self.verifications += 1;
        Ok(())
    }

    /// Counts one NSEC3 hash computation, or refuses it when the budget is spent.
    pub fn spend_hash(&mut self) -> Result<(), Reason> {
        if self.hashes >= self.max_hashes {
            return Err(Reason::BudgetSpent("NSEC3 hash computations per request"));
        }
        self.hashes += 1;
        Ok(())
    }
}

/// Clock skew allowed around a signature's validity window, as Unbound's
/// `val-sig-skew-min` / `val-sig-skew-max`: a tenth of the window, at least `min` and at
/// most `max` seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Skew {
    pub min: u32,
    pub max: u32,
}

impl Default for Skew {
    /// Unbound's defaults: one hour, one day.
    fn default() -> Skew {
        Skew {
            min: 3600,
            max: 86400,
        }
    }
}

/// A 32-bit RRSIG time read as the 64-bit time nearest `now` (RFC 4034 §3.1.5: serial number
/// arithmetic, so signatures keep working after 2106).
fn widen(ts: u32, now: u64) -> i64 {
    now as i64 + i64::from(ts.wrapping_sub(now as u32) as i32)
}

/// Checks `now` (seconds since the epoch) against a signature's inception and expiration,
/// with skew (RFC 4035 §5.3.1). Returns the expiration as a 64-bit time.
pub fn check_window(inception: u32, expiration: u32, now: u64, skew: Skew) -> Result<i64, Reason> {
    let incep = widen(inception, now);
    let expi = widen(expiration, now);
    if expi < incep {
        return Err(Reason::Bogus("signature expires before its inception"));
    }
    let allow = ((expi - incep) / 10).clamp(i64::from(skew.min), i64::from(skew.max));
    let now = now as i64;
    if incep - allow > now {
        return Err(Reason::SignatureNotYetValid);
    }
    if expi + allow < now {
        return Err(Reason::SignatureExpired);
    }
    Ok(expi)
}

/// The RRSIG in a record, if it is one.
pub fn rrsig(record: &Record) -> Option<&RRSIG> {
    match &record.data {
        RData::DNSSEC(DNSSECRData::RRSIG(sig)) => Some(sig),
        _ => None,
    }
}

/// The DNSKEY in a record, if it is one.
pub fn dnskey(record: &Record) -> Option<&DNSKEY> {
    match &record.data {
        RData::DNSSEC(DNSSECRData::DNSKEY(key)) => Some(key),
        _ => None,
    }
}

/// The DS in a record, if it is one.
pub fn ds(record: &Record) -> Option<&DS> {
    match &record.data {
        RData::DNSSEC(DNSSECRData::DS(ds)) => Some(ds),
        _ => None,
    }
}

/// A key a zone may sign with: zone key bit set, not revoked (RFC 4034 §2.1.1, RFC 5011
/// §2.1), an algorithm we validate.
fn usable_key(key: &DNSKEY) -> bool {
    key.zone_key() && !key.revoke() && algorithm_supported(key.algorithm())
}

/// What a successful RRset verification learned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Secured {
    /// The key tag and algorithm of the key whose signature verified.
    pub key_tag: u16,
    pub algorithm: u8,
    /// TTL the data may be cached with: min(RRset TTL, RRSIG TTL, original TTL, time to
    /// signature expiry) (RFC 4035 §5.3.3).
    pub ttl: u32,
    /// Set when the RRSIG's label count shows wildcard expansion (RFC 4035 §5.3.4): the
    /// wildcard owner (`*.` + the closest encloser). The caller must still prove that the
    /// question's name does not exist ([`super::denial::wildcard_answer`]).
    pub wildcard: Option<Name>,
}

/// Verifies the RRset (`owner`, `rtype`, class IN) in `records` against the zone's key set
/// `keys`, with the RRSIGs in `sigs` (RFC 4035 §5.3). One valid signature from one usable
/// key is enough (RFC 6840 §5.11). At most [`MAX_VERIFY_PER_RRSET`] verifications are tried.
#[allow(clippy::too_many_arguments)]
pub fn verify_rrset(
    owner: &Name,
    rtype: RecordType,
    records: &[Record],
    sigs: &[Record],
    zone: &Name,
    keys: &[DNSKEY],
    now: u64,
    skew: Skew,
    budget: &mut Budget,
) -> Result<Secured, Reason> {
    let rrset: Vec<&Record> = records
        .iter()
        .filter(|r| r.record_type() == rtype && r.name == *owner && r.dns_class == DNSClass::IN)
        .collect();
    if rrset.is_empty() {
        return Err(Reason::Bogus("empty RRset"));
    }
    let owner_labels = owner.num_labels();
    // RFC 4035 §5.3.1: the signer is the zone, covers this type, and its label count is no
    // more than the owner's.
    let candidates: Vec<(&Record, &RRSIG)> = sigs
        .iter()
        .filter(|r| r.name == *owner)
        .filter_map(|r| rrsig(r).map(|s| (r, s)))
        .filter(|(_, s)| {
            let i = s.input();
            i.type_covered == rtype && i.signer_name == *zone && i.num_labels <= owner_labels
        })
        .collect();
    if candidates.is_empty() || !zone.zone_of(owner) {
        return Err(Reason::RrsigsMissing);
    }
    let tagged: Vec<(u16, &DNSKEY)> = keys
        .iter()
        .filter(|k| usable_key(k))
        .filter_map(|k| k.calculate_key_tag().ok().map(|t| (t, k)))
        .collect();
    let mut tries = 0;
    let mut worst: Option<Reason> = None;
    for (sig_record, sig) in candidates {
        let input = sig.input();
        if !algorithm_supported(input.algorithm) {
            continue;
        }
        let expiration = match check_window(
            input.sig_inception.get(),
            input.sig_expiration.get(),
            now,
            skew,
        ) {
            Ok(e) => e,
            Err(e) => {
                worst = Some(rank(worst, e));
                continue;
            }
        };
        let matching = tagged
            .iter()
            .filter(|(t, k)| *t == input.key_tag && k.algorithm() == input.algorithm);
        let mut any_key = false;
        // The signed data (RFC 4034 §3.1.8.1), built once per signature, only if a key
        // matches; hickory-proto's `verify_rrsig` builds the same.
        let mut tbs: Option<TBS> = None;
        for (tag, key) in matching {
            any_key = true;
            if tries >= MAX_VERIFY_PER_RRSET {
                return Err(Reason::BudgetSpent("signature verifications per RRset"));
            }
            let tbs = match &mut tbs {
                Some(t) => &*t,
                None => match TBS::from_input(owner, DNSClass::IN, input, rrset.iter().copied()) {
                    Ok(t) => tbs.insert(t),
                    Err(_) => {
                        worst = Some(rank(worst, Reason::Bogus("RRset cannot be encoded")));
                        break;
                    }
                },
            };
            let memo = budget.memo.clone();
            let memo_key = memo.as_ref().map(|_| {
                MemoKey::new(
                    tbs,
                    sig.sig(),
                    u8::from(input.algorithm),
                    key.public_key().public_bytes(),
                )
            });
            let remembered = match (&memo, &memo_key) {
                (Some(m), Some(k)) => m.contains(k, now),
                _ => false,
            };
            let verified = if remembered {
                budget.memo_hits += 1;
                true
            } else {
                tries += 1;
                budget.spend_verification()?;
                key.verify(tbs.as_ref(), sig.sig()).is_ok()
            };
            if verified {
                let to_expiry = (expiration - now as i64).max(0);
                let ttl = rrset
                    .iter()
                    .map(|r| r.ttl)
                    .chain([sig_record.ttl, input.original_ttl])
                    .min()
                    .unwrap_or(0)
                    .min(u32::try_from(to_expiry).unwrap_or(u32::MAX));
                if let (Some(m), Some(k), false) = (memo, memo_key, remembered) {
                    m.insert(k, ttl, now);
                }
                let wildcard = (input.num_labels < owner_labels).then(|| {
                    owner
                        .trim_to(usize::from(input.num_labels))
                        .prepend_label("*")
                        .expect("a label shorter than the owner fits")
                });
                return Ok(Secured {
                    key_tag: *tag,
                    algorithm: u8::from(input.algorithm),
                    ttl,
                    wildcard,
                });
            }
            worst = Some(rank(worst, Reason::Bogus("signature does not verify")));
        }
        if !any_key {
            worst = Some(rank(worst, Reason::DnskeyMissing));
        }
    }
    Err(worst.unwrap_or(Reason::RrsigsMissing))
}

/// The reason to report when several signatures fail differently: a signature that failed
/// to verify beats one out of its window, which beats one whose key is missing.
fn rank(old: Option<Reason>, new: Reason) -> Reason {
    fn weight(r: &Reason) -> u8 {
        match r {
            Reason::Bogus(_) => 3,
            Reason::SignatureExpired | Reason::SignatureNotYetValid => 2,
            _ => 1,
        }
    }
    match old {
        Some(old) if weight(&old) >= weight(&new) => old,
        _ => new,
    }
}

/// A zone's DNSKEY set, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySet {
    pub zone: Name,
    /// Every DNSKEY of the set (RFC 4035 §5.2: once the set is proven, all its keys are).
    pub keys: Vec<DNSKEY>,
    /// Cache TTL of the set.
    pub ttl: u32,
    /// The key tag of the key that linked the set to its DS or anchor.
    pub entry_key_tag: u16,
}

/// Why a DNSKEY set is trusted: DS records from the validated parent, or trust-anchor keys.
#[derive(Clone, Copy, Debug)]
pub enum Link<'a> {
    Ds(&'a [DS]),
    Keys(&'a [DNSKEY]),
}

/// Validates the zone's DNSKEY RRset against its DS set or trust anchors (RFC 4035 §5.2).
///
/// * No DS or anchor with an algorithm and digest we support → `Err` with
///   [`Reason::UnsupportedAlgorithm`] or [`Reason::UnsupportedDigest`]: the zone is insecure.
/// * SHA-1 DS records are ignored when a DS with a stronger digest is present (RFC 4509 §3).
/// * A DS whose digest length does not fit its type matches no key.
#[allow(clippy::too_many_arguments)]
pub fn validate_keyset(
    zone: &Name,
    dnskeys: &[Record],
    sigs: &[Record],
    link: Link<'_>,
    now: u64,
    skew: Skew,
    budget: &mut Budget,
) -> Result<KeySet, Reason> {
    let keys: Vec<DNSKEY> = dnskeys
        .iter()
        .filter(|r| r.name == *zone)
        .filter_map(dnskey)
        .cloned()
        .collect();
    let entry_keys: Vec<DNSKEY> = match link {
        Link::Ds(ds_set) => {
            let usable = usable_ds(ds_set)?;
            let mut failures = 0;
            let mut found = Vec::new();
            for ds in usable {
                for key in keys.iter().filter(|k| usable_key(k)) {
                    if key.algorithm() != ds.algorithm()
                        || key.calculate_key_tag().ok() != Some(ds.key_tag())
                    {
                        continue;
                    }
                    if digest_len(ds.digest_type()) == Some(ds.digest().len())
                        && ds.covers(zone, key).unwrap_or(false)
                    {
                        if !found.contains(key) {
                            found.push(key.clone());
                        }
                    } else {
                        failures += 1;
                        if failures >= MAX_DS_MATCH_FAILURES {
                            // No key matched the DS set within the budget: RFC 8914
                            // §4.10's DNSKEY Missing (EDE 9), as Unbound reports it.
                            return Err(Reason::DnskeyMissing);
                        }
                    }
                }
            }
            found
        }
        Link::Keys(anchors) => {
            let usable: Vec<&DNSKEY> = anchors.iter().filter(|k| !k.revoke()).collect();
            if let Some(first) = usable.first() {
                if !usable.iter().any(|k| algorithm_supported(k.algorithm())) {
                    return Err(Reason::UnsupportedAlgorithm(u8::from(first.algorithm())));
                }
            }
            keys.iter()
                .filter(|k| usable_key(k))
                .filter(|k| {
                    usable.iter().any(|a| {
                        a.algorithm() == k.algorithm()
                            && a.public_key().public_bytes() == k.public_key().public_bytes()
                    })
                })
                .cloned()
                .collect()
        }
    };
    if entry_keys.is_empty() {
        return Err(Reason::DnskeyMissing);
    }
    let mut worst = None;
    for entry in &entry_keys {
        match verify_rrset(
            zone,
            RecordType::DNSKEY,
            dnskeys,
            sigs,
            zone,
            std::slice::from_ref(entry),
            now,
            skew,
            budget,
        ) {
            Ok(secured) => {
                return Ok(KeySet {
                    zone: zone.clone(),
                    keys,
                    ttl: secured.ttl,
                    entry_key_tag: secured.key_tag,
                })
            }
            Err(e @ Reason::BudgetSpent(_)) => return Err(e),
            Err(e) => worst = Some(rank(worst, e)),
        }
    }
    Err(worst.unwrap_or(Reason::DnskeyMissing))
}

/// The DS records worth computing (RFC 4035 §5.2, RFC 4509 §3), or the reason the zone is
/// insecure when there are none. A DS set with a supported algorithm and digest whose digest
/// has the wrong length still counts as usable: it makes the zone bogus, not insecure.
pub fn usable_ds(ds_set: &[DS]) -> Result<Vec<&DS>, Reason> {
    let supported: Vec<&DS> = ds_set
        .iter()
        .filter(|d| algorithm_supported(d.algorithm()) && digest_supported(d.digest_type()))
        .collect();
    if supported.is_empty() {
        let Some(first) = ds_set.first() else {
            return Err(Reason::DnskeyMissing);
        };
        return Err(
            if ds_set.iter().any(|d| algorithm_supported(d.algorithm())) {
                let d = ds_set
                    .iter()
                    .find(|d| algorithm_supported(d.algorithm()))
                    .unwrap_or(first);
                Reason::UnsupportedDigest(u8::from(d.digest_type()))
            } else {
                Reason::UnsupportedAlgorithm(u8::from(first.algorithm()))
            },
        );
    }
    let strong = supported
        .iter()
        .any(|d| d.digest_type() != DigestType::SHA1);
    Ok(supported
        .into_iter()
        .filter(|d| !strong || d.digest_type() != DigestType::SHA1)
        .collect())
}

/// Checks a revoked key's self-signature over its DNSKEY set (RFC 5011 §2.1: the only use a
/// revoked key still has). For [`super::autotrust`].
pub fn revocation_signed(
    zone: &Name,
    dnskeys: &[Record],
    sigs: &[Record],
    revoked: &DNSKEY,
    now: u64,
    skew: Skew,
    budget: &mut Budget,
) -> bool {
    let Ok(tag) = revoked.calculate_key_tag() else {
        return false;
    };
    sigs.iter()
        .filter(|r| r.name == *zone)
        .filter_map(rrsig)
        .filter(|s| {
            let i = s.input();
            i.type_covered == RecordType::DNSKEY
                && i.key_tag == tag
                && i.algorithm == revoked.algorithm()
                && i.signer_name == *zone
        })
        .any(|s| {
            let i = s.input();
            check_window(i.sig_inception.get(), i.sig_expiration.get(), now, skew).is_ok()
                && budget.spend_verification().is_ok()
                && revoked
                    .verify_rrsig(
                        zone,
                        DNSClass::IN,
                        s,
                        dnskeys.iter().filter(|r| r.name == *zone),
                    )
                    .is_ok()
        })
}

#[cfg(test)]
mod tests;
