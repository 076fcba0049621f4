//! A loaded set of rules: names (exact and `*.suffix`) mapped to actions, and the decision
//! for one question.
//!
//! Several rules may share a name (split horizon: one for the LAN, one for everyone else).
//! At one name, rules with `clients` come first, then the rest in load order (`[[rule]]`
//! entries, then blocklists, then RPZ files). The first rule that applies to the client
//! wins; if none does, the next less specific name is tried.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use hickory_proto::rr::rdata::{A, AAAA, CNAME, SOA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use ipnet::IpNet;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::names::{self, NameError, NameTable, Scope};
use super::pool::{Pick, Pool};
use crate::dns::{Failure, Outcome, Question};
use crate::trace::{HopEvent, MemberView};

/// What a matching rule does.
#[derive(Clone, Debug)]
pub enum Action {
    /// Fixed A and AAAA sets; other types get NODATA unless `passthrough`.
    Override {
        a: Vec<Ipv4Addr>,
        aaaa: Vec<Ipv6Addr>,
        ttl: u32,
        passthrough: bool,
    },
    /// A CNAME to `target`, which is resolved normally (or redirected in turn).
    Alias { target: Name, ttl: u32 },
    /// NXDOMAIN, or with `sinkhole` 0.0.0.0 / :: (NODATA for other types).
    Block { sinkhole: bool, ttl: u32 },
    /// Addresses from a pool (index into [`RuleSet::pools`]).
    Pool { pool: usize, passthrough: bool },
    /// RPZ NODATA (`CNAME *.`).
    NoData { ttl: u32 },
    /// RPZ PASSTHRU (`CNAME rpz-passthru.`): resolve normally, no less specific rule applies.
    Passthru,
    /// RPZ DROP (`CNAME rpz-drop.`): send no reply at all.
    Drop,
    /// RPZ local data: these records, owned by the query name (NODATA for absent types).
    Local { records: Vec<RData>, ttl: u32 },
}

impl Action {
    /// Whether the action withholds the answer (the `block` actions of
    /// [`crate::metrics::RULE_ACTIONS`]): what a [pause](super::pause) turns off.
    pub fn is_block(&self) -> bool {
        matches!(
            self,
            Action::Block { .. } | Action::NoData { .. } | Action::Drop
        )
    }

    /// The action's name in the `hopdns_blocked` and `hopdns_redirected` metrics.
    pub fn metric_name(&self) -> &'static str {
        match self {
            Action::Override { .. } => "override",
            Action::Alias { .. } => "alias",
            Action::Block { sinkhole: true, .. } => "sinkhole",
            Action::Block { .. } => "block",
            Action::Pool { .. } => "pool",
            Action::NoData { .. } => "nodata",
            Action::Passthru => "passthru",
            Action::Drop => "drop",
            Action::Local { .. } => "local",
        }
    }

    /// A short description for trace output and logs.
    pub fn describe(&self, pools: &[Arc<Pool>]) -> String {
        match self {
            Action::Override { a, aaaa, ttl, .. } => {
                let addrs: Vec<String> = a
                    .iter()
                    .map(ToString::to_string)
                    .chain(aaaa.iter().map(ToString::to_string))
                    .collect();
                format!("override {} ttl {ttl}", addrs.join(" "))
            }
            Action::Alias { target, .. } => format!("alias to {target}"),
            Action::Block { sinkhole: true, .. } => "block (sinkhole)".into(),
            Action::Block { .. } => "block (NXDOMAIN)".into(),
            Action::Pool { pool, .. } => {
                let p = &pools[*pool];
                format!(
                    "pool {} ({}, {} answer{}, all-down {})",
                    p.name,
                    p.policy.name(),
                    p.answers,
                    if p.answers == 1 { "" } else { "s" },
                    p.all_down.name()
                )
            }
            Action::NoData { .. } => "rpz NODATA".into(),
            Action::Passthru => "rpz PASSTHRU".into(),
            Action::Drop => "rpz DROP".into(),
            Action::Local { records, .. } => format!("rpz local data ({} records)", records.len()),
        }
    }
}

/// One rule. Imported lists share one rule among all their names.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Networks the rule applies to; empty = every client.
    pub clients: Vec<IpNet>,
    pub action: Action,
    /// Where it was defined: `file:line` or the imported file.
    pub origin: Arc<str>,
}

impl Rule {
    fn applies(&self, client: IpAddr) -> bool {
        self.clients.is_empty() || self.clients.iter().any(|n| n.contains(&client))
    }
}

/// What to do with one question.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// No rule (or PASSTHRU, or a pool with `all-down = resolve`): resolve normally.
    Pass,
    /// This outcome, made here; never stored in the resolver's cache.
    Done(Outcome),
    /// Answer `cname`, then whatever `target` gets.
    Alias { cname: Record, target: Name },
}

/// Rules ready for lookup. Dropping it stops its health checks.
pub struct RuleSet {
    names: NameTable,
    /// Rule indices per name and scope, ordered as the module documentation says.
    groups: Vec<Box<[u32]>>,
    rules: Vec<Rule>,
    /// Answers given by each rule since this set was loaded (relaxed atomics: one add per
    /// redirected answer).
    hits: Box<[AtomicU64]>,
    /// Names bound to each rule.
    bound: Vec<u64>,
    /// The first name bound to each rule, as rules write it (`name`, `*.name`).
    first_name: Vec<Option<Box<str>>>,
    pub pools: Vec<Arc<Pool>>,
    /// Files read to build this set (the rules file first).
    pub files: Vec<std::path::PathBuf>,
    /// Entries skipped as unsupported (RPZ IP triggers and the like).
    pub skipped: usize,
    /// Unix seconds when the set was put in service (0 before).
    pub loaded_at: u64,
    /// The layer's pause of blocking rules, shared across reloads.
    pub(crate) pause: Option<Arc<super::pause::BlockingPause>>,
    stop: Option<DropGuard>,
}

/// One file of a rule set: names it bound, by action (for the dashboard).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSummary {
    pub path: std::path::PathBuf,
    pub entries: u64,
    pub by_action: std::collections::BTreeMap<&'static str, u64>,
}

/// One rule and the answers it gave since the set was loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleHits {
    /// Where it was defined (`file:line`, or the imported list).
    pub origin: String,
    /// The first name it was bound to (`name` or `*.name`), and how many it has: one for a
    /// `[[rule]]`, every entry for an imported list.
    pub name: Option<String>,
    pub names: u64,
    pub action: &'static str,
    pub hits: u64,
}

impl std::fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSet")
            .field("names", &self.names.len())
            .field("rules", &self.rules.len())
            .field("pools", &self.pools.len())
            .finish()
    }
}

/// A rule found for a name.
pub struct Hit<'a> {
    pub rule: &'a Rule,
    /// The rule's index in the set.
    pub index: u32,
    /// The matched name (the suffix of the query name for `*.name`).
    pub zone: &'a [u8],
    pub scope: Scope,
}

impl Hit<'_> {
    /// The matched key as written in rules: `name` or `*.name`.
    pub fn pattern(&self) -> String {
        let text = String::from_utf8_lossy(self.zone);
        match self.scope {
            Scope::Exact => text.into_owned(),
            Scope::Below => format!("*.{text}"),
        }
    }
}

impl RuleSet {
    /// Names with at least one rule.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Heap bytes of the name table (the bulk of a large blocklist).
    pub fn name_bytes(&self) -> usize {
        self.names.heap_bytes()
    }

    /// The rule for `key` (see [`names::key_from_name`]) as asked by `client`.
    /// While blocking is paused, blocking rules are skipped as if absent.
    pub fn lookup<'a>(&'a self, key: &'a [u8], client: IpAddr) -> Option<Hit<'a>> {
        let paused = self.pause.as_ref().is_some_and(|p| p.is_paused());
        let (len, scope, r) = self.names.find(key, |g| {
            self.groups[g as usize].iter().copied().find(|&r| {
                let rule = &self.rules[r as usize];
                rule.applies(client) && !(paused && rule.action.is_block())
            })
        })?;
        Some(Hit {
            rule: &self.rules[r as usize],
            index: r,
            zone: &key[key.len() - len..],
            scope,
        })
    }

    /// Whether a rule applies to `name` (class IN) as asked by `client`: `Some(true)` if
    /// it is RPZ PASSTHRU, `Some(false)` for any other action.
    pub fn rule_for(&self, name: &Name, client: IpAddr) -> Option<bool> {
        let mut buf = [0u8; 256];
        let key = names::key_from_name(name, &mut buf)?;
        self.lookup(key, client)
            .map(|hit| matches!(hit.rule.action, Action::Passthru))
    }

    /// The CNAME chain in `answers` from `qname` up to the first name a rule applies to
    /// (the links, and that name), as RPZ and Unbound check every name a chain reaches
    /// (issue 11.7): answering `qname` must not bypass a rule on its target. A PASSTHRU
    /// rule on a name of the chain ends the check there, as Unbound's `rpz_passthru` does.
    pub fn chain_hit(
        &self,
        qname: &Name,
        answers: &[Record],
        client: IpAddr,
    ) -> Option<(Vec<Record>, Name)> {
        let mut name = qname;
        let mut links = Vec::new();
        // Each link is a different record, so the walk ends within answers.len() steps.
        for _ in 0..answers.len() {
            let link = answers
                .iter()
                .find(|r| r.record_type() == RecordType::CNAME && r.name == *name)?;
            let RData::CNAME(CNAME(target)) = &link.data else {
                return None;
            };
            links.push(link.clone());
            match self.rule_for(target, client) {
                None => name = target,
                Some(true) => return None,
                Some(false) => return Some((links, target.clone())),
            }
        }
        None
    }

    /// Per file read, the names bound to its rules by action. A rule belongs to the file
    /// its origin names (the longest file path its origin starts with).
    pub fn file_summaries(&self) -> Vec<FileSummary> {
        let mut out: Vec<FileSummary> = self
            .files
            .iter()
            .map(|p| FileSummary {
                path: p.clone(),
                entries: 0,
                by_action: Default::default(),
            })
            .collect();
        let texts: Vec<String> = self.files.iter().map(|p| p.display().to_string()).collect();
        for (rule, &n) in self.rules.iter().zip(&self.bound) {
            let owner = texts
                .iter()
                .enumerate()
                .filter(|(_, t)| rule.origin.starts_with(t.as_str()))
                .max_by_key(|(_, t)| t.len())
                .map(|(i, _)| i);
            if let Some(f) = owner.and_then(|i| out.get_mut(i)) {
                f.entries += n;
                *f.by_action.entry(rule.action.metric_name()).or_default() += n;
            }
        }
        out
    }

    /// Every rule with its answers since the set was loaded.
    pub fn rule_hits(&self) -> Vec<RuleHits> {
        self.rules
            .iter()
            .zip(self.hits.iter())
            .enumerate()
            .map(|(i, (r, h))| RuleHits {
                origin: r.origin.to_string(),
                name: self.first_name.get(i).cloned().flatten().map(Into::into),
                names: self.bound.get(i).copied().unwrap_or(0),
                action: r.action.metric_name(),
                hits: h.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Whether any rule applies to the raw `key` for `client` (the fast path's check).
    pub fn matches(&self, key: &[u8], client: IpAddr) -> bool {
        self.lookup(key, client).is_some()
    }

    /// Starts the health checks of every pool that has them; they stop when this set is
    /// dropped.
    pub(crate) fn start_health(&mut self, stats: &Arc<super::Stats>, rt: &tokio::runtime::Handle) {
        let token = CancellationToken::new();
        for pool in &self.pools {
            super::health::spawn(pool.clone(), stats.clone(), rt, token.clone());
        }
        self.stop = Some(token.drop_guard());
    }

    /// Copies member health from `old` for pools and members that are still there, so a
    /// reload does not forget which servers are down.
    pub(crate) fn adopt_health(&self, old: &RuleSet) {
        for pool in &self.pools {
            let Some(prev) = old.pools.iter().find(|p| p.name == pool.name) else {
                continue;
            };
            for m in &pool.members {
                if let Some(pm) = prev.members.iter().find(|pm| pm.address == m.address) {
                    m.state.copy_from(&pm.state);
                }
            }
        }
    }

    /// The verdict for `question` asked by `client`, and a trace event when `traced`.
    pub fn decide(
        &self,
        question: &Question,
        client: IpAddr,
        traced: bool,
    ) -> (Verdict, Option<HopEvent>) {
        if question.qclass != DNSClass::IN {
            return (Verdict::Pass, None);
        }
        let mut buf = [0u8; 256];
        let Some(key) = names::key_from_name(&question.name, &mut buf) else {
            return (Verdict::Pass, None);
        };
        let Some(hit) = self.lookup(key, client) else {
            return (Verdict::Pass, None);
        };
        let mut members = Vec::new();
        let verdict = self.verdict(question, client, &hit, traced.then_some(&mut members));
        crate::metrics::metrics().rule_answer(hit.rule.action.metric_name());
        if let Some(h) = self.hits.get(hit.index as usize) {
            h.fetch_add(1, Ordering::Relaxed);
        }
        crate::metrics::note::with(|n| {
            n.rule = Some(format!("{} ({})", hit.pattern(), hit.rule.origin));
            n.action = Some(hit.rule.action.metric_name());
        });
        let event = traced.then(|| HopEvent::Redirect {
            depth: 0,
            question: question.clone(),
            rule: hit.pattern(),
            origin: hit.rule.origin.to_string(),
            action: hit.rule.action.describe(&self.pools),
            members,
        });
        (verdict, event)
    }

    fn verdict(
        &self,
        q: &Question,
        client: IpAddr,
        hit: &Hit<'_>,
        members: Option<&mut Vec<MemberView>>,
    ) -> Verdict {
        let name = &q.name;
        // The matched name, cut from the query name (the key's labels are its last ones).
        let zone = || name.trim_to(hit.zone.iter().filter(|&&c| c == b'.').count() + 1);
        let answer = |records: Vec<Record>| Verdict::Done(Outcome::Answer { answers: records });
        let nodata = |ttl: u32| {
            Verdict::Done(Outcome::NoData {
                answers: Vec::new(),
                soa: Some(soa(zone(), ttl)),
            })
        };
        match &hit.rule.action {
            Action::Override {
                a,
                aaaa,
                ttl,
                passthrough,
            } => {
                let records: Vec<RData> = a
                    .iter()
                    .map(|ip| RData::A(A(*ip)))
                    .chain(aaaa.iter().map(|ip| RData::AAAA(AAAA(*ip))))
                    .collect();
                let found = local(name, q.qtype, &records, *ttl);
                match found {
                    Some(rs) if !rs.is_empty() => answer(rs),
                    // A type with no override (AAAA too, when only `a` is given).
                    _ if *passthrough => Verdict::Pass,
                    _ => nodata(*ttl),
                }
            }
            Action::Local { records, ttl } => match local(name, q.qtype, records, *ttl) {
                Some(rs) if !rs.is_empty() => answer(rs),
                _ => nodata(*ttl),
            },
            Action::Alias { target, ttl } => {
                let cname =
                    Record::from_rdata(name.clone(), *ttl, RData::CNAME(CNAME(target.clone())));
                if q.qtype == RecordType::CNAME {
                    answer(vec![cname])
                } else {
                    Verdict::Alias {
                        cname,
                        target: target.clone(),
                    }
                }
            }
            Action::Block {
                sinkhole: false,
                ttl,
            } => Verdict::Done(Outcome::NxDomain {
                answers: Vec::new(),
                soa: Some(soa(zone(), *ttl)),
            }),
            Action::Block {
                sinkhole: true,
                ttl,
            } => {
                let rdata = match q.qtype {
                    RecordType::A => RData::A(A(Ipv4Addr::UNSPECIFIED)),
                    RecordType::AAAA => RData::AAAA(AAAA(Ipv6Addr::UNSPECIFIED)),
                    _ => return nodata(*ttl),
                };
                answer(vec![Record::from_rdata(name.clone(), *ttl, rdata)])
            }
            Action::NoData { ttl } => nodata(*ttl),
            Action::Passthru => Verdict::Pass,
            Action::Drop => Verdict::Done(Outcome::Drop),
            Action::Pool { pool, passthrough } => {
                let pool = &self.pools[*pool];
                let v6 = match q.qtype {
                    RecordType::A => false,
                    RecordType::AAAA => true,
                    _ if *passthrough => return Verdict::Pass,
                    _ => return nodata(pool.ttl),
                };
                let pick = pool.pick(client, v6);
                if let Some(out) = members {
                    let chosen: &[usize] = match &pick {
                        Pick::Members(m) => m,
                        _ => &[],
                    };
                    out.extend(pool.members.iter().enumerate().map(|(i, m)| MemberView {
                        address: m.address,
                        weight: m.weight,
                        up: m.state.is_up(),
                        rtt: m.state.rtt(),
                        changes: m.state.transitions(),
                        chosen: chosen.contains(&i),
                    }));
                }
                match pick {
                    Pick::Members(ids) => answer(
                        ids.iter()
                            .map(|&i| {
                                let rdata = match pool.members[i].address {
                                    IpAddr::V4(ip) => RData::A(A(ip)),
                                    IpAddr::V6(ip) => RData::AAAA(AAAA(ip)),
                                };
                                Record::from_rdata(name.clone(), pool.ttl, rdata)
                            })
                            .collect(),
                    ),
                    Pick::NoMembers => nodata(pool.ttl),
                    Pick::ServFail => {
                        Verdict::Done(Outcome::ServFail(Failure::PoolDown(pool.name.clone())))
                    }
                    Pick::Resolve => Verdict::Pass,
                }
            }
        }
    }
}

/// The reverse name of `ip` without the trailing dot (RFC 1035 §3.5, RFC 3596 §2.5).
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(72);
            for byte in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
            }
            s.push_str("ip6.arpa");
            s
        }
    }
}

/// Records of `qtype` (all for ANY) among `rdata`, owned by `name`; `None` if none.
fn local(name: &Name, qtype: RecordType, rdata: &[RData], ttl: u32) -> Option<Vec<Record>> {
    let rs: Vec<Record> = rdata
        .iter()
        .filter(|r| qtype == RecordType::ANY || r.record_type() == qtype)
        .map(|r| Record::from_rdata(name.clone(), ttl, r.clone()))
        .collect();
    (!rs.is_empty()).then_some(rs)
}

/// A made-up SOA for negative answers, owned by the matched name (`owner`), whose MINIMUM (and TTL)
/// is the rule's TTL, so clients cache the negative answer that long (RFC 2308 §5).
fn soa(owner: Name, ttl: u32) -> Record {
    // RFC 2606 §2: .invalid names can never clash with real servers.
    static NAMES: LazyLock<(Name, Name)> = LazyLock::new(|| {
        let n = |s: &str| Name::from_ascii(s).unwrap_or_else(|_| Name::root());
        (n("hopdns.invalid."), n("hostmaster.hopdns.invalid."))
    });
    let (mname, rname) = NAMES.clone();
    Record::from_rdata(
        owner,
        ttl,
        RData::SOA(SOA::new(mname, rname, 1, 3600, 600, 86400, ttl)),
    )
}

/// Builds a [`RuleSet`]: rules, then names bound to them.
#[derive(Default)]
pub struct Builder {
    names: NameTable,
    groups: Vec<Box<[u32]>>,
    rules: Vec<Rule>,
    pools: Vec<Arc<Pool>>,
    files: Vec<std::path::PathBuf>,
    skipped: usize,
    /// The group holding only rule r.
    single: HashMap<u32, u32>,
    /// The group made by adding rule r to group g.
    merged: HashMap<(u32, u32), u32>,
    /// Answer PTR queries for the addresses of overrides ([`Builder::finish`]).
    pub ptr_for_overrides: bool,
    /// Exact names bound to overrides, for those PTR answers.
    overrides: Vec<(Box<[u8]>, u32)>,
    /// Names bound to each rule.
    bound: Vec<u64>,
    /// The first name bound to each rule.
    first_name: Vec<Option<Box<str>>>,
}

impl Builder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add_rule(&mut self, rule: Rule) -> u32 {
        self.rules.push(rule);
        self.bound.push(0);
        self.first_name.push(None);
        (self.rules.len() - 1) as u32
    }

    pub fn add_pool(&mut self, pool: Pool) -> usize {
        self.pools.push(Arc::new(pool));
        self.pools.len() - 1
    }

    pub fn pool_index(&self, name: &str) -> Option<usize> {
        self.pools.iter().position(|p| p.name == name)
    }

    /// Room for `names` more names of `bytes` bytes in all (an upper bound is fine).
    pub fn reserve(&mut self, names: usize, bytes: usize) {
        self.names.reserve(names, bytes);
    }

    pub fn add_file(&mut self, path: std::path::PathBuf) {
        self.files.push(path);
    }

    pub fn skip(&mut self) {
        self.skipped += 1;
    }

    /// Makes `key` (in `scope`) point at `rule`, after any rules it already has.
    pub fn bind(&mut self, key: &[u8], scope: Scope, rule: u32) -> Result<(), NameError> {
        if scope == Scope::Exact
            && matches!(self.rules[rule as usize].action, Action::Override { .. })
        {
            self.overrides.push((key.into(), rule));
        }
        let group = match self.names.get(key, scope) {
            None => self.single(rule),
            Some(g) => self.merge(g, rule),
        };
        self.names.upsert(key, scope, |_| group)?;
        if let Some(n) = self.bound.get_mut(rule as usize) {
            *n += 1;
        }
        if let Some(first @ None) = self.first_name.get_mut(rule as usize) {
            let text = String::from_utf8_lossy(key);
            *first = Some(match scope {
                Scope::Exact => text.into(),
                Scope::Below => format!("*.{text}").into(),
            });
        }
        Ok(())
    }

    fn single(&mut self, rule: u32) -> u32 {
        if let Some(&g) = self.single.get(&rule) {
            return g;
        }
        self.groups.push(Box::new([rule]));
        let g = (self.groups.len() - 1) as u32;
        self.single.insert(rule, g);
        g
    }

    fn merge(&mut self, group: u32, rule: u32) -> u32 {
        if let Some(&g) = self.merged.get(&(group, rule)) {
            return g;
        }
        let mut rules = self.groups[group as usize].to_vec();
        if !rules.contains(&rule) {
            rules.push(rule);
        }
        // Client-scoped rules first; otherwise load order (a stable sort keeps it).
        rules.sort_by_key(|&r| self.rules[r as usize].clients.is_empty());
        self.groups.push(rules.into_boxed_slice());
        let g = (self.groups.len() - 1) as u32;
        self.merged.insert((group, rule), g);
        g
    }

    /// With `ptr_for_overrides`, every address of an exact override (a `[[rule]]` or a hosts
    /// file line) answers its reverse name with PTR records to the names that have it, as
    /// Pi-hole and systemd-resolved answer for local names (RFC 1035 §3.5). Rules already
    /// bound to a reverse name come first. One rule per address and client scope.
    fn bind_reverse(&mut self) {
        // Per (address, client scope): the names, the shortest TTL, the first origin.
        type Scoped = (IpAddr, Vec<IpNet>);
        let mut by_ip: Vec<(Scoped, Vec<Name>, u32, Arc<str>)> = Vec::new();
        let mut index: HashMap<Scoped, usize> = HashMap::new();
        for (key, rule) in std::mem::take(&mut self.overrides) {
            let r = &self.rules[rule as usize];
            let Action::Override { a, aaaa, ttl, .. } = &r.action else {
                continue;
            };
            let Some(name) = std::str::from_utf8(&key)
                .ok()
                .and_then(|k| Name::from_ascii(format!("{k}.")).ok())
            else {
                continue;
            };
            let ips = a
                .iter()
                .map(|ip| IpAddr::V4(*ip))
                .chain(aaaa.iter().map(|ip| IpAddr::V6(*ip)));
            for ip in ips {
                let k = (ip, r.clients.clone());
                let i = *index.entry(k.clone()).or_insert_with(|| {
                    by_ip.push((k, Vec::new(), *ttl, r.origin.clone()));
                    by_ip.len() - 1
                });
                let entry = &mut by_ip[i];
                if !entry.1.contains(&name) {
                    entry.1.push(name.clone());
                }
                entry.2 = entry.2.min(*ttl);
            }
        }
        let mut key = Vec::new();
        for ((ip, clients), names, ttl, origin) in by_ip {
            let records = names
                .into_iter()
                .map(|n| RData::PTR(hickory_proto::rr::rdata::PTR(n)))
                .collect();
            let id = self.add_rule(Rule {
                clients,
                action: Action::Local { records, ttl },
                origin: format!("{origin} (PTR for the override's address)").into(),
            });
            if names::key_from_text(&reverse_name(ip), &mut key).is_ok() {
                // A full table leaves the PTR out; the overrides themselves are bound.
                let _ = self.bind(&key, Scope::Exact, id);
            }
        }
    }

    pub fn finish(mut self) -> RuleSet {
        if self.ptr_for_overrides {
            self.bind_reverse();
        }
        self.names.shrink_to_fit();
        RuleSet {
            names: self.names,
            groups: self.groups,
            hits: self.rules.iter().map(|_| AtomicU64::new(0)).collect(),
            bound: self.bound,
            first_name: self.first_name,
            rules: self.rules,
            pools: self.pools,
            files: self.files,
            skipped: self.skipped,
            loaded_at: 0,
            pause: None,
            stop: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> Vec<u8> {
        let mut v = Vec::new();
        names::key_from_text(s, &mut v).unwrap();
        v
    }

    fn rule(b: &mut Builder, clients: &[&str], action: Action) -> u32 {
        b.add_rule(Rule {
            clients: clients.iter().map(|c| c.parse().unwrap()).collect(),
            action,
            origin: "test".into(),
        })
    }

    fn q(name: &str, t: RecordType) -> Question {
        Question::new(Name::from_ascii(name).unwrap(), t)
    }

    fn block() -> Action {
        Action::Block {
            sinkhole: false,
            ttl: 60,
        }
    }

    #[test]
    fn client_scoped_rules_apply_to_their_networks_only() {
        let mut b = Builder::new();
        let lan = rule(
            &mut b,
            &["192.168.1.0/24"],
            Action::Override {
                a: vec!["192.168.1.5".parse().unwrap()],
                aaaa: vec![],
                ttl: 60,
                passthrough: false,
            },
        );
        let all = rule(&mut b, &[], block());
        // The unscoped rule is bound first; the scoped one still comes first in the group.
        b.bind(&key("nas.lan"), Scope::Exact, all).unwrap();
        b.bind(&key("nas.lan"), Scope::Exact, lan).unwrap();
        let set = b.finish();
        let (v, _) = set.decide(
            &q("nas.lan.", RecordType::A),
            "192.168.1.9".parse().unwrap(),
            false,
        );
        assert!(matches!(v, Verdict::Done(Outcome::Answer { .. })), "{v:?}");
        let (v, _) = set.decide(
            &q("nas.lan.", RecordType::A),
            "10.0.0.1".parse().unwrap(),
            false,
        );
        let Verdict::Done(Outcome::NxDomain { soa: Some(soa), .. }) = v else {
            panic!("{v:?}")
        };
        assert_eq!(
            soa.name.to_string(),
            "nas.lan.",
            "owned by the matched name"
        );
    }

    /// Issue 15.4: the addresses of overrides answer PTR, every name with the address in one
    /// RRset; switched off, the reverse names are not answered here.
    #[test]
    fn overrides_answer_ptr_for_their_addresses() {
        for on in [true, false] {
            let mut b = Builder::new();
            b.ptr_for_overrides = on;
            let over = |a: &str, aaaa: &str| Action::Override {
                a: vec![a.parse().unwrap()],
                aaaa: vec![aaaa.parse().unwrap()],
                ttl: 60,
                passthrough: false,
            };
            let nas = rule(&mut b, &[], over("192.168.1.5", "fd00::5"));
            let alias = rule(&mut b, &[], over("192.168.1.5", "fd00::6"));
            b.bind(&key("nas.lan"), Scope::Exact, nas).unwrap();
            b.bind(&key("files.lan"), Scope::Exact, alias).unwrap();
            let set = b.finish();
            let client = "192.168.1.9".parse().unwrap();
            let (v, _) = set.decide(
                &q("5.1.168.192.in-addr.arpa.", RecordType::PTR),
                client,
                false,
            );
            if !on {
                assert_eq!(v, Verdict::Pass);
                continue;
            }
            let Verdict::Done(Outcome::Answer { answers }) = v else {
                panic!("{v:?}")
            };
            let names: Vec<String> = answers.iter().map(|r| r.data.to_string()).collect();
            assert_eq!(names, ["nas.lan.", "files.lan."]);
            let v6 = format!("{}.", reverse_name("fd00::6".parse().unwrap()));
            let (v, _) = set.decide(&q(&v6, RecordType::PTR), client, false);
            let Verdict::Done(Outcome::Answer { answers }) = v else {
                panic!("{v:?}")
            };
            assert_eq!(answers[0].data.to_string(), "files.lan.");
        }
    }

    #[test]
    fn override_gives_nodata_for_other_types_unless_passthrough() {
        let mut b = Builder::new();
        let mk = |passthrough| Action::Override {
            a: vec!["10.0.0.1".parse().unwrap()],
            aaaa: vec![],
            ttl: 30,
            passthrough,
        };
        let strict = rule(&mut b, &[], mk(false));
        let loose = rule(&mut b, &[], mk(true));
        b.bind(&key("a.test"), Scope::Exact, strict).unwrap();
        b.bind(&key("b.test"), Scope::Exact, loose).unwrap();
        let set = b.finish();
        let c: IpAddr = "127.0.0.1".parse().unwrap();
        let (v, _) = set.decide(&q("a.test.", RecordType::MX), c, false);
        assert!(
            matches!(v, Verdict::Done(Outcome::NoData { soa: Some(_), .. })),
            "{v:?}"
        );
        let (v, _) = set.decide(&q("a.test.", RecordType::AAAA), c, false);
        assert!(matches!(v, Verdict::Done(Outcome::NoData { .. })), "{v:?}");
        let (v, _) = set.decide(&q("b.test.", RecordType::MX), c, false);
        assert_eq!(v, Verdict::Pass);
        // Every type without an override passes through, AAAA included.
        let (v, _) = set.decide(&q("b.test.", RecordType::AAAA), c, false);
        assert_eq!(v, Verdict::Pass);
        let (v, _) = set.decide(&q("b.test.", RecordType::A), c, false);
        assert!(matches!(v, Verdict::Done(Outcome::Answer { .. })), "{v:?}");
    }

    #[test]
    fn passthru_shadows_a_wildcard_block_and_sinkhole_answers_zero_addresses() {
        let mut b = Builder::new();
        let sink = rule(
            &mut b,
            &[],
            Action::Block {
                sinkhole: true,
                ttl: 10,
            },
        );
        let pass = rule(&mut b, &[], Action::Passthru);
        b.bind(&key("ads.test"), Scope::Below, sink).unwrap();
        b.bind(&key("ok.ads.test"), Scope::Exact, pass).unwrap();
        let set = b.finish();
        let c: IpAddr = "127.0.0.1".parse().unwrap();
        let (v, ev) = set.decide(&q("x.ads.test.", RecordType::AAAA), c, true);
        let Verdict::Done(Outcome::Answer { answers }) = v else {
            panic!("{v:?}")
        };
        assert_eq!(answers[0].data, RData::AAAA(AAAA(Ipv6Addr::UNSPECIFIED)));
        let Some(HopEvent::Redirect { rule, action, .. }) = ev else {
            panic!("{ev:?}")
        };
        assert_eq!(
            (rule.as_str(), action.as_str()),
            ("*.ads.test", "block (sinkhole)")
        );
        assert_eq!(
            set.decide(&q("ok.ads.test.", RecordType::A), c, false).0,
            Verdict::Pass
        );
        assert_eq!(
            set.decide(&q("ads.test.", RecordType::A), c, false).0,
            Verdict::Pass
        );
    }
}
