//! The one loop that runs a [`Resolution`]: against an exchange, the cache, a server picker
//! and an event sink. `serve` (through [`super::Resolver`]), priming, `hopdns trace`, the
//! machine's unit tests, the fuzz harness and the benchmarks all drive the machine here.
//!
//! Per upstream query it picks one of the machine's candidates ([`Pick`]: by smoothed RTT
//! from the infra cache, or the first one where a test wants a fixed walk), bounds the wait
//! by the server's RTO and the request's deadline, performs the exchange, reports what it
//! taught about the server through the one selection door ([`InfraCache::report`]) and feeds
//! the machine the [`Event`].
//!
//! [`InfraCache::report`]: crate::cache::InfraCache::report

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::op::{Query, ResponseCode};

use super::machine::{Action, Ask, Event, Resolution, Route};
use super::Outcome;
use crate::cache::{Cache, Feedback};
use crate::trace::{HopEvent, TraceSink};
use crate::transport::{choose, choose_configured, Exchange, OutQuery, TransportError};

/// Shortest timeout for a TCP exchange (connection set-up included).
const MIN_TCP_TIMEOUT: Duration = Duration::from_millis(1500);

/// How the loop picks one server among the machine's candidates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pick {
    /// By smoothed RTT within a band, at random (Unbound's `RTT_BAND`): what `serve` does.
    Rtt,
    /// Always the first candidate: a fixed walk for tests and the fuzz harness.
    First,
}

/// One run of one resolution.
pub struct Run<'a> {
    pub cache: &'a Cache,
    pub exchange: &'a dyn Exchange,
    pub pick: Pick,
    /// When the request gives up (the client's deadline).
    pub deadline: Instant,
    /// A server that answered FORMERR to EDNS in this run: it is marked EDNS-less only once
    /// the same query without EDNS works, so one odd reply cannot strip EDNS from a good
    /// server.
    edns_formerr: Option<IpAddr>,
    /// A fixed clock for TTLs (unix seconds) instead of the cache's (tests on fixed times).
    unix_clock: Option<fn() -> u64>,
}

impl<'a> Run<'a> {
    pub fn new(
        cache: &'a Cache,
        exchange: &'a dyn Exchange,
        pick: Pick,
        deadline: Instant,
    ) -> Self {
        Self {
            cache,
            exchange,
            pick,
            deadline,
            edns_formerr: None,
            unix_clock: None,
        }
    }

    /// The same run with TTLs counted on `clock` instead of the cache's [`Clock`] (tests
    /// that pin the time to a constant).
    ///
    /// [`Clock`]: crate::dns::Clock
    pub fn with_unix_clock(mut self, clock: fn() -> u64) -> Self {
        self.unix_clock = Some(clock);
        self
    }

    /// Unix seconds for the machine's TTLs.
    fn unix_secs(&self) -> u64 {
        match self.unix_clock {
            Some(clock) => clock(),
            None => self.cache.clock.unix_secs(),
        }
    }

    /// Runs `m` to its outcome, handing every hop event to `sink`. `admit` is called once,
    /// before the first upstream query (from then on the resolution is a cache miss): an
    /// outcome from it ends the resolution there (overload).
    pub async fn drive(
        &mut self,
        m: &mut Resolution,
        mut sink: Option<&mut dyn TraceSink>,
        mut admit: impl FnMut() -> Option<Outcome>,
    ) -> Outcome {
        let mut admitted = false;
        loop {
            let action = m.poll(self.cache, self.unix_secs());
            flush(m, &mut sink);
            let ask = match action {
                Action::Done(outcome) => return outcome,
                Action::Ask(ask) => ask,
            };
            if !admitted {
                admitted = true;
                if let Some(outcome) = admit() {
                    return ended(&mut sink, outcome);
                }
            }
            let now = self.cache.clock.now();
            let Some(server) = self.server_for(&ask, now).filter(|_| now < self.deadline) else {
                m.handle(Event::Deadline, self.cache, self.unix_secs());
                continue;
            };
            let (event, done) = self
                .ask(
                    server,
                    &ask.query,
                    ask.route(server),
                    ask.edns,
                    ask.dnssec_ok,
                    now,
                )
                .await;
            m.handle(event, self.cache, self.unix_secs());
            if done >= self.deadline {
                m.handle(Event::Deadline, self.cache, self.unix_secs());
            }
        }
    }

    /// The server to ask for `ask`. Every child address of a cut that has been timing out
    /// lets the parent's glue, if it scores better, be asked now rather than after those
    /// timeouts.
    fn server_for(&self, ask: &Ask, now: Instant) -> Option<SocketAddr> {
        let infra = &self.cache.infra;
        // A forward or stub zone's servers: each measured, a dead one probed now and then.
        let pick = if ask.upstreams.is_empty() {
            choose
        } else {
            choose_configured
        };
        let server = match self.pick {
            Pick::First => return ask.candidates.first().copied(),
            Pick::Rtt => pick(&ask.candidates, infra, now)?,
        };
        if !ask.fallback.is_empty() && infra.timing_out(server.ip(), now) {
            if let Some(alt) = choose(&ask.fallback, infra, now) {
                if infra.score(alt.ip(), now) < infra.score(server.ip(), now) {
                    return Some(alt);
                }
            }
        }
        Some(server)
    }

    /// Asks `server` one question, starting at `now`, and reports what happened, both to
    /// server selection (one [`Feedback`] per exchange) and as the machine's [`Event`]: RTT,
    /// timeouts (never our own shortage of sockets or memory), EDNS and 0x20 fallbacks. Also
    /// returns when it ended, so the caller needs no clock read of its own.
    #[allow(clippy::too_many_arguments)]
    async fn ask(
        &mut self,
        server: SocketAddr,
        query: &Query,
        route: Route,
        want_edns: bool,
        dnssec_ok: bool,
        now: Instant,
    ) -> (Event, Instant) {
        let infra = &self.cache.infra;
        let tcp = route.tcp;
        let deadline = self.deadline;
        let mut timeout = infra.rto(server.ip(), now);
        if tcp {
            timeout = timeout.saturating_mul(2).max(MIN_TCP_TIMEOUT);
        }
        let timeout = timeout.min(deadline.saturating_duration_since(now));
        let edns = want_edns && infra.edns_ok(server.ip(), now);
        let out = OutQuery {
            server,
            query: query.clone(),
            tcp,
            edns,
            dnssec_ok: edns && dnssec_ok,
            timeout,
            case_0x20: infra.case_ok(server.ip(), now),
            rd: route.rd,
            tls: route.tls,
        };
        let mut result = self.exchange.exchange_via(&out).await;
        crate::metrics::note::count_upstream();
        if matches!(result, Err(TransportError::CaseMismatch)) {
            // It answers, but not with our case (RFC 4343 lets servers fold case): ask it
            // again at once without 0x20, on a new port with a new ID, and from now on
            // compare its questions without case. One round trip, not a timeout.
            let at = self.cache.clock.now();
            infra.report(server.ip(), Feedback::NoCase, at);
            let again = OutQuery {
                case_0x20: false,
                timeout: out.timeout.min(deadline.saturating_duration_since(at)),
                ..out.clone()
            };
            result = self.exchange.exchange_via(&again).await;
            crate::metrics::note::count_upstream();
        }
        let done = self.cache.clock.now();
        let after = done - now;
        let metrics = crate::metrics::metrics();
        match &result {
            Ok((m, _)) => {
                metrics
                    .upstream_query(server.ip(), Some(u16::from(m.metadata.response_code.low())));
                metrics.upstream_rtt(server.ip(), after);
            }
            // Our own shortage (EMFILE, ENOBUFS) says nothing about the server.
            Err(e) if e.is_local() => metrics.upstream_local_error(),
            Err(_) => metrics.upstream_query(server.ip(), None),
        }
        let event = match result {
            Ok((message, via)) => {
                let rcode = message.metadata.response_code;
                let feedback = match rcode {
                    ResponseCode::Refused | ResponseCode::ServFail | ResponseCode::NotImp => {
                        Feedback::Refused
                    }
                    _ => Feedback::Answered(after),
                };
                infra.report(server.ip(), feedback, done);
                if super::classify::edns_rejected(&message, edns) {
                    self.edns_formerr = Some(server.ip());
                } else if !edns
                    && rcode != ResponseCode::FormErr
                    && self.edns_formerr == Some(server.ip())
                {
                    infra.report(server.ip(), Feedback::NoEdns, done);
                }
                Event::Response {
                    from: server,
                    message,
                    rtt: after,
                    edns,
                    via,
                }
            }
            // Not even the retry without 0x20 matched (it cannot, as it compares without
            // case): nothing usable from this server now.
            Err(e @ TransportError::CaseMismatch) => Event::NoReply {
                from: server,
                error: e.to_string(),
                after,
            },
            Err(TransportError::Malformed(error)) => Event::Unusable {
                from: server,
                error: format!("malformed reply: {error}"),
                after,
            },
            Err(e) => {
                if !matches!(e, TransportError::Encode(_)) && !e.is_local() {
                    infra.report(server.ip(), Feedback::TimedOut, done);
                }
                Event::NoReply {
                    from: server,
                    error: e.to_string(),
                    after,
                }
            }
        };
        (event, done)
    }
}

/// A resolution that ends before the machine could say so: its result line, for the sink.
pub(super) fn ended(sink: &mut Option<&mut dyn TraceSink>, outcome: Outcome) -> Outcome {
    if let Some(sink) = sink.as_deref_mut() {
        sink.event(&HopEvent::Done {
            depth: 0,
            outcome: outcome.clone(),
        });
    }
    outcome
}

fn flush(m: &mut Resolution, sink: &mut Option<&mut dyn TraceSink>) {
    if let Some(sink) = sink.as_deref_mut() {
        for ev in m.take_events() {
            sink.event(&ev);
        }
    }
}
