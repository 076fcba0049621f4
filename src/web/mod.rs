//! The web dashboard (`serve --web ADDR:PORT`, off by default; issue 18): one page compiled
//! into the binary and a small JSON API over HTTP/1.1 (hyper, the project's one HTTP
//! stack; HTTPS with `--web-tls-cert`/`--web-tls-key`), for a LAN's operator: queries over
//! time by outcome, latency, the cache, top lists, a searchable query log, rules and pool
//! health, and, after a login, actions (pause blocking, reload, flush, look up, trace).
//!
//! * [`collect`]: what is gathered only while the dashboard is on: the query log ring
//!   ([`ring`], bounded in bytes by `--web-log-bytes`) and the per-minute top lists
//!   ([`top`]), both fed from the query log's tap (`server::querylog::ReplyTap`); the time
//!   series ([`series`]), sampled from the process's counters every 10 s.
//! * [`auth`]: the argon2id password, sessions, CSRF tokens, the login rate limit.
//! * [`http`]: the listener: the client allow-list of the DNS listeners, a connection cap,
//!   idle timeouts, bounded request bodies, security headers; [`api`]: the endpoints
//!   (`docs/dashboard.md`; the contract is `GET /api/...` read-only, `POST` actions with
//!   the session cookie and `X-CSRF-Token`).
//!
//! Off, none of this exists: no tap, no sampler, no listener. On, each reply costs one
//! short lock (ring push and two hash-map counts), the overview costs nothing per query.

pub mod api;
mod assets;
pub mod auth;
pub mod collect;
mod http;
pub mod ring;
pub mod series;
pub mod top;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use crate::control::Controls;
use crate::dns::Answerer;
use crate::redirect::Redirector;
use crate::resolver::Resolver;
use crate::server::{Acl, TlsCerts};

pub use auth::{check_hash, hash_password};
pub use collect::Collector;
pub use http::{probe, serve_web, WebError};

/// The dashboard's settings.
#[derive(Clone, Debug)]
pub struct WebConfig {
    pub addr: SocketAddr,
    /// The argon2id PHC string; `None`: read-only, actions answer 403.
    pub password_hash: Option<String>,
    /// HTTPS with this certificate and key; `None`: plain HTTP.
    pub tls: Option<Arc<TlsCerts>>,
    /// Who may connect: the DNS listeners' allow-list (loopback always).
    pub acl: Acl,
}

/// A resolver of the running configuration with an empty cache of its own (a small one),
/// for traces that show every hop (`/api/trace?fresh=1`), as `hopdns trace` runs.
pub type ColdResolver = Arc<dyn Fn() -> Resolver + Send + Sync>;

/// What the dashboard shows and acts on: the running engine.
#[derive(Clone)]
pub struct Engine {
    pub resolver: Arc<Resolver>,
    /// The redirect layer (`--rules`), if any.
    pub redirect: Option<Arc<Redirector>>,
    /// What the listeners ask: lookups go through it, rules and all.
    pub answerer: Arc<dyn Answerer>,
    /// `ctl`'s actions: reload, flush, pause.
    pub controls: Controls,
    /// Makes cold resolvers for fresh traces, and whether they prime first (as `serve`
    /// does); `None`: fresh traces are refused.
    pub cold: Option<(ColdResolver, bool)>,
}

/// Everything the handlers share.
pub struct Dashboard {
    pub(crate) config: WebConfig,
    pub(crate) collector: Arc<Collector>,
    pub(crate) engine: Engine,
    pub(crate) sessions: Mutex<auth::Sessions>,
    /// Password checks at once (argon2 takes 19 MiB and some ms each).
    pub(crate) hashing: tokio::sync::Semaphore,
    /// Lookups and traces at once.
    pub(crate) resolving: tokio::sync::Semaphore,
}

impl Dashboard {
    pub fn new(config: WebConfig, collector: Arc<Collector>, engine: Engine) -> Arc<Self> {
        let clock = collector.clock().clone();
        Arc::new(Self {
            config,
            collector,
            engine,
            sessions: Mutex::new(auth::Sessions::new(clock)),
            hashing: tokio::sync::Semaphore::new(2),
            resolving: tokio::sync::Semaphore::new(4),
        })
    }

    pub(crate) fn sessions(&self) -> std::sync::MutexGuard<'_, auth::Sessions> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}
