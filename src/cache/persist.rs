//! Saving and loading the answer cache (`hopdns ctl dump-cache` / `load-cache`, and the warm
//! restart of `--cache-file`).
//!
//! The file is text in zone-file (presentation) form, so a person can read what the cache
//! holds: one entry per RRset or negative answer, a `;;` line with the entry's question and
//! absolute expiry on the system clock, then its records with the TTL that was left when
//! the file was written. Loading takes the expiry from the `;;` line, so TTLs after a
//! restart are true to the time that passed, and entries that expired meanwhile are
//! skipped:
//!
//! ```text
//! hopdns-cache 2
//! ;; entry www.example.com. 1 1 1796039852 answer  (A IN, 299 s left)
//! www.example.com. 299 IN A 192.0.2.1
//! ;; entry nope.example.com. 1 1 1796039000 nxdomain  (A IN, 300 s left)
//! example.com. 300 IN SOA ns1.example.com. admin.example.com. 1 3600 600 86400 300
//! ```
//!
//! The `;;` fields are the question's name, type and class as numbers (so any type
//! survives), the expiry and the kind (`answer`, `nxdomain`, `nodata`). Files of version 1
//! (hex lines, written by earlier versions of hopdns) still load. Reply templates are not saved: the first
//! question after a load rebuilds its template from these RRsets without going upstream. A
//! loaded file is input like any packet: every record is parsed and checked before it is
//! believed; an entry whose records do not parse is skipped.

use std::fmt::Write as _;
use std::io::{self, BufRead, Write};

use hickory_proto::rr::{DNSClass, Name, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use hickory_proto::serialize::txt::Parser;

use super::answer::{decode_records, encode_records, Kind};
use super::Cache;
use crate::dns::wire::{key_name, KeyBuf};

const MAGIC_V1: &str = "hopdns-cache 1";
const MAGIC: &str = "hopdns-cache 2";

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

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Records => "answer",
        Kind::NxDomain => "nxdomain",
        Kind::NoData => "nodata",
    }
}

fn kind_of(name: &str) -> Option<Kind> {
    match name {
        "answer" => Some(Kind::Records),
        "nxdomain" => Some(Kind::NxDomain),
        "nodata" => Some(Kind::NoData),
        _ => None,
    }
}

impl Cache {
    /// Writes every answer-cache entry still within its TTL or serve-stale window; returns
    /// how many.
    pub fn dump(&self, out: &mut dyn Write) -> io::Result<usize> {
        writeln!(out, "{MAGIC}")?;
        writeln!(
            out,
            "; hopdns cache, written at {} (unix time). Each entry: `;; entry NAME TYPE CLASS \
             EXPIRES KIND`, then its records with the TTL left at that time.",
            self.clock.unix_secs()
        )?;
        let now = self.clock.unix_secs();
        let mut n = 0;
        let mut result = Ok(());
        let mut text = String::new();
        self.answers.export(|key, expires, kind, data| {
            if result.is_err() {
                return;
            }
            let Some(block) = entry_text(&mut text, key, expires, kind, data, now) else {
                return;
            };
            result = out.write_all(block.as_bytes());
            n += 1;
        });
        result?;
        out.flush()?;
        Ok(n)
    }

    /// Loads entries written by [`Cache::dump`] that are still fresh at `now`; returns how
    /// many were taken. A malformed `;;` line stops the load with its line number (entries
    /// read before it stay).
    pub fn load(&self, input: &mut dyn BufRead, now: u64) -> Result<usize, LoadError> {
        let mut lines = input.lines();
        match lines.next() {
            Some(Ok(first)) if first.trim_end() == MAGIC => self.load_v2(lines, now),
            Some(Ok(first)) if first.trim_end() == MAGIC_V1 => self.load_v1(lines, now),
            Some(Err(e)) => Err(e.into()),
            _ => Err(LoadError::NotACacheFile),
        }
    }

    fn load_v2(
        &self,
        lines: impl Iterator<Item = io::Result<String>>,
        now: u64,
    ) -> Result<usize, LoadError> {
        let mut taken = 0;
        let mut entry: Option<(KeyBuf, u64, Kind)> = None;
        let mut records = String::new();
        let mut finish = |entry: &mut Option<(KeyBuf, u64, Kind)>, records: &mut String| {
            if let Some((key, expires, kind)) = entry.take() {
                if self.import_text(&key, expires, kind, records, now) {
                    taken += 1;
                }
            }
            records.clear();
        };
        for (i, line) in lines.enumerate() {
            let line = line?;
            let bad = |problem| LoadError::Bad {
                line: i + 2,
                problem,
            };
            let trimmed = line.trim();
            if let Some(rest) = trimmed.strip_prefix(";; entry ") {
                finish(&mut entry, &mut records);
                let mut f = rest.split_ascii_whitespace();
                let name = f
                    .next()
                    .and_then(|n| Name::from_ascii(n).ok())
                    .ok_or(bad("the entry's name is not a domain name"))?;
                let qtype = f.next().and_then(|t| t.parse::<u16>().ok());
                let qclass = f.next().and_then(|c| c.parse::<u16>().ok());
                let (Some(qtype), Some(qclass)) = (qtype, qclass) else {
                    return Err(bad("the entry's type and class are not numbers"));
                };
                let expires = f
                    .next()
                    .and_then(|e| e.parse::<u64>().ok())
                    .ok_or(bad("the entry's expiry is not a number"))?;
                let kind = f
                    .next()
                    .and_then(kind_of)
                    .ok_or(bad("the entry's kind is not answer, nxdomain or nodata"))?;
                let key =
                    KeyBuf::from_parts(&name, RecordType::from(qtype), DNSClass::from(qclass));
                entry = Some((key, expires, kind));
            } else if trimmed.is_empty() || trimmed.starts_with(';') {
                continue;
            } else if entry.is_some() {
                records.push_str(&line);
                records.push('\n');
            } else {
                return Err(bad("a record before any `;; entry` line"));
            }
        }
        finish(&mut entry, &mut records);
        Ok(taken)
    }

    /// Parses one entry's records (zone-file lines) and imports them.
    fn import_text(&self, key: &KeyBuf, expires: u64, kind: Kind, text: &str, now: u64) -> bool {
        if expires <= now {
            return false;
        }
        let Ok((_, sets)) = Parser::new(text, None, Some(Name::root())).parse() else {
            return false;
        };
        let records: Vec<Record> = sets
            .into_values()
            .flat_map(|set| set.records_without_rrsigs().cloned().collect::<Vec<_>>())
            .collect();
        let refs: Vec<&Record> = records.iter().collect();
        match encode_records(&refs) {
            Some(data) => self
                .answers
                .import(key.as_bytes(), expires, kind, &data, now),
            None => false,
        }
    }

    /// Version 1: `<expires> <kind 0|1|2> <key hex> <wire records hex>`.
    fn load_v1(
        &self,
        lines: impl Iterator<Item = io::Result<String>>,
        now: u64,
    ) -> Result<usize, LoadError> {
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

/// One entry as text: its `;;` line and its records. `None` for a key that does not decode
/// (never written by us).
fn entry_text<'a>(
    text: &'a mut String,
    key: &[u8],
    expires: u64,
    kind: Kind,
    data: &[u8],
    now: u64,
) -> Option<&'a str> {
    let name = Name::read(&mut BinDecoder::new(key_name(key))).ok()?;
    let tail = key.get(key.len().checked_sub(4)?..)?;
    let qtype = u16::from_be_bytes([tail[0], tail[1]]);
    let qclass = u16::from_be_bytes([tail[2], tail[3]]);
    let left = expires.saturating_sub(now);
    text.clear();
    let _ = writeln!(
        text,
        ";; entry {name} {qtype} {qclass} {expires} {}  ({} {}, {left} s left)",
        kind_name(kind),
        RecordType::from(qtype),
        DNSClass::from(qclass),
    );
    let ttl = u32::try_from(left).unwrap_or(u32::MAX);
    for r in decode_records(data, ttl) {
        let _ = writeln!(text, "{}", crate::dns::record_text(&r));
    }
    Some(text.as_str())
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
    use crate::dns::Question;
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{Name, RData, Record, RecordType};

    #[test]
    fn dump_and_load_keep_the_time_left() {
        let a = Cache::new(CacheConfig::default());
        let n = Name::from_ascii("www.example.").unwrap();
        let q = Question::new(n.clone(), RecordType::A);
        let rec = Record::from_rdata(n.clone(), 300, RData::A(A::new(192, 0, 2, 1)));
        a.answers
            .insert_records(q.clone(), std::slice::from_ref(&rec), 1000);
        let gone = Question::new(Name::from_ascii("old.example.").unwrap(), RecordType::A);
        a.answers.insert_records(gone.clone(), &[rec], 1000);
        let mut file = Vec::new();
        assert_eq!(a.dump(&mut file).unwrap(), 2);
        // Presentation format, not hex (issue 12.11).
        let text = String::from_utf8(file.clone()).unwrap();
        assert!(text.starts_with("hopdns-cache 2\n"), "{text}");
        assert!(
            text.contains(";; entry www.example. 1 1 1300 answer"),
            "{text}"
        );
        assert!(text.contains("\nwww.example. 0 IN A 192.0.2.1\n"), "{text}");

        let b = Cache::new(CacheConfig::default());
        // 100 s later: 200 s left.
        assert_eq!(b.load(&mut file.as_slice(), 1100).unwrap(), 2);
        assert!(matches!(b.answers.get(&q, 1100), Some(Cached::Records(r)) if r[0].ttl == 200));
        // Past the expiry: nothing taken.
        let c = Cache::new(CacheConfig::default());
        assert_eq!(c.load(&mut file.as_slice(), 1300).unwrap(), 0);
    }

    #[test]
    fn negative_entries_and_txt_survive_the_text_form() {
        use hickory_proto::rr::rdata::{SOA, TXT};
        let a = Cache::new(CacheConfig::default());
        let now = a.clock.unix_secs();
        let t = Name::from_ascii("t.example.").unwrap();
        let txt = TXT::from_bytes(vec![b"a \"b\" c", b"\x01"]);
        let qt = Question::new(t.clone(), RecordType::TXT);
        a.answers.insert_records(
            qt.clone(),
            &[Record::from_rdata(t, 300, RData::TXT(txt))],
            now,
        );
        let zone = Name::from_ascii("example.").unwrap();
        let soa = SOA::new(zone.clone(), zone.clone(), 1, 3600, 600, 86400, 300);
        let soa = Record::from_rdata(zone, 300, RData::SOA(soa));
        let qn = Question::new(Name::from_ascii("nope.example.").unwrap(), RecordType::A);
        a.answers.insert_negative(qn.clone(), true, Some(soa), now);
        let mut file = Vec::new();
        assert_eq!(a.dump(&mut file).unwrap(), 2);
        let b = Cache::new(CacheConfig::default());
        let text = String::from_utf8(file.clone()).unwrap();
        assert_eq!(b.load(&mut file.as_slice(), now).unwrap(), 2, "{text}");
        assert!(
            matches!(b.answers.get(&qt, now), Some(Cached::Records(r)) if r[0] == a_txt(&a, &qt, now)),
            "{text}"
        );
        assert!(
            matches!(b.answers.get(&qn, now), Some(Cached::NxDomain(Some(_)))),
            "{text}"
        );
    }

    fn a_txt(c: &Cache, q: &Question, now: u64) -> Record {
        match c.answers.get(q, now) {
            Some(Cached::Records(r)) => r[0].clone(),
            _ => panic!("no TXT"),
        }
    }

    #[test]
    fn a_bad_file_is_refused_with_its_line() {
        let c = Cache::new(CacheConfig::default());
        assert!(matches!(
            c.load(&mut "hello\n".as_bytes(), 0),
            Err(LoadError::NotACacheFile)
        ));
        let text = format!("{MAGIC_V1}\n99999999999 0 zz 00\n");
        assert!(matches!(
            c.load(&mut text.as_bytes(), 0),
            Err(LoadError::Bad { line: 2, .. })
        ));
        // Garbage records decode to nothing and are skipped, not believed.
        let text = format!("{MAGIC_V1}\n99999999999 0 0000010001 ffff\n");
        assert_eq!(c.load(&mut text.as_bytes(), 0).unwrap(), 0);
    }
}
