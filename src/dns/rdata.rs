//! RDATA that hickory-proto does not model.

use hickory_proto::rr::{Name, RData, Record, RecordType};

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

/// The target name of an NS record.
pub fn ns_target(r: &Record) -> Option<&Name> {
    match &r.data {
        RData::NS(ns) => Some(&ns.0),
        _ => None,
    }
}
