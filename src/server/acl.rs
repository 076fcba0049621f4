//! Who may use this resolver: loopback always, plus the configured networks.
//!
//! An open recursive resolver is an amplification tool (RFC 5358 §4, "Recommended
//! Configuration": recursive service only for intended clients), so everyone outside the
//! allow-list gets REFUSED. The check is a linear scan: allow-lists are short, and the front
//! end runs it once per query, after the cheap header checks.

use std::net::IpAddr;

use ipnet::IpNet;

/// An allow-list of client networks. Loopback (127.0.0.0/8, ::1) is always allowed, so the
/// 127.0.0.53 stub use needs no configuration.
#[derive(Clone, Debug, Default)]
pub struct Acl {
    allow: Vec<IpNet>,
}

impl Acl {
    pub fn new(allow: Vec<IpNet>) -> Self {
        // Store networks truncated to their prefix so `10.1.2.3/8` behaves as `10.0.0.0/8`.
        Self {
            allow: allow.into_iter().map(|n| n.trunc()).collect(),
        }
    }

    /// True when `ip` may ask recursive questions. An IPv4-mapped IPv6 source
    /// (`::ffff:a.b.c.d`, seen on dual-stack sockets) is judged as the IPv4 address it is.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_loopback() || self.allow.iter().any(|net| net.contains(&ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn loopback_is_always_allowed() {
        let acl = Acl::default();
        assert!(acl.allows(ip("127.0.0.1")));
        assert!(acl.allows(ip("127.54.0.9")));
        assert!(acl.allows(ip("::1")));
        assert!(acl.allows(ip("::ffff:127.0.0.1")));
        assert!(!acl.allows(ip("192.0.2.1")));
        assert!(!acl.allows(ip("2001:db8::1")));
    }

    #[test]
    fn allow_networks_are_honoured() {
        let acl = Acl::new(vec![
            "10.1.2.3/8".parse().expect("net"),
            "2001:db8::/32".parse().expect("net"),
        ]);
        assert!(acl.allows(ip("10.200.0.1")));
        assert!(acl.allows(ip("::ffff:10.0.0.1")));
        assert!(acl.allows(ip("2001:db8:1::5")));
        assert!(!acl.allows(ip("11.0.0.1")));
        assert!(!acl.allows(ip("2001:db9::1")));
    }
}
