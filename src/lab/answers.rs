//! What one lab server answers, as a `Message` (faults and transport come later, in `sockets`).
//!
//! In-zone answers come from hickory-server's `Catalog` (AA answers, CNAME, wildcards,
//! NXDOMAIN/NODATA with SOA; with DO, the RRSIGs and the NSEC/NSEC3 proofs of signed zones).
//! Referrals are built here from the cut table, because the 0.26.3 catalog answers them with
//! AA=1 and no glue (LAB-NOTES gotcha 1); with DO, a signed parent's referral also carries the
//! DS RRset and its RRSIG, or the NSEC/NSEC3 records proving there is no DS (RFC 4035 §3.1.4).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Edns, Message, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::{LowerName, Name, Record, RecordType};
use hickory_proto::serialize::binary::BinEncoder;
use hickory_server::net::runtime::{TokioRuntimeProvider, TokioTime};
use hickory_server::net::xfer::Protocol;
use hickory_server::net::NetError;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, MessageResponse, ZoneHandler, ZoneType};

use super::sign::ZoneRecords;
use super::zones::{ns_targets, Cut, LoadedZone};
use super::LabError;

/// The largest UDP reply a lab server sends (like a modern authoritative server).
pub(crate) const MAX_UDP_PAYLOAD: u16 = 1232;

struct ZoneInfo {
    origin: Name,
    cuts: Vec<Cut>,
}

/// Apex NS sets by zone origin (for `Fault::SelfReferral`).
type ApexNs = HashMap<Name, Vec<Record>>;

/// The answering logic of one lab server (one or more zones).
pub(crate) struct Engine {
    zones: Vec<ZoneInfo>,
    addresses: HashMap<Name, Vec<Record>>,
    apex_ns: ApexNs,
    catalog: Catalog,
    /// The zone handlers by origin, so a zone's records can be swapped at runtime
    /// (the KSK rollover).
    handlers: HashMap<Name, Arc<InMemoryZoneHandler<TokioRuntimeProvider>>>,
}

impl Engine {
    pub(crate) fn new(zones: Vec<LoadedZone>) -> Result<Self, LabError> {
        let mut catalog = Catalog::new();
        let mut infos = Vec::new();
        let mut addresses: HashMap<Name, Vec<Record>> = HashMap::new();
        let mut apex_ns = ApexNs::new();
        let mut handlers = HashMap::new();
        for z in zones {
            let ns_key = hickory_proto::rr::RrKey::new(z.origin.clone().into(), RecordType::NS);
            if let Some(rrset) = z.records.get(&ns_key) {
                apex_ns.insert(
                    z.origin.clone(),
                    rrset.records_without_rrsigs().cloned().collect(),
                );
            }
            for (name, recs) in z.addresses {
                addresses.entry(name).or_default().extend(recs);
            }
            // Records go in as they are (signed or not): `new` would drop the RRSIGs.
            let mut handler = InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
                z.origin.clone(),
                ZoneType::Primary,
                AxfrPolicy::Deny,
                z.nx,
            );
            *handler.records_get_mut() = z.records;
            let handler = Arc::new(handler);
            handlers.insert(z.origin.clone(), handler.clone());
            let handler: Arc<dyn ZoneHandler> = handler;
            catalog.upsert(LowerName::from(&z.origin), vec![handler]);
            infos.push(ZoneInfo {
                origin: z.origin,
                cuts: z.cuts,
            });
        }
        Ok(Self {
            zones: infos,
            addresses,
            apex_ns,
            catalog,
            handlers,
        })
    }

    /// Replaces the records of the zone `origin` if this server serves it.
    pub(crate) async fn replace_records(&self, origin: &Name, records: &ZoneRecords) {
        if let Some(handler) = self.handlers.get(origin) {
            *handler.records_mut().await = records.clone();
        }
    }

    /// Answers one decoded query. `raw` is the same query as bytes (hickory's catalog
    /// wants its own `Request`). Returns the full, unlimited reply; `finish` sizes it.
    pub(crate) async fn answer(
        &self,
        raw: &[u8],
        query: &Message,
        src: SocketAddr,
        tcp: bool,
    ) -> Message {
        if query.metadata.op_code != OpCode::Query {
            return error_reply(query, ResponseCode::NotImp);
        }
        let [q] = query.queries.as_slice() else {
            return error_reply(query, ResponseCode::FormErr);
        };
        if query.edns.as_ref().is_some_and(|e| e.version() > 0) {
            return error_reply(query, ResponseCode::BADVERS);
        }
        let qname = &q.name;

        // Deepest zone on this server that holds the name; a referral if the name is at or
        // below one of its cuts (except DS at the cut itself, which the parent answers).
        let zone = self
            .zones
            .iter()
            .filter(|z| z.origin.zone_of(qname))
            .max_by_key(|z| z.origin.iter().len());
        if let Some(zone) = zone {
            let cut = zone
                .cuts
                .iter()
                .filter(|c| c.name.zone_of(qname))
                .filter(|c| !(q.query_type == RecordType::DS && c.name == *qname))
                .min_by_key(|c| c.name.iter().len());
            if let Some(cut) = cut {
                let mut reply = Message::new(0, MessageType::Response, OpCode::Query);
                reply.metadata = Metadata::response_from_request(&query.metadata);
                reply.add_query(q.clone());
                reply.add_authorities(cut.ns.iter().cloned());
                if dnssec_ok(query) {
                    let proof = self.ds_or_proof(&cut.name, src, tcp).await;
                    reply.add_authorities(proof);
                }
                reply.add_additionals(self.glue(&cut.ns));
                return with_edns(reply, query);
            }
        }

        let Some(mut reply) = self.ask_catalog(raw.to_vec(), src, tcp).await else {
            return error_reply(query, ResponseCode::ServFail);
        };
        // The catalog fills ADDITIONAL of NS answers oddly (with the NS set when a target
        // sits below a cut); give them proper glue instead.
        if reply
            .answers
            .iter()
            .any(|r| r.record_type() == RecordType::NS)
        {
            let glue = self.glue(&reply.answers);
            reply.additionals = glue;
        }
        with_edns(reply, query)
    }

    /// The catalog's reply to one query given as bytes (`None` if it gave none).
    async fn ask_catalog(&self, raw: Vec<u8>, src: SocketAddr, tcp: bool) -> Option<Message> {
        let protocol = if tcp { Protocol::Tcp } else { Protocol::Udp };
        let request = Request::from_bytes(raw, src, protocol).ok()?;
        let capture = Capture::default();
        self.catalog
            .handle_request::<_, TokioTime>(&request, capture.clone())
            .await;
        let bytes = capture.0.lock().map(|mut b| b.take()).unwrap_or_default();
        bytes.and_then(|b| Message::from_vec(&b).ok())
    }

    /// What a DNSSEC-aware parent adds to a referral to `cut` (RFC 4035 §3.1.4): the DS RRset
    /// with its RRSIGs, else the signed NSEC/NSEC3 records proving there is none (the zone's
    /// own answer to `cut DS` with DO, without its SOA). Nothing for an unsigned parent.
    async fn ds_or_proof(&self, cut: &Name, src: SocketAddr, tcp: bool) -> Vec<Record> {
        let mut ds = Message::query();
        ds.add_query(hickory_proto::op::Query::query(cut.clone(), RecordType::DS));
        let mut edns = Edns::new();
        edns.set_max_payload(MAX_UDP_PAYLOAD);
        edns.set_dnssec_ok(true);
        ds.set_edns(edns);
        let Ok(raw) = ds.to_vec() else {
            return Vec::new();
        };
        let Some(reply) = self.ask_catalog(raw, src, tcp).await else {
            return Vec::new();
        };
        let signed = |r: &Record| {
            matches!(
                r.record_type(),
                RecordType::DS | RecordType::NSEC | RecordType::NSEC3
            ) || covers(r, RecordType::DS)
                || covers(r, RecordType::NSEC)
                || covers(r, RecordType::NSEC3)
        };
        if reply
            .answers
            .iter()
            .any(|r| r.record_type() == RecordType::DS)
        {
            return reply.answers.into_iter().filter(signed).collect();
        }
        reply.authorities.into_iter().filter(signed).collect()
    }

    /// `Fault::UpwardReferral`: "ask the root", with the lab's root server as glue.
    pub(crate) fn upward_referral(&self, query: &Message, net: u8) -> Message {
        use hickory_proto::rr::rdata::{A, NS};
        use hickory_proto::rr::RData;
        let mut reply = error_reply(query, ResponseCode::NoError);
        let root_ns = Name::from_ascii("a.root-servers.net.").expect("a literal name");
        reply.add_authority(Record::from_rdata(
            Name::root(),
            300,
            RData::NS(NS(root_ns.clone())),
        ));
        reply.add_additional(Record::from_rdata(
            root_ns,
            300,
            RData::A(A::new(127, 53, net, 1)),
        ));
        reply
    }

    /// `Fault::SelfReferral`: a referral to the zone this server serves for the name (its
    /// apex NS set and glue), AA clear.
    pub(crate) fn self_referral(&self, query: &Message) -> Message {
        let mut reply = error_reply(query, ResponseCode::NoError);
        let Some(q) = query.queries.first() else {
            return reply;
        };
        let zone = self
            .zones
            .iter()
            .filter(|z| z.origin.zone_of(&q.name))
            .max_by_key(|z| z.origin.iter().len());
        if let Some(zone) = zone {
            let ns: Vec<Record> = self.apex_ns.get(&zone.origin).cloned().unwrap_or_default();
            reply.add_additionals(self.glue(&ns));
            reply.add_authorities(ns);
        }
        reply
    }

    /// A/AAAA records this server knows for the NS targets among `ns`.
    fn glue(&self, ns: &[Record]) -> Vec<Record> {
        let mut out = Vec::new();
        for target in ns_targets(ns) {
            if let Some(recs) = self.addresses.get(target) {
                out.extend(recs.iter().cloned());
            }
        }
        out
    }
}

/// A reply with `rcode`, the question echoed, no records, and OPT if the query had one.
pub(crate) fn error_reply(query: &Message, rcode: ResponseCode) -> Message {
    let mut reply = Message::new(0, MessageType::Response, OpCode::Query);
    reply.metadata = Metadata::response_from_request(&query.metadata);
    reply.metadata.response_code = rcode;
    reply.add_queries(query.queries.iter().cloned());
    with_edns(reply, query)
}

/// Sets the reply's OPT: present iff the query had one, advertising our 1232-byte limit, with
/// the query's DO bit copied (RFC 3225 §3).
pub(crate) fn with_edns(mut reply: Message, query: &Message) -> Message {
    reply.edns = query.edns.as_ref().map(|q| {
        let mut edns = Edns::new();
        edns.set_max_payload(MAX_UDP_PAYLOAD);
        edns.set_dnssec_ok(q.flags().dnssec_ok);
        edns
    });
    reply
}

/// Did the query set DO (RFC 3225)?
fn dnssec_ok(query: &Message) -> bool {
    query.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok)
}

/// Is `r` an RRSIG covering `rtype`?
fn covers(r: &Record, rtype: RecordType) -> bool {
    use hickory_proto::dnssec::rdata::DNSSECRData;
    use hickory_proto::rr::RData;
    matches!(&r.data, RData::DNSSEC(DNSSECRData::RRSIG(sig)) if sig.input().type_covered == rtype)
}

/// The size limit for a UDP reply: 512 without EDNS, else min(client payload, 1232).
pub(crate) fn udp_limit(query: &Message) -> usize {
    match &query.edns {
        Some(edns) => edns.max_payload().clamp(512, MAX_UDP_PAYLOAD) as usize,
        None => 512,
    }
}

/// Encodes a reply; if it is over `limit`, sends header, question and OPT with TC=1 instead.
pub(crate) fn encode(reply: &Message, limit: usize) -> Option<Vec<u8>> {
    let bytes = reply.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    reply.truncate().to_vec().ok()
}

/// A `ResponseHandler` that keeps the catalog's reply as (unlimited) bytes.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Option<Vec<u8>>>>);

#[async_trait::async_trait]
impl ResponseHandler for Capture {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let mut buf = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut buf);
        let info = response.destructive_emit(&mut encoder)?;
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(buf);
        }
        Ok(info)
    }
}
