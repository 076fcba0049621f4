//! UDP exchange: a socket on a random source port (RFC 5452 §9.2), connected to the server so
//! the kernel drops datagrams from elsewhere; we check the source again anyway.
//!
//! A socket whose exchange ended with the matching reply may be kept for the next query to
//! the same server ([`SocketPool`]): at most [`MAX_USES`] queries within [`MAX_AGE`] of its
//! opening, so a source port stays unpredictable and open only briefly (RFC 5452 asks for
//! random ports, not a new one per query) while a cache miss saves the socket set-up and
//! teardown (socket, bind, connect, epoll registration, close). A socket that saw a timeout,
//! an error or a stray datagram, during its exchange or while idle, is never reused: a late
//! reply, or forged ones queued ahead of time, must not meet a later query.

use hashbrown::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use hickory_proto::op::{Message, Query};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::{matches, matches_ignoring_case, TransportError};

/// Largest reply datagram we read. We advertise 1232 bytes (EDNS) or 512 (without), so a
/// reply above 4096 breaks the protocol anyway: the kernel cuts it, it does not decode, and
/// the server is skipped. Replies are read into one buffer of this size per thread
/// ([`RECV`], two datagrams' worth), not one per upstream query in flight.
const RECV_BUF: usize = 4096;

/// Tries random ports in the unprivileged range before letting the kernel pick one.
const PORT_TRIES: usize = 8;

/// Queries one socket (one source port) answers before it is closed. Under load they take
/// milliseconds; at 8 the socket's life cycle was 3.8% of a saturated miss load's CPU, and 32
/// cost 3% less CPU per miss (docs/performance.md, round 11).
pub const MAX_USES: u32 = 32;
/// How long after its opening a socket may begin an exchange: what bounds how long a port
/// stays open to a port scan (the SAD DNS side channel), whatever the load. A probe that
/// finds the port retires it anyway (a stray datagram).
pub const MAX_AGE: Duration = Duration::from_secs(5);
/// Idle sockets kept per server, and in all: a bound on descriptors held. Under a miss load
/// one authority can have a thousand queries in flight, and their sockets come back in bursts
/// (one wake-up of the I/O driver hands back hundreds): with 32 per server, the measured
/// reuse was 3.2 queries per socket of the 8 allowed.
const IDLE_PER_SERVER: usize = 256;
const IDLE_TOTAL: usize = 1024;

/// A connected upstream socket, in the reactor's epoll set for reading only. Linux wakes a
/// socket's epoll entry for each datagram it sends; registered for writing as well (as
/// tokio's own `UdpSocket` is), that wake-up also queues an event that the next
/// `epoll_wait` returns and tokio dispatches to no one. A UDP send does not wait for room:
/// one query at a time cannot fill a socket's send buffer.
type Socket = AsyncFd<std::net::UdpSocket>;

/// One connected socket and what it has served.
#[derive(Debug)]
struct Pooled {
    sock: Socket,
    uses: u32,
    opened: tokio::time::Instant,
}

impl Pooled {
    /// Whether it may still begin an exchange at `now` ([`MAX_AGE`]).
    fn young(&self, now: tokio::time::Instant) -> bool {
        now.duration_since(self.opened) <= MAX_AGE
    }
}

/// Idle connected sockets by (local address, server).
#[derive(Debug, Default)]
pub struct SocketPool {
    idle: Mutex<Idle>,
}

#[derive(Debug, Default)]
struct Idle {
    /// Only servers with at least one idle socket have an entry.
    by_server: HashMap<(IpAddr, SocketAddr), Vec<Pooled>>,
    /// Sockets in `by_server`, so a return costs no walk over every server.
    total: usize,
}

impl SocketPool {
    fn lock(&self) -> std::sync::MutexGuard<'_, Idle> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An idle socket to `server`, fresh enough at `now` and with uses left.
    fn take(&self, local: IpAddr, server: SocketAddr, now: tokio::time::Instant) -> Option<Pooled> {
        let mut idle = self.lock();
        let Idle { by_server, total } = &mut *idle;
        let list = by_server.get_mut(&(local, server))?;
        let mut found = None;
        while let Some(p) = list.pop() {
            *total -= 1;
            // Anything that arrived while it sat idle (a late duplicate, or a forger who
            // learnt the port filling its queue ahead of the next query) retires it. The
            // exchange that pooled it read its queue dry ([`receive_two`]), so only such a
            // datagram can have made it readable: the read below is a system call only then.
            let mut probe = [0u8; 1];
            let quiet = matches!(
                p.sock.try_io(Interest::READABLE, |s| s.recv(&mut probe)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock
            );
            if quiet && p.young(now) {
                found = Some(p);
                break;
            }
        }
        if list.is_empty() {
            by_server.remove(&(local, server));
        }
        found
    }

    /// Keeps `p` for another query unless it is spent, too old at `now` or the pool is full.
    fn give_back(&self, local: IpAddr, server: SocketAddr, p: Pooled, now: tokio::time::Instant) {
        if p.uses >= MAX_USES || !p.young(now) {
            return;
        }
        let mut idle = self.lock();
        let Idle { by_server, total } = &mut *idle;
        if *total >= IDLE_TOTAL {
            // Make room by dropping what has gone stale; if nothing has, close this one.
            by_server.retain(|_, l| {
                l.retain(|q| q.young(now));
                !l.is_empty()
            });
            *total = by_server.values().map(Vec::len).sum();
            if *total >= IDLE_TOTAL {
                return;
            }
        }
        let list = by_server.entry((local, server)).or_default();
        if list.len() < IDLE_PER_SERVER {
            list.push(p);
            *total += 1;
        }
    }

    /// Closes every idle socket (when descriptors run out, they matter more elsewhere).
    fn clear(&self) {
        *self.lock() = Idle::default();
    }

    /// Idle sockets held now (tests, stats).
    pub fn idle(&self) -> usize {
        self.lock().total
    }
}

/// The question's name as a 0x20 query sent it and as it was asked, both in wire form (the
/// same length: they differ in case alone).
#[derive(Clone, Copy, Debug)]
pub(super) struct Case0x20<'a> {
    pub(super) sent: &'a [u8],
    pub(super) asked: &'a [u8],
}

/// Sends `wire` and waits up to `timeout` for the reply that matches `id` and `query`, on a
/// pooled socket to `server` or a new one. With `case` (0x20 in use) the question's name
/// must come back with the case we sent, and the reply reads as if `query` had been sent
/// as asked; without, it is compared without case (RFC 4343).
#[allow(clippy::too_many_arguments)]
pub(super) async fn exchange(
    pool: &SocketPool,
    local: IpAddr,
    server: SocketAddr,
    id: u16,
    query: &Query,
    wire: &[u8],
    timeout: Duration,
    case: Option<Case0x20<'_>>,
) -> Result<Message, TransportError> {
    let now = tokio::time::Instant::now();
    let deadline = now + timeout;
    // Send with the queries of every other task that reaches this point in the same turn of
    // the scheduler: tokio runs the yielded task again after its next poll of the I/O driver,
    // so the sends leave back to back and a sleeping authority is woken once for them rather
    // than once each (on loopback the sender pays for the wake-up). Yielding before the pool
    // is asked also means its idle sockets' readiness is as fresh as that poll.
    tokio::task::yield_now().await;
    let mut pooled = match pool.take(local, server, now) {
        Some(p) => p,
        None => {
            let sock = match bind_random(local) {
                Err(e) if is_out_of_descriptors(&e) && pool.idle() > 0 => {
                    pool.clear();
                    bind_random(local)?
                }
                r => r?,
            };
            sock.connect(server)?;
            let sock = register(sock)?;
            Pooled {
                sock,
                uses: 0,
                opened: now,
            }
        }
    };
    pooled.uses += 1;
    let (result, clean) = receive(&pooled.sock, server, id, query, wire, deadline, case).await;
    if clean && result.is_ok() {
        pool.give_back(local, server, pooled, now);
    }
    result
}

/// One exchange on `sock`; the flag says whether the socket saw nothing but the matching
/// reply (so it may serve another query).
async fn receive(
    sock: &Socket,
    server: SocketAddr,
    id: u16,
    query: &Query,
    wire: &[u8],
    deadline: tokio::time::Instant,
    case: Option<Case0x20<'_>>,
) -> (Result<Message, TransportError>, bool) {
    let mut clean = true;
    let result = async {
        sock.get_ref().send(wire)?;
        loop {
            let mut ready = match tokio::time::timeout_at(deadline, sock.readable()).await {
                Ok(ready) => ready?,
                Err(_) => return Err(TransportError::Timeout),
            };
            // Read and judged in one go, without an await: one buffer per thread serves every
            // exchange (thousands in flight would each hold their own across the wait).
            let done = RECV.with_borrow_mut(|buf| -> io::Result<_> {
                let got = match receive_two(ready.get_inner(), buf) {
                    Ok(got) => got,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Received::default(),
                    Err(e) => return Err(e),
                };
                if got.count < 2 {
                    // The queue is empty: a datagram that comes later raises a new event.
                    ready.clear_ready();
                }
                let mut done = None;
                for i in 0..got.count {
                    let datagram = &mut buf[i * RECV_BUF..i * RECV_BUF + got.lens[i]];
                    match done {
                        // Anything behind the reply is stray.
                        Some(_) => clean = false,
                        None => match judge(datagram, got.from[i], server, id, query, case) {
                            Some(d) => done = Some(d),
                            None => clean = false,
                        },
                    }
                }
                Ok(done)
            })?;
            if let Some(done) = done {
                return done;
            }
        }
    }
    .await;
    (result, clean)
}

/// What one [`receive_two`] read: `count` datagrams, their lengths and sources.
#[derive(Default)]
struct Received {
    count: usize,
    lens: [usize; 2],
    from: [Option<SocketAddr>; 2],
}

/// Reads up to two datagrams into `buf` (two [`RECV_BUF`] halves) without blocking. Two, so
/// that reading the reply also tells whether anything is queued behind it: when one comes
/// back the queue is empty, and the exchange clears the socket's readiness without the
/// `EAGAIN` read that would otherwise find that out, here or when the pool hands it out.
fn receive_two(sock: &std::net::UdpSocket, buf: &mut [u8]) -> io::Result<Received> {
    use std::os::fd::AsRawFd;
    let (first, second) = buf.split_at_mut(RECV_BUF);
    let mut iov = [first, second].map(|b| libc::iovec {
        iov_base: b.as_mut_ptr().cast(),
        iov_len: b.len(),
    });
    let mut names = [
        socket2::SockAddrStorage::zeroed(),
        socket2::SockAddrStorage::zeroed(),
    ];
    // SAFETY: a zeroed mmsghdr is valid (null pointers, zero lengths); every pointer set
    // below points at `iov` or `names`, which outlive the call.
    let mut hdrs: [libc::mmsghdr; 2] = unsafe { std::mem::zeroed() };
    for ((h, v), name) in hdrs.iter_mut().zip(iov.iter_mut()).zip(names.iter_mut()) {
        h.msg_hdr.msg_namelen = name.size_of();
        h.msg_hdr.msg_name = (name as *mut socket2::SockAddrStorage).cast();
        h.msg_hdr.msg_iov = v;
        h.msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: `hdrs` holds two initialised headers pointing at live buffers.
    let n = unsafe {
        libc::recvmmsg(
            sock.as_raw_fd(),
            hdrs.as_mut_ptr(),
            2,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut got = Received {
        count: n as usize,
        ..Received::default()
    };
    for (i, (h, name)) in hdrs.iter().zip(names).take(got.count).enumerate() {
        got.lens[i] = (h.msg_len as usize).min(RECV_BUF);
        // SAFETY: the kernel wrote a socket address of this length into `name`.
        got.from[i] = unsafe { socket2::SockAddr::new(name, h.msg_hdr.msg_namelen) }.as_socket();
    }
    Ok(got)
}

thread_local! {
    /// The receive buffer of this thread's exchanges, zeroed once, when the thread first
    /// uses it.
    static RECV: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0; 2 * RECV_BUF].into());
}

/// What one datagram on an exchange's socket means: the reply or the exchange's error, or
/// `None` for a datagram to drop (from elsewhere, for another query, undecodable), after
/// which the socket is not reused.
///
/// With 0x20, the reply's question must hold the name in the case we sent. It is then
/// written over, in place, with the name as asked, before the decode: the question matches
/// `query`, and every name the server compressed against it (commonly all of them) decodes
/// in the asked case, so no name needs rebuilding afterwards. The question is the first
/// name of the message, never a pointer (RFC 1035 §4.1.4 points only back).
fn judge(
    buf: &mut [u8],
    from: Option<SocketAddr>,
    server: SocketAddr,
    id: u16,
    query: &Query,
    case: Option<Case0x20<'_>>,
) -> Option<Result<Message, TransportError>> {
    if from != Some(server) {
        tracing::debug!(?from, %server, "dropping reply from unexpected source");
        return None;
    }
    let mut case_differs = false;
    if let Some(case) = case {
        if let Some(name) = buf.get_mut(12..12 + case.sent.len()) {
            if name.eq_ignore_ascii_case(case.sent) {
                case_differs = name != case.sent;
                name.copy_from_slice(case.asked);
            }
        }
    }
    match Message::from_vec(buf) {
        Ok(msg) if matches(&msg, id, query) => {
            if !case_differs {
                return Some(Ok(msg));
            }
            // Right source, port and ID, wrong case: a server that does not echo case (or a
            // forger who guessed all but the case). Say so now, so the driver asks again at
            // once without 0x20 on a new port and ID, rather than wait out the timeout.
            tracing::debug!(%server, "reply whose question case differs (0x20)");
            Some(Err(TransportError::CaseMismatch))
        }
        Ok(msg) if case.is_none() && matches_ignoring_case(&msg, id, query) => Some(Ok(msg)),
        Ok(_) => {
            tracing::debug!(%server, "dropping reply with wrong ID or question");
            None
        }
        // Our ID and QR set but undecodable: the server is broken, say so now rather than
        // wait out the timeout (a forger would have to guess the ID and port too).
        Err(e) if buf.len() >= 12 && buf[..2] == id.to_be_bytes() && buf[2] & 0x80 != 0 => {
            Some(Err(TransportError::Malformed(e.to_string())))
        }
        Err(e) => {
            tracing::debug!(%server, error = %e, "dropping malformed reply");
            None
        }
    }
}

fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

fn bind_random(local: IpAddr) -> io::Result<std::net::UdpSocket> {
    for _ in 0..PORT_TRIES {
        let port = rand::random_range(1024..=u16::MAX);
        match bind_nonblocking(SocketAddr::new(local, port)) {
            Ok(s) => return Ok(s),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(e),
        }
    }
    bind_nonblocking(SocketAddr::new(local, 0))
}

/// A UDP socket bound to `addr`, non-blocking from its creation (`SOCK_NONBLOCK`): one
/// system call fewer than setting it afterwards, once per socket the pool opens.
fn bind_nonblocking(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(
        Domain::for_address(addr),
        Type::DGRAM.nonblocking().cloexec(),
        None,
    )?;
    sock.bind(&addr.into())?;
    Ok(sock.into())
}

/// Puts a bound, connected, non-blocking socket in the reactor's epoll set, for reading
/// only ([`Socket`]).
fn register(sock: std::net::UdpSocket) -> io::Result<Socket> {
    // SAFETY: the registration owns the socket, so its descriptor stays open, and names it,
    // for as long as the registration lives.
    Ok(unsafe { AsyncFd::register_with_interest(sock, Interest::READABLE)? })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{MessageType, OpCode};
    use hickory_proto::rr::rdata::{A, NS};
    use hickory_proto::rr::{Name, RData, Record, RecordType};
    use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    /// A reply to `qname` (as the server echoes it) with an answer and an NS record whose
    /// names hickory compresses against the question.
    fn reply(id: u16, qname: &str) -> Vec<u8> {
        let mut m = Message::new(id, MessageType::Response, OpCode::Query);
        m.add_query(Query::query(name(qname), RecordType::A));
        m.add_answer(Record::from_rdata(
            name(qname),
            300,
            RData::A(A::new(192, 0, 2, 1)),
        ));
        let zone = name(qname).base_name();
        let ns = RData::NS(NS(Name::from_ascii("ns1")
            .unwrap()
            .append_domain(&zone)
            .unwrap()));
        m.add_authority(Record::from_rdata(zone, 300, ns));
        m.to_vec().unwrap()
    }

    /// Issue 17.1: with 0x20 the reply's question must echo the case sent; it is then read
    /// as asked, and so is every name compressed against it (no name rebuilt afterwards).
    /// Another case is a case mismatch, another name is dropped.
    #[test]
    fn a_0x20_reply_is_read_in_the_asked_case_and_other_cases_are_refused() {
        let server: SocketAddr = "192.0.2.53:53".parse().unwrap();
        let asked = Query::query(name("www.example.com."), RecordType::A);
        let wire = |n: &str| {
            let mut buf = Vec::new();
            name(n).emit(&mut BinEncoder::new(&mut buf)).unwrap();
            buf
        };
        let (sent, asked_wire) = (wire("wWw.ExaMple.cOm."), wire("www.example.com."));
        let case = Some(Case0x20 {
            sent: &sent,
            asked: &asked_wire,
        });
        let mut buf = reply(7, "wWw.ExaMple.cOm.");
        let msg = judge(&mut buf, Some(server), server, 7, &asked, case)
            .expect("the reply")
            .expect("matched");
        assert!(msg.queries[0].name.eq_case(&asked.name));
        assert!(msg.answers[0].name.eq_case(&asked.name));
        assert!(msg.authorities[0].name.eq_case(&name("example.com.")));
        let RData::NS(ns) = &msg.authorities[0].data else {
            panic!("NS")
        };
        assert!(ns.0.eq_case(&name("ns1.example.com.")));

        let mut folded = reply(7, "WWW.EXAMPLE.COM.");
        let r = judge(&mut folded, Some(server), server, 7, &asked, case);
        assert!(
            matches!(r, Some(Err(TransportError::CaseMismatch))),
            "{r:?}"
        );
        let mut wrong_id = reply(8, "wWw.ExaMple.cOm.");
        assert!(judge(&mut wrong_id, Some(server), server, 7, &asked, case).is_none());
        let mut other = reply(7, "www.example.net.");
        assert!(judge(&mut other, Some(server), server, 7, &asked, case).is_none());
        // Without 0x20 the case of the question does not matter (RFC 4343).
        let mut folded = reply(7, "WWW.EXAMPLE.COM.");
        let r = judge(&mut folded, Some(server), server, 7, &asked, None);
        assert!(matches!(r, Some(Ok(_))), "{r:?}");
    }

    /// Issue 17: a pooled socket serves at most `MAX_USES` exchanges, none starting later than
    /// `MAX_AGE` after it was opened however few it served: that bounds how long its port is
    /// open to a scan (RFC 5452 §9.2; the SAD DNS side channel). Lab unit-test network 216.
    #[tokio::test]
    async fn a_pooled_socket_serves_no_exchange_past_its_age_or_its_uses() {
        let local: IpAddr = "127.53.216.253".parse().unwrap();
        let server: SocketAddr = "127.53.216.1:53".parse().unwrap();
        let pool = SocketPool::default();
        let opened = tokio::time::Instant::now();
        let fresh = |uses| {
            let sock = bind_random(local).expect("bind 127.53.216.253");
            sock.connect(server).unwrap();
            Pooled {
                sock: register(sock).unwrap(),
                uses,
                opened,
            }
        };
        let young = opened + MAX_AGE - Duration::from_millis(1);
        let old = opened + MAX_AGE + Duration::from_millis(1);

        pool.give_back(local, server, fresh(1), opened);
        assert!(pool.take(local, server, young).is_some(), "young: reused");
        pool.give_back(local, server, fresh(1), opened);
        assert!(pool.take(local, server, old).is_none(), "old: closed");
        assert_eq!(pool.idle(), 0);

        pool.give_back(local, server, fresh(1), old);
        assert_eq!(pool.idle(), 0, "an exchange begun past the age: not kept");
        pool.give_back(local, server, fresh(MAX_USES), opened);
        assert_eq!(pool.idle(), 0, "spent: not kept");
        pool.give_back(local, server, fresh(MAX_USES - 1), opened);
        assert_eq!(pool.idle(), 1, "one use left: kept");
    }
}
