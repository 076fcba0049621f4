//! Saving and loading the answer cache (`hopdns ctl dump-cache` / `load-cache`, and the warm
//! restart of `--cache-file`).
//!
//! The file is text, one RRset or negative answer per line, each with its absolute expiry on
//! the system clock, so the TTLs left after a restart are true to the time that passed
//! (entries that expired meanwhile are skipped):
//!
//! ```text
//! hopdns-cache 1
//! <expires unix s> <kind 0 records|1 nxdomain|2 nodata> <key hex> <wire records hex>
//! ```
//!
//! Reply templates are not saved: the first question after a load rebuilds its template
//! from these RRsets without going upstream. A loaded file is input like any packet: every
//! line is decoded and checked before it is believed.

use std::fmt::Write as _;
use std::io::{self, BufRead, Write};

use super::answer::Kind;
use super::Cache;

const MAGIC: &str = "hopdns-cache 1";

/// What every version's first line starts with: `hopdns-cache <version>`. A file whose
/// first line does not is not ours, and is never loaded or overwritten.
pub const MAGIC_PREFIX: &str = "hopdns-cache ";

/// Whether `first_line` is a hopdns cache file's header (any version).
pub fn is_cache_header(first_line: &str) -> bool {
    first_line
        .strip_prefix(MAGIC_PREFIX)
        .is_some_and(|v| !v.trim().is_empty() && v.trim().bytes().all(|b| b.is_ascii_digit()))
}

/// Why a cache file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("reading the cache file: {0}")]
    Io(#[from] io::Error),
    #[error("not a hopdns cache file (the first line must be `{MAGIC}`)")]
    NotACacheFile,
    #[error("line {line}: {problem}")]
    Bad { line: usize, problem: &'static str },
}

impl Cache {
    /// Writes every answer-cache entry still within its TTL or serve-stale window; returns
    /// how many.
    pub fn dump(&self, out: &mut dyn Write) -> io::Result<usize> {
        writeln!(out, "{MAGIC}")?;
        let mut n = 0;
        let mut result = Ok(());
        let mut line = String::new();
        self.answers.export(|key, expires, kind, data| {
            if result.is_err() {
                return;
            }
            line.clear();
            let _ = write!(line, "{expires} {} ", kind as u8);
            hex(&mut line, key);
            line.push(' ');
            hex(&mut line, data);
            line.push('\n');
            result = out.write_all(line.as_bytes());
            n += 1;
        });
        result?;
        out.flush()?;
        Ok(n)
    }

    /// Loads entries written by [`Cache::dump`] that are still fresh at `now`; returns how
    /// many were taken. A malformed line stops the load with its line number (entries read
    /// before it stay).
    pub fn load(&self, input: &mut dyn BufRead, now: u64) -> Result<usize, LoadError> {
        let mut lines = input.lines();
        match lines.next() {
            Some(Ok(first)) if first.trim_end() == MAGIC => {}
            Some(Err(e)) => return Err(e.into()),
            _ => return Err(LoadError::NotACacheFile),
        }
        let mut taken = 0;
        for (i, line) in lines.enumerate() {
            let line = line?;
            let bad = |problem| LoadError::Bad {
                line: i + 2,
                problem,
            };
            if line.trim().is_empty() {
                continue;
            }
            let mut fields = line.split_ascii_whitespace();
            let expires: u64 = fields
                .next()
                .and_then(|f| f.parse().ok())
                .ok_or(bad("expiry is not a number"))?;
            let kind = fields
                .next()
                .and_then(|f| f.parse::<u8>().ok())
                .and_then(Kind::from_u8)
                .ok_or(bad("kind is not 0, 1 or 2"))?;
            let key = fields.next().and_then(unhex).ok_or(bad("key is not hex"))?;
            let data = fields
                .next()
                .and_then(unhex)
                .ok_or(bad("data is not hex"))?;
            if fields.next().is_some() {
                return Err(bad("too many fields"));
            }
            if self.answers.import(&key, expires, kind, &data, now) {
                taken += 1;
            }
        }
        Ok(taken)
    }
}

fn hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{CacheConfig, Cached};
    use crate::resolver::Question;
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{Name, RData, Record, RecordType};

    #[test]
    fn dump_and_load_keep_the_time_left() {
        let a = Cache::new(CacheConfig::default());
        let n = Name::from_ascii("www.example.").unwrap();
        let q = Question::new(n.clone(), RecordType::A);
        let rec = Record::from_rdata(n.clone(), 300, RData::A(A::new(192, 0, 2, 1)));
        a.answers.insert_records(q.clone(), vec![rec.clone()], 1000);
        let gone = Question::new(Name::from_ascii("old.example.").unwrap(), RecordType::A);
        a.answers.insert_records(gone.clone(), vec![rec], 1000);
        let mut file = Vec::new();
        assert_eq!(a.dump(&mut file).unwrap(), 2);

        let b = Cache::new(CacheConfig::default());
        // 100 s later: 200 s left.
        assert_eq!(b.load(&mut file.as_slice(), 1100).unwrap(), 2);
        assert!(matches!(b.answers.get(&q, 1100), Some(Cached::Records(r)) if r[0].ttl == 200));
        // Past the expiry: nothing taken.
        let c = Cache::new(CacheConfig::default());
        assert_eq!(c.load(&mut file.as_slice(), 1300).unwrap(), 0);
    }

    #[test]
    fn a_bad_file_is_refused_with_its_line() {
        let c = Cache::new(CacheConfig::default());
        assert!(matches!(
            c.load(&mut "hello\n".as_bytes(), 0),
            Err(LoadError::NotACacheFile)
        ));
        let text = format!("{MAGIC}\n99999999999 0 zz 00\n");
        assert!(matches!(
            c.load(&mut text.as_bytes(), 0),
            Err(LoadError::Bad { line: 2, .. })
        ));
        // Garbage records decode to nothing and are skipped, not believed.
        let text = format!("{MAGIC}\n99999999999 0 0000010001 ffff\n");
        assert_eq!(c.load(&mut text.as_bytes(), 0).unwrap(), 0);
    }
}
