//! The cache-hit fast path: a plain query (over UDP, TCP, DoT or DoH) answered from the
//! message cache without decoding, without the resolver and without allocating.
//!
//! The worker reads the query in place ([`parse_plain_query`]), the message cache writes
//! the ready reply into the worker's output slot ([`MessageCache::write_reply`]), and the
//! answerer is told only two things: whether it lets a cached reply answer this client
//! ([`Answerer::may_serve_cached`], for redirect rules) and, when a hit falls in the last
//! 10% of its TTL, which question to refresh ([`Answerer::prefetch`]). Anything else takes
//! the normal path, which decodes the query and asks [`Answerer::answer`].
//!
//! [`MessageCache::write_reply`]: crate::cache::MessageCache::write_reply

use std::net::SocketAddr;

use crate::cache::{Cache, Patch, Written};
use crate::dns::wire::{parse_plain_query, PlainQuery};
use crate::dns::Answerer;

/// The reply to `query` from `client` if it is a fresh cache hit that fits the client's
/// UDP limit and `out`: written into `out`, its length returned. `None` sends the query
/// down the normal path.
#[inline]
pub fn reply_from_cache(
    cache: &Cache,
    answerer: &dyn Answerer,
    query: &[u8],
    client: SocketAddr,
    out: &mut [u8],
) -> Option<usize> {
    let q = parse_plain_query(query)?;
    let patch = patch_for(&q, out.len());
    hit(cache, answerer, &q, &patch, client, out)
}

/// [`reply_from_cache`] for a stream transport (TCP, DoT): the reply may fill `out` (a
/// stream reply is never truncated, RFC 7766 §8), and our OPT, when the client sent one,
/// carries `ours_udp` as on every other reply. An `encrypted` transport leaves a query that
/// asks for padding to the normal path, which pads (RFC 8467 §4.1).
#[inline]
pub fn stream_reply_from_cache(
    cache: &Cache,
    answerer: &dyn Answerer,
    query: &[u8],
    client: SocketAddr,
    ours_udp: u16,
    encrypted: bool,
    out: &mut [u8],
) -> Option<usize> {
    let q = parse_plain_query(query)?;
    if encrypted && q.padding {
        return None;
    }
    let mut patch = patch_for(&q, usize::from(ours_udp));
    patch.limit = out.len();
    hit(cache, answerer, &q, &patch, client, out)
}

/// The reply to `query` from the template that its own resolution has just stored: what a
/// hit on it would be sent, copied and patched instead of encoded once more from the outcome.
/// Counted neither as a hit nor as a miss. `None` (no fresh template, one that does not fit,
/// or one the answerer will not serve this client) leaves the reply to the normal encoder.
pub fn reply_from_stored(
    cache: &Cache,
    answerer: &dyn Answerer,
    query: &[u8],
    client: SocketAddr,
    out: &mut [u8],
) -> Option<usize> {
    let q = parse_plain_query(query)?;
    let patch = patch_for(&q, out.len());
    served(cache, answerer, &q, &patch, client, out, false).map(|w| w.len)
}

#[inline(always)]
fn hit(
    cache: &Cache,
    answerer: &dyn Answerer,
    q: &PlainQuery<'_>,
    patch: &Patch<'_>,
    client: SocketAddr,
    out: &mut [u8],
) -> Option<usize> {
    let written = served(cache, answerer, q, patch, client, out, true)?;
    crate::metrics::metrics().cache_hit();
    if written.prefetch && cache.config.prefetch {
        if let Some(question) = q.question() {
            answerer.prefetch(question);
        }
    }
    Some(written.len)
}

/// The template for `q` written into `out` if there is a fresh one the answerer lets this
/// client have: a `hit` (counted in the cache's statistics, and may ask for a prefetch) or
/// the reply to the miss that has just stored it.
#[inline(always)]
fn served(
    cache: &Cache,
    answerer: &dyn Answerer,
    q: &PlainQuery<'_>,
    patch: &Patch<'_>,
    client: SocketAddr,
    out: &mut [u8],
    hit: bool,
) -> Option<Written> {
    let (key, now) = (q.key.as_bytes(), cache.clock.unix_secs());
    let messages = &cache.messages;
    let written = if hit {
        messages.write_reply(key, now, patch, out)
    } else {
        messages.write_stored_reply(key, now, patch, out)
    }
    .ok()?;
    answerer
        .may_serve_cached(q.qname, &out[..written.len], client)
        .then_some(written)
}

/// What the cached reply must change for the client of `q` when we accept `ours` bytes
/// over UDP: its ID, RD, CD and question case, AD if it asked, the signed template and DO
/// if it set DO, our OPT if it sent one, and its size limit (RFC 6891 §6.2.5).
#[inline(always)]
pub fn patch_for<'q>(q: &PlainQuery<'q>, ours: usize) -> Patch<'q> {
    Patch {
        id: q.id,
        rd: q.rd,
        cd: q.cd,
        ad: q.wants_ad,
        dnssec_ok: q.dnssec_ok,
        qname: q.qname,
        opt_payload: q
            .edns_payload
            .map(|_| u16::try_from(ours).unwrap_or(u16::MAX)),
        limit: super::request::udp_limit_for(q.edns_payload, ours),
    }
}
