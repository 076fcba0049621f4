//! What one lab server answers, as a `Message` (faults and transport come later, in `sockets`).
//!
//! In-zone answers come from hickory-server's `Catalog` (AA answers, CNAME, wildcards,
//! NXDOMAIN/NODATA with SOA). Referrals are built here from the cut table, because the 0.26.3
//! catalog answers them with AA=1 and no glue (LAB-NOTES gotcha 1).

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
}

impl Engine {
    pub(crate) fn new(zones: Vec<(&'static str, LoadedZone)>) -> Result<Self, LabError> {
        let mut catalog = Catalog::new();
        let mut infos = Vec::new();
        let mut addresses: HashMap<Name, Vec<Record>> = HashMap::new();
        let mut apex_ns = ApexNs::new();
        for (file, z) in zones {
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
            let handler = InMemoryZoneHandler::<TokioRuntimeProvider>::new(
                z.origin.clone(),
                z.records,
                ZoneType::Primary,
                AxfrPolicy::Deny,
            )
            .map_err(|message| LabError::Zone { file, message })?;
            let handler: Arc<dyn ZoneHandler> = Arc::new(handler);
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
        })
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
                reply.add_additionals(self.glue(&cut.ns));
                return with_edns(reply, query);
            }
        }

        let protocol = if tcp { Protocol::Tcp } else { Protocol::Udp };
        let Ok(request) = Request::from_bytes(raw.to_vec(), src, protocol) else {
            return error_reply(query, ResponseCode::FormErr);
        };
        let capture = Capture::default();
        self.catalog
            .handle_request::<_, TokioTime>(&request, capture.clone())
            .await;
        let bytes = capture.0.lock().map(|mut b| b.take()).unwrap_or_default();
        let Some(mut reply) = bytes.and_then(|b| Message::from_vec(&b).ok()) else {
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

/// Sets the reply's OPT: present iff the query had one, advertising our 1232-byte limit.
pub(crate) fn with_edns(mut reply: Message, query: &Message) -> Message {
    reply.edns = query.edns.as_ref().map(|_| {
        let mut edns = Edns::new();
        edns.set_max_payload(MAX_UDP_PAYLOAD);
        edns
    });
    reply
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
