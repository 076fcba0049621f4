//! The scrape endpoint: a minimal HTTP/1.1 responder for `GET /metrics` (one request per
//! connection, then close). Prometheus needs nothing more, and it keeps a web framework out
//! of a DNS server. Requests are read with a size cap and a timeout so a slow or hostile
//! client cannot hold a task.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Largest request head accepted.
const MAX_REQUEST: usize = 8192;
/// Time a client has to send its request and read the reply.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections held at once. Prometheus opens one per scrape, so this is plenty; past it
/// the oldest connection is closed to make room, so idle connections can neither use up
/// the process's file descriptors (issue 11.5: 1,500 idle ones starved DNS of sockets) nor
/// lock a real scrape out.
const MAX_CONNECTIONS: usize = 32;
/// OpenMetrics text, which is what `prometheus-client` writes (it ends with `# EOF`).
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The older Prometheus text format, for clients that do not ask for OpenMetrics
/// (`curl`, `promtool check metrics`, older scrapers).
const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot listen for metrics on {addr}: {source} (choose another --metrics address)")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Binds `addr` now (so errors come before serving) and returns the bound address and the
/// task that serves scrapes until `shutdown`.
pub async fn serve_metrics(
    addr: SocketAddr,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), MetricsError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError::Bind { addr, source })?;
    let local = listener.local_addr().unwrap_or(addr);
    let open = std::sync::Arc::new(std::sync::Mutex::new(std::collections::VecDeque::<(
        u64,
        CancellationToken,
    )>::new()));
    let task = tokio::spawn(async move {
        let mut next_id = 0u64;
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, _)) => {
                    next_id += 1;
                    let (id, token) = (next_id, CancellationToken::new());
                    let evicted = {
                        let mut open = open.lock().unwrap_or_else(|e| e.into_inner());
                        let oldest = (open.len() >= MAX_CONNECTIONS)
                            .then(|| open.pop_front())
                            .flatten();
                        open.push_back((id, token.clone()));
                        oldest
                    };
                    if let Some((_, oldest)) = evicted {
                        tracing::debug!(
                            "metrics: {MAX_CONNECTIONS} connections open; closing the oldest"
                        );
                        oldest.cancel();
                    }
                    let open = open.clone();
                    tokio::spawn(async move {
                        tokio::select! {
                            _ = token.cancelled() => {}
                            _ = tokio::time::timeout(IO_TIMEOUT, respond(stream)) => {}
                        }
                        let mut open = open.lock().unwrap_or_else(|e| e.into_inner());
                        open.retain(|(other, _)| *other != id);
                    });
                }
                Err(error) => {
                    tracing::debug!(%error, "metrics accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    });
    Ok((local, task))
}

async fn respond(mut stream: TcpStream) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() + n > MAX_REQUEST {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    // Content negotiation as Prometheus's own client does it: OpenMetrics only when asked.
    let open_metrics = String::from_utf8_lossy(&head).lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("accept:") && l.contains("application/openmetrics-text")
    });
    let (status, content_type, body) = match (method, path) {
        ("GET", "/metrics") if open_metrics => ("200 OK", CONTENT_TYPE, super::render()),
        ("GET", "/metrics") => (
            "200 OK",
            TEXT_CONTENT_TYPE,
            super::to_text_format(&super::render()),
        ),
        ("GET", _) => (
            "404 Not Found",
            "text/plain",
            "not found: metrics are at /metrics\n".to_string(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET is served\n".to_string(),
        ),
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(reply.as_bytes()).await?;
    stream.shutdown().await
}
