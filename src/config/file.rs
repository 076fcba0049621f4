//! The config file: one TOML table whose keys are the long flags of `hopdns serve`, without
//! the dashes (`--max-tcp-clients 50` is `max-tcp-clients = 50`).
//!
//! The schema *is* the clap definition of `serve`: this module reads the table, turns each
//! key into the command-line tokens it stands for and lets clap check them. So:
//!
//! * **Adding a setting is a one-place change**: add the flag (with its doc comment and
//!   default) to a clap `Args` struct of `serve`. It is then a config key, it is checked by
//!   `hopdns config check`, printed by `hopdns config defaults`, listed in the man page and
//!   the completions, and the command line overrides it. Nothing here needs to change.
//! * Unknown keys are errors (as serde's `deny_unknown_fields` would make them), with the
//!   line and the nearest known key.
//! * Values: a switch (`--no-prime`) takes `true`/`false`; a flag taking one value takes a
//!   string, integer, float or boolean (passed to clap as text, so `threads = 4` and
//!   `threads = "4"` are the same); a repeatable flag (`--listen`, `--allow`) takes a list or
//!   one value. Tables (sections) are not used.
//! * Precedence: a flag given on the command line replaces the key from the file (lists are
//!   replaced, not merged); every other key applies; clap's defaults fill the rest.
//!
//! Errors carry the file, line and key ([`FileError`]): clap's message says what is wrong
//! with the value, the TOML parser's span gives the line.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};
use toml::de::{DeTable, DeValue};

/// Where `serve` looks for its config file when `--config` is not given (used only if it
/// exists).
pub const DEFAULT_PATH: &str = "/etc/hopdns/hopdns.toml";

/// The config file to read: the one given with `--config`, else [`DEFAULT_PATH`] when it
/// exists, else none.
pub fn config_path(explicit: Option<&PathBuf>) -> Option<PathBuf> {
    explicit
        .cloned()
        .or_else(|| Some(PathBuf::from(DEFAULT_PATH)).filter(|p| p.exists()))
}

/// Flags that cannot be keys: the file cannot name itself, and help/version are not settings.
const NOT_KEYS: [&str; 3] = ["config", "help", "version"];

/// One problem in a config file, located.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileError {
    pub path: PathBuf,
    /// 1-based line; 0 when the problem has no single place (a file that cannot be read).
    pub line: usize,
    /// The key concerned, when there is one.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        match &self.key {
            Some(key) => write!(f, ": key `{key}`: {}", self.message),
            None => write!(f, ": {}", self.message),
        }
    }
}

/// Every problem found in one file (at least one).
#[derive(Debug, thiserror::Error)]
pub struct FileErrors(pub Vec<FileError>);

impl fmt::Display for FileErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "{n} error{} in the config file:",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            write!(f, "\n  {e}")?;
        }
        write!(f, "\n(check it with `hopdns config check FILE`; `hopdns config defaults` lists every key)")
    }
}

/// One key of the file as the command-line tokens it stands for.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The clap id of the flag (its field name).
    pub id: String,
    pub key: String,
    pub line: usize,
    pub tokens: Vec<OsString>,
}

/// A parsed and checked config file.
#[derive(Clone, Debug)]
pub struct ConfigFile {
    pub path: PathBuf,
    pub entries: Vec<Entry>,
}

impl ConfigFile {
    /// Reads and checks `path` against `serve` (a built subcommand: see [`serve_command`]).
    pub fn load(path: &Path, serve: &Command) -> Result<ConfigFile, FileErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            FileErrors(vec![FileError {
                path: path.to_path_buf(),
                line: 0,
                key: None,
                message: format!("cannot read it: {e}"),
            }])
        })?;
        Self::parse(path, &text, serve)
    }

    /// Checks `text` (the contents of `path`) and collects every error, not just the first.
    pub fn parse(path: &Path, text: &str, serve: &Command) -> Result<ConfigFile, FileErrors> {
        let (config, errors) = Self::parse_all(path, text, serve);
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(FileErrors(errors))
        }
    }

    /// [`ConfigFile::load`] that keeps the keys that are valid beside the errors, so
    /// `config check` can go on to check those keys together.
    pub fn load_all(path: &Path, serve: &Command) -> (ConfigFile, Vec<FileError>) {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse_all(path, &text, serve),
            Err(e) => (
                ConfigFile {
                    path: path.to_path_buf(),
                    entries: Vec::new(),
                },
                vec![FileError {
                    path: path.to_path_buf(),
                    line: 0,
                    key: None,
                    message: format!("cannot read it: {e}"),
                }],
            ),
        }
    }

    /// [`ConfigFile::parse`], returning the valid keys and every error (sorted by line).
    pub fn parse_all(path: &Path, text: &str, serve: &Command) -> (ConfigFile, Vec<FileError>) {
        let at = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let err = |line: usize, key: Option<&str>, message: String| FileError {
            path: path.to_path_buf(),
            line,
            key: key.map(str::to_string),
            message,
        };
        let (table, syntax) = DeTable::parse_recoverable(text);
        let mut errors: Vec<FileError> = syntax
            .iter()
            .map(|e| {
                let line = e.span().map_or(0, |s| at(s.start));
                err(line, None, e.message().trim().to_string())
            })
            .collect();
        let mut entries = Vec::new();
        for (key, value) in table.get_ref().iter() {
            let name = key.get_ref().as_ref();
            let line = at(key.span().start);
            let arg = serve
                .get_arguments()
                .find(|a| a.get_long() == Some(name) && !NOT_KEYS.contains(&name));
            let Some(arg) = arg else {
                let hint = nearest_key(name, serve)
                    .map(|k| format!(" (did you mean `{k}`?)"))
                    .unwrap_or_default();
                let message = if NOT_KEYS.contains(&name) {
                    format!("`{name}` cannot be set in the config file")
                } else if matches!(value.get_ref(), DeValue::Table(_)) {
                    "sections are not used: write every key at the top level \
                     (`hopdns config defaults` lists them)"
                        .to_string()
                } else {
                    format!("unknown key{hint}; `hopdns config defaults` lists every key")
                };
                errors.push(err(line, Some(name), message));
                continue;
            };
            let tokens = match tokens_for(arg, name, value.get_ref()) {
                Ok(tokens) => tokens,
                Err(message) => {
                    errors.push(err(line, Some(name), message));
                    continue;
                }
            };
            // Let clap judge the value exactly as it judges the flag.
            let argv = std::iter::once(OsString::from("hopdns-serve")).chain(tokens.clone());
            if let Err(e) = serve.clone().try_get_matches_from(argv) {
                errors.push(err(line, Some(name), clap_message(&e)));
                continue;
            }
            entries.push(Entry {
                id: arg.get_id().to_string(),
                key: name.to_string(),
                line,
                tokens,
            });
        }
        errors.sort_by_key(|e| e.line);
        (
            ConfigFile {
                path: path.to_path_buf(),
                entries,
            },
            errors,
        )
    }

    /// The argument list for `serve` with this file applied under the command line:
    /// `["hopdns", "serve", ...]`, where every flag given on the command line (`cli`, the
    /// matches of `serve`) wins over the file's key for it.
    pub fn merge(&self, serve: &Command, cli: &ArgMatches) -> Vec<OsString> {
        let mut argv: Vec<OsString> = vec!["hopdns".into(), "serve".into()];
        for arg in serve.get_arguments() {
            let id = arg.get_id().as_str();
            if arg.get_long().is_none() || NOT_KEYS.contains(&id) {
                continue;
            }
            if cli.value_source(id) == Some(ValueSource::CommandLine) {
                argv.extend(cli_tokens(arg, cli));
            } else if let Some(entry) = self.entries.iter().find(|e| e.id == id) {
                argv.extend(entry.tokens.iter().cloned());
            }
        }
        // Keep the path of the file that was applied, so `reload` can read it again.
        argv.push(format!("--config={}", self.path.display()).into());
        argv
    }
}

/// The `serve` subcommand of `root`, built (global flags propagated into it).
pub fn serve_command(mut root: Command) -> Command {
    root.build();
    root.find_subcommand("serve")
        .cloned()
        .expect("the CLI has a serve subcommand")
}

/// The tokens a flag was given with on the command line.
fn cli_tokens(arg: &Arg, cli: &ArgMatches) -> Vec<OsString> {
    let id = arg.get_id().as_str();
    let long = arg.get_long().unwrap_or(id);
    match arg.get_action() {
        ArgAction::SetTrue | ArgAction::SetFalse => vec![format!("--{long}").into()],
        ArgAction::Count => {
            let n = cli.get_count(id);
            (0..n).map(|_| format!("--{long}").into()).collect()
        }
        _ => cli
            .get_raw(id)
            .into_iter()
            .flatten()
            .map(|raw| {
                let mut token = OsString::from(format!("--{long}="));
                token.push(raw);
                token
            })
            .collect(),
    }
}

/// The command-line tokens for `key = value`, or why the value's shape is wrong.
fn tokens_for(arg: &Arg, key: &str, value: &DeValue<'_>) -> Result<Vec<OsString>, String> {
    let flag = |v: &str| OsString::from(format!("--{key}={v}"));
    if let (Some(kind), DeValue::Array(items)) = (ZoneTable::of(key), value) {
        if items
            .iter()
            .any(|i| matches!(i.get_ref(), DeValue::Table(_)))
        {
            return kind.tokens(items);
        }
    }
    match arg.get_action() {
        ArgAction::SetTrue | ArgAction::SetFalse => match value {
            DeValue::Boolean(true) => Ok(vec![format!("--{key}").into()]),
            DeValue::Boolean(false) => Ok(Vec::new()),
            _ => Err(format!(
                "is a switch: write `{key} = true` or `{key} = false`"
            )),
        },
        ArgAction::Count => match value {
            DeValue::Integer(i) => {
                let n = scalar(value)?
                    .parse::<u8>()
                    .map_err(|_| format!("expects a small count, not {}", i.as_str()))?;
                Ok((0..n).map(|_| format!("--{key}").into()).collect())
            }
            _ => Err("expects a count (an integer)".to_string()),
        },
        ArgAction::Append => match value {
            DeValue::Array(items) => items
                .iter()
                .map(|item| scalar(item.get_ref()).map(|v| flag(&v)))
                .collect(),
            other => Ok(vec![flag(&scalar(other)?)]),
        },
        _ => match value {
            DeValue::Array(_) => {
                Err("takes one value, not a list (only repeatable flags take lists)".to_string())
            }
            other => Ok(vec![flag(&scalar(other)?)]),
        },
    }
}

/// `[[forward]]` and `[[stub]]`: the one place the file has tables, because a zone with
/// several servers and options reads better so. Each table stands for the flag's value
/// (`--forward ZONE=SERVER,...`, plus `--forward-first ZONE` for `first = true`).
#[derive(Clone, Copy)]
enum ZoneTable {
    Forward,
    Stub,
}

impl ZoneTable {
    fn of(key: &str) -> Option<Self> {
        match key {
            "forward" => Some(ZoneTable::Forward),
            "stub" => Some(ZoneTable::Stub),
            _ => None,
        }
    }

    fn tokens(self, items: &[toml::Spanned<DeValue<'_>>]) -> Result<Vec<OsString>, String> {
        let key = match self {
            ZoneTable::Forward => "forward",
            ZoneTable::Stub => "stub",
        };
        let mut out = Vec::new();
        for item in items {
            let DeValue::Table(table) = item.get_ref() else {
                return Err(format!(
                    "mixes tables and values: use [[{key}]] tables with zone and servers"
                ));
            };
            let (mut zone, mut servers, mut first) = (None, Vec::new(), false);
            for (k, v) in table.iter() {
                match (k.get_ref().as_ref(), v.get_ref()) {
                    ("zone", DeValue::String(z)) => zone = Some(z.to_string()),
                    ("servers", DeValue::Array(list)) => {
                        for s in list {
                            servers.push(scalar(s.get_ref())?);
                        }
                    }
                    ("servers", DeValue::String(one)) => servers.push(one.to_string()),
                    ("first", DeValue::Boolean(b)) if matches!(self, ZoneTable::Forward) => {
                        first = *b
                    }
                    (other, _) => {
                        let keys = match self {
                            ZoneTable::Forward => {
                                "zone (a string), servers (a list), first (true/false)"
                            }
                            ZoneTable::Stub => "zone (a string), servers (a list)",
                        };
                        return Err(format!("[[{key}]]: `{other}` is not one of {keys}"));
                    }
                }
            }
            let zone = zone.ok_or_else(|| format!("[[{key}]] without zone = \"...\""))?;
            out.push(format!("--{key}={zone}={}", servers.join(",")).into());
            if first {
                out.push(format!("--forward-first={zone}").into());
            }
        }
        Ok(out)
    }
}

/// A TOML scalar as the text clap parses.
fn scalar(value: &DeValue<'_>) -> Result<String, String> {
    match value {
        DeValue::String(s) => Ok(s.to_string()),
        DeValue::Integer(i) => {
            let digits = i.as_str().replace('_', "");
            i64::from_str_radix(&digits, i.radix())
                .map(|n| n.to_string())
                .map_err(|e| format!("integer {}: {e}", i.as_str()))
        }
        DeValue::Float(f) => Ok(f.as_str().replace('_', "")),
        DeValue::Boolean(b) => Ok(b.to_string()),
        DeValue::Datetime(d) => Ok(d.to_string()),
        DeValue::Array(_) => Err("lists cannot be nested".to_string()),
        DeValue::Table(_) => Err(
            "sections and inline tables are not used: write `key = value` at the top level"
                .to_string(),
        ),
    }
}

/// The first line of a clap error, without clap's "error: " prefix or its usage hint.
fn clap_message(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or_default();
    first.trim_start_matches("error: ").trim().to_string()
}

/// The known key closest to `name` (edit distance at most 3), for "did you mean".
fn nearest_key(name: &str, serve: &Command) -> Option<String> {
    serve
        .get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|k| !NOT_KEYS.contains(k))
        .map(|k| (edit_distance(name, k), k))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, k)| k.to_string())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// A complete config file with every key, its help and its default: `hopdns config defaults`.
/// Keys without a default are commented out.
pub fn defaults(serve: &Command) -> String {
    let mut out = String::from(
        "# hopdns configuration (TOML). Every key is the long flag of `hopdns serve` without\n\
         # its dashes; a flag given on the command line overrides the key. Check a file with\n\
         # `hopdns config check FILE`. Default location: /etc/hopdns/hopdns.toml.\n",
    );
    for arg in serve.get_arguments() {
        let Some(key) = arg.get_long() else { continue };
        if NOT_KEYS.contains(&key) {
            continue;
        }
        out.push('\n');
        let help = arg
            .get_long_help()
            .or_else(|| arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        for line in help.lines() {
            for wrapped in wrap(line, 88) {
                out.push_str(format!("# {wrapped}").trim_end());
                out.push('\n');
            }
        }
        let possible: Vec<String> = arg
            .get_possible_values()
            .iter()
            .filter(|p| !p.is_hide_set())
            .map(|p| p.get_name().to_string())
            .collect();
        let switch = matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse);
        if !possible.is_empty() && !switch {
            out.push_str(&format!("# One of: {}.\n", possible.join(", ")));
        }
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| toml_scalar(&v.to_string_lossy()))
            .collect();
        let placeholder = arg
            .get_value_names()
            .and_then(|n| n.first())
            .map_or_else(|| "VALUE".to_string(), |n| n.to_string());
        let repeatable = matches!(arg.get_action(), ArgAction::Append);
        match (defaults.as_slice(), repeatable) {
            ([], true) => out.push_str(&format!("# {key} = [\"{placeholder}\"]\n")),
            ([], false) => out.push_str(&format!("# {key} = \"{placeholder}\"\n")),
            (values, true) => out.push_str(&format!("{key} = [{}]\n", values.join(", "))),
            ([value, ..], false) => out.push_str(&format!("{key} = {value}\n")),
        }
    }
    out
}

/// `text` cut at spaces into lines of at most `width` characters (longer words stay whole).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let line = lines.last_mut().expect("never empty");
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(word.to_string());
        } else {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
    }
    lines
}

/// A default value as TOML: integers and booleans bare, anything else a quoted string.
fn toml_scalar(text: &str) -> String {
    if text == "true" || text == "false" || text.parse::<i64>().is_ok() {
        text.to_string()
    } else {
        toml::Value::String(text.to_string()).to_string()
    }
}
