//! Trust anchors: where chains of trust start (RFC 4035 §4.3, RFC 7958), and negative trust
//! anchors, where validation is switched off for a domain (RFC 7646).
//!
//! The root's KSK-2017 (20326) and KSK-2024 (38696) are built in from
//! `root-hints/root.anchors`. `--trust-anchor FILE` reads DS or DNSKEY records in zone-file
//! format as Unbound's `trust-anchor-file` and BIND read them: optional TTL and class in
//! either order, mnemonic or numeric algorithms, parentheses across lines, `;` comments,
//! `$ORIGIN` and `$TTL`, a blank owner meaning the previous one, several anchors per name
//! and several names. Anchors for the root given in a file replace the built-in ones (the
//! lab's root has its own key). A malformed record is an error naming file and line; a DS
//! whose digest has the wrong length for its type is kept, and makes its zone bogus rather
//! than stopping hopdns.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use hickory_proto::dnssec::rdata::{DNSKEY, DS};
use hickory_proto::dnssec::{Algorithm, PublicKeyBuf};
use hickory_proto::rr::Name;

use super::algo::{parse_algorithm, parse_digest};

/// The root anchors built into hopdns, as shipped in `root-hints/root.anchors`.
pub const ROOT_ANCHORS: &str = include_str!("../../root-hints/root.anchors");

/// One anchor: a DS (a digest of the key) or the DNSKEY itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Anchor {
    Ds(DS),
    Key(DNSKEY),
}

/// A malformed anchor record, located.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: {message}", path.display())]
pub struct AnchorError {
    pub path: PathBuf,
    pub line: usize,
    pub message: String,
}

/// The anchors, by zone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustAnchors {
    zones: BTreeMap<Name, Vec<Anchor>>,
}

impl TrustAnchors {
    /// The built-in root anchors.
    pub fn builtin() -> TrustAnchors {
        let mut anchors = TrustAnchors::default();
        let parsed = parse(Path::new("root-hints/root.anchors"), ROOT_ANCHORS)
            .expect("the built-in root anchors parse (tested)");
        for (zone, anchor) in parsed {
            anchors.add(zone, anchor);
        }
        anchors
    }

    /// The built-in anchors, with the anchors of `files` added; a file's root anchors
    /// replace the built-in ones.
    pub fn load(files: &[PathBuf]) -> Result<TrustAnchors, AnchorError> {
        let mut from_files = TrustAnchors::default();
        for path in files {
            let text = std::fs::read_to_string(path).map_err(|e| AnchorError {
                path: path.clone(),
                line: 0,
                message: format!("cannot read the trust-anchor file: {e}"),
            })?;
            for (zone, anchor) in parse(path, &text)? {
                from_files.add(zone, anchor);
            }
        }
        let mut anchors = TrustAnchors::builtin();
        if from_files.zones.contains_key(&Name::root()) {
            anchors.zones.remove(&Name::root());
        }
        for (zone, list) in from_files.zones {
            for anchor in list {
                anchors.add(zone.clone(), anchor);
            }
        }
        Ok(anchors)
    }

    /// Adds one anchor (duplicates are kept once).
    pub fn add(&mut self, zone: Name, anchor: Anchor) {
        let list = self.zones.entry(zone.to_lowercase()).or_default();
        if !list.contains(&anchor) {
            list.push(anchor);
        }
    }

    /// Replaces every anchor of `zone` (RFC 5011 updates).
    pub fn replace(&mut self, zone: &Name, anchors: Vec<Anchor>) {
        self.zones.insert(zone.to_lowercase(), anchors);
    }

    /// The deepest zone at or above `name` with anchors, and its anchors (RFC 4035 §4.3: a
    /// name with no anchor above it is indeterminate).
    pub fn closest(&self, name: &Name) -> Option<(&Name, &[Anchor])> {
        let name = name.to_lowercase();
        (0..=name.iter().count()).rev().find_map(|k| {
            self.zones
                .get_key_value(&name.trim_to(k))
                .map(|(z, a)| (z, a.as_slice()))
        })
    }

    /// The anchors of exactly `zone`.
    pub fn get(&self, zone: &Name) -> &[Anchor] {
        self.zones
            .get(&zone.to_lowercase())
            .map_or(&[], Vec::as_slice)
    }

    /// The zones with anchors.
    pub fn zones(&self) -> impl Iterator<Item = &Name> {
        self.zones.keys()
    }

    /// DS anchors of one zone, for [`super::verify::Link::Ds`].
    pub fn ds(anchors: &[Anchor]) -> Vec<DS> {
        anchors
            .iter()
            .filter_map(|a| match a {
                Anchor::Ds(d) => Some(d.clone()),
                Anchor::Key(_) => None,
            })
            .collect()
    }

    /// DNSKEY anchors of one zone, for [`super::verify::Link::Keys`].
    pub fn keys(anchors: &[Anchor]) -> Vec<DNSKEY> {
        anchors
            .iter()
            .filter_map(|a| match a {
                Anchor::Key(k) => Some(k.clone()),
                Anchor::Ds(_) => None,
            })
            .collect()
    }
}

/// Negative trust anchors (RFC 7646, `--insecure-domain`): names at or below them are not
/// validated, so their answers are never bogus and never get AD (§2.1). Operator-set, so
/// reloadable without restarting.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NegativeAnchors {
    domains: Vec<Name>,
}

impl NegativeAnchors {
    /// From `--insecure-domain` values; a value that is not a domain name is an error that
    /// names it.
    pub fn parse<S: AsRef<str>>(domains: &[S]) -> Result<NegativeAnchors, String> {
        let mut out = Vec::new();
        for d in domains {
            let d = d.as_ref();
            let name = Name::from_str(d)
                .map_err(|e| format!("--insecure-domain {d}: not a domain name ({e})"))?;
            let mut name = name.to_lowercase();
            name.set_fqdn(true);
            if !out.contains(&name) {
                out.push(name);
            }
        }
        Ok(NegativeAnchors { domains: out })
    }

    /// Whether validation is off for `name`.
    pub fn covers(&self, name: &Name) -> bool {
        self.domains.iter().any(|d| d.zone_of(name))
    }

    pub fn domains(&self) -> &[Name] {
        &self.domains
    }
}

/// Parses an anchor file's text; `path` is used in errors only.
pub fn parse(path: &Path, text: &str) -> Result<Vec<(Name, Anchor)>, AnchorError> {
    let err = |line: usize, message: String| AnchorError {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut out = Vec::new();
    let mut origin: Option<Name> = None;
    let mut previous: Option<Name> = None;
    for entry in entries(text).map_err(|(line, m)| err(line, m))? {
        let line = entry.line;
        let mut tokens = entry.tokens.iter().map(String::as_str);
        let Some(first) = tokens.next() else { continue };
        if first.eq_ignore_ascii_case("$ORIGIN") {
            let o = tokens
                .next()
                .ok_or_else(|| err(line, "$ORIGIN without a name".into()))?;
            origin = Some(absolute(o, None).map_err(|m| err(line, m))?);
            continue;
        }
        if first.eq_ignore_ascii_case("$TTL") {
            continue;
        }
        if first.starts_with('$') {
            return Err(err(line, format!("unknown directive {first}")));
        }
        let (owner, rest): (Name, Vec<&str>) = if entry.blank_owner {
            let prev = previous
                .clone()
                .ok_or_else(|| err(line, "a record without an owner name".into()))?;
            (prev, entry.tokens.iter().map(String::as_str).collect())
        } else {
            let owner = absolute(first, origin.as_ref()).map_err(|m| err(line, m))?;
            (owner, tokens.collect())
        };
        previous = Some(owner.clone());
        let anchor = record(rest).map_err(|m| err(line, m))?;
        out.push((owner, anchor));
    }
    Ok(out)
}

fn absolute(text: &str, origin: Option<&Name>) -> Result<Name, String> {
    if text == "@" {
        return origin
            .cloned()
            .ok_or_else(|| "@ without $ORIGIN".to_string());
    }
    let name = Name::from_str(text).map_err(|e| format!("{text}: not a domain name ({e})"))?;
    if name.is_fqdn() {
        return Ok(name.to_lowercase());
    }
    match origin {
        Some(o) => name
            .append_domain(o)
            .map(|n| n.to_lowercase())
            .map_err(|e| format!("{text}: {e}")),
        None => Err(format!(
            "{text}: a relative name without $ORIGIN (end it with a dot)"
        )),
    }
}

/// The part of a record after its owner: `[TTL] [CLASS] TYPE RDATA`, TTL and class in
/// either order.
fn record(tokens: Vec<&str>) -> Result<Anchor, String> {
    let mut i = 0;
    for _ in 0..2 {
        match tokens.get(i) {
            Some(t) if t.chars().all(|c| c.is_ascii_digit()) => i += 1,
            Some(t) if t.eq_ignore_ascii_case("IN") => i += 1,
            Some(t)
                if ["CH", "HS", "CS", "ANY", "NONE"]
                    .iter()
                    .any(|c| t.eq_ignore_ascii_case(c)) =>
            {
                return Err(format!("class {t}: trust anchors are for class IN"))
            }
            _ => break,
        }
    }
    let rtype = tokens
        .get(i)
        .ok_or_else(|| "a record without a type".to_string())?;
    let rdata = &tokens[i + 1..];
    match rtype.to_ascii_uppercase().as_str() {
        "DS" => ds(rdata),
        "DNSKEY" => dnskey(rdata),
        other => Err(format!(
            "type {other}: a trust anchor is a DS or DNSKEY record"
        )),
    }
}

fn ds(rdata: &[&str]) -> Result<Anchor, String> {
    let [tag, alg, digest_type, digest @ ..] = rdata else {
        return Err("DS needs: key-tag algorithm digest-type digest".into());
    };
    let tag: u16 = tag
        .parse()
        .map_err(|_| format!("DS key tag {tag}: not a number from 0 to 65535"))?;
    let alg = parse_algorithm(alg).ok_or_else(|| format!("DS algorithm {alg}: unknown"))?;
    let digest_type = parse_digest(digest_type)
        .ok_or_else(|| format!("DS digest type {digest_type}: unknown"))?;
    let hex: String = digest.concat();
    if hex.is_empty() {
        return Err("DS without a digest".into());
    }
    if hex.len() % 2 == 1 {
        return Err(format!(
            "DS digest: {} hexadecimal digits, an odd number (two per byte)",
            hex.len()
        ));
    }
    let bytes = data_encoding::HEXUPPER_PERMISSIVE
        .decode(hex.as_bytes())
        .map_err(|e| format!("DS digest: not hexadecimal ({e})"))?;
    Ok(Anchor::Ds(DS::new(tag, alg, digest_type, bytes)))
}

fn dnskey(rdata: &[&str]) -> Result<Anchor, String> {
    let [flags, protocol, alg, key @ ..] = rdata else {
        return Err("DNSKEY needs: flags protocol algorithm public-key".into());
    };
    let flags: u16 = flags
        .parse()
        .map_err(|_| format!("DNSKEY flags {flags}: not a number from 0 to 65535"))?;
    if *protocol != "3" {
        return Err(format!(
            "DNSKEY protocol {protocol}: must be 3 (RFC 4034 §2.1.2)"
        ));
    }
    let alg: Algorithm =
        parse_algorithm(alg).ok_or_else(|| format!("DNSKEY algorithm {alg}: unknown"))?;
    let b64: String = key.concat();
    if b64.is_empty() {
        return Err("DNSKEY without a public key".into());
    }
    let bytes = data_encoding::BASE64
        .decode(b64.as_bytes())
        .map_err(|e| format!("DNSKEY public key: not base64 ({e})"))?;
    if flags & 0x0100 == 0 {
        return Err(format!(
            "DNSKEY flags {flags}: not a zone key (bit 7 clear), cannot anchor a zone"
        ));
    }
    Ok(Anchor::Key(DNSKEY::with_flags(
        flags,
        PublicKeyBuf::new(bytes, alg),
    )))
}

/// One record's tokens, with the line it starts on.
struct Entry {
    line: usize,
    /// The line began with blank space: the owner is the previous record's.
    blank_owner: bool,
    tokens: Vec<String>,
}

/// Splits zone-file text into records: comments dropped, parentheses joining lines
/// (RFC 1035 §5.1).
fn entries(text: &str) -> Result<Vec<Entry>, (usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<Entry> = None;
    let mut depth = 0usize;
    let mut open_line = 0;
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let content = match raw.find(';') {
            Some(i) => &raw[..i],
            None => raw,
        };
        if depth == 0 {
            if let Some(e) = current.take() {
                out.push(e);
            }
            if content.trim().is_empty() {
                continue;
            }
            current = Some(Entry {
                line,
                blank_owner: content.starts_with([' ', '\t']),
                tokens: Vec::new(),
            });
        }
        let entry = current
            .as_mut()
            .expect("set above or by an open parenthesis");
        for word in content.split_whitespace() {
            let mut word = word;
            while let Some(rest) = word.strip_prefix('(') {
                depth += 1;
                open_line = line;
                word = rest;
            }
            let mut closes = 0;
            while let Some(rest) = word.strip_suffix(')') {
                closes += 1;
                word = rest;
            }
            if word.contains(['(', ')']) {
                return Err((line, format!("unexpected parenthesis in {word}")));
            }
            if !word.is_empty() {
                entry.tokens.push(word.to_string());
            }
            if closes > depth {
                return Err((line, "a ')' without its '('".into()));
            }
            depth -= closes;
        }
    }
    if depth > 0 {
        return Err((open_line, "a '(' is never closed".into()));
    }
    out.extend(current);
    Ok(out)
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Anchor::Ds(d) => write!(f, "DS {d}"),
            Anchor::Key(k) => write!(f, "DNSKEY {k}"),
        }
    }
}

#[cfg(test)]
mod tests;
