//! The dnssec room: DNSSEC validation as plain functions over records, with time passed in.
//!
//! Nothing here touches the network or reads the clock; files are read only for anchors
//! and the RFC 5011 state. The resolver fetches DS and DNSKEY sets and hands them here; these functions say whether data is secure, insecure or bogus
//! (RFC 4035 §4.3) and, when it is not secure, why, as an Extended DNS Error (RFC 8914).
//! The cryptography and the wire canonicalisation are hickory-proto's
//! (`hickory_proto::dnssec`, backend `dnssec-ring`): this room decides *which* checks to run
//! and *how many* (the KeyTrap and NSEC3 budgets), never how to hash or verify.
//!
//! * [`algo`]: which DNSKEY algorithms and DS digests we validate (RFC 8624).
//! * [`verify`]: an RRset against a key set; a DNSKEY set against DS or anchors; validity
//!   windows with skew; the per-request [`Budget`].
//! * [`chain`]: the walk from a trust anchor down to a signer's DNSKEY set, sans-IO: it
//!   names the DS or DNSKEY RRset to fetch next and takes what came back.
//! * [`denial`]: NSEC and NSEC3 proofs of NXDOMAIN, NODATA, wildcard answers and insecure
//!   delegations, usable on cached ranges too (RFC 8198).
//! * [`judge`]: an outcome (answer with its chain, wildcard proof, negative answer) against
//!   the signers' validated keys.
//! * [`keycache`]: validated key sets and insecure/bogus zones by zone, with expiry, so a
//!   walk starts from the deepest one known.
//! * [`memo`]: signatures already verified (same data, signature and key), so each is
//!   checked once while its data lives, not once per answer.
//! * [`anchor`]: trust anchors (built-in root KSKs, `--trust-anchor` files), negative trust
//!   anchors (RFC 7646).
//! * [`autotrust`]: RFC 5011 automated trust-anchor updates, a pure state machine.
//! * [`config`]: what validation runs with (anchors, negative anchors, skew); `None` in the
//!   resolver's settings means `--no-dnssec`.

pub mod algo;
pub mod anchor;
pub mod autotrust;
pub mod chain;
pub mod config;
pub mod denial;
pub mod judge;
pub mod keycache;
pub mod memo;
pub mod verify;

#[cfg(test)]
pub(crate) mod testkit;

pub use config::Config;
pub use hickory_proto::dnssec::Proof;
pub use verify::{Budget, Skew};

use std::fmt;

/// Why data is not secure: each reason carries its Extended DNS Error code (RFC 8914 §4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// EDE 1: every DNSKEY/DS algorithm of the zone is one we do not validate (RFC 8624:
    /// RSAMD5, DSA, unknown). The zone is insecure, not bogus (RFC 4035 §5.2).
    UnsupportedAlgorithm(u8),
    /// EDE 2: every DS digest of the zone is one we do not compute (digest types other than
    /// 1, 2, 4): insecure.
    UnsupportedDigest(u8),
    /// EDE 7: the only signatures found have expired (RFC 4035 §5.3.1).
    SignatureExpired,
    /// EDE 8: the only signatures found are not valid yet.
    SignatureNotYetValid,
    /// EDE 9: no DNSKEY matches the DS set, the trust anchor or the RRSIG's key tag.
    DnskeyMissing,
    /// EDE 10: the RRset has no RRSIG from the zone's signer.
    RrsigsMissing,
    /// EDE 12: the NSEC/NSEC3 records do not prove the denial.
    NsecMissing,
    /// EDE 27: NSEC3 iterations above the limit (RFC 9276 §3.2): insecure.
    Nsec3Iterations(u16),
    /// EDE 6: a signature failed to verify, or the data contradicts itself.
    Bogus(&'static str),
    /// EDE 6: the validation budget of the request is spent (KeyTrap, CVE-2023-50387;
    /// NSEC3 hashing, CVE-2023-50868). Bogus, as Unbound 1.19.1 makes it.
    BudgetSpent(&'static str),
}

impl Reason {
    /// The RFC 8914 INFO-CODE.
    pub fn ede(&self) -> u16 {
        match self {
            Reason::UnsupportedAlgorithm(_) => 1,
            Reason::UnsupportedDigest(_) => 2,
            Reason::Bogus(_) | Reason::BudgetSpent(_) => 6,
            Reason::SignatureExpired => 7,
            Reason::SignatureNotYetValid => 8,
            Reason::DnskeyMissing => 9,
            Reason::RrsigsMissing => 10,
            Reason::NsecMissing => 12,
            Reason::Nsec3Iterations(_) => 27,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::UnsupportedAlgorithm(a) => write!(f, "unsupported DNSKEY algorithm {a}"),
            Reason::UnsupportedDigest(d) => write!(f, "unsupported DS digest type {d}"),
            Reason::SignatureExpired => f.write_str("signature expired"),
            Reason::SignatureNotYetValid => f.write_str("signature not yet valid"),
            Reason::DnskeyMissing => f.write_str("no DNSKEY matches the DS, anchor or RRSIG"),
            Reason::RrsigsMissing => f.write_str("RRSIGs missing"),
            Reason::NsecMissing => f.write_str("NSEC/NSEC3 proof missing or wrong"),
            Reason::Nsec3Iterations(n) => write!(f, "NSEC3 iterations {n} above the limit"),
            Reason::Bogus(why) => write!(f, "bogus: {why}"),
            Reason::BudgetSpent(what) => write!(f, "validation budget spent: {what}"),
        }
    }
}

/// A validation result: the state (RFC 4035 §4.3) and, unless secure, why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub proof: Proof,
    pub reason: Option<Reason>,
}

impl Verdict {
    pub fn secure() -> Verdict {
        Verdict {
            proof: Proof::Secure,
            reason: None,
        }
    }

    /// Insecure: provably unsigned, or signed only in ways we do not validate.
    pub fn insecure(reason: Option<Reason>) -> Verdict {
        Verdict {
            proof: Proof::Insecure,
            reason,
        }
    }

    pub fn bogus(reason: Reason) -> Verdict {
        Verdict {
            proof: Proof::Bogus,
            reason: Some(reason),
        }
    }

    /// Indeterminate: no trust anchor above the name (RFC 4035 §4.3), or validation is off.
    pub fn indeterminate() -> Verdict {
        Verdict {
            proof: Proof::Indeterminate,
            reason: None,
        }
    }

    /// The EDE code to send with this verdict, if any.
    pub fn ede(&self) -> Option<u16> {
        self.reason.as_ref().map(Reason::ede)
    }
}

impl From<Reason> for Verdict {
    /// The state a reason implies: unsupported algorithms, digests and too many NSEC3
    /// iterations make data insecure; everything else makes it bogus.
    fn from(reason: Reason) -> Verdict {
        match reason {
            Reason::UnsupportedAlgorithm(_)
            | Reason::UnsupportedDigest(_)
            | Reason::Nsec3Iterations(_) => Verdict::insecure(Some(reason)),
            _ => Verdict::bogus(reason),
        }
    }
}
