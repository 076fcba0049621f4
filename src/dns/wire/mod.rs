//! Reading DNS messages straight from their bytes: the one bounds-checked codec for the
//! places that must not decode a whole message (the cache-hit path, cache keys, RRL slips,
//! reply counters, EDNS option checks, redirect checks on ready replies).
//!
//! Every reader returns `None` instead of reading past the end, and nothing here allocates.
//! Whole messages are decoded with hickory-proto everywhere else. The fuzz target `wire`
//! runs arbitrary bytes through every reader and checks them against hickory's decoder.

mod key;
mod plain;

use std::ops::Range;

use hickory_proto::rr::Name;

pub use key::{dotted_key, key_name, KeyBuf, MAX_KEY};
pub use plain::{parse_plain_query, PlainQuery};

/// Bytes of the fixed header (RFC 1035 §4.1.1).
pub const HEADER_LEN: usize = 12;

/// Bytes of our OPT pseudo-record ([`opt_record`]).
pub const OPT_LEN: usize = 11;

/// Our OPT pseudo-record as it goes into a message we write (RFC 6891 §6.1.2): root owner,
/// TYPE 41, the payload we accept as CLASS, extended RCODE 0, version 0, DO as given (RFC
/// 3225 §3), no options. The same in every query and reply we send.
pub fn opt_record(payload: u16, dnssec_ok: bool) -> [u8; OPT_LEN] {
    let [p0, p1] = payload.to_be_bytes();
    let flags = if dnssec_ok { 0x80 } else { 0 };
    [0, 0, 41, p0, p1, 0, 0, flags, 0, 0, 0]
}

/// The big-endian `u16` at `at`.
#[inline(always)]
pub fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([
        *b.get(at)?,
        *b.get(at.checked_add(1)?)?,
    ]))
}

/// Writes `name` uncompressed into `out`: each label's length byte, its bytes through `copy`
/// (as they are, lowercased, case-randomised), then the root label; returns the length.
/// `Err` holds the length of the labels that fitted, without the root label, when `out` is
/// too short; never with 255 bytes or more, as a hickory `Name` is at most 255 wire bytes
/// (RFC 1035 §3.1).
#[inline(always)]
pub fn write_name(
    name: &Name,
    out: &mut [u8],
    mut copy: impl FnMut(&[u8], &mut [u8]),
) -> Result<usize, usize> {
    let mut len = 0;
    for label in name.iter() {
        // Room for the label and, after it, the root label.
        let end = len + 1 + label.len();
        if end >= out.len() {
            return Err(len);
        }
        out[len] = label.len() as u8;
        copy(label, &mut out[len + 1..end]);
        len = end;
    }
    match out.get_mut(len) {
        Some(root) => {
            *root = 0;
            Ok(len + 1)
        }
        None => Err(len),
    }
}

/// The offset just past the (possibly compressed) name at `at` in a message; `None` if it
/// runs off the end or holds a label type other than length or pointer (RFC 1035 §4.1.4).
pub fn skip_name(wire: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *wire.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => return (at + 2 <= wire.len()).then_some(at + 2),
            l if l <= 63 => at += 1 + usize::from(l),
            _ => return None,
        }
    }
}

/// The offset just past the first question (name, type, class); `None` if there is none
/// or it runs off the end.
pub fn first_question_end(msg: &[u8]) -> Option<usize> {
    if u16_at(msg, 4)? == 0 {
        return None;
    }
    let at = skip_name(msg, HEADER_LEN)? + 4;
    (at <= msg.len()).then_some(at)
}

/// The type of the first question, read without decoding the message.
pub fn first_question_type(msg: &[u8]) -> Option<u16> {
    let end = first_question_end(msg)?;
    u16_at(msg, end - 4)
}

/// One resource record found by [`records`]: offsets into the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordAt {
    pub rtype: u16,
    /// Where its 4-byte TTL starts.
    pub ttl_at: usize,
    /// Its RDATA.
    pub rdata: Range<usize>,
}

/// The records of a message in order (answer, authority, additional), after its questions.
/// The walk stops at the first record that runs off the end; [`Records::end`] then says
/// `None`.
pub fn records(msg: &[u8]) -> Records<'_> {
    let counts = (|| {
        let questions = u16_at(msg, 4)?;
        let records = usize::from(u16_at(msg, 6)?)
            + usize::from(u16_at(msg, 8)?)
            + usize::from(u16_at(msg, 10)?);
        let mut at = HEADER_LEN;
        for _ in 0..questions {
            at = skip_name(msg, at)? + 4;
        }
        (at <= msg.len()).then_some((at, records))
    })();
    match counts {
        Some((at, left)) => Records {
            msg,
            at: Some(at),
            left,
        },
        None => Records {
            msg,
            at: None,
            left: 0,
        },
    }
}

/// Iterator returned by [`records`].
pub struct Records<'a> {
    msg: &'a [u8],
    /// Where the next record starts; `None` once the walk failed.
    at: Option<usize>,
    left: usize,
}

impl Records<'_> {
    /// Where the last record ends, once every record has been walked; `None` if the message
    /// is malformed (or records are left).
    pub fn end(&self) -> Option<usize> {
        self.at.filter(|_| self.left == 0)
    }
}

impl Iterator for Records<'_> {
    type Item = RecordAt;

    fn next(&mut self) -> Option<RecordAt> {
        if self.left == 0 {
            return None;
        }
        let record = (|| {
            let at = skip_name(self.msg, self.at?)?;
            let rtype = u16_at(self.msg, at)?;
            let rdlen = usize::from(u16_at(self.msg, at + 8)?);
            let rdata = at + 10..at + 10 + rdlen;
            (rdata.end <= self.msg.len()).then_some(RecordAt {
                rtype,
                ttl_at: at + 4,
                rdata,
            })
        })();
        self.left -= 1;
        self.at = record.as_ref().map(|r| r.rdata.end);
        if record.is_none() {
            self.left = 0;
        }
        record
    }
}

/// The labels of an uncompressed wire name.
pub fn wire_labels(name: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let len = usize::from(*name.get(at)?);
        if len == 0 {
            return None;
        }
        let label = name.get(at + 1..at + 1 + len)?;
        at += 1 + len;
        Some(label)
    })
}

/// Whether wire name `name` is `zone` or below it (both lowercase, uncompressed).
pub fn wire_is_under(name: &[u8], zone: &[u8]) -> bool {
    let mut at = 0;
    while at < name.len() {
        if name[at..] == *zone {
            return true;
        }
        let len = usize::from(name[at]);
        if len == 0 {
            break;
        }
        at += 1 + len;
    }
    zone == [0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::rdata::{A, CNAME};
    use hickory_proto::rr::{Name, RData, Record, RecordType};

    /// A name is written label by label through `copy`, ending in the root label; a buffer
    /// too short for it gets the labels that fit, with room left for the root label.
    #[test]
    fn write_name_writes_labels_and_the_root_and_reports_a_cut() {
        let name = Name::from_ascii("www.Example.com.").unwrap();
        let mut out = [0xffu8; 32];
        let len = write_name(&name, &mut out, |l, to| to.copy_from_slice(l)).unwrap();
        assert_eq!(&out[..len], b"\x03www\x07Example\x03com\x00");
        let len = write_name(&name, &mut out, |l, to| {
            for (t, b) in to.iter_mut().zip(l) {
                *t = b.to_ascii_uppercase();
            }
        })
        .unwrap();
        assert_eq!(&out[..len], b"\x03WWW\x07EXAMPLE\x03COM\x00");
        assert_eq!(write_name(&Name::root(), &mut out, |_, _| {}), Ok(1));
        assert_eq!(out[0], 0);
        // 4 + 8 + 4 bytes of labels and the root: 17 fit in 17, not in 16 or 12.
        assert_eq!(
            write_name(&name, &mut [0; 17], |l, to| to.copy_from_slice(l)),
            Ok(17)
        );
        assert_eq!(
            write_name(&name, &mut [0; 16], |l, to| to.copy_from_slice(l)),
            Err(12)
        );
        assert_eq!(
            write_name(&name, &mut [0; 12], |l, to| to.copy_from_slice(l)),
            Err(4)
        );
        // The longest name there is (255 wire bytes) fits in 255.
        let longest =
            Name::from_ascii(format!("{0}.{0}.{0}.{1}.", "a".repeat(63), "b".repeat(61))).unwrap();
        assert_eq!(
            write_name(&longest, &mut [0; 255], |l, to| to.copy_from_slice(l)),
            Ok(255)
        );
        assert!(write_name(&longest, &mut [0; 254], |l, to| to.copy_from_slice(l)).is_err());
    }

    fn reply() -> Vec<u8> {
        let name = Name::from_ascii("www.example.com.").unwrap();
        let mut m = Message::query();
        m.add_query(Query::query(name.clone(), RecordType::AAAA));
        m.add_answer(Record::from_rdata(
            name.clone(),
            300,
            RData::CNAME(CNAME(Name::from_ascii("web.example.com.").unwrap())),
        ));
        m.add_additional(Record::from_rdata(name, 60, RData::A(A::new(192, 0, 2, 1))));
        m.to_vec().unwrap()
    }

    #[test]
    fn questions_and_records_are_walked_in_place() {
        let wire = reply();
        assert_eq!(first_question_type(&wire), Some(28));
        assert_eq!(first_question_end(&wire), Some(12 + 17 + 4));
        let mut walk = records(&wire);
        let kinds: Vec<u16> = walk.by_ref().map(|r| r.rtype).collect();
        assert_eq!(kinds, [5, 1]);
        assert_eq!(walk.end(), Some(wire.len()));
        let ttls: Vec<u32> = records(&wire)
            .map(|r| u32::from_be_bytes(wire[r.ttl_at..r.ttl_at + 4].try_into().unwrap()))
            .collect();
        assert_eq!(ttls, [300, 60]);
    }

    #[test]
    fn every_cut_short_message_is_refused_without_panicking() {
        let wire = reply();
        for n in 0..wire.len() {
            let short = &wire[..n];
            let mut walk = records(short);
            for _ in walk.by_ref() {}
            assert_eq!(walk.end(), None, "{n} bytes");
            let _ = first_question_type(short);
        }
        assert_eq!(skip_name(b"\xc0", 0), None, "half a pointer");
        assert_eq!(skip_name(b"\x40", 0), None, "extended label type");
    }

    #[test]
    fn under_a_zone_means_at_a_label_boundary() {
        assert!(wire_is_under(b"\x03www\x07example\x00", b"\x07example\x00"));
        assert!(wire_is_under(b"\x07example\x00", b"\x07example\x00"));
        assert!(!wire_is_under(
            b"\x07example\x00",
            b"\x03www\x07example\x00"
        ));
        assert!(!wire_is_under(b"\x08xexample\x00", b"\x07example\x00"));
        assert!(wire_is_under(b"\x07example\x00", b"\x00"));
    }
}
