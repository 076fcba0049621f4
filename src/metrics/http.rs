//! The scrape endpoint: `GET /metrics` over HTTP/1.1, served by hyper (the project's one HTTP
//! stack: health checks, DoH and this). One request per connection, then close: Prometheus
//! needs nothing more. Request heads are capped and every connection has a deadline, so a
//! slow or hostile client cannot hold a task.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ACCEPT, CONTENT_TYPE as CONTENT_TYPE_HEADER};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Largest request head accepted (hyper's smallest read buffer).
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

/// The open connections, oldest first, each with the token that closes it.
type Open = Arc<Mutex<VecDeque<(u64, CancellationToken)>>>;

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
    let open: Open = Arc::default();
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
                            _ = tokio::time::timeout(IO_TIMEOUT, connection(stream)) => {}
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

/// One connection: one request, one reply, close.
async fn connection(stream: TcpStream) {
    let service =
        hyper::service::service_fn(|request| async move { Ok::<_, Infallible>(respond(&request)) });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(IO_TIMEOUT)
        .max_buf_size(MAX_REQUEST)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(error) = served {
        tracing::debug!(%error, "metrics connection failed");
    }
}

/// The reply to one request: content negotiation as Prometheus's own client does it
/// (OpenMetrics only when asked).
fn respond<B>(request: &Request<B>) -> Response<Full<Bytes>> {
    let open_metrics = request
        .headers()
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.to_ascii_lowercase()
                .contains("application/openmetrics-text")
        });
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") if open_metrics => {
            (StatusCode::OK, CONTENT_TYPE, super::render())
        }
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            TEXT_CONTENT_TYPE,
            super::to_text_format(&super::render()),
        ),
        (&Method::GET, _) => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: metrics are at /metrics\n".to_string(),
        ),
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "only GET is served\n".to_string(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE_HEADER, HeaderValue::from_static(content_type));
    response
}
