//! Test helpers: real keys generated and real signatures made with hickory-proto's signing
//! under the `dnssec-ring` backend, so every test validates genuine cryptography.

use std::str::FromStr;

use hickory_proto::dnssec::crypto::{EcdsaSigningKey, Ed25519SigningKey};
use hickory_proto::dnssec::rdata::{DNSSECRData, SigInput, DNSKEY, DS, RRSIG};
use hickory_proto::dnssec::{Algorithm, DigestType, PublicKey as _, PublicKeyBuf, SigningKey, TBS};
use hickory_proto::rr::{DNSClass, Name, RData, Record, SerialNumber};

/// Fixed "now" for tests: 2026-01-01T00:00:00Z.
pub const NOW: u64 = 1_767_225_600;
/// A window around [`NOW`]: one week before to three weeks after.
pub const INCEPTION: u32 = (NOW - 7 * 86400) as u32;
pub const EXPIRATION: u32 = (NOW + 21 * 86400) as u32;

pub fn name(s: &str) -> Name {
    Name::from_str(s).unwrap()
}

pub fn record(owner: &str, ttl: u32, data: RData) -> Record {
    Record::from_rdata(name(owner), ttl, data)
}

pub fn dnssec(data: DNSSECRData) -> RData {
    RData::DNSSEC(data)
}

/// A zone key with its private half.
pub struct ZoneKey {
    pub zone: Name,
    pub dnskey: DNSKEY,
    pub tag: u16,
    signer: Box<dyn SigningKey>,
}

impl ZoneKey {
    /// An ECDSA P-256 key (algorithm 13); `ksk` sets the SEP flag.
    pub fn ecdsa(zone: &str, ksk: bool) -> ZoneKey {
        let der = EcdsaSigningKey::generate_pkcs8(Algorithm::ECDSAP256SHA256).unwrap();
        let key = EcdsaSigningKey::from_pkcs8(&der, Algorithm::ECDSAP256SHA256).unwrap();
        ZoneKey::from_signer(zone, ksk, false, Box::new(key))
    }

    /// An Ed25519 key (algorithm 15).
    pub fn ed25519(zone: &str, ksk: bool) -> ZoneKey {
        let der = Ed25519SigningKey::generate_pkcs8().unwrap();
        let key = Ed25519SigningKey::from_pkcs8(&der).unwrap();
        ZoneKey::from_signer(zone, ksk, false, Box::new(key))
    }

    /// The same key with the REVOKE bit set (RFC 5011 §2.1); its tag changes.
    pub fn revoked(self) -> ZoneKey {
        let ksk = self.dnskey.secure_entry_point();
        ZoneKey::from_signer(&self.zone.to_string(), ksk, true, self.signer)
    }

    fn from_signer(zone: &str, ksk: bool, revoke: bool, signer: Box<dyn SigningKey>) -> ZoneKey {
        let public: PublicKeyBuf = signer.to_public_key().unwrap();
        let dnskey = DNSKEY::new(true, ksk, revoke, public);
        let tag = dnskey.calculate_key_tag().unwrap();
        ZoneKey {
            zone: name(zone),
            dnskey,
            tag,
            signer,
        }
    }

    pub fn record(&self) -> Record {
        Record::from_rdata(
            self.zone.clone(),
            3600,
            dnssec(DNSSECRData::DNSKEY(self.dnskey.clone())),
        )
    }

    pub fn ds(&self, digest: DigestType) -> DS {
        let d = self.dnskey.to_digest(&self.zone, digest).unwrap();
        DS::new(
            self.tag,
            self.dnskey.public_key().algorithm(),
            digest,
            d.as_ref().to_vec(),
        )
    }

    /// Signs the RRset (all of `rrset`, one owner and type) valid from `inception` to
    /// `expiration`.
    pub fn sign_at(&self, rrset: &[Record], inception: u32, expiration: u32) -> Record {
        let owner = rrset[0].name.clone();
        let input = SigInput {
            type_covered: rrset[0].record_type(),
            algorithm: self.signer.algorithm(),
            num_labels: owner.num_labels(),
            original_ttl: rrset[0].ttl,
            sig_expiration: SerialNumber::new(expiration),
            sig_inception: SerialNumber::new(inception),
            key_tag: self.tag,
            signer_name: self.zone.clone(),
        };
        let tbs = TBS::from_input(&owner, DNSClass::IN, &input, rrset.iter()).unwrap();
        let sig = self.signer.sign(&tbs).unwrap();
        Record::from_rdata(
            owner,
            rrset[0].ttl,
            dnssec(DNSSECRData::RRSIG(RRSIG::from_sig(input, sig))),
        )
    }

    pub fn sign(&self, rrset: &[Record]) -> Record {
        self.sign_at(rrset, INCEPTION, EXPIRATION)
    }
}

/// `n` distinct public keys with the tag of `key` and its algorithm (KeyTrap's colliding
/// tags): each moves one unit between two even-offset bytes of the key, which leaves the
/// RFC 4034 Appendix B checksum unchanged. None of them can verify anything.
pub fn colliding_keys(key: &DNSKEY, n: usize) -> Vec<DNSKEY> {
    let bytes = key.public_key().public_bytes().to_vec();
    // The key tag sums the RDATA: flags (2), protocol, algorithm, then the key, so the
    // key's even offsets are the RDATA's even offsets.
    let mut out = Vec::new();
    let evens: Vec<usize> = (0..bytes.len()).step_by(2).collect();
    'outer: for &p in &evens {
        for &q in &evens {
            if p == q || bytes[p] == 255 || bytes[q] == 0 {
                continue;
            }
            let mut b = bytes.clone();
            b[p] += 1;
            b[q] -= 1;
            let k = DNSKEY::with_flags(
                key.flags(),
                PublicKeyBuf::new(b, key.public_key().algorithm()),
            );
            out.push(k);
            if out.len() == n {
                break 'outer;
            }
        }
    }
    out
}

/// Seconds since the epoch of an RRSIG time `YYYYMMDDHHmmSS` (RFC 4034 §3.2), UTC.
pub fn rrsig_time(text: &str) -> u32 {
    let n = |r: std::ops::Range<usize>| text[r].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(4..6), n(6..8));
    // Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar.
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    (days * 86400 + n(8..10) * 3600 + n(10..12) * 60 + n(12..14)) as u32
}

/// Records of zone-file text as `dig` prints them, one per line (A, DS, DNSKEY, RRSIG):
/// enough to load fixed vectors of real signed data.
pub fn parse_records(text: &str) -> Vec<Record> {
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::RecordType;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split(';').next().unwrap();
        let t: Vec<&str> = line.split_whitespace().collect();
        if t.is_empty() {
            continue;
        }
        let (owner, ttl) = (name(t[0]), t[1].parse().unwrap());
        let data = match t[3] {
            "A" => RData::A(A(t[4].parse().unwrap())),
            "DS" | "DNSKEY" => {
                let parsed = crate::dnssec::anchor::parse(std::path::Path::new("vector"), line)
                    .unwrap()
                    .remove(0)
                    .1;
                dnssec(match parsed {
                    crate::dnssec::anchor::Anchor::Ds(d) => DNSSECRData::DS(d),
                    crate::dnssec::anchor::Anchor::Key(k) => DNSSECRData::DNSKEY(k),
                })
            }
            "RRSIG" => {
                let input = SigInput {
                    type_covered: RecordType::from_str(t[4]).unwrap(),
                    algorithm: Algorithm::from_u8(t[5].parse().unwrap()),
                    num_labels: t[6].parse().unwrap(),
                    original_ttl: t[7].parse().unwrap(),
                    sig_expiration: SerialNumber::new(rrsig_time(t[8])),
                    sig_inception: SerialNumber::new(rrsig_time(t[9])),
                    key_tag: t[10].parse().unwrap(),
                    signer_name: name(t[11]),
                };
                let sig = data_encoding::BASE64
                    .decode(t[12..].concat().as_bytes())
                    .unwrap();
                dnssec(DNSSECRData::RRSIG(RRSIG::from_sig(input, sig)))
            }
            other => panic!("parse_records: no {other}"),
        };
        out.push(Record::from_rdata(owner, ttl, data));
    }
    out
}
