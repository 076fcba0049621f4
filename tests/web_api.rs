//! The dashboard's API (issue 18, `serve --web`) through a real `hopdns serve` on the lab:
//! what the page reads (session, overview, log, top, rules) and what a logged-in operator
//! does (pause blocking, flush, look up, trace), with the refusals that guard it (wrong
//! password, no session, no CSRF token, too many tries). Lab networks 230..=233; the
//! page's browser tests (tests/web.rs) take 234..=239. The pause's end by itself is tested
//! on a manual clock in `src/redirect/` and `src/redirect/pause.rs`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use hopdns::lab::{Lab, LabConfig};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::ops::{hints_file, lab_args, run, serve, Scratch};
use crate::util::udp;

/// One HTTP answer: status, headers (lowercase names), body as JSON (Null if it is not).
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: HashMap<String, String>,
    body: Value,
}

/// One HTTP/1.1 request on its own connection (`Connection: close`).
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let stream = TcpStream::connect(addr).await.expect("dashboard accepts");
    http_on(stream, addr, method, path, headers, body).await
}

/// [`http`] on a stream already open (TLS).
async fn http_on<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("reply within 10 s")
        .unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: serde_json::from_str(body).unwrap_or(Value::Null),
    }
}

async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    http(addr, "GET", path, headers, "").await
}

/// A lab on `net` and `serve --web` in front of it, with `extra` switches.
async fn start(
    net: u8,
    dir: &Scratch,
    extra: &[&str],
) -> (Lab, crate::ops::Serve, SocketAddr, SocketAddr) {
    let lab = Lab::start(LabConfig { net }).await.expect("lab starts");
    let hints = hints_file(&lab, dir);
    let dns = SocketAddr::new(IpAddr::V4(lab.addr(crate::util::RESOLVER_HOST)), 53);
    let web = SocketAddr::new(IpAddr::V4(lab.addr(crate::util::RESOLVER_HOST)), 8053);
    let web_arg = web.to_string();
    let mut args = vec!["--web", web_arg.as_str()];
    args.extend_from_slice(extra);
    let server = serve(
        &lab_args(dns, &hints, &args),
        dns,
        Some(&dir.path("stderr")),
    )
    .await;
    (lab, server, dns, web)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_read_only_api_shows_queries_in_the_overview_log_and_top_lists() {
    let dir = Scratch::new("web-read");
    let (lab, _server, dns, web) = start(230, &dir, &[]).await;
    let page = get(web, "/", &[]).await;
    assert_eq!(page.status, 200);
    let csp = &page.headers["content-security-policy"];
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(page.headers["x-content-type-options"], "nosniff");
    let icon = get(web, "/favicon.svg", &[]).await;
    assert_eq!(icon.status, 200);
    assert_eq!(icon.headers["content-type"], "image/svg+xml");
    assert_eq!(get(web, "/favicon.ico", &[]).await.status, 204);

    let s = get(web, "/api/session", &[]).await;
    assert_eq!(s.status, 200);
    assert_eq!(s.body["logged_in"], false);
    assert_eq!(s.body["auth_configured"], false);
    assert!(s.body["csrf"].is_null());

    for _ in 0..3 {
        let m = udp(dns, "www.example.com", RecordType::A, Some(1232)).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    }
    let m = udp(dns, "nosuch.example.com", RecordType::A, Some(1232)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);

    let o = get(web, "/api/overview?window=hour", &[]).await;
    assert_eq!(o.status, 200, "{}", o.body);
    let totals = &o.body["totals"];
    // serve's own readiness probe asked www.example.com too.
    assert!(totals["queries"].as_u64().unwrap() >= 5, "{totals}");
    assert!(totals["cached"].as_u64().unwrap() >= 3, "{totals}");
    let classes: u64 = ["cached", "resolved", "redirected", "blocked", "failed"]
        .iter()
        .map(|k| totals[k].as_u64().unwrap())
        .sum();
    assert_eq!(classes, totals["queries"].as_u64().unwrap(), "{totals}");
    assert_eq!(o.body["step"], 10);
    assert!(!o.body["series"].as_array().unwrap().is_empty());
    assert!(
        o.body["upstream_per_query"].as_f64().unwrap() > 0.0,
        "{}",
        o.body
    );
    assert!(
        o.body["cache"]["entries"].as_u64().unwrap() > 0,
        "{}",
        o.body
    );
    assert!(o.body["blocking"]["paused_until"].is_null());
    let day = get(web, "/api/overview?window=day", &[]).await;
    assert_eq!(day.body["step"], 300);
    assert_eq!(get(web, "/api/overview?window=week", &[]).await.status, 400);

    let log = get(web, "/api/log?name=nosuch.example&limit=5", &[]).await;
    let entries = log.body["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{}", log.body);
    let e = &entries[0];
    assert_eq!(e["name"], "nosuch.example.com.");
    assert_eq!(e["rcode"], "NXDOMAIN");
    assert_eq!(e["qtype"], "A");
    assert_eq!(e["proto"], "udp");
    assert_eq!(e["outcome"], "resolved");
    assert!(e["upstream"].as_u64().unwrap() >= 1, "{e}");
    let cached = get(web, "/api/log?outcome=cached&qtype=a", &[]).await;
    assert!(
        cached.body["entries"].as_array().unwrap().len() >= 3,
        "{}",
        cached.body
    );
    assert_eq!(get(web, "/api/log?outcome=maybe", &[]).await.status, 400);
    assert_eq!(get(web, "/api/log?qtype=NOPE", &[]).await.status, 400);

    let top = get(web, "/api/top?kind=domains&window=3600&n=1", &[]).await;
    assert_eq!(
        top.body["items"][0]["key"], "www.example.com.",
        "{}",
        top.body
    );
    assert!(top.body["items"][0]["count"].as_u64().unwrap() >= 4);
    let clients = get(web, "/api/top?kind=clients", &[]).await;
    assert_eq!(
        clients.body["items"][0]["key"], "127.0.0.1",
        "{}",
        clients.body
    );
    assert_eq!(get(web, "/api/top?kind=planets", &[]).await.status, 400);

    let rules = get(web, "/api/rules", &[]).await;
    assert_eq!(rules.body["files"], serde_json::json!([]));

    // The event stream's first tick comes at once: the hour's overview, newest bucket only.
    let mut stream = TcpStream::connect(web).await.unwrap();
    let req = format!("GET /api/events HTTP/1.1\r\nHost: {web}\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let tick = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed early");
            seen.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&seen).to_string();
            if let Some(at) = text.find("event: tick\ndata: ") {
                if let Some(line) = text[at..].lines().nth(1) {
                    if text[at..].contains("\n\n") {
                        return (text.clone(), line.trim_start_matches("data: ").to_string());
                    }
                }
            }
        }
    })
    .await
    .expect("a tick within 5 s");
    assert!(
        tick.0.contains("content-type: text/event-stream"),
        "{}",
        tick.0
    );
    let data: Value = serde_json::from_str(&tick.1).unwrap();
    assert_eq!(data["series"].as_array().unwrap().len(), 1, "{data}");
    assert!(data["totals"]["queries"].as_u64().unwrap() >= 5);

    // Without a password, the dashboard is read-only and says how to set one.
    let r = http(web, "POST", "/api/pause", &[], r#"{"minutes":5}"#).await;
    assert_eq!(r.status, 403);
    assert!(
        r.body["error"]
            .as_str()
            .unwrap()
            .contains("hopdns web-password"),
        "{}",
        r.body
    );
    let r = http(web, "POST", "/api/login", &[], r#"{"password":"x"}"#).await;
    assert_eq!(r.status, 403);
    lab.shutdown().await;
}

/// Logs in with `password`; the session cookie and CSRF token on success.
async fn login(web: SocketAddr, password: &str) -> Result<(String, String), Reply> {
    let body = serde_json::json!({ "password": password }).to_string();
    let r = http(web, "POST", "/api/login", &[], &body).await;
    if r.status != 200 {
        return Err(r);
    }
    let set = &r.headers["set-cookie"];
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    let token = set
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("hopdns_session=")
        .unwrap()
        .to_string();
    Ok((
        format!("hopdns_session={token}"),
        r.body["csrf"].as_str().unwrap().to_string(),
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_logged_in_operator_pauses_blocking_flushes_looks_up_and_traces() {
    let dir = Scratch::new("web-act");
    let rules = dir.path("rules.toml");
    // A pool member that answers its TCP check, and one that does not.
    let _up = tokio::net::TcpListener::bind("127.53.231.200:8080")
        .await
        .unwrap();
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"v4only.example.com\"\naction = \"block\"\n\
         [[pool]]\nname = \"app\"\n\
         members = [{ address = \"127.53.231.200\" }, { address = \"127.53.231.201\" }]\n\
         [pool.health]\ncheck = \"tcp\"\nport = 8080\ninterval = \"100ms\"\n\
         timeout = \"100ms\"\n\
         [[rule]]\nname = \"app.lan\"\naction = \"pool\"\npool = \"app\"\n",
    )
    .unwrap();
    let hash = hopdns::web::hash_password("lab password").unwrap();
    let rules_arg = rules.to_str().unwrap().to_string();
    let socket = dir.path("ctl.sock");
    let socket_arg = socket.to_str().unwrap().to_string();
    let (lab, _server, dns, web) = start(
        231,
        &dir,
        &[
            "--rules",
            &rules_arg,
            "--web-password-hash",
            &hash,
            "--control-socket",
            &socket_arg,
        ],
    )
    .await;
    let s = get(web, "/api/session", &[]).await;
    assert_eq!(s.body["auth_configured"], true);

    // A wrong password is refused; the right one opens a session.
    let wrong = login(web, "lab passwore").await.expect_err("refused");
    assert_eq!(wrong.status, 401);
    let (cookie, csrf) = login(web, "lab password").await.expect("accepted");
    let s = get(web, "/api/session", &[("Cookie", &cookie)]).await;
    assert_eq!(s.body["logged_in"], true);
    assert_eq!(s.body["csrf"], csrf.as_str());

    // Actions need the session (401) and its CSRF token (403).
    let flush = r#"{"name":"www.example.com"}"#;
    let r = http(web, "POST", "/api/flush", &[("X-CSRF-Token", &csrf)], flush).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = http(web, "POST", "/api/flush", &[("Cookie", &cookie)], flush).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = http(
        web,
        "POST",
        "/api/flush",
        &[("Cookie", &cookie), ("X-CSRF-Token", "0")],
        flush,
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let both = [("Cookie", cookie.as_str()), ("X-CSRF-Token", csrf.as_str())];
    let r = http(web, "POST", "/api/flush", &both, flush).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body["removed"].as_u64().unwrap() >= 1,
        "serve's probe cached it: {}",
        r.body
    );
    let evil = [
        ("Cookie", cookie.as_str()),
        ("X-CSRF-Token", csrf.as_str()),
        ("Origin", "http://evil.example"),
    ];
    assert_eq!(
        http(web, "POST", "/api/flush", &evil, flush).await.status,
        403
    );

    // Pause: the blocked name resolves while paused, and is blocked again after.
    let blocked = udp(dns, "v4only.example.com", RecordType::A, Some(1232)).await;
    assert_eq!(blocked.metadata.response_code, ResponseCode::NXDomain);
    let r = http(web, "POST", "/api/pause", &both, r#"{"minutes":5}"#).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let until = r.body["paused_until"].as_u64().expect("paused");
    let o = get(web, "/api/overview", &[]).await;
    assert_eq!(o.body["blocking"]["paused_until"].as_u64(), Some(until));
    let m = udp(dns, "v4only.example.com", RecordType::A, Some(1232)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        crate::util::answers(&m),
        ["v4only.example.com. A 192.0.2.3"]
    );
    let r = http(web, "POST", "/api/pause", &both, r#"{"minutes":0}"#).await;
    assert!(r.body["paused_until"].is_null(), "{}", r.body);
    let m = udp(dns, "v4only.example.com", RecordType::A, Some(1232)).await;
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NXDomain,
        "blocking resumed"
    );
    let r = http(web, "POST", "/api/pause", &both, r#"{"minutes":999999}"#).await;
    assert_eq!(r.status, 400);
    // `ctl pause-blocking` is the same switch (Pi-hole's `pihole disable 5m`).
    let (ok, text) = crate::ops::ctl(&socket, &["pause-blocking", "5"]);
    assert!(
        ok && text.contains("blocking paused for 5 minutes"),
        "{text}"
    );
    let o = get(web, "/api/overview", &[]).await;
    assert!(o.body["blocking"]["paused_until"].as_u64().is_some());
    let (ok, text) = crate::ops::ctl(&socket, &["pause-blocking", "0"]);
    assert!(ok && text.contains("resumed"), "{text}");
    let log = get(web, "/api/log?outcome=blocked", &[]).await;
    let e = &log.body["entries"][0];
    assert_eq!(e["name"], "v4only.example.com.");
    assert_eq!(e["action"], "block");
    assert!(
        e["rule"].as_str().unwrap().contains("v4only.example.com"),
        "{e}"
    );
    let top = get(web, "/api/top?kind=blocked", &[]).await;
    assert_eq!(top.body["items"][0]["key"], "v4only.example.com.");
    assert_eq!(top.body["items"][0]["count"], 2);

    // Rules: the file's entries by action, the rule's hits.
    let r = get(web, "/api/rules", &[]).await;
    let file = &r.body["files"][0];
    assert_eq!(file["path"], rules_arg.as_str());
    assert_eq!(file["entries"], 2);
    assert_eq!(file["by_action"]["block"], 1);
    assert_eq!(file["by_action"]["pool"], 1);
    assert!(file["loaded_at"].as_u64().unwrap() > 0);
    assert_eq!(r.body["rules"][0]["hits"], 2, "{}", r.body);
    assert_eq!(r.body["rules"][0]["action"], "block");
    assert_eq!(r.body["rules"][0]["name"], "v4only.example.com");
    assert_eq!(r.body["rules"][0]["names"], 1);
    // Pool members: health, last check, latency (checks every 100 ms; the first round
    // may still be running).
    let start = std::time::Instant::now();
    let members = loop {
        let r = get(web, "/api/rules", &[]).await;
        let m = r.body["pools"][0]["members"].clone();
        if m.as_array()
            .unwrap()
            .iter()
            .all(|m| m["last_check"].is_u64())
        {
            break m;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "{}", r.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(members[0]["addr"], "127.53.231.200");
    assert_eq!(members[0]["up"], true, "{members}");
    assert!(
        members[0]["latency_ms"].as_f64().unwrap() >= 0.0,
        "{members}"
    );
    assert_eq!(members[1]["up"], false, "{members}");

    // Look up and trace through the running engine.
    let r = http(
        web,
        "POST",
        "/api/lookup",
        &both,
        r#"{"name":"www.example.com","type":"aaaa"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["rcode"], "NOERROR");
    let answer = r.body["answers"][0].as_str().unwrap();
    assert!(
        answer.starts_with("www.example.com. ") && answer.ends_with(" IN AAAA 2001:db8::1"),
        "{answer}"
    );
    let r = http(
        web,
        "POST",
        "/api/lookup",
        &both,
        r#"{"name":"v4only.example.com"}"#,
    )
    .await;
    assert_eq!(
        r.body["rcode"], "NXDOMAIN",
        "rules apply to lookups: {}",
        r.body
    );
    let r = http(web, "POST", "/api/lookup", &both, r#"{"name":"a..b"}"#).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        get(web, "/api/trace?name=www.example.org", &[])
            .await
            .status,
        401
    );
    let r = get(
        web,
        "/api/trace?name=www.example.org&type=A",
        &[("Cookie", &cookie)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let events: Vec<&str> = r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events.first(), Some(&"start"), "{events:?}");
    assert_eq!(events.last(), Some(&"done"), "{events:?}");
    assert!(
        events.contains(&"reply"),
        "a cold name goes upstream: {events:?}"
    );
    // The same name again comes from the cache; with fresh=1 every hop shows.
    let kinds = |r: &Reply| -> Vec<String> {
        r.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event"].as_str().unwrap().to_string())
            .collect()
    };
    let path = "/api/trace?name=www.example.org";
    let cached = kinds(&get(web, path, &[("Cookie", &cookie)]).await);
    assert!(!cached.contains(&"reply".to_string()), "{cached:?}");
    let fresh = get(web, &format!("{path}&fresh=1"), &[("Cookie", &cookie)]).await;
    assert_eq!(fresh.status, 200, "{}", fresh.body);
    let fresh = kinds(&fresh);
    assert!(
        fresh.iter().filter(|e| *e == "reply").count() >= 3,
        "root, org, example.org: {fresh:?}"
    );

    // Logout ends the session; five wrong passwords a minute lock the address out.
    let r = http(web, "POST", "/api/logout", &both, "").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        get(web, "/api/session", &[("Cookie", &cookie)]).await.body["logged_in"],
        false
    );
    for _ in 0..5 {
        assert_eq!(login(web, "guess").await.err().unwrap().status, 401);
    }
    let r = login(web, "lab password")
        .await
        .expect_err("the sixth try is refused");
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.headers["retry-after"], "60");
    lab.shutdown().await;
}

#[test]
fn config_check_names_a_bad_hash_and_a_taken_web_address() {
    let dir = Scratch::new("web-check");
    let taken = std::net::TcpListener::bind("127.53.232.1:8053").expect("binds");
    let file = dir.path("hopdns.toml");
    std::fs::write(
        &file,
        "web = \"127.53.232.1:8053\"\nweb-password-hash = \"hunter2\"\nweb-log-bytes = \"1k\"\n",
    )
    .unwrap();
    let out = run(&["config", "check", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("key `web-log-bytes`") && err.contains("64k to 1g"),
        "{err}"
    );
    std::fs::write(
        &file,
        "web = \"127.53.232.1:8053\"\nweb-password-hash = \"hunter2\"\n",
    )
    .unwrap();
    let out = run(&["config", "check", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(":1: key `web`: the dashboard address 127.53.232.1:8053 is already in use"),
        "{err}"
    );
    assert!(
        err.contains(":2: key `web-password-hash`") && err.contains("hopdns web-password"),
        "{err}"
    );
    drop(taken);
    let hash = hopdns::web::hash_password("x").unwrap();
    std::fs::write(
        &file,
        format!("web = \"127.53.232.1:8053\"\nweb-password-hash = \"{hash}\"\n"),
    )
    .unwrap();
    let out = run(&["config", "check", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `web-password` with nothing on standard input says how to give it.
    let out = run(&["web-password"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("printf"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_serves_https_with_the_given_certificate() {
    let dir = Scratch::new("web-tls");
    let ip = IpAddr::V4(std::net::Ipv4Addr::new(
        127,
        53,
        233,
        crate::util::RESOLVER_HOST,
    ));
    let pki = crate::encrypted::Pki::new("web-tls-pki", ip);
    let cert = pki.dir().join("cert.pem");
    let key = pki.dir().join("key.pem");
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let (lab, _server, _dns, web) =
        start(233, &dir, &["--web-tls-cert", cert, "--web-tls-key", key]).await;
    let mut config = (*crate::encrypted::client_config_for(&pki, rustls::DEFAULT_VERSIONS)).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = rustls_pki_types::ServerName::try_from(crate::encrypted::HOST).unwrap();
    let tcp = TcpStream::connect(web).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("handshake with the lab CA");
    let r = http_on(tls, web, "GET", "/api/session", &[], "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["logged_in"], false);
    // Plain HTTP on the HTTPS port gets no page.
    let mut plain = TcpStream::connect(web).await.unwrap();
    plain
        .write_all(b"GET /api/session HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), plain.read_to_end(&mut out)).await;
    assert!(!String::from_utf8_lossy(&out).contains("logged_in"));
    // One address holds at most 16 connections; the 17th is closed at once.
    let mut held = Vec::new();
    for _ in 0..16 {
        held.push(TcpStream::connect(web).await.unwrap());
    }
    let mut extra = TcpStream::connect(web).await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(3), extra.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    drop(held);
    lab.shutdown().await;
}
