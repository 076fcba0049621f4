//! RFC 5011 automated updates of trust anchors, as Unbound's `auto-trust-anchor-file`
//! (validator/autotrust.c): a pure state machine over the key-signing keys of one trust
//! point, with time passed in, and the state file that `--trust-anchor-state FILE` keeps.
//!
//! Each time the resolver fetches the trust point's DNSKEY set and validates it with a key
//! that is trusted now ([`TrustPoint::trusted`]), it calls [`TrustPoint::observe`] with the
//! keys it saw. The states and events are RFC 5011 §4.2's:
//!
//! | state | event | next |
//! |---|---|---|
//! | (new) | a SEP key not seen before | AddPend |
//! | AddPend | seen again once the 30-day add hold-down (§2.4.1) has passed | Valid |
//! | AddPend | gone from the set | forgotten |
//! | Valid | gone from the set | Missing (still trusted) |
//! | Missing | back in the set | Valid |
//! | Valid, Missing, AddPend | seen with REVOKE set and self-signed (§2.1) | Revoked |
//! | Revoked | 30 days later (remove hold-down, §2.4.2) | Removed |
//! | Missing | 366 days later (Unbound's `keep-missing`) | Removed |
//!
//! A key is the same key with or without its REVOKE bit (its key tag changes; §2.1).

use std::fmt;
use std::path::Path;

use hickory_proto::dnssec::rdata::DNSKEY;
use hickory_proto::dnssec::rdata::DS;
use hickory_proto::dnssec::{PublicKey as _, PublicKeyBuf, Verifier as _};
use hickory_proto::rr::{Name, Record, RecordType};

use super::anchor::{self, Anchor, AnchorError};
use super::verify::{dnskey, revocation_signed, rrsig, validate_keyset, Budget, Link, Skew};
use super::Reason;

/// RFC 5011 §2.4.1: a new key is trusted only after 30 days of being seen.
pub const ADD_HOLD_DOWN: u64 = 30 * 86400;
/// RFC 5011 §2.4.2: a revoked key is kept (as revoked) for 30 days, then removed.
pub const REMOVE_HOLD_DOWN: u64 = 30 * 86400;
/// How long a missing key stays trusted before it is removed: Unbound's `keep-missing`
/// default (366 days).
pub const KEEP_MISSING: u64 = 366 * 86400;

/// RFC 5011 §2.3: the active refresh interval is at least an hour and at most 15 days.
pub const MIN_REFRESH: u64 = 3600;
pub const MAX_REFRESH: u64 = 15 * 86400;
/// RFC 5011 §2.3: after a failed refresh, retry within at most a day.
pub const MAX_RETRY: u64 = 86400;

/// The active refresh interval of RFC 5011 §2.3: MAX(1 hr, MIN(15 days, 1/2 × OrigTTL,
/// 1/2 × RRSigExpirationInterval)), in seconds. `sig_remaining` is the time left before the
/// DNSKEY set's signatures expire.
pub fn refresh_interval(ttl: u32, sig_remaining: u64) -> u64 {
    (u64::from(ttl) / 2)
        .min(sig_remaining / 2)
        .clamp(MIN_REFRESH, MAX_REFRESH)
}

/// The retry interval of RFC 5011 §2.3 after a failed query: MAX(1 hr, MIN(1 day,
/// 1/10 × OrigTTL, 1/10 × RRSigExpirationInterval)). With nothing known yet (no TTL, no
/// signature), an hour.
pub fn retry_interval(ttl: u32, sig_remaining: u64) -> u64 {
    (u64::from(ttl) / 10)
        .min(sig_remaining / 10)
        .clamp(MIN_REFRESH, MAX_RETRY)
}

/// What one refresh of a trust point learned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refreshed {
    pub changes: Vec<Change>,
    /// The DNSKEY set's original TTL (from its RRSIGs) and the time left before its
    /// signatures expire: the inputs of [`refresh_interval`].
    pub ttl: u32,
    pub sig_remaining: u64,
}

const REVOKE: u16 = 0x0080;
const SEP: u16 = 0x0001;

/// The RFC 5011 state of one tracked key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyState {
    AddPend,
    Valid,
    Missing,
    Revoked,
    Removed,
}

impl KeyState {
    fn as_str(self) -> &'static str {
        match self {
            KeyState::AddPend => "ADDPEND",
            KeyState::Valid => "VALID",
            KeyState::Missing => "MISSING",
            KeyState::Revoked => "REVOKED",
            KeyState::Removed => "REMOVED",
        }
    }

    fn parse(text: &str) -> Option<KeyState> {
        Some(match text.to_ascii_uppercase().as_str() {
            "ADDPEND" => KeyState::AddPend,
            "VALID" => KeyState::Valid,
            "MISSING" => KeyState::Missing,
            "REVOKED" => KeyState::Revoked,
            "REMOVED" => KeyState::Removed,
            _ => return None,
        })
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One key of a trust point and its state since `since` (seconds since the epoch).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackedKey {
    pub key: DNSKEY,
    pub state: KeyState,
    pub since: u64,
}

/// A key as seen in a validated DNSKEY set. `revoked_self_signed` is true when the key has
/// REVOKE set and its own signature over the set verifies
/// ([`super::verify::revocation_signed`]).
#[derive(Clone, Debug)]
pub struct Observed {
    pub key: DNSKEY,
    pub revoked_self_signed: bool,
}

/// One state change, for logs and `trace`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub key_tag: u16,
    pub from: Option<KeyState>,
    pub to: Option<KeyState>,
}

/// The tracked keys of one zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustPoint {
    pub zone: Name,
    pub keys: Vec<TrackedKey>,
}

/// The same key, whatever its REVOKE bit.
fn same_key(a: &DNSKEY, b: &DNSKEY) -> bool {
    a.algorithm() == b.algorithm()
        && a.public_key().public_bytes() == b.public_key().public_bytes()
        && (a.flags() | REVOKE) == (b.flags() | REVOKE)
}

fn tag(key: &DNSKEY) -> u16 {
    key.calculate_key_tag().unwrap_or(0)
}

impl TrustPoint {
    /// A trust point whose keys are trusted now: the configured DNSKEY anchors, or the keys
    /// a DS anchor validated the first time round (as Unbound seeds its state file).
    pub fn seed(zone: Name, keys: &[DNSKEY], now: u64) -> TrustPoint {
        TrustPoint {
            zone,
            keys: keys
                .iter()
                .filter(|k| k.flags() & SEP != 0 && k.flags() & REVOKE == 0)
                .map(|k| TrackedKey {
                    key: k.clone(),
                    state: KeyState::Valid,
                    since: now,
                })
                .collect(),
        }
    }

    /// The keys to validate the zone's DNSKEY set with: Valid and Missing ones (RFC 5011
    /// §4.2: a missing key stays a trust anchor).
    pub fn trusted(&self) -> Vec<DNSKEY> {
        self.keys
            .iter()
            .filter(|k| matches!(k.state, KeyState::Valid | KeyState::Missing))
            .map(|k| k.key.clone())
            .collect()
    }

    /// Applies one validated observation of the DNSKEY set at `now`. The caller must have
    /// validated the set with [`TrustPoint::trusted`] keys first; an unvalidated set must
    /// never reach here (RFC 5011 §2.2).
    pub fn observe(&mut self, seen: &[Observed], now: u64) -> Vec<Change> {
        let mut changes = Vec::new();
        let set = |k: &mut TrackedKey, to: KeyState, changes: &mut Vec<Change>| {
            changes.push(Change {
                key_tag: tag(&k.key),
                from: Some(k.state),
                to: Some(to),
            });
            k.state = to;
            k.since = now;
        };
        for tracked in &mut self.keys {
            let found = seen.iter().find(|o| same_key(&o.key, &tracked.key));
            match (tracked.state, found) {
                (KeyState::Revoked | KeyState::Removed, Some(_)) => {
                    // A revoked key never comes back (§2.1); its timer runs on below.
                    if tracked.state == KeyState::Revoked
                        && now.saturating_sub(tracked.since) >= REMOVE_HOLD_DOWN
                    {
                        set(tracked, KeyState::Removed, &mut changes);
                    }
                }
                (_, Some(o)) if o.key.flags() & REVOKE != 0 => {
                    if o.revoked_self_signed {
                        tracked.key = o.key.clone();
                        set(tracked, KeyState::Revoked, &mut changes);
                    }
                }
                (KeyState::AddPend, Some(_)) => {
                    if now.saturating_sub(tracked.since) >= ADD_HOLD_DOWN {
                        set(tracked, KeyState::Valid, &mut changes);
                    }
                }
                (KeyState::Missing, Some(_)) => set(tracked, KeyState::Valid, &mut changes),
                (KeyState::Valid, Some(_)) => {}
                (KeyState::Valid, None) => set(tracked, KeyState::Missing, &mut changes),
                (KeyState::Missing, None) => {
                    if now.saturating_sub(tracked.since) >= KEEP_MISSING {
                        set(tracked, KeyState::Removed, &mut changes);
                    }
                }
                (KeyState::Revoked, None) => {
                    if now.saturating_sub(tracked.since) >= REMOVE_HOLD_DOWN {
                        set(tracked, KeyState::Removed, &mut changes);
                    }
                }
                (KeyState::AddPend, None) | (KeyState::Removed, None) => {}
            }
        }
        // AddPend keys gone from the set are forgotten (§4.2 KeyRem in AddPend → Start).
        self.keys.retain(|k| {
            let gone =
                k.state == KeyState::AddPend && !seen.iter().any(|o| same_key(&o.key, &k.key));
            if gone {
                changes.push(Change {
                    key_tag: tag(&k.key),
                    from: Some(KeyState::AddPend),
                    to: None,
                });
            }
            !gone
        });
        // New SEP keys start their add hold-down (§2.4.1).
        for o in seen {
            let flags = o.key.flags();
            if flags & SEP == 0 || flags & REVOKE != 0 {
                continue;
            }
            if self.keys.iter().any(|k| same_key(&k.key, &o.key)) {
                continue;
            }
            self.keys.push(TrackedKey {
                key: o.key.clone(),
                state: KeyState::AddPend,
                since: now,
            });
            changes.push(Change {
                key_tag: tag(&o.key),
                from: None,
                to: Some(KeyState::AddPend),
            });
        }
        changes
    }

    /// Seeds a trust point from DS anchors and the DNSKEY set they validate (the first
    /// refresh of a zone anchored by DS, as Unbound seeds `auto-trust-anchor-file` from a DS):
    /// the SEP keys a DS names are trusted now; the rest are then observed as usual.
    #[allow(clippy::too_many_arguments)]
    pub fn seed_from_ds(
        zone: Name,
        ds: &[DS],
        dnskeys: &[Record],
        sigs: &[Record],
        now: u64,
        skew: Skew,
        budget: &mut Budget,
    ) -> Result<(TrustPoint, Refreshed), Reason> {
        validate_keyset(&zone, dnskeys, sigs, Link::Ds(ds), now, skew, budget)?;
        let named: Vec<DNSKEY> = dnskeys
            .iter()
            .filter(|r| r.name == zone)
            .filter_map(dnskey)
            .filter(|k| {
                ds.iter().any(|d| {
                    k.calculate_key_tag().ok() == Some(d.key_tag())
                        && d.covers(&zone, k).unwrap_or(false)
                })
            })
            .cloned()
            .collect();
        let mut tp = TrustPoint::seed(zone, &named, now);
        let refreshed = tp.refresh(dnskeys, sigs, now, skew, budget)?;
        Ok((tp, refreshed))
    }

    /// One RFC 5011 refresh with a fetched DNSKEY RRset of the zone and its RRSIGs: the set
    /// must validate with a key trusted now (§2.2: an unvalidated set changes nothing); then
    /// every key in it is observed, a revoked one counting only if it signed the set itself
    /// (§2.1).
    pub fn refresh(
        &mut self,
        dnskeys: &[Record],
        sigs: &[Record],
        now: u64,
        skew: Skew,
        budget: &mut Budget,
    ) -> Result<Refreshed, Reason> {
        let zone = self.zone.clone();
        let trusted = self.trusted();
        if trusted.is_empty() {
            return Err(Reason::DnskeyMissing);
        }
        validate_keyset(
            &zone,
            dnskeys,
            sigs,
            Link::Keys(&trusted),
            now,
            skew,
            budget,
        )?;
        let seen: Vec<Observed> = dnskeys
            .iter()
            .filter(|r| r.name == zone)
            .filter_map(dnskey)
            .map(|k| Observed {
                key: k.clone(),
                revoked_self_signed: k.revoke()
                    && revocation_signed(&zone, dnskeys, sigs, k, now, skew, budget),
            })
            .collect();
        let key_sigs = || {
            sigs.iter()
                .filter(|r| r.name == zone)
                .filter_map(rrsig)
                .map(|s| s.input())
                .filter(|i| i.type_covered == RecordType::DNSKEY)
        };
        let ttl = key_sigs().map(|i| i.original_ttl).min().unwrap_or(0);
        // RFC 4034 §3.1.5 serial arithmetic, as `verify::check_window`.
        let sig_remaining = key_sigs()
            .map(|i| (i.sig_expiration.get().wrapping_sub(now as u32) as i32).max(0) as u64)
            .min()
            .unwrap_or(0);
        Ok(Refreshed {
            changes: self.observe(&seen, now),
            ttl,
            sig_remaining,
        })
    }

    /// The state file text for this trust point: one DNSKEY per line in zone-file format
    /// (readable by `--trust-anchor` as well), its state in a trailing comment.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "; hopdns RFC 5011 trust-anchor state for {} (rewritten by hopdns; edit only while it is stopped)\n",
            self.zone
        );
        for k in &self.keys {
            out.push_str(&format!(
                "{} IN DNSKEY {} 3 {} {} ;;state={} ;;since={} ;;id={}\n",
                self.zone,
                k.key.flags(),
                u8::from(k.key.algorithm()),
                data_encoding::BASE64.encode(k.key.public_key().public_bytes()),
                k.state,
                k.since,
                tag(&k.key),
            ));
        }
        out
    }

    /// Reads state file text (as [`TrustPoint::to_text`] writes it); `path` is for errors.
    pub fn from_text(path: &Path, text: &str) -> Result<Vec<TrustPoint>, AnchorError> {
        let err = |line: usize, message: String| AnchorError {
            path: path.to_path_buf(),
            line,
            message,
        };
        let mut points: Vec<TrustPoint> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line_no = n + 1;
            let (record, comment) = match line.find(';') {
                Some(i) => (&line[..i], &line[i..]),
                None => (line, ""),
            };
            if record.trim().is_empty() {
                continue;
            }
            let parsed = anchor::parse(path, record).map_err(|e| err(line_no, e.message))?;
            let Some((zone, Anchor::Key(key))) = parsed.into_iter().next() else {
                return Err(err(
                    line_no,
                    "a state file holds DNSKEY records only".into(),
                ));
            };
            let field = |name: &str| {
                comment
                    .split(";;")
                    .find_map(|f| f.trim().strip_prefix(name)?.strip_prefix('='))
                    .map(str::trim)
            };
            let state = field("state")
                .and_then(KeyState::parse)
                .ok_or_else(|| err(line_no, "missing or unknown ;;state=".into()))?;
            let since = field("since")
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| err(line_no, "missing or bad ;;since=".into()))?;
            let tracked = TrackedKey { key, state, since };
            match points.iter_mut().find(|p| p.zone == zone) {
                Some(p) => p.keys.push(tracked),
                None => points.push(TrustPoint {
                    zone,
                    keys: vec![tracked],
                }),
            }
        }
        Ok(points)
    }
}

/// Reads the state file at `path` ([`TrustPoint::to_text`]'s format, one block per trust
/// point; `serve` writes it, `resolver::trustpoints`).
pub fn load(path: &Path) -> Result<Vec<TrustPoint>, AnchorError> {
    let text = std::fs::read_to_string(path).map_err(|e| AnchorError {
        path: path.to_path_buf(),
        line: 0,
        message: format!("cannot read the trust-anchor state file: {e}"),
    })?;
    TrustPoint::from_text(path, &text)
}

/// Builds a DNSKEY with the REVOKE bit set (tests and the lab's rollover case).
pub fn with_revoke(key: &DNSKEY) -> DNSKEY {
    DNSKEY::with_flags(
        key.flags() | REVOKE,
        PublicKeyBuf::new(key.public_key().public_bytes().to_vec(), key.algorithm()),
    )
}

#[cfg(test)]
mod tests;
