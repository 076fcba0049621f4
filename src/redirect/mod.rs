//! The redirect room: rules that answer chosen names themselves (override, alias, block,
//! pools with health checks, RPZ) in front of the resolver.
//!
//! [`Redirector`] wraps the resolver as an [`Answerer`]. With no rules loaded it forwards
//! every call untouched (one relaxed atomic load, see `benches/redirect.rs`). With rules, a
//! question that no rule matches goes to the resolver as before; a matched one is answered
//! here, and that answer never enters the resolver's cache (it is made per query, so a
//! pool's next answer or a client-scoped rule is never served from a cached copy).
//!
//! * [`names`]: the compact name table (exact and `*.suffix`, most specific first).
//! * [`rules`]: a loaded [`RuleSet`] and the verdict for one question.
//! * [`file`](mod@file): the TOML rules file; [`import`]: hosts files, domain lists, RPZ.
//! * [`pool`]: pools and their policies; [`health`]: member health checks.
//!
//! Reload ([`Redirector::reload`], SIGHUP in `serve`) builds a new set beside the old one
//! and swaps it in atomically (arc-swap): queries in flight finish with the set they
//! started with, and a file with an error leaves the old set serving.

pub mod file;
pub mod health;
pub mod import;
pub mod names;
pub mod pause;
pub mod pool;
pub mod rules;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use hickory_proto::rr::{DNSClass, Record, RecordType};

use crate::dns::wire::{dotted_key, records, u16_at};
use crate::dns::Answerer;
use crate::dns::{Failure, Outcome, Question};
use crate::resolver::Resolver;
use crate::trace::{HopEvent, LogSink, TraceSink};

pub use pause::BlockingPause;
pub use rules::{Action, FileSummary, RuleHits, RuleSet, Verdict};

/// Aliases followed for one question before giving up (as the resolver's CNAME budget).
const MAX_ALIASES: usize = 12;

/// Why rules could not be loaded. The message names the file, the line and the problem.
#[derive(Debug, thiserror::Error)]
pub enum RedirectError {
    #[error("{}: cannot read: {source}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: {problem}", file.display())]
    Invalid {
        file: PathBuf,
        line: usize,
        problem: String,
    },
    #[error("no rules file is in use (serve was started without --rules): nothing to reload")]
    NoFile,
}

/// Counters of the redirect layer (relaxed atomics).
#[derive(Debug, Default)]
pub struct Stats {
    /// Questions answered (or dropped, or aliased) by a rule.
    pub redirected: AtomicU64,
    /// Pool members that went up or down.
    pub health_changes: AtomicU64,
    pub reloads: AtomicU64,
    pub reload_failures: AtomicU64,
}

/// What a successful load or reload brought in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadSummary {
    pub names: usize,
    pub rules: usize,
    pub pools: usize,
    pub skipped: usize,
    pub files: usize,
}

/// The redirect layer: an [`Answerer`] in front of another.
pub struct Redirector {
    inner: Arc<dyn Answerer>,
    /// Rules are loaded: the only thing the no-rules path reads.
    active: AtomicBool,
    rules: ArcSwapOption<RuleSet>,
    path: Option<PathBuf>,
    stats: Arc<Stats>,
    runtime: Option<tokio::runtime::Handle>,
    /// One reload at a time.
    reloading: Mutex<()>,
    /// The pause of blocking rules (kept across reloads).
    pause: Arc<BlockingPause>,
}

impl Redirector {
    /// A layer with no rules: every call goes to `inner`.
    pub fn new(inner: Arc<dyn Answerer>) -> Self {
        Self {
            inner,
            active: AtomicBool::new(false),
            rules: ArcSwapOption::empty(),
            path: None,
            stats: Arc::new(Stats::default()),
            runtime: tokio::runtime::Handle::try_current().ok(),
            reloading: Mutex::new(()),
            pause: Arc::new(BlockingPause::new(crate::dns::Clock::system())),
        }
    }

    /// The layer on `clock` (the resolver's; a manual one in tests) for the pause of
    /// blocking and load times. Call before installing rules.
    pub fn with_clock(mut self, clock: crate::dns::Clock) -> Self {
        self.pause = Arc::new(BlockingPause::new(clock));
        self
    }

    /// The pause of blocking rules (`ctl pause-blocking`, the dashboard).
    pub fn pause(&self) -> &Arc<BlockingPause> {
        &self.pause
    }

    /// Loads the rules file at `path` (health checks start on the current tokio runtime,
    /// if any); [`Redirector::reload`] reads the same path again.
    pub fn from_file(inner: Arc<dyn Answerer>, path: &Path) -> Result<Self, RedirectError> {
        Self::from_file_on(inner, path, crate::dns::Clock::system())
    }

    /// [`Redirector::from_file`] on `clock` (see [`Redirector::with_clock`]).
    pub fn from_file_on(
        inner: Arc<dyn Answerer>,
        path: &Path,
        clock: crate::dns::Clock,
    ) -> Result<Self, RedirectError> {
        let mut me = Self::new(inner).with_clock(clock);
        me.path = Some(path.to_path_buf());
        me.reload()?;
        Ok(me)
    }

    /// Puts `set` in service (starting its health checks) in place of the current rules.
    pub fn install(&self, mut set: RuleSet) {
        if let Some(old) = self.rules.load_full() {
            set.adopt_health(&old);
        }
        if let Some(rt) = &self.runtime {
            set.start_health(&self.stats, rt);
        }
        set.loaded_at = self.pause.clock().unix_secs();
        set.pause = Some(self.pause.clone());
        let active = !set.is_empty();
        self.rules.store(Some(Arc::new(set)));
        self.active.store(active, Ordering::Release);
    }

    /// Reads the rules file again and swaps the new rules in atomically. On any error the
    /// old rules keep serving and the error (file, line, problem) is logged and returned.
    /// Blocking (a large blocklist takes a while): call it from a blocking thread
    /// (`tokio::task::spawn_blocking`); `hopdns serve` calls it on SIGHUP, and a control
    /// channel can call it the same way.
    pub fn reload(&self) -> Result<LoadSummary, RedirectError> {
        let _one = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        let path = self.path.as_deref().ok_or(RedirectError::NoFile)?;
        let start = Instant::now();
        match file::load(path) {
            Ok(set) => {
                let summary = LoadSummary {
                    names: set.len(),
                    rules: set.rule_count(),
                    pools: set.pools.len(),
                    skipped: set.skipped,
                    files: set.files.len(),
                };
                self.install(set);
                self.stats.reloads.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    file = %path.display(),
                    names = summary.names,
                    rules = summary.rules,
                    pools = summary.pools,
                    skipped = summary.skipped,
                    took = ?start.elapsed(),
                    "redirect rules loaded"
                );
                Ok(summary)
            }
            Err(error) => {
                self.stats.reload_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%error, "redirect rules not loaded; the previous rules stay in use");
                Err(error)
            }
        }
    }

    /// The rules in service, if any.
    pub fn rules(&self) -> Option<Arc<RuleSet>> {
        self.rules.load_full()
    }

    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Runs one round of health checks now and sets member states from it (what `hopdns
    /// trace` does before resolving, so that it shows real states).
    pub async fn check_health_now(&self) {
        if let Some(set) = self.rules.load_full() {
            health::check_now(&set.pools, &self.stats).await;
        }
    }

    /// Answers `question` like [`Answerer::answer`], resolving with `resolver` and handing
    /// every event (redirect hops included) to `sink`: `hopdns trace --rules`.
    pub async fn trace(
        &self,
        resolver: &Resolver,
        question: &Question,
        client: IpAddr,
        sink: &mut dyn TraceSink,
    ) -> Outcome {
        let Some(set) = self.rules.load_full() else {
            return resolver.resolve_traced(question, Some(sink)).await;
        };
        let client = SocketAddr::new(client, 0);
        self.run(&set, question, client, Inner::Traced(resolver, sink))
            .await
    }

    /// The rule loop: aliases are followed (through the rules again) up to [`MAX_ALIASES`].
    async fn run(
        &self,
        set: &RuleSet,
        question: &Question,
        client: SocketAddr,
        mut inner: Inner<'_>,
    ) -> Outcome {
        let mut chain: Vec<Record> = Vec::new();
        let mut q = question.clone();
        let log = tracing::enabled!(target: "hopdns::trace", tracing::Level::DEBUG);
        for _ in 0..=MAX_ALIASES {
            let (verdict, event) = set.decide(&q, client.ip(), inner.traced() || log);
            if let Some(event) = event {
                inner.event(&event, log);
            }
            match verdict {
                Verdict::Pass => {
                    let outcome = inner.resolve(&q, client).await;
                    // A chain that reaches a name with a rule gets that name's action, after
                    // the links up to it (RPZ; issue 11.7: no bypass through a CNAME).
                    let passthru = set.rule_for(&q.name, client.ip()) == Some(true);
                    if q.qclass == DNSClass::IN && !passthru {
                        if let Some((links, target)) =
                            set.chain_hit(&q.name, outcome.answers(), client.ip())
                        {
                            chain.extend(links);
                            q = Question::with_class(target, q.qtype, q.qclass);
                            continue;
                        }
                    }
                    let aliased = !chain.is_empty();
                    let outcome = with_chain(chain, outcome);
                    if aliased {
                        // The whole answer, chain included, after the target's own hops.
                        inner.done(&outcome, log);
                    }
                    return outcome;
                }
                Verdict::Done(outcome) => {
                    self.stats.redirected.fetch_add(1, Ordering::Relaxed);
                    let outcome = with_chain(chain, outcome);
                    inner.done(&outcome, log);
                    return outcome;
                }
                Verdict::Alias { cname, target } => {
                    self.stats.redirected.fetch_add(1, Ordering::Relaxed);
                    chain.push(cname);
                    q = Question::with_class(target, q.qtype, q.qclass);
                }
            }
        }
        let outcome = Outcome::ServFail(Failure::ChainTooLong(MAX_ALIASES));
        inner.done(&outcome, log);
        outcome
    }
}

impl std::fmt::Debug for Redirector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redirector")
            .field("path", &self.path)
            .field("rules", &self.rules.load().as_deref())
            .finish()
    }
}

/// `hopdns ctl reload` and SIGHUP (one handler, in `cli/serve_services.rs`) re-read the rules.
impl crate::control::Reloadable for Redirector {
    fn name(&self) -> String {
        match &self.path {
            Some(p) => format!("redirect rules {}", p.display()),
            None => "redirect rules".into(),
        }
    }

    fn reload(&self) -> Result<String, String> {
        Redirector::reload(self)
            .map(|s| {
                format!(
                    "{} names, {} rules, {} pools from {} files ({} entries skipped)",
                    s.names, s.rules, s.pools, s.files, s.skipped
                )
            })
            .map_err(|e| format!("{e}; the previous rules stay in use"))
    }
}

/// `hopdns ctl pause-blocking MINUTES` (Pi-hole's `pihole disable`).
impl crate::control::BlockingSwitch for Redirector {
    fn pause(&self, minutes: u64) -> Result<Option<u64>, String> {
        self.pause.pause(minutes)
    }

    fn paused_until(&self) -> Option<u64> {
        self.pause.paused_until()
    }
}

/// Pool members for `hopdns ctl health` and the `hopdns_pool_member_up` metric.
impl crate::metrics::HealthSource for Redirector {
    fn health(&self) -> Vec<crate::metrics::MemberHealth> {
        let Some(set) = self.rules.load_full() else {
            return Vec::new();
        };
        set.pools
            .iter()
            .flat_map(|p| {
                p.members.iter().map(|m| crate::metrics::MemberHealth {
                    pool: p.name.clone(),
                    member: m.address.to_string(),
                    healthy: m.state.is_up(),
                })
            })
            .collect()
    }
}

/// Who resolves what no rule answers: the wrapped answerer, or a resolver with a sink.
enum Inner<'a> {
    Serve(&'a dyn Answerer),
    Traced(&'a Resolver, &'a mut dyn TraceSink),
}

impl Inner<'_> {
    fn traced(&self) -> bool {
        matches!(self, Inner::Traced(..))
    }

    fn event(&mut self, event: &HopEvent, log: bool) {
        match self {
            Inner::Traced(_, sink) => sink.event(event),
            Inner::Serve(_) if log => LogSink.event(event),
            Inner::Serve(_) => {}
        }
    }

    /// The final outcome as a [`HopEvent::Done`], built only when someone listens.
    fn done(&mut self, outcome: &Outcome, log: bool) {
        if self.traced() || log {
            let event = HopEvent::Done {
                depth: 0,
                outcome: outcome.clone(),
            };
            self.event(&event, log);
        }
    }

    async fn resolve(&mut self, q: &Question, client: SocketAddr) -> Outcome {
        match self {
            Inner::Serve(a) => a.answer(q, client).await,
            Inner::Traced(r, sink) => r.resolve_traced(q, Some(&mut **sink)).await,
        }
    }
}

/// Whether the CNAME chain of a ready `reply` reaches a name a rule applies to. Only a
/// reply whose first answer is a CNAME is decoded.
fn reaches_a_rule(set: &RuleSet, reply: &[u8], client: IpAddr) -> bool {
    let first_answer_type = || -> Option<u16> {
        if u16_at(reply, 6)? == 0 {
            return None;
        }
        Some(records(reply).next()?.rtype)
    };
    if first_answer_type() != Some(u16::from(RecordType::CNAME)) {
        return false;
    }
    let Ok(msg) = hickory_proto::op::Message::from_vec(reply) else {
        return true;
    };
    let Some(q) = msg.queries.first() else {
        return true;
    };
    set.chain_hit(&q.name, &msg.answers, client).is_some()
}

/// Puts the alias `chain` in front of the answer section of `outcome`.
fn with_chain(mut chain: Vec<Record>, outcome: Outcome) -> Outcome {
    if chain.is_empty() {
        return outcome;
    }
    match outcome {
        Outcome::Answer { answers } => {
            chain.extend(answers);
            Outcome::Answer { answers: chain }
        }
        Outcome::NxDomain { answers, soa } => {
            chain.extend(answers);
            Outcome::NxDomain {
                answers: chain,
                soa,
            }
        }
        Outcome::NoData { answers, soa } => {
            chain.extend(answers);
            Outcome::NoData {
                answers: chain,
                soa,
            }
        }
        Outcome::YxDomain { answers } => {
            chain.extend(answers);
            Outcome::YxDomain { answers: chain }
        }
        other => other,
    }
}

#[async_trait]
impl Answerer for Redirector {
    async fn answer(&self, question: &Question, client: SocketAddr) -> Outcome {
        if !self.active.load(Ordering::Acquire) {
            return self.inner.answer(question, client).await;
        }
        let Some(set) = self.rules.load_full() else {
            return self.inner.answer(question, client).await;
        };
        self.run(&set, question, client, Inner::Serve(&*self.inner))
            .await
    }

    /// The inner answerer decides unless a rule applies to the name or to the cached
    /// reply's CNAME chain (issue 11.7): then the normal path answers, and nothing
    /// redirected is ever served from a cache.
    fn may_serve_cached(&self, qname: &[u8], reply: &[u8], client: SocketAddr) -> bool {
        if self.active.load(Ordering::Relaxed) {
            if let Some(set) = self.rules.load().as_ref() {
                let mut buf = [0u8; 256];
                // An unreadable name goes the normal way, which decodes (and FORMERRs) it.
                let Some(key) = dotted_key(qname, &mut buf) else {
                    return false;
                };
                if set.matches(key, client.ip()) || reaches_a_rule(set, reply, client.ip()) {
                    return false;
                }
            }
        }
        self.inner.may_serve_cached(qname, reply, client)
    }

    fn prefetch(&self, question: Question) {
        self.inner.prefetch(question);
    }

    /// The inner answerer's word only when no rules are loaded: a redirected answer is
    /// never secure, and which one was redirected depends on the client.
    fn secure(&self, question: &Question) -> bool {
        let rules = self.active.load(Ordering::Relaxed) && self.rules.load().is_some();
        !rules && self.inner.secure(question)
    }

    /// CD queries (RFC 6840 §5.9) reach the inner answerer as such when no rules are
    /// loaded; with rules they are answered as any query.
    async fn answer_unchecked(&self, question: &Question, client: SocketAddr) -> (Outcome, bool) {
        let rules = self.active.load(Ordering::Acquire) && self.rules.load().is_some();
        if !rules {
            return self.inner.answer_unchecked(question, client).await;
        }
        let outcome = self.answer(question, client).await;
        (outcome, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::{Name, RData, RecordType};
    use std::sync::atomic::AtomicUsize;

    /// Answers every question with one A record and counts the calls.
    #[derive(Default)]
    struct Fixed {
        asked: AtomicUsize,
        fast: AtomicUsize,
    }

    #[async_trait]
    impl Answerer for Fixed {
        async fn answer(&self, q: &Question, _: SocketAddr) -> Outcome {
            self.asked.fetch_add(1, Ordering::Relaxed);
            Outcome::Answer {
                answers: vec![Record::from_rdata(
                    q.name.clone(),
                    60,
                    RData::A("192.0.2.1".parse::<std::net::Ipv4Addr>().unwrap().into()),
                )],
            }
        }
        fn may_serve_cached(&self, _: &[u8], _: &[u8], _: SocketAddr) -> bool {
            self.fast.fetch_add(1, Ordering::Relaxed);
            true
        }
    }

    fn rules(text: &str) -> RuleSet {
        file::parse(text, Path::new("test.toml")).unwrap()
    }

    fn client() -> SocketAddr {
        "127.0.0.1:5353".parse().unwrap()
    }

    /// A wire name, as the server's hit path hands it over.
    fn wire(name: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for label in name.trim_end_matches('.').split('.') {
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
        out
    }

    /// A ready reply to `name` A with `answers`, as the message cache would hold it.
    fn ready_reply(name: &str, answers: Vec<Record>) -> Vec<u8> {
        let mut m = hickory_proto::op::Message::response(7, hickory_proto::op::OpCode::Query);
        m.add_query(hickory_proto::op::Query::query(
            Name::from_ascii(name).unwrap(),
            RecordType::A,
        ));
        m.add_answers(answers);
        m.to_vec().unwrap()
    }

    /// "owner data" for each record, as the assertions read them.
    fn owner_and_data(records: &[Record]) -> Vec<String> {
        records
            .iter()
            .map(|r| format!("{} {}", r.name, r.data))
            .collect()
    }

    #[tokio::test]
    async fn alias_is_followed_and_returned_as_a_chain() {
        let inner = Arc::new(Fixed::default());
        let r = Redirector::new(inner.clone());
        r.install(rules(
            "[[rule]]\nname = \"old.lan\"\naction = \"alias\"\ntarget = \"mid.lan\"\n\
             [[rule]]\nname = \"mid.lan\"\naction = \"alias\"\ntarget = \"www.example.com\"\n",
        ));
        let q = Question::new(Name::from_ascii("old.lan.").unwrap(), RecordType::A);
        let Outcome::Answer { answers } = r.answer(&q, client()).await else {
            panic!()
        };
        let lines = owner_and_data(&answers);
        assert_eq!(
            lines,
            [
                "old.lan. mid.lan.",
                "mid.lan. www.example.com.",
                "www.example.com. 192.0.2.1"
            ]
        );
        assert_eq!(inner.asked.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn alias_loops_end_in_servfail() {
        let r = Redirector::new(Arc::new(Fixed::default()));
        r.install(rules(
            "[[rule]]\nname = \"a.lan\"\naction = \"alias\"\ntarget = \"b.lan\"\n\
             [[rule]]\nname = \"b.lan\"\naction = \"alias\"\ntarget = \"a.lan\"\n",
        ));
        let q = Question::new(Name::from_ascii("a.lan.").unwrap(), RecordType::A);
        assert!(matches!(r.answer(&q, client()).await, Outcome::ServFail(_)));
    }

    #[tokio::test]
    async fn cached_replies_are_served_unless_a_rule_matches() {
        let inner = Arc::new(Fixed::default());
        let r = Redirector::new(inner.clone());
        let plain = ready_reply("x.lan.", vec![]);
        assert!(r.may_serve_cached(&wire("ads.lan."), &plain, client()));
        r.install(rules("[[rule]]\nname = \"*.lan\"\naction = \"block\"\n"));
        assert!(!r.may_serve_cached(&wire("x.lan."), &plain, client()));
        assert!(
            !r.may_serve_cached(&wire("X.Lan."), &plain, client()),
            "any case"
        );
        assert!(r.may_serve_cached(&wire("example.com."), &plain, client()));
        assert!(
            !r.may_serve_cached(b"\xc0\x0c", &plain, client()),
            "unreadable"
        );
        assert_eq!(
            inner.fast.load(Ordering::Relaxed),
            2,
            "the inner one decides"
        );
    }

    /// Answers `www.site.com` with a chain to `tracker.ads.net` (and the same reply ready on
    /// the fast path); anything else with one A record.
    #[derive(Default)]
    struct Cloaked {
        asked: AtomicUsize,
    }

    fn cloaked_chain() -> Vec<Record> {
        let n = |s: &str| Name::from_ascii(s).unwrap();
        vec![
            Record::from_rdata(
                n("www.site.com."),
                60,
                RData::CNAME(hickory_proto::rr::rdata::CNAME(n("cdn.site.com."))),
            ),
            Record::from_rdata(
                n("cdn.site.com."),
                60,
                RData::CNAME(hickory_proto::rr::rdata::CNAME(n("tracker.ads.net."))),
            ),
            Record::from_rdata(
                n("tracker.ads.net."),
                60,
                RData::A("192.0.2.7".parse::<std::net::Ipv4Addr>().unwrap().into()),
            ),
        ]
    }

    #[async_trait]
    impl Answerer for Cloaked {
        async fn answer(&self, q: &Question, client: SocketAddr) -> Outcome {
            self.asked.fetch_add(1, Ordering::Relaxed);
            if q.name == Name::from_ascii("www.site.com.").unwrap() {
                return Outcome::Answer {
                    answers: cloaked_chain(),
                };
            }
            Fixed::default().answer(q, client).await
        }
    }

    /// Issue 11.7: a name without a rule whose CNAME chain reaches a blocked name gets the
    /// blocked name's action after the links up to it (RPZ), on both paths.
    #[tokio::test]
    async fn a_cname_chain_to_a_blocked_name_is_blocked() {
        let r = Redirector::new(Arc::new(Cloaked::default()));
        r.install(rules(
            "[[rule]]\nname = \"*.ads.net\"\naction = \"block\"\n",
        ));
        let q = Question::new(Name::from_ascii("www.site.com.").unwrap(), RecordType::A);
        let Outcome::NxDomain { answers, soa } = r.answer(&q, client()).await else {
            panic!("not blocked")
        };
        let lines = owner_and_data(&answers);
        assert_eq!(
            lines,
            [
                "www.site.com. cdn.site.com.",
                "cdn.site.com. tracker.ads.net."
            ]
        );
        assert_eq!(soa.unwrap().name.to_ascii(), "ads.net.");
        let cached = ready_reply("www.site.com.", cloaked_chain());
        assert!(
            !r.may_serve_cached(&wire("www.site.com."), &cached, client()),
            "the cached chain is not served from the fast path"
        );
        let q = Question::new(Name::from_ascii("cdn.site.com.").unwrap(), RecordType::A);
        assert!(
            matches!(r.answer(&q, client()).await, Outcome::Answer { .. }),
            "a name whose own answer reaches no rule is answered"
        );
    }

    /// Pi-hole's `disable 5m`: while paused, block rules answer as if absent (and the fast
    /// path may serve the cached reply), overrides still apply, and blocking comes back by
    /// itself when the clock passes the deadline.
    #[tokio::test(start_paused = true)]
    async fn a_pause_lets_blocked_names_through_until_it_ends_by_itself() {
        let clock = crate::dns::Clock::manual();
        let inner = Arc::new(Fixed::default());
        let r = Redirector::new(inner.clone()).with_clock(clock.clone());
        r.install(rules(
            "[[rule]]\nname = \"*.ads.lan\"\naction = \"block\"\n\
             [[rule]]\nname = \"nas.lan\"\naction = \"override\"\na = [\"192.168.1.5\"]\n",
        ));
        let ads = Question::new(Name::from_ascii("x.ads.lan.").unwrap(), RecordType::A);
        let nas = Question::new(Name::from_ascii("nas.lan.").unwrap(), RecordType::A);
        let plain = ready_reply("x.ads.lan.", vec![]);
        assert!(matches!(
            r.answer(&ads, client()).await,
            Outcome::NxDomain { .. }
        ));
        assert!(!r.may_serve_cached(&wire("x.ads.lan."), &plain, client()));

        let until = r.pause().pause(5).unwrap().unwrap();
        assert_eq!(until, clock.unix_secs() + 300);
        let Outcome::Answer { answers } = r.answer(&ads, client()).await else {
            panic!("paused: resolved")
        };
        assert_eq!(owner_and_data(&answers), ["x.ads.lan. 192.0.2.1"]);
        assert!(r.may_serve_cached(&wire("x.ads.lan."), &plain, client()));
        let Outcome::Answer { answers } = r.answer(&nas, client()).await else {
            panic!("the override still applies")
        };
        assert_eq!(owner_and_data(&answers), ["nas.lan. 192.168.1.5"]);

        clock.advance(std::time::Duration::from_secs(300));
        assert!(matches!(
            r.answer(&ads, client()).await,
            Outcome::NxDomain { .. }
        ));
        assert!(!r.may_serve_cached(&wire("x.ads.lan."), &plain, client()));
        assert_eq!(
            inner.asked.load(Ordering::Relaxed),
            1,
            "asked only while paused"
        );
        // A reload keeps a pause in force.
        r.pause().pause(1).unwrap();
        r.install(rules(
            "[[rule]]\nname = \"*.ads.lan\"\naction = \"block\"\n",
        ));
        assert!(matches!(
            r.answer(&ads, client()).await,
            Outcome::Answer { .. }
        ));
    }

    #[tokio::test]
    async fn rule_hits_and_file_summaries_count_what_each_rule_did() {
        let r = Redirector::new(Arc::new(Fixed::default()));
        r.install(rules(
            "[[rule]]\nname = \"a.lan\"\naction = \"block\"\n\
             [[rule]]\nname = \"b.lan\"\naction = \"block\"\n\
             [[rule]]\nname = \"c.lan\"\naction = \"override\"\na = [\"192.0.2.9\"]\n",
        ));
        for name in ["a.lan.", "a.lan.", "c.lan.", "other.example."] {
            let q = Question::new(Name::from_ascii(name).unwrap(), RecordType::A);
            r.answer(&q, client()).await;
        }
        let set = r.rules().unwrap();
        let names: Vec<(Option<String>, u64)> = set
            .rule_hits()
            .into_iter()
            .map(|h| (h.name, h.names))
            .collect();
        assert_eq!(names[0], (Some("a.lan".to_string()), 1));
        assert_eq!(names[3], (Some("9.2.0.192.in-addr.arpa".to_string()), 1));
        let hits: Vec<(String, &str, u64)> = set
            .rule_hits()
            .into_iter()
            .map(|h| (h.origin, h.action, h.hits))
            .collect();
        assert_eq!(
            hits,
            [
                ("test.toml:1".to_string(), "block", 2),
                ("test.toml:4".to_string(), "block", 0),
                ("test.toml:7".to_string(), "override", 1),
                (
                    "test.toml:7 (PTR for the override's address)".to_string(),
                    "local",
                    0
                )
            ]
        );
        assert!(set.loaded_at > 0);
        let files = set.file_summaries();
        assert_eq!(files.len(), 1, "{files:?}");
        assert_eq!(files[0].entries, 4);
        let by: Vec<(&str, u64)> = files[0].by_action.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(by, [("block", 2), ("local", 1), ("override", 1)]);
    }

    #[tokio::test]
    async fn reload_without_a_file_is_an_error_and_changes_nothing() {
        let r = Redirector::new(Arc::new(Fixed::default()));
        assert!(matches!(r.reload(), Err(RedirectError::NoFile)));
        assert!(r.rules().is_none());
    }
}
