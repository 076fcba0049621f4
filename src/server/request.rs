//! One client message in, at most one reply out: the pure half of the front end (no sockets).
//!
//! The order of checks is defensive first (STYLE.md habit 8):
//!
//! 1. Drop without a word: fewer than 12 bytes (no header to answer, RFC 1035 §4.1.1), a
//!    response (QR=1; answering responses lets two servers loop), or a source that cannot be
//!    a client (port 0, unspecified, multicast or broadcast address).
//! 2. The 12-byte header is read before the full decode, so a malformed message still gets
//!    FORMERR carrying its own ID (and its question when that part decodes). Trailing bytes
//!    after the last record are malformed too, and so is a second OPT (RFC 6891 §6.1.1).
//! 3. OPCODE other than QUERY: NOTIMP (RFC 1035 §4.1.1). QDCOUNT other than 1: FORMERR.
//! 4. A client outside the allow-list: REFUSED (see [`super::acl`]).
//! 5. EDNS version above 0: BADVERS with our version 0 (RFC 6891 §6.1.3).
//! 6. Transfer and mailbox meta-QTYPEs (AXFR, IXFR, MAILA, MAILB) and the pseudo-types OPT,
//!    TKEY, TSIG cannot be resolved recursively: NOTIMP.
//! 7. Everything else goes to the [`Answerer`].
//!
//! Every reply has QR=1, RA=1, RD and CD copied, never AA or AD, the question echoed byte
//! for byte as the client sent it (case included: RFC 1035 §2.3.3 preserves case, and
//! 0x20 clients compare it), the answers, the SOA of a negative outcome in the authority
//! section, and no additional records but our OPT. OPT (payload
//! [`Policy::max_udp_payload`], DO clear, version 0) is sent only when the query carried
//! one (RFC 6891 §7: no OPT to a client that sent none).
//!
//! UDP size (RFC 1035 §4.2.1 and RFC 6891 §6.2.5): 512 without EDNS, else the client's
//! payload (values below 512 count as 512) capped by ours. A reply over the limit is sent as
//! header + question (+ OPT) with TC=1 and no records, never a partial RRset, so the client
//! retries over TCP (RFC 2181 §9). TCP replies (RFC 1035 §4.2.2) are never truncated; a
//! reply that cannot be encoded (over 65535 bytes) becomes SERVFAIL.

use std::net::{IpAddr, SocketAddr};

use hickory_proto::op::{
    Edns, Header, Message, MessageType, Metadata, OpCode, Query, ResponseCode,
};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use tracing::{debug, trace};

use super::acl::Acl;
use super::{client_errors, Answerer};
use crate::dns::wire::{records, u16_at};
pub use crate::dns::Proto;
use crate::dns::{Answered, DnssecRecords, Failure, Outcome, Question};
use crate::metrics::ClientError;

/// Largest UDP reply without EDNS (RFC 1035 §4.2.1), and the floor of any EDNS payload
/// (RFC 6891 §6.2.5: "Values lower than 512 MUST be treated as equal to 512").
pub const MIN_UDP_PAYLOAD: u16 = 512;

/// Our default EDNS UDP payload: 1232 bytes fits a 1280-byte IPv6 minimum MTU, so replies
/// are never IP-fragmented (DNS Flag Day 2020; RFC 9715).
pub const DEFAULT_MAX_UDP_PAYLOAD: u16 = 1232;

/// The EDNS version we implement (RFC 6891 §6.1.3).
const EDNS_VERSION: u8 = 0;

/// QTYPE values that a recursive resolver cannot serve: OPT (41), TKEY (249), TSIG (250),
/// IXFR (251), AXFR (252), MAILB (253), MAILA (254).
const UNSERVED_QTYPES: [u16; 7] = [41, 249, 250, 251, 252, 253, 254];

/// RFC 8467 §4.1, block-length padding: a responder pads replies to a multiple of 468
/// octets (the policy the RFC recommends, and Unbound's `pad-responses-block-size`).
pub const PADDING_BLOCK: usize = 468;

/// What the request layer needs from the configuration.
#[derive(Clone, Debug)]
pub struct Policy {
    acl: Acl,
    max_udp_payload: u16,
}

impl Policy {
    /// `max_udp_payload` below 512 is raised to 512 (RFC 6891 §6.2.5).
    pub fn new(acl: Acl, max_udp_payload: u16) -> Self {
        Self {
            acl,
            max_udp_payload: max_udp_payload.max(MIN_UDP_PAYLOAD),
        }
    }

    pub fn acl(&self) -> &Acl {
        &self.acl
    }

    /// The payload we advertise in our OPT and the cap on any UDP reply.
    pub fn max_udp_payload(&self) -> u16 {
        self.max_udp_payload
    }
}

impl Default for Policy {
    fn default() -> Self {
        Self::new(Acl::default(), DEFAULT_MAX_UDP_PAYLOAD)
    }
}

/// The result of the synchronous checks on one message.
#[derive(Debug)]
pub enum Triage {
    /// Send nothing.
    Drop,
    /// Send this encoded reply (an error) without asking the answerer.
    Reply(Vec<u8>),
    /// A well-formed, allowed query: ask the answerer, then call [`respond`].
    Ask(Box<Request>),
}

/// A query that passed every check.
#[derive(Debug)]
pub struct Request {
    header: Metadata,
    /// The question exactly as the client sent it, echoed in the reply.
    query: Query,
    /// The same question normalised for the resolver (lowercase, FQDN).
    question: Question,
    /// The client's OPT, if any.
    edns: Option<Edns>,
    proto: Proto,
}

impl Request {
    pub fn question(&self) -> &Question {
        &self.question
    }

    pub fn id(&self) -> u16 {
        self.header.id
    }

    /// The client's header flags.
    pub fn header(&self) -> &Metadata {
        &self.header
    }

    /// The client's OPT, if it sent one.
    pub fn edns(&self) -> Option<&Edns> {
        self.edns.as_ref()
    }

    pub fn proto(&self) -> Proto {
        self.proto
    }

    /// The client set DO in its OPT (RFC 3225).
    pub fn dnssec_ok(&self) -> bool {
        self.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok)
    }
}

/// The whole path for one message: checks, answerer, reply. `None` means send nothing.
pub async fn handle(
    bytes: &[u8],
    client: SocketAddr,
    proto: Proto,
    policy: &Policy,
    answerer: &dyn Answerer,
) -> Option<Vec<u8>> {
    match triage(bytes, client, proto, policy) {
        Triage::Drop => None,
        Triage::Reply(reply) => Some(reply),
        Triage::Ask(request) => {
            let answered = answer(answerer, &request, client).await;
            respond_answered(&request, &answered, policy)
        }
    }
}

/// The answerer's outcome for `request`, whether it was validated secure, and for a DO
/// query its DNSSEC records (RFC 4035 §3.2.1); a CD query is answered without enforcing
/// validation (RFC 6840 §5.9).
pub async fn answer(answerer: &dyn Answerer, request: &Request, client: SocketAddr) -> Answered {
    let mut answered = answer_unsettled(answerer, request, client).await;
    settle_ad(answerer, request, &mut answered);
    answered
}

/// [`answer`] without the look-up of a plain answer's AD bit (`secure` stays false): for a
/// caller that may reply from the message-cache template, which carries its own AD bit,
/// and calls [`settle_ad`] only when it encodes the reply itself.
pub async fn answer_unsettled(
    answerer: &dyn Answerer,
    request: &Request,
    client: SocketAddr,
) -> Answered {
    let cd = request.header.checking_disabled;
    if request.dnssec_ok() {
        return answerer.answer_dnssec(request.question(), client, cd).await;
    }
    let (outcome, secure) = if cd {
        answerer.answer_unchecked(request.question(), client).await
    } else {
        (answerer.answer(request.question(), client).await, false)
    };
    Answered {
        outcome,
        secure,
        dnssec: DnssecRecords::default(),
    }
}

/// Looks up whether a plain answer (neither DO nor CD) was validated secure: the AD bit of
/// its template in the message cache. The other kinds came with theirs.
pub fn settle_ad(answerer: &dyn Answerer, request: &Request, answered: &mut Answered) {
    if !request.dnssec_ok() && !request.header.checking_disabled {
        answered.secure = answerer.secure(request.question());
    }
}

/// Whether the message cache's template may carry the reply to `request` once `answered`
/// (the template its resolution stored): a plain answer, NODATA or NXDOMAIN, to a client
/// that set neither DO nor CD. Anything else (a failure with its EDE, a DO client's DNSSEC
/// records, an unchecked answer) is encoded from the outcome.
pub fn template_may_answer(request: &Request, answered: &Answered) -> bool {
    !request.dnssec_ok()
        && !request.header.checking_disabled
        && matches!(
            answered.outcome,
            Outcome::Answer { .. } | Outcome::NoData { .. } | Outcome::NxDomain { .. }
        )
}

/// Every check that needs no answer, in the order of the module documentation.
pub fn triage(bytes: &[u8], client: SocketAddr, proto: Proto, policy: &Policy) -> Triage {
    if !plausible_client(client) {
        trace!(%client, "dropping message from an impossible source");
        return Triage::Drop;
    }
    let mut decoder = BinDecoder::new(bytes);
    let Ok(header) = Header::read(&mut decoder) else {
        trace!(%client, len = bytes.len(), "dropping message shorter than a header");
        return Triage::Drop;
    };
    if header.metadata.message_type == MessageType::Response {
        trace!(%client, id = header.metadata.id, "dropping a response (QR=1)");
        return Triage::Drop;
    }
    let header_meta = header.metadata;

    // Checked before the decoder sees them: hickory-proto drops unparsable options with a
    // WARN line per message (issue 11.4). Unbound answers FORMERR too.
    if header.counts.additionals > 0 && malformed_edns_options(bytes) {
        client_errors::note(ClientError::MalformedEdns);
        debug!(%client, id = header_meta.id, "malformed EDNS options: FORMERR");
        let query = (header.counts.queries == 1)
            .then(|| Query::read(&mut decoder).ok())
            .flatten();
        let reply = Reply::error(&header_meta, query.as_ref(), None, ResponseCode::FormErr);
        return reply_or_drop(reply.encode(proto, policy));
    }

    let message = match decode_strict(bytes) {
        Ok(message) => message,
        Err(reason) => {
            client_errors::note(ClientError::Malformed);
            debug!(%client, id = header_meta.id, %reason, "malformed query: FORMERR");
            // Echo the question when the header says there is exactly one and it decodes.
            let query = (header.counts.queries == 1)
                .then(|| Query::read(&mut decoder).ok())
                .flatten();
            let reply = Reply::error(&header_meta, query.as_ref(), None, ResponseCode::FormErr);
            return reply_or_drop(reply.encode(proto, policy));
        }
    };
    let edns = message.edns.as_ref();

    if message.metadata.op_code != OpCode::Query {
        debug!(%client, id = header_meta.id, op_code = %message.metadata.op_code, "NOTIMP");
        let query = single_query(&message);
        let reply = Reply::error(&header_meta, query, edns, ResponseCode::NotImp);
        return reply_or_drop(reply.encode(proto, policy));
    }

    let [query] = message.queries.as_slice() else {
        let count = message.queries.len();
        debug!(%client, id = header_meta.id, count, "QDCOUNT != 1: FORMERR");
        let reply = Reply::error(&header_meta, None, edns, ResponseCode::FormErr);
        return reply_or_drop(reply.encode(proto, policy));
    };

    if !policy.acl.allows(client.ip()) {
        client_errors::note(ClientError::NotAllowed);
        debug!(%client, id = header_meta.id, "client not in the allow-list: REFUSED");
        let reply = Reply::error(&header_meta, Some(query), edns, ResponseCode::Refused);
        return reply_or_drop(reply.encode(proto, policy));
    }

    if let Some(opt) = edns {
        if opt.version() > EDNS_VERSION {
            debug!(%client, id = header_meta.id, version = opt.version(), "BADVERS");
            let reply = Reply::error(&header_meta, Some(query), edns, ResponseCode::BADVERS);
            return reply_or_drop(reply.encode(proto, policy));
        }
    }

    if UNSERVED_QTYPES.contains(&u16::from(query.query_type)) {
        debug!(%client, id = header_meta.id, qtype = %query.query_type, "meta-QTYPE: NOTIMP");
        let reply = Reply::error(&header_meta, Some(query), edns, ResponseCode::NotImp);
        return reply_or_drop(reply.encode(proto, policy));
    }

    let question = Question::from_query(query);
    trace!(%client, id = header_meta.id, %question, ?proto, "query");
    let mut message = message;
    let query = message.queries.swap_remove(0);
    Triage::Ask(Box::new(Request {
        header: header_meta,
        query,
        question,
        edns: message.edns,
        proto,
    }))
}

/// Builds the reply to an allowed query from the answerer's outcome.
pub fn respond(request: &Request, outcome: &Outcome, policy: &Policy) -> Option<Vec<u8>> {
    respond_validated(request, outcome, false, policy)
}

/// [`respond`] for an outcome the answerer says was validated `secure`: AD is set when the
/// client asked with AD or DO (RFC 6840 §5.7-5.8), never otherwise.
pub fn respond_validated(
    request: &Request,
    outcome: &Outcome,
    secure: bool,
    policy: &Policy,
) -> Option<Vec<u8>> {
    respond_signed(request, outcome, secure, &DnssecRecords::default(), policy)
}

/// [`respond_validated`] for what [`answer`] gave: to a DO client, with the outcome's
/// RRSIGs after each answer RRset and its proof in the authority section (RFC 4035
/// §3.2.1, §3.1.3); to any other client, none of them.
pub fn respond_answered(
    request: &Request,
    answered: &Answered,
    policy: &Policy,
) -> Option<Vec<u8>> {
    respond_signed(
        request,
        &answered.outcome,
        answered.secure,
        &answered.dnssec,
        policy,
    )
}

fn respond_signed(
    request: &Request,
    outcome: &Outcome,
    secure: bool,
    dnssec: &DnssecRecords,
    policy: &Policy,
) -> Option<Vec<u8>> {
    if matches!(outcome, Outcome::Drop) {
        debug!(id = request.id(), question = %request.question, "dropped by a rule; no reply");
        return None;
    }
    let rcode = match outcome {
        Outcome::ServFail(Failure::UnsupportedClass(_)) => ResponseCode::NotImp,
        other => other.rcode(),
    };
    if let Outcome::ServFail(failure) = outcome {
        debug!(id = request.id(), question = %request.question, %failure, %rcode, "no answer");
    }
    // Only a DO client gets DNSSEC records (RFC 4035 §3.2.1), whoever computed them.
    let signed = (request.dnssec_ok() && !dnssec.is_empty()).then(|| {
        (
            dnssec.answer_section(outcome.answers()),
            dnssec.authority_section(outcome.soa()),
        )
    });
    let soa: Vec<Record> = outcome.soa().cloned().into_iter().collect();
    let (answers, authority) = match &signed {
        Some((answers, authority)) => (answers.as_slice(), authority.as_slice()),
        None => (outcome.answers(), soa.as_slice()),
    };
    let reply = Reply {
        header: &request.header,
        query: Some(&request.query),
        client_edns: request.edns.as_ref(),
        rcode,
        answers,
        authority,
        ede: ede_of(outcome),
        ad: secure
            && !matches!(outcome, Outcome::ServFail(_))
            && (request.header.authentic_data
                || request.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok)),
    };
    reply.encode(request.proto, policy)
}

/// The UDP size limit for a reply to a query with this OPT (RFC 6891 §6.2.5).
pub fn udp_limit(client_edns: Option<&Edns>, policy: &Policy) -> usize {
    udp_limit_for(
        client_edns.map(|opt| opt.max_payload()),
        usize::from(policy.max_udp_payload),
    )
}

/// The rule behind [`udp_limit`], from the client's EDNS payload (if it sent an OPT) and
/// ours: 512 without EDNS, else the client's payload (at least 512) capped by ours.
pub fn udp_limit_for(client_payload: Option<u16>, ours: usize) -> usize {
    match client_payload {
        None => usize::from(MIN_UDP_PAYLOAD),
        Some(p) => usize::from(p.max(MIN_UDP_PAYLOAD)).min(ours),
    }
}

/// `message` (encoded in `len` bytes, with our OPT) re-encoded with a Padding option that
/// brings it to the next multiple of [`PADDING_BLOCK`] (RFC 8467 §4.1); `None` when it has
/// no OPT or the padded reply would pass 65535 bytes (then it goes unpadded, RFC 7830 §3).
fn pad(message: &mut Message, len: usize) -> Option<Vec<u8>> {
    // The option's own code and length take 4 bytes.
    let padding = (len + 4).next_multiple_of(PADDING_BLOCK) - (len + 4);
    if len + 4 + padding > usize::from(u16::MAX) {
        return None;
    }
    let opt = message.edns.as_mut()?;
    opt.options_mut()
        .insert(EdnsOption::Unknown(12, vec![0; padding]));
    message.to_vec().ok()
}

fn reply_or_drop(reply: Option<Vec<u8>>) -> Triage {
    match reply {
        Some(bytes) => Triage::Reply(bytes),
        None => Triage::Drop,
    }
}

/// Whether the message's OPT record holds options that do not parse as a sequence of
/// (code, length, data) filling its RDATA exactly (RFC 6891 §6.1.2). Anything else wrong
/// with the message is left to [`decode_strict`] (`false`).
fn malformed_edns_options(bytes: &[u8]) -> bool {
    let options_overrun = |rdata: std::ops::Range<usize>| -> Option<bool> {
        let mut opt = rdata.start;
        while opt < rdata.end {
            if opt + 4 > rdata.end {
                return Some(true);
            }
            opt += 4 + usize::from(u16_at(bytes, opt + 2)?);
        }
        Some(opt != rdata.end)
    };
    records(bytes)
        .filter(|r| r.rtype == 41)
        .any(|r| options_overrun(r.rdata).unwrap_or(false))
}

fn decode_strict(bytes: &[u8]) -> Result<Message, String> {
    let mut decoder = BinDecoder::new(bytes);
    let message = Message::read(&mut decoder).map_err(|e| e.to_string())?;
    if !decoder.is_empty() {
        return Err(format!("{} trailing bytes", decoder.len()));
    }
    Ok(message)
}

fn single_query(message: &Message) -> Option<&Query> {
    match message.queries.as_slice() {
        [query] => Some(query),
        _ => None,
    }
}

/// Sources that cannot have sent a real query (cf. hickory-server `sanitize_src_address`):
/// replying would only reflect traffic somewhere it was not asked for.
pub(crate) fn plausible_client(client: SocketAddr) -> bool {
    let ip = client.ip().to_canonical();
    let broadcast = matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    client.port() != 0 && !ip.is_unspecified() && !ip.is_multicast() && !broadcast
}

/// The parts of one reply, borrowed from the request and the outcome.
struct Reply<'a> {
    header: &'a Metadata,
    query: Option<&'a Query>,
    client_edns: Option<&'a Edns>,
    rcode: ResponseCode,
    answers: &'a [Record],
    /// The SOA of a negative answer and, for a DO client, the DNSSEC records after it.
    authority: &'a [Record],
    /// An Extended DNS Error for the client's OPT (RFC 8914): INFO-CODE and EXTRA-TEXT.
    ede: Option<(u16, String)>,
    /// Set AD (RFC 4035 §3.2.3): the data was validated secure and the client asked.
    ad: bool,
}

/// The EDNS option code of Extended DNS Errors (RFC 8914 §2).
pub const EDE_OPTION: u16 = 15;

/// The Extended DNS Error an outcome carries: a bogus answer's reason (RFC 8914 §4).
pub fn ede_of(outcome: &Outcome) -> Option<(u16, String)> {
    match outcome {
        Outcome::ServFail(Failure::Dnssec { ede, why }) => Some((*ede, why.clone())),
        _ => None,
    }
}

impl<'a> Reply<'a> {
    fn error(
        header: &'a Metadata,
        query: Option<&'a Query>,
        client_edns: Option<&'a Edns>,
        rcode: ResponseCode,
    ) -> Self {
        Self {
            header,
            query,
            client_edns,
            rcode,
            answers: &[],
            authority: &[],
            ede: None,
            ad: false,
        }
    }

    fn message(&self, policy: &Policy) -> Message {
        // response_from_request copies ID, OPCODE, RD and CD and clears AA, TC, RA, AD.
        let mut message = Message::response(self.header.id, self.header.op_code);
        message.metadata = Metadata::response_from_request(self.header);
        message.metadata.recursion_available = true;
        message.metadata.response_code = self.rcode;
        message.metadata.authentic_data = self.ad;
        if let Some(query) = self.query {
            message.add_query(query.clone());
        }
        message.add_answers(self.answers.iter().cloned());
        message.add_authorities(self.authority.iter().cloned());
        if let Some(client) = self.client_edns {
            let mut opt = Edns::new();
            // DO is copied from the query (RFC 3225 §3), as Unbound does.
            opt.set_max_payload(policy.max_udp_payload)
                .set_version(EDNS_VERSION)
                .set_dnssec_ok(client.flags().dnssec_ok);
            if let Some((code, text)) = &self.ede {
                // hickory-proto 0.26 has no EDE variant: its generic option carries it
                // (INFO-CODE, then EXTRA-TEXT as UTF-8, RFC 8914 §2).
                let mut data = code.to_be_bytes().to_vec();
                data.extend_from_slice(text.as_bytes());
                opt.options_mut()
                    .insert(EdnsOption::Unknown(EDE_OPTION, data));
            }
            message.set_edns(opt);
        }
        message
    }

    /// Encodes within the transport's limit: TC=1 with no records when UDP overflows,
    /// SERVFAIL when encoding fails, nothing when even that fails.
    fn encode(&self, proto: Proto, policy: &Policy) -> Option<Vec<u8>> {
        let limit = match proto {
            Proto::Udp => udp_limit(self.client_edns, policy),
            Proto::Tcp | Proto::Tls | Proto::Https => usize::from(u16::MAX),
        };
        let mut message = self.message(policy);
        let mut encoded = message.to_vec();
        if proto.encrypted() && self.client_asked_padding() {
            if let Ok(unpadded) = &encoded {
                if let Some(padded) = pad(&mut message, unpadded.len()) {
                    encoded = Ok(padded);
                }
            }
        }
        // Past 65535 bytes hickory's encoder silently drops the records that do not fit and
        // sets TC; our own messages never set TC, so TC here means "did not fit".
        let fits = |bytes: &Vec<u8>| bytes.len() <= limit && !tc_bit(bytes);
        match encoded {
            Ok(bytes) if fits(&bytes) => Some(bytes),
            Ok(bytes) if proto == Proto::Udp => {
                trace!(
                    id = self.header.id,
                    len = bytes.len(),
                    limit,
                    "truncating (TC=1)"
                );
                // Header, question and OPT only: at most 12 + 4 + 255 + 11 bytes, below 512.
                message.truncate().to_vec().ok()
            }
            Ok(_) => {
                debug!(id = self.header.id, "reply over 65535 bytes: SERVFAIL");
                self.servfail(policy)
            }
            Err(error) => {
                debug!(id = self.header.id, %error, "cannot encode reply: SERVFAIL");
                self.servfail(policy)
            }
        }
    }

    /// RFC 7830 §3: a responder pads only replies to queries that carried the option (as
    /// Unbound does over TLS); RFC 8467 §4: and only over an encrypted transport.
    fn client_asked_padding(&self) -> bool {
        self.client_edns
            .is_some_and(|e| e.options().get(EdnsCode::Padding).is_some())
    }

    fn servfail(&self, policy: &Policy) -> Option<Vec<u8>> {
        Reply::error(
            self.header,
            self.query,
            self.client_edns,
            ResponseCode::ServFail,
        )
        .message(policy)
        .to_vec()
        .ok()
    }
}

/// The TC bit of an encoded message (RFC 1035 §4.1.1: byte 2, bit 0x02).
fn tc_bit(bytes: &[u8]) -> bool {
    bytes.get(2).is_some_and(|flags| flags & 0x02 != 0)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use async_trait::async_trait;
    use hickory_proto::rr::rdata::{A, SOA};
    use hickory_proto::rr::{DNSClass, Name, RData, RecordType};

    use super::*;

    const LOCAL: &str = "127.0.0.1:5353";

    fn local() -> SocketAddr {
        LOCAL.parse().expect("addr")
    }

    fn name(s: &str) -> Name {
        Name::from_ascii(s).expect("name")
    }

    fn query_msg(qname: &str, qtype: RecordType) -> Message {
        let mut msg = Message::query();
        msg.metadata.id = 0x1234;
        msg.metadata.recursion_desired = true;
        msg.add_query(Query::query(name(qname), qtype));
        msg
    }

    fn with_edns(mut msg: Message, payload: u16) -> Message {
        let mut opt = Edns::new();
        opt.set_max_payload(payload);
        msg.set_edns(opt);
        msg
    }

    fn bytes(msg: &Message) -> Vec<u8> {
        msg.to_vec().expect("encode")
    }

    fn decode(reply: &[u8]) -> Message {
        Message::from_vec(reply).expect("reply decodes")
    }

    fn a_records(owner: &str, count: u8) -> Vec<Record> {
        (0..count)
            .map(|i| Record::from_rdata(name(owner), 300, RData::A(A(Ipv4Addr::new(192, 0, 2, i)))))
            .collect()
    }

    fn soa() -> Record {
        let data = SOA::new(
            name("example.com."),
            name("hostmaster.example.com."),
            1,
            3600,
            600,
            86400,
            300,
        );
        Record::from_rdata(name("example.com."), 300, RData::SOA(data))
    }

    /// Triage then, for an allowed query, the given outcome.
    fn run(
        wire: &[u8],
        client: SocketAddr,
        proto: Proto,
        policy: &Policy,
        outcome: Outcome,
    ) -> Option<Vec<u8>> {
        match triage(wire, client, proto, policy) {
            Triage::Drop => None,
            Triage::Reply(reply) => Some(reply),
            Triage::Ask(request) => respond(&request, &outcome, policy),
        }
    }

    fn answer(records: Vec<Record>) -> Outcome {
        Outcome::Answer { answers: records }
    }

    /// Issue 11.4: options that do not fill the OPT RDATA exactly get FORMERR before
    /// hickory-proto (which would log a WARN line for each) decodes them, and are counted.
    #[test]
    fn malformed_edns_options_get_formerr_and_are_counted() {
        let base = bytes(&with_edns(query_msg("example.com.", RecordType::A), 1232));
        let with_options = |rdata: &[u8]| {
            let mut b = base.clone();
            let rdlen = b.len() - 2;
            b[rdlen..].copy_from_slice(&(rdata.len() as u16).to_be_bytes());
            b.extend_from_slice(rdata);
            b
        };
        let cookie = [0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8];
        let policy = Policy::default();
        assert!(matches!(
            triage(&with_options(&cookie), local(), Proto::Udp, &policy),
            Triage::Ask(_)
        ));
        let counted = crate::metrics::metrics().client_errors(ClientError::MalformedEdns);
        for bad in [&cookie[..3], &cookie[..6], &[0, 10, 0, 0, 0][..]] {
            let wire = with_options(bad);
            assert!(malformed_edns_options(&wire), "{bad:?}");
            let Triage::Reply(reply) = triage(&wire, local(), Proto::Udp, &policy) else {
                panic!("{bad:?}: no reply");
            };
            let reply = Message::from_vec(&reply).unwrap();
            assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
            assert_eq!(reply.metadata.id, 0x1234);
            assert_eq!(reply.queries.len(), 1, "the question is echoed");
        }
        let now = crate::metrics::metrics().client_errors(ClientError::MalformedEdns);
        assert!(now >= counted + 3, "counted: {counted} -> {now}");
        for n in 0..base.len() {
            let _ = malformed_edns_options(&base[..n]);
        }
    }

    fn udp(msg: &Message, outcome: Outcome) -> Message {
        let reply = run(
            &bytes(msg),
            local(),
            Proto::Udp,
            &Policy::default(),
            outcome,
        );
        decode(&reply.expect("a reply"))
    }

    #[test]
    fn garbage_after_valid_header_is_formerr_with_request_id() {
        let mut wire = bytes(&query_msg("example.com.", RecordType::A))[..12].to_vec();
        wire.extend_from_slice(&[0xff, 0xfe, 0x01, 0x02, 0x03]);
        let reply = decode(
            &run(
                &wire,
                local(),
                Proto::Udp,
                &Policy::default(),
                answer(vec![]),
            )
            .expect("reply"),
        );
        assert_eq!(reply.metadata.id, 0x1234);
        assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
        assert_eq!(reply.metadata.message_type, MessageType::Response);
        assert!(reply.queries.is_empty());
    }

    #[test]
    fn formerr_echoes_the_question_when_it_decodes() {
        let msg = query_msg("Example.com.", RecordType::A);
        let mut wire = bytes(&msg);
        wire[11] = 1; // ARCOUNT = 1, but no record follows
        let reply = decode(
            &run(
                &wire,
                local(),
                Proto::Udp,
                &Policy::default(),
                answer(vec![]),
            )
            .expect("reply"),
        );
        assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
        assert_eq!(reply.metadata.id, 0x1234);
        assert_eq!(reply.queries.len(), 1);
        assert!(reply.queries[0].name.eq_case(&name("Example.com.")));
    }

    #[test]
    fn trailing_bytes_are_formerr() {
        let mut wire = bytes(&query_msg("example.com.", RecordType::A));
        wire.push(0);
        let reply = decode(
            &run(
                &wire,
                local(),
                Proto::Udp,
                &Policy::default(),
                answer(vec![]),
            )
            .expect("reply"),
        );
        assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
    }

    #[test]
    fn other_opcodes_are_notimp() {
        for op in [OpCode::Status, OpCode::Notify, OpCode::Update] {
            let mut msg = query_msg("example.com.", RecordType::SOA);
            msg.metadata.op_code = op;
            let reply = udp(&msg, answer(vec![]));
            assert_eq!(reply.metadata.response_code, ResponseCode::NotImp, "{op}");
            assert_eq!(
                reply.metadata.op_code, op,
                "opcode is copied (RFC 1035 §4.1.1)"
            );
            assert_eq!(reply.metadata.id, 0x1234);
        }
    }

    #[test]
    fn qdcount_other_than_one_is_formerr() {
        let mut none = query_msg("example.com.", RecordType::A);
        none.queries.clear();
        assert_eq!(
            udp(&none, answer(vec![])).metadata.response_code,
            ResponseCode::FormErr
        );

        let mut two = query_msg("example.com.", RecordType::A);
        two.add_query(Query::query(name("example.net."), RecordType::A));
        let reply = udp(&two, answer(vec![]));
        assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
        assert!(reply.queries.is_empty());
    }

    #[test]
    fn client_outside_allow_list_is_refused() {
        let msg = query_msg("example.com.", RecordType::A);
        let outsider: SocketAddr = "192.0.2.7:4000".parse().expect("addr");
        let reply = run(
            &bytes(&msg),
            outsider,
            Proto::Udp,
            &Policy::default(),
            answer(a_records("example.com.", 1)),
        );
        let reply = decode(&reply.expect("reply"));
        assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
        assert!(reply.answers.is_empty());
        assert_eq!(reply.queries.len(), 1);
    }

    #[test]
    fn loopback_and_allowed_networks_are_answered() {
        let msg = query_msg("example.com.", RecordType::A);
        let policy = Policy::new(Acl::new(vec!["192.0.2.0/24".parse().expect("net")]), 1232);
        for client in ["127.0.0.1:4000", "[::1]:4000", "192.0.2.7:4000"] {
            let client: SocketAddr = client.parse().expect("addr");
            let reply = run(
                &bytes(&msg),
                client,
                Proto::Udp,
                &policy,
                answer(a_records("example.com.", 1)),
            );
            let reply = decode(&reply.expect("reply"));
            assert_eq!(
                reply.metadata.response_code,
                ResponseCode::NoError,
                "{client}"
            );
            assert_eq!(reply.answers.len(), 1);
        }
    }

    #[test]
    fn responses_short_messages_and_port_zero_are_dropped() {
        let mut response = query_msg("example.com.", RecordType::A);
        response.metadata.message_type = MessageType::Response;
        let policy = Policy::default();
        assert!(run(
            &bytes(&response),
            local(),
            Proto::Udp,
            &policy,
            answer(vec![])
        )
        .is_none());

        let wire = bytes(&query_msg("example.com.", RecordType::A));
        for len in [0, 1, 11] {
            assert!(run(&wire[..len], local(), Proto::Udp, &policy, answer(vec![])).is_none());
        }
        for bad in [
            "127.0.0.1:0",
            "0.0.0.0:53",
            "255.255.255.255:53",
            "224.0.0.1:53",
        ] {
            let client: SocketAddr = bad.parse().expect("addr");
            assert!(
                run(&wire, client, Proto::Udp, &policy, answer(vec![])).is_none(),
                "{bad}"
            );
        }
    }

    #[test]
    fn flags_rd_cd_copied_ra_set_aa_never() {
        for (rd, cd) in [(true, false), (false, true), (true, true), (false, false)] {
            let mut msg = query_msg("example.com.", RecordType::A);
            msg.metadata.recursion_desired = rd;
            msg.metadata.checking_disabled = cd;
            msg.metadata.authoritative = true; // must not leak into the reply
            msg.metadata.authentic_data = true;
            let reply = udp(&msg, answer(a_records("example.com.", 1)));
            assert_eq!(reply.metadata.recursion_desired, rd);
            assert_eq!(reply.metadata.checking_disabled, cd);
            assert!(reply.metadata.recursion_available);
            assert!(!reply.metadata.authoritative);
            assert!(!reply.metadata.authentic_data);
            assert!(!reply.metadata.truncation);
            assert_eq!(reply.metadata.op_code, OpCode::Query);
            assert_eq!(reply.metadata.id, 0x1234);
        }
    }

    #[test]
    fn question_case_is_preserved() {
        let msg = query_msg("WwW.ExAmPlE.cOm.", RecordType::AAAA);
        let reply = udp(&msg, answer(vec![]));
        assert_eq!(reply.queries.len(), 1);
        assert!(reply.queries[0].name.eq_case(&name("WwW.ExAmPlE.cOm.")));
        assert_eq!(reply.queries[0].query_type, RecordType::AAAA);
        assert_eq!(reply.queries[0].query_class, DNSClass::IN);
    }

    #[test]
    fn the_answerer_sees_a_normalised_question() {
        let msg = query_msg("WwW.ExAmPlE.cOm.", RecordType::A);
        let Triage::Ask(request) = triage(&bytes(&msg), local(), Proto::Udp, &Policy::default())
        else {
            panic!("expected Ask");
        };
        assert!(request.question().name.eq_case(&name("www.example.com.")));
        assert_eq!(request.question().qtype, RecordType::A);
    }

    #[test]
    fn opt_only_when_the_query_had_edns() {
        let plain = udp(&query_msg("example.com.", RecordType::A), answer(vec![]));
        assert!(plain.edns.is_none());

        let mut msg = with_edns(query_msg("example.com.", RecordType::A), 4096);
        if let Some(opt) = msg.edns.as_mut() {
            opt.set_dnssec_ok(true);
        }
        let reply = udp(&msg, answer(vec![]));
        let opt = reply.edns.expect("OPT in reply");
        assert_eq!(opt.max_payload(), 1232);
        assert!(
            opt.flags().dnssec_ok,
            "DO copied from the query (RFC 3225 §3)"
        );
        assert_eq!(opt.version(), 0);
        assert!(reply.additionals.is_empty());

        // Error replies follow the same rule.
        let outsider: SocketAddr = "192.0.2.7:4000".parse().expect("addr");
        let refused = run(
            &bytes(&msg),
            outsider,
            Proto::Udp,
            &Policy::default(),
            answer(vec![]),
        );
        assert!(decode(&refused.expect("reply")).edns.is_some());
    }

    #[test]
    fn edns_version_above_zero_is_badvers() {
        let mut msg = with_edns(query_msg("example.com.", RecordType::A), 1232);
        if let Some(opt) = msg.edns.as_mut() {
            opt.set_version(1);
        }
        let reply = udp(&msg, answer(a_records("example.com.", 1)));
        // 16 on the wire; hickory decodes the shared code 16 as BADSIG (RFC 6895 §2.3).
        assert_eq!(u16::from(reply.metadata.response_code), 16);
        assert_eq!(u16::from(ResponseCode::BADVERS), 16);
        assert_eq!(reply.edns.expect("OPT").version(), 0);
        assert!(reply.answers.is_empty());
    }

    #[test]
    fn transfer_and_mailbox_qtypes_are_notimp() {
        for qtype in [
            RecordType::AXFR,
            RecordType::IXFR,
            RecordType::Unknown(253),
            RecordType::Unknown(254),
        ] {
            let reply = udp(&query_msg("example.com.", qtype), answer(vec![]));
            assert_eq!(
                reply.metadata.response_code,
                ResponseCode::NotImp,
                "{qtype}"
            );
        }
        let any = udp(
            &query_msg("example.com.", RecordType::ANY),
            answer(a_records("example.com.", 1)),
        );
        assert_eq!(any.metadata.response_code, ResponseCode::NoError);
    }

    #[test]
    fn unsupported_class_is_notimp_other_failures_servfail() {
        let msg = query_msg("example.com.", RecordType::A);
        let reply = udp(
            &msg,
            Outcome::ServFail(Failure::UnsupportedClass(DNSClass::CH)),
        );
        assert_eq!(reply.metadata.response_code, ResponseCode::NotImp);
        let reply = udp(&msg, Outcome::ServFail(Failure::Deadline));
        assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
        assert!(reply.answers.is_empty() && reply.authorities.is_empty());
    }

    #[test]
    fn a_drop_outcome_sends_nothing_over_udp_or_tcp() {
        let wire = bytes(&query_msg("example.com.", RecordType::A));
        for proto in [Proto::Udp, Proto::Tcp] {
            let reply = run(&wire, local(), proto, &Policy::default(), Outcome::Drop);
            assert!(reply.is_none(), "{proto:?}");
        }
    }

    #[test]
    fn udp_without_edns_truncates_at_512() {
        let msg = query_msg("example.com.", RecordType::A);
        let small = udp(&msg, answer(a_records("example.com.", 10)));
        assert!(!small.metadata.truncation);
        assert_eq!(small.answers.len(), 10);

        let wire = run(
            &bytes(&msg),
            local(),
            Proto::Udp,
            &Policy::default(),
            answer(a_records("example.com.", 40)),
        )
        .expect("reply");
        assert!(wire.len() <= 512);
        let big = decode(&wire);
        assert!(big.metadata.truncation);
        assert!(big.answers.is_empty() && big.authorities.is_empty());
        assert_eq!(big.queries.len(), 1);
        assert_eq!(big.metadata.id, 0x1234);
    }

    #[test]
    fn udp_with_edns_truncates_at_the_clients_payload_capped_by_ours() {
        // 40 records need about 700 bytes: fit in 1232, not in 600.
        let roomy = udp(
            &with_edns(query_msg("example.com.", RecordType::A), 1232),
            answer(a_records("example.com.", 40)),
        );
        assert!(!roomy.metadata.truncation);
        assert_eq!(roomy.answers.len(), 40);

        let msg = with_edns(query_msg("example.com.", RecordType::A), 600);
        let wire = run(
            &bytes(&msg),
            local(),
            Proto::Udp,
            &Policy::default(),
            answer(a_records("example.com.", 40)),
        )
        .expect("reply");
        assert!(wire.len() <= 600);
        let tight = decode(&wire);
        assert!(tight.metadata.truncation);
        assert!(tight.answers.is_empty());
        assert!(tight.edns.is_some(), "OPT survives truncation");

        // The client offers 4096, we cap at 1232: 100 records (~1650 bytes) truncate.
        let msg = with_edns(query_msg("example.com.", RecordType::A), 4096);
        let capped = udp(&msg, answer(a_records("example.com.", 100)));
        assert!(capped.metadata.truncation);

        // A payload below 512 counts as 512.
        let mut tiny = Edns::new();
        tiny.set_max_payload(100);
        assert_eq!(udp_limit(Some(&tiny), &Policy::default()), 512);
    }

    #[test]
    fn tcp_is_never_truncated() {
        let msg = query_msg("example.com.", RecordType::A);
        let wire = run(
            &bytes(&msg),
            local(),
            Proto::Tcp,
            &Policy::default(),
            answer(a_records("example.com.", 200)),
        )
        .expect("reply");
        let reply = decode(&wire);
        assert!(!reply.metadata.truncation);
        assert_eq!(reply.answers.len(), 200);
    }

    #[test]
    fn over_65535_bytes_is_servfail_on_tcp_and_truncated_on_udp() {
        let msg = query_msg("example.com.", RecordType::A);
        let huge = || answer(a_records_many("example.com.", 5000));
        let tcp = run(
            &bytes(&msg),
            local(),
            Proto::Tcp,
            &Policy::default(),
            huge(),
        )
        .expect("reply");
        let tcp = decode(&tcp);
        assert_eq!(tcp.metadata.response_code, ResponseCode::ServFail);
        assert!(!tcp.metadata.truncation);
        assert!(tcp.answers.is_empty());

        let udp = run(
            &bytes(&msg),
            local(),
            Proto::Udp,
            &Policy::default(),
            huge(),
        )
        .expect("reply");
        let udp = decode(&udp);
        assert!(udp.metadata.truncation);
        assert!(udp.answers.is_empty());
    }

    fn a_records_many(owner: &str, count: u16) -> Vec<Record> {
        (0..count)
            .map(|i| {
                let [hi, lo] = i.to_be_bytes();
                Record::from_rdata(name(owner), 300, RData::A(A(Ipv4Addr::new(10, 0, hi, lo))))
            })
            .collect()
    }

    #[test]
    fn soa_in_authority_for_negative_outcomes_only() {
        let msg = query_msg("nope.example.com.", RecordType::A);
        let nx = udp(
            &msg,
            Outcome::NxDomain {
                answers: vec![],
                soa: Some(soa()),
            },
        );
        assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(nx.authorities.len(), 1);
        assert_eq!(nx.authorities[0].record_type(), RecordType::SOA);
        assert!(nx.answers.is_empty());

        let nodata = udp(
            &msg,
            Outcome::NoData {
                answers: vec![],
                soa: Some(soa()),
            },
        );
        assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
        assert_eq!(nodata.authorities.len(), 1);
        assert!(nodata.answers.is_empty());

        let positive = udp(&msg, answer(a_records("nope.example.com.", 2)));
        assert!(positive.authorities.is_empty());
        assert!(positive.additionals.is_empty());
    }

    struct Fixed(Outcome);

    #[async_trait]
    impl Answerer for Fixed {
        async fn answer(&self, _question: &Question, _client: SocketAddr) -> Outcome {
            self.0.clone()
        }
    }

    #[tokio::test]
    async fn handle_asks_the_answerer() {
        let answerer = Fixed(answer(a_records("example.com.", 3)));
        let msg = query_msg("example.com.", RecordType::A);
        let reply = handle(
            &bytes(&msg),
            local(),
            Proto::Udp,
            &Policy::default(),
            &answerer,
        )
        .await;
        assert_eq!(decode(&reply.expect("reply")).answers.len(), 3);
    }

    /// Cheap fuzzing: every single-byte corruption and every truncation of a query with EDNS
    /// must neither panic nor produce an undecodable reply.
    #[test]
    fn mutated_queries_never_panic() {
        let wire = bytes(&with_edns(
            query_msg("www.example.com.", RecordType::A),
            1232,
        ));
        let policy = Policy::default();
        for len in 0..wire.len() {
            if let Some(reply) = run(&wire[..len], local(), Proto::Udp, &policy, answer(vec![])) {
                decode(&reply);
            }
        }
        for i in 0..wire.len() {
            for value in [0x00, 0x01, 0x3f, 0x40, 0x7f, 0x80, 0xc0, 0xff] {
                let mut bad = wire.clone();
                bad[i] = value;
                if let Some(reply) = run(
                    &bad,
                    local(),
                    Proto::Udp,
                    &policy,
                    answer(a_records("www.example.com.", 2)),
                ) {
                    decode(&reply);
                }
            }
        }
    }
}
