//! The operator's subcommands: `config check|defaults`, `ctl`, `completions`, `man`, and
//! the parse that applies the config file to `serve` before it runs.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use super::{Cli, CmdResult, Command};
use crate::config::file::{self, ConfigFile, FileErrors};
use crate::config::service::DEFAULT_CONTROL_SOCKET;
use crate::control::{self, Request};

/// Why the command line could not become a [`Cli`].
#[derive(Debug)]
pub enum ParseFailure {
    /// Syntax (or --help/--version): clap prints it and picks the exit code.
    Clap(clap::Error),
    Config(FileErrors),
}

/// Parses `argv`; for `serve`, applies the config file (`--config`, or
/// [`file::DEFAULT_PATH`] when it exists) under the command line.
pub fn parse_with_config(argv: Vec<OsString>) -> Result<Cli, ParseFailure> {
    let root = Cli::command();
    let matches = root
        .clone()
        .try_get_matches_from(&argv)
        .map_err(ParseFailure::Clap)?;
    if let Some(("serve", sub)) = matches.subcommand() {
        if let Some(path) = file::config_path(sub.get_one::<PathBuf>("config")) {
            let serve = file::serve_command(root.clone());
            let config = ConfigFile::load(&path, &serve).map_err(ParseFailure::Config)?;
            let merged = config.merge(&serve, sub);
            let matches = root
                .try_get_matches_from(merged)
                .map_err(ParseFailure::Clap)?;
            return Cli::from_arg_matches(&matches).map_err(ParseFailure::Clap);
        }
    }
    Cli::from_arg_matches(&matches).map_err(ParseFailure::Clap)
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Check a config file: every error is reported with its line and key.
    Check {
        /// The TOML file to check.
        file: PathBuf,
    },
    /// Print a complete config file: every key, what it does, and its default.
    Defaults,
}

pub fn config(command: ConfigCommand) -> CmdResult {
    let serve = file::serve_command(Cli::command());
    match command {
        ConfigCommand::Defaults => {
            crate::cli::write_stdout(file::defaults(&serve).as_bytes());
            Ok(ExitCode::SUCCESS)
        }
        ConfigCommand::Check { file } => {
            let (config, mut errors) = ConfigFile::load_all(&file, &serve);
            // The valid keys, checked together as `serve` would check them.
            let mut argv = vec![OsString::from("hopdns"), "serve".into()];
            argv.extend(config.entries.iter().flat_map(|e| e.tokens.clone()));
            match Cli::try_parse_from(&argv) {
                Err(e) => errors.push(file::FileError {
                    path: file.clone(),
                    line: 0,
                    key: None,
                    message: e.to_string().lines().next().unwrap_or_default().to_string(),
                }),
                Ok(Cli {
                    command: Command::Serve(args),
                    ..
                }) => {
                    let warnings = super::serve::lan_without_allow(&args)
                        .into_iter()
                        .chain(args.upstream.private_root_warning())
                        .chain(super::serve::web_warnings(&args));
                    for warning in warnings {
                        eprintln!("{}: warning: {warning}", file.display());
                    }
                    for (key, message) in super::serve::check(&args) {
                        let line = config
                            .entries
                            .iter()
                            .find(|e| e.key == key)
                            .map_or(0, |e| e.line);
                        errors.push(file::FileError {
                            path: file.clone(),
                            line,
                            key: Some(key.to_string()),
                            message,
                        });
                    }
                }
                Ok(_) => {}
            }
            if !errors.is_empty() {
                errors.sort_by_key(|e| e.line);
                return Ok(report_errors(&file, &errors));
            }
            let n = config.entries.len();
            outln!(
                "{}: ok ({n} key{})",
                file.display(),
                if n == 1 { "" } else { "s" }
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `hopdns web-password`: the first line of standard input (its line ending removed) as an
/// argon2id PHC string, for `web-password-hash`. Standard input rather than an argument, so
/// the password stays out of the shell history and `ps`.
pub fn web_password() -> CmdResult {
    use std::io::{BufRead, IsTerminal};
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("hopdns: type the dashboard password and press Enter (it is echoed; pipe it in to avoid that):");
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        return Err(
            "no password on standard input: e.g. `printf '%s' \"$PW\" | hopdns web-password`"
                .into(),
        );
    }
    let hash = crate::web::hash_password(password)?;
    outln!("{hash}");
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand, Debug)]
pub enum RulesCommand {
    /// Check a rules file and the lists and RPZ zones it imports: every error with its file
    /// and line, alias loops, and names that more than one rule covers.
    Check {
        /// The rules file (TOML) to check.
        file: PathBuf,
    },
}

pub fn rules(command: RulesCommand) -> CmdResult {
    let RulesCommand::Check { file } = command;
    let loops = crate::redirect::file::alias_loops(&file);
    let loaded = match crate::redirect::file::load_all(&file) {
        Ok(set) if loops.is_empty() => Ok(set),
        Ok(_) => Err(loops),
        Err(mut errors) => {
            errors.extend(loops);
            Err(errors)
        }
    };
    match loaded {
        Ok(set) => {
            for note in crate::redirect::file::overlaps(&file) {
                outln!("note: {note}");
            }
            outln!(
                "{}: ok ({} names, {} rules, {} pools from {} files; {} entries skipped)",
                file.display(),
                set.len(),
                set.rule_count(),
                set.pools.len(),
                set.files.len(),
                set.skipped
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => Ok(report_errors(&file, &errors)),
    }
}

/// Every error of a checked `file` on stderr, then their count; exit status 1 (`config
/// check` and `rules check` alike).
fn report_errors<E: std::fmt::Display>(file: &Path, errors: &[E]) -> ExitCode {
    for e in errors {
        eprintln!("{e}");
    }
    eprintln!(
        "{}: {} error{}",
        file.display(),
        errors.len(),
        if errors.len() == 1 { "" } else { "s" }
    );
    ExitCode::from(1)
}

#[derive(Args, Debug)]
pub struct CtlArgs {
    /// The control socket (default: `control-socket` from the config file, else
    /// /run/hopdns/control.sock).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Config file to take the socket path from (default /etc/hopdns/hopdns.toml if present).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the server's whole answer as one JSON object: `ok`, `text`, and `data` (stats
    /// as an object of counters, health as a list of members, counts for the others).
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(Subcommand, Debug, Clone)]
pub enum CtlCommand {
    /// Counters: replies by RCODE, cache hits and misses, upstream queries, RRL.
    Stats,
    /// Remove every cached entry for NAME (all types).
    Flush { name: String },
    /// Remove NAME and every name below it from the cache.
    FlushZone { name: String },
    /// Empty the cache.
    FlushAll,
    /// Re-read the config file (and the redirect rules when present); also what SIGHUP does.
    Reload,
    /// Write the cache to FILE (written by the server process, as its user).
    DumpCache { file: PathBuf },
    /// Add the entries of FILE to the cache; expired entries are skipped.
    LoadCache { file: PathBuf },
    /// The state of every redirect pool member.
    Health,
    /// Blocking rules (block, sinkhole, RPZ NODATA and DROP) answer as if absent for
    /// MINUTES, then blocking resumes by itself; 0 resumes at once (Pi-hole's `pihole
    /// disable 5m`). Overrides, aliases, local data and pools still apply.
    PauseBlocking { minutes: u64 },
}

impl CtlCommand {
    fn request(&self) -> Request {
        let (command, arg) = match self {
            CtlCommand::Stats => ("stats", None),
            CtlCommand::Flush { name } => ("flush", Some(name.clone())),
            CtlCommand::FlushZone { name } => ("flush-zone", Some(name.clone())),
            CtlCommand::FlushAll => ("flush-all", None),
            CtlCommand::Reload => ("reload", None),
            CtlCommand::DumpCache { file } => ("dump-cache", Some(absolute(file))),
            CtlCommand::LoadCache { file } => ("load-cache", Some(absolute(file))),
            CtlCommand::Health => ("health", None),
            CtlCommand::PauseBlocking { minutes } => ("pause-blocking", Some(minutes.to_string())),
        };
        Request {
            command: command.to_string(),
            arg,
        }
    }
}

/// The server runs elsewhere: send it absolute paths.
fn absolute(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// The socket `ctl` talks to: `--socket`, else the config file's `control-socket`, else the
/// default.
fn socket_path(args: &CtlArgs) -> Result<PathBuf, FileErrors> {
    if let Some(socket) = &args.socket {
        return Ok(socket.clone());
    }
    if let Some(path) = file::config_path(args.config.as_ref()) {
        let serve = file::serve_command(Cli::command());
        let config = ConfigFile::load(&path, &serve)?;
        if let Some(entry) = config.entries.iter().find(|e| e.id == "control_socket") {
            if let Some(token) = entry.tokens.first().and_then(|t| t.to_str()) {
                return Ok(PathBuf::from(token.trim_start_matches("--control-socket=")));
            }
        }
    }
    Ok(PathBuf::from(DEFAULT_CONTROL_SOCKET))
}

pub fn ctl(args: CtlArgs) -> CmdResult {
    let socket = socket_path(&args)?;
    let response = control::request(&socket, &args.command.request())?;
    if args.json {
        // The whole answer, on standard output either way: {"ok", "text", "data"}.
        outln!("{}", serde_json::to_string(&response)?);
    } else if response.ok {
        outln!("{}", response.text);
    } else {
        eprintln!("hopdns ctl: {}", response.text);
    }
    Ok(if response.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    pub shell: clap_complete::Shell,
}

pub fn completions(args: CompletionsArgs) -> CmdResult {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "hopdns", &mut script);
    crate::cli::write_stdout(&script);
    Ok(ExitCode::SUCCESS)
}

pub use super::man::{man, man_pages, ManArgs};
