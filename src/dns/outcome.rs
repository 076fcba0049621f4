//! What a resolution produces: the outcome, as a plain value.
//!
//! DNS outcomes (NXDOMAIN, NODATA) are values, not errors; only "no answer at all" is a
//! failure, carried as [`Outcome::ServFail`] with its reason.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, Name, Record};

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
