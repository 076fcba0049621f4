//! The dashboard's query log: the last replies in memory, bounded by a byte budget
//! (`--web-log-bytes`), newest first on the way out, filtered as `/api/log` asks.
//!
//! Each entry is charged its struct size plus its strings plus [`ALLOC_OVERHEAD`] per heap
//! string, an estimate of what the allocator really holds; the oldest entries go first
//! when a new one would pass the budget.

use std::collections::VecDeque;
use std::net::IpAddr;

use serde_json::{json, Value};

/// Bytes charged per heap allocation beyond its length (jemalloc's small size classes
/// round up; 16 is a fair mean for short names).
const ALLOC_OVERHEAD: usize = 16;

/// A client as the dashboard keeps it: its address, or (with `--query-log-hash-clients`)
/// the query log's keyed hash of it. No allocation either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClientKey {
    Addr(IpAddr),
    Hash(u64),
}

impl std::fmt::Display for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientKey::Addr(ip) => write!(f, "{ip}"),
            // As the query log writes it.
            ClientKey::Hash(h) => write!(f, "{h:016x}"),
        }
    }
}

impl ClientKey {
    /// Whether the text form holds `needle`, formatted on the stack.
    fn contains(&self, needle: &str) -> bool {
        use std::io::Write;
        let mut buf = [0u8; 48];
        let mut cursor = std::io::Cursor::new(&mut buf[..]);
        if write!(cursor, "{self}").is_err() {
            return false;
        }
        let len = cursor.position() as usize;
        std::str::from_utf8(&buf[..len]).is_ok_and(|t| t.contains(needle))
    }
}

/// A record type's mnemonic (`A`, `AAAA`, `TYPE65280`), as the query log writes it.
pub fn qtype_name(code: u16) -> String {
    hickory_proto::rr::RecordType::from(code).to_string()
}

/// How a reply was answered, as the overview counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Cached,
    Resolved,
    Redirected,
    Blocked,
    Failed,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Outcome::Cached,
        Outcome::Resolved,
        Outcome::Redirected,
        Outcome::Blocked,
        Outcome::Failed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Outcome::Cached => "cached",
            Outcome::Resolved => "resolved",
            Outcome::Redirected => "redirected",
            Outcome::Blocked => "blocked",
            Outcome::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.name() == text)
    }

    /// The class of one reply: a blocking rule, another rule (PASSTHRU excepted), a
    /// failure (SERVFAIL, REFUSED), a cache hit, else resolved. The same order the
    /// overview's counters give.
    pub fn of(blocked: bool, action: Option<&str>, rcode: &str, cache: &str) -> Outcome {
        if blocked {
            Outcome::Blocked
        } else if action.is_some_and(|a| a != "passthru") {
            Outcome::Redirected
        } else if rcode == "SERVFAIL" || rcode == "REFUSED" {
            Outcome::Failed
        } else if cache == "hit" {
            Outcome::Cached
        } else {
            Outcome::Resolved
        }
    }
}

/// One reply kept.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Unix milliseconds when it was sent.
    pub t_ms: u64,
    pub client: ClientKey,
    pub name: Box<str>,
    pub qtype: u16,
    pub rcode: &'static str,
    pub proto: &'static str,
    pub outcome: Outcome,
    pub cache: &'static str,
    pub rule: Option<Box<str>>,
    pub action: Option<&'static str>,
    pub upstream: u32,
    pub latency_ms: f32,
}

impl Entry {
    /// Bytes this entry is charged against the budget.
    pub fn cost(&self) -> usize {
        let heap = |s: &str| s.len() + ALLOC_OVERHEAD;
        std::mem::size_of::<Entry>() + heap(&self.name) + self.rule.as_deref().map_or(0, heap)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "t": self.t_ms,
            "client": self.client.to_string(),
            "name": &*self.name,
            "qtype": qtype_name(self.qtype),
            "rcode": self.rcode,
            "proto": self.proto,
            "outcome": self.outcome.name(),
            "cache": self.cache,
            "rule": self.rule.as_deref(),
            "action": self.action,
            "upstream": self.upstream,
            "latency_ms": self.latency_ms,
        })
    }
}

/// What `/api/log` asks for: substring filters on client and name (name without case),
/// exact ones on the others; `None` matches everything.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub client: Option<String>,
    pub name: Option<String>,
    /// A type code (the API parses the mnemonic).
    pub qtype: Option<u16>,
    pub outcome: Option<Outcome>,
    pub rcode: Option<String>,
}

impl Filter {
    fn matches(&self, e: &Entry) -> bool {
        self.client
            .as_ref()
            .is_none_or(|c| e.client.contains(c.as_str()))
            && self
                .name
                .as_ref()
                .is_none_or(|n| contains_ignore_case(&e.name, n))
            && self.qtype.is_none_or(|t| e.qtype == t)
            && self.outcome.is_none_or(|o| e.outcome == o)
            && self
                .rcode
                .as_ref()
                .is_none_or(|r| e.rcode.eq_ignore_ascii_case(r))
    }
}

/// Whether `needle` occurs in `hay`, ASCII letters compared without case (no allocation:
/// a filter runs over every entry under the ring's lock).
fn contains_ignore_case(hay: &str, needle: &str) -> bool {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

/// The ring.
#[derive(Debug)]
pub struct Ring {
    entries: VecDeque<Entry>,
    bytes: usize,
    budget: usize,
}

impl Ring {
    pub fn new(budget: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            bytes: 0,
            budget,
        }
    }

    /// Adds `entry`, dropping the oldest until it fits.
    pub fn push(&mut self, entry: Entry) {
        let cost = entry.cost();
        if cost > self.budget {
            return;
        }
        while self.bytes + cost > self.budget {
            match self.entries.pop_front() {
                Some(old) => self.bytes -= old.cost(),
                None => break,
            }
        }
        self.bytes += cost;
        self.entries.push_back(entry);
    }

    /// Bytes charged now (at most the budget).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Up to `limit` entries that pass `filter`, newest first.
    pub fn query(&self, filter: &Filter, limit: usize) -> Vec<&Entry> {
        self.entries
            .iter()
            .rev()
            .filter(|e| filter.matches(e))
            .take(limit)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u64, name: &str, outcome: Outcome) -> Entry {
        Entry {
            t_ms: i,
            client: ClientKey::Addr("192.0.2.1".parse().unwrap()),
            name: name.into(),
            qtype: 1,
            rcode: "NOERROR",
            proto: "udp",
            outcome,
            cache: "miss",
            rule: None,
            action: None,
            upstream: 1,
            latency_ms: 1.5,
        }
    }

    #[test]
    fn the_ring_stays_within_its_byte_budget_dropping_the_oldest() {
        let one = entry(0, "www.example.com.", Outcome::Resolved).cost();
        let mut ring = Ring::new(one * 10 + one / 2);
        for i in 0..25 {
            ring.push(entry(i, "www.example.com.", Outcome::Resolved));
            assert!(ring.bytes() <= one * 10 + one / 2);
        }
        assert_eq!(ring.len(), 10);
        let newest: Vec<u64> = ring
            .query(&Filter::default(), 3)
            .iter()
            .map(|e| e.t_ms)
            .collect();
        assert_eq!(newest, [24, 23, 22], "newest first; the oldest went");
        // A longer entry takes the room of more than one short one.
        ring.push(entry(99, &"x".repeat(200), Outcome::Resolved));
        assert!(ring.len() < 10 && ring.bytes() <= one * 10 + one / 2);
        // A typical query costs about 180 bytes: 8 MiB (the default) holds some 45,000.
        assert!((150..200).contains(&one), "{one}");
        // An entry larger than the whole budget is not kept (and evicts nothing).
        let mut tiny = Ring::new(10);
        tiny.push(entry(1, "a.", Outcome::Resolved));
        assert!(tiny.is_empty());
    }

    #[test]
    fn filters_are_substrings_for_client_and_name_and_exact_for_the_rest() {
        let mut ring = Ring::new(1 << 20);
        ring.push(entry(1, "ads.tracker.net.", Outcome::Blocked));
        ring.push(entry(2, "www.Example.com.", Outcome::Cached));
        let mut other = entry(3, "mail.example.com.", Outcome::Failed);
        other.client = ClientKey::Addr("198.51.100.7".parse().unwrap());
        other.rcode = "SERVFAIL";
        other.qtype = 15;
        ring.push(other);
        let names =
            |f: Filter| -> Vec<u64> { ring.query(&f, 100).iter().map(|e| e.t_ms).collect() };
        let f = |name: &str| Filter {
            name: Some(name.into()),
            ..Filter::default()
        };
        assert_eq!(names(f("example")), [3, 2], "substring, any case");
        assert_eq!(
            names(Filter {
                outcome: Some(Outcome::Blocked),
                ..Filter::default()
            }),
            [1]
        );
        assert_eq!(
            names(Filter {
                client: Some("198.51".into()),
                qtype: Some(15),
                rcode: Some("servfail".into()),
                ..Filter::default()
            }),
            [3]
        );
        assert_eq!(
            names(Filter {
                qtype: Some(1),
                ..Filter::default()
            }),
            [2, 1],
            "exact type: MX is not A"
        );
    }

    #[test]
    fn clients_show_as_the_query_log_shows_them() {
        let ip = ClientKey::Addr("2001:db8::7".parse().unwrap());
        assert_eq!(ip.to_string(), "2001:db8::7");
        assert!(ip.contains("db8::"));
        let h = ClientKey::Hash(0xabc);
        assert_eq!(h.to_string(), "0000000000000abc");
        assert!(h.contains("abc") && !h.contains("db8"));
        assert_eq!(qtype_name(28), "AAAA");
    }

    #[test]
    fn outcomes_follow_the_overview_order() {
        assert_eq!(
            Outcome::of(true, Some("block"), "NXDOMAIN", "-"),
            Outcome::Blocked
        );
        assert_eq!(
            Outcome::of(false, Some("override"), "NOERROR", "-"),
            Outcome::Redirected
        );
        assert_eq!(
            Outcome::of(false, Some("passthru"), "NOERROR", "hit"),
            Outcome::Cached
        );
        assert_eq!(
            Outcome::of(false, None, "SERVFAIL", "miss"),
            Outcome::Failed
        );
        assert_eq!(
            Outcome::of(false, None, "NXDOMAIN", "miss"),
            Outcome::Resolved
        );
        assert_eq!(Outcome::parse("blocked"), Some(Outcome::Blocked));
        assert_eq!(Outcome::parse("nope"), None);
    }
}
