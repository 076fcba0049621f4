//! `serve`'s encrypted listeners: DNS over TLS (RFC 7858) and DNS over HTTPS (RFC 8484).
//! Like every flag of `serve`, each is also a config-file key of the same name.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::server::{ServerConfig, TlsCerts, DEFAULT_HTTPS_PATH};

/// DoT's port (RFC 7858 §3.1).
pub const DOT_PORT: u16 = 853;
/// DoH's port: HTTPS's.
pub const DOH_PORT: u16 = 443;

#[derive(Args, Debug, Clone, Default)]
pub struct TlsArgs {
    /// Serve DNS over TLS (RFC 7858; Android's Private DNS) on ADDR (port 853 unless given;
    /// repeatable). Needs --tls-cert and --tls-key.
    #[arg(long, value_name = "ADDR[:PORT]", value_parser = parse_dot,
          help_heading = "Encrypted DNS")]
    pub listen_tls: Vec<SocketAddr>,
    /// Serve DNS over HTTPS (RFC 8484; browsers) on ADDR (port 443 unless given;
    /// repeatable), HTTP/2 and HTTP/1.1. Needs --tls-cert and --tls-key.
    #[arg(long, value_name = "ADDR[:PORT]", value_parser = parse_doh,
          help_heading = "Encrypted DNS")]
    pub listen_https: Vec<SocketAddr>,
    /// Certificate chain (PEM, server certificate first) of the DoT and DoH listeners.
    /// SIGHUP and `ctl reload` read it again; open connections are kept.
    #[arg(long, value_name = "FILE", help_heading = "Encrypted DNS")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1) of --tls-cert; reloaded with it.
    #[arg(long, value_name = "FILE", help_heading = "Encrypted DNS")]
    pub tls_key: Option<PathBuf>,
    /// The DoH path: queries go to https://HOST/PATH (RFC 8484's examples use /dns-query).
    #[arg(long, value_name = "PATH", default_value = DEFAULT_HTTPS_PATH,
          value_parser = parse_path, help_heading = "Encrypted DNS")]
    pub https_path: String,
    /// Seconds a DoT or DoH client has to finish the TLS handshake; a client that stalls
    /// is closed then.
    #[arg(long, value_name = "SECS", default_value_t = 5.0,
          value_parser = parse_handshake, help_heading = "Encrypted DNS")]
    pub tls_handshake_timeout: f64,
    /// Peers (a TLS terminator, dnsdist) that send a PROXY protocol v2 header, naming the
    /// real client for the allow-list, RRL, rules, connection caps and the query log: before
    /// every UDP datagram, at the start of TCP connections, before TLS (repeatable; off
    /// unless given). Datagrams and connections from them without a valid header are
    /// dropped.
    #[arg(long, value_name = "CIDR", help_heading = "Encrypted DNS")]
    pub proxy_protocol_from: Vec<ipnet::IpNet>,
}

/// Why the encrypted listeners cannot be set up. Messages name the flag and the fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsArgsError {
    #[error("--listen-tls and --listen-https need --tls-cert FILE and --tls-key FILE")]
    NoCertificate,
    #[error("--tls-cert and --tls-key go together: give both")]
    HalfPair,
    #[error(
        "--tls-cert is given but no --listen-tls or --listen-https uses it: add a listener \
         or drop the certificate"
    )]
    Unused,
    #[error(transparent)]
    Cert(#[from] crate::server::CertError),
}

impl TlsArgsError {
    /// The config key the problem is about (for `config check`).
    pub fn key(&self) -> &'static str {
        match self {
            TlsArgsError::Cert(crate::server::CertError::Key { .. }) => "tls-key",
            TlsArgsError::NoCertificate | TlsArgsError::HalfPair | TlsArgsError::Cert(_) => {
                "tls-cert"
            }
            TlsArgsError::Unused => "listen-tls",
        }
    }
}

impl TlsArgs {
    /// Checks the switches and reads the certificate: the part of `ServerConfig` they set.
    pub fn apply(&self, config: &mut ServerConfig) -> Result<(), TlsArgsError> {
        let listeners = !self.listen_tls.is_empty() || !self.listen_https.is_empty();
        let certs = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsCerts::load(cert, key)?),
            (None, None) => None,
            _ => return Err(TlsArgsError::HalfPair),
        };
        match (listeners, &certs) {
            (true, None) => return Err(TlsArgsError::NoCertificate),
            (false, Some(_)) => return Err(TlsArgsError::Unused),
            _ => {}
        }
        config.listen_tls = self.listen_tls.clone();
        config.listen_https = self.listen_https.clone();
        config.tls_certs = certs;
        config.https_path = self.https_path.clone();
        config.tls_handshake_timeout = Duration::from_secs_f64(self.tls_handshake_timeout);
        config.proxy_protocol_from = self.proxy_protocol_from.clone();
        Ok(())
    }
}

/// `ADDR:PORT`, or `ADDR` alone with `default_port` (IPv6 with a port in brackets).
fn parse_addr(s: &str, default_port: u16) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let bare = s.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, default_port))
        .map_err(|_| format!("{s:?} is not an address: give ADDR or ADDR:PORT (e.g. 192.168.1.2 or [::1]:{default_port})"))
}

fn parse_dot(s: &str) -> Result<SocketAddr, String> {
    parse_addr(s, DOT_PORT)
}

fn parse_doh(s: &str) -> Result<SocketAddr, String> {
    parse_addr(s, DOH_PORT)
}

fn parse_path(s: &str) -> Result<String, String> {
    if !s.starts_with('/') || s.contains(['?', '#', ' ']) {
        return Err(format!(
            "{s:?} is not a URL path: give one such as /dns-query"
        ));
    }
    Ok(s.to_string())
}

fn parse_handshake(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(0.1..=60.0).contains(&v) {
        return Err(format!("{v} is out of range: give 0.1 to 60 seconds"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_take_the_transport_port_unless_given() {
        assert_eq!(
            parse_dot("192.0.2.1").unwrap(),
            "192.0.2.1:853".parse().unwrap()
        );
        assert_eq!(
            parse_doh("[2001:db8::1]").unwrap(),
            "[2001:db8::1]:443".parse().unwrap()
        );
        assert_eq!(
            parse_doh("2001:db8::1").unwrap(),
            "[2001:db8::1]:443".parse().unwrap()
        );
        assert_eq!(
            parse_dot("192.0.2.1:8853").unwrap(),
            "192.0.2.1:8853".parse().unwrap()
        );
        assert!(parse_dot("resolver.lan").unwrap_err().contains("ADDR:PORT"));
        assert!(parse_path("dns-query").is_err());
        assert!(parse_path("/dns-query").is_ok());
    }

    #[test]
    fn listeners_and_certificate_come_together() {
        let mut config = ServerConfig::default();
        let listen = TlsArgs {
            listen_tls: vec!["127.0.0.1:853".parse().unwrap()],
            ..Default::default()
        };
        assert!(matches!(
            listen.apply(&mut config),
            Err(TlsArgsError::NoCertificate)
        ));
        let half = TlsArgs {
            tls_cert: Some("/x.pem".into()),
            ..Default::default()
        };
        assert!(matches!(
            half.apply(&mut config),
            Err(TlsArgsError::HalfPair)
        ));
        let missing = TlsArgs {
            tls_cert: Some("/nonexistent/cert.pem".into()),
            tls_key: Some("/nonexistent/key.pem".into()),
            ..listen
        };
        let e = missing.apply(&mut config).unwrap_err().to_string();
        assert!(
            e.contains("/nonexistent/cert.pem") && e.contains("--tls-cert"),
            "{e}"
        );
    }
}
