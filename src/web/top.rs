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

use std::collections::VecDeque;
use std::hash::Hash;

use hashbrown::HashMap;

use super::ring::ClientKey;

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
}

/// One closed minute: its most counted keys per kind.
#[derive(Debug)]
struct Minute {
    minute: u64,
    domains: Vec<(Box<str>, u32)>,
    blocked: Vec<(Box<str>, u32)>,
    clients: Vec<(ClientKey, u32)>,
}

/// The minute being filled (hashbrown's maps: a faster hash than std's SipHash, and
/// lookups by `&str` without allocating; a key is copied only when first seen).
#[derive(Debug, Default)]
struct Live {
    minute: u64,
    domains: HashMap<Box<str>, u32>,
    blocked: HashMap<Box<str>, u32>,
    clients: HashMap<ClientKey, u32>,
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
    pub fn count(&mut self, now: u64, name: &str, client: ClientKey, blocked: bool) {
        self.roll(now / 60);
        let names = if blocked {
            &mut self.live.blocked
        } else {
            &mut self.live.domains
        };
        if let Some(n) = names.get_mut(name) {
            *n = n.saturating_add(1);
        } else if names.len() < LIVE_KEYS {
            names.insert(name.into(), 1);
        }
        if let Some(n) = self.live.clients.get_mut(&client) {
            *n = n.saturating_add(1);
        } else if self.live.clients.len() < LIVE_KEYS {
            self.live.clients.insert(client, 1);
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
        if live.clients.is_empty() {
            return;
        }
        self.closed.push_back(Minute {
            minute: live.minute,
            domains: most(live.domains),
            blocked: most(live.blocked),
            clients: most(live.clients),
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
        let now_minute = now / 60;
        let first = now_minute.saturating_sub(window.div_ceil(60).saturating_sub(1));
        let live =
            (self.live.minute >= first && self.live.minute <= now_minute).then_some(&self.live);
        let closed = self
            .closed
            .iter()
            .rev()
            .take_while(|m| m.minute >= first)
            .filter(|m| m.minute <= now_minute);
        let mut out: Vec<(String, u64)> = match kind {
            Kind::Domains => sum(
                live.map(|l| &l.domains),
                closed.map(|m| &m.domains[..]),
                |k| k.to_string(),
            ),
            Kind::Blocked => sum(
                live.map(|l| &l.blocked),
                closed.map(|m| &m.blocked[..]),
                |k| k.to_string(),
            ),
            Kind::Clients => sum(
                live.map(|l| &l.clients),
                closed.map(|m| &m.clients[..]),
                ClientKey::to_string,
            ),
        };
        out.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out.truncate(n);
        out
    }

    /// Keys held in closed minutes (for the bound's test).
    #[cfg(test)]
    fn closed_keys(&self) -> usize {
        self.closed
            .iter()
            .map(|m| m.domains.len() + m.blocked.len() + m.clients.len())
            .sum()
    }
}

/// A closed minute's share of `map`: its [`KEPT_KEYS`] most counted keys.
fn most<K: Ord>(map: HashMap<K, u32>) -> Vec<(K, u32)> {
    let mut v: Vec<(K, u32)> = map.into_iter().collect();
    v.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(KEPT_KEYS);
    v.shrink_to_fit();
    v
}

/// The counts of the live minute and the closed ones added up per key, as text.
fn sum<'a, K: Hash + Eq + 'a>(
    live: Option<&'a HashMap<K, u32>>,
    closed: impl Iterator<Item = &'a [(K, u32)]>,
    text: impl Fn(&K) -> String,
) -> Vec<(String, u64)> {
    let mut total: HashMap<&K, u64> = HashMap::new();
    for (k, c) in live.into_iter().flatten() {
        *total.entry(k).or_default() += u64::from(*c);
    }
    for minute in closed {
        for (k, c) in minute {
            *total.entry(k).or_default() += u64::from(*c);
        }
    }
    total.into_iter().map(|(k, c)| (text(k), c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_000_000_020; // 20 s into a minute

    fn c(ip: &str) -> ClientKey {
        ClientKey::Addr(ip.parse().unwrap())
    }

    #[test]
    fn counts_over_a_window_of_minutes() {
        let mut top = Top::default();
        for _ in 0..5 {
            top.count(T0, "a.example.", c("10.0.0.1"), false);
        }
        top.count(T0, "ads.example.", c("10.0.0.2"), true);
        top.count(T0 + 60, "b.example.", c("10.0.0.2"), false);
        top.count(T0 + 60, "a.example.", c("10.0.0.2"), false);
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
        top.count(T0 + 86_400 + 60, "c.example.", c("10.0.0.3"), false);
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
                    c("10.0.0.9"),
                    false,
                );
            }
            // The one real name, asked a few times each minute.
            for _ in 0..3 {
                top.count(T0 + m * 60, "real.example.", c("10.0.0.1"), false);
            }
        }
        top.count(T0 + 30 * 60, "x.", c("10.0.0.1"), false);
        assert!(
            top.closed_keys() <= 30 * 3 * KEPT_KEYS,
            "{}",
            top.closed_keys()
        );
        assert!(top.live.domains.len() <= LIVE_KEYS && top.live.clients.len() <= LIVE_KEYS);
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
