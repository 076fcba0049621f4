//! The front end: UDP and TCP listeners, ACL, EDNS payload and truncation.
//! It knows nothing of how answers are found: it asks an [`Answerer`].
//!
//! Two phases, so that `main` can report bind errors before anything runs:
//!
//! * [`BoundServer::bind`] is synchronous. For each listen address it binds `threads` UDP
//!   sockets with `SO_REUSEPORT` (one per worker, so the kernel spreads clients over every
//!   core) and then one TCP listener on the same port (DNS needs both: RFC 1035 §4.2,
//!   RFC 7766 §5). Exactly the given address is bound; an IPv6 address is bound
//!   `IPV6_V6ONLY`, so `[::]` does not silently take IPv4 as well. Port 0 is resolved
//!   once (by a probe socket) and every socket of that address binds the chosen port.
//!   Errors say what to do ([`BindError`]).
//! * [`BoundServer::run`] registers the sockets with tokio, starts the UDP loops before the
//!   TCP accept loops, and serves until the [`CancellationToken`] is cancelled; it then
//!   stops every loop and in-flight query and returns well under a second later.
//!
//! What one message goes through is in [`request`]; the loops are in `udp` and `tcp`.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, warn};

use crate::cache::Cache;

pub mod acl;
pub mod client_errors;
pub mod fast;
pub mod health;
mod https;
pub mod proxy;
pub mod querylog;
pub mod request;
pub mod rrl;
mod tcp;
pub mod tls;
mod udp;

pub use crate::dns::Answerer;
pub use acl::Acl;
pub use https::DEFAULT_PATH as DEFAULT_HTTPS_PATH;
pub use request::{Policy, Proto};
pub use tls::{CertError, TlsCerts};

/// The stub-resolver address systemd uses; hopdns can take its place.
pub const DEFAULT_LISTEN: &str = "127.0.0.53:53";
/// RFC 7766 §6.2.3: servers close idle connections after "a few seconds"; 10 s is what
/// Unbound and BIND use.
pub const DEFAULT_TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Concurrent TCP connections, all listeners together (further clients wait in the accept
/// backlog).
pub const DEFAULT_MAX_TCP_CLIENTS: usize = 100;
/// Concurrent TCP connections from one client (see [`DEFAULT_TCP_IPV4_PREFIX`]) with the
/// normal idle timeout; more are served with the shortest one and give way first (a LAN
/// host needs a few; one host must not take every slot).
pub const DEFAULT_MAX_TCP_PER_CLIENT: usize = 10;
/// TCP connections count per client by this IPv4 prefix (a whole address) ...
pub const DEFAULT_TCP_IPV4_PREFIX: u8 = 32;
/// ... and this IPv6 prefix (one host's /64: it may use many addresses of it).
pub const DEFAULT_TCP_IPV6_PREFIX: u8 = 64;
/// How long `run` waits for in-flight tasks after they have been told to stop.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);
/// Tries to find a port free for UDP and TCP when the listen port is 0.
const PORT_ZERO_ATTEMPTS: usize = 16;
/// Accept backlog of each TCP listener.
const TCP_BACKLOG: i32 = 1024;

/// Settings of the front end.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Addresses to serve on, UDP and TCP each. Port 0 picks a free port.
    pub listen: Vec<SocketAddr>,
    /// UDP sockets (and worker tasks) per listen address; 0 counts as 1.
    pub threads: usize,
    /// Networks allowed besides loopback; everyone else gets REFUSED.
    pub allow: Vec<ipnet::IpNet>,
    /// A TCP connection with no query for this long is closed; also the time a started
    /// message has to arrive completely, and a reply to be written.
    pub tcp_idle_timeout: Duration,
    /// Our EDNS UDP payload (RFC 6891 §6.2.5); values below 512 count as 512.
    pub max_udp_payload: u16,
    /// Concurrent TCP connections, all listen addresses together; 0 counts as 1.
    pub max_tcp_clients: usize,
    /// Concurrent TCP connections from one client with the normal idle timeout; 0 counts
    /// as 1.
    pub max_tcp_per_client: usize,
    /// What counts as one client for `max_tcp_per_client`: IPv4 and IPv6 prefix lengths.
    pub tcp_ipv4_prefix: u8,
    pub tcp_ipv6_prefix: u8,
    /// Clients with no per-client TCP budget (a proxy in front that pools connections).
    pub tcp_trusted: Vec<ipnet::IpNet>,
    /// Response rate limiting of UDP replies (off when `rate` is 0).
    pub rrl: rrl::RrlConfig,
    /// On shutdown, how long queries already received may still be answered (the drain);
    /// nothing new is accepted meanwhile.
    pub drain: Duration,
    /// Log every reply (off by default).
    pub query_log: Option<querylog::QueryLog>,
    /// Bind listen addresses that are not (yet) on any interface (`IP_FREEBIND`,
    /// `IPV6_FREEBIND`): a LAN address that DHCP or SLAAC brings up after hopdns starts.
    pub freebind: bool,
    /// DNS over TLS listeners (RFC 7858); they need `tls_certs`.
    pub listen_tls: Vec<SocketAddr>,
    /// DNS over HTTPS listeners (RFC 8484); they need `tls_certs`.
    pub listen_https: Vec<SocketAddr>,
    /// The certificate and key of the DoT and DoH listeners.
    pub tls_certs: Option<Arc<TlsCerts>>,
    /// The DoH path (`/dns-query`).
    pub https_path: String,
    /// Time a DoT or DoH client has to finish its TLS handshake (and PROXY header).
    pub tls_handshake_timeout: Duration,
    /// Peers that put a PROXY protocol v2 header before TLS (empty: none do).
    pub proxy_protocol_from: Vec<ipnet::IpNet>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: vec![DEFAULT_LISTEN.parse().expect("constant address parses")],
            threads: std::thread::available_parallelism().map_or(1, usize::from),
            allow: Vec::new(),
            tcp_idle_timeout: DEFAULT_TCP_IDLE_TIMEOUT,
            max_udp_payload: request::DEFAULT_MAX_UDP_PAYLOAD,
            max_tcp_clients: DEFAULT_MAX_TCP_CLIENTS,
            max_tcp_per_client: DEFAULT_MAX_TCP_PER_CLIENT,
            tcp_ipv4_prefix: DEFAULT_TCP_IPV4_PREFIX,
            tcp_ipv6_prefix: DEFAULT_TCP_IPV6_PREFIX,
            tcp_trusted: Vec::new(),
            rrl: rrl::RrlConfig::default(),
            drain: Duration::ZERO,
            query_log: None,
            freebind: false,
            listen_tls: Vec::new(),
            listen_https: Vec::new(),
            tls_certs: None,
            https_path: https::DEFAULT_PATH.to_string(),
            tls_handshake_timeout: tls::DEFAULT_HANDSHAKE_TIMEOUT,
            proxy_protocol_from: Vec::new(),
        }
    }
}

/// Why the listeners could not be bound. Messages name the address and the fix.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("no listen address given: pass at least one --listen")]
    NoListen,
    #[error("{addr} is listed twice: give each --listen (and --listen-tls, --listen-https) once")]
    Duplicate { addr: SocketAddr },
    #[error("--listen-tls and --listen-https need a certificate: add --tls-cert FILE and --tls-key FILE")]
    NoCertificate,
    #[error(
        "{addr} ({proto}) is already in use: another DNS server (systemd-resolved? dnsmasq?) \
         is listening; stop it or choose another --listen"
    )]
    InUse { addr: SocketAddr, proto: Proto },
    #[error(
        "binding port {} needs root or CAP_NET_BIND_SERVICE: run \
         `setcap cap_net_bind_service=+ep $(which hopdns)` or use a port above 1023",
        addr.port()
    )]
    Privileged { addr: SocketAddr },
    #[error(
        "{} is not an address of this machine (binding {addr}): choose one shown by \
         `ip address`, or a loopback address such as 127.0.0.53; if it comes up later \
         (DHCP, SLAAC), add --freebind",
        addr.ip()
    )]
    NotLocal { addr: SocketAddr },
    #[error("cannot {action} {proto} socket on {addr}: {source}")]
    Io {
        addr: SocketAddr,
        proto: Proto,
        action: &'static str,
        #[source]
        source: io::Error,
    },
}

/// Why serving stopped other than by the shutdown token.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot register the {proto} socket on {addr} with the runtime: {source}")]
    Register {
        addr: SocketAddr,
        proto: Proto,
        #[source]
        source: io::Error,
    },
    #[error("the {proto} listener on {addr} stopped unexpectedly: {reason}")]
    ListenerStopped {
        addr: SocketAddr,
        proto: Proto,
        reason: String,
    },
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Udp => "UDP",
            Proto::Tcp => "TCP",
            Proto::Tls => "DoT",
            Proto::Https => "DoH",
        })
    }
}

/// Every socket bound and ready; nothing is served until [`BoundServer::run`].
#[derive(Debug)]
pub struct BoundServer {
    listeners: Vec<Listener>,
    policy: Policy,
    tcp_idle_timeout: Duration,
    tcp_limits: tcp::TcpLimits,
    rrl: Option<rrl::Rrl>,
    drain: Duration,
    query_log: Option<querylog::QueryLog>,
    stats: Arc<Stats>,
    hits: Option<Arc<Cache>>,
    /// DoT and DoH listeners, each with its bound address and transport.
    encrypted_listeners: Vec<(SocketAddr, Proto, std::net::TcpListener)>,
    encrypted: Option<Arc<tls::Encrypted>>,
    proxy_from: Vec<ipnet::IpNet>,
}

/// The sockets of one listen address (port 0 already resolved).
#[derive(Debug)]
struct Listener {
    addr: SocketAddr,
    udp: Vec<std::net::UdpSocket>,
    tcp: std::net::TcpListener,
}

/// One worker's counter on a cache line of its own, so workers on different cores never
/// write the same line.
#[derive(Debug, Default)]
#[repr(align(64))]
pub(crate) struct PerWorker(pub(crate) AtomicU64);

/// Counters shared by the loops (relaxed atomics: cheap, approximate under concurrency).
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Datagrams received, per UDP worker in bind order (listen entry, then worker).
    pub(crate) udp_received: Vec<PerWorker>,
}

impl Stats {
    /// Counts `n` datagrams (once per receive batch, so workers seldom touch the counters).
    fn count_udp(&self, worker: usize, n: u64) {
        if let Some(PerWorker(counter)) = self.udp_received.get(worker) {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// The two stages of stopping: `stop` ends the loops (no new query is taken), `abort` ends
/// the queries in hand once the drain time is over.
#[derive(Clone)]
pub(crate) struct Tokens {
    pub(crate) stop: CancellationToken,
    pub(crate) abort: CancellationToken,
}

/// What every loop needs, shared behind one `Arc`.
pub(crate) struct Shared {
    pub(crate) answerer: Arc<dyn Answerer>,
    pub(crate) policy: Policy,
    pub(crate) tcp_idle_timeout: Duration,
    /// TCP connection slots shared by every listener.
    pub(crate) tcp_slots: Arc<tcp::Slots>,
    pub(crate) rrl: Option<rrl::Rrl>,
    pub(crate) query_log: Option<querylog::QueryLog>,
    pub(crate) stats: Arc<Stats>,
    /// The cache whose ready replies the UDP workers serve themselves.
    pub(crate) hits: Option<Arc<Cache>>,
    /// The DoT and DoH settings (`None` without those listeners).
    pub(crate) encrypted: Option<Arc<tls::Encrypted>>,
    /// Balancers that name the client in a PROXY v2 header (`proxy-protocol-from`): on
    /// every UDP datagram and at the start of every TCP connection from them.
    pub(crate) proxy_from: Vec<ipnet::IpNet>,
}

impl Shared {
    /// Whether `peer` is a balancer that must send a PROXY v2 header.
    pub(crate) fn is_proxy(&self, peer: SocketAddr) -> bool {
        let ip = peer.ip().to_canonical();
        !self.proxy_from.is_empty() && self.proxy_from.iter().any(|n| n.contains(&ip))
    }

    /// Whether a stream client (TCP, DoT, DoH) may connect: a plausible address in the
    /// allow-list. A refusal is counted and logged here, once for every stream transport.
    pub(crate) fn admits_stream(&self, client: SocketAddr, proto: Proto) -> bool {
        if request::plausible_client(client) && self.policy.acl().allows(client.ip()) {
            return true;
        }
        client_errors::note(crate::metrics::ClientError::NotAllowed);
        crate::metrics::metrics().tcp_refused();
        debug!(%client, %proto, "client not in the allow-list; connection closed");
        false
    }
}

impl Shared {
    /// Every reply passes here just before it is sent: response rate limiting (UDP), the
    /// reply counters and the query log. Returns the length to send (a slip shortens the
    /// reply in place to header + question with TC=1), or `None` to send nothing.
    pub(crate) fn outgoing(
        &self,
        reply: &mut [u8],
        client: SocketAddr,
        proto: Proto,
    ) -> Option<usize> {
        self.outgoing_as(reply, client, proto, false)
    }

    /// [`Shared::outgoing`] for a reply of the fast path (a cache hit).
    pub(crate) fn outgoing_hit(
        &self,
        reply: &mut [u8],
        client: SocketAddr,
        proto: Proto,
    ) -> Option<usize> {
        self.outgoing_as(reply, client, proto, true)
    }

    fn outgoing_as(
        &self,
        reply: &mut [u8],
        client: SocketAddr,
        proto: Proto,
        fast_hit: bool,
    ) -> Option<usize> {
        let mut len = reply.len();
        if let (Proto::Udp, Some(rrl)) = (proto, &self.rrl) {
            match rrl.check(client.ip(), std::time::Instant::now()) {
                rrl::Verdict::Send => {}
                rrl::Verdict::Slip => {
                    len = rrl::truncate(reply);
                    crate::metrics::metrics().rrl_slipped();
                }
                rrl::Verdict::Drop => {
                    crate::metrics::metrics().rrl_dropped();
                    return None;
                }
            }
        }
        let reply = &reply[..len];
        crate::metrics::metrics().count_reply(reply, proto);
        if let Some(log) = &self.query_log {
            log.reply(reply, client, proto, fast_hit);
        }
        Some(len)
    }

    /// [`Shared::outgoing`] for an owned reply: `false` means send nothing.
    pub(crate) fn outgoing_vec(
        &self,
        reply: &mut Vec<u8>,
        client: SocketAddr,
        proto: Proto,
    ) -> bool {
        let len = self.outgoing(reply, client, proto);
        reply.truncate(len.unwrap_or(0));
        len.is_some()
    }
}

impl BoundServer {
    /// Binds every socket now, so that errors come before serving starts.
    pub fn bind(cfg: &ServerConfig) -> Result<BoundServer, BindError> {
        if cfg.listen.is_empty() {
            return Err(BindError::NoListen);
        }
        let mut seen = HashSet::new();
        for addr in &cfg.listen {
            if addr.port() != 0 && !seen.insert(*addr) {
                return Err(BindError::Duplicate { addr: *addr });
            }
        }
        let threads = cfg.threads.max(1);
        let listeners = cfg
            .listen
            .iter()
            .map(|addr| bind_listener(*addr, threads, cfg.freebind))
            .collect::<Result<Vec<_>, _>>()?;
        let mut encrypted_listeners = Vec::new();
        for (addrs, proto) in [
            (&cfg.listen_tls, Proto::Tls),
            (&cfg.listen_https, Proto::Https),
        ] {
            for addr in addrs {
                if addr.port() != 0 && !seen.insert(*addr) {
                    return Err(BindError::Duplicate { addr: *addr });
                }
                let listener = tcp_listener(*addr, cfg.freebind)?;
                let local = listener
                    .local_addr()
                    .map_err(|source| io_error(*addr, proto, "read the address of", source))?;
                encrypted_listeners.push((local, proto, listener));
            }
        }
        let encrypted = match (&cfg.tls_certs, encrypted_listeners.is_empty()) {
            (_, true) => None,
            (None, false) => return Err(BindError::NoCertificate),
            (Some(certs), false) => Some(Arc::new(tls::Encrypted {
                dot: certs.server_config(&[b"dot"]),
                doh: certs.server_config(&[b"h2", b"http/1.1"]),
                handshake_timeout: cfg.tls_handshake_timeout,
                https_path: cfg.https_path.clone(),
            })),
        };
        let workers = listeners.iter().map(|l| l.udp.len()).sum();
        debug!(addrs = ?listeners.iter().map(|l| l.addr).collect::<Vec<_>>(), threads, "bound");
        Ok(BoundServer {
            listeners,
            policy: Policy::new(Acl::new(cfg.allow.clone()), cfg.max_udp_payload),
            tcp_idle_timeout: cfg.tcp_idle_timeout,
            tcp_limits: tcp::TcpLimits {
                max_total: cfg.max_tcp_clients.max(1),
                max_per_client: cfg.max_tcp_per_client.max(1),
                idle: cfg.tcp_idle_timeout,
                ipv4_prefix: cfg.tcp_ipv4_prefix.min(32),
                ipv6_prefix: cfg.tcp_ipv6_prefix.min(128),
                trusted: cfg.tcp_trusted.clone(),
            },
            rrl: rrl::Rrl::new(cfg.rrl),
            drain: cfg.drain,
            query_log: cfg.query_log.clone(),
            stats: Arc::new(Stats {
                udp_received: (0..workers).map(|_| PerWorker::default()).collect(),
            }),
            hits: None,
            encrypted_listeners,
            encrypted,
            proxy_from: cfg.proxy_protocol_from.clone(),
        })
    }

    /// Answers plain UDP queries that hit `cache`'s ready replies on the worker itself
    /// ([`fast::reply_from_cache`]), asking the answerer only whether it allows the hit and
    /// what to prefetch. Without it every query goes to the answerer.
    pub fn serve_hits_from(mut self, cache: Arc<Cache>) -> Self {
        self.hits = Some(cache);
        self
    }

    /// The bound DoT and DoH addresses with their transport, in the order given (port 0
    /// resolved).
    pub fn encrypted_addrs(&self) -> Vec<(SocketAddr, Proto)> {
        self.encrypted_listeners
            .iter()
            .map(|(addr, proto, _)| (*addr, *proto))
            .collect()
    }

    /// The bound addresses, one per listen entry, in order, with port 0 resolved.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().map(|l| l.addr).collect()
    }

    /// Serves until `shutdown` is cancelled, then stops every loop and in-flight query.
    /// Returns an error only if a listener loop ended on its own (a bug or a panic); the
    /// other loops are then stopped too, so a supervisor can restart the process.
    pub async fn run(
        self,
        answerer: Arc<dyn Answerer>,
        shutdown: CancellationToken,
    ) -> Result<(), ServeError> {
        // Register everything first, so a failure leaves nothing running.
        let mut udp_sockets = Vec::new();
        let mut tcp_listeners = Vec::new();
        for listener in self.listeners {
            let addr = listener.addr;
            for socket in listener.udp {
                let socket = udp::Endpoint::new(socket).map_err(|source| ServeError::Register {
                    addr,
                    proto: Proto::Udp,
                    source,
                })?;
                udp_sockets.push((addr, socket));
            }
            let tcp = tokio::net::TcpListener::from_std(listener.tcp).map_err(|source| {
                ServeError::Register {
                    addr,
                    proto: Proto::Tcp,
                    source,
                }
            })?;
            tcp_listeners.push((addr, tcp));
        }
        let mut encrypted_listeners = Vec::new();
        for (addr, proto, listener) in self.encrypted_listeners {
            let listener = tokio::net::TcpListener::from_std(listener).map_err(|source| {
                ServeError::Register {
                    addr,
                    proto,
                    source,
                }
            })?;
            encrypted_listeners.push((addr, proto, listener));
        }

        let shared = Arc::new(Shared {
            answerer,
            policy: self.policy,
            tcp_idle_timeout: self.tcp_idle_timeout,
            tcp_slots: Arc::new(tcp::Slots::new(self.tcp_limits)),
            rrl: self.rrl,
            query_log: self.query_log,
            stats: self.stats,
            hits: self.hits,
            encrypted: self.encrypted,
            proxy_from: self.proxy_from,
        });
        // A child token: a failing listener stops this server without cancelling the caller's.
        // `token` stops the loops (nothing new is accepted); `abort` stops the queries
        // already in hand, after the drain.
        let token = shutdown.child_token();
        let abort = CancellationToken::new();
        let abort_guard = abort.clone().drop_guard();
        let tasks = TaskTracker::new();
        let mut loops = JoinSet::new();
        // Which listener each loop serves, to name it if it fails.
        let mut names = HashMap::new();
        // Ready on UDP before TCP.
        for (worker, (addr, socket)) in udp_sockets.into_iter().enumerate() {
            let (shared, token, tasks) = (shared.clone(), token.clone(), tasks.clone());
            let tokens = Tokens {
                stop: token,
                abort: abort.clone(),
            };
            let handle = loops.spawn(udp::serve(socket, worker, shared, tokens, tasks));
            names.insert(handle.id(), (addr, Proto::Udp));
        }
        for (addr, listener) in tcp_listeners {
            let (shared, token, tasks) = (shared.clone(), token.clone(), tasks.clone());
            let tokens = Tokens {
                stop: token,
                abort: abort.clone(),
            };
            let handle = loops.spawn(tcp::serve(listener, shared, tokens, tasks));
            names.insert(handle.id(), (addr, Proto::Tcp));
        }
        for (addr, proto, listener) in encrypted_listeners {
            let (shared, token, tasks) = (shared.clone(), token.clone(), tasks.clone());
            let tokens = Tokens {
                stop: token,
                abort: abort.clone(),
            };
            let handle = loops.spawn(tls::serve(listener, proto, shared, tokens, tasks));
            names.insert(handle.id(), (addr, proto));
        }
        debug!(loops = loops.len(), "serving");

        let mut result = Ok(());
        tokio::select! {
            // Cancellation first: when a stop is asked, the loops end too, and one that
            // ended because it saw the token is not a failure (issue 12.5).
            biased;
            _ = token.cancelled() => {}
            Some(ended) = loops.join_next_with_id() => 'ended: {
                if ended.is_ok() && token.is_cancelled() {
                    break 'ended;
                }
                // Loops end only when cancelled; anything else is a failure to report.
                let (id, reason) = match ended {
                    Ok((id, ())) => (id, "loop returned".to_string()),
                    Err(join) => (join.id(), join.to_string()),
                };
                let unknown = (SocketAddr::from(([0, 0, 0, 0], 0)), Proto::Udp);
                let (addr, proto) = names.get(&id).copied().unwrap_or(unknown);
                let error = ServeError::ListenerStopped { addr, proto, reason };
                error!(%error, "listener failed; stopping the server");
                result = Err(error);
            }
        }
        token.cancel();
        tasks.close();
        // The loops stop at once (sockets close); queries in hand get `drain` to finish.
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while loops.join_next().await.is_some() {}
        })
        .await;
        if !tasks.is_empty() && !self.drain.is_zero() {
            let pending = tasks.len();
            match tokio::time::timeout(self.drain, tasks.wait()).await {
                Ok(()) => debug!(pending, "drained every query in hand"),
                Err(_) => {
                    warn!(pending, left = tasks.len(), drain = ?self.drain, "drain time over; abandoning the rest")
                }
            }
        }
        drop(abort_guard);
        let finish = async {
            while loops.join_next().await.is_some() {}
            tasks.wait().await;
        };
        if tokio::time::timeout(SHUTDOWN_GRACE, finish).await.is_err() {
            debug!("shutdown grace elapsed; abandoning remaining tasks");
            loops.abort_all();
        }
        debug!("stopped");
        result
    }

    #[cfg(test)]
    pub(crate) fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }
}

/// Binds the UDP sockets, then the TCP listener, of one listen address.
fn bind_listener(addr: SocketAddr, threads: usize, freebind: bool) -> Result<Listener, BindError> {
    if addr.port() != 0 {
        return bind_group(addr, threads, freebind);
    }
    // Port 0. The kernel's choice for a SO_REUSEPORT socket may be a port that another
    // SO_REUSEPORT socket of the same user already has, which would share its traffic; so
    // a plain socket picks a port nobody holds, and the group binds it just after. Losing
    // that short race (or finding the TCP port taken) means trying another port.
    let mut attempt = 0;
    loop {
        attempt += 1;
        let probe = new_socket(addr, Proto::Udp, freebind)?;
        probe
            .bind(&addr.into())
            .map_err(|source| bind_error(addr, Proto::Udp, source))?;
        let port = probe
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .map(|a| a.port())
            .ok_or_else(|| {
                io_error(
                    addr,
                    Proto::Udp,
                    "read the port of",
                    io::Error::other("no socket address"),
                )
            })?;
        drop(probe);
        // set_port keeps an IPv6 scope id that SocketAddr::new would drop.
        let mut chosen = addr;
        chosen.set_port(port);
        match bind_group(chosen, threads, freebind) {
            Err(BindError::InUse { .. }) if attempt < PORT_ZERO_ATTEMPTS => continue,
            other => return other,
        }
    }
}

fn bind_group(addr: SocketAddr, threads: usize, freebind: bool) -> Result<Listener, BindError> {
    let udp = (0..threads)
        .map(|_| udp_socket(addr, freebind))
        .collect::<Result<Vec<_>, _>>()?;
    let tcp = tcp_listener(addr, freebind)?;
    Ok(Listener { addr, udp, tcp })
}

fn new_socket(addr: SocketAddr, proto: Proto, freebind: bool) -> Result<Socket, BindError> {
    let (kind, protocol) = match proto {
        Proto::Udp => (Type::DGRAM, Protocol::UDP),
        Proto::Tcp | Proto::Tls | Proto::Https => (Type::STREAM, Protocol::TCP),
    };
    let socket = Socket::new(Domain::for_address(addr), kind, Some(protocol))
        .map_err(|source| io_error(addr, proto, "create", source))?;
    if addr.is_ipv6() {
        socket
            .set_only_v6(true)
            .map_err(|source| io_error(addr, proto, "set IPV6_V6ONLY on", source))?;
    }
    socket
        .set_nonblocking(true)
        .map_err(|source| io_error(addr, proto, "set non-blocking mode on", source))?;
    #[cfg(target_os = "linux")]
    if freebind {
        let set = if addr.is_ipv6() {
            socket.set_freebind_v6(true)
        } else {
            socket.set_freebind_v4(true)
        };
        set.map_err(|source| io_error(addr, proto, "set IP_FREEBIND on", source))?;
    }
    #[cfg(not(target_os = "linux"))]
    let _ = freebind;
    Ok(socket)
}

fn udp_socket(addr: SocketAddr, freebind: bool) -> Result<std::net::UdpSocket, BindError> {
    let socket = new_socket(addr, Proto::Udp, freebind)?;
    // One socket per worker on the same address; the kernel hashes clients across them.
    #[cfg(unix)]
    socket
        .set_reuse_port(true)
        .map_err(|source| io_error(addr, Proto::Udp, "set SO_REUSEPORT on", source))?;
    socket
        .bind(&addr.into())
        .map_err(|source| bind_error(addr, Proto::Udp, source))?;
    Ok(socket.into())
}

fn tcp_listener(addr: SocketAddr, freebind: bool) -> Result<std::net::TcpListener, BindError> {
    let socket = new_socket(addr, Proto::Tcp, freebind)?;
    // SO_REUSEADDR lets a restart bind despite TIME_WAIT connections; it does not let two
    // listeners share the port, so "in use" is still reported.
    socket
        .set_reuse_address(true)
        .map_err(|source| io_error(addr, Proto::Tcp, "set SO_REUSEADDR on", source))?;
    socket
        .bind(&addr.into())
        .map_err(|source| bind_error(addr, Proto::Tcp, source))?;
    socket
        .listen(TCP_BACKLOG)
        .map_err(|source| bind_error(addr, Proto::Tcp, source))?;
    Ok(socket.into())
}

fn bind_error(addr: SocketAddr, proto: Proto, source: io::Error) -> BindError {
    match source.kind() {
        io::ErrorKind::AddrInUse => BindError::InUse { addr, proto },
        io::ErrorKind::PermissionDenied if addr.port() < 1024 => BindError::Privileged { addr },
        io::ErrorKind::AddrNotAvailable => BindError::NotLocal { addr },
        _ => io_error(addr, proto, "bind", source),
    }
}

fn io_error(addr: SocketAddr, proto: Proto, action: &'static str, source: io::Error) -> BindError {
    BindError::Io {
        addr,
        proto,
        action,
        source,
    }
}

#[cfg(test)]
mod tests;
