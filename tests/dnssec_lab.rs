//! The signed lab (issue 14.5), asked directly with DO: every DNSSEC case answers with the
//! records a validator needs (RRSIGs, DS, NSEC/NSEC3 proofs), the trust anchor is the key the
//! root serves, and a resolver still resolves through the signed zones. Lab network 171.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::dnssec::rdata::{DNSSECRData, DNSKEY, DS, RRSIG};
use hickory_proto::dnssec::Verifier;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType, RrKey};
use hickory_proto::serialize::txt::Parser;
use hopdns::lab::{Lab, LabConfig, Verdict, DNSSEC_CASES};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::util::{self, name, Env};

const NET: u8 = 171;

/// One query with DO and RD=0 to a lab server.
async fn ask_do(lab: &Lab, host: u8, qname: &str, qtype: RecordType) -> Message {
    let mut q = util::query(qname, qtype, Some(1232));
    q.metadata.recursion_desired = false;
    if let Some(e) = q.edns.as_mut() {
        e.set_dnssec_ok(true);
    }
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let to = SocketAddr::new(IpAddr::V4(lab.addr(host)), 53);
    sock.send_to(&q.to_vec().unwrap(), to).await.unwrap();
    let mut buf = vec![0u8; 65535];
    let (n, _) = tokio::time::timeout(Duration::from_secs(3), sock.recv_from(&mut buf))
        .await
        .expect("a reply within 3 s")
        .unwrap();
    let m = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(m.metadata.id, q.metadata.id);
    if !m.metadata.truncation {
        return m;
    }
    // Too big for UDP (the KeyTrap zone's 17 RRSIGs): again over TCP.
    let mut s = TcpStream::connect(to).await.unwrap();
    let bytes = q.to_vec().unwrap();
    s.write_all(&(bytes.len() as u16).to_be_bytes())
        .await
        .unwrap();
    s.write_all(&bytes).await.unwrap();
    let mut len = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(3), s.read_exact(&mut len))
        .await
        .expect("a TCP reply within 3 s")
        .unwrap();
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut buf).await.unwrap();
    let m = Message::from_vec(&buf).unwrap();
    assert!(!m.metadata.truncation, "{qname} {qtype} truncated over TCP");
    m
}

fn rrsigs(records: &[Record], covered: RecordType) -> Vec<RRSIG> {
    records
        .iter()
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::RRSIG(s)) if s.input().type_covered == covered => {
                Some(s.clone())
            }
            _ => None,
        })
        .collect()
}

fn of_type(records: &[Record], t: RecordType) -> usize {
    records.iter().filter(|r| r.record_type() == t).count()
}

/// The lab server that answers for a case's name.
fn server_for(qname: &str) -> u8 {
    match qname {
        "nope.net." => 12,
        "nope.com." => 10,
        "www.example.com." => 20,
        "www.unsigned.optout.com." => 71,
        _ => 70,
    }
}

/// Each case, asked of its zone's server with DO: the rcode the case names; signed zones
/// sign their answers and prove their denials, unsigned and unsupported ones sign nothing.
#[tokio::test]
async fn every_dnssec_case_serves_what_a_validator_needs() {
    let lab = Lab::start(LabConfig { net: NET }).await.unwrap();
    for case in DNSSEC_CASES {
        let reply = ask_do(&lab, server_for(case.name), case.name, case.qtype).await;
        let label = format!("{} {}", case.name, case.qtype);
        let rcode = match case.rcode {
            "NXDOMAIN" => ResponseCode::NXDomain,
            _ => ResponseCode::NoError,
        };
        assert_eq!(reply.metadata.response_code, rcode, "{label}\n{reply}");
        assert!(reply.metadata.authoritative, "{label}");
        let positive = !reply.answers.is_empty();
        let unsigned = matches!(
            case.name,
            "www.rsamd5.net."
                | "www.unknownalg.net."
                | "www.unsigned.optout.com."
                | "www.insecure.net."
                | "www.example.com."
        );
        if unsigned || case.name == "www.nosig.net." {
            let sigs = rrsigs(&reply.answers, case.qtype).len();
            assert_eq!(sigs, 0, "{label}: no RRSIG expected\n{reply}");
            assert!(unsigned || matches!(case.verdict, Verdict::Bogus(10)));
            continue;
        }
        if positive {
            assert!(
                !rrsigs(&reply.answers, case.qtype).is_empty(),
                "{label}\n{reply}"
            );
        } else {
            let proofs = of_type(&reply.authorities, RecordType::NSEC)
                + of_type(&reply.authorities, RecordType::NSEC3);
            assert!(proofs > 0, "{label}: no NSEC/NSEC3\n{reply}");
            assert!(
                !rrsigs(&reply.authorities, RecordType::SOA).is_empty(),
                "{label}"
            );
        }
        if case.name.contains(".wild.") {
            // A wildcard expansion: the RRSIG's label count is the wildcard's (RFC 4035 §5.3.4),
            // and the proof that the name itself does not exist comes along.
            let sig = &rrsigs(&reply.answers, case.qtype)[0];
            assert_eq!(usize::from(sig.input().num_labels), 3, "{label}");
            assert!(!reply.authorities.is_empty(), "{label}: no proof\n{reply}");
        }
    }
    // The bogus cases are bogus in the way they claim.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    let expired = ask_do(&lab, 70, "www.expired.net.", RecordType::A).await;
    assert!(rrsigs(&expired.answers, RecordType::A)
        .iter()
        .all(|s| s.input().sig_expiration.get() < now));
    let notyet = ask_do(&lab, 70, "www.notyet.net.", RecordType::A).await;
    assert!(rrsigs(&notyet.answers, RecordType::A)
        .iter()
        .all(|s| s.input().sig_inception.get() > now));
    lab.shutdown().await;
}

/// The trust anchor is the key the root serves, its DS covers it, and that key verifies the
/// root's DNSKEY RRSIG; each signed child's DS arrives in its parent's referral with DO.
#[tokio::test]
async fn trust_anchor_is_the_served_root_key_and_referrals_carry_ds() {
    let lab = Lab::start(LabConfig { net: NET + 1 }).await.unwrap();
    // hickory's zone-file parser refuses DNSKEY records: parse the DS lines.
    let ds_lines: String = lab
        .trust_anchor()
        .lines()
        .filter(|l| l.contains("\tDS\t"))
        .map(|l| format!("{l}\n"))
        .collect();
    let (_, anchor) = Parser::new(ds_lines, None, Some(Name::root()))
        .parse()
        .unwrap();
    let anchor_ds: Vec<DS> = anchor[&RrKey::new(Name::root().into(), RecordType::DS)]
        .records_without_rrsigs()
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::DS(d)) => Some(d.clone()),
            _ => None,
        })
        .collect();

    let reply = ask_do(&lab, 1, ".", RecordType::DNSKEY).await;
    let keys: Vec<DNSKEY> = reply
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::DNSKEY(k)) => Some(k.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(keys.len(), 1, "{reply}");
    assert!(anchor_ds[0].covers(&Name::root(), &keys[0]).unwrap());
    let key_records: Vec<&Record> = reply
        .answers
        .iter()
        .filter(|r| r.record_type() == RecordType::DNSKEY)
        .collect();
    let sig = &rrsigs(&reply.answers, RecordType::DNSKEY)[0];
    keys[0]
        .verify_rrsig(&Name::root(), DNSClass::IN, sig, key_records.into_iter())
        .unwrap();

    for (host, qname, cut) in [
        (1, "www.secure.net.", "net."),
        (12, "www.secure.net.", "secure.net."),
        (10, "www.optout.com.", "optout.com."),
        (13, "www.iter500.org.", "iter500.org."),
    ] {
        let referral = ask_do(&lab, host, qname, RecordType::A).await;
        assert!(!referral.metadata.authoritative);
        let ds: Vec<&Record> = referral
            .authorities
            .iter()
            .filter(|r| r.record_type() == RecordType::DS)
            .collect();
        assert!(!ds.is_empty(), "{cut}: no DS\n{referral}");
        assert!(ds.iter().all(|r| r.name == name(cut)));
        assert_eq!(
            rrsigs(&referral.authorities, RecordType::DS).len(),
            1,
            "{referral}"
        );
    }
    lab.shutdown().await;
}

/// hopdns (not validating here) still resolves through the signed root and TLDs, and the
/// unsigned lab zones answer as before.
#[tokio::test]
async fn resolver_resolves_through_the_signed_lab() {
    let env = Env::start(NET + 2).await;
    let reply = env.udp("www.secure.net.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        util::answers(&reply),
        vec!["www.secure.net. A 192.0.2.101".to_string()]
    );
    let reply = env.udp("www.example.com.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    let reply = env.udp("nope.secure.org.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
    env.stop().await;
}
