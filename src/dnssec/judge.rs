//! Judging what a resolution found, once the signers' keys are validated ([`super::chain`]):
//! every RRset of an answer (CNAME links included), the proof beside a wildcard answer, the
//! SOA and NSEC/NSEC3 proof of a negative answer (RFC 4035 §5.3-5.4). One call per outcome;
//! when an RRset is signed by a zone whose keys the caller has not walked to yet, the answer
//! is [`Judged::NeedKeys`] and the caller walks there and calls again.

use hickory_proto::rr::{Name, Record, RecordType};

use super::chain::verified_proof;
use super::denial::{prove, Denial};
use super::verify::{rrsig, verify_rrset, Budget, KeySet, Skew};
use super::{Proof, Reason, Verdict};

/// The judgement, or the zone whose keys are needed first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Judged {
    Done(Verdict),
    NeedKeys(Name),
}

/// The signer of the first RRSIG covering `owner`/`rtype` in `records`.
pub fn signer_of(records: &[Record], owner: &Name, rtype: RecordType) -> Option<Name> {
    records
        .iter()
        .filter(|r| r.name == *owner)
        .filter_map(rrsig)
        .find(|s| s.input().type_covered == rtype)
        .map(|s| s.input().signer_name.clone())
}

/// The RRsets of `records` (RRSIGs aside), in order of first appearance.
fn rrsets(records: &[Record]) -> Vec<(Name, RecordType, Vec<Record>)> {
    let mut out: Vec<(Name, RecordType, Vec<Record>)> = Vec::new();
    for r in records {
        let t = r.record_type();
        if t == RecordType::RRSIG {
            continue;
        }
        match out.iter_mut().find(|(n, rt, _)| *n == r.name && *rt == t) {
            Some((_, _, set)) => set.push(r.clone()),
            None => out.push((r.name.clone(), t, vec![r.clone()])),
        }
    }
    out
}

/// Worse of two verdicts: bogus over insecure over secure (RFC 4035 §4.3: an answer is only
/// as secure as its least secure part).
pub fn worse(a: Verdict, b: Verdict) -> Verdict {
    let rank = |v: &Verdict| match v.proof {
        Proof::Secure => 0,
        Proof::Insecure => 1,
        Proof::Indeterminate => 2,
        Proof::Bogus => 3,
    };
    if rank(&b) > rank(&a) {
        b
    } else {
        a
    }
}

/// Judges a positive answer: `answer` is the answer section (chain and final RRset, with
/// RRSIGs), `authority` the authority section (the NSEC/NSEC3 for a wildcard expansion),
/// `keys` the validated key sets walked to so far.
#[allow(clippy::too_many_arguments)]
pub fn judge_answer(
    answer: &[Record],
    authority: &[Record],
    keys: &[KeySet],
    now: u64,
    skew: Skew,
    budget: &mut Budget,
) -> Judged {
    let mut verdict = Verdict::secure();
    for (owner, rtype, set) in rrsets(answer) {
        let Some(signer) = signer_of(answer, &owner, rtype) else {
            return Judged::Done(Verdict::bogus(Reason::RrsigsMissing));
        };
        let Some(ks) = keys.iter().find(|k| k.zone == signer) else {
            return Judged::NeedKeys(signer);
        };
        let sigs: Vec<Record> = answer
            .iter()
            .filter(|r| r.name == owner && rrsig(r).is_some())
            .cloned()
            .collect();
        let secured = match verify_rrset(
            &owner, rtype, &set, &sigs, &ks.zone, &ks.keys, now, skew, budget,
        ) {
            Ok(s) => s,
            Err(reason) => return Judged::Done(Verdict::from(reason)),
        };
        if let Some(wildcard) = secured.wildcard {
            // RFC 4035 §5.3.4: the expansion needs proof that no closer name exists.
            let auth_sigs: Vec<Record> = authority
                .iter()
                .filter(|r| rrsig(r).is_some())
                .cloned()
                .collect();
            let proof = match verified_proof(ks, authority, &auth_sigs, now, skew, budget) {
                Ok(p) => p,
                Err(reason) => return Judged::Done(Verdict::from(reason)),
            };
            let v = prove(
                &Denial::Wildcard { wildcard },
                &owner,
                &ks.zone,
                &proof,
                budget,
            );
            verdict = worse(verdict, v);
        }
    }
    Judged::Done(verdict)
}

/// Judges NXDOMAIN (`nxdomain`) or NODATA for `qname`/`qtype` (the end of any chain, which
/// the caller judges with [`judge_answer`]): the SOA and the NSEC/NSEC3 records of
/// `authority` must verify with the zone's keys and prove the denial.
#[allow(clippy::too_many_arguments)]
pub fn judge_negative(
    qname: &Name,
    qtype: RecordType,
    nxdomain: bool,
    authority: &[Record],
    keys: &[KeySet],
    now: u64,
    skew: Skew,
    budget: &mut Budget,
) -> Judged {
    let soa = authority
        .iter()
        .find(|r| r.record_type() == RecordType::SOA);
    let signer = soa
        .and_then(|s| signer_of(authority, &s.name, RecordType::SOA))
        .or_else(|| {
            authority
                .iter()
                .filter_map(rrsig)
                .map(|s| s.input().signer_name.clone())
                .next()
        });
    let Some(signer) = signer else {
        return Judged::Done(Verdict::bogus(Reason::RrsigsMissing));
    };
    let Some(ks) = keys.iter().find(|k| k.zone == signer) else {
        return Judged::NeedKeys(signer);
    };
    let sigs: Vec<Record> = authority
        .iter()
        .filter(|r| rrsig(r).is_some())
        .cloned()
        .collect();
    if let Some(soa) = soa {
        if let Err(reason) = verify_rrset(
            &soa.name,
            RecordType::SOA,
            authority,
            &sigs,
            &ks.zone,
            &ks.keys,
            now,
            skew,
            budget,
        ) {
            return Judged::Done(Verdict::from(reason));
        }
    }
    let proof = match verified_proof(ks, authority, &sigs, now, skew, budget) {
        Ok(p) => p,
        Err(reason) => return Judged::Done(Verdict::from(reason)),
    };
    let denial = if nxdomain {
        Denial::NxDomain
    } else {
        Denial::NoData(qtype)
    };
    Judged::Done(prove(&denial, qname, &ks.zone, &proof, budget))
}

#[cfg(test)]
mod tests;
