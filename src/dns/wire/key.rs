//! Cache keys: a question in wire form with its name lowercased, built on the stack, and
//! the dotted lowercase names the redirect rules are keyed by.

use hickory_proto::rr::{DNSClass, Name, RecordType};

use crate::dns::Question;

/// Longest key: a 255-byte wire name, type and class.
pub const MAX_KEY: usize = 255 + 4;

/// A question key built on the stack: lowercase wire name, then type and class.
pub struct KeyBuf {
    buf: [u8; MAX_KEY],
    len: usize,
}

impl KeyBuf {
    /// The key of `q` (its name is already lowercase: [`Question`] keeps it so).
    pub fn of(q: &Question) -> Self {
        Self::from_parts(&q.name, q.qtype, q.qclass)
    }

    pub fn from_parts(name: &Name, qtype: RecordType, qclass: DNSClass) -> Self {
        let mut k = KeyBuf {
            buf: [0; MAX_KEY],
            len: 0,
        };
        // The name leaves room for type and class. It always fits (a `Name` is at most 255
        // wire bytes); were it cut, the key would end after the labels that fitted.
        k.len = match super::write_name(name, &mut k.buf[..MAX_KEY - 4], |label, to| {
            to.copy_from_slice(label)
        }) {
            Ok(len) => len,
            Err(len) => {
                k.buf[len] = 0;
                len + 1
            }
        };
        // One pass over the whole name: a length byte is at most 63, below b'A', so
        // lowercasing leaves it as it is.
        k.buf[..k.len].make_ascii_lowercase();
        k.push_type_class(u16::from(qtype), u16::from(qclass));
        k
    }

    /// The key of a wire name (uncompressed, already checked) with type and class,
    /// lowercasing as it copies: the fast path builds its key straight from the query bytes.
    #[inline(always)]
    pub fn from_wire(name: &[u8], qtype: u16, qclass: u16) -> Option<Self> {
        if name.len() + 4 > MAX_KEY {
            return None;
        }
        let mut k = KeyBuf {
            buf: [0; MAX_KEY],
            len: name.len(),
        };
        for (d, s) in k.buf[..name.len()].iter_mut().zip(name) {
            *d = s.to_ascii_lowercase();
        }
        k.push_type_class(qtype, qclass);
        Some(k)
    }

    fn push_type_class(&mut self, qtype: u16, qclass: u16) {
        self.buf[self.len..self.len + 2].copy_from_slice(&qtype.to_be_bytes());
        self.buf[self.len + 2..self.len + 4].copy_from_slice(&qclass.to_be_bytes());
        self.len += 4;
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The wire name part of the key.
    pub fn name(&self) -> &[u8] {
        &self.buf[..self.len - 4]
    }
}

/// The wire name at the start of a key.
pub fn key_name(key: &[u8]) -> &[u8] {
    &key[..key.len().saturating_sub(4)]
}

/// The dotted lowercase key of an uncompressed wire `name` (labels joined by `.`, no
/// trailing dot), as the redirect rules store names; `None` if the name is malformed,
/// compressed, the root, or too long for `buf`.
pub fn dotted_key<'a>(name: &[u8], buf: &'a mut [u8; 256]) -> Option<&'a [u8]> {
    let mut pos = 0usize;
    let mut len = 0usize;
    loop {
        let n = usize::from(*name.get(pos)?);
        pos += 1;
        if n == 0 {
            break;
        }
        if n > 63 {
            return None;
        }
        let label = name.get(pos..pos + n)?;
        pos += n;
        let need = n + usize::from(len > 0);
        if len + need > buf.len() {
            return None;
        }
        if len > 0 {
            buf[len] = b'.';
            len += 1;
        }
        let dest = &mut buf[len..len + n];
        dest.copy_from_slice(label);
        dest.make_ascii_lowercase();
        len += n;
    }
    (len > 0).then_some(&buf[..len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_lowercase_wire_names_with_type_and_class() {
        let q = Question::new(Name::from_ascii("WwW.Example.").unwrap(), RecordType::A);
        let k = KeyBuf::of(&q);
        assert_eq!(k.as_bytes(), b"\x03www\x07example\x00\x00\x01\x00\x01");
        let w = KeyBuf::from_wire(b"\x03WWW\x07exAMPLE\x00", 1, 1).unwrap();
        assert_eq!(w.as_bytes(), k.as_bytes());
    }

    /// The lowercasing reaches every byte of the longest names and leaves the length
    /// bytes, type and class alone.
    #[test]
    fn long_keys_are_lowercased_whole() {
        let (l63, l61) = ("AbCdEfGhIj".repeat(7), "Zz".repeat(31));
        let name = format!(
            "{}.{}.{}.{}.",
            &l63[..63],
            &l63[..63],
            &l63[..63],
            &l61[..61]
        );
        let q = Question::new(Name::from_ascii(&name).unwrap(), RecordType::MX);
        let k = KeyBuf::from_parts(
            &Name::from_ascii(&name).unwrap(),
            RecordType::MX,
            DNSClass::IN,
        );
        assert_eq!(k.as_bytes().len(), 255 + 4);
        let want: Vec<u8> = [&[63u8][..], l63[..63].to_ascii_lowercase().as_bytes()]
            .concat()
            .repeat(3)
            .into_iter()
            .chain([61u8])
            .chain(l61[..61].to_ascii_lowercase().bytes())
            .chain([0, 0, 15, 0, 1])
            .collect();
        assert_eq!(k.as_bytes(), &want[..]);
        assert_eq!(KeyBuf::of(&q).as_bytes(), &want[..]);
    }

    #[test]
    fn dotted_keys_are_lowercase_and_refuse_bad_names() {
        let mut a = [0u8; 256];
        let wire = b"\x03WWW\x07Example\x03com\x00";
        assert_eq!(dotted_key(wire, &mut a), Some(&b"www.example.com"[..]));
        assert_eq!(dotted_key(&wire[..10], &mut a), None, "cut short");
        assert_eq!(dotted_key(b"\x00", &mut a), None, "the root");
        assert_eq!(dotted_key(b"\xc0\x0c", &mut a), None, "compressed");
    }
}
