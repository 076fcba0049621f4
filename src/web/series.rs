//! The overview's time series: a sampler reads the process's counters
//! ([`crate::metrics::Metrics::snapshot`]) every [`SAMPLE_EVERY`] and keeps the differences
//! in two rings, [`HOUR_BUCKETS`] buckets of 10 s (the last hour) and [`DAY_BUCKETS`] of
//! 5 minutes (the last day). Nothing is counted on the query path for this: the counters
//! exist anyway, and the sampler's read is one pass over the per-thread blocks.
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

/// What happened in one bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bucket {
    /// Start of the bucket, Unix seconds.
    pub t: u64,
    pub queries: u64,
    pub cached: u64,
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
    fn between(before: &Snapshot, now: &Snapshot) -> Bucket {
        let d = |a: u64, b: u64| b.saturating_sub(a);
        Bucket {
            t: 0,
            queries: d(before.replies, now.replies),
            cached: d(before.cache_hits, now.cache_hits),
            redirected: d(before.redirected, now.redirected),
            blocked: d(before.blocked, now.blocked),
            failed: d(before.failed, now.failed),
            hits: d(before.cache_hits, now.cache_hits),
            misses: d(before.cache_misses, now.cache_misses),
            upstream: d(before.upstream_queries, now.upstream_queries),
            latency: std::array::from_fn(|i| d(before.latency[i], now.latency[i])),
        }
    }

    fn add(&mut self, o: &Bucket) {
        self.queries += o.queries;
        self.cached += o.cached;
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

    /// The queries by class, in the order the query log classes a reply ([`Outcome::of`]):
    /// blocked, redirected, failed, cached, and resolved for the rest. The counters come
    /// from different places (a cached SERVFAIL counts as a hit and a failure; the
    /// dashboard's own lookups count as hits and send no reply), so each class is capped
    /// at what the ones before it left, and the five add up to `queries`.
    ///
    /// [`Outcome::of`]: super::ring::Outcome::of
    pub fn classes(&self) -> Classes {
        let mut left = self.queries;
        let mut take = |n: u64| {
            let n = n.min(left);
            left -= n;
            n
        };
        let blocked = take(self.blocked);
        let redirected = take(self.redirected);
        let failed = take(self.failed);
        let cached = take(self.cached);
        Classes {
            cached,
            resolved: left,
            redirected,
            blocked,
            failed,
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
    last: Option<(u64, Snapshot)>,
    hour: VecDeque<Bucket>,
    day: VecDeque<Bucket>,
}

impl Series {
    /// Takes the counters as read at `now` (Unix seconds). The first sample only sets the
    /// starting point.
    pub fn record(&mut self, now: u64, snap: Snapshot) {
        let Some((_, before)) = self.last.replace((now, snap.clone())) else {
            return;
        };
        let delta = Bucket::between(&before, &snap);
        add(&mut self.hour, Window::Hour, now, &delta);
        add(&mut self.day, Window::Day, now, &delta);
    }

    /// The last sample: its time and counters.
    pub fn last(&self) -> Option<&(u64, Snapshot)> {
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
    pub fn view(&self, window: Window, now: u64, live: &Snapshot) -> Vec<Bucket> {
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

    fn snap(replies: u64, hits: u64, blocked: u64) -> Snapshot {
        Snapshot {
            replies,
            cache_hits: hits,
            blocked,
            ..Snapshot::default()
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
        // Classes never add up to more than the queries.
        let odd = Bucket {
            queries: 4,
            cached: 6,
            failed: 1,
            ..Bucket::default()
        };
        let c = odd.classes();
        assert_eq!((c.failed, c.cached, c.resolved), (1, 3, 0));
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
