//! The rules file (TOML): its schema and its checks. Every problem is reported with the
//! file, the line and what to change. See `docs/redirection.md` for the format.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::Name;
use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use super::health::{CheckKind, HealthSpec};
use super::import;
use super::names::{self, Scope};
use super::pool::{AllDown, PolicyKind, Pool};
use super::rules::{Action, Builder, Rule, RuleSet};
use super::RedirectError;

/// Default TTL of override, alias and block answers.
pub const DEFAULT_TTL: u32 = 300;
/// Default TTL of pool answers: short, so clients come back soon after a member fails.
pub const DEFAULT_POOL_TTL: u32 = 5;
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
pub const DEFAULT_RISE: u32 = 2;
pub const DEFAULT_FALL: u32 = 3;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileSpec {
    #[serde(default)]
    settings: SettingsSpec,
    // Each entry is read on its own (see [`typed`]), so one bad entry does not hide the
    // errors of the others.
    #[serde(default)]
    rule: Vec<Spanned<toml::Value>>,
    #[serde(default)]
    pool: Vec<Spanned<toml::Value>>,
    #[serde(default)]
    blocklist: Vec<Spanned<toml::Value>>,
    #[serde(default)]
    rpz: Vec<Spanned<toml::Value>>,
}

/// The entries of one kind that deserialize, keeping their spans; the others' errors go to
/// `errors`, located at the entry.
fn typed<T: serde::de::DeserializeOwned>(
    text: &str,
    entries: &[Spanned<toml::Value>],
    mut error: impl FnMut(std::ops::Range<usize>, String),
) -> Vec<Spanned<T>> {
    entries
        .iter()
        .filter_map(|e| match e.get_ref().clone().try_into::<T>() {
            Ok(v) => Some(Spanned::new(e.span(), v)),
            Err(err) => {
                // The span is the `[[...]]` header: read the entry's body (up to the next
                // header) again on its own to point at the offending key's line.
                let start = e.span().end;
                let span = text
                    .get(start..)
                    .and_then(|rest| {
                        let body = &rest[..rest.find("\n[").map_or(rest.len(), |i| i + 1)];
                        let at = toml::from_str::<T>(body).err()?.span()?;
                        Some(start + at.start..start + at.end)
                    })
                    .unwrap_or(e.span());
                error(span, err.message().trim().to_string());
                None
            }
        })
        .collect()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct SettingsSpec {
    /// How `block` rules and blocklists answer unless they say otherwise.
    block: Option<BlockMode>,
    block_ttl: Option<u32>,
    /// Answer PTR queries for the addresses of overrides and hosts-file entries (default
    /// true, as Pi-hole and systemd-resolved do).
    ptr_for_overrides: Option<bool>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "kebab-case")]
pub enum BlockMode {
    Nxdomain,
    Sinkhole,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "kebab-case")]
enum ActionKind {
    Override,
    Alias,
    Block,
    Pool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RuleSpec {
    name: String,
    action: ActionKind,
    #[serde(default, deserialize_with = "client_nets")]
    clients: Vec<IpNet>,
    #[serde(default)]
    a: Vec<Ipv4Addr>,
    #[serde(default)]
    aaaa: Vec<Ipv6Addr>,
    ttl: Option<u32>,
    passthrough_other_types: Option<bool>,
    target: Option<String>,
    block: Option<BlockMode>,
    pool: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct PoolSpec {
    name: String,
    members: Vec<MemberSpec>,
    #[serde(default = "default_policy")]
    policy: PolicyKind,
    answers: Option<usize>,
    ttl: Option<u32>,
    #[serde(default)]
    all_down: AllDown,
    client_prefix_v4: Option<u8>,
    client_prefix_v6: Option<u8>,
    health: Option<HealthFileSpec>,
}

fn default_policy() -> PolicyKind {
    PolicyKind::RoundRobin
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct MemberSpec {
    address: IpAddr,
    weight: Option<u32>,
    check_port: Option<u16>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum CheckSpec {
    Tcp,
    Http,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct HealthFileSpec {
    check: CheckSpec,
    port: u16,
    path: Option<String>,
    host: Option<String>,
    expect_status: Option<u16>,
    interval: Option<String>,
    timeout: Option<String>,
    rise: Option<u32>,
    fall: Option<u32>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "kebab-case")]
pub enum ListFormat {
    /// `0.0.0.0 name ...` lines (other addresses become overrides).
    Hosts,
    /// One name per line.
    Domains,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ListSpec {
    file: PathBuf,
    format: ListFormat,
    subdomains: Option<bool>,
    block: Option<BlockMode>,
    ttl: Option<u32>,
    #[serde(default, deserialize_with = "client_nets")]
    clients: Vec<IpNet>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RpzSpec {
    file: PathBuf,
    origin: Option<String>,
    #[serde(default, deserialize_with = "client_nets")]
    clients: Vec<IpNet>,
}

/// Reads and checks the rules file at `path` and everything it imports.
pub fn load(path: &Path) -> Result<RuleSet, RedirectError> {
    load_all(path).map_err(|mut errors| errors.swap_remove(0))
}

/// [`load`], reporting every error (each with its file and line) instead of the first:
/// what `hopdns rules check` prints.
pub fn load_all(path: &Path) -> Result<RuleSet, Vec<RedirectError>> {
    let text = std::fs::read_to_string(path).map_err(|source| {
        vec![RedirectError::Read {
            file: path.to_path_buf(),
            source,
        }]
    })?;
    parse_all(&text, path)
}

/// Builds the rules from the text of a rules file; `path` names it in errors and anchors
/// relative import paths.
pub fn parse(text: &str, path: &Path) -> Result<RuleSet, RedirectError> {
    parse_all(text, path).map_err(|mut errors| errors.swap_remove(0))
}

/// [`parse`], collecting every error (never empty on `Err`).
pub fn parse_all(text: &str, path: &Path) -> Result<RuleSet, Vec<RedirectError>> {
    let at = |span: std::ops::Range<usize>, problem: String| RedirectError::Invalid {
        file: path.to_path_buf(),
        line: line_of(text, span.start),
        problem,
    };
    let spec: FileSpec = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        vec![at(span, e.message().to_string())]
    })?;
    let mut errors = Vec::new();
    let mut bad = Vec::new();
    let rules: Vec<Spanned<RuleSpec>> = typed(text, &spec.rule, |sp, m| bad.push((sp, m)));
    let pools: Vec<Spanned<PoolSpec>> = typed(text, &spec.pool, |sp, m| bad.push((sp, m)));
    let lists: Vec<Spanned<ListSpec>> = typed(text, &spec.blocklist, |sp, m| bad.push((sp, m)));
    let rpzs: Vec<Spanned<RpzSpec>> = typed(text, &spec.rpz, |sp, m| bad.push((sp, m)));
    errors.extend(bad.into_iter().map(|(sp, m)| at(sp, m)));
    let base = path.parent().unwrap_or(Path::new("."));
    let block_mode = spec.settings.block.unwrap_or(BlockMode::Nxdomain);
    let block_ttl = spec.settings.block_ttl.unwrap_or(DEFAULT_TTL);
    let mut b = Builder::new();
    b.ptr_for_overrides = spec.settings.ptr_for_overrides.unwrap_or(true);
    b.add_file(path.to_path_buf());

    for p in &pools {
        let pool = match pool_from(p.get_ref()) {
            Ok(pool) => pool,
            Err(problem) => {
                errors.push(at(p.span(), problem));
                continue;
            }
        };
        if b.pool_index(&pool.name).is_some() {
            errors.push(at(
                p.span(),
                format!("pool {:?} is defined twice: rename one", pool.name),
            ));
            continue;
        }
        b.add_pool(pool);
    }

    let mut key = Vec::new();
    for r in &rules {
        let line = line_of(text, r.span().start);
        let origin: Arc<str> = format!("{}:{line}", path.display()).into();
        let (scope, action) = match rule_from(r.get_ref(), &b, block_mode, block_ttl, &mut key) {
            Ok(found) => found,
            Err(problem) => {
                errors.push(at(r.span(), problem));
                continue;
            }
        };
        let id = b.add_rule(Rule {
            clients: r.get_ref().clients.clone(),
            action,
            origin,
        });
        if let Err(e) = b.bind(&key, scope, id) {
            errors.push(at(r.span(), format!("name {:?}: {e}", r.get_ref().name)));
        }
    }

    for l in &lists {
        let s = l.get_ref();
        let file = base.join(&s.file);
        let mode = s.block.unwrap_or(block_mode);
        let subdomains = s.subdomains.unwrap_or(s.format == ListFormat::Domains);
        let settings = import::ListSettings {
            format: s.format,
            subdomains,
            sinkhole: mode == BlockMode::Sinkhole,
            ttl: s.ttl.unwrap_or(block_ttl),
            clients: s.clients.clone(),
        };
        if let Err(e) = import::list(&mut b, &file, &settings) {
            errors.push(e);
        }
    }

    for r in &rpzs {
        let s = r.get_ref();
        let origin = match &s.origin {
            Some(o) => match Name::from_ascii(o) {
                Ok(name) => Some(name),
                Err(e) => {
                    errors.push(at(r.span(), format!("origin {o:?} is not a name: {e}")));
                    continue;
                }
            },
            None => None,
        };
        if let Err(e) = import::rpz(&mut b, &base.join(&s.file), origin, &s.clients) {
            errors.push(e);
        }
    }
    if errors.is_empty() {
        Ok(b.finish())
    } else {
        // This file's errors in line order (the first is what `load` reports), then the
        // imported files'.
        errors.sort_by_key(|e| match e {
            RedirectError::Invalid { file, line, .. } if file == path => (0, *line),
            _ => (1, 0),
        });
        Err(errors)
    }
}

/// `[[rule]]`s whose aliases lead back to themselves (`a -> b -> a`): every question for
/// them ends in SERVFAIL at the alias limit. `hopdns rules check` reports them as errors;
/// `serve` still loads such a file (the limit holds at run time), as it always did.
pub fn alias_loops(path: &Path) -> Vec<RedirectError> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let Ok(spec) = toml::from_str::<FileSpec>(&text) else {
        return Vec::new();
    };
    let text = text.as_str();
    let rules: Vec<Spanned<RuleSpec>> = typed(text, &spec.rule, |_, _| {});
    let norm = |n: &str| n.trim_end_matches('.').to_ascii_lowercase();
    let alias: HashMap<String, (String, usize)> = rules
        .iter()
        .filter(|r| r.get_ref().action == ActionKind::Alias && r.get_ref().clients.is_empty())
        .filter_map(|r| {
            let target = r.get_ref().target.as_deref()?;
            Some((
                norm(&r.get_ref().name),
                (norm(target), line_of(text, r.span().start)),
            ))
        })
        .collect();
    let mut errors = Vec::new();
    let mut reported = std::collections::HashSet::new();
    let mut starts: Vec<&String> = alias.keys().collect();
    starts.sort_by_key(|n| alias[*n].1);
    for start in starts {
        let mut chain = vec![start.clone()];
        let mut at = start;
        while let Some((next, _)) = alias.get(at) {
            if next == start {
                if chain.iter().all(|n| reported.insert(n.clone())) {
                    chain.push(start.clone());
                    errors.push(RedirectError::Invalid {
                        file: path.to_path_buf(),
                        line: alias[start].1,
                        problem: format!(
                            "alias loop: {} (each name would end in SERVFAIL): point one \
                             of them at a name outside the loop",
                            chain.join(" -> ")
                        ),
                    });
                }
                break;
            }
            if chain.contains(next) || chain.len() > 64 {
                break;
            }
            chain.push(next.clone());
            at = next;
        }
    }
    errors
}

/// Notes for `hopdns rules check`: explicit `[[rule]]` names that another rule's `*.`
/// suffix also covers (the more specific one wins, which may not be what was meant), and
/// names given twice for different clients.
pub fn overlaps(path: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let Ok(spec) = toml::from_str::<FileSpec>(&text) else {
        return Vec::new();
    };
    let norm = |n: &str| n.trim_end_matches('.').to_ascii_lowercase();
    let rules: Vec<(String, usize)> = spec
        .rule
        .iter()
        .filter_map(|r| {
            let name = r.get_ref().get("name")?.as_str()?;
            Some((norm(name), line_of(&text, r.span().start)))
        })
        .collect();
    let mut notes = Vec::new();
    for (name, line) in &rules {
        for (other, other_line) in &rules {
            let Some(suffix) = other.strip_prefix("*.") else {
                continue;
            };
            let covered = name != other && name.ends_with(&format!(".{suffix}"));
            if covered {
                notes.push(format!(
                    "{}:{line}: {name} is also covered by {other} (line {other_line}); the \
                     rule at line {line} wins for it (most specific name)",
                    path.display()
                ));
            }
        }
    }
    notes
}

/// `clients = [...]` entries: a network with its prefix (`192.168.1.0/24`, `fd00::/8`) or
/// one address. Errors say what is wrong (the parser's own says "invalid IP address syntax"
/// for a /33).
fn client_nets<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    let raw: Vec<String> = Deserialize::deserialize(d)?;
    raw.iter()
        .map(|s| parse_client_net(s).map_err(serde::de::Error::custom))
        .collect()
}

pub fn parse_client_net(s: &str) -> Result<IpNet, String> {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let ip: IpAddr = addr
        .trim()
        .parse()
        .map_err(|_| format!("client network {s:?}: {addr:?} is not an IP address"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match prefix {
        None => max,
        Some(p) => p.trim().parse::<u8>().map_err(|_| {
            format!("client network {s:?}: prefix length {p:?} is not a number (0 to {max})")
        })?,
    };
    if len > max {
        return Err(format!(
            "client network {s:?}: prefix length /{len} is longer than the {max} bits of an \
             IPv{} address",
            if ip.is_ipv4() { 4 } else { 6 }
        ));
    }
    IpNet::new(ip, len).map_err(|e| format!("client network {s:?}: {e}"))
}

/// 1-based line of byte `offset` in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()
        .get(..offset.min(text.len()))
        .map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
        + 1
}

/// `name` or `*.name` as a key and scope.
pub fn pattern(text: &str, key: &mut Vec<u8>) -> Result<Scope, String> {
    let (rest, scope) = match text.strip_prefix("*.") {
        Some(rest) => (rest, Scope::Below),
        None => (text, Scope::Exact),
    };
    if rest.contains('*') {
        return Err(format!(
            "{text:?}: a wildcard must be the whole first label, as in \"*.example.com\""
        ));
    }
    names::key_from_text(rest, key).map_err(|e| format!("name {text:?}: {e}"))?;
    Ok(scope)
}

fn rule_from(
    r: &RuleSpec,
    b: &Builder,
    block_mode: BlockMode,
    block_ttl: u32,
    key: &mut Vec<u8>,
) -> Result<(Scope, Action), String> {
    let scope = pattern(&r.name, key)?;
    let kind = r.action;
    let only = |present: bool, field: &str, for_: &str| {
        if present {
            Err(format!(
                "`{field}` is only for action = \"{for_}\": remove it"
            ))
        } else {
            Ok(())
        }
    };
    only(
        kind != ActionKind::Override && !(r.a.is_empty() && r.aaaa.is_empty()),
        "a/aaaa",
        "override",
    )?;
    only(
        kind != ActionKind::Alias && r.target.is_some(),
        "target",
        "alias",
    )?;
    only(
        kind != ActionKind::Block && r.block.is_some(),
        "block",
        "block",
    )?;
    only(kind != ActionKind::Pool && r.pool.is_some(), "pool", "pool")?;
    only(
        !matches!(kind, ActionKind::Override | ActionKind::Pool)
            && r.passthrough_other_types.is_some(),
        "passthrough-other-types",
        "override\" or \"pool",
    )?;
    let passthrough = r.passthrough_other_types.unwrap_or(false);
    let action = match kind {
        ActionKind::Override => {
            if r.a.is_empty() && r.aaaa.is_empty() {
                return Err("action = \"override\" needs `a` and/or `aaaa` addresses".into());
            }
            Action::Override {
                a: r.a.clone(),
                aaaa: r.aaaa.clone(),
                ttl: r.ttl.unwrap_or(DEFAULT_TTL),
                passthrough,
            }
        }
        ActionKind::Alias => {
            let target = r
                .target
                .as_deref()
                .ok_or("action = \"alias\" needs `target = \"other.name\"`")?;
            let mut name = Name::from_ascii(target)
                .map_err(|e| format!("target {target:?} is not a name: {e}"))?;
            name.set_fqdn(true);
            // An alias to a name this very rule matches would answer with itself forever.
            let own = r.name.strip_prefix("*.").unwrap_or(&r.name);
            let mut own = Name::from_ascii(own).map_err(|e| format!("name {own:?}: {e}"))?;
            own.set_fqdn(true);
            let loops = match scope {
                Scope::Exact => name == own,
                Scope::Below => own.zone_of(&name) && name != own,
            };
            if loops {
                return Err(format!(
                    "alias {:?} -> {target:?} points at a name this rule matches itself, so it would loop: choose another target",
                    r.name
                ));
            }
            Action::Alias {
                target: name.to_lowercase(),
                ttl: r.ttl.unwrap_or(DEFAULT_TTL),
            }
        }
        ActionKind::Block => Action::Block {
            sinkhole: r.block.unwrap_or(block_mode) == BlockMode::Sinkhole,
            ttl: r.ttl.unwrap_or(block_ttl),
        },
        ActionKind::Pool => {
            if r.ttl.is_some() {
                return Err(
                    "a pool rule takes its TTL from the pool: move `ttl` to [[pool]]".into(),
                );
            }
            let name = r
                .pool
                .as_deref()
                .ok_or("action = \"pool\" needs `pool = \"name\"`")?;
            let pool = b.pool_index(name).ok_or_else(|| {
                format!("no [[pool]] is named {name:?}: define it or fix the name")
            })?;
            Action::Pool { pool, passthrough }
        }
    };
    Ok((scope, action))
}

fn pool_from(p: &PoolSpec) -> Result<Pool, String> {
    if p.members.is_empty() {
        return Err(format!(
            "pool {:?} has no members: add `members = [{{ address = \"...\" }}]`",
            p.name
        ));
    }
    let mut members = Vec::new();
    for m in &p.members {
        let weight = m.weight.unwrap_or(1);
        if weight == 0 {
            return Err(format!(
                "member {} of pool {:?} has weight 0: use at least 1, or remove the member",
                m.address, p.name
            ));
        }
        if members.iter().any(|(a, _, _)| *a == m.address) {
            return Err(format!(
                "member {} is listed twice in pool {:?}",
                m.address, p.name
            ));
        }
        members.push((m.address, weight, m.check_port));
    }
    if p.answers == Some(0) {
        return Err("answers = 0 would answer nothing: use at least 1".into());
    }
    let health = p.health.as_ref().map(health_from).transpose()?;
    if p.policy == PolicyKind::LowestLatency && health.is_none() {
        return Err(
            "policy = \"lowest-latency\" needs a [pool.health] check to measure latency".into(),
        );
    }
    let (v4, v6) = (
        p.client_prefix_v4.unwrap_or(32),
        p.client_prefix_v6.unwrap_or(64),
    );
    if v4 > 32 || v6 > 128 {
        return Err("client-prefix-v4 is at most 32 and client-prefix-v6 at most 128".into());
    }
    Ok(Pool::new(
        p.name.clone(),
        members,
        p.policy,
        p.answers.unwrap_or(1),
        p.ttl.unwrap_or(DEFAULT_POOL_TTL),
        p.all_down,
        (v4, v6),
        health,
    ))
}

fn health_from(h: &HealthFileSpec) -> Result<HealthSpec, String> {
    let kind = match h.check {
        CheckSpec::Tcp => {
            if h.path.is_some() || h.expect_status.is_some() || h.host.is_some() {
                return Err("path, host and expect-status are for check = \"http\"".into());
            }
            CheckKind::Tcp
        }
        CheckSpec::Http => {
            let path = h.path.clone().unwrap_or_else(|| "/".into());
            if !path.starts_with('/') {
                return Err(format!("path {path:?} must start with '/'"));
            }
            CheckKind::Http {
                path,
                host: h.host.clone(),
                expect: h.expect_status.unwrap_or(200),
            }
        }
    };
    let interval = h
        .interval
        .as_deref()
        .map(duration)
        .transpose()?
        .unwrap_or(DEFAULT_INTERVAL);
    let timeout = h
        .timeout
        .as_deref()
        .map(duration)
        .transpose()?
        .unwrap_or(DEFAULT_TIMEOUT.min(interval));
    let (rise, fall) = (
        h.rise.unwrap_or(DEFAULT_RISE),
        h.fall.unwrap_or(DEFAULT_FALL),
    );
    if rise == 0 || fall == 0 {
        return Err("rise and fall count checks in a row: use at least 1".into());
    }
    if h.port == 0 {
        return Err("port = 0 cannot be checked: give the service's port".into());
    }
    Ok(HealthSpec {
        kind,
        port: h.port,
        interval,
        timeout,
        rise,
        fall,
    })
}

/// "250ms", "2s", "1m" (at least 10 ms, at most a day).
pub fn duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration: write it like \"500ms\", \"2s\" or \"1m\"");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (num, unit) = text.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(bad()),
    };
    if d < Duration::from_millis(10) || d > Duration::from_secs(86_400) {
        return Err(format!("{text:?} is out of range: use 10ms to 1 day"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(text, Path::new("rules.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn errors_name_the_file_line_and_fix() {
        let e = err("[[rule]]\nname = \"a.lan\"\naction = \"override\"\n");
        assert!(
            e.starts_with("rules.toml:1:") && e.contains("needs `a`"),
            "{e}"
        );
        let e = err("\n\n[[rule]]\nname = \"a.lan\"\naction = \"frobnicate\"\n");
        assert!(e.starts_with("rules.toml:5:"), "{e}");
        let e = err("[[rule]]\nname = \"a.lan\"\naction = \"pool\"\npool = \"web\"\n");
        assert!(e.contains("no [[pool]] is named \"web\""), "{e}");
        let e = err("[[rule]]\nname = \"a*.lan\"\naction = \"block\"\n");
        assert!(e.contains("whole first label"), "{e}");
        let e = err("[[pool]]\nname = \"p\"\nmembers = [{ address = \"10.0.0.1\", weight = 0 }]\n");
        assert!(e.contains("weight 0"), "{e}");
        let e = err("[[pool]]\nname = \"p\"\npolicy = \"lowest-latency\"\nmembers = [{ address = \"10.0.0.1\" }]\n");
        assert!(e.contains("needs a [pool.health]"), "{e}");
        let e = err("[[blocklist]]\nfile = \"/nonexistent/list.txt\"\nformat = \"domains\"\n");
        assert!(
            e.contains("/nonexistent/list.txt") && e.contains("cannot read"),
            "{e}"
        );
        let e = err("[bogus]\n");
        assert!(e.starts_with("rules.toml:1:") && e.contains("bogus"), "{e}");
    }

    /// Issue 10, behaviour 13: an alias to a name its own rule matches is refused when the
    /// rules load, with the line, instead of ending every query for it in SERVFAIL.
    #[test]
    fn an_alias_to_a_name_its_own_rule_matches_is_refused_with_its_line() {
        let e = err("\n[[rule]]\nname = \"a.lan\"\naction = \"alias\"\ntarget = \"A.lan.\"\n");
        assert!(
            e.starts_with("rules.toml:2:") && e.contains("would loop"),
            "{e}"
        );
        let e = err("[[rule]]\nname = \"*.lan\"\naction = \"alias\"\ntarget = \"www.lan\"\n");
        assert!(e.contains("would loop"), "{e}");
        // The suffix itself is not below `*.lan`: no loop.
        parse(
            "[[rule]]\nname = \"*.lan\"\naction = \"alias\"\ntarget = \"lan\"\n",
            Path::new("rules.toml"),
        )
        .expect("an alias to the suffix itself is fine");
    }

    #[test]
    fn durations() {
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(duration("1m"), Ok(Duration::from_secs(60)));
        assert!(duration("2").is_err() && duration("1ms").is_err() && duration("s").is_err());
    }

    #[test]
    fn a_complete_file_loads() {
        let set = parse(
            r#"
            [settings]
            block = "sinkhole"

            [[pool]]
            name = "web"
            policy = "weighted"
            members = [{ address = "10.0.0.1", weight = 3 }, { address = "fd00::1" }]
            [pool.health]
            check = "http"
            port = 80
            path = "/health"
            interval = "1s"

            [[rule]]
            name = "www.lan"
            action = "pool"
            pool = "web"

            [[rule]]
            name = "*.ads.lan"
            action = "block"

            [[rule]]
            name = "old.lan"
            action = "alias"
            target = "www.lan"
            "#,
            Path::new("rules.toml"),
        )
        .unwrap();
        assert_eq!((set.len(), set.rule_count(), set.pools.len()), (3, 3, 1));
        let h = set.pools[0].health.as_ref().unwrap();
        assert_eq!(
            (h.interval, h.timeout, h.rise, h.fall),
            (Duration::from_secs(1), Duration::from_secs(1), 2, 3)
        );
    }
}
