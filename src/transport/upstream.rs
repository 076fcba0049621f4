//! A configured upstream server (a forwarder or a stub zone's server) and how it is reached:
//! `IP[:PORT]` (UDP, TCP after TC), `tcp://IP[:PORT]`, `tls://IP[:PORT]@NAME` (DNS over
//! TLS, RFC 7858; the certificate must be valid for NAME). IPv6 with a port: `[::1]:53`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

/// DNS over TLS port (RFC 7858 §3.1).
pub const DOT_PORT: u16 = 853;

/// How an upstream is asked.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// UDP, then TCP when the reply is truncated (RFC 7766 §5).
    Udp,
    /// TCP only.
    Tcp,
    /// DNS over TLS; the certificate must be valid for `name` (RFC 8310 §8.1, strict
    /// profile: no answer rather than an unauthenticated one).
    Tls { name: Arc<str> },
}

impl Protocol {
    /// The name the trace and metrics show for it.
    pub fn label(&self) -> &'static str {
        match self {
            Protocol::Udp => "udp",
            Protocol::Tcp => "tcp",
            Protocol::Tls { .. } => "tls",
        }
    }
}

/// One configured upstream server.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Upstream {
    pub addr: SocketAddr,
    pub protocol: Protocol,
}

impl Upstream {
    /// The TLS name to check the certificate against, for DoT.
    pub fn tls_name(&self) -> Option<Arc<str>> {
        match &self.protocol {
            Protocol::Tls { name } => Some(name.clone()),
            _ => None,
        }
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.protocol {
            Protocol::Udp => write!(f, "{}", self.addr),
            Protocol::Tcp => write!(f, "tcp://{}", self.addr),
            Protocol::Tls { name } => write!(f, "tls://{}@{name}", self.addr),
        }
    }
}

/// Why an upstream spec does not parse; the message shows the forms that do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("upstream server {spec:?}: {problem} (write IP, IP:PORT, [IPv6]:PORT, tcp://IP[:PORT] or tls://IP[:PORT]@NAME)")]
pub struct UpstreamError {
    pub spec: String,
    pub problem: String,
}

impl FromStr for Upstream {
    type Err = UpstreamError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let err = |problem: &str| UpstreamError {
            spec: spec.to_string(),
            problem: problem.to_string(),
        };
        let (scheme, rest) = match spec.split_once("://") {
            Some((s, r)) => (s, r),
            None => ("udp", spec),
        };
        let (host, name) = match rest.split_once('@') {
            Some((h, n)) => (h, Some(n)),
            None => (rest, None),
        };
        let (protocol, port) =
            match (scheme, name) {
                ("udp", None) => (Protocol::Udp, 53),
                ("tcp", None) => (Protocol::Tcp, 53),
                ("tls", Some(name)) => {
                    let valid = !name.is_empty()
                        && name.len() <= 253
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
                    if !valid {
                        return Err(err("the TLS name after @ is not a host name"));
                    }
                    let name = name.trim_end_matches('.').to_ascii_lowercase();
                    (Protocol::Tls { name: name.into() }, DOT_PORT)
                }
                ("tls", None) => return Err(err(
                    "DNS over TLS needs the name to check the certificate against: tls://IP@NAME",
                )),
                ("udp" | "tcp", Some(_)) => {
                    return Err(err("@NAME is only for tls://"));
                }
                _ => return Err(err("unknown scheme (udp, tcp or tls)")),
            };
        let addr = if let Ok(sa) = host.parse::<SocketAddr>() {
            sa
        } else if let Ok(ip) = host.parse::<IpAddr>() {
            SocketAddr::new(ip, port)
        } else {
            return Err(err("not an IP address (host names are not resolved here)"));
        };
        if addr.port() == 0 || addr.ip().is_unspecified() || addr.ip().is_multicast() {
            return Err(err("not an address a server can have"));
        }
        Ok(Upstream { addr, protocol })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_parse_and_print_back() {
        for (spec, printed) in [
            ("10.0.0.53", "10.0.0.53:53"),
            ("10.0.0.53:5353", "10.0.0.53:5353"),
            ("[::1]:53", "[::1]:53"),
            ("::1", "[::1]:53"),
            ("tcp://10.0.0.1", "tcp://10.0.0.1:53"),
            (
                "tls://9.9.9.9@dns.quad9.net",
                "tls://9.9.9.9:853@dns.quad9.net",
            ),
            (
                "tls://[2620:fe::fe]:853@DNS.quad9.net.",
                "tls://[2620:fe::fe]:853@dns.quad9.net",
            ),
        ] {
            let u: Upstream = spec.parse().unwrap();
            assert_eq!(u.to_string(), printed);
        }
    }

    #[test]
    fn bad_forms_say_what_to_write() {
        for spec in [
            "tls://9.9.9.9",
            "dns.quad9.net",
            "quic://1.1.1.1",
            "1.1.1.1@x",
            "0.0.0.0",
        ] {
            let e = spec.parse::<Upstream>().unwrap_err().to_string();
            assert!(e.contains("tls://IP[:PORT]@NAME"), "{e}");
        }
    }
}
