//! hopdns: a recursive caching DNS resolver.
//!
//! # Layout
//! One folder per concern; one query's way through them:
//!
//! ```text
//! client -> server/ (UDP/TCP, ACL, EDNS, truncation)
//!        -> redirect/ (rules, pools, blocklists; absent when no --rules is given)
//!        -> cache/ (answers)  --hit--> reply
//!        -> resolver/ (sans-IO state machine + driver) <-> cache/ (delegations, infra)
//!        -> transport/ (one exchange with one authority: UDP, TCP, timeouts)
//!        -> trace/ (hop events, printed by `hopdns trace`, logged by `serve`)
//! ```
//!
//! `lab/` is a local hierarchy of authoritative servers for tests and the offline demo;
//! `serve` never needs it. `config/` turns the CLI into validated settings. Every room
//! reads time from one `dns::Clock` (the system's; a manual one in tests).

pub mod cache;
pub mod cli;
pub mod config;
pub mod control;
pub mod dns;
pub mod dnssec;
/// Fuzz harnesses: built for tests, benches and `fuzz/` only (feature `testkit`).
#[cfg(any(test, feature = "testkit"))]
#[doc(hidden)]
pub mod fuzz;
#[cfg(feature = "lab")]
pub mod lab;
pub mod local;
pub mod metrics;
pub mod redirect;
pub mod resolver;
pub mod server;
pub mod trace;
pub mod transport;
pub mod web;
