//! The local room: zones hopdns answers itself, by default, without asking anyone (RFC 6761
//! special-use names, RFC 6303 locally served reverse zones, RFC 8375 `home.arpa`, RFC 9462
//! `resolver.arpa`). Pure data and one lookup: the resolver's machine asks [`LocalZones`]
//! first, after any forward or stub zone that is as specific (the operator's choice wins,
//! RFC 6303 §3), and answers from it with zero upstream queries.
//!
//! The contents follow Unbound 1.17's defaults (`services/localzone.c`,
//! `local_zone_enter_defaults`, and `util/as112.c`): every zone has `SOA localhost.
//! nobody.invalid. 1 3600 1200 604800 10800` and `NS localhost.` at its apex, TTL 10800;
//! `localhost` also has A 127.0.0.1 and AAAA ::1 and answers them for every name below it
//! too (Unbound's `redirect`); the loopback reverse names have `PTR localhost.`. Every other
//! name in a zone is NXDOMAIN with the zone's SOA (RFC 2308 §3). `resolver.arpa` (RFC 9462
//! §8: resolvers answer it themselves) is not in Unbound 1.17; it is served empty here.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use hickory_proto::rr::rdata::{A, AAAA, NS, PTR, SOA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use crate::dns::{Outcome, Question};

/// TTL of every default record and of negative answers (Unbound's 10800).
pub const LOCAL_TTL: u32 = 10800;

/// `::1` and `::` reversed (RFC 6303 §4.3, §4.4).
const V6_LOOPBACK: &str =
    "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa";
const V6_UNSPECIFIED: &str =
    "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa";

/// The zones served by default, in the order Unbound enters them. `--local-zone` takes this
/// list as its default; a config file's list replaces it.
pub const DEFAULT_ZONES: &[&str] = &[
    // RFC 6761 §6.3, RFC 6303 §4.2 and §4.3: loopback, with content.
    "localhost",
    "127.in-addr.arpa",
    V6_LOOPBACK,
    // RFC 8375, RFC 7686, RFC 6761 §6.2 and §6.4: empty.
    "home.arpa",
    "onion",
    "test",
    "invalid",
    // RFC 9462 §8.
    "resolver.arpa",
    // RFC 6303 §4.1 (RFC 1918), §4.2, RFC 7793 (RFC 6598 shared space), §4.4-4.6.
    "10.in-addr.arpa",
    "16.172.in-addr.arpa",
    "17.172.in-addr.arpa",
    "18.172.in-addr.arpa",
    "19.172.in-addr.arpa",
    "20.172.in-addr.arpa",
    "21.172.in-addr.arpa",
    "22.172.in-addr.arpa",
    "23.172.in-addr.arpa",
    "24.172.in-addr.arpa",
    "25.172.in-addr.arpa",
    "26.172.in-addr.arpa",
    "27.172.in-addr.arpa",
    "28.172.in-addr.arpa",
    "29.172.in-addr.arpa",
    "30.172.in-addr.arpa",
    "31.172.in-addr.arpa",
    "168.192.in-addr.arpa",
    "0.in-addr.arpa",
    "64.100.in-addr.arpa",
    "65.100.in-addr.arpa",
    "66.100.in-addr.arpa",
    "67.100.in-addr.arpa",
    "68.100.in-addr.arpa",
    "69.100.in-addr.arpa",
    "70.100.in-addr.arpa",
    "71.100.in-addr.arpa",
    "72.100.in-addr.arpa",
    "73.100.in-addr.arpa",
    "74.100.in-addr.arpa",
    "75.100.in-addr.arpa",
    "76.100.in-addr.arpa",
    "77.100.in-addr.arpa",
    "78.100.in-addr.arpa",
    "79.100.in-addr.arpa",
    "80.100.in-addr.arpa",
    "81.100.in-addr.arpa",
    "82.100.in-addr.arpa",
    "83.100.in-addr.arpa",
    "84.100.in-addr.arpa",
    "85.100.in-addr.arpa",
    "86.100.in-addr.arpa",
    "87.100.in-addr.arpa",
    "88.100.in-addr.arpa",
    "89.100.in-addr.arpa",
    "90.100.in-addr.arpa",
    "91.100.in-addr.arpa",
    "92.100.in-addr.arpa",
    "93.100.in-addr.arpa",
    "94.100.in-addr.arpa",
    "95.100.in-addr.arpa",
    "96.100.in-addr.arpa",
    "97.100.in-addr.arpa",
    "98.100.in-addr.arpa",
    "99.100.in-addr.arpa",
    "100.100.in-addr.arpa",
    "101.100.in-addr.arpa",
    "102.100.in-addr.arpa",
    "103.100.in-addr.arpa",
    "104.100.in-addr.arpa",
    "105.100.in-addr.arpa",
    "106.100.in-addr.arpa",
    "107.100.in-addr.arpa",
    "108.100.in-addr.arpa",
    "109.100.in-addr.arpa",
    "110.100.in-addr.arpa",
    "111.100.in-addr.arpa",
    "112.100.in-addr.arpa",
    "113.100.in-addr.arpa",
    "114.100.in-addr.arpa",
    "115.100.in-addr.arpa",
    "116.100.in-addr.arpa",
    "117.100.in-addr.arpa",
    "118.100.in-addr.arpa",
    "119.100.in-addr.arpa",
    "120.100.in-addr.arpa",
    "121.100.in-addr.arpa",
    "122.100.in-addr.arpa",
    "123.100.in-addr.arpa",
    "124.100.in-addr.arpa",
    "125.100.in-addr.arpa",
    "126.100.in-addr.arpa",
    "127.100.in-addr.arpa",
    "254.169.in-addr.arpa",
    "2.0.192.in-addr.arpa",
    "100.51.198.in-addr.arpa",
    "113.0.203.in-addr.arpa",
    "255.255.255.255.in-addr.arpa",
    V6_UNSPECIFIED,
    "d.f.ip6.arpa",
    "8.e.f.ip6.arpa",
    "9.e.f.ip6.arpa",
    "a.e.f.ip6.arpa",
    "b.e.f.ip6.arpa",
    "8.b.d.0.1.0.0.2.ip6.arpa",
];

/// One locally served zone: its records, and whether every name below the apex gets the
/// apex's data (`localhost`, Unbound's `redirect`).
#[derive(Clone, Debug)]
pub struct LocalZone {
    pub zone: Name,
    records: Vec<Record>,
    redirect: bool,
}

impl LocalZone {
    /// The zone with the default content for its name (see the module doc).
    pub fn with_defaults(zone: Name) -> Self {
        let rec = |name: &Name, data: RData| Record::from_rdata(name.clone(), LOCAL_TTL, data);
        let localhost = Name::from_ascii("localhost.").expect("a valid name");
        let soa = SOA::new(
            localhost.clone(),
            Name::from_ascii("nobody.invalid.").expect("a valid name"),
            1,
            3600,
            1200,
            604800,
            LOCAL_TTL,
        );
        let mut records = vec![
            rec(&zone, RData::SOA(soa)),
            rec(&zone, RData::NS(NS(localhost.clone()))),
        ];
        let is = |text: &str| Name::from_ascii(text).is_ok_and(|n| n == zone);
        let redirect = is("localhost.");
        if redirect {
            records.push(rec(&zone, RData::A(A(Ipv4Addr::LOCALHOST))));
            records.push(rec(&zone, RData::AAAA(AAAA(Ipv6Addr::LOCALHOST))));
        } else if is("127.in-addr.arpa.") || is(&format!("{V6_LOOPBACK}.")) {
            let owner = if is("127.in-addr.arpa.") {
                Name::from_ascii("1.0.0.127.in-addr.arpa.").expect("a valid name")
            } else {
                zone.clone()
            };
            records.push(rec(&owner, RData::PTR(PTR(localhost))));
        }
        Self {
            zone,
            records,
            redirect,
        }
    }

    /// The answer to `q`, a name at or below the apex: its records of the type asked, else
    /// NODATA (the name exists: it owns records or is an empty non-terminal above some,
    /// RFC 8020), else NXDOMAIN; negative answers carry the zone's SOA (RFC 2308 §3).
    pub fn answer(&self, q: &Question) -> Outcome {
        let owner = if self.redirect { &self.zone } else { &q.name };
        let found: Vec<Record> = self
            .records
            .iter()
            .filter(|r| {
                r.name == *owner && (q.qtype == RecordType::ANY || r.record_type() == q.qtype)
            })
            .map(|r| {
                let mut r = r.clone();
                r.name = q.name.clone();
                r
            })
            .collect();
        if !found.is_empty() {
            return Outcome::Answer { answers: found };
        }
        let soa = self
            .records
            .iter()
            .find(|r| r.record_type() == RecordType::SOA)
            .cloned();
        let exists = self.records.iter().any(|r| owner.zone_of(&r.name));
        if exists {
            Outcome::NoData {
                answers: Vec::new(),
                soa,
            }
        } else {
            Outcome::NxDomain {
                answers: Vec::new(),
                soa,
            }
        }
    }
}

/// Why a `--local-zone` value is not a zone.
#[derive(Debug, thiserror::Error)]
#[error("--local-zone {0:?} is not a domain name: {1}")]
pub struct LocalZoneError(pub String, pub String);

/// The locally served zones, found by the closest enclosing zone of a name.
#[derive(Clone, Debug, Default)]
pub struct LocalZones {
    zones: HashMap<Name, LocalZone>,
    /// The last label of every zone, lowercase (`None`: the root is a zone, so every name
    /// is under one): a name whose top-level label is not here needs no lookup, which is
    /// every name on the way of an ordinary cache miss.
    tlds: Option<Vec<Box<[u8]>>>,
}

impl LocalZones {
    /// Zones named in presentation form (`--local-zone`), each with its default content.
    pub fn new<S: AsRef<str>>(names: &[S]) -> Result<Self, LocalZoneError> {
        let mut zones = HashMap::new();
        for text in names {
            let text = text.as_ref();
            let mut name = Name::from_str(text)
                .map_err(|e| LocalZoneError(text.to_string(), e.to_string()))?;
            name.set_fqdn(true);
            let name = name.to_lowercase();
            zones.insert(name.clone(), LocalZone::with_defaults(name));
        }
        let mut tlds: Option<Vec<Box<[u8]>>> = Some(Vec::new());
        for zone in zones.keys() {
            match (zone.iter().next_back(), &mut tlds) {
                (Some(tld), Some(list)) if !list.iter().any(|t| t.as_ref() == tld) => {
                    list.push(tld.to_ascii_lowercase().into_boxed_slice())
                }
                (None, _) => tlds = None,
                _ => {}
            }
        }
        Ok(Self { zones, tlds })
    }

    /// The defaults ([`DEFAULT_ZONES`]).
    pub fn defaults() -> Self {
        Self::new(DEFAULT_ZONES).expect("the default zones are valid names")
    }

    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }

    /// The closest locally served zone at or above `name`, for class IN only.
    pub fn find(&self, name: &Name, class: DNSClass) -> Option<&LocalZone> {
        if class != DNSClass::IN || self.zones.is_empty() {
            return None;
        }
        if let (Some(tlds), Some(tld)) = (&self.tlds, name.iter().next_back()) {
            if !tlds.iter().any(|t| t.eq_ignore_ascii_case(tld)) {
                return None;
            }
        }
        let mut n = name.to_lowercase();
        loop {
            if let Some(z) = self.zones.get(&n) {
                return Some(z);
            }
            if n.is_root() {
                return None;
            }
            n = n.base_name();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(name: &str, qtype: RecordType) -> Question {
        Question::new(Name::from_ascii(name).unwrap(), qtype)
    }

    fn zones() -> LocalZones {
        LocalZones::defaults()
    }

    fn answer(name: &str, qtype: RecordType) -> Outcome {
        let q = q(name, qtype);
        zones()
            .find(&q.name, q.qclass)
            .expect("a local zone")
            .answer(&q)
    }

    /// The top-level-label shortcut of `find`: other names are not looked up, names under
    /// a local TLD in any case are, and with the root served locally every name is local.
    #[test]
    fn the_top_level_label_decides_before_any_lookup() {
        let z = LocalZones::new(&["home.arpa.", "Test."]).unwrap();
        let find = |z: &LocalZones, n: &str| {
            z.find(&Name::from_ascii(n).unwrap(), DNSClass::IN)
                .map(|l| l.zone.to_string())
        };
        assert_eq!(find(&z, "x.HOME.ARPA."), Some("home.arpa.".into()));
        assert_eq!(find(&z, "a.b.tEsT."), Some("test.".into()));
        assert_eq!(
            find(&z, "in-addr.arpa."),
            None,
            "arpa. itself is not a zone here"
        );
        assert_eq!(find(&z, "www.example.com."), None);
        let root = LocalZones::new(&["."]).unwrap();
        assert_eq!(find(&root, "www.example.com."), Some(".".into()));
    }

    #[test]
    fn localhost_and_every_name_below_it_is_loopback() {
        for name in ["localhost.", "foo.localhost.", "a.b.LOCALHOST."] {
            let Outcome::Answer { answers } = answer(name, RecordType::A) else {
                panic!("{name}")
            };
            assert_eq!(answers[0].data, RData::A(A(Ipv4Addr::LOCALHOST)));
            assert_eq!(answers[0].name, Name::from_ascii(name).unwrap());
            let Outcome::Answer { answers } = answer(name, RecordType::AAAA) else {
                panic!("{name}")
            };
            assert_eq!(answers[0].data, RData::AAAA(AAAA(Ipv6Addr::LOCALHOST)));
        }
        assert!(matches!(
            answer("localhost.", RecordType::MX),
            Outcome::NoData { soa: Some(_), .. }
        ));
    }

    #[test]
    fn private_reverse_names_are_nxdomain_with_the_zones_soa() {
        let Outcome::NxDomain { soa: Some(soa), .. } =
            answer("1.1.168.192.in-addr.arpa.", RecordType::PTR)
        else {
            panic!()
        };
        assert_eq!(soa.name, Name::from_ascii("168.192.in-addr.arpa.").unwrap());
        assert_eq!(soa.ttl, LOCAL_TTL);
        assert!(matches!(
            answer("168.192.in-addr.arpa.", RecordType::SOA),
            Outcome::Answer { .. }
        ));
        assert!(matches!(
            answer("nothing.invalid.", RecordType::A),
            Outcome::NxDomain { .. }
        ));
    }

    #[test]
    fn loopback_reverse_names_are_localhost() {
        let Outcome::Answer { answers } = answer("1.0.0.127.in-addr.arpa.", RecordType::PTR) else {
            panic!()
        };
        assert_eq!(answers[0].data.to_string(), "localhost.");
        let v6 = format!("{V6_LOOPBACK}.");
        assert!(matches!(
            answer(&v6, RecordType::PTR),
            Outcome::Answer { .. }
        ));
        // An empty non-terminal above the one PTR: the name exists (RFC 8020).
        assert!(matches!(
            answer("0.0.127.in-addr.arpa.", RecordType::PTR),
            Outcome::NoData { .. }
        ));
        assert!(matches!(
            answer("2.0.0.127.in-addr.arpa.", RecordType::PTR),
            Outcome::NxDomain { .. }
        ));
    }

    #[test]
    fn other_names_and_classes_are_not_local() {
        let z = zones();
        let n = Name::from_ascii("www.example.com.").unwrap();
        assert!(z.find(&n, DNSClass::IN).is_none());
        let n = Name::from_ascii("localhost.").unwrap();
        assert!(z.find(&n, DNSClass::CH).is_none());
        assert!(z
            .find(
                &Name::from_ascii("1.32.172.in-addr.arpa.").unwrap(),
                DNSClass::IN
            )
            .is_none());
        assert!(LocalZones::new(&["bad..name"]).is_err());
    }
}
