//! Who may act: the password (an argon2id hash in the config, `--web-password-hash`), the
//! sessions it opens, their CSRF tokens, and the login rate limit.
//!
//! * The hash is a PHC string (`$argon2id$v=19$m=..,t=..,p=..$salt$hash`), made by `hopdns
//!   web-password` with argon2's defaults (OWASP's 19 MiB, 2 passes, 1 lane; RFC 9106 §4).
//!   Only argon2id is accepted: argon2i and argon2d are the weaker variants of RFC 9106 §4.
//! * A login opens a session: a token of 32 bytes from the OS RNG (the cookie,
//!   `HttpOnly; Secure; SameSite=Strict`) and a CSRF token of 32 more, which every POST
//!   must echo in `X-CSRF-Token` (the synchronizer-token pattern of OWASP's CSRF cheat
//!   sheet; SameSite=Strict alone does not cover same-site subdomains). Tokens are
//!   compared in constant time (`subtle`), against every session, so timing tells nothing.
//! * Sessions end [`SESSION_IDLE`] after their last use and [`SESSION_MAX`] after login; at
//!   most [`MAX_SESSIONS`] are kept (the oldest goes).
//! * [`MAX_FAILURES`] wrong passwords from one address within [`FAILURE_WINDOW`] make
//!   further logins from it answer 429 until the window passes, before any hashing.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use subtle::ConstantTimeEq;

use crate::dns::Clock;

/// A session unused for this long ends.
pub const SESSION_IDLE: Duration = Duration::from_secs(2 * 3600);
/// A session ends this long after login, used or not.
pub const SESSION_MAX: Duration = Duration::from_secs(24 * 3600);
/// Sessions kept at once.
pub const MAX_SESSIONS: usize = 64;
/// Failed logins allowed per address within [`FAILURE_WINDOW`].
pub const MAX_FAILURES: usize = 5;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Addresses whose failures are remembered (oldest forgotten first past it).
const MAX_TRACKED: usize = 4096;
/// Bytes of a session or CSRF token.
const TOKEN_BYTES: usize = 32;

/// Why a password hash from the config cannot be used. The message says how to make one.
pub fn check_hash(phc: &str) -> Result<(), String> {
    let how = "make one with `hopdns web-password` (it reads the password on standard input)";
    let parsed = PasswordHash::new(phc)
        .map_err(|e| format!("--web-password-hash is not a PHC hash string ({e}): {how}"))?;
    if parsed.algorithm != argon2::Algorithm::Argon2id.ident() {
        return Err(format!(
            "--web-password-hash uses {}, not argon2id: {how}",
            parsed.algorithm
        ));
    }
    argon2::Params::try_from(&parsed)
        .map_err(|e| format!("--web-password-hash has unusable argon2 parameters ({e}): {how}"))?;
    Ok(())
}

/// The PHC string of `password` with a fresh 16-byte salt from the OS RNG (argon2id,
/// argon2's default parameters).
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("no random bytes from the OS: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Whether `password` matches `phc` (argon2 compares in constant time). Slow on purpose:
/// call it off the async workers.
pub fn verify(phc: &str, password: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A token from the OS RNG, hex-encoded.
fn token() -> Result<String, String> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| format!("no random bytes from the OS: {e}"))?;
    Ok(data_encoding::HEXLOWER.encode(&bytes))
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[derive(Debug)]
struct Session {
    token: String,
    csrf: String,
    created: Instant,
    used: Instant,
}

/// What a request's cookie and header amount to.
#[derive(Debug, PartialEq, Eq)]
pub enum Access {
    /// No valid session.
    Anonymous,
    /// A session, and whether the CSRF token given (if any) is its own.
    Session { csrf: String, csrf_ok: bool },
}

/// Sessions and login failures, on the resolver's clock.
#[derive(Debug)]
pub struct Sessions {
    clock: Clock,
    sessions: VecDeque<Session>,
    failures: HashMap<IpAddr, VecDeque<Instant>>,
}

impl Sessions {
    pub fn new(clock: Clock) -> Self {
        Self {
            clock,
            sessions: VecDeque::new(),
            failures: HashMap::new(),
        }
    }

    /// Opens a session: (session token, CSRF token).
    pub fn open(&mut self) -> Result<(String, String), String> {
        let now = self.clock.now();
        self.expire(now);
        let (token, csrf) = (token()?, token()?);
        while self.sessions.len() >= MAX_SESSIONS {
            self.sessions.pop_front();
        }
        self.sessions.push_back(Session {
            token: token.clone(),
            csrf: csrf.clone(),
            created: now,
            used: now,
        });
        Ok((token, csrf))
    }

    /// Ends the session of `token`, if there is one.
    pub fn close(&mut self, token: &str) {
        self.sessions.retain(|s| !same(&s.token, token));
    }

    /// The access `token` (the cookie) and `csrf` (the header) give; a valid session is
    /// marked used. Every session is compared, in constant time.
    pub fn access(&mut self, token: Option<&str>, csrf: Option<&str>) -> Access {
        let now = self.clock.now();
        self.expire(now);
        let Some(token) = token else {
            return Access::Anonymous;
        };
        let mut found = None;
        for (i, s) in self.sessions.iter().enumerate() {
            if same(&s.token, token) {
                found = Some(i);
            }
        }
        let Some(s) = found.and_then(|i| self.sessions.get_mut(i)) else {
            return Access::Anonymous;
        };
        s.used = now;
        Access::Session {
            csrf: s.csrf.clone(),
            csrf_ok: csrf.is_some_and(|c| same(&s.csrf, c)),
        }
    }

    fn expire(&mut self, now: Instant) {
        self.sessions.retain(|s| {
            now.duration_since(s.used) < SESSION_IDLE && now.duration_since(s.created) < SESSION_MAX
        });
    }

    /// Whether `ip` may try a password now (fewer than [`MAX_FAILURES`] recent failures).
    pub fn may_try(&mut self, ip: IpAddr) -> bool {
        let now = self.clock.now();
        let ip = ip.to_canonical();
        match self.failures.get_mut(&ip) {
            Some(times) => {
                while times
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= FAILURE_WINDOW)
                {
                    times.pop_front();
                }
                if times.is_empty() {
                    self.failures.remove(&ip);
                    return true;
                }
                times.len() < MAX_FAILURES
            }
            None => true,
        }
    }

    /// A wrong password from `ip`.
    pub fn failed(&mut self, ip: IpAddr) {
        let now = self.clock.now();
        if self.failures.len() >= MAX_TRACKED {
            self.failures.retain(|_, t| {
                t.back()
                    .is_some_and(|t| now.duration_since(*t) < FAILURE_WINDOW)
            });
            if self.failures.len() >= MAX_TRACKED {
                // Still full of fresh failures: forget the ones whose last came first.
                let oldest = self
                    .failures
                    .iter()
                    .min_by_key(|(_, t)| t.back().copied())
                    .map(|(ip, _)| *ip);
                if let Some(ip) = oldest {
                    self.failures.remove(&ip);
                }
            }
        }
        let times = self.failures.entry(ip.to_canonical()).or_default();
        times.push_back(now);
        while times.len() > MAX_FAILURES {
            times.pop_front();
        }
    }

    /// A right password from `ip`: its failures are forgotten.
    pub fn succeeded(&mut self, ip: IpAddr) {
        self.failures.remove(&ip.to_canonical());
    }

    /// Sessions open now.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_verify_only_the_right_password() {
        let phc = hash_password("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$"), "{phc}");
        check_hash(&phc).unwrap();
        assert!(verify(&phc, "correct horse"));
        assert!(!verify(&phc, "correct horsf"));
        assert_ne!(phc, hash_password("correct horse").unwrap(), "fresh salt");
    }

    #[test]
    fn other_hashes_are_refused_with_the_fix() {
        let e = check_hash("hunter2").unwrap_err();
        assert!(
            e.contains("not a PHC") && e.contains("hopdns web-password"),
            "{e}"
        );
        let argon2i = "$argon2i$v=19$m=16,t=2,p=1$c29tZXNhbHQ$YWJjZGVmZ2hpamtsbW5vcA";
        let e = check_hash(argon2i).unwrap_err();
        assert!(e.contains("argon2i, not argon2id"), "{e}");
        let bcrypt = "$2b$12$abcdefghijklmnopqrstuuOQ1bE5jvVwFJu0u3CmLGXbQ6s8C9K6e";
        assert!(check_hash(bcrypt).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn sessions_check_the_csrf_token_and_expire() {
        let clock = Clock::manual();
        let mut s = Sessions::new(clock.clone());
        let (token, csrf) = s.open().unwrap();
        assert_eq!(token.len(), 64, "32 bytes, hex");
        assert_ne!(token, csrf);
        assert_eq!(s.access(None, Some(&csrf)), Access::Anonymous);
        assert_eq!(s.access(Some("nope"), Some(&csrf)), Access::Anonymous);
        assert_eq!(
            s.access(Some(&token), Some(&csrf)),
            Access::Session {
                csrf: csrf.clone(),
                csrf_ok: true
            }
        );
        for wrong in [None, Some(""), Some(&token[..])] {
            assert_eq!(
                s.access(Some(&token), wrong),
                Access::Session {
                    csrf: csrf.clone(),
                    csrf_ok: false
                },
                "{wrong:?}"
            );
        }
        // Used within the idle time, it lives on; idle past it, it ends.
        clock.advance(SESSION_IDLE - Duration::from_secs(1));
        assert!(matches!(
            s.access(Some(&token), None),
            Access::Session { .. }
        ));
        clock.advance(SESSION_IDLE);
        assert_eq!(s.access(Some(&token), None), Access::Anonymous);
        assert!(s.is_empty());
        // Logout ends it at once.
        let (token, _) = s.open().unwrap();
        s.close(&token);
        assert_eq!(s.access(Some(&token), None), Access::Anonymous);
    }

    #[tokio::test(start_paused = true)]
    async fn sessions_end_at_the_maximum_age_and_are_bounded() {
        let clock = Clock::manual();
        let mut s = Sessions::new(clock.clone());
        let (token, _) = s.open().unwrap();
        for _ in 0..24 {
            clock.advance(Duration::from_secs(3600));
            let _ = s.access(Some(&token), None);
        }
        assert_eq!(
            s.access(Some(&token), None),
            Access::Anonymous,
            "24 h at most"
        );
        for _ in 0..MAX_SESSIONS + 5 {
            s.open().unwrap();
        }
        assert_eq!(s.len(), MAX_SESSIONS);
    }

    #[tokio::test(start_paused = true)]
    async fn five_failures_in_a_minute_lock_the_address_out_until_it_passes() {
        let clock = Clock::manual();
        let mut s = Sessions::new(clock.clone());
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        let other: IpAddr = "192.0.2.10".parse().unwrap();
        for _ in 0..MAX_FAILURES {
            assert!(s.may_try(ip));
            s.failed(ip);
        }
        assert!(!s.may_try(ip), "the sixth try is refused");
        assert!(
            !s.may_try("::ffff:192.0.2.9".parse().unwrap()),
            "the mapped form is the same address"
        );
        assert!(s.may_try(other), "per address");
        clock.advance(FAILURE_WINDOW);
        assert!(s.may_try(ip), "a minute later");
        s.failed(ip);
        s.succeeded(ip);
        assert!(s.may_try(ip));
    }
}
