//! `hopdns lab`: the offline demo. Starts the lab's authoritative servers and a hopdns
//! resolver that uses them, prints what to try, and stops cleanly on Ctrl-C.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use tokio_util::sync::CancellationToken;

use super::{runtime, shutdown_signal, CmdResult};
use crate::cache::CacheConfig;
use crate::lab::{Lab, LabConfig, RolloverPhase, Verdict};
use crate::resolver::{hints, Resolver, ResolverConfig};
use crate::server::{Answerer, BoundServer, ServerConfig};
use crate::transport::NetTransport;

/// The resolver's host number inside the lab network (127.53.N.53).
pub const RESOLVER_HOST: u8 = 53;

#[derive(Args, Debug, Clone)]
pub struct LabArgs {
    /// Lab network number N: servers live on 127.53.N.x (0-255).
    #[arg(long, default_value_t = 0)]
    pub net: u8,
    /// Worker threads for the resolver.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Keep the lab's DNSSEC keys in DIR (made on first use), so the trust anchor stays the
    /// same across starts; the root hints and the trust anchor are written there too
    /// (lab-N.root, lab-N.anchor). Without it, keys are new at every start and both files
    /// are temporary.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<std::path::PathBuf>,
    /// Serve rollover.net's DNSKEY set in this phase of its KSK rollover (RFC 5011): initial
    /// {KSK1}, new-key {KSK1, KSK2}, old-revoked {KSK1 revoked, KSK2}, old-removed {KSK2}.
    #[arg(long, value_enum, value_name = "PHASE", default_value_t = Phase::Initial)]
    pub rollover_phase: Phase,
}

/// `--rollover-phase` values (the lab's [`RolloverPhase`]).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Initial,
    NewKey,
    OldRevoked,
    OldRemoved,
}

impl From<Phase> for RolloverPhase {
    fn from(p: Phase) -> RolloverPhase {
        match p {
            Phase::Initial => RolloverPhase::Initial,
            Phase::NewKey => RolloverPhase::NewKey,
            Phase::OldRevoked => RolloverPhase::OldRevoked,
            Phase::OldRemoved => RolloverPhase::OldRemoved,
        }
    }
}

/// The resolver `hopdns lab` runs (and the integration tests use): the lab's root hints,
/// IPv4 upstream only (no NS in the lab has AAAA glue) and loopback servers allowed.
pub fn lab_resolver(lab: &Lab) -> Result<Resolver, hints::HintsError> {
    lab_resolver_with(lab, CacheConfig::default())
}

/// [`lab_resolver`] with cache settings of its own.
pub fn lab_resolver_with(lab: &Lab, cache: CacheConfig) -> Result<Resolver, hints::HintsError> {
    let mut config = lab_config(lab)?;
    config.cache = cache;
    Ok(Resolver::new(config, Arc::new(NetTransport::default())))
}

/// The configuration of [`lab_resolver`], for tests that change a setting before building.
pub fn lab_config(lab: &Lab) -> Result<ResolverConfig, hints::HintsError> {
    let mut config = ResolverConfig::new(hints::parse(&lab.root_hints(), "(lab root hints)")?);
    config.settings.ipv6 = false;
    config.settings.query_loopback = true;
    // The lab's zones are signed with its own root key: validate from its anchor (the
    // built-in root anchors would find every lab answer bogus).
    let anchor = crate::dnssec::Config::from_anchor_text(
        std::path::Path::new("(lab trust anchor)"),
        lab.trust_anchor(),
    )
    .expect("the lab writes an anchor it can parse (tests/lab)");
    config.settings.dnssec = Some(Arc::new(anchor));
    Ok(config)
}

pub fn run(args: LabArgs) -> CmdResult {
    let rt = runtime(args.threads)?;
    rt.block_on(async move {
        let lab =
            Lab::start_with_keys(LabConfig { net: args.net }, args.state_dir.as_deref()).await?;
        lab.set_rollover(args.rollover_phase.into()).await;
        let resolver = Arc::new(lab_resolver(&lab)?);
        let addr = SocketAddr::new(IpAddr::V4(lab.addr(RESOLVER_HOST)), 53);
        let bound = BoundServer::bind(&ServerConfig {
            listen: vec![addr],
            threads: args.threads.max(1),
            ..ServerConfig::default()
        })?;
        resolver.prime(None).await;
        // The anchor lives beside the hints: in the state directory, else in temporary files
        // (network 0 uses the hints shipped in the repository, if run from the checkout).
        let shipped = std::path::Path::new("root-hints/lab.root");
        let files = LabFiles::write(&args, &lab, shipped)?;
        let hints_file = files.hints.clone();
        let anchor_file = files.anchor.clone();
        outln!(
            "hopdns lab: authoritative servers on 127.53.{}.0/24, resolver on {addr}",
            args.net
        );
        outln!();
        outln!("Try:");
        outln!(
            "  dig @{} www.example.com            # root -> com -> example.com",
            addr.ip()
        );
        outln!(
            "  dig @{} chain.example.com          # CNAME chain across 4 zones",
            addr.ip()
        );
        outln!(
            "  dig @{} www.example.org            # glueless delegation",
            addr.ip()
        );
        outln!(
            "  dig @{} big.example.com TXT        # > 1232 bytes: TC, then TCP",
            addr.ip()
        );
        outln!("  dig @{} +tcp www.example.com AAAA", addr.ip());
        outln!("  dig @{} nope.example.com           # NXDOMAIN", addr.ip());
        outln!(
            "  dig @{} www.faulty.com             # one NS times out, one is lame",
            addr.ip()
        );
        outln!(
            "  hopdns trace chain.example.com --root-hints {} --trust-anchor {} --query-loopback --no-ipv6",
            hints_file.display(),
            anchor_file.display()
        );
        outln!();
        outln!("DNSSEC (the root, com, net, org and these zones are signed; ask a validating");
        outln!("resolver that uses the trust anchor below, or the zone's server directly):");
        for case in crate::lab::DNSSEC_CASES {
            let expect = match case.verdict {
                Verdict::Secure => format!("secure {}, AD", case.rcode),
                Verdict::Insecure => format!("insecure {}, no AD", case.rcode),
                Verdict::Bogus(ede) => format!("bogus: SERVFAIL, EDE {ede}"),
            };
            let question = format!("{} {}", case.name, case.qtype);
            outln!(
                "  dig @{} +dnssec {question:<28} # {}: {expect}",
                addr.ip(),
                case.what
            );
        }
        outln!(
            "  dig @{} +dnssec rollover.net DNSKEY   # phase {:?} (--rollover-phase)",
            lab.addr(70),
            args.rollover_phase
        );
        outln!();
        outln!("Root hints for this lab: {}", hints_file.display());
        outln!("Trust anchor for this lab: {}", anchor_file.display());
        outln!("Ctrl-C stops the lab.");
        let shutdown = CancellationToken::new();
        let bound = bound.serve_hits_from(resolver.cache().clone());
        let answerer: Arc<dyn Answerer> = resolver;
        let server = tokio::spawn(bound.run(answerer, shutdown.clone()));
        shutdown_signal().await;
        shutdown.cancel();
        let _ = server.await;
        lab.shutdown().await;
        drop(files);
        outln!("hopdns lab: stopped");
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    Ok(ExitCode::SUCCESS)
}

/// Where `hopdns lab` put its root hints and trust anchor; temporary ones are removed when
/// the lab stops (or fails).
struct LabFiles {
    hints: PathBuf,
    anchor: PathBuf,
    _temporary: Vec<TemporaryFile>,
}

impl LabFiles {
    fn write(args: &LabArgs, lab: &Lab, shipped: &Path) -> std::io::Result<LabFiles> {
        let net = args.net;
        if let Some(dir) = &args.state_dir {
            std::fs::create_dir_all(dir)?;
            let hints = dir.join(format!("lab-{net}.root"));
            let anchor = dir.join(format!("lab-{net}.anchor"));
            std::fs::write(&hints, lab.root_hints())?;
            std::fs::write(&anchor, lab.trust_anchor())?;
            return Ok(LabFiles {
                hints,
                anchor,
                _temporary: Vec::new(),
            });
        }
        let mut temporary = Vec::new();
        let hints = if net == 0 && shipped.exists() {
            shipped.to_path_buf()
        } else {
            let file = TemporaryFile::write(net, "root", &lab.root_hints())?;
            let path = file.0.clone();
            temporary.push(file);
            path
        };
        let file = TemporaryFile::write(net, "anchor", lab.trust_anchor())?;
        let anchor = file.0.clone();
        temporary.push(file);
        Ok(LabFiles {
            hints,
            anchor,
            _temporary: temporary,
        })
    }
}

/// One of this lab's files in the temporary directory, removed when dropped. The name
/// carries the process ID and the file is created exclusively, so two labs never share one,
/// and neither removes the other's (issue 12.13).
struct TemporaryFile(PathBuf);

impl TemporaryFile {
    fn write(net: u8, extension: &str, text: &str) -> std::io::Result<Self> {
        use std::io::Write;
        let path = std::env::temp_dir().join(format!(
            "hopdns-lab-{net}-{}.{extension}",
            std::process::id()
        ));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        // From here on, the guard removes the file whatever happens.
        let guard = TemporaryFile(path);
        file.write_all(text.as_bytes())?;
        Ok(guard)
    }
}

impl Drop for TemporaryFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
