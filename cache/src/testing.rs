//! The containment property of [`crate::unpack`], as one check that the
//! fuzz target (`fuzz/fuzz_targets/unpack.rs`) and the corpus replay in
//! CI (`cache/tests/fuzz_corpus.rs`) share: whatever the bytes, an unpack
//! returns (an error is fine), never panics, stays within its limits and
//! changes nothing beside its destination.

use std::fs;
use std::path::Path;

use crate::unpack::{Limits, Whiteouts, unpack};

/// Limits small enough that a fuzzer hits them.
const LIMITS: Limits = Limits {
    max_bytes: 1 << 20,
    max_header_bytes: 64 << 10,
};

/// Unpacks `data` (a tar stream) in every whiteout mode into a fresh
/// directory beside a bait file and a bait directory; panics if anything
/// outside the destination changed.
pub fn unpack_stays_contained(data: &[u8]) {
    for whiteouts in [Whiteouts::Overlay, Whiteouts::Apply, Whiteouts::Literal] {
        let base = tempfile::tempdir().expect("temp dir");
        let dest = base.path().join("dest");
        let bait_dir = base.path().join("bait-dir");
        fs::create_dir_all(dest.join("lower/dir")).expect("dest");
        fs::write(dest.join("lower/dir/file"), "lower").expect("lower file");
        fs::create_dir(&bait_dir).expect("bait dir");
        fs::write(base.path().join("bait"), "bait").expect("bait");
        fs::write(bait_dir.join("inner"), "inner").expect("bait inner");
        let _ = unpack(data, &dest, whiteouts, LIMITS);
        assert_eq!(
            fs::read_to_string(base.path().join("bait")).ok().as_deref(),
            Some("bait"),
            "{whiteouts:?}: the sibling file changed"
        );
        assert_eq!(
            fs::read_to_string(bait_dir.join("inner")).ok().as_deref(),
            Some("inner"),
            "{whiteouts:?}: the sibling directory changed"
        );
        let mut names: Vec<_> = fs::read_dir(base.path())
            .expect("list base")
            .map(|e| e.expect("entry").file_name())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["bait", "bait-dir", "dest"],
            "{whiteouts:?}: something was written beside the destination"
        );
        assert_eq!(
            fs::read_dir(&bait_dir).expect("list bait dir").count(),
            1,
            "{whiteouts:?}: something was written into the sibling directory"
        );
        assert!(
            dest_size(&dest) <= LIMITS.max_bytes,
            "{whiteouts:?}: more written than the limit"
        );
    }
}

/// Bytes of the regular files below `dir` (symlinks not followed).
fn dest_size(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}
