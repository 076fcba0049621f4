//! DNS over HTTPS (RFC 8484), served by hyper over the TLS connection that
//! [`super::tls`] admitted: HTTP/2 (ALPN `h2`) and HTTP/1.1 for curl-style clients.
//!
//! * `GET <path>?dns=<base64url>` and `POST <path>` with `Content-Type:
//!   application/dns-message` (RFC 8484 §4.1); the path is `https-path` (`/dns-query`).
//! * The message goes through the same answer path as TCP's: a cache hit from the message
//!   cache ([`super::tcp::cache_hit`], the UDP workers' fast path), anything else through
//!   [`super::tcp::answer`]: the checks, the allow-list, the answerer (rules, cache,
//!   resolver), counters, query log.
//! * DNS errors are DNS replies with status 200 (§4.2.1); HTTP errors are for HTTP
//!   problems: 400 (no or bad `dns`, a message that gets no reply), 404 (another path),
//!   405 (another method), 408 (a POST body slower than the idle timeout), 413 (over 65535
//!   bytes), 415 (another content type).
//! * `Cache-Control: max-age` is the smallest TTL of the reply's records (§5.1; a negative
//!   answer's SOA carries the negative TTL, RFC 2308 §5); 0 when it has none.
//! * At most [`super::tls::PIPELINE`] streams at once per HTTP/2 connection; the idle
//!   timeout, eviction and shutdown are DoT's (and TCP's).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use hickory_proto::op::Message;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::request::Proto;
use super::tcp::{self, Close};
use super::tls::{Activity, Admitted, PIPELINE};
use super::Shared;

/// The media type of a DNS message (RFC 8484 §6).
const DNS_MESSAGE: &str = "application/dns-message";

/// The default path (RFC 8484 §1 uses it in its examples; so do Unbound and BIND).
pub const DEFAULT_PATH: &str = "/dns-query";

/// Largest DNS message (a two-byte length on TCP, RFC 1035 §4.2.2).
const MAX_MESSAGE: usize = 65535;

/// One DoH connection: hyper serves it until the client closes, it idles out, it is
/// evicted for a new connection, or the server stops (then gracefully: requests in hand
/// are answered).
pub(super) async fn serve_connection(
    conn: Admitted,
    shared: Arc<Shared>,
    stop: CancellationToken,
) -> Close {
    let Admitted {
        stream,
        client,
        slot,
        _open,
    } = conn;
    let limit = shared.tcp_idle_timeout;
    let slot = Arc::new(slot);
    let activity = Arc::new(Activity::new(&slot));
    let in_hand = Arc::new(AtomicUsize::new(0));
    let service = {
        let (slot, activity, in_hand) = (slot.clone(), activity.clone(), in_hand.clone());
        hyper::service::service_fn(move |request: Request<Incoming>| {
            let (shared, slot, activity, in_hand) = (
                shared.clone(),
                slot.clone(),
                activity.clone(),
                in_hand.clone(),
            );
            async move {
                in_hand.fetch_add(1, Relaxed);
                activity.busy(&slot);
                let response = respond(request, client, &shared).await;
                if in_hand.fetch_sub(1, Relaxed) == 1 {
                    activity.idle(&slot);
                }
                Ok::<_, Infallible>(response)
            }
        })
    };
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limit)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(u32::try_from(PIPELINE).unwrap_or(u32::MAX));
    // Frames hyper writes between two flushes leave in one TLS record: h2 writes a reply's
    // HEADERS and DATA separately, and clients that read one record per wake-up (dnsperf)
    // would otherwise wait for their poll timeout for the second (100 ms each).
    let stream = tokio::io::BufWriter::new(stream);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let close = tokio::select! {
        served = connection.as_mut() => {
            return match served {
                Ok(()) => Close::Peer(std::io::ErrorKind::UnexpectedEof.into()),
                Err(error) => Close::Peer(std::io::Error::other(error.to_string())),
            };
        }
        _ = stop.cancelled() => Close::Shutdown,
        _ = activity.idle_out(|| in_hand.load(Relaxed)) => Close::Idle,
        _ = slot.evict.cancelled() => Close::Evicted,
    };
    // GOAWAY (HTTP/2) or `Connection: close` (HTTP/1.1): requests in hand still finish.
    connection.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(limit, connection).await;
    close
}

/// The HTTP reply to one request (module docs).
async fn respond(
    request: Request<Incoming>,
    client: SocketAddr,
    shared: &Shared,
) -> Response<Full<Bytes>> {
    let path = shared
        .encrypted
        .as_ref()
        .map_or(DEFAULT_PATH, |e| e.https_path.as_str());
    if request.uri().path() != path {
        return error(StatusCode::NOT_FOUND, &format!("DNS queries go to {path}"));
    }
    let message = match *request.method() {
        Method::GET => match dns_parameter(request.uri().query().unwrap_or("")) {
            Ok(message) => message,
            Err(problem) => return error(StatusCode::BAD_REQUEST, problem),
        },
        Method::POST => {
            let content_type = request
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !content_type
                .split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case(DNS_MESSAGE))
            {
                return error(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "POST a DNS message with Content-Type: application/dns-message",
                );
            }
            // A body that does not arrive within the idle timeout must not hold the
            // connection busy (and safe from eviction) for ever.
            let body = Limited::new(request.into_body(), MAX_MESSAGE).collect();
            let Ok(body) = tokio::time::timeout(shared.tcp_idle_timeout, body).await else {
                return error(
                    StatusCode::REQUEST_TIMEOUT,
                    "the body did not arrive in time",
                );
            };
            match body {
                Ok(body) => body.to_bytes().to_vec(),
                Err(error_) => {
                    debug!(%client, error = %error_, "DoH body refused");
                    return error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "a DNS message is at most 65535 bytes",
                    );
                }
            }
        }
        _ => {
            let mut response = error(StatusCode::METHOD_NOT_ALLOWED, "use GET or POST");
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, POST"));
            return response;
        }
    };
    // A cache hit comes from the message cache as over UDP, TCP and DoT (a query asking
    // for padding excepted: the normal path pads it).
    let hit = {
        let mut slot = [0u8; tcp::HIT_SLOT];
        tcp::cache_hit(shared, &message, client, Proto::Https, &mut slot)
            .map(|len| slot[..len].to_vec())
    };
    let reply = match hit {
        Some(reply) => reply,
        None => match tcp::answer(shared, &message, client, Proto::Https).await {
            Some(reply) => reply,
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "not a DNS query (a response, or shorter than a header)",
                )
            }
        },
    };
    let max_age = min_ttl(&reply);
    let mut response = Response::new(Full::new(Bytes::from(reply)));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(DNS_MESSAGE));
    if let Ok(value) = HeaderValue::from_str(&format!("max-age={max_age}")) {
        headers.insert(CACHE_CONTROL, value);
    }
    response
}

/// The message of a GET: the `dns` parameter, base64url without padding (RFC 8484 §4.1;
/// padding is accepted too, as Unbound does).
fn dns_parameter(query: &str) -> Result<Vec<u8>, &'static str> {
    let value = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "dns")
        .map(|(_, v)| v)
        .ok_or("no dns parameter: GET ?dns=<base64url of a DNS message>")?;
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(value.trim_end_matches('='))
        .map_err(|_| "the dns parameter is not base64url")?;
    if decoded.len() > MAX_MESSAGE {
        return Err("a DNS message is at most 65535 bytes");
    }
    Ok(decoded)
}

/// The freshness lifetime of a reply (RFC 8484 §5.1): its smallest TTL over the answer and
/// authority records; 0 without any.
fn min_ttl(reply: &[u8]) -> u32 {
    let Ok(message) = Message::from_vec(reply) else {
        return 0;
    };
    message
        .answers
        .iter()
        .chain(&message.authorities)
        .map(|r| r.ttl)
        .min()
        .unwrap_or(0)
}

fn error(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{text}\n"))));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dns_parameter_is_base64url_with_or_without_padding() {
        // RFC 8484 §4.1.1's example: www.example.com A, ID 0.
        let example = "AAABAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB";
        let bytes = dns_parameter(&format!("dns={example}")).unwrap();
        assert_eq!(bytes.len(), 33);
        assert_eq!(
            dns_parameter(&format!("ct=x&dns={example}==")).unwrap(),
            bytes
        );
        assert!(dns_parameter("name=example.com").is_err());
        assert!(dns_parameter("dns=***").is_err());
    }
}
