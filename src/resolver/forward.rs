//! Forward and stub zones from the configuration: zone cuts that do not come from the
//! delegation cache (Unbound's `forward-zone` and `stub-zone`, which are delegation points
//! flagged as forward or taken from config).
//!
//! * A **forward** zone's servers are recursive resolvers: they are asked with RD set, with
//!   the full name (no QNAME minimisation), and their recursive answers are final.
//! * A **stub** zone's servers are authoritative: iteration starts at them (RD clear) and
//!   follows their referrals below, as from any cut.
//!
//! The most specific configured zone holding a name applies; a locally served zone of the
//! same name yields to it (`local/`), one more specific does not.

use std::collections::HashMap;
use std::sync::Arc;

use hickory_proto::rr::Name;

use crate::transport::Upstream;

/// What a configured zone does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ZoneKind {
    /// Ask these recursive servers (RD set). With `first`, iterate as usual if they all
    /// fail (Unbound's `forward-first`).
    Forward { first: bool },
    /// Start iterating at these authoritative servers.
    Stub,
}

/// One `[[forward]]` or `[[stub]]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneRule {
    pub zone: Name,
    pub kind: ZoneKind,
    pub servers: Arc<[Upstream]>,
}

impl ZoneRule {
    pub fn is_forward(&self) -> bool {
        matches!(self.kind, ZoneKind::Forward { .. })
    }
}

/// The configured zones, found by the closest enclosing zone of a name.
#[derive(Clone, Debug, Default)]
pub struct ZoneRules {
    rules: HashMap<Name, Arc<ZoneRule>>,
    /// The longest configured zone in labels: names shorter than nothing skip the walk.
    deepest: usize,
}

/// Why a set of rules cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZoneRulesError {
    #[error("zone {0} is configured twice (forward and stub, or two entries): keep one")]
    Twice(Name),
    #[error("zone {0} has no servers: give at least one")]
    NoServers(Name),
}

impl ZoneRules {
    pub fn new(rules: Vec<ZoneRule>) -> Result<Self, ZoneRulesError> {
        let mut map = HashMap::new();
        let mut deepest = 0;
        for mut r in rules {
            r.zone = r.zone.to_lowercase();
            if r.servers.is_empty() {
                return Err(ZoneRulesError::NoServers(r.zone));
            }
            deepest = deepest.max(r.zone.num_labels() as usize);
            let zone = r.zone.clone();
            if map.insert(zone.clone(), Arc::new(r)).is_some() {
                return Err(ZoneRulesError::Twice(zone));
            }
        }
        Ok(Self {
            rules: map,
            deepest,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The most specific configured zone at or above `name`.
    pub fn find(&self, name: &Name) -> Option<&Arc<ZoneRule>> {
        if self.rules.is_empty() {
            return None;
        }
        let mut n = name.to_lowercase();
        while n.num_labels() as usize > self.deepest {
            n = n.base_name();
        }
        loop {
            if let Some(r) = self.rules.get(&n) {
                return Some(r);
            }
            if n.is_root() {
                return None;
            }
            n = n.base_name();
        }
    }

    /// Everything is forwarded (`zone = "."`, not forward-first): the root is never asked,
    /// so it is not primed either (no plaintext query to the root servers beside the
    /// forwarders, which matters when they are reached over TLS).
    pub fn forwards_everything(&self) -> bool {
        self.rules
            .get(&Name::root())
            .is_some_and(|r| r.kind == ZoneKind::Forward { first: false })
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<ZoneRule>> {
        self.rules.values()
    }
}
