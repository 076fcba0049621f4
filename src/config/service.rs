//! `serve`'s operational switches: config file, LAN protections, control socket, metrics,
//! warm restart, drain and query log. Like every flag of `serve`, each is also a config-file
//! key of the same name (see [`super::file`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::resolver::DEFAULT_MAX_PENDING;
use crate::server::rrl::RrlConfig;
use crate::server::{DEFAULT_MAX_TCP_CLIENTS, DEFAULT_MAX_TCP_PER_CLIENT};

/// Where `hopdns ctl` looks for the control socket by default (the systemd unit in
/// docs/local-resolver.md creates /run/hopdns).
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/hopdns/control.sock";

#[derive(Args, Debug, Clone)]
pub struct OpsArgs {
    /// Config file (TOML). Its keys are these flags' long names; flags given here override
    /// it. Default: /etc/hopdns/hopdns.toml if that file exists.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Response rate limiting: UDP replies per second to one client prefix (0: off).
    /// Suggested for a LAN: 100.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        help_heading = "LAN protections"
    )]
    pub rrl_rate: u32,
    /// RRL bucket size: replies a prefix may get at once (below --rrl-rate counts as
    /// --rrl-rate).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        help_heading = "LAN protections"
    )]
    pub rrl_burst: u32,
    /// Every Nth rate-limited reply is sent truncated (TC=1) so real clients retry over
    /// TCP; the others are dropped. 0 drops them all, 1 truncates them all.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 2,
        help_heading = "LAN protections"
    )]
    pub rrl_slip: u32,
    /// RRL counts IPv4 clients per prefix of this length.
    #[arg(long, value_name = "BITS", default_value_t = 24,
          value_parser = clap::value_parser!(u8).range(8..=32), help_heading = "LAN protections")]
    pub rrl_ipv4_prefix: u8,
    /// RRL counts IPv6 clients per prefix of this length.
    #[arg(long, value_name = "BITS", default_value_t = 56,
          value_parser = clap::value_parser!(u8).range(16..=128), help_heading = "LAN protections")]
    pub rrl_ipv6_prefix: u8,
    /// Rate-limit loopback clients too (by default the machine's own programs are exempt).
    #[arg(long, help_heading = "LAN protections")]
    pub rrl_limit_loopback: bool,
    /// Allow --allow 0.0.0.0/0 or ::/0: answer anyone who can reach the listen address. An
    /// open resolver on the Internet is used to amplify attacks on others; refused
    /// without this switch.
    #[arg(long, help_heading = "LAN protections")]
    pub open_resolver: bool,
    /// Concurrent TCP connections, all listen addresses together (more wait in the backlog).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_TCP_CLIENTS,
          value_parser = at_least_one,
          help_heading = "LAN protections")]
    pub max_tcp_clients: usize,
    /// Concurrent TCP connections from one client (an IPv4 address, an IPv6 /64) with the
    /// normal idle timeout; more are served with a 200 ms one and are the first closed
    /// when slots run out.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_TCP_PER_CLIENT,
          value_parser = at_least_one,
          help_heading = "LAN protections")]
    pub max_tcp_per_client: usize,
    /// A network whose clients have no per-client TCP budget, such as a proxy in front
    /// that pools connections (repeatable).
    #[arg(long, value_name = "CIDR", help_heading = "LAN protections")]
    pub tcp_trusted: Vec<ipnet::IpNet>,
    /// Resolutions waiting on authorities at once; past it, new cache misses get SERVFAIL
    /// at once (cache hits are still answered).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_PENDING,
          value_parser = at_least_one,
          help_heading = "LAN protections")]
    pub max_pending: usize,

    /// Unix socket for `hopdns ctl` (created owner-only, mode 0600). Off unless given;
    /// `hopdns ctl` looks at /run/hopdns/control.sock by default.
    #[arg(long, value_name = "PATH", help_heading = "Operations")]
    pub control_socket: Option<PathBuf>,
    /// Serve Prometheus metrics over HTTP at http://ADDR/metrics (off unless given).
    #[arg(long, value_name = "ADDR:PORT", help_heading = "Operations")]
    pub metrics: Option<SocketAddr>,
    /// Warm restart: load the cache from FILE at start and save it there on shutdown and
    /// every --cache-save-interval (remaining TTLs follow the clock while stopped). FILE
    /// must be missing or a hopdns cache file, and its directory writable: checked at start.
    #[arg(long, value_name = "FILE", help_heading = "Operations")]
    pub cache_file: Option<PathBuf>,
    /// With --cache-file: also save the cache every SECS seconds, so a crash loses little
    /// (0: only at shutdown).
    #[arg(long, value_name = "SECS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(0..=86_400),
          help_heading = "Operations")]
    pub cache_save_interval: u64,
    /// On SIGTERM/SIGINT, seconds to finish queries already received (nothing new is
    /// accepted meanwhile).
    #[arg(long, value_name = "SECS", default_value_t = 3.0,
          value_parser = parse_seconds, help_heading = "Operations")]
    pub drain_timeout: f64,
    /// Answer NAME from hopdns itself (A 127.0.0.1, TXT "ok", NODATA for other types; TTL
    /// 0, never cached, never sent upstream): a health check for a load balancer in front,
    /// such as dnsdist (docs/scale-out.md). Off unless given.
    #[arg(long, value_name = "NAME", value_parser = parse_health_name,
          help_heading = "Operations")]
    pub health_check_name: Option<hickory_proto::rr::Name>,
    /// On SIGTERM/SIGINT, first answer --health-check-name with SERVFAIL for SECS seconds
    /// while still serving every other query, then drain: a balancer that checks the name
    /// stops sending new queries before the listeners close (0: drain at once).
    #[arg(long, value_name = "SECS", default_value_t = 0.0,
          value_parser = parse_seconds, help_heading = "Operations")]
    pub health_fail_before_stop: f64,
    /// Log every reply (client, name, type, rcode) at INFO under the target hopdns::query.
    #[arg(long, help_heading = "Operations")]
    pub query_log: bool,
    /// Write the query log to FILE (JSON lines, appended) instead of the log; SIGHUP and
    /// `ctl reload` reopen it (for logrotate). Implies --query-log.
    #[arg(long, value_name = "FILE", help_heading = "Operations")]
    pub query_log_file: Option<PathBuf>,
    /// In the query log, replace client addresses by a keyed hash (random key per start).
    #[arg(long, help_heading = "Operations")]
    pub query_log_hash_clients: bool,
}

fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_string()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{s:?} is not a count: {e}")),
    }
}

fn parse_health_name(s: &str) -> Result<hickory_proto::rr::Name, String> {
    let mut name = hickory_proto::rr::Name::from_ascii(s)
        .map_err(|e| format!("{s:?} is not a domain name: {e}"))?;
    if name.is_root() {
        return Err(
            "the root cannot be the health-check name: give a name such as \
                    health.fleet.example."
                .to_string(),
        );
    }
    name.set_fqdn(true);
    Ok(name.to_lowercase())
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(0.0..=600.0).contains(&v) {
        return Err(format!("{v} is out of range: give 0 to 600 seconds"));
    }
    Ok(v)
}

impl OpsArgs {
    pub fn rrl(&self) -> RrlConfig {
        RrlConfig {
            rate: self.rrl_rate,
            burst: self.rrl_burst,
            slip: self.rrl_slip,
            ipv4_prefix: self.rrl_ipv4_prefix,
            ipv6_prefix: self.rrl_ipv6_prefix,
            exempt_loopback: !self.rrl_limit_loopback,
        }
    }

    /// How long the health check fails before the drain starts.
    pub fn health_fail_before_stop(&self) -> Duration {
        Duration::from_secs_f64(self.health_fail_before_stop)
    }

    pub fn drain(&self) -> Duration {
        Duration::from_secs_f64(self.drain_timeout)
    }
}
