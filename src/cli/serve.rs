//! `hopdns serve`: the resolver for one machine (127.0.0.53) or a LAN.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use ipnet::IpNet;
use tokio_util::sync::CancellationToken;

use super::{runtime, shutdown_signal, CmdResult};
use crate::config::UpstreamArgs;
use crate::redirect::Redirector;
use crate::resolver::Resolver;
use crate::server::{Answerer, BoundServer, ServerConfig};

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
    /// Redirect rules (TOML: overrides, aliases, blocklists, RPZ, pools with health
    /// checks; see docs/redirection.md). SIGHUP reloads the file.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub upstream: UpstreamArgs,
}

pub fn run(args: ServeArgs) -> CmdResult {
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if threads == 0 {
        return Err("--threads must be at least 1".into());
    }
    let (resolver_config, transport) = args.upstream.build()?;
    let server_config = ServerConfig {
        listen: args.listen.clone(),
        threads,
        allow: args.allow.clone(),
        ..ServerConfig::default()
    };
    let rt = runtime(threads)?;
    rt.block_on(async move {
        // Bind before anything else so a bad address fails fast with a clear error.
        let bound = BoundServer::bind(&server_config)?;
        let resolver = Arc::new(Resolver::new(resolver_config, Arc::new(transport)));
        if !args.upstream.no_prime {
            let r = resolver.clone();
            tokio::spawn(async move { r.keep_primed().await });
        }
        for addr in bound.local_addrs() {
            tracing::info!(%addr, "listening (UDP and TCP)");
        }
        let shutdown = CancellationToken::new();
        let answerer: Arc<dyn Answerer> = match &args.rules {
            // No rules: the resolver answers directly, with no layer in between.
            None => resolver,
            Some(path) => {
                let redirect = Arc::new(Redirector::from_file(resolver, path)?);
                tokio::spawn(reload_on_sighup(redirect.clone()));
                redirect
            }
        };
        if args.rules.is_none() {
            tokio::spawn(reload_on_sighup_without_rules());
        }
        let server = tokio::spawn(bound.run(answerer, shutdown.clone()));
        shutdown_signal().await;
        tracing::info!("stopping");
        shutdown.cancel();
        match tokio::time::timeout(STOP_GRACE, server).await {
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "listener error while stopping"),
            Err(_) => tracing::warn!("listeners did not stop in time; exiting anyway"),
            _ => {}
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    rt.shutdown_timeout(Duration::from_millis(100));
    Ok(ExitCode::SUCCESS)
}

/// SIGHUP re-reads the rules file (on a blocking thread: a large blocklist takes a moment);
/// an invalid file keeps the old rules ([`Redirector::reload`] logs why).
async fn reload_on_sighup(redirect: Arc<Redirector>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; rules will not be reloaded");
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the redirect rules");
            let r = redirect.clone();
            let _ = tokio::task::spawn_blocking(move || r.reload()).await;
        }
    }
    #[cfg(not(unix))]
    let _ = redirect;
}

/// Without --rules, SIGHUP (whose default action ends the process) only logs that there is
/// nothing to reload.
async fn reload_on_sighup_without_rules() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut hup) = signal(SignalKind::hangup()) {
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP: no --rules file in use; nothing to reload");
            }
        }
    }
}
