//! What a resolution produces: the outcome, as a plain value.
//!
//! DNS outcomes (NXDOMAIN, NODATA) are values, not errors; only "no answer at all" is a
//! failure, carried as [`Outcome::ServFail`] with its reason.

use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

/// Why a resolution ended without an answer. Each becomes SERVFAIL at the edge.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("every server for {zone} failed (timeout, lame, REFUSED or SERVFAIL)")]
    ServersExhausted { zone: Name },
    #[error("referral limit reached ({0} referrals)")]
    TooManyReferrals(usize),
    #[error("CNAME/DNAME chain longer than {0}")]
    ChainTooLong(usize),
    #[error("upstream query budget of {0} spent")]
    QueryBudget(usize),
    #[error("sub-resolution depth limit of {0} reached")]
    SubDepth(usize),
    #[error("deadline reached")]
    Deadline,
    #[error("more than {0} steps between two upstream queries")]
    StepBudget(usize),
    #[error("CNAME or delegation loop at {0}")]
    Loop(Name),
    #[error("no usable server address (all filtered by transport settings)")]
    NoAddress,
    #[error("delegation loop: the address of {ns}, a name server of {zone}, can only be found through {zone} itself")]
    DelegationLoop { zone: Name, ns: Name },
    #[error("no address found for any name server of {zone}")]
    NoServerAddress { zone: Name },
    #[error("class {0} is not served")]
    UnsupportedClass(DNSClass),
    #[error("resolution failed moments ago (RFC 9520 failure cache)")]
    RecentFailure,
    #[error("every member of pool {0} is down (all-down = servfail)")]
    PoolDown(String),
    #[error("{0} resolutions already pending (max-pending): refused at once")]
    Overloaded(usize),
    #[error("stopping: the health check fails so that balancers send no new queries")]
    Stopping,
    /// The outcome was found bogus (RFC 4035 §5.5): SERVFAIL with this Extended DNS Error
    /// (RFC 8914 INFO-CODE) and its reason as EXTRA-TEXT.
    #[error("DNSSEC validation failed: {why} (EDE {ede})")]
    Dnssec { ede: u16, why: String },
}

/// The end of one resolution.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// NOERROR with data: any CNAME/DNAME chain first, then the final RRset.
    Answer { answers: Vec<Record> },
    /// NXDOMAIN for the last name in the chain (RFC 2308 §2.1); `soa` gives the negative TTL.
    NxDomain {
        answers: Vec<Record>,
        soa: Option<Record>,
    },
    /// NOERROR without data for the type asked (RFC 2308 §2.2).
    NoData {
        answers: Vec<Record>,
        soa: Option<Record>,
    },
    /// YXDOMAIN after a DNAME (RFC 6672 §2.2): the name the DNAME rewrites to would be longer
    /// than 255 octets. The answer section holds the DNAME.
    YxDomain { answers: Vec<Record> },
    /// No answer could be had.
    ServFail(Failure),
    /// Send no reply at all (an RPZ DROP rule): the client times out as if the name's
    /// servers were unreachable.
    Drop,
}

impl Outcome {
    pub fn rcode(&self) -> ResponseCode {
        match self {
            Outcome::Answer { .. } | Outcome::NoData { .. } => ResponseCode::NoError,
            Outcome::NxDomain { .. } => ResponseCode::NXDomain,
            Outcome::YxDomain { .. } => ResponseCode::YXDomain,
            Outcome::ServFail(_) | Outcome::Drop => ResponseCode::ServFail,
        }
    }

    /// The answer section: the chain and, for positive answers, the final RRset.
    pub fn answers(&self) -> &[Record] {
        match self {
            Outcome::Answer { answers }
            | Outcome::YxDomain { answers }
            | Outcome::NxDomain { answers, .. }
            | Outcome::NoData { answers, .. } => answers,
            Outcome::ServFail(_) | Outcome::Drop => &[],
        }
    }

    /// The authority section of a minimal reply: the SOA of a negative answer, nothing else.
    pub fn soa(&self) -> Option<&Record> {
        match self {
            Outcome::NxDomain { soa, .. } | Outcome::NoData { soa, .. } => soa.as_ref(),
            _ => None,
        }
    }
}

/// The DNSSEC records that go with an outcome to a client that set DO (RFC 4035 §3.2.1;
/// without DO they are left out, as Unbound's `rrset_belongs_in_reply` does). Kept beside
/// the [`Outcome`] rather than in it: every client without DO, and everything that reads an
/// outcome for its data (redirect rules, trace, the caches' keys), sees the same outcome
/// whether the zone is signed or not.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DnssecRecords {
    /// RRSIGs over the answer section's RRsets, the CNAME/DNAME links included (RFC 4035
    /// §3.2.1); a CNAME synthesised from a DNAME has none (RFC 6672 §5.3.3).
    pub answer: Vec<Record>,
    /// The authority section's DNSSEC records (RFC 4035 §3.1.3): the RRSIGs over the SOA of
    /// a negative answer, and the NSEC/NSEC3 records that prove an NXDOMAIN, a NODATA or a
    /// wildcard expansion, each with its RRSIGs.
    pub authority: Vec<Record>,
}

/// The type an RRSIG covers, if `r` is one.
pub fn rrsig_covers(r: &Record) -> Option<RecordType> {
    match &r.data {
        RData::DNSSEC(DNSSECRData::RRSIG(sig)) => Some(sig.input().type_covered),
        _ => None,
    }
}

fn is_denial(t: RecordType) -> bool {
    matches!(t, RecordType::NSEC | RecordType::NSEC3)
}

impl DnssecRecords {
    pub fn is_empty(&self) -> bool {
        self.answer.is_empty() && self.authority.is_empty()
    }

    /// From every RRSIG, NSEC and NSEC3 record that came with `outcome` (its replies'
    /// answer and authority sections), those a DO client gets: RRSIGs over an RRset of the
    /// answer section; for the authority section the NSEC/NSEC3 records, the RRSIGs over
    /// them and, for a negative answer, over its SOA. RRSIGs over anything else (an NS set
    /// beside an answer) are left out, as a minimal reply leaves the NS set out. Each
    /// record once.
    pub fn select(outcome: &Outcome, records: &[Record]) -> Self {
        let answers = outcome.answers();
        let soa = outcome.soa();
        let mut out = DnssecRecords::default();
        let push = |to: &mut Vec<Record>, r: &Record| {
            if !to.contains(r) {
                to.push(r.clone());
            }
        };
        for r in records {
            match rrsig_covers(r) {
                Some(t)
                    if answers
                        .iter()
                        .any(|a| a.record_type() == t && a.name == r.name) =>
                {
                    push(&mut out.answer, r)
                }
                Some(t) if is_denial(t) => push(&mut out.authority, r),
                Some(RecordType::SOA) if soa.is_some_and(|s| s.name == r.name) => {
                    push(&mut out.authority, r)
                }
                Some(_) => {}
                None if is_denial(r.record_type()) => push(&mut out.authority, r),
                None => {}
            }
        }
        // An RRSIG over an NSEC/NSEC3 that is not there proves nothing to the client.
        let owners: Vec<(Name, RecordType)> = out
            .authority
            .iter()
            .filter(|r| is_denial(r.record_type()))
            .map(|r| (r.name.clone(), r.record_type()))
            .collect();
        out.authority.retain(|r| match rrsig_covers(r) {
            Some(t) if is_denial(t) => owners.iter().any(|(n, o)| *o == t && *n == r.name),
            _ => true,
        });
        out
    }

    /// TTLs as the client must see them beside `outcome` (TTLs already clamped): an RRSIG
    /// takes the TTL of the RRset it covers (RFC 4034 §3: they match; Unbound keeps one TTL
    /// per RRset, signatures included); an authority record is capped by the negative TTL
    /// of the SOA (RFC 9077 §3.3) or, beside an answer, by the answer's lowest TTL, so no
    /// record outlives the reply it is part of.
    pub fn align_ttls(&mut self, outcome: &Outcome) {
        let answers = outcome.answers();
        for sig in &mut self.answer {
            let covered = rrsig_covers(sig);
            if let Some(ttl) = answers
                .iter()
                .filter(|a| Some(a.record_type()) == covered && a.name == sig.name)
                .map(|a| a.ttl)
                .min()
            {
                sig.ttl = ttl;
            }
        }
        let cap = match outcome.soa() {
            Some(soa) => Some(soa.ttl),
            None => answers.iter().map(|r| r.ttl).min(),
        };
        if let Some(cap) = cap {
            for r in &mut self.authority {
                r.ttl = r.ttl.min(cap);
            }
        }
    }

    /// The answer section for a DO client: `answers` with each RRset's RRSIGs right after
    /// it (the order of Unbound's `packed_rrset_encode`: data, then signatures).
    pub fn answer_section(&self, answers: &[Record]) -> Vec<Record> {
        let mut out = Vec::with_capacity(answers.len() + self.answer.len());
        for (i, r) in answers.iter().enumerate() {
            out.push(r.clone());
            let last_of_set = answers
                .get(i + 1)
                .is_none_or(|n| n.name != r.name || n.record_type() != r.record_type());
            if last_of_set {
                let t = r.record_type();
                out.extend(
                    self.answer
                        .iter()
                        .filter(|s| s.name == r.name && rrsig_covers(s) == Some(t))
                        .cloned(),
                );
            }
        }
        out
    }

    /// The authority section for a DO client: the SOA and its RRSIGs, then each NSEC/NSEC3
    /// record followed by its RRSIGs.
    pub fn authority_section(&self, soa: Option<&Record>) -> Vec<Record> {
        let mut out = Vec::with_capacity(1 + self.authority.len());
        if let Some(soa) = soa {
            out.push(soa.clone());
            out.extend(
                self.authority
                    .iter()
                    .filter(|s| rrsig_covers(s) == Some(RecordType::SOA))
                    .cloned(),
            );
        }
        for r in self.authority.iter().filter(|r| is_denial(r.record_type())) {
            out.push(r.clone());
            let t = r.record_type();
            out.extend(
                self.authority
                    .iter()
                    .filter(|s| s.name == r.name && rrsig_covers(s) == Some(t))
                    .cloned(),
            );
        }
        out
    }
}

/// An RRSIG over `covered` at `owner` with a made-up signature, for tests of where
/// signatures go (nothing here verifies them).
#[cfg(test)]
pub(crate) fn fake_rrsig(owner: &str, covered: RecordType, ttl: u32) -> Record {
    use hickory_proto::dnssec::rdata::sig::SigInput;
    use hickory_proto::dnssec::rdata::RRSIG;
    use hickory_proto::dnssec::Algorithm;
    let owner = Name::from_ascii(owner).expect("test name");
    let input = SigInput {
        type_covered: covered,
        algorithm: Algorithm::ECDSAP256SHA256,
        num_labels: owner.num_labels(),
        original_ttl: ttl,
        sig_expiration: hickory_proto::rr::SerialNumber::new(2_000_000_000),
        sig_inception: hickory_proto::rr::SerialNumber::new(1_000_000_000),
        key_tag: 4711,
        signer_name: Name::from_ascii("example.").expect("test name"),
    };
    let rdata = RData::DNSSEC(DNSSECRData::RRSIG(RRSIG::from_sig(input, vec![7; 64])));
    Record::from_rdata(owner, ttl, rdata)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::dnssec::rdata::NSEC;
    use hickory_proto::rr::rdata::{A, CNAME, SOA};

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn a(owner: &str, ttl: u32) -> Record {
        Record::from_rdata(name(owner), ttl, RData::A(A::new(192, 0, 2, 1)))
    }

    fn nsec(owner: &str, next: &str) -> Record {
        let types = vec![RecordType::A, RecordType::NSEC, RecordType::RRSIG];
        let rdata = RData::DNSSEC(DNSSECRData::NSEC(NSEC::new(name(next), types)));
        Record::from_rdata(name(owner), 3600, rdata)
    }

    fn soa() -> Record {
        let s = SOA::new(name("ns.example."), name("h.example."), 1, 2, 3, 4, 300);
        Record::from_rdata(name("example."), 300, RData::SOA(s))
    }

    /// RFC 4035 §3.2.1: each RRset of the answer section (the CNAME link too) is followed
    /// by its RRSIGs; RRSIGs over records not in the answer (an NS set) are left out.
    #[test]
    fn answer_rrsigs_follow_their_rrsets() {
        let cname = Record::from_rdata(
            name("www.example."),
            300,
            RData::CNAME(CNAME(name("web.example."))),
        );
        let outcome = Outcome::Answer {
            answers: vec![cname, a("web.example.", 60), a("web.example.", 60)],
        };
        let came = vec![
            fake_rrsig("web.example.", RecordType::A, 3600),
            fake_rrsig("www.example.", RecordType::CNAME, 3600),
            fake_rrsig("example.", RecordType::NS, 3600),
        ];
        let mut d = DnssecRecords::select(&outcome, &came);
        assert_eq!(d.answer.len(), 2, "{d:?}");
        assert!(d.authority.is_empty(), "no proof beside a plain answer");
        d.align_ttls(&outcome);
        let section = d.answer_section(outcome.answers());
        let kinds: Vec<(String, RecordType, Option<RecordType>, u32)> = section
            .iter()
            .map(|r| (r.name.to_ascii(), r.record_type(), rrsig_covers(r), r.ttl))
            .collect();
        use RecordType::{CNAME as C, RRSIG as S};
        assert_eq!(
            kinds,
            vec![
                ("www.example.".into(), C, None, 300),
                ("www.example.".into(), S, Some(C), 300),
                ("web.example.".into(), RecordType::A, None, 60),
                ("web.example.".into(), RecordType::A, None, 60),
                ("web.example.".into(), S, Some(RecordType::A), 60),
            ],
            "each RRSIG after its RRset, with the RRset's TTL"
        );
    }

    /// RFC 4035 §3.1.3: a negative answer carries the SOA, its RRSIG, and each NSEC with
    /// its RRSIG; TTLs no longer than the negative TTL (RFC 9077).
    #[test]
    fn a_negative_answer_carries_soa_signature_and_proof() {
        let outcome = Outcome::NxDomain {
            answers: Vec::new(),
            soa: Some(soa()),
        };
        let came = vec![
            fake_rrsig("example.", RecordType::SOA, 3600),
            nsec("a.example.", "c.example."),
            fake_rrsig("a.example.", RecordType::NSEC, 3600),
            nsec("example.", "a.example."),
            fake_rrsig("example.", RecordType::NSEC, 3600),
            nsec("a.example.", "c.example."),
            // The RRSIG of an NSEC that did not come proves nothing.
            fake_rrsig("z.example.", RecordType::NSEC, 3600),
        ];
        let mut d = DnssecRecords::select(&outcome, &came);
        d.align_ttls(&outcome);
        assert!(d.answer.is_empty());
        let section = d.authority_section(outcome.soa());
        let kinds: Vec<(String, RecordType)> = section
            .iter()
            .map(|r| (r.name.to_ascii(), r.record_type()))
            .collect();
        use RecordType::{NSEC as N, RRSIG as S, SOA as O};
        assert_eq!(
            kinds,
            vec![
                ("example.".into(), O),
                ("example.".into(), S),
                ("a.example.".into(), N),
                ("a.example.".into(), S),
                ("example.".into(), N),
                ("example.".into(), S),
            ]
        );
        assert!(section.iter().all(|r| r.ttl <= 300), "{section:?}");
    }
}
