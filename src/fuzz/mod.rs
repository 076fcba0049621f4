//! Fuzz harnesses: the code behind `fuzz/fuzz_targets/*`, kept in the library so that every
//! input the fuzzers find (and the seed corpus) is replayed by ordinary tests
//! (`tests/fuzz.rs`). Each harness panics only when hopdns breaks a promise: a reply that
//! does not decode or carries the wrong ID, a resolution that exceeds its query budget or
//! does not end.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use crate::cache::Cache;
use crate::dns::{Failure, Outcome, Question};
use crate::resolver::machine::{MinimiseMode, Resolution, Settings};
use crate::resolver::run::{Pick, Run};
use crate::server::request::{self, Policy, Proto, Triage};
use crate::transport::{Exchange, OutQuery, TransportError};

/// A fixed clock for the machine (seconds): the harness must be deterministic.
const NOW: u64 = 1_700_000_000;

/// Upper bound on upstream queries in one run: far above any budget, so reaching it is a
/// hang.
const MAX_STEPS: usize = 1_000;

/// The front end: raw client bytes through `triage`, then `respond` with a few outcomes.
/// The first byte picks UDP or TCP (bit 0) and a client outside the allow-list (bit 1:
/// REFUSED; otherwise loopback, always allowed, so `respond` is reached); the rest is the
/// message.
pub fn front_end(data: &[u8]) {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    let proto = if mode & 1 == 0 {
        Proto::Udp
    } else {
        Proto::Tcp
    };
    let client: SocketAddr = if mode & 2 == 0 {
        "127.0.0.9:4053"
    } else {
        "192.0.2.9:4053"
    }
    .parse()
    .expect("a literal address");
    let policy = Policy::default();
    match request::triage(bytes, client, proto, &policy) {
        Triage::Drop => {}
        Triage::Reply(reply) => check_reply(bytes, &reply, proto),
        Triage::Ask(req) => {
            let name = req.question().name.clone();
            let soa = crate::transport::scripted::soa(".");
            let outcomes = [
                Outcome::Answer {
                    answers: vec![hickory_proto::rr::Record::from_rdata(
                        name,
                        300,
                        crate::transport::scripted::a("192.0.2.1"),
                    )],
                },
                Outcome::NxDomain {
                    answers: Vec::new(),
                    soa: Some(soa),
                },
                Outcome::ServFail(Failure::Deadline),
            ];
            for outcome in &outcomes {
                if let Some(reply) = request::respond(&req, outcome, &policy) {
                    check_reply(bytes, &reply, proto);
                }
            }
        }
    }
}

/// Any reply we send decodes, is a response, carries the query's ID and fits UDP limits.
fn check_reply(query: &[u8], reply: &[u8], proto: Proto) {
    let msg = Message::from_vec(reply).expect("our own reply decodes");
    assert_eq!(msg.metadata.message_type, MessageType::Response);
    assert_eq!(msg.metadata.id.to_be_bytes(), [query[0], query[1]]);
    if proto == Proto::Udp {
        assert!(reply.len() <= 65_535);
        let limit = usize::from(Policy::default().max_udp_payload());
        assert!(reply.len() <= limit, "UDP reply over our payload");
    }
}

/// The state machine fed arbitrary upstream replies through the one drive loop
/// (`resolver::run`). Layout: one settings byte, then records of
/// `[flags, len_hi, len_lo, bytes...]`, one per query the machine asks.
/// Flags: bit 0 = timeout instead, bit 1 = rewrite the reply's question to the one sent
/// (what the transport would insist on), bit 2 = treat as undecodable.
pub fn machine(data: &[u8]) {
    let Some((&setup, rest)) = data.split_first() else {
        return;
    };
    let qtypes = [
        RecordType::A,
        RecordType::AAAA,
        RecordType::NS,
        RecordType::CNAME,
        RecordType::DS,
        RecordType::TXT,
        RecordType::MX,
        RecordType::ANY,
    ];
    let qtype = qtypes[usize::from(setup & 7)];
    let minimise = match (setup >> 3) & 3 {
        0 => MinimiseMode::Relaxed,
        1 => MinimiseMode::Strict,
        _ => MinimiseMode::Off,
    };
    let mut settings = Settings {
        minimise,
        ..Settings::default()
    };
    if setup & 0x20 != 0 {
        settings.minimise_qtype = RecordType::NS;
    }
    let settings = Arc::new(settings);
    let max_queries = settings.limits.max_queries;
    let root = crate::transport::scripted::root_hints("10.0.0.1");
    let name = Name::from_ascii("www.a.example.com.").expect("a literal name");
    let cache = Cache::default();
    let mut m = Resolution::new(
        Question::new(name, qtype),
        Arc::new(root),
        settings,
        setup & 0x40 != 0,
    );
    let authorities = FuzzAuthorities {
        rest: std::sync::Mutex::new((rest.to_vec(), 0)),
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(3600);
    let mut run = Run::new(&cache, &authorities, Pick::First, deadline).with_unix_clock(|| NOW);
    RUNTIME.with(|rt| rt.block_on(run.drive(&mut m, None, || None)));
    assert!(m.queries_sent() <= max_queries, "query budget exceeded");
}

thread_local! {
    /// The fuzz harness's executor: the drive loop is async, the scripted authorities never
    /// wait.
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");
}

/// Authorities that answer each query with the next record of the fuzz input.
struct FuzzAuthorities {
    /// The input left, and how many queries were answered so far.
    rest: std::sync::Mutex<(Vec<u8>, usize)>,
}

#[async_trait::async_trait]
impl Exchange for FuzzAuthorities {
    async fn exchange(&self, q: &OutQuery) -> Result<Message, TransportError> {
        let mut guard = self.rest.lock().expect("not poisoned");
        let (rest, asked) = &mut *guard;
        *asked += 1;
        assert!(
            *asked <= MAX_STEPS,
            "the resolution did not end within {MAX_STEPS} queries"
        );
        let mut tail: &[u8] = rest;
        let record = next_record(&mut tail).map(|(f, b)| (f, b.to_vec()));
        *rest = tail.to_vec();
        match record {
            None => Err(TransportError::Timeout),
            Some((flags, _)) if flags & 1 != 0 => Err(TransportError::Timeout),
            Some((flags, bytes)) => match Message::from_vec(&bytes) {
                Ok(mut message) if flags & 4 == 0 => {
                    if flags & 2 != 0 {
                        message.queries = vec![q.query.clone()];
                    }
                    if message.metadata.response_code == ResponseCode::NoError && flags & 8 != 0 {
                        message.metadata.authoritative = true;
                    }
                    Ok(message)
                }
                Ok(_) | Err(_) => Err(TransportError::Malformed("undecodable".into())),
            },
        }
    }
}

/// Clock steps tried by [`fast_path`] between storing a template and serving it (seconds;
/// negative: the system clock stepped back, issue 11.8).
const FAST_PATH_STEPS: [i64; 8] = [-86_400, -1, 0, 1, 59, 299, 3_600, 1 << 32];

/// The cache-hit fast path: raw client bytes through `dns::wire::parse_plain_query`, checked
/// against the full front end (`triage`), then a reply template built from an arbitrary
/// upstream reply, stored in the message cache and written for that client by
/// `MessageCache::write_reply` with `server::fast::patch_for` (the template patching), as
/// `server::fast::reply_from_cache` does.
/// Layout: `[flags, query_len_hi, query_len_lo, query..., upstream reply...]`; flags bits 0-1
/// pick our UDP payload (the output buffer), bits 2-4 the clock step, bit 5 a NXDOMAIN
/// rcode. Promises checked: the fast path accepts only what `triage` would ask the resolver
/// about, with the same question, ID, flags and EDNS payload (or a meta-QTYPE that is never
/// cached); the served reply decodes, carries the client's ID, RD, CD and exact question
/// bytes, our OPT exactly when the client sent one, the template's rcode and records, no TTL
/// above the stored one, and fits both the client's limit and the buffer.
pub fn fast_path(data: &[u8]) {
    use crate::cache::MessageCache;
    use crate::dns::wire::{parse_plain_query, KeyBuf};
    use crate::server::fast::patch_for;
    use hickory_proto::rr::DNSClass;

    let &[flags, hi, lo, ref rest @ ..] = data else {
        return;
    };
    let len = usize::from(u16::from_be_bytes([hi, lo])).min(rest.len());
    let (query, upstream) = rest.split_at(len);
    let Some(fq) = parse_plain_query(query) else {
        return;
    };

    // The fast path must never take a query the general path would answer otherwise. The
    // UDP worker tries it only for allowed clients: loopback is always allowed.
    let client: SocketAddr = "127.0.0.9:4053".parse().expect("a literal address");
    let policy = Policy::default();
    let question = match request::triage(query, client, Proto::Udp, &policy) {
        Triage::Ask(req) => {
            assert_eq!(req.id(), fq.id, "ID");
            assert_eq!(req.header().recursion_desired, fq.rd, "RD");
            assert_eq!(req.header().checking_disabled, fq.cd, "CD");
            assert_eq!(
                req.edns().map(|e| e.max_payload()),
                fq.edns_payload.map(|p| p.max(512)),
                "EDNS payload"
            );
            let q = req.question().clone();
            assert_eq!(KeyBuf::of(&q).as_bytes(), fq.key.as_bytes(), "cache key");
            q
        }
        Triage::Reply(reply) => {
            let msg = Message::from_vec(&reply).expect("our own reply decodes");
            assert_eq!(
                msg.metadata.response_code,
                ResponseCode::NotImp,
                "the fast path took a query the front end rejects"
            );
            assert!(
                [41, 249, 250, 251, 252, 253, 254].contains(&fq.qtype),
                "NOTIMP for a cacheable QTYPE"
            );
            return;
        }
        Triage::Drop => panic!("the fast path took a query the front end drops"),
    };

    // A template from whatever an upstream reply held.
    let Ok(upstream) = Message::from_vec(upstream) else {
        return;
    };
    let rcode = if flags & 0x20 != 0 {
        ResponseCode::NXDomain
    } else {
        ResponseCode::NoError
    };
    let answers = upstream.answers;
    let soa = upstream
        .authorities
        .iter()
        .find(|r| r.record_type() == RecordType::SOA);
    let ttl = answers
        .iter()
        .chain(soa)
        .map(|r| r.ttl)
        .min()
        .unwrap_or(300);
    // Some records hickory-proto decodes do not decode again once encoded (an SVCB with
    // odd parameters): the general path would send the same bytes, so only templates whose
    // plain encoding decodes are held to the promises below.
    let mut plain = Message::new(0, MessageType::Response, OpCode::Query);
    plain.add_query(question.to_query());
    plain.add_answers(answers.iter().cloned());
    plain.add_authorities(soa.cloned());
    if !plain.to_vec().is_ok_and(|b| Message::from_vec(&b).is_ok()) {
        return;
    }
    let cache = MessageCache::new(1 << 20);
    cache.insert(&question, rcode, &answers, soa, ttl, NOW, false);

    let ours = [512, 1232, 1400, 4096][usize::from(flags & 3)];
    let step = FAST_PATH_STEPS[usize::from((flags >> 2) & 7)];
    let now = NOW.saturating_add_signed(step);
    let mut out = vec![0u8; ours];
    let patch = patch_for(&fq, ours);
    let Ok(written) = cache.write_reply(fq.key.as_bytes(), now, &patch, &mut out) else {
        return;
    };
    assert!(
        written.len <= patch.limit && written.len <= out.len(),
        "over the limit"
    );
    assert!(step < i64::from(ttl), "an expired template was served");
    let reply = &out[..written.len];
    let msg = Message::from_vec(reply).expect("a served template decodes");
    assert_eq!(msg.metadata.message_type, MessageType::Response);
    assert_eq!(msg.metadata.id, fq.id);
    assert_eq!(msg.metadata.recursion_desired, fq.rd);
    assert_eq!(msg.metadata.checking_disabled, fq.cd);
    assert!(msg.metadata.recursion_available);
    assert_eq!(msg.metadata.response_code, rcode);
    assert_eq!(
        &reply[12..12 + fq.qname.len()],
        fq.qname,
        "the client's question bytes"
    );
    assert_eq!(msg.queries.len(), 1);
    assert_eq!(u16::from(msg.queries[0].query_type), fq.qtype);
    assert_eq!(msg.queries[0].query_class, DNSClass::from(fq.qclass));
    assert_eq!(
        msg.edns.is_some(),
        fq.edns_payload.is_some(),
        "OPT iff the client sent one"
    );
    assert_eq!(msg.answers.len(), answers.len());
    let served = msg.answers.iter().chain(msg.authorities.first());
    for (got, stored) in served.zip(answers.iter().chain(soa)) {
        assert!(got.ttl <= stored.ttl, "a TTL above the stored one");
        assert_eq!(got.record_type(), stored.record_type());
    }
}

/// The wire codec (`dns::wire`) on arbitrary bytes: no reader panics or reads past the
/// end, and what each reads agrees with hickory-proto's decoder wherever that decodes the
/// message: the first question's type, the record walk (count and types, ending inside the
/// message: hickory ignores trailing bytes) and the dotted key of an uncompressed question
/// name (raw label bytes).
pub fn wire(data: &[u8]) {
    use crate::dns::wire::{
        dotted_key, first_question_end, first_question_type, records, skip_name, HEADER_LEN,
    };

    if let Some(end) = first_question_end(data) {
        assert!(end <= data.len(), "question end past the message");
    }
    let mut walk = records(data);
    let walked: Vec<_> = walk.by_ref().collect();
    let end = walk.end();
    for r in &walked {
        assert!(r.rdata.end <= data.len() && r.ttl_at + 4 <= r.rdata.start);
    }
    for at in 0..data.len().min(64) {
        if let Some(next) = skip_name(data, at) {
            assert!(next > at && next <= data.len(), "skip_name past the end");
        }
    }
    let mut buf = [0u8; 256];
    let key = data.get(HEADER_LEN..).and_then(|n| dotted_key(n, &mut buf));

    let Ok(msg) = Message::from_vec(data) else {
        return;
    };
    if let Some(q) = msg.queries.first() {
        assert_eq!(first_question_type(data), Some(u16::from(q.query_type)));
        if let Some(key) = key {
            // Raw label bytes, lowercased, joined by dots: what the rules' keys are made of
            // (not the presentation form, which escapes odd bytes).
            let labels: Vec<Vec<u8>> = q.name.iter().map(|l| l.to_ascii_lowercase()).collect();
            assert_eq!(key, labels.join(&b'.').as_slice(), "dotted key");
        }
    }
    // hickory keeps OPT apart from the additional section and SIG(0) at its end.
    let count = msg.answers.len()
        + msg.authorities.len()
        + msg.additionals.len()
        + usize::from(msg.edns.is_some())
        + usize::from(msg.signature.is_some());
    assert_eq!(walked.len(), count, "records walked");
    // hickory ignores bytes after the last record; the walk must at least get there.
    assert!(
        end.is_some_and(|e| e <= data.len()),
        "the walk ends inside the message"
    );
    let types = msg.answers.iter().map(|r| u16::from(r.record_type()));
    for (w, t) in walked.iter().zip(types) {
        assert_eq!(w.rtype, t, "record type");
    }
}

fn next_record<'a>(rest: &mut &'a [u8]) -> Option<(u8, &'a [u8])> {
    let &[flags, hi, lo, ref tail @ ..] = *rest else {
        return None;
    };
    let len = usize::from(u16::from_be_bytes([hi, lo])).min(tail.len());
    let (bytes, tail) = tail.split_at(len);
    *rest = tail;
    Some((flags, bytes))
}

/// Builds a fast-path input from a client query and an upstream reply (the seed corpus).
pub fn fast_path_input(flags: u8, query: &[u8], upstream: &Message) -> Vec<u8> {
    let mut out = vec![flags];
    out.extend_from_slice(&(query.len() as u16).to_be_bytes());
    out.extend_from_slice(query);
    out.extend(upstream.to_vec().expect("a seed encodes"));
    out
}

/// Builds a machine input from replies (used to write the seed corpus).
pub fn machine_input(setup: u8, replies: &[(u8, Message)]) -> Vec<u8> {
    let mut out = vec![setup];
    for (flags, m) in replies {
        let bytes = m.to_vec().expect("a seed encodes");
        out.push(*flags);
        out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::scripted as s;
    use hickory_proto::op::{Edns, Query};

    fn client_query(name: &str, qtype: RecordType, edns: bool) -> Vec<u8> {
        let mut m = Message::new(0x4242, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        if edns {
            m.set_edns(Edns::new());
        }
        m.to_vec().unwrap()
    }

    /// The seed corpus in `fuzz/corpus/`: run with `--ignored` to write it again.
    #[test]
    #[ignore = "writes fuzz/corpus; run by hand when the harness input format changes"]
    fn write_seed_corpus() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus");
        let write = |target: &str, file: &str, bytes: Vec<u8>| {
            let d = format!("{dir}/{target}");
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(format!("{d}/{file}"), bytes).unwrap();
        };
        for (file, udp, bytes) in [
            (
                "a-edns",
                true,
                client_query("www.example.com.", RecordType::A, true),
            ),
            (
                "aaaa",
                true,
                client_query("Www.Example.COM.", RecordType::AAAA, false),
            ),
            (
                "axfr-tcp",
                false,
                client_query("example.com.", RecordType::AXFR, false),
            ),
            (
                "txt-tcp",
                false,
                client_query("example.com.", RecordType::TXT, true),
            ),
            (
                "garbage",
                true,
                vec![0x42, 0x42, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 63, b'x'],
            ),
        ] {
            let mut v = vec![u8::from(!udp)];
            v.extend(bytes);
            write("front_end", file, v);
        }
        let chain = s::answer(vec![
            s::rec("www.example.com.", 300, s::cname("web.example.net.")),
            s::rec("web.example.net.", 60, s::a("192.0.2.1")),
        ]);
        let mut cookie = Message::new(0x4242, MessageType::Query, OpCode::Query);
        cookie.add_query(Query::query(
            Name::from_ascii("WWW.example.COM.").unwrap(),
            RecordType::A,
        ));
        let mut edns = Edns::new();
        edns.set_max_payload(4096);
        edns.options_mut()
            .insert(hickory_proto::rr::rdata::opt::EdnsOption::Unknown(
                10,
                vec![1, 2, 3, 4, 5, 6, 7, 8],
            ));
        cookie.set_edns(edns);
        for (file, flags, query, upstream) in [
            (
                "a-edns-chain",
                1,
                client_query("www.example.com.", RecordType::A, true),
                chain.clone(),
            ),
            (
                "aaaa-nxdomain-stepped-back",
                0x20,
                client_query("Nx.Example.COM.", RecordType::AAAA, false),
                s::nxdomain("example.com."),
            ),
            (
                "cookie-expired",
                3 | (6 << 2),
                cookie.to_vec().unwrap(),
                chain,
            ),
            (
                "any-nodata",
                0,
                client_query("example.com.", RecordType::ANY, false),
                s::nodata("example.com."),
            ),
        ] {
            write("fast_path", file, fast_path_input(flags, &query, &upstream));
        }
        let rs = |name: &str, ip: &str| s::rec(name, 300, s::a(ip));
        let referral = |zone: &str, ns: &str, ip: &str| s::referral(zone, &[(ns, Some(ip))]);
        let walk = vec![
            (2, referral("com.", "ns.nic.com.", "10.0.1.1")),
            (2, referral("example.com.", "ns.example.com.", "10.0.2.1")),
            (2, s::nodata("example.com.")),
            (2, s::answer(vec![rs("www.a.example.com.", "192.0.2.1")])),
        ];
        write("machine", "minimised-walk", machine_input(0, &walk));
        let full = vec![
            (2, referral("com.", "ns.nic.com.", "10.0.1.1")),
            (2, referral("example.com.", "ns.example.com.", "10.0.2.1")),
            (2, s::answer(vec![rs("www.a.example.com.", "192.0.2.1")])),
        ];
        write("machine", "full-walk", machine_input(0x10, &full));
        let alias = vec![
            (2, referral("com.", "ns.nic.com.", "10.0.1.1")),
            (
                2,
                s::answer(vec![s::rec(
                    "www.a.example.com.",
                    300,
                    s::cname("www.example.net."),
                )]),
            ),
            (0, s::nxdomain("net.")),
            (1, s::nxdomain("net.")),
        ];
        write("machine", "cname-strict", machine_input(0x08, &alias));
        let glueless = vec![
            (2, s::referral("com.", &[("ns.nic.net.", None)])),
            (2, referral("net.", "ns.nic.net.", "10.0.1.3")),
            (2, s::answer(vec![rs("ns.nic.net.", "10.0.1.3")])),
            (2, s::error(ResponseCode::Refused)),
            (6, s::error(ResponseCode::FormErr)),
        ];
        write("machine", "glueless-ns", machine_input(0x30, &glueless));
    }
}
