use hickory_proto::dnssec::rdata::{DNSSECRData, NSEC, NSEC3};
use hickory_proto::dnssec::{Nsec3HashAlgorithm, Proof};
use hickory_proto::rr::{Name, Record, RecordType};

use super::*;
use crate::dnssec::testkit::{dnssec, name, record};
use crate::dnssec::verify::Budget;

use RecordType::{A, AAAA, CNAME, DS, NS, RRSIG, SOA};

fn nsec(owner: &str, next: &str, types: &[RecordType]) -> Record {
    let mut t = types.to_vec();
    t.extend([RecordType::NSEC, RRSIG]);
    record(
        owner,
        3600,
        dnssec(DNSSECRData::NSEC(NSEC::new(name(next), t))),
    )
}

/// The NSEC chain of a small zone:
/// example. (apex) → a (A) → b (delegation, unsigned) → *.w (A) → x.y (A; y is empty).
fn nsec_zone() -> Vec<Record> {
    vec![
        nsec("example.", "a.example.", &[SOA, NS, RecordType::DNSKEY]),
        nsec("a.example.", "b.example.", &[A]),
        nsec("b.example.", "*.w.example.", &[NS]),
        nsec("*.w.example.", "x.y.example.", &[A]),
        nsec("x.y.example.", "example.", &[A]),
    ]
}

fn run(denial: Denial, qname: &str, records: &[Record]) -> Verdict {
    prove(
        &denial,
        &name(qname),
        &name("example."),
        records,
        &mut Budget::default(),
    )
}

#[test]
fn nsec_covers_wraps_at_the_end_of_the_zone() {
    let (o, n) = (name("x.y.example."), name("example."));
    assert!(nsec_covers(&o, &n, &name("z.example.")));
    assert!(!nsec_covers(&o, &n, &name("a.example.")));
    assert!(!nsec_covers(&o, &n, &name("example.")));
    assert!(nsec_covers(
        &name("a.example."),
        &name("b.example."),
        &name("ab.example.")
    ));
    assert!(!nsec_covers(
        &name("a.example."),
        &name("b.example."),
        &name("b.example.")
    ));
}

#[test]
fn nsec_nxdomain_needs_the_name_and_the_wildcard_covered() {
    let zone = nsec_zone();
    assert_eq!(
        run(Denial::NxDomain, "c.example.", &zone),
        Verdict::secure()
    );
    // Without the NSEC covering *.example the wildcard might exist: bogus, EDE 6 as
    // Unbound gives when NSEC records came but do not prove the denial (EDE 12 is for
    // none at all).
    let v = run(Denial::NxDomain, "c.example.", &zone[1..]);
    assert_eq!((v.proof, v.ede()), (Proof::Bogus, Some(6)));
    let v = run(Denial::NxDomain, "c.example.", &[]);
    assert_eq!((v.proof, v.ede()), (Proof::Bogus, Some(12)));
    // z.w.example would match *.w.example: not NXDOMAIN.
    assert_eq!(
        run(Denial::NxDomain, "z.w.example.", &zone).proof,
        Proof::Bogus
    );
    // An existing name is not NXDOMAIN either.
    assert_eq!(
        run(Denial::NxDomain, "a.example.", &zone).proof,
        Proof::Bogus
    );
    assert_eq!(run(Denial::NxDomain, "c.example.", &[]).ede(), Some(12));
}

#[test]
fn nsec_from_the_parent_side_of_a_cut_proves_nothing_below_it() {
    let zone = nsec_zone();
    // RFC 6840 §4.1: b.example's NSEC (NS, no SOA) cannot deny names under b.example.
    assert_eq!(
        run(Denial::NxDomain, "c.b.example.", &zone).proof,
        Proof::Bogus
    );
    // Nor NODATA for b.example's own A (the data is in the child).
    assert_eq!(
        run(Denial::NoData(A), "b.example.", &zone).proof,
        Proof::Bogus
    );
}

#[test]
fn nsec_nodata_exact_empty_non_terminal_and_wildcard() {
    let zone = nsec_zone();
    assert_eq!(
        run(Denial::NoData(AAAA), "a.example.", &zone),
        Verdict::secure()
    );
    assert_eq!(
        run(Denial::NoData(A), "a.example.", &zone).proof,
        Proof::Bogus
    );
    // y.example exists only as the parent of x.y.example (RFC 7129 §3.2).
    assert_eq!(
        run(Denial::NoData(A), "y.example.", &zone),
        Verdict::secure()
    );
    // q.w.example matches *.w.example, which has A but no AAAA.
    assert_eq!(
        run(Denial::NoData(AAAA), "q.w.example.", &zone),
        Verdict::secure()
    );
    assert_eq!(
        run(Denial::NoData(A), "q.w.example.", &zone).proof,
        Proof::Bogus
    );
    // A CNAME at the name would have been the answer.
    let cname = vec![nsec("c.example.", "d.example.", &[CNAME])];
    assert_eq!(
        run(Denial::NoData(A), "c.example.", &cname).proof,
        Proof::Bogus
    );
}

#[test]
fn nsec_wildcard_answer_needs_no_closer_match() {
    let zone = nsec_zone();
    let wildcard = name("*.w.example.");
    let v = run(
        Denial::Wildcard {
            wildcard: wildcard.clone(),
        },
        "q.w.example.",
        &zone,
    );
    assert_eq!(v, Verdict::secure());
    // A wildcard claimed at the apex while w.example exists: a closer encloser, bogus.
    let v = run(
        Denial::Wildcard {
            wildcard: name("*.example."),
        },
        "q.w.example.",
        &zone,
    );
    assert_eq!(v.proof, Proof::Bogus);
    let v = run(Denial::Wildcard { wildcard }, "q.w.example.", &[]);
    assert_eq!(v.ede(), Some(12));
}

#[test]
fn nsec_unsigned_delegation_is_insecure_and_a_signed_one_is_not_denied() {
    let zone = nsec_zone();
    assert_eq!(
        run(Denial::NoDs, "b.example.", &zone),
        Verdict::insecure(None)
    );
    assert_eq!(run(Denial::NoDs, "a.example.", &zone).proof, Proof::Bogus);
    let with_ds = vec![nsec("b.example.", "c.example.", &[NS, DS])];
    assert_eq!(
        run(Denial::NoDs, "b.example.", &with_ds).proof,
        Proof::Bogus
    );
    // DS NODATA at the parent side is fine; from the child apex (SOA) it is not.
    assert_eq!(
        run(Denial::NoData(DS), "b.example.", &zone),
        Verdict::secure()
    );
    let apex = vec![nsec("b.example.", "a.b.example.", &[NS, SOA])];
    assert_eq!(
        run(Denial::NoData(DS), "b.example.", &apex).proof,
        Proof::Bogus
    );
}

/// RFC 5155 Appendix A: hashes of the example zone's names, salt aabbccdd, 12 iterations.
#[test]
fn rfc5155_appendix_a_hashes() {
    let salt = [0xaa, 0xbb, 0xcc, 0xdd];
    for (owner, hash) in [
        ("example.", "0p9mhaveqvm6t7vbl5lop2u3t2rp3tom"),
        ("a.example.", "35mthgpgcu1qg68fab165klnsnk3dpvl"),
        ("ai.example.", "gjeqe526plbf1g8mklp59enfd789njgi"),
        ("ns1.example.", "2t7b4g4vsa5smi47k61mv5bv1a22bojr"),
        ("ns2.example.", "q04jkcevqvmu85r014c7dkba38o0ji5r"),
        ("w.example.", "k8udemvp1j2f7eg6jebps17vp3n8i58h"),
        ("*.w.example.", "r53bq7cc2uvmubfu5ocmm6pers9tk9en"),
        ("x.w.example.", "b4um86eghhds6nea196smvmlo4ors995"),
        ("y.w.example.", "ji6neoaepv8b5o6k4ev33abha8ht9fgc"),
        ("x.y.w.example.", "2vptu5timamqttgl4luu9kg21e0aor3s"),
        ("xx.example.", "t644ebqk9bibcna874givr6joj62mlhv"),
    ] {
        let h = Nsec3HashAlgorithm::SHA1
            .hash(&salt, &name(owner), 12)
            .unwrap();
        assert_eq!(
            data_encoding::BASE32_DNSSEC.encode(h.as_ref()),
            hash,
            "{owner}"
        );
    }
}

/// An NSEC3 chain for `example.` over `names` (name, types), hashed with `iterations`;
/// `opt_out` marks every record.
fn nsec3_zone(names: &[(&str, &[RecordType])], iterations: u16, opt_out: bool) -> Vec<Record> {
    let salt = vec![0xab, 0xcd];
    let mut hashed: Vec<(Vec<u8>, Vec<RecordType>)> = names
        .iter()
        .map(|(n, t)| {
            let h = Nsec3HashAlgorithm::SHA1
                .hash(&salt, &name(n), iterations)
                .unwrap();
            (h.as_ref().to_vec(), t.to_vec())
        })
        .collect();
    hashed.sort();
    (0..hashed.len())
        .map(|i| {
            let (h, types) = &hashed[i];
            let next = hashed[(i + 1) % hashed.len()].0.clone();
            let owner = format!("{}.example.", data_encoding::BASE32_DNSSEC.encode(h));
            let rdata = NSEC3::new(
                Nsec3HashAlgorithm::SHA1,
                opt_out,
                iterations,
                salt.clone(),
                next,
                types.iter().copied(),
            );
            record(&owner, 3600, dnssec(DNSSECRData::NSEC3(rdata)))
        })
        .collect()
}

const APEX: (&str, &[RecordType]) = ("example.", &[SOA, NS, RecordType::DNSKEY]);

#[test]
fn nsec3_nxdomain_nodata_and_wildcard() {
    let zone = nsec3_zone(
        &[
            APEX,
            ("a.example.", &[A]),
            ("w.example.", &[]),
            ("*.w.example.", &[A]),
        ],
        5,
        false,
    );
    assert_eq!(
        run(Denial::NxDomain, "nope.example.", &zone),
        Verdict::secure()
    );
    assert_eq!(
        run(Denial::NxDomain, "a.example.", &zone).proof,
        Proof::Bogus
    );
    assert_eq!(
        run(Denial::NoData(AAAA), "a.example.", &zone),
        Verdict::secure()
    );
    assert_eq!(
        run(Denial::NoData(A), "a.example.", &zone).proof,
        Proof::Bogus
    );
    // §8.7: q.w.example has no NSEC3 of its own; *.w.example has A but not AAAA.
    assert_eq!(
        run(Denial::NoData(AAAA), "q.w.example.", &zone),
        Verdict::secure()
    );
    // §8.8: an answer from *.w.example for q.w.example.
    let v = run(
        Denial::Wildcard {
            wildcard: name("*.w.example."),
        },
        "q.w.example.",
        &zone,
    );
    assert_eq!(v, Verdict::secure());
    // Records missing from the proof: bogus, EDE 6 (see the NSEC test).
    let v = run(Denial::NxDomain, "nope.example.", &zone[..1]);
    assert_eq!((v.proof, v.ede()), (Proof::Bogus, Some(6)));
}

#[test]
fn nsec3_opt_out_makes_unsigned_delegations_insecure() {
    // b.example is an unsigned delegation left out of an opt-out chain (RFC 5155 §6).
    let zone = nsec3_zone(&[APEX, ("a.example.", &[A])], 0, true);
    assert_eq!(
        run(Denial::NoDs, "b.example.", &zone),
        Verdict::insecure(None)
    );
    assert_eq!(
        run(Denial::NoData(DS), "b.example.", &zone),
        Verdict::insecure(None)
    );
    // NXDOMAIN through an opt-out range is insecure too (§9.2).
    assert_eq!(
        run(Denial::NxDomain, "c.example.", &zone).proof,
        Proof::Insecure
    );
    // Without opt-out the same chain proves b.example has no DS only by a match.
    let strict = nsec3_zone(
        &[APEX, ("a.example.", &[A]), ("b.example.", &[NS])],
        0,
        false,
    );
    assert_eq!(
        run(Denial::NoDs, "b.example.", &strict),
        Verdict::insecure(None)
    );
    assert_eq!(run(Denial::NoDs, "c.example.", &strict).proof, Proof::Bogus);
}

#[test]
fn nsec3_iterations_above_150_are_insecure_with_ede_27() {
    let zone = nsec3_zone(&[APEX, ("a.example.", &[A])], 151, false);
    let v = run(Denial::NxDomain, "nope.example.", &zone);
    assert_eq!((v.proof, v.ede()), (Proof::Insecure, Some(27)));
    let ok = nsec3_zone(&[APEX, ("a.example.", &[A])], 150, false);
    assert_eq!(
        run(Denial::NxDomain, "nope.example.", &ok),
        Verdict::secure()
    );
}

/// CVE-2023-50868: a deep name makes a closest-encloser proof hash every label; the budget
/// stops it after a fixed count of hashes.
#[test]
fn nsec3_hashing_is_bounded_by_the_budget() {
    let zone = nsec3_zone(&[APEX, ("a.example.", &[A])], 150, false);
    let deep = "x.".repeat(100) + "example.";
    let mut budget = Budget::new(64, 8);
    let v = prove(
        &Denial::NxDomain,
        &name(&deep),
        &name("example."),
        &zone,
        &mut budget,
    );
    assert_eq!(v.proof, Proof::Bogus);
    assert!(matches!(v.reason, Some(Reason::BudgetSpent(_))), "{v:?}");
    assert_eq!(budget.hashes(), 8);
    // The default budget proves the same name: 101 names from the question up to the apex,
    // then *.example; the next closer name was already hashed on the way up.
    let mut budget = Budget::default();
    let v = prove(
        &Denial::NxDomain,
        &name(&deep),
        &name("example."),
        &zone,
        &mut budget,
    );
    assert_eq!(v, Verdict::secure());
    assert_eq!(budget.hashes(), 102);
}

#[test]
fn aggressive_synthesis_uses_the_same_proofs_on_cached_ranges() {
    // RFC 8198 §5.1: a cached NSEC range proves a name that was never asked for.
    let cached = nsec_zone();
    let unseen: Name = name("cz.example.");
    assert_eq!(
        prove(
            &Denial::NxDomain,
            &unseen,
            &name("example."),
            &cached,
            &mut Budget::default()
        ),
        Verdict::secure()
    );
}

fn synth(qname: &str, qtype: RecordType, records: &[Record]) -> Option<(bool, Vec<String>)> {
    synthesise(
        &name(qname),
        qtype,
        &name("example."),
        records,
        &mut Budget::default(),
    )
    .map(|s| {
        let owners = s.proof.iter().map(|r| r.name.to_ascii()).collect();
        (s.nxdomain, owners)
    })
}

/// RFC 8198 §5: cached, validated NSEC ranges answer without asking, with the one or two
/// records a reply would carry; never for what they do not prove.
#[test]
fn aggressive_nsec_synthesises_only_what_the_ranges_prove() {
    let zone = nsec_zone();
    // ab.example: covered by a→b, and *.example by the apex range: NXDOMAIN.
    assert_eq!(
        synth("ab.example.", A, &zone),
        Some((true, vec!["a.example.".into(), "example.".into()]))
    );
    // Without the range covering the wildcard, nothing (it might exist).
    assert_eq!(synth("ab.example.", A, &zone[1..]), None);
    // a.example has A only: NODATA for AAAA from its own NSEC; nothing for A.
    assert_eq!(
        synth("a.example.", AAAA, &zone),
        Some((false, vec!["a.example.".into()]))
    );
    assert_eq!(synth("a.example.", A, &zone), None);
    // y.example is an empty non-terminal: NODATA.
    assert_eq!(
        synth("y.example.", A, &zone),
        Some((false, vec!["*.w.example.".into()]))
    );
    // z.w.example matches *.w.example, which has A: an answer, not a denial; but the
    // wildcard has no AAAA: NODATA.
    assert_eq!(synth("z.w.example.", A, &zone), None);
    assert_eq!(
        synth("z.w.example.", AAAA, &zone),
        Some((false, vec!["*.w.example.".into()]))
    );
    // Below the unsigned delegation b.example, the parent's range proves nothing.
    assert_eq!(synth("c.b.example.", A, &zone), None);
    // Never DS (the parent's), never NODATA for ANY, never outside the zone.
    assert_eq!(synth("c.example.", DS, &zone), None);
    assert_eq!(synth("a.example.", RecordType::ANY, &zone), None);
    assert!(synth("c.example.", RecordType::ANY, &zone).is_some_and(|s| s.0));
    assert_eq!(synth("c.other.", A, &zone), None);
}

/// RFC 8198 §5.2 with NSEC3: the same proof as for a reply, from the whole cached chain;
/// the records it relied on are the proof (three for NXDOMAIN: closest encloser, next
/// closer, wildcard); never through an opt-out range (§6) or over the iteration limit.
#[test]
fn aggressive_nsec3_synthesises_what_the_chain_proves() {
    let names: &[(&str, &[RecordType])] = &[
        APEX,
        ("a.example.", &[A]),
        ("w.example.", &[]),
        ("*.w.example.", &[A]),
    ];
    let zone = nsec3_zone(names, 5, false);
    let run = |qname: &str, qtype: RecordType, records: &[Record]| {
        synthesise(
            &name(qname),
            qtype,
            &name("example."),
            records,
            &mut Budget::default(),
        )
    };
    let s = run("nope.example.", A, &zone).expect("NXDOMAIN");
    assert!(s.nxdomain);
    assert!(
        (2..=3).contains(&s.proof.len()),
        "closest encloser, next closer, wildcard (two may be one): {}",
        s.proof.len()
    );
    assert!(s.proof.len() < zone.len() || zone.len() <= 3);
    let s = run("a.example.", AAAA, &zone).expect("NODATA");
    assert!(!s.nxdomain);
    assert_eq!(s.proof.len(), 1, "the name's own NSEC3");
    assert_eq!(run("a.example.", A, &zone), None, "the type exists");
    assert_eq!(run("q.w.example.", A, &zone), None, "the wildcard answers");
    assert!(run("q.w.example.", AAAA, &zone).is_some_and(|s| !s.nxdomain));
    assert_eq!(
        run("nope.example.", A, &nsec3_zone(names, 5, true)),
        None,
        "opt-out"
    );
    assert_eq!(
        run("nope.example.", A, &nsec3_zone(names, 151, false)),
        None
    );
}
