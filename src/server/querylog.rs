//! The query log (`--query-log`, off by default): one line per reply sent, at INFO under the
//! tracing target `hopdns::query`, so it goes wherever the other logs go, in text or JSON.
//!
//! Fields: `client` (address, or with `--query-log-hash-clients` a keyed hash of the IP so
//! one client's queries can be told apart without recording who it is; the key is random
//! per process, so hashes do not link across restarts), `name`, `qtype`, `rcode`, `proto`,
//! `bytes`. Only the reply's header and question are decoded.

use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;

use hickory_proto::op::{Header, Query};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use super::Proto;

/// Tracing target of query log lines.
pub const TARGET: &str = "hopdns::query";

#[derive(Clone, Debug)]
pub struct QueryLog {
    /// Set when client addresses are hashed; the hasher holds the per-process key.
    hasher: Option<RandomState>,
}

impl QueryLog {
    pub fn new(hash_clients: bool) -> Self {
        Self {
            hasher: hash_clients.then(RandomState::new),
        }
    }

    /// How `client` appears in the log.
    pub fn client(&self, client: SocketAddr) -> String {
        match &self.hasher {
            Some(h) => format!("{:016x}", h.hash_one(client.ip().to_canonical())),
            None => client.ip().to_canonical().to_string(),
        }
    }

    /// Logs one encoded reply to `client`.
    pub fn reply(&self, reply: &[u8], client: SocketAddr, proto: Proto) {
        let mut decoder = BinDecoder::new(reply);
        let Ok(header) = Header::read(&mut decoder) else {
            return;
        };
        let query = (header.counts.queries > 0)
            .then(|| Query::read(&mut decoder).ok())
            .flatten();
        let (name, qtype) = match &query {
            Some(q) => (q.name.to_string(), q.query_type.to_string()),
            None => ("-".to_string(), "-".to_string()),
        };
        let rcode = crate::metrics::rcode_name(u16::from(header.metadata.response_code));
        tracing::info!(
            target: TARGET,
            client = %self.client(client),
            name = %name,
            qtype = %qtype,
            rcode = %rcode,
            proto = ?proto,
            tc = header.metadata.truncation,
            bytes = reply.len(),
            "query"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_clients_are_stable_within_a_process_and_hide_the_address() {
        let log = QueryLog::new(true);
        let a: SocketAddr = "192.0.2.7:4000".parse().unwrap();
        let b: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        assert_eq!(log.client(a), log.client(b), "same host, any port");
        assert!(!log.client(a).contains("192.0.2.7"));
        assert_eq!(QueryLog::new(false).client(a), "192.0.2.7");
    }
}
