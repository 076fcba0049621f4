//! Response rate limiting (RRL) for UDP, per client prefix.
//!
//! A LAN resolver answers over UDP, whose source addresses can be forged: without a limit
//! it can be aimed at a victim as a reflector. Each client prefix (/24 for IPv4, /56 for
//! IPv6 by default, so one host cannot dodge the limit by hopping addresses inside its
//! allocation) gets a token bucket: `rate` responses per second, up to `burst` at once.
//! Past it, responses are dropped, except every `slip`-th one, which is sent truncated
//! (header and question, TC=1): a real client then retries over TCP, where the source is
//! verified and no limit applies; a forged source gets a reply no bigger than the query.
//! This is the "slip" of BIND's and Knot's RRL (see the ISC RRL technical note); unlike
//! them the bucket is per prefix, not per (prefix, answer), which is the simpler and
//! stricter choice for a recursive LAN service.
//!
//! The API is synchronous and small: [`Rrl::check`] per reply, [`truncate`] for a slip;
//! the front end applies both in one place (`Shared::outgoing`).
//! State is a sharded map of buckets, bounded by [`MAX_PREFIXES`]: when a shard is full,
//! buckets that have refilled (identical to no bucket) are dropped; if none has, the shard
//! is cleared, which can only let traffic through, never block it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Client prefixes tracked at once (all shards together).
pub const MAX_PREFIXES: usize = 65_536;
const RRL_SHARDS: usize = 16;

/// RRL settings. `rate == 0` turns RRL off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RrlConfig {
    /// Responses per second per prefix.
    pub rate: u32,
    /// Responses a prefix may get at once (bucket size); below `rate` counts as `rate`.
    pub burst: u32,
    /// Every `slip`-th limited response is sent with TC=1; 0 drops them all.
    pub slip: u32,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    /// Loopback clients (the machine itself, `::ffff:127.x` included) are never limited:
    /// they are the local stub and local programs, not a reflection target.
    pub exempt_loopback: bool,
}

impl Default for RrlConfig {
    fn default() -> Self {
        Self {
            rate: 0,
            burst: 0,
            slip: 2,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
            exempt_loopback: true,
        }
    }
}

/// What to do with one response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Send,
    /// Send it truncated ([`truncate`]).
    Slip,
    Drop,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
    /// Limited responses so far, for the slip count.
    limited: u32,
}

/// The rate limiter shared by every UDP worker.
#[derive(Debug)]
pub struct Rrl {
    config: RrlConfig,
    shards: Vec<Mutex<HashMap<u128, Bucket>>>,
}

impl Rrl {
    /// `None` when `config.rate` is 0 (RRL off).
    pub fn new(config: RrlConfig) -> Option<Rrl> {
        (config.rate > 0).then(|| Rrl {
            config,
            shards: (0..RRL_SHARDS)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
        })
    }

    fn capacity(&self) -> f64 {
        f64::from(self.config.burst.max(self.config.rate))
    }

    /// The verdict for one response to `client` at `now`.
    pub fn check(&self, client: IpAddr, now: Instant) -> Verdict {
        if self.config.exempt_loopback && client.to_canonical().is_loopback() {
            return Verdict::Send;
        }
        let key = self.prefix(client);
        let capacity = self.capacity();
        let rate = f64::from(self.config.rate);
        let shard = &self.shards[(key as usize ^ (key >> 64) as usize) % RRL_SHARDS];
        let mut map = shard.lock().unwrap_or_else(|e| e.into_inner());
        if !map.contains_key(&key) && map.len() >= MAX_PREFIXES / RRL_SHARDS {
            map.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * rate < capacity
            });
            if map.len() >= MAX_PREFIXES / RRL_SHARDS {
                map.clear();
            }
        }
        let bucket = map.entry(key).or_insert(Bucket {
            tokens: capacity,
            last: now,
            limited: 0,
        });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(capacity);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Verdict::Send;
        }
        bucket.limited = bucket.limited.wrapping_add(1);
        let slip = self.config.slip;
        if slip > 0 && bucket.limited % slip == 0 {
            Verdict::Slip
        } else {
            Verdict::Drop
        }
    }

    /// The bucket key: the client's prefix (IPv4 kept apart from IPv6 by the mapped form).
    fn prefix(&self, client: IpAddr) -> u128 {
        match client.to_canonical() {
            IpAddr::V4(v4) => {
                let bits = u32::from(self.config.ipv4_prefix.min(32));
                let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                0xffff_0000_0000 | u128::from(u32::from(v4) & mask)
            }
            IpAddr::V6(v6) => {
                let bits = u32::from(self.config.ipv6_prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                u128::from(v6) & mask
            }
        }
    }
}

/// Turns the encoded reply in `msg` into header + question with TC=1 and no records, in
/// place; returns the new length. A reply whose question cannot be walked keeps only its
/// header (QDCOUNT 0).
pub fn truncate(msg: &mut [u8]) -> usize {
    if msg.len() < 12 {
        return msg.len();
    }
    msg[2] |= 0x02; // TC
    msg[6..12].fill(0); // ANCOUNT, NSCOUNT, ARCOUNT
    let end = crate::dns::wire::first_question_end(msg).filter(|_| msg[4..6] == [0, 1]);
    match end {
        Some(end) => end,
        None => {
            msg[4..6].fill(0);
            12
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::{Name, RecordType};

    use super::*;

    fn rrl(rate: u32, burst: u32, slip: u32) -> Rrl {
        Rrl::new(RrlConfig {
            rate,
            burst,
            slip,
            ..RrlConfig::default()
        })
        .unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Issue 12.10: the machine's own programs are not rate limited unless asked.
    #[test]
    fn loopback_is_exempt_by_default() {
        let r = rrl(1, 1, 0);
        let t = Instant::now();
        for c in ["127.0.0.1", "::1", "::ffff:127.0.0.53"] {
            assert!((0..10).all(|_| r.check(ip(c), t) == Verdict::Send), "{c}");
        }
        let strict = Rrl::new(RrlConfig {
            rate: 1,
            burst: 1,
            slip: 0,
            exempt_loopback: false,
            ..RrlConfig::default()
        })
        .unwrap();
        assert_eq!(strict.check(ip("127.0.0.1"), t), Verdict::Send);
        assert_eq!(strict.check(ip("127.0.0.1"), t), Verdict::Drop);
    }

    #[test]
    fn rate_zero_is_off() {
        assert!(Rrl::new(RrlConfig::default()).is_none());
    }

    #[test]
    fn a_burst_passes_then_the_rate_refills() {
        let r = rrl(10, 20, 0);
        let t = Instant::now();
        let sent = (0..50)
            .filter(|_| r.check(ip("192.0.2.1"), t) == Verdict::Send)
            .count();
        assert_eq!(sent, 20, "the burst");
        // Half a second refills 5 tokens at 10/s.
        let later = t + Duration::from_millis(500);
        let sent = (0..50)
            .filter(|_| r.check(ip("192.0.2.1"), later) == Verdict::Send)
            .count();
        assert_eq!(sent, 5);
    }

    #[test]
    fn clients_share_their_prefix_bucket_only() {
        let r = rrl(1, 1, 0);
        let t = Instant::now();
        assert_eq!(r.check(ip("192.0.2.1"), t), Verdict::Send);
        assert_eq!(r.check(ip("192.0.2.200"), t), Verdict::Drop, "same /24");
        assert_eq!(r.check(ip("192.0.3.1"), t), Verdict::Send, "another /24");
        assert_eq!(r.check(ip("2001:db8:0:1::1"), t), Verdict::Send);
        assert_eq!(r.check(ip("2001:db8:0:2::2"), t), Verdict::Drop, "same /56");
        assert_eq!(
            r.check(ip("2001:db8:1::1"), t),
            Verdict::Send,
            "another /56"
        );
        assert_eq!(
            r.check(ip("::ffff:192.0.2.9"), t),
            Verdict::Drop,
            "mapped v4"
        );
    }

    #[test]
    fn every_slip_th_limited_response_is_truncated() {
        let r = rrl(1, 1, 3);
        let t = Instant::now();
        assert_eq!(r.check(ip("192.0.2.1"), t), Verdict::Send);
        let limited: Vec<Verdict> = (0..6).map(|_| r.check(ip("192.0.2.1"), t)).collect();
        use Verdict::{Drop as D, Slip as S};
        assert_eq!(limited, [D, D, S, D, D, S]);
    }

    #[test]
    fn the_table_stays_bounded() {
        let r = rrl(1, 1, 0);
        let t = Instant::now();
        for i in 0..(MAX_PREFIXES as u32 * 2) {
            r.check(IpAddr::from((0x0a00_0000 + (i << 8)).to_be_bytes()), t);
        }
        let total: usize = r.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(total <= MAX_PREFIXES, "{total}");
    }

    #[test]
    fn a_slip_keeps_header_and_question_with_tc() {
        let mut m = Message::query();
        m.metadata.id = 77;
        m.add_query(Query::query(
            Name::from_ascii("www.example.com.").unwrap(),
            RecordType::A,
        ));
        m.add_answer(hickory_proto::rr::Record::from_rdata(
            Name::from_ascii("www.example.com.").unwrap(),
            300,
            hickory_proto::rr::RData::A("192.0.2.1".parse::<std::net::Ipv4Addr>().unwrap().into()),
        ));
        let mut bytes = m.to_vec().unwrap();
        let n = truncate(&mut bytes);
        bytes.truncate(n);
        let t = Message::from_vec(&bytes).unwrap();
        assert!(t.metadata.truncation);
        assert_eq!(t.metadata.id, 77);
        assert!(t.answers.is_empty());
        assert_eq!(t.queries.len(), 1);
        let mut short = vec![0u8; 5];
        assert_eq!(truncate(&mut short), 5);
    }
}
