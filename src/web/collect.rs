//! What the dashboard gathers while `--web` is on: the query log ring and the top-list
//! minutes (fed by the query log's [`ReplyTap`], one short lock per reply), and the time
//! series (a sampler task reading the counters every 10 s). None of it exists when the
//! dashboard is off.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use super::ring::{ClientKey, Entry, Outcome, Ring};
use super::series::{Series, SAMPLE_EVERY};
use super::top::Top;
use crate::dns::Clock;
use crate::server::querylog::{Logged, ReplyTap};

/// The dashboard's data.
#[derive(Debug)]
pub struct Collector {
    clock: Clock,
    log: Mutex<Log>,
    series: Mutex<Series>,
}

/// The ring and the top lists, under one lock so a reply takes it once.
#[derive(Debug)]
pub(super) struct Log {
    pub(super) ring: Ring,
    pub(super) top: Top,
}

impl Collector {
    /// A collector whose ring holds at most `log_bytes`, on `clock` (the resolver's).
    pub fn new(log_bytes: usize, clock: Clock) -> Arc<Self> {
        Arc::new(Self {
            clock,
            log: Mutex::new(Log {
                ring: Ring::new(log_bytes),
                top: Top::default(),
            }),
            series: Mutex::new(Series::default()),
        })
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Reads the counters now into the series.
    pub fn sample(&self) {
        let snap = crate::metrics::metrics().snapshot();
        let now = self.clock.unix_secs();
        self.series().record(now, snap);
    }

    /// Samples now and every [`SAMPLE_EVERY`] until `stop`.
    pub fn spawn_sampler(self: &Arc<Self>, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => me.sample(),
                }
            }
        })
    }

    pub(super) fn series(&self) -> std::sync::MutexGuard<'_, Series> {
        self.series.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ReplyTap for Collector {
    fn reply(&self, l: &Logged<'_>) {
        let t_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let client = match l.client_hash {
            Some(h) => ClientKey::Hash(h),
            None => ClientKey::Addr(l.client),
        };
        let entry = Entry {
            t_ms,
            client,
            name: l.name.into(),
            qtype: l.qtype,
            rcode: l.rcode,
            proto: l.proto,
            outcome: Outcome::of(l.blocked, l.action, l.rcode, l.cache),
            cache: l.cache,
            rule: l.rule.map(Into::into),
            action: l.action,
            upstream: l.upstream,
            latency_ms: l.latency_ms as f32,
        };
        let now = self.clock.unix_secs();
        let mut log = self.log();
        log.top.count(now, l.name, client, l.blocked);
        log.ring.push(entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::ring::Filter;
    use crate::web::top::Kind;

    fn logged<'a>(name: &'a str, hash: Option<u64>, action: Option<&'static str>) -> Logged<'a> {
        Logged {
            client: "192.0.2.5".parse().unwrap(),
            client_hash: hash,
            name,
            qtype: 28,
            rcode: "NOERROR",
            proto: "udp",
            tc: false,
            bytes: 60,
            cache: "miss",
            upstream: 2,
            latency_ms: 12.5,
            rule: action.map(|_| "*.ads.lan (rules.toml:3)"),
            action,
            blocked: action == Some("block"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn replies_reach_the_ring_and_the_top_lists_with_hashed_clients_hidden() {
        let clock = Clock::manual();
        let c = Collector::new(1 << 20, clock.clone());
        c.reply(&logged("www.example.com.", None, None));
        c.reply(&logged("x.ads.lan.", Some(0xabc), Some("block")));
        let log = c.log();
        let rows: Vec<serde_json::Value> = log
            .ring
            .query(&Filter::default(), 10)
            .iter()
            .map(|e| e.to_json())
            .collect();
        assert_eq!(rows[0]["client"], "0000000000000abc", "hashed: no address");
        assert_eq!(rows[0]["outcome"], "blocked");
        assert_eq!(rows[0]["rule"], "*.ads.lan (rules.toml:3)");
        assert_eq!(rows[1]["client"], "192.0.2.5");
        assert_eq!(rows[1]["qtype"], "AAAA");
        assert_eq!(rows[1]["outcome"], "resolved");
        let now = clock.unix_secs();
        let clients = log.top.top(Kind::Clients, now, 60, 10);
        assert_eq!(
            clients,
            [
                ("0000000000000abc".to_string(), 1),
                ("192.0.2.5".to_string(), 1)
            ]
        );
        let blocked = log.top.top(Kind::Blocked, now, 60, 10);
        assert_eq!(blocked, [("x.ads.lan.".to_string(), 1)]);
    }
}
