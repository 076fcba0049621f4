//! What validation runs with: the anchors, the negative anchors (reloadable), the RFC 5011
//! state and the clock skew. Built by the config room from `--trust-anchor`,
//! `--trust-anchor-state` and `--insecure-domain`; absent with `--no-dnssec`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::anchor::{Anchor, AnchorError, NegativeAnchors, TrustAnchors};
use super::autotrust::TrustPoint;
use super::verify::Skew;

/// Validation settings, shared by every resolution.
#[derive(Debug)]
pub struct Config {
    /// Where chains of trust start: built in, from files, and the RFC 5011 state's trusted
    /// keys (which replace the anchors of their zone); swapped whole when an RFC 5011
    /// refresh changes a trust point's keys ([`Config::set_trusted`]).
    pub anchors: ArcSwap<TrustAnchors>,
    /// RFC 5011 trust points read from the state file (empty without one).
    pub trust_points: Vec<TrustPoint>,
    /// The RFC 5011 state file, rewritten when a trust point changes.
    pub state_file: Option<PathBuf>,
    /// RFC 7646 negative trust anchors; swapped whole by `reload`.
    pub negative: ArcSwap<NegativeAnchors>,
    pub skew: Skew,
}

impl Config {
    /// Reads the anchor files and the state file (when it exists). A state file that does
    /// not exist yet is created at the first update; its directory must exist.
    pub fn load(
        anchor_files: &[PathBuf],
        state_file: Option<&Path>,
        negative: NegativeAnchors,
    ) -> Result<Config, AnchorError> {
        let mut anchors = TrustAnchors::load(anchor_files)?;
        let mut trust_points = Vec::new();
        if let Some(path) = state_file {
            match std::fs::read_to_string(path) {
                Ok(text) => trust_points = TrustPoint::from_text(path, &text)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
                    if dir.is_some_and(|d| !d.is_dir()) {
                        return Err(AnchorError {
                            path: path.to_path_buf(),
                            line: 0,
                            message: "its directory does not exist (hopdns creates the file, not the directory)".into(),
                        });
                    }
                }
                Err(e) => {
                    return Err(AnchorError {
                        path: path.to_path_buf(),
                        line: 0,
                        message: format!("cannot read the trust-anchor state file: {e}"),
                    })
                }
            }
        }
        for tp in &trust_points {
            let trusted = tp.trusted();
            if !trusted.is_empty() {
                anchors.replace(&tp.zone, trusted.into_iter().map(Anchor::Key).collect());
            }
        }
        Ok(Config {
            anchors: ArcSwap::from_pointee(anchors),
            trust_points,
            state_file: state_file.map(Path::to_path_buf),
            negative: ArcSwap::from_pointee(negative),
            skew: Skew::default(),
        })
    }

    /// Validation from the anchors in `text` (zone-file form, as `--trust-anchor` reads
    /// it; root anchors there replace the built-in ones), nothing else: the lab's own root.
    pub fn from_anchor_text(label: &Path, text: &str) -> Result<Config, AnchorError> {
        let mut from_text = TrustAnchors::default();
        for (zone, anchor) in super::anchor::parse(label, text)? {
            from_text.add(zone, anchor);
        }
        let mut anchors = TrustAnchors::builtin();
        if from_text.zones().any(|z| z.is_root()) {
            anchors.replace(&hickory_proto::rr::Name::root(), Vec::new());
        }
        for zone in from_text.zones().cloned().collect::<Vec<_>>() {
            for anchor in from_text.get(&zone) {
                anchors.add(zone.clone(), anchor.clone());
            }
        }
        Ok(Config {
            anchors: ArcSwap::from_pointee(anchors),
            trust_points: Vec::new(),
            state_file: None,
            negative: ArcSwap::from_pointee(NegativeAnchors::default()),
            skew: Skew::default(),
        })
    }

    /// Makes `keys` the anchors of `zone` (an RFC 5011 trust point's trusted keys after a
    /// refresh); an empty list leaves the zone's anchors as they are, so a trust point
    /// never ends up with no anchor at all.
    pub fn set_trusted(
        &self,
        zone: &hickory_proto::rr::Name,
        keys: Vec<hickory_proto::dnssec::rdata::DNSKEY>,
    ) {
        if keys.is_empty() {
            return;
        }
        let anchors = keys.into_iter().map(Anchor::Key).collect::<Vec<_>>();
        self.anchors.rcu(|current| {
            let mut next = TrustAnchors::clone(current);
            next.replace(zone, anchors.clone());
            next
        });
    }

    /// Replaces the negative trust anchors (`reload`); returns a one-line report.
    pub fn set_negative(&self, negative: NegativeAnchors) -> String {
        let names: Vec<String> = negative.domains().iter().map(|d| d.to_string()).collect();
        self.negative.store(Arc::new(negative));
        format!(
            "insecure domains: {}",
            if names.is_empty() {
                "none".into()
            } else {
                names.join(", ")
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dnssec::testkit::name;

    #[test]
    fn state_file_keys_replace_their_zone_anchors_and_a_missing_file_is_fine() {
        let dir = std::env::temp_dir().join(format!("hopdns-dnssec-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let state = dir.join("root.state");
        let none = Config::load(&[], Some(&state), NegativeAnchors::default()).unwrap();
        assert_eq!(
            none.anchors.load().get(&name(".")).len(),
            2,
            "built-in root DS anchors"
        );

        std::fs::write(
            &state,
            ". IN DNSKEY 257 3 13 AQIDBA== ;;state=VALID ;;since=1\n\
             . IN DNSKEY 257 3 13 BQYHCA== ;;state=ADDPEND ;;since=1\n",
        )
        .unwrap();
        let cfg = Config::load(&[], Some(&state), NegativeAnchors::default()).unwrap();
        let anchors = cfg.anchors.load();
        let root = anchors.get(&name("."));
        assert_eq!(root.len(), 1);
        assert!(matches!(&root[0], Anchor::Key(_)));

        let nowhere = dir.join("no-such-dir").join("root.state");
        let e = Config::load(&[], Some(&nowhere), NegativeAnchors::default()).unwrap_err();
        assert!(e.to_string().contains("directory does not exist"), "{e}");

        let nta = NegativeAnchors::parse(&["a.example"]).unwrap();
        assert_eq!(cfg.set_negative(nta), "insecure domains: a.example.");
        assert!(cfg.negative.load().covers(&name("www.a.example.")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
