//! Lab tests: raw UDP/TCP exchanges with hickory-proto messages, no resolver.
//! Each test uses its own lab network in 127.53.200..250.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::txt::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::zones::{load_zone, relocate, SERVERS, ZONE_FILES};
use super::*;

const WAIT: Duration = Duration::from_secs(2);

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn query(qname: &str, qtype: RecordType, edns: Option<u16>) -> Message {
    let mut m = Message::query();
    m.add_query(hickory_proto::op::Query::query(name(qname), qtype));
    m.metadata.recursion_desired = false;
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.set_edns(e);
    }
    m
}

/// Sends `q` over UDP; returns the raw reply and where it came from, or None on timeout.
async fn udp_raw(server: Ipv4Addr, q: &Message, wait: Duration) -> Option<(Vec<u8>, SocketAddr)> {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(&q.to_vec().unwrap(), (server, 53))
        .await
        .unwrap();
    let mut buf = vec![0u8; 65535];
    let (n, from) = tokio::time::timeout(wait, sock.recv_from(&mut buf))
        .await
        .ok()?
        .unwrap();
    buf.truncate(n);
    Some((buf, from))
}

async fn udp(server: Ipv4Addr, qname: &str, qtype: RecordType, edns: Option<u16>) -> Message {
    let q = query(qname, qtype, edns);
    let (bytes, from) = udp_raw(server, &q, WAIT).await.expect("no UDP reply");
    assert_eq!(from, SocketAddr::from((server, 53)));
    let reply = Message::from_vec(&bytes).unwrap();
    assert_eq!(reply.metadata.id, q.metadata.id);
    reply
}

/// One query over a fresh TCP connection; None if the server closes without answering.
async fn tcp_raw(server: Ipv4Addr, q: &Message) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect((server, 53)).await.unwrap();
    let bytes = q.to_vec().unwrap();
    s.write_all(&(bytes.len() as u16).to_be_bytes())
        .await
        .unwrap();
    s.write_all(&bytes).await.unwrap();
    let mut len = [0u8; 2];
    tokio::time::timeout(WAIT, s.read_exact(&mut len))
        .await
        .unwrap()
        .ok()?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut buf).await.unwrap();
    Some(buf)
}

async fn tcp(server: Ipv4Addr, qname: &str, qtype: RecordType, edns: Option<u16>) -> Message {
    let q = query(qname, qtype, edns);
    let reply = Message::from_vec(&tcp_raw(server, &q).await.expect("TCP closed")).unwrap();
    assert_eq!(reply.metadata.id, q.metadata.id);
    reply
}

async fn lab(net: u8) -> Lab {
    Lab::start(LabConfig { net }).await.unwrap()
}

fn addrs(records: &[Record]) -> Vec<IpAddr> {
    records.iter().filter_map(|r| r.data.ip_addr()).collect()
}

fn ns_names(records: &[Record]) -> Vec<String> {
    let mut v: Vec<String> = records
        .iter()
        .filter_map(|r| match &r.data {
            RData::NS(ns) => Some(ns.0.to_string()),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

fn ip(lab: &Lab, host: u8) -> IpAddr {
    IpAddr::V4(lab.addr(host))
}

fn assert_soa_only(reply: &Message, owner: &str) {
    assert!(reply.answers.is_empty(), "{reply}");
    assert_eq!(reply.authorities.len(), 1, "{reply}");
    assert_eq!(reply.authorities[0].record_type(), RecordType::SOA);
    assert_eq!(reply.authorities[0].name, name(owner));
}

#[test]
fn every_zone_parses_for_any_network() {
    for net in [0, 7, 255] {
        for zf in ZONE_FILES {
            let z = load_zone(zf, net).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(z.origin, name(zf.origin));
        }
    }
    assert!(relocate("a 127.53.0.10 b", 9).contains("127.53.9.10"));
}

#[tokio::test]
async fn root_referral_is_not_authoritative_and_has_glue() {
    let lab = lab(200).await;
    let r = udp(lab.addr(1), "www.example.com.", RecordType::A, None).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert!(!r.metadata.authoritative);
    assert!(r.answers.is_empty());
    assert!(r.authorities.iter().all(|r| r.name == name("com.")));
    assert_eq!(ns_names(&r.authorities), ["ns1.nic.com.", "ns2.nic.com."]);
    assert_eq!(addrs(&r.additionals), [ip(&lab, 10), ip(&lab, 11)]);
    assert!(r.edns.is_none());

    // com refers on to example.com with in-bailiwick glue; same with EDNS.
    let r = udp(lab.addr(10), "www.example.com.", RecordType::A, Some(1232)).await;
    assert!(!r.metadata.authoritative);
    assert_eq!(
        ns_names(&r.authorities),
        ["ns1.example.com.", "ns2.example.com."]
    );
    assert_eq!(addrs(&r.additionals), [ip(&lab, 20), ip(&lab, 21)]);
    assert_eq!(r.edns.as_ref().map(|e| e.max_payload()), Some(1232));

    // An NS query at the cut is a referral too; DS at the cut is the parent's NODATA.
    let r = udp(lab.addr(10), "example.com.", RecordType::NS, None).await;
    assert!(!r.metadata.authoritative && r.answers.is_empty());
    assert_eq!(r.additionals.len(), 2);
    let r = udp(lab.addr(10), "example.com.", RecordType::DS, None).await;
    assert!(r.metadata.authoritative);
    assert_soa_only(&r, "com.");

    // EDNS version 1: BADVERS, on the referral path too.
    let mut q = query("www.example.com.", RecordType::A, Some(1232));
    q.edns.as_mut().unwrap().set_version(1);
    let (b, _) = udp_raw(lab.addr(1), &q, WAIT).await.unwrap();
    let r = Message::from_vec(&b).unwrap();
    // (16 decodes as BADSIG, which shares the code with BADVERS.)
    assert_eq!(u16::from(r.metadata.response_code), 16);
    assert!(r.edns.is_some());

    // Priming: the root's own NS set, authoritative, with the root servers' addresses.
    let r = udp(lab.addr(1), ".", RecordType::NS, None).await;
    assert!(r.metadata.authoritative);
    assert_eq!(
        ns_names(&r.answers),
        ["a.root-servers.net.", "b.root-servers.net."]
    );
    assert_eq!(addrs(&r.additionals), lab.root_servers());
    lab.shutdown().await;
}

#[tokio::test]
async fn example_com_answers() {
    let lab = lab(201).await;
    let ns = lab.addr(20);
    let r = udp(ns, "www.example.com.", RecordType::A, None).await;
    assert!(r.metadata.authoritative);
    assert_eq!(addrs(&r.answers), ["192.0.2.1".parse::<IpAddr>().unwrap()]);
    assert_eq!(r.answers[0].ttl, 300);

    let r = udp(lab.addr(21), "www.example.com.", RecordType::AAAA, None).await;
    assert!(r.metadata.authoritative);
    assert_eq!(
        addrs(&r.answers),
        ["2001:db8::1".parse::<IpAddr>().unwrap()]
    );

    let r = udp(ns, "alias.example.com.", RecordType::A, None).await;
    assert_eq!(r.answers[0].record_type(), RecordType::CNAME);
    assert_eq!(addrs(&r.answers), ["192.0.2.1".parse::<IpAddr>().unwrap()]);

    let r = udp(ns, "v4only.example.com.", RecordType::AAAA, None).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert!(r.metadata.authoritative);
    assert_soa_only(&r, "example.com.");

    let r = udp(ns, "nope.example.com.", RecordType::A, None).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    assert!(r.metadata.authoritative);
    assert_soa_only(&r, "example.com.");

    let r = udp(ns, "ttl5.example.com.", RecordType::A, None).await;
    assert_eq!(r.answers[0].ttl, 5);

    let r = udp(ns, "chain.example.com.", RecordType::A, None).await;
    assert_eq!(r.answers.len(), 1);
    match &r.answers[0].data {
        RData::CNAME(c) => assert_eq!(c.0, name("c2.example.net.")),
        other => panic!("{other:?}"),
    }

    // Outside its zones: REFUSED. The question's case is echoed (0x20).
    let r = udp(ns, "www.example.net.", RecordType::A, None).await;
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);
    let r = udp(ns, "wWw.ExAmPlE.cOm.", RecordType::A, None).await;
    assert!(r.queries[0].name.eq_case(&name("wWw.ExAmPlE.cOm.")));
    lab.shutdown().await;
}

#[tokio::test]
async fn glueless_and_poisoned_referrals() {
    let lab = lab(202).await;
    let r = udp(lab.addr(13), "www.example.org.", RecordType::A, None).await;
    assert!(!r.metadata.authoritative);
    assert_eq!(ns_names(&r.authorities), ["ns.dnshost.net."]);
    assert!(r.additionals.is_empty(), "glueless: {r}");

    let r = udp(lab.addr(10), "www.poison.com.", RecordType::A, None).await;
    assert!(!r.metadata.authoritative);
    assert_eq!(ns_names(&r.authorities), ["ns.dnshost.net."]);
    assert_eq!(r.additionals.len(), 1);
    assert_eq!(r.additionals[0].name, name("ns.dnshost.net."));
    assert_eq!(addrs(&r.additionals), [ip(&lab, 66)]);
    // The lie is glue only: com does not answer for it.
    let r = udp(lab.addr(10), "ns.dnshost.net.", RecordType::A, None).await;
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);

    let real = udp(lab.addr(24), "www.poison.com.", RecordType::A, None).await;
    assert_eq!(
        addrs(&real.answers),
        ["192.0.2.77".parse::<IpAddr>().unwrap()]
    );
    let fake = udp(lab.addr(66), "www.poison.com.", RecordType::A, None).await;
    assert_eq!(
        addrs(&fake.answers),
        ["198.51.100.66".parse::<IpAddr>().unwrap()]
    );
    lab.shutdown().await;
}

#[tokio::test]
async fn wildcard_answers() {
    let lab = lab(203).await;
    let ns = lab.addr(25);
    let r = udp(ns, "x7f3-anything.wild.net.", RecordType::A, None).await;
    assert!(r.metadata.authoritative);
    assert_eq!(r.answers[0].name, name("x7f3-anything.wild.net."));
    assert_eq!(addrs(&r.answers), ["192.0.2.50".parse::<IpAddr>().unwrap()]);
    let r = udp(ns, "other.wild.net.", RecordType::TXT, None).await;
    assert_eq!(r.answers.len(), 1);
    let r = udp(ns, "fixed.wild.net.", RecordType::A, None).await;
    assert_eq!(addrs(&r.answers), ["192.0.2.51".parse::<IpAddr>().unwrap()]);
    lab.shutdown().await;
}

#[tokio::test]
async fn big_answers_truncate_over_udp_and_complete_over_tcp() {
    let lab = lab(204).await;
    let ns = lab.addr(20);
    for size in [Some(1232), Some(4096), None] {
        let r = udp(ns, "big.example.com.", RecordType::TXT, size).await;
        assert!(r.metadata.truncation, "{size:?}");
        assert!(r.answers.is_empty());
        assert_eq!(r.queries.len(), 1);
        assert_eq!(r.edns.is_some(), size.is_some());
    }
    let r = tcp(ns, "big.example.com.", RecordType::TXT, Some(1232)).await;
    assert!(!r.metadata.truncation && r.metadata.authoritative);
    assert_eq!(r.answers.len(), 8);
    assert!(r.to_vec().unwrap().len() > 1800);

    let r = udp(ns, "many.example.com.", RecordType::A, None).await;
    assert!(r.metadata.truncation);
    let r = tcp(ns, "many.example.com.", RecordType::A, None).await;
    assert_eq!(r.answers.len(), 100);
    lab.shutdown().await;
}

#[tokio::test]
async fn the_whole_hierarchy_resolves_iteratively() {
    let lab = lab(205).await;
    // Every named server's address is reachable from the root.
    for spec in SERVERS.iter().filter(|s| s.name.ends_with('.')) {
        let got = resolve(&lab, spec.name, RecordType::A).await;
        assert_eq!(addrs(&got), [ip(&lab, spec.host)], "{}", spec.name);
    }
    let cases = [
        ("www.example.com.", "192.0.2.1"),
        ("chain.example.com.", "192.0.2.60"),
        ("www.example.org.", "192.0.2.30"),
        ("www.poison.com.", "192.0.2.77"),
        ("abc.wild.net.", "192.0.2.50"),
        ("www.faulty.com.", "192.0.2.70"),
        ("www.example.net.", "192.0.2.22"),
    ];
    for (qname, want) in cases {
        let got = resolve(&lab, qname, RecordType::A).await;
        assert_eq!(addrs(&got), [want.parse::<IpAddr>().unwrap()], "{qname}");
    }
    lab.shutdown().await;
}

/// A minimal iterative resolver for the test above: follows referrals from the root, uses
/// in-bailiwick glue only, resolves glueless NS names, follows CNAMEs, skips silent servers,
/// accepts lame (AA=0) answers.
fn resolve<'a>(
    lab: &'a Lab,
    qname: &'a str,
    qtype: RecordType,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<Record>> + 'a>> {
    Box::pin(async move {
        let mut servers: Vec<IpAddr> = lab.root_servers();
        let mut out = Vec::new();
        let mut target = name(qname);
        for _ in 0..20 {
            let mut reply = None;
            for s in &servers {
                let IpAddr::V4(s) = s else { continue };
                let q = query(&target.to_string(), qtype, None);
                if let Some((b, _)) = udp_raw(*s, &q, Duration::from_millis(300)).await {
                    let m = Message::from_vec(&b).unwrap();
                    if m.metadata.response_code == ResponseCode::NoError {
                        reply = Some(m);
                        break;
                    }
                }
            }
            let m = reply.expect("no server answered");
            if m.metadata.authoritative || !m.answers.is_empty() {
                out.extend(m.answers.iter().cloned());
                match m.answers.iter().find(|r| r.record_type() == qtype) {
                    Some(_) => {
                        return out
                            .into_iter()
                            .filter(|r| r.record_type() == qtype)
                            .collect()
                    }
                    None => {
                        let Some(RData::CNAME(c)) = m.answers.last().map(|r| &r.data) else {
                            return out;
                        };
                        target = c.0.clone();
                        servers = lab.root_servers();
                        continue;
                    }
                }
            }
            let zone = m.authorities[0].name.clone();
            let mut next = Vec::new();
            for ns in ns_names(&m.authorities) {
                let ns = name(&ns);
                let glue: Vec<IpAddr> = m
                    .additionals
                    .iter()
                    .filter(|r| r.name == ns && zone.zone_of(&ns))
                    .filter_map(|r| r.data.ip_addr())
                    .collect();
                if glue.is_empty() {
                    next.extend(addrs(&resolve(lab, &ns.to_string(), RecordType::A).await));
                } else {
                    next.extend(glue);
                }
            }
            servers = next;
        }
        panic!("too many steps for {qname}");
    })
}

#[tokio::test]
async fn default_faults() {
    let lab = lab(206).await;
    let q = query("www.faulty.com.", RecordType::A, None);
    assert!(udp_raw(lab.addr(27), &q, Duration::from_millis(300))
        .await
        .is_none());
    let r = udp(lab.addr(28), "www.faulty.com.", RecordType::A, None).await;
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);
    assert!(r.answers.is_empty());
    let r = udp(lab.addr(29), "www.faulty.com.", RecordType::A, None).await;
    assert!(r.metadata.authoritative);
    assert_eq!(addrs(&r.answers), ["192.0.2.70".parse::<IpAddr>().unwrap()]);

    let r = udp(lab.addr(31), "www.lame.com.", RecordType::A, None).await;
    assert!(!r.metadata.authoritative);
    assert_eq!(addrs(&r.answers), ["192.0.2.90".parse::<IpAddr>().unwrap()]);

    let r = udp(lab.addr(32), "www.oldedns.com.", RecordType::A, Some(1232)).await;
    assert_eq!(r.metadata.response_code, ResponseCode::FormErr);
    assert!(r.edns.is_none());
    let r = udp(lab.addr(32), "www.oldedns.com.", RecordType::A, None).await;
    assert_eq!(addrs(&r.answers), ["192.0.2.80".parse::<IpAddr>().unwrap()]);

    // Faults can be cleared and set at runtime.
    lab.set_fault(ip(&lab, 27), None);
    let r = udp(lab.addr(27), "www.faulty.com.", RecordType::A, None).await;
    assert!(r.metadata.authoritative);
    lab.set_fault(ip(&lab, 29), Some(Fault::ServFail));
    let r = udp(lab.addr(29), "www.faulty.com.", RecordType::A, None).await;
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
    lab.shutdown().await;
}

#[tokio::test]
async fn byte_level_faults() {
    let lab = lab(207).await;
    let ns = lab.addr(20);
    let q = query("www.example.com.", RecordType::A, Some(1232));

    lab.set_fault(IpAddr::V4(ns), Some(Fault::Drop));
    assert!(udp_raw(ns, &q, Duration::from_millis(300)).await.is_none());
    assert!(
        tcp_raw(ns, &q).await.is_none(),
        "TCP drop closes the connection"
    );

    lab.set_fault(IpAddr::V4(ns), Some(Fault::WrongId));
    let (b, _) = udp_raw(ns, &q, WAIT).await.unwrap();
    let m = Message::from_vec(&b).unwrap();
    assert_ne!(m.metadata.id, q.metadata.id);
    assert_eq!(addrs(&m.answers).len(), 1);

    lab.set_fault(IpAddr::V4(ns), Some(Fault::WrongSource));
    let (b, from) = udp_raw(ns, &q, WAIT).await.unwrap();
    assert_eq!(from, SocketAddr::from((lab.addr(199), 53)));
    assert_eq!(Message::from_vec(&b).unwrap().metadata.id, q.metadata.id);

    lab.set_fault(IpAddr::V4(ns), Some(Fault::Malformed));
    let (b, _) = udp_raw(ns, &q, WAIT).await.unwrap();
    assert_eq!(b[..2], q.metadata.id.to_be_bytes());
    assert!(Message::from_vec(&b).is_err());
    assert!(Message::from_vec(&tcp_raw(ns, &q).await.unwrap()).is_err());

    lab.set_fault(IpAddr::V4(ns), Some(Fault::Truncate));
    let r = udp(ns, "www.example.com.", RecordType::A, None).await;
    assert!(r.metadata.truncation && r.answers.is_empty());
    let r = tcp(ns, "www.example.com.", RecordType::A, None).await;
    assert!(!r.metadata.truncation && r.answers.len() == 1);

    lab.set_fault(IpAddr::V4(ns), Some(Fault::Refused));
    let r = tcp(ns, "www.example.com.", RecordType::A, None).await;
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);

    lab.set_fault(IpAddr::V4(ns), Some(Fault::NoAa));
    let r = tcp(ns, "www.example.com.", RecordType::A, None).await;
    assert!(!r.metadata.authoritative && r.answers.len() == 1);

    lab.set_fault(IpAddr::V4(ns), Some(Fault::FormErrOnEdns));
    let r = udp(ns, "www.example.com.", RecordType::A, Some(1232)).await;
    assert_eq!(r.metadata.response_code, ResponseCode::FormErr);
    let r = udp(ns, "www.example.com.", RecordType::A, None).await;
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);

    // Delay: two queries in flight together take one delay, not two.
    lab.set_fault(
        IpAddr::V4(ns),
        Some(Fault::Delay(Duration::from_millis(400))),
    );
    let start = Instant::now();
    let (a, b) = tokio::join!(
        udp(ns, "www.example.com.", RecordType::A, None),
        udp(ns, "v4only.example.com.", RecordType::A, None)
    );
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_millis(750),
        "{took:?}"
    );
    assert_eq!(a.answers.len() + b.answers.len(), 2);
    lab.shutdown().await;
}

#[tokio::test]
async fn garbage_input_never_kills_a_server() {
    let lab = lab(208).await;
    let ns = lab.addr(20);
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for junk in [
        &b""[..],
        b"\x01",
        &[0xffu8; 11],
        &[0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 63, 1],
    ] {
        sock.send_to(junk, (ns, 53)).await.unwrap();
    }
    // The last one has a readable header: FORMERR with its ID.
    let mut buf = [0u8; 512];
    let (n, _) = tokio::time::timeout(WAIT, sock.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let m = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(
        (m.metadata.id, m.metadata.response_code),
        (0x1234, ResponseCode::FormErr)
    );
    // A response sent to a server is ignored; the server still answers afterwards.
    let mut resp = query("www.example.com.", RecordType::A, None);
    resp.metadata.message_type = hickory_proto::op::MessageType::Response;
    assert!(udp_raw(ns, &resp, Duration::from_millis(200))
        .await
        .is_none());
    let r = udp(ns, "www.example.com.", RecordType::A, None).await;
    assert!(r.metadata.authoritative);
    lab.shutdown().await;
}

#[tokio::test]
async fn query_log_records_every_query() {
    let lab = lab(209).await;
    udp(lab.addr(1), "www.example.com.", RecordType::A, Some(1232)).await;
    tcp(lab.addr(20), "www.example.com.", RecordType::AAAA, None).await;
    let q = query("www.faulty.com.", RecordType::A, None);
    assert!(udp_raw(lab.addr(27), &q, Duration::from_millis(100))
        .await
        .is_none());
    let log = lab.query_log();
    let want = [
        (ip(&lab, 1), RecordType::A, false, true),
        (ip(&lab, 20), RecordType::AAAA, true, false),
        (ip(&lab, 27), RecordType::A, false, false),
    ];
    let got: Vec<_> = log
        .iter()
        .map(|l| (l.server, l.qtype, l.tcp, l.edns))
        .collect();
    assert_eq!(got, want);
    assert_eq!(log[2].name, name("www.faulty.com."));
    lab.clear_query_log();
    assert!(lab.query_log().is_empty());
    lab.shutdown().await;
}

#[tokio::test]
async fn shutdown_frees_the_addresses() {
    let first = lab(210).await;
    let err = Lab::start(LabConfig { net: 210 })
        .await
        .err()
        .expect("double bind");
    let msg = err.to_string();
    assert!(
        msg.contains("127.53.210.") && msg.contains("CAP_NET_BIND_SERVICE"),
        "{msg}"
    );
    // A TCP connection left open must not keep the lab alive.
    let _conn = TcpStream::connect((first.addr(20), 53)).await.unwrap();
    first.shutdown().await;
    let again = lab(210).await;
    let r = udp(again.addr(20), "www.example.com.", RecordType::A, None).await;
    assert!(r.metadata.authoritative);
    again.shutdown().await;
}

#[tokio::test]
async fn root_hints_parse_and_point_at_the_roots() {
    let lab = lab(211).await;
    let hints = lab.root_hints();
    let (_, records) = Parser::new(hints, None, Some(Name::root()))
        .parse()
        .unwrap();
    let mut found: Vec<IpAddr> = records
        .values()
        .flat_map(|rs| rs.records_without_rrsigs())
        .filter_map(|r| r.data.ip_addr())
        .collect();
    found.sort();
    assert_eq!(found, lab.root_servers());
    lab.shutdown().await;
}

/// Mutated queries straight into one server's reply path: it must never panic.
#[tokio::test]
async fn mutated_queries_never_panic() {
    use super::answers::Engine;
    use super::sockets::{Server, Shared};
    use std::sync::Arc;
    let zones = ["com.zone", "example.com.zone"]
        .iter()
        .map(|f| {
            let zf = ZONE_FILES.iter().find(|z| z.file == *f).unwrap();
            load_zone(zf, 212).unwrap()
        })
        .collect();
    let server = Server {
        ip: "127.53.212.20".parse().unwrap(),
        engine: Engine::new(zones).unwrap(),
        shared: Arc::new(Shared::default()),
        alt: Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap()),
    };
    let src: SocketAddr = "127.0.0.1:5353".parse().unwrap();
    let seeds = [
        query("www.example.com.", RecordType::A, Some(1232)),
        query("many.example.com.", RecordType::ANY, None),
        query("x.example.com.", RecordType::AXFR, Some(512)),
    ];
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let iterations = std::env::var("LAB_FUZZ")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    for i in 0..iterations {
        let mut pkt = seeds[i % seeds.len()].to_vec().unwrap();
        for _ in 0..=(next() % 4) {
            let at = (next() as usize) % pkt.len();
            pkt[at] = next() as u8;
        }
        if next() % 8 == 0 {
            pkt.truncate((next() as usize) % pkt.len());
        }
        let reply = server.respond_bytes(&pkt, src, i % 2 == 0).await;
        if let Some(reply) = reply {
            assert!(reply.len() >= 12);
        }
    }
}

// --- DNSSEC: the signed lab (sign.rs) ---

mod dnssec {
    use std::collections::HashSet;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use hickory_proto::dnssec::rdata::{DNSSECRData, DNSKEY, DS, RRSIG};
    use hickory_proto::dnssec::{DigestType, Verifier};
    use hickory_proto::rr::{DNSClass, Name, RData, RecordSet, RecordType, RrKey};
    use hickory_proto::serialize::txt::Parser;

    use super::super::sign::{key_tag, sign_lab, Flaw, SignedLab, KEYTRAP_DECOYS, SIGNED};
    use super::super::zones::{load_zone, LoadedZone, ZONE_FILES};
    use super::super::{Lab, LabConfig, RolloverPhase};
    use super::{name, query, udp};

    fn signed(dir: Option<&std::path::Path>, now: SystemTime) -> (Vec<LoadedZone>, SignedLab) {
        let mut zones: Vec<LoadedZone> = ZONE_FILES
            .iter()
            .map(|z| load_zone(z, 0).unwrap())
            .collect();
        let lab = sign_lab(&mut zones, dir, now).unwrap();
        (zones, lab)
    }

    fn zone<'a>(zones: &'a [LoadedZone], origin: &str) -> &'a LoadedZone {
        zones.iter().find(|z| z.origin == name(origin)).unwrap()
    }

    fn rrset<'a>(z: &'a LoadedZone, owner: &str, rtype: RecordType) -> &'a RecordSet {
        z.records
            .get(&RrKey::new(name(owner).into(), rtype))
            .unwrap_or_else(|| panic!("no {owner} {rtype} in {}", z.origin))
    }

    fn dnskeys(z: &LoadedZone) -> Vec<DNSKEY> {
        rrset(z, &z.origin.to_string(), RecordType::DNSKEY)
            .records_without_rrsigs()
            .filter_map(|r| match &r.data {
                RData::DNSSEC(DNSSECRData::DNSKEY(k)) => Some(k.clone()),
                _ => None,
            })
            .collect()
    }

    fn rrsigs(set: &RecordSet) -> Vec<RRSIG> {
        set.rrsigs()
            .iter()
            .filter_map(|r| match &r.data {
                RData::DNSSEC(DNSSECRData::RRSIG(s)) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }

    fn ds_at(parent: &LoadedZone, cut: &str) -> Vec<DS> {
        rrset(parent, cut, RecordType::DS)
            .records_without_rrsigs()
            .filter_map(|r| match &r.data {
                RData::DNSSEC(DNSSECRData::DS(d)) => Some(d.clone()),
                _ => None,
            })
            .collect()
    }

    fn parent_of(zones: &[LoadedZone], child: &Name) -> LoadedZone {
        zones
            .iter()
            .find(|z| z.cuts.iter().any(|c| c.name == *child))
            .unwrap_or_else(|| panic!("no parent for {child}"))
            .clone()
    }

    /// Is `rtype` at `owner` data the zone answers for (not a delegation NS set or glue)?
    fn authoritative(z: &LoadedZone, owner: &Name, rtype: RecordType) -> bool {
        !z.cuts.iter().any(|c| {
            c.name.zone_of(owner)
                && !(c.name == *owner && matches!(rtype, RecordType::DS | RecordType::NSEC))
        })
    }

    fn secs(t: SystemTime) -> u32 {
        t.duration_since(UNIX_EPOCH).unwrap().as_secs() as u32
    }

    /// Each RRset of each signed zone that the zone is authoritative for carries RRSIGs that
    /// hickory-proto's verifier accepts with one of the zone's DNSKEYs; delegation NS sets and
    /// glue carry none (RFC 4035 §2.2).
    #[test]
    fn signed_zones_sign_every_authoritative_rrset_and_nothing_else() {
        let (zones, _) = signed(None, SystemTime::now());
        for s in SIGNED {
            let z = zone(&zones, s.origin);
            let keys = if let Flaw::Algorithm(_) = s.flaw {
                continue;
            } else {
                dnskeys(z)
            };
            for (key, set) in &z.records {
                let owner = Name::from(&key.name);
                let sigs = rrsigs(set);
                if !authoritative(z, &owner, key.record_type) {
                    assert!(
                        sigs.is_empty(),
                        "{owner} {} signed in {}",
                        key.record_type,
                        s.origin
                    );
                    continue;
                }
                if s.flaw == Flaw::NoRrsigs
                    && !matches!(
                        key.record_type,
                        RecordType::DNSKEY | RecordType::NSEC | RecordType::SOA
                    )
                {
                    assert!(
                        sigs.is_empty(),
                        "{owner} {} signed in nosig",
                        key.record_type
                    );
                    continue;
                }
                assert!(
                    !sigs.is_empty(),
                    "{owner} {} unsigned in {}",
                    key.record_type,
                    s.origin
                );
                let mut verified = 0;
                for sig in &sigs {
                    assert_eq!(sig.input().signer_name, z.origin);
                    let ok = keys
                        .iter()
                        .filter(|k| key_tag(k).unwrap() == sig.input().key_tag)
                        .any(|k| {
                            k.verify_rrsig(&owner, DNSClass::IN, sig, set.records_without_rrsigs())
                                .is_ok()
                        });
                    verified += usize::from(ok);
                }
                let label = format!("{owner} {} in {}", key.record_type, s.origin);
                if s.flaw == Flaw::KeyTrap && key.record_type != RecordType::DNSKEY {
                    // One real signature among the decoys, last.
                    assert_eq!((verified, sigs.len()), (1, KEYTRAP_DECOYS + 1), "{label}");
                } else {
                    assert_eq!(verified, sigs.len(), "{label}: a signature does not verify");
                }
            }
        }
    }

    /// The DS set at each signed child's cut is the SHA-256 digest of the child's key
    /// (hickory-proto's `DS::covers`), except where the case says otherwise.
    #[test]
    fn ds_in_the_parent_matches_the_child_key() {
        let (zones, _) = signed(None, SystemTime::now());
        for s in SIGNED.iter().filter(|s| s.origin != ".") {
            let child = zone(&zones, s.origin);
            let parent = parent_of(&zones, &child.origin);
            let ds = ds_at(&parent, s.origin);
            let keys = dnskeys(child);
            let covered = |d: &DS| keys.iter().any(|k| d.covers(&child.origin, k).unwrap());
            assert!(ds.iter().all(|d| d.digest_type() == DigestType::SHA256));
            match s.flaw {
                Flaw::DsWithoutKey => assert!(!ds.iter().any(covered), "{}", s.origin),
                Flaw::Algorithm(n) => {
                    assert_eq!(ds.len(), 1);
                    assert_eq!(u8::from(ds[0].algorithm()), n);
                    assert!(covered(&ds[0]), "{}", s.origin);
                    assert_eq!(ds[0].key_tag(), key_tag(&keys[0]).unwrap());
                }
                Flaw::Rollover => assert_eq!(ds.len(), 2, "DS for KSK1 and KSK2"),
                _ => {
                    assert_eq!(ds.len(), 1, "{}", s.origin);
                    assert!(covered(&ds[0]), "{}", s.origin);
                }
            }
        }
        // The unsigned lab zones get no DS: their delegations are insecure.
        let com = zone(&zones, "com.");
        assert!(!com
            .records
            .contains_key(&RrKey::new(name("example.com.").into(), RecordType::DS)));
    }

    #[test]
    fn flawed_zones_are_flawed_as_described() {
        let now = SystemTime::now();
        let (zones, _) = signed(None, now);
        let a_sigs = |origin: &str| {
            rrsigs(rrset(
                zone(&zones, origin),
                &format!("www.{origin}"),
                RecordType::A,
            ))
        };
        for sig in a_sigs("expired.net.") {
            assert!(sig.input().sig_expiration.get() < secs(now));
        }
        for sig in a_sigs("notyet.net.") {
            assert!(sig.input().sig_inception.get() > secs(now));
        }
        for sig in a_sigs("secure.net.") {
            assert!(sig.input().sig_inception.get() <= secs(now));
            // Valid beyond a 30-day RFC 5011 hold-down a test may advance its clock over.
            assert!(
                sig.input().sig_expiration.get() > secs(now + Duration::from_secs(60 * 86_400))
            );
        }
        // badnsec: the apex NSEC skips everything after a.badnsec.net.
        let apex = rrset(
            zone(&zones, "badnsec.net."),
            "badnsec.net.",
            RecordType::NSEC,
        );
        match &apex.records_without_rrsigs().next().unwrap().data {
            RData::DNSSEC(DNSSECRData::NSEC(nsec)) => {
                assert_eq!(nsec.next_domain_name(), &name("a.badnsec.net."))
            }
            other => panic!("{other:?}"),
        }
        // NSEC3 parameters: 500 iterations; opt-out; plain.
        let param =
            |origin: &str| match &rrset(zone(&zones, origin), origin, RecordType::NSEC3PARAM)
                .records_without_rrsigs()
                .next()
                .unwrap()
                .data
            {
                RData::DNSSEC(DNSSECRData::NSEC3PARAM(p)) => {
                    (p.iterations(), p.opt_out(), p.salt().len())
                }
                other => panic!("{other:?}"),
            };
        assert_eq!(param("iter500.org."), (500, false, 0));
        assert_eq!(param("optout.com."), (0, true, 0));
        assert_eq!(param("secure.org."), (0, false, 0));
        assert_eq!(param("com."), (0, false, 0));
        // The opt-out zone has no NSEC3 for its unsigned delegation's name.
        let optout = zone(&zones, "optout.com.");
        let nsec3_owners = optout
            .records
            .keys()
            .filter(|k| k.record_type == RecordType::NSEC3)
            .count();
        assert_eq!(nsec3_owners, 3, "apex, ns1 and www; not `unsigned`");
    }

    #[test]
    fn rollover_phases_switch_the_ksks() {
        let (_, lab) = signed(None, SystemTime::now());
        let r = &lab.rollover;
        let [k1, k2] = &r.keys;
        let t1 = key_tag(k1).unwrap();
        let t2 = key_tag(k2).unwrap();
        let revoked = DNSKEY::with_flags(k1.flags() | 0x80, k1.public_key().clone());
        let tr = key_tag(&revoked).unwrap();
        let expect: [(RolloverPhase, Vec<&DNSKEY>, Vec<u16>, u16); 4] = [
            (RolloverPhase::Initial, vec![k1], vec![t1], t1),
            (RolloverPhase::NewKey, vec![k1, k2], vec![t1], t1),
            (
                RolloverPhase::OldRevoked,
                vec![&revoked, k2],
                vec![tr, t2],
                t2,
            ),
            (RolloverPhase::OldRemoved, vec![k2], vec![t2], t2),
        ];
        for (phase, keys, dnskey_signers, data_signer) in expect {
            let records = &r.phases[&phase];
            let set = &records[&RrKey::new(r.origin.clone().into(), RecordType::DNSKEY)];
            let published: HashSet<DNSKEY> = set
                .records_without_rrsigs()
                .filter_map(|x| match &x.data {
                    RData::DNSSEC(DNSSECRData::DNSKEY(k)) => Some(k.clone()),
                    _ => None,
                })
                .collect();
            assert_eq!(published, keys.into_iter().cloned().collect(), "{phase:?}");
            let mut tags: Vec<u16> = rrsigs(set).iter().map(|s| s.input().key_tag).collect();
            tags.sort();
            let mut want = dnskey_signers.clone();
            want.sort();
            assert_eq!(tags, want, "{phase:?} DNSKEY signers");
            for sig in rrsigs(set) {
                let key = published
                    .iter()
                    .find(|k| key_tag(k).unwrap() == sig.input().key_tag)
                    .unwrap();
                key.verify_rrsig(&r.origin, DNSClass::IN, &sig, set.records_without_rrsigs())
                    .unwrap();
            }
            let www = &records[&RrKey::new(name("www.rollover.net.").into(), RecordType::A)];
            let tags: Vec<u16> = rrsigs(www).iter().map(|s| s.input().key_tag).collect();
            assert_eq!(tags, vec![data_signer], "{phase:?} data signer");
        }
        assert!(revoked.revoke());
    }

    /// The anchor's DS line parses as a zone-file record (hickory's parser refuses DNSKEY
    /// records, so the DNSKEY line is compared as text) and covers the root zone's published
    /// key, which the DNSKEY line shows.
    #[test]
    fn trust_anchor_is_the_root_key_in_zone_file_form() {
        let (zones, lab) = signed(None, SystemTime::now());
        let ds_lines: String = lab
            .anchor
            .lines()
            .filter(|l| l.contains("\tDS\t"))
            .map(|l| format!("{l}\n"))
            .collect();
        let (_, records) = Parser::new(ds_lines, None, Some(Name::root()))
            .parse()
            .unwrap();
        let ds = &records[&RrKey::new(Name::root().into(), RecordType::DS)];
        let keys = dnskeys(zone(&zones, "."));
        assert_eq!(keys.len(), 1);
        match &ds.records_without_rrsigs().next().unwrap().data {
            RData::DNSSEC(DNSSECRData::DS(d)) => {
                assert!(d.covers(&Name::root(), &keys[0]).unwrap())
            }
            other => panic!("{other:?}"),
        }
        let key_line = format!(".\t300\tIN\tDNSKEY\t{}", keys[0]);
        assert!(lab.anchor.lines().any(|l| l == key_line), "{}", lab.anchor);
        assert!(key_line.contains("DNSKEY\t257 3 13 "));
    }

    /// With a state directory the keys (so the anchor) survive a restart; without, they do not.
    #[test]
    fn keys_are_kept_in_the_state_dir() {
        let dir = std::env::temp_dir().join(format!("hopdns-lab-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let now = SystemTime::now();
        let first = signed(Some(&dir), now).1.anchor;
        let second = signed(Some(&dir), now).1.anchor;
        let fresh = signed(None, now).1.anchor;
        assert_eq!(first, second);
        assert_ne!(first, fresh);
        let key = dir.join("root-csk.pk8");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // A damaged key is an error naming the file, not a panic or a silent new key.
        std::fs::write(&key, b"not a key").unwrap();
        let mut zones: Vec<LoadedZone> = ZONE_FILES
            .iter()
            .map(|z| load_zone(z, 0).unwrap())
            .collect();
        let err = sign_lab(&mut zones, Some(&dir), now)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("root-csk.pk8"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn has_rrsig(records: &[hickory_proto::rr::Record], covered: RecordType) -> bool {
        records.iter().any(|r| {
            matches!(&r.data, RData::DNSSEC(DNSSECRData::RRSIG(s)) if s.input().type_covered == covered)
        })
    }

    fn do_query(qname: &str, qtype: RecordType) -> hickory_proto::op::Message {
        let mut q = query(qname, qtype, Some(1232));
        if let Some(e) = q.edns.as_mut() {
            e.set_dnssec_ok(true);
        }
        q
    }

    async fn udp_do(
        lab: &Lab,
        host: u8,
        qname: &str,
        qtype: RecordType,
    ) -> hickory_proto::op::Message {
        let q = do_query(qname, qtype);
        let (bytes, _) = super::udp_raw(lab.addr(host), &q, super::WAIT)
            .await
            .expect("no reply");
        hickory_proto::op::Message::from_vec(&bytes).unwrap()
    }

    /// On the wire: RRSIGs only with DO; DO echoed; a signed parent's referral carries the DS
    /// and its RRSIG, or the NSEC/NSEC3 proof that there is none (RFC 4035 §3.1.4).
    #[tokio::test]
    async fn signed_lab_on_the_wire() {
        let lab = Lab::start(LabConfig { net: 213 }).await.unwrap();
        let plain = udp(lab.addr(70), "www.secure.net.", RecordType::A, Some(1232)).await;
        assert_eq!(plain.answers.len(), 1, "{plain}");
        let signed = udp_do(&lab, 70, "www.secure.net.", RecordType::A).await;
        assert!(has_rrsig(&signed.answers, RecordType::A), "{signed}");
        assert!(signed.edns.as_ref().unwrap().flags().dnssec_ok);

        let to_net = udp_do(&lab, 1, "www.secure.net.", RecordType::A).await;
        assert!(
            to_net
                .authorities
                .iter()
                .any(|r| r.record_type() == RecordType::DS),
            "{to_net}"
        );
        assert!(has_rrsig(&to_net.authorities, RecordType::DS), "{to_net}");
        let insecure = udp_do(&lab, 10, "www.example.com.", RecordType::A).await;
        assert!(
            has_rrsig(&insecure.authorities, RecordType::NSEC3),
            "{insecure}"
        );
        assert!(!insecure
            .authorities
            .iter()
            .any(|r| r.record_type() == RecordType::DS));
        let insecure = udp_do(&lab, 12, "www.insecure.net.", RecordType::A).await;
        assert!(
            has_rrsig(&insecure.authorities, RecordType::NSEC),
            "{insecure}"
        );
        // Without DO the referral is as before: NS and glue only.
        let plain = udp(lab.addr(1), "www.secure.net.", RecordType::A, Some(1232)).await;
        assert!(
            plain
                .authorities
                .iter()
                .all(|r| r.record_type() == RecordType::NS),
            "{plain}"
        );

        // The rollover switch reaches the server.
        let keys = |m: &hickory_proto::op::Message| {
            m.answers
                .iter()
                .filter(|r| r.record_type() == RecordType::DNSKEY)
                .count()
        };
        assert_eq!(
            keys(&udp_do(&lab, 70, "rollover.net.", RecordType::DNSKEY).await),
            1
        );
        lab.set_rollover(RolloverPhase::NewKey).await;
        assert_eq!(
            keys(&udp_do(&lab, 70, "rollover.net.", RecordType::DNSKEY).await),
            2
        );
        lab.set_rollover(RolloverPhase::OldRemoved).await;
        let reply = udp_do(&lab, 70, "rollover.net.", RecordType::DNSKEY).await;
        assert_eq!(
            reply.answers.iter().find_map(|r| match &r.data {
                RData::DNSSEC(DNSSECRData::DNSKEY(k)) => Some(k.clone()),
                _ => None,
            }),
            Some(lab.rollover_keys()[1].clone())
        );
        lab.shutdown().await;
    }
}
