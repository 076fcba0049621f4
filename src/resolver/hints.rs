//! Root hints (the `named.root` file) and priming (RFC 8109).
//!
//! The IANA hints are embedded as the default; `--root-hints FILE` replaces them. They are
//! parsed with hickory-proto's zone-file parser. At start, a priming query (`. NS` to a hint
//! server) refreshes the root NS set; if it fails, the hints are used as they are.

use std::collections::BTreeMap;
use std::net::IpAddr;

use hickory_proto::op::Message;
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::txt::Parser;

use crate::cache::{Delegation, NsName};

/// The IANA root hints shipped with hopdns.
pub const IANA_ROOT_HINTS: &str = include_str!("../../root-hints/named.root");

#[derive(Debug, thiserror::Error)]
pub enum HintsError {
    #[error("cannot read root hints file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("root hints {origin}: not a valid zone file: {message}")]
    Parse { origin: String, message: String },
    #[error("root hints {0}: no root NS record with an A or AAAA address")]
    Empty(String),
}

/// Parses root hints text into the root zone cut. `origin` names the source in errors.
pub fn parse(text: &str, origin: &str) -> Result<Delegation, HintsError> {
    let (_, records) = Parser::new(text, None, Some(Name::root()))
        .parse()
        .map_err(|e| HintsError::Parse {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
    let mut ns_names = Vec::new();
    let mut addrs: BTreeMap<Name, Vec<IpAddr>> = BTreeMap::new();
    for (key, set) in &records {
        for r in set.records_without_rrsigs() {
            match (&r.data, key.record_type) {
                (RData::NS(ns), RecordType::NS) if r.name.is_root() => {
                    ns_names.push(ns.0.to_lowercase())
                }
                (RData::A(a), _) => addrs
                    .entry(r.name.to_lowercase())
                    .or_default()
                    .push(IpAddr::V4(a.0)),
                (RData::AAAA(a), _) => addrs
                    .entry(r.name.to_lowercase())
                    .or_default()
                    .push(IpAddr::V6(a.0)),
                _ => {}
            }
        }
    }
    let servers: Vec<NsName> = ns_names
        .into_iter()
        .map(|name| NsName {
            addrs: addrs.get(&name).cloned().unwrap_or_default(),
            name,
        })
        .filter(|s| !s.addrs.is_empty())
        .collect();
    if servers.is_empty() {
        return Err(HintsError::Empty(origin.to_string()));
    }
    Ok(Delegation {
        zone: Name::root(),
        servers,
    })
}

/// Reads hints from a file, or the embedded IANA hints when `path` is `None`.
pub fn load(path: Option<&std::path::Path>) -> Result<Delegation, HintsError> {
    match path {
        None => parse(IANA_ROOT_HINTS, "(built-in IANA hints)"),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|source| HintsError::Read {
                path: p.display().to_string(),
                source,
            })?;
            parse(&text, &p.display().to_string())
        }
    }
}

/// Checks a priming reply (RFC 8109 §3-4): an authoritative NS RRset for the root, with
/// addresses from the additional section. Returns the new root cut and its TTL.
pub fn primed(msg: &Message) -> Option<(Delegation, u32)> {
    if !msg.metadata.authoritative
        || msg.metadata.response_code != hickory_proto::op::ResponseCode::NoError
    {
        return None;
    }
    let ns: Vec<(Name, u32)> = msg
        .answers
        .iter()
        .filter(|r| r.name.is_root())
        .filter_map(|r| match &r.data {
            RData::NS(ns) => Some((ns.0.to_lowercase(), r.ttl)),
            _ => None,
        })
        .collect();
    let ttl = ns.iter().map(|(_, t)| *t).min()?;
    let servers: Vec<NsName> = ns
        .into_iter()
        .map(|(name, _)| NsName {
            addrs: msg
                .additionals
                .iter()
                .filter(|r| r.name == name)
                .filter_map(|r| r.data.ip_addr())
                .collect(),
            name,
        })
        .filter(|s| !s.addrs.is_empty())
        .collect();
    if servers.is_empty() {
        return None;
    }
    Some((
        Delegation {
            zone: Name::root(),
            servers,
        },
        ttl,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_hints_have_13_servers_with_v4_and_v6() {
        let d = parse(IANA_ROOT_HINTS, "builtin").unwrap();
        assert_eq!(d.servers.len(), 13);
        for s in &d.servers {
            assert!(s.addrs.iter().any(|a| a.is_ipv4()), "{}", s.name);
            assert!(s.addrs.iter().any(|a| a.is_ipv6()), "{}", s.name);
        }
        let a = d
            .servers
            .iter()
            .find(|s| s.name == Name::from_ascii("a.root-servers.net.").unwrap())
            .unwrap();
        assert!(a.addrs.contains(&"198.41.0.4".parse().unwrap()));
    }

    #[test]
    fn bad_hints_name_the_problem() {
        let e = parse(". 3600000 NS a.root.\n", "x.hints").unwrap_err();
        assert!(e.to_string().contains("no root NS record"), "{e}");
        let e = parse("this is not a zone\n", "y.hints").unwrap_err();
        assert!(e.to_string().contains("y.hints"), "{e}");
    }
}
