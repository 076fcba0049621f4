//! The lab's static tables: embedded zone files, which server serves what, default faults,
//! and the zone loader (relocation to network N, parsing, cut and glue tables).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use hickory_proto::rr::{Name, Record, RecordType, RrKey};
use hickory_proto::serialize::txt::Parser;
use hickory_server::dnssec::NxProofKind;

use super::sign::ZoneRecords;
use super::{Fault, LabError};

/// One embedded zone file.
pub(crate) struct ZoneFile {
    pub file: &'static str,
    pub origin: &'static str,
    pub text: &'static str,
}

macro_rules! zone {
    ($file:literal, $origin:literal) => {
        ZoneFile {
            file: $file,
            origin: $origin,
            text: include_str!(concat!("zones/", $file)),
        }
    };
}

/// Every zone file in the lab (written for network 0, see `relocate`).
pub(crate) const ZONE_FILES: &[ZoneFile] = &[
    zone!("root.zone", "."),
    zone!("com.zone", "com."),
    zone!("net.zone", "net."),
    zone!("org.zone", "org."),
    zone!("example.com.zone", "example.com."),
    zone!("example.net.zone", "example.net."),
    zone!("dnshost.net.zone", "dnshost.net."),
    zone!("example.org.zone", "example.org."),
    zone!("poison.com.zone", "poison.com."),
    zone!("poison.com-fake.zone", "poison.com."),
    zone!("wild.net.zone", "wild.net."),
    zone!("shop.com.zone", "shop.com."),
    zone!("faulty.com.zone", "faulty.com."),
    zone!("lame.com.zone", "lame.com."),
    zone!("oldedns.com.zone", "oldedns.com."),
    zone!("loops.com.zone", "loops.com."),
    zone!("loops.net.zone", "loops.net."),
    zone!("nxns.com.zone", "nxns.com."),
    zone!("victim.net.zone", "victim.net."),
    // DNSSEC cases (see sign.rs)
    zone!("secure.net.zone", "secure.net."),
    zone!("secure.org.zone", "secure.org."),
    zone!("expired.net.zone", "expired.net."),
    zone!("notyet.net.zone", "notyet.net."),
    zone!("dsnokey.net.zone", "dsnokey.net."),
    zone!("nosig.net.zone", "nosig.net."),
    zone!("rsamd5.net.zone", "rsamd5.net."),
    zone!("unknownalg.net.zone", "unknownalg.net."),
    zone!("badnsec.net.zone", "badnsec.net."),
    zone!("optout.com.zone", "optout.com."),
    zone!("unsigned.optout.com.zone", "unsigned.optout.com."),
    zone!("iter500.org.zone", "iter500.org."),
    zone!("insecure.net.zone", "insecure.net."),
    zone!("rollover.net.zone", "rollover.net."),
    zone!("keytrap.net.zone", "keytrap.net."),
];

/// One authoritative lab server: host byte `x` of 127.53.N.x and the zone files it serves.
pub(crate) struct ServerSpec {
    pub host: u8,
    pub name: &'static str,
    pub zones: &'static [&'static str],
}

macro_rules! server {
    ($host:literal, $name:literal, [$($zone:literal),*]) => {
        ServerSpec { host: $host, name: $name, zones: &[$($zone),*] }
    };
}

/// The lab's servers (keep in sync with the table in `mod.rs`).
pub(crate) const SERVERS: &[ServerSpec] = &[
    server!(1, "a.root-servers.net.", ["root.zone"]),
    server!(2, "b.root-servers.net.", ["root.zone"]),
    server!(10, "ns1.nic.com.", ["com.zone"]),
    server!(11, "ns2.nic.com.", ["com.zone"]),
    server!(12, "ns1.nic.net.", ["net.zone"]),
    server!(13, "ns1.nic.org.", ["org.zone"]),
    server!(20, "ns1.example.com.", ["example.com.zone"]),
    server!(21, "ns2.example.com.", ["example.com.zone"]),
    server!(22, "ns1.example.net.", ["example.net.zone"]),
    server!(23, "ns1.dnshost.net.", ["dnshost.net.zone"]),
    server!(
        24,
        "ns.dnshost.net.",
        ["example.org.zone", "poison.com.zone"]
    ),
    server!(25, "ns1.wild.net.", ["wild.net.zone"]),
    server!(26, "ns1.shop.com.", ["shop.com.zone"]),
    server!(27, "ns1.faulty.com.", ["faulty.com.zone"]),
    server!(28, "ns2.faulty.com.", ["faulty.com.zone"]),
    server!(29, "ns3.faulty.com.", ["faulty.com.zone"]),
    server!(31, "ns1.lame.com.", ["lame.com.zone"]),
    server!(32, "ns1.oldedns.com.", ["oldedns.com.zone"]),
    server!(40, "ns1.loops.com.", ["loops.com.zone"]),
    server!(41, "ns1.loops.net.", ["loops.net.zone"]),
    server!(42, "ns1.nxns.com.", ["nxns.com.zone"]),
    server!(43, "ns.victim.net.", ["victim.net.zone"]),
    server!(66, "poison (fake ns.dnshost.net)", ["poison.com-fake.zone"]),
    server!(
        70,
        "ns1.secure.net. (and every DNSSEC case)",
        [
            "secure.net.zone",
            "secure.org.zone",
            "expired.net.zone",
            "notyet.net.zone",
            "dsnokey.net.zone",
            "nosig.net.zone",
            "rsamd5.net.zone",
            "unknownalg.net.zone",
            "badnsec.net.zone",
            "optout.com.zone",
            "iter500.org.zone",
            "insecure.net.zone",
            "rollover.net.zone",
            "keytrap.net.zone"
        ]
    ),
    server!(71, "ns1.unsigned.optout.com.", ["unsigned.optout.com.zone"]),
];

/// Host byte of the extra socket that `Fault::WrongSource` replies are sent from.
pub(crate) const WRONG_SOURCE_HOST: u8 = 199;

/// Host bytes of the root servers.
pub(crate) const ROOT_HOSTS: &[u8] = &[1, 2];

/// The fault a server starts with.
pub(crate) fn default_fault(host: u8) -> Option<Fault> {
    match host {
        27 => Some(Fault::Drop),
        28 => Some(Fault::Refused),
        31 => Some(Fault::NoAa),
        32 => Some(Fault::FormErrOnEdns),
        _ => None,
    }
}

/// Rewrites a zone text written for network 0 to network `net`.
pub(crate) fn relocate(text: &str, net: u8) -> String {
    text.replace("127.53.0.", &format!("127.53.{net}."))
}

/// A delegation below a zone's apex: the NS rrset at the cut.
#[derive(Clone, Debug)]
pub(crate) struct Cut {
    pub name: Name,
    pub ns: Vec<Record>,
}

/// A parsed zone plus what the referral builder needs.
#[derive(Clone)]
pub(crate) struct LoadedZone {
    /// The zone file it came from.
    pub file: &'static str,
    pub origin: Name,
    /// In-zone records, for hickory's `InMemoryZoneHandler` (with RRSIGs once signed).
    pub records: ZoneRecords,
    /// How the signed zone proves non-existence (`None`: unsigned).
    pub nx: Option<NxProofKind>,
    /// Delegations below the apex.
    pub cuts: Vec<Cut>,
    /// A/AAAA records by owner name, in-zone (glue included) and out-of-zone (deliberate
    /// lies such as com's `ns.dnshost.net A .66`), used to add glue to referrals and NS answers.
    pub addresses: HashMap<Name, Vec<Record>>,
}

/// Parses one embedded zone for network `net`. Out-of-zone records are taken out of the
/// zone data (hickory would serve them) and kept only as referral glue.
pub(crate) fn load_zone(zf: &ZoneFile, net: u8) -> Result<LoadedZone, LabError> {
    let zone_err = |message: String| LabError::Zone {
        file: zf.file,
        message,
    };
    let origin = Name::from_ascii(zf.origin).map_err(|e| zone_err(e.to_string()))?;
    let text = relocate(zf.text, net);
    // parse() returns the last $ORIGIN seen, not the apex: ignore it (LAB-NOTES gotcha 5).
    let (_, all) = Parser::new(text, None, Some(origin.clone()))
        .parse()
        .map_err(|e| zone_err(e.to_string()))?;

    let mut records = BTreeMap::new();
    let mut cuts = Vec::new();
    let mut addresses: HashMap<Name, Vec<Record>> = HashMap::new();
    for (key, rrset) in all {
        let name = rrset.name().clone();
        let rtype = rrset.record_type();
        if matches!(rtype, RecordType::A | RecordType::AAAA) {
            addresses
                .entry(name.clone())
                .or_default()
                .extend(rrset.records_without_rrsigs().cloned());
        }
        if !origin.zone_of(&name) {
            continue;
        }
        if rtype == RecordType::NS && name != origin {
            cuts.push(Cut {
                name: name.clone(),
                ns: rrset.records_without_rrsigs().cloned().collect(),
            });
        }
        records.insert(key, Arc::new(rrset));
    }
    if !records.contains_key(&RrKey::new(origin.clone().into(), RecordType::SOA)) {
        return Err(zone_err(format!("no SOA at the apex {origin}")));
    }
    Ok(LoadedZone {
        file: zf.file,
        origin,
        records,
        nx: None,
        cuts,
        addresses,
    })
}

/// The NS target names of a set of records (non-NS records are skipped).
pub(crate) fn ns_targets(records: &[Record]) -> impl Iterator<Item = &Name> {
    records.iter().filter_map(crate::dns::ns_target)
}
