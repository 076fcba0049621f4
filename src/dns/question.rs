//! One question: the key of the caches and the unit of resolution.

use std::fmt;
use std::hash::{Hash, Hasher};

use hickory_proto::op::Query;
use hickory_proto::rr::{DNSClass, Name, RecordType};

use super::wire::KeyBuf;

/// One question, as the resolver and the cache key it: the name is kept lowercased and
/// fully qualified so that equal questions compare equal whatever the client's case.
#[derive(Clone, Debug, PartialEq, Eq)]
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
        let mut name = name;
        lowercase(&mut name);
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

/// Lowercases `name` in place. hickory's `to_lowercase` rebuilds the whole name (an
/// allocation when it is long): only done when there is a capital to lower.
pub fn lowercase(name: &mut Name) {
    if name.iter().any(has_capital) {
        *name = name.to_lowercase();
    }
}

/// Whether `label` holds an ASCII capital, looked for 16 bytes at a time (a fold the
/// compiler turns into vector instructions) rather than a byte at a time.
fn has_capital(label: &[u8]) -> bool {
    let blocks = label.chunks_exact(16);
    let tail = blocks.remainder().iter().any(u8::is_ascii_uppercase);
    tail || blocks
        .into_iter()
        .any(|b| b.iter().fold(false, |up, c| up | c.is_ascii_uppercase()))
}

/// Hashes the cache key (lowercased wire name, type, class) in one write: hickory's `Name`
/// feeds the hasher a byte at a time. Consistent with `Eq`, which ignores case too.
impl Hash for Question {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(KeyBuf::of(self).as_bytes());
    }
}

impl fmt::Display for Question {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, self.qtype)
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    /// Equal questions hash alike whatever the case of their names (`Eq` ignores case), and
    /// `lowercase` lowers only what needs it.
    #[test]
    fn questions_that_differ_in_case_only_are_equal_and_hash_alike() {
        let upper = Question {
            name: Name::from_ascii("WwW.Example.COM.").unwrap(),
            qtype: RecordType::A,
            qclass: DNSClass::IN,
        };
        let lower = Question::new(Name::from_ascii("www.example.com").unwrap(), RecordType::A);
        assert!(lower
            .name
            .eq_case(&Name::from_ascii("www.example.com.").unwrap()));
        assert_eq!(upper, lower);
        let state = std::hash::RandomState::new();
        assert_eq!(state.hash_one(&upper), state.hash_one(&lower));
        let other = Question::new(lower.name.clone(), RecordType::AAAA);
        assert_ne!(state.hash_one(&other), state.hash_one(&lower));

        let mut name = upper.name.clone();
        lowercase(&mut name);
        assert!(name.eq_case(&lower.name));
        // Capitals in the 16-byte blocks and in the tail of long labels are found.
        for at in [0, 15, 16, 31, 32, 40] {
            let mut label = vec![b'x'; 41];
            label[at] = b'Q';
            assert!(has_capital(&label), "capital at {at}");
            label[at] = b'q';
            assert!(!has_capital(&label));
        }
        assert!(Question::from_query(&upper.to_query())
            .name
            .eq_case(&lower.name));
    }
}
