//! A zone cut as one resolution sees it: its name servers with the addresses to ask (the
//! child's own, else the parent's glue, which is kept as a fallback), what was asked and what
//! failed, and which addresses may be asked at all.

use hashbrown::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hickory_proto::rr::{Name, RecordType};

use super::classify::Reply;
use super::forward::ZoneRule;
use super::machine::Settings;
use super::{Failure, Question};
use crate::cache::{Cache, Delegation, NsName};

/// One name server of the current cut, and how far its address lookup has gone.
#[derive(Clone, Debug)]
pub(super) struct Server {
    pub(super) name: Name,
    /// The addresses to ask: the child's own A/AAAA for the name when the cache has them,
    /// else the parent's glue.
    pub(super) addrs: Vec<IpAddr>,
    /// Parent glue that differs from the child's addresses: asked only when every address
    /// in `addrs` of the cut has failed (Unbound's parent-side fallback).
    pub(super) parent_glue: Vec<IpAddr>,
    pub(super) tried_a: bool,
    pub(super) tried_aaaa: bool,
}

/// The zone cut a frame is asking, with what this resolution learned of its servers.
#[derive(Clone, Debug)]
pub(super) struct Cut {
    pub(super) zone: Name,
    pub(super) servers: Vec<Server>,
    /// Queries answered or timed out, per address.
    pub(super) attempts: HashMap<IpAddr, u8>,
    /// Addresses that answered uselessly (lame, REFUSED, SERVFAIL): not asked again here.
    pub(super) bad: HashSet<IpAddr>,
    /// Each address is asked at most `round` times.
    pub(super) round: u8,
    /// The parent's glue is asked too: the child's addresses are spent.
    pub(super) parent_side: bool,
    /// The first provisional reply (recursion-lame, empty...), used when no server of the
    /// cut does better, with the server that sent it.
    pub(super) fallback: Option<(Reply, SocketAddr, Question)>,
    /// A name server whose address could only be found through this zone itself (or
    /// through a lookup already under way): why the cut ran out of addresses.
    pub(super) cycle: Option<Name>,
    /// A forward or stub zone from the configuration: its servers (with their ports and
    /// transports) are asked, whatever their address (as the root hints are).
    pub(super) configured: Option<Arc<ZoneRule>>,
}

impl Cut {
    /// Builds a cut. For each NS name, the child's own addresses (answers in the cache) are
    /// preferred to the parent's glue, which is kept as a fallback; a glueless name whose
    /// address the cache knows costs no query.
    pub(super) fn new(d: Delegation, cache: &Cache, now: u64, settings: &Settings) -> Self {
        // Only the families we may ask are looked up.
        let families: &[RecordType] = match (settings.ipv4, settings.ipv6) {
            (true, true) => &[RecordType::A, RecordType::AAAA],
            (true, false) => &[RecordType::A],
            (false, true) => &[RecordType::AAAA],
            (false, false) => &[],
        };
        let servers = d
            .servers
            .into_iter()
            .map(|NsName { name, addrs: glue }| {
                let mut child = Vec::new();
                for &t in families {
                    if let Some(rs) = cache.answers.records(&name, t, now) {
                        child.extend(rs.iter().filter_map(|r| r.data.ip_addr()));
                    }
                }
                let (addrs, parent_glue) = if child.is_empty() {
                    (glue, Vec::new())
                } else {
                    let other = glue.into_iter().filter(|ip| !child.contains(ip)).collect();
                    (child, other)
                };
                Server {
                    name,
                    addrs,
                    parent_glue,
                    tried_a: false,
                    tried_aaaa: false,
                }
            })
            .collect();
        Self::fresh(d.zone, servers, None)
    }

    /// A cut nobody has asked yet: no attempts, first round, child side.
    fn fresh(zone: Name, servers: Vec<Server>, configured: Option<Arc<ZoneRule>>) -> Self {
        Self {
            zone,
            servers,
            attempts: HashMap::new(),
            bad: HashSet::new(),
            round: 1,
            parent_side: false,
            fallback: None,
            cycle: None,
            configured,
        }
    }

    /// The cut of a forward or stub zone: its configured servers. A server given as
    /// `tls://IP@NAME` is shown under NAME, the others under the zone's name.
    pub(super) fn configured(rule: Arc<ZoneRule>) -> Self {
        let servers = rule
            .servers
            .iter()
            .map(|u| Server {
                name: u
                    .tls_name()
                    .and_then(|n| Name::from_ascii(&*n).ok())
                    .unwrap_or_else(|| rule.zone.clone()),
                addrs: vec![u.addr.ip()],
                parent_glue: Vec::new(),
                tried_a: true,
                tried_aaaa: true,
            })
            .collect();
        Self::fresh(rule.zone.clone(), servers, Some(rule))
    }

    /// A forward zone's cut: its servers recurse for us.
    pub(super) fn is_forward(&self) -> bool {
        self.configured.as_ref().is_some_and(|r| r.is_forward())
    }

    /// The port to ask `ip` on: a configured server's own, else 53.
    fn port(&self, ip: IpAddr) -> u16 {
        self.configured
            .as_ref()
            .and_then(|r| r.servers.iter().find(|u| u.addr.ip() == ip))
            .map_or(53, |u| u.addr.port())
    }

    pub(super) fn server_name(&self, ip: IpAddr) -> Option<Name> {
        self.servers
            .iter()
            .find(|s| s.addrs.contains(&ip) || s.parent_glue.contains(&ip))
            .map(|s| s.name.clone())
            // A configured server given by address alone has no name of its own.
            .filter(|n| self.configured.is_none() || *n != self.zone)
    }

    /// The parent's glue addresses not among `candidates` (the driver's fallback when every
    /// child address is timing out).
    pub(super) fn parent_glue_besides(
        &self,
        candidates: &[SocketAddr],
        settings: &Settings,
    ) -> Vec<SocketAddr> {
        self.askable(self.servers.iter().map(|s| &s.parent_glue[..]), settings)
            .into_iter()
            .filter(|a| !candidates.contains(a))
            .collect()
    }

    /// The next glueless name server whose address is to be looked up (A, then AAAA), marked
    /// as tried. One that lies inside this zone can only be found by asking the zone
    /// itself: a delegation cycle, remembered in `cycle`.
    pub(super) fn next_glueless(&mut self, settings: &Settings) -> Option<(Name, RecordType)> {
        let root = self.zone.is_root();
        let zone = &self.zone;
        let mut cycle = None;
        let next = self.servers.iter_mut().find_map(|s| {
            if s.addrs
                .iter()
                .chain(&s.parent_glue)
                .any(|ip| root || usable(*ip, false, settings))
            {
                return None;
            }
            if !root && zone.zone_of(&s.name) {
                if s.addrs.is_empty() && s.parent_glue.is_empty() {
                    cycle.get_or_insert_with(|| s.name.clone());
                }
                return None;
            }
            if settings.ipv4 && !s.tried_a {
                s.tried_a = true;
                Some((s.name.clone(), RecordType::A))
            } else if settings.ipv6 && !s.tried_aaaa {
                s.tried_aaaa = true;
                Some((s.name.clone(), RecordType::AAAA))
            } else {
                None
            }
        });
        if self.cycle.is_none() {
            self.cycle = cycle;
        }
        next
    }

    /// Addresses a glueless lookup found for name server `ns`.
    pub(super) fn add_addresses(&mut self, ns: &Name, found: &[IpAddr]) {
        for s in self.servers.iter_mut().filter(|s| s.name == *ns) {
            for ip in found {
                if !s.addrs.contains(ip) {
                    s.addrs.push(*ip);
                }
            }
        }
    }

    /// Why the cut failed once everything is spent: its servers all failed, their addresses
    /// were all filtered, they form a delegation cycle, or none has an address at all.
    pub(super) fn failure(&self) -> Failure {
        let zone = self.zone.clone();
        if !self.attempts.is_empty() || !self.bad.is_empty() {
            Failure::ServersExhausted { zone }
        } else if self
            .servers
            .iter()
            .any(|s| s.addrs.iter().chain(&s.parent_glue).next().is_some())
        {
            Failure::NoAddress
        } else if let Some(ns) = self.cycle.clone() {
            Failure::DelegationLoop { zone, ns }
        } else {
            Failure::NoServerAddress { zone }
        }
    }

    /// Addresses not yet spent in this round, in the cut's order, parent glue included once
    /// `parent_side` is set.
    pub(super) fn candidates(&self, settings: &Settings) -> Vec<SocketAddr> {
        let parent_side = self.parent_side;
        let lists = self.servers.iter().flat_map(move |s| {
            let glue = if parent_side { &s.parent_glue[..] } else { &[] };
            [&s.addrs[..], glue]
        });
        self.askable(lists, settings)
    }

    /// The addresses of `lists` that may be asked now: not yet asked this round, not bad,
    /// usable under `settings`, each once.
    fn askable<'a>(
        &self,
        lists: impl Iterator<Item = &'a [IpAddr]>,
        settings: &Settings,
    ) -> Vec<SocketAddr> {
        // Configured servers are used whatever their address, as the root hints are.
        let root = self.zone.is_root() || self.configured.is_some();
        let mut c: Vec<SocketAddr> = Vec::new();
        for ip in lists.flatten() {
            let fresh = self.attempts.get(ip).copied().unwrap_or(0) < self.round;
            let sa = SocketAddr::new(*ip, self.port(*ip));
            // A configured server is checked against hopdns's own listen sockets (port
            // included) by `serve`; only the family rule applies here.
            let ok = if self.configured.is_some() {
                (ip.is_ipv4() && settings.ipv4) || (ip.is_ipv6() && settings.ipv6)
            } else {
                usable(*ip, root, settings)
            };
            if fresh && !self.bad.contains(ip) && ok && !c.contains(&sa) {
                c.push(sa);
            }
        }
        c
    }
}

/// May we send to `ip`? The family must be enabled; loopback (in any spelling) only with
/// `query_loopback`, except for the root cut (configured hints are used whatever their
/// address); never an unspecified, multicast or broadcast address, nor hopdns's own.
pub fn usable(ip: IpAddr, root_cut: bool, s: &Settings) -> bool {
    let family = match ip {
        IpAddr::V4(v4) => s.ipv4 && !v4.is_broadcast(),
        IpAddr::V6(_) => s.ipv6,
    };
    let embedded = embedded_v4(ip).map(IpAddr::V4);
    let unspecified = ip.is_unspecified() || embedded.is_some_and(|v4| v4.is_unspecified());
    let own = s.own_addrs.iter().any(|a| *a == ip || Some(*a) == embedded);
    family
        && !unspecified
        && !ip.is_multicast()
        && !own
        && (root_cut || s.query_loopback || !is_loopback_like(ip))
}

/// Loopback in any of its spellings: 127.0.0.0/8 and ::1, and 127.0.0.0/8 inside an IPv6
/// address (IPv4-mapped `::ffff:127.0.0.1`, IPv4-compatible `::127.0.0.1`, NAT64
/// `64:ff9b::127.0.0.1`, RFC 6052), which `is_loopback()` alone does not see.
pub fn is_loopback_like(ip: IpAddr) -> bool {
    ip.is_loopback() || embedded_v4(ip).is_some_and(|v4| v4.is_loopback())
}

/// The IPv4 address carried by an IPv4-mapped, IPv4-compatible or NAT64 well-known-prefix
/// (64:ff9b::/96, RFC 6052 §2.1) IPv6 address.
fn embedded_v4(ip: IpAddr) -> Option<std::net::Ipv4Addr> {
    let IpAddr::V6(v6) = ip else {
        return None;
    };
    let seg = v6.segments();
    let v4 = || std::net::Ipv4Addr::from((u32::from(seg[6]) << 16) | u32::from(seg[7]));
    match seg {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(v4()),
        // ::1 and :: are IPv6's own loopback and unspecified, not IPv4-compatible forms.
        [0, 0, 0, 0, 0, 0, hi, lo] if (hi, lo) != (0, 1) && (hi, lo) != (0, 0) => Some(v4()),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(v4()),
        _ => None,
    }
}
