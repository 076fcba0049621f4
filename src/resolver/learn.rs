//! What a reply teaches the caches: the zone cut a referral describes (within bounds), the
//! CNAME/DNAME chain it followed, and failures worth remembering. These are the machine's
//! writes to the shared cache, kept in one place (docs/architecture.md, "The state machine").

use std::net::IpAddr;

use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::classify::ns_target;
use super::{Failure, Outcome, Question};
use crate::cache::{Cache, Cached, Delegation, NsName};

/// At most this many NS names are taken from one referral (Knot Resolver stops at 13, the
/// size of the root's NS set; real zones have 2-8). More are chosen at random, so a zone
/// with thousands of NS names costs no more memory or CPU than one with 13.
pub const MAX_NS_PER_CUT: usize = 13;
/// At most this many glue addresses per NS name and family from one referral.
pub const MAX_GLUE_PER_NS: usize = 4;

/// The zone cut a referral describes, within bounds: at most [`MAX_NS_PER_CUT`] NS names
/// (a random choice when there are more) and [`MAX_GLUE_PER_NS`] glue addresses per name and
/// family.
pub(super) fn learn_referral(zone: Name, ns: &[Record], glue: &[Record]) -> Delegation {
    // Linear in the referral's size: shuffle once if it is over the cap, then keep the first
    // distinct names (the duplicate check only ever scans the few kept).
    let mut all: Vec<&Name> = ns.iter().filter_map(ns_target).collect();
    if all.len() > MAX_NS_PER_CUT {
        rand::seq::SliceRandom::shuffle(&mut all[..], &mut rand::rng());
    }
    let mut names: Vec<&Name> = Vec::with_capacity(all.len().min(MAX_NS_PER_CUT));
    for name in all {
        if names.len() == MAX_NS_PER_CUT {
            break;
        }
        if !names.contains(&name) {
            names.push(name);
        }
    }
    let servers = names
        .into_iter()
        .map(|name| {
            let mut addrs: Vec<IpAddr> = Vec::new();
            let (mut v4, mut v6) = (0, 0);
            for ip in glue
                .iter()
                .filter(|g| g.name == *name)
                .filter_map(|g| g.data.ip_addr())
            {
                let n = if ip.is_ipv4() { &mut v4 } else { &mut v6 };
                if *n < MAX_GLUE_PER_NS && !addrs.contains(&ip) {
                    *n += 1;
                    addrs.push(ip);
                }
            }
            NsName {
                name: name.to_lowercase(),
                addrs,
            }
        })
        .collect();
    Delegation { zone, servers }
}

/// The name a chain ends at (the question's name if there is no chain).
pub(super) fn chain_end(qname: &Name, chain: &[Record]) -> Name {
    chain
        .iter()
        .rev()
        .find_map(|r| match &r.data {
            RData::CNAME(c) => Some(c.0.clone()),
            _ => None,
        })
        .unwrap_or_else(|| qname.clone())
}

/// The SOA of a negative answer as the client sees it: with the negative TTL, min(SOA TTL,
/// SOA MINIMUM) capped by `max-negative-ttl` (RFC 2308 §3 and §5), fresh or cached alike.
pub(super) fn negative_soa(cache: &Cache, mut soa: Record) -> Record {
    if let Some(ttl) = cache.answers.negative_ttl(Some(&soa)) {
        soa.ttl = ttl;
    }
    soa
}

/// Caches a failed resolution briefly (RFC 9520), unless it came from that cache already or
/// is not about the DNS at all.
pub(super) fn remember_failure(cache: &Cache, question: &Question, outcome: &Outcome, now: u64) {
    if let Outcome::ServFail(f) = outcome {
        if !matches!(f, Failure::RecentFailure | Failure::UnsupportedClass(_)) {
            cache.answers.insert_servfail(question.clone(), now);
        }
    }
}

/// A cached DNAME at an ancestor of `name` (RFC 6672 §3.3): the DNAME, the CNAME it
/// synthesises for `name` (with the DNAME's TTL) and the new name.
pub(super) fn cached_dname(cache: &Cache, name: &Name, now: u64) -> Option<(Record, Record, Name)> {
    if !cache.answers.may_hold_dnames() {
        return None;
    }
    let mut owner = name.clone();
    while !owner.is_root() {
        owner = owner.base_name();
        if let Some(Cached::Records(rs)) = cache
            .answers
            .get(&Question::new(owner.clone(), RecordType::DNAME), now)
        {
            let dname = rs.into_iter().next()?;
            let target = super::classify::dname_substitute(&dname, name)?;
            let cname = Record::from_rdata(
                name.clone(),
                dname.ttl,
                RData::CNAME(hickory_proto::rr::rdata::CNAME(target.clone())),
            );
            return Some((dname, cname, target));
        }
    }
    None
}

/// Caches each CNAME of a chain under its own (owner, CNAME) key. A CNAME synthesised from
/// a DNAME is cached with the DNAME before it, so an answer from the cache carries the DNAME
/// first as a fresh one does (RFC 6672 §3.4: the synthesised CNAME has the DNAME's TTL).
/// Each link keeps its RRSIGs from `sigs` beside it (the synthesised CNAME has none).
pub(super) fn cache_chain(cache: &Cache, chain: &[Record], sigs: &[Record], now: u64) {
    for (i, r) in chain.iter().enumerate() {
        if r.record_type() == RecordType::DNAME {
            // Also under its own name, so other names below it are rewritten from the
            // cache (RFC 6672 §3.3).
            cache.answers.insert_signed(
                Question::new(r.name.clone(), RecordType::DNAME),
                std::slice::from_ref(r),
                &super::machine::covering(sigs, &r.name, RecordType::DNAME),
                now,
            );
            continue;
        }
        if r.record_type() != RecordType::CNAME {
            continue;
        }
        let records = match i.checked_sub(1).map(|p| &chain[p]) {
            Some(d) if d.record_type() == RecordType::DNAME => vec![d.clone(), r.clone()],
            _ => vec![r.clone()],
        };
        let own = super::machine::covering(sigs, &r.name, RecordType::CNAME);
        let dname_sigs = match records.first() {
            Some(d) if d.record_type() == RecordType::DNAME => {
                super::machine::covering(sigs, &d.name, RecordType::DNAME)
            }
            _ => Vec::new(),
        };
        let all: Vec<Record> = dname_sigs.into_iter().chain(own).collect();
        cache.answers.insert_signed(
            Question::new(r.name.clone(), RecordType::CNAME),
            &records,
            &all,
            now,
        );
    }
}

/// The outcome a cache entry gives, after the `chain` that led to it.
pub(crate) fn outcome_from_cached(mut chain: Vec<Record>, hit: Cached) -> Outcome {
    match hit {
        Cached::Records(rs) => {
            chain.extend(rs);
            Outcome::Answer { answers: chain }
        }
        Cached::NxDomain(soa) => Outcome::NxDomain {
            answers: chain,
            soa,
        },
        Cached::NoData(soa) => Outcome::NoData {
            answers: chain,
            soa,
        },
        Cached::ServFail => Outcome::ServFail(Failure::RecentFailure),
    }
}
