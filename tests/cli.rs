//! The binary as supervisors and users meet it: `serve` answers and stops on SIGTERM,
//! bad input gets an error naming the problem and the fix. Lab networks 60..=69.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;

use crate::util::{answers, bin, tcp, udp, Env};

fn hints_file(env: &Env) -> String {
    let p = std::env::temp_dir().join(format!("hopdns-cli-{}.root", env.lab.net()));
    std::fs::write(&p, env.lab.root_hints()).unwrap();
    p.to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_udp_and_tcp_and_exits_zero_on_sigterm() {
    let env = Env::start(60).await;
    let listen = format!("{}:53", env.lab.addr(252));
    let mut child = Command::new(bin())
        .args([
            "serve",
            "--listen",
            &listen,
            "--threads",
            "1",
            "--no-prime",
            "--no-ipv6",
            "--query-loopback",
            "--no-dnssec",
        ])
        .args(["--root-hints", &hints_file(&env)])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = listen.parse().unwrap();
    // Wait until it answers (it binds before resolving anything).
    let mut answered = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let probe = tokio::time::timeout(
            Duration::from_secs(5),
            udp(addr, "www.example.com", RecordType::A, Some(1232)),
        )
        .await;
        if let Ok(m) = probe {
            answered = Some(m);
            break;
        }
    }
    let m = answered.expect("serve answers over UDP");
    assert_eq!(answers(&m), ["www.example.com. A 192.0.2.1"]);
    let m = tcp(addr, "www.example.org", RecordType::A).await;
    assert_eq!(answers(&m), ["www.example.org. A 192.0.2.30"]);
    // No priming (--no-prime): the only queries the lab saw were for the client questions.
    assert!(env
        .lab
        .query_log()
        .iter()
        .all(|q| q.qtype != RecordType::NS));

    let stop = Instant::now();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            stop.elapsed() < Duration::from_secs(2),
            "still running 2 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status}");
    assert!(
        stop.elapsed() < Duration::from_secs(1),
        "{:?}",
        stop.elapsed()
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn address_in_use_is_a_clear_error() {
    let env = Env::start(61).await;
    // The lab's root server already holds this address.
    let listen = format!("{}:53", env.lab.addr(1));
    let out = tokio::task::block_in_place(|| {
        Command::new(bin())
            .args(["serve", "--listen", &listen, "--no-prime"])
            .output()
            .unwrap()
    });
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&listen) && err.contains("in use"), "{err}");
    env.stop().await;
}

#[test]
fn bad_arguments_name_the_problem() {
    let run = |args: &[&str]| {
        let out = Command::new(bin()).args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, err) = run(&["trace", "www.example.com", "BOGUS"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("\"BOGUS\" is not a record type"), "{err}");
    let (code, err) = run(&[
        "trace",
        "www.example.com",
        "--root-hints",
        "/nonexistent/hints",
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("/nonexistent/hints"), "{err}");
    let (code, err) = run(&["serve", "--listen", "not-an-address"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("not-an-address"), "{err}");
    let (code, err) = run(&["serve", "--no-ipv4", "--no-ipv6"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("drop one"), "{err}");
}
