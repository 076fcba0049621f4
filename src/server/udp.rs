//! One UDP worker: its own `SO_REUSEPORT` socket, a receive loop that never waits on
//! resolution, and one task per query that needs the resolver.
//!
//! The loop takes datagrams in batches with `recvmmsg(2)` (up to [`BATCH`] per system call)
//! and answers cache hits in place: for each datagram from an allowed client the message
//! cache writes a ready reply into this worker's own output buffer
//! ([`fast::reply_from_cache`](super::fast::reply_from_cache)), and all of a batch's replies
//! leave with one `sendmmsg(2)`. While its queue stays backed up the loop polls it rather
//! than wait on epoll ([`Endpoint`]).
//! Nothing on that path allocates, locks anything shared between workers but one cache
//! shard, or wakes another task.
//!
//! Everything else runs the synchronous checks ([`request::triage`]): malformed or refused
//! queries are answered at once with a non-blocking send (dropped if the socket buffer is
//! full, as under overload), and queries for the answerer get a task, whose reply leaves
//! through the worker's [`Outbox`] with the others that finished in the same turn. Tasks
//! are capped per worker; over the cap the query is dropped and the client retries (RFC 1035
//! §4.2.1: UDP is best effort; a recursive resolver under load drops rather than queues).
//! Replies are sized by [`request`] (512 bytes, or the EDNS payload of RFC 6891 §6.2.5, with
//! TC=1 beyond).
//!
//! Receive errors never end the loop: ICMP-induced `ECONNREFUSED`/`ECONNRESET` from an
//! earlier send are skipped, anything else backs off briefly.

use std::io;
use std::mem::{size_of, zeroed, MaybeUninit};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use tracing::{debug, trace};

use super::request::{self, plausible_client, Proto, Triage};
use super::{Shared, Tokens};

/// Datagrams taken per `recvmmsg` call, as many as the batched echo of the bench's limit
/// takes: cache hits 1.4% over 32 (median of 14 pairs, docs/performance.md); a batch of
/// hits is some 15 µs of work, so it adds little latency.
const BATCH: usize = 64;
/// Receive buffer per datagram. A query is rarely over 512 bytes; a longer one is cut
/// (MSG_TRUNC) and answered as malformed.
const SLOT: usize = 4096;
/// Full batches read in a row before the loop yields to other tasks (256 datagrams).
const DRAIN_BATCHES: usize = 4;
/// Queries awaiting the answerer per worker. Beyond this, datagrams that are not cache hits
/// are dropped. Kept small (Unbound's num-queries-per-thread is 512-1024): under a flood of
/// misses, 4096 per worker held about 220 MiB and slowed every resolution, where 256 holds
/// about 75 MiB and answers more (benches/overload.sh, docs/security.md).
const MAX_IN_FLIGHT: usize = 256;
/// Pause after an unexpected receive error, doubled up to [`MAX_ERROR_BACKOFF`].
const MIN_ERROR_BACKOFF: Duration = Duration::from_millis(5);
const MAX_ERROR_BACKOFF: Duration = Duration::from_millis(500);

/// One worker's buffers, allocated once.
struct Batch {
    /// `BATCH` receive slots of `SLOT` bytes.
    input: Vec<u8>,
    /// On the heap, as `input`, so that `headers` stay valid when the batch moves.
    addrs: Box<[libc::sockaddr_storage; BATCH]>,
    /// `BATCH` reply slots of `out_slot` bytes (our UDP payload limit).
    output: Vec<u8>,
    out_slot: usize,
    /// Replies ready to send: (slot, length); slot i goes to `addrs[i]`.
    ready: Vec<(usize, usize)>,
    /// `recvmmsg`'s headers, one per slot, pointing into `input` and `addrs`. Set up once:
    /// at a low rate each read takes one datagram and the next finds the queue empty, and
    /// building and zeroing them (5 KiB) for every read, with the same for every send, was
    /// 10% of a miss's instructions as callgrind counts them (`benches/instructions.sh`),
    /// though not a measurable share of its CPU time (docs/performance.md, round 8).
    /// The last read's lengths, flags and address lengths stay in them until the next.
    iov: Box<[libc::iovec; BATCH]>,
    headers: Box<[libc::mmsghdr; BATCH]>,
    /// Datagrams the last read took: the headers whose address length the kernel overwrote.
    received: usize,
}

// SAFETY: the raw pointers in `iov` and `headers` point only into this batch's own heap
// buffers (`input`, `addrs`, `iov`), which move with it and are freed with it.
unsafe impl Send for Batch {}

impl Batch {
    fn new(out_slot: usize) -> Self {
        let mut batch = Self {
            input: vec![0; BATCH * SLOT],
            // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
            addrs: Box::new(unsafe { zeroed() }),
            output: vec![0; BATCH * out_slot],
            out_slot,
            ready: Vec::with_capacity(BATCH),
            // SAFETY: zeroed iovec/mmsghdr are valid (null pointers, zero lengths); the
            // loop below points every one at its slot.
            iov: Box::new(unsafe { zeroed() }),
            // SAFETY: as above.
            headers: Box::new(unsafe { zeroed() }),
            received: 0,
        };
        for i in 0..BATCH {
            batch.iov[i].iov_base = batch.input[i * SLOT..].as_mut_ptr().cast();
            batch.iov[i].iov_len = SLOT;
            let h = &mut batch.headers[i].msg_hdr;
            h.msg_name = (&mut batch.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut batch.iov[i];
            h.msg_iovlen = 1;
        }
        batch
    }

    /// Receives up to `BATCH` datagrams without blocking; `WouldBlock` when none is queued.
    fn receive(&mut self, fd: RawFd) -> io::Result<usize> {
        // The kernel wrote the last read's address lengths over the room there was: restore it.
        for h in &mut self.headers[..self.received] {
            h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        }
        self.received = 0;
        // SAFETY: `headers` holds BATCH headers pointing at this batch's live buffers.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        self.received = n as usize;
        Ok(self.received)
    }

    /// The length of datagram `i` of the last read in its slot (cut to `SLOT` bytes).
    fn len(&self, i: usize) -> usize {
        (self.headers[i].msg_len as usize).min(SLOT)
    }

    /// Whether datagram `i` of the last read was longer than its slot (`MSG_TRUNC`).
    fn truncated(&self, i: usize) -> bool {
        self.headers[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0
    }

    /// The length of datagram `i`'s source address, as the kernel wrote it.
    fn addr_len(&self, i: usize) -> libc::socklen_t {
        self.headers[i].msg_hdr.msg_namelen
    }

    /// Sends the ready replies with as few `sendmmsg` calls as the kernel allows. Replies
    /// that find the socket buffer full are dropped (the client retries), as `send_now`.
    fn send_ready(&mut self, fd: RawFd) {
        let count = self.ready.len();
        let mut sent = 0;
        while sent < count {
            let datagrams = self.ready[sent..].iter().map(|&(slot, len)| {
                let at = slot * self.out_slot;
                let to: *const libc::sockaddr_storage = &self.addrs[slot];
                (&self.output[at..at + len], to.cast(), self.addr_len(slot))
            });
            // SAFETY: each address points into `self.addrs`, live for the call, and its
            // length is what the kernel wrote there on receipt.
            match unsafe { send_datagrams(fd, datagrams) } {
                Ok(n) => sent += n.max(1),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    debug!(%error, dropped = count - sent, "UDP send failed");
                    // Skip the datagram that failed (a bad address would fail forever).
                    sent += 1;
                }
            }
        }
        self.ready.clear();
    }
}

/// The socket address the kernel wrote for datagram `i`.
fn source(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a: &libc::sockaddr_in = unsafe { &*(storage as *const _ as *const _) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a: &libc::sockaddr_in6 = unsafe { &*(storage as *const _ as *const _) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// A worker's socket and its place in tokio's reactor.
///
/// The socket is in the reactor's epoll set only while the loop waits for datagrams. Linux
/// wakes every waiter on a socket's queue for each datagram the socket sends (`sock_wfree`
/// calls `ep_poll_callback`: two locks taken with interrupts off), and an epoll entry is
/// such a waiter even when it asks for readability alone. Under a flood of cache hits that
/// cost 7% of the worker's time. So when a read fills a whole batch, which means the queue
/// is backing up, the loop leaves the epoll set and polls the queue between the other
/// tasks' turns, as NAPI does for a busy network card; a read that finds the queue empty
/// joins it again. A worker that is not overloaded stays in the set.
pub(super) struct Endpoint {
    socket: Arc<std::net::UdpSocket>,
    /// Present while in the epoll set; it holds the socket open.
    registration: Option<AsyncFd<Arc<std::net::UdpSocket>>>,
}

impl Endpoint {
    /// Takes a non-blocking socket and puts it in the reactor's epoll set (so must be
    /// called inside the runtime).
    pub(super) fn new(socket: std::net::UdpSocket) -> io::Result<Self> {
        let mut endpoint = Self {
            registration: None,
            socket: Arc::new(socket),
        };
        endpoint.join()?;
        Ok(endpoint)
    }

    fn join(&mut self) -> io::Result<()> {
        if self.registration.is_none() {
            // SAFETY: the registration holds an `Arc` of the socket, so the descriptor stays
            // open, and names the same socket, for as long as the registration lives.
            let registration = unsafe {
                AsyncFd::register_with_interest(self.socket.clone(), Interest::READABLE)?
            };
            self.registration = Some(registration);
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.registration = None;
    }

    fn polling(&self) -> bool {
        self.registration.is_none()
    }

    /// Waits until a datagram may be queued: for epoll's word when in the set, else not at
    /// all (the caller polls).
    async fn readable(&self) -> io::Result<()> {
        if let Some(registration) = &self.registration {
            // Cleared before the reads, so a datagram that arrives during them raises
            // readiness again rather than being missed.
            registration.readable().await?.clear_ready();
        }
        Ok(())
    }

    /// Follows a read: `Some(n)` datagrams read, `None` for an empty queue. A full batch
    /// leaves the epoll set; an empty queue joins it again.
    fn after_read(&mut self, read: Option<usize>) -> io::Result<()> {
        match read {
            Some(BATCH) => {
                self.leave();
                Ok(())
            }
            Some(_) => Ok(()),
            None => self.join(),
        }
    }
}

pub(super) async fn serve(
    mut endpoint: Endpoint,
    worker: usize,
    shared: Arc<Shared>,
    tokens: Tokens,
    tasks: TaskTracker,
) {
    let token = tokens.stop.clone();
    let socket = endpoint.socket.clone();
    let fd = socket.as_raw_fd();
    let local = socket.local_addr().ok();
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let outbox = Arc::new(Outbox::default());
    let mut batch = Batch::new(usize::from(shared.policy.max_udp_payload()));
    let mut backoff = MIN_ERROR_BACKOFF;
    debug!(?local, worker, "UDP worker started");

    'serve: loop {
        tokio::select! {
            biased;
            _ = token.cancelled() => break,
            ready = endpoint.readable() => if let Err(error) = ready {
                debug!(?local, %error, "UDP socket not readable");
                tokio::time::sleep(backoff).await;
                continue;
            },
        }
        // Drain the queue batch by batch.
        let mut full_batches = 0;
        loop {
            let n = match batch.receive(fd) {
                Ok(n) => {
                    backoff = MIN_ERROR_BACKOFF;
                    n
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(error) = endpoint.after_read(None) {
                        // Without the epoll set, poll slowly until joining works.
                        debug!(?local, %error, ?backoff, "UDP socket not registered; polling");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_ERROR_BACKOFF);
                    }
                    break;
                }
                Err(error) if is_transient(&error) => {
                    trace!(?local, %error, "UDP receive error (ignored)");
                    continue;
                }
                Err(error) => {
                    debug!(?local, %error, ?backoff, "UDP receive error; backing off");
                    tokio::select! {
                        _ = token.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_ERROR_BACKOFF);
                    break;
                }
            };
            shared.stats.count_udp(worker, n as u64);
            for i in 0..n {
                handle_one(
                    &mut batch, i, &socket, &shared, &tokens, &tasks, &in_flight, &outbox, local,
                );
            }
            if !batch.ready.is_empty() {
                batch.send_ready(fd);
            }
            // Cannot fail: only joining the set can.
            let _ = endpoint.after_read(Some(n));
            if n == BATCH {
                // Full batches: the queue is backing up. Keep draining for a while before
                // letting other tasks (resolutions, slow-path replies, TCP) run: each yield
                // puts this loop behind every ready task, and under a flood of misses a loop
                // that yields after each batch lets the kernel drop cache hits (and
                // everything else) off a full socket queue. Misses past the in-flight cap
                // cost a parse each here.
                full_batches += 1;
                if full_batches % DRAIN_BATCHES == 0 {
                    tokio::task::yield_now().await;
                    // A flood never lets the queue run dry: stop here, not after it.
                    if token.is_cancelled() {
                        break 'serve;
                    }
                }
                continue;
            }
            if !endpoint.polling() {
                break;
            }
            // Polling, and the queue ran short: let the other tasks run, then look again
            // (an empty queue rejoins the epoll set above).
            tokio::task::yield_now().await;
            if token.is_cancelled() {
                break 'serve;
            }
        }
    }
    debug!(?local, worker, "UDP worker stopped");
}

/// One datagram: the fast path if it is a cache hit, else triage and perhaps a task.
#[allow(clippy::too_many_arguments)]
fn handle_one(
    batch: &mut Batch,
    i: usize,
    socket: &Arc<std::net::UdpSocket>,
    shared: &Arc<Shared>,
    tokens: &Tokens,
    tasks: &TaskTracker,
    in_flight: &Arc<Semaphore>,
    outbox: &Arc<Outbox>,
    local: Option<SocketAddr>,
) {
    let Some(peer) = source(&batch.addrs[i]) else {
        return;
    };
    let mut bytes = &batch.input[i * SLOT..i * SLOT + batch.len(i)];
    // A trusted balancer names the client in a PROXY v2 header before the message; the
    // reply still goes to the balancer (`peer`), without a header.
    let mut client = peer;
    if shared.is_proxy(peer) {
        match super::proxy::strip_datagram(bytes, peer) {
            Ok((named, len)) => {
                client = named;
                bytes = &bytes[len..];
            }
            Err(error) => {
                debug!(%peer, %error, "datagram from a PROXY-protocol peer without a valid header; dropped");
                return;
            }
        }
    }
    if let Some(cache) = shared.hits.as_deref().filter(|_| {
        !batch.truncated(i) && plausible_client(client) && shared.policy.acl().allows(client.ip())
    }) {
        let out = &mut batch.output[i * batch.out_slot..(i + 1) * batch.out_slot];
        if let Some(len) =
            super::fast::reply_from_cache(cache, &*shared.answerer, bytes, client, out)
        {
            if let Some(len) = shared.outgoing_hit(&mut out[..len], client, Proto::Udp) {
                batch.ready.push((i, len));
            }
            return;
        }
    }
    // Overload: no room for another resolution, so do not spend a full decode on a datagram
    // that would be dropped anyway; the time goes to draining the socket, where the hits are.
    if in_flight.available_permits() == 0 {
        trace!(?local, %client, "too many queries in flight; dropping before triage");
        return;
    }
    match request::triage(bytes, client, Proto::Udp, &shared.policy) {
        Triage::Drop => {}
        Triage::Reply(mut reply) => {
            if shared.outgoing_vec(&mut reply, client, Proto::Udp) {
                send_now(socket, &reply, peer)
            }
        }
        Triage::Ask(req) => {
            let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                debug!(?local, %client, "too many queries in flight; dropping");
                return;
            };
            let (socket, shared, token) = (socket.clone(), shared.clone(), tokens.abort.clone());
            let outbox = outbox.clone();
            let shared_logs = shared.query_log.is_some();
            let raw: Option<Box<[u8]>> = shared.hits.is_some().then(|| bytes.into());
            let task = async move {
                let answered = tokio::select! {
                    _ = token.cancelled() => return,
                    answered = request::answer_unsettled(&*shared.answerer, &req, client) => answered,
                };
                drop(permit);
                let stored = raw
                    .filter(|_| request::template_may_answer(&req, &answered))
                    .and_then(|raw| reply_from_stored(&shared, &raw, client));
                // The template carries its own AD bit; an encoded reply looks it up.
                if let Some(mut reply) = stored.or_else(|| {
                    let mut answered = answered;
                    request::settle_ad(&*shared.answerer, &req, &mut answered);
                    request::respond_answered(&req, &answered, &shared.policy)
                }) {
                    if !shared.outgoing_vec(&mut reply, client, Proto::Udp) {
                        return;
                    }
                    outbox.send(&socket, reply, peer).await;
                }
            };
            // With the query log on, a note follows the query (rule, cache, latency).
            if shared_logs {
                tasks.spawn(crate::metrics::note::scope(task));
            } else {
                tasks.spawn(task);
            }
        }
    }
}

/// The reply to a resolved `query` from the template its resolution stored in the message
/// cache ([`super::fast::reply_from_stored`]): one copy instead of an encode.
fn reply_from_stored(shared: &Shared, query: &[u8], client: SocketAddr) -> Option<Vec<u8>> {
    let cache = shared.hits.as_deref()?;
    let mut out = vec![0; usize::from(shared.policy.max_udp_payload())];
    let len = super::fast::reply_from_stored(cache, &*shared.answerer, query, client, &mut out)?;
    out.truncate(len);
    Some(out)
}

/// The replies of resolved queries on one worker's socket, sent together.
///
/// The first reply into an empty outbox makes its task the flusher: it yields once, which
/// tokio defers until its next poll of the I/O driver, so every task woken by the same batch
/// of upstream replies adds its client reply first, and then sends them all with
/// `sendmmsg(2)`. On loopback each datagram sent to a sleeping client costs a wake-up of it
/// (the profile of the miss load had 10% of the worker's time there); a batch pays one.
#[derive(Default)]
struct Outbox {
    queue: std::sync::Mutex<Vec<(Vec<u8>, SocketAddr)>>,
}

impl Outbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Vec<u8>, SocketAddr)>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `reply` for `to`; sends the queue if this reply started it.
    async fn send(&self, socket: &std::net::UdpSocket, reply: Vec<u8>, to: SocketAddr) {
        let first = {
            let mut queue = self.lock();
            queue.push((reply, to));
            queue.len() == 1
        };
        if !first {
            return;
        }
        tokio::task::yield_now().await;
        // Whatever is queued now is this flusher's; the next reply starts a new queue.
        let queued = std::mem::take(&mut *self.lock());
        send_batch(socket, &queued).await;
    }
}

/// Sends `replies` with as few `sendmmsg` calls as the kernel allows, waiting for room in
/// the socket buffer rather than dropping (these replies cost a resolution each).
async fn send_batch(socket: &std::net::UdpSocket, replies: &[(Vec<u8>, SocketAddr)]) {
    let addrs: Vec<socket2::SockAddr> = replies.iter().map(|(_, to)| (*to).into()).collect();
    let mut sent = 0;
    while sent < replies.len() {
        let datagrams = replies[sent..]
            .iter()
            .zip(&addrs[sent..])
            .map(|((reply, _), to)| (&reply[..], to.as_ptr().cast(), to.len()));
        // SAFETY: each address is a `SockAddr` of `addrs`, live for the call.
        match unsafe { send_datagrams(socket.as_raw_fd(), datagrams) } {
            Ok(n) => sent += n.max(1),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                if let Err(error) = writable(socket).await {
                    debug!(%error, dropped = replies.len() - sent, "UDP send buffer full");
                    return;
                }
            }
            Err(error) => {
                // Skip the datagram that failed (a bad address would fail forever).
                debug!(to = %replies[sent].1, %error, "UDP send failed");
                sent += 1;
            }
        }
    }
}

/// One `sendmmsg` of up to [`BATCH`] datagrams, each a payload and the socket address it
/// goes to (pointer and length); returns how many were sent.
///
/// # Safety
///
/// Each address must point at a socket address of at least its length, live for the call.
unsafe fn send_datagrams<'a>(
    fd: RawFd,
    datagrams: impl Iterator<Item = (&'a [u8], *const libc::sockaddr, libc::socklen_t)>,
) -> io::Result<usize> {
    // Only the headers used are written: zeroing all BATCH of them (5 KiB) cost more than
    // the usual send of one or a few replies.
    let mut iov = [MaybeUninit::<libc::iovec>::uninit(); BATCH];
    let mut hdrs = [MaybeUninit::<libc::mmsghdr>::uninit(); BATCH];
    let mut count = 0;
    for (k, (payload, to, to_len)) in datagrams.take(BATCH).enumerate() {
        let v = iov[k].write(libc::iovec {
            iov_base: payload.as_ptr() as *mut libc::c_void,
            iov_len: payload.len(),
        });
        // SAFETY: a zeroed mmsghdr is valid (null pointers, zero lengths); the fields set
        // point at the payload, borrowed for the call, and at the address the caller
        // vouches for.
        let mut h: libc::mmsghdr = unsafe { zeroed() };
        h.msg_hdr.msg_name = to as *mut libc::c_void;
        h.msg_hdr.msg_namelen = to_len;
        h.msg_hdr.msg_iov = v;
        h.msg_hdr.msg_iovlen = 1;
        hdrs[k].write(h);
        count = k + 1;
    }
    // SAFETY: the first `count` headers are initialised as above.
    let n = unsafe {
        libc::sendmmsg(
            fd,
            hdrs.as_mut_ptr().cast(),
            count as libc::c_uint,
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Waits for room in the socket's send buffer. A copy of the descriptor is registered for
/// writability for this wait alone: the worker's own registration asks for reading only,
/// and is dropped while the worker polls ([`Endpoint`]).
async fn writable(socket: &std::net::UdpSocket) -> io::Result<()> {
    // SAFETY: the registration owns the copy, so the descriptor stays open, and names the
    // same socket, for as long as the registration lives.
    let waiter =
        unsafe { AsyncFd::register_with_interest(socket.try_clone()?, Interest::WRITABLE)? };
    waiter.writable().await?.retain_ready();
    Ok(())
}

/// Sends without waiting: the receive loop must not stall on a full socket buffer.
fn send_now(socket: &std::net::UdpSocket, reply: &[u8], client: SocketAddr) {
    if let Err(error) = socket.send_to(reply, client) {
        debug!(%client, %error, "UDP send failed");
    }
}

/// Errors that describe an earlier datagram (ICMP unreachable, reset) or a signal, not the
/// socket: receive again at once.
fn is_transient(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::UdpSocket;

    /// A bound non-blocking socket in an endpoint, and a client socket aimed at it.
    fn endpoint_and_client() -> (Endpoint, std::net::UdpSocket) {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        server.set_nonblocking(true).unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client.connect(server.local_addr().unwrap()).unwrap();
        (Endpoint::new(server).unwrap(), client)
    }

    /// What a read leaves in the batch's headers, read after read: each datagram's length
    /// (an oversized one cut to its slot and marked truncated) and its source.
    #[tokio::test]
    async fn reads_report_lengths_truncation_and_sources_read_after_read() {
        let (endpoint, client) = endpoint_and_client();
        let fd = endpoint.socket.as_raw_fd();
        let from = client.local_addr().unwrap();
        let mut batch = Batch::new(512);
        for round in 0..3 {
            client.send(&[7; SLOT + 100]).unwrap();
            client.send(&[round; 20]).unwrap();
            // Both are queued on loopback by the time `send` returns.
            assert_eq!(batch.receive(fd).unwrap(), 2, "round {round}");
            assert!(batch.truncated(0));
            assert_eq!(batch.len(0), SLOT);
            assert!(!batch.truncated(1));
            assert_eq!(batch.len(1), 20);
            assert_eq!(&batch.input[SLOT..SLOT + 20], &[round; 20]);
            for i in 0..2 {
                assert_eq!(
                    batch.addr_len(i) as usize,
                    size_of::<libc::sockaddr_in>(),
                    "round {round}"
                );
                assert_eq!(source(&batch.addrs[i]), Some(from), "round {round}");
            }
        }
    }

    /// A read that fills a batch takes the socket out of the epoll set; reads keep polling
    /// while datagrams are left, and the read that finds the queue empty puts it back.
    #[tokio::test]
    async fn a_backed_up_queue_is_polled_until_it_runs_dry() {
        let (mut endpoint, client) = endpoint_and_client();
        let fd = endpoint.socket.as_raw_fd();
        let mut batch = Batch::new(512);
        for n in 0..BATCH + 3 {
            client.send(&[n as u8; 20]).unwrap();
        }
        tokio::time::timeout(Duration::from_secs(2), endpoint.readable())
            .await
            .expect("readable in time")
            .unwrap();
        assert!(!endpoint.polling(), "in the set while waiting");

        assert_eq!(batch.receive(fd).unwrap(), BATCH);
        endpoint.after_read(Some(BATCH)).unwrap();
        assert!(endpoint.polling(), "a full batch leaves the set");

        assert_eq!(batch.receive(fd).unwrap(), 3);
        endpoint.after_read(Some(3)).unwrap();
        assert!(
            endpoint.polling(),
            "datagrams may still be queued: keep polling"
        );

        let empty = batch.receive(fd).unwrap_err();
        assert_eq!(empty.kind(), io::ErrorKind::WouldBlock);
        endpoint.after_read(None).unwrap();
        assert!(!endpoint.polling(), "an empty queue joins the set again");
    }

    /// A datagram that arrives while the socket is out of the epoll set still wakes the
    /// loop once it joins again: joining reports what is already queued.
    #[tokio::test]
    async fn a_datagram_queued_while_polling_wakes_the_rejoined_loop() {
        let (mut endpoint, client) = endpoint_and_client();
        endpoint.leave();
        client.send(b"while polling").unwrap();
        // Let the datagram reach the queue before joining.
        tokio::time::sleep(Duration::from_millis(20)).await;
        endpoint.after_read(None).unwrap();
        assert!(!endpoint.polling());
        tokio::time::timeout(Duration::from_secs(2), endpoint.readable())
            .await
            .expect("readable without another datagram")
            .unwrap();
        let mut batch = Batch::new(512);
        assert_eq!(batch.receive(endpoint.socket.as_raw_fd()).unwrap(), 1);
    }

    /// Replies queued by many tasks at once all leave, whole, each to its own client, and
    /// the outbox is empty once every task has returned.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queued_replies_all_reach_their_clients() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        server.set_nonblocking(true).unwrap();
        let server = Arc::new(server);
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        }
        let outbox = Arc::new(Outbox::default());
        let mut tasks = Vec::new();
        for n in 0..100u8 {
            let to = clients[usize::from(n) % 3].local_addr().unwrap();
            let (server, outbox) = (server.clone(), outbox.clone());
            tasks.push(tokio::spawn(async move {
                outbox.send(&server, vec![n; 1 + usize::from(n)], to).await
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert!(outbox.lock().is_empty(), "nothing left behind");
        let mut seen = Vec::new();
        for (k, c) in clients.iter().enumerate() {
            let mut buf = [0u8; 512];
            while let Ok(Ok(len)) =
                tokio::time::timeout(Duration::from_millis(200), c.recv(&mut buf)).await
            {
                let n = buf[0];
                assert_eq!(usize::from(n) % 3, k, "reply {n} went to its own client");
                assert_eq!(&buf[..len], &vec![n; 1 + usize::from(n)][..]);
                seen.push(n);
            }
        }
        seen.sort();
        assert_eq!(seen, (0..100).collect::<Vec<u8>>());
    }
}
