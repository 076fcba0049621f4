//! Operations (issue 5): config file, ctl, metrics, warm restart, drain, RRL, TCP caps,
//! pending bound, query log, man page. Lab networks 110..=129.

use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use hopdns::lab::{Fault, Lab, LabConfig};
use hopdns::resolver::{hints, Resolver, ResolverConfig};
use hopdns::server::rrl::RrlConfig;
use hopdns::server::{BoundServer, ServerConfig};
use hopdns::transport::NetTransport;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;

use crate::util::{answers, bin, query, tcp, udp, until};

/// A scratch directory for one test, removed when dropped.
pub(crate) struct Scratch(pub(crate) PathBuf);

impl Scratch {
    pub(crate) fn new(name: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("hopdns-ops-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
    pub(crate) fn path(&self, f: &str) -> PathBuf {
        self.0.join(f)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `hopdns serve` child, killed (by PID) if the test ends early.
pub(crate) struct Serve(pub(crate) Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Serve {
    pub(crate) fn signal(&self, sig: &str) {
        Command::new("kill")
            .args([&format!("-{sig}"), &self.0.id().to_string()])
            .status()
            .unwrap();
    }

    /// Waits for the exit after a signal; panics after `limit`.
    pub(crate) async fn exit_within(&mut self, limit: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(s) = self.0.try_wait().unwrap() {
                return s;
            }
            assert!(start.elapsed() < limit, "still running after {limit:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `serve` on `listen` against the lab (its hints, loopback servers, IPv4), plus `extra`.
pub(crate) fn lab_args(listen: SocketAddr, hints: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--listen",
        &listen.to_string(),
        "--threads",
        "1",
        "--no-prime",
        "--no-ipv6",
        "--query-loopback",
        "--no-dnssec",
        "--root-hints",
        hints.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

pub(crate) fn hints_file(lab: &Lab, dir: &Scratch) -> PathBuf {
    let p = dir.path("lab.root");
    std::fs::write(&p, lab.root_hints()).unwrap();
    p
}

/// Starts `hopdns serve` with `args` and waits until `addr` answers www.example.com.
pub(crate) async fn serve<S: AsRef<std::ffi::OsStr>>(
    args: &[S],
    addr: SocketAddr,
    stderr: Option<&Path>,
) -> Serve {
    let err = match stderr {
        Some(p) => Stdio::from(std::fs::File::create(p).unwrap()),
        None => Stdio::null(),
    };
    let child = Command::new(bin())
        .arg("serve")
        .args(args)
        .stderr(err)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let child = Serve(child);
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let probe = tokio::time::timeout(
            Duration::from_secs(5),
            udp(addr, "www.example.com", RecordType::A, Some(1232)),
        )
        .await;
        if probe.is_ok() {
            return child;
        }
    }
    panic!("serve never answered on {addr}");
}

pub(crate) fn run(args: &[&str]) -> Output {
    tokio::task::block_in_place(|| Command::new(bin()).args(args).output().unwrap())
}

pub(crate) fn ctl(socket: &Path, args: &[&str]) -> (bool, String) {
    let out = run(&[&["ctl", "--socket", socket.to_str().unwrap()], args].concat());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

pub(crate) fn lab_queries_for(lab: &Lab, name: &str) -> usize {
    let n = Name::from_ascii(name).unwrap();
    lab.query_log()
        .iter()
        .filter(|q| q.name.to_lowercase() == n.to_lowercase())
        .count()
}

#[test]
fn config_check_reports_every_error_with_key_and_line() {
    let dir = Scratch::new("check");
    let bad = dir.path("bad.toml");
    std::fs::write(
        &bad,
        "# comment\nthreads = \"many\"\nlisten = [\"127.0.0.1:5300\"]\nrrl-rat = 5\n\
         no-prime = \"yes\"\nrrl-slip = [1, 2]\n[cache]\nsize = 1\n",
    )
    .unwrap();
    let out = run(&["config", "check", bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let f = bad.display();
    for expected in [
        format!("{f}:2: key `threads`: invalid value 'many' for '--threads <N>'"),
        format!("{f}:4: key `rrl-rat`: unknown key (did you mean `rrl-rate`?)"),
        format!("{f}:5: key `no-prime`: is a switch"),
        format!("{f}:6: key `rrl-slip`: takes one value, not a list"),
        format!("{f}:7: key `cache`: sections are not used"),
        format!("{f}: 5 errors"),
    ] {
        assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    }
    // A TOML syntax error is located too.
    std::fs::write(&bad, "threads = 2\nlisten = [\"127.0.0.1:53\"\n").unwrap();
    let out = run(&["config", "check", bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("{f}:2:")), "{err}");
    // serve refuses to start on a bad file, naming key and line, before binding anything.
    std::fs::write(&bad, "max-pending = 0\n").unwrap();
    let out = run(&["serve", "--config", bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("{f}:1: key `max-pending`")) && err.contains("at least 1"),
        "{err}"
    );
    // ctl without a server says where it looked and what to check.
    let out = run(&["ctl", "--socket", "/nonexistent/hopdns.sock", "stats"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cannot reach hopdns at /nonexistent/hopdns.sock"),
        "{err}"
    );
    // A missing file is a clear error as well.
    let out = run(&["config", "check", "/nonexistent/hopdns.toml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/hopdns.toml: cannot read it"),
        "{err}"
    );
}

#[test]
fn config_defaults_print_every_key_and_check_clean() {
    let dir = Scratch::new("defaults");
    let out = run(&["config", "defaults"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for key in [
        "listen = [\"127.0.0.53:53\"]",
        "# allow = [\"CIDR\"]",
        "rrl-rate = 0",
        "rrl-slip = 2",
        "max-tcp-per-client = 10",
        "max-pending = 4096",
        "# control-socket = \"PATH\"",
        "# metrics = \"ADDR:PORT\"",
        "# cache-file = \"FILE\"",
        "query-log = false",
        "log-level = \"info\"",
        "log-format = \"text\"",
        "no-prime = false",
    ] {
        assert!(text.contains(key), "missing {key:?}");
    }
    let p = dir.path("defaults.toml");
    std::fs::write(&p, &text).unwrap();
    let out = run(&["config", "check", p.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One `serve` configured from a file (the command line overriding it), then every `ctl`
/// command, the metrics endpoint scraped by curl, the JSON query log, SIGHUP and SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_ctl_metrics_and_query_log_on_a_running_server() {
    let lab = Lab::start(LabConfig { net: 110 }).await.unwrap();
    let dir = Scratch::new("ctl");
    let socket = dir.path("control.sock");
    let file_listen = "127.53.110.250:53";
    let cli_listen: SocketAddr = "127.53.110.251:53".parse().unwrap();
    let config = dir.path("hopdns.toml");
    std::fs::write(
        &config,
        format!(
            "listen = [\"{file_listen}\"]\nthreads = 1\nno-prime = true\nno-ipv6 = true\n\
             query-loopback = true\nno-dnssec = true\nroot-hints = \"{}\"\ncontrol-socket = \"{}\"\n\
             metrics = \"127.53.110.251:9153\"\nlog-level = \"warn\"\nlog-format = \"json\"\n\
             query-log = true\nquery-log-hash-clients = true\n",
            hints_file(&lab, &dir).display(),
            socket.display()
        ),
    )
    .unwrap();
    let stderr = dir.path("stderr.log");
    let cli = cli_listen.to_string();
    let mut server = serve(
        &["--config", config.to_str().unwrap(), "--listen", &cli],
        cli_listen,
        Some(&stderr),
    )
    .await;
    // The command line's --listen replaced the file's.
    let other = tokio::time::timeout(
        Duration::from_millis(500),
        udp(
            file_listen.parse().unwrap(),
            "www.example.com",
            RecordType::A,
            None,
        ),
    )
    .await;
    assert!(
        other.is_err(),
        "the file's listen address must not be bound"
    );

    // Owner-only control socket.
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");

    // stats, finding the socket through the config file's control-socket.
    let out = run(&["ctl", "--config", config.to_str().unwrap(), "stats"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("cache_misses ") && text.contains("cache_rrsets "),
        "{text}"
    );

    // flush NAME: the next question goes upstream again.
    udp(cli_listen, "www.example.com", RecordType::A, None).await;
    lab.clear_query_log();
    udp(cli_listen, "www.example.com", RecordType::A, None).await;
    assert_eq!(lab_queries_for(&lab, "www.example.com."), 0, "cached");
    let (ok, text) = ctl(&socket, &["flush", "WWW.example.com"]);
    assert!(
        ok && text.contains("flushed") && !text.contains("flushed 0"),
        "{text}"
    );
    udp(cli_listen, "www.example.com", RecordType::A, None).await;
    assert_eq!(lab_queries_for(&lab, "www.example.com."), 1, "asked again");

    // dump-cache, flush-all, load-cache: the loaded entry answers without the lab.
    let dump = dir.path("dump.cache");
    let (ok, text) = ctl(&socket, &["dump-cache", dump.to_str().unwrap()]);
    assert!(ok && text.contains("wrote"), "{text}");
    assert!(std::fs::read_to_string(&dump)
        .unwrap()
        .starts_with("hopdns-cache"));
    let (ok, text) = ctl(&socket, &["flush-all"]);
    assert!(ok && text.contains("flushed"), "{text}");
    let (ok, text) = ctl(&socket, &["load-cache", dump.to_str().unwrap()]);
    assert!(
        ok && text.contains("loaded") && !text.contains("loaded 0"),
        "{text}"
    );
    lab.clear_query_log();
    let m = udp(cli_listen, "www.example.com", RecordType::A, None).await;
    assert_eq!(answers(&m), ["www.example.com. A 192.0.2.1"]);
    assert_eq!(lab.query_log().len(), 0, "answered from the loaded cache");

    // flush-zone: everything under example.com goes.
    udp(cli_listen, "alias.example.com", RecordType::A, None).await;
    let (ok, text) = ctl(&socket, &["flush-zone", "example.com"]);
    assert!(ok && text.contains("at and below example.com."), "{text}");
    lab.clear_query_log();
    udp(cli_listen, "www.example.com", RecordType::A, None).await;
    assert!(lab_queries_for(&lab, "www.example.com.") >= 1);

    // reload and health report plainly; bad input gets a clear answer.
    let (ok, text) = ctl(&socket, &["reload"]);
    assert!(
        ok && text.contains("re-read; log level warn; nothing else"),
        "{text}"
    );
    let before = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{before}rrl-rate = 50\n")).unwrap();
    let (ok, text) = ctl(&socket, &["reload"]);
    assert!(
        ok && text.contains("applied only at restart: rrl-rate"),
        "{text}"
    );
    std::fs::write(&config, format!("{before}rrl-rate = \"lots\"\n")).unwrap();
    let (ok, text) = ctl(&socket, &["reload"]);
    assert!(
        !ok && text.contains("key `rrl-rate`: invalid value 'lots'"),
        "{text}"
    );
    std::fs::write(&config, &before).unwrap();
    let (ok, text) = ctl(&socket, &["health"]);
    assert!(ok && text.contains("no pools"), "{text}");
    let (ok, text) = ctl(&socket, &["flush", "bad..name"]);
    assert!(!ok && text.contains("not a domain name"), "{text}");
    let (ok, text) = ctl(&socket, &["load-cache", "/nonexistent/cache"]);
    assert!(
        !ok && text.contains("cannot open /nonexistent/cache"),
        "{text}"
    );

    // A real HTTP client scrapes the metrics.
    let scrape = tokio::task::block_in_place(|| {
        Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "5",
                "-H",
                "Accept: application/openmetrics-text",
                "http://127.53.110.251:9153/metrics",
            ])
            .output()
            .expect("curl is installed")
    });
    let body = String::from_utf8_lossy(&scrape.stdout);
    assert!(
        scrape.status.success(),
        "{}",
        String::from_utf8_lossy(&scrape.stderr)
    );
    for needle in [
        "hopdns_replies_total{qtype=\"A\",rcode=\"NOERROR\"}",
        "hopdns_cache_hits_total ",
        "hopdns_cache_misses_total ",
        "hopdns_stale_answers_total ",
        "hopdns_prefetches_total ",
        "hopdns_upstream_queries_total{server=\"127.53.110.",
        "hopdns_upstream_timeouts_total{server=\"127.53.110.",
        "hopdns_resolution_duration_seconds_bucket{le=\"0.1\"}",
        "hopdns_resolutions_in_flight 0",
        "hopdns_rrl_dropped_total 0",
        "hopdns_aggressive_nsec_total{kind=\"nxdomain\"} ",
        "hopdns_dnssec_validations_total{state=\"bogus\"} ",
        "hopdns_aggressive_nsec_total{kind=\"nodata\"} ",
        "# TYPE hopdns_pool_member_up gauge",
        "# EOF",
    ] {
        assert!(body.contains(needle), "missing {needle:?} in:\n{body}");
    }
    let hits = metric(&body, "hopdns_cache_hits_total");
    assert!(hits >= 2.0, "{hits}");

    // SIGHUP reloads (the new log level lets its report through) and the server keeps
    // answering.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("log-level = \"warn\"", "log-level = \"info\""),
    )
    .unwrap();
    server.signal("HUP");
    until("SIGHUP reloads", Duration::from_secs(5), || {
        std::fs::read_to_string(&stderr).is_ok_and(|log| log.contains("SIGHUP: reloaded"))
    })
    .await;
    let m = udp(cli_listen, "www.example.com", RecordType::A, None).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);

    server.signal("TERM");
    let status = server.exit_within(Duration::from_secs(5)).await;
    assert!(status.success(), "{status}");
    assert!(!socket.exists(), "the control socket is removed on exit");

    // The query log: JSON lines under hopdns::query, client hashed.
    let log = std::fs::read_to_string(&stderr).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("\"target\":\"hopdns::query\"") && l.contains("www.example.com"))
        .unwrap_or_else(|| panic!("no query log line in:\n{log}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["qtype"], "A");
    assert_eq!(v["rcode"], "NOERROR");
    let client = v["client"].as_str().unwrap();
    assert!(client.len() == 16 && !client.contains('.'), "{client}");
    assert!(log.contains("SIGHUP: reloaded"), "{log}");
    lab.shutdown().await;
}

pub(crate) fn metric(body: &str, name: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in {body}"))
}

/// `--cache-file`: saved at SIGTERM, loaded at start, answered from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_restart_keeps_the_remaining_ttl() {
    let lab = Lab::start(LabConfig { net: 111 }).await.unwrap();
    let dir = Scratch::new("warm");
    let hints = hints_file(&lab, &dir);
    let cache = dir.path("hopdns.cache");
    let listen: SocketAddr = "127.53.111.250:53".parse().unwrap();
    let args = lab_args(listen, &hints, &["--cache-file", cache.to_str().unwrap()]);
    let mut first = serve(&args, listen, None).await;
    let m = udp(listen, "www.example.com", RecordType::AAAA, None).await;
    assert_eq!(m.answers[0].ttl, 300);
    first.signal("TERM");
    assert!(first.exit_within(Duration::from_secs(5)).await.success());
    assert!(std::fs::read_to_string(&cache).unwrap().lines().count() > 1);

    lab.clear_query_log();
    let mut second = serve(&args, listen, None).await;
    let m = udp(listen, "www.example.com", RecordType::AAAA, None).await;
    assert_eq!(answers(&m), ["www.example.com. AAAA 2001:db8::1"]);
    let ttl = m.answers[0].ttl;
    // The seconds of the restart are taken off (exactly so on a manual clock:
    // cli::serve_services::tests::a_warm_restart_takes_off_the_time_that_passed).
    assert!((285..=300).contains(&ttl), "remaining TTL {ttl}");
    let asked: Vec<_> = lab
        .query_log()
        .into_iter()
        .filter(|q| q.qtype == RecordType::AAAA)
        .collect();
    assert!(
        asked.is_empty(),
        "answered from the loaded cache: {asked:?}"
    );
    second.signal("TERM");
    assert!(second.exit_within(Duration::from_secs(5)).await.success());
    lab.shutdown().await;
}

/// SIGTERM: nothing new is accepted, but a query already in hand is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_queries_in_hand() {
    let lab = Lab::start(LabConfig { net: 112 }).await.unwrap();
    let dir = Scratch::new("drain");
    let hints = hints_file(&lab, &dir);
    let listen: SocketAddr = "127.53.112.250:53".parse().unwrap();
    let args = lab_args(listen, &hints, &["--drain-timeout", "4"]);
    let mut server = serve(&args, listen, None).await;
    // Servers not asked yet (first timeout 400 ms) answer after 300 ms.
    for host in [24, 26] {
        lab.set_fault(
            IpAddr::V4(lab.addr(host)),
            Some(Fault::Delay(Duration::from_millis(300))),
        );
    }
    let slow = tokio::spawn(udp(listen, "www.shop.com", RecordType::A, None));
    let slow_tcp = tokio::spawn(tcp(listen, "www.example.org", RecordType::A));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stop = Instant::now();
    server.signal("TERM");
    tokio::time::sleep(Duration::from_millis(50)).await;
    // A new query after SIGTERM is not taken.
    let late = tokio::spawn(tokio::time::timeout(
        Duration::from_millis(800),
        udp(listen, "www.example.net", RecordType::A, None),
    ));
    let m = slow.await.unwrap();
    assert_eq!(answers(&m), ["www.shop.com. A 192.0.2.60"]);
    assert!(
        stop.elapsed() > Duration::from_millis(150),
        "answered before SIGTERM"
    );
    let m = slow_tcp.await.unwrap();
    assert_eq!(answers(&m), ["www.example.org. A 192.0.2.30"]);
    assert!(
        late.await.unwrap().is_err(),
        "a query sent after SIGTERM was answered"
    );
    let status = server.exit_within(Duration::from_secs(5)).await;
    assert!(status.success(), "{status}");
    assert!(
        stop.elapsed() < Duration::from_secs(4),
        "{:?}",
        stop.elapsed()
    );
    lab.shutdown().await;
}

/// RRL: past the burst, replies are dropped except every slip-th, sent with TC=1; TCP is
/// not limited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rrl_limits_a_prefix_and_slips_truncated_replies() {
    let rrl = RrlConfig {
        rate: 2,
        burst: 5,
        slip: 2,
        // The lab's clients are on loopback, which is exempt by default.
        exempt_loopback: false,
        ..RrlConfig::default()
    };
    let (token, addr) = crate::util::fixed_server(
        "127.53.113.253:53".parse().unwrap(),
        ServerConfig {
            rrl,
            ..ServerConfig::default()
        },
    )
    .await;
    let sock = UdpSocket::bind("127.53.113.10:0").await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..20 {
        let q = query("www.example.com", RecordType::A, Some(1232));
        ids.push(q.metadata.id);
        sock.send_to(&q.to_vec().unwrap(), addr).await.unwrap();
    }
    // Another client in the same /24 shares the bucket, now empty.
    let other = UdpSocket::bind("127.53.113.11:0").await.unwrap();
    let q = query("www.example.com", RecordType::A, None);
    other.send_to(&q.to_vec().unwrap(), addr).await.unwrap();
    ids.push(q.metadata.id);
    // Replies to both clients: each query is answered by its own task, so under load the
    // other client's may be sent before some of the first client's and take a full token.
    let (mut full, mut truncated) = (0, 0);
    let (mut buf, mut buf2) = (vec![0u8; 2048], vec![0u8; 2048]);
    loop {
        let got = tokio::time::timeout(Duration::from_millis(500), async {
            tokio::select! {
                r = sock.recv_from(&mut buf) => r.map(|(n, _)| buf[..n].to_vec()),
                r = other.recv_from(&mut buf2) => r.map(|(n, _)| buf2[..n].to_vec()),
            }
        })
        .await;
        let Ok(Ok(bytes)) = got else { break };
        let m = Message::from_vec(&bytes).unwrap();
        assert!(ids.contains(&m.metadata.id));
        if m.metadata.truncation {
            assert!(m.answers.is_empty() && m.queries.len() == 1);
            truncated += 1;
        } else {
            full += 1;
        }
    }
    // 21 queries from one /24: 5 from the burst (maybe one more refilled at 2/s), then
    // every 2nd of the ~16 limited is sent with TC=1. Were the other client's bucket its
    // own, it would add a full reply of its own.
    assert!((5..=6).contains(&full), "full replies {full}");
    assert!((7..=8).contains(&truncated), "TC replies {truncated}");
    // TCP is not limited.
    let m = tcp(addr, "www.example.com", RecordType::A).await;
    assert_eq!(answers(&m), ["www.example.com. A 192.0.2.1"]);
    token.cancel();
}

/// TCP connection caps (issue 11.3): a client over its budget is still served (it gets the
/// shortest idle timeout and gives way first), and when every slot is open a new client
/// takes the slot of an idle connection instead of waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_clients_over_the_caps_are_served_and_idle_connections_give_way() {
    let (token, addr) = crate::util::fixed_server(
        "127.53.114.253:53".parse().unwrap(),
        ServerConfig {
            max_tcp_per_client: 2,
            max_tcp_clients: 3,
            ..ServerConfig::default()
        },
    )
    .await;
    let connect_from = |ip: &str| {
        let ip: IpAddr = ip.parse().unwrap();
        async move {
            let s = tokio::net::TcpSocket::new_v4().unwrap();
            s.bind(SocketAddr::new(ip, 0)).unwrap();
            s.connect(addr).await.unwrap()
        }
    };
    let mut a1 = connect_from("127.53.114.10").await;
    let mut a2 = connect_from("127.53.114.10").await;
    let mut a3 = connect_from("127.53.114.10").await;
    assert!(ask(&mut a1).await, "first connection served");
    assert!(ask(&mut a2).await, "second connection served");
    assert!(ask(&mut a3).await, "third from the same client served too");
    // 3 of 3 slots are open and idle: new clients are served at once all the same.
    for client in ["127.53.114.11", "127.53.114.12"] {
        let mut c = connect_from(client).await;
        let served = tokio::time::timeout(Duration::from_secs(1), ask(&mut c)).await;
        assert_eq!(served.ok(), Some(true), "{client} served within 1 s");
    }
    // The over-budget connection gave way first (or timed out idle: 200 ms at full load).
    assert!(
        !ask(&mut a3).await,
        "the over-budget idle connection was closed"
    );
    token.cancel();
}

/// One query on an open connection: whether an answer came back.
async fn ask(s: &mut TcpStream) -> bool {
    let q = query("www.example.com", RecordType::A, None)
        .to_vec()
        .unwrap();
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    if s.write_all(&framed).await.is_err() {
        return false;
    }
    let Ok(len) = s.read_u16().await else {
        return false;
    };
    let mut buf = vec![0u8; usize::from(len)];
    s.read_exact(&mut buf).await.is_ok()
}

/// The pending bound: while one resolution waits on a slow authority, a new cache miss gets
/// SERVFAIL at once, and a cache hit is still answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_pending_new_misses_get_servfail_quickly() {
    let lab = Lab::start(LabConfig { net: 115 }).await.unwrap();
    let mut config =
        ResolverConfig::new(hints::parse(&lab.root_hints(), "(lab root hints)").unwrap());
    config.settings.ipv6 = false;
    config.settings.query_loopback = true;
    config.max_pending = 1;
    let resolver = Resolver::new(config, Arc::new(NetTransport::default()));
    let addr: SocketAddr = "127.53.115.253:53".parse().unwrap();
    let bound = BoundServer::bind(&ServerConfig {
        listen: vec![addr],
        threads: 1,
        ..ServerConfig::default()
    })
    .unwrap();
    let token = CancellationToken::new();
    tokio::spawn(bound.run(Arc::new(resolver), token.clone()));
    // Cache www.example.net first.
    let m = udp(addr, "www.example.net", RecordType::A, None).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    // example.com's servers, not asked yet (first timeout 400 ms), answer after 300 ms.
    for host in [20, 21] {
        lab.set_fault(
            IpAddr::V4(lab.addr(host)),
            Some(Fault::Delay(Duration::from_millis(300))),
        );
    }
    let slow = tokio::spawn(udp(addr, "www.example.com", RecordType::A, None));
    let delayed = [IpAddr::V4(lab.addr(20)), IpAddr::V4(lab.addr(21))];
    until("the slow resolution waits", Duration::from_secs(5), || {
        lab.query_log().iter().any(|q| delayed.contains(&q.server))
    })
    .await;
    // SERVFAIL at once: refused before its first upstream query, not queued for the slot.
    let m = udp(addr, "www.shop.com", RecordType::A, None).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    let log = lab.query_log();
    assert!(
        !log.iter()
            .any(|q| q.name.to_lowercase().to_string().ends_with("shop.com.")),
        "{log:#?}"
    );
    let m = udp(addr, "www.example.net", RecordType::A, None).await;
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NoError,
        "hits still answered"
    );
    let m = slow.await.unwrap();
    assert_eq!(answers(&m), ["www.example.com. A 192.0.2.1"]);
    // The failure is not cached and the slot is free again.
    let m = udp(addr, "www.shop.com", RecordType::A, None).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    token.cancel();
    lab.shutdown().await;
}

#[test]
fn man_pages_in_docs_are_up_to_date_and_completions_print() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    for (name, text) in hopdns::cli::admin::man_pages().unwrap() {
        let file = docs.join(&name);
        let checked_in = std::fs::read(&file).unwrap_or_default();
        assert!(
            checked_in == text,
            "docs/{name} is out of date: run `cargo run -- man --out-dir docs`"
        );
    }
    let out = run(&["man"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(".TH hopdns 1"));
    let out = run(&["man", "serve"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\\-\\-rrl\\-rate"));
    for shell in ["bash", "zsh", "fish"] {
        let out = run(&["completions", shell]);
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("hopdns") && text.contains("max-tcp-per-client"),
            "{shell}"
        );
    }
}

/// docs/local-resolver.md end to end: `tests/local-resolver.sh` makes a network namespace
/// with its own resolv.conf, runs the lab and `hopdns serve` on 127.0.0.53 there, and
/// resolves lab names through glibc (`getent hosts`) and `dig`. Lab network 120 (inside the
/// namespace, so it cannot clash with the host's).
#[test]
fn local_resolver_at_127_0_0_53_answers_glibc_in_a_namespace() {
    let uid = Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        eprintln!("SKIPPED local_resolver test: needs root (network namespaces, port 53)");
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/local-resolver.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(bin())
        .env("LAB_NET", "120")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("getent hosts v4only.example.com: 192.0.2.3"),
        "{stdout}"
    );
    assert!(stdout.ends_with("PASS\n"), "{stdout}");
}
