//! A COPY --from hard-links the files of the source stage's snapshot that
//! it would copy unchanged (issue 19): snapshots are never written in
//! place, so what must hold is that a later RUN changing the file leaves
//! the source stage as it was, that a copy changing the metadata
//! (`--chown`) still copies, and that the layer holds the same files
//! (separate files stay separate, hard links within the source stay so).

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use crate::support::TestContext;

const DOCKERFILE: &str = "\
FROM busybox AS src
RUN mkdir /s && echo one > /s/a.txt && echo two > /s/b.txt && ln /s/b.txt /s/b2.txt
FROM busybox
COPY --from=src /s /linked
COPY --from=src /s/b.txt /s/b2.txt /pair/
COPY --from=src --chown=1:2 /s/a.txt /chowned.txt
RUN echo changed >> /linked/a.txt
";

/// The one snapshot of the store that holds `marker`, and its `rel`.
fn in_snapshot(t: &TestContext, marker: &str, rel: &str) -> (PathBuf, Metadata) {
    let found: Vec<PathBuf> = std::fs::read_dir(t.root().join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|snapshot| snapshot.join(marker).symlink_metadata().is_ok())
        .collect();
    assert_eq!(found.len(), 1, "snapshots holding {marker}: {found:?}");
    let path = found[0].join(rel);
    let meta = path.symlink_metadata().unwrap();
    (path, meta)
}

fn inode(meta: &Metadata) -> (u64, u64) {
    (meta.dev(), meta.ino())
}

#[test]
fn copy_from_a_stage_links_unchanged_files_and_a_later_run_leaves_the_stage_alone() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let ctx = t.context("ctx", &[("Dockerfile", DOCKERFILE)]);
    t.ok(&["build", "-q", "-t", "linked", ctx.to_str().unwrap()]);

    let (source_a, src_a) = in_snapshot(&t, "s/b2.txt", "s/a.txt");
    let (_, src_b) = in_snapshot(&t, "s/b2.txt", "s/b.txt");
    let (_, copy_a) = in_snapshot(&t, "linked/b2.txt", "linked/a.txt");
    let (_, copy_b) = in_snapshot(&t, "linked/b2.txt", "linked/b.txt");
    let (_, copy_b2) = in_snapshot(&t, "linked/b2.txt", "linked/b2.txt");
    assert_eq!(inode(&copy_a), inode(&src_a), "a.txt is the stage's file");
    assert_eq!(inode(&copy_b), inode(&src_b), "b.txt is the stage's file");
    assert_eq!(
        inode(&copy_b2),
        inode(&copy_b),
        "b2.txt stays a hard link to b.txt"
    );

    // Two sources that are one inode, copied by one op to two paths:
    // two files, as a copy makes them (two regular entries in the layer).
    let (_, pair_b) = in_snapshot(&t, "pair/b2.txt", "pair/b.txt");
    let (_, pair_b2) = in_snapshot(&t, "pair/b2.txt", "pair/b2.txt");
    assert_ne!(inode(&pair_b), inode(&pair_b2), "the pair is two files");

    // --chown changes the owner: a copy, the stage's file keeps root.
    let (_, chowned) = in_snapshot(&t, "chowned.txt", "chowned.txt");
    assert_ne!(inode(&chowned), inode(&src_a), "--chown copies");
    assert_eq!((chowned.uid(), chowned.gid()), (1, 2));
    assert_eq!((src_a.uid(), src_a.gid()), (0, 0));

    // The RUN appended in its own layer: the stage's file is unchanged.
    assert_eq!(std::fs::read_to_string(&source_a).unwrap(), "one\n");
    assert_eq!(
        t.stdout(&[
            "run",
            "--rm",
            "linked",
            "cat",
            "/linked/a.txt",
            "/chowned.txt"
        ]),
        "one\nchanged\none\n"
    );
}
