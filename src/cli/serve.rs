//! `hopdns serve`: the resolver for one machine (127.0.0.53) or a LAN.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use ipnet::IpNet;
use tokio_util::sync::CancellationToken;

use super::serve_services::{ConfigReloader, OpsRuntime, ResolverCache};
use super::{runtime, CmdResult};
use crate::config::encrypted::TlsArgs;
use crate::config::service::OpsArgs;
use crate::config::web::WebArgs;
use crate::config::UpstreamArgs;
use crate::control::{BlockingSwitch, Controls, Reloadable};
use crate::redirect::Redirector;
use crate::resolver::Resolver;
use crate::server::health::HealthCheck;
use crate::server::querylog::{QueryLog, ReplyTap};
use crate::server::{Acl, Answerer, BoundServer, ServerConfig, TlsCerts};

/// Cache of the dashboard's fresh-trace resolvers: enough for one resolution's records.
const COLD_CACHE_BYTES: usize = 2 << 20;

/// Time allowed for listeners to stop after SIGTERM before the process exits anyway.
const STOP_GRACE: Duration = Duration::from_millis(800);

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on, UDP and TCP (repeatable). Binds exactly this address.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.53:53")]
    pub listen: Vec<SocketAddr>,
    /// Worker threads, each with its own UDP socket (SO_REUSEPORT). Default: one per core.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Also answer clients from this network (repeatable). Loopback is always allowed;
    /// everyone else gets REFUSED.
    #[arg(long, value_name = "CIDR")]
    pub allow: Vec<IpNet>,
    /// Bind listen addresses that are not on any interface yet (IP_FREEBIND): a LAN
    /// address that comes up after hopdns starts is answered on as soon as it exists.
    #[arg(long)]
    pub freebind: bool,
    /// Redirect rules (TOML: overrides, aliases, blocklists, RPZ, pools with health
    /// checks; see docs/redirection.md). SIGHUP reloads the file.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub upstream: UpstreamArgs,
    #[command(flatten)]
    pub ops: OpsArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub web: WebArgs,
}

/// Raises the soft limit on open files to the hard limit, as Unbound and Knot Resolver do:
/// every upstream query, TCP client and scrape takes a descriptor, and the usual soft
/// limit of 1024 runs out long before the hard one (issue 11.5).
fn raise_open_files() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit to read into and then pass back.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        let before = lim.rlim_cur;
        if before < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                tracing::info!(
                    from = before,
                    to = lim.rlim_max,
                    "raised the open-file limit"
                );
            } else {
                tracing::warn!(
                    limit = before,
                    "could not raise the open-file limit to the hard limit"
                );
            }
        }
        if lim.rlim_cur < 4096 {
            tracing::warn!(
                limit = lim.rlim_cur,
                "few open files allowed: raise LimitNOFILE (systemd) or ulimit -Hn"
            );
        }
    }
}

/// `--allow` networks that let in everyone: refused without `--open-resolver`.
fn open_resolver_problem(args: &ServeArgs) -> Option<String> {
    let open: Vec<String> = args
        .allow
        .iter()
        .filter(|n| n.prefix_len() == 0)
        .map(ToString::to_string)
        .collect();
    if open.is_empty() || args.ops.open_resolver {
        return None;
    }
    Some(format!(
        "--allow {} answers anyone who can reach hopdns: an open resolver, which others use \
         to amplify attacks on third parties. Allow your own networks (e.g. --allow \
         192.168.1.0/24), or add --open-resolver if this is really meant",
        open.join(", ")
    ))
}

/// A listen address other than loopback with no `--allow`: everyone there gets REFUSED,
/// which looks like a broken server. Named in one warning at start.
pub(super) fn lan_without_allow(args: &ServeArgs) -> Option<String> {
    if !args.allow.is_empty() {
        return None;
    }
    let lan: Vec<String> = args
        .listen
        .iter()
        .filter(|a| !a.ip().to_canonical().is_loopback())
        .map(ToString::to_string)
        .collect();
    (!lan.is_empty()).then(|| {
        format!(
            "listening on {} but no --allow is given: only loopback clients are answered, \
             everyone else gets REFUSED; add --allow with your network (e.g. --allow \
             192.168.1.0/24)",
            lan.join(", ")
        )
    })
}

/// A dashboard on a LAN address that LAN clients cannot use: no `--allow` (only loopback
/// is admitted), or a password over plain HTTP (browsers keep the `Secure` session cookie
/// only over HTTPS or loopback, and the password would cross the LAN in clear). Named in
/// warnings at start and by `config check`.
pub(super) fn web_warnings(args: &ServeArgs) -> Vec<String> {
    let Some(addr) = args
        .web
        .web
        .filter(|a| !a.ip().to_canonical().is_loopback())
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if args.allow.is_empty() {
        out.push(format!(
            "the dashboard listens on {addr} but no --allow is given: only loopback clients \
             may open it, everyone else gets 403; add --allow with your network"
        ));
    }
    if args.web.web_password_hash.is_some() && args.web.web_tls_cert.is_none() {
        out.push(format!(
            "the dashboard on {addr} takes a password over plain HTTP: it crosses the LAN in \
             clear, and browsers keep the login's Secure cookie only over HTTPS (or \
             loopback); add --web-tls-cert and --web-tls-key"
        ));
    }
    out
}

/// `--health-fail-before-stop` without a name to fail: it would only delay the stop.
fn health_problem(args: &ServeArgs) -> Option<String> {
    (args.ops.health_fail_before_stop > 0.0 && args.ops.health_check_name.is_none()).then(|| {
        "--health-fail-before-stop has no health check to fail: add --health-check-name \
         NAME (the name the balancer checks), or drop it"
            .to_string()
    })
}

/// A forwarder or stub server that is one of hopdns's own listen sockets: every query
/// would come back to hopdns and loop until the deadline.
fn forward_loop_problem(args: &ServeArgs) -> Option<String> {
    let up = &args.upstream;
    let own = up
        .forward
        .iter()
        .chain(&up.stub)
        .flat_map(|z| z.servers.iter().map(move |s| (z, s)))
        .find(|(_, s)| args.listen.contains(&s.addr))?;
    Some(format!(
        "{} for {} is hopdns's own listen address: queries would loop back to hopdns; \
         give the upstream resolver's address instead",
        own.1, own.0.zone
    ))
}

/// The dashboard's switches: companions without `--web`, a hash that is not argon2id, a
/// certificate that does not load. Returns the certificate when one is given and loads.
fn web_problems(args: &WebArgs) -> (Vec<(&'static str, String)>, Option<Arc<TlsCerts>>) {
    let mut problems = args.problems();
    if let Some(hash) = &args.web_password_hash {
        if let Err(e) = crate::web::check_hash(hash) {
            problems.push(("web-password-hash", e));
        }
    }
    let mut certs = None;
    if let (Some(cert), Some(key)) = (&args.web_tls_cert, &args.web_tls_key) {
        match TlsCerts::load(cert, key) {
            Ok(c) => certs = Some(c),
            Err(e) => problems.push(("web-tls-cert", format!("dashboard: {e}"))),
        }
    }
    (problems, certs)
}

/// Checks what can be checked without binding anything (`hopdns config check`): every
/// problem, each with the config key it is about. The rules file is loaded too, and the
/// dashboard's address is bound for a moment to see that it is free.
pub fn check(args: &ServeArgs) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    if let Some(p) = open_resolver_problem(args) {
        problems.push(("allow", p));
    }
    if args.threads == Some(0) {
        problems.push(("threads", "--threads must be at least 1".to_string()));
    }
    if let Some(p) = health_problem(args) {
        problems.push(("health-fail-before-stop", p));
    }
    if let Some(p) = forward_loop_problem(args) {
        problems.push(("forward", p));
    }
    for e in args.upstream.problems() {
        problems.push((e.key(), e.to_string()));
    }
    if let Err(e) = args.tls.apply(&mut ServerConfig::default()) {
        problems.push((e.key(), e.to_string()));
    }
    problems.extend(web_problems(&args.web).0);
    if let Some(addr) = args.web.web {
        if let Err(e) = crate::web::probe(addr) {
            problems.push(("web", e.to_string()));
        }
    }
    if let Some(path) = &args.rules {
        if let Err(errors) = crate::redirect::file::load_all(path) {
            for e in errors {
                problems.push((
                    "rules",
                    format!("{e} (`hopdns rules check` checks the file alone)"),
                ));
            }
        }
    }
    problems
}

/// `log` feeding `tap` too, when there is one.
fn with_tap(log: QueryLog, tap: Option<Arc<dyn ReplyTap>>) -> QueryLog {
    match tap {
        Some(tap) => log.with_tap(tap),
        None => log,
    }
}

pub fn run(args: ServeArgs) -> CmdResult {
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if threads == 0 {
        return Err("--threads must be at least 1".into());
    }
    if let Some(p) = open_resolver_problem(&args) {
        return Err(p.into());
    }
    if let Some(p) = health_problem(&args) {
        return Err(p.into());
    }
    if let Some(p) = forward_loop_problem(&args) {
        return Err(p.into());
    }
    if let Some(warning) = lan_without_allow(&args) {
        tracing::warn!("{warning}");
    }
    for warning in web_warnings(&args) {
        tracing::warn!("{warning}");
    }
    if let Some(warning) = args.upstream.private_root_warning() {
        tracing::warn!("{warning}");
    }
    let (web_problems, web_certs) = web_problems(&args.web);
    if let Some((_, p)) = web_problems.into_iter().next() {
        return Err(p.into());
    }
    raise_open_files();
    let (mut resolver_config, transport) = args.upstream.build()?;
    let clock = resolver_config.clock.clone();
    // The dashboard's data exists only with --web: it hears every reply through the query
    // log (with or without --query-log's lines).
    let collector = args
        .web
        .web
        .map(|_| crate::web::Collector::new(args.web.web_log_bytes, clock.clone()));
    let tap = collector.clone().map(|c| c as Arc<dyn ReplyTap>);
    let hash = args.ops.query_log_hash_clients;
    let query_log = match (&args.ops.query_log_file, args.ops.query_log, tap) {
        (Some(path), _, tap) => Some(with_tap(QueryLog::new(hash).to_file(path)?, tap)),
        (None, true, tap) => Some(with_tap(QueryLog::new(hash), tap)),
        (None, false, Some(tap)) => Some(QueryLog::tap_only(hash, tap)),
        (None, false, None) => None,
    };
    resolver_config.max_pending = args.ops.max_pending;
    // A referral to our own listen address would make hopdns ask itself.
    resolver_config.settings.own_addrs = args.listen.iter().map(|a| a.ip()).collect();
    let mut server_config = ServerConfig {
        listen: args.listen.clone(),
        threads,
        allow: args.allow.clone(),
        max_tcp_clients: args.ops.max_tcp_clients,
        max_tcp_per_client: args.ops.max_tcp_per_client,
        tcp_trusted: args.ops.tcp_trusted.clone(),
        rrl: args.ops.rrl(),
        drain: args.ops.drain(),
        freebind: args.freebind,
        query_log: query_log.clone(),
        ..ServerConfig::default()
    };
    args.tls.apply(&mut server_config)?;
    let tls_certs = server_config.tls_certs.clone();
    let rt = runtime(threads)?;
    rt.block_on(async move {
        // Bind before anything else so a bad address fails fast with a clear error.
        let bound = BoundServer::bind(&server_config)?;
        let dnssec = resolver_config.settings.dnssec.clone();
        // Forwarding everything: the root is never asked, so not primed either.
        let prime =
            !args.upstream.no_prime && !resolver_config.settings.zones.forwards_everything();
        let transport = Arc::new(transport);
        // The dashboard's fresh traces: the same configuration and transport, an empty
        // cache of its own (small: one resolution's worth).
        let cold: crate::web::ColdResolver = {
            let mut config = resolver_config.clone();
            config.cache.size_bytes = COLD_CACHE_BYTES;
            let transport = transport.clone();
            Arc::new(move || Resolver::new(config.clone(), transport.clone()))
        };
        let resolver = Arc::new(Resolver::new(resolver_config, transport));
        {
            let r = resolver.clone();
            tokio::spawn(async move { r.keep_timers_ahead().await });
        }
        if prime {
            let r = resolver.clone();
            tokio::spawn(async move { r.keep_primed().await });
        }
        // RFC 5011 (`--trust-anchor-state`): the trust points refreshed on a timer.
        if let Some(config) = dnssec.clone() {
            if let Some(path) = config.state_file.clone() {
                let refresher = crate::resolver::trustpoints::Refresher::new(
                    Resolver::clone(&resolver),
                    config,
                    path,
                );
                tokio::spawn(refresher.run());
            }
        }
        for addr in bound.local_addrs() {
            tracing::info!(%addr, "listening (UDP and TCP)");
        }
        for (addr, proto) in bound.encrypted_addrs() {
            tracing::info!(%addr, "listening ({proto})");
        }
        let shutdown = CancellationToken::new();
        let redirect = match &args.rules {
            Some(path) => Some(Arc::new(Redirector::from_file_on(
                resolver.clone(),
                path,
                clock.clone(),
            )?)),
            None => None,
        };
        let mut reloaders: Vec<Arc<dyn Reloadable>> = ConfigReloader::for_args(&args, dnssec)
            .into_iter()
            .collect();
        for certs in tls_certs.into_iter().chain(web_certs.clone()) {
            // SIGHUP and `ctl reload` read the certificate and key again (a renewal).
            reloaders.push(Arc::new(super::serve_services::TlsCertFiles(certs)));
        }
        if let Some(log) = query_log.filter(QueryLog::has_file) {
            reloaders.push(Arc::new(super::serve_services::QueryLogFile(log)));
        }
        if let Some(r) = &redirect {
            // `ctl reload` and SIGHUP re-read the rules; `ctl health` and the metrics show
            // the pools' members.
            reloaders.push(r.clone());
            crate::metrics::metrics().set_health_source(Some(r.clone()));
        }
        let resolver_cache = resolver.cache().clone();
        let cache = Arc::new(ResolverCache((*resolver).clone()));
        crate::metrics::metrics().set_cache_source(Some(cache.clone()));
        let controls = Controls {
            cache: Some(cache),
            reloaders,
            blocking: redirect.clone().map(|r| r as Arc<dyn BlockingSwitch>),
        };
        let mut ops = OpsRuntime::start(&args.ops, controls.clone(), &shutdown).await?;
        let answerer: Arc<dyn Answerer> = match redirect.clone() {
            Some(r) => r,
            // No rules: the resolver answers directly, with no layer in between.
            None => resolver.clone(),
        };
        let health = args
            .ops
            .health_check_name
            .clone()
            .map(|name| Arc::new(HealthCheck::new(answerer.clone(), name)));
        let answerer: Arc<dyn Answerer> = match &health {
            Some(h) => h.clone(),
            None => answerer,
        };
        let web = match (args.web.web, collector) {
            (Some(addr), Some(collector)) => {
                let config = crate::web::WebConfig {
                    addr,
                    password_hash: args.web.web_password_hash.clone(),
                    tls: web_certs,
                    acl: Acl::new(args.allow.clone()),
                };
                let engine = crate::web::Engine {
                    resolver: resolver.clone(),
                    redirect: redirect.clone(),
                    answerer: answerer.clone(),
                    controls,
                    cold: Some((cold, prime)),
                };
                let dash = crate::web::Dashboard::new(config, collector, engine);
                let (bound, task) = crate::web::serve_web(dash, shutdown.clone()).await?;
                let scheme = if args.web.web_tls_cert.is_some() {
                    "https"
                } else {
                    "http"
                };
                tracing::info!(addr = %bound, "dashboard at {scheme}://{bound}/");
                Some(task)
            }
            _ => None,
        };
        let bound = bound.serve_hits_from(resolver_cache);
        let server = tokio::spawn(bound.run(answerer, shutdown.clone()));
        // Every socket is bound and registered: systemd may start what needs DNS now.
        super::notify::send("READY=1\nSTATUS=answering queries");
        ops.wait_for_stop().await;
        super::notify::send("STOPPING=1\nSTATUS=draining");
        let before = args.ops.health_fail_before_stop();
        if let Some(h) = health.filter(|_| !before.is_zero()) {
            // Out of the balancer's rotation first, still answering; then the drain.
            tracing::info!(?before, "stopping: failing the health check first");
            h.fail();
            tokio::time::sleep(before).await;
        }
        tracing::info!(drain = ?args.ops.drain(), "stopping: draining queries in hand");
        shutdown.cancel();
        match tokio::time::timeout(args.ops.drain() + STOP_GRACE, server).await {
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "listener error while stopping"),
            Err(_) => tracing::warn!("listeners did not stop in time; exiting anyway"),
            _ => {}
        }
        if let Some(task) = web {
            let _ = tokio::time::timeout(STOP_GRACE, task).await;
        }
        ops.finish().await;
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    rt.shutdown_timeout(Duration::from_millis(100));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn serve_args(extra: &[&str]) -> ServeArgs {
        let argv = ["hopdns", "serve"].iter().chain(extra);
        match super::super::Cli::try_parse_from(argv).unwrap().command {
            super::super::Command::Serve(a) => a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_lan_dashboard_without_allow_or_certificate_is_warned_about() {
        assert!(web_warnings(&serve_args(&["--web", "127.0.0.1:8053"])).is_empty());
        let hash = "--web-password-hash=$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA";
        let w = web_warnings(&serve_args(&["--web", "192.168.1.2:8053", hash]));
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("no --allow"), "{w:?}");
        assert!(w[1].contains("--web-tls-cert"), "{w:?}");
        let w = web_warnings(&serve_args(&[
            "--web",
            "192.168.1.2:8053",
            "--allow",
            "192.168.1.0/24",
        ]));
        assert!(w.is_empty(), "read-only over HTTP: fine: {w:?}");
    }

    #[test]
    fn serve_refuses_web_companions_without_the_dashboard_and_bad_hashes() {
        let (p, _) = web_problems(&serve_args(&["--web-password-hash", "x"]).web);
        let keys: Vec<&str> = p.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["web-password-hash", "web-password-hash"], "{p:?}");
        assert!(p[1].1.contains("hopdns web-password"), "{p:?}");
    }
}
