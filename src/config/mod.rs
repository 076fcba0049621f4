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
pub mod web;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use hickory_proto::rr::RecordType;
mod cache;
pub use cache::{parse_size, CacheArgs, CacheArgsError};

use crate::dnssec;

use crate::local::LocalZones;
use crate::resolver::forward::{ZoneKind, ZoneRule, ZoneRules, ZoneRulesError};
use crate::resolver::hints::{self, HintsError};
use crate::resolver::machine::MinimiseMode;
use crate::resolver::ResolverConfig;
use crate::transport::tls::TlsClient;
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
    /// Forward a zone to recursive resolvers (repeatable): ZONE=SERVER[,SERVER...], each
    /// server IP[:PORT] (UDP, TCP after TC), tcp://IP[:PORT] or tls://IP[:PORT]@NAME (DNS
    /// over TLS, RFC 7858, certificate checked for NAME). "." forwards everything. The
    /// fastest answering server is used, a failing one avoided until it answers again. In
    /// the config file also as [[forward]] tables (zone, servers, first).
    #[arg(long, value_name = "ZONE=SERVERS", value_parser = parse_zone_spec)]
    pub forward: Vec<ZoneSpec>,
    /// Forward first (repeatable, a zone given to --forward): when every forwarder of the
    /// zone fails, resolve by iteration instead of SERVFAIL (Unbound's forward-first).
    #[arg(long, value_name = "ZONE")]
    pub forward_first: Vec<String>,
    /// Stub zone (repeatable): ZONE=SERVER[,SERVER...], authoritative servers to start
    /// iterating at for ZONE instead of the root (RD clear; their referrals are followed).
    /// In the config file also as [[stub]] tables (zone, servers).
    #[arg(long, value_name = "ZONE=SERVERS", value_parser = parse_zone_spec)]
    pub stub: Vec<ZoneSpec>,
    /// Trust only the CA certificates in this PEM file for DNS over TLS to forwarders
    /// (default: the system's certificate store).
    #[arg(long, value_name = "FILE")]
    pub forward_ca_file: Option<PathBuf>,
    /// Locally served zones, answered without any query (RFC 6761 localhost, invalid, test;
    /// RFC 7686 onion; RFC 8375 home.arpa; RFC 9462 resolver.arpa; RFC 6303 private and
    /// special reverse zones), as Unbound's defaults. Remove a zone from the list to send
    /// its queries out; a --forward or --stub for the same zone (or a redirect rule) takes
    /// precedence anyway. Zones added here are served empty (NXDOMAIN below the apex).
    #[arg(long = "local-zone", value_name = "ZONE", default_values = crate::local::DEFAULT_ZONES)]
    pub local_zones: Vec<String>,
    /// Serve no local zones at all: every name goes upstream.
    #[arg(long)]
    pub no_local_zones: bool,
    #[command(flatten)]
    pub cache: CacheArgs,
    #[command(flatten)]
    pub dnssec: DnssecArgs,
}

/// DNSSEC validation switches (docs/dnssec.md).
#[derive(Args, Clone, Debug, Default)]
pub struct DnssecArgs {
    /// Do not validate DNSSEC (whatever the other DNSSEC switches say).
    #[arg(long)]
    pub no_dnssec: bool,
    /// Trust anchors: DS or DNSKEY records in zone-file format, as Unbound's
    /// trust-anchor-file (repeatable). Root anchors given here replace the built-in
    /// KSK-2017 and KSK-2024 (root-hints/root.anchors).
    #[arg(long, value_name = "FILE")]
    pub trust_anchor: Vec<PathBuf>,
    /// RFC 5011 state file that keeps the anchors current across key rollovers, as
    /// Unbound's auto-trust-anchor-file (created if missing; its directory must exist).
    #[arg(long, value_name = "FILE")]
    pub trust_anchor_state: Option<PathBuf>,
    /// Do not validate this domain and the names below it: an RFC 7646 negative trust
    /// anchor, for a zone whose signatures are broken (repeatable; `reload` applies it).
    #[arg(long, value_name = "NAME")]
    pub insecure_domain: Vec<String>,
}

impl UpstreamArgs {
    /// Own root hints with validation on and no anchor of their own: fine if the hints name
    /// the real root (a newer list), but a lab's or a private root is not signed with the
    /// IANA keys, and then every answer is SERVFAIL (bogus). Named in one warning at start.
    pub fn private_root_warning(&self) -> Option<String> {
        let hints = self.root_hints.as_ref()?;
        if self.dnssec.no_dnssec || !self.dnssec.trust_anchor.is_empty() {
            return None;
        }
        Some(format!(
            "--root-hints {} with the built-in root trust anchors (IANA's KSK-2017 and \
             KSK-2024): if these hints name a private or lab root, every answer will be \
             SERVFAIL (DNSSEC bogus); give that root's anchor with --trust-anchor FILE \
             (`hopdns lab` prints one) or turn validation off with --no-dnssec",
            hints.display()
        ))
    }
}

impl DnssecArgs {
    /// The validation settings, or `None` with `--no-dnssec`.
    pub fn build(&self) -> Result<Option<Arc<dnssec::Config>>, ConfigError> {
        let negative = dnssec::anchor::NegativeAnchors::parse(&self.insecure_domain)
            .map_err(ConfigError::InsecureDomain)?;
        if self.no_dnssec {
            return Ok(None);
        }
        let config = dnssec::Config::load(
            &self.trust_anchor,
            self.trust_anchor_state.as_deref(),
            negative,
        )
        .map_err(|e| {
            if self.trust_anchor_state.as_deref() == Some(e.path.as_path()) {
                ConfigError::AnchorState(e)
            } else {
                ConfigError::Anchor(e)
            }
        })?;
        Ok(Some(Arc::new(config)))
    }
}

/// One `--forward` or `--stub` value: a zone and its servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneSpec {
    pub zone: hickory_proto::rr::Name,
    pub servers: Vec<crate::transport::Upstream>,
}

/// Parses `ZONE=SERVER[,SERVER...]`.
pub fn parse_zone_spec(text: &str) -> Result<ZoneSpec, String> {
    let (zone, servers) = text.split_once('=').ok_or_else(|| {
        format!("{text:?}: write ZONE=SERVER[,SERVER...], e.g. home.lan=192.168.1.1")
    })?;
    let mut name = hickory_proto::rr::Name::from_ascii(zone.trim())
        .map_err(|e| format!("{zone:?} is not a zone name: {e}"))?;
    name.set_fqdn(true);
    let servers = servers
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|e: crate::transport::UpstreamError| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    if servers.is_empty() {
        return Err(format!("{text:?}: no server after '=': give at least one"));
    }
    Ok(ZoneSpec {
        zone: name.to_lowercase(),
        servers,
    })
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
    #[error("--trust-anchor {0}")]
    Anchor(dnssec::anchor::AnchorError),
    #[error("--trust-anchor-state {0}")]
    AnchorState(dnssec::anchor::AnchorError),
    #[error("{0}")]
    InsecureDomain(String),
    #[error("{0}")]
    Zones(#[from] ZoneRulesError),
    #[error("--forward-first {0}: no --forward is given for that zone; add one or drop this")]
    FirstWithoutForward(String),
    #[error(transparent)]
    LocalZone(#[from] crate::local::LocalZoneError),
    #[error("DNS over TLS: {0}")]
    Tls(#[from] crate::transport::tls::TlsSetupError),
}

impl ConfigError {
    /// The config key the problem is about (for `config check`'s file:line:key).
    pub fn key(&self) -> &'static str {
        match self {
            ConfigError::Hints(_) => "root-hints",
            ConfigError::NoTransport => "no-ipv6",
            ConfigError::OutgoingTwice(_) | ConfigError::OutgoingDisabled(..) => "outgoing-address",
            ConfigError::Cache(e) => e.key(),
            ConfigError::Anchor(_) => "trust-anchor",
            ConfigError::AnchorState(_) => "trust-anchor-state",
            ConfigError::InsecureDomain(_) => "insecure-domain",
            ConfigError::Zones(_) => "forward",
            ConfigError::FirstWithoutForward(_) => "forward-first",
            ConfigError::LocalZone(_) => "local-zone",
            ConfigError::Tls(_) => "forward-ca-file",
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
        config.settings.dnssec = self.dnssec.build()?;
        let zones = self.zone_rules()?;
        let tls = zones
            .iter()
            .flat_map(|r| r.servers.iter())
            .any(|u| u.tls_name().is_some());
        if tls || self.forward_ca_file.is_some() {
            transport.tls = Some(Arc::new(TlsClient::new(self.forward_ca_file.as_deref())?));
        }
        config.settings.zones = Arc::new(zones);
        config.settings.local = Arc::new(if self.no_local_zones {
            LocalZones::default()
        } else {
            LocalZones::new(&self.local_zones)?
        });
        Ok((config, transport))
    }

    /// The forward and stub zones of `--forward`, `--forward-first` and `--stub`.
    pub fn zone_rules(&self) -> Result<ZoneRules, ConfigError> {
        let firsts: Vec<Option<hickory_proto::rr::Name>> = self
            .forward_first
            .iter()
            .map(|f| {
                hickory_proto::rr::Name::from_ascii(f).ok().map(|mut n| {
                    n.set_fqdn(true);
                    n.to_lowercase()
                })
            })
            .collect();
        for (text, name) in self.forward_first.iter().zip(&firsts) {
            if !self.forward.iter().any(|z| Some(&z.zone) == name.as_ref()) {
                return Err(ConfigError::FirstWithoutForward(text.clone()));
            }
        }
        let first =
            |zone: &hickory_proto::rr::Name| firsts.iter().any(|f| f.as_ref() == Some(zone));
        let rules = self
            .forward
            .iter()
            .map(|z| ZoneRule {
                zone: z.zone.clone(),
                kind: ZoneKind::Forward {
                    first: first(&z.zone),
                },
                servers: z.servers.clone().into(),
            })
            .chain(self.stub.iter().map(|z| ZoneRule {
                zone: z.zone.clone(),
                kind: ZoneKind::Stub,
                servers: z.servers.clone().into(),
            }))
            .collect();
        Ok(ZoneRules::new(rules)?)
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

    #[test]
    fn dnssec_is_on_by_default_and_its_switches_reach_the_settings() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            up: UpstreamArgs,
        }
        let (config, _) = UpstreamArgs::default().build().unwrap();
        let dnssec = config.settings.dnssec.expect("validation is on by default");
        assert_eq!(
            dnssec.anchors.get(&hickory_proto::rr::Name::root()).len(),
            2
        );

        let cli = Cli::try_parse_from(["x", "--no-dnssec"]).unwrap();
        assert!(cli.up.build().unwrap().0.settings.dnssec.is_none());

        let cli = Cli::try_parse_from([
            "x",
            "--insecure-domain",
            "broken.example",
            "--insecure-domain",
            "other.test",
        ])
        .unwrap();
        let dnssec = cli.up.build().unwrap().0.settings.dnssec.unwrap();
        assert_eq!(dnssec.negative.load().domains().len(), 2);

        let cli = Cli::try_parse_from(["x", "--trust-anchor", "/nonexistent/lab.anchor"]).unwrap();
        let e = cli.up.build().unwrap_err();
        assert_eq!(e.key(), "trust-anchor");
        assert!(e.to_string().contains("/nonexistent/lab.anchor"), "{e}");
    }
}
