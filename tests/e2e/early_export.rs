//! The target's layers are exported as its steps make them, not all at
//! the end (issue 19). A build that fails after a step made its layer has
//! exported that layer already: the store stays valid (fsck), and the blob
//! nothing names once the cache is gone goes with `prune --all`.

use std::collections::BTreeSet;
use std::io::Read;

use crate::support::TestContext;

/// The names of the store's blobs.
fn blobs(t: &TestContext) -> BTreeSet<String> {
    std::fs::read_dir(t.root().join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

/// The paths in the (uncompressed) layer tar `blob`.
fn tar_paths(t: &TestContext, blob: &str) -> Vec<String> {
    let file = std::fs::File::open(t.root().join("blobs/sha256").join(blob)).unwrap();
    let mut archive = tar::Archive::new(file);
    let mut paths = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        paths.push(entry.path().unwrap().display().to_string());
        let mut content = String::new();
        entry.read_to_string(&mut content).unwrap();
    }
    paths
}

fn fsck_is_clean(t: &TestContext) {
    let fsck = t.stdout(&["debug", "fsck"]);
    assert!(fsck.contains(" 0 problems"), "{fsck}");
}

#[test]
fn a_failed_build_has_exported_the_layers_made_before_and_prune_collects_them() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let dockerfile = "FROM busybox\nCOPY made /made\nRUN exit 3\n";
    let ctx = t.context("app", &[("Dockerfile", dockerfile), ("made", "early\n")]);
    let before = blobs(&t);

    let out = t.cmd(&["build", ctx.to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success(), "RUN exit 3 fails the build");
    let new: Vec<String> = blobs(&t).difference(&before).cloned().collect();
    assert_eq!(new.len(), 1, "the COPY's layer, no image: {new:?}");
    assert_eq!(tar_paths(&t, &new[0]), ["made"]);
    fsck_is_clean(&t);

    t.ok(&["prune", "--all"]);
    assert_eq!(
        blobs(&t),
        before,
        "the failed build's layer went with its cache"
    );
    fsck_is_clean(&t);
}
