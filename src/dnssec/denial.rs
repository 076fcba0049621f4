//! Denial of existence: NSEC (RFC 4035 §5.4, RFC 7129) and NSEC3 (RFC 5155 §8) proofs.
//!
//! Inputs are NSEC or NSEC3 records of one zone whose RRSIGs have already been verified
//! ([`super::verify::verify_rrset`]), from a reply or from the cache: the same [`prove`]
//! answers "does this reply prove NXDOMAIN?" and "do cached ranges prove it, so we can
//! answer without asking?" (aggressive use of the validated cache, RFC 8198 §5).
//!
//! Records from the parent side of a zone cut (NS without SOA, or DNAME) prove nothing
//! below their owner (RFC 6840 §4.1). NSEC3 with more than [`MAX_NSEC3_ITERATIONS`] is not
//! evaluated: the answer is insecure with EDE 27 (RFC 9276 §3.2), and every hash is
//! charged to the request's [`Budget`] (CVE-2023-50868).

use std::collections::HashMap;

use hickory_proto::dnssec::rdata::{DNSSECRData, NSEC, NSEC3};
use hickory_proto::dnssec::Nsec3HashAlgorithm;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::verify::Budget;
use super::{Reason, Verdict};

/// NSEC3 iterations above which a proof is insecure (RFC 9276 §3.2; Unbound's
/// `val-nsec3-keysize-iterations` ceiling of 150).
pub const MAX_NSEC3_ITERATIONS: u16 = 150;

/// What is to be proven about `qname`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denial {
    /// The name does not exist, nor does a wildcard that could match it (RFC 4035 §3.1.3.2).
    NxDomain,
    /// The name (or the wildcard that matches it) exists without this type (§3.1.3.1, .4).
    NoData(RecordType),
    /// A positive answer expanded from `wildcard` (`*.` + closest encloser): no closer name
    /// exists (RFC 4035 §5.3.4, RFC 5155 §8.8).
    Wildcard { wildcard: Name },
    /// A referral without DS: the child is unsigned (RFC 4035 §5.2, RFC 5155 §8.9), which
    /// makes what is below it insecure rather than bogus.
    NoDs,
}

/// Proves `denial` for `qname` with the validated NSEC/NSEC3 `records` of `zone`.
///
/// Secure when the proof holds; insecure when it holds only through an opt-out range or the
/// NSEC3 iterations are above the limit; bogus (EDE 12 or 6) otherwise. For
/// [`Denial::NoDs`], a holding proof means the delegation is *insecure* (that is what it
/// proves), so it returns [`Verdict::insecure`].
pub fn prove(
    denial: &Denial,
    qname: &Name,
    zone: &Name,
    records: &[Record],
    budget: &mut Budget,
) -> Verdict {
    if !zone.zone_of(qname) {
        return Verdict::bogus(Reason::Bogus("denial for a name outside the zone"));
    }
    let nsec3 = nsec3_records(records);
    let result = if nsec3.is_empty() {
        let nsec: Vec<(&Name, &NSEC)> = records
            .iter()
            .filter(|r| zone.zone_of(&r.name))
            .filter_map(|r| match &r.data {
                RData::DNSSEC(DNSSECRData::NSEC(n)) => Some((&r.name, n)),
                _ => None,
            })
            .collect();
        prove_nsec(denial, qname, &nsec)
    } else {
        Nsec3Chain::new(zone, &nsec3).and_then(|mut chain| chain.prove(denial, qname, budget))
    };
    match (result, denial) {
        (Ok(Held::Fully), Denial::NoDs) | (Ok(Held::OptOut), _) => Verdict::insecure(None),
        (Ok(Held::Fully), _) => Verdict::secure(),
        // Records that verify but prove nothing are a wrong proof, not a missing one: EDE
        // 6 as Unbound gives (EDE 12 stays for no NSEC/NSEC3 at all, `verified_proof`).
        (Err(Reason::NsecMissing), _) if !records.is_empty() => Verdict::bogus(Reason::Bogus(
            "the NSEC/NSEC3 records do not prove the denial",
        )),
        (Err(reason), _) => Verdict::from(reason),
    }
}

/// An NXDOMAIN or NODATA that cached, validated NSEC records prove without asking (RFC
/// 8198 §5), and the records that prove it.
#[derive(Clone, Debug, PartialEq)]
pub struct Synthesised {
    pub nxdomain: bool,
    /// The NSEC records of the proof (one or two): what a DO client gets in the authority
    /// section.
    pub proof: Vec<Record>,
}

/// RFC 8198 §5.1-5.3: whether the validated NSEC records of `zone` (from the cache, each
/// still fresh) prove that `qname` does not exist or has no `qtype`, and with which of
/// them. The same [`prove`] judges as for a reply, on the one or two records a reply would
/// carry: the NSEC matching or covering the name and, for NXDOMAIN, the one covering the
/// wildcard at its closest encloser (Unbound's `val_neg_getmsg`). `None` when they prove
/// nothing, or only that data exists (a wildcard with the type: an answer, not a denial).
/// No NODATA for ANY (a query type, not a type to disprove; RFC 8198 §5.3 as Unbound),
/// and none for DS, which is the parent's (the cached range of the child proves nothing
/// about it). With NSEC3 records instead (RFC 8198 §5.2; Unbound 1.17 does not), the
/// same NSEC3 proof as for a reply (closest encloser, next closer, wildcard; RFC 5155
/// §8.4-8.7) must hold fully: an opt-out range never proves NXDOMAIN or NODATA (§6), nor
/// do more than [`MAX_NSEC3_ITERATIONS`]; the records it relied on are the proof.
pub fn synthesise(
    qname: &Name,
    qtype: RecordType,
    zone: &Name,
    records: &[Record],
    budget: &mut Budget,
) -> Option<Synthesised> {
    if qtype == RecordType::DS || !zone.zone_of(qname) {
        return None;
    }
    let nsecs: Vec<(&Record, &NSEC)> = records
        .iter()
        .filter(|r| zone.zone_of(&r.name))
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::NSEC(n)) => Some((r, n)),
            _ => None,
        })
        .collect();
    if nsecs.is_empty() {
        return synthesise_nsec3(qname, qtype, zone, records, budget);
    }
    let mut holds = |denial: Denial, used: &[&Record]| {
        let used: Vec<Record> = used.iter().map(|r| (*r).clone()).collect();
        (prove(&denial, qname, zone, &used, budget).proof == super::Proof::Secure).then(|| {
            Synthesised {
                nxdomain: denial == Denial::NxDomain,
                proof: used,
            }
        })
    };
    let nodata = Denial::NoData(qtype);
    let any = qtype == RecordType::ANY;
    if let Some((m, _)) = nsecs.iter().find(|(r, _)| r.name == *qname) {
        return if any { None } else { holds(nodata, &[m]) };
    }
    let covers = |name: &Name| {
        nsecs.iter().find(|(r, n)| {
            nsec_covers(&r.name, n.next_domain_name(), name) && !blocks_below(&r.name, n, name)
        })
    };
    let (c, cn) = covers(qname)?;
    // An empty non-terminal: the range's next name is below the question (RFC 7129 §3.2).
    let next = cn.next_domain_name();
    if qname.zone_of(next) && next != qname {
        return if any { None } else { holds(nodata, &[c]) };
    }
    let (a, b) = (
        common_ancestor(qname, &c.name),
        common_ancestor(qname, next),
    );
    let ce = if a.iter().count() >= b.iter().count() {
        a
    } else {
        b
    };
    let wildcard = wildcard_of(&ce)?;
    if let Some((w, _)) = nsecs.iter().find(|(r, _)| r.name == wildcard) {
        // The wildcard exists: NODATA if it lacks the type, else it would answer.
        let used: &[&Record] = if w.name == c.name { &[c] } else { &[c, w] };
        return if any { None } else { holds(nodata, used) };
    }
    let (w, _) = covers(&wildcard)?;
    if w.name == c.name {
        holds(Denial::NxDomain, &[c])
    } else {
        holds(Denial::NxDomain, &[c, w])
    }
}

/// The NSEC3 records among `records`, with their owner names.
fn nsec3_records(records: &[Record]) -> Vec<(&Name, &NSEC3)> {
    records
        .iter()
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::NSEC3(n)) => Some((&r.name, n)),
            _ => None,
        })
        .collect()
}

/// [`synthesise`] from NSEC3 records: NODATA, then NXDOMAIN, on one chain (so a name is
/// hashed once).
fn synthesise_nsec3(
    qname: &Name,
    qtype: RecordType,
    zone: &Name,
    records: &[Record],
    budget: &mut Budget,
) -> Option<Synthesised> {
    let nsec3 = nsec3_records(records);
    let mut chain = Nsec3Chain::new(zone, &nsec3).ok()?;
    let mut denials = vec![Denial::NxDomain];
    if qtype != RecordType::ANY {
        denials.insert(0, Denial::NoData(qtype));
    }
    for denial in denials {
        chain.used.clear();
        if let Ok(Held::Fully) = chain.prove(&denial, qname, budget) {
            let used = std::mem::take(&mut chain.used);
            let mut proof: Vec<Record> = Vec::new();
            for r in records {
                let RData::DNSSEC(DNSSECRData::NSEC3(n)) = &r.data else {
                    continue;
                };
                let hash = r.name.iter().next().and_then(|l| {
                    data_encoding::BASE32_DNSSEC
                        .decode(&l.to_ascii_lowercase())
                        .ok()
                });
                let same_chain = n.salt() == chain.salt && n.iterations() == chain.iterations;
                if same_chain
                    && hash.is_some_and(|h| used.contains(&h))
                    && !proof.iter().any(|p| p.name == r.name)
                {
                    proof.push(r.clone());
                }
            }
            return Some(Synthesised {
                nxdomain: denial == Denial::NxDomain,
                proof,
            });
        }
    }
    None
}

/// How a proof held.
#[derive(Debug, PartialEq, Eq)]
enum Held {
    Fully,
    /// Only through an NSEC3 opt-out range (RFC 5155 §6): what it covers may be an unsigned
    /// delegation, so the answer is insecure (§9.2).
    OptOut,
}

/// Whether the NSEC range `owner` → `next` covers `name`: strictly between them in
/// canonical order (RFC 4034 §6.1), the last NSEC of a zone wrapping round to the apex.
pub fn nsec_covers(owner: &Name, next: &Name, name: &Name) -> bool {
    if owner < next {
        owner < name && name < next
    } else {
        owner < name && next.zone_of(name)
    }
}

/// The longest ancestor `a` and `b` share.
fn common_ancestor(a: &Name, b: &Name) -> Name {
    let (la, lb) = (a.iter().count(), b.iter().count());
    (0..=la.min(lb))
        .rev()
        .map(|k| a.trim_to(k))
        .find(|n| *n == b.trim_to(n.iter().count()))
        .unwrap_or_else(Name::root)
}

fn wildcard_of(ce: &Name) -> Option<Name> {
    ce.prepend_label("*").ok()
}

/// RFC 6840 §4.1: an NSEC at a delegation (NS, no SOA) or at a DNAME says nothing of the
/// names below its owner.
fn blocks_below(owner: &Name, nsec: &NSEC, name: &Name) -> bool {
    nsec.is_ancestor_delegation() && owner.zone_of(name) && owner != name
}

fn prove_nsec(denial: &Denial, qname: &Name, nsecs: &[(&Name, &NSEC)]) -> Result<Held, Reason> {
    let missing = Err(Reason::NsecMissing);
    if nsecs.is_empty() {
        return missing;
    }
    let matching = nsecs.iter().find(|(o, _)| *o == qname);
    let covering = |name: &Name| {
        nsecs
            .iter()
            .find(|(o, n)| nsec_covers(o, n.next_domain_name(), name) && !blocks_below(o, n, name))
    };
    // The closest encloser a covering NSEC implies (RFC 4035 §5.4; Unbound's
    // nsec_closest_encloser): the deeper of its owner's and its next name's common
    // ancestor with the name.
    let encloser = |owner: &Name, nsec: &NSEC| {
        let a = common_ancestor(qname, owner);
        let b = common_ancestor(qname, nsec.next_domain_name());
        if a.iter().count() >= b.iter().count() {
            a
        } else {
            b
        }
    };
    match denial {
        Denial::NxDomain => {
            if matching.is_some() || nsecs.iter().any(|(o, n)| blocks_below(o, n, qname)) {
                return missing;
            }
            let Some((owner, nsec)) = covering(qname) else {
                return missing;
            };
            let ce = encloser(owner, nsec);
            let Some(wild) = wildcard_of(&ce) else {
                return missing;
            };
            if nsecs.iter().any(|(o, _)| **o == wild) || covering(&wild).is_none() {
                return missing;
            }
            Ok(Held::Fully)
        }
        Denial::NoData(qtype) => {
            if let Some((_, nsec)) = matching {
                let types = nsec.type_set();
                if types.contains(*qtype) || types.contains(RecordType::CNAME) {
                    return Err(Reason::Bogus("NSEC shows the type exists"));
                }
                let parent_side = nsec.is_ancestor_delegation();
                return match (*qtype == RecordType::DS, parent_side) {
                    // DS lives at the parent: the NSEC there must be the parent's.
                    (true, _) if types.contains(RecordType::SOA) => missing,
                    (false, true) => missing,
                    _ => Ok(Held::Fully),
                };
            }
            let Some((owner, nsec)) = covering(qname) else {
                return missing;
            };
            // An empty non-terminal: the next name is below the question (RFC 7129 §3.2).
            let next = nsec.next_domain_name();
            if qname.zone_of(next) && next != qname {
                return Ok(Held::Fully);
            }
            // Wildcard NODATA: the wildcard at the closest encloser lacks the type.
            let ce = encloser(owner, nsec);
            let wild = wildcard_of(&ce);
            match nsecs.iter().find(|(o, _)| Some(*o) == wild.as_ref()) {
                Some((_, w))
                    if !w.type_set().contains(*qtype)
                        && !w.type_set().contains(RecordType::CNAME) =>
                {
                    Ok(Held::Fully)
                }
                _ => missing,
            }
        }
        Denial::Wildcard { wildcard } => {
            let Some((owner, nsec)) = covering(qname) else {
                return missing;
            };
            if encloser(owner, nsec) != wildcard.base_name() {
                return missing;
            }
            Ok(Held::Fully)
        }
        Denial::NoDs => match matching {
            Some((_, nsec)) => {
                let types = nsec.type_set();
                if types.contains(RecordType::NS)
                    && !types.contains(RecordType::DS)
                    && !types.contains(RecordType::SOA)
                {
                    Ok(Held::Fully)
                } else {
                    missing
                }
            }
            None => missing,
        },
    }
}

/// The NSEC3 records of one zone with one set of parameters (RFC 5155 §8.2), owner hashes
/// decoded, and the hashes computed so far.
struct Nsec3Chain<'a> {
    zone: Name,
    salt: &'a [u8],
    iterations: u16,
    entries: Vec<(Vec<u8>, &'a NSEC3)>,
    hashes: HashMap<Name, Vec<u8>>,
    /// Owner hashes of the entries a proof relied on (for the records a synthesised answer
    /// carries).
    used: Vec<Vec<u8>>,
}

impl<'a> Nsec3Chain<'a> {
    fn new(zone: &Name, records: &[(&'a Name, &'a NSEC3)]) -> Result<Nsec3Chain<'a>, Reason> {
        let in_zone: Vec<&(&Name, &NSEC3)> = records
            .iter()
            .filter(|(owner, _)| owner.base_name() == *zone)
            .collect();
        let Some((_, first)) = in_zone.first() else {
            return Err(Reason::NsecMissing);
        };
        let (salt, iterations) = (first.salt(), first.iterations());
        if iterations > MAX_NSEC3_ITERATIONS {
            return Err(Reason::Nsec3Iterations(iterations));
        }
        let entries = in_zone
            .iter()
            .filter(|(_, n)| n.salt() == salt && n.iterations() == iterations)
            .filter_map(|(owner, n)| {
                let label = owner.iter().next()?.to_ascii_lowercase();
                let hash = data_encoding::BASE32_DNSSEC.decode(&label).ok()?;
                Some((hash, *n))
            })
            .collect();
        Ok(Nsec3Chain {
            zone: zone.clone(),
            salt,
            iterations,
            entries,
            hashes: HashMap::new(),
            used: Vec::new(),
        })
    }

    fn hash(&mut self, name: &Name, budget: &mut Budget) -> Result<Vec<u8>, Reason> {
        let key = name.to_lowercase();
        if let Some(h) = self.hashes.get(&key) {
            return Ok(h.clone());
        }
        budget.spend_hash()?;
        let h = Nsec3HashAlgorithm::SHA1
            .hash(self.salt, &key, self.iterations)
            .map_err(|_| Reason::Bogus("name cannot be hashed"))?
            .as_ref()
            .to_vec();
        self.hashes.insert(key, h.clone());
        Ok(h)
    }

    fn matching(&mut self, hash: &[u8]) -> Option<&'a NSEC3> {
        let (owner, n) = self.entries.iter().find(|(h, _)| h.as_slice() == hash)?;
        self.used.push(owner.clone());
        Some(*n)
    }

    fn covering(&mut self, hash: &[u8]) -> Option<&'a NSEC3> {
        let (owner, n) = self
            .entries
            .iter()
            .find(|(owner, n)| nsec3_covers(owner, n.next_hashed_owner_name(), hash))?;
        self.used.push(owner.clone());
        Some(*n)
    }

    /// RFC 5155 §8.3: the closest provable encloser of `qname` (an ancestor with a matching
    /// NSEC3) and the NSEC3 covering the next closer name. `None` when `qname` itself matches.
    fn closest_encloser(
        &mut self,
        qname: &Name,
        budget: &mut Budget,
    ) -> Result<Option<(Name, &'a NSEC3)>, Reason> {
        let zone_labels = self.zone.iter().count();
        let total = qname.iter().count();
        for k in (zone_labels..=total).rev() {
            let candidate = qname.trim_to(k);
            let h = self.hash(&candidate, budget)?;
            let Some(found) = self.matching(&h) else {
                continue;
            };
            if k == total {
                return Ok(None);
            }
            // A match at a delegation or DNAME proves nothing below it (§8.3).
            if found.is_ancestor_delegation() && candidate != self.zone {
                return Err(Reason::NsecMissing);
            }
            let next_closer = qname.trim_to(k + 1);
            let nh = self.hash(&next_closer, budget)?;
            return match self.covering(&nh) {
                Some(cover) => Ok(Some((candidate, cover))),
                None => Err(Reason::NsecMissing),
            };
        }
        Err(Reason::NsecMissing)
    }

    fn prove(
        &mut self,
        denial: &Denial,
        qname: &Name,
        budget: &mut Budget,
    ) -> Result<Held, Reason> {
        let missing = Err(Reason::NsecMissing);
        let opt = |n: &NSEC3| {
            if n.opt_out() {
                Held::OptOut
            } else {
                Held::Fully
            }
        };
        match denial {
            Denial::NxDomain => {
                // §8.4: closest encloser, next closer covered, wildcard covered.
                let Some((ce, cover)) = self.closest_encloser(qname, budget)? else {
                    return missing;
                };
                let Some(wild) = wildcard_of(&ce) else {
                    return missing;
                };
                let wh = self.hash(&wild, budget)?;
                if self.covering(&wh).is_none() {
                    return missing;
                }
                Ok(opt(cover))
            }
            Denial::NoData(qtype) => {
                let h = self.hash(qname, budget)?;
                if let Some(n) = self.matching(&h) {
                    // §8.5 (and §8.6 when DS has a match).
                    let types = n.type_set();
                    if types.contains(*qtype) || types.contains(RecordType::CNAME) {
                        return Err(Reason::Bogus("NSEC3 shows the type exists"));
                    }
                    return match (*qtype == RecordType::DS, n.is_ancestor_delegation()) {
                        (true, _) if types.contains(RecordType::SOA) => missing,
                        (false, true) => missing,
                        _ => Ok(Held::Fully),
                    };
                }
                let Some((ce, cover)) = self.closest_encloser(qname, budget)? else {
                    return missing;
                };
                // §8.6: DS with no match, covered by an opt-out range: insecure.
                if *qtype == RecordType::DS && cover.opt_out() {
                    return Ok(Held::OptOut);
                }
                // §8.7: wildcard NODATA.
                let Some(wild) = wildcard_of(&ce) else {
                    return missing;
                };
                let wh = self.hash(&wild, budget)?;
                match self.matching(&wh) {
                    Some(w)
                        if !w.type_set().contains(*qtype)
                            && !w.type_set().contains(RecordType::CNAME) =>
                    {
                        Ok(Held::Fully)
                    }
                    _ => missing,
                }
            }
            Denial::Wildcard { wildcard } => {
                // §8.8: the next closer name below the wildcard's encloser is covered.
                let ce_labels = wildcard.base_name().iter().count();
                if qname.iter().count() <= ce_labels {
                    return missing;
                }
                let nh = self.hash(&qname.trim_to(ce_labels + 1), budget)?;
                match self.covering(&nh) {
                    Some(cover) => Ok(opt(cover)),
                    None => missing,
                }
            }
            Denial::NoDs => {
                // §8.9: a match without DS (and not the child's apex), or an opt-out range
                // covering the next closer name.
                let h = self.hash(qname, budget)?;
                if let Some(n) = self.matching(&h) {
                    let types = n.type_set();
                    return if types.contains(RecordType::NS)
                        && !types.contains(RecordType::DS)
                        && !types.contains(RecordType::SOA)
                    {
                        Ok(Held::Fully)
                    } else {
                        missing
                    };
                }
                match self.closest_encloser(qname, budget)? {
                    Some((_, cover)) if cover.opt_out() => Ok(Held::Fully),
                    _ => missing,
                }
            }
        }
    }
}

/// Whether the NSEC3 range from hash `owner` to `next` covers `hash`, wrapping round at the
/// end of the chain (RFC 5155 §8.3's "covers").
pub fn nsec3_covers(owner: &[u8], next: &[u8], hash: &[u8]) -> bool {
    if owner < next {
        owner < hash && hash < next
    } else {
        owner < hash || hash < next
    }
}

#[cfg(test)]
mod tests;
