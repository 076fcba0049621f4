//! Top lists (domains, blocked domains, clients) over a chosen window of up to a day,
//! from per-minute count buckets rather than from the query log ring, which holds fewer
//! queries than a busy day.
//!
//! # Bound and approximation
//!
//! The minute being filled counts up to [`LIVE_KEYS`] distinct keys per kind exactly; a
//! key first seen after that many are there is not counted in that minute (a flood of
//! random names cannot grow the map). When the minute closes, it keeps its [`KEPT_KEYS`]
//! most counted keys per kind and drops the rest. At most [`MINUTES`] closed minutes are kept (a day). So the
//! memory is bounded by `MINUTES × 3 × KEPT_KEYS` keys (216,000 names of at most 253
//! bytes; about 10 MB for typical names) plus one live minute.
//!
//! A key's count over a window is exact for every minute in which it was among the
//! minute's [`KEPT_KEYS`] most counted, and misses its count in the other minutes: the
//! total undercounts a key by at most the sum, over the window's minutes, of each
//! minute's [`KEPT_KEYS`]th largest count (the bound of merging truncated per-bucket top
//! lists). The keys a top-10 list shows are those near the top of most minutes, so they
//! come out exact or nearly. Pi-hole counts from its SQLite database (exact, at the cost
//! of a disk write per query); this trades exactness in the tail for a fixed memory bound
//! and no I/O.

use std::collections::{HashMap, VecDeque};

/// Distinct keys counted exactly per kind in the minute being filled.
pub const LIVE_KEYS: usize = 4096;
/// Keys kept per kind when a minute closes.
pub const KEPT_KEYS: usize = 50;
/// Closed minutes kept: one day.
pub const MINUTES: usize = 24 * 60;

/// What a top list ranks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Names asked and not blocked (Pi-hole's "top permitted domains").
    Domains,
    /// Names a blocking rule answered.
    Blocked,
    /// Clients, by every query they sent (hashed with `--query-log-hash-clients`).
    Clients,
}

impl Kind {
    pub fn parse(text: &str) -> Option<Kind> {
        match text {
            "domains" => Some(Kind::Domains),
            "blocked" => Some(Kind::Blocked),
            "clients" => Some(Kind::Clients),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Domains => "domains",
            Kind::Blocked => "blocked",
            Kind::Clients => "clients",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One closed minute: its most counted keys per kind.
#[derive(Debug)]
struct Minute {
    minute: u64,
    keys: [Vec<(Box<str>, u32)>; 3],
}

/// The minute being filled.
#[derive(Debug, Default)]
struct Live {
    minute: u64,
    keys: [HashMap<Box<str>, u32>; 3],
}

/// Per-minute buckets for the three kinds.
#[derive(Debug, Default)]
pub struct Top {
    live: Live,
    closed: VecDeque<Minute>,
}

impl Top {
    /// Counts one query at `now` (Unix seconds): its name under `Domains` or `Blocked`,
    /// its client under `Clients`.
    pub fn count(&mut self, now: u64, name: &str, client: &str, blocked: bool) {
        self.roll(now / 60);
        let kind = if blocked {
            Kind::Blocked
        } else {
            Kind::Domains
        };
        self.bump(kind, name);
        self.bump(Kind::Clients, client);
    }

    fn bump(&mut self, kind: Kind, key: &str) {
        let map = &mut self.live.keys[kind.index()];
        if let Some(n) = map.get_mut(key) {
            *n = n.saturating_add(1);
        } else if map.len() < LIVE_KEYS {
            map.insert(key.into(), 1);
        }
    }

    /// Closes the live minute when `minute` is a later one.
    fn roll(&mut self, minute: u64) {
        if minute <= self.live.minute {
            return;
        }
        let live = std::mem::replace(
            &mut self.live,
            Live {
                minute,
                ..Live::default()
            },
        );
        if live.keys.iter().all(HashMap::is_empty) {
            return;
        }
        let keys = live.keys.map(|map| {
            let mut v: Vec<(Box<str>, u32)> = map.into_iter().collect();
            v.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            v.truncate(KEPT_KEYS);
            v.shrink_to_fit();
            v
        });
        self.closed.push_back(Minute {
            minute: live.minute,
            keys,
        });
        while self.closed.len() > MINUTES
            || self
                .closed
                .front()
                .is_some_and(|m| m.minute + (MINUTES as u64) < minute)
        {
            self.closed.pop_front();
        }
    }

    /// The `n` most counted keys of `kind` over the last `window` seconds before `now`
    /// (the current minute included), most counted first, ties by key.
    pub fn top(&self, kind: Kind, now: u64, window: u64, n: usize) -> Vec<(String, u64)> {
        let i = kind.index();
        let now_minute = now / 60;
        let first = now_minute.saturating_sub(window.div_ceil(60).saturating_sub(1));
        let mut sum: HashMap<&str, u64> = HashMap::new();
        if self.live.minute >= first && self.live.minute <= now_minute {
            for (k, c) in &self.live.keys[i] {
                *sum.entry(k).or_default() += u64::from(*c);
            }
        }
        for m in self.closed.iter().rev() {
            if m.minute < first {
                break;
            }
            if m.minute > now_minute {
                continue;
            }
            for (k, c) in &m.keys[i] {
                *sum.entry(k).or_default() += u64::from(*c);
            }
        }
        let mut out: Vec<(String, u64)> =
            sum.into_iter().map(|(k, c)| (k.to_string(), c)).collect();
        out.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out.truncate(n);
        out
    }

    /// Keys held in closed minutes (for the bound's test).
    #[cfg(test)]
    fn closed_keys(&self) -> usize {
        self.closed
            .iter()
            .map(|m| m.keys.iter().map(Vec::len).sum::<usize>())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_000_000_020; // 20 s into a minute

    #[test]
    fn counts_over_a_window_of_minutes() {
        let mut top = Top::default();
        for _ in 0..5 {
            top.count(T0, "a.example.", "10.0.0.1", false);
        }
        top.count(T0, "ads.example.", "10.0.0.2", true);
        top.count(T0 + 60, "b.example.", "10.0.0.2", false);
        top.count(T0 + 60, "a.example.", "10.0.0.2", false);
        let now = T0 + 60;
        assert_eq!(
            top.top(Kind::Domains, now, 3600, 10),
            [("a.example.".to_string(), 6), ("b.example.".to_string(), 1)]
        );
        assert_eq!(
            top.top(Kind::Domains, now, 60, 10),
            [("a.example.".to_string(), 1), ("b.example.".to_string(), 1)],
            "the last minute only"
        );
        assert_eq!(
            top.top(Kind::Blocked, now, 3600, 10),
            [("ads.example.".to_string(), 1)]
        );
        assert_eq!(
            top.top(Kind::Clients, now, 3600, 1),
            [("10.0.0.1".to_string(), 5)]
        );
        // A day later, the first minutes are gone.
        top.count(T0 + 86_400 + 60, "c.example.", "10.0.0.3", false);
        let later = top.top(Kind::Domains, T0 + 86_400 + 60, 86_400, 10);
        assert_eq!(later, [("c.example.".to_string(), 1)]);
    }

    #[test]
    fn each_minute_keeps_a_bounded_number_of_keys() {
        let mut top = Top::default();
        // A flood of distinct names, minute after minute (random subdomains).
        for m in 0..30u64 {
            for i in 0..(LIVE_KEYS + 500) {
                top.count(
                    T0 + m * 60,
                    &format!("r{i}.flood.example."),
                    "10.0.0.9",
                    false,
                );
            }
            // The one real name, asked a few times each minute.
            for _ in 0..3 {
                top.count(T0 + m * 60, "real.example.", "10.0.0.1", false);
            }
        }
        top.count(T0 + 30 * 60, "x.", "10.0.0.1", false);
        assert!(
            top.closed_keys() <= 30 * 3 * KEPT_KEYS,
            "{}",
            top.closed_keys()
        );
        assert!(top.live.keys.iter().all(|m| m.len() <= LIVE_KEYS));
        // The real name came after LIVE_KEYS others each minute, so it was not counted:
        // the documented approximation. Clients are few, so they count exactly.
        let list = top.top(Kind::Domains, T0 + 30 * 60, 3600, 3);
        assert!(
            list.iter().all(|(k, c)| *c <= 30 && k != "real.example."),
            "{list:?}"
        );
        assert_eq!(
            top.top(Kind::Clients, T0 + 30 * 60, 3600, 1)[0],
            ("10.0.0.9".to_string(), 30 * (LIVE_KEYS as u64 + 500))
        );
    }
}
