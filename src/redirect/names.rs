//! A compact table of domain names for rule lookup, sized for million-line blocklists.
//!
//! Names are kept as bytes (lowercase, labels joined by `.`, no trailing dot) back to back
//! in one arena; a hash table holds only 4-byte indices into a list of 16-byte entries.
//! One name costs its length plus about 26 bytes (a million 32-byte names: 55.6 MiB), against
//! well over 100 bytes for a `HashMap<hickory Name, _>` (a `Name` alone is a few inline label
//! vectors). Each entry
//! carries two values: one for the name itself (`name`), one for every name strictly below
//! it (`*.name`), so a domain-list entry that blocks a domain and its subdomains costs one
//! entry.
//!
//! Lookup walks from the whole query name up to its shortest suffix: the exact name first,
//! then `*.parent`, `*.grandparent`, ... so the most specific rule wins.

use hashbrown::{DefaultHashBuilder, HashTable};
use std::hash::BuildHasher;

/// Longest name in presentation form without the trailing dot (RFC 1035 §2.3.4: 255 octets
/// on the wire).
pub const MAX_NAME: usize = 253;
/// No value stored for that scope.
const NONE: u32 = u32::MAX;

/// Which names a key covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The name itself.
    Exact,
    /// Every name strictly below it (`*.name`).
    Below,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    start: u32,
    len: u32,
    exact: u32,
    below: u32,
}

/// Names mapped to `u32` values, for [`Scope::Exact`] and [`Scope::Below`] separately.
#[derive(Default)]
pub struct NameTable {
    arena: Vec<u8>,
    entries: Vec<Entry>,
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

/// Why a name cannot be a key.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("empty name")]
    Empty,
    #[error("name longer than {MAX_NAME} characters")]
    TooLong,
    #[error("empty label (two dots in a row, or a leading dot)")]
    EmptyLabel,
    #[error("label longer than 63 characters (RFC 1035 §2.3.4)")]
    LongLabel,
    #[error("character {0:?} is not allowed in a name (letters, digits, '-', '_' only)")]
    BadChar(char),
    #[error("the table is full (over 4 GiB of names)")]
    Full,
}

/// Normalises a name in presentation form into a key: lowercase, no trailing dot. Allows
/// letters, digits, `-` and `_` (the hostname rule of RFC 952/1123, plus `_` for service
/// names); anything else is an error, so a typo in a list is reported, not silently kept.
pub fn key_from_text(text: &str, out: &mut Vec<u8>) -> Result<(), NameError> {
    out.clear();
    let text = text.strip_suffix('.').unwrap_or(text);
    if text.is_empty() {
        return Err(NameError::Empty);
    }
    if text.len() > MAX_NAME {
        return Err(NameError::TooLong);
    }
    let mut label = 0usize;
    for c in text.bytes() {
        match c {
            b'.' => {
                if label == 0 {
                    return Err(NameError::EmptyLabel);
                }
                label = 0;
            }
            b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => label += 1,
            b'A'..=b'Z' => label += 1,
            other => return Err(NameError::BadChar(char::from(other))),
        }
        if label > 63 {
            return Err(NameError::LongLabel);
        }
        out.push(c.to_ascii_lowercase());
    }
    if label == 0 {
        return Err(NameError::EmptyLabel);
    }
    Ok(())
}

/// The key of a hickory name (labels lowercased, joined by `.`); `None` for the root or a
/// name too long for the buffer.
pub fn key_from_name<'a>(
    name: &hickory_proto::rr::Name,
    buf: &'a mut [u8; 256],
) -> Option<&'a [u8]> {
    let mut len = 0usize;
    for label in name.iter() {
        let need = label.len() + usize::from(len > 0);
        if len + need > buf.len() {
            return None;
        }
        if len > 0 {
            buf[len] = b'.';
            len += 1;
        }
        let dest = &mut buf[len..len + label.len()];
        dest.copy_from_slice(label);
        dest.make_ascii_lowercase();
        len += label.len();
    }
    (len > 0).then_some(&buf[..len])
}

impl NameTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Names stored.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Heap bytes held (arena, entries and hash index), for reports and tests.
    pub fn heap_bytes(&self) -> usize {
        self.arena.capacity()
            + self.entries.capacity() * std::mem::size_of::<Entry>()
            + self.index.allocation_size()
    }

    /// Makes room for `names` more names of `bytes` bytes in all, so a large list grows the
    /// table once instead of doubling (each doubling copies, and briefly holds both copies).
    pub fn reserve(&mut self, names: usize, bytes: usize) {
        self.arena.reserve(bytes);
        self.entries.reserve(names);
        let (arena, entries, hasher) = (&self.arena, &self.entries, &self.hasher);
        self.index
            .reserve(names, |&i| hash_entry(hasher, arena, &entries[i as usize]));
    }

    /// Returns unused capacity after loading.
    pub fn shrink_to_fit(&mut self) {
        self.arena.shrink_to_fit();
        self.entries.shrink_to_fit();
        let (arena, entries, hasher) = (&self.arena, &self.entries, &self.hasher);
        self.index
            .shrink_to_fit(|&i| hash_entry(hasher, arena, &entries[i as usize]));
    }

    fn name_of<'a>(arena: &'a [u8], e: &Entry) -> &'a [u8] {
        &arena[e.start as usize..(e.start + e.len) as usize]
    }

    fn slot(&self, key: &[u8]) -> Option<&Entry> {
        let hash = self.hasher.hash_one(key);
        self.index
            .find(hash, |&i| {
                Self::name_of(&self.arena, &self.entries[i as usize]) == key
            })
            .map(|&i| &self.entries[i as usize])
    }

    /// The value stored for `key` in `scope`.
    pub fn get(&self, key: &[u8], scope: Scope) -> Option<u32> {
        let e = self.slot(key)?;
        let v = match scope {
            Scope::Exact => e.exact,
            Scope::Below => e.below,
        };
        (v != NONE).then_some(v)
    }

    /// Sets the value of `key` in `scope` to `merge(old value)`.
    pub fn upsert(
        &mut self,
        key: &[u8],
        scope: Scope,
        merge: impl FnOnce(Option<u32>) -> u32,
    ) -> Result<(), NameError> {
        let hash = self.hasher.hash_one(key);
        let (arena, entries) = (&self.arena, &mut self.entries);
        let found = self
            .index
            .find(hash, |&i| Self::name_of(arena, &entries[i as usize]) == key)
            .copied();
        let i = match found {
            Some(i) => i as usize,
            None => {
                let start = u32::try_from(self.arena.len()).map_err(|_| NameError::Full)?;
                let index = u32::try_from(self.entries.len()).map_err(|_| NameError::Full)?;
                if index == NONE || start.checked_add(key.len() as u32).is_none() {
                    return Err(NameError::Full);
                }
                self.arena.extend_from_slice(key);
                self.entries.push(Entry {
                    start,
                    len: key.len() as u32,
                    exact: NONE,
                    below: NONE,
                });
                let (arena, entries, hasher) = (&self.arena, &self.entries, &self.hasher);
                self.index.insert_unique(hash, index, |&j| {
                    hash_entry(hasher, arena, &entries[j as usize])
                });
                index as usize
            }
        };
        let e = &mut self.entries[i];
        let slot = match scope {
            Scope::Exact => &mut e.exact,
            Scope::Below => &mut e.below,
        };
        let old = (*slot != NONE).then_some(*slot);
        *slot = merge(old);
        Ok(())
    }

    /// The most specific match for `qname` that `accept` takes: the exact name, then
    /// `*.parent`, `*.grandparent`... Returns the matched key's length (a suffix of
    /// `qname`), its scope and what `accept` returned.
    pub fn find<R>(
        &self,
        qname: &[u8],
        mut accept: impl FnMut(u32) -> Option<R>,
    ) -> Option<(usize, Scope, R)> {
        if self.entries.is_empty() {
            return None;
        }
        if let Some(v) = self.get(qname, Scope::Exact) {
            if let Some(r) = accept(v) {
                return Some((qname.len(), Scope::Exact, r));
            }
        }
        let mut rest = qname;
        while let Some(dot) = rest.iter().position(|&c| c == b'.') {
            rest = &rest[dot + 1..];
            if let Some(v) = self.get(rest, Scope::Below) {
                if let Some(r) = accept(v) {
                    return Some((rest.len(), Scope::Below, r));
                }
            }
        }
        None
    }
}

fn hash_entry(hasher: &DefaultHashBuilder, arena: &[u8], e: &Entry) -> u64 {
    hasher.hash_one(NameTable::name_of(arena, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> Vec<u8> {
        let mut v = Vec::new();
        key_from_text(s, &mut v).unwrap();
        v
    }

    #[test]
    fn most_specific_match_wins() {
        let mut t = NameTable::new();
        t.upsert(&key("example.com"), Scope::Below, |_| 1).unwrap();
        t.upsert(&key("ads.example.com"), Scope::Below, |_| 2)
            .unwrap();
        t.upsert(&key("www.ads.example.com"), Scope::Exact, |_| 3)
            .unwrap();
        let f = |q: &str| t.find(&key(q), Some);
        assert_eq!(f("www.ads.example.com"), Some((19, Scope::Exact, 3)));
        assert_eq!(f("x.www.ads.example.com"), Some((15, Scope::Below, 2)));
        assert_eq!(f("a.example.com"), Some((11, Scope::Below, 1)));
        // `*.example.com` does not cover example.com itself.
        assert_eq!(f("example.com"), None);
        assert_eq!(f("example.org"), None);
    }

    #[test]
    fn rejected_values_fall_through_to_less_specific_rules() {
        let mut t = NameTable::new();
        t.upsert(&key("a.b.c"), Scope::Exact, |_| 1).unwrap();
        t.upsert(&key("c"), Scope::Below, |_| 2).unwrap();
        let r = t.find(&key("a.b.c"), |v| (v == 2).then_some(v));
        assert_eq!(r, Some((1, Scope::Below, 2)));
    }

    #[test]
    fn upsert_merges_and_both_scopes_share_one_entry() {
        let mut t = NameTable::new();
        t.upsert(&key("x.org"), Scope::Exact, |_| 5).unwrap();
        t.upsert(&key("X.ORG."), Scope::Below, |_| 6).unwrap();
        t.upsert(&key("x.org"), Scope::Exact, |old| old.unwrap() + 10)
            .unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t.get(&key("x.org"), Scope::Exact), Some(15));
        assert_eq!(t.get(&key("x.org"), Scope::Below), Some(6));
    }

    #[test]
    fn text_keys_are_checked() {
        let mut v = Vec::new();
        assert_eq!(key_from_text("a..b", &mut v), Err(NameError::EmptyLabel));
        assert_eq!(key_from_text("a b", &mut v), Err(NameError::BadChar(' ')));
        assert_eq!(key_from_text("", &mut v), Err(NameError::Empty));
        assert_eq!(
            key_from_text(&"a".repeat(64), &mut v),
            Err(NameError::LongLabel)
        );
        assert!(key_from_text("Foo_bar-1.Example.", &mut v).is_ok());
        assert_eq!(v, b"foo_bar-1.example");
    }

    #[test]
    fn wire_and_name_keys_agree() {
        use crate::dns::wire::dotted_key;
        use hickory_proto::op::{Message, Query};
        use hickory_proto::rr::{Name, RecordType};
        let name = Name::from_ascii("WWW.Example.COM.").unwrap();
        let mut m = Message::query();
        m.add_query(Query::query(name.clone(), RecordType::A));
        let wire = m.to_vec().unwrap();
        let (mut a, mut b) = ([0u8; 256], [0u8; 256]);
        let qname = &wire[12..wire.len() - 4];
        assert_eq!(dotted_key(qname, &mut a), Some(&b"www.example.com"[..]));
        assert_eq!(key_from_name(&name, &mut b), Some(&b"www.example.com"[..]));
    }
}
