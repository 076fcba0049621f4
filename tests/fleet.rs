//! A fleet of hopdns behind dnsdist (issue 19): the health check hopdns answers itself.
//! Lab networks 220-221.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use hopdns::lab::{Lab, LabConfig};

use crate::ops::{hints_file, lab_args, lab_queries_for, run, serve, Scratch};
use crate::util::{answers, udp};

/// `--health-check-name`: answered by hopdns itself (TTL 0, no upstream query); after
/// SIGTERM with `--health-fail-before-stop`, the name gets SERVFAIL while other questions
/// are still answered, then the process drains and exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_check_name_is_answered_locally_and_fails_before_the_drain() {
    let out = run(&["serve", "--health-fail-before-stop", "2"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("add --health-check-name"), "{err}");

    let lab = Lab::start(LabConfig { net: 220 }).await.unwrap();
    let dir = Scratch::new("fleet-health");
    let hints = hints_file(&lab, &dir);
    let listen: SocketAddr = "127.53.220.250:53".parse().unwrap();
    let args = lab_args(
        listen,
        &hints,
        &[
            "--health-check-name",
            "Health.Fleet",
            "--health-fail-before-stop",
            "1.5",
            "--drain-timeout",
            "1",
        ],
    );
    let mut server = serve(&args, listen, None).await;

    let m = udp(listen, "health.fleet", RecordType::A, Some(1232)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(answers(&m), ["health.fleet. A 127.0.0.1"]);
    assert_eq!(m.answers[0].ttl, 0);
    let m = udp(listen, "HEALTH.fleet", RecordType::TXT, None).await;
    assert_eq!(answers(&m), ["health.fleet. TXT ok"]);
    let m = udp(listen, "health.fleet", RecordType::AAAA, None).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_eq!(lab_queries_for(&lab, "health.fleet."), 0);
    assert_eq!(lab_queries_for(&lab, "fleet."), 0);

    server.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let m = udp(listen, "health.fleet", RecordType::A, None).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    // Everything else is still served while the balancer takes us out.
    let m = udp(listen, "www.example.net", RecordType::A, None).await;
    assert_eq!(answers(&m), ["www.example.net. A 192.0.2.22"]);
    let status = server.exit_within(Duration::from_secs(6)).await;
    assert!(status.success(), "{status}");
    lab.shutdown().await;
}
