//! One question: the key of the caches and the unit of resolution.

use std::fmt;

use hickory_proto::op::Query;
use hickory_proto::rr::{DNSClass, Name, RecordType};

/// One question, as the resolver and the cache key it: the name is kept lowercased and
/// fully qualified so that equal questions compare equal whatever the client's case.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Question {
    pub name: Name,
    pub qtype: RecordType,
    pub qclass: DNSClass,
}

impl Question {
    pub fn new(name: Name, qtype: RecordType) -> Self {
        Self::with_class(name, qtype, DNSClass::IN)
    }

    pub fn with_class(name: Name, qtype: RecordType, qclass: DNSClass) -> Self {
        let mut name = name.to_lowercase();
        name.set_fqdn(true);
        Self {
            name,
            qtype,
            qclass,
        }
    }

    pub fn from_query(q: &Query) -> Self {
        Self::with_class(q.name.clone(), q.query_type, q.query_class)
    }

    pub fn to_query(&self) -> Query {
        let mut q = Query::query(self.name.clone(), self.qtype);
        q.set_query_class(self.qclass);
        q
    }
}

impl fmt::Display for Question {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, self.qtype)
    }
}
