//! Operations, round 2 (issue 12; issue 11 items 5 and 6): what a new operator tripped over.
//! Lab networks 180..=199.

use std::net::SocketAddr;
use std::process::Command;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use hopdns::lab::{Lab, LabConfig};

use crate::ops::{hints_file, lab_args, metric, serve, Scratch};
use crate::util::udp;

/// `GET /metrics` with curl, asking for OpenMetrics or the plain text format.
fn scrape(url: &str, open_metrics: bool) -> String {
    let mut args = vec!["-sS", "--max-time", "5"];
    if open_metrics {
        args.extend(["-H", "Accept: application/openmetrics-text"]);
    }
    args.push(url);
    let out = tokio::task::block_in_place(|| {
        Command::new("curl")
            .args(&args)
            .output()
            .expect("curl is installed")
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The checks a strict OpenMetrics parser makes on histograms (Python's
/// `prometheus_client.openmetrics.parser` rejects the scrape otherwise): buckets
/// cumulative, `+Inf` present and equal to `_count`; and the exposition ends with `# EOF`.
fn check_histograms(body: &str) {
    assert_eq!(body.lines().last(), Some("# EOF"), "{body}");
    let families: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" histogram"))
        .collect();
    assert!(!families.is_empty(), "{body}");
    for f in families {
        let mut last = 0.0;
        let mut inf = None;
        for l in body.lines() {
            let Some(rest) = l.strip_prefix(&format!("{f}_bucket{{le=\"")) else {
                continue;
            };
            let (le, v) = rest.split_once("\"} ").unwrap();
            let v: f64 = v.parse().unwrap();
            assert!(
                v >= last,
                "{f}: bucket le={le} ({v}) below the one before ({last})"
            );
            last = v;
            if le == "+Inf" {
                inf = Some(v);
            }
        }
        let count = metric(body, &format!("{f}_count"));
        assert_eq!(
            inf,
            Some(count),
            "{f}: +Inf bucket must equal _count:\n{body}"
        );
    }
}

/// Issue 12.3: `_count 15` but `_bucket{le="+Inf"} 191` (the buckets were accumulated by
/// us and again by the encoder). The scrape must pass `promtool check metrics` and a
/// strict histogram check, and carry the families operators look for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_and_the_histogram_adds_up() {
    let lab = Lab::start(LabConfig { net: 180 }).await.unwrap();
    let dir = Scratch::new("promtool");
    let listen: SocketAddr = "127.53.180.250:53".parse().unwrap();
    let rules = dir.path("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"ads.example.com\"\naction = \"block\"\n\n\
         [[rule]]\nname = \"nas.lan\"\naction = \"override\"\na = [\"10.0.0.9\"]\n",
    )
    .unwrap();
    let hints = hints_file(&lab, &dir);
    let args = lab_args(
        listen,
        &hints,
        &[
            "--metrics",
            "127.53.180.250:9153",
            "--rules",
            rules.to_str().unwrap(),
        ],
    );
    let _server = serve(&args, listen, None).await;
    for name in [
        "www.example.com",
        "www.example.com",
        "alias.example.com",
        "nosuch.example.com",
    ] {
        udp(listen, name, RecordType::A, None).await;
    }
    let m = udp(listen, "ads.example.com", RecordType::A, None).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    udp(listen, "nas.lan", RecordType::A, None).await;

    let url = "http://127.53.180.250:9153/metrics";
    let open = scrape(url, true);
    check_histograms(&open);
    assert!(metric(&open, "hopdns_resolution_duration_seconds_count") >= 2.0);
    for needle in [
        "hopdns_cache_bytes{store=\"rrset\"} ",
        "hopdns_cache_bytes{store=\"message\"} ",
        "hopdns_cache_entries{store=\"delegation\"} ",
        "hopdns_cache_evictions_total{store=\"rrset\"} 0",
        "hopdns_blocked_total{action=\"block\"} 1",
        "hopdns_blocked_total{action=\"sinkhole\"} 0",
        "hopdns_redirected_total{action=\"override\"} 1",
        "hopdns_upstream_replies_total{rcode=\"NOERROR\"} ",
        "hopdns_upstream_local_errors_total 0",
        "process_open_fds ",
        "process_max_fds ",
    ] {
        assert!(open.contains(needle), "missing {needle:?} in:\n{open}");
    }
    assert!(metric(&open, "hopdns_cache_bytes{store=\"rrset\"}") > 0.0);
    assert!(metric(&open, "hopdns_upstream_replies_total{rcode=\"NXDOMAIN\"}") >= 1.0);
    assert!(metric(&open, "process_open_fds") > 3.0);
    // jemalloc's counts (issue 17.6): live bytes below what its pages hold, those below RAM.
    let bytes = |state: &str| {
        metric(
            &open,
            &format!("hopdns_allocator_bytes{{state=\"{state}\"}}"),
        )
    };
    assert!(bytes("allocated") > 0.0 && bytes("allocated") <= bytes("active"));
    assert!(bytes("active") <= bytes("resident"), "{open}");

    // Without an Accept header: the Prometheus text format, which promtool lints.
    let text = scrape(url, false);
    assert!(!text.contains("# EOF") && text.contains("# TYPE hopdns_replies_total counter"));
    let Some(promtool) = which("promtool") else {
        eprintln!(
            "SKIPPED: promtool not installed (apt-get install prometheus); \
             the scrape was not linted"
        );
        return;
    };
    let lint = tokio::task::block_in_place(|| {
        use std::io::Write;
        let mut child = Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    });
    assert!(
        lint.status.success(),
        "promtool check metrics failed:\n{}{}\n{text}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );
    lab.shutdown().await;
}

/// The path of `program` on PATH, if it is there.
pub(crate) fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| std::path::Path::new(d).join(program))
        .find(|p| p.is_file())
}

/// Issue 12.2: `--log-level warning` was accepted and then nothing was logged at all.
#[test]
fn unknown_log_levels_are_refused_at_parse_time_and_by_config_check() {
    let out = std::process::Command::new(crate::util::bin())
        .args(["--log-level", "warning", "serve", "--listen", "127.0.0.1:1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "unknown log level `warning`: use one of error, warn, info, debug, trace, off"
        ),
        "{err}"
    );
    let dir = Scratch::new("loglevel");
    let file = dir.path("hopdns.toml");
    std::fs::write(&file, "threads = 1\nlog-level = \"inf,hopdns=debug\"\n").unwrap();
    let out = std::process::Command::new(crate::util::bin())
        .args(["config", "check", file.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("{}:2: key `log-level`", file.display()))
            && err.contains("unknown log level `inf`"),
        "{err}"
    );
}

/// Runs `hopdns ARGS` that should exit by itself; kills it (by PID) after `limit`.
pub(crate) fn exits_within(args: &[&str], limit: std::time::Duration) -> std::process::Output {
    let child = std::process::Command::new(crate::util::bin())
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = child;
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("hopdns {args:?} still running after {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Issue 12.1: `--cache-file /etc/hosts` was replaced by a cache dump at shutdown. A file
/// that is not a hopdns cache file, or a directory that is missing, is an error at start.
#[test]
fn a_cache_file_that_is_not_ours_or_has_no_directory_is_refused_at_start() {
    let dir = Scratch::new("cachefile");
    let hosts = dir.path("hosts");
    std::fs::write(&hosts, "127.0.0.1 localhost\n").unwrap();
    let base = [
        "serve",
        "--listen",
        "127.53.181.250:53",
        "--threads",
        "1",
        "--no-prime",
    ];
    let out = exits_within(
        &[&base[..], &["--cache-file", hosts.to_str().unwrap()]].concat(),
        std::time::Duration::from_secs(10),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("{} is not a hopdns cache file", hosts.display())),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&hosts).unwrap(),
        "127.0.0.1 localhost\n"
    );

    let missing = dir.path("no-such-dir/cache");
    let out = exits_within(
        &[&base[..], &["--cache-file", missing.to_str().unwrap()]].concat(),
        std::time::Duration::from_secs(10),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("no-such-dir") && err.contains("No such file"),
        "{err}"
    );
}

/// Issue 12.1: saved every --cache-save-interval (a crash loses little), owner-only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_is_saved_periodically_owner_only_and_survives_a_crash() {
    use std::os::unix::fs::PermissionsExt;
    let lab = Lab::start(LabConfig { net: 182 }).await.unwrap();
    let dir = Scratch::new("cachesave");
    let listen: SocketAddr = "127.53.182.250:53".parse().unwrap();
    let file = dir.path("cache");
    let hints = hints_file(&lab, &dir);
    let args = lab_args(
        listen,
        &hints,
        &[
            "--cache-file",
            file.to_str().unwrap(),
            "--cache-save-interval",
            "1",
        ],
    );
    let mut server = serve(&args, listen, None).await;
    let start = std::time::Instant::now();
    let saved = loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        if text.lines().count() > 1 {
            break text;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "no periodic save"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(
        saved.starts_with("hopdns-cache 2\n") && saved.contains(";; entry "),
        "{saved}"
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    // A crash (SIGKILL: no save at stop) keeps the last periodic save.
    server.signal("KILL");
    server.exit_within(std::time::Duration::from_secs(5)).await;
    assert!(std::fs::read_to_string(&file).unwrap().lines().count() > 1);
    let leftovers: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    lab.shutdown().await;
}

/// Issue 12.6: `hopdns config defaults | true` panicked on EPIPE. Each printing command
/// meets a pipe whose reader is already gone, and exits 0 without a word.
#[test]
fn a_closed_stdout_ends_quietly() {
    for args in [
        &["config", "defaults"][..],
        &["completions", "bash"],
        &["man", "serve"],
        &["ctl", "--help"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = std::process::Command::new(crate::util::bin())
            .args(args)
            .stdout(writer)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !err.contains("panicked"),
            "{args:?}: {:?} {err}",
            out.status
        );
    }
}

/// Issue 12.7: ANSI colour codes in logs written to a file or a pipe.
#[test]
fn logs_to_a_file_have_no_colour_codes() {
    let out = std::process::Command::new(crate::util::bin())
        .args([
            "serve",
            "--listen",
            "127.53.181.251:53",
            "--cache-file",
            "/nonexistent/dir/c",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("INFO") || err.contains("/nonexistent"),
        "{err}"
    );
    assert!(!err.contains('\u{1b}'), "escape codes in a pipe: {err:?}");
}

/// Issue 12.5: about one stop in ten logged "UDP listener ... stopped unexpectedly" (a loop
/// that ended because it was cancelled raced the cancellation in a `select!`). A clean stop
/// is never an error: many stops in a row, each `Ok`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_is_never_reported_as_a_listener_failure() {
    use hopdns::server::{BoundServer, ServerConfig};
    for i in 0..200u8 {
        // A new address each time: a process another test spawns holds a copy of every
        // descriptor between its fork and exec, so rebinding one address in a tight loop
        // could meet "address in use" that no stop of ours left behind.
        let addr = SocketAddr::from(([127, 53, 183, 1 + i], 53));
        let bound = BoundServer::bind(&ServerConfig {
            listen: vec![addr],
            threads: 4,
            drain: std::time::Duration::ZERO,
            ..ServerConfig::default()
        })
        .unwrap();
        let token = tokio_util::sync::CancellationToken::new();
        let server =
            tokio::spawn(bound.run(std::sync::Arc::new(crate::util::Fixed), token.clone()));
        tokio::task::yield_now().await;
        token.cancel();
        let result = server.await.unwrap();
        assert!(result.is_ok(), "stop {i}: {result:?}");
    }
}

/// Issue 12.4: after a restart-only key changed, a second `ctl reload` said "nothing else
/// changed" although the running value was still the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_compares_with_the_running_settings() {
    let lab = Lab::start(LabConfig { net: 184 }).await.unwrap();
    let dir = Scratch::new("reload2");
    let socket = dir.path("control.sock");
    let listen: SocketAddr = "127.53.184.250:53".parse().unwrap();
    let config = dir.path("hopdns.toml");
    let base = format!(
        "listen = [\"{listen}\"]\nthreads = 1\nno-prime = true\nno-ipv6 = true\n\
         query-loopback = true\nno-dnssec = true\nroot-hints = \"{}\"\ncontrol-socket = \"{}\"\n",
        hints_file(&lab, &dir).display(),
        socket.display()
    );
    std::fs::write(&config, &base).unwrap();
    let _server = serve(&["--config", config.to_str().unwrap()], listen, None).await;
    std::fs::write(&config, format!("{base}rrl-rate = 50\n")).unwrap();
    for attempt in 0..2 {
        let (ok, text) = crate::ops::ctl(&socket, &["reload"]);
        assert!(
            ok && text.contains("applied only at restart: rrl-rate"),
            "reload {attempt}: {text}"
        );
    }
    std::fs::write(&config, &base).unwrap();
    let (ok, text) = crate::ops::ctl(&socket, &["reload"]);
    assert!(ok && text.contains("nothing else changed"), "{text}");

    // Issue 12.11: `ctl --json`: the answer as one JSON object with its data.
    let (ok, text) = crate::ops::ctl(&socket, &["--json", "stats"]);
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert!(ok && v["ok"] == true, "{text}");
    assert!(v["data"]["cache_misses"].as_u64().unwrap() >= 1, "{text}");
    let (_, text) = crate::ops::ctl(&socket, &["--json", "health"]);
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(v["data"], serde_json::json!([]), "{text}");
    let (ok, text) = crate::ops::ctl(&socket, &["--json", "flush", "bad..name"]);
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert!(!ok && v["ok"] == false && v["text"].as_str().unwrap().contains("not a domain name"));
    lab.shutdown().await;
}

fn hopdns(args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(crate::util::bin())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Issue 12.8: `config check` stopped at the first error, gave semantic errors without key
/// or line, and accepted `rules = "/nonexistent"`.
#[test]
fn config_check_reports_every_error_with_file_line_and_key() {
    let dir = Scratch::new("check2");
    let file = dir.path("hopdns.toml");
    std::fs::write(
        &file,
        "threads = 0\nmin-ttl = 900\nmax-ttl = 60\nservfail-ttl = 1000\nrrl-rat = 5\n\
         rules = \"/nonexistent/rules.toml\"\n",
    )
    .unwrap();
    let (code, _, err) = hopdns(&["config", "check", file.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    let f = file.display();
    for needle in [
        format!("{f}:1: key `threads`: --threads must be at least 1"),
        format!("{f}:2: key `min-ttl`: --min-ttl 900 is above --max-ttl 60"),
        format!("{f}:4: key `servfail-ttl`: --servfail-ttl 1000 is outside"),
        format!("{f}:5: key `rrl-rat`: unknown key (did you mean `rrl-rate`?)"),
        format!("{f}:6: key `rules`: /nonexistent/rules.toml: cannot read"),
        format!("{f}: 5 errors"),
    ] {
        assert!(err.contains(&needle), "missing {needle:?} in:\n{err}");
    }
}

/// Issue 14: own root hints with validation on and no anchor of their own are named in a
/// warning (a lab's or private root would make every answer bogus), with both fixes; an
/// anchor or `no-dnssec` silences it.
#[test]
fn own_root_hints_without_an_anchor_are_warned_about() {
    let dir = Scratch::new("privroot");
    let hints = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("root-hints/lab.root");
    let file = dir.path("hopdns.toml");
    let write = |extra: &str| {
        std::fs::write(
            &file,
            format!("root-hints = \"{}\"\n{extra}", hints.display()),
        )
        .unwrap()
    };
    write("");
    let (code, _, err) = hopdns(&["config", "check", file.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("warning: --root-hints")
            && err.contains("--trust-anchor FILE")
            && err.contains("--no-dnssec"),
        "{err}"
    );
    write("no-dnssec = true\n");
    let (code, _, err) = hopdns(&["config", "check", file.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("warning"), "{err}");
}

/// Issue 12.8: `hopdns rules check FILE` reports every bad rule with file:line, alias loops
/// and overlaps; a /33 prefix and an RPZ CNAME without target get messages that name the
/// real problem (they were "invalid IP address syntax" and a missing origin).
#[test]
fn rules_check_reports_every_rule_error_loops_and_overlaps() {
    let dir = Scratch::new("rulescheck");
    std::fs::write(
        dir.path("policy.rpz"),
        "$TTL 60\n@ SOA ns. host. 1 1 1 1 1\n  NS ns.\nbad.example CNAME\n",
    )
    .unwrap();
    let rules = dir.path("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"a.lan\"\naction = \"alias\"\ntarget = \"b.lan\"\n\n\
         [[rule]]\nname = \"b.lan\"\naction = \"alias\"\ntarget = \"a.lan\"\n\n\
         [[rule]]\nname = \"c.lan\"\naction = \"block\"\nclients = [\"10.0.0.0/33\"]\n\n\
         [[rule]]\nname = \"d.lan\"\naction = \"override\"\n\n\
         [[rpz]]\nfile = \"policy.rpz\"\n",
    )
    .unwrap();
    let (code, _, err) = hopdns(&["rules", "check", rules.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    let r = rules.display();
    for needle in [
        format!("{r}:1: alias loop: a.lan -> b.lan -> a.lan"),
        format!(
            "{r}:14: client network \"10.0.0.0/33\": prefix length /33 is longer than the 32 bits"
        ),
        format!("{r}:16: action = \"override\" needs `a` and/or `aaaa`"),
        format!("{}:4: token is missing", dir.path("policy.rpz").display()),
        "an RPZ CNAME needs a target".to_string(),
        format!("{r}: 4 errors"),
    ] {
        assert!(err.contains(&needle), "missing {needle:?} in:\n{err}");
    }
    assert!(!err.contains("no origin is known"), "{err}");

    std::fs::write(
        &rules,
        "[[rule]]\nname = \"*.lan\"\naction = \"block\"\n\n\
         [[rule]]\nname = \"nas.lan\"\naction = \"override\"\na = [\"10.0.0.2\"]\n",
    )
    .unwrap();
    let (code, out, err) = hopdns(&["rules", "check", rules.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains(&format!(
            "note: {r}:5: nas.lan is also covered by *.lan (line 1)"
        )) && out.contains(&format!("{r}: ok (")),
        "{out}"
    );
}

/// Issue 12.10: `--allow 0.0.0.0/0` made an open resolver silently; a LAN address without
/// `--allow` refused everyone silently.
#[test]
fn an_open_allow_is_refused_and_a_lan_address_without_allow_is_warned_about() {
    let (code, _, err) = hopdns(&[
        "serve",
        "--listen",
        "127.53.185.250:53",
        "--allow",
        "0.0.0.0/0",
        "--no-prime",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--allow 0.0.0.0/0 answers anyone") && err.contains("--open-resolver"),
        "{err}"
    );
    let dir = Scratch::new("openres");
    let file = dir.path("hopdns.toml");
    std::fs::write(&file, "allow = [\"::/0\"]\n").unwrap();
    let (code, _, err) = hopdns(&["config", "check", file.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("{}:1: key `allow`: --allow ::/0", file.display())),
        "{err}"
    );
    // config check also names the silent trap of a LAN address without an allow-list.
    std::fs::write(&file, "listen = [\"192.0.2.53:53\"]\n").unwrap();
    let (code, _, err) = hopdns(&["config", "check", file.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("warning: listening on 192.0.2.53:53 but no --allow"),
        "{err}"
    );

    // A wildcard (not loopback) listen address and no --allow: one warning naming the fix.
    // --cache-file in a missing directory then stops it before it serves.
    let out = exits_within(
        &[
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--no-prime",
            "--cache-file",
            "/nonexistent/d/c",
        ],
        std::time::Duration::from_secs(10),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("WARN")
            && err.contains("no --allow is given")
            && err.contains("--allow 192.168.1.0/24"),
        "{err}"
    );
}

/// Issue 12.9: the unit ships as dist/hopdns.service, with Type=notify and the hardening
/// options, and `systemd-analyze verify` accepts it (warnings included: it reports bad
/// lines on stderr and still exits 0).
#[test]
fn the_shipped_unit_passes_systemd_analyze_verify() {
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/dist/hopdns.service"))
        .unwrap();
    for line in [
        "Type=notify",
        "UMask=0077",
        "StateDirectory=hopdns",
        "ProtectClock=yes",
        "ProtectKernelLogs=yes",
        "ProtectHostname=yes",
        "RestrictRealtime=yes",
        "RestrictSUIDSGID=yes",
        "SystemCallFilter=@system-service",
        "MemoryDenyWriteExecute=yes",
        "Before=nss-lookup.target",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} missing");
    }
    let Some(analyze) = which("systemd-analyze") else {
        eprintln!("SKIPPED: systemd-analyze not installed; dist/hopdns.service was not verified");
        return;
    };
    let dir = Scratch::new("unit");
    // verify wants ExecStart's binary to exist: point it at the one under test.
    let path = dir.path("hopdns.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/hopdns", crate::util::bin()),
    )
    .unwrap();
    let out = std::process::Command::new(analyze)
        .args(["verify", "--man=no", path.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.trim().is_empty(), "{err}");
}

/// Issue 12.9: READY=1 reaches systemd once the sockets are bound, STOPPING=1 at SIGTERM.
#[test]
fn serve_notifies_systemd_when_ready_and_when_stopping() {
    let dir = Scratch::new("notify");
    let path = dir.path("notify.sock");
    let listener = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    listener
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let child = std::process::Command::new(crate::util::bin())
        .args([
            "serve",
            "--listen",
            "127.53.186.250:53",
            "--threads",
            "1",
            "--no-prime",
        ])
        .env("NOTIFY_SOCKET", &path)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut server = crate::ops::Serve(child);
    let mut buf = [0u8; 256];
    let n = listener.recv(&mut buf).expect("READY=1 within 10 s");
    let ready = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready}");
    // Ready means answering: the port is bound.
    assert!(std::net::UdpSocket::bind("127.53.186.250:53").is_err());
    server.signal("TERM");
    let n = listener.recv(&mut buf).expect("STOPPING=1");
    let stopping = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping}");
    let _ = server.0.wait();
}

/// Issue 12.9: `--freebind` binds an address that is not on any interface yet (a LAN
/// address before DHCP); without it the error names the switch. Nothing is sent.
#[test]
fn freebind_binds_an_address_that_is_not_up_yet() {
    use hopdns::server::{BoundServer, ServerConfig};
    // TEST-NET-1 (RFC 5737): on no interface of this machine.
    let addr: SocketAddr = "192.0.2.53:0".parse().unwrap();
    let cfg = ServerConfig {
        listen: vec![addr],
        threads: 1,
        ..ServerConfig::default()
    };
    let e = match BoundServer::bind(&cfg) {
        Ok(_) => panic!("{addr} bound without --freebind"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("--freebind"), "{e}");
    let bound = BoundServer::bind(&ServerConfig {
        freebind: true,
        ..cfg
    })
    .expect("bound with IP_FREEBIND");
    assert_eq!(bound.local_addrs()[0].ip(), addr.ip());
}

/// Issue 12.11: the query log says which rule answered (or that it was blocked), cache hit
/// or miss, latency, upstream queries and the transport in lowercase; `--query-log-file`
/// is reopened on SIGHUP (logrotate).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_log_file_has_the_answer_path_and_is_reopened_on_sighup() {
    let lab = Lab::start(LabConfig { net: 187 }).await.unwrap();
    let dir = Scratch::new("qlog");
    let listen: SocketAddr = "127.53.187.250:53".parse().unwrap();
    let rules = dir.path("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"ads.example.com\"\naction = \"block\"\n",
    )
    .unwrap();
    let log = dir.path("queries.log");
    let hints = hints_file(&lab, &dir);
    let args = lab_args(
        listen,
        &hints,
        &[
            "--rules",
            rules.to_str().unwrap(),
            "--query-log-file",
            log.to_str().unwrap(),
        ],
    );
    let server = serve(&args, listen, None).await;
    udp(listen, "alias.example.com", RecordType::A, Some(1232)).await;
    udp(listen, "alias.example.com", RecordType::A, Some(1232)).await;
    udp(listen, "ads.example.com", RecordType::A, None).await;
    crate::util::tcp(listen, "www.example.com", RecordType::A).await;
    let lines = |path: &std::path::Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let all = lines(&log);
    let of = |name: &str| -> Vec<&serde_json::Value> {
        all.iter().filter(|v| v["name"] == name).collect()
    };
    let alias = of("alias.example.com.");
    assert_eq!(alias.len(), 2, "{all:?}");
    assert_eq!(alias[0]["cache"], "miss", "{all:?}");
    assert!(alias[0]["upstream"].as_u64().unwrap() >= 1, "{all:?}");
    assert!(alias[0]["latency_ms"].as_f64().unwrap() > 0.0, "{all:?}");
    assert_eq!(alias[0]["proto"], "udp");
    assert_eq!(alias[1]["cache"], "hit", "{all:?}");
    assert_eq!(alias[1]["upstream"], 0);
    let ads = of("ads.example.com.");
    assert_eq!(ads[0]["blocked"], true, "{all:?}");
    assert_eq!(ads[0]["action"], "block");
    assert!(
        ads[0]["rule"]
            .as_str()
            .unwrap()
            .starts_with("ads.example.com"),
        "{all:?}"
    );
    assert_eq!(ads[0]["cache"], "-");
    assert_eq!(alias[0]["blocked"], false);
    // (The start-up probe asked www.example.com over UDP first.)
    assert!(
        of("www.example.com.")
            .iter()
            .any(|v| v["proto"] == "tcp" && v["cache"] == "hit"),
        "{all:?}"
    );

    // logrotate: move the file away, SIGHUP, and new lines go to a new file at the path.
    let rotated = dir.path("queries.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    server.signal("HUP");
    let start = std::time::Instant::now();
    while !log.exists() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "not reopened"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    udp(listen, "www.example.com", RecordType::AAAA, None).await;
    assert_eq!(lines(&log).len(), 1, "the new file has the new line");
    assert_eq!(
        lines(&rotated).len(),
        all.len(),
        "the old file is left alone"
    );
    lab.shutdown().await;
}

/// `hopdns trace` against the lab of `env`, with its own hints file.
fn trace_in(env: &crate::util::Env, dir: &Scratch, args: &[&str]) -> String {
    crate::util::trace_against(env, &dir.path("trace.root"), args).0
}

/// Issue 12.11: the text trace prints the "FORMERR to EDNS, retrying without EDNS" hop the
/// JSON has, and quotes TXT data as dig does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_text_trace_shows_edns_fallback_and_quotes_txt_like_dig() {
    let env = crate::util::Env::start(188).await;
    let dir = Scratch::new("trace2");
    let text = tokio::task::block_in_place(|| trace_in(&env, &dir, &["www.oldedns.com", "A"]));
    let json =
        tokio::task::block_in_place(|| trace_in(&env, &dir, &["www.oldedns.com", "A", "--json"]));
    assert!(json.contains("edns_rejected"), "{json}");
    assert!(
        text.contains(";; -> FORMERR to EDNS, retrying without EDNS"),
        "{text}"
    );
    let text = tokio::task::block_in_place(|| trace_in(&env, &dir, &["big.example.com", "TXT"]));
    assert!(
        text.contains("big.example.com. 300 IN TXT \"big-1-xxxx"),
        "{text}"
    );
    env.stop().await;
}

/// Issue 12.12: `hopdns man bogus` prints a proper error; pages have EXIT STATUS, SIGNALS
/// and FILES; hopdns-ctl(1) names no page that does not exist; the file formats have
/// pages of section 5.
#[test]
fn man_pages_have_exit_status_signals_files_and_the_file_formats() {
    let (code, out, err) = hopdns(&["man", "bogus"]);
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(
        err.contains("no man page \"bogus\": give a subcommand (serve, trace") && out.is_empty(),
        "{err}"
    );
    let pages = hopdns::cli::admin::man_pages().unwrap();
    let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"hopdns.toml.5") && names.contains(&"hopdns-rules.5"));
    let page =
        |n: &str| String::from_utf8(pages.iter().find(|(p, _)| p == n).unwrap().1.clone()).unwrap();
    for n in ["hopdns.1", "hopdns-serve.1"] {
        let p = page(n);
        for sh in [
            ".SH \"EXIT STATUS\"",
            ".SH SIGNALS",
            ".SH FILES",
            ".SH \"SEE ALSO\"",
        ] {
            assert!(p.contains(sh), "{n}: no {sh}");
        }
    }
    // Every page another page points at exists.
    let ctl = page("hopdns-ctl.1");
    assert!(!ctl.contains("hopdns\\-ctl\\-stats(1)"), "{ctl}");
    for (_, text) in &pages {
        let text = String::from_utf8_lossy(text);
        for part in text.split("\\fB").skip(1) {
            let Some((name, rest)) = part.split_once("\\fR(") else {
                continue;
            };
            let section = &rest[..1];
            let file = format!("{}.{section}", name.replace("\\-", "-"));
            assert!(
                names.contains(&file.as_str()),
                "{file} is referenced but missing"
            );
        }
    }
    let toml = page("hopdns.toml.5");
    assert!(toml.contains("\\fBmax\\-tcp\\-clients\\fR = N"), "{toml}");
    let (code, out, _) = hopdns(&["man", "hopdns-rules"]);
    assert!(code == Some(0) && out.contains(".TH hopdns-rules 5"));
}

/// A `hopdns lab --net NET` started in `dir` (outside the repository), and the hints file
/// it announces.
fn start_lab(dir: &std::path::Path, net: u8) -> (crate::ops::Serve, std::path::PathBuf) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(crate::util::bin())
        .args(["lab", "--net", &net.to_string(), "--threads", "1"])
        .current_dir(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lab = crate::ops::Serve(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(p) = line.strip_prefix("Root hints for this lab: ") {
                let _ = tx.send(std::path::PathBuf::from(p));
            }
        }
    });
    let hints = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("the lab announces its hints file");
    (lab, hints)
}

/// Issue 12.13: two labs started outside the repository shared one temporary hints file,
/// and the first to stop removed it from under the other.
#[test]
fn each_lab_has_its_own_hints_file() {
    let dir = Scratch::new("labs");
    let (mut a, hints_a) = start_lab(&dir.0, 189);
    let (mut b, hints_b) = start_lab(&dir.0, 190);
    assert_ne!(hints_a, hints_b);
    assert!(hints_a.exists() && hints_b.exists());
    // Named per process (it was per network only, hopdns-lab-N.root).
    let pid = a.0.id().to_string();
    assert!(hints_a.to_string_lossy().contains(&pid), "{hints_a:?}");
    a.signal("INT");
    let _ = a.0.wait();
    assert!(!hints_a.exists(), "a lab removes its own file");
    assert!(hints_b.exists(), "and leaves the other's");
    b.signal("INT");
    let _ = b.0.wait();
    assert!(!hints_b.exists());
}

/// Spawns `hopdns serve ARGS` with RLIMIT_NOFILE set to (soft, hard) first.
fn serve_with_nofile(args: &[String], soft: u64, hard: u64) -> crate::ops::Serve {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(crate::util::bin());
    cmd.arg("serve")
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    crate::ops::Serve(cmd.spawn().unwrap())
}

fn soft_nofile(pid: u32) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Issue 11.5: the soft open-file limit is raised to the hard one at start; metrics
/// connections are capped; running out of descriptors is counted as ours, never as the
/// upstream server's timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_descriptors_raised_capped_and_emfile_is_not_a_server_timeout() {
    let lab = Lab::start(LabConfig { net: 192 }).await.unwrap();
    let dir = Scratch::new("nofile");
    let hints = hints_file(&lab, &dir);

    let fds = |pid: u32| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count()
    };
    let idle_connections = |addr: &'static str, n: usize| async move {
        let mut idle = Vec::new();
        for _ in 0..n {
            if let Ok(s) = tokio::net::TcpStream::connect(addr).await {
                idle.push(s.into_std().unwrap());
            }
        }
        idle
    };
    // Connections the server has closed (EOF or reset), seen without blocking.
    let closed = |idle: &[std::net::TcpStream]| {
        idle.iter()
            .filter(|s| {
                !matches!(s.peek(&mut [0u8; 1]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
            })
            .count()
    };
    // Until `listen` answers a DNS question: the process is up, metrics listener included.
    // Waits until it answers, with a header-only query (FORMERR at once): nothing goes
    // upstream, so no upstream socket is left idle in the pool (which gives its descriptors
    // back when they run out).
    let answering = |listen: SocketAddr| async move {
        let start = std::time::Instant::now();
        let probe = tokio::net::UdpSocket::bind("127.53.192.254:0")
            .await
            .unwrap();
        loop {
            probe
                .send_to(&[0, 7, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0], listen)
                .await
                .unwrap();
            let mut buf = [0u8; 512];
            let wait = std::time::Duration::from_secs(1);
            if tokio::time::timeout(wait, probe.recv(&mut buf))
                .await
                .is_ok()
            {
                break;
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(10),
                "never answered"
            );
        }
    };

    // The soft limit goes up to the hard one, and idle metrics connections are capped.
    let listen: SocketAddr = "127.53.192.250:53".parse().unwrap();
    let metrics = "127.53.192.250:9153";
    let raised = serve_with_nofile(
        &lab_args(listen, &hints, &["--metrics", metrics]),
        256,
        2048,
    );
    let start = std::time::Instant::now();
    while soft_nofile(raised.0.id()) != Some(2048) {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "not raised"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    answering(listen).await;
    let base = fds(raised.0.id());
    let idle = idle_connections(metrics, 300).await;
    // Every one accepted: all but the newest 32 closed by the server.
    crate::util::until(
        "the metrics endpoint takes every connection",
        std::time::Duration::from_secs(10),
        || closed(&idle) >= 300 - 32,
    )
    .await;
    let held = fds(raised.0.id());
    assert!(
        held <= base + 32 + 2,
        "{held} descriptors with 300 idle metrics connections (base {base})"
    );
    // A real scrape still gets through: the oldest idle connection makes room.
    let body = scrape(&format!("http://{metrics}/metrics"), false);
    assert!(body.contains("hopdns_replies_total"), "{body}");
    drop(idle);
    drop(raised);

    // A tight limit (soft = hard = 40, about 15 in use at rest), filled by idle metrics
    // connections.
    let listen: SocketAddr = "127.53.192.251:53".parse().unwrap();
    let metrics = "127.53.192.251:9153";
    let args = lab_args(listen, &hints, &["--metrics", metrics]);
    let server = serve_with_nofile(&args, 40, 40);
    answering(listen).await;
    let idle = idle_connections(metrics, 60).await;
    crate::util::until(
        "idle connections take every descriptor",
        std::time::Duration::from_secs(10),
        || fds(server.0.id()) >= 40,
    )
    .await;
    // A cache miss now finds no descriptor for its upstream socket.
    let m = udp(listen, "nope.example.com", RecordType::A, None).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    drop(idle);
    // Its accept loop retries every 50 ms: the scrape gets in once the idle ones are gone.
    let body = scrape(&format!("http://{metrics}/metrics"), false);
    assert!(
        metric(&body, "hopdns_upstream_local_errors_total") >= 1.0,
        "{body}"
    );
    let timeouts: f64 = body
        .lines()
        .filter(|l| l.starts_with("hopdns_upstream_timeouts_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(timeouts, 0.0, "EMFILE counted as a server timeout:\n{body}");
    drop(server);
    lab.shutdown().await;
}

/// Issue 11.6: `--control-socket` deleted whatever file was at its path, and the socket
/// was made owner-only by a chmod after bind. Only a stale socket is replaced now; any
/// other file is an error naming it; the socket is 0600 from its creation even under
/// umask 000.
#[test]
fn the_control_socket_replaces_only_a_stale_socket_and_is_owner_only_from_the_start() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let dir = Scratch::new("ctlsock");
    let path = dir.path("control.sock");
    let base = [
        "serve",
        "--listen",
        "127.53.194.250:53",
        "--threads",
        "1",
        "--no-prime",
        "--control-socket",
    ];

    // A regular file is never deleted.
    std::fs::write(&path, "precious\n").unwrap();
    let out = exits_within(
        &[&base[..], &[path.to_str().unwrap()]].concat(),
        std::time::Duration::from_secs(10),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("{} exists and is not a socket", path.display())),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious\n");
    std::fs::remove_file(&path).unwrap();

    // A stale socket (its server gone) is replaced; the new one is 0600 under umask 000.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let mut cmd = std::process::Command::new(crate::util::bin());
    cmd.args(base)
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: umask is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0);
            Ok(())
        });
    }
    let server = crate::ops::Serve(cmd.spawn().unwrap());
    let start = std::time::Instant::now();
    while std::os::unix::net::UnixStream::connect(&path).is_err() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "no socket"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    drop(server);
}
