//! The config room: turns command-line switches into validated settings for the other rooms.
//! Two stages, as ripgrep does: clap parses syntax (`cli`), this module checks meaning and
//! builds the real objects, with errors that name the problem and the fix.
//!
//! The config file ([`file`](mod@file)) is the same switches in TOML: its keys are the long flags of
//! `hopdns serve`. **To add a setting, add a flag** (a field with a doc comment and a
//! default in a clap `Args` struct that `ServeArgs` flattens, e.g. [`UpstreamArgs`] or
//! [`service::OpsArgs`]): it becomes a config key, is checked by `hopdns config check`, listed by
//! `hopdns config defaults`, the man page and the completions, and the command line
//! overrides it. No second schema to keep in step.

pub mod encrypted;
pub mod file;
pub mod service;

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Args;

use hickory_proto::rr::RecordType;
mod cache;
pub use cache::{parse_size, CacheArgs, CacheArgsError};

use crate::resolver::hints::{self, HintsError};
use crate::resolver::machine::MinimiseMode;
use crate::resolver::ResolverConfig;
use crate::transport::NetTransport;

/// Switches for the upstream side, shared by `serve`, `trace` and `lab`.
#[derive(Args, Clone, Debug, Default)]
pub struct UpstreamArgs {
    /// Root hints file in named.root format (default: the IANA hints built into hopdns).
    #[arg(long, value_name = "FILE")]
    pub root_hints: Option<PathBuf>,
    /// Do not send the RFC 8109 priming query at start; use the root hints as they are.
    #[arg(long)]
    pub no_prime: bool,
    /// Never query authorities over IPv4.
    #[arg(long)]
    pub no_ipv4: bool,
    /// Never query authorities over IPv6.
    #[arg(long)]
    pub no_ipv6: bool,
    /// Allow upstream queries to 127.0.0.0/8 and ::1 addresses learned from referrals
    /// (off by default, like Unbound's do-not-query-localhost; root hints are always used).
    #[arg(long)]
    pub query_loopback: bool,
    /// Source address for upstream queries (repeat for one IPv4 and one IPv6 address).
    #[arg(long, value_name = "ADDR")]
    pub outgoing_address: Vec<IpAddr>,
    /// QNAME minimisation (RFC 9156): relaxed sends the full name to servers that answer
    /// minimised queries wrongly; strict never does; off always sends the full name.
    #[arg(long, value_enum, default_value_t = Minimisation::Relaxed)]
    pub qname_minimisation: Minimisation,
    /// QTYPE of minimised queries: A (RFC 9156's advice) or NS (as Knot Resolver sends).
    #[arg(long, value_enum, default_value_t = MinType::A)]
    pub qname_min_type: MinType,
    /// Do not randomise the case of upstream questions (0x20, draft-vixie-dnsext-dns0x20).
    #[arg(long)]
    pub no_0x20: bool,
    #[command(flatten)]
    pub cache: CacheArgs,
}

/// `--qname-minimisation` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Minimisation {
    #[default]
    Relaxed,
    Strict,
    Off,
}

/// `--qname-min-type` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MinType {
    #[default]
    A,
    Ns,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Hints(#[from] HintsError),
    #[error("--no-ipv4 and --no-ipv6 together leave no way to reach any server: drop one of them")]
    NoTransport,
    #[error("--outgoing-address {0} given twice for the same address family: give at most one IPv4 and one IPv6 address")]
    OutgoingTwice(IpAddr),
    #[error("--outgoing-address {0} is an IPv{1} address but --no-ipv{1} is set")]
    OutgoingDisabled(IpAddr, u8),
    #[error(transparent)]
    Cache(#[from] CacheArgsError),
}

impl ConfigError {
    /// The config key the problem is about (for `config check`'s file:line:key).
    pub fn key(&self) -> &'static str {
        match self {
            ConfigError::Hints(_) => "root-hints",
            ConfigError::NoTransport => "no-ipv6",
            ConfigError::OutgoingTwice(_) | ConfigError::OutgoingDisabled(..) => "outgoing-address",
            ConfigError::Cache(e) => e.key(),
        }
    }
}

impl UpstreamArgs {
    /// Every problem [`UpstreamArgs::build`] would stop at, all at once (`config check`).
    pub fn problems(&self) -> Vec<ConfigError> {
        let mut problems = Vec::new();
        if let Err(e) = (UpstreamArgs {
            root_hints: None,
            cache: Default::default(),
            ..self.clone()
        })
        .build()
        {
            problems.push(e);
        }
        if let Err(e) = hints::load(self.root_hints.as_deref()) {
            problems.push(e.into());
        }
        problems.extend(self.cache.problems().into_iter().map(ConfigError::Cache));
        problems
    }

    /// Validates the switches and builds the resolver settings and the transport.
    pub fn build(&self) -> Result<(ResolverConfig, NetTransport), ConfigError> {
        if self.no_ipv4 && self.no_ipv6 {
            return Err(ConfigError::NoTransport);
        }
        let mut transport = NetTransport::default();
        for addr in &self.outgoing_address {
            let (slot, family, disabled) = match addr {
                IpAddr::V4(_) => (&mut transport.outgoing_v4, 4, self.no_ipv4),
                IpAddr::V6(_) => (&mut transport.outgoing_v6, 6, self.no_ipv6),
            };
            if disabled {
                return Err(ConfigError::OutgoingDisabled(*addr, family));
            }
            if slot.replace(*addr).is_some() {
                return Err(ConfigError::OutgoingTwice(*addr));
            }
        }
        let mut config = ResolverConfig::new(hints::load(self.root_hints.as_deref())?);
        config.settings.ipv4 = !self.no_ipv4;
        config.settings.ipv6 = !self.no_ipv6;
        config.settings.query_loopback = self.query_loopback;
        config.settings.minimise = match self.qname_minimisation {
            Minimisation::Relaxed => MinimiseMode::Relaxed,
            Minimisation::Strict => MinimiseMode::Strict,
            Minimisation::Off => MinimiseMode::Off,
        };
        config.settings.minimise_qtype = match self.qname_min_type {
            MinType::A => RecordType::A,
            MinType::Ns => RecordType::NS,
        };
        transport.case_randomisation = !self.no_0x20;
        config.cache = self.cache.build()?;
        Ok((config, transport))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contradictory_switches_are_errors_with_the_fix() {
        let both = UpstreamArgs {
            no_ipv4: true,
            no_ipv6: true,
            ..Default::default()
        };
        assert!(both.build().unwrap_err().to_string().contains("drop one"));
        let twice = UpstreamArgs {
            outgoing_address: vec!["127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap()],
            ..Default::default()
        };
        assert!(matches!(twice.build(), Err(ConfigError::OutgoingTwice(_))));
        let missing = UpstreamArgs {
            root_hints: Some("/nonexistent/named.root".into()),
            ..Default::default()
        };
        let e = missing.build().unwrap_err().to_string();
        assert!(e.contains("/nonexistent/named.root"), "{e}");
    }

    #[test]
    fn defaults_use_the_built_in_hints_and_both_families() {
        let (config, transport) = UpstreamArgs::default().build().unwrap();
        assert_eq!(config.root_hints.servers.len(), 13);
        assert!(config.settings.ipv4 && config.settings.ipv6 && !config.settings.query_loopback);
        assert_eq!(transport.outgoing_v4, None);
        assert_eq!(config.settings.minimise, MinimiseMode::Relaxed);
        assert_eq!(config.settings.minimise_qtype, RecordType::A);
        assert!(transport.case_randomisation);
    }

    #[test]
    fn minimisation_and_0x20_switches_reach_the_settings() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            up: UpstreamArgs,
        }
        let cli = Cli::try_parse_from([
            "x",
            "--qname-minimisation",
            "strict",
            "--qname-min-type",
            "ns",
            "--no-0x20",
        ])
        .unwrap();
        let (config, transport) = cli.up.build().unwrap();
        assert_eq!(config.settings.minimise, MinimiseMode::Strict);
        assert_eq!(config.settings.minimise_qtype, RecordType::NS);
        assert!(!transport.case_randomisation);
        let bad = Cli::try_parse_from(["x", "--qname-minimisation", "sometimes"]);
        let e = bad.err().unwrap().to_string();
        assert!(e.contains("relaxed, strict, off"), "{e}");
    }
}
