//! Imports: blocklists (hosts-file format and plain domain lists) and Response Policy Zones.
//!
//! Lists are read a line at a time into the compact name table ([`super::names`]); every
//! name of one list points at one shared rule, so a name costs its length plus about 26
//! bytes and nothing per line besides. A line that cannot be read stops the load with its
//! file and line number.
//!
//! RPZ files (the format of draft-vixie-dnsop-dns-rpz-00) are parsed with hickory-proto's
//! zone-file parser. Only QNAME triggers are supported; IP, NSDNAME, NSIP and client-IP triggers are counted as
//! skipped and logged.

use std::collections::HashMap;
use std::io::BufRead;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;

use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::txt::Parser;
use ipnet::IpNet;

use super::file::ListFormat;
use super::names::{self, Scope};
use super::rules::{Action, Builder, Rule};
use super::RedirectError;

/// How a blocklist is read and what its names do.
pub struct ListSettings {
    pub format: ListFormat,
    /// Block the names below each listed name too.
    pub subdomains: bool,
    pub sinkhole: bool,
    pub ttl: u32,
    pub clients: Vec<IpNet>,
}

/// Names in hosts files that describe the machine itself, never something to block.
const HOSTS_SKIP: [&str; 12] = [
    "localhost",
    "localhost.localdomain",
    "local",
    "broadcasthost",
    "ip6-localhost",
    "ip6-loopback",
    "ip6-localnet",
    "ip6-mcastprefix",
    "ip6-allnodes",
    "ip6-allrouters",
    "ip6-allhosts",
    "0.0.0.0",
];

/// Loads a blocklist file into `b`.
pub fn list(b: &mut Builder, path: &Path, s: &ListSettings) -> Result<(), RedirectError> {
    let read_err = |source| RedirectError::Read {
        file: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    b.add_file(path.to_path_buf());
    // Size the table once: a first pass counts the lines (an upper bound on the names, and
    // the file's size one on their bytes). Cheap next to parsing, and it spares a large list
    // the copies (and double memory) of growing by doubling.
    let size = file.metadata().map_or(0, |m| m.len() as usize);
    let mut lines = 0usize;
    let mut counter = std::io::BufReader::with_capacity(1 << 16, &file);
    loop {
        let buf = counter.fill_buf().map_err(read_err)?;
        if buf.is_empty() {
            break;
        }
        lines += buf.iter().filter(|&&c| c == b'\n').count();
        let n = buf.len();
        counter.consume(n);
    }
    drop(counter);
    let mut file = file;
    std::io::Seek::rewind(&mut file).map_err(read_err)?;
    b.reserve(lines + 1, size);
    let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
    let kind = match s.format {
        ListFormat::Hosts => "hosts",
        ListFormat::Domains => "domains",
    };
    let origin: Arc<str> = format!("{} ({kind})", path.display()).into();
    let block = b.add_rule(Rule {
        clients: s.clients.clone(),
        action: Action::Block {
            sinkhole: s.sinkhole,
            ttl: s.ttl,
        },
        origin: origin.clone(),
    });
    // Hosts lines with a real address are local names (overrides), kept in file order.
    let mut overrides: HashMap<Vec<u8>, (Vec<Ipv4Addr>, Vec<Ipv6Addr>)> = HashMap::new();
    let mut order: Vec<Vec<u8>> = Vec::new();
    let mut line = String::new();
    let mut key = Vec::with_capacity(256);
    let mut n = 0usize;
    loop {
        line.clear();
        if reader.read_line(&mut line).map_err(read_err)? == 0 {
            break;
        }
        n += 1;
        let bad = |problem: String| RedirectError::Invalid {
            file: path.to_path_buf(),
            line: n,
            problem,
        };
        let text = line.split('#').next().unwrap_or("").trim();
        if text.is_empty() {
            continue;
        }
        match s.format {
            ListFormat::Domains => {
                let scope = super::file::pattern(text, &mut key).map_err(bad)?;
                bind(b, &key, scope, s.subdomains, block).map_err(|e| bad(e.to_string()))?;
            }
            ListFormat::Hosts => {
                let mut fields = text.split_whitespace();
                let addr_text = fields.next().unwrap_or("");
                let hosts: Vec<&str> = fields
                    .filter(|h| !HOSTS_SKIP.iter().any(|s| s.eq_ignore_ascii_case(h)))
                    .collect();
                if hosts.is_empty() {
                    continue;
                }
                let addr: IpAddr = addr_text.parse().map_err(|_| {
                    bad(format!(
                        "{addr_text:?} is not an address: hosts lines read \"0.0.0.0 name\""
                    ))
                })?;
                let sink = matches!(addr, IpAddr::V4(a) if a.is_unspecified() || a.is_loopback())
                    || matches!(addr, IpAddr::V6(a) if a.is_unspecified() || a.is_loopback());
                for h in hosts {
                    names::key_from_text(h, &mut key)
                        .map_err(|e| bad(format!("name {h:?}: {e}")))?;
                    if sink {
                        bind(b, &key, Scope::Exact, s.subdomains, block)
                            .map_err(|e| bad(e.to_string()))?;
                    } else {
                        let entry = overrides.entry(key.clone()).or_insert_with(|| {
                            order.push(key.clone());
                            Default::default()
                        });
                        match addr {
                            IpAddr::V4(a) if !entry.0.contains(&a) => entry.0.push(a),
                            IpAddr::V6(a) if !entry.1.contains(&a) => entry.1.push(a),
                            _ => {}
                        }
                    }
                }
            }
        }
    }
    for k in order {
        let Some((a, aaaa)) = overrides.remove(&k) else {
            continue;
        };
        let id = b.add_rule(Rule {
            clients: s.clients.clone(),
            action: Action::Override {
                a,
                aaaa,
                ttl: s.ttl,
                passthrough: false,
            },
            origin: origin.clone(),
        });
        b.bind(&k, Scope::Exact, id)
            .map_err(|e| RedirectError::Invalid {
                file: path.to_path_buf(),
                line: 0,
                problem: e.to_string(),
            })?;
    }
    tracing::debug!(file = %path.display(), lines = n, "blocklist loaded");
    Ok(())
}

fn bind(
    b: &mut Builder,
    key: &[u8],
    scope: Scope,
    subdomains: bool,
    rule: u32,
) -> Result<(), names::NameError> {
    b.bind(key, scope, rule)?;
    if subdomains && scope == Scope::Exact {
        b.bind(key, Scope::Below, rule)?;
    }
    Ok(())
}

/// RPZ trigger labels other than QNAME (the label just above the policy zone's origin).
const OTHER_TRIGGERS: [&str; 4] = ["rpz-ip", "rpz-nsdname", "rpz-nsip", "rpz-client-ip"];

/// Loads a Response Policy Zone file into `b`. The zone's apex is the owner of its SOA
/// (or `origin`); each owner below it is a QNAME trigger.
pub fn rpz(
    b: &mut Builder,
    path: &Path,
    origin: Option<Name>,
    clients: &[IpNet],
) -> Result<(), RedirectError> {
    let text = std::fs::read_to_string(path).map_err(|source| RedirectError::Read {
        file: path.to_path_buf(),
        source,
    })?;
    b.add_file(path.to_path_buf());
    let parsed = Parser::new(text.as_str(), Some(path.to_path_buf()), origin.clone()).parse();
    let (_, records) = parsed.map_err(|e| {
        // Blame the missing origin only when an origin would have helped: parsed again
        // with the root as origin, a file that still fails has another problem (a CNAME
        // with no target, say), reported on its own line.
        let retry = origin.clone().or_else(|| Some(Name::root()));
        let other = Parser::new(text.as_str(), Some(path.to_path_buf()), retry.clone())
            .parse()
            .err();
        let problem = match (&origin, other) {
            (None, None) => format!(
                "{e} (no origin is known for relative names and @: add origin = \"policy.zone.\" \
                 to this [[rpz]] entry, or $ORIGIN to the file)"
            ),
            (None, Some(other)) => rpz_problem(&other.to_string()),
            (Some(_), _) => rpz_problem(&e.to_string()),
        };
        RedirectError::Invalid {
            file: path.to_path_buf(),
            line: first_bad_line(&text, path, retry),
            problem,
        }
    })?;
    let invalid = |problem: String| RedirectError::Invalid {
        file: path.to_path_buf(),
        line: 0,
        problem,
    };
    let apex = records
        .keys()
        .find(|k| k.record_type == RecordType::SOA)
        .map(|k| Name::from(k.name.clone()))
        .or(origin)
        .ok_or_else(|| {
            invalid("no SOA record: an RPZ file is a zone; add one, or set `origin`".into())
        })?;
    let shared_origin: Arc<str> = path.display().to_string().into();
    // Triggers with the same action and TTL share one rule; a TTL of its own makes a rule
    // of its own, so every trigger answers with the TTL its zone gave it.
    let mut shared: HashMap<(&'static str, u32), u32> = HashMap::new();
    let mut shared_rule = |b: &mut Builder, kind: &'static str, ttl: u32, action: Action| {
        *shared.entry((kind, ttl)).or_insert_with(|| {
            b.add_rule(Rule {
                clients: clients.to_vec(),
                action,
                origin: shared_origin.clone(),
            })
        })
    };

    // Group record sets by owner (the map is ordered by name, then type).
    let mut by_owner: Vec<(Name, Vec<(RData, u32)>)> = Vec::new();
    for (k, set) in &records {
        let owner = Name::from(k.name.clone());
        let rows: Vec<(RData, u32)> = set
            .records_without_rrsigs()
            .map(|r| (r.data.clone(), r.ttl))
            .collect();
        match by_owner.last_mut() {
            Some((name, v)) if *name == owner => v.extend(rows),
            _ => by_owner.push((owner, rows)),
        }
    }
    drop(records);

    let mut key = Vec::with_capacity(256);
    let passthru = Name::from_ascii("rpz-passthru.").expect("constant name");
    let drop_name = Name::from_ascii("rpz-drop.").expect("constant name");
    let tcp_only = Name::from_ascii("rpz-tcp-only.").expect("constant name");
    for (owner, rows) in by_owner {
        if owner == apex {
            continue; // SOA and NS of the policy zone itself
        }
        if !apex.zone_of(&owner) {
            return Err(invalid(format!(
                "{owner} is outside the policy zone {apex}"
            )));
        }
        let labels: Vec<String> = owner
            .iter()
            .take(owner.iter().count() - apex.iter().count())
            .map(|l| String::from_utf8_lossy(l).to_ascii_lowercase())
            .collect();
        if labels
            .last()
            .is_some_and(|l| OTHER_TRIGGERS.contains(&l.as_str()))
        {
            tracing::warn!(file = %path.display(), trigger = %owner, "RPZ trigger type not supported (only QNAME); skipped");
            b.skip();
            continue;
        }
        let (scope, trigger) = match labels.split_first() {
            Some((first, rest)) if first == "*" => (Scope::Below, rest.join(".")),
            _ => (Scope::Exact, labels.join(".")),
        };
        names::key_from_text(&trigger, &mut key)
            .map_err(|e| invalid(format!("trigger {owner}: {e}")))?;
        let ttl = rows
            .iter()
            .map(|r| r.1)
            .min()
            .unwrap_or(crate::redirect::file::DEFAULT_TTL);
        let cname = rows.iter().find_map(|(d, _)| match d {
            RData::CNAME(c) => Some(c.0.clone()),
            _ => None,
        });
        let rule = match cname {
            Some(t) if t.is_root() => shared_rule(
                b,
                "nxdomain",
                ttl,
                Action::Block {
                    sinkhole: false,
                    ttl,
                },
            ),
            // `num_labels` leaves out a leading `*`, so count the labels themselves.
            Some(t) if t.is_wildcard() && t.iter().count() == 1 => {
                shared_rule(b, "nodata", ttl, Action::NoData { ttl })
            }
            Some(t) if t == passthru => shared_rule(b, "passthru", 0, Action::Passthru),
            Some(t) if t == drop_name => shared_rule(b, "drop", 0, Action::Drop),
            Some(t) if t == tcp_only || t.is_wildcard() => {
                tracing::warn!(file = %path.display(), trigger = %owner, target = %t, "RPZ action not supported; skipped");
                b.skip();
                continue;
            }
            Some(target) => b.add_rule(Rule {
                clients: clients.to_vec(),
                action: Action::Alias {
                    target: target.to_lowercase(),
                    ttl,
                },
                origin: shared_origin.clone(),
            }),
            None => b.add_rule(Rule {
                clients: clients.to_vec(),
                action: Action::Local {
                    records: rows.into_iter().map(|r| r.0).collect(),
                    ttl,
                },
                origin: shared_origin.clone(),
            }),
        };
        b.bind(&key, scope, rule)
            .map_err(|e| invalid(format!("trigger {owner}: {e}")))?;
    }
    Ok(())
}

/// The zone parser's message, with what it means in an RPZ file when it is terse.
fn rpz_problem(message: &str) -> String {
    if message.contains("token is missing") {
        format!(
            "{message}: a record lacks its data; an RPZ CNAME needs a target (`.` NXDOMAIN, \
             `*.` NODATA, `rpz-passthru.`, `rpz-drop.`, or a name to alias to)"
        )
    } else {
        message.to_string()
    }
}

/// hickory's parser reports no line numbers, so on error the file is parsed again in
/// growing prefixes (cut only between records, outside parentheses) to find the first line
/// that fails. Only runs on the error path.
fn first_bad_line(text: &str, path: &Path, origin: Option<Name>) -> usize {
    let mut cuts = Vec::new(); // byte offset after each line that ends a record
    let mut depth = 0i32;
    let mut offset = 0usize;
    for line in text.split_inclusive('\n') {
        let code = line.split(';').next().unwrap_or("");
        depth += code.matches('(').count() as i32 - code.matches(')').count() as i32;
        offset += line.len();
        if depth <= 0 {
            depth = 0;
            cuts.push(offset);
        }
    }
    let fails = |end: usize| {
        Parser::new(&text[..end], Some(path.to_path_buf()), origin.clone())
            .parse()
            .is_err()
    };
    // The smallest cut whose prefix fails.
    let (mut lo, mut hi) = (0usize, cuts.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if fails(cuts[mid]) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    match cuts.get(lo) {
        Some(&end) => super::file::line_of(text, end.saturating_sub(1)),
        None => super::file::line_of(text, text.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::{Outcome, Question};
    use crate::redirect::rules::Verdict;

    fn tmp(name: &str, text: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("hopdns-import-{}-{name}", std::process::id()));
        std::fs::write(&p, text).unwrap();
        p
    }

    fn decide(set: &crate::redirect::RuleSet, name: &str, t: RecordType) -> Verdict {
        let q = Question::new(Name::from_ascii(name).unwrap(), t);
        set.decide(&q, "127.0.0.1".parse().unwrap(), false).0
    }

    #[test]
    fn hosts_lines_block_or_override_and_skip_localhost() {
        let p = tmp(
            "hosts",
            "# header\n127.0.0.1 localhost\n0.0.0.0 ads.test tracker.test # two\n\n192.168.1.5 nas.lan\nfd00::5 nas.lan\n",
        );
        let mut b = Builder::new();
        let s = ListSettings {
            format: ListFormat::Hosts,
            subdomains: false,
            sinkhole: false,
            ttl: 60,
            clients: vec![],
        };
        list(&mut b, &p, &s).unwrap();
        let set = b.finish();
        assert!(matches!(
            decide(&set, "tracker.test.", RecordType::A),
            Verdict::Done(Outcome::NxDomain { .. })
        ));
        assert_eq!(decide(&set, "x.ads.test.", RecordType::A), Verdict::Pass);
        assert_eq!(decide(&set, "localhost.", RecordType::A), Verdict::Pass);
        let Verdict::Done(Outcome::Answer { answers }) = decide(&set, "nas.lan.", RecordType::AAAA)
        else {
            panic!()
        };
        assert_eq!(answers[0].data.to_string(), "fd00::5");
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn a_bad_line_is_reported_with_its_number() {
        let p = tmp("domains", "good.test\nalso.good\nbad name.test\n");
        let mut b = Builder::new();
        let s = ListSettings {
            format: ListFormat::Domains,
            subdomains: true,
            sinkhole: false,
            ttl: 60,
            clients: vec![],
        };
        let e = list(&mut b, &p, &s).unwrap_err().to_string();
        assert!(e.contains(&format!("{}:3:", p.display())), "{e}");
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn rpz_actions() {
        let p = tmp(
            "rpz",
            "$TTL 60\n@ SOA ns.rpz.test. admin.rpz.test. 1 3600 600 86400 60\n  NS ns.rpz.test.\n\
             nx.test CNAME .\n*.nx.test CNAME .\nnodata.test CNAME *.\nok.nx.test CNAME rpz-passthru.\n\
             drop.test CNAME rpz-drop.\nlocal.test A 10.1.1.1\nlocal.test TXT \"hi\"\n\
             alias.test CNAME www.example.com.\n32.1.2.0.192.rpz-ip CNAME .\n",
        );
        let mut b = Builder::new();
        rpz(
            &mut b,
            &p,
            Some(Name::from_ascii("rpz.test.").unwrap()),
            &[],
        )
        .unwrap();
        let set = b.finish();
        assert_eq!(set.skipped, 1);
        assert!(matches!(
            decide(&set, "nx.test.", RecordType::A),
            Verdict::Done(Outcome::NxDomain { .. })
        ));
        assert!(matches!(
            decide(&set, "a.nx.test.", RecordType::A),
            Verdict::Done(Outcome::NxDomain { .. })
        ));
        assert!(matches!(
            decide(&set, "nodata.test.", RecordType::A),
            Verdict::Done(Outcome::NoData { .. })
        ));
        assert_eq!(decide(&set, "ok.nx.test.", RecordType::A), Verdict::Pass);
        assert_eq!(
            decide(&set, "drop.test.", RecordType::A),
            Verdict::Done(Outcome::Drop)
        );
        let Verdict::Done(Outcome::Answer { answers }) = decide(&set, "local.test.", RecordType::A)
        else {
            panic!()
        };
        assert_eq!(answers[0].data.to_string(), "10.1.1.1");
        assert!(matches!(
            decide(&set, "local.test.", RecordType::MX),
            Verdict::Done(Outcome::NoData { .. })
        ));
        assert!(matches!(
            decide(&set, "alias.test.", RecordType::A),
            Verdict::Alias { .. }
        ));
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn rpz_triggers_keep_their_own_ttls() {
        let p = tmp(
            "rpz-ttl",
            "$TTL 60\n@ SOA ns.rpz.test. admin.rpz.test. 1 3600 600 86400 60\n  NS ns.rpz.test.\n\
             short.test 60 CNAME .\nlong.test 300 CNAME .\n\
             short-nodata.test 60 CNAME *.\nlong-nodata.test 300 CNAME *.\n",
        );
        let mut b = Builder::new();
        rpz(
            &mut b,
            &p,
            Some(Name::from_ascii("rpz.test.").unwrap()),
            &[],
        )
        .unwrap();
        let set = b.finish();
        for (name, want) in [
            ("short.test.", 60),
            ("long.test.", 300),
            ("short-nodata.test.", 60),
            ("long-nodata.test.", 300),
        ] {
            let soa_ttl = match decide(&set, name, RecordType::A) {
                Verdict::Done(Outcome::NxDomain { soa, .. } | Outcome::NoData { soa, .. }) => {
                    soa.map(|s| s.ttl)
                }
                other => panic!("{name}: {other:?}"),
            };
            assert_eq!(soa_ttl, Some(want), "{name}");
        }
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn rpz_parse_errors_name_the_line() {
        let p = tmp(
            "rpz-bad",
            "$TTL 60\n@ SOA ns.rpz.test. admin.rpz.test. (\n 1 3600 600\n 86400 60 )\nok.test CNAME .\nbad.test A 999.1.1.1\nlater.test CNAME .\n",
        );
        let mut b = Builder::new();
        let e = rpz(
            &mut b,
            &p,
            Some(Name::from_ascii("rpz.test.").unwrap()),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with(&format!("{}:6:", p.display())), "{e}");
        std::fs::remove_file(p).unwrap();
    }
}
