//! The text printer: one block per hop, in the spirit of `dig +trace`, indented by
//! sub-resolution depth (as Knot Resolver's `kr_log_q` indents sub-queries).

use std::io::Write;

use super::{rcode_name, CutSource, HopEvent, ReplyKind, TraceSink};
use crate::dns::record_text;
use crate::dns::Outcome;
use hickory_proto::rr::Record;

/// Prints hop events as readable text to a writer (stdout for `hopdns trace`).
pub struct TextPrinter<W: Write + Send> {
    out: W,
}

impl<W: Write + Send> TextPrinter<W> {
    pub fn new(out: W) -> Self {
        Self { out }
    }
}

impl<W: Write + Send> TraceSink for TextPrinter<W> {
    fn event(&mut self, event: &HopEvent) {
        // A closed stdout (e.g. `| head`) must not stop the resolution.
        let _ = writeln!(self.out, "{}", block(event));
    }
}

fn indent(depth: usize) -> String {
    "    ".repeat(depth)
}

/// One short line per event, for logs.
pub(super) fn line(event: &HopEvent) -> String {
    block(event).replace('\n', " | ")
}

/// The full text of one event (may span lines).
fn block(event: &HopEvent) -> String {
    match event {
        HopEvent::Start { depth, question } => {
            format!("{};; resolving {question}", indent(*depth))
        }
        HopEvent::Cut {
            depth,
            zone,
            source,
        } => {
            let from = match source {
                CutSource::Hints => "root hints",
                CutSource::Cache => "delegation cache",
                CutSource::Forward => "forward zone: asked with RD, recursive answers final",
                CutSource::Stub => "stub zone: iterating from its configured servers",
            };
            format!("{};; zone {zone} (from {from})", indent(*depth))
        }
        HopEvent::CacheAnswer {
            depth,
            question,
            records,
            rcode,
        } => {
            let mut s = format!(
                "{};; {question}: {} from cache",
                indent(*depth),
                rcode_name(*rcode)
            );
            push_records(&mut s, &indent(*depth), records);
            s
        }
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
            let pad = indent(*depth);
            let name = server_name
                .as_ref()
                .map_or_else(|| "?".to_string(), |n| n.to_string());
            let mut s = format!(
                "{pad};; zone {zone}: asked {name} ({server}) {question} over {}: {}, flags: {flags}, {} ms",
                if *tcp { "TCP" } else { "UDP" },
                rcode_name(*rcode),
                rtt.as_millis()
            );
            let body = reply_body(kind, &pad);
            s.push_str(&format!("\n{pad};; -> {body}"));
            s
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
        } => {
            let name = server_name
                .as_ref()
                .map_or_else(|| "?".to_string(), |n| n.to_string());
            format!(
                "{};; zone {zone}: asked {name} ({server}) {question} over {}: no reply ({error}) after {} ms",
                indent(*depth),
                if *tcp { "TCP" } else { "UDP" },
                after.as_millis()
            )
        }
        HopEvent::Fallback {
            depth,
            zone,
            server,
            server_name,
        } => {
            let name = server_name
                .as_ref()
                .map_or_else(|| "?".to_string(), |n| n.to_string());
            format!(
                "{};; zone {zone}: no server did better: using the provisional reply of {name} ({server})",
                indent(*depth)
            )
        }
        HopEvent::Local {
            depth,
            zone,
            question,
            records,
            rcode,
        } => {
            let mut s = format!(
                "{};; {question}: {} from locally served zone {zone} (local-zone; no query sent)",
                indent(*depth),
                rcode_name(*rcode)
            );
            push_records(&mut s, &indent(*depth), records);
            s
        }
        HopEvent::Forwarded {
            depth,
            zone,
            server,
            server_name,
            forward,
            via,
            rtt,
        } => {
            let what = if *forward { "forwarder" } else { "stub server" };
            let name = server_name
                .as_ref()
                .filter(|n| *n != zone)
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            format!(
                "{};; {zone}: {what} {server}{name} over {via}, {} ms",
                indent(*depth),
                rtt.as_millis()
            )
        }
        HopEvent::ForwardFailed {
            depth,
            zone,
            failure,
        } => format!(
            "{};; forwarders of {zone} failed ({failure}): forward-first, iterating instead",
            indent(*depth)
        ),
        HopEvent::LookupNs { depth, ns } => {
            format!(
                "{};; glueless name server {ns}: looking up its address",
                indent(*depth)
            )
        }
        HopEvent::Redirect {
            depth,
            question,
            rule,
            origin,
            action,
            members,
        } => {
            let pad = indent(*depth);
            let mut s = format!("{pad};; redirect {question}: rule {rule} ({origin}): {action}");
            for m in members {
                let rtt = m.rtt.map_or_else(String::new, |r| {
                    format!(", check {:.1} ms", r.as_secs_f64() * 1000.0)
                });
                s.push_str(&format!(
                    "\n{pad};;   member {} weight {}: {}{rtt}, {} state change{}{}",
                    m.address,
                    m.weight,
                    if m.up { "up" } else { "down" },
                    m.changes,
                    if m.changes == 1 { "" } else { "s" },
                    if m.chosen { " <- answered" } else { "" }
                ));
            }
            s
        }
        HopEvent::Dnssec { depth, zone, step } => {
            format!("{};; dnssec {zone}: {step}", indent(*depth))
        }
        HopEvent::Validated {
            depth,
            state,
            ede,
            reason,
        } => {
            let mut s = format!("{};; dnssec result: {state}", indent(*depth));
            if let Some(reason) = reason {
                s.push_str(&format!(" ({reason})"));
            }
            if let Some(ede) = ede {
                s.push_str(&format!(", EDE {ede}"));
            }
            s
        }
        HopEvent::Done { depth, outcome } => {
            let pad = indent(*depth);
            match outcome {
                Outcome::ServFail(why) => format!("{pad};; result: SERVFAIL ({why})"),
                Outcome::Drop => format!("{pad};; result: no reply (dropped by a rule)"),
                o => {
                    let mut s = format!("{pad};; result: {}", rcode_name(o.rcode()));
                    push_records(&mut s, &pad, o.answers().iter().chain(o.soa()));
                    s
                }
            }
        }
    }
}

/// What a reply was judged to be, with its records, under a hop.
fn reply_body(kind: &ReplyKind, pad: &str) -> String {
    match kind {
        ReplyKind::Answer(records) => {
            let mut b = format!("answer ({} records)", records.len());
            push_records(&mut b, pad, records);
            b
        }
        ReplyKind::Cname { chain, target } => {
            let mut b = format!("CNAME chain, restarting at {target}");
            push_records(&mut b, pad, chain);
            b
        }
        ReplyKind::Referral { zone, ns, glue } => {
            let mut b = format!("referral to {zone}");
            for n in ns {
                b.push_str(&format!("\n{pad}{zone}\tNS\t{n}"));
            }
            for (n, ip) in glue {
                b.push_str(&format!("\n{pad}{n}\tglue\t{ip}"));
            }
            if glue.is_empty() {
                b.push_str(&format!(
                    "\n{pad};; no glue: NS addresses are looked up when needed"
                ));
            }
            b
        }
        ReplyKind::NxDomain(soa) => format!("NXDOMAIN{}", soa_text(soa, pad)),
        ReplyKind::NoData(soa) => format!("NODATA{}", soa_text(soa, pad)),
        ReplyKind::YxDomain(chain) => {
            let mut b = "YXDOMAIN: the DNAME's target name would be too long".to_string();
            push_records(&mut b, pad, chain);
            b
        }
        ReplyKind::Provisional { kind, why } => format!(
            "provisional ({why}): kept in case no other server does better, skipped for now\n{pad};;    {}",
            reply_body(kind, pad)
        ),
        ReplyKind::Lame(why) => format!("lame, skipped: {why}"),
        ReplyKind::Truncated => "truncated, retrying over TCP".to_string(),
        ReplyKind::EdnsRejected => "FORMERR to EDNS, retrying without EDNS".to_string(),
        ReplyKind::RootNs { ns, glue } => {
            let mut b = "root NS set (priming, RFC 8109)".to_string();
            for n in ns {
                b.push_str(&format!("\n{pad}.\tNS\t{n}"));
            }
            for (n, ip) in glue {
                b.push_str(&format!("\n{pad}{n}\taddress\t{ip}"));
            }
            b
        }
    }
}

fn soa_text(soa: &Option<hickory_proto::rr::Record>, pad: &str) -> String {
    soa.as_ref()
        .map_or_else(|| " (no SOA)".to_string(), |s| format!("\n{pad}{s}"))
}

/// One record per line under a hop, indented by `pad`.
fn push_records<'a>(s: &mut String, pad: &str, records: impl IntoIterator<Item = &'a Record>) {
    for r in records {
        s.push_str(&format!("\n{pad}{}", record_text(r)));
    }
}
