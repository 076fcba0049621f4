//! The overview's time series: a sampler reads the process's counters
//! ([`crate::metrics::Metrics::snapshot`]) and the replies the dashboard's tap counted by
//! class ([`Reading`]) every [`SAMPLE_EVERY`] and keeps the differences in two rings, [`HOUR_BUCKETS`] buckets of 10 s (the last hour) and [`DAY_BUCKETS`] of
//! 5 minutes (the last day). The classes (cached, resolved, redirected, blocked, failed)
//! are the query log's own classes of each reply sent ([`super::ring::Outcome::of`]), so
//! they add up to the replies and agree with the log; the process counters would not
//! (a resolution answered from the RRset cache for a pool's health check or a CNAME link
//! counts as a cache hit, yet no client got a reply from it).
//!
//! A sample's difference goes to the bucket holding the sample's time, so a bucket covers
//! the queries of the sample period that ended in it (within one sample period of the
//! truth). Buckets are aligned on whole multiples of their step in Unix time.

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::{json, Value};

use crate::metrics::{Snapshot, LATENCY_BUCKETS};

/// How often the sampler reads the counters.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// The hour's step and length: 360 buckets of 10 s.
pub const HOUR_STEP: u64 = 10;
pub const HOUR_BUCKETS: usize = 360;
/// The day's step and length: 288 buckets of 5 minutes.
pub const DAY_STEP: u64 = 300;
pub const DAY_BUCKETS: usize = 288;

/// Which ring an overview reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    Hour,
    Day,
}

impl Window {
    pub fn parse(text: &str) -> Option<Window> {
        match text {
            "" | "hour" => Some(Window::Hour),
            "day" => Some(Window::Day),
            _ => None,
        }
    }

    pub fn step(self) -> u64 {
        match self {
            Window::Hour => HOUR_STEP,
            Window::Day => DAY_STEP,
        }
    }

    fn len(self) -> usize {
        match self {
            Window::Hour => HOUR_BUCKETS,
            Window::Day => DAY_BUCKETS,
        }
    }
}

/// What the sampler reads: the process's counters, and the replies the dashboard's tap
/// counted by class, in [`super::ring::Outcome::ALL`]'s order.
#[derive(Clone, Debug, Default)]
pub struct Reading {
    pub snap: Snapshot,
    pub classes: [u64; 5],
}

/// What happened in one bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bucket {
    /// Start of the bucket, Unix seconds.
    pub t: u64,
    /// Replies sent, the sum of the five classes.
    pub queries: u64,
    pub cached: u64,
    pub resolved: u64,
    pub redirected: u64,
    pub blocked: u64,
    pub failed: u64,
    pub hits: u64,
    pub misses: u64,
    pub upstream: u64,
    pub latency: [u64; LATENCY_BUCKETS.len() + 1],
}

impl Bucket {
    /// The difference `now - before` (counters only grow; saturating in case one wrapped).
    fn between(before: &Reading, now: &Reading) -> Bucket {
        let d = |a: u64, b: u64| b.saturating_sub(a);
        let c: [u64; 5] = std::array::from_fn(|i| d(before.classes[i], now.classes[i]));
        let (before, now) = (&before.snap, &now.snap);
        Bucket {
            t: 0,
            queries: c.iter().sum(),
            cached: c[0],
            resolved: c[1],
            redirected: c[2],
            blocked: c[3],
            failed: c[4],
            hits: d(before.cache_hits, now.cache_hits),
            misses: d(before.cache_misses, now.cache_misses),
            upstream: d(before.upstream_queries, now.upstream_queries),
            latency: std::array::from_fn(|i| d(before.latency[i], now.latency[i])),
        }
    }

    fn add(&mut self, o: &Bucket) {
        self.queries += o.queries;
        self.cached += o.cached;
        self.resolved += o.resolved;
        self.redirected += o.redirected;
        self.blocked += o.blocked;
        self.failed += o.failed;
        self.hits += o.hits;
        self.misses += o.misses;
        self.upstream += o.upstream;
        for (a, b) in self.latency.iter_mut().zip(&o.latency) {
            *a += b;
        }
    }

    /// The replies by class, as the query log classes each one ([`Outcome::of`]); they add
    /// up to `queries`.
    ///
    /// [`Outcome::of`]: super::ring::Outcome::of
    pub fn classes(&self) -> Classes {
        Classes {
            cached: self.cached,
            resolved: self.resolved,
            redirected: self.redirected,
            blocked: self.blocked,
            failed: self.failed,
        }
    }

    /// The bucket as the API shows it in `series`.
    pub fn to_json(&self) -> Value {
        let c = self.classes();
        json!({
            "t": self.t,
            "cached": c.cached,
            "resolved": c.resolved,
            "redirected": c.redirected,
            "blocked": c.blocked,
            "failed": c.failed,
        })
    }
}

/// A bucket's queries by class; they add up to its queries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Classes {
    pub cached: u64,
    pub resolved: u64,
    pub redirected: u64,
    pub blocked: u64,
    pub failed: u64,
}

impl Classes {
    pub fn add(&mut self, o: Classes) {
        self.cached += o.cached;
        self.resolved += o.resolved;
        self.redirected += o.redirected;
        self.blocked += o.blocked;
        self.failed += o.failed;
    }
}

/// The two rings and the last sample.
#[derive(Debug, Default)]
pub struct Series {
    last: Option<(u64, Reading)>,
    hour: VecDeque<Bucket>,
    day: VecDeque<Bucket>,
}

impl Series {
    /// Takes the counters as read at `now` (Unix seconds). The first sample only sets the
    /// starting point.
    pub fn record(&mut self, now: u64, reading: Reading) {
        let Some((_, before)) = self.last.replace((now, reading.clone())) else {
            return;
        };
        let delta = Bucket::between(&before, &reading);
        add(&mut self.hour, Window::Hour, now, &delta);
        add(&mut self.day, Window::Day, now, &delta);
    }

    /// The last sample: its time and counters.
    pub fn last(&self) -> Option<&(u64, Reading)> {
        self.last.as_ref()
    }

    /// The buckets of `window` ending at `now`, oldest first, with empty buckets where
    /// nothing was recorded (a regular series for charts).
    pub fn buckets(&self, window: Window, now: u64) -> Vec<Bucket> {
        let ring = match window {
            Window::Hour => &self.hour,
            Window::Day => &self.day,
        };
        let step = window.step();
        let end = now - now % step;
        let start = end.saturating_sub(step * (window.len() as u64 - 1));
        let mut out = Vec::new();
        let mut kept = ring
            .iter()
            .filter(|b| b.t >= start && b.t <= end)
            .peekable();
        let first = match kept.peek() {
            Some(b) => b.t,
            None => return out,
        };
        let mut t = first;
        for b in kept {
            while t < b.t {
                out.push(Bucket {
                    t,
                    ..Bucket::default()
                });
                t += step;
            }
            out.push(b.clone());
            t = b.t + step;
        }
        while t <= end {
            out.push(Bucket {
                t,
                ..Bucket::default()
            });
            t += step;
        }
        out
    }
}

impl Series {
    /// [`Series::buckets`] with what the counters `live` (read at `now`) add since the
    /// last sample put in the newest bucket, so the overview is current between samples.
    pub fn view(&self, window: Window, now: u64, live: &Reading) -> Vec<Bucket> {
        let mut out = self.buckets(window, now);
        if let Some((_, before)) = &self.last {
            let pending = Bucket::between(before, live);
            let end = now - now % window.step();
            match out.last_mut() {
                Some(b) if b.t == end => b.add(&pending),
                _ => out.push(Bucket { t: end, ..pending }),
            }
        }
        out
    }
}

fn add(ring: &mut VecDeque<Bucket>, window: Window, now: u64, delta: &Bucket) {
    let t = now - now % window.step();
    match ring.back_mut() {
        Some(b) if b.t == t => b.add(delta),
        _ => {
            ring.push_back(Bucket { t, ..delta.clone() });
            while ring.len() > window.len() {
                ring.pop_front();
            }
        }
    }
}

/// The sum of `buckets`.
pub fn total(buckets: &[Bucket]) -> Bucket {
    let mut sum = Bucket::default();
    for b in buckets {
        sum.add(b);
    }
    sum
}

/// The `p`-th percentile (0..1) in milliseconds of a latency histogram (counts per bucket
/// alone), interpolated linearly inside the bucket it falls in, as Prometheus's
/// `histogram_quantile` does; observations past the last bound count as the last bound.
/// 0 with no observations.
pub fn percentile_ms(latency: &[u64; LATENCY_BUCKETS.len() + 1], p: f64) -> f64 {
    let count: u64 = latency.iter().sum();
    if count == 0 {
        return 0.0;
    }
    let rank = p * count as f64;
    let mut seen = 0u64;
    for (i, &n) in latency.iter().enumerate() {
        if n > 0 && (seen + n) as f64 >= rank {
            let Some(&hi) = LATENCY_BUCKETS.get(i) else {
                return LATENCY_BUCKETS[LATENCY_BUCKETS.len() - 1] * 1000.0;
            };
            let lo = if i == 0 { 0.0 } else { LATENCY_BUCKETS[i - 1] };
            let within = ((rank - seen as f64) / n as f64).clamp(0.0, 1.0);
            return (lo + (hi - lo) * within) * 1000.0;
        }
        seen += n;
    }
    LATENCY_BUCKETS[LATENCY_BUCKETS.len() - 1] * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reading with `replies` in all, `hits` of them cached and `blocked` blocked, the
    /// rest resolved.
    fn snap(replies: u64, hits: u64, blocked: u64) -> Reading {
        Reading {
            snap: Snapshot {
                replies,
                cache_hits: hits,
                blocked,
                ..Snapshot::default()
            },
            classes: [hits, replies - hits - blocked, 0, blocked, 0],
        }
    }

    #[test]
    fn samples_become_differences_in_aligned_buckets() {
        let mut s = Series::default();
        let t0 = 999_999_900; // a multiple of 10 and of 300
        s.record(t0, snap(100, 50, 0));
        assert!(
            s.buckets(Window::Hour, t0).is_empty(),
            "first sample: no bucket"
        );
        s.record(t0 + 10, snap(130, 60, 5));
        s.record(t0 + 20, snap(130, 60, 5));
        s.record(t0 + 30, snap(150, 70, 5));
        let hour = s.buckets(Window::Hour, t0 + 30);
        let got: Vec<(u64, u64, u64, u64)> = hour
            .iter()
            .map(|b| (b.t - t0, b.queries, b.cached, b.classes().resolved))
            .collect();
        assert_eq!(got, [(10, 30, 10, 15), (20, 0, 0, 0), (30, 20, 10, 10)]);
        // The classes are the tap's, whatever the process counters say: a cache hit no
        // client saw (a health check's lookup) moves the hit ratio, not the classes.
        let mut extra = snap(150, 70, 5);
        extra.snap.cache_hits += 40;
        s.record(t0 + 40, extra);
        let b = s.buckets(Window::Hour, t0 + 40).pop().unwrap();
        let c = b.classes();
        assert_eq!((b.queries, c.cached, c.resolved, b.hits), (0, 0, 0, 40));
        // The day's bucket holds all three samples.
        let day = s.buckets(Window::Day, t0 + 30);
        assert_eq!(day.len(), 1);
        assert_eq!((day[0].t, day[0].queries, day[0].blocked), (t0, 50, 5));
    }

    #[test]
    fn rings_keep_an_hour_and_a_day_and_fill_gaps() {
        let mut s = Series::default();
        let t0 = 999_999_900;
        s.record(t0, snap(0, 0, 0));
        // Two hours of samples, one query each.
        for i in 1..=720u64 {
            s.record(t0 + i * 10, snap(i, 0, 0));
        }
        let now = t0 + 7200;
        let hour = s.buckets(Window::Hour, now);
        assert_eq!(hour.len(), HOUR_BUCKETS);
        assert_eq!(hour.first().unwrap().t, now - 3590);
        assert!(hour.iter().all(|b| b.queries == 1));
        assert_eq!(s.hour.len(), HOUR_BUCKETS, "bounded");
        let day = s.buckets(Window::Day, now);
        assert_eq!(total(&day).queries, 720);
        // A silent minute later: the series runs to now with empty buckets.
        let later = s.buckets(Window::Hour, now + 60);
        assert_eq!(later.last().unwrap().t, now + 60);
        assert_eq!(total(&later[later.len() - 6..]).queries, 0);
    }

    #[test]
    fn the_view_adds_what_came_since_the_last_sample() {
        let mut s = Series::default();
        let t0 = 999_999_900;
        s.record(t0, snap(10, 0, 0));
        let v = s.view(Window::Hour, t0 + 3, &snap(14, 2, 1));
        assert_eq!(v.len(), 1);
        assert_eq!(
            (v[0].t, v[0].queries, v[0].cached, v[0].blocked),
            (t0, 4, 2, 1)
        );
        s.record(t0 + 10, snap(20, 2, 1));
        let v = s.view(Window::Hour, t0 + 12, &snap(25, 2, 1));
        assert_eq!(
            v.iter().map(|b| (b.t - t0, b.queries)).collect::<Vec<_>>(),
            [(10, 15)],
            "the sample's 10 and the 5 since, in the bucket of now"
        );
        let v = s.view(Window::Hour, t0 + 21, &snap(26, 2, 1));
        assert_eq!(
            v.iter().map(|b| (b.t - t0, b.queries)).collect::<Vec<_>>(),
            [(10, 10), (20, 6)]
        );
    }

    #[test]
    fn percentiles_interpolate_inside_buckets() {
        let mut h = [0u64; LATENCY_BUCKETS.len() + 1];
        assert_eq!(percentile_ms(&h, 0.5), 0.0);
        // 10 observations in (5 ms, 10 ms], 10 in (50 ms, 100 ms].
        h[3] = 10;
        h[6] = 10;
        assert!((percentile_ms(&h, 0.5) - 10.0).abs() < 1e-9);
        assert!((percentile_ms(&h, 0.25) - 7.5).abs() < 1e-9);
        assert!((percentile_ms(&h, 0.9) - 90.0).abs() < 1e-9);
        h[LATENCY_BUCKETS.len()] = 100;
        assert_eq!(percentile_ms(&h, 0.99), 5000.0, "past 5 s counts as 5 s");
    }
}
