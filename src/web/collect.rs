//! What the dashboard gathers while `--web` is on: the query log ring and the top-list
//! minutes (fed by the query log's [`ReplyTap`], one short lock per reply), and the time
//! series (a sampler task reading the counters every 10 s). None of it exists when the
//! dashboard is off.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use super::ring::{Entry, Outcome, Ring};
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
        let entry = Entry {
            t_ms,
            client: l.client.into(),
            name: l.name.into(),
            qtype: l.qtype.into(),
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
        log.top.count(now, l.name, l.client, l.blocked);
        log.ring.push(entry);
    }
}
