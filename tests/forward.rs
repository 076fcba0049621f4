//! Issue 15: forward zones (UDP and DNS over TLS), failover between forwarders, stub zones,
//! locally served zones and PTR answers for overrides, with real sockets on the lab.
//! Lab networks 170..=176. The DoT tests start Debian's Unbound as the TLS resolver, with a
//! throwaway CA and certificate made by openssl; without them they say SKIPPED.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use hopdns::cache::Feedback;
use hopdns::config::UpstreamArgs;
use hopdns::lab::{Lab, LabConfig};
use hopdns::resolver::{Outcome, Question, Resolver};
use hopdns::server::{Answerer, BoundServer, ServerConfig};
use hopdns::trace::{Collect, HopEvent};
use tokio_util::sync::CancellationToken;

use crate::util::{answers, name, udp};

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    up: UpstreamArgs,
}

/// A resolver built from `serve`'s upstream flags, iterating the lab from its root.
fn resolver(lab: &Lab, flags: &[&str]) -> Arc<Resolver> {
    let parsed = Flags::try_parse_from(std::iter::once("hopdns").chain(flags.iter().copied()))
        .expect("flags parse");
    let (mut config, transport) = parsed.up.build().expect("flags build");
    let lab_config = hopdns::cli::lab::lab_config(lab).unwrap();
    config.root_hints = lab_config.root_hints;
    config.settings.ipv6 = false;
    config.settings.query_loopback = true;
    // Forwarding is tested as a non-validating resolver does it (the lab's unsigned zones
    // are under a signed root whose key is not the built-in anchor).
    config.settings.dnssec = None;
    Arc::new(Resolver::new(config, Arc::new(transport)))
}

/// Serves `answerer` on `addr` (UDP and TCP) until the token is cancelled.
fn serve(addr: SocketAddr, answerer: Arc<dyn Answerer>) -> CancellationToken {
    let bound = BoundServer::bind(&ServerConfig {
        listen: vec![addr],
        threads: 1,
        ..ServerConfig::default()
    })
    .expect("binds");
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let _ = bound.run(answerer, t).await;
    });
    token
}

fn at(lab: &Lab, host: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(lab.addr(host)), 53)
}

async fn traced(r: &Resolver, qname: &str, qtype: RecordType) -> (Outcome, Vec<HopEvent>) {
    let mut sink = Collect::default();
    let o = r
        .resolve_traced(&Question::new(name(qname), qtype), Some(&mut sink))
        .await;
    (o, sink.0)
}

fn forwarded(events: &[HopEvent]) -> Vec<(SocketAddr, &'static str)> {
    events
        .iter()
        .filter_map(|e| match e {
            HopEvent::Forwarded { server, via, .. } => Some((*server, *via)),
            _ => None,
        })
        .collect()
}

/// Issue 15.3: every default locally served zone is answered by hopdns itself, as Unbound
/// 1.17 answers it (checked by hand with dig against Unbound's defaults: the same rcode, the
/// zone's SOA `localhost. nobody.invalid. 1 3600 1200 604800 10800` in the authority
/// section, `localhost` A/AAAA for every name below it), and no authority hears a query.
#[tokio::test]
async fn every_locally_served_default_is_answered_without_a_query() {
    let lab = Lab::start(LabConfig { net: 170 }).await.unwrap();
    let r = resolver(&lab, &[]);
    let addr = at(&lab, 253);
    let stop = serve(addr, r.clone());
    for zone in hopdns::local::DEFAULT_ZONES {
        let below = format!("x.{zone}.");
        let m = udp(addr, &below, RecordType::A, Some(1232)).await;
        if *zone == "localhost" {
            assert_eq!(answers(&m), [format!("{below} A 127.0.0.1")]);
            continue;
        }
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{below}");
        let soa = &m.authorities[0];
        assert_eq!(soa.name, name(zone), "{below}: the zone's SOA");
        assert_eq!(
            soa.data.to_string(),
            "localhost. nobody.invalid. 1 3600 1200 604800 10800"
        );
    }
    let m = udp(addr, "localhost.", RecordType::AAAA, None).await;
    assert_eq!(answers(&m), ["localhost. AAAA ::1"]);
    let m = udp(addr, "1.0.0.127.in-addr.arpa.", RecordType::PTR, None).await;
    assert_eq!(answers(&m), ["1.0.0.127.in-addr.arpa. PTR localhost."]);
    let m = udp(addr, "168.192.in-addr.arpa.", RecordType::NS, None).await;
    assert_eq!(answers(&m), ["168.192.in-addr.arpa. NS localhost."]);
    assert!(
        lab.query_log().is_empty(),
        "no query left: {:?}",
        lab.query_log()
    );
    // The trace names the zone that answered.
    let (_, events) = traced(&r, "5.1.168.192.in-addr.arpa.", RecordType::PTR).await;
    assert!(events.iter().any(|e| matches!(e,
        HopEvent::Local { zone, .. } if *zone == name("168.192.in-addr.arpa."))));
    // Switched off, the same names go out (to the lab's root, which says NXDOMAIN).
    let off = resolver(&lab, &["--no-local-zones"]);
    let (o, _) = traced(&off, "x.invalid.", RecordType::A).await;
    assert!(matches!(o, Outcome::NxDomain { .. }), "{o:?}");
    assert!(!lab.query_log().is_empty(), "asked the root");
    stop.cancel();
    lab.shutdown().await;
}

/// Issue 15.1 and 15.3: a zone forwarded to another resolver (a second hopdns iterating the
/// lab) is asked with RD and its answers are final; everything else is iterated; a forward
/// zone for a locally served zone overrides the default.
#[tokio::test]
async fn a_forward_zone_goes_to_a_lab_resolver() {
    let lab = Lab::start(LabConfig { net: 171 }).await.unwrap();
    let upstream = resolver(&lab, &[]);
    let up = at(&lab, 252);
    let stop_up = serve(up, upstream);
    let fwd = format!("example.com={up}");
    let home = format!("home.arpa={up}");
    let org = format!("example.org=tcp://{up}");
    let r = resolver(
        &lab,
        &["--forward", &fwd, "--forward", &home, "--forward", &org],
    );
    let (o, events) = traced(&r, "www.example.com.", RecordType::A).await;
    let Outcome::Answer { answers } = &o else {
        panic!("{o:?}")
    };
    assert_eq!(answers[0].data.to_string(), "192.0.2.1");
    assert_eq!(forwarded(&events), [(up, "udp")]);
    // RD was set: only the forwarder was asked by us; the lab heard the forwarder.
    assert!(events.iter().all(|e| !matches!(e,
        HopEvent::Reply { server, .. } if *server != up)));
    // Outside the zone: iteration from the root, no forwarder.
    let (o, events) = traced(&r, "www.example.net.", RecordType::A).await;
    assert!(matches!(o, Outcome::Answer { .. }), "{o:?}");
    assert!(forwarded(&events).is_empty());
    // home.arpa is forwarded, not answered locally (the upstream says NXDOMAIN itself).
    let (_, events) = traced(&r, "printer.home.arpa.", RecordType::A).await;
    assert_eq!(forwarded(&events).len(), 1, "{events:?}");
    // A tcp:// forwarder is asked over TCP.
    let (o, events) = traced(&r, "www.example.org.", RecordType::A).await;
    assert!(matches!(o, Outcome::Answer { .. }), "{o:?}");
    assert_eq!(forwarded(&events), [(up, "tcp")]);
    // The same cache: a second ask is a cache answer.
    let (_, events) = traced(&r, "www.example.com.", RecordType::A).await;
    assert!(forwarded(&events).is_empty(), "from the cache");
    stop_up.cancel();
    lab.shutdown().await;
}

/// Issue 15.1: two forwarders; the one in use dies (its address goes silent: no ICMP, as a
/// host that is down). The first question after that waits out one timeout and is answered
/// by the other; the questions after it go to the live one at once. Printed: the times.
#[tokio::test]
async fn failover_when_a_forwarder_dies() {
    let lab = Lab::start(LabConfig { net: 172 }).await.unwrap();
    let (a, b) = (at(&lab, 251), at(&lab, 252));
    let dead = Arc::new(AtomicBool::new(false));
    let a_answers = Arc::new(Dies {
        inner: resolver(&lab, &[]),
        dead: dead.clone(),
    });
    let stop_a = serve(a, a_answers);
    let stop_b = serve(b, resolver(&lab, &[]));
    let fwd = format!(".={a},{b}");
    let r = resolver(&lab, &["--forward", &fwd]);
    // A is the one in use: known at 1 ms, B at 60 ms (more than one RTT band, 50 ms, apart,
    // so A alone is chosen while it lives).
    let infra = &r.cache().infra;
    infra.report(
        a.ip(),
        Feedback::Answered(Duration::from_millis(1)),
        Instant::now(),
    );
    infra.report(
        b.ip(),
        Feedback::Answered(Duration::from_millis(60)),
        Instant::now(),
    );
    for n in [
        "www.example.com.",
        "www.example.net.",
        "v4only.example.com.",
    ] {
        let (o, events) = traced(&r, n, RecordType::A).await;
        assert!(matches!(o, Outcome::Answer { .. }), "{n}: {o:?}");
        assert_eq!(forwarded(&events), [(a, "udp")], "{n}");
    }
    // A dies: from now on it reads queries and answers nothing.
    dead.store(true, Ordering::Relaxed);
    let mut times = Vec::new();
    let mut met_dead = Vec::new();
    for i in 0..12 {
        let n = format!("n{i}.example.com.");
        let started = Instant::now();
        let (o, events) = traced(&r, &n, RecordType::A).await;
        times.push(started.elapsed());
        assert!(matches!(o, Outcome::NxDomain { .. }), "{n}: {o:?}");
        if events
            .iter()
            .any(|e| matches!(e, HopEvent::NoReply { server, .. } if *server == a))
        {
            met_dead.push(i);
        }
        assert_eq!(forwarded(&events), [(b, "udp")], "answered by the live one");
    }
    println!(
        "failover: question times after the forwarder died: {times:?}; \
         questions that waited for the dead one: {met_dead:?}"
    );
    // Per forwarder: queries, failures, answered and the RTT sum.
    let text = hopdns::metrics::render();
    for family in [
        "hopdns_upstream_queries_total",
        "hopdns_upstream_timeouts_total",
        "hopdns_upstream_answered_total",
        "hopdns_upstream_rtt_seconds_total",
    ] {
        for server in [a.ip(), b.ip()] {
            let row = format!("{family}{{server=\"{server}\"}}");
            assert!(text.contains(&row), "{row} missing");
        }
    }
    assert_eq!(met_dead.first(), Some(&0), "the first question meets it");
    assert!(
        times[0] < Duration::from_millis(1500),
        "one timeout, not the deadline"
    );
    // Its timeout backs off (RFC 6298 §5.5): asked again at most once, then left alone.
    assert!(
        met_dead.len() <= 2 && met_dead.iter().all(|&i| i < 3),
        "{met_dead:?}"
    );
    stop_a.cancel();
    stop_b.cancel();
    lab.shutdown().await;
}

/// A forwarder that can die: once `dead`, it answers nothing at all (no ICMP either, as a
/// host that is down).
struct Dies {
    inner: Arc<Resolver>,
    dead: Arc<AtomicBool>,
}

#[async_trait::async_trait]
impl Answerer for Dies {
    async fn answer(&self, q: &Question, client: SocketAddr) -> Outcome {
        if self.dead.load(Ordering::Relaxed) {
            return Outcome::Drop;
        }
        self.inner.answer(q, client).await
    }
}

/// Issue 15.2: a stub zone's servers are where iteration starts (RD clear), even when the
/// root cannot be reached at all; referrals below them are followed.
#[tokio::test]
async fn a_stub_zone_starts_at_its_servers() {
    let lab = Lab::start(LabConfig { net: 173 }).await.unwrap();
    // com's servers: example.com is a referral below them.
    let com = format!("com={}", at(&lab, 10));
    let r = resolver(&lab, &["--stub", &com]);
    // Every root server is dead from now on.
    for ip in lab.root_servers() {
        lab.set_fault(ip, Some(hopdns::lab::Fault::Drop));
    }
    let (o, events) = traced(&r, "www.example.com.", RecordType::A).await;
    let Outcome::Answer { answers } = &o else {
        panic!("{o:?}\n{events:#?}")
    };
    assert_eq!(answers[0].data.to_string(), "192.0.2.1");
    let stub_hops = events
        .iter()
        .filter(|e| matches!(e, HopEvent::Forwarded { forward: false, .. }))
        .count();
    assert!(stub_hops >= 1, "{events:#?}");
    assert!(lab
        .query_log()
        .iter()
        .all(|q| !lab.root_servers().contains(&q.server)));
    lab.shutdown().await;
}

/// Issue 15.4: an override in the rules file answers the PTR query for its address (and the
/// RFC 6303 default for 168.192.in-addr.arpa does not hide it: the rules come first).
#[tokio::test]
async fn ptr_for_an_override() {
    let lab = Lab::start(LabConfig { net: 174 }).await.unwrap();
    let dir = scratch(174);
    let rules = dir.join("rules.toml");
    std::fs::write(dir.join("hosts"), "192.168.1.7 printer.lan\n").unwrap();
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"nas.lan\"\naction = \"override\"\na = [\"192.168.1.5\"]\n\n\
         [[blocklist]]\nfile = \"hosts\"\nformat = \"hosts\"\n",
    )
    .unwrap();
    let redirect =
        Arc::new(hopdns::redirect::Redirector::from_file(resolver(&lab, &[]), &rules).unwrap());
    let addr = at(&lab, 253);
    let stop = serve(addr, redirect);
    let m = udp(addr, "5.1.168.192.in-addr.arpa.", RecordType::PTR, None).await;
    assert_eq!(answers(&m), ["5.1.168.192.in-addr.arpa. PTR nas.lan."]);
    let m = udp(addr, "7.1.168.192.in-addr.arpa.", RecordType::PTR, None).await;
    assert_eq!(answers(&m), ["7.1.168.192.in-addr.arpa. PTR printer.lan."]);
    // An address without an override: the locally served zone's NXDOMAIN.
    let m = udp(addr, "9.1.168.192.in-addr.arpa.", RecordType::PTR, None).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(lab.query_log().is_empty());
    stop.cancel();
    lab.shutdown().await;
}

fn scratch(net: u8) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hopdns-forward-{net}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Unbound serving DNS over TLS on `addr`:853 with a certificate for `tls_name` from a
/// throwaway CA, iterating the lab. Killed on drop.
pub struct TlsUnbound {
    child: Child,
    pub ca: PathBuf,
    pub addr: SocketAddr,
}

impl Drop for TlsUnbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The CA and a certificate for `tls_name`, made by openssl in `dir`.
fn make_certs(dir: &Path, tls_name: &str) -> Option<()> {
    let run = |args: &[&str]| {
        Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()
            .filter(|s| s.success())
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=hopdns test CA",
        ],
    ]
    .concat())?;
    run(&[
        &["req"][..],
        &ec,
        &[
            "-keyout",
            "key.pem",
            "-out",
            "req.csr",
            "-subj",
            &format!("/CN={tls_name}"),
        ],
    ]
    .concat())?;
    std::fs::write(
        dir.join("ext.cnf"),
        format!("subjectAltName=DNS:{tls_name}\nbasicConstraints=CA:FALSE\n"),
    )
    .ok()?;
    run(&[
        "x509",
        "-req",
        "-in",
        "req.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ])?;
    Some(())
}

/// Starts Unbound (DoT on `addr`:853, iterating `lab`); `None` (test skipped) without
/// unbound or openssl.
pub async fn tls_unbound(lab: &Lab, host: u8, tls_name: &str) -> Option<TlsUnbound> {
    let dir = scratch(lab.net()).join(format!("unbound-{host}"));
    std::fs::create_dir_all(&dir).unwrap();
    make_certs(&dir, tls_name)?;
    std::fs::write(dir.join("hints"), lab.root_hints()).unwrap();
    let ip = lab.addr(host);
    let conf = format!(
        "server:\n  interface: {ip}@853\n  tls-port: 853\n  tls-service-key: \"{d}/key.pem\"\n  \
         tls-service-pem: \"{d}/cert.pem\"\n  do-daemonize: no\n  username: \"\"\n  chroot: \"\"\n  \
         directory: \"{d}\"\n  pidfile: \"{d}/unbound.pid\"\n  use-syslog: no\n  logfile: \"\"\n  \
         access-control: 127.0.0.0/8 allow\n  do-not-query-localhost: no\n  do-ip6: no\n  \
         num-threads: 1\n  module-config: \"iterator\"\n  root-hints: \"{d}/hints\"\n  \
         outgoing-interface: {ip}\n",
        d = dir.display()
    );
    std::fs::write(dir.join("unbound.conf"), conf).unwrap();
    let child = Command::new("unbound")
        .args(["-d", "-c"])
        .arg(dir.join("unbound.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let addr = SocketAddr::new(IpAddr::V4(ip), 853);
    let unbound = TlsUnbound {
        child,
        ca: dir.join("ca.pem"),
        addr,
    };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Some(unbound);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("unbound did not start on {addr}");
}

/// Issue 15.1: everything forwarded over DNS over TLS to a local TLS resolver (Unbound),
/// the certificate checked against the CA file; the second question reuses the connection.
/// A certificate for another name is refused: SERVFAIL, nothing sent over it.
#[tokio::test]
async fn forward_all_over_dot_and_a_wrong_name_is_refused() {
    let lab = Lab::start(LabConfig { net: 175 }).await.unwrap();
    let Some(unbound) = tls_unbound(&lab, 250, "dns.lab.test").await else {
        println!("SKIPPED: unbound or openssl missing (apt-get install unbound openssl)");
        lab.shutdown().await;
        return;
    };
    let ca = unbound.ca.to_str().unwrap();
    let good = format!(".=tls://{}@dns.lab.test", unbound.addr);
    let r = resolver(&lab, &["--forward", &good, "--forward-ca-file", ca]);
    let (o, events) = traced(&r, "www.example.com.", RecordType::A).await;
    let Outcome::Answer { answers } = &o else {
        panic!("{o:?}\n{events:#?}")
    };
    assert_eq!(answers[0].data.to_string(), "192.0.2.1");
    assert_eq!(forwarded(&events), [(unbound.addr, "tls, new connection")]);
    let (o, events) = traced(&r, "www.example.net.", RecordType::A).await;
    assert!(matches!(o, Outcome::Answer { .. }), "{o:?}");
    assert_eq!(
        forwarded(&events),
        [(unbound.addr, "tls, reused connection")]
    );

    // Pipelined on the one connection, answered out of order: a slow question goes out first
    // (shop.com's server answers after 300 ms), three quick ones after it; the quick ones
    // come back first, and nobody opens a new connection.
    lab.set_fault(
        lab.addr(26).into(),
        Some(hopdns::lab::Fault::Delay(Duration::from_millis(300))),
    );
    let started = Instant::now();
    let ask = |n: &'static str, t: RecordType| {
        let r = r.clone();
        tokio::spawn(async move {
            let (o, events) = traced(&r, n, t).await;
            (o, forwarded(&events), started.elapsed())
        })
    };
    let slow = ask("www.shop.com.", RecordType::A);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let quick = [
        ask("www.example.com.", RecordType::AAAA),
        ask("v4only.example.com.", RecordType::A),
        ask("alias.example.com.", RecordType::A),
    ];
    let (o, via, slow_done) = slow.await.unwrap();
    assert!(matches!(o, Outcome::Answer { .. }), "{o:?}");
    assert_eq!(via, [(unbound.addr, "tls, reused connection")]);
    for q in quick {
        let (o, via, done) = q.await.unwrap();
        assert!(
            matches!(o, Outcome::Answer { .. } | Outcome::NoData { .. }),
            "{o:?}"
        );
        assert_eq!(via, [(unbound.addr, "tls, reused connection")]);
        assert!(
            done < slow_done,
            "{done:?} before the slow one's {slow_done:?}"
        );
    }

    // The same server under a name its certificate does not carry.
    let wrong = format!(".=tls://{}@other.lab.test", unbound.addr);
    let r = resolver(&lab, &["--forward", &wrong, "--forward-ca-file", ca]);
    let (o, events) = traced(&r, "www.example.org.", RecordType::A).await;
    assert!(matches!(o, Outcome::ServFail(_)), "{o:?}");
    let refused = events.iter().find_map(|e| match e {
        HopEvent::NoReply { error, .. } => Some(error.clone()),
        _ => None,
    });
    let refused = refused.expect("a no-reply hop");
    assert!(
        refused.contains("other.lab.test") && refused.contains("refused"),
        "{refused}"
    );

    // The log line, as an operator sees it: `hopdns trace` with the same flags.
    let hints = scratch(175).join("hints");
    std::fs::write(&hints, lab.root_hints()).unwrap();
    let out = Command::new(crate::util::bin())
        .args([
            "trace",
            "www.example.org",
            "--forward",
            &wrong,
            "--forward-ca-file",
            ca,
        ])
        .args([
            "--root-hints",
            hints.to_str().unwrap(),
            "--no-ipv6",
            "--log-level",
            "warn",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("certificate or handshake refused") && stderr.contains("other.lab.test"),
        "{stderr}"
    );
    drop(unbound);
    lab.shutdown().await;
}

/// Config errors name the problem and the fix.
#[test]
fn bad_forward_flags_are_refused_with_the_fix() {
    for (flags, expect) in [
        (&["--forward", "corp.example"][..], "ZONE=SERVER"),
        (
            &["--forward", "corp.example=tls://10.0.0.1"][..],
            "tls://IP@NAME",
        ),
        (
            &["--forward", "x=10.0.0.1", "--stub", "x=10.0.0.2"][..],
            "configured twice",
        ),
        (&["--forward-first", "corp.example"][..], "no --forward"),
        (
            &[
                "--forward",
                "x=tls://10.0.0.1@a.b",
                "--forward-ca-file",
                "/nonexistent.pem",
            ][..],
            "/nonexistent.pem",
        ),
    ] {
        let e = match Flags::try_parse_from(std::iter::once("hopdns").chain(flags.iter().copied()))
        {
            Err(e) => e.to_string(),
            Ok(f) => f.up.build().expect_err("an error").to_string(),
        };
        assert!(e.contains(expect), "{flags:?}: {e}");
    }
}

fn hopdns(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(crate::util::bin())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The config file takes `[[forward]]` and `[[stub]]` tables; `config check` reports a bad
/// server with its line and the forms that work; `config defaults` lists the locally
/// served zones.
#[test]
fn config_file_forward_and_stub_tables() {
    let dir = scratch(176);
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        "listen = [\"127.0.0.1:5300\"]\n\n[[forward]]\nzone = \"home.lan\"\n\
         servers = [\"192.168.1.1\", \"tcp://192.168.1.2:5353\"]\nfirst = true\n\n\
         [[forward]]\nzone = \"168.192.in-addr.arpa\"\nservers = [\"192.168.1.1\"]\n\n\
         [[stub]]\nzone = \"corp.example\"\nservers = [\"10.0.0.53\"]\n",
    )
    .unwrap();
    let (code, out, err) = hopdns(&["config", "check", good.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[[forward]]\nzone = \".\"\nservers = [\"tls://9.9.9.9\"]\n\n[[stub]]\nzone = \"x\"\nfirst = true\n",
    )
    .unwrap();
    let (code, out, err) = hopdns(&["config", "check", bad.to_str().unwrap()]);
    let all = format!("{out}{err}");
    assert_ne!(code, 0, "{all}");
    assert!(all.contains("tls://IP@NAME"), "{all}");
    assert!(all.contains("`first` is not one of"), "{all}");
    let (code, out, _) = hopdns(&["config", "defaults"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("local-zone = [\"localhost\", \"127.in-addr.arpa\""),
        "{out}"
    );
    assert!(out.contains("no-local-zones = false") || out.contains("# no-local-zones"));
}
