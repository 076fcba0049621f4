//! The resolver room: the iterative state machine (sans-IO) and the driver that runs it.
//!
//! * [`machine`]: `Resolution`, plain data and transitions. It says "send this query to one of
//!   these servers" and is told what came back; it never touches a socket or a clock.
//! * [`classify`]: scrubbing and classification of replies.
//! * [`minimise`]: QNAME minimisation (RFC 9156): what to ask, and what a minimised reply
//!   says about zone cuts.
//! * [`cut`]: one zone cut's servers and addresses as a resolution sees them.
//! * [`learn`]: what replies write into the caches (cuts, chains, failures).
//! * [`run`]: the one loop that drives a `Resolution` against an exchange (server choice,
//!   timeouts, feedback to selection), used by serve, priming, trace, tests and the fuzzer.
//! * `driver.rs`: `Resolver`, the service around it (coalescing, serve-stale, TTL clamps,
//!   the message-cache refill, the pending bound, priming).
//! * [`trustpoints`]: RFC 5011 in `serve`: the trust points' DNSKEY sets refreshed on a
//!   timer, the anchors updated, the state file written.

mod anchor;
mod budget;
pub mod classify;
pub mod cut;
mod driver;
pub mod forward;
pub mod hints;
mod inflight;
pub mod learn;
pub mod machine;
pub mod minimise;
pub mod run;
#[cfg(test)]
mod tests;
pub mod trustpoints;

pub use budget::Limits;
pub use driver::{Resolver, ResolverConfig, DEFAULT_MAX_PENDING};
// The shared types live in `dns/`; re-exported for callers that think of them as the
// resolver's.
pub use crate::dns::{dname_target, Failure, Outcome, Question};
