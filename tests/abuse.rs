//! Hardening round 2 (issue 11), what clients can do to the front end: flood the log with
//! malformed packets, hold TCP slots, reach a blocked name through a CNAME. Lab networks
//! 156-159 (counted down from the top of the hardening range, 130-159; 155 is
//! benches/overload.sh's). Each test states the bound it checks (docs/security.md).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use hopdns::lab::{Lab, LabConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::util::{bin, query};

/// A `hopdns serve` child, killed (by PID) when dropped.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A query for `example.com. A` with EDNS whose option header is cut short: three bytes of
/// option in the OPT RDATA (RFC 6891 §6.1.2 wants code, length and data).
fn malformed_edns_query(id: u16) -> Vec<u8> {
    let mut q = query("example.com", RecordType::A, Some(1232));
    q.metadata.id = id;
    let mut b = q.to_vec().unwrap();
    let rdlen = b.len() - 2;
    b[rdlen..].copy_from_slice(&3u16.to_be_bytes());
    b.extend_from_slice(&[0, 10, 0]);
    b
}

async fn scrape(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

/// Issue 11.4: 10,000 queries with malformed EDNS options each get FORMERR, are counted in
/// the metrics, and write at most a handful of log lines at the default level (before the
/// fix: one WARN line each, from hickory-proto).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_malformed_edns_writes_a_summary_line_not_a_line_each() {
    const PACKETS: u16 = 10_000;
    let lab = Lab::start(LabConfig { net: 159 }).await.unwrap();
    let dir = std::env::temp_dir().join(format!("hopdns-abuse-log-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let hints: PathBuf = dir.join("lab.root");
    std::fs::write(&hints, lab.root_hints()).unwrap();
    let stderr = dir.join("stderr");
    let addr: SocketAddr = "127.53.159.253:53".parse().unwrap();
    let metrics: SocketAddr = "127.53.159.253:9153".parse().unwrap();
    let child = Command::new(bin())
        .args(["serve", "--listen", &addr.to_string(), "--threads", "1"])
        .args([
            "--no-prime",
            "--no-ipv6",
            "--query-loopback",
            "--root-hints",
        ])
        .arg(&hints)
        .args(["--metrics", &metrics.to_string()])
        .stderr(Stdio::from(std::fs::File::create(&stderr).unwrap()))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let serve = Serve(child);

    let sock = UdpSocket::bind("127.53.159.10:0").await.unwrap();
    let mut buf = vec![0u8; 2048];
    let formerr = |buf: &[u8]| {
        Message::from_vec(buf).is_ok_and(|m| m.metadata.response_code == ResponseCode::FormErr)
    };
    // Up when the first malformed query is answered.
    let mut up = false;
    for _ in 0..100 {
        sock.send_to(&malformed_edns_query(0), addr).await.unwrap();
        if let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_millis(100), sock.recv_from(&mut buf)).await
        {
            assert!(formerr(&buf[..n]), "FORMERR for malformed EDNS options");
            up = true;
            break;
        }
    }
    assert!(up, "serve never answered on {addr}");

    // The flood, in rounds of 100 so the socket buffers never overflow.
    let start = Instant::now();
    let mut answered = 0u32;
    for round in 0..PACKETS / 100 {
        for i in 0..100 {
            sock.send_to(&malformed_edns_query(round * 100 + i), addr)
                .await
                .unwrap();
        }
        while let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_millis(50), sock.recv_from(&mut buf)).await
        {
            answered += u32::from(formerr(&buf[..n]));
            if answered % 100 == 0 {
                break;
            }
        }
    }
    let took = start.elapsed();
    let text = scrape(metrics).await;
    let counted: u64 = text
        .lines()
        .find(|l| l.starts_with("hopdns_client_errors_total{kind=\"malformed_edns\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no malformed_edns counter in\n{text}"));
    drop(serve);
    let log = std::fs::read_to_string(&stderr).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let lines = log.lines().count();
    println!(
        "log flood: {PACKETS} malformed-EDNS queries in {took:?}, {answered} FORMERR replies, \
         counted {counted}, {lines} log lines:\n{log}"
    );
    assert!(
        answered >= u32::from(PACKETS) * 9 / 10,
        "{answered} answered"
    );
    assert!(counted > u64::from(PACKETS), "counted {counted}");
    assert!(lines <= 5, "{lines} log lines");
    let summaries = log.lines().filter(|l| l.contains("client errors")).count();
    assert!((1..=2).contains(&summaries), "{summaries} summary lines");
}
