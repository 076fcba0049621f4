//! The message cache: whole replies kept as ready wire bytes, so a cache hit is a copy and a
//! few patches, with no decode, no encode and no allocation (Unbound's msg cache and
//! PowerDNS Recursor's packet cache play this part).
//!
//! A template is the reply to one question as the resolver produced it: header, question
//! (lowercase), the answer section (the whole CNAME chain and the final RRset, or nothing)
//! and the SOA of a negative answer, names compressed against the question. Beside it are
//! the offsets of every TTL. Serving it ([`MessageCache::write_reply`]) patches what differs
//! per client: the ID, RD and CD, the question's case as the client wrote it (0x20 clients
//! compare it; the name has the same length, so every offset stays valid), each TTL counted
//! down by the time spent in cache (RFC 1035 §3.2.1), and our OPT when the client sent one.
//! A template expires with the first of its records, so it never outlives the RRset cache
//! entries it was built from.
//!
//! Prefetch: a hit in the last 10% of the template's TTL asks for a refresh, once per entry
//! (Unbound `prefetch: yes`); the new template replaces the old when the refresh is done.
//!
//! DNSSEC (RFC 4035 §3.2.1): an entry whose answer came with RRSIGs or NSEC/NSEC3 proofs
//! holds two templates, the plain one and one for clients that set DO (each RRset followed
//! by its RRSIGs, the proof in the authority section, DO in our OPT). Two templates in one
//! entry rather than a DO bit in the key: they share one TTL, one prefetch and one place in
//! the LRU, so a DO client can never find the plain reply of a signed answer while its
//! signed one was evicted, and a flush takes both; unsigned answers keep one template,
//! which serves DO clients too (with DO set in our OPT). The plain template is the one the
//! hit path reads for clients without DO, as before: one branch more, nothing copied more.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

use super::store::{Names, Store, StoreStats, Weigh};
use crate::dns::wire::{opt_record, skip_name, KeyBuf, OPT_LEN};
use crate::dns::{DnssecRecords, Question};

/// Header flags we set in every reply: QR in the first flag byte, RA in the second.
const QR: u8 = 0x80;
const RD: u8 = 0x01;
const RA: u8 = 0x80;
const CD: u8 = 0x10;
const AD: u8 = 0x20;

/// One cached reply.
#[derive(Debug)]
struct Template {
    /// When it was stored (unix seconds): TTLs in `wire` are as of this moment.
    inserted: u64,
    /// Its TTL when stored: it expires at `inserted + ttl`; also the prefetch threshold.
    ttl: u32,
    /// A refresh was asked for already.
    prefetching: bool,
    /// The reply for clients without DO.
    plain: Wire,
    /// The reply for clients that set DO, when the answer has DNSSEC records.
    signed: Option<Wire>,
}

/// One encoded reply and where its TTLs are.
#[derive(Debug)]
struct Wire {
    /// Length of the message in `bytes`; the TTL offsets (u16, big-endian) follow it.
    msg_len: u16,
    bytes: Box<[u8]>,
}

impl Wire {
    /// The reply to `q` encoded with `answers` and `authority` (no additional section), with
    /// the offsets of its TTLs; `None` if it cannot be encoded or is longer than a message
    /// can be. The records go through hickory's encoder (its name compression); only the
    /// header and the question's type and class are written here, so no `Message` is built
    /// and no record is copied to build one, and each TTL's offset is noted as its record
    /// is written instead of found by a second walk over the bytes.
    fn encode(
        q: &Question,
        rcode: ResponseCode,
        secure: bool,
        answers: &[Record],
        authority: &[Record],
    ) -> Option<Wire> {
        // Templates carry no OPT, so an extended RCODE (RFC 6891 §6.1.3) cannot be kept.
        if rcode.high() != 0 {
            return None;
        }
        let count = |n: usize| u16::try_from(n).ok().map(u16::to_be_bytes);
        let [an0, an1] = count(answers.len())?;
        let [ns0, ns1] = count(authority.len())?;
        let flags = (RA | if secure { AD } else { 0 }) | rcode.low();
        let header = [0, 0, QR, flags, 0, 1, an0, an1, ns0, ns1, 0, 0];
        let mut bytes = Vec::with_capacity(128);
        let mut offsets = Vec::with_capacity(answers.len() + authority.len());
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.emit_vec(&header).ok()?;
        q.name.emit(&mut encoder).ok()?;
        encoder.emit_u16(u16::from(q.qtype)).ok()?;
        encoder.emit_u16(u16::from(q.qclass)).ok()?;
        for r in answers.iter().chain(authority) {
            let start = encoder.offset();
            r.emit(&mut encoder).ok()?;
            // TYPE and CLASS follow the owner name, then the TTL (RFC 1035 §4.1.3).
            let owner_end = skip_name(encoder.slice_of(start, encoder.offset()), 0)?;
            offsets.push(u16::try_from(start + owner_end + 4).ok()?);
        }
        let msg_len = u16::try_from(bytes.len()).ok()?;
        bytes.reserve_exact(2 * offsets.len());
        for o in &offsets {
            bytes.extend_from_slice(&o.to_be_bytes());
        }
        Some(Wire {
            msg_len,
            bytes: bytes.into_boxed_slice(),
        })
    }
}

impl Weigh for Template {
    fn heap_bytes(&self) -> usize {
        self.plain.bytes.len() + self.signed.as_ref().map_or(0, |w| w.bytes.len())
    }
}

/// What differs in the reply to each client.
#[derive(Clone, Copy, Debug)]
pub struct Patch<'a> {
    pub id: u16,
    /// The client's RD and CD flags, copied (RFC 1035 §4.1.1, RFC 4035 §3.2.2).
    pub rd: bool,
    pub cd: bool,
    /// The client set AD or DO: a template validated secure keeps its AD (RFC 6840
    /// §5.7-5.8); otherwise AD is cleared.
    pub ad: bool,
    /// The client set DO: the signed template, if there is one, and DO in our OPT (RFC
    /// 4035 §3.2.1, RFC 3225 §3).
    pub dnssec_ok: bool,
    /// The question name exactly as the client sent it (uncompressed wire form).
    pub qname: &'a [u8],
    /// `Some(our payload)` to append our OPT: the client sent one.
    pub opt_payload: Option<u16>,
    /// The most this client may receive over UDP; a longer reply is not written.
    pub limit: usize,
}

/// A hit written into the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    pub len: usize,
    /// The entry is in the last 10% of its TTL and nobody has asked for a refresh yet.
    pub prefetch: bool,
}

/// Why a reply was not written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Miss {
    /// No fresh entry.
    Absent,
    /// An entry exists but does not fit the client's limit: the slow path truncates.
    TooLong,
}

pub struct MessageCache {
    store: Store<Template>,
}

impl std::fmt::Debug for MessageCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageCache")
            .field("stats", &self.stats())
            .finish()
    }
}

impl MessageCache {
    pub fn new(limit_bytes: usize) -> Self {
        Self {
            store: Store::new(limit_bytes),
        }
    }

    /// Stores the reply to `q` for `ttl` seconds. The records carry their TTLs as of `now`;
    /// a `secure` (DNSSEC-validated) reply keeps AD in its header.
    #[allow(clippy::too_many_arguments)]
    pub fn insert(
        &self,
        q: &Question,
        rcode: ResponseCode,
        answers: &[Record],
        authority: Option<&Record>,
        ttl: u32,
        now: u64,
        secure: bool,
    ) {
        self.insert_with_dnssec(
            q,
            rcode,
            answers,
            authority,
            ttl,
            now,
            secure,
            &DnssecRecords::default(),
        );
    }

    /// [`Self::insert`], with the DNSSEC records of the answer: when there are any, a
    /// second template for DO clients holds them (the module's documentation says why).
    #[allow(clippy::too_many_arguments)]
    pub fn insert_with_dnssec(
        &self,
        q: &Question,
        rcode: ResponseCode,
        answers: &[Record],
        authority: Option<&Record>,
        ttl: u32,
        now: u64,
        secure: bool,
        dnssec: &DnssecRecords,
    ) {
        if ttl == 0 {
            return;
        }
        let soa: &[Record] = authority.map_or(&[], std::slice::from_ref);
        let Some(plain) = Wire::encode(q, rcode, secure, answers, soa) else {
            return;
        };
        let signed = if dnssec.is_empty() {
            None
        } else {
            let answers = dnssec.answer_section(answers);
            let authority = dnssec.authority_section(authority);
            // A signed reply that cannot be kept leaves the entry out: a DO client must
            // not get the plain one instead.
            let Some(wire) = Wire::encode(q, rcode, secure, &answers, &authority) else {
                return;
            };
            Some(wire)
        };
        let template = Template {
            inserted: now,
            ttl,
            prefetching: false,
            plain,
            signed,
        };
        let key = KeyBuf::of(q);
        self.store
            .shard(key.as_bytes())
            .put(key.as_bytes(), template);
    }

    /// Writes the cached reply for `key` into `out`, patched for one client, if there is a
    /// fresh one that fits both `out` and `patch.limit`.
    pub fn write_reply(
        &self,
        key: &[u8],
        now: u64,
        patch: &Patch<'_>,
        out: &mut [u8],
    ) -> Result<Written, Miss> {
        self.write(key, now, patch, out, true)
    }

    /// [`Self::write_reply`] for the client whose miss has just stored the template: neither
    /// a hit nor a miss in the counters, and never a prefetch.
    pub fn write_stored_reply(
        &self,
        key: &[u8],
        now: u64,
        patch: &Patch<'_>,
        out: &mut [u8],
    ) -> Result<Written, Miss> {
        self.write(key, now, patch, out, false)
    }

    fn write(
        &self,
        key: &[u8],
        now: u64,
        patch: &Patch<'_>,
        out: &mut [u8],
        hit: bool,
    ) -> Result<Written, Miss> {
        let (len, prefetch) = {
            let mut shard = self.store.shard(key);
            let Some(t) = shard.lru.get_mut(key) else {
                shard.misses += u64::from(hit);
                return Err(Miss::Absent);
            };
            let expires = t.inserted.saturating_add(u64::from(t.ttl));
            if expires <= now {
                // Stale data is served by the resolver's path (RFC 8767), not from here.
                shard.remove(key);
                shard.misses += u64::from(hit);
                return Err(Miss::Absent);
            }
            let wire = match &t.signed {
                Some(signed) if patch.dnssec_ok => signed,
                _ => &t.plain,
            };
            let len = usize::from(wire.msg_len);
            let total = len + patch.opt_payload.map_or(0, |_| OPT_LEN);
            let qname_end = 12 + patch.qname.len();
            if total > patch.limit || total > out.len() || qname_end > len {
                return Err(Miss::TooLong);
            }
            out[..len].copy_from_slice(&wire.bytes[..len]);
            // Patch TTLs while the offsets are at hand. Saturating: if the system clock has
            // stepped back since the insert, no time has passed (TTLs are served as stored,
            // never wrapped to 0 or a panic).
            let elapsed = now.saturating_sub(t.inserted).min(u64::from(u32::MAX)) as u32;
            for o in wire.bytes[len..].chunks_exact(2) {
                let at = usize::from(u16::from_be_bytes([o[0], o[1]]));
                let old = u32::from_be_bytes([out[at], out[at + 1], out[at + 2], out[at + 3]]);
                out[at..at + 4].copy_from_slice(&old.saturating_sub(elapsed).to_be_bytes());
            }
            let left = expires.saturating_sub(now);
            let prefetch = hit && !t.prefetching && left.saturating_mul(10) <= u64::from(t.ttl);
            if prefetch {
                t.prefetching = true;
            }
            shard.hits += u64::from(hit);
            (len, prefetch)
        };
        out[0..2].copy_from_slice(&patch.id.to_be_bytes());
        out[2] = QR | if patch.rd { RD } else { 0 };
        let ad = patch.ad && out[3] & AD != 0;
        out[3] = (out[3] & 0x0f) | RA | if patch.cd { CD } else { 0 } | if ad { AD } else { 0 };
        out[12..12 + patch.qname.len()].copy_from_slice(patch.qname);
        let mut len = len;
        if let Some(payload) = patch.opt_payload {
            out[len..len + OPT_LEN].copy_from_slice(&opt_record(payload, patch.dnssec_ok));
            len += OPT_LEN;
            // ARCOUNT: templates carry no additional records, so ours is the only one.
            out[10..12].copy_from_slice(&1u16.to_be_bytes());
        }
        Ok(Written { len, prefetch })
    }

    /// Whether the fresh reply kept for `q` was validated secure (its template has AD).
    pub fn secure(&self, q: &Question, now: u64) -> bool {
        let key = KeyBuf::of(q);
        let shard = self.store.shard(key.as_bytes());
        shard.lru.peek(key.as_bytes()).is_some_and(|t| {
            t.inserted.saturating_add(u64::from(t.ttl)) > now
                && t.plain.bytes.get(3).is_some_and(|f| f & AD != 0)
        })
    }

    /// Drops the templates for `name` (every type).
    pub fn flush_name(&self, name: &[u8]) -> usize {
        self.store.flush(Names::Exact(name))
    }

    /// Drops the templates at or below `zone`.
    pub fn flush_zone(&self, zone: &[u8]) -> usize {
        self.store.flush(Names::Zone(zone))
    }

    pub fn clear(&self) {
        self.store.for_each_shard(|s| s.clear());
    }

    pub fn stats(&self) -> StoreStats {
        self.store.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Message, MessageType, OpCode};
    use hickory_proto::rr::rdata::{A, CNAME, SOA};
    use hickory_proto::rr::{Name, RData, RecordType};
    use hickory_proto::serialize::binary::BinDecodable;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn patch(qname: &[u8]) -> Patch<'_> {
        Patch {
            id: 0xbeef,
            rd: true,
            cd: false,
            ad: false,
            dnssec_ok: false,
            qname,
            opt_payload: None,
            limit: 512,
        }
    }

    /// The SOA of `example.` (TTL and negative TTL 300), its owner written as `owner`.
    fn soa(owner: &str) -> Record {
        let s = SOA::new(name("ns.example."), name("h.example."), 1, 2, 3, 4, 300);
        Record::from_rdata(name(owner), 300, RData::SOA(s))
    }

    fn chain() -> Vec<Record> {
        vec![
            Record::from_rdata(
                name("www.example."),
                300,
                RData::CNAME(CNAME(name("web.example."))),
            ),
            Record::from_rdata(name("web.example."), 60, RData::A(A::new(192, 0, 2, 1))),
        ]
    }

    /// Issue 17.1: the template is written without a hickory `Message`. It must be the
    /// bytes `Message::to_vec` wrote for the same reply (names compressed alike), and its
    /// TTL offsets those a walk over the records finds.
    #[test]
    fn a_template_is_the_reply_hickory_encodes_with_every_ttl_found() {
        let soa = soa("Example.");
        let many: Vec<Record> = (1..=20)
            .map(|i| Record::from_rdata(name("www.example."), 60, RData::A(A::new(192, 0, 2, i))))
            .collect();
        let cases = [
            ("www.example.", ResponseCode::NoError, true, chain(), vec![]),
            ("www.example.", ResponseCode::NoError, false, many, vec![]),
            (
                "nx.example.",
                ResponseCode::NXDomain,
                false,
                vec![],
                vec![soa.clone()],
            ),
            (
                "www.example.",
                ResponseCode::NXDomain,
                false,
                chain(),
                vec![soa],
            ),
            (
                "empty.example.",
                ResponseCode::YXDomain,
                false,
                vec![],
                vec![],
            ),
        ];
        for (qname, rcode, secure, answers, authority) in cases {
            let q = Question::new(name(qname), RecordType::A);
            let wire = Wire::encode(&q, rcode, secure, &answers, &authority).unwrap();
            let mut msg = Message::new(0, MessageType::Response, OpCode::Query);
            msg.metadata.recursion_available = true;
            msg.metadata.authentic_data = secure;
            msg.metadata.response_code = rcode;
            msg.add_query(q.to_query());
            msg.add_answers(answers.clone());
            msg.add_authorities(authority.clone());
            let expected = msg.to_vec().unwrap();
            let len = usize::from(wire.msg_len);
            assert_eq!(&wire.bytes[..len], &expected[..], "{qname} {rcode}");
            let found: Vec<u16> = crate::dns::wire::records(&expected)
                .map(|r| u16::try_from(r.ttl_at).unwrap())
                .collect();
            let offsets: Vec<u16> = wire.bytes[len..]
                .chunks_exact(2)
                .map(|o| u16::from_be_bytes([o[0], o[1]]))
                .collect();
            assert_eq!(offsets, found, "{qname} {rcode}");
            assert_eq!(offsets.len(), answers.len() + authority.len());
        }
        // An extended RCODE needs an OPT, which templates do not carry: not kept.
        let q = Question::new(name("www.example."), RecordType::A);
        assert!(Wire::encode(&q, ResponseCode::BADCOOKIE, false, &[], &[]).is_none());
    }

    #[test]
    fn a_hit_is_patched_for_the_client() {
        let c = MessageCache::new(1 << 20);
        let q = Question::new(name("www.example."), RecordType::A);
        c.insert(&q, ResponseCode::NoError, &chain(), None, 60, 1000, false);
        let key = KeyBuf::of(&q);
        let mut out = [0u8; 512];
        let qname = b"\x03WwW\x07ExAmple\x00";
        let w = c
            .write_reply(key.as_bytes(), 1010, &patch(qname), &mut out)
            .unwrap();
        assert!(!w.prefetch);
        let m = Message::from_bytes(&out[..w.len]).unwrap();
        assert_eq!(m.metadata.id, 0xbeef);
        assert!(m.metadata.recursion_desired && m.metadata.recursion_available);
        assert!(!m.metadata.authoritative && !m.metadata.checking_disabled);
        assert_eq!(m.metadata.message_type, MessageType::Response);
        assert_eq!(m.queries[0].name.to_ascii(), "WwW.ExAmple.");
        let ttls: Vec<u32> = m.answers.iter().map(|r| r.ttl).collect();
        assert_eq!(ttls, vec![290, 50], "each TTL counted down by 10 s");
        assert!(m.edns.is_none(), "no OPT for a client without one");
    }

    /// RFC 6840 §5.7-5.8: AD only from a secure template, only to a client that set AD or
    /// DO.
    #[test]
    fn ad_only_from_a_secure_template_to_a_client_that_asked() {
        let c = MessageCache::new(1 << 20);
        let secure = Question::new(name("secure.example."), RecordType::A);
        let plain = Question::new(name("plain.example."), RecordType::A);
        c.insert(&secure, ResponseCode::NoError, &chain(), None, 60, 0, true);
        c.insert(&plain, ResponseCode::NoError, &chain(), None, 60, 0, false);
        assert!(c.secure(&secure, 10) && !c.secure(&plain, 10));
        assert!(!c.secure(&secure, 60), "expired");
        let ad = |q: &Question, asked: bool| {
            let mut out = [0u8; 512];
            let qname = KeyBuf::of(q);
            let wire = &qname.as_bytes()[..qname.as_bytes().len() - 4];
            let p = Patch {
                ad: asked,
                ..patch(wire)
            };
            let w = c
                .write_reply(KeyBuf::of(q).as_bytes(), 10, &p, &mut out)
                .unwrap();
            Message::from_bytes(&out[..w.len])
                .unwrap()
                .metadata
                .authentic_data
        };
        assert!(ad(&secure, true));
        assert!(!ad(&secure, false));
        assert!(!ad(&plain, true));
    }

    /// RFC 4035 §3.2.1: a signed answer has a second template, served only to clients that
    /// set DO (RRSIGs after their RRset, the proof in the authority section, DO in our
    /// OPT, RFC 3225 §3); clients without DO get the plain reply as before; an unsigned
    /// answer serves DO clients from its one template.
    #[test]
    fn do_clients_get_the_signed_template() {
        let c = MessageCache::new(1 << 20);
        let q = Question::new(name("www.example."), RecordType::A);
        let dnssec = DnssecRecords {
            answer: vec![
                crate::dns::fake_rrsig("www.example.", RecordType::CNAME, 300),
                crate::dns::fake_rrsig("web.example.", RecordType::A, 60),
            ],
            authority: Vec::new(),
        };
        c.insert_with_dnssec(
            &q,
            ResponseCode::NoError,
            &chain(),
            None,
            60,
            0,
            true,
            &dnssec,
        );
        let unsigned = Question::new(name("plain.example."), RecordType::A);
        c.insert(
            &unsigned,
            ResponseCode::NoError,
            &chain(),
            None,
            60,
            0,
            false,
        );
        let ask = |q: &Question, dnssec_ok: bool| {
            let mut out = [0u8; 1232];
            let key = KeyBuf::of(q);
            let wire = &key.as_bytes()[..key.as_bytes().len() - 4];
            let p = Patch {
                dnssec_ok,
                ad: dnssec_ok,
                opt_payload: Some(1232),
                limit: 1232,
                ..patch(wire)
            };
            let w = c.write_reply(key.as_bytes(), 10, &p, &mut out).unwrap();
            Message::from_bytes(&out[..w.len]).unwrap()
        };
        let m = ask(&q, true);
        let types: Vec<RecordType> = m.answers.iter().map(|r| r.record_type()).collect();
        use RecordType::{A as TA, CNAME as TC, RRSIG as TS};
        assert_eq!(types, vec![TC, TS, TA, TS]);
        assert_eq!(m.answers[3].ttl, 50, "signatures count down as their RRset");
        assert!(m.edns.as_ref().unwrap().flags().dnssec_ok, "DO copied");
        assert!(m.metadata.authentic_data);
        let m = ask(&q, false);
        let types: Vec<RecordType> = m.answers.iter().map(|r| r.record_type()).collect();
        assert_eq!(types, vec![TC, TA], "no RRSIG without DO");
        assert!(!m.edns.as_ref().unwrap().flags().dnssec_ok);
        let m = ask(&unsigned, true);
        assert_eq!(m.answers.len(), 2);
        assert!(m.edns.as_ref().unwrap().flags().dnssec_ok);
        assert_eq!(
            c.flush_name(b"\x03www\x07example\x00"),
            1,
            "one entry, both replies"
        );
    }

    #[test]
    fn edns_clients_get_our_opt_and_limits_hold() {
        let c = MessageCache::new(1 << 20);
        let q = Question::new(name("www.example."), RecordType::A);
        c.insert(&q, ResponseCode::NoError, &chain(), None, 60, 0, false);
        let key = KeyBuf::of(&q);
        let qname = b"\x03www\x07example\x00";
        let mut out = [0u8; 512];
        let p = Patch {
            opt_payload: Some(1232),
            ..patch(qname)
        };
        let w = c.write_reply(key.as_bytes(), 0, &p, &mut out).unwrap();
        let m = Message::from_bytes(&out[..w.len]).unwrap();
        let opt = m.edns.as_ref().expect("OPT");
        assert_eq!(opt.max_payload(), 1232);
        assert!(!opt.flags().dnssec_ok);
        let tight = Patch { limit: 40, ..p };
        assert_eq!(
            c.write_reply(key.as_bytes(), 0, &tight, &mut out),
            Err(Miss::TooLong)
        );
    }

    #[test]
    fn negative_replies_keep_rcode_and_soa() {
        let c = MessageCache::new(1 << 20);
        let q = Question::new(name("nx.example."), RecordType::A);
        let soa = soa("example.");
        c.insert(&q, ResponseCode::NXDomain, &[], Some(&soa), 300, 0, false);
        let mut out = [0u8; 512];
        let w = c
            .write_reply(
                KeyBuf::of(&q).as_bytes(),
                100,
                &patch(b"\x02nx\x07example\x00"),
                &mut out,
            )
            .unwrap();
        let m = Message::from_bytes(&out[..w.len]).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(m.authorities[0].ttl, 200);
    }

    #[test]
    fn expiry_and_a_single_prefetch_in_the_last_tenth() {
        let c = MessageCache::new(1 << 20);
        let q = Question::new(name("www.example."), RecordType::A);
        c.insert(&q, ResponseCode::NoError, &chain(), None, 100, 0, false);
        let key = KeyBuf::of(&q);
        let qn = b"\x03www\x07example\x00";
        let mut out = [0u8; 512];
        let mut at = |now| c.write_reply(key.as_bytes(), now, &patch(qn), &mut out);
        assert!(!at(89).unwrap().prefetch, "11 s of 100 left");
        assert!(at(90).unwrap().prefetch, "10 s left: refresh");
        assert!(!at(95).unwrap().prefetch, "asked once only");
        assert_eq!(at(100), Err(Miss::Absent), "expired");
    }

    /// Issue 11.8: the system clock stepping back (NTP, a VM restored) must neither panic
    /// nor zero the TTLs; the reply is served with the TTLs as stored.
    #[test]
    fn a_clock_that_steps_back_serves_the_stored_ttls() {
        let c = MessageCache::new(1 << 20);
        let q = Question::new(name("www.example."), RecordType::A);
        c.insert(&q, ResponseCode::NoError, &chain(), None, 60, 1_000, false);
        let key = KeyBuf::of(&q);
        let mut out = [0u8; 512];
        let qn = b"\x03www\x07example\x00";
        for now in [999, 500, 0] {
            let w = c
                .write_reply(key.as_bytes(), now, &patch(qn), &mut out)
                .unwrap();
            let m = Message::from_bytes(&out[..w.len]).unwrap();
            let ttls: Vec<u32> = m.answers.iter().map(|r| r.ttl).collect();
            assert_eq!(ttls, vec![300, 60], "now {now}: TTLs as stored");
            assert!(!w.prefetch, "now {now}: no refresh asked for");
        }
        // And forward again: counted down from the insert, expiring on time.
        let w = c
            .write_reply(key.as_bytes(), 1_030, &patch(qn), &mut out)
            .unwrap();
        let m = Message::from_bytes(&out[..w.len]).unwrap();
        assert_eq!(m.answers[1].ttl, 30);
        assert_eq!(
            c.write_reply(key.as_bytes(), 1_060, &patch(qn), &mut out),
            Err(Miss::Absent)
        );
    }

    #[test]
    fn flush_by_name_and_zone() {
        let c = MessageCache::new(1 << 20);
        for n in ["www.example.", "a.b.example.", "example.", "other."] {
            c.insert(
                &Question::new(name(n), RecordType::A),
                ResponseCode::NoError,
                &chain(),
                None,
                60,
                0,
                false,
            );
        }
        assert_eq!(c.flush_name(b"\x07example\x00"), 1);
        assert_eq!(c.flush_zone(b"\x07example\x00"), 2);
        assert_eq!(c.stats().entries, 1);
    }
}
