//! Cache switches (`--cache-size`, TTL clamps, serve-stale, prefetch), with Unbound's
//! defaults where Unbound has one.

use clap::Args;

use crate::cache::{CacheConfig, DEFAULT_CACHE_SIZE};

/// Smallest `--cache-size` accepted: below this the cache would hold a handful of names.
const MIN_CACHE_SIZE: usize = 1 << 20;

#[derive(Args, Clone, Debug, Default)]
pub struct CacheArgs {
    /// Memory for the cache, e.g. 64m, 512k, 1g or a byte count (default 64m): an eighth for
    /// zone cuts, the rest for answers. Least recently used entries are evicted beyond it.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub cache_size: Option<usize>,
    /// Raise TTLs below this many seconds to it (default 0).
    #[arg(long, value_name = "SECONDS")]
    pub min_ttl: Option<u32>,
    /// Lower TTLs above this many seconds to it (default 86400).
    #[arg(long, value_name = "SECONDS")]
    pub max_ttl: Option<u32>,
    /// Cap on how long NXDOMAIN and NODATA answers are cached (default 3600; RFC 2308 §5).
    #[arg(long, value_name = "SECONDS")]
    pub max_negative_ttl: Option<u32>,
    /// How long a failed resolution is answered SERVFAIL without retrying (default 5;
    /// RFC 9520 §3.2: at least 1, at most 300).
    #[arg(long, value_name = "SECONDS")]
    pub servfail_ttl: Option<u32>,
    /// Never answer from expired entries (RFC 8767 serve-stale is on by default).
    #[arg(long)]
    pub no_serve_stale: bool,
    /// How long after expiry an entry may still be served stale (default 86400).
    #[arg(long, value_name = "SECONDS")]
    pub stale_max_age: Option<u32>,
    /// Do not refresh entries hit in the last 10% of their TTL (prefetch is on by default).
    #[arg(long)]
    pub no_prefetch: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CacheArgsError {
    #[error("--cache-size {0} is below the minimum of 1m: give at least 1m")]
    TooSmall(usize),
    #[error("--min-ttl {0} is above --max-ttl {1}: lower --min-ttl or raise --max-ttl")]
    MinAboveMax(u32, u32),
    #[error("--servfail-ttl {0} is outside 1..=300 s (RFC 9520 §3.2): give 1 to 300")]
    ServfailTtl(u32),
}

impl CacheArgs {
    pub fn build(&self) -> Result<CacheConfig, CacheArgsError> {
        let d = CacheConfig::default();
        let c = CacheConfig {
            size_bytes: self.cache_size.unwrap_or(DEFAULT_CACHE_SIZE),
            min_ttl: self.min_ttl.unwrap_or(d.min_ttl),
            max_ttl: self.max_ttl.unwrap_or(d.max_ttl),
            max_negative_ttl: self.max_negative_ttl.unwrap_or(d.max_negative_ttl),
            servfail_ttl: self.servfail_ttl.unwrap_or(d.servfail_ttl),
            serve_stale: !self.no_serve_stale,
            stale_max_age: self.stale_max_age.unwrap_or(d.stale_max_age),
            prefetch: !self.no_prefetch,
        };
        match Self::problems_of(&c).into_iter().next() {
            Some(e) => Err(e),
            None => Ok(c),
        }
    }
}

impl CacheArgs {
    /// Every problem with these values (`config check` reports them all at once).
    pub fn problems(&self) -> Vec<CacheArgsError> {
        let d = CacheConfig::default();
        Self::problems_of(&CacheConfig {
            size_bytes: self.cache_size.unwrap_or(DEFAULT_CACHE_SIZE),
            min_ttl: self.min_ttl.unwrap_or(d.min_ttl),
            max_ttl: self.max_ttl.unwrap_or(d.max_ttl),
            servfail_ttl: self.servfail_ttl.unwrap_or(d.servfail_ttl),
            ..d
        })
    }

    fn problems_of(c: &CacheConfig) -> Vec<CacheArgsError> {
        let mut problems = Vec::new();
        if c.size_bytes < MIN_CACHE_SIZE {
            problems.push(CacheArgsError::TooSmall(c.size_bytes));
        }
        if c.min_ttl > c.max_ttl {
            problems.push(CacheArgsError::MinAboveMax(c.min_ttl, c.max_ttl));
        }
        if !(1..=300).contains(&c.servfail_ttl) {
            problems.push(CacheArgsError::ServfailTtl(c.servfail_ttl));
        }
        problems
    }
}

impl CacheArgsError {
    /// The config key the problem is about (for `config check`'s file:line:key).
    pub fn key(&self) -> &'static str {
        match self {
            CacheArgsError::TooSmall(_) => "cache-size",
            CacheArgsError::MinAboveMax(..) => "min-ttl",
            CacheArgsError::ServfailTtl(_) => "servfail-ttl",
        }
    }
}

/// `64m`, `512k`, `1g` (powers of 1024) or plain bytes.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (digits, shift) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 10),
        Some('m') => (&t[..t.len() - 1], 20),
        Some('g') => (&t[..t.len() - 1], 30),
        _ => (t, 0),
    };
    digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| format!("`{s}` is not a size: write e.g. 64m, 512k, 1g or a byte count"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("64m"), Ok(64 << 20));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("1gb"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("lots").unwrap_err().contains("64m"));
    }

    #[test]
    fn defaults_and_errors() {
        let c = CacheArgs::default().build().unwrap();
        assert_eq!(c.size_bytes, 64 << 20);
        assert!(c.serve_stale && c.prefetch);
        assert_eq!(
            (c.min_ttl, c.max_ttl, c.max_negative_ttl),
            (0, 86_400, 3_600)
        );
        let bad = CacheArgs {
            min_ttl: Some(600),
            max_ttl: Some(60),
            ..Default::default()
        };
        assert_eq!(
            bad.build().unwrap_err(),
            CacheArgsError::MinAboveMax(600, 60)
        );
        let small = CacheArgs {
            cache_size: Some(1000),
            ..Default::default()
        };
        assert!(small
            .build()
            .unwrap_err()
            .to_string()
            .contains("at least 1m"));
        let off = CacheArgs {
            no_serve_stale: true,
            no_prefetch: true,
            ..Default::default()
        };
        let c = off.build().unwrap();
        assert!(!c.serve_stale && !c.prefetch);
    }
}
