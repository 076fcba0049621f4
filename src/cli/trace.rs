//! `hopdns trace NAME [TYPE]`: one resolution from a cold cache, every hop printed.

use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;

use clap::Args;
use hickory_proto::rr::{Name, RecordType};

use super::{runtime, CmdResult};
use crate::config::UpstreamArgs;
use crate::redirect::Redirector;
use crate::resolver::{Outcome, Question, Resolver};
use crate::trace::{JsonPrinter, TextPrinter, TraceSink};

#[derive(Args, Debug, Clone)]
pub struct TraceArgs {
    /// The name to resolve.
    pub name: String,
    /// The record type (A, AAAA, MX, TXT, NS, ...).
    #[arg(default_value = "A")]
    pub qtype: String,
    /// Print one JSON object per hop instead of text.
    #[arg(long)]
    pub json: bool,
    /// Apply these redirect rules (as `serve --rules`); a matching rule is shown as its own
    /// hop, with pool members checked once first so their health is real.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<std::path::PathBuf>,
    /// Show the DNSSEC checks: per zone the DS -> DNSKEY -> RRSIG steps (key tags,
    /// algorithms, validity windows, what each proved) and the final state with its EDE.
    #[arg(long)]
    pub dnssec: bool,
    /// Client address the rules see (for rules with `clients`).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    pub client: std::net::IpAddr,
    #[command(flatten)]
    pub upstream: UpstreamArgs,
}

/// Parses a name given on the command line, with the fix in the error.
pub fn parse_name(text: &str) -> Result<Name, String> {
    let mut name = Name::from_ascii(text).map_err(|e| {
        format!("{text:?} is not a valid domain name ({e}); example: www.example.com")
    })?;
    name.set_fqdn(true);
    Ok(name)
}

/// Parses a record type given on the command line, with the fix in the error.
pub fn parse_type(text: &str) -> Result<RecordType, String> {
    RecordType::from_str(&text.to_ascii_uppercase()).map_err(|_| {
        format!("{text:?} is not a record type; use one like A, AAAA, MX, TXT, NS, SOA, CNAME")
    })
}

pub fn run(args: TraceArgs) -> CmdResult {
    let name = parse_name(&args.name)?;
    let qtype = parse_type(&args.qtype)?;
    let (config, transport) = args.upstream.build()?;
    if let Some(warning) = args.upstream.private_root_warning() {
        eprintln!("hopdns: warning: {warning}");
    }
    // Forwarding everything: the root is never asked, so not primed either.
    let prime = !args.upstream.no_prime && !config.settings.zones.forwards_everything();
    let rt = runtime(1)?;
    let outcome = rt.block_on(async {
        let resolver = Arc::new(Resolver::new(config, Arc::new(transport)));
        let redirect = match &args.rules {
            Some(path) => {
                let r = Redirector::new(resolver.clone());
                r.install(crate::redirect::file::load(path)?);
                r.check_health_now().await;
                Some(r)
            }
            None => None,
        };
        let stdout = std::io::stdout();
        let mut printer: Box<dyn TraceSink> = if args.json {
            Box::new(JsonPrinter::new(stdout))
        } else {
            Box::new(TextPrinter::new(stdout))
        };
        let mut filtered = crate::trace::WithoutDnssec(printer.as_mut());
        let sink: &mut dyn TraceSink = if args.dnssec {
            printer.as_mut()
        } else {
            &mut filtered
        };
        if prime {
            resolver.prime(Some(&mut *sink)).await;
        }
        let question = Question::new(name, qtype);
        let outcome = match &redirect {
            Some(r) => r.trace(&resolver, &question, args.client, &mut *sink).await,
            None => resolver.resolve_traced(&question, Some(&mut *sink)).await,
        };
        Ok::<_, crate::redirect::RedirectError>(outcome)
    })?;
    Ok(match outcome {
        Outcome::ServFail(_) | Outcome::Drop => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    })
}
