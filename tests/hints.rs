//! The shipped lab root hints file matches the lab (network 0), so the README's trace
//! command works as written.

use hopdns::lab::{Lab, LabConfig};
use hopdns::resolver::hints;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_lab_hints_match_lab_network_0_layout() {
    // Network 70 stands in for 0 (which `hopdns lab` uses): same layout, other third octet.
    let lab = Lab::start(LabConfig { net: 70 }).await.unwrap();
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/root-hints/lab.root"))
            .unwrap();
    let relocated = shipped.replace("127.53.0.", "127.53.70.");
    assert_eq!(
        hints::parse(&relocated, "lab.root").unwrap(),
        hints::parse(&lab.root_hints(), "lab").unwrap()
    );
    lab.shutdown().await;
}
