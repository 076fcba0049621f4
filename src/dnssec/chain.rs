//! The chain of trust from an anchor down to a signer's zone (RFC 4035 §5.1-5.2), as a
//! sans-IO walk the resolver drives with frames: [`Walk::need`] says which DNSKEY or DS
//! RRset to fetch next, [`Walk::feed`] takes what came back, and [`Walk::done`] holds the
//! zone's validated keys or the verdict that stopped the walk.
//!
//! The walk goes down one label at a time from the closest anchor, as Unbound's validator
//! does: a DS RRset moves the trust into the child (its DNSKEY set is fetched next); a
//! proven absence of DS at a delegation ends it as insecure; a proven absence of DS at a
//! name that is no zone cut (no NS in the proof) just moves on to the next label.

use hickory_proto::dnssec::rdata::DS;
use hickory_proto::rr::{Name, Record, RecordType};

use super::anchor::TrustAnchors;
use super::config::Config;
use super::denial::{prove, Denial};
use super::keycache::{KeyCache, Known};
use super::verify::{ds, rrsig, validate_keyset, verify_rrset, Budget, KeySet, Link, Skew};
use super::{Proof, Reason, Verdict};

/// What one fetch brought back.
#[derive(Clone, Copy, Debug)]
pub enum Fetched<'a> {
    /// The RRset asked for, with the RRSIGs that came with it.
    Records {
        records: &'a [Record],
        sigs: &'a [Record],
    },
    /// NODATA or NXDOMAIN, with the authority section's NSEC/NSEC3 records and RRSIGs.
    Negative {
        nxdomain: bool,
        proof: &'a [Record],
        sigs: &'a [Record],
    },
    /// No usable answer (timeout, SERVFAIL, lame servers).
    Failed,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    /// Fetch the DNSKEY set of `zone` and link it with `link` (anchors or validated DS).
    Keys {
        zone: Name,
        link: Vec<LinkData>,
    },
    /// Fetch the DS set of `child`, from the zone whose keys we hold.
    Ds {
        child: Name,
    },
    Done(Result<KeySet, Verdict>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum LinkData {
    Ds(DS),
    Key(hickory_proto::dnssec::rdata::DNSKEY),
}

/// One walk from the closest trust anchor to `signer`'s DNSKEY set.
#[derive(Clone, Debug)]
pub struct Walk {
    signer: Name,
    /// The validated keys of the deepest zone reached.
    keys: Option<KeySet>,
    state: State,
    skew: Skew,
    /// The fetches made, in order (for `trace --dnssec` and tests). A walk that ends
    /// insecure or bogus ended at the last one: the zone to cache the verdict for.
    pub fetched: Vec<(Name, RecordType)>,
    /// Every key set validated on the way, for the key cache.
    pub validated: Vec<KeySet>,
}

impl Walk {
    /// A walk to `signer`'s keys. Names under a negative trust anchor are insecure at once;
    /// names with no anchor above them are indeterminate (RFC 4035 §4.3).
    pub fn new(signer: &Name, config: &Config) -> Walk {
        let signer = signer.to_lowercase();
        let state = if config.negative.load().covers(&signer) {
            State::Done(Err(Verdict::insecure(None)))
        } else {
            let anchors = config.anchors.load();
            match anchors.closest(&signer) {
                None => State::Done(Err(Verdict::indeterminate())),
                Some((zone, anchors)) => State::Keys {
                    zone: zone.clone(),
                    link: TrustAnchors::ds(anchors)
                        .into_iter()
                        .map(LinkData::Ds)
                        .chain(TrustAnchors::keys(anchors).into_iter().map(LinkData::Key))
                        .collect(),
                },
            }
        };
        Walk {
            signer,
            keys: None,
            state,
            skew: config.skew,
            fetched: Vec::new(),
            validated: Vec::new(),
        }
    }

    /// A walk that starts from the deepest entry of `cache` at or above `signer` (and at or
    /// below its anchor: a cached key set above an island of trust must not bypass it), or
    /// ends at once with a cached insecure or bogus verdict.
    pub fn from_cache(signer: &Name, config: &Config, cache: &KeyCache, now: u64) -> Walk {
        let walk = Walk::new(signer, config);
        let State::Keys { zone: anchor, .. } = &walk.state else {
            return walk;
        };
        match cache.closest(&walk.signer, now) {
            Some((zone, known)) if anchor.zone_of(&zone) => match known {
                Known::Keys(keys) => Walk::resume(signer, keys, config),
                Known::Verdict(v) => Walk {
                    state: State::Done(Err(v)),
                    ..walk
                },
            },
            _ => walk,
        }
    }

    /// Starts below an already validated key set (from the cache) instead of the anchor.
    pub fn resume(signer: &Name, from: KeySet, config: &Config) -> Walk {
        let mut walk = Walk::new(signer, config);
        if matches!(walk.state, State::Keys { .. }) && from.zone.zone_of(&walk.signer) {
            walk.keys = Some(from);
            walk.advance();
        }
        walk
    }

    /// The RRset to fetch next, or `None` when the walk is done.
    pub fn need(&self) -> Option<(Name, RecordType)> {
        match &self.state {
            State::Keys { zone, .. } => Some((zone.clone(), RecordType::DNSKEY)),
            State::Ds { child } => Some((child.clone(), RecordType::DS)),
            State::Done(_) => None,
        }
    }

    /// The signer's validated keys, or why there are none to trust.
    pub fn done(&self) -> Option<&Result<KeySet, Verdict>> {
        match &self.state {
            State::Done(r) => Some(r),
            _ => None,
        }
    }

    /// Feeds the answer to [`Walk::need`]'s fetch.
    pub fn feed(&mut self, fetched: Fetched<'_>, now: u64, budget: &mut Budget) {
        let Some(asked) = self.need() else { return };
        self.fetched.push(asked);
        let state = std::mem::replace(&mut self.state, State::Done(Err(Verdict::indeterminate())));
        match state {
            State::Keys { zone, link } => self.on_keys(zone, link, fetched, now, budget),
            State::Ds { child } => self.on_ds(child, fetched, now, budget),
            State::Done(r) => self.state = State::Done(r),
        }
    }

    fn stop(&mut self, reason: Reason) {
        self.state = State::Done(Err(Verdict::from(reason)));
    }

    fn on_keys(
        &mut self,
        zone: Name,
        link: Vec<LinkData>,
        fetched: Fetched<'_>,
        now: u64,
        budget: &mut Budget,
    ) {
        let Fetched::Records { records, sigs } = fetched else {
            return self.stop(Reason::DnskeyMissing);
        };
        let ds: Vec<DS> = link
            .iter()
            .filter_map(|l| match l {
                LinkData::Ds(d) => Some(d.clone()),
                LinkData::Key(_) => None,
            })
            .collect();
        let keys: Vec<_> = link
            .iter()
            .filter_map(|l| match l {
                LinkData::Key(k) => Some(k.clone()),
                LinkData::Ds(_) => None,
            })
            .collect();
        // An anchor may be DS or DNSKEY records; either one linking the set is enough.
        let by_ds = (!ds.is_empty())
            .then(|| validate_keyset(&zone, records, sigs, Link::Ds(&ds), now, self.skew, budget));
        let result = match by_ds {
            Some(Ok(set)) => Ok(set),
            Some(Err(e)) if keys.is_empty() => Err(e),
            _ => validate_keyset(
                &zone,
                records,
                sigs,
                Link::Keys(&keys),
                now,
                self.skew,
                budget,
            ),
        };
        match result {
            Ok(set) => {
                self.validated.push(set.clone());
                self.keys = Some(set);
                self.advance();
            }
            Err(reason) => self.stop(reason),
        }
    }

    fn on_ds(&mut self, child: Name, fetched: Fetched<'_>, now: u64, budget: &mut Budget) {
        let Some(keys) = self.keys.clone() else {
            return self.stop(Reason::DnskeyMissing);
        };
        match fetched {
            Fetched::Records { records, sigs } => {
                match verify_rrset(
                    &child,
                    RecordType::DS,
                    records,
                    sigs,
                    &keys.zone,
                    &keys.keys,
                    now,
                    self.skew,
                    budget,
                ) {
                    Ok(_) => {
                        let link = records
                            .iter()
                            .filter(|r| r.name == child)
                            .filter_map(ds)
                            .cloned()
                            .map(LinkData::Ds)
                            .collect();
                        self.state = State::Keys { zone: child, link };
                    }
                    Err(reason) => self.stop(reason),
                }
            }
            Fetched::Negative {
                nxdomain: false,
                proof,
                sigs,
            } => {
                let proof = match verified_proof(&keys, proof, sigs, now, self.skew, budget) {
                    Ok(p) => p,
                    Err(reason) => return self.stop(reason),
                };
                let no_ds = prove(&Denial::NoDs, &child, &keys.zone, &proof, budget);
                if no_ds.proof == Proof::Insecure {
                    // An unsigned delegation (or an opt-out range): insecure below it.
                    self.state = State::Done(Err(no_ds));
                    return;
                }
                let nodata = prove(
                    &Denial::NoData(RecordType::DS),
                    &child,
                    &keys.zone,
                    &proof,
                    budget,
                );
                match nodata.proof {
                    // No DS and no delegation: not a zone cut, go one label deeper.
                    Proof::Secure if child != self.signer => self.advance_from(&child),
                    Proof::Secure => {
                        self.stop(Reason::Bogus("the signer's zone is not a zone cut"))
                    }
                    _ => self.state = State::Done(Err(nodata)),
                }
            }
            Fetched::Negative { nxdomain: true, .. } => {
                self.stop(Reason::Bogus("DS name does not exist above a signed name"))
            }
            Fetched::Failed => self.stop(Reason::Bogus("no DS and no proof of its absence")),
        }
    }

    /// Trust is in `self.keys`: done at the signer, else ask for the next label's DS.
    fn advance(&mut self) {
        let zone = self.keys.as_ref().map(|k| k.zone.clone());
        match zone {
            Some(z) if z == self.signer => {
                self.state = State::Done(Ok(self.keys.clone().expect("just matched")));
            }
            Some(z) => self.advance_from(&z),
            None => self.stop(Reason::DnskeyMissing),
        }
    }

    fn advance_from(&mut self, above: &Name) {
        let child = self.signer.trim_to(above.iter().count() + 1);
        self.state = State::Ds { child };
    }
}

/// The NSEC/NSEC3 records of `proof` whose RRSIGs verify with the zone's `keys`; any that
/// does not verify makes the proof bogus (RFC 4035 §5.4: proofs are validated like data).
pub fn verified_proof(
    keys: &KeySet,
    proof: &[Record],
    sigs: &[Record],
    now: u64,
    skew: Skew,
    budget: &mut Budget,
) -> Result<Vec<Record>, Reason> {
    let mut out: Vec<Record> = Vec::new();
    for r in proof {
        let rtype = r.record_type();
        if !matches!(rtype, RecordType::NSEC | RecordType::NSEC3) {
            continue;
        }
        if out
            .iter()
            .any(|o| o.name == r.name && o.record_type() == rtype)
        {
            continue;
        }
        let set: Vec<Record> = proof
            .iter()
            .filter(|o| o.name == r.name && o.record_type() == rtype)
            .cloned()
            .collect();
        let own_sigs: Vec<Record> = sigs
            .iter()
            .filter(|s| s.name == r.name && rrsig(s).is_some())
            .cloned()
            .collect();
        verify_rrset(
            &r.name, rtype, &set, &own_sigs, &keys.zone, &keys.keys, now, skew, budget,
        )?;
        out.extend(set);
    }
    if out.is_empty() {
        return Err(Reason::NsecMissing);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
