use hickory_proto::dnssec::{Algorithm, DigestType, PublicKeyBuf, Verifier as _};
use hickory_proto::rr::Name;

use super::*;
use crate::dnssec::testkit::{name, ZoneKey, NOW};
use crate::dnssec::verify::{validate_keyset, Budget, Link, Skew};
use crate::dnssec::{Proof, Reason, Verdict};

/// The root KSKs' public keys as the root zone publishes them (the DNSKEY RRset shown in
/// hickory-proto's `src/dnssec/roots/README.md`).
const KSK_2017: &str = "AwEAAaz/tAm8yTn4Mfeh5eyI96WSVexTBAvkMgJzkKTOiW1vkIbzxeF3+/4RgWOq7HrxRixHlFlExOLAJr5emLvN7SWXgnLh4+B5xQlNVz8Og8kvArMtNROxVQuCaSnIDdD5LKyWbRd2n9WGe2R8PzgCmr3EgVLrjyBxWezF0jLHwVN8efS3rCj/EWgvIWgb9tarpVUDK/b58Da+sqqls3eNbuv7pr+eoZG+SrDK6nWeL3c6H5Apxz7LjVc1uTIdsIXxuOLYA4/ilBmSVIzuDWfdRUfhHdY6+cn8HFRm+2hM8AnXGXws9555KrUB5qihylGa8subX2Nn6UwNR1AkUTV74bU=";
const KSK_2024: &str = "AwEAAa96jeuknZlaeSrvyAJj6ZHv28hhOKkx3rLGXVaC6rXTsDc449/cidltpkyGwCJNnOAlFNKF2jBosZBU5eeHspaQWOmOElZsjICMQMC3aeHbGiShvZsx4wMYSjH8e7Vrhbu6irwCzVBApESjbUdpWWmEnhathWu1jo+siFUiRAAxm9qyJNg/wOZqqzL/dL/q8PkcRU5oUKEpUge71M3ej2/7CPqpdVwuMoTvoB+ZOT4YeGyxMvHmbrxlFzGOHOijtzN+u1TQNatX2XBuzZNQ1K+s2CXkPIZo7s6JgZyvaBevYtxPvYLw4z9mR7K2vaF18UYH9Z9GNUUeayffKC73PYc=";

fn p(text: &str) -> Result<Vec<(Name, Anchor)>, AnchorError> {
    parse(Path::new("anchors.txt"), text)
}

#[test]
fn builtin_root_anchors_are_the_digests_of_ksk_2017_and_ksk_2024() {
    let builtin = TrustAnchors::builtin();
    let ds = TrustAnchors::ds(builtin.get(&Name::root()));
    assert_eq!(
        ds.iter().map(|d| d.key_tag()).collect::<Vec<_>>(),
        [20326, 38696]
    );
    for (b64, tag) in [(KSK_2017, 20326), (KSK_2024, 38696)] {
        let bytes = data_encoding::BASE64.decode(b64.as_bytes()).unwrap();
        let key = DNSKEY::with_flags(257, PublicKeyBuf::new(bytes, Algorithm::RSASHA256));
        assert_eq!(key.calculate_key_tag().unwrap(), tag);
        let ds = ds.iter().find(|d| d.key_tag() == tag).unwrap();
        assert_eq!(ds.algorithm(), key.algorithm());
        assert_eq!(ds.digest_type(), DigestType::SHA256);
        assert!(ds.covers(&Name::root(), &key).unwrap(), "{tag}");
    }
}

#[test]
fn unbound_and_bind_style_files_parse() {
    let text = "\
; comments, blank lines, TTL and class in either order
$ORIGIN example.
@ 3600 IN DS 60485 RSASHA1 1 2BB183AF5F22588179A53B0A 98631FAD1A292118
example. IN 3600 DS 60485 5 SHA-256 ( 0123456789ABCDEF0123456789ABCDEF
                                      0123456789abcdef0123456789abcdef ) ; the second
   DNSKEY 257 3 ECDSAP256SHA256 (
        mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ==
   )
sub DS 1 13 2 0000000000000000000000000000000000000000000000000000000000000000
other.tld. DNSKEY 256 3 15 l02Woi0iS8Aa25FQkUd9RMzZHJpBoRQwAQEX1SxZJA4=
";
    let parsed = p(text).unwrap();
    let owners: Vec<String> = parsed.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(
        owners,
        [
            "example.",
            "example.",
            "example.",
            "sub.example.",
            "other.tld."
        ]
    );
    assert!(
        matches!(&parsed[0].1, Anchor::Ds(d) if d.key_tag() == 60485 && d.digest().len() == 20)
    );
    assert!(matches!(&parsed[1].1, Anchor::Ds(d) if d.digest().len() == 32));
    assert!(
        matches!(&parsed[2].1, Anchor::Key(k) if k.algorithm() == Algorithm::ECDSAP256SHA256 && k.flags() == 257)
    );
    assert!(matches!(&parsed[4].1, Anchor::Key(k) if k.algorithm() == Algorithm::ED25519));
}

#[test]
fn malformed_records_are_errors_with_file_and_line() {
    let cases = [
        (
            ". IN DS 20326 8 2 E06D\nexample. IN A 192.0.2.1\n",
            2,
            "DS or DNSKEY",
        ),
        ("\n\n. DNSKEY 257 3 8 not!base64\n", 3, "base64"),
        (". DNSKEY 257 2 8 AwEAAQ==\n", 1, "protocol"),
        (". DS 99999 8 2 00\n", 1, "key tag"),
        (". DS 1 NOTANALG 2 00\n", 1, "algorithm"),
        (". DS 1 8 2 XYZW\n", 1, "hexadecimal"),
        (". DS 1 8 2 ABC\n", 1, "odd number"),
        (". CH DS 1 8 2 00\n", 1, "class IN"),
        ("relative DS 1 8 2 00\n", 1, "$ORIGIN"),
        (". DS 1 8 2 ( 00\n\n", 1, "never closed"),
        ("   DS 1 8 2 00\n", 1, "owner"),
        (". DNSKEY 0 3 8 AwEAAQ==\n", 1, "zone key"),
    ];
    for (text, line, words) in cases {
        let e = p(text).unwrap_err();
        assert_eq!(e.line, line, "{text:?}: {e}");
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!("anchors.txt:{line}: ")),
            "{shown}"
        );
        assert!(shown.contains(words), "{text:?}: {shown}");
    }
}

#[test]
fn a_ds_anchor_with_a_wrong_length_digest_makes_its_zone_bogus_not_hopdns_stop() {
    let ksk = ZoneKey::ecdsa("example.", true);
    let good = ksk.ds(DigestType::SHA256);
    let text = format!(
        "example. DS {} 13 2 {}\n",
        ksk.tag,
        data_encoding::HEXUPPER.encode(&good.digest()[..31])
    );
    let parsed = p(&text).unwrap();
    let keys = vec![ksk.record()];
    let sig = ksk.sign(&keys);
    let ds = TrustAnchors::ds(&[parsed[0].1.clone()]);
    let e = validate_keyset(
        &name("example."),
        &keys,
        &[sig],
        Link::Ds(&ds),
        NOW,
        Skew::default(),
        &mut Budget::default(),
    )
    .unwrap_err();
    assert_eq!(Verdict::from(e.clone()).proof, Proof::Bogus);
    assert_eq!(e, Reason::DnskeyMissing);
}

#[test]
fn file_root_anchors_replace_the_builtin_ones_and_others_add() {
    let dir = std::env::temp_dir().join(format!("hopdns-anchor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let lab = dir.join("lab.anchor");
    std::fs::write(
        &lab,
        ". DS 4242 13 2 00000000000000000000000000000000000000000000000000000000000000AA\n",
    )
    .unwrap();
    let other = dir.join("corp.anchor");
    std::fs::write(&other, "corp.example. DS 7 13 2 00000000000000000000000000000000000000000000000000000000000000BB\n").unwrap();

    let anchors = TrustAnchors::load(std::slice::from_ref(&lab)).unwrap();
    let root = TrustAnchors::ds(anchors.get(&Name::root()));
    assert_eq!(root.iter().map(|d| d.key_tag()).collect::<Vec<_>>(), [4242]);

    let anchors = TrustAnchors::load(std::slice::from_ref(&other)).unwrap();
    assert_eq!(anchors.get(&Name::root()).len(), 2);
    let (zone, _) = anchors.closest(&name("www.Corp.example.")).unwrap();
    assert_eq!(zone, &name("corp.example."));
    let (zone, _) = anchors.closest(&name("example.")).unwrap();
    assert!(zone.is_root());

    let missing = dir.join("nope.anchor");
    let e = TrustAnchors::load(&[missing]).unwrap_err().to_string();
    assert!(
        e.contains("nope.anchor") && e.contains("cannot read"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn negative_trust_anchors_cover_the_domain_and_below() {
    let nta = NegativeAnchors::parse(&["broken.example", "Other.test."]).unwrap();
    assert!(nta.covers(&name("broken.example.")));
    assert!(nta.covers(&name("www.BROKEN.example.")));
    assert!(nta.covers(&name("other.test.")));
    assert!(!nta.covers(&name("example.")));
    assert!(!nta.covers(&name("notbroken.example.")));
    let e = NegativeAnchors::parse(&["bad..name"]).unwrap_err();
    assert!(e.contains("--insecure-domain bad..name"), "{e}");
}
