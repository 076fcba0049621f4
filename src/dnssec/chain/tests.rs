use arc_swap::ArcSwap;
use hickory_proto::dnssec::rdata::{DNSSECRData, NSEC};
use hickory_proto::dnssec::DigestType;

use super::*;
use crate::dnssec::anchor::{Anchor, NegativeAnchors};
use crate::dnssec::keycache::KeyCache;
use crate::dnssec::testkit::{dnssec, name, record, ZoneKey, NOW};

/// A signed hierarchy: `.` → `com.` → `example.com.`, one key per zone (a KSK that signs
/// everything, which is enough for the chain), `y.com.` a name in `com.` that is no cut,
/// `x.y.com.` a signed child below it, `insecure.com.` an unsigned delegation.
struct Net {
    root: ZoneKey,
    com: ZoneKey,
    example: ZoneKey,
    xy: ZoneKey,
}

#[derive(Default)]
struct Answer {
    records: Vec<Record>,
    sigs: Vec<Record>,
    negative: Option<bool>,
    failed: bool,
}

impl Answer {
    fn fetched(&self) -> Fetched<'_> {
        match (self.failed, self.negative) {
            (true, _) => Fetched::Failed,
            (false, Some(nxdomain)) => Fetched::Negative {
                nxdomain,
                proof: &self.records,
                sigs: &self.sigs,
            },
            (false, None) => Fetched::Records {
                records: &self.records,
                sigs: &self.sigs,
            },
        }
    }
}

fn keys_of(k: &ZoneKey) -> Answer {
    let records = vec![k.record()];
    let sigs = vec![k.sign(&records)];
    Answer {
        records,
        sigs,
        ..Default::default()
    }
}

fn ds_of(child: &ZoneKey, parent: &ZoneKey) -> Answer {
    let records = vec![record(
        &child.zone.to_string(),
        3600,
        dnssec(DNSSECRData::DS(child.ds(DigestType::SHA256))),
    )];
    let sigs = vec![parent.sign(&records)];
    Answer {
        records,
        sigs,
        ..Default::default()
    }
}

fn nsec_proof(owner: &str, next: &str, types: &[RecordType], signer: &ZoneKey) -> Answer {
    let mut t = types.to_vec();
    t.extend([RecordType::NSEC, RecordType::RRSIG]);
    let records = vec![record(
        owner,
        3600,
        dnssec(DNSSECRData::NSEC(NSEC::new(name(next), t))),
    )];
    let sigs = vec![signer.sign(&records)];
    Answer {
        records,
        sigs,
        negative: Some(false),
        ..Default::default()
    }
}

impl Net {
    fn new() -> Net {
        Net {
            root: ZoneKey::ecdsa(".", true),
            com: ZoneKey::ed25519("com.", true),
            example: ZoneKey::ecdsa("example.com.", true),
            xy: ZoneKey::ecdsa("x.y.com.", true),
        }
    }

    fn answer(&self, n: &Name, t: RecordType) -> Answer {
        let s = n.to_string();
        match (s.as_str(), t) {
            (".", RecordType::DNSKEY) => keys_of(&self.root),
            ("com.", RecordType::DS) => ds_of(&self.com, &self.root),
            ("com.", RecordType::DNSKEY) => keys_of(&self.com),
            ("example.com.", RecordType::DS) => ds_of(&self.example, &self.com),
            ("example.com.", RecordType::DNSKEY) => keys_of(&self.example),
            ("y.com.", RecordType::DS) => {
                nsec_proof("y.com.", "a.y.com.", &[RecordType::A], &self.com)
            }
            ("x.y.com.", RecordType::DS) => ds_of(&self.xy, &self.com),
            ("x.y.com.", RecordType::DNSKEY) => keys_of(&self.xy),
            ("insecure.com.", RecordType::DS) => {
                nsec_proof("insecure.com.", "j.com.", &[RecordType::NS], &self.com)
            }
            _ => Answer {
                failed: true,
                ..Default::default()
            },
        }
    }

    fn config(&self) -> Config {
        let mut anchors = TrustAnchors::default();
        anchors.add(Name::root(), Anchor::Key(self.root.dnskey.clone()));
        Config {
            anchors: arc_swap::ArcSwap::from_pointee(anchors),
            trust_points: Vec::new(),
            state_file: None,
            negative: ArcSwap::from_pointee(NegativeAnchors::default()),
            skew: Skew::default(),
        }
    }
}

fn run(
    signer: &str,
    config: &Config,
    answer: impl Fn(&Name, RecordType) -> Answer,
) -> (Walk, Budget) {
    let mut walk = Walk::new(&name(signer), config);
    let mut budget = Budget::default();
    while let Some((n, t)) = walk.need() {
        let a = answer(&n, t);
        walk.feed(a.fetched(), NOW, &mut budget);
    }
    (walk, budget)
}

fn fetches(walk: &Walk) -> Vec<String> {
    walk.fetched
        .iter()
        .map(|(n, t)| format!("{n} {t}"))
        .collect()
}

#[test]
fn walks_from_the_root_anchor_to_the_signer_keys() {
    let net = Net::new();
    let (walk, budget) = run("example.com.", &net.config(), |n, t| net.answer(n, t));
    let keys = walk.done().unwrap().as_ref().unwrap();
    assert_eq!(keys.zone, name("example.com."));
    assert_eq!(keys.entry_key_tag, net.example.tag);
    assert_eq!(
        fetches(&walk),
        [
            ". DNSKEY",
            "com. DS",
            "com. DNSKEY",
            "example.com. DS",
            "example.com. DNSKEY"
        ]
    );
    // One verification per RRset: three DNSKEY sets and two DS sets.
    assert_eq!(budget.verifications(), 5);
}

#[test]
fn a_name_that_is_no_cut_is_stepped_over() {
    let net = Net::new();
    let (walk, _) = run("x.y.com.", &net.config(), |n, t| net.answer(n, t));
    assert_eq!(
        walk.done().unwrap().as_ref().unwrap().zone,
        name("x.y.com.")
    );
    assert!(fetches(&walk).contains(&"y.com. DS".to_string()));
}

#[test]
fn an_unsigned_delegation_is_insecure() {
    let net = Net::new();
    let (walk, _) = run("insecure.com.", &net.config(), |n, t| net.answer(n, t));
    assert_eq!(walk.done().unwrap(), &Err(Verdict::insecure(None)));
}

#[test]
fn a_ds_for_another_key_is_bogus_with_ede_9() {
    let net = Net::new();
    let stranger = ZoneKey::ecdsa("example.com.", true);
    let (walk, _) = run("example.com.", &net.config(), |n, t| {
        if n == &name("example.com.") && t == RecordType::DS {
            ds_of(&stranger, &net.com)
        } else {
            net.answer(n, t)
        }
    });
    let v = walk.done().unwrap().clone().unwrap_err();
    assert_eq!((v.proof, v.ede()), (Proof::Bogus, Some(9)));
}

#[test]
fn a_ds_signed_by_the_wrong_zone_or_missing_is_bogus() {
    let net = Net::new();
    // The DS for example.com signed by example.com itself instead of com.
    let (walk, _) = run("example.com.", &net.config(), |n, t| {
        if n == &name("example.com.") && t == RecordType::DS {
            ds_of(&net.example, &net.example)
        } else {
            net.answer(n, t)
        }
    });
    assert_eq!(walk.done().unwrap().clone().unwrap_err().ede(), Some(10));
    // No answer at all for a DS: bogus, never secure.
    let (walk, _) = run("nowhere.com.", &net.config(), |n, t| net.answer(n, t));
    assert_eq!(
        walk.done().unwrap().clone().unwrap_err().proof,
        Proof::Bogus
    );
}

#[test]
fn negative_anchor_and_missing_anchor_need_no_fetch() {
    let net = Net::new();
    let config = net.config();
    config.set_negative(NegativeAnchors::parse(&["com"]).unwrap());
    let (walk, _) = run("example.com.", &config, |_, _| panic!("nothing to fetch"));
    assert_eq!(walk.done().unwrap(), &Err(Verdict::insecure(None)));

    let config = net.config();
    let mut anchors = TrustAnchors::default();
    anchors.add(name("org."), Anchor::Key(net.com.dnskey.clone()));
    config.anchors.store(std::sync::Arc::new(anchors));
    let (walk, _) = run("example.com.", &config, |_, _| panic!("nothing to fetch"));
    assert_eq!(walk.done().unwrap(), &Err(Verdict::indeterminate()));
}

#[test]
fn a_cached_key_set_resumes_the_walk_below_it() {
    let net = Net::new();
    let config = net.config();
    let (to_com, _) = run("com.", &config, |n, t| net.answer(n, t));
    let com_keys = to_com.done().unwrap().clone().unwrap();
    let mut walk = Walk::resume(&name("example.com."), com_keys, &config);
    let mut budget = Budget::default();
    while let Some((n, t)) = walk.need() {
        walk.feed(net.answer(&n, t).fetched(), NOW, &mut budget);
    }
    assert_eq!(fetches(&walk), ["example.com. DS", "example.com. DNSKEY"]);
    assert!(walk.done().unwrap().is_ok());
}

#[test]
fn proof_records_must_verify_with_the_zone_keys() {
    let net = Net::new();
    let (to_com, _) = run("com.", &net.config(), |n, t| net.answer(n, t));
    let com_keys = to_com.done().unwrap().clone().unwrap();
    let forged = nsec_proof("insecure.com.", "j.com.", &[RecordType::NS], &net.example);
    let e = verified_proof(
        &com_keys,
        &forged.records,
        &forged.sigs,
        NOW,
        Skew::default(),
        &mut Budget::default(),
    );
    assert_eq!(e, Err(Reason::RrsigsMissing));
    let good = nsec_proof("insecure.com.", "j.com.", &[RecordType::NS], &net.com);
    let ok = verified_proof(
        &com_keys,
        &good.records,
        &good.sigs,
        NOW,
        Skew::default(),
        &mut Budget::default(),
    );
    assert_eq!(ok.unwrap().len(), 1);
}

/// A fixed vector of real signed data: the chain of example.com. A as the root (RSASHA256,
/// KSK-2017), com. and example.com. (ECDSAP256SHA256) served it in November 2024, checked
/// from hopdns's built-in root anchors.
#[test]
fn real_chain_of_example_com_from_the_builtin_root_anchors() {
    use crate::dnssec::testkit::{parse_records, rrsig_time};
    use crate::dnssec::verify::verify_rrset;
    let all = parse_records(include_str!("../testdata/example.com-2024-11.zone"));
    let answer = |n: &Name, t: RecordType| {
        let records: Vec<Record> = all
            .iter()
            .filter(|r| r.name == *n && r.record_type() == t)
            .cloned()
            .collect();
        let sigs: Vec<Record> = all
            .iter()
            .filter(|r| r.name == *n && rrsig(r).is_some_and(|s| s.input().type_covered == t))
            .cloned()
            .collect();
        Answer {
            records,
            sigs,
            ..Default::default()
        }
    };
    let config = Config::load(&[], None, NegativeAnchors::default()).unwrap();
    let now = u64::from(rrsig_time("20241113000000"));
    let mut walk = Walk::new(&name("example.com."), &config);
    let mut budget = Budget::default();
    while let Some((n, t)) = walk.need() {
        walk.feed(answer(&n, t).fetched(), now, &mut budget);
    }
    let keys = walk.done().unwrap().clone().unwrap();
    assert_eq!((keys.keys.len(), keys.entry_key_tag), (3, 370));
    let a = answer(&name("example.com."), RecordType::A);
    let secured = verify_rrset(
        &name("example.com."),
        RecordType::A,
        &a.records,
        &a.sigs,
        &keys.zone,
        &keys.keys,
        now,
        Skew::default(),
        &mut budget,
    )
    .unwrap();
    assert_eq!(secured.key_tag, 42464);
    assert_eq!(budget.verifications(), 6);

    // Three weeks later the root's DNSKEY signature has expired (beyond the one-day skew).
    let later = u64::from(rrsig_time("20241205000000"));
    let mut walk = Walk::new(&name("example.com."), &config);
    while let Some((n, t)) = walk.need() {
        walk.feed(answer(&n, t).fetched(), later, &mut Budget::default());
    }
    assert_eq!(walk.done().unwrap().clone().unwrap_err().ede(), Some(7));
}

#[test]
fn the_key_cache_shortens_walks_but_never_bypasses_an_anchor() {
    let net = Net::new();
    let config = net.config();
    let cache = KeyCache::default();
    let (first, _) = run("example.com.", &config, |n, t| net.answer(n, t));
    for ks in &first.validated {
        cache.insert_keys(ks.clone(), NOW);
    }
    assert_eq!(first.validated.len(), 3);
    // The signer's own keys are cached: nothing to fetch.
    let again = Walk::from_cache(&name("example.com."), &config, &cache, NOW);
    assert_eq!(again.need(), None);
    assert_eq!(
        again.done().unwrap().as_ref().unwrap().zone,
        name("example.com.")
    );
    // Below com.'s cached keys, a walk to x.y.com. starts at y.com.'s DS.
    let mut below = Walk::from_cache(&name("x.y.com."), &config, &cache, NOW);
    let mut budget = Budget::default();
    while let Some((n, t)) = below.need() {
        below.feed(net.answer(&n, t).fetched(), NOW, &mut budget);
    }
    assert_eq!(
        fetches(&below),
        ["y.com. DS", "x.y.com. DS", "x.y.com. DNSKEY"]
    );
    assert!(below.done().unwrap().is_ok());

    // A cached insecure verdict ends the walk at once.
    cache.insert_verdict(&name("insecure.com."), Verdict::insecure(None), 300, NOW);
    let w = Walk::from_cache(&name("a.insecure.com."), &config, &cache, NOW);
    assert_eq!(w.done(), Some(&Err(Verdict::insecure(None))));

    // An anchor below a cached key set is not bypassed: the walk starts at the anchor.
    let config = net.config();
    config.set_trusted(&name("example.com."), vec![net.example.dnskey.clone()]);
    let cache = KeyCache::default();
    cache.insert_keys(first.validated[1].clone(), NOW); // com.
    let w = Walk::from_cache(&name("example.com."), &config, &cache, NOW);
    assert_eq!(w.need(), Some((name("example.com."), RecordType::DNSKEY)));
}
