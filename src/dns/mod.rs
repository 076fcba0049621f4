//! Floor 0: the DNS types every room shares, with no dependency on any other room of hopdns.
//!
//! * [`Question`], [`Outcome`], [`Failure`]: one question, as the cache keys it, and what a
//!   resolution (or a rule) made of it. DNS outcomes are values; only "no answer at all" is
//!   a failure.
//! * [`Answerer`]: what the front ends ask of whatever answers (the resolver, or the
//!   redirect layer in front of it).
//! * [`dname_target`], [`ns_target`]: RDATA read where hickory-proto leaves it to us.
//! * [`record_text`]: a record as dig prints it (TXT quoted, DNAME as a name).
//! * [`wire`]: messages read straight from their bytes (plain queries, cache keys, record
//!   walks), bounds-checked, for the paths that must not decode.
//! * [`Clock`]: the one clock every room reads time from, which tests can stop and move.
//! * [`Proto`]: the transport a client's message came in on (UDP, TCP, DoT, DoH).

mod answerer;
mod clock;
mod outcome;
mod present;
mod question;
mod rdata;
mod transport;
pub mod wire;

pub use answerer::{Answered, Answerer};
pub use clock::Clock;
#[cfg(test)]
pub(crate) use outcome::fake_rrsig;
pub use outcome::{rrsig_covers, DnssecRecords, Failure, Outcome};
pub use present::record_text;
pub use question::{lowercase, Question};
pub use rdata::{dname_target, ns_target};
pub use transport::Proto;
