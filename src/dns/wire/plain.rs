//! A plain query read straight from its bytes, for the cache-hit fast path.
//!
//! Only the plainest query qualifies: QR=0, OPCODE QUERY, one question, no answer or
//! authority records, at most one additional record which must be a well-formed OPT of
//! version 0, an uncompressed question name, and nothing after the last record. Anything
//! else (including everything the server's triage would answer with an error) gets
//! `None` and takes the normal path, so the fast path can never answer differently from it.

use hickory_proto::rr::{DNSClass, Name, RecordType};

use super::{u16_at, wire_labels, KeyBuf};
use crate::dns::Question;

/// The parts of a plain query that a cached reply needs.
pub struct PlainQuery<'a> {
    pub id: u16,
    pub rd: bool,
    pub cd: bool,
    /// The client set AD or DO: a secure cached reply keeps its AD (RFC 6840 §5.7-5.8).
    pub wants_ad: bool,
    /// The client set DO (RFC 3225): it gets RRSIGs and proofs (RFC 4035 §3.2.1).
    pub dnssec_ok: bool,
    /// The question name as the client wrote it (wire form, case kept).
    pub qname: &'a [u8],
    pub qtype: u16,
    pub qclass: u16,
    /// The cache key: the name lowercased, type and class.
    pub key: KeyBuf,
    /// The client's EDNS UDP payload, if it sent an OPT.
    pub edns_payload: Option<u16>,
    /// The query carries an EDNS Padding option: over an encrypted transport the reply must
    /// be padded too (RFC 8467 §4.1), which a cached template is not.
    pub padding: bool,
}

impl PlainQuery<'_> {
    /// The question, built only when it is needed (a prefetch): the hit path never does.
    pub fn question(&self) -> Option<Question> {
        let name = Name::from_labels(wire_labels(self.key.name())).ok()?;
        Some(Question::with_class(
            name,
            RecordType::from(self.qtype),
            DNSClass::from(self.qclass),
        ))
    }
}

/// EDNS option code of Client Subnet (RFC 7871 §6).
const EDNS_CLIENT_SUBNET: u16 = 8;
/// EDNS Padding (RFC 7830).
const EDNS_PADDING: u16 = 12;

/// Parses `query` if it is plain enough for the fast path. Inlined so the key is built in
/// the caller's frame rather than copied out.
#[inline(always)]
pub fn parse_plain_query(query: &[u8]) -> Option<PlainQuery<'_>> {
    if query.len() < 12 + 1 + 4 {
        return None;
    }
    let (flags1, flags2) = (query[2], query[3]);
    // QR=0, OPCODE=0 (QUERY), TC=0; AA is meaningless in a query and ignored.
    if flags1 & 0xfa != 0 {
        return None;
    }
    let counts = (
        u16_at(query, 4)?,
        u16_at(query, 6)?,
        u16_at(query, 8)?,
        u16_at(query, 10)?,
    );
    let additional = match counts {
        (1, 0, 0, ar @ (0 | 1)) => ar,
        _ => return None,
    };
    // The question name: uncompressed labels, at most 255 bytes (RFC 1035 §3.1).
    let mut at = 12;
    loop {
        let len = usize::from(*query.get(at)?);
        if len == 0 {
            at += 1;
            break;
        }
        if len > 63 {
            return None;
        }
        at += 1 + len;
        if at - 12 > 255 {
            return None;
        }
    }
    let qname = &query[12..at];
    if qname.len() > 255 {
        return None;
    }
    let qtype = u16_at(query, at)?;
    let qclass = u16_at(query, at + 2)?;
    at += 4;
    let mut edns_payload = None;
    let mut dnssec_ok = false;
    let mut padding = false;
    if additional == 1 {
        // OPT: root owner, type 41, class = payload, TTL = ext-rcode, version, flags.
        if *query.get(at)? != 0 || u16_at(query, at + 1)? != 41 {
            return None;
        }
        let payload = u16_at(query, at + 3)?;
        let version = *query.get(at + 6)?;
        dnssec_ok = *query.get(at + 7)? & 0x80 != 0;
        if version != 0 {
            return None;
        }
        let rdlen = usize::from(u16_at(query, at + 9)?);
        at += 11;
        // Options are not used by a cached reply, but they must be well formed. Client
        // Subnet (code 8) has a structure the full decoder checks (FORMERR when it is wrong,
        // RFC 7871 §7.1.1), so it takes the normal path (found by the fast_path fuzzer).
        let end = at + rdlen;
        while at < end {
            match u16_at(query, at)? {
                EDNS_CLIENT_SUBNET => return None,
                EDNS_PADDING => padding = true,
                _ => {}
            }
            let opt_len = usize::from(u16_at(query, at + 2)?);
            at += 4 + opt_len;
        }
        if at != end {
            return None;
        }
        edns_payload = Some(payload);
    }
    if at != query.len() {
        return None;
    }
    Some(PlainQuery {
        id: u16_at(query, 0)?,
        rd: flags1 & 0x01 != 0,
        cd: flags2 & 0x10 != 0,
        wants_ad: flags2 & 0x20 != 0 || dnssec_ok,
        dnssec_ok,
        qname,
        qtype,
        qclass,
        key: KeyBuf::from_wire(qname, qtype, qclass)?,
        edns_payload,
        padding,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Edns, Message, Query};
    use hickory_proto::rr::{Name, RecordType};

    fn query(name: &str, edns: Option<u16>) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.id = 7;
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        if let Some(p) = edns {
            let mut e = Edns::new();
            e.set_max_payload(p);
            m.set_edns(e);
        }
        m.to_vec().unwrap()
    }

    #[test]
    fn plain_queries_parse() {
        let q = query("WWW.example.com.", None);
        let f = parse_plain_query(&q).unwrap();
        assert_eq!((f.id, f.rd, f.cd), (7, true, false));
        assert_eq!(f.qname, b"\x03WWW\x07example\x03com\x00");
        assert_eq!(f.key.name(), b"\x03www\x07example\x03com\x00");
        assert_eq!(f.edns_payload, None);
        let q = f.question().unwrap();
        assert_eq!(
            (q.name.to_ascii().as_str(), q.qtype),
            ("www.example.com.", RecordType::A)
        );
        let q = query("www.example.com.", Some(4096));
        let f = parse_plain_query(&q).unwrap();
        assert_eq!(f.edns_payload, Some(4096));
        assert!(!f.dnssec_ok && !f.wants_ad && !f.padding);
        let mut m = Message::from_vec(&q).unwrap();
        if let Some(e) = m.edns.as_mut() {
            e.set_dnssec_ok(true);
        }
        let f = parse_plain_query(&m.to_vec().unwrap()).map(|f| (f.dnssec_ok, f.wants_ad));
        assert_eq!(f, Some((true, true)), "DO read, and it asks for AD too");
    }

    /// RFC 8467 §4.1: a query that carries Padding is marked, so an encrypted transport can
    /// send it where replies are padded.
    #[test]
    fn a_padding_option_is_noticed() {
        let mut m = Message::from_vec(&query("www.example.com.", Some(1232))).unwrap();
        if let Some(e) = m.edns.as_mut() {
            e.options_mut()
                .insert(hickory_proto::rr::rdata::opt::EdnsOption::Unknown(
                    12,
                    vec![0; 16],
                ));
        }
        let wire = m.to_vec().unwrap();
        assert!(parse_plain_query(&wire).expect("still plain").padding);
    }

    #[test]
    fn anything_unusual_takes_the_normal_path() {
        let good = query("www.example.com.", Some(1232));
        assert!(parse_plain_query(&good).is_some());
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(parse_plain_query(&trailing).is_none(), "trailing byte");
        let mut response = good.clone();
        response[2] |= 0x80;
        assert!(parse_plain_query(&response).is_none(), "QR=1");
        let mut notify = good.clone();
        notify[2] |= 4 << 3;
        assert!(parse_plain_query(&notify).is_none(), "OPCODE 4");
        let mut badvers = good.clone();
        let v = badvers.len() - 5;
        badvers[v] = 1;
        assert!(parse_plain_query(&badvers).is_none(), "EDNS version 1");
        assert!(
            parse_plain_query(&good[..good.len() - 1]).is_none(),
            "short"
        );
        let mut ecs = good.clone();
        let rdlen = ecs.len() - 2;
        ecs[rdlen..].copy_from_slice(&8u16.to_be_bytes());
        ecs.extend_from_slice(&[0, 8, 0, 4, 0, 1, 24, 0]);
        assert!(
            parse_plain_query(&ecs).is_none(),
            "Client Subnet: the full decoder checks it"
        );
        for n in 0..good.len() {
            let _ = parse_plain_query(&good[..n]);
        }
    }
}
