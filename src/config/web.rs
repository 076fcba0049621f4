//! `serve`'s dashboard switches (`--web` and its companions; issue 18). Like every flag of
//! `serve`, each is also a config-file key of the same name. The meaning (an argon2id hash,
//! a certificate pair, a free address) is checked by `serve` and `hopdns config check`
//! with the dashboard's own checks.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

/// Default memory of the dashboard's query log: 8 MiB, some 45,000 queries (about 180
/// bytes each).
pub const DEFAULT_WEB_LOG_BYTES: &str = "8m";
/// Smallest and largest `--web-log-bytes`: some hundreds of queries, and 1 GiB.
pub const MIN_WEB_LOG_BYTES: usize = 64 << 10;
pub const MAX_WEB_LOG_BYTES: usize = 1 << 30;

#[derive(Args, Debug, Clone, Default)]
pub struct WebArgs {
    /// Serve the web dashboard at http://ADDR:PORT/ (off unless given): queries over time,
    /// top lists, the query log, rules and pool health; after a login, pause blocking,
    /// reload, flush, look up and trace. Only clients the allow-list admits (--allow;
    /// loopback always) may connect. Example: --web 127.0.0.1:8053.
    #[arg(long, value_name = "ADDR:PORT", help_heading = "Dashboard")]
    pub web: Option<SocketAddr>,
    /// The dashboard's password as an argon2id hash (a PHC string: make it with `hopdns
    /// web-password`). Without it the dashboard is read-only.
    #[arg(long, value_name = "HASH", help_heading = "Dashboard")]
    pub web_password_hash: Option<String>,
    /// Memory for the dashboard's query log, e.g. 8m, 512k (64k to 1g): the oldest queries
    /// make room for new ones.
    #[arg(long, value_name = "SIZE", default_value = DEFAULT_WEB_LOG_BYTES,
          value_parser = parse_log_bytes, help_heading = "Dashboard")]
    pub web_log_bytes: usize,
    /// Serve the dashboard over HTTPS with this certificate chain (PEM, server certificate
    /// first); needs --web-tls-key. SIGHUP and `ctl reload` read it again.
    #[arg(long, value_name = "FILE", help_heading = "Dashboard")]
    pub web_tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --web-tls-cert.
    #[arg(long, value_name = "FILE", help_heading = "Dashboard")]
    pub web_tls_key: Option<PathBuf>,
}

fn parse_log_bytes(s: &str) -> Result<usize, String> {
    let n = super::parse_size(s)?;
    if !(MIN_WEB_LOG_BYTES..=MAX_WEB_LOG_BYTES).contains(&n) {
        return Err(format!(
            "{n} bytes is out of range: give 64k to 1g (e.g. {DEFAULT_WEB_LOG_BYTES})"
        ));
    }
    Ok(n)
}

impl WebArgs {
    /// Problems of the switches among themselves (each with its config key): companions
    /// without `--web`, half a certificate pair.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.web.is_none() {
            let unused = [
                ("web-password-hash", self.web_password_hash.is_some()),
                ("web-tls-cert", self.web_tls_cert.is_some()),
                ("web-tls-key", self.web_tls_key.is_some()),
            ];
            for (key, given) in unused {
                if given {
                    out.push((
                        key,
                        format!(
                            "--{key} is given but the dashboard is off: add --web ADDR:PORT \
                             (e.g. 127.0.0.1:8053), or drop it"
                        ),
                    ));
                }
            }
        }
        if self.web_tls_cert.is_some() != self.web_tls_key.is_some() {
            out.push((
                "web-tls-cert",
                "--web-tls-cert and --web-tls-key go together: give both".to_string(),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_bytes_are_bounded_and_companions_need_the_dashboard() {
        assert_eq!(parse_log_bytes("8m"), Ok(8 << 20));
        assert!(parse_log_bytes("1k").unwrap_err().contains("64k to 1g"));
        assert!(parse_log_bytes("2g").is_err());
        let args = WebArgs {
            web_password_hash: Some("$argon2id$...".into()),
            web_tls_cert: Some("c.pem".into()),
            ..WebArgs::default()
        };
        let keys: Vec<&str> = args.problems().iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["web-password-hash", "web-tls-cert", "web-tls-cert"]);
        let on = WebArgs {
            web: Some("127.0.0.1:8053".parse().unwrap()),
            ..WebArgs::default()
        };
        assert!(on.problems().is_empty());
    }
}
