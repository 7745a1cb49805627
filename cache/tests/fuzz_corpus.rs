//! Replays the layer-unpack fuzz corpus (`testdata/fuzz/unpack/`: seeds
//! and every crash the fuzzer found) through the containment check the
//! fuzz target runs, so that CI keeps each finding fixed.

use std::path::Path;

#[test]
fn every_unpack_fuzz_input_stays_contained() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/fuzz/unpack");
    let mut inputs: Vec<_> = walkdir::WalkDir::new(&corpus)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    inputs.sort();
    assert!(
        inputs.len() >= 10,
        "the corpus holds {} inputs",
        inputs.len()
    );
    for input in inputs {
        let data = std::fs::read(&input).unwrap();
        let outcome = std::panic::catch_unwind(|| {
            rbuild_cache::testing::unpack_stays_contained(&data);
        });
        assert!(outcome.is_ok(), "{} is not contained", input.display());
    }
}
