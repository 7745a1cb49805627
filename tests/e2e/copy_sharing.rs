//! A COPY from the context that runs again after an edit shares the
//! unchanged files with the snapshot it made last (hard links) instead of
//! copying them (issue 19). What must hold: the image is the one a cold
//! build makes (its COPY layer made from the first build's layer blob),
//! neither snapshot ever shows the other's changes, and a file whose
//! content changed is copied whatever its size and mtime.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::support::{TestContext, busybox, copy_dir, repo};

const DOCKERFILE: &str = "FROM base\nCOPY . /app\nRUN echo appended >> /app/a.txt\n";

/// A busybox base context (the same bytes and times for every store).
fn base_context(t: &TestContext) -> PathBuf {
    let ctx = t.path("busybox-base");
    copy_dir(&repo().join("testdata/busybox"), &ctx);
    std::fs::copy(busybox(), ctx.join("busybox")).unwrap();
    ctx
}

/// Builds `ctx` as `tag` at a fixed epoch; returns the image id.
fn build(t: &TestContext, ctx: &Path, tag: &str) -> String {
    let iid = t.path(&format!("{tag}.iid"));
    t.ok(&[
        "build",
        "-q",
        "--source-date-epoch",
        "1700000000",
        "--iidfile",
        iid.to_str().unwrap(),
        "-t",
        tag,
        ctx.to_str().unwrap(),
    ]);
    std::fs::read_to_string(iid).unwrap()
}

/// A store holding the base image, and a context of `files` beside the
/// Dockerfile, built once as `v1`.
fn built_once(files: &[(&str, &str)]) -> (TestContext, PathBuf) {
    let t = TestContext::new();
    let base = base_context(&t);
    build(&t, &base, "base");
    let mut all = vec![("Dockerfile", DOCKERFILE)];
    all.extend_from_slice(files);
    let ctx = t.context("ctx", &all);
    build(&t, &ctx, "v1");
    (t, ctx)
}

/// The copy of `rel` (e.g. `app/a.txt`) in each COPY snapshot of the
/// store (those holding `app/Dockerfile`; the RUN's hold only a.txt).
fn copies_in_snapshots(t: &TestContext, rel: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(t.root().join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|snapshot| snapshot.join("app/Dockerfile").is_file())
        .map(|snapshot| snapshot.join(rel))
        .collect();
    out.sort();
    out
}

#[test]
fn an_edit_rebuild_shares_unchanged_files_and_makes_the_cold_builds_image() {
    let (t, ctx) = built_once(&[
        ("a.txt", "first\n"),
        ("b.txt", "bee\n"),
        ("sub/c.txt", "sea\n"),
    ]);
    std::fs::write(ctx.join("b.txt"), "bee, edited\n").unwrap();
    let edited = build(&t, &ctx, "v2");

    // The unchanged files are one inode in both COPY snapshots; the RUN
    // that appended to a.txt did so in its own layer, not in theirs.
    for rel in ["app/a.txt", "app/sub/c.txt"] {
        let copies = copies_in_snapshots(&t, rel);
        assert_eq!(copies.len(), 2, "{rel}: {copies:?}");
        let (m0, m1) = (copies[0].metadata().unwrap(), copies[1].metadata().unwrap());
        assert_eq!(
            (m0.dev(), m0.ino()),
            (m1.dev(), m1.ino()),
            "{rel} is shared"
        );
    }
    for copy in copies_in_snapshots(&t, "app/a.txt") {
        assert_eq!(std::fs::read_to_string(copy).unwrap(), "first\n");
    }
    let mut b: Vec<String> = copies_in_snapshots(&t, "app/b.txt")
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    b.sort();
    assert_eq!(
        b,
        ["bee\n", "bee, edited\n"],
        "each snapshot keeps its own b.txt"
    );
    assert_eq!(
        t.stdout(&["run", "--rm", "v2", "cat", "/app/a.txt", "/app/b.txt"]),
        "first\nappended\nbee, edited\n"
    );

    // The edit's COPY layer was made from the first one's blob: its
    // snapshot names the snapshot it shares files with, whose layer blob
    // is indexed, as its own now is (see rbuild_cache::LayerIndex).
    let notes: Vec<PathBuf> = std::fs::read_dir(t.root().join("shared-from"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(notes.len(), 1, "{notes:?}");
    let from = std::fs::read_to_string(&notes[0]).unwrap();
    for id in [
        from.as_str(),
        notes[0].file_name().unwrap().to_str().unwrap(),
    ] {
        assert!(t.root().join("layer-index").join(id).is_file(), "{id}");
    }

    // The same context built cold in an empty store: the same image.
    let cold = TestContext::new();
    build(&cold, &base_context(&cold), "base");
    assert_eq!(build(&cold, &ctx, "v2"), edited);
}

#[test]
fn a_file_changed_without_a_new_size_or_mtime_is_copied_again() {
    let (t, ctx) = built_once(&[("a.txt", "aaaa\n"), ("b.txt", "b\n")]);
    // Same size, mtime put back: only the inode's ctime tells.
    let a = ctx.join("a.txt");
    let before = a.metadata().unwrap();
    std::fs::write(&a, "zzzz\n").unwrap();
    let times = nix::sys::time::TimeSpec::new(before.mtime(), before.mtime_nsec());
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        &a,
        &times,
        &times,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
    // Another file changes too, so the step's cache key does not hit.
    std::fs::write(ctx.join("b.txt"), "b2\n").unwrap();
    build(&t, &ctx, "v2");
    assert_eq!(
        t.stdout(&["run", "--rm", "v2", "cat", "/app/a.txt"]),
        "zzzz\nappended\n"
    );
    let copies = copies_in_snapshots(&t, "app/a.txt");
    assert_eq!(copies.len(), 2, "{copies:?}");
    assert_ne!(
        copies[0].metadata().unwrap().ino(),
        copies[1].metadata().unwrap().ino(),
        "not shared"
    );
}
