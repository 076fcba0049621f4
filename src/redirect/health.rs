//! Health checks of pool members: TCP connect, or an HTTP/1.1 GET expecting a status.
//!
//! One task per pool checks every member each `interval`, each check bounded by `timeout`.
//! A member goes down after `fall` failures in a row and comes back after `rise` successes
//! in a row (HAProxy's terms). While any member is changing state (its last check disagreed
//! with its state), rounds come twice as often (HAProxy's `fastinter`), so a member that
//! stops is out of answers within `interval + (fall - 1) * interval / 2`, inside
//! `interval * fall`, and one that recovers is back within `interval + (rise - 1) *
//! interval / 2`. The first check after start (or reload) sets the state at once, so a dead
//! member is never served for `fall` rounds after a restart. State lives
//! in atomics ([`MemberState`](super::pool::MemberState)), so queries read it without a lock. Changes are logged at
//! warn (down) or info (up) and counted, per member and in [`super::Stats`].

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::pool::{Member, Pool};
use super::Stats;

/// How to check a member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckKind {
    /// A TCP connection to the port is accepted.
    Tcp,
    /// `GET path` over plain HTTP/1.1 answers with status `expect`.
    Http {
        path: String,
        host: Option<String>,
        expect: u16,
    },
}

/// A pool's health-check settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthSpec {
    pub kind: CheckKind,
    pub port: u16,
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
}

/// Why one check failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("connect: {0}")]
    Connect(#[source] std::io::Error),
    #[error("HTTP: {0}")]
    Http(String),
    #[error("HTTP status {got}, expected {expect}")]
    Status { got: u16, expect: u16 },
}

impl HealthSpec {
    /// One check of `addr`; the time it took on success.
    pub async fn check(&self, addr: SocketAddr) -> Result<Duration, CheckError> {
        let start = Instant::now();
        match tokio::time::timeout(self.timeout, self.check_once(addr)).await {
            Err(_) => Err(CheckError::Timeout(self.timeout)),
            Ok(Err(e)) => Err(e),
            Ok(Ok(())) => Ok(start.elapsed()),
        }
    }

    async fn check_once(&self, addr: SocketAddr) -> Result<(), CheckError> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(CheckError::Connect)?;
        match &self.kind {
            CheckKind::Tcp => Ok(()),
            CheckKind::Http { path, host, expect } => {
                let host = host.clone().unwrap_or_else(|| addr.to_string());
                let status = http_get(stream, path, &host).await?;
                if status == *expect {
                    Ok(())
                } else {
                    Err(CheckError::Status {
                        got: status,
                        expect: *expect,
                    })
                }
            }
        }
    }

    fn addr_of(&self, m: &Member) -> SocketAddr {
        SocketAddr::new(m.address, m.check_port.unwrap_or(self.port))
    }
}

/// `GET path` on a connected stream with hyper's HTTP/1.1 client; the response status.
async fn http_get(stream: TcpStream, path: &str, host: &str) -> Result<u16, CheckError> {
    use http_body_util::Empty;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Empty<bytes::Bytes>>(io)
        .await
        .map_err(|e| CheckError::Http(e.to_string()))?;
    let conn = tokio::spawn(conn);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, host)
        .header(hyper::header::USER_AGENT, "hopdns-health-check")
        .header(hyper::header::CONNECTION, "close")
        .body(Empty::new())
        .map_err(|e| CheckError::Http(e.to_string()))?;
    let result = sender.send_request(request).await;
    conn.abort();
    result
        .map(|r| r.status().as_u16())
        .map_err(|e| CheckError::Http(e.to_string()))
}

/// Starts the checker of `pool` on `runtime`; it stops when `stop` is cancelled.
pub fn spawn(
    pool: Arc<Pool>,
    stats: Arc<Stats>,
    runtime: &tokio::runtime::Handle,
    stop: CancellationToken,
) {
    let Some(spec) = pool.health.clone() else {
        return;
    };
    runtime.spawn(async move {
        let mut streak: Vec<(u32, u32)> = vec![(0, 0); pool.members.len()];
        let mut first = true;
        loop {
            let round = tokio::time::Instant::now();
            let results = check_all(&pool, &spec).await;
            let mut changing = false;
            for (i, result) in results.into_iter().enumerate() {
                apply(&pool, i, result, &spec, &mut streak[i], first, &stats);
                let (ok, failed) = streak[i];
                changing |= if pool.members[i].state.is_up() {
                    failed > 0
                } else {
                    ok > 0
                };
            }
            first = false;
            let wait = if changing {
                spec.interval / 2
            } else {
                spec.interval
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep_until(round + wait) => {}
            }
        }
    });
}

/// One round: every member checked concurrently; results in member order.
pub async fn check_all(pool: &Pool, spec: &HealthSpec) -> Vec<Result<Duration, CheckError>> {
    let mut set = tokio::task::JoinSet::new();
    for (i, m) in pool.members.iter().enumerate() {
        let (spec, addr) = (spec.clone(), spec.addr_of(m));
        set.spawn(async move { (i, spec.check(addr).await) });
    }
    let mut out: Vec<Option<Result<Duration, CheckError>>> =
        (0..pool.members.len()).map(|_| None).collect();
    while let Some(done) = set.join_next().await {
        if let Ok((i, r)) = done {
            out[i] = Some(r);
        }
    }
    out.into_iter()
        .map(|r| r.unwrap_or(Err(CheckError::Http("check task failed".into()))))
        .collect()
}

/// Runs one round on every pool with checks and sets each member's state from it directly
/// (what `hopdns trace` does before resolving, so it shows real states).
pub async fn check_now(pools: &[Arc<Pool>], stats: &Stats) {
    for pool in pools {
        if let Some(spec) = &pool.health {
            let results = check_all(pool, spec).await;
            for (i, r) in results.into_iter().enumerate() {
                apply(pool, i, r, spec, &mut (0, 0), true, stats);
            }
        }
    }
}

/// Feeds one result into the member's streak (successes, failures) and flips its state at
/// `rise` / `fall`, or at once on the first round.
fn apply(
    pool: &Pool,
    i: usize,
    result: Result<Duration, CheckError>,
    spec: &HealthSpec,
    streak: &mut (u32, u32),
    first: bool,
    stats: &Stats,
) {
    let m = &pool.members[i];
    m.state.checked_at(crate::dns::Clock::system().unix_secs());
    let ok = result.is_ok();
    match &result {
        Ok(rtt) => {
            m.state.record_rtt(*rtt);
            *streak = (streak.0.saturating_add(1), 0);
        }
        Err(_) => *streak = (0, streak.1.saturating_add(1)),
    }
    let was = m.state.is_up();
    let flip = if first {
        was != ok
    } else if was {
        streak.1 >= spec.fall
    } else {
        streak.0 >= spec.rise
    };
    if flip && m.state.set_up(!was) {
        stats.health_changes.fetch_add(1, Ordering::Relaxed);
        let addr = spec.addr_of(m);
        match result {
            Ok(rtt) => tracing::info!(pool = %pool.name, member = %addr, ?rtt, "pool member is up"),
            Err(error) => {
                tracing::warn!(pool = %pool.name, member = %addr, %error, "pool member is down")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redirect::pool::{AllDown, PolicyKind};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn spec(kind: CheckKind, port: u16) -> HealthSpec {
        HealthSpec {
            kind,
            port,
            interval: Duration::from_millis(50),
            timeout: Duration::from_millis(500),
            rise: 2,
            fall: 2,
        }
    }

    /// A one-shot-per-connection HTTP server answering `status`.
    async fn http_server(status: u16) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
                let _ = s.write_all(reply.as_bytes()).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn http_check_expects_the_status() {
        let ok = http_server(200).await;
        let bad = http_server(503).await;
        let http = CheckKind::Http {
            path: "/health".into(),
            host: None,
            expect: 200,
        };
        assert!(spec(http.clone(), 0).check(ok).await.is_ok());
        let e = spec(http, 0).check(bad).await.unwrap_err();
        assert!(e.to_string().contains("503"), "{e}");
    }

    #[tokio::test]
    async fn tcp_check_fails_on_a_closed_port_and_states_follow_rise_and_fall() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let s = spec(CheckKind::Tcp, port);
        let pool = Pool::new(
            "t".into(),
            vec![("127.0.0.1".parse().unwrap(), 1, None)],
            PolicyKind::FirstHealthy,
            1,
            5,
            AllDown::ServeAll,
            (32, 64),
            Some(s.clone()),
        );
        let stats = Stats::default();
        let mut streak = (0, 0);
        assert_eq!(pool.members[0].state.last_check(), None, "never checked");
        let ok = s.check(SocketAddr::new([127, 0, 0, 1].into(), port)).await;
        apply(&pool, 0, ok, &s, &mut streak, true, &stats);
        assert!(pool.members[0].state.is_up());
        let checked = pool.members[0].state.last_check().expect("checked");
        assert!(checked.abs_diff(crate::dns::Clock::system().unix_secs()) <= 1);
        assert!(
            pool.members[0].state.rtt().is_some(),
            "the dashboard's latency"
        );
        drop(l);
        let fail = || s.check(SocketAddr::new([127, 0, 0, 1].into(), port));
        apply(&pool, 0, fail().await, &s, &mut streak, false, &stats);
        assert!(pool.members[0].state.is_up(), "one failure is not fall = 2");
        apply(&pool, 0, fail().await, &s, &mut streak, false, &stats);
        assert!(!pool.members[0].state.is_up());
        assert_eq!(stats.health_changes.load(Ordering::Relaxed), 1);
        apply(
            &pool,
            0,
            Ok(Duration::from_millis(1)),
            &s,
            &mut streak,
            false,
            &stats,
        );
        assert!(
            !pool.members[0].state.is_up(),
            "one success is not rise = 2"
        );
        apply(
            &pool,
            0,
            Ok(Duration::from_millis(1)),
            &s,
            &mut streak,
            false,
            &stats,
        );
        assert!(pool.members[0].state.is_up());
        assert_eq!(pool.members[0].state.transitions(), 2);
    }
}
