//! The JSON printer: one object per hop event, one per line (JSON Lines), for scripts.

use std::io::Write;

use serde_json::{json, Value};

use super::{rcode_name, CutSource, HopEvent, ReplyKind, TraceSink};

pub struct JsonPrinter<W: Write + Send> {
    out: W,
}

impl<W: Write + Send> JsonPrinter<W> {
    pub fn new(out: W) -> Self {
        Self { out }
    }
}

impl<W: Write + Send> TraceSink for JsonPrinter<W> {
    fn event(&mut self, event: &HopEvent) {
        let _ = writeln!(self.out, "{}", to_json(event));
    }
}

/// Records in presentation form (DNAME targets as names, not hex).
fn record_strings(rs: &[hickory_proto::rr::Record]) -> Vec<String> {
    rs.iter().map(crate::dns::record_text).collect()
}

fn strings<T: ToString>(items: &[T]) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
}

/// The JSON form of one event. Field names are stable: scripts read them.
pub fn to_json(event: &HopEvent) -> Value {
    match event {
        HopEvent::Start { depth, question } => json!({
            "event": "start", "depth": depth, "question": question.to_string(),
        }),
        HopEvent::Cut {
            depth,
            zone,
            source,
        } => json!({
            "event": "cut", "depth": depth, "zone": zone.to_string(),
            "source": match source { CutSource::Hints => "hints", CutSource::Cache => "cache",
                CutSource::Forward => "forward", CutSource::Stub => "stub" },
        }),
        HopEvent::CacheAnswer {
            depth,
            question,
            records,
            rcode,
        } => json!({
            "event": "cache", "depth": depth, "question": question.to_string(),
            "rcode": rcode_name(*rcode), "records": record_strings(records),
        }),
        HopEvent::Reply {
            depth,
            zone,
            server,
            server_name,
            question,
            tcp,
            rcode,
            flags,
            kind,
            rtt,
        } => {
            let (what, detail) = match kind {
                ReplyKind::Answer(rs) => ("answer", json!({ "records": record_strings(rs) })),
                ReplyKind::Cname { chain, target } => (
                    "cname",
                    json!({ "records": record_strings(chain), "target": target.to_string() }),
                ),
                ReplyKind::Referral { zone, ns, glue } => (
                    "referral",
                    json!({
                        "zone": zone.to_string(), "ns": strings(ns),
                        "glue": glue.iter().map(|(n, ip)| json!({ "name": n.to_string(), "addr": ip.to_string() })).collect::<Vec<_>>(),
                    }),
                ),
                ReplyKind::NxDomain(soa) => (
                    "nxdomain",
                    json!({ "soa": soa.as_ref().map(|s| s.to_string()) }),
                ),
                ReplyKind::NoData(soa) => (
                    "nodata",
                    json!({ "soa": soa.as_ref().map(|s| s.to_string()) }),
                ),
                ReplyKind::YxDomain(chain) => {
                    ("yxdomain", json!({ "records": record_strings(chain) }))
                }
                ReplyKind::Provisional { kind, why } => (
                    "provisional",
                    json!({ "why": why, "reply": format!("{kind:?}") }),
                ),
                ReplyKind::Lame(why) => ("lame", json!({ "why": why })),
                ReplyKind::Truncated => ("truncated", json!({})),
                ReplyKind::EdnsRejected => ("edns_rejected", json!({})),
                ReplyKind::RootNs { ns, glue } => (
                    "root_ns",
                    json!({
                        "ns": strings(ns),
                        "glue": glue.iter().map(|(n, ip)| json!({ "name": n.to_string(), "addr": ip.to_string() })).collect::<Vec<_>>(),
                    }),
                ),
            };
            json!({
                "event": "reply", "depth": depth, "zone": zone.to_string(),
                "server": server.to_string(), "server_name": server_name.as_ref().map(|n| n.to_string()),
                "question": question.to_string(), "transport": if *tcp { "tcp" } else { "udp" },
                "rcode": rcode_name(*rcode), "flags": flags, "kind": what, "detail": detail,
                "ms": rtt.as_secs_f64() * 1000.0,
            })
        }
        HopEvent::NoReply {
            depth,
            zone,
            server,
            server_name,
            question,
            tcp,
            error,
            after,
        } => json!({
            "event": "noreply", "depth": depth, "zone": zone.to_string(), "server": server.to_string(),
            "server_name": server_name.as_ref().map(|n| n.to_string()), "question": question.to_string(),
            "transport": if *tcp { "tcp" } else { "udp" }, "error": error, "ms": after.as_secs_f64() * 1000.0,
        }),
        HopEvent::Fallback {
            depth,
            zone,
            server,
            server_name,
        } => json!({
            "event": "fallback", "depth": depth, "zone": zone.to_string(), "server": server.to_string(),
            "server_name": server_name.as_ref().map(|n| n.to_string()),
        }),
        HopEvent::Local {
            depth,
            zone,
            question,
            records,
            rcode,
        } => json!({
            "event": "local", "depth": depth, "zone": zone.to_string(),
            "question": question.to_string(), "rcode": rcode_name(*rcode),
            "records": record_strings(records),
        }),
        HopEvent::Forwarded {
            depth,
            zone,
            server,
            server_name,
            forward,
            via,
            rtt,
        } => json!({
            "event": if *forward { "forwarded" } else { "stub" }, "depth": depth,
            "zone": zone.to_string(), "server": server.to_string(),
            "server_name": server_name.as_ref().map(|n| n.to_string()),
            "via": via, "rtt_ms": rtt.as_secs_f64() * 1000.0,
        }),
        HopEvent::ForwardFailed {
            depth,
            zone,
            failure,
        } => json!({
            "event": "forward_failed", "depth": depth, "zone": zone.to_string(),
            "failure": failure.to_string(),
        }),
        HopEvent::LookupNs { depth, ns } => {
            json!({ "event": "lookup_ns", "depth": depth, "ns": ns.to_string() })
        }
        HopEvent::Redirect {
            depth,
            question,
            rule,
            origin,
            action,
            members,
        } => json!({
            "event": "redirect", "depth": depth, "question": question.to_string(),
            "rule": rule, "origin": origin, "action": action,
            "members": members.iter().map(|m| json!({
                "address": m.address.to_string(), "weight": m.weight, "up": m.up,
                "check_ms": m.rtt.map(|r| r.as_secs_f64() * 1000.0),
                "changes": m.changes, "chosen": m.chosen,
            })).collect::<Vec<_>>(),
        }),
        HopEvent::Dnssec { depth, zone, step } => json!({
            "event": "dnssec", "depth": depth, "zone": zone.to_string(), "step": step,
        }),
        HopEvent::Validated {
            depth,
            state,
            ede,
            reason,
        } => json!({
            "event": "validated", "depth": depth, "state": state, "ede": ede, "reason": reason,
        }),
        HopEvent::Done { depth, outcome } => json!({
            "event": "done", "depth": depth, "rcode": rcode_name(outcome.rcode()),
            "answers": record_strings(outcome.answers()),
            "soa": outcome.soa().map(|s| s.to_string()),
            "failure": match outcome { crate::dns::Outcome::ServFail(f) => Some(f.to_string()), _ => None },
            "dropped": matches!(outcome, crate::dns::Outcome::Drop),
        }),
    }
}
