//! Server choice: a feedback loop over the infra cache. Among the candidates, pick at random
//! within a band above the best expected RTT (Unbound's `RTT_BAND`), so that near-equal
//! servers share load and a slightly slower one is still measured now and then.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::cache::InfraCache;

/// Servers within this much of the best score are treated as equally good.
pub const RTT_BAND: Duration = Duration::from_millis(50);

/// Picks one of `candidates` (which must not be empty).
pub fn choose(candidates: &[SocketAddr], infra: &InfraCache, now: Instant) -> Option<SocketAddr> {
    let scored: Vec<(SocketAddr, Duration)> = candidates
        .iter()
        .map(|c| (*c, infra.score(c.ip(), now)))
        .collect();
    let best = scored.iter().map(|(_, s)| *s).min()?;
    let band: Vec<SocketAddr> = scored
        .iter()
        .filter(|(_, s)| *s <= best + RTT_BAND)
        .map(|(c, _)| *c)
        .collect();
    Some(band[rand::random_range(0..band.len())])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_that_timed_out_is_avoided() {
        let infra = InfraCache::default();
        let now = Instant::now();
        let dead: SocketAddr = "192.0.2.1:53".parse().unwrap();
        let live: SocketAddr = "192.0.2.2:53".parse().unwrap();
        infra.report(dead.ip(), crate::cache::Feedback::TimedOut, now);
        infra.report(
            live.ip(),
            crate::cache::Feedback::Answered(Duration::from_millis(5)),
            now,
        );
        for _ in 0..100 {
            assert_eq!(choose(&[dead, live], &infra, now), Some(live));
        }
        assert_eq!(choose(&[], &infra, now), None);
    }

    #[test]
    fn near_equal_servers_share() {
        let infra = InfraCache::default();
        let now = Instant::now();
        let a: SocketAddr = "192.0.2.1:53".parse().unwrap();
        let b: SocketAddr = "192.0.2.2:53".parse().unwrap();
        let picks: std::collections::HashSet<_> = (0..200)
            .filter_map(|_| choose(&[a, b], &infra, now))
            .collect();
        assert_eq!(picks.len(), 2);
    }
}
