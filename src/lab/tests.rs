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
