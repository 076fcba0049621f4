//! `hopdns man`: the manual pages. Section 1 is generated from the command-line definitions
//! (clap_mangen) with the sections clap does not know added: EXIT STATUS, SIGNALS, FILES,
//! SEE ALSO. Section 5 describes the two file formats: hopdns.toml(5), generated from the
//! same definitions (every key is a flag of `serve`), and hopdns-rules(5). The pages are
//! checked in under docs/ and a test keeps them current.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory};

use super::{Cli, CmdResult};

#[derive(Args, Debug)]
pub struct ManArgs {
    /// The page to print: a subcommand (`serve` for hopdns-serve(1)), `hopdns.toml` for the
    /// config file format (5), `hopdns-rules` for the rules file format (5). Default:
    /// hopdns(1).
    pub page: Option<String>,
    /// Write every page (hopdns.1, hopdns-SUBCOMMAND.1, hopdns.toml.5, hopdns-rules.5) into
    /// DIR instead.
    #[arg(long, value_name = "DIR", conflicts_with = "page")]
    pub out_dir: Option<PathBuf>,
}

/// Roff text for a plain string: backslashes doubled, hyphens as `\-`, and a line that
/// would start with a control character protected.
fn esc(s: &str) -> String {
    let body = s.replace('\\', "\\e").replace('-', "\\-");
    if body.starts_with('.') || body.starts_with('\'') {
        format!("\\&{body}")
    } else {
        body
    }
}

/// `.SH` sections clap_mangen does not write, for the page of `command` ("" for hopdns).
fn extra_sections(command: &str) -> String {
    let mut s = String::new();
    let exit: &[(&str, &str)] = match command {
        "" => &[
            ("0", "Success."),
            ("1", "The command ran and found a problem: trace got no answer (SERVFAIL), config check or rules check found errors, the server refused a ctl command."),
            ("2", "The command could not run: bad arguments or config file, an address that cannot be bound, a file that cannot be used, a server that cannot be reached. The message names the problem and the fix."),
        ],
        "serve" => &[
            ("0", "Stopped by SIGTERM or SIGINT after the drain."),
            ("2", "Did not start: bad arguments or config file (every error is named), an address that cannot be bound (the dashboard's \\-\\-web included), a cache file that is not a hopdns cache file or whose directory is missing, an open allow-list without \\-\\-open\\-resolver, a \\-\\-web\\-password\\-hash that is not argon2id."),
        ],
        "trace" => &[
            ("0", "An answer: NOERROR, NXDOMAIN or NODATA."),
            ("1", "No answer: SERVFAIL, or dropped by a rule."),
            ("2", "Bad arguments."),
        ],
        "config" | "rules" => &[
            ("0", "The file is clean (check), or was printed (defaults)."),
            ("1", "Errors were found; each is printed with its file, line and key."),
            ("2", "Bad arguments."),
        ],
        "ctl" => &[
            ("0", "The server did the command."),
            ("1", "The server refused the command (the reason is printed)."),
            ("2", "The server could not be reached."),
        ],
        "web-password" => &[
            ("0", "The hash was printed."),
            ("2", "No password on standard input, or no random bytes from the OS."),
        ],
        _ => &[("0", "Success."), ("2", "Bad arguments, or a failure (named).")],
    };
    s.push_str(".SH \"EXIT STATUS\"\n");
    for (code, what) in exit {
        // `what` may hold roff escapes already (\-\-flag): escape only what is plain.
        let what = if what.contains("\\-") {
            what.to_string()
        } else {
            esc(what)
        };
        s.push_str(&format!(".TP\n{code}\n{what}\n"));
    }
    if matches!(command, "" | "serve") {
        s.push_str(
            ".SH SIGNALS\n\
             .TP\nSIGTERM, SIGINT\n\
             Stop: the listeners close at once, queries already received are answered for up \
             to \\-\\-drain\\-timeout seconds, the cache is saved (\\-\\-cache\\-file), then \
             the process exits 0. Under systemd, STOPPING=1 is sent first.\n\
             .TP\nSIGHUP\n\
             Reload, as hopdns ctl reload: the config file's log level, the redirect rules \
             (a broken file keeps the old rules), the query log file (reopened, for \
             logrotate) and the DoT/DoH certificate and key (\\-\\-tls\\-cert, \\-\\-tls\\-key: \
             new connections get them, open ones are kept; a broken pair keeps the old), and \
             the dashboard's (\\-\\-web\\-tls\\-cert, \\-\\-web\\-tls\\-key). Keys that need a restart are named. Under systemd, RELOADING=1 and \
             then READY=1 are sent.\n",
        );
    }
    let files: &[(&str, &str)] = match command {
        "" | "serve" => &[
            ("/etc/hopdns/hopdns.toml", "The config file, read when it exists and no \\-\\-config is given; see hopdns.toml(5)."),
            ("/run/hopdns/control.sock", "The usual \\-\\-control\\-socket (owner-only), where hopdns ctl looks by default."),
            ("/var/lib/hopdns/cache", "The usual \\-\\-cache\\-file: zone-file text, owner-only, replaced atomically."),
            ("rules file", "Given by \\-\\-rules; see hopdns-rules(5)."),
            ("dist/hopdns.service", "The systemd unit shipped with the source (Type=notify, hardened)."),
        ],
        "ctl" => &[
            ("/run/hopdns/control.sock", "The socket used when neither \\-\\-socket nor the config file's control-socket says otherwise."),
            ("/etc/hopdns/hopdns.toml", "Read for control-socket when it exists."),
        ],
        "config" => &[("/etc/hopdns/hopdns.toml", "The usual place of the file; see hopdns.toml(5).")],
        "rules" => &[("FILE", "A rules file; see hopdns-rules(5).")],
        _ => &[],
    };
    if !files.is_empty() {
        s.push_str(".SH FILES\n");
        for (file, what) in files {
            let what = if what.contains("\\-") {
                what.to_string()
            } else {
                esc(what)
            };
            s.push_str(&format!(".TP\n\\fI{}\\fR\n{what}\n", esc(file)));
        }
    }
    s.push_str(
        ".SH \"SEE ALSO\"\n\\fBhopdns\\fR(1), \\fBhopdns\\-serve\\fR(1), \\fBhopdns\\-ctl\\fR(1), \
         \\fBhopdns.toml\\fR(5), \\fBhopdns\\-rules\\fR(5)\n",
    );
    s
}

/// The subcommands of a nested command (ctl, config, rules) as `hopdns ctl stats` lines:
/// they have no pages of their own.
fn nested_subcommands(cmd: &clap::Command, name: &str) -> String {
    let mut s = String::from(".SH COMMANDS\n");
    for sub in cmd.get_subcommands().filter(|c| c.get_name() != "help") {
        let args: Vec<String> = sub
            .get_positionals()
            .map(|a| {
                a.get_value_names()
                    .and_then(|v| v.first())
                    .map_or_else(|| a.get_id().to_string(), |v| v.to_string())
            })
            .collect();
        s.push_str(&format!(
            ".TP\n\\fB{} {}\\fR {}\n{}\n",
            esc(name),
            esc(sub.get_name()),
            esc(&args.join(" ")),
            esc(&sub.get_about().map(|a| a.to_string()).unwrap_or_default())
        ));
    }
    s
}

fn render_section_1(cmd: clap::Command, page: &str, command: &str) -> std::io::Result<Vec<u8>> {
    let man = clap_mangen::Man::new(cmd.clone());
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut out)?;
    }
    let has_subs = cmd.get_subcommands().any(|c| c.get_name() != "help");
    if has_subs {
        if command.is_empty() {
            // hopdns(1): every subcommand has its own page.
            let mut s = String::from(".SH SUBCOMMANDS\n");
            for sub in cmd.get_subcommands().filter(|c| c.get_name() != "help") {
                s.push_str(&format!(
                    ".TP\n\\fBhopdns\\-{}\\fR(1)\n{}\n",
                    esc(sub.get_name()),
                    esc(&sub.get_about().map(|a| a.to_string()).unwrap_or_default())
                ));
            }
            out.extend_from_slice(s.as_bytes());
        } else {
            out.extend_from_slice(nested_subcommands(&cmd, &page.replace('-', " ")).as_bytes());
        }
    }
    out.extend_from_slice(extra_sections(command).as_bytes());
    if cmd.get_version().is_some() {
        man.render_version_section(&mut out)?;
    }
    Ok(out)
}

/// hopdns.toml(5), from the flags of `serve`.
fn config_page() -> Vec<u8> {
    let serve = crate::config::file::serve_command(Cli::command());
    let version = env!("CARGO_PKG_VERSION");
    let mut s = format!(
        ".TH hopdns.toml 5 \"hopdns.toml {version}\"\n\
         .SH NAME\nhopdns.toml \\- configuration file of hopdns serve\n\
         .SH SYNOPSIS\n\\fI/etc/hopdns/hopdns.toml\\fR, or the file given with \\fB\\-\\-config\\fR\n\
         .SH DESCRIPTION\n\
         A TOML file with one \\fBkey = value\\fR per setting and no sections. Every key is a \
         long flag of \\fBhopdns serve\\fR without its dashes (\\fB\\-\\-max\\-tcp\\-clients 50\\fR \
         is \\fBmax\\-tcp\\-clients = 50\\fR). Switches take true or false; repeatable flags \
         take a list or one value; the others one value. A flag on the command line \
         overrides the key (a list is replaced, not merged).\n\
         .PP\nUnknown keys, bad values, lists where one value is wanted, sections, and values \
         that do not fit together are errors: \\fBhopdns serve\\fR refuses to start on them, \
         and \\fBhopdns config check FILE\\fR reports every one with its line and key. \
         \\fBhopdns config defaults\\fR prints a complete file with every key and its default.\n\
         .SH KEYS\n"
    );
    for arg in serve.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if matches!(long, "config" | "help" | "version") || arg.is_hide_set() {
            continue;
        }
        let value = if !arg.get_action().takes_values() {
            "true | false".to_string()
        } else {
            let name = arg
                .get_value_names()
                .and_then(|v| v.first())
                .map_or_else(|| "VALUE".to_string(), |v| v.to_string());
            if matches!(arg.get_action(), clap::ArgAction::Append) {
                format!("[\"{name}\", ...]")
            } else {
                name
            }
        };
        let default: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        let help = arg
            .get_long_help()
            .or_else(|| arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default()
            .replace('\n', " ");
        let help = if help.ends_with('.') || help.is_empty() {
            help
        } else {
            format!("{help}.")
        };
        s.push_str(&format!(
            ".TP\n\\fB{}\\fR = {}\n{}",
            esc(long),
            esc(&value),
            esc(&help)
        ));
        if !default.is_empty() {
            s.push_str(&format!(" Default: {}.", esc(&default.join(", "))));
        }
        s.push('\n');
    }
    s.push_str(
        ".SH EXAMPLE\n.nf\nlisten = [\"192.168.1.2:53\", \"127.0.0.53:53\"]\n\
         allow = [\"192.168.1.0/24\"]\nfreebind = true\nrrl\\-rate = 100\n\
         control\\-socket = \"/run/hopdns/control.sock\"\n\
         cache\\-file = \"/var/lib/hopdns/cache\"\nmetrics = \"127.0.0.1:9153\"\n.fi\n\
         .SH FILES\n.TP\n\\fI/etc/hopdns/hopdns.toml\\fR\nRead by \\fBhopdns serve\\fR when \
         it exists and no \\-\\-config is given.\n\
         .SH \"SEE ALSO\"\n\\fBhopdns\\-serve\\fR(1), \\fBhopdns\\-config\\fR(1), \
         \\fBhopdns\\-rules\\fR(5)\n",
    );
    s.into_bytes()
}

/// hopdns-rules(5): the redirect rules format (docs/redirection.md has the long version).
const RULES_PAGE: &str = include_str!("hopdns-rules.5");

/// Every man page: (file name, roff text).
pub fn man_pages() -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut root = Cli::command();
    root.build();
    let mut pages = vec![(
        "hopdns.1".to_string(),
        render_section_1(root.clone(), "hopdns", "")?,
    )];
    for sub in root.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let name = format!("hopdns-{}", sub.get_name());
        let cmd = sub.clone().name(name.clone()).bin_name(name.clone());
        pages.push((
            format!("{name}.1"),
            render_section_1(cmd, &name, sub.get_name())?,
        ));
    }
    pages.push(("hopdns.toml.5".to_string(), config_page()));
    pages.push((
        "hopdns-rules.5".to_string(),
        RULES_PAGE
            .replace("@VERSION@", env!("CARGO_PKG_VERSION"))
            .into_bytes(),
    ));
    Ok(pages)
}

pub fn man(args: ManArgs) -> CmdResult {
    let pages = man_pages()?;
    if let Some(dir) = args.out_dir {
        for (name, text) in &pages {
            std::fs::write(dir.join(name), text)?;
        }
        outln!("wrote {} pages to {}", pages.len(), dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    let wanted = match args.page.as_deref() {
        None => "hopdns.1".to_string(),
        Some("hopdns.toml" | "hopdns.toml.5" | "toml") => "hopdns.toml.5".to_string(),
        Some("hopdns-rules" | "hopdns-rules.5") => "hopdns-rules.5".to_string(),
        Some(page) => {
            let page = page.trim_start_matches("hopdns-").trim_end_matches(".1");
            format!("hopdns-{page}.1")
        }
    };
    let Some((_, text)) = pages.iter().find(|(name, _)| *name == wanted) else {
        let names: Vec<String> = pages
            .iter()
            .filter_map(|(n, _)| n.strip_prefix("hopdns-")?.strip_suffix(".1"))
            .map(str::to_string)
            .collect();
        return Err(format!(
            "no man page {:?}: give a subcommand ({}), `hopdns.toml` or `hopdns-rules`, or \
             nothing for hopdns(1)",
            args.page.unwrap_or_default(),
            names.join(", ")
        )
        .into());
    };
    crate::cli::write_stdout(text);
    Ok(ExitCode::SUCCESS)
}
