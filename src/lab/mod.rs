//! The lab: an offline "little internet" of authoritative DNS servers on loopback, used by
//! the integration tests and `hopdns lab`.
//!
//! [`Lab::start`] binds every server below on `127.53.N.x:53`, UDP and TCP (`N` is
//! [`LabConfig::net`], so test suites can run side by side on different networks; hosts
//! `.200`-`.254` are left free for resolvers under test, `.199` is used by `WrongSource`).
//! Zone files are embedded (`include_str!`) from `src/lab/zones/`. They are ordinary RFC 1035
//! zone files written for network 0; the loader replaces every `127.53.0.` with `127.53.N.` in
//! the text before parsing. Answer data uses documentation ranges only (192.0.2.0/24,
//! 198.51.100.0/24, 2001:db8::/32); no NS name has AAAA glue.
//!
//! | server      | NS name              | zones                    | purpose / default fault |
//! |-------------|----------------------|--------------------------|-------------------------|
//! | 127.53.N.1  | a.root-servers.net   | `.`                      | root; delegates com, net, org with glue |
//! | 127.53.N.2  | b.root-servers.net   | `.`                      | root |
//! | 127.53.N.10 | ns1.nic.com          | `com.`                   | TLD; carries the poison.com lie glue |
//! | 127.53.N.11 | ns2.nic.com          | `com.`                   | TLD |
//! | 127.53.N.12 | ns1.nic.net          | `net.`                   | TLD; also a/b.root-servers.net A |
//! | 127.53.N.13 | ns1.nic.org          | `org.`                   | TLD; example.org delegated glueless |
//! | 127.53.N.20 | ns1.example.com      | `example.com.`           | main test data (below) |
//! | 127.53.N.21 | ns2.example.com      | `example.com.`           | same |
//! | 127.53.N.22 | ns1.example.net      | `example.net.`           | `c2` CNAME c3.example.org., `www` A 192.0.2.22 |
//! | 127.53.N.23 | ns1.dnshost.net      | `dnshost.net.`           | `ns.dnshost.net` A 127.53.N.24 |
//! | 127.53.N.24 | ns.dnshost.net       | `example.org.`, `poison.com.` | glueless target; `www.example.org` 192.0.2.30, `c3` CNAME www.shop.com., `www.poison.com` 192.0.2.77 |
//! | 127.53.N.25 | ns1.wild.net         | `wild.net.`              | `*` A 192.0.2.50 + TXT "wildcard", `fixed` A 192.0.2.51 |
//! | 127.53.N.26 | ns1.shop.com         | `shop.com.`              | `www` A 192.0.2.60 only |
//! | 127.53.N.27 | ns1.faulty.com       | `faulty.com.`            | fault `Drop` (times out) |
//! | 127.53.N.28 | ns2.faulty.com       | `faulty.com.`            | fault `Refused` (lame) |
//! | 127.53.N.29 | ns3.faulty.com       | `faulty.com.`            | good; `www` A 192.0.2.70 |
//! | 127.53.N.31 | ns1.lame.com         | `lame.com.`              | fault `NoAa` (answers with AA=0); `www` A 192.0.2.90 |
//! | 127.53.N.32 | ns1.oldedns.com      | `oldedns.com.`           | fault `FormErrOnEdns`; `www` A 192.0.2.80 |
//! | 127.53.N.40 | ns1.loops.com        | `loops.com.`             | CNAME loops, delegation loop (with .41), wildcard CNAME chain c1..c20 |
//! | 127.53.N.41 | ns1.loops.net        | `loops.net.`             | the other half of those loops |
//! | 127.53.N.42 | ns1.nxns.com         | `nxns.com.`              | NXNS: `attack` delegated to 100 glueless names under victim.net |
//! | 127.53.N.43 | ns.victim.net        | `victim.net.`            | NXDOMAIN for every name below the apex |
//! | 127.53.N.66 | (poison)             | `poison.com.` (fake)     | `www.poison.com` A 198.51.100.66, reached only by trusting com's lie |
//! | 127.53.N.70 | `ns1.<zone>` of each DNSSEC case | `secure.net.`, `secure.org.`, `expired.net.`, ... (all of [`DNSSEC_CASES`] but one) | signed or deliberately broken zones, `www` A 192.0.2.1xx |
//! | 127.53.N.71 | ns1.unsigned.optout.com | `unsigned.optout.com.` | unsigned child of the NSEC3 opt-out zone |
//!
//! DNSSEC (`sign.rs`): the root (NSEC), com (NSEC3), net (NSEC), org (NSEC3) and the case zones
//! on .70 are signed at start with ECDSA P-256 keys (algorithm 13), new at each start or kept
//! in a state directory ([`Lab::start_with_keys`]); each signed child's DS (SHA-256) is in its
//! parent. [`Lab::trust_anchor`] is the root's DS and DNSKEY in zone-file form. The zones of
//! the table above (example.com and the rest) stay unsigned: their delegations are insecure
//! (the parent's NSEC/NSEC3 proves there is no DS), and replies to queries without DO are
//! what they were before signing. The cases, with what a validator must make of them
//! ([`DNSSEC_CASES`], checked against Unbound by `benches/dnssec/run.sh`): `secure.net` (NSEC)
//! and `secure.org` (NSEC3) answers, NXDOMAIN, NODATA and `*.wild` wildcards are secure;
//! `expired.net` and `notyet.net` have signatures outside their window (EDE 7, 8);
//! `dsnokey.net`'s DS matches no key (EDE 9); `nosig.net` signs only DNSKEY, NSEC and SOA (EDE
//! 10); `rsamd5.net` and `unknownalg.net` use algorithms 1 and 100 (insecure); `badnsec.net`'s
//! apex NSEC skips to `a.badnsec.net.`, so `nope.badnsec.net` has no cover (bogus, EDE 6);
//! `optout.com` is NSEC3 with opt-out and an unsigned child (insecure); `iter500.org` is NSEC3
//! with 500 iterations (answers secure, denials insecure); `insecure.net` is unsigned below the
//! signed net; `rollover.net` walks a KSK rollover ([`Lab::set_rollover`], [`RolloverPhase`]);
//! `keytrap.net` hides its real key and signatures behind 16 decoys with the same key tag
//! (KeyTrap, CVE-2023-50387: a validation budget gives up, EDE 9 from Unbound 1.17.1).
//! With DO, a signed parent's referral carries the DS and its RRSIG, or the NSEC/NSEC3 records
//! proving there is none (RFC 4035 §3.1.4).
//!
//! example.com data: `www` A 192.0.2.1 + AAAA 2001:db8::1; `alias` CNAME www; `v4only` A
//! 192.0.2.3 (AAAA: NODATA); `big` 8 TXT records, about 2 KB (TC over UDP, complete over TCP);
//! `many` 100 A records (192.0.2.100-149, 198.51.100.100-149); `chain` CNAME c2.example.net.
//! (-> c3.example.org. -> www.shop.com. -> 192.0.2.60: three CNAME links across four zones,
//! one delegated glueless); `ttl5` A 192.0.2.5 with TTL 5; anything else (e.g. `nope`) is
//! NXDOMAIN. TTLs are 300, SOA minimum 300.
//!
//! poison.com is delegated from com to `ns.dnshost.net.`, and com's referral also carries the
//! out-of-bailiwick "glue" `ns.dnshost.net A 127.53.N.66` (a lie: com is not authoritative
//! for net). It sits in `com.zone` as an out-of-zone record; the loader keeps out-of-zone
//! A/AAAA records out of the served data and adds them only to referrals naming that NS.
//!
//! Referrals are built by the lab from each zone's cut table (AA=0, NS in AUTHORITY, glue in
//! ADDITIONAL), because hickory-server 0.26.3's catalog gets them wrong. In-zone answers come
//! from hickory-server's `Catalog`. UDP replies are capped at 512 bytes without EDNS and at
//! min(client payload, 1232) with it; a reply that does not fit is sent as header, question
//! and OPT with TC=1. Faults ([`Fault`]) are per server IP and can be changed at runtime.

mod answers;
mod sign;
mod sockets;
mod zones;

pub use sign::{DnssecCase, RolloverPhase, Verdict, DNSSEC_CASES, ROLLOVER_ZONE};

#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::dnssec::rdata::DNSKEY;
use hickory_proto::rr::{Name, RecordType};
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::answers::Engine;
use self::sign::{sign_lab, Rollover};
use self::sockets::{lock, Server, Shared};
use self::zones::{default_fault, load_zone, ROOT_HOSTS, SERVERS, WRONG_SOURCE_HOST, ZONE_FILES};

/// Which lab network to use: servers live on `127.53.net.x`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LabConfig {
    pub net: u8,
}

/// One query received by a lab server (logged before any fault is applied).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedQuery {
    pub server: IpAddr,
    pub name: Name,
    pub qtype: RecordType,
    pub tcp: bool,
    pub edns: bool,
}

/// A misbehaviour of one lab server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// No reply (TCP: the connection is closed).
    Drop,
    /// Reply after this long (other queries are not held up).
    Delay(Duration),
    /// UDP: TC=1 with header, question and OPT only. TCP answers normally.
    Truncate,
    /// Reply with a different message ID.
    WrongId,
    /// UDP: reply from another lab address (127.53.N.199:53). TCP answers normally.
    WrongSource,
    /// Reply with bytes that do not decode (the ID is kept).
    Malformed,
    /// REFUSED.
    Refused,
    /// Lame: the normal answer with AA cleared.
    NoAa,
    /// SERVFAIL.
    ServFail,
    /// FORMERR (without OPT) to queries with OPT; normal answers to queries without.
    FormErrOnEdns,
    /// The normal reply with the question's name lowercased: a server that does not echo
    /// 0x20 case.
    LowercaseQuestion,
    /// The normal reply to a question about another name (`mismatch.invalid.`).
    WrongQuestion,
    /// A referral up to the root (`. NS a.root-servers.net.` with glue), AA clear.
    UpwardReferral,
    /// A referral to the zone this server serves itself (its apex NS set), AA clear.
    SelfReferral,
    /// UDP: TC=1 as `Truncate`; TCP: the connection is reset at once (RST, no reply).
    TruncateTcpReset,
    /// NXDOMAIN instead of NODATA: a server that breaks at empty non-terminals (RFC 8020
    /// §4, RFC 9156 §3's reason for relaxed minimisation).
    NxDomainForNoData,
    /// The normal reply plus forged records about names outside the server's zones:
    /// `www.example.net A 198.51.100.66` in ANSWER, `example.net NS ns.evil.example.net` in
    /// AUTHORITY, `ns1.example.net` and `www.shop.com A 198.51.100.66` in ADDITIONAL.
    ForeignRecords,
}

/// Why the lab could not start.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(
        "lab: cannot bind {proto} {addr} ({server}): {source} (port 53 needs privileges: \
         run as root or grant CAP_NET_BIND_SERVICE; is another lab on this network?)"
    )]
    Bind {
        addr: SocketAddr,
        proto: &'static str,
        server: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("lab: zone file src/lab/zones/{file}: {message}")]
    Zone { file: &'static str, message: String },
    #[error(
        "lab: DNSSEC key {}: {message} (remove the file to have the lab make a new key)",
        path.display()
    )]
    Key { path: PathBuf, message: String },
}

/// A running lab. Dropping it stops the servers in the background; [`Lab::shutdown`] also
/// waits until every socket is closed.
pub struct Lab {
    net: u8,
    shared: Arc<Shared>,
    token: CancellationToken,
    tracker: TaskTracker,
    servers: Vec<Arc<Server>>,
    anchor: String,
    rollover: Rollover,
}

impl Lab {
    /// Loads and signs the zones (fresh keys) and binds every lab server on port 53, UDP and
    /// TCP.
    pub async fn start(cfg: LabConfig) -> Result<Lab, LabError> {
        Lab::start_with_keys(cfg, None).await
    }

    /// [`Lab::start`], with the DNSSEC keys kept in `state_dir` (made on first use, read on
    /// later starts), so the trust anchor stays the same across starts.
    pub async fn start_with_keys(
        cfg: LabConfig,
        state_dir: Option<&Path>,
    ) -> Result<Lab, LabError> {
        let net = cfg.net;
        let addr = |host: u8| SocketAddr::from((Ipv4Addr::new(127, 53, net, host), 53));
        let bind_err = |addr, proto, server| {
            move |source| LabError::Bind {
                addr,
                proto,
                server,
                source,
            }
        };

        let shared = Arc::new(Shared::default());
        let alt_addr = addr(WRONG_SOURCE_HOST);
        let alt = Arc::new(UdpSocket::bind(alt_addr).await.map_err(bind_err(
            alt_addr,
            "UDP",
            "WrongSource socket",
        ))?);

        // Every zone is loaded and signed once; servers of the same zone share its records.
        let mut loaded = ZONE_FILES
            .iter()
            .map(|zf| load_zone(zf, net))
            .collect::<Result<Vec<_>, _>>()?;
        let signed = sign_lab(&mut loaded, state_dir, std::time::SystemTime::now())?;

        // Bind everything first: on error all sockets are dropped before returning.
        let mut bound = Vec::new();
        for spec in SERVERS {
            let zones: Vec<_> = loaded
                .iter()
                .filter(|z| spec.zones.contains(&z.file))
                .cloned()
                .collect();
            let a = addr(spec.host);
            let udp = UdpSocket::bind(a)
                .await
                .map_err(bind_err(a, "UDP", spec.name))?;
            let tcp = TcpListener::bind(a)
                .await
                .map_err(bind_err(a, "TCP", spec.name))?;
            let server = Server {
                ip: a.ip(),
                engine: Engine::new(zones)?,
                shared: shared.clone(),
                alt: alt.clone(),
            };
            if let Some(fault) = default_fault(spec.host) {
                lock(&shared.faults).insert(a.ip(), fault);
            }
            bound.push((Arc::new(server), Arc::new(udp), tcp));
        }

        let token = CancellationToken::new();
        let tracker = TaskTracker::new();
        let servers = bound.iter().map(|(s, _, _)| s.clone()).collect();
        for (server, udp, tcp) in bound {
            let fut = sockets::udp_loop(server.clone(), udp, tracker.clone(), token.clone());
            sockets::spawn_cancellable(&tracker, &token, fut);
            let fut = sockets::tcp_loop(server, tcp, tracker.clone(), token.clone());
            sockets::spawn_cancellable(&tracker, &token, fut);
        }
        drop(alt);
        tracing::debug!(net, servers = SERVERS.len(), "lab started");
        Ok(Lab {
            net,
            shared,
            token,
            tracker,
            servers,
            anchor: signed.anchor,
            rollover: signed.rollover,
        })
    }

    /// The lab's trust anchor: DS and DNSKEY of the root's key in zone-file form, as
    /// Unbound's `trust-anchor-file`, BIND and `--trust-anchor` read it.
    pub fn trust_anchor(&self) -> &str {
        &self.anchor
    }

    /// KSK1 and KSK2 of [`ROLLOVER_ZONE`] as DNSKEY RDATA (KSK1 without the REVOKE bit).
    pub fn rollover_keys(&self) -> &[DNSKEY; 2] {
        &self.rollover.keys
    }

    /// KSK1 of [`ROLLOVER_ZONE`] as a trust-anchor line, for RFC 5011 tests.
    pub fn rollover_anchor(&self) -> String {
        format!(
            "{}\t300\tIN\tDNSKEY\t{}\n",
            self.rollover.origin, self.rollover.keys[0]
        )
    }

    /// Switches the DNSKEY set of [`ROLLOVER_ZONE`] (and the signatures) to `phase`. A test
    /// walks the phases in order and advances its validator's clock between them.
    pub async fn set_rollover(&self, phase: RolloverPhase) {
        let Some(records) = self.rollover.phases.get(&phase) else {
            return;
        };
        for server in &self.servers {
            server
                .engine
                .replace_records(&self.rollover.origin, records)
                .await;
        }
    }

    /// The lab network number N.
    pub fn net(&self) -> u8 {
        self.net
    }

    /// `127.53.N.host`.
    pub fn addr(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(127, 53, self.net, host)
    }

    /// The root servers' addresses.
    pub fn root_servers(&self) -> Vec<IpAddr> {
        ROOT_HOSTS
            .iter()
            .map(|&h| IpAddr::V4(self.addr(h)))
            .collect()
    }

    /// Root hints for this lab in named.root format.
    pub fn root_hints(&self) -> String {
        let mut out = format!("; hopdns lab root hints (lab network {})\n", self.net);
        for (&host, letter) in ROOT_HOSTS.iter().zip('a'..) {
            let name = format!("{letter}.root-servers.net.");
            out.push_str(&format!(
                ".                        3600000      NS    {name}\n"
            ));
            out.push_str(&format!(
                "{name:<24} 3600000      A     {}\n",
                self.addr(host)
            ));
        }
        out
    }

    /// Sets (or with `None` clears) the fault of the server at `server`.
    pub fn set_fault(&self, server: IpAddr, fault: Option<Fault>) {
        let mut faults = lock(&self.shared.faults);
        match fault {
            Some(f) => faults.insert(server, f),
            None => faults.remove(&server),
        };
    }

    /// Every query any lab server received, in order.
    pub fn query_log(&self) -> Vec<LoggedQuery> {
        lock(&self.shared.log).clone()
    }

    /// Empties the query log.
    pub fn clear_query_log(&self) {
        lock(&self.shared.log).clear();
    }

    /// Stops every server task and waits until all sockets are closed.
    pub async fn shutdown(self) {
        self.token.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.token.cancel();
    }
}
