// One-element key sets read better as `[k.clone()]` than as `from_ref`.
#![allow(clippy::cloned_ref_to_slice_refs)]

use hickory_proto::rr::Record;

use super::*;
use crate::dnssec::testkit::{ZoneKey, NOW};
use crate::dnssec::verify::{dnskey, revocation_signed, validate_keyset, Budget, Link, Skew};

const DAY: u64 = 86400;

/// What the resolver does with a fetched root DNSKEY set: validate it with the keys trusted
/// now, then report every key it holds (RFC 5011 §2.2).
fn fetch(tp: &mut TrustPoint, keys: &[Record], sigs: &[Record], now: u64) -> Option<Vec<Change>> {
    let zone = tp.zone.clone();
    let mut budget = Budget::default();
    let trusted = tp.trusted();
    validate_keyset(
        &zone,
        keys,
        sigs,
        Link::Keys(&trusted),
        now,
        Skew::default(),
        &mut budget,
    )
    .ok()?;
    let seen: Vec<Observed> = keys
        .iter()
        .filter_map(dnskey)
        .map(|k| Observed {
            key: k.clone(),
            revoked_self_signed: k.revoke()
                && revocation_signed(&zone, keys, sigs, k, now, Skew::default(), &mut budget),
        })
        .collect();
    Some(tp.observe(&seen, now))
}

fn states(tp: &TrustPoint) -> Vec<(u16, KeyState)> {
    tp.keys
        .iter()
        .map(|k| (k.key.calculate_key_tag().unwrap(), k.state))
        .collect()
}

/// A KSK rollover with real signatures and the clock advanced: the new key waits out its
/// 30-day hold-down, then the old one is revoked and removed 30 days later.
#[test]
fn rollover_add_hold_down_then_revoke_and_remove() {
    let old = ZoneKey::ecdsa(".", true);
    let new = ZoneKey::ecdsa(".", true);
    let mut tp = TrustPoint::seed(Name::root(), &[old.dnskey.clone()], NOW);

    // The new key is published beside the old, signed by the old.
    let both = vec![old.record(), new.record()];
    let sigs = vec![old.sign_at(&both, (NOW - DAY) as u32, (NOW + 400 * DAY) as u32)];
    let changes = fetch(&mut tp, &both, &sigs, NOW).unwrap();
    assert_eq!(
        changes,
        [Change {
            key_tag: new.tag,
            from: None,
            to: Some(KeyState::AddPend)
        }]
    );
    assert_eq!(tp.trusted(), [old.dnskey.clone()]);

    // 29 days on: still pending. 30 days on: valid.
    assert!(fetch(&mut tp, &both, &sigs, NOW + 29 * DAY)
        .unwrap()
        .is_empty());
    fetch(&mut tp, &both, &sigs, NOW + 30 * DAY).unwrap();
    assert_eq!(
        states(&tp),
        [(old.tag, KeyState::Valid), (new.tag, KeyState::Valid)]
    );

    // The old key is revoked: REVOKE set, self-signed; the new key signs the set too.
    let old_tag = old.tag;
    let revoked = old.revoked();
    let set = vec![revoked.record(), new.record()];
    let t = NOW + 40 * DAY;
    let sigs = vec![
        revoked.sign_at(&set, (t - DAY) as u32, (t + 400 * DAY) as u32),
        new.sign_at(&set, (t - DAY) as u32, (t + 400 * DAY) as u32),
    ];
    fetch(&mut tp, &set, &sigs, t).unwrap();
    assert_eq!(states(&tp)[0], (revoked.tag, KeyState::Revoked));
    assert_ne!(revoked.tag, old_tag, "REVOKE changes the key tag");
    assert_eq!(tp.trusted(), [new.dnskey.clone()]);

    // Removed once the remove hold-down has passed.
    fetch(&mut tp, &set, &sigs, t + 30 * DAY).unwrap();
    assert_eq!(states(&tp)[0].1, KeyState::Removed);

    // A DNSKEY set no trusted key signs changes nothing.
    let stranger = ZoneKey::ecdsa(".", true);
    let forged = vec![stranger.record()];
    let forged_sigs = vec![stranger.sign_at(&forged, (t - DAY) as u32, (t + 400 * DAY) as u32)];
    assert!(fetch(&mut tp, &forged, &forged_sigs, t + 31 * DAY).is_none());
}

fn key(n: u8) -> DNSKEY {
    DNSKEY::with_flags(
        257,
        PublicKeyBuf::new(
            vec![n; 64],
            hickory_proto::dnssec::Algorithm::ECDSAP256SHA256,
        ),
    )
}

fn seen(keys: &[DNSKEY]) -> Vec<Observed> {
    keys.iter()
        .map(|k| Observed {
            key: k.clone(),
            revoked_self_signed: k.revoke(),
        })
        .collect()
}

#[test]
fn pending_keys_that_vanish_are_forgotten_and_missing_keys_stay_trusted() {
    let mut tp = TrustPoint::seed(Name::root(), &[key(1)], NOW);
    tp.observe(&seen(&[key(1), key(2)]), NOW);
    assert_eq!(tp.keys.len(), 2);
    tp.observe(&seen(&[key(1)]), NOW + DAY);
    assert_eq!(tp.keys.len(), 1, "AddPend → forgotten");

    // Valid → Missing (still trusted) → Valid again.
    tp.observe(&seen(&[key(3)]), NOW + 2 * DAY);
    assert_eq!(tp.keys[0].state, KeyState::Missing);
    assert_eq!(tp.trusted(), [key(1)]);
    tp.observe(&seen(&[key(1), key(3)]), NOW + 3 * DAY);
    assert_eq!(tp.keys[0].state, KeyState::Valid);

    // Missing for a year and a day: removed.
    tp.observe(&seen(&[key(3)]), NOW + 4 * DAY);
    tp.observe(&seen(&[key(3)]), NOW + 4 * DAY + KEEP_MISSING);
    assert_eq!(tp.keys[0].state, KeyState::Removed);
}

#[test]
fn revocation_without_a_self_signature_is_ignored_and_revoked_keys_never_return() {
    let mut tp = TrustPoint::seed(Name::root(), &[key(1)], NOW);
    let unsigned = Observed {
        key: with_revoke(&key(1)),
        revoked_self_signed: false,
    };
    tp.observe(&[unsigned], NOW);
    assert_eq!(tp.keys[0].state, KeyState::Valid);
    tp.observe(&seen(&[with_revoke(&key(1))]), NOW);
    assert_eq!(tp.keys[0].state, KeyState::Revoked);
    tp.observe(&seen(&[key(1)]), NOW + DAY);
    assert_eq!(tp.keys[0].state, KeyState::Revoked);
    assert!(tp.trusted().is_empty());
    // Keys without the SEP flag are not tracked (RFC 5011 applies to KSKs).
    let zsk = DNSKEY::with_flags(256, key(9).public_key().clone());
    assert!(tp.observe(&seen(&[zsk]), NOW + DAY).is_empty());
}

#[test]
fn state_file_round_trips_and_bad_lines_are_located() {
    let mut tp = TrustPoint::seed(Name::root(), &[key(1)], NOW);
    tp.observe(&seen(&[key(1), key(2)]), NOW + 5);
    let text = tp.to_text();
    assert!(
        text.contains(";;state=VALID") && text.contains(";;state=ADDPEND"),
        "{text}"
    );
    let back = TrustPoint::from_text(Path::new("root.state"), &text).unwrap();
    assert_eq!(back, [tp]);

    let bad = "; header\n. IN DNSKEY 257 3 13 AQID ;;state=SOMETIMES ;;since=1\n";
    let e = TrustPoint::from_text(Path::new("root.state"), bad).unwrap_err();
    assert_eq!(e.to_string(), "root.state:2: missing or unknown ;;state=");
    let ds = ". IN DS 1 13 2 00 ;;state=VALID ;;since=1\n";
    let e = TrustPoint::from_text(Path::new("root.state"), ds).unwrap_err();
    assert!(e.to_string().starts_with("root.state:1: "), "{e}");
}

#[test]
fn save_writes_the_whole_file_and_load_reads_it_back() {
    let dir = std::env::temp_dir().join(format!("hopdns-autotrust-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("root.state");
    let mut root = TrustPoint::seed(Name::root(), &[key(1)], NOW);
    root.observe(&seen(&[key(1), key(2)]), NOW);
    let corp = TrustPoint::seed(Name::from_ascii("corp.example.").unwrap(), &[key(3)], NOW);
    save(&path, &[root.clone(), corp.clone()]).unwrap();
    assert_eq!(load(&path).unwrap(), [root, corp]);
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "no temporary file left"
    );
    let e = load(&dir.join("missing.state")).unwrap_err().to_string();
    assert!(
        e.contains("missing.state") && e.contains("cannot read"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
