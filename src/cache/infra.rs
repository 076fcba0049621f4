//! The infra cache: per server address, smoothed RTT, retransmission timeout and EDNS support.
//!
//! RTT smoothing and the timeout follow RFC 6298 (SRTT, RTTVAR, RTO = SRTT + 4*RTTVAR) with
//! exponential backoff on timeouts, as Unbound's infra cache does. An unknown server gets an
//! initial timeout of [`INITIAL_RTO`], a few hundred milliseconds, so a dead server costs
//! little before we move on. Entries older than [`HOST_TTL`] are forgotten (Unbound
//! `infra-host-ttl`, 900 s), so a server that was down gets another chance.

use hashbrown::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// First timeout for a server we know nothing about (Unbound starts at 376 ms).
pub const INITIAL_RTO: Duration = Duration::from_millis(400);
/// Floor of the timeout: even a very close server gets this long to answer.
pub const MIN_RTO: Duration = Duration::from_millis(50);
/// Ceiling of the timeout after repeated backoff.
pub const MAX_RTO: Duration = Duration::from_secs(3);
/// How long what we learned about a server is kept.
pub const HOST_TTL: Duration = Duration::from_secs(900);
/// Servers remembered at most (Unbound `infra-cache-numhosts` is 10000); past it, forgotten
/// entries are dropped first, then arbitrary ones, so referrals naming endless addresses
/// cannot grow memory.
pub const MAX_HOSTS: usize = 10_000;

/// A server that timed out gets one query again after this long even while others answer
/// ([`InfraCache::probe_due`]): a forwarder that comes back is noticed and used again.
pub const PROBE_AFTER: Duration = Duration::from_secs(30);

/// What one exchange with a server showed, for [`InfraCache::report`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feedback {
    /// A useful reply after this long: feeds the smoothed RTT (RFC 6298).
    Answered(Duration),
    /// REFUSED, SERVFAIL or NOTIMP: an answer, but its speed says nothing of the server's.
    Refused,
    /// No reply in time: the timeout doubles and the server scores worse.
    TimedOut,
    /// FORMERR to EDNS, then an answer without it (RFC 6891 §7): ask it without OPT.
    NoEdns,
    /// It does not echo the question's case: ask it without 0x20.
    NoCase,
}

/// What is known of one server.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ServerStats {
    /// Smoothed RTT in milliseconds.
    pub srtt_ms: f64,
    /// RTT variation in milliseconds.
    pub rttvar_ms: f64,
    /// Current retransmission timeout.
    pub rto: Duration,
    /// Timeouts since the last answer.
    pub timeouts: u32,
    /// Until when the server is queried without EDNS: it answered FORMERR to EDNS and then
    /// answered without it (RFC 6891 §7 fallback). RTT updates do not extend it.
    pub no_edns_until: Option<Instant>,
    updated: Instant,
}

#[derive(Debug, Default)]
pub struct InfraCache {
    servers: Mutex<HashMap<IpAddr, ServerStats>>,
    /// Servers that do not echo the question's case, until when they are asked without 0x20
    /// (kept apart from `servers` so RTT bookkeeping never touches it; same bound).
    no_0x20: Mutex<HashMap<IpAddr, Instant>>,
}

impl InfraCache {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<IpAddr, ServerStats>) -> R) -> R {
        f(&mut self.servers.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Known stats for `server`, unless forgotten.
    pub fn get(&self, server: IpAddr, now: Instant) -> Option<ServerStats> {
        self.with(|m| {
            m.get(&server)
                .copied()
                .filter(|s| now.saturating_duration_since(s.updated) < HOST_TTL)
        })
    }

    /// The timeout to use for the next query to `server`.
    pub fn rto(&self, server: IpAddr, now: Instant) -> Duration {
        self.get(server, now).map_or(INITIAL_RTO, |s| s.rto)
    }

    /// Whether queries to `server` should carry EDNS.
    pub fn edns_ok(&self, server: IpAddr, now: Instant) -> bool {
        self.get(server, now)
            .and_then(|s| s.no_edns_until)
            .is_none_or(|until| now >= until)
    }

    /// Whether questions to `server` may have their case randomised (0x20).
    pub fn case_ok(&self, server: IpAddr, now: Instant) -> bool {
        let m = self.no_0x20.lock().unwrap_or_else(|e| e.into_inner());
        m.get(&server).is_none_or(|until| now >= *until)
    }

    /// `server` answered with the question's case changed: ask it without 0x20 for
    /// [`HOST_TTL`] (draft-vixie-dnsext-dns0x20 §5: a per-server fallback).
    fn record_no_0x20(&self, server: IpAddr, now: Instant) {
        let mut m = self.no_0x20.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= MAX_HOSTS {
            m.retain(|_, until| now < *until);
            if m.len() >= MAX_HOSTS {
                return;
            }
        }
        m.insert(server, now + HOST_TTL);
    }

    /// Number of servers remembered (forgotten ones included until pruned).
    pub fn len(&self) -> usize {
        self.with(|m| m.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Inserts or replaces `server`'s entry, keeping the map within [`MAX_HOSTS`].
    fn put(m: &mut HashMap<IpAddr, ServerStats>, server: IpAddr, stats: ServerStats, now: Instant) {
        if m.len() >= MAX_HOSTS && !m.contains_key(&server) {
            m.retain(|_, s| now.saturating_duration_since(s.updated) < HOST_TTL);
            if m.len() >= MAX_HOSTS {
                let drop: Vec<IpAddr> = m.keys().take(MAX_HOSTS / 10).copied().collect();
                for k in drop {
                    m.remove(&k);
                }
            }
        }
        m.insert(server, stats);
    }

    /// Whether `server`'s last queries timed out (and it has not answered since).
    pub fn timing_out(&self, server: IpAddr, now: Instant) -> bool {
        self.get(server, now).is_some_and(|s| s.timeouts > 0)
    }

    /// `server` timed out and has been left alone for [`PROBE_AFTER`]: one query may go to
    /// it now. Saying yes restarts the wait, so a dead server gets one probe per period.
    pub fn probe_due(&self, server: IpAddr, now: Instant) -> bool {
        self.with(|m| match m.get_mut(&server) {
            Some(s) if s.timeouts > 0 => {
                let idle = now.saturating_duration_since(s.updated);
                let due = (PROBE_AFTER..HOST_TTL).contains(&idle);
                if due {
                    s.updated = now;
                }
                due
            }
            _ => false,
        })
    }

    /// What asking `server` showed: the one door through which the driver feeds server
    /// selection (after Knot Resolver's `kr_selection` `update_rtt`/`error` pair).
    pub fn report(&self, server: IpAddr, feedback: Feedback, now: Instant) {
        match feedback {
            Feedback::Answered(rtt) => self.record_rtt(server, rtt, now),
            // It answers, but not usefully: its speed must not make it win the next choice.
            Feedback::Refused => {}
            Feedback::TimedOut => self.record_timeout(server, now),
            Feedback::NoEdns => self.record_no_edns(server, now),
            Feedback::NoCase => self.record_no_0x20(server, now),
        }
    }

    /// The expected cost of asking `server`, for choosing among candidates: its SRTT, with
    /// unknown servers placed at the initial timeout so known-fast servers are preferred but
    /// new ones are still explored, and timeouts penalising by the current backed-off RTO.
    pub fn score(&self, server: IpAddr, now: Instant) -> Duration {
        match self.get(server, now) {
            None => INITIAL_RTO / 2,
            Some(s) if s.timeouts > 0 => s.rto.saturating_mul(s.timeouts.min(8)),
            Some(s) => Duration::from_secs_f64(s.srtt_ms / 1000.0),
        }
    }

    /// An answer came back after `rtt` (RFC 6298 §2.2-2.3 smoothing).
    fn record_rtt(&self, server: IpAddr, rtt: Duration, now: Instant) {
        let r = rtt.as_secs_f64() * 1000.0;
        self.with(|m| {
            let s = match m
                .get(&server)
                .filter(|s| now.saturating_duration_since(s.updated) < HOST_TTL)
            {
                Some(old) => {
                    let rttvar = 0.75 * old.rttvar_ms + 0.25 * (old.srtt_ms - r).abs();
                    let srtt = 0.875 * old.srtt_ms + 0.125 * r;
                    ServerStats {
                        srtt_ms: srtt,
                        rttvar_ms: rttvar,
                        timeouts: 0,
                        updated: now,
                        ..*old
                    }
                }
                None => ServerStats {
                    srtt_ms: r,
                    rttvar_ms: r / 2.0,
                    rto: INITIAL_RTO,
                    timeouts: 0,
                    no_edns_until: None,
                    updated: now,
                },
            };
            let rto = Duration::from_secs_f64((s.srtt_ms + 4.0 * s.rttvar_ms) / 1000.0)
                .clamp(MIN_RTO, MAX_RTO);
            Self::put(m, server, ServerStats { rto, ..s }, now);
        });
    }

    /// A query timed out: double the timeout (RFC 6298 §5.5) and count it.
    fn record_timeout(&self, server: IpAddr, now: Instant) {
        self.with(|m| {
            let s = m
                .get(&server)
                .copied()
                .filter(|s| now.saturating_duration_since(s.updated) < HOST_TTL)
                .unwrap_or(ServerStats {
                    srtt_ms: INITIAL_RTO.as_secs_f64() * 1000.0,
                    rttvar_ms: 0.0,
                    rto: INITIAL_RTO,
                    timeouts: 0,
                    no_edns_until: None,
                    updated: now,
                });
            let stats = ServerStats {
                rto: s.rto.saturating_mul(2).min(MAX_RTO),
                timeouts: s.timeouts.saturating_add(1),
                updated: now,
                ..s
            };
            Self::put(m, server, stats, now);
        });
    }

    /// The server rejected EDNS with FORMERR and then answered without it: query it without
    /// OPT for [`HOST_TTL`], then try EDNS again.
    fn record_no_edns(&self, server: IpAddr, now: Instant) {
        self.with(|m| {
            let mut s = m.get(&server).copied().unwrap_or(ServerStats {
                srtt_ms: INITIAL_RTO.as_secs_f64() * 1000.0 / 2.0,
                rttvar_ms: 0.0,
                rto: INITIAL_RTO,
                timeouts: 0,
                no_edns_until: None,
                updated: now,
            });
            s.no_edns_until = Some(now + HOST_TTL);
            s.updated = now;
            Self::put(m, server, s, now);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_server_gets_the_initial_timeout_and_timeouts_back_off() {
        let c = InfraCache::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t = Instant::now();
        assert_eq!(c.rto(ip, t), INITIAL_RTO);
        c.record_timeout(ip, t);
        assert_eq!(c.rto(ip, t), INITIAL_RTO * 2);
        for _ in 0..10 {
            c.record_timeout(ip, t);
        }
        assert_eq!(c.rto(ip, t), MAX_RTO);
        assert!(c.score(ip, t) > c.score("192.0.2.2".parse().unwrap(), t));
    }

    #[test]
    fn rtt_smoothing_and_forgetting() {
        let c = InfraCache::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t = Instant::now();
        c.record_rtt(ip, Duration::from_millis(10), t);
        assert_eq!(c.score(ip, t), Duration::from_millis(10));
        assert!(c.rto(ip, t) >= MIN_RTO && c.rto(ip, t) < INITIAL_RTO);
        c.record_rtt(ip, Duration::from_millis(90), t);
        let s = c.get(ip, t).unwrap();
        assert!((s.srtt_ms - 20.0).abs() < 1e-6);
        assert_eq!(c.get(ip, t + HOST_TTL), None);
    }

    #[test]
    fn edns_fallback_is_remembered() {
        let c = InfraCache::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t = Instant::now();
        assert!(c.edns_ok(ip, t));
        c.record_no_edns(ip, t);
        assert!(!c.edns_ok(ip, t));
        c.record_rtt(ip, Duration::from_millis(5), t + HOST_TTL / 2);
        assert!(
            c.edns_ok(ip, t + HOST_TTL),
            "answers do not extend the no-EDNS period"
        );
    }

    #[test]
    fn the_number_of_servers_is_bounded() {
        let c = InfraCache::default();
        let t = Instant::now();
        for i in 0..(MAX_HOSTS as u32 + 500) {
            c.record_timeout(IpAddr::V4(i.into()), t);
        }
        assert!(c.len() <= MAX_HOSTS);
    }
}
