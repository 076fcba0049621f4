//! DNS over TLS (RFC 7858) and DNS over HTTPS (RFC 8484) with real clients: kdig (Debian's
//! knot-dnsutils), curl, Python's dnspython, and a rustls client of the test's own. Each test
//! makes a throwaway CA and a server certificate for `dns.lab.test` and its lab address
//! (rcgen). Lab networks 170-175.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use hopdns::lab::{Lab, LabConfig};
use hopdns::resolver::Resolver;
use hopdns::server::{Answerer, BoundServer, Proto, ServerConfig, TlsCerts};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::util::{self, query};

pub(crate) const HOST: &str = "dns.lab.test";

/// A throwaway CA and the server certificate it issued, as PEM files in `dir`.
pub(crate) struct Pki {
    dir: PathBuf,
    ca: CertifiedIssuer<'static, KeyPair>,
    ip: IpAddr,
}

impl Pki {
    pub(crate) fn new(name: &str, ip: IpAddr) -> Pki {
        let dir = std::env::temp_dir().join(format!("hopdns-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "hopdns test CA");
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        let pki = Pki { dir, ca, ip };
        pki.issue();
        pki
    }

    /// A new server certificate and key in cert.pem and key.pem (written whole, then
    /// renamed: as an ACME client renews).
    fn issue(&self) -> String {
        let params = CertificateParams::new(vec![HOST.to_string(), self.ip.to_string()]).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        for (file, text) in [("cert.pem", cert.pem()), ("key.pem", key.serialize_pem())] {
            let tmp = self.dir.join(format!("{file}.new"));
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, self.dir.join(file)).unwrap();
        }
        cert.pem()
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    fn certs(&self) -> Arc<TlsCerts> {
        TlsCerts::load(&self.dir.join("cert.pem"), &self.dir.join("key.pem")).unwrap()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A server on 127.53.`net`.253: UDP/TCP on 53, DoT on 853, DoH on 443.
struct Front {
    token: CancellationToken,
    ip: IpAddr,
    dot: SocketAddr,
    doh: SocketAddr,
    certs: Arc<TlsCerts>,
}

impl Drop for Front {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

fn lab_ip(net: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 53, net, util::RESOLVER_HOST))
}

async fn front(
    pki: &Pki,
    answerer: Arc<dyn Answerer>,
    change: impl FnOnce(&mut ServerConfig),
) -> Front {
    front_serving(pki, answerer, None, change).await
}

/// [`front`], answering cache hits from `hits` on the fast path as `serve` does.
async fn front_serving(
    pki: &Pki,
    answerer: Arc<dyn Answerer>,
    hits: Option<Arc<hopdns::cache::Cache>>,
    change: impl FnOnce(&mut ServerConfig),
) -> Front {
    let ip = pki.ip;
    let certs = pki.certs();
    let mut cfg = ServerConfig {
        listen: vec![SocketAddr::new(ip, 53)],
        threads: 1,
        listen_tls: vec![SocketAddr::new(ip, 853)],
        listen_https: vec![SocketAddr::new(ip, 443)],
        tls_certs: Some(certs.clone()),
        ..ServerConfig::default()
    };
    change(&mut cfg);
    let mut bound = BoundServer::bind(&cfg).expect("binds (tests run as root)");
    if let Some(cache) = hits {
        bound = bound.serve_hits_from(cache);
    }
    let addrs = bound.encrypted_addrs();
    let find = |p: Proto| {
        addrs
            .iter()
            .find(|(_, q)| *q == p)
            .map(|(a, _)| *a)
            .unwrap()
    };
    let (dot, doh) = (find(Proto::Tls), find(Proto::Https));
    let token = CancellationToken::new();
    tokio::spawn(bound.run(answerer, token.clone()));
    Front {
        token,
        ip,
        dot,
        doh,
        certs,
    }
}

/// Runs a client program to its end (off the runtime's threads); stdout, or a panic with
/// its stderr.
async fn run(program: &str, args: Vec<String>) -> String {
    let name = program.to_string();
    let out = tokio::task::spawn_blocking(move || Command::new(&name).args(&args).output())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{program} cannot run ({e}); .ci/run installs it"));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{program} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn kdig(front: &Front, pki: &Pki, transport: &str, name: &str) -> Vec<String> {
    let port = if transport == "+tls" {
        front.dot.port()
    } else {
        front.doh.port()
    };
    vec![
        format!("@{}", front.ip),
        "-p".into(),
        port.to_string(),
        transport.into(),
        format!("+tls-ca={}", pki.ca_file().display()),
        format!("+tls-hostname={HOST}"),
        "+timeout=5".into(),
        "+retry=0".into(),
        name.into(),
        "A".into(),
    ]
}

fn curl(front: &Front, pki: &Pki, extra: &[&str], url_tail: &str, out: &Path) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "-sS".into(),
        "--max-time".into(),
        "5".into(),
        "--cacert".into(),
        pki.ca_file().display().to_string(),
        "--resolve".into(),
        format!("{HOST}:{}:{}", front.doh.port(), front.ip),
        "-D".into(),
        "-".into(),
        "-o".into(),
        out.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(format!(
        "https://{HOST}:{}/dns-query{url_tail}",
        front.doh.port()
    ));
    args
}

/// The lab's hierarchy behind a resolver with every listener, and clients of four kinds:
/// answers (a miss, then a hit) and their transport-specific marks (ALPN, padding,
/// Cache-Control, HTTP/2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kdig_curl_and_dnspython_get_answers_over_dot_and_doh() {
    let net = 170;
    let lab = Lab::start(LabConfig { net }).await.expect("lab starts");
    let config = hopdns::cli::lab::lab_config(&lab).unwrap();
    let resolver = Arc::new(Resolver::new(
        config,
        Arc::new(hopdns::transport::NetTransport::default()),
    ));
    let pki = Pki::new("dot-doh", lab_ip(net));
    let hits = resolver.cache().clone();
    let front = front_serving(&pki, resolver, Some(hits), |_| {}).await;

    // kdig over TLS: a miss, then the same name again (a hit, which the fast path leaves to
    // the normal path because it asks for padding); padded to 468 (RFC 8467).
    for _ in 0..2 {
        let out = run("kdig", kdig(&front, &pki, "+tls", "www.example.com")).await;
        assert!(out.contains("TLS session (TLS1.3)"), "{out}");
        assert!(
            out.contains("www.example.com.") && out.contains("192.0.2.1"),
            "{out}"
        );
        let received: usize = out
            .split(";; Received ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no size in {out}"));
        assert_eq!(received % 468, 0, "reply padded to a 468-byte block: {out}");
    }
    // Without padding, the hit comes from the fast path: the same answer, unpadded.
    let mut args = kdig(&front, &pki, "+tls", "www.example.com");
    args.push("+nopadding".into());
    let out = run("kdig", args).await;
    assert!(
        out.contains("www.example.com.") && out.contains("192.0.2.1"),
        "{out}"
    );
    assert!(!out.contains("PADDING"), "{out}");
    // kdig over HTTPS (HTTP/2, POST by default, then GET).
    for method in ["+https", "+https-get"] {
        let mut args = kdig(&front, &pki, method, "www.example.org");
        if method == "+https-get" {
            args.push("+https".into());
        }
        let out = run("kdig", args).await;
        assert!(out.contains("HTTP session (HTTP/2-"), "{out}");
        assert!(out.contains("www.example.org."), "{out}");
    }

    // curl: GET with ?dns= (base64url, no padding) and POST, over HTTP/2 and HTTP/1.1.
    let body = pki.dir.join("reply.bin");
    let mut q = query("www.example.com", RecordType::A, None);
    q.metadata.id = 0;
    let wire = q.to_vec().unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&wire);
    let post_file = pki.dir.join("query.bin");
    std::fs::write(&post_file, &wire).unwrap();
    let post = format!("@{}", post_file.display());
    for (version, expect) in [("--http2", "HTTP/2 200"), ("--http1.1", "HTTP/1.1 200")] {
        let get = run(
            "curl",
            curl(&front, &pki, &[version], &format!("?dns={b64}"), &body),
        )
        .await;
        assert!(get.starts_with(expect), "{get}");
        assert!(
            get.to_ascii_lowercase()
                .contains("content-type: application/dns-message"),
            "{get}"
        );
        let max_age: u32 = get
            .to_ascii_lowercase()
            .split("cache-control: max-age=")
            .nth(1)
            .and_then(|r| r.split_whitespace().next().map(str::to_string))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no max-age in {get}"));
        let reply = Message::from_vec(&std::fs::read(&body).unwrap()).unwrap();
        assert_eq!(util::answers(&reply), ["www.example.com. A 192.0.2.1"]);
        let smallest = reply.answers.iter().map(|r| r.ttl).min().unwrap();
        assert!(
            max_age <= smallest && max_age + 5 >= smallest,
            "{max_age} vs {smallest}"
        );
        let posted = run(
            "curl",
            curl(
                &front,
                &pki,
                &[
                    version,
                    "-H",
                    "content-type: application/dns-message",
                    "--data-binary",
                    &post,
                ],
                "",
                &body,
            ),
        )
        .await;
        assert!(posted.starts_with(expect), "{posted}");
        let reply = Message::from_vec(&std::fs::read(&body).unwrap()).unwrap();
        assert_eq!(util::answers(&reply), ["www.example.com. A 192.0.2.1"]);
    }
    // HTTP errors for HTTP problems.
    let bad = run("curl", curl(&front, &pki, &["--http2"], "?dns=%%%", &body)).await;
    assert!(bad.starts_with("HTTP/2 400"), "{bad}");
    let wrong = run(
        "curl",
        curl(&front, &pki, &["--http2", "-X", "PUT"], "", &body),
    )
    .await;
    assert!(wrong.starts_with("HTTP/2 405"), "{wrong}");

    // dnspython: DoT and DoH (httpx with HTTP/2).
    let script = format!(
        r#"
import ssl, dns.message, dns.query
q = dns.message.make_query("www.example.net", "A")
ctx = ssl.create_default_context(cafile="{ca}")
r = dns.query.tls(q, "{ip}", port={dot}, ssl_context=ctx, server_hostname="{host}", timeout=5)
print("tls", r.answer[0].to_text())
r = dns.query.https(q, "https://{host}:{doh}/dns-query", bootstrap_address="{ip}", verify="{ca}", timeout=5)
print("https", r.answer[0].to_text())
r = dns.query.https(q, "https://{host}:{doh}/dns-query", bootstrap_address="{ip}", verify="{ca}", timeout=5, post=False)
print("https-get", r.answer[0].to_text())
"#,
        ca = pki.ca_file().display(),
        ip = front.ip,
        dot = front.dot.port(),
        doh = front.doh.port(),
        host = HOST,
    );
    let out = run("/usr/bin/python3", vec!["-c".into(), script]).await;
    assert_eq!(out.matches("www.example.net. ").count(), 3, "{out}");

    let metrics = hopdns::metrics::render();
    for line in [
        "hopdns_transport_replies_total{transport=\"tls\"}",
        "hopdns_transport_replies_total{transport=\"https\"}",
        "hopdns_tls_handshakes_total{transport=\"tls\"}",
        "hopdns_tls_handshakes_total{transport=\"https\"}",
    ] {
        let n = value(&metrics, line);
        assert!(n >= 2.0, "{line} {n}");
    }
    drop(front);
    lab.shutdown().await;
}

fn value(metrics: &str, line: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(line))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {line} in\n{metrics}"))
}

/// A rustls client trusting the test CA; `dot`: ALPN "dot", else "h2".
fn client_config(pki: &Pki) -> Arc<rustls::ClientConfig> {
    client_config_for(pki, rustls::DEFAULT_VERSIONS)
}

/// [`client_config`] speaking only `versions` of TLS.
pub(crate) fn client_config_for(
    pki: &Pki,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.der().clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"dot".to_vec()];
    Arc::new(config)
}

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

async fn dot_connect(config: &Arc<rustls::ClientConfig>, addr: SocketAddr) -> std::io::Result<Tls> {
    let tcp = TcpStream::connect(addr).await?;
    let name = rustls_pki_types::ServerName::try_from(HOST).unwrap();
    tokio_rustls::TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await
}

async fn dot_send(s: &mut Tls, name: &str, id: u16) -> std::io::Result<()> {
    let mut q = query(name, RecordType::A, Some(1232));
    q.metadata.id = id;
    let wire = q.to_vec().unwrap();
    let mut framed = (wire.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&wire);
    s.write_all(&framed).await?;
    s.flush().await
}

async fn dot_recv(s: &mut Tls) -> std::io::Result<Message> {
    let len = tokio::time::timeout(Duration::from_secs(6), s.read_u16())
        .await
        .map_err(|_| std::io::Error::other("no reply in 6 s"))??;
    let mut buf = vec![0u8; usize::from(len)];
    s.read_exact(&mut buf).await?;
    Message::from_vec(&buf).map_err(std::io::Error::other)
}

/// Certificate renewal under load: new connections (full and resumed handshakes) and one
/// long pipelined connection keep querying while the files are replaced and reloaded
/// three times; no query fails, and a handshake after the reload sees the new certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_reload_under_load_fails_no_query() {
    let pki = Pki::new("reload", lab_ip(171));
    let front = front(&pki, Arc::new(util::Fixed), |_| {}).await;
    let config = client_config(&pki);
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let stop = CancellationToken::new();
    let mut clients = Vec::new();
    for c in 0..3u16 {
        let (config, ok, failed, stop, addr) = (
            config.clone(),
            ok.clone(),
            failed.clone(),
            stop.clone(),
            front.dot,
        );
        clients.push(tokio::spawn(async move {
            let mut long = dot_connect(&config, addr).await.unwrap();
            let mut id = 0u16;
            while !stop.is_cancelled() {
                id = id.wrapping_add(1);
                // One query on a fresh connection, one on the long one.
                let fresh = async {
                    let mut s = dot_connect(&config, addr).await?;
                    dot_send(&mut s, "fresh.example", id).await?;
                    dot_recv(&mut s).await
                };
                let on_long = async {
                    dot_send(&mut long, &format!("long{c}.example"), id).await?;
                    dot_recv(&mut long).await
                };
                for result in [fresh.await, on_long.await] {
                    match result {
                        Ok(m) if m.metadata.id == id && m.answers.len() == 1 => {
                            ok.fetch_add(1, Ordering::Relaxed)
                        }
                        other => {
                            eprintln!("failed: {other:?}");
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            }
        }));
    }
    // Each reload lands while queries flow: at least 20 more answered before each, and
    // after the last (a condition, not a fixed sleep).
    let answered_more = |n: usize| {
        let ok = ok.clone();
        let from = ok.load(Ordering::Relaxed);
        async move {
            util::until(
                "queries answered under load",
                Duration::from_secs(10),
                || ok.load(Ordering::Relaxed) >= from + n,
            )
            .await
        }
    };
    let mut last_pem = String::new();
    for _ in 0..3 {
        answered_more(20).await;
        last_pem = pki.issue();
        front.certs.reload().expect("the new pair loads");
    }
    answered_more(20).await;
    stop.cancel();
    for c in clients {
        c.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert_eq!(failed, 0, "{ok} answered");
    assert!(ok >= 12, "some load: {ok}");
    // A new full handshake (a client without a session to resume) shows the last one.
    let s = dot_connect(&client_config(&pki), front.dot).await.unwrap();
    let seen = s.get_ref().1.peer_certificates().unwrap()[0].clone();
    let expected = rustls_pki_types::CertificateDer::from_pem_slice(last_pem.as_bytes()).unwrap();
    assert_eq!(seen, expected);
    // A broken file changes nothing.
    std::fs::write(pki.dir.join("key.pem"), "not a key").unwrap();
    let e = front.certs.reload().unwrap_err();
    assert!(e.contains("key.pem") && e.contains("--tls-key"), "{e}");
    let s = dot_connect(&client_config(&pki), front.dot).await.unwrap();
    assert_eq!(s.get_ref().1.peer_certificates().unwrap()[0], expected);
    // The second connection of a client with a session resumes it.
    let before = value(
        &hopdns::metrics::render(),
        "hopdns_tls_resumptions_total{transport=\"tls\"}",
    );
    let mut s = dot_connect(&config, front.dot).await.unwrap();
    dot_send(&mut s, "resume.example", 7).await.unwrap();
    dot_recv(&mut s).await.unwrap();
    let after = value(
        &hopdns::metrics::render(),
        "hopdns_tls_resumptions_total{transport=\"tls\"}",
    );
    assert!(after > before, "resumed: {before} -> {after}");
    // TLS 1.2 clients are served and resume too.
    let tls12 = client_config_for(&pki, &[&rustls::version::TLS12]);
    for id in [12, 13] {
        let mut s = dot_connect(&tls12, front.dot).await.unwrap();
        assert_eq!(
            s.get_ref().1.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_2)
        );
        dot_send(&mut s, "tls12.example", id).await.unwrap();
        assert_eq!(dot_recv(&mut s).await.unwrap().metadata.id, id);
    }
    let resumed = value(
        &hopdns::metrics::render(),
        "hopdns_tls_resumptions_total{transport=\"tls\"}",
    );
    assert!(resumed > after, "TLS 1.2 resumed: {after} -> {resumed}");
}

use rustls_pki_types::pem::PemObject;

/// A client that opens a connection and never finishes its handshake is closed at the
/// handshake timeout, and counted as a failed handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_handshake_is_closed_at_the_timeout() {
    let pki = Pki::new("stall", lab_ip(172));
    let front = front(&pki, Arc::new(util::Fixed), |c| {
        c.tls_handshake_timeout = Duration::from_millis(300);
    })
    .await;
    for addr in [front.dot, front.doh] {
        let started = Instant::now();
        let mut s = TcpStream::connect(addr).await.unwrap();
        // Half a ClientHello record header, then nothing.
        s.write_all(&[0x16, 0x03]).await.unwrap();
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("closed well before 5 s")
            .unwrap_or(0);
        assert_eq!(n, 0, "closed without a reply");
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(250), "{waited:?}");
    }
    let metrics = hopdns::metrics::render();
    assert!(
        value(
            &metrics,
            "hopdns_tls_handshake_failures_total{transport=\"tls\"}"
        ) >= 1.0
    );
    assert!(
        value(
            &metrics,
            "hopdns_tls_handshake_failures_total{transport=\"https\"}"
        ) >= 1.0
    );
}

/// A connection from `source` (the kernel would pick 127.0.0.1 for a lab address).
async fn connect_from(source: &str, addr: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(addr).await.unwrap()
}

fn proxy_header(client: SocketAddr, server: SocketAddr) -> Vec<u8> {
    use ppp::v2::{Builder, Command, Protocol, Version};
    Builder::with_addresses(
        Version::Two | Command::Proxy,
        Protocol::Stream,
        (client, server),
    )
    .build()
    .unwrap()
}

/// The proxy's address in the proxy test.
const PROXY: &str = "127.53.173.9";

/// Behind a proxy that speaks PROXY protocol v2: a client outside the allow-list is closed
/// before any TLS byte is sent back; one inside it is served, and the query log and the
/// per-client caps see it, not the proxy. A trusted proxy that sends no header is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_proxy_a_refused_client_is_closed_before_the_handshake() {
    let pki = Pki::new("proxy", lab_ip(173));
    let log = pki.dir.join("query.log");
    let front = front(&pki, Arc::new(util::Fixed), |c| {
        c.allow = vec!["198.51.100.0/24".parse().unwrap()];
        c.proxy_protocol_from = vec![format!("{PROXY}/32").parse().unwrap()];
        c.tls_handshake_timeout = Duration::from_millis(500);
        c.query_log = Some(
            hopdns::server::querylog::QueryLog::new(false)
                .to_file(&log)
                .unwrap(),
        );
    })
    .await;
    let config = client_config(&pki);
    let refused_before = value(&hopdns::metrics::render(), "hopdns_tcp_refused_total");
    for addr in [front.dot, front.doh] {
        let mut s = connect_from(PROXY, addr).await;
        s.write_all(&proxy_header("192.0.2.9:5000".parse().unwrap(), addr))
            .await
            .unwrap();
        // A ClientHello would follow; the server must close instead of answering it.
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("closed at once")
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
    let refused = value(&hopdns::metrics::render(), "hopdns_tcp_refused_total");
    assert!(
        refused >= refused_before + 2.0,
        "{refused_before} -> {refused}"
    );

    // An allowed client behind the proxy is served.
    let tcp = {
        let mut s = connect_from(PROXY, front.dot).await;
        s.write_all(&proxy_header(
            "198.51.100.7:5000".parse().unwrap(),
            front.dot,
        ))
        .await
        .unwrap();
        s
    };
    let name = rustls_pki_types::ServerName::try_from(HOST).unwrap();
    let mut s = tokio_rustls::TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await
        .expect("handshake after the header");
    dot_send(&mut s, "proxied.example", 9).await.unwrap();
    let reply = dot_recv(&mut s).await.unwrap();
    assert_eq!(reply.answers.len(), 1);
    let logged = std::fs::read_to_string(&log).unwrap();
    let line = logged
        .lines()
        .find(|l| l.contains("proxied.example"))
        .unwrap_or_else(|| panic!("no line in {logged}"));
    assert!(
        line.contains("\"client\":\"198.51.100.7\"") && line.contains("\"proto\":\"tls\""),
        "{line}"
    );

    // The proxy itself, without a header, is not served.
    let mut s = connect_from(PROXY, front.dot).await;
    let hello = b"\x16\x03\x01\x00\x05hello";
    s.write_all(hello).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("closed")
        .unwrap_or(0);
    assert_eq!(n, 0);

    plain_udp_and_tcp_behind_a_balancer(&front, &log).await;
}

/// Issue 19.4: the plain listeners behind a balancer that speaks PROXY v2 (dnsdist's
/// `useProxyProtocol`): over UDP the header leads every datagram and the reply goes back to
/// the balancer without one; over TCP it opens the connection. The allow-list and the query
/// log see the client the header names; a balancer's datagram without a header is dropped.
/// The next datagram on `socket`, if one comes within 800 ms.
async fn udp_reply(socket: &tokio::net::UdpSocket) -> Option<Message> {
    let mut buf = [0u8; 1500];
    let got = tokio::time::timeout(Duration::from_millis(800), socket.recv(&mut buf)).await;
    got.ok()
        .map(|n| Message::from_vec(&buf[..n.unwrap()]).unwrap())
}

async fn plain_udp_and_tcp_behind_a_balancer(front: &Front, log: &Path) {
    use ppp::v2::{Builder, Command, Protocol, Version};
    let plain = SocketAddr::new(front.ip, 53);
    let header = |client: &str, protocol: Protocol| {
        let client: SocketAddr = client.parse().unwrap();
        Builder::with_addresses(Version::Two | Command::Proxy, protocol, (client, plain))
            .build()
            .unwrap()
    };
    let balancer = tokio::net::UdpSocket::bind(format!("{PROXY}:0"))
        .await
        .unwrap();
    let ask = |client: Option<&str>, name: &str| {
        let mut datagram = client
            .map(|c| header(c, Protocol::Datagram))
            .unwrap_or_default();
        datagram.extend(query(name, RecordType::A, None).to_vec().unwrap());
        datagram
    };
    balancer
        .send_to(
            &ask(Some("198.51.100.8:5300"), "udp-proxied.example"),
            plain,
        )
        .await
        .unwrap();
    let m = udp_reply(&balancer)
        .await
        .expect("answered to the balancer");
    assert_eq!(m.answers.len(), 1);
    balancer
        .send_to(&ask(Some("192.0.2.9:5300"), "udp-refused.example"), plain)
        .await
        .unwrap();
    let m = udp_reply(&balancer).await.expect("REFUSED to the balancer");
    assert_eq!(
        m.metadata.response_code,
        hickory_proto::op::ResponseCode::Refused
    );
    balancer
        .send_to(&ask(None, "udp-bare.example"), plain)
        .await
        .unwrap();
    assert!(udp_reply(&balancer).await.is_none(), "no header: dropped");

    let mut s = connect_from(PROXY, plain).await;
    s.write_all(&header("198.51.100.9:5300", Protocol::Stream))
        .await
        .unwrap();
    let wire = query("tcp-proxied.example", RecordType::A, None)
        .to_vec()
        .unwrap();
    let mut framed = (wire.len() as u16).to_be_bytes().to_vec();
    framed.extend(wire);
    s.write_all(&framed).await.unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).await.unwrap();
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut body).await.unwrap();
    assert_eq!(Message::from_vec(&body).unwrap().answers.len(), 1);

    let logged = std::fs::read_to_string(log).unwrap();
    for (name, client, proto) in [
        ("udp-proxied.example", "198.51.100.8", "udp"),
        ("tcp-proxied.example", "198.51.100.9", "tcp"),
    ] {
        let line = logged
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("no line for {name} in {logged}"));
        assert!(
            line.contains(&format!("\"client\":\"{client}\""))
                && line.contains(&format!("\"proto\":\"{proto}\"")),
            "{line}"
        );
    }
}

/// Answers `slow.example` after 400 ms and everything else at once.
struct SlowAndFast;

#[async_trait::async_trait]
impl Answerer for SlowAndFast {
    async fn answer(
        &self,
        question: &hopdns::resolver::Question,
        client: SocketAddr,
    ) -> hopdns::resolver::Outcome {
        if question.name.to_ascii().starts_with("slow.") {
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        util::Fixed.answer(question, client).await
    }
}

/// RFC 7766 §6.2.1.1: pipelined queries on one DoT connection are answered as they are
/// ready, so a slow one does not hold up those behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_dot_queries_are_answered_out_of_order() {
    let pki = Pki::new("pipeline", lab_ip(174));
    let front = front(&pki, Arc::new(SlowAndFast), |_| {}).await;
    let config = client_config(&pki);
    let mut s = dot_connect(&config, front.dot).await.unwrap();
    dot_send(&mut s, "slow.example", 1).await.unwrap();
    for id in 2..=5 {
        dot_send(&mut s, "fast.example", id).await.unwrap();
    }
    let mut order = Vec::new();
    for _ in 1..=5 {
        order.push(dot_recv(&mut s).await.unwrap().metadata.id);
    }
    assert_eq!(
        order.last(),
        Some(&1),
        "the slow reply comes last: {order:?}"
    );
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(sorted, [1, 2, 3, 4, 5]);
    let _ = std::io::stderr().flush();
}

/// Reads until the server closes (EOF, or an error where TLS ends without close_notify);
/// how long that took.
async fn closed_after<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 512];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("closed within 5 s")
        {
            Ok(0) | Err(_) => return started.elapsed(),
            Ok(_) => {}
        }
    }
}

/// RFC 7858 §3.4 and RFC 7766 §6.2.3: a DoT connection with nothing in hand is closed at
/// the idle timeout, counted from its last reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_dot_connection_is_closed_at_the_idle_timeout() {
    let pki = Pki::new("idle", lab_ip(175));
    let front = front(&pki, Arc::new(util::Fixed), |c| {
        c.tcp_idle_timeout = Duration::from_millis(600);
    })
    .await;
    let mut s = dot_connect(&client_config(&pki), front.dot).await.unwrap();
    dot_send(&mut s, "idle.example", 1).await.unwrap();
    dot_recv(&mut s).await.unwrap();
    let waited = closed_after(&mut s).await;
    assert!(waited >= Duration::from_millis(500), "{waited:?}");
}

/// DoT and DoH take the TCP connection slots (`max-tcp-clients` counts all three): with
/// every slot open, a new DoT client takes the slot of the idle connection, here a plain
/// TCP one; a DoT connection busy answering is not touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_and_tcp_connections_share_the_slots() {
    let pki = Pki::new("slots", lab_ip(176));
    let front = front(&pki, Arc::new(SlowAndFast), |c| {
        c.max_tcp_clients = 2;
    })
    .await;
    let config = client_config(&pki);
    let mut tcp = TcpStream::connect(SocketAddr::new(front.ip, 53))
        .await
        .unwrap();
    let mut busy = dot_connect(&config, front.dot).await.unwrap();
    dot_send(&mut busy, "slow.example", 1).await.unwrap();
    // Let the server take the slow query in hand (it answers after 400 ms): until then the
    // DoT connection is idle too. Under a loaded test run it once was, and was closed.
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Both slots taken, one idle: the newcomer takes the TCP connection's.
    let mut new = dot_connect(&config, front.dot).await.unwrap();
    closed_after(&mut tcp).await;
    dot_send(&mut new, "new.example", 2).await.unwrap();
    assert_eq!(dot_recv(&mut new).await.unwrap().metadata.id, 2);
    assert_eq!(dot_recv(&mut busy).await.unwrap().metadata.id, 1);
}

/// A client stalling its handshake does not hold a slot against others: with every slot
/// taken by stallers, a new client takes one's slot at once (the staller is closed), long
/// before the handshake timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_handshake_gives_way_when_the_slots_are_full() {
    let pki = Pki::new("stall-slots", lab_ip(177));
    let front = front(&pki, Arc::new(util::Fixed), |c| {
        c.max_tcp_clients = 1;
        c.tls_handshake_timeout = Duration::from_secs(10);
    })
    .await;
    let mut staller = TcpStream::connect(front.dot).await.unwrap();
    staller.write_all(&[0x16, 0x03]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let mut s = dot_connect(&client_config(&pki), front.dot).await.unwrap();
    dot_send(&mut s, "after-staller.example", 3).await.unwrap();
    assert_eq!(dot_recv(&mut s).await.unwrap().metadata.id, 3);
    closed_after(&mut staller).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
