//! Scrub, then classify: every reply is filtered against the zone cut of the server that sent
//! it, then judged as one kind of reply before anything acts on it (Unbound's
//! `scrub_message` and `response_type_from_server`, Knot's `kr_response_classify`).

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::CNAME;
use hickory_proto::rr::{Name, RData, Record, RecordType};

pub use crate::dns::ns_target;
use crate::dns::{dname_target, Question};

/// Why a recursive server's reply (RA set, AA clear: Unbound's REC_LAME) is only provisional.
const RECURSIVE: &str = "recursive server, not authoritative (RA without AA)";

/// Longest chain followed inside one reply; the overall chain budget is enforced by the machine.
const MAX_CHAIN_IN_REPLY: usize = 16;

/// The sections of a reply that survive scrubbing, borrowed from it: only what goes into
/// the [`Reply`] is copied, through [`kept`].
#[derive(Debug, Default)]
pub struct Scrubbed<'a> {
    pub answers: Vec<&'a Record>,
    pub authority: Vec<&'a Record>,
    pub additional: Vec<&'a Record>,
}

/// A copy of a record the scrub kept. RFC 8767 §4 (updating RFC 2181 §8): a TTL with the
/// top bit set is a positive value, capped at 2^31 - 1 here; the cache then caps it at
/// `max-ttl`.
fn kept(r: &Record) -> Record {
    let mut r = r.clone();
    r.ttl = r.ttl.min(i32::MAX as u32);
    r
}

/// Drops every record a server for `zone` has no authority to tell us about: owners outside
/// the zone (RFC 2181 §5.4.1: such data is not to be trusted), classes other than the
/// question's, and anything in the additional section but A/AAAA (glue candidates).
pub fn scrub<'a>(msg: &'a Message, zone: &Name, question: &Question) -> Scrubbed<'a> {
    let keep = |r: &&Record| r.dns_class == question.qclass && zone.zone_of(&r.name);
    Scrubbed {
        answers: msg.answers.iter().filter(keep).collect(),
        authority: msg
            .authorities
            .iter()
            .filter(keep)
            // NS and SOA drive the classification; DS, NSEC, NSEC3 and RRSIG are kept for
            // validation (RFC 4035 §3.1.3-3.1.4 puts the proofs here).
            .filter(|r| {
                matches!(
                    r.record_type(),
                    RecordType::NS
                        | RecordType::SOA
                        | RecordType::DS
                        | RecordType::NSEC
                        | RecordType::NSEC3
                        | RecordType::RRSIG
                )
            })
            .collect(),
        additional: msg
            .additionals
            .iter()
            .filter(keep)
            .filter(|r| matches!(r.record_type(), RecordType::A | RecordType::AAAA))
            .collect(),
    }
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
    /// YXDOMAIN after a DNAME (RFC 6672 §2.2): the substituted name would be longer than 255
    /// octets. A final answer, given to the client with the DNAME.
    YxDomain { chain: Vec<Record> },
    /// Go down to `zone`: its NS records and the glue we may believe.
    Referral {
        zone: Name,
        ns: Vec<Record>,
        glue: Vec<Record>,
    },
    /// A reply believed only if no other server of the cut does better: a recursive server
    /// answering from its cache (RA without AA, Unbound's REC_LAME), an entirely empty
    /// NOERROR, an authoritative reply that only repeats the zone's own NS set, NXDOMAIN
    /// with neither AA nor SOA. The machine skips the server and keeps the reply as a
    /// fallback for when the cut's other servers are spent.
    Provisional {
        reply: Box<Reply>,
        why: &'static str,
    },
    /// A server that cannot help: skip it.
    Lame(String),
    /// TC over UDP: ask the same server over TCP.
    Truncated,
    /// FORMERR to our EDNS query: ask the same server without EDNS (RFC 6891 §7).
    EdnsRejected,
}

impl Reply {
    fn provisional(self, why: &'static str) -> Reply {
        Reply::Provisional {
            reply: Box::new(self),
            why,
        }
    }
}

/// Classifies a reply from a server for `zone` to our `question`.
///
/// AA is not required of answers, CNAMEs or negative answers with the zone's SOA (RFC 1034
/// §5.3.3 step 4 and RFC 2181 §5.4.1 ask for data from a server of the zone, not for the
/// flag; Unbound's `response_type_from_server` and Knot's `is_authoritative` agree). The
/// scrub stays as strict as ever: only records inside `zone` count.
pub fn classify(
    msg: &Message,
    question: &Question,
    zone: &Name,
    sent_edns: bool,
    tcp: bool,
) -> Reply {
    let rcode = msg.metadata.response_code;
    if let Some(retry) = retry_reply(msg, sent_edns, tcp) {
        return retry;
    }
    let aa = msg.metadata.authoritative;
    // A recursive server answering from its cache, not from the zone (Unbound's REC_LAME):
    // RA set, AA clear. Its data may be right, but a server of the zone is better.
    let recursive = msg.metadata.recursion_available && !aa;
    let s = scrub(msg, zone, question);
    let (chain, current, found) = follow_chain(&s.answers, question, zone);
    let soa = s
        .authority
        .iter()
        .find(|r| r.record_type() == RecordType::SOA && r.name.zone_of(&current))
        .map(|r| kept(r));
    // An NS set in the authority section for a zone strictly below this one that holds the
    // name: a referral, whatever the answer section says when AA is clear (Unbound turns a
    // non-AA "provisional answer" into a REFERRAL the same way).
    let child = s
        .authority
        .iter()
        .find(|r| {
            r.record_type() == RecordType::NS
                && r.name.zone_of(&current)
                && zone.zone_of(&r.name)
                && r.name != *zone
        })
        .map(|r| r.name.clone());

    // RFC 6672 §2.2: the DNAME applies, but the name it rewrites to would be too long. The
    // DNAME (and any chain before it) is the answer.
    if rcode == ResponseCode::YXDomain {
        let dname = s
            .answers
            .iter()
            .find(|r| is_dname(r) && r.name.zone_of(&current) && r.name != current);
        if let Some(d) = dname {
            let mut chain = chain;
            let d = kept(d);
            if !chain.contains(&d) {
                chain.push(d);
            }
            return Reply::YxDomain { chain };
        }
    }
    // A chain that leaves this server's zone: whatever the rcode says is about a name the
    // server is not authoritative for (RFC 6604 §3), so follow the chain instead. A
    // delegation of the target's zone beside it is only a hint.
    if !chain.is_empty() && !zone.zone_of(&current) && found.is_empty() {
        return Reply::Cname {
            chain,
            target: current,
        };
    }
    if rcode == ResponseCode::NXDomain {
        let reply = Reply::NxDomain { chain, soa };
        return if recursive {
            reply.provisional(RECURSIVE)
        } else if aa || matches!(&reply, Reply::NxDomain { soa: Some(_), .. }) {
            reply
        } else {
            reply.provisional("NXDOMAIN with neither AA nor SOA")
        };
    }
    if rcode != ResponseCode::NoError {
        return Reply::Lame(format!("rcode {rcode}"));
    }
    if !found.is_empty() {
        if !aa && chain.is_empty() {
            if let Some(child) = child {
                return referral(&s, &s.authority, child);
            }
            // A parent that puts the child's NS set in the answer section of a reply to an
            // NS question, without AA: a referral all the same (Unbound does the same).
            let owner = &found[0].name;
            if question.qtype == RecordType::NS && owner != zone {
                let child = owner.clone();
                return referral(&s, &found.iter().collect::<Vec<_>>(), child);
            }
        }
        let reply = Reply::Answer {
            chain,
            records: found,
        };
        return if recursive {
            reply.provisional(RECURSIVE)
        } else {
            reply
        };
    }
    if !chain.is_empty() {
        // The end of the chain is in this zone and the server says it has no such data.
        if soa.is_some() && zone.zone_of(&current) {
            return Reply::NoData { chain, soa };
        }
        return Reply::Cname {
            chain,
            target: current,
        };
    }

    // No answer: a negative answer, a referral down, or nothing useful.
    if soa.is_some() {
        let reply = Reply::NoData { chain, soa };
        return if recursive {
            reply.provisional(RECURSIVE)
        } else {
            reply
        };
    }
    if let Some(child) = child {
        return referral(&s, &s.authority, child);
    }
    // An NS set for this zone or one above it, with no SOA: RFC 2308 §2.2.1 reads NS without
    // SOA as a referral, and this one does not go down. Above the cut (the root's NS set from
    // a TLD server, say) the server is lame. Its own NS set with AA is how some servers say
    // NODATA: believed if no other server does better (Unbound takes it as an answer).
    let own_or_upward = msg
        .authorities
        .iter()
        .filter(|r| r.record_type() == RecordType::NS && r.dns_class == question.qclass)
        .find(|r| r.name.zone_of(zone));
    if let Some(ns) = own_or_upward {
        if ns.name != *zone || !aa {
            return Reply::Lame(format!(
                "referral to {} is not below {zone}",
                ns.name.to_lowercase()
            ));
        }
        return Reply::NoData { chain, soa: None }
            .provisional("authoritative empty answer with the zone's NS set and no SOA");
    }
    if !msg.answers.is_empty() {
        // Records of another type (or owner) only: no data of the asked type here, and
        // nothing of it is worth keeping (RFC 2308 §2.2, Unbound's scrub drops them too).
        return Reply::NoData { chain, soa: None };
    }
    // Entirely empty NOERROR: Unbound asks another server first and accepts it the second
    // time (EMPTY_NODATA_RETRY_COUNT); Knot calls it lame without AA. Believed only when no
    // other server does better; without SOA it is never cached (RFC 2308 §5).
    Reply::NoData { chain, soa: None }.provisional(if recursive {
        RECURSIVE
    } else if aa {
        "empty reply without SOA"
    } else {
        "empty reply without AA or SOA"
    })
}

/// The replies that only ask for the same query again another way, whoever sent them:
/// FORMERR to EDNS (again without it, RFC 6891 §7) and TC over UDP (again over TCP).
fn retry_reply(msg: &Message, sent_edns: bool, tcp: bool) -> Option<Reply> {
    if edns_rejected(msg, sent_edns) {
        return Some(Reply::EdnsRejected);
    }
    (msg.metadata.truncation && !tcp).then_some(Reply::Truncated)
}

/// Classifies a forwarder's reply (RD was set): a recursive server's answer is final, as
/// Unbound takes a forward zone's replies. The scrub still drops what lies outside the
/// forward zone; a chain that leaves it is followed from its target. A negative answer
/// without SOA is final but not cached (RFC 2308 §5); a referral or another rcode means
/// this server does not recurse for us: the next forwarder is asked.
pub fn classify_recursive(
    msg: &Message,
    question: &Question,
    zone: &Name,
    sent_edns: bool,
    tcp: bool,
) -> Reply {
    let rcode = msg.metadata.response_code;
    if let Some(retry) = retry_reply(msg, sent_edns, tcp) {
        return retry;
    }
    let s = scrub(msg, zone, question);
    let (chain, current, found) = follow_chain(&s.answers, question, zone);
    let soa = s
        .authority
        .iter()
        .find(|r| r.record_type() == RecordType::SOA && r.name.zone_of(&current))
        .map(|r| kept(r));
    if rcode == ResponseCode::YXDomain {
        return Reply::YxDomain { chain };
    }
    if !chain.is_empty()
        && found.is_empty()
        && (!zone.zone_of(&current) || soa.is_none() && rcode == ResponseCode::NoError)
    {
        return Reply::Cname {
            chain,
            target: current,
        };
    }
    match rcode {
        ResponseCode::NXDomain => Reply::NxDomain { chain, soa },
        ResponseCode::NoError if !found.is_empty() => Reply::Answer {
            chain,
            records: found,
        },
        ResponseCode::NoError if soa.is_none() && !msg.metadata.recursion_available => {
            Reply::Lame("forwarder did not recurse (RA clear, no answer)".into())
        }
        ResponseCode::NoError => Reply::NoData { chain, soa },
        other => Reply::Lame(format!("rcode {other}")),
    }
}

/// A referral to `child`: the NS records for it among `ns_section`, and the glue we may
/// believe.
fn referral(s: &Scrubbed, ns_section: &[&Record], child: Name) -> Reply {
    let ns: Vec<Record> = ns_section
        .iter()
        .filter(|r| r.record_type() == RecordType::NS && r.name == child)
        .map(|r| kept(r))
        .collect();
    // A set, not a scan per glue record: a referral may carry thousands of both.
    let targets: std::collections::HashSet<Name> = ns
        .iter()
        .filter_map(ns_target)
        .map(Name::to_lowercase)
        .collect();
    let glue = s
        .additional
        .iter()
        .filter(|g| targets.contains(&g.name.to_lowercase()))
        .map(|g| kept(g))
        .collect();
    Reply::Referral {
        zone: child,
        ns,
        glue,
    }
}

fn is_dname(r: &Record) -> bool {
    r.record_type() == RecordType::DNAME
}

/// A server that answers FORMERR without an OPT to a query with EDNS does not speak EDNS
/// (RFC 6891 §7): ask it again without.
pub fn edns_rejected(msg: &Message, sent_edns: bool) -> bool {
    sent_edns && msg.metadata.response_code == ResponseCode::FormErr && msg.edns.is_none()
}

/// Follows CNAME and DNAME records in `answers` from the question's name. Returns the chain,
/// the name it ends at, and the records of the asked type found there.
fn follow_chain(
    answers: &[&Record],
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
            .map(|r| kept(r))
            .collect();
        if !found.is_empty() {
            return (chain, current, found);
        }
        // A DNAME above the name comes first (RFC 6672 §3.4): the CNAME is synthesised from
        // it, as the server's own CNAME beside it should be, and the DNAME goes in the chain
        // so the client sees it first.
        if qtype != RecordType::DNAME {
            if let Some((d, synth)) = answers
                .iter()
                .find_map(|r| dname_substitute(r, &current).map(|s| (r, s)))
            {
                let d = kept(d);
                let cname =
                    Record::from_rdata(current.clone(), d.ttl, RData::CNAME(CNAME(synth.clone())));
                chain.push(d);
                chain.push(cname);
                current = synth;
                if !zone.zone_of(&current) {
                    break;
                }
                continue;
            }
        }
        if let Some(c) = answers
            .iter()
            .find(|r| r.name == current && r.record_type() == RecordType::CNAME)
        {
            let RData::CNAME(CNAME(target)) = &c.data else {
                break;
            };
            let target = target.clone();
            chain.push(kept(c));
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
        break;
    }
    (chain, current, Vec::new())
}

/// RFC 6672 §2.2: a DNAME at `owner` maps `name` (strictly below owner) to the same labels
/// under the DNAME target.
pub(super) fn dname_substitute(r: &Record, name: &Name) -> Option<Name> {
    let target = dname_target(r)?;
    if r.name == *name || !r.name.zone_of(name) {
        return None;
    }
    let keep = name.iter().count() - r.name.iter().count();
    let prefix = Name::from_labels(name.iter().take(keep)).ok()?;
    prefix.append_domain(&target).ok()
}
