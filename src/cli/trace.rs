//! `hopdns trace NAME [TYPE]`: one resolution from a cold cache, every hop printed.

use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;

use clap::Args;
use hickory_proto::rr::{Name, RecordType};

use super::{runtime, CmdResult};
use crate::config::UpstreamArgs;
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
    let rt = runtime(1)?;
    let outcome = rt.block_on(async {
        let resolver = Resolver::new(config, Arc::new(transport));
        let stdout = std::io::stdout();
        let mut sink: Box<dyn TraceSink> = if args.json {
            Box::new(JsonPrinter::new(stdout))
        } else {
            Box::new(TextPrinter::new(stdout))
        };
        if !args.upstream.no_prime {
            resolver.prime(Some(sink.as_mut())).await;
        }
        resolver
            .resolve_traced(&Question::new(name, qtype), Some(sink.as_mut()))
            .await
    });
    Ok(match outcome {
        Outcome::ServFail(_) => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    })
}
