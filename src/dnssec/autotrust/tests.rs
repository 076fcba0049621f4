// One-element key sets read better as `[k.clone()]` than as `from_ref`.
#![allow(clippy::cloned_ref_to_slice_refs)]

use hickory_proto::rr::Record;

use super::*;
use crate::dnssec::testkit::{ZoneKey, NOW};
use crate::dnssec::verify::{Budget, Skew};

const DAY: u64 = 86400;

/// What the refresher does with a fetched DNSKEY set ([`TrustPoint::refresh`]): validate it
/// with the keys trusted now, then report every key it holds (RFC 5011 §2.2).
fn fetch(tp: &mut TrustPoint, keys: &[Record], sigs: &[Record], now: u64) -> Option<Vec<Change>> {
    tp.refresh(keys, sigs, now, Skew::default(), &mut Budget::default())
        .ok()
        .map(|r| r.changes)
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
fn refresh_and_retry_intervals_follow_rfc5011_section_2_3() {
    // MAX(1 hr, MIN(15 days, TTL/2, expiry/2)).
    assert_eq!(refresh_interval(172_800, 10 * DAY), DAY);
    assert_eq!(refresh_interval(172_800, DAY), DAY / 2);
    assert_eq!(refresh_interval(600, 10 * DAY), 3600, "at least an hour");
    assert_eq!(
        refresh_interval(90 * 86400, 60 * DAY),
        15 * DAY,
        "at most 15 days"
    );
    // MAX(1 hr, MIN(1 day, TTL/10, expiry/10)).
    assert_eq!(retry_interval(172_800, 10 * DAY), 17_280);
    assert_eq!(retry_interval(90 * 86400, 60 * DAY), DAY);
    assert_eq!(retry_interval(0, 0), 3600, "nothing known: an hour");
}

#[test]
fn a_refresh_reports_the_sets_ttl_and_signature_lifetime() {
    let ksk = ZoneKey::ecdsa("corp.example.", true);
    let mut tp = TrustPoint::seed(ksk.zone.clone(), &[ksk.dnskey.clone()], NOW);
    let set = vec![ksk.record()];
    let sigs = vec![ksk.sign_at(&set, (NOW - DAY) as u32, (NOW + 20 * DAY) as u32)];
    let r = tp
        .refresh(&set, &sigs, NOW, Skew::default(), &mut Budget::default())
        .unwrap();
    assert_eq!((r.ttl, r.sig_remaining), (3600, 20 * DAY));
    assert!(r.changes.is_empty());
}

#[test]
fn a_ds_anchor_seeds_the_keys_it_names_and_holds_down_the_rest() {
    let old = ZoneKey::ecdsa("corp.example.", true);
    let new = ZoneKey::ecdsa("corp.example.", true);
    let set = vec![old.record(), new.record()];
    let sigs = vec![old.sign_at(&set, (NOW - DAY) as u32, (NOW + 20 * DAY) as u32)];
    let ds = [old.ds(hickory_proto::dnssec::DigestType::SHA256)];
    let (tp, r) = TrustPoint::seed_from_ds(
        old.zone.clone(),
        &ds,
        &set,
        &sigs,
        NOW,
        Skew::default(),
        &mut Budget::default(),
    )
    .unwrap();
    assert_eq!(
        states(&tp),
        [(old.tag, KeyState::Valid), (new.tag, KeyState::AddPend)]
    );
    assert_eq!(r.changes.len(), 1);
    // A DS that names no key of the set seeds nothing.
    let stranger = ZoneKey::ecdsa("corp.example.", true);
    let ds = [stranger.ds(hickory_proto::dnssec::DigestType::SHA256)];
    assert!(TrustPoint::seed_from_ds(
        old.zone.clone(),
        &ds,
        &set,
        &sigs,
        NOW,
        Skew::default(),
        &mut Budget::default(),
    )
    .is_err());
}
