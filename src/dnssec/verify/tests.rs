// Tests build many one-element key sets; `[k.clone()]` reads better than `from_ref`.
#![allow(clippy::cloned_ref_to_slice_refs)]

use hickory_proto::dnssec::rdata::{DNSSECRData, DNSKEY, DS};
use hickory_proto::dnssec::{Algorithm, DigestType, PublicKeyBuf};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};

use super::*;
use crate::dnssec::testkit::*;
use crate::dnssec::{Proof, Verdict};

fn a_rrset(owner: &str) -> Vec<Record> {
    vec![
        record(owner, 300, RData::A(A::new(192, 0, 2, 1))),
        record(owner, 300, RData::A(A::new(192, 0, 2, 2))),
    ]
}

fn check(rrset: &[Record], sigs: &[Record], keys: &[DNSKEY], now: u64) -> Result<Secured, Reason> {
    verify_rrset(
        &rrset[0].name,
        rrset[0].record_type(),
        rrset,
        sigs,
        &name("example."),
        keys,
        now,
        Skew::default(),
        &mut Budget::default(),
    )
}

#[test]
fn rrset_signed_by_a_zone_key_is_secure_for_ecdsa_and_ed25519() {
    for key in [
        ZoneKey::ecdsa("example.", false),
        ZoneKey::ed25519("example.", false),
    ] {
        let rrset = a_rrset("www.example.");
        let sig = key.sign(&rrset);
        let secured = check(&rrset, &[sig], &[key.dnskey.clone()], NOW).unwrap();
        assert_eq!(secured.key_tag, key.tag);
        assert_eq!(secured.ttl, 300);
        assert_eq!(secured.wildcard, None);
    }
}

#[test]
fn ttl_is_capped_by_signature_expiry() {
    let key = ZoneKey::ecdsa("example.", false);
    let rrset = a_rrset("www.example.");
    let sig = key.sign_at(&rrset, INCEPTION, (NOW + 100) as u32);
    assert_eq!(check(&rrset, &[sig], &[key.dnskey], NOW).unwrap().ttl, 100);
}

#[test]
fn altered_data_is_bogus_with_ede_6() {
    let key = ZoneKey::ecdsa("example.", false);
    let rrset = a_rrset("www.example.");
    let sig = key.sign(&rrset);
    let forged = vec![record(
        "www.example.",
        300,
        RData::A(A::new(203, 0, 113, 9)),
    )];
    let e = check(&forged, &[sig], &[key.dnskey], NOW).unwrap_err();
    assert!(matches!(e, Reason::Bogus(_)), "{e}");
    assert_eq!(e.ede(), 6);
    assert_eq!(Verdict::from(e).proof, Proof::Bogus);
}

#[test]
fn missing_signature_is_ede_10_and_unknown_key_is_ede_9() {
    let key = ZoneKey::ecdsa("example.", false);
    let other = ZoneKey::ecdsa("example.", false);
    let rrset = a_rrset("www.example.");
    assert_eq!(
        check(&rrset, &[], &[key.dnskey.clone()], NOW),
        Err(Reason::RrsigsMissing)
    );
    // A signature from another zone's signer does not count either (RFC 4035 §5.3.1).
    let foreign = ZoneKey::ecdsa("other.", false).sign(&rrset);
    assert_eq!(
        check(&rrset, &[foreign], &[key.dnskey.clone()], NOW)
            .unwrap_err()
            .ede(),
        10
    );
    let sig = other.sign(&rrset);
    assert_eq!(
        check(&rrset, &[sig], &[key.dnskey], NOW),
        Err(Reason::DnskeyMissing)
    );
}

#[test]
fn expired_and_not_yet_valid_signatures_get_ede_7_and_8() {
    let key = ZoneKey::ecdsa("example.", false);
    let rrset = a_rrset("www.example.");
    let old = key.sign_at(&rrset, (NOW - 30 * 86400) as u32, (NOW - 10 * 86400) as u32);
    let e = check(&rrset, &[old], &[key.dnskey.clone()], NOW).unwrap_err();
    assert_eq!((e.clone(), e.ede()), (Reason::SignatureExpired, 7));
    let future = key.sign_at(&rrset, (NOW + 10 * 86400) as u32, (NOW + 30 * 86400) as u32);
    let e = check(&rrset, &[future], &[key.dnskey.clone()], NOW).unwrap_err();
    assert_eq!((e.clone(), e.ede()), (Reason::SignatureNotYetValid, 8));
    // A bad signature outranks an expired one in the reason given.
    let good_window_wrong_data = key.sign(&a_rrset("ftp.example."));
    let mut renamed = good_window_wrong_data;
    renamed.name = name("www.example.");
    let old = key.sign_at(&rrset, (NOW - 30 * 86400) as u32, (NOW - 10 * 86400) as u32);
    let e = check(&rrset, &[old, renamed], &[key.dnskey], NOW).unwrap_err();
    assert!(matches!(e, Reason::Bogus(_)), "{e}");
}

#[test]
fn skew_is_a_tenth_of_the_window_between_min_and_max() {
    let skew = Skew::default();
    let day = 86400u32;
    let now = NOW;
    let n = now as u32;
    // 20-day window: a tenth is two days, capped at the one-day maximum.
    assert!(check_window(n - 21 * day, n - day + 60, now, skew).is_ok());
    assert_eq!(
        check_window(n - 21 * day, n - day - 60, now, skew),
        Err(Reason::SignatureExpired)
    );
    // 1-hour window: a tenth is 6 minutes, raised to the one-hour minimum.
    assert!(check_window(n + 3000, n + 3000 + 3600, now, skew).is_ok());
    assert_eq!(
        check_window(n + 3700, n + 3700 + 3600, now, skew),
        Err(Reason::SignatureNotYetValid)
    );
    assert!(matches!(
        check_window(n + 10, n - 10, now, skew),
        Err(Reason::Bogus(_))
    ));
}

#[test]
fn windows_use_serial_arithmetic_past_2106() {
    // RFC 4034 §3.1.5: after the 32-bit wrap, times are compared modulo 2^32.
    let now = (1u64 << 32) + 1000;
    let incep = 500u32; // wrapped: 2^32 + 500
    let expi = 100_000u32;
    assert!(check_window(incep, expi, now, Skew::default()).is_ok());
    let before_wrap = u32::MAX - 1_000_000; // just before the wrap: still in the past
    assert!(check_window(before_wrap, expi, now, Skew::default()).is_ok());
}

#[test]
fn wildcard_expansion_is_reported_with_the_wildcard_owner() {
    let key = ZoneKey::ecdsa("example.", false);
    let wild = a_rrset("*.example.");
    let sig = key.sign(&wild);
    let mut expanded = wild.clone();
    for r in &mut expanded {
        r.name = name("a.b.example.");
    }
    let mut sig_expanded = sig;
    sig_expanded.name = name("a.b.example.");
    let s = check(&expanded, &[sig_expanded], &[key.dnskey], NOW).unwrap();
    assert_eq!(s.wildcard, Some(name("*.example.")));
}

#[test]
fn revoked_and_non_zone_keys_do_not_sign_data() {
    let key = ZoneKey::ecdsa("example.", false);
    let rrset = a_rrset("www.example.");
    let sig = key.sign(&rrset);
    let not_zone = DNSKEY::with_flags(0, key.dnskey.public_key().clone());
    assert_eq!(
        check(&rrset, &[sig.clone()], &[not_zone], NOW),
        Err(Reason::DnskeyMissing)
    );
    let revoked = key.revoked();
    let sig = revoked.sign(&rrset);
    assert_eq!(
        check(&rrset, &[sig], &[revoked.dnskey], NOW),
        Err(Reason::DnskeyMissing)
    );
}

/// A zone with a KSK and a ZSK: the DNSKEY RRset and its RRSIG by the KSK.
fn signed_keyset(zone: &str) -> (ZoneKey, ZoneKey, Vec<Record>, Vec<Record>) {
    let ksk = ZoneKey::ecdsa(zone, true);
    let zsk = ZoneKey::ed25519(zone, false);
    let keys = vec![ksk.record(), zsk.record()];
    let sig = ksk.sign(&keys);
    (ksk, zsk, keys, vec![sig])
}

fn keyset(keys: &[Record], sigs: &[Record], link: Link<'_>) -> Result<KeySet, Reason> {
    validate_keyset(
        &name("example."),
        keys,
        sigs,
        link,
        NOW,
        Skew::default(),
        &mut Budget::default(),
    )
}

#[test]
fn dnskey_set_is_secure_through_its_ds_and_then_signs_data() {
    let (ksk, zsk, keys, sigs) = signed_keyset("example.");
    for digest in [DigestType::SHA1, DigestType::SHA256, DigestType::SHA384] {
        let set = keyset(&keys, &sigs, Link::Ds(&[ksk.ds(digest)])).unwrap();
        assert_eq!(set.entry_key_tag, ksk.tag);
        assert_eq!(set.keys.len(), 2);
    }
    let set = keyset(&keys, &sigs, Link::Ds(&[ksk.ds(DigestType::SHA256)])).unwrap();
    let rrset = a_rrset("www.example.");
    let sig = zsk.sign(&rrset);
    assert!(check(&rrset, &[sig], &set.keys, NOW).is_ok());
}

#[test]
fn ds_matching_no_key_is_ede_9_and_unsupported_ds_is_insecure() {
    let (ksk, _zsk, keys, sigs) = signed_keyset("example.");
    let stranger = ZoneKey::ecdsa("example.", true);
    let e = keyset(&keys, &sigs, Link::Ds(&[stranger.ds(DigestType::SHA256)])).unwrap_err();
    assert_eq!((e.clone(), e.ede()), (Reason::DnskeyMissing, 9));

    let good = ksk.ds(DigestType::SHA256);
    let ed448 = DS::new(
        good.key_tag(),
        Algorithm::Unknown(16),
        DigestType::SHA256,
        good.digest().to_vec(),
    );
    let e = keyset(&keys, &sigs, Link::Ds(&[ed448])).unwrap_err();
    assert_eq!((e.ede(), Verdict::from(e).proof), (1, Proof::Insecure));

    let gost = DS::new(
        good.key_tag(),
        good.algorithm(),
        DigestType::from(3),
        vec![0; 32],
    );
    let e = keyset(&keys, &sigs, Link::Ds(&[gost])).unwrap_err();
    assert_eq!((e.ede(), Verdict::from(e).proof), (2, Proof::Insecure));
    // RSAMD5 and DSA are unsupported: insecure, not bogus (RFC 8624 §3.1).
    for alg in [1, 3] {
        let ds = DS::new(1, Algorithm::from_u8(alg), DigestType::SHA256, vec![0; 32]);
        assert_eq!(
            keyset(&keys, &sigs, Link::Ds(&[ds])),
            Err(Reason::UnsupportedAlgorithm(alg))
        );
    }
}

#[test]
fn sha1_ds_is_ignored_beside_sha256_rfc4509() {
    let (ksk, _zsk, keys, sigs) = signed_keyset("example.");
    let good1 = ksk.ds(DigestType::SHA1);
    let good256 = ksk.ds(DigestType::SHA256);
    let bad1 = DS::new(ksk.tag, good1.algorithm(), DigestType::SHA1, vec![7; 20]);
    let bad256 = DS::new(
        ksk.tag,
        good256.algorithm(),
        DigestType::SHA256,
        vec![7; 32],
    );
    // A wrong SHA-1 DS beside a right SHA-256 one: secure.
    assert!(keyset(&keys, &sigs, Link::Ds(&[bad1, good256])).is_ok());
    // A right SHA-1 DS beside a wrong SHA-256 one: the SHA-1 DS is not used (a downgrade).
    assert_eq!(
        keyset(&keys, &sigs, Link::Ds(&[good1, bad256])),
        Err(Reason::DnskeyMissing)
    );
}

#[test]
fn ds_with_a_digest_of_the_wrong_length_makes_the_zone_bogus() {
    let (ksk, _zsk, keys, sigs) = signed_keyset("example.");
    let good = ksk.ds(DigestType::SHA256);
    let short = DS::new(
        ksk.tag,
        good.algorithm(),
        DigestType::SHA256,
        good.digest()[..20].to_vec(),
    );
    let e = keyset(&keys, &sigs, Link::Ds(&[short])).unwrap_err();
    assert_eq!(Verdict::from(e).proof, Proof::Bogus);
}

#[test]
fn dnskey_anchor_links_the_set_and_an_unsigned_set_is_bogus() {
    let (ksk, _zsk, keys, sigs) = signed_keyset("example.");
    assert!(keyset(&keys, &sigs, Link::Keys(&[ksk.dnskey.clone()])).is_ok());
    assert_eq!(
        keyset(&keys, &[], Link::Keys(&[ksk.dnskey.clone()])),
        Err(Reason::RrsigsMissing)
    );
    let unknown = DNSKEY::with_flags(257, PublicKeyBuf::new(vec![1; 64], Algorithm::Unknown(16)));
    assert_eq!(
        keyset(&keys, &sigs, Link::Keys(&[unknown])),
        Err(Reason::UnsupportedAlgorithm(16))
    );
}

#[test]
fn revoked_key_self_signature_is_checked_for_rfc5011() {
    let ksk = ZoneKey::ecdsa("example.", true).revoked();
    let keys = vec![ksk.record()];
    let sig = ksk.sign(&keys);
    let mut budget = Budget::default();
    let zone = name("example.");
    assert!(revocation_signed(
        &zone,
        &keys,
        &[sig],
        &ksk.dnskey,
        NOW,
        Skew::default(),
        &mut budget
    ));
    assert!(!revocation_signed(
        &zone,
        &keys,
        &[],
        &ksk.dnskey,
        NOW,
        Skew::default(),
        &mut budget
    ));
}

/// KeyTrap (CVE-2023-50387): many DNSKEYs sharing one key tag and many signatures naming
/// it. Without a cap a validator tries every (key, signature) pair: here 40 × 12 = 480.
#[test]
fn keytrap_colliding_tags_are_bounded_per_rrset_and_per_request() {
    let key = ZoneKey::ecdsa("example.", false);
    let mut keys = colliding_keys(&key.dnskey, 40);
    assert_eq!(keys.len(), 40);
    for k in &keys {
        assert_eq!(k.calculate_key_tag().unwrap(), key.tag);
    }
    // The genuine key is last: a naive validator finds it after 40 failures per signature.
    keys.push(key.dnskey.clone());
    let rrset = a_rrset("www.example.");
    let wrong = key.sign(&a_rrset("ftp.example."));
    let sigs: Vec<Record> = (0..12)
        .map(|_| {
            let mut s = wrong.clone();
            s.name = name("www.example.");
            s
        })
        .collect();
    let mut budget = Budget::default();
    let e = verify_rrset(
        &name("www.example."),
        RecordType::A,
        &rrset,
        &sigs,
        &name("example."),
        &keys,
        NOW,
        Skew::default(),
        &mut budget,
    )
    .unwrap_err();
    assert!(matches!(e, Reason::BudgetSpent(_)), "{e}");
    assert_eq!(budget.verifications(), MAX_VERIFY_PER_RRSET);

    // Per request: eight such RRsets spend the request's 64, and the ninth is refused
    // without a single verification.
    for _ in 0..7 {
        let _ = verify_rrset(
            &name("www.example."),
            RecordType::A,
            &rrset,
            &sigs,
            &name("example."),
            &keys,
            NOW,
            Skew::default(),
            &mut budget,
        );
    }
    assert_eq!(budget.verifications(), MAX_VERIFY_PER_REQUEST);
    let good = key.sign(&rrset);
    let e = verify_rrset(
        &name("www.example."),
        RecordType::A,
        &rrset,
        &[good],
        &name("example."),
        &[key.dnskey.clone()],
        NOW,
        Skew::default(),
        &mut budget,
    )
    .unwrap_err();
    assert_eq!(
        e,
        Reason::BudgetSpent("signature verifications per request")
    );
    assert_eq!(budget.verifications(), MAX_VERIFY_PER_REQUEST);
}

#[test]
fn keytrap_ds_collisions_stop_after_four_digest_failures() {
    let (ksk, _zsk, mut keys, sigs) = signed_keyset("example.");
    for k in colliding_keys(&ksk.dnskey, 30) {
        keys.insert(
            0,
            Record::from_rdata(
                name("example."),
                3600,
                RData::DNSSEC(DNSSECRData::DNSKEY(k)),
            ),
        );
    }
    let e = keyset(&keys, &sigs, Link::Ds(&[ksk.ds(DigestType::SHA256)])).unwrap_err();
    // RFC 8914 §4.10: no key matched the DS within the budget, DNSKEY Missing.
    assert_eq!(e, Reason::DnskeyMissing, "{e}");
}

/// RFC 4034 §5.4's example: the DNSKEY of dskey.example.com has key tag 60485 and this
/// SHA-1 DS (a fixed vector for hickory's key tag and digest as we call them).
#[test]
fn rfc4034_ds_example_matches() {
    let key_b64 = "AQOeiiR0GOMYkDshWoSKz9XzfwJr1AYtsmx3TGkJaNXVbfi/2pHm822aJ5iI9BMzNXxeYCmZDRD99WYwYqUSdjMmmAphXdvxegXd/M5+X7OrzKBaMbCVdFLUUh6DhweJBjEVv5f2wwjM9XzcnOf+EPbtG9DMBmADjFDc2w/rljwvFw==";
    let bytes = data_encoding::BASE64.decode(key_b64.as_bytes()).unwrap();
    #[allow(deprecated)]
    let key = DNSKEY::with_flags(256, PublicKeyBuf::new(bytes, Algorithm::RSASHA1));
    assert_eq!(key.calculate_key_tag().unwrap(), 60485);
    let digest = key
        .to_digest(&name("dskey.example.com."), DigestType::SHA1)
        .unwrap();
    assert_eq!(
        data_encoding::HEXUPPER.encode(digest.as_ref()),
        "2BB183AF5F22588179A53B0A98631FAD1A292118"
    );
}

/// `verify_rrset` over `rrset` (owner and type of its first record) in `example.` with a
/// request budget that uses `memo`; returns the result and the budget.
fn check_memo(
    rrset: &[Record],
    sigs: &[Record],
    keys: &[DNSKEY],
    now: u64,
    memo: &std::sync::Arc<crate::dnssec::memo::SigMemo>,
) -> (Result<Secured, Reason>, Budget) {
    let mut budget = Budget::default().with_memo(memo.clone());
    let r = verify_rrset(
        &rrset[0].name,
        rrset[0].record_type(),
        rrset,
        sigs,
        &name("example."),
        keys,
        now,
        Skew::default(),
        &mut budget,
    );
    (r, budget)
}

#[test]
fn a_verified_signature_is_checked_once_while_its_data_lives() {
    let memo = std::sync::Arc::new(crate::dnssec::memo::SigMemo::default());
    let key = ZoneKey::ecdsa("example.", false);
    let rrset = a_rrset("www.example.");
    let sig = key.sign(&rrset);
    let keys = [key.dnskey.clone()];
    let (first, b) = check_memo(&rrset, &[sig.clone()], &keys, NOW, &memo);
    assert_eq!((b.verifications(), b.memo_hits()), (1, 0));
    // Another request, with its own budget: the same data, signature and key cost nothing,
    // and give the same result.
    let (again, b) = check_memo(&rrset, &[sig.clone()], &keys, NOW + 299, &memo);
    assert_eq!((b.verifications(), b.memo_hits()), (0, 1));
    assert_eq!(again.unwrap().key_tag, first.unwrap().key_tag);
    // The entry lives for the data's TTL (300 s): after it, the signature is verified again.
    let (r, b) = check_memo(&rrset, &[sig], &keys, NOW + 300, &memo);
    assert!(r.is_ok());
    assert_eq!((b.verifications(), b.memo_hits()), (1, 0));
}

#[test]
fn a_changed_rrset_or_another_key_never_hits_the_memo() {
    let memo = std::sync::Arc::new(crate::dnssec::memo::SigMemo::default());
    let key = ZoneKey::ecdsa("example.", false);
    let rrset = a_rrset("www.example.");
    let sig = key.sign(&rrset);
    assert!(
        check_memo(&rrset, &[sig.clone()], &[key.dnskey.clone()], NOW, &memo)
            .0
            .is_ok()
    );
    // The same signature over one changed record is verified, and fails.
    let mut forged = rrset.clone();
    forged[1] = record("www.example.", 300, RData::A(A::new(203, 0, 113, 9)));
    let (r, b) = check_memo(&forged, &[sig.clone()], &[key.dnskey.clone()], NOW, &memo);
    assert!(matches!(r, Err(Reason::Bogus(_))), "{r:?}");
    assert_eq!((b.verifications(), b.memo_hits()), (1, 0));
    // A key with the same tag and algorithm but another public key: verified, and fails.
    let decoy = colliding_keys(&key.dnskey, 1);
    let (r, b) = check_memo(&rrset, &[sig.clone()], &decoy, NOW, &memo);
    assert!(matches!(r, Err(Reason::Bogus(_))), "{r:?}");
    assert_eq!((b.verifications(), b.memo_hits()), (1, 0));
    // Another signature by the same key over the same data (a re-signing): verified once.
    let resigned = key.sign_at(&rrset, INCEPTION + 1, EXPIRATION);
    let (r, b) = check_memo(&rrset, &[resigned], &[key.dnskey.clone()], NOW, &memo);
    assert!(r.is_ok());
    assert_eq!((b.verifications(), b.memo_hits()), (1, 0));
    // The window is checked before the memo: an entry does not outlive its signature.
    let (r, _) = check_memo(
        &rrset,
        &[sig],
        &[key.dnskey.clone()],
        u64::from(EXPIRATION) + 30 * 86400,
        &memo,
    );
    assert_eq!(r.unwrap_err(), Reason::SignatureExpired);
}

#[test]
fn every_expansion_of_a_wildcard_shares_one_verification() {
    // RFC 4035 §5.3.2: the signed data of an expansion has the wildcard as its owner, so
    // one verification serves every name the wildcard answers for.
    let memo = std::sync::Arc::new(crate::dnssec::memo::SigMemo::default());
    let key = ZoneKey::ecdsa("example.", false);
    let wild = a_rrset("*.example.");
    let sig = key.sign(&wild);
    let mut spent = Vec::new();
    for owner in ["a.example.", "b.example.", "c.d.example."] {
        let mut expanded = wild.clone();
        for r in &mut expanded {
            r.name = name(owner);
        }
        let mut s = sig.clone();
        s.name = name(owner);
        let (r, b) = check_memo(&expanded, &[s], &[key.dnskey.clone()], NOW, &memo);
        assert_eq!(r.unwrap().wildcard, Some(name("*.example.")));
        spent.push(b.verifications());
    }
    assert_eq!(spent, [1, 0, 0]);
}

#[test]
fn a_memo_hit_is_free_even_when_the_request_budget_is_spent() {
    let memo = std::sync::Arc::new(crate::dnssec::memo::SigMemo::default());
    let key = ZoneKey::ecdsa("example.", false);
    let rrset = a_rrset("www.example.");
    let sig = key.sign(&rrset);
    assert!(
        check_memo(&rrset, &[sig.clone()], &[key.dnskey.clone()], NOW, &memo)
            .0
            .is_ok()
    );
    let mut budget = Budget::new(0, 0).with_memo(memo.clone());
    let r = verify_rrset(
        &rrset[0].name,
        RecordType::A,
        &rrset,
        &[sig],
        &name("example."),
        &[key.dnskey.clone()],
        NOW,
        Skew::default(),
        &mut budget,
    );
    assert!(r.is_ok(), "{r:?}");
    assert_eq!((budget.verifications(), budget.memo_hits()), (0, 1));
    // Something new still needs a verification, which the spent budget refuses.
    let other = a_rrset("ftp.example.");
    let e = verify_rrset(
        &other[0].name,
        RecordType::A,
        &other,
        &[key.sign(&other)],
        &name("example."),
        &[key.dnskey],
        NOW,
        Skew::default(),
        &mut budget,
    );
    assert!(matches!(e, Err(Reason::BudgetSpent(_))), "{e:?}");
}
