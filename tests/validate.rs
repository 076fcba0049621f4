//! DNSSEC validation in the resolution (issue 14.2-14.4): every signed-lab case through the
//! machine, its state and Extended DNS Error checked against the verdict the lab records
//! (the one Unbound 1.17 gives, `benches/dnssec/run.sh`). Lab networks 200-209.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::dnssec::Proof;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RecordType};
use hopdns::cache::{Cache, CacheConfig};
use hopdns::dns::{Failure, Outcome, Question};
use hopdns::lab::{Lab, LabConfig, Verdict, DNSSEC_CASES};
use hopdns::resolver::machine::Resolution;
use hopdns::resolver::run::{Pick, Run};
use hopdns::resolver::ResolverConfig;
use hopdns::transport::NetTransport;

/// Resolves `qname`/`qtype` through the lab with validation, in `cache`: the outcome, its
/// verdict and the signature verifications spent.
async fn validate(
    config: &ResolverConfig,
    cache: &Cache,
    qname: &str,
    qtype: RecordType,
) -> (Outcome, Option<hopdns::dnssec::Verdict>, u32) {
    let q = Question::new(Name::from_ascii(qname).unwrap(), qtype);
    let mut m = Resolution::new(
        q,
        std::sync::Arc::new(config.root_hints.clone()),
        Arc::new(config.settings.clone()),
        false,
    );
    let transport = NetTransport::default();
    let deadline = Instant::now() + Duration::from_secs(10);
    let outcome = Run::new(cache, &transport, Pick::First, deadline)
        .drive(&mut m, None, || None)
        .await;
    (outcome, m.verdict().cloned(), m.validation_cost().0)
}

/// The rcode as the lab's cases spell it.
fn rcode(outcome: &Outcome) -> &'static str {
    match outcome.rcode() {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::ServFail => "SERVFAIL",
        _ => "other",
    }
}

fn ede(outcome: &Outcome) -> Option<u16> {
    match outcome {
        Outcome::ServFail(Failure::Dnssec { ede, .. }) => Some(*ede),
        _ => None,
    }
}

/// Every lab case, each with a cold cache: secure, insecure (unsigned delegation,
/// unsupported algorithm, opt-out, too many NSEC3 iterations) and bogus with the EDE the
/// lab expects.
#[tokio::test]
async fn every_signed_lab_case_gets_its_state_and_ede() {
    let lab = Lab::start(LabConfig { net: 200 }).await.unwrap();
    let config = hopdns::cli::lab::lab_config(&lab).unwrap();
    let mut wrong = Vec::new();
    for case in DNSSEC_CASES {
        let cache = Cache::new(CacheConfig::default());
        let (outcome, verdict, cost) = validate(&config, &cache, case.name, case.qtype).await;
        let proof = verdict.as_ref().map(|v| v.proof);
        let ok = match case.verdict {
            Verdict::Secure => proof == Some(Proof::Secure) && rcode(&outcome) == case.rcode,
            Verdict::Insecure => proof == Some(Proof::Insecure) && rcode(&outcome) == case.rcode,
            Verdict::Bogus(code) => {
                proof == Some(Proof::Bogus)
                    && outcome.rcode() == ResponseCode::ServFail
                    && ede(&outcome) == Some(code)
            }
        };
        // KeyTrap: whatever the verdict, the work is bounded by the request's budget.
        assert!(
            cost <= hopdns::dnssec::verify::MAX_VERIFY_PER_REQUEST,
            "{}: {cost}",
            case.name
        );
        if !ok {
            wrong.push(format!(
                "{} {:?} ({}): expected {:?}, got {:?} {:?}",
                case.name,
                case.qtype,
                case.what,
                case.verdict,
                verdict,
                outcome.rcode()
            ));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
    // DS sets come with the referrals (RFC 4035 §3.1.4.1, asked with DO) and are verified
    // from there, as Unbound takes them: a cold resolution through signed delegations asks
    // no DS, only the DNSKEY sets.
    lab.clear_query_log();
    let cache = Cache::new(CacheConfig::default());
    let (_, verdict, _) = validate(&config, &cache, "www.secure.org.", RecordType::A).await;
    assert_eq!(verdict.unwrap().proof, Proof::Secure);
    let log = lab.query_log();
    let asked = |t| log.iter().filter(|q| q.qtype == t).count();
    assert_eq!(asked(RecordType::DS), 0, "{log:?}");
    assert_eq!(
        asked(RecordType::DNSKEY),
        3,
        "root, org., secure.org.: {log:?}"
    );
    lab.shutdown().await;
}

/// The EDE option (RFC 8914 §2) of a reply: INFO-CODE and EXTRA-TEXT.
fn ede_option(m: &hickory_proto::op::Message) -> Option<(u16, String)> {
    let opt = m.edns.as_ref()?;
    opt.options().as_ref().iter().find_map(|(code, option)| {
        if u16::from(*code) != 15 {
            return None;
        }
        let hickory_proto::rr::rdata::opt::EdnsOption::Unknown(_, bytes) = option else {
            return None;
        };
        let info = u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]);
        Some((info, String::from_utf8_lossy(&bytes[2..]).into_owned()))
    })
}

/// A bogus answer reaches the client as SERVFAIL with the reason's Extended DNS Error in
/// its OPT (RFC 8914), and again from the bogus cache for 60 s; secure and insecure answers
/// come through as they are.
#[tokio::test]
async fn bogus_is_servfail_with_its_extended_dns_error() {
    use hopdns::metrics::{metrics, Validated};
    let env = crate::util::Env::start_validating(201).await;
    // Counted in hopdns_dnssec_validations_total{state} (other tests only add to them).
    let before = Validated::ALL.map(|s| metrics().validations(s));
    for (qname, code) in [
        ("www.expired.net.", 7),
        ("www.notyet.net.", 8),
        ("www.dsnokey.net.", 9),
        ("www.nosig.net.", 10),
        ("nope.badnsec.net.", 6),
    ] {
        let m = env.udp(qname, RecordType::A).await;
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail, "{qname}");
        let (info, text) = ede_option(&m).unwrap_or_else(|| panic!("{qname}: no EDE in {m:?}"));
        assert_eq!(info, code, "{qname}: {text}");
        assert!(!text.is_empty(), "{qname}");
    }
    // Bogus is remembered for 60 s (Unbound's val-bogus-ttl): asked again, the answer
    // (and its EDE) comes without asking anyone.
    env.lab.clear_query_log();
    let m = env.udp("www.nosig.net.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(ede_option(&m).map(|e| e.0), Some(10));
    assert_eq!(env.lab.query_log().len(), 0, "{:?}", env.lab.query_log());
    for qname in ["www.secure.net.", "www.insecure.net.", "www.example.com."] {
        let m = env.udp(qname, RecordType::A).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{qname}");
        assert_eq!(ede_option(&m), None, "{qname}");
    }
    let grew = |s: Validated| metrics().validations(s) - before[s as usize];
    assert!(grew(Validated::Bogus) >= 5, "five bogus resolutions");
    assert!(grew(Validated::Secure) >= 1 && grew(Validated::Insecure) >= 1);
    env.stop().await;
}

/// KeyTrap (CVE-2023-50387) through a whole resolution: the lab's keytrap.net carries 16
/// decoy keys with the real key's tag and 16 decoy signatures per RRset. The resolution
/// gives up (DNSKEY Missing, as Unbound 1.17) having verified at most the request's budget
/// of signatures, counted, not timed; a cached key set makes the next one cheap.
#[tokio::test]
async fn keytrap_costs_a_bounded_number_of_verifications() {
    let lab = Lab::start(LabConfig { net: 202 }).await.unwrap();
    let config = hopdns::cli::lab::lab_config(&lab).unwrap();
    let cache = Cache::new(CacheConfig::default());
    let (outcome, verdict, cost) =
        validate(&config, &cache, "www.keytrap.net.", RecordType::A).await;
    assert_eq!(ede(&outcome), Some(9), "{verdict:?}");
    assert!(
        cost <= hopdns::dnssec::verify::MAX_VERIFY_PER_REQUEST,
        "{cost}"
    );
    // With the root's and net.'s keys cached, a secure name under net. costs three: its
    // DS (net.'s key), its DNSKEY set (the DS-linked key), the answer.
    let (_, verdict, cost) = validate(&config, &cache, "www.secure.net.", RecordType::A).await;
    assert_eq!(verdict.unwrap().proof, Proof::Secure);
    assert_eq!(cost, 3);
    // Signatures verified once are not verified again (dnssec::memo): the same wildcard
    // answer with its NSEC3 proof, asked again once the answer has left the cache, costs
    // nothing; another name under the wildcard reuses the wildcard's RRSIG (the same signed
    // data for every expansion), and at most its NSEC3 proof is new.
    let (_, verdict, first) = validate(&config, &cache, "m1.wild.secure.org.", RecordType::A).await;
    assert_eq!(verdict.unwrap().proof, Proof::Secure);
    assert!(first >= 2, "{first}");
    cache.flush_name(&Name::from_ascii("m1.wild.secure.org.").unwrap());
    let (_, verdict, again) = validate(&config, &cache, "m1.wild.secure.org.", RecordType::A).await;
    assert_eq!((verdict.unwrap().proof, again), (Proof::Secure, 0));
    let (_, verdict, other) = validate(&config, &cache, "m2.wild.secure.org.", RecordType::A).await;
    assert_eq!(verdict.unwrap().proof, Proof::Secure);
    assert!(other <= 1, "{other}");
    lab.shutdown().await;
}

/// Locally served zones (RFC 6761 `localhost`, RFC 6303 reverse zones) are answered as they
/// are with validation on: no query, no AD, never SERVFAIL for missing RRSIGs (they were
/// bogus with EDE 10 before). No lab: the hints name an address where nothing listens
/// (127.53.215.1), so a query sent would time out and fail the test.
#[tokio::test]
async fn locally_served_zones_are_not_validated() {
    let hints = ". 3600000 NS a.root-servers.net.\na.root-servers.net. 3600000 A 127.53.215.1\n";
    let mut config = ResolverConfig::new(hopdns::resolver::hints::parse(hints, "(test)").unwrap());
    config.settings.query_loopback = true;
    config.settings.ipv6 = false;
    config.settings.local = Arc::new(hopdns::local::LocalZones::defaults());
    config.settings.dnssec = Some(Arc::new(
        hopdns::dnssec::Config::load(
            &[],
            None,
            hopdns::dnssec::anchor::NegativeAnchors::default(),
        )
        .unwrap(),
    ));
    let cache = Cache::new(CacheConfig::default());
    for (name, qtype, want) in [
        ("localhost.", RecordType::A, "NOERROR"),
        ("1.0.0.127.in-addr.arpa.", RecordType::PTR, "NOERROR"),
        ("nothing.localhost.", RecordType::TXT, "NOERROR"),
        ("4.3.2.10.in-addr.arpa.", RecordType::PTR, "NXDOMAIN"),
    ] {
        let (outcome, verdict, cost) = validate(&config, &cache, name, qtype).await;
        assert_eq!(rcode(&outcome), want, "{name} {outcome:?}");
        assert_eq!(
            verdict.map(|v| v.proof),
            Some(Proof::Indeterminate),
            "{name}"
        );
        assert_eq!(cost, 0, "{name}: nothing verified");
    }
}

/// AD only on secure data and only for clients that set AD or DO (RFC 6840 §5.7-5.8), on
/// the first (resolved) reply and on the cached one (the fast path) alike; never on
/// insecure data.
#[tokio::test]
async fn ad_is_set_on_secure_data_for_clients_that_ask() {
    use hickory_proto::op::Edns;
    let env = crate::util::Env::start_validating(203).await;
    let ask = |qname: &'static str, ad: bool, dnssec_ok: bool| {
        let addr = env.addr;
        async move {
            let mut q = crate::util::query(qname, RecordType::A, Some(1232));
            q.metadata.authentic_data = ad;
            if dnssec_ok {
                let mut e = Edns::new();
                e.set_max_payload(1232).set_dnssec_ok(true);
                q.set_edns(e);
            }
            crate::util::udp_message(addr, &q).await
        }
    };
    for round in ["resolved", "cached"] {
        for (ad, dnssec_ok, want) in [
            (true, false, true),
            (false, true, true),
            (false, false, false),
        ] {
            let m = ask("www.secure.net.", ad, dnssec_ok).await;
            assert_eq!(m.metadata.response_code, ResponseCode::NoError);
            assert_eq!(
                m.metadata.authentic_data, want,
                "{round}: AD {ad} DO {dnssec_ok}"
            );
        }
        let m = ask("www.insecure.net.", true, true).await;
        assert!(
            !m.metadata.authentic_data,
            "{round}: insecure data never has AD"
        );
    }
    env.stop().await;
}

/// CD (RFC 6840 §5.9): bogus data comes back without AD instead of SERVFAIL, and is not
/// cached for clients that did not set CD, which still get SERVFAIL with the EDE.
#[tokio::test]
async fn cd_returns_bogus_data_unchecked_and_apart() {
    let env = crate::util::Env::start_validating(204).await;
    let ask = |qname: &'static str, cd: bool| {
        let addr = env.addr;
        async move {
            let mut q = crate::util::query(qname, RecordType::A, Some(1232));
            q.metadata.checking_disabled = cd;
            crate::util::udp_message(addr, &q).await
        }
    };
    let m = ask("www.expired.net.", true).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(!m.metadata.authentic_data && m.metadata.checking_disabled);
    assert_eq!(crate::util::answers(&m).len(), 1, "{m:?}");
    let m = ask("nope.badnsec.net.", true).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let m = ask("www.expired.net.", false).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(ede_option(&m).map(|e| e.0), Some(7));
    env.stop().await;
}

/// `hopdns trace NAME --dnssec` (text and JSON): per zone the DNSKEY and DS checks with key
/// tags, algorithms and RRSIG windows, then the state and its EDE; without `--dnssec` none
/// of it is shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_dnssec_shows_the_chain_and_the_verdict() {
    let lab = Lab::start(LabConfig { net: 205 }).await.unwrap();
    let dir = std::env::temp_dir().join(format!("hopdns-validate-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (hints, anchor) = (dir.join("lab.root"), dir.join("lab.anchor"));
    std::fs::write(&hints, lab.root_hints()).unwrap();
    std::fs::write(&anchor, lab.trust_anchor()).unwrap();
    let trace = |args: &[&str]| {
        let out = std::process::Command::new(crate::util::bin())
            .arg("trace")
            .args(args)
            .args(["--root-hints", hints.to_str().unwrap()])
            .args(["--trust-anchor", anchor.to_str().unwrap()])
            .args(["--query-loopback", "--no-ipv6", "--no-prime"])
            .output()
            .unwrap();
        (
            String::from_utf8(out.stdout).unwrap(),
            out.status.code().unwrap_or(-1),
        )
    };
    let (text, code) = tokio::task::block_in_place(|| trace(&["www.secure.net", "A", "--dnssec"]));
    assert_eq!(code, 0, "{text}");
    for want in [
        ";; dnssec .: DNSKEY: key ",
        " KSK",
        "RRSIG DNSKEY by . key ",
        // The DS set came with the referral from net. (no DS query).
        ";; dnssec secure.net.: DS (from the referral): DS ",
        ";; dnssec secure.net.: DNSKEY: ",
        "keys of secure.net. trusted",
        ";; dnssec result: secure",
    ] {
        assert!(text.contains(want), "{want:?} missing in\n{text}");
    }
    let (text, code) =
        tokio::task::block_in_place(|| trace(&["www.expired.net", "A", "--dnssec", "--json"]));
    assert_eq!(code, 1, "{text}");
    let last_validated = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .rfind(|v| v["event"] == "validated")
        .unwrap_or_else(|| panic!("no validated event in\n{text}"));
    assert_eq!(last_validated["state"], "bogus");
    assert_eq!(last_validated["ede"], 7);
    let (text, _) = tokio::task::block_in_place(|| trace(&["www.secure.net", "A"]));
    assert!(!text.contains(";; dnssec"), "{text}");
    lab.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Negative trust anchors (RFC 7646, `--insecure-domain`, reloadable): a bogus zone under
/// one is insecure (its data served, no SERVFAIL, no AD) without any DS or DNSKEY fetch;
/// taken away, it is bogus again.
#[tokio::test]
async fn a_negative_trust_anchor_makes_a_bogus_zone_insecure() {
    let lab = Lab::start(LabConfig { net: 207 }).await.unwrap();
    let config = hopdns::cli::lab::lab_config(&lab).unwrap();
    let dnssec = config.settings.dnssec.clone().unwrap();
    dnssec.set_negative(hopdns::dnssec::anchor::NegativeAnchors::parse(&["expired.net"]).unwrap());
    let cache = Cache::new(CacheConfig::default());
    let (outcome, verdict, cost) =
        validate(&config, &cache, "www.expired.net.", RecordType::A).await;
    assert_eq!(outcome.rcode(), ResponseCode::NoError);
    assert_eq!(verdict.unwrap().proof, Proof::Insecure);
    assert_eq!(cost, 0, "nothing verified under a negative anchor");
    dnssec.set_negative(hopdns::dnssec::anchor::NegativeAnchors::default());
    let cache = Cache::new(CacheConfig::default());
    let (outcome, _, _) = validate(&config, &cache, "www.expired.net.", RecordType::A).await;
    assert_eq!(ede(&outcome), Some(7));
    lab.shutdown().await;
}

/// RFC 5011 in `serve` (`--trust-anchor-state`): the refresher fetches rollover.net's DNSKEY
/// set through the resolver, on the resolver's manual clock advanced between the lab's
/// rollover phases. KSK2 waits out the 30-day add hold-down, then becomes an anchor; KSK1,
/// revoked and self-signed, stops being one; the state file says so and a restart reads it
/// back. The timer's interval is RFC 5011 §2.3's (an hour for the lab's short TTLs). Lab
/// network 214.
#[tokio::test]
async fn rfc5011_refresh_adds_a_key_after_the_hold_down_and_drops_a_revoked_one() {
    use hopdns::dnssec::autotrust::KeyState;
    use hopdns::lab::RolloverPhase;
    use hopdns::resolver::trustpoints::Refresher;
    use hopdns::resolver::Resolver;
    const DAY: Duration = Duration::from_secs(86400);
    const HOUR: Duration = Duration::from_secs(3600);

    let lab = Lab::start(LabConfig { net: 214 }).await.unwrap();
    let dir = std::env::temp_dir().join(format!("hopdns-rfc5011-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let anchor_file = dir.join("lab.anchors");
    std::fs::write(
        &anchor_file,
        format!("{}{}", lab.trust_anchor(), lab.rollover_anchor()),
    )
    .unwrap();
    let state = dir.join("anchors.state");
    let load = || {
        hopdns::dnssec::Config::load(
            std::slice::from_ref(&anchor_file),
            Some(&state),
            hopdns::dnssec::anchor::NegativeAnchors::default(),
        )
        .unwrap()
    };
    let dnssec = Arc::new(load());
    let mut config = hopdns::cli::lab::lab_config(&lab).unwrap();
    config.clock = hopdns::dns::Clock::manual();
    config.settings.dnssec = Some(dnssec.clone());
    let clock = config.clock.clone();
    let resolver = Resolver::new(config, Arc::new(NetTransport::default()));
    let mut refresher = Refresher::new(resolver.clone(), dnssec.clone(), state.clone());

    let zone = Name::from_ascii(hopdns::lab::ROLLOVER_ZONE).unwrap();
    let [ksk1, ksk2] = lab.rollover_keys().clone();
    let tag = |k: &hickory_proto::dnssec::rdata::DNSKEY| k.calculate_key_tag().unwrap();
    let states = |r: &Refresher| -> Vec<(u16, KeyState)> {
        r.trust_points()
            .into_iter()
            .find(|tp| tp.zone == zone)
            .unwrap()
            .keys
            .iter()
            .map(|k| (tag(&k.key), k.state))
            .collect()
    };
    let anchored = || {
        let anchors = dnssec.anchors.load();
        let mut tags: Vec<u16> = hopdns::dnssec::anchor::TrustAnchors::keys(anchors.get(&zone))
            .iter()
            .map(tag)
            .collect();
        tags.sort();
        tags
    };

    // Start: KSK1 trusted; the state file is written at once; next refresh in an hour.
    let wait = refresher.refresh_due().await;
    assert_eq!(
        wait, HOUR,
        "RFC 5011 §2.3: max(1 hour, ...) for a 300 s TTL"
    );
    assert_eq!(states(&refresher), [(tag(&ksk1), KeyState::Valid)]);
    assert!(std::fs::read_to_string(&state)
        .unwrap()
        .contains("rollover.net."));

    // KSK2 appears: pending for 30 days, not an anchor yet.
    lab.set_rollover(RolloverPhase::NewKey).await;
    clock.advance(HOUR);
    refresher.refresh_due().await;
    assert_eq!(
        states(&refresher),
        [
            (tag(&ksk1), KeyState::Valid),
            (tag(&ksk2), KeyState::AddPend)
        ]
    );
    assert_eq!(anchored(), [tag(&ksk1)]);
    clock.advance(29 * DAY);
    refresher.refresh_due().await;
    assert_eq!(
        states(&refresher)[1].1,
        KeyState::AddPend,
        "29 days: still held down"
    );
    clock.advance(DAY);
    refresher.refresh_due().await;
    assert_eq!(states(&refresher)[1].1, KeyState::Valid, "30 days: trusted");
    let mut both = vec![tag(&ksk1), tag(&ksk2)];
    both.sort();
    assert_eq!(anchored(), both);

    // KSK1 is revoked (REVOKE bit, self-signed): no longer an anchor; the zone still
    // validates, from KSK2.
    lab.set_rollover(RolloverPhase::OldRevoked).await;
    clock.advance(HOUR);
    refresher.refresh_due().await;
    let revoked = hopdns::dnssec::autotrust::with_revoke(&ksk1);
    assert_eq!(
        states(&refresher),
        [
            (tag(&revoked), KeyState::Revoked),
            (tag(&ksk2), KeyState::Valid)
        ]
    );
    assert_eq!(anchored(), [tag(&ksk2)]);
    let q = Question::new(
        Name::from_ascii("www.rollover.net.").unwrap(),
        RecordType::A,
    );
    let (outcome, secure) = resolver.resolve_unchecked(&q).await;
    assert_eq!(
        (rcode(&outcome), secure),
        ("NOERROR", true),
        "validated from KSK2 alone"
    );

    // The state file holds it all, and a restart reads it back: KSK2 is the only anchor.
    let text = std::fs::read_to_string(&state).unwrap();
    assert!(
        text.contains(&format!(";;state=REVOKED ;;since={}", clock.unix_secs()))
            && text.contains(&format!(
                ";;state=VALID ;;since={}",
                clock.unix_secs() - HOUR.as_secs()
            )),
        "{text}"
    );
    let restarted = load();
    assert_eq!(
        restarted
            .trust_points
            .iter()
            .find(|tp| tp.zone == zone)
            .unwrap()
            .trusted(),
        std::slice::from_ref(&ksk2)
    );
    let anchors = restarted.anchors.load();
    assert_eq!(
        hopdns::dnssec::anchor::TrustAnchors::keys(anchors.get(&zone)),
        [ksk2]
    );
    drop(anchors);
    std::fs::remove_dir_all(&dir).unwrap();
    lab.shutdown().await;
}
