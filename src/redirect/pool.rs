//! Address pools: members with weights, the policy that picks among the healthy ones, and
//! what to do when none is healthy.

use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::health::HealthSpec;

/// How a pool chooses the first address of an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyKind {
    /// Each healthy member in turn.
    RoundRobin,
    /// Smooth weighted round-robin (nginx's algorithm): shares follow the weights exactly
    /// over any window of `sum(weights)` picks, and heavy members are interleaved, not
    /// bunched.
    Weighted,
    /// At random, in proportion to the weights.
    Random,
    /// The first healthy member in the listed order (ordered failover).
    FirstHealthy,
    /// Sticky: a client address (or its prefix) always gets the same member while that
    /// member is healthy. Weighted rendezvous hashing, so a member going down moves only its
    /// own clients.
    ClientHash,
    /// The healthy member whose health checks answer fastest (smoothed RTT).
    LowestLatency,
}

impl PolicyKind {
    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::RoundRobin => "round-robin",
            PolicyKind::Weighted => "weighted",
            PolicyKind::Random => "random",
            PolicyKind::FirstHealthy => "first-healthy",
            PolicyKind::ClientHash => "client-hash",
            PolicyKind::LowestLatency => "lowest-latency",
        }
    }
}

/// What a pool answers when no member of the asked family is healthy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AllDown {
    /// Answer with every member anyway (better a maybe-dead server than none).
    #[default]
    ServeAll,
    /// SERVFAIL, so clients try their next resolver or fail fast.
    Servfail,
    /// Resolve the name normally, as if there were no rule.
    Resolve,
}

impl AllDown {
    pub fn name(self) -> &'static str {
        match self {
            AllDown::ServeAll => "serve-all",
            AllDown::Servfail => "servfail",
            AllDown::Resolve => "resolve",
        }
    }
}

/// Health of one member, written by its checker task and read lock-free by every query.
#[derive(Debug)]
pub struct MemberState {
    up: AtomicBool,
    /// Smoothed check RTT in microseconds; `u64::MAX` until the first success.
    srtt_us: AtomicU64,
    /// Up/down changes so far.
    transitions: AtomicU64,
    /// Unix seconds of the last check that finished; 0 before the first.
    last_check: AtomicU64,
}

impl Default for MemberState {
    fn default() -> Self {
        Self {
            // Members count as up until the first check says otherwise.
            up: AtomicBool::new(true),
            srtt_us: AtomicU64::new(u64::MAX),
            transitions: AtomicU64::new(0),
            last_check: AtomicU64::new(0),
        }
    }
}

impl MemberState {
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Sets the state; returns whether it changed (and counts the change).
    pub(crate) fn set_up(&self, up: bool) -> bool {
        let changed = self.up.swap(up, Ordering::Relaxed) != up;
        if changed {
            self.transitions.fetch_add(1, Ordering::Relaxed);
        }
        changed
    }

    pub fn rtt(&self) -> Option<Duration> {
        match self.srtt_us.load(Ordering::Relaxed) {
            u64::MAX => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    /// Smooths a successful check's RTT in (RFC 6298 §2's 1/8 gain).
    pub(crate) fn record_rtt(&self, rtt: Duration) {
        let sample = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX - 1);
        let old = self.srtt_us.load(Ordering::Relaxed);
        let new = if old == u64::MAX {
            sample
        } else {
            old - old / 8 + sample / 8
        };
        self.srtt_us.store(new, Ordering::Relaxed);
    }

    pub fn transitions(&self) -> u64 {
        self.transitions.load(Ordering::Relaxed)
    }

    /// Unix seconds of the last finished check, if there was one.
    pub fn last_check(&self) -> Option<u64> {
        match self.last_check.load(Ordering::Relaxed) {
            0 => None,
            t => Some(t),
        }
    }

    /// A check finished at `unix_secs`.
    pub(crate) fn checked_at(&self, unix_secs: u64) {
        self.last_check.store(unix_secs, Ordering::Relaxed);
    }

    pub(crate) fn copy_from(&self, other: &MemberState) {
        self.up.store(other.is_up(), Ordering::Relaxed);
        self.srtt_us
            .store(other.srtt_us.load(Ordering::Relaxed), Ordering::Relaxed);
        self.transitions
            .store(other.transitions(), Ordering::Relaxed);
        self.last_check
            .store(other.last_check.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

/// One pool member.
#[derive(Debug)]
pub struct Member {
    pub address: IpAddr,
    pub weight: u32,
    /// Port for health checks when it differs from the pool's.
    pub check_port: Option<u16>,
    pub state: MemberState,
}

/// A pool of addresses behind one or more names.
#[derive(Debug)]
pub struct Pool {
    pub name: String,
    pub members: Vec<Member>,
    pub policy: PolicyKind,
    /// Addresses per answer (the picked one first, then the next healthy ones).
    pub answers: usize,
    pub ttl: u32,
    pub all_down: AllDown,
    /// Client-hash keys on the client's address cut to these prefix lengths.
    pub client_prefix_v4: u8,
    pub client_prefix_v6: u8,
    pub health: Option<HealthSpec>,
    rr: AtomicUsize,
    /// Smooth weighted round-robin's current weights, one per member.
    swrr: Mutex<Vec<i64>>,
}

/// What a pool answers for one query.
#[derive(Debug, PartialEq, Eq)]
pub enum Pick {
    /// These addresses, the chosen one first (indices into `members`).
    Members(Vec<usize>),
    /// No member of the asked family exists.
    NoMembers,
    /// Every member of the family is down and `all-down = servfail`.
    ServFail,
    /// Every member of the family is down and `all-down = resolve`.
    Resolve,
}

impl Pool {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: String,
        members: Vec<(IpAddr, u32, Option<u16>)>,
        policy: PolicyKind,
        answers: usize,
        ttl: u32,
        all_down: AllDown,
        client_prefix: (u8, u8),
        health: Option<HealthSpec>,
    ) -> Self {
        let n = members.len();
        Self {
            name,
            members: members
                .into_iter()
                .map(|(address, weight, check_port)| Member {
                    address,
                    weight,
                    check_port,
                    state: MemberState::default(),
                })
                .collect(),
            policy,
            answers: answers.max(1),
            ttl,
            all_down,
            client_prefix_v4: client_prefix.0,
            client_prefix_v6: client_prefix.1,
            health,
            rr: AtomicUsize::new(0),
            swrr: Mutex::new(vec![0; n]),
        }
    }

    /// Picks the members to answer `client` with, among those of the family asked (`v6`).
    pub fn pick(&self, client: IpAddr, v6: bool) -> Pick {
        let family: Vec<usize> = (0..self.members.len())
            .filter(|&i| self.members[i].address.is_ipv6() == v6)
            .collect();
        if family.is_empty() {
            return Pick::NoMembers;
        }
        let mut healthy: Vec<usize> = family
            .iter()
            .copied()
            .filter(|&i| self.members[i].state.is_up())
            .collect();
        if healthy.is_empty() {
            match self.all_down {
                AllDown::ServeAll => healthy = family,
                AllDown::Servfail => return Pick::ServFail,
                AllDown::Resolve => return Pick::Resolve,
            }
        }
        let first = self.choose(&healthy, client);
        let at = healthy.iter().position(|&i| i == first).unwrap_or(0);
        let count = self.answers.min(healthy.len());
        Pick::Members(
            (0..count)
                .map(|k| healthy[(at + k) % healthy.len()])
                .collect(),
        )
    }

    /// The policy's choice among `healthy` (non-empty, in listed order).
    fn choose(&self, healthy: &[usize], client: IpAddr) -> usize {
        let weight = |i: usize| u64::from(self.members[i].weight.max(1));
        match self.policy {
            PolicyKind::RoundRobin => {
                healthy[self.rr.fetch_add(1, Ordering::Relaxed) % healthy.len()]
            }
            PolicyKind::Weighted => {
                let mut current = self.swrr.lock().unwrap_or_else(|e| e.into_inner());
                let total: i64 = healthy.iter().map(|&i| weight(i) as i64).sum();
                let mut best = healthy[0];
                for &i in healthy {
                    current[i] += weight(i) as i64;
                    if current[i] > current[best] {
                        best = i;
                    }
                }
                current[best] -= total;
                best
            }
            PolicyKind::Random => {
                let total: u64 = healthy.iter().map(|&i| weight(i)).sum();
                let mut r = rand::random::<u64>() % total;
                for &i in healthy {
                    if r < weight(i) {
                        return i;
                    }
                    r -= weight(i);
                }
                healthy[0]
            }
            PolicyKind::FirstHealthy => healthy[0],
            PolicyKind::ClientHash => {
                let key = self.client_key(client);
                let mut best = (f64::MIN, healthy[0]);
                for &i in healthy {
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    (key, self.members[i].address).hash(&mut h);
                    // Weighted rendezvous hashing: score = -w / ln(u), u uniform in (0, 1).
                    let u = ((h.finish() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
                    let score = -(weight(i) as f64) / u.ln();
                    if score > best.0 {
                        best = (score, i);
                    }
                }
                best.1
            }
            PolicyKind::LowestLatency => healthy
                .iter()
                .copied()
                .min_by_key(|&i| self.members[i].state.rtt().unwrap_or(Duration::MAX))
                .unwrap_or(healthy[0]),
        }
    }

    /// The client's address cut to the configured prefix.
    fn client_key(&self, client: IpAddr) -> IpAddr {
        let net = match client {
            IpAddr::V4(_) => ipnet::IpNet::new(client, self.client_prefix_v4),
            IpAddr::V6(_) => ipnet::IpNet::new(client, self.client_prefix_v6),
        };
        net.map_or(client, |n| n.trunc().addr())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(policy: PolicyKind, weights: &[u32]) -> Pool {
        let members = weights
            .iter()
            .enumerate()
            .map(|(i, &w)| (IpAddr::from([10, 0, 0, i as u8 + 1]), w, None))
            .collect();
        Pool::new(
            "p".into(),
            members,
            policy,
            1,
            5,
            AllDown::ServeAll,
            (32, 128),
            None,
        )
    }

    fn first(p: &Pool, client: IpAddr) -> usize {
        match p.pick(client, false) {
            Pick::Members(m) => m[0],
            other => panic!("{other:?}"),
        }
    }

    fn shares(p: &Pool, n: usize) -> Vec<f64> {
        let mut counts = vec![0usize; p.members.len()];
        for _ in 0..n {
            counts[first(p, IpAddr::from([127, 0, 0, 1]))] += 1;
        }
        counts.iter().map(|&c| c as f64 / n as f64).collect()
    }

    #[test]
    fn smooth_weighted_round_robin_is_exact_and_interleaved() {
        let p = pool(PolicyKind::Weighted, &[5, 1, 1]);
        let seq: Vec<usize> = (0..7)
            .map(|_| first(&p, IpAddr::from([1, 1, 1, 1])))
            .collect();
        // nginx's example: a a b a c a a (never five a's in a row).
        assert_eq!(seq, [0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn random_follows_the_weights() {
        let p = pool(PolicyKind::Random, &[6, 3, 1]);
        let s = shares(&p, 100_000);
        for (got, want) in s.iter().zip([0.6, 0.3, 0.1]) {
            assert!((got - want).abs() < 0.01, "{s:?}");
        }
    }

    #[test]
    fn down_members_are_skipped_and_all_down_is_obeyed() {
        let mut p = pool(PolicyKind::FirstHealthy, &[1, 1]);
        let c = IpAddr::from([1, 1, 1, 1]);
        assert_eq!(first(&p, c), 0);
        p.members[0].state.set_up(false);
        assert_eq!(first(&p, c), 1);
        p.members[1].state.set_up(false);
        assert_eq!(p.pick(c, false), Pick::Members(vec![0]));
        p.all_down = AllDown::Servfail;
        assert_eq!(p.pick(c, false), Pick::ServFail);
        p.all_down = AllDown::Resolve;
        assert_eq!(p.pick(c, false), Pick::Resolve);
        assert_eq!(p.pick(c, true), Pick::NoMembers);
        assert_eq!(p.members[0].state.transitions(), 1);
    }

    #[test]
    fn client_hash_is_sticky_and_moves_only_the_dead_members_clients() {
        let p = pool(PolicyKind::ClientHash, &[1, 1, 1, 1]);
        let clients: Vec<IpAddr> = (1..=200)
            .map(|i| IpAddr::from([10, 1, 0, i as u8]))
            .collect();
        let before: Vec<usize> = clients.iter().map(|&c| first(&p, c)).collect();
        assert_eq!(
            before,
            clients.iter().map(|&c| first(&p, c)).collect::<Vec<_>>()
        );
        assert!(
            (0..4).all(|m| before.contains(&m)),
            "spread over every member"
        );
        p.members[2].state.set_up(false);
        for (c, b) in clients.iter().zip(&before) {
            let now = first(&p, *c);
            if *b != 2 {
                assert_eq!(now, *b, "clients of healthy members stay");
            } else {
                assert_ne!(now, 2);
            }
        }
    }

    #[test]
    fn lowest_latency_prefers_the_fastest_member() {
        let p = pool(PolicyKind::LowestLatency, &[1, 1, 1]);
        p.members[0].state.record_rtt(Duration::from_millis(9));
        p.members[1].state.record_rtt(Duration::from_millis(2));
        p.members[2].state.record_rtt(Duration::from_millis(5));
        assert_eq!(first(&p, IpAddr::from([1, 1, 1, 1])), 1);
    }

    #[test]
    fn several_answers_start_with_the_pick() {
        let mut p = pool(PolicyKind::RoundRobin, &[1, 1, 1]);
        p.answers = 2;
        let c = IpAddr::from([1, 1, 1, 1]);
        assert_eq!(p.pick(c, false), Pick::Members(vec![0, 1]));
        assert_eq!(p.pick(c, false), Pick::Members(vec![1, 2]));
        assert_eq!(p.pick(c, false), Pick::Members(vec![2, 0]));
    }
}
