//! Scrub, then classify: every reply is filtered against the zone cut of the server that sent
//! it, then judged as one kind of reply before anything acts on it (Unbound's
//! `scrub_message` and `response_type_from_server`, Knot's `kr_response_classify`).

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::CNAME;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::Question;

/// Longest chain followed inside one reply; the overall chain budget is enforced by the machine.
const MAX_CHAIN_IN_REPLY: usize = 16;

/// The sections of a reply that survive scrubbing.
#[derive(Debug, Default)]
pub struct Scrubbed {
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
    pub additional: Vec<Record>,
}

/// Drops every record a server for `zone` has no authority to tell us about: owners outside
/// the zone (RFC 2181 §5.4.1: such data is not to be trusted), classes other than the
/// question's, and anything in the additional section but A/AAAA (glue candidates).
pub fn scrub(msg: &Message, zone: &Name, question: &Question) -> Scrubbed {
    let keep = |r: &&Record| r.dns_class == question.qclass && zone.zone_of(&r.name);
    let mut s = Scrubbed {
        answers: msg.answers.iter().filter(keep).cloned().collect(),
        authority: msg
            .authorities
            .iter()
            .filter(keep)
            .filter(|r| matches!(r.record_type(), RecordType::NS | RecordType::SOA))
            .cloned()
            .collect(),
        additional: msg
            .additionals
            .iter()
            .filter(keep)
            .filter(|r| matches!(r.record_type(), RecordType::A | RecordType::AAAA))
            .cloned()
            .collect(),
    };
    // RFC 2181 §8: a TTL with the top bit set is to be treated as zero.
    for r in s
        .answers
        .iter_mut()
        .chain(&mut s.authority)
        .chain(&mut s.additional)
    {
        if r.ttl > i32::MAX as u32 {
            r.ttl = 0;
        }
    }
    s
}

/// What a reply is.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// The data asked for, after an optional chain inside the server's zone.
    Answer {
        chain: Vec<Record>,
        records: Vec<Record>,
    },
    /// A chain whose end must be resolved elsewhere: restart at `target`.
    Cname { chain: Vec<Record>, target: Name },
    NxDomain {
        chain: Vec<Record>,
        soa: Option<Record>,
    },
    NoData {
        chain: Vec<Record>,
        soa: Option<Record>,
    },
    /// Go down to `zone`: its NS records and the glue we may believe.
    Referral {
        zone: Name,
        ns: Vec<Record>,
        glue: Vec<Record>,
    },
    /// A server that cannot help: skip it.
    Lame(String),
    /// TC over UDP: ask the same server over TCP.
    Truncated,
    /// FORMERR to our EDNS query: ask the same server without EDNS (RFC 6891 §7).
    EdnsRejected,
}

/// Classifies a reply from a server for `zone` to our `question`.
pub fn classify(
    msg: &Message,
    question: &Question,
    zone: &Name,
    sent_edns: bool,
    tcp: bool,
) -> Reply {
    let rcode = msg.metadata.response_code;
    if edns_rejected(msg, sent_edns) {
        return Reply::EdnsRejected;
    }
    if msg.metadata.truncation && !tcp {
        return Reply::Truncated;
    }
    let aa = msg.metadata.authoritative;
    let s = scrub(msg, zone, question);
    let (chain, current, found) = follow_chain(&s.answers, question, zone);
    let soa = s
        .authority
        .iter()
        .find(|r| r.record_type() == RecordType::SOA && r.name.zone_of(&current))
        .cloned();

    // A chain that leaves this server's zone: whatever the rcode says is about a name the
    // server is not authoritative for (RFC 6604 §3), so follow the chain instead.
    if !chain.is_empty() && !zone.zone_of(&current) && found.is_empty() {
        return if aa {
            Reply::Cname {
                chain,
                target: current,
            }
        } else {
            Reply::Lame("CNAME without AA".into())
        };
    }
    if rcode == ResponseCode::NXDomain {
        if !chain.is_empty() && !aa {
            return Reply::Lame("NXDOMAIN with a CNAME, without AA".into());
        }
        return if aa || soa.is_some() {
            Reply::NxDomain { chain, soa }
        } else {
            Reply::Lame("NXDOMAIN without AA or SOA".into())
        };
    }
    if rcode != ResponseCode::NoError {
        return Reply::Lame(format!("rcode {rcode}"));
    }
    if !found.is_empty() {
        return if aa {
            Reply::Answer {
                chain,
                records: found,
            }
        } else {
            Reply::Lame("answer without AA".into())
        };
    }
    if !chain.is_empty() {
        if !aa {
            return Reply::Lame("CNAME without AA".into());
        }
        // The end of the chain is in this zone and the server says it has no such data.
        if soa.is_some() && zone.zone_of(&current) {
            return Reply::NoData { chain, soa };
        }
        return Reply::Cname {
            chain,
            target: current,
        };
    }

    // No answer: a referral down, a negative answer, or nothing useful.
    let ns: Vec<Record> = s
        .authority
        .iter()
        .filter(|r| r.record_type() == RecordType::NS && r.name.zone_of(&question.name))
        .cloned()
        .collect();
    if let (Some(first), None) = (ns.first(), soa.as_ref()) {
        let child = first.name.clone();
        if child == *zone && aa {
            // Some servers put their own NS set beside an authoritative empty answer.
            return Reply::NoData { chain, soa: None };
        }
        if !zone.zone_of(&child) || child == *zone {
            return Reply::Lame(format!("referral to {child} is not below {zone}"));
        }
        let ns: Vec<Record> = ns.into_iter().filter(|r| r.name == child).collect();
        let glue = s
            .additional
            .iter()
            .filter(|g| {
                ns.iter()
                    .any(|n| ns_target(n).is_some_and(|t| *t == g.name))
            })
            .cloned()
            .collect();
        return Reply::Referral {
            zone: child,
            ns,
            glue,
        };
    }
    if aa {
        return Reply::NoData { chain, soa };
    }
    Reply::Lame("no answer, no referral, not authoritative".into())
}

/// The target name of an NS record.
/// A server that answers FORMERR without an OPT to a query with EDNS does not speak EDNS
/// (RFC 6891 §7): ask it again without.
pub fn edns_rejected(msg: &Message, sent_edns: bool) -> bool {
    sent_edns && msg.metadata.response_code == ResponseCode::FormErr && msg.edns.is_none()
}

pub fn ns_target(r: &Record) -> Option<&Name> {
    match &r.data {
        RData::NS(ns) => Some(&ns.0),
        _ => None,
    }
}

/// Follows CNAME and DNAME records in `answers` from the question's name. Returns the chain,
/// the name it ends at, and the records of the asked type found there.
fn follow_chain(
    answers: &[Record],
    question: &Question,
    zone: &Name,
) -> (Vec<Record>, Name, Vec<Record>) {
    let qtype = question.qtype;
    let mut chain = Vec::new();
    let mut current = question.name.clone();
    for _ in 0..MAX_CHAIN_IN_REPLY {
        let found: Vec<Record> = answers
            .iter()
            .filter(|r| r.name == current && (r.record_type() == qtype || qtype == RecordType::ANY))
            .cloned()
            .collect();
        if !found.is_empty() {
            return (chain, current, found);
        }
        if let Some(c) = answers
            .iter()
            .find(|r| r.name == current && r.record_type() == RecordType::CNAME)
        {
            let RData::CNAME(CNAME(target)) = &c.data else {
                break;
            };
            let target = target.clone();
            chain.push(c.clone());
            let cname_loop = chain
                .iter()
                .any(|r| r.record_type() == RecordType::CNAME && r.name == target);
            if cname_loop || target == question.name {
                break; // a loop: the machine notices the repeated name
            }
            current = target;
            if !zone.zone_of(&current) {
                break; // whatever else this server says about the target is not its to say
            }
            continue;
        }
        if qtype != RecordType::DNAME {
            if let Some((d, synth)) = answers
                .iter()
                .find_map(|r| dname_substitute(r, &current).map(|s| (r, s)))
            {
                chain.push(d.clone());
                let cname =
                    Record::from_rdata(current.clone(), d.ttl, RData::CNAME(CNAME(synth.clone())));
                chain.push(cname);
                current = synth;
                if !zone.zone_of(&current) {
                    break;
                }
                continue;
            }
        }
        break;
    }
    (chain, current, Vec::new())
}

/// RFC 6672 §2.2: a DNAME at `owner` maps `name` (strictly below owner) to the same labels
/// under the DNAME target.
fn dname_substitute(r: &Record, name: &Name) -> Option<Name> {
    let target = dname_target(r)?;
    if r.name == *name || !r.name.zone_of(name) {
        return None;
    }
    let keep = name.iter().count() - r.name.iter().count();
    let prefix = Name::from_labels(name.iter().take(keep)).ok()?;
    prefix.append_domain(&target).ok()
}

/// The target of a DNAME record. hickory-proto has no DNAME type, so it arrives as unknown
/// RDATA; RFC 6672 §2.5 says the target is never compressed, so it decodes on its own.
pub fn dname_target(r: &Record) -> Option<Name> {
    use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
    match &r.data {
        RData::Unknown { code, rdata } if *code == RecordType::DNAME => {
            Name::read(&mut BinDecoder::new(&rdata.anything)).ok()
        }
        _ => None,
    }
}
