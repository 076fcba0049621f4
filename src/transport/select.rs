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

/// [`choose`] for the configured servers of a forward or stub zone, which are few and
/// chosen by the operator: one never measured (or forgotten) is tried first, so every
/// forwarder gets an RTT; one that timed out gets a query every [`PROBE_AFTER`]
/// (`InfraCache::probe_due`), so a forwarder that comes back is used again; else by RTT.
///
/// [`PROBE_AFTER`]: crate::cache::PROBE_AFTER
pub fn choose_configured(
    candidates: &[SocketAddr],
    infra: &InfraCache,
    now: Instant,
) -> Option<SocketAddr> {
    candidates
        .iter()
        .find(|c| infra.get(c.ip(), now).is_none())
        .or_else(|| candidates.iter().find(|c| infra.probe_due(c.ip(), now)))
        .copied()
        .or_else(|| choose(candidates, infra, now))
}

#[cfg(test)]
mod tests {
    /// A forwarder that timed out is asked again once after 30 s, then again 30 s later if
    /// it is still dead; one that answers again competes on RTT.
    #[test]
    fn a_dead_configured_server_is_probed_every_30_seconds() {
        let infra = InfraCache::default();
        let now = Instant::now();
        let dead: SocketAddr = "192.0.2.1:53".parse().unwrap();
        let live: SocketAddr = "192.0.2.2:853".parse().unwrap();
        let both = [dead, live];
        assert_eq!(
            choose_configured(&both, &infra, now),
            Some(dead),
            "unknown first"
        );
        infra.report(dead.ip(), crate::cache::Feedback::TimedOut, now);
        assert_eq!(
            choose_configured(&both, &infra, now),
            Some(live),
            "unknown first"
        );
        infra.report(
            live.ip(),
            crate::cache::Feedback::Answered(Duration::from_millis(2)),
            now,
        );
        let later = now + Duration::from_secs(10);
        assert_eq!(choose_configured(&both, &infra, later), Some(live));
        let probe = now + Duration::from_secs(31);
        assert_eq!(
            choose_configured(&both, &infra, probe),
            Some(dead),
            "probed"
        );
        assert_eq!(choose_configured(&both, &infra, probe), Some(live), "once");
        let again = probe + Duration::from_secs(31);
        assert_eq!(choose_configured(&both, &infra, again), Some(dead));
    }

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
