//! Every fuzz input kept in the repository, replayed through the same harnesses the fuzzers
//! run (`hopdns::fuzz`): the seed corpus (`fuzz/corpus/<target>/`) and each crash the
//! fuzzers ever found (`fuzz/regressions/<target>/`, named after what it broke).

use std::path::Path;

fn replay(dir: &str, harness: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let Ok(entries) = std::fs::read_dir(&root) else {
        return 0;
    };
    let mut n = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let result = std::panic::catch_unwind(|| harness(&data));
        assert!(result.is_ok(), "{} fails again", path.display());
        n += 1;
    }
    n
}

#[test]
fn front_end_corpus_and_regressions_pass() {
    let n = replay("fuzz/corpus/front_end", hopdns::fuzz::front_end)
        + replay("fuzz/regressions/front_end", hopdns::fuzz::front_end);
    assert!(n >= 5, "{n} inputs");
}

#[test]
fn machine_corpus_and_regressions_pass() {
    let n = replay("fuzz/corpus/machine", hopdns::fuzz::machine)
        + replay("fuzz/regressions/machine", hopdns::fuzz::machine);
    assert!(n >= 4, "{n} inputs");
}

#[test]
fn fast_path_corpus_and_regressions_pass() {
    let n = replay("fuzz/corpus/fast_path", hopdns::fuzz::fast_path)
        + replay("fuzz/regressions/fast_path", hopdns::fuzz::fast_path);
    assert!(n >= 4, "{n} inputs");
}

#[test]
fn wire_corpus_and_regressions_pass() {
    let n = replay("fuzz/corpus/wire", hopdns::fuzz::wire)
        + replay("fuzz/regressions/wire", hopdns::fuzz::wire);
    assert!(n >= 5, "{n} inputs");
}
