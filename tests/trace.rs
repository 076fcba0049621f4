//! Trace mode names every hop in order: through the library (hop events) and through the
//! `hopdns trace` binary (text and JSON). Lab networks 40..=49.

use std::process::Command;

use hickory_proto::rr::RecordType;
use hopdns::resolver::{Outcome, Question};
use hopdns::trace::{Collect, HopEvent, ReplyKind};

use crate::util::{bin, name, Env};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_events_walk_every_zone_in_order() {
    let env = Env::start(40).await;
    let mut sink = Collect::default();
    let outcome = env
        .resolver
        .resolve_traced(
            &Question::new(name("chain.example.com"), RecordType::A),
            Some(&mut sink),
        )
        .await;
    assert!(matches!(outcome, Outcome::Answer { .. }));
    let hops: Vec<(usize, String, &'static str)> = sink
        .0
        .iter()
        .filter_map(|e| match e {
            HopEvent::Reply {
                depth, zone, kind, ..
            } => Some((
                *depth,
                zone.to_string(),
                match kind {
                    ReplyKind::Referral { .. } => "referral",
                    ReplyKind::Answer(_) => "answer",
                    ReplyKind::Cname { .. } => "cname",
                    _ => "other",
                },
            )),
            _ => None,
        })
        .collect();
    let expected: Vec<(usize, String, &str)> = [
        (0, ".", "referral"),
        (0, "com.", "referral"),
        (0, "example.com.", "cname"),
        (0, ".", "referral"),
        (0, "net.", "referral"),
        (0, "example.net.", "cname"),
        (0, ".", "referral"),
        (0, "org.", "referral"),
        (1, "net.", "referral"),
        (1, "dnshost.net.", "answer"),
        (0, "example.org.", "cname"),
        (0, "com.", "referral"),
        (0, "shop.com.", "answer"),
    ]
    .into_iter()
    .map(|(d, z, k)| (d, z.to_string(), k))
    .collect();
    assert_eq!(hops, expected);
    assert!(matches!(
        sink.0.last(),
        Some(HopEvent::Done { depth: 0, .. })
    ));
    env.stop().await;
}

fn trace_cmd(env: &Env, args: &[&str]) -> (String, i32) {
    let hints = std::env::temp_dir().join(format!("hopdns-test-{}.root", env.lab.net()));
    crate::util::trace_against(env, &hints, args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_command_prints_root_tld_authoritative_hops() {
    let env = Env::start(41).await;
    let (text, code) = tokio::task::block_in_place(|| trace_cmd(&env, &["www.example.com", "A"]));
    assert_eq!(code, 0, "{text}");
    let order = [
        ";; zone .: asked",
        "root NS set (priming",
        ";; zone .: asked",
        "referral to com.",
        ";; zone com.: asked",
        "referral to example.com.",
        ";; zone example.com.: asked",
        "flags: qr aa",
        "www.example.com. 300 IN A 192.0.2.1",
        ";; result: NOERROR",
    ];
    let mut at = 0;
    for needle in order {
        let found = text[at..]
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} after byte {at} in:\n{text}"));
        at += found + needle.len();
    }
    // Each hop names the server and its address and the time taken.
    assert!(
        text.contains("asked a.root-servers.net. (127.53.41.1:53)")
            || text.contains("asked b.root-servers.net. (127.53.41.2:53)")
    );
    assert!(text.contains(" ms\n"));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_json_is_one_object_per_hop() {
    let env = Env::start(42).await;
    let (text, code) =
        tokio::task::block_in_place(|| trace_cmd(&env, &["nope.example.com", "--json"]));
    assert_eq!(code, 0, "{text}");
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "reply")
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["root_ns", "referral", "referral", "nxdomain"]);
    let last = events.last().unwrap();
    assert_eq!(last["event"], "done");
    assert_eq!(last["rcode"], "NXDOMAIN");
    assert!(last["soa"].as_str().unwrap().starts_with("example.com."));
    env.stop().await;
}

/// Issue 10, behaviour 13: a trace ends with its result line even when nothing in the
/// resolver printed one (here an alias loop between two redirect rules, which the rules
/// layer ends without a hop of its own).
#[test]
fn trace_always_ends_with_a_result_line() {
    let dir = std::env::temp_dir().join(format!("hopdns-trace-loop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rules = dir.join("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"a.lan\"\naction = \"alias\"\ntarget = \"b.lan\"\n\n\
         [[rule]]\nname = \"b.lan\"\naction = \"alias\"\ntarget = \"a.lan\"\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["trace", "a.lan", "A", "--no-prime", "--rules"])
        .arg(&rules)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let text = String::from_utf8(out.stdout).unwrap();
    let last = text.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(";; result: SERVFAIL"),
        "last line {last:?} of:\n{text}"
    );
    assert_eq!(out.status.code(), Some(1));
}
