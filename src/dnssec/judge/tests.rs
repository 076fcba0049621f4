use hickory_proto::dnssec::rdata::{DNSSECRData, NSEC};
use hickory_proto::rr::rdata::{A, CNAME, SOA};
use hickory_proto::rr::RData;

use super::*;
use crate::dnssec::testkit::{dnssec, name, record, ZoneKey, NOW};

fn keyset(k: &ZoneKey) -> KeySet {
    KeySet {
        zone: k.zone.clone(),
        keys: vec![k.dnskey.clone()],
        ttl: 3600,
        entry_key_tag: k.tag,
    }
}

fn signed(k: &ZoneKey, rrset: Vec<Record>) -> Vec<Record> {
    let sig = k.sign(&rrset);
    let mut out = rrset;
    out.push(sig);
    out
}

fn a(owner: &str, last: u8) -> Record {
    record(owner, 300, RData::A(A::new(192, 0, 2, last)))
}

fn nsec(owner: &str, next: &str, types: &[RecordType]) -> Record {
    let mut t = types.to_vec();
    t.extend([RecordType::NSEC, RecordType::RRSIG]);
    record(
        owner,
        300,
        dnssec(DNSSECRData::NSEC(NSEC::new(name(next), t))),
    )
}

fn soa(zone: &str) -> Record {
    let soa = SOA::new(
        name(zone),
        name(&format!("host.{zone}")),
        1,
        7200,
        3600,
        1209600,
        300,
    );
    record(zone, 300, RData::SOA(soa))
}

fn judge(answer: &[Record], authority: &[Record], keys: &[KeySet]) -> Judged {
    judge_answer(
        answer,
        authority,
        keys,
        NOW,
        Skew::default(),
        &mut Budget::default(),
    )
}

#[test]
fn a_signed_answer_and_chain_are_secure_and_another_signer_needs_its_keys() {
    let ex = ZoneKey::ecdsa("example.", false);
    let other = ZoneKey::ecdsa("other.", false);
    let cname = record(
        "www.example.",
        300,
        RData::CNAME(CNAME(name("host.example."))),
    );
    let mut answer = signed(&ex, vec![cname]);
    answer.extend(signed(
        &ex,
        vec![a("host.example.", 1), a("host.example.", 2)],
    ));
    assert_eq!(
        judge(&answer, &[], &[keyset(&ex)]),
        Judged::Done(Verdict::secure())
    );

    // The chain leads into other.: its keys are needed before a verdict.
    let cname = record("www.example.", 300, RData::CNAME(CNAME(name("x.other."))));
    let mut answer = signed(&ex, vec![cname]);
    answer.extend(signed(&other, vec![a("x.other.", 1)]));
    assert_eq!(
        judge(&answer, &[], &[keyset(&ex)]),
        Judged::NeedKeys(name("other."))
    );
    assert_eq!(
        judge(&answer, &[], &[keyset(&ex), keyset(&other)]),
        Judged::Done(Verdict::secure())
    );
}

#[test]
fn unsigned_or_altered_answers_are_bogus_with_their_ede() {
    let ex = ZoneKey::ecdsa("example.", false);
    let Judged::Done(v) = judge(&[a("www.example.", 1)], &[], &[keyset(&ex)]) else {
        panic!()
    };
    assert_eq!(v.ede(), Some(10));
    let mut answer = signed(&ex, vec![a("www.example.", 1)]);
    answer[0] = a("www.example.", 66);
    let Judged::Done(v) = judge(&answer, &[], &[keyset(&ex)]) else {
        panic!()
    };
    assert_eq!((v.proof, v.ede()), (Proof::Bogus, Some(6)));
}

#[test]
fn a_wildcard_answer_needs_its_nsec_proof() {
    let ex = ZoneKey::ecdsa("example.", false);
    let wild = vec![a("*.example.", 1)];
    let mut sig = ex.sign(&wild);
    sig.name = name("q.example.");
    let answer = vec![a("q.example.", 1), sig];
    let proof = signed(
        &ex,
        vec![nsec(
            "example.",
            "z.example.",
            &[RecordType::SOA, RecordType::NS],
        )],
    );
    assert_eq!(
        judge(&answer, &proof, &[keyset(&ex)]),
        Judged::Done(Verdict::secure())
    );
    let Judged::Done(v) = judge(&answer, &[], &[keyset(&ex)]) else {
        panic!()
    };
    assert_eq!(v.ede(), Some(12));
}

#[test]
fn negative_answers_need_a_signed_soa_and_proof() {
    let ex = ZoneKey::ecdsa("example.", false);
    let mut authority = signed(&ex, vec![soa("example.")]);
    authority.extend(signed(
        &ex,
        vec![nsec(
            "example.",
            "a.example.",
            &[RecordType::SOA, RecordType::NS],
        )],
    ));
    authority.extend(signed(
        &ex,
        vec![nsec("a.example.", "example.", &[RecordType::A])],
    ));
    let neg = |q: &str, t, nx, auth: &[Record], keys: &[KeySet]| {
        judge_negative(
            &name(q),
            t,
            nx,
            auth,
            keys,
            NOW,
            Skew::default(),
            &mut Budget::default(),
        )
    };
    let keys = [keyset(&ex)];
    assert_eq!(
        neg("b.example.", RecordType::A, true, &authority, &keys),
        Judged::Done(Verdict::secure())
    );
    assert_eq!(
        neg("a.example.", RecordType::AAAA, false, &authority, &keys),
        Judged::Done(Verdict::secure())
    );
    let Judged::Done(v) = neg("a.example.", RecordType::A, false, &authority, &keys) else {
        panic!()
    };
    assert_eq!(v.proof, Proof::Bogus);
    // The SOA alone proves nothing: EDE 12.
    let only_soa = signed(&ex, vec![soa("example.")]);
    let Judged::Done(v) = neg("b.example.", RecordType::A, true, &only_soa, &keys) else {
        panic!()
    };
    assert_eq!(v.ede(), Some(12));
    assert_eq!(
        neg("b.example.", RecordType::A, true, &authority, &[]),
        Judged::NeedKeys(name("example."))
    );
}
