//! DNS over TCP (RFC 1035 §4.2.2, RFC 7766): an accept loop that admits connections into a
//! bounded set of slots, and one task per connection that serves its queries in order.
//!
//! * Framing: each message is preceded by its length in two octets (RFC 1035 §4.2.2).
//! * Several queries per connection, including pipelined ones (RFC 7766 §6.2.1); they are
//!   answered one after the other, in the order received (allowed by RFC 7766 §6.2.1.1).
//!   No task per message, so one client cannot multiply its load.
//! * Cache hits take the UDP workers' fast path ([`super::fast::stream_reply_from_cache`]):
//!   no decode, no answerer. The replies to a burst of pipelined queries leave in one write
//!   once no further whole query is buffered; a query that needs the resolver first sends
//!   what is pending, so no reply waits behind a slow one.
//! * Admission (issue 11.3: idle and refused clients must not starve the rest):
//!   - the allow-list is checked before a slot is taken: a client outside it is closed at
//!     once;
//!   - at most `max_tcp_clients` connections over all listeners ([`Slots`]). When they are
//!     all open, a new connection takes the slot of the connection idle the longest
//!     (connections over their client's budget first), which is closed; only when every
//!     slot is busy answering does a new client wait (in the accept backlog);
//!   - a client (an IPv4 address, an IPv6 /64: [`client_prefix`]) may have
//!     `max_tcp_per_client` connections; more are still served (a NAT'd LAN, dnsperf or a
//!     proxy's pool opens many) but with the shortest idle timeout, and they are the first
//!     to give way. Networks in `tcp_trusted` (a dnsdist in front) have no budget.
//! * Timeouts (RFC 7766 §6.2.3): a connection waiting for its next message longer than the
//!   idle timeout is closed. The timeout shortens as slots fill, as Unbound does: past 50%
//!   in use 1/100 of `tcp_idle_timeout`, past 65% 1/500, past 80% none, never below
//!   [`MIN_IDLE_TIMEOUT`] (Unbound's `TCP_QUERY_TIMEOUT_MINIMUM`). A started message or
//!   a reply that does not move within `tcp_idle_timeout` closes the connection too (slow
//!   clients must not hold a slot).
//! * Shutdown: a connection waiting for its next message closes at once; one whose query is
//!   being answered finishes it (within the server's drain time) and then closes.
//! * Accept errors (EMFILE, ENFILE, ECONNABORTED, ...) back off briefly instead of ending
//!   the loop.
//!
//! TCP replies are never truncated ([`request`] sizes them up to 65535 bytes).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, trace};

use super::request::{self, Proto};
use super::{Shared, Tokens};

/// First pause after a failed accept, doubled up to [`MAX_ACCEPT_BACKOFF`].
pub(super) const MIN_ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// The shortest idle timeout: under load and for connections over their client's budget
/// (Unbound's `TCP_QUERY_TIMEOUT_MINIMUM`).
pub const MIN_IDLE_TIMEOUT: Duration = Duration::from_millis(200);

/// While every slot is busy answering, how often a waiting new connection looks again (a
/// slot freed or a connection gone idle also wakes it at once).
const ADMIT_RETRY: Duration = Duration::from_millis(20);

/// What bounds the TCP connections.
#[derive(Clone, Debug)]
pub(crate) struct TcpLimits {
    pub(crate) max_total: usize,
    pub(crate) max_per_client: usize,
    pub(crate) idle: Duration,
    pub(crate) ipv4_prefix: u8,
    pub(crate) ipv6_prefix: u8,
    pub(crate) trusted: Vec<ipnet::IpNet>,
}

/// The client a connection counts against: its address cut to the configured prefix
/// (IPv4-mapped addresses count as IPv4).
pub(crate) fn client_prefix(ip: IpAddr, ipv4_prefix: u8, ipv6_prefix: u8) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let mask = u32::MAX
                .checked_shl(32 - u32::from(ipv4_prefix.min(32)))
                .unwrap_or(0);
            IpAddr::V4((bits & mask).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let mask = u128::MAX
                .checked_shl(128 - u32::from(ipv6_prefix.min(128)))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & mask))
        }
    }
}

/// The idle timeout with `open` of `max` slots in use (RFC 7766 §6.2.3 lets a server close
/// idle connections sooner under load; the steps are Unbound's `setup_tcp_handler`).
pub(crate) fn idle_timeout(configured: Duration, open: usize, max: usize) -> Duration {
    let usage = open * 100 / max.max(1);
    let t = match usage {
        0..=50 => configured,
        51..=65 => configured / 100,
        66..=80 => configured / 500,
        _ => Duration::ZERO,
    };
    t.max(MIN_IDLE_TIMEOUT.min(configured))
}

/// The open TCP connections of every listener: admission, idle state and eviction. One
/// mutex, taken at accept, when a connection starts or stops waiting, and at close; never
/// per byte.
#[derive(Debug)]
pub(crate) struct Slots {
    limits: TcpLimits,
    registry: Mutex<Registry>,
    /// Wakes a new connection waiting for a slot.
    changed: Notify,
}

#[derive(Debug, Default)]
struct Registry {
    next_id: u64,
    conns: HashMap<u64, Conn>,
    per_client: HashMap<IpAddr, usize>,
}

#[derive(Debug)]
struct Conn {
    client: IpAddr,
    over_budget: bool,
    /// Since when it waits for its next message; `None` while a message is in hand.
    idle_since: Option<Instant>,
    /// Cancelled when the connection is closed to make room.
    evict: CancellationToken,
}

/// One admitted connection; dropping it frees the slot.
pub(crate) struct Slot {
    id: u64,
    over_budget: bool,
    /// Cancelled when the connection is closed to make room.
    pub(super) evict: CancellationToken,
    slots: Arc<Slots>,
}

impl Slots {
    pub(crate) fn new(limits: TcpLimits) -> Self {
        let limits = TcpLimits {
            max_total: limits.max_total.max(1),
            max_per_client: limits.max_per_client.max(1),
            ..limits
        };
        Self {
            limits,
            registry: Mutex::default(),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for a new connection from `ip`, closing the longest-idle connection (over
    /// budget ones first) when all are open; `None` when every slot is busy answering.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let limits = &self.limits;
        let client = client_prefix(ip, limits.ipv4_prefix, limits.ipv6_prefix);
        let trusted = limits
            .trusted
            .iter()
            .any(|n| n.contains(&ip.to_canonical()));
        let mut reg = self.lock();
        if reg.conns.len() >= limits.max_total {
            let (&victim, _) = reg
                .conns
                .iter()
                .filter_map(|(id, c)| c.idle_since.map(|t| (id, (!c.over_budget, t))))
                .min_by_key(|(_, key)| *key)?;
            if let Some(gone) = reg.remove(victim) {
                gone.evict.cancel();
                crate::metrics::metrics().tcp_evicted();
            }
        }
        let open = reg.per_client.entry(client).or_insert(0);
        let over_budget = !trusted && *open >= limits.max_per_client;
        *open += 1;
        reg.next_id += 1;
        let id = reg.next_id;
        let evict = CancellationToken::new();
        reg.conns.insert(
            id,
            Conn {
                client,
                over_budget,
                idle_since: None,
                evict: evict.clone(),
            },
        );
        Some(Slot {
            id,
            over_budget,
            evict,
            slots: self.clone(),
        })
    }

    /// Waits until [`Slots::admit`] may succeed (a slot freed or a connection idle).
    pub(super) async fn changed(&self) {
        let _ = timeout(ADMIT_RETRY, self.changed.notified()).await;
    }

    /// Open connections now.
    #[cfg(test)]
    pub(crate) fn open(&self) -> usize {
        self.lock().conns.len()
    }
}

impl Registry {
    fn remove(&mut self, id: u64) -> Option<Conn> {
        let conn = self.conns.remove(&id)?;
        if let Some(n) = self.per_client.get_mut(&conn.client) {
            *n -= 1;
            if *n == 0 {
                self.per_client.remove(&conn.client);
            }
        }
        Some(conn)
    }
}

impl Slot {
    /// The connection waits for its next message: the idle timeout to give it.
    pub(super) fn idle(&self) -> Duration {
        let slots = &self.slots;
        let limits = &slots.limits;
        let mut reg = slots.lock();
        if let Some(c) = reg.conns.get_mut(&self.id) {
            c.idle_since = Some(Instant::now());
        }
        let open = reg.conns.len();
        drop(reg);
        if open >= limits.max_total {
            // A new connection may be waiting for an idle one to give way.
            slots.changed.notify_waiters();
        }
        if self.over_budget {
            MIN_IDLE_TIMEOUT.min(limits.idle)
        } else {
            idle_timeout(limits.idle, open, limits.max_total)
        }
    }

    /// A whole message is in: the connection is busy until its reply is written.
    pub(super) fn busy(&self) {
        if let Some(c) = self.slots.lock().conns.get_mut(&self.id) {
            c.idle_since = None;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.lock().remove(self.id);
        self.slots.changed.notify_waiters();
    }
}

pub(super) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    tokens: Tokens,
    tasks: TaskTracker,
) {
    let token = tokens.stop.clone();
    let local = listener.local_addr().ok();
    let mut backoff = MIN_ACCEPT_BACKOFF;
    debug!(?local, "TCP listener started");

    while let Some((stream, peer)) = accept(&listener, &token, &mut backoff).await {
        // The allow-list first: a refused client never holds a slot. A trusted balancer's
        // client is judged once its PROXY header is read (in the connection's own task).
        if !shared.is_proxy(peer) && !shared.admits_stream(peer, Proto::Tcp) {
            continue;
        }
        let slot = loop {
            if let Some(slot) = shared.tcp_slots.admit(peer.ip()) {
                break Some(slot);
            }
            // Every slot is busy answering: this client waits (and the backlog behind it).
            tokio::select! {
                _ = token.cancelled() => break None,
                _ = shared.tcp_slots.changed() => {}
            }
        };
        let Some(slot) = slot else { break };
        if slot.over_budget {
            trace!(%peer, "TCP connection over its client's budget: shortest idle timeout");
        }
        // Replies are written whole; Nagle would only delay them.
        let _ = stream.set_nodelay(true);
        let (shared, tokens) = (shared.clone(), tokens.clone());
        tasks.spawn(connection(stream, peer, slot, shared, tokens));
    }
    debug!(?local, "TCP listener stopped");
}

/// The next connection of `listener`; `None` once `stop` is cancelled. Accept errors
/// (EMFILE, ENFILE, ECONNABORTED, ...) back off, doubling up to [`MAX_ACCEPT_BACKOFF`].
pub(super) async fn accept(
    listener: &TcpListener,
    stop: &CancellationToken,
    backoff: &mut Duration,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.cancelled() => return None,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok(accepted) => {
                *backoff = MIN_ACCEPT_BACKOFF;
                return Some(accepted);
            }
            Err(error) => {
                let local = listener.local_addr().ok();
                debug!(?local, %error, ?backoff, "accept failed; backing off");
                tokio::select! {
                    _ = stop.cancelled() => return None,
                    _ = tokio::time::sleep(*backoff) => {}
                }
                *backoff = (*backoff * 2).min(MAX_ACCEPT_BACKOFF);
            }
        }
    }
}

/// The answer path every stream transport shares (TCP, DoT, DoH): the checks and the
/// answerer ([`request::handle`]), then [`Shared::outgoing_vec`] (counters, query log);
/// with the query log on, a note follows the query (rule, cache, latency). `None`: send
/// nothing.
pub(super) async fn answer(
    shared: &Shared,
    message: &[u8],
    client: SocketAddr,
    proto: Proto,
) -> Option<Vec<u8>> {
    let answered = async {
        let mut reply =
            request::handle(message, client, proto, &shared.policy, &*shared.answerer).await?;
        shared
            .outgoing_vec(&mut reply, client, proto)
            .then_some(reply)
    };
    match shared.query_log {
        Some(_) => crate::metrics::note::scope(answered).await,
        None => answered.await,
    }
}

/// Logs why a connection of `proto` ended.
pub(super) fn log_close(proto: Proto, peer: SocketAddr, close: Close) {
    match close {
        Close::Peer(error) => trace!(%peer, %proto, %error, "connection closed by the client"),
        Close::Idle => trace!(%peer, %proto, "connection closed: idle"),
        Close::Stalled => debug!(%peer, %proto, "connection closed: message or reply stalled"),
        Close::Shutdown => trace!(%peer, %proto, "connection closed: shutting down"),
        Close::Evicted => trace!(%peer, %proto, "connection closed: idle, to make room"),
        Close::Refused => debug!(%peer, %proto, "connection refused"),
    }
}

/// Why a connection ended.
#[derive(Debug)]
pub(super) enum Close {
    /// The client closed it (EOF between messages) or reset it.
    Peer(std::io::Error),
    /// No new message within the idle timeout.
    Idle,
    /// A started message or a reply did not complete within the timeout.
    Stalled,
    /// The server is stopping.
    Shutdown,
    /// Closed while idle to make room for a new connection.
    Evicted,
    /// Refused at the start: a bad PROXY header, or the client it names is not allowed.
    Refused,
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    slot: Slot,
    shared: Arc<Shared>,
    tokens: Tokens,
) {
    trace!(%peer, "TCP connection opened");
    let _open = crate::metrics::metrics().connection_opened(Proto::Tcp);
    let close = tokio::select! {
        _ = tokens.abort.cancelled() => {
            trace!(%peer, "TCP connection closed: drain time over");
            return;
        }
        close = serve_proxied(stream, peer, &shared, &slot, &tokens.stop) => close,
    };
    log_close(Proto::Tcp, peer, close);
}

/// A connection from a trusted balancer starts with its PROXY v2 header, read within the
/// idle timeout; the client it names must pass the allow-list like any other.
async fn serve_proxied(
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
    slot: &Slot,
    stop: &CancellationToken,
) -> Close {
    let mut client = peer;
    if shared.is_proxy(peer) {
        let deadline = tokio::time::Instant::now() + shared.tcp_idle_timeout;
        let named = super::proxy::read_client(&mut stream, peer, Proto::Tcp, deadline).await;
        match named {
            Some(named) if shared.admits_stream(named, Proto::Tcp) => client = named,
            _ => return Close::Refused,
        }
    }
    serve_connection(stream, client, shared, slot, stop).await
}

async fn serve_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
    slot: &Slot,
    stop: &CancellationToken,
) -> Close {
    let limit = shared.tcp_idle_timeout;
    let (reader, mut writer) = stream.split();
    // Replies not yet written: the replies to pipelined queries leave together, in one
    // write, once no further whole query is waiting (or before a query that must wait for
    // the resolver, so no reply is held back by a slow one).
    let mut pending = Vec::new();
    let close = serve_messages(reader, &mut writer, &mut pending, peer, shared, slot, stop).await;
    // Replies already made still go out when the connection ends for another reason
    // (shutdown, eviction, a client that half-closed after its last query).
    if !matches!(close, Close::Stalled) {
        let _ = flush(&mut writer, &mut pending, limit).await;
    }
    close
}

async fn serve_messages(
    reader: impl AsyncReadExt + Unpin,
    writer: &mut (impl AsyncWriteExt + Unpin),
    pending: &mut Vec<u8>,
    peer: SocketAddr,
    shared: &Shared,
    slot: &Slot,
    stop: &CancellationToken,
) -> Close {
    let limit = shared.tcp_idle_timeout;
    // Buffered so pipelined queries cost one read, not two per message.
    let mut reader = BufReader::new(reader);
    let mut message = Vec::new();
    // Where the fast path writes a cache hit (replies longer than this take the slow path).
    let mut hit = vec![0u8; HIT_SLOT];
    loop {
        let mut prefix = [0u8; 2];
        if stop.is_cancelled() {
            return Close::Shutdown;
        }
        if slot.evict.is_cancelled() {
            return Close::Evicted;
        }
        // Pipelined messages already read need no wait (and never count as idle).
        let pipelined = reader.buffer().len() >= 2;
        // Idle from before the replies leave: a client holding its answer may open another
        // connection at once, and this one must already be free to give way to it.
        let idle = (!pipelined).then(|| slot.idle());
        // Pending replies wait only for a next query that is already wholly here.
        if !whole_message_buffered(reader.buffer()) {
            if let Err(close) = flush(writer, pending, limit).await {
                return close;
            }
        }
        let read = if let Some(idle) = idle {
            // An evicted connection answers nothing more, even a query already here.
            tokio::select! {
                biased;
                _ = stop.cancelled() => return Close::Shutdown,
                _ = slot.evict.cancelled() => return Close::Evicted,
                read = timeout(idle, reader.read_exact(&mut prefix)) => read,
            }
        } else {
            Ok(reader.read_exact(&mut prefix).await)
        };
        match read {
            Err(_) => return Close::Idle,
            Ok(Err(error)) => return Close::Peer(error),
            Ok(Ok(_)) => {}
        }
        let len = usize::from(u16::from_be_bytes(prefix));
        message.clear();
        message.resize(len, 0);
        // Still idle (so it may give way) until the whole message is in: a client trickling
        // a message must not hold a slot as if it were being answered.
        if pipelined && reader.buffer().len() < len {
            slot.idle();
        }
        let read = tokio::select! {
            _ = slot.evict.cancelled() => return Close::Evicted,
            read = timeout(limit, reader.read_exact(&mut message)) => read,
        };
        match read {
            Err(_) => return Close::Stalled,
            Ok(Err(error)) => return Close::Peer(error),
            Ok(Ok(_)) => {}
        }
        slot.busy();

        if let Some(len) = cache_hit(shared, &message, peer, Proto::Tcp, &mut hit) {
            push_framed(pending, &hit[..len]);
        } else {
            if let Err(close) = flush(writer, pending, limit).await {
                return close;
            }
            let Some(reply) = answer(shared, &message, peer, Proto::Tcp).await else {
                continue;
            };
            // request::handle never returns more than 65535 bytes for TCP.
            if u16::try_from(reply.len()).is_err() {
                debug!(%peer, len = reply.len(), "reply too long for TCP; dropped");
                continue;
            }
            push_framed(pending, &reply);
        }
        if pending.len() >= FLUSH_AT {
            if let Err(close) = flush(writer, pending, limit).await {
                return close;
            }
        }
    }
}

/// The largest cache hit the stream fast path writes; longer replies take the slow path.
pub(super) const HIT_SLOT: usize = 4096;

/// Pending replies are written once they reach this many bytes, even while more pipelined
/// queries wait.
pub(super) const FLUSH_AT: usize = 16 * 1024;

/// The reply to `message` from the message cache (the UDP workers' fast path), written into
/// `out`, for an allowed client of a stream transport; `None` takes the general path.
pub(super) fn cache_hit(
    shared: &Shared,
    message: &[u8],
    client: SocketAddr,
    proto: Proto,
    out: &mut [u8],
) -> Option<usize> {
    let cache = shared.hits.as_deref()?;
    if !shared.policy.acl().allows(client.ip()) {
        return None;
    }
    let ours = shared.policy.max_udp_payload();
    let len = super::fast::stream_reply_from_cache(
        cache,
        &*shared.answerer,
        message,
        client,
        ours,
        proto.encrypted(),
        out,
    )?;
    shared.outgoing_hit(&mut out[..len], client, proto)
}

/// `buffered` starts with a whole framed message.
fn whole_message_buffered(buffered: &[u8]) -> bool {
    match buffered {
        [hi, lo, rest @ ..] => rest.len() >= usize::from(u16::from_be_bytes([*hi, *lo])),
        _ => false,
    }
}

/// Appends `reply` with its two-octet length (RFC 1035 §4.2.2); `reply` fits in 65535 bytes.
pub(super) fn push_framed(pending: &mut Vec<u8>, reply: &[u8]) {
    let len = u16::try_from(reply.len()).unwrap_or(u16::MAX);
    pending.extend_from_slice(&len.to_be_bytes());
    pending.extend_from_slice(reply);
}

/// Writes the pending replies, within `limit`.
async fn flush(
    writer: &mut (impl AsyncWriteExt + Unpin),
    pending: &mut Vec<u8>,
    limit: Duration,
) -> Result<(), Close> {
    if pending.is_empty() {
        return Ok(());
    }
    let written = timeout(limit, writer.write_all(pending)).await;
    pending.clear();
    match written {
        Err(_) => Err(Close::Stalled),
        Ok(Err(error)) => Err(Close::Peer(error)),
        Ok(Ok(())) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn slots(max_total: usize, max_per_client: usize, trusted: &[&str]) -> Arc<Slots> {
        Arc::new(Slots::new(TcpLimits {
            max_total,
            max_per_client,
            idle: Duration::from_secs(10),
            ipv4_prefix: 32,
            ipv6_prefix: 64,
            trusted: trusted.iter().map(|n| n.parse().unwrap()).collect(),
        }))
    }

    #[test]
    fn clients_are_counted_by_address_and_ipv6_slash_64() {
        let p = |s| client_prefix(ip(s), 32, 64);
        assert_eq!(p("192.0.2.7"), ip("192.0.2.7"));
        assert_eq!(
            p("::ffff:192.0.2.7"),
            ip("192.0.2.7"),
            "mapped counts as IPv4"
        );
        assert_eq!(p("2001:db8:1:2:aaaa::1"), p("2001:db8:1:2:bbbb::9"));
        assert_ne!(p("2001:db8:1:2::1"), p("2001:db8:1:3::1"));
        assert_eq!(client_prefix(ip("192.0.2.7"), 24, 64), ip("192.0.2.0"));
        assert_eq!(client_prefix(ip("192.0.2.7"), 0, 0), ip("0.0.0.0"));
    }

    /// Unbound's steps: past 50% 1/100, past 65% 1/500, past 80% none; never below 200 ms.
    #[test]
    fn the_idle_timeout_shortens_as_slots_fill() {
        let ten = Duration::from_secs(10);
        assert_eq!(idle_timeout(ten, 50, 100), ten);
        assert_eq!(idle_timeout(ten, 51, 100), MIN_IDLE_TIMEOUT);
        assert_eq!(
            idle_timeout(Duration::from_secs(60), 60, 100),
            Duration::from_millis(600)
        );
        assert_eq!(idle_timeout(ten, 100, 100), MIN_IDLE_TIMEOUT);
        let short = Duration::from_millis(50);
        assert_eq!(
            idle_timeout(short, 99, 100),
            short,
            "never above the configured"
        );
    }

    #[test]
    fn a_client_over_its_budget_is_served_but_marked() {
        let s = slots(10, 2, &["192.0.2.128/25"]);
        let a: Vec<Slot> = (0..3).map(|_| s.admit(ip("192.0.2.1")).unwrap()).collect();
        assert_eq!(
            a.iter().map(|x| x.over_budget).collect::<Vec<_>>(),
            [false, false, true]
        );
        assert_eq!(
            a[2].idle(),
            MIN_IDLE_TIMEOUT,
            "over budget: the shortest timeout"
        );
        assert_eq!(a[0].idle(), Duration::from_secs(10));
        let proxy: Vec<Slot> = (0..5)
            .map(|_| s.admit(ip("192.0.2.200")).unwrap())
            .collect();
        assert!(proxy.iter().all(|x| !x.over_budget), "trusted: no budget");
        drop(a);
        assert!(
            !s.admit(ip("192.0.2.1")).unwrap().over_budget,
            "budget freed"
        );
    }

    #[test]
    fn when_full_the_longest_idle_gives_way_over_budget_first_and_busy_never() {
        let s = slots(3, 1, &[]);
        let a = s.admit(ip("192.0.2.1")).unwrap();
        let b = s.admit(ip("192.0.2.2")).unwrap();
        let over = s.admit(ip("192.0.2.2")).unwrap();
        assert!(over.over_budget);
        // Nobody idle: a new client must wait.
        assert!(s.admit(ip("192.0.2.3")).is_none());
        a.idle();
        over.idle();
        // `a` idled first, but the over-budget connection goes first.
        let c = s.admit(ip("192.0.2.3")).unwrap();
        assert!(over.evict.is_cancelled() && !a.evict.is_cancelled());
        assert_eq!(s.open(), 3);
        let d = s.admit(ip("192.0.2.4")).unwrap();
        assert!(a.evict.is_cancelled(), "then the longest idle");
        assert!(!b.evict.is_cancelled(), "busy connections are never closed");
        drop((a, over));
        assert_eq!(s.open(), 3, "evicted slots were freed once, at eviction");
        drop((b, c, d));
        assert_eq!(s.open(), 0);
    }
}
