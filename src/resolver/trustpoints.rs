//! RFC 5011 in `serve` (`--trust-anchor-state FILE`), as Unbound's `auto-trust-anchor-file`:
//! each trust point's DNSKEY set is fetched through the resolver on a timer, judged by the
//! pure state machine ([`crate::dnssec::autotrust`]) against the keys trusted now, and every
//! change updates the anchors in use and rewrites the state file (a new file, then a rename).
//!
//! The trust points are the state file's, and every other anchored zone: DNSKEY anchors are
//! trusted at once, DS anchors (the built-in root KSKs) trust the keys they name at the first
//! refresh. Times come from the resolver's injected clock ([`crate::dns::Clock`]); the
//! timer is a tokio sleep until the earliest due refresh, and [`Refresher::refresh_due`]
//! is one pass, so tests advance the clock and call it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::dnssec::rdata::DS;
use hickory_proto::rr::{Name, RecordType};

use super::{Outcome, Question, Resolver};
use crate::dnssec::anchor::TrustAnchors;
use crate::dnssec::autotrust::{
    refresh_interval, retry_interval, Change, Refreshed, TrustPoint, MIN_REFRESH,
};
use crate::dnssec::{Budget, Reason};

/// One trust point and when it is due.
#[derive(Debug)]
struct Point {
    zone: Name,
    /// `None` until the first refresh of a zone anchored by DS records only.
    tracked: Option<TrustPoint>,
    ds: Vec<DS>,
    /// Unix seconds of the next refresh.
    due: u64,
    /// TTL and signature lifetime of the last good refresh (for the retry interval).
    last: (u32, u64),
}

/// The RFC 5011 refresher of one `serve`.
pub struct Refresher {
    resolver: Resolver,
    config: Arc<crate::dnssec::Config>,
    state_file: PathBuf,
    points: Vec<Point>,
    /// The state file lacks something the points hold.
    dirty: bool,
}

impl Refresher {
    /// The trust points of `config` (its state file's, then every other anchored zone),
    /// all due at once.
    pub fn new(
        resolver: Resolver,
        config: Arc<crate::dnssec::Config>,
        state_file: PathBuf,
    ) -> Self {
        let now = resolver.cache().clock.unix_secs();
        let mut points: Vec<Point> = config
            .trust_points
            .iter()
            .map(|tp| Point {
                zone: tp.zone.clone(),
                tracked: Some(tp.clone()),
                ds: Vec::new(),
                due: now,
                last: (0, 0),
            })
            .collect();
        let mut dirty = !state_file.exists();
        let anchors = config.anchors.load();
        for zone in anchors.zones() {
            if points.iter().any(|p| p.zone == *zone) {
                continue;
            }
            let keys = TrustAnchors::keys(anchors.get(zone));
            let tracked = (!keys.is_empty()).then(|| TrustPoint::seed(zone.clone(), &keys, now));
            dirty |= tracked.is_some();
            points.push(Point {
                zone: zone.clone(),
                tracked,
                ds: TrustAnchors::ds(anchors.get(zone)),
                due: now,
                last: (0, 0),
            });
        }
        Refresher {
            resolver,
            config,
            state_file,
            points,
            dirty,
        }
    }

    /// The trust points as they stand (those known so far).
    pub fn trust_points(&self) -> Vec<TrustPoint> {
        self.points
            .iter()
            .filter_map(|p| p.tracked.clone())
            .collect()
    }

    /// Refreshes every trust point due at the clock's time, writes the state file if
    /// anything changed, and says how long until the next one is due.
    pub async fn refresh_due(&mut self) -> Duration {
        for i in 0..self.points.len() {
            let now = self.resolver.cache().clock.unix_secs();
            if self.points[i].due <= now {
                self.refresh(i).await;
            }
        }
        if self.dirty {
            let points = self.trust_points();
            match write_state(&self.state_file, &points) {
                Ok(()) => self.dirty = false,
                Err(e) => tracing::error!(
                    file = %self.state_file.display(),
                    "cannot write the trust-anchor state file: {e}; keeping the new state in memory and trying again at the next refresh"
                ),
            }
        }
        let now = self.resolver.cache().clock.unix_secs();
        let next = self
            .points
            .iter()
            .map(|p| p.due)
            .min()
            .unwrap_or(now + MIN_REFRESH);
        Duration::from_secs(next.saturating_sub(now).max(1))
    }

    /// Runs the timer until the task is dropped (`serve` spawns it).
    pub async fn run(mut self) {
        loop {
            let wait = self.refresh_due().await;
            tokio::time::sleep(wait).await;
        }
    }

    /// Fetches point `i`'s DNSKEY set and feeds it to the state machine (RFC 5011 §2.3).
    async fn refresh(&mut self, i: usize) {
        let zone = self.points[i].zone.clone();
        let (outcome, sigs) = self
            .resolver
            .fetch_signed(&Question::new(zone.clone(), RecordType::DNSKEY))
            .await;
        let now = self.resolver.cache().clock.unix_secs();
        let result = match outcome {
            Outcome::Answer { answers } => {
                let point = &mut self.points[i];
                let skew = self.config.skew;
                let mut budget = Budget::default();
                match &mut point.tracked {
                    Some(tp) => tp.refresh(&answers, &sigs, now, skew, &mut budget),
                    None => TrustPoint::seed_from_ds(
                        zone.clone(),
                        &point.ds,
                        &answers,
                        &sigs,
                        now,
                        skew,
                        &mut budget,
                    )
                    .map(|(tp, r)| {
                        point.tracked = Some(tp);
                        self.dirty = true;
                        r
                    }),
                }
            }
            other => Err(Reason::Bogus(match other {
                Outcome::ServFail(_) => "no DNSKEY answer (SERVFAIL)",
                _ => "no DNSKEY answer",
            })),
        };
        let point = &mut self.points[i];
        match result {
            Ok(Refreshed {
                changes,
                ttl,
                sig_remaining,
            }) => {
                point.last = (ttl, sig_remaining);
                point.due = now + refresh_interval(ttl, sig_remaining);
                tracing::debug!(%zone, next_in_s = point.due - now, "RFC 5011: trust point refreshed");
                if !changes.is_empty() {
                    log_changes(&zone, &changes);
                    self.dirty = true;
                    let trusted = point
                        .tracked
                        .as_ref()
                        .map(TrustPoint::trusted)
                        .unwrap_or_default();
                    if trusted.is_empty() {
                        tracing::error!(%zone, "RFC 5011: no trusted key left for this trust point; its old anchors stay in use");
                    }
                    self.config.set_trusted(&zone, trusted);
                    // Key sets validated from the old anchors are walked again.
                    self.resolver.cache().keys.flush_zone(&zone);
                }
            }
            Err(reason) => {
                let (ttl, sig_remaining) = point.last;
                point.due = now + retry_interval(ttl, sig_remaining);
                tracing::warn!(%zone, %reason, retry_in_s = point.due - now, "RFC 5011: trust point refresh failed");
            }
        }
    }
}

fn log_changes(zone: &Name, changes: &[Change]) {
    for c in changes {
        let state = |s: Option<crate::dnssec::autotrust::KeyState>| {
            s.map_or_else(|| "-".to_string(), |s| s.to_string())
        };
        tracing::info!(
            %zone,
            key_tag = c.key_tag,
            from = %state(c.from),
            to = %state(c.to),
            "RFC 5011: trust anchor key changed state"
        );
    }
}

/// Writes the trust points to the state file `path`: a new file beside it, flushed to disk,
/// then a rename, so a crash never leaves half a file (as Unbound writes its
/// `auto-trust-anchor-file`).
pub fn write_state(path: &Path, points: &[TrustPoint]) -> std::io::Result<()> {
    use std::io::Write;
    let text: String = points.iter().map(TrustPoint::to_text).collect();
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dnssec::autotrust::{load, Observed};
    use hickory_proto::dnssec::rdata::DNSKEY;
    use hickory_proto::dnssec::{Algorithm, PublicKeyBuf};

    fn key(n: u8) -> DNSKEY {
        DNSKEY::with_flags(
            257,
            PublicKeyBuf::new(vec![n; 64], Algorithm::ECDSAP256SHA256),
        )
    }

    /// The timer in paused tokio time, on a manual clock that follows it: a scripted root
    /// serves `corp.test.`'s signed DNSKEY set (TTL 3600, so RFC 5011 §2.3 gives an hour)
    /// and nothing for `. DNSKEY` (the built-in root's DS anchor: every refresh fails and is
    /// retried after an hour). The first pass writes the state file; then `run` refreshes
    /// `corp.test.` once an hour, no more and no less.
    #[tokio::test(start_paused = true)]
    async fn the_timer_refreshes_every_interval_and_retries_failures() {
        use crate::dns::Clock;
        use crate::dnssec::testkit::ZoneKey;
        use crate::resolver::machine::MinimiseMode;
        use crate::resolver::ResolverConfig;
        use crate::transport::scripted::{self as s, Script, Scripted};

        const ROOT: &str = "10.0.0.1";
        let key = ZoneKey::ecdsa("corp.test.", true);
        let anchor = format!("corp.test. IN DNSKEY {}\n", key.dnskey);
        let dnssec = Arc::new(
            crate::dnssec::Config::from_anchor_text(Path::new("(test)"), &anchor).unwrap(),
        );
        let clock = Clock::manual();
        let mut config = ResolverConfig::new(s::root_hints(ROOT));
        config.settings.ipv6 = false;
        config.settings.minimise = MinimiseMode::Off;
        config.settings.dnssec = Some(dnssec.clone());
        config.clock = clock.clone();
        let w = Arc::new(Scripted::new());
        let now = clock.unix_secs();
        let set = vec![key.record()];
        let sig = key.sign_at(&set, (now - 86400) as u32, (now + 400 * 86400) as u32);
        w.on(
            ROOT,
            "corp.test.",
            RecordType::DNSKEY,
            Script::Reply(s::answer(vec![set[0].clone(), sig])),
        );
        let resolver = Resolver::new(config, w.clone());
        let dir = std::env::temp_dir().join(format!("hopdns-timer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let state = dir.join("anchors.state");
        let mut refresher = Refresher::new(resolver, dnssec, state.clone());
        let asked_of = |zone: &str| {
            w.seen()
                .iter()
                .filter(|q| q.name.to_string() == zone && q.qtype == RecordType::DNSKEY)
                .count()
        };
        let asked = || asked_of("corp.test.");

        let wait = refresher.refresh_due().await;
        assert!(
            wait <= Duration::from_secs(3600) && wait > Duration::from_secs(3500),
            "{wait:?}"
        );
        let per_refresh = asked();
        let per_retry = asked_of(".");
        assert!(per_refresh >= 1 && per_retry >= 1);
        let text = std::fs::read_to_string(&state).unwrap();
        assert!(text.contains("corp.test. IN DNSKEY 257 3 13") && text.contains(";;state=VALID"));
        assert_eq!(
            refresher.trust_points().len(),
            1,
            "the root (DS anchor) is not seeded until a refresh succeeds"
        );

        let timer = tokio::spawn(refresher.run());
        tokio::time::sleep(Duration::from_secs(3 * 3600 + 600)).await;
        timer.abort();
        assert_eq!(asked(), 4 * per_refresh, "refreshed at 1 h, 2 h and 3 h");
        assert_eq!(
            asked_of("."),
            4 * per_retry,
            "retried after an hour each time"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_state_file_is_written_whole_and_read_back() {
        let dir = std::env::temp_dir().join(format!("hopdns-trustpoints-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("root.state");
        let mut root = TrustPoint::seed(Name::root(), &[key(1)], 1000);
        let seen: Vec<Observed> = [key(1), key(2)]
            .into_iter()
            .map(|key| Observed {
                key,
                revoked_self_signed: false,
            })
            .collect();
        root.observe(&seen, 1000);
        let corp = TrustPoint::seed(Name::from_ascii("corp.example.").unwrap(), &[key(3)], 1000);
        write_state(&path, &[root.clone(), corp.clone()]).unwrap();
        assert_eq!(load(&path).unwrap(), [root, corp]);
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "no temporary file left"
        );
        let e = write_state(&dir.join("no-such-dir").join("x.state"), &[]).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        let e = load(&dir.join("missing.state")).unwrap_err().to_string();
        assert!(
            e.contains("missing.state") && e.contains("cannot read"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
