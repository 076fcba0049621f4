//! Redirection seen from clients, with real sockets: pools whose members are test-owned
//! TCP/HTTP listeners (127.55.N.x) that go up and down, client-scoped rules, big imports,
//! reloads, and the LAN example of docs/. Lab networks 90..=109.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use hopdns::lab::{Lab, LabConfig};
use hopdns::redirect::Redirector;
use hopdns::server::{Answerer, BoundServer, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::util::{answers, bin, query, udp};

/// The lab, a resolver, and the redirect layer in front of it on 127.53.N.253:53.
struct REnv {
    lab: Lab,
    redirect: Arc<Redirector>,
    addr: SocketAddr,
    rules: PathBuf,
    shutdown: CancellationToken,
    server: JoinHandle<()>,
}

fn dir(net: u8) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hopdns-redirect-{net}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

impl REnv {
    async fn start(net: u8, rules: &str) -> REnv {
        let lab = Lab::start(LabConfig { net }).await.expect("lab starts");
        let resolver = Arc::new(hopdns::cli::lab::lab_resolver(&lab).unwrap());
        let path = dir(net).join("rules.toml");
        std::fs::write(&path, rules).unwrap();
        let hits = resolver.cache().clone();
        let redirect = Arc::new(Redirector::from_file(resolver, &path).expect("rules load"));
        let addr = SocketAddr::new(IpAddr::V4(lab.addr(253)), 53);
        let bound = BoundServer::bind(&ServerConfig {
            listen: vec![addr],
            threads: 1,
            ..ServerConfig::default()
        })
        .expect("binds")
        .serve_hits_from(hits);
        let shutdown = CancellationToken::new();
        let answerer: Arc<dyn Answerer> = redirect.clone();
        let token = shutdown.clone();
        let server = tokio::spawn(async move {
            let _ = bound.run(answerer, token).await;
        });
        REnv {
            lab,
            redirect,
            addr,
            rules: path,
            shutdown,
            server,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.server.await;
        self.lab.shutdown().await;
        let _ = std::fs::remove_dir_all(self.rules.parent().unwrap());
    }

    /// Addresses in the answer to `name` A from source address `from`.
    async fn addrs_from(&self, from: IpAddr, name: &str) -> Vec<IpAddr> {
        addresses(
            &udp_from(from, self.addr, name, RecordType::A)
                .await
                .unwrap(),
        )
    }

    /// Asks for `name` every 5 ms until `pred` holds for its addresses; the time it took.
    async fn time_until(&self, name: &str, pred: impl Fn(&[IpAddr]) -> bool) -> Duration {
        let start = Instant::now();
        loop {
            if pred(&self.addrs(name).await) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{name}: no change in 5 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn addrs(&self, name: &str) -> Vec<IpAddr> {
        self.addrs_from(IpAddr::V4(Ipv4Addr::LOCALHOST), name).await
    }
}

fn addresses(m: &Message) -> Vec<IpAddr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

/// One UDP query from source address `from`; `None` if nothing came back within 1 s.
async fn udp_from(
    from: IpAddr,
    server: SocketAddr,
    name: &str,
    qtype: RecordType,
) -> Option<Message> {
    let sock = UdpSocket::bind(SocketAddr::new(from, 0)).await.unwrap();
    let q = query(name, qtype, Some(1232));
    sock.send_to(&q.to_vec().unwrap(), server).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_secs(1), sock.recv_from(&mut buf))
        .await
        .ok()?
        .unwrap();
    let m = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(m.metadata.id, q.metadata.id);
    Some(m)
}

/// A pool member: an HTTP server on `addr` answering 200 to everything, which can stop
/// (its port then refuses connections) and start again.
struct Backend {
    addr: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl Backend {
    async fn start(addr: SocketAddr) -> Backend {
        let mut b = Backend { addr, task: None };
        b.up().await;
        b
    }

    async fn up(&mut self) {
        let listener = TcpListener::bind(self.addr).await.expect("backend binds");
        self.task = Some(tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf).await;
                    let _ = s
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                        )
                        .await;
                });
            }
        }));
    }

    async fn down(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await; // the listener is closed once the task is gone
        }
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_pool_shares_follow_the_weights_over_10000_queries() {
    let mut backends = Vec::new();
    for h in 1..=3 {
        backends.push(Backend::start(SocketAddr::new(IpAddr::from([127, 55, 90, h]), 8080)).await);
    }
    let env = REnv::start(
        90,
        r#"
        [[pool]]
        name = "web"
        policy = "weighted"
        members = [
          { address = "127.55.90.1", weight = 5 },
          { address = "127.55.90.2", weight = 3 },
          { address = "127.55.90.3", weight = 2 },
        ]
        [pool.health]
        check = "http"
        port = 8080
        path = "/health"
        interval = "200ms"

        [[rule]]
        name = "web.lan"
        action = "pool"
        pool = "web"
        "#,
    )
    .await;
    let counts: Arc<std::sync::Mutex<HashMap<IpAddr, usize>>> = Default::default();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (counts, server) = (counts.clone(), env.addr);
            tokio::spawn(async move {
                let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
                let mut buf = vec![0u8; 512];
                for _ in 0..2500 {
                    let q = query("web.lan", RecordType::A, None);
                    sock.send_to(&q.to_vec().unwrap(), server).await.unwrap();
                    let (n, _) =
                        tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf))
                            .await
                            .expect("answered")
                            .unwrap();
                    let m = Message::from_vec(&buf[..n]).unwrap();
                    let a = addresses(&m);
                    assert_eq!(a.len(), 1);
                    *counts.lock().unwrap().entry(a[0]).or_default() += 1;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let counts = counts.lock().unwrap().clone();
    let total: usize = counts.values().sum();
    assert_eq!(total, 10_000);
    for (member, weight) in [
        ("127.55.90.1", 5.0),
        ("127.55.90.2", 3.0),
        ("127.55.90.3", 2.0),
    ] {
        let share = counts.get(&ip(member)).copied().unwrap_or(0) as f64 / total as f64;
        let want = weight / 10.0;
        eprintln!(
            "weighted pool: {member} weight {weight}: {:.2}% (want {:.0}%)",
            share * 100.0,
            want * 100.0
        );
        assert!(
            (share - want).abs() <= 0.02,
            "{member}: {share} vs {want}: {counts:?}"
        );
    }
    for mut b in backends {
        b.down().await;
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_member_leaves_answers_within_interval_times_fall_and_returns_after_rise() {
    const INTERVAL: Duration = Duration::from_millis(200);
    const FALL: u32 = 3;
    const RISE: u32 = 2;
    let mut backends = Vec::new();
    for h in 1..=3 {
        backends.push(Backend::start(SocketAddr::new(IpAddr::from([127, 55, 91, h]), 8080)).await);
    }
    let env = REnv::start(
        91,
        &format!(
            r#"
            [[pool]]
            name = "app"
            answers = 3
            members = [{{ address = "127.55.91.1" }}, {{ address = "127.55.91.2" }}, {{ address = "127.55.91.3" }}]
            [pool.health]
            check = "tcp"
            port = 8080
            interval = "{}ms"
            timeout = "100ms"
            rise = {RISE}
            fall = {FALL}

            [[rule]]
            name = "app.lan"
            action = "pool"
            pool = "app"
            "#,
            INTERVAL.as_millis()
        ),
    )
    .await;
    // Let the first round of checks finish (every member has a check RTT then).
    let set = env.redirect.rules().unwrap();
    let start = Instant::now();
    while set.pools[0].members.iter().any(|m| m.state.rtt().is_none()) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "first checks never finished"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let victim = ip("127.55.91.2");
    let mut all = env.addrs("app.lan").await;
    all.sort();
    assert_eq!(all, [ip("127.55.91.1"), victim, ip("127.55.91.3")]);

    backends[1].down().await;
    let gone = env.time_until("app.lan", |a| !a.contains(&victim)).await;
    assert_eq!(env.addrs("app.lan").await.len(), 2, "the others stay");
    eprintln!(
        "failover: member out of answers {} ms after its port closed (interval {} ms x fall {FALL} = {} ms)",
        gone.as_millis(),
        INTERVAL.as_millis(),
        (INTERVAL * FALL).as_millis()
    );
    // Worst case interval + (fall - 1) * interval / 2 (half-interval rounds while a member
    // is changing state), so interval * fall holds with room for a busy machine.
    assert!(gone <= INTERVAL * FALL, "{gone:?}");
    // Not at the first failed check: fall - 1 more (at half the interval) come first.
    assert!(
        gone >= INTERVAL / 2 * (FALL - 1) - Duration::from_millis(20),
        "{gone:?}"
    );

    backends[1].up().await;
    let back = env.time_until("app.lan", |a| a.contains(&victim)).await;
    eprintln!(
        "recovery: member back in answers {} ms after its port reopened (interval {} ms x rise {RISE} = {} ms)",
        back.as_millis(),
        INTERVAL.as_millis(),
        (INTERVAL * RISE).as_millis()
    );
    assert!(back <= INTERVAL * RISE, "{back:?}");
    // Both changes were counted.
    assert_eq!(
        env.redirect.stats().health_changes.load(Ordering::Relaxed),
        2
    );
    for mut b in backends {
        b.down().await;
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_hash_keeps_each_client_on_one_member_across_1000_queries() {
    let env = REnv::start(
        92,
        r#"
        [[pool]]
        name = "sticky"
        policy = "client-hash"
        members = [{ address = "127.55.92.1" }, { address = "127.55.92.2" }, { address = "127.55.92.3" }, { address = "127.55.92.4" }]

        [[rule]]
        name = "sticky.lan"
        action = "pool"
        pool = "sticky"
        "#,
    )
    .await;
    let clients: Vec<IpAddr> = (100..108).map(|h| IpAddr::from([127, 53, 92, h])).collect();
    let tasks: Vec<_> = clients
        .iter()
        .map(|&c| {
            let server = env.addr;
            tokio::spawn(async move {
                let sock = UdpSocket::bind(SocketAddr::new(c, 0)).await.unwrap();
                let mut seen = HashMap::<IpAddr, usize>::new();
                let mut buf = vec![0u8; 512];
                for _ in 0..1000 {
                    let q = query("sticky.lan", RecordType::A, None);
                    sock.send_to(&q.to_vec().unwrap(), server).await.unwrap();
                    let (n, _) =
                        tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf))
                            .await
                            .expect("answered")
                            .unwrap();
                    let a = addresses(&Message::from_vec(&buf[..n]).unwrap());
                    *seen.entry(a[0]).or_default() += 1;
                }
                (c, seen)
            })
        })
        .collect();
    let mut members = std::collections::HashSet::new();
    for t in tasks {
        let (c, seen) = t.await.unwrap();
        assert_eq!(seen.len(), 1, "client {c} saw {seen:?}");
        members.extend(seen.into_keys());
    }
    assert!(
        members.len() >= 2,
        "8 clients all on one member: {members:?}"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_scoped_to_a_client_network_does_not_apply_to_other_clients() {
    let env = REnv::start(
        93,
        r#"
        [[rule]]
        name = "www.example.com"
        clients = ["127.53.93.128/25"]
        action = "override"
        a = ["10.9.9.9"]
        "#,
    )
    .await;
    let inside = IpAddr::from([127, 53, 93, 200]);
    let outside = IpAddr::from([127, 53, 93, 100]);
    assert_eq!(
        env.addrs_from(inside, "www.example.com").await,
        [ip("10.9.9.9")]
    );
    assert_eq!(
        env.addrs_from(outside, "www.example.com").await,
        [ip("192.0.2.1")]
    );
    // The real answer is cached now; the scoped client still gets its override, and the
    // override never reached the cache.
    assert_eq!(
        env.addrs_from(inside, "www.example.com").await,
        [ip("10.9.9.9")]
    );
    assert_eq!(
        env.addrs_from(outside, "www.example.com").await,
        [ip("192.0.2.1")]
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rpz_and_a_hosts_file_with_100k_entries_load_and_answer() {
    let d = dir(94);
    let mut hosts = String::from("# generated\n127.0.0.1 localhost\n");
    for i in 0..100_000 {
        hosts.push_str(&format!("0.0.0.0 ads{i}.tracker.test\n"));
    }
    hosts.push_str("192.168.1.20 printer.lan\n");
    std::fs::write(d.join("hosts.txt"), hosts).unwrap();
    let mut rpz = String::from(
        "$TTL 60\n@ IN SOA ns.policy.rpz. admin.policy.rpz. 1 3600 600 86400 60\n  IN NS ns.policy.rpz.\n\
         *.example.com CNAME .\nwww.example.com CNAME rpz-passthru.\ndrop.test CNAME rpz-drop.\n",
    );
    for i in 0..100_000u32 {
        let [_, _, b, c] = i.to_be_bytes();
        match i % 4 {
            0 => rpz.push_str(&format!("nx{i}.bad.test CNAME .\n")),
            1 => rpz.push_str(&format!("nodata{i}.bad.test CNAME *.\n")),
            2 => rpz.push_str(&format!("local{i}.bad.test A 10.77.{b}.{c}\n")),
            _ => rpz.push_str(&format!("*.wild{i}.bad.test CNAME .\n")),
        }
    }
    std::fs::write(d.join("policy.rpz"), rpz).unwrap();
    let rules = format!(
        "[[blocklist]]\nfile = \"{}\"\nformat = \"hosts\"\nblock = \"sinkhole\"\n\n[[rpz]]\nfile = \"{}\"\norigin = \"policy.rpz\"\n",
        d.join("hosts.txt").display(),
        d.join("policy.rpz").display()
    );
    let start = Instant::now();
    let env = REnv::start(94, &rules).await;
    eprintln!(
        "100k hosts + 100k RPZ entries loaded with the lab in {:?} (debug build)",
        start.elapsed()
    );
    let set = env.redirect.rules().unwrap();
    assert!(set.len() >= 200_000, "{}", set.len());

    assert_eq!(env.addrs("ads99999.tracker.test").await, [ip("0.0.0.0")]);
    assert_eq!(env.addrs("printer.lan").await, [ip("192.168.1.20")]);
    assert_eq!(
        env.addrs("localhost").await.len(),
        0,
        "localhost is never blocked"
    );
    let m = env.tcp_query("nx40.bad.test").await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(m.authorities.len(), 1, "negative answers carry an SOA");
    let m = env.tcp_query("nodata41.bad.test").await;
    assert_eq!(
        (m.metadata.response_code, m.answers.len()),
        (ResponseCode::NoError, 0)
    );
    assert_eq!(
        env.addrs("local99998.bad.test").await,
        [ip("10.77.134.158")]
    );
    let m = env.tcp_query("deep.er.wild43.bad.test").await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    // PASSTHRU beats the wildcard: the lab's real answer.
    assert_eq!(env.addrs("www.example.com").await, [ip("192.0.2.1")]);
    let m = env.tcp_query("mail.example.com").await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    // DROP: no reply at all.
    let none = udp_from(ip("127.0.0.1"), env.addr, "drop.test", RecordType::A).await;
    assert!(none.is_none(), "{none:?}");
    env.stop().await;
}

impl REnv {
    async fn tcp_query(&self, name: &str) -> Message {
        crate::util::tcp(self.addr, name, RecordType::A).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_with_a_broken_file_keeps_serving_the_old_rules() {
    let v1 = "[[rule]]\nname = \"a.lan\"\naction = \"override\"\na = [\"10.0.0.1\"]\n";
    let env = REnv::start(95, v1).await;
    assert_eq!(env.addrs("a.lan").await, [ip("10.0.0.1")]);

    // Queries keep flowing during the reloads; every one must be answered.
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let load = {
        let (stop, answered, server) = (stop.clone(), answered.clone(), env.addr);
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let m = udp(server, "a.lan", RecordType::A, None).await;
                assert_eq!(m.answers.len(), 1, "{m:?}");
                answered.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    std::fs::write(
        &env.rules,
        "[[rule]]\nname = \"a.lan\"\naction = \"override\"\na = [\"not-an-address\"]\n",
    )
    .unwrap();
    let r = env.redirect.clone();
    let e = tokio::task::spawn_blocking(move || r.reload())
        .await
        .unwrap()
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains(&format!("{}:4:", env.rules.display())),
        "{text}"
    );
    assert_eq!(
        env.addrs("a.lan").await,
        [ip("10.0.0.1")],
        "old rules still serve"
    );

    std::fs::write(&env.rules, v1.replace("10.0.0.1", "10.0.0.2")).unwrap();
    let r = env.redirect.clone();
    tokio::task::spawn_blocking(move || r.reload())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(env.addrs("a.lan").await, [ip("10.0.0.2")]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    assert!(answered.load(Ordering::Relaxed) > 0);
    let stats = env.redirect.stats();
    assert_eq!(
        (
            stats.reloads.load(Ordering::Relaxed),
            stats.reload_failures.load(Ordering::Relaxed)
        ),
        (2, 1)
    );
    env.stop().await;
}

/// Waits for a `hopdns serve` child to answer `name` with an address other than `not`.
async fn wait_for(addr: SocketAddr, name: &str, pred: impl Fn(&[IpAddr]) -> bool) -> Vec<IpAddr> {
    let start = Instant::now();
    loop {
        if let Some(m) = udp_from(ip("127.0.0.1"), addr, name, RecordType::A).await {
            let a = addresses(&m);
            if pred(&a) {
                return a;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no matching answer for {name}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reloads_rules_on_sighup_and_ctl_and_keeps_them_when_the_file_is_broken() {
    let lab = Lab::start(LabConfig { net: 96 }).await.unwrap();
    let mut up = Backend::start(SocketAddr::from(([127, 55, 96, 1], 8080))).await;
    let d = dir(96);
    let hints = d.join("lab.root");
    std::fs::write(&hints, lab.root_hints()).unwrap();
    let rules = d.join("rules.toml");
    let socket = d.join("control.sock");
    let log = d.join("serve.log");
    let pool = "[[pool]]\nname = \"p\"\nmembers = [{ address = \"127.55.96.1\" }, { address = \"127.55.96.2\" }]\n\
                [pool.health]\ncheck = \"tcp\"\nport = 8080\ninterval = \"100ms\"\n";
    let rule = |addr: &str| {
        format!("{pool}[[rule]]\nname = \"a.lan\"\naction = \"override\"\na = [\"{addr}\"]\n")
    };
    std::fs::write(&rules, rule("10.0.0.1")).unwrap();
    let listen = SocketAddr::new(IpAddr::V4(lab.addr(252)), 53);
    let mut child = std::process::Command::new(bin())
        .args([
            "serve",
            "--threads",
            "1",
            "--no-prime",
            "--no-ipv6",
            "--query-loopback",
            "--no-dnssec",
        ])
        .arg("--listen")
        .arg(listen.to_string())
        .arg("--root-hints")
        .arg(&hints)
        .arg("--rules")
        .arg(&rules)
        .arg("--control-socket")
        .arg(&socket)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    // A failing assertion must not leave the server running.
    struct Stop(i32);
    impl Drop for Stop {
        fn drop(&mut self) {
            // SAFETY: kill(2) on a child process this test started; no memory is involved.
            unsafe { libc::kill(self.0, libc::SIGKILL) };
        }
    }
    let stop = Stop(pid);
    assert_eq!(
        wait_for(listen, "a.lan", |a| !a.is_empty()).await,
        [ip("10.0.0.1")]
    );
    let ctl = |command: &'static str| {
        let socket = socket.clone();
        async move {
            let out = tokio::task::spawn_blocking(move || {
                std::process::Command::new(bin())
                    .arg("ctl")
                    .arg("--socket")
                    .arg(&socket)
                    .arg(command)
                    .output()
                    .unwrap()
            })
            .await
            .unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            (out.status.success(), text)
        }
    };

    // SIGHUP reloads.
    std::fs::write(&rules, rule("10.0.0.2")).unwrap();
    // SAFETY: kill(2) on a child process this test started; no memory is involved.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    assert_eq!(
        wait_for(listen, "a.lan", |a| a == [ip("10.0.0.2")]).await,
        [ip("10.0.0.2")]
    );
    // So does `hopdns ctl reload`, which reports what it loaded.
    std::fs::write(&rules, rule("10.0.0.3")).unwrap();
    let (ok, text) = ctl("reload").await;
    assert!(
        ok && text.contains("redirect rules") && text.contains("1 pools"),
        "{text}"
    );
    assert_eq!(env_addrs(listen, "a.lan").await, [ip("10.0.0.3")]);
    // `ctl health` shows the pool members as the checks see them.
    let start = Instant::now();
    let health = loop {
        let (_, text) = ctl("health").await;
        if text.contains("p 127.55.96.2 down") {
            break text;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(health.contains("p 127.55.96.1 up"), "{health}");

    // A broken file: ctl says why (file and line), SIGHUP logs it, the old rules serve on.
    std::fs::write(
        &rules,
        format!("{pool}[[rule]]\nname = \"a.lan\"\naction = \"overide\"\n"),
    )
    .unwrap();
    let (ok, text) = ctl("reload").await;
    // Line 10 holds the bad value, `action = "overide"`.
    assert!(
        !ok && text.contains(&format!("{}:10:", rules.display())),
        "{text}"
    );
    // SAFETY: kill(2) on a child process this test started; no memory is involved.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(&log).unwrap();
        if text.matches("previous rules stay in use").count() >= 2 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no reload error logged:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(env_addrs(listen, "a.lan").await, [ip("10.0.0.3")]);
    // Names without rules are still resolved.
    assert_eq!(
        wait_for(listen, "www.example.com", |_| true).await,
        [ip("192.0.2.1")]
    );

    // SAFETY: kill(2) on a child process this test started; no memory is involved.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = child.wait().unwrap();
    std::mem::forget(stop);
    assert!(status.success(), "{status:?}");
    up.down().await;
    lab.shutdown().await;
    let _ = std::fs::remove_dir_all(d);
}

/// The addresses `server` answers for `name` now.
async fn env_addrs(server: SocketAddr, name: &str) -> Vec<IpAddr> {
    addresses(
        &udp_from(ip("127.0.0.1"), server, name, RecordType::A)
            .await
            .expect("an answer"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_shows_the_redirect_hop_with_rule_action_and_members() {
    let lab = Lab::start(LabConfig { net: 97 }).await.unwrap();
    let mut up = Backend::start(SocketAddr::from(([127, 55, 97, 1], 8080))).await;
    let d = dir(97);
    let hints = d.join("lab.root");
    std::fs::write(&hints, lab.root_hints()).unwrap();
    let rules = d.join("rules.toml");
    std::fs::write(
        &rules,
        r#"
        [[pool]]
        name = "web"
        policy = "first-healthy"
        members = [{ address = "127.55.97.2" }, { address = "127.55.97.1" }]
        [pool.health]
        check = "tcp"
        port = 8080

        [[rule]]
        name = "www.lan"
        action = "pool"
        pool = "web"

        [[rule]]
        name = "old.lan"
        action = "alias"
        target = "www.example.com"
        "#,
    )
    .unwrap();
    let run = |name: &'static str, json: bool| {
        let mut c = std::process::Command::new(bin());
        c.args([
            "trace",
            name,
            "--no-prime",
            "--no-ipv6",
            "--query-loopback",
            "--no-dnssec",
        ])
        .arg("--root-hints")
        .arg(&hints)
        .arg("--rules")
        .arg(&rules);
        if json {
            c.arg("--json");
        }
        tokio::task::spawn_blocking(move || c.output().unwrap())
    };
    let out = run("www.lan", false).await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(";; redirect www.lan. A: rule www.lan ("),
        "{text}"
    );
    assert!(text.contains("pool web (first-healthy"), "{text}");
    assert!(text.contains("member 127.55.97.2 weight 1: down"), "{text}");
    assert!(
        text.contains("member 127.55.97.1 weight 1: up, check"),
        "{text}"
    );
    assert!(text.contains("<- answered"), "{text}");

    let out = run("old.lan", true).await.unwrap();
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["event"], "redirect", "{lines:?}");
    assert_eq!(lines[0]["action"], "alias to www.example.com.");
    // Then the target is resolved hop by hop, ending in the lab's answer.
    assert!(lines.iter().any(|l| l["event"] == "reply"));
    // The last event is the whole answer: the alias's CNAME, then the target's address.
    let done = lines.last().unwrap();
    let last_word = |i: usize| {
        let record = done["answers"][i].as_str().unwrap_or_default();
        record
            .split_whitespace()
            .last()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(last_word(0), "www.example.com.", "{done}");
    assert_eq!(last_word(1), "192.0.2.1", "{done}");
    up.down().await;
    lab.shutdown().await;
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn the_lan_example_loads_with_serve_and_answers() {
    // The example's pool members are LAN addresses: serve runs in a network namespace of its
    // own (loopback only), so its health checks can reach nothing outside this machine.
    let root = env!("CARGO_MANIFEST_DIR");
    let child = std::process::Command::new("unshare")
        .args([
            "--net",
            "sh",
            "-c",
            "ip link set lo up && exec \"$0\" \"$@\"",
        ])
        .arg(bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.53:53",
            "--threads",
            "1",
            "--no-prime",
        ])
        .args(["--rules", "docs/examples/lan-rules.toml"])
        .current_dir(root)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("unshare runs (tests run as root)");
    let pid = child.id();
    // Query from a thread that joined the child's network namespace.
    let asked = std::thread::spawn(move || -> Result<Vec<(String, String)>, String> {
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).map_err(|e| e.to_string())?;
        use std::os::fd::AsRawFd;
        // Wait until the child has its own namespace (after unshare), then join it.
        let mine = std::fs::read_link("/proc/self/ns/net").map_err(|e| e.to_string())?;
        let start = Instant::now();
        while std::fs::read_link(format!("/proc/{pid}/ns/net")).map_err(|e| e.to_string())? == mine
        {
            if start.elapsed() > Duration::from_secs(5) {
                return Err("child never entered its namespace".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))
            .map_err(|e| e.to_string())
            .unwrap_or(ns);
        // SAFETY: setns(2) with the namespace fd opened just above; it changes only this thread's network namespace.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(format!("setns: {}", std::io::Error::last_os_error()));
        }
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut out = Vec::new();
        for (name, qtype) in [
            ("nas.home.lan", RecordType::A),
            ("printer.home.lan", RecordType::A),
            ("ads.doubleclick.net", RecordType::A),
            ("x.telemetry.example", RecordType::A),
            ("app.home.lan", RecordType::A),
            ("intranet.home.lan", RecordType::A),
        ] {
            let q = query(name, qtype, None).to_vec().unwrap();
            let mut buf = [0u8; 1500];
            let start = Instant::now();
            // Until serve is up (and lo in its namespace), sends fail or go unanswered.
            let reply = loop {
                let sent = sock.send_to(&q, "127.0.0.53:53");
                match sent.and_then(|_| sock.recv_from(&mut buf)) {
                    Ok((n, _)) => break Message::from_vec(&buf[..n]).unwrap(),
                    Err(_) if start.elapsed() < Duration::from_secs(10) => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    Err(e) => return Err(format!("{name}: {e}")),
                }
            };
            out.push((
                name.to_string(),
                format!(
                    "{} {}",
                    reply.metadata.response_code,
                    answers(&reply).join(", ")
                ),
            ));
        }
        Ok(out)
    })
    .join();
    // Stop serve before anything can fail, so no server outlives the test.
    // SAFETY: kill(2) on a child process this test started; no memory is involved.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let asked = asked.unwrap_or_else(|_| Err("the query thread panicked".into()));
    let output = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    let got: HashMap<String, String> = asked
        .unwrap_or_else(|e| panic!("{e}\n{log}"))
        .into_iter()
        .collect();
    assert!(log.contains("redirect rules loaded"), "{log}");
    assert_eq!(
        got["nas.home.lan"], "No Error nas.home.lan. A 192.168.1.10",
        "{got:?}"
    );
    assert_eq!(
        got["printer.home.lan"], "No Error printer.home.lan. A 192.168.1.11",
        "{got:?}"
    );
    assert!(
        got["ads.doubleclick.net"].starts_with("Non-Existent Domain"),
        "{got:?}"
    );
    assert!(
        got["x.telemetry.example"].starts_with("Non-Existent Domain"),
        "{got:?}"
    );
    // The pool's members are unreachable from the namespace: the checks take them down, and
    // the pool still answers with a member (all-down = "serve-all").
    let app = &got["app.home.lan"];
    assert!(
        app == "No Error app.home.lan. A 192.168.1.21"
            || app == "No Error app.home.lan. A 192.168.1.22",
        "{got:?}"
    );
    assert!(log.contains("pool member is down"), "{log}");
    assert!(
        got["intranet.home.lan"].contains("CNAME nas.home.lan."),
        "{got:?}"
    );
}

#[test]
fn serve_refuses_a_missing_or_broken_rules_file_naming_file_line_and_problem() {
    let d = dir(98);
    let broken = d.join("broken.toml");
    std::fs::write(
        &broken,
        "[[rule]]\nname = \"a.lan\"\n\naction = \"alias\"\n",
    )
    .unwrap();
    for (rules, expect) in [
        (
            d.join("missing.toml"),
            "missing.toml: cannot read".to_string(),
        ),
        (
            broken.clone(),
            format!("{}:1: action = \"alias\" needs `target", broken.display()),
        ),
    ] {
        let out = std::process::Command::new(bin())
            .args([
                "serve",
                "--listen",
                "127.53.98.252:53",
                "--threads",
                "1",
                "--no-prime",
            ])
            .arg("--rules")
            .arg(&rules)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(&expect), "{err}");
    }
    let _ = std::fs::remove_dir_all(d);
}

/// Issue 11.7, blocklist bypass through CNAME: in the lab, `chain.example.com` (no rule) is
/// a CNAME to `c2.example.net`, then `c3.example.org` (blocked by an RPZ QNAME trigger),
/// then `www.shop.com`. The answer is the links up to the blocked name and its action
/// (NXDOMAIN), as RPZ does, from the cache as well; a PASSTHRU name in the chain exempts
/// the rest of it (Unbound's `rpz_passthru`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cname_chain_into_a_blocked_name_gets_the_blocked_names_action() {
    let d = dir(103);
    std::fs::write(
        d.join("policy.rpz"),
        "$TTL 60\n@ IN SOA ns.policy.rpz. admin.policy.rpz. 1 3600 600 86400 60\n  IN NS ns.policy.rpz.\n\
         c3.example.org CNAME .\nwww.example.com CNAME .\nalias.example.com CNAME rpz-passthru.\n",
    )
    .unwrap();
    let rules = format!(
        "[[rpz]]\nfile = \"{}\"\norigin = \"policy.rpz\"\n",
        d.join("policy.rpz").display()
    );
    let env = REnv::start(103, &rules).await;
    let links = |m: &Message| -> Vec<String> {
        m.answers
            .iter()
            .map(|r| format!("{} {} {}", r.name, r.record_type(), r.data))
            .collect()
    };
    // Twice: resolved, then from the caches (the fast path must not serve the chain).
    for round in ["resolved", "cached"] {
        let m = udp(env.addr, "chain.example.com", RecordType::A, Some(1232)).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{round}");
        assert_eq!(
            links(&m),
            [
                "chain.example.com. CNAME c2.example.net.",
                "c2.example.net. CNAME c3.example.org."
            ],
            "{round}"
        );
        let m = udp(env.addr, "c2.example.net", RecordType::A, Some(1232)).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{round}");
        assert_eq!(links(&m), ["c2.example.net. CNAME c3.example.org."]);
    }
    // Over TCP too.
    let m = crate::util::tcp(env.addr, "chain.example.com", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    // PASSTHRU on the question: its chain (alias -> www, blocked) is not checked.
    let m = udp(env.addr, "alias.example.com", RecordType::A, Some(1232)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(addresses(&m), [IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))]);
    let m = udp(env.addr, "www.example.com", RecordType::A, Some(1232)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    // The target after the blocked name has no rule and is answered.
    let m = udp(env.addr, "www.shop.com", RecordType::A, Some(1232)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(!addresses(&m).is_empty());
    env.stop().await;
}
