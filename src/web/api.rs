//! The dashboard's endpoints (the contract the page is written against; `docs/dashboard.md`
//! shows them). JSON in and out; errors are `{"error": "..."}` with a 4xx status naming
//! the problem and the fix.
//!
//! Read-only, no login: the page's files, `/api/session`, `/api/overview`, `/api/events`
//! (Server-Sent Events), `/api/top`, `/api/log`, `/api/rules`. After `POST /api/login`:
//! `POST /api/pause`, `/api/reload`, `/api/flush`, `/api/lookup`, `/api/logout` (each with
//! the session cookie and `X-CSRF-Token`), and `GET /api/trace` (the session alone: it
//! changes nothing but the cache, and the cookie is `SameSite=Strict`; `fresh=1` traces on
//! a resolver with an empty cache of its own, priming first as `serve` does, so every hop
//! shows, as `hopdns trace` prints them).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hickory_proto::rr::{Name, RecordType};
use http_body_util::{BodyExt, Limited};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, ALLOW, COOKIE, HOST, ORIGIN, RETRY_AFTER, SET_COOKIE};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Access;
use super::http::{error, full, json, respond, Body, Busy, BODY_TIMEOUT, MAX_BODY};
use super::ring::{Filter, Outcome};
use super::series::{percentile_ms, total, Window};
use super::top::Kind;
use super::Dashboard;
use crate::dns::Question;

/// The session cookie's name.
pub const COOKIE_NAME: &str = "hopdns_session";
/// The header every action must carry.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How often `/api/events` sends a tick.
pub const EVENT_EVERY: Duration = Duration::from_secs(2);
/// Longest a lookup or trace may take (the resolver gives up at 4.5 s).
const RESOLVE_LIMIT: Duration = Duration::from_secs(10);
/// Top-list sizes and windows.
const TOP_DEFAULT: usize = 10;
const TOP_MAX: usize = 100;
const TOP_WINDOW_DEFAULT: u64 = 3600;
const TOP_WINDOW_MIN: u64 = 60;
const TOP_WINDOW_MAX: u64 = 86_400;
/// Query log rows per request.
const LOG_DEFAULT: usize = 100;
const LOG_MAX: usize = 1000;
/// Rules listed by `/api/rules` (most hits first).
const RULES_MAX: usize = 1000;

const NO_PASSWORD: &str = "actions need a password and none is set: run `hopdns web-password`, \
     put the hash it prints in web-password-hash (or --web-password-hash), and restart serve";

/// Answers one request.
pub async fn route(
    request: Request<Incoming>,
    peer: SocketAddr,
    dash: &Arc<Dashboard>,
    busy: Busy,
) -> Response<Body> {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let params: HashMap<String, String> = request
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    if method == Method::POST {
        if let Some(refused) = cross_origin(request.headers()) {
            return refused;
        }
    }
    match (&method, path.as_str()) {
        (&Method::GET, "/api/session") => session(dash, request.headers()),
        (&Method::GET, "/api/overview") => match Window::parse(param(&params, "window")) {
            Some(w) => json(StatusCode::OK, &overview(dash, w, false)),
            None => error(StatusCode::BAD_REQUEST, "window must be hour or day"),
        },
        (&Method::GET, "/api/events") => events(dash, busy),
        (&Method::GET, "/api/top") => top(dash, &params),
        (&Method::GET, "/api/log") => log(dash, &params),
        (&Method::GET, "/api/rules") => json(StatusCode::OK, &rules(dash)),
        (&Method::GET, "/api/trace") => trace(dash, request.headers(), &params, peer).await,
        (&Method::POST, "/api/login") => login(dash, request, peer).await,
        (&Method::POST, "/api/logout") => logout(dash, request.headers()),
        (&Method::POST, "/api/pause" | "/api/reload" | "/api/flush" | "/api/lookup") => {
            if let Err(refused) = authorize(dash, request.headers()) {
                return refused.response();
            }
            action(dash, request, peer, &path).await
        }
        // Browsers ask for it whatever the page links: nothing, rather than a 404 in the
        // console.
        (&Method::GET, "/favicon.ico") => respond(StatusCode::NO_CONTENT, "image/x-icon", full("")),
        (&Method::GET, p) if !p.starts_with("/api/") => match super::assets::find(p) {
            Some(a) => respond(StatusCode::OK, a.content_type, full(a.bytes)),
            None => error(StatusCode::NOT_FOUND, "no such page: the dashboard is at /"),
        },
        (_, p) => match allowed_methods(p) {
            Some(allow) => {
                let mut r = error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    &format!("{p} takes {allow} only"),
                );
                r.headers_mut()
                    .insert(ALLOW, HeaderValue::from_static(allow));
                r
            }
            None => error(
                StatusCode::NOT_FOUND,
                &format!("no endpoint {p}: see docs/dashboard.md for the API"),
            ),
        },
    }
}

/// A request refused: its status and what is wrong, with the fix.
#[derive(Debug)]
struct Refusal(StatusCode, String);

impl Refusal {
    fn new(status: StatusCode, message: &str) -> Self {
        Refusal(status, message.to_string())
    }

    fn response(self) -> Response<Body> {
        error(self.0, &self.1)
    }
}

fn allowed_methods(path: &str) -> Option<&'static str> {
    match path {
        "/api/session" | "/api/overview" | "/api/events" | "/api/top" | "/api/log"
        | "/api/rules" | "/api/trace" => Some("GET"),
        "/api/login" | "/api/logout" | "/api/pause" | "/api/reload" | "/api/flush"
        | "/api/lookup" => Some("POST"),
        p if super::assets::find(p).is_some() => Some("GET"),
        _ => None,
    }
}

fn param<'a>(params: &'a HashMap<String, String>, key: &str) -> &'a str {
    params.get(key).map_or("", |v| v.trim())
}

/// A number parameter: the default when absent, clamped to its bounds, an error when it
/// is not a number.
fn number(
    params: &HashMap<String, String>,
    key: &str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, Refusal> {
    match param(params, key) {
        "" => Ok(default),
        text => text.parse::<u64>().map(|n| n.clamp(min, max)).map_err(|_| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                &format!("{key} must be a whole number ({min} to {max}), not {text:?}"),
            )
        }),
    }
}

/// A POST whose `Origin` is not this server's own host: refused (OWASP's origin check,
/// beside the token).
fn cross_origin(headers: &HeaderMap) -> Option<Response<Body>> {
    let origin = headers.get(ORIGIN)?.to_str().ok()?;
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
    (!origin_host.eq_ignore_ascii_case(host)).then(|| {
        error(
            StatusCode::FORBIDDEN,
            "cross-origin request refused: use the dashboard's own page",
        )
    })
}

/// The session token from the `Cookie` header.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE_NAME)
        .map(|(_, v)| v)
}

fn access(dash: &Dashboard, headers: &HeaderMap) -> Access {
    let csrf = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    dash.sessions().access(cookie(headers), csrf)
}

/// The check in front of every action: a password configured, a session, its CSRF token.
fn authorize(dash: &Dashboard, headers: &HeaderMap) -> Result<(), Refusal> {
    if dash.config.password_hash.is_none() {
        return Err(Refusal::new(StatusCode::FORBIDDEN, NO_PASSWORD));
    }
    match access(dash, headers) {
        Access::Anonymous => Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            "log in first (POST /api/login)",
        )),
        Access::Session { csrf_ok: false, .. } => Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "missing or wrong X-CSRF-Token: send the csrf value of /api/session with every POST",
        )),
        Access::Session { csrf_ok: true, .. } => Ok(()),
    }
}

fn session(dash: &Dashboard, headers: &HeaderMap) -> Response<Body> {
    let csrf = match access(dash, headers) {
        Access::Session { csrf, .. } => Some(csrf),
        Access::Anonymous => None,
    };
    json(
        StatusCode::OK,
        &json!({
            "logged_in": csrf.is_some(),
            "csrf": csrf,
            "auth_configured": dash.config.password_hash.is_some(),
        }),
    )
}

/// The overview of `window`; `newest_only`: the series holds only the newest bucket (the
/// event stream's ticks).
pub fn overview(dash: &Dashboard, window: Window, newest_only: bool) -> Value {
    let now = dash.collector.clock().unix_secs();
    let live = crate::metrics::metrics().snapshot();
    let (buckets, qps) = {
        let series = dash.collector.series();
        let buckets = series.view(window, now, &live);
        let hour = series.view(Window::Hour, now, &live);
        let qps = match series.last() {
            Some((t, s)) if now >= t + 2 => {
                live.replies.saturating_sub(s.replies) as f64 / (now - t) as f64
            }
            // Just sampled: the last full 10 s.
            _ => hour.iter().rev().nth(1).map_or(0.0, |b| b.queries as f64) / 10.0,
        };
        (buckets, qps)
    };
    let sum = total(&buckets);
    let mut classes = super::series::Classes::default();
    for b in &buckets {
        classes.add(b.classes());
    }
    let cache = crate::metrics::metrics().cache_stats();
    let (entries, bytes) = cache.map_or((0, 0), |c| {
        (
            c.rrsets.entries + c.messages.entries,
            c.rrsets.bytes + c.messages.bytes,
        )
    });
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let series: Vec<Value> = if newest_only {
        buckets.last().map(|b| b.to_json()).into_iter().collect()
    } else {
        buckets.iter().map(|b| b.to_json()).collect()
    };
    json!({
        "now": now,
        "step": window.step(),
        "series": series,
        "totals": {
            "queries": sum.queries,
            "cached": classes.cached,
            "resolved": classes.resolved,
            "redirected": classes.redirected,
            "blocked": classes.blocked,
            "failed": classes.failed,
        },
        "qps": qps,
        "latency_ms": {
            "p50": percentile_ms(&sum.latency, 0.5),
            "p90": percentile_ms(&sum.latency, 0.9),
            "p99": percentile_ms(&sum.latency, 0.99),
        },
        "cache": {
            "entries": entries,
            "bytes": bytes,
            "hit_ratio": ratio(sum.hits, sum.hits + sum.misses),
        },
        "upstream_per_query": ratio(sum.upstream, sum.queries),
        "blocking": { "paused_until": paused_until(dash) },
    })
}

fn paused_until(dash: &Dashboard) -> Option<u64> {
    dash.engine
        .controls
        .blocking
        .as_ref()
        .and_then(|b| b.paused_until())
}

/// The event stream: a tick now and every [`EVENT_EVERY`], until the client goes.
struct Ticks {
    dash: Arc<Dashboard>,
    tick: tokio::time::Interval,
    busy: Busy,
}

impl hyper::body::Body for Ticks {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.tick.poll_tick(cx).is_pending() {
            return Poll::Pending;
        }
        self.busy.touch();
        let value = overview(&self.dash, Window::Hour, true);
        let event = format!("event: tick\ndata: {value}\n\n");
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(event)))))
    }
}

fn events(dash: &Arc<Dashboard>, busy: Busy) -> Response<Body> {
    let mut tick = tokio::time::interval(EVENT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let body = Ticks {
        dash: dash.clone(),
        tick,
        busy,
    };
    respond(StatusCode::OK, "text/event-stream", body.boxed())
}

fn top(dash: &Dashboard, params: &HashMap<String, String>) -> Response<Body> {
    let Some(kind) = Kind::parse(param(params, "kind")) else {
        return error(
            StatusCode::BAD_REQUEST,
            "kind must be domains, blocked or clients",
        );
    };
    let window = match number(
        params,
        "window",
        TOP_WINDOW_DEFAULT,
        TOP_WINDOW_MIN,
        TOP_WINDOW_MAX,
    ) {
        Ok(w) => w,
        Err(e) => return e.response(),
    };
    let n = match number(params, "n", TOP_DEFAULT as u64, 1, TOP_MAX as u64) {
        Ok(n) => n as usize,
        Err(e) => return e.response(),
    };
    let now = dash.collector.clock().unix_secs();
    let items: Vec<Value> = dash
        .collector
        .log()
        .top
        .top(kind, now, window, n)
        .into_iter()
        .map(|(key, count)| json!({"key": key, "count": count}))
        .collect();
    json(
        StatusCode::OK,
        &json!({"kind": kind.name(), "window": window, "items": items}),
    )
}

fn log(dash: &Dashboard, params: &HashMap<String, String>) -> Response<Body> {
    let text = |k: &str| Some(param(params, k).to_string()).filter(|s| !s.is_empty());
    let outcome = match param(params, "outcome") {
        "" => None,
        o => match Outcome::parse(o) {
            Some(o) => Some(o),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "outcome must be cached, resolved, redirected, blocked or failed",
                )
            }
        },
    };
    let limit = match number(params, "limit", LOG_DEFAULT as u64, 1, LOG_MAX as u64) {
        Ok(n) => n as usize,
        Err(e) => return e.response(),
    };
    let qtype = match text("qtype") {
        None => None,
        Some(t) => match parse_type(&t) {
            Ok(t) => Some(u16::from(t)),
            Err(e) => return e.response(),
        },
    };
    let filter = Filter {
        client: text("client"),
        name: text("name"),
        qtype,
        outcome,
        rcode: text("rcode"),
    };
    let entries: Vec<Value> = dash
        .collector
        .log()
        .ring
        .query(&filter, limit)
        .into_iter()
        .map(|e| e.to_json())
        .collect();
    json(StatusCode::OK, &json!({ "entries": entries }))
}

fn rules(dash: &Dashboard) -> Value {
    let Some(set) = dash.engine.redirect.as_ref().and_then(|r| r.rules()) else {
        return json!({"files": [], "rules": [], "pools": []});
    };
    let files: Vec<Value> = set
        .file_summaries()
        .into_iter()
        .map(|f| {
            json!({
                "path": f.path.display().to_string(),
                "entries": f.entries,
                "by_action": f.by_action,
                "loaded_at": set.loaded_at,
            })
        })
        .collect();
    let mut hits = set.rule_hits();
    hits.sort_by_key(|r| std::cmp::Reverse(r.hits));
    hits.truncate(RULES_MAX);
    let rules: Vec<Value> = hits
        .into_iter()
        .map(|r| {
            json!({
                "rule": r.origin, "name": r.name, "names": r.names,
                "action": r.action, "hits": r.hits,
            })
        })
        .collect();
    let pools: Vec<Value> = set
        .pools
        .iter()
        .map(|p| {
            let members: Vec<Value> = p
                .members
                .iter()
                .map(|m| {
                    json!({
                        "addr": m.address.to_string(),
                        "up": m.state.is_up(),
                        "last_check": m.state.last_check(),
                        "latency_ms": m.state.rtt().map(|d| d.as_secs_f64() * 1000.0),
                    })
                })
                .collect();
            json!({"name": p.name, "members": members})
        })
        .collect();
    json!({"files": files, "rules": rules, "pools": pools})
}

#[derive(Deserialize)]
struct Login {
    password: String,
}

/// Reads a JSON body of at most [`MAX_BODY`] bytes within [`BODY_TIMEOUT`].
async fn body<T: serde::de::DeserializeOwned>(request: Request<Incoming>) -> Result<T, Refusal> {
    let limited = Limited::new(request.into_body(), MAX_BODY);
    let bytes = match tokio::time::timeout(BODY_TIMEOUT, limited.collect()).await {
        Err(_) => {
            return Err(Refusal::new(
                StatusCode::REQUEST_TIMEOUT,
                "the request body came too slowly",
            ))
        }
        Ok(Err(_)) => {
            return Err(Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the request body is over {MAX_BODY} bytes"),
            ))
        }
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    serde_json::from_slice(&bytes).map_err(|e| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            &format!("the body is not the JSON this endpoint takes: {e}"),
        )
    })
}

async fn login(dash: &Dashboard, request: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let Some(hash) = dash.config.password_hash.clone() else {
        return error(StatusCode::FORBIDDEN, NO_PASSWORD);
    };
    let ip = peer.ip();
    if !dash.sessions().may_try(ip) {
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many wrong passwords from your address: wait a minute",
        );
        r.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("60"));
        return r;
    }
    let login: Login = match body(request).await {
        Ok(l) => l,
        Err(e) => return e.response(),
    };
    // Counted as a failure before hashing, so tries in flight count too; a right password
    // clears it.
    dash.sessions().failed(ip);
    let Ok(_permit) = dash.hashing.acquire().await else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "stopping");
    };
    let right = tokio::task::spawn_blocking(move || super::auth::verify(&hash, &login.password))
        .await
        .unwrap_or(false);
    if !right {
        return error(StatusCode::UNAUTHORIZED, "wrong password");
    }
    let mut sessions = dash.sessions();
    sessions.succeeded(ip);
    let (token, csrf) = match sessions.open() {
        Ok(t) => t,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    drop(sessions);
    let mut r = json(StatusCode::OK, &json!({ "csrf": csrf }));
    let cookie = format!(
        "{COOKIE_NAME}={token}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age={}",
        super::auth::SESSION_MAX.as_secs()
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(SET_COOKIE, v);
    }
    r
}

fn logout(dash: &Dashboard, headers: &HeaderMap) -> Response<Body> {
    match access(dash, headers) {
        Access::Anonymous => {}
        Access::Session { csrf_ok: false, .. } => {
            return error(
                StatusCode::FORBIDDEN,
                "missing or wrong X-CSRF-Token: send the csrf value of /api/session",
            )
        }
        Access::Session { csrf_ok: true, .. } => {
            if let Some(token) = cookie(headers) {
                dash.sessions().close(token);
            }
        }
    }
    let mut r = json(StatusCode::OK, &json!({ "logged_in": false }));
    r.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_static(
            "hopdns_session=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0",
        ),
    );
    r
}

#[derive(Deserialize)]
struct Pause {
    minutes: u64,
}

#[derive(Deserialize)]
struct Flush {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct Lookup {
    name: String,
    #[serde(rename = "type", default = "default_type")]
    qtype: String,
}

fn default_type() -> String {
    "A".into()
}

/// Parses a name as the API takes it (trailing dot optional), with the fix in the error.
fn parse_name(text: &str) -> Result<Name, Refusal> {
    let mut name = Name::from_ascii(text.trim()).map_err(|e| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            &format!("{text:?} is not a domain name ({e}); example: www.example.com"),
        )
    })?;
    name.set_fqdn(true);
    Ok(name)
}

fn parse_type(text: &str) -> Result<RecordType, Refusal> {
    text.trim()
        .to_ascii_uppercase()
        .parse::<RecordType>()
        .map_err(|_| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                &format!("{text:?} is not a record type; use one like A, AAAA, MX, TXT, NS"),
            )
        })
}

async fn action(
    dash: &Arc<Dashboard>,
    request: Request<Incoming>,
    peer: SocketAddr,
    path: &str,
) -> Response<Body> {
    match path {
        "/api/pause" => {
            let p: Pause = match body(request).await {
                Ok(p) => p,
                Err(e) => return e.response(),
            };
            let Some(switch) = &dash.engine.controls.blocking else {
                return error(
                    StatusCode::CONFLICT,
                    "no redirect rules are loaded (serve --rules FILE): there is no blocking \
                     to pause",
                );
            };
            match switch.pause(p.minutes) {
                Ok(until) => {
                    tracing::info!(%peer, minutes = p.minutes, "dashboard: blocking paused");
                    json(StatusCode::OK, &json!({ "paused_until": until }))
                }
                Err(e) => error(StatusCode::BAD_REQUEST, &e),
            }
        }
        "/api/reload" => {
            let controls = dash.engine.controls.clone();
            let report = tokio::task::spawn_blocking(move || controls.reload()).await;
            match report {
                Ok(r) if r.ok => {
                    tracing::info!(%peer, report = %r.text, "dashboard: reloaded");
                    json(StatusCode::OK, &json!({ "message": r.text }))
                }
                Ok(r) => error(StatusCode::UNPROCESSABLE_ENTITY, &r.text),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            }
        }
        "/api/flush" => {
            let f: Flush = match body(request).await {
                Ok(f) => f,
                Err(e) => return e.response(),
            };
            let Some(cache) = dash.engine.controls.cache.clone() else {
                return error(StatusCode::CONFLICT, "this server has no cache to flush");
            };
            let name = match f.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
                Some(n) => match parse_name(n) {
                    Ok(n) => Some(n.to_lowercase()),
                    Err(e) => return e.response(),
                },
                None => None,
            };
            let removed = tokio::task::spawn_blocking(move || match &name {
                Some(n) => cache.flush_name(n),
                None => cache.flush_all(),
            })
            .await
            .unwrap_or(0);
            tracing::info!(%peer, removed, "dashboard: cache flushed");
            json(StatusCode::OK, &json!({ "removed": removed }))
        }
        "/api/lookup" => {
            let l: Lookup = match body(request).await {
                Ok(l) => l,
                Err(e) => return e.response(),
            };
            let (name, qtype) = match (parse_name(&l.name), parse_type(&l.qtype)) {
                (Ok(n), Ok(t)) => (n, t),
                (Err(e), _) | (_, Err(e)) => return e.response(),
            };
            lookup(dash, Question::new(name, qtype), peer).await
        }
        _ => error(StatusCode::NOT_FOUND, "no such action"),
    }
}

/// A question through the running answerer, as a client at `peer` would ask it (rules,
/// cache, resolver).
async fn lookup(dash: &Dashboard, question: Question, peer: SocketAddr) -> Response<Body> {
    let Ok(_permit) = dash.resolving.try_acquire() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many lookups and traces at once: try again in a moment",
        );
    };
    let answerer = &dash.engine.answerer;
    let outcome = match tokio::time::timeout(RESOLVE_LIMIT, answerer.answer(&question, peer)).await
    {
        Ok(o) => o,
        Err(_) => return error(StatusCode::GATEWAY_TIMEOUT, "no answer in time"),
    };
    let rcode = match &outcome {
        crate::dns::Outcome::Drop => "DROP",
        o => crate::metrics::rcode_name(u16::from(o.rcode())),
    };
    let answers: Vec<String> = outcome
        .answers()
        .iter()
        .chain(outcome.soa())
        .map(crate::dns::record_text)
        .collect();
    json(
        StatusCode::OK,
        &json!({"rcode": rcode, "answers": answers, "ad": answerer.secure(&question)}),
    )
}

/// The hops of one resolution through the running engine (its cache, its rules), as
/// `hopdns trace --json` prints them.
async fn trace(
    dash: &Dashboard,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
    peer: SocketAddr,
) -> Response<Body> {
    if dash.config.password_hash.is_none() {
        return error(StatusCode::FORBIDDEN, NO_PASSWORD);
    }
    if access(dash, headers) == Access::Anonymous {
        return error(StatusCode::UNAUTHORIZED, "log in first (POST /api/login)");
    }
    let name = match parse_name(param(params, "name")) {
        Ok(n) => n,
        Err(e) => return e.response(),
    };
    let qtype = match parse_type(match param(params, "type") {
        "" => "A",
        t => t,
    }) {
        Ok(t) => t,
        Err(e) => return e.response(),
    };
    let Ok(_permit) = dash.resolving.try_acquire() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many lookups and traces at once: try again in a moment",
        );
    };
    let mut keep = Keep {
        dnssec: matches!(param(params, "dnssec"), "1" | "true"),
        events: Vec::new(),
    };
    let question = Question::new(name, qtype);
    let fresh = matches!(param(params, "fresh"), "1" | "true");
    let cold = match (&dash.engine.cold, fresh) {
        (_, false) => None,
        (Some((make, prime)), true) => Some((make(), *prime)),
        (None, true) => {
            return error(
                StatusCode::CONFLICT,
                "fresh traces are not available here: trace without fresh=1",
            )
        }
    };
    let run = async {
        let resolver = match &cold {
            Some((r, prime)) => {
                if *prime {
                    r.prime(Some(&mut keep)).await;
                }
                r
            }
            None => &*dash.engine.resolver,
        };
        match &dash.engine.redirect {
            Some(r) => r.trace(resolver, &question, peer.ip(), &mut keep).await,
            None => resolver.resolve_traced(&question, Some(&mut keep)).await,
        }
    };
    if tokio::time::timeout(RESOLVE_LIMIT, run).await.is_err() {
        return error(
            StatusCode::GATEWAY_TIMEOUT,
            "the resolution did not end in time",
        );
    }
    let events: Vec<Value> = keep.events.iter().map(crate::trace::to_json).collect();
    json(StatusCode::OK, &json!({ "events": events }))
}

/// Keeps a trace's events; the DNSSEC steps only when asked (`dnssec=1`), as `hopdns trace`
/// shows them only with `--dnssec`.
struct Keep {
    dnssec: bool,
    events: Vec<crate::trace::HopEvent>,
}

impl crate::trace::TraceSink for Keep {
    fn event(&mut self, event: &crate::trace::HopEvent) {
        if self.dnssec || !event.is_dnssec() {
            self.events.push(event.clone());
        }
    }
}
