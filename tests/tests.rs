//! The one integration-test binary (Cargo.toml sets `autotests = false`): each module is a
//! group of tests that start the lab on their own 127.53.N.0/24 network, so they run in
//! parallel without clashing. Networks in use: see `util::nets`.

mod util;

mod abuse;
mod alloc;
mod cache;
mod cli;
mod dnssec_do;
mod dnssec_lab;
mod encrypted;
mod fleet;
mod forward;
mod fuzz;
mod harden;
mod hints;
mod operator;
mod ops;
mod redirect;
mod resolve;
mod trace;
mod validate;
mod web;
mod web_api;
