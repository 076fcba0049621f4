//! Records in presentation form, as dig and zone files print them.

use hickory_proto::rr::Record;

use super::dname_target;

/// A record in presentation format, with TXT (and SPF) strings quoted as dig prints them:
/// each <character-string> in double quotes, `"` and backslash escaped with a backslash, bytes
/// outside printable ASCII as `\DDD` (RFC 1035 §5.1). hickory prints TXT data bare, and DNAME
/// (which it carries as unknown RDATA) as hex: its target is printed as a name (RFC 6672 §2.1).
pub fn record_text(r: &Record) -> String {
    use hickory_proto::rr::RData;
    if let Some(target) = dname_target(r) {
        return format!("{} {} {} DNAME {target}", r.name, r.ttl, r.dns_class);
    }
    match &r.data {
        RData::TXT(txt) => {
            let strings: Vec<String> = txt.txt_data.iter().map(|t| quote(t)).collect();
            format!(
                "{} {} {} {} {}",
                r.name,
                r.ttl,
                r.dns_class,
                r.record_type(),
                strings.join(" ")
            )
        }
        _ => r.to_string(),
    }
}

/// One <character-string> in quotes, escaped as in zone files (RFC 1035 §5.1).
fn quote(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for &b in bytes {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\{b:03}")),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::TXT;
    use hickory_proto::rr::{Name, RData};

    #[test]
    fn txt_is_quoted_and_escaped_like_dig() {
        let txt = TXT::from_bytes(vec![b"v=spf1 -all", b"say \"hi\"\\", b"\x01\xff"]);
        let r = Record::from_rdata(Name::from_ascii("t.example.").unwrap(), 60, RData::TXT(txt));
        assert_eq!(
            record_text(&r),
            r#"t.example. 60 IN TXT "v=spf1 -all" "say \"hi\"\\" "\001\255""#
        );
    }
}
