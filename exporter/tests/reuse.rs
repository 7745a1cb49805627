//! A layer made from the indexed blob of the snapshot it shares files
//! with is byte for byte the layer a full export makes: each case edits a
//! snapshot that hard-links every file of the first one (as a COPY that
//! shares unchanged files does), exports it reusing the first blob, and
//! compares with the full export of a hard-link mirror of it (the same
//! inodes, no hint to reuse anything).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use rbuild_cache::{PruneOptions, Store};
use rbuild_exporter::{Compression, ExportOptions, ReuseStats, export_layer_with_stats};
use sha2::{Digest, Sha256};

fn opts(epoch: Option<i64>) -> ExportOptions {
    ExportOptions {
        compression: Compression::Uncompressed,
        source_date_epoch: epoch,
        oci_mediatypes: true,
    }
}

fn set_mtime(path: &Path, secs: u64) {
    let t = nix::sys::time::TimeSpec::from_duration(Duration::from_secs(secs));
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
}

/// Bytes that differ from file to file.
fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The first snapshot: four files of 1.3 MB first (so that hash states
/// are kept and resumed), 200 small ones, a hard link inside the layer,
/// a symlink, a whiteout and a last file.
fn first(store: &Store, id: &str) {
    let p = store.new_snapshot().unwrap();
    let d = p.dir();
    std::fs::create_dir_all(d.join("a-big")).unwrap();
    std::fs::create_dir_all(d.join("m")).unwrap();
    std::fs::create_dir_all(d.join("z")).unwrap();
    for i in 0..4u64 {
        let f = d.join(format!("a-big/b{i}.bin"));
        std::fs::write(&f, content(i, 1_300_000 + i as usize * 77)).unwrap();
    }
    for i in 0..200u64 {
        let f = d.join(format!("m/f{i:03}"));
        std::fs::write(&f, content(1000 + i, (i as usize * 137) % 3000)).unwrap();
    }
    std::fs::hard_link(d.join("m/f000"), d.join("m/f000-alias")).unwrap();
    std::os::unix::fs::symlink("../m/f001", d.join("z/link")).unwrap();
    nix::sys::stat::mknod(
        &d.join("z/gone"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::empty(),
        0,
    )
    .unwrap();
    std::fs::write(d.join("z/last.txt"), "the end\n").unwrap();
    for entry in walkdir::WalkDir::new(d).contents_first(true) {
        set_mtime(entry.unwrap().path(), 1_500_000_000);
    }
    p.commit(id).unwrap();
}

/// Makes `to` hold what `from` holds: directories, symlinks and
/// whiteouts made again with the same mode and mtime, files hard-linked.
fn mirror(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from).min_depth(1) {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(from).unwrap();
        let dest = to.join(rel);
        let meta = entry.path().symlink_metadata().unwrap();
        let kind = meta.file_type();
        if kind.is_dir() {
            std::fs::create_dir(&dest).unwrap();
            std::fs::set_permissions(&dest, meta.permissions()).unwrap();
        } else if kind.is_file() {
            std::fs::hard_link(entry.path(), &dest).unwrap();
        } else if kind.is_symlink() {
            let target = std::fs::read_link(entry.path()).unwrap();
            std::os::unix::fs::symlink(target, &dest).unwrap();
        } else {
            let kind = nix::sys::stat::SFlag::S_IFCHR;
            nix::sys::stat::mknod(&dest, kind, nix::sys::stat::Mode::empty(), 0).unwrap();
        }
    }
    // Times last: making entries changes their directory's mtime.
    for entry in walkdir::WalkDir::new(from)
        .min_depth(1)
        .contents_first(true)
    {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(from).unwrap();
        let meta = entry.path().symlink_metadata().unwrap();
        if !meta.is_file() {
            set_mtime(&to.join(rel), meta.mtime() as u64);
        }
    }
}

/// Snapshot `id`: `base` mirrored, then `edit`ed; recorded as sharing
/// `base`'s files when `shares`.
fn derived(store: &Store, base: &str, id: &str, shares: bool, edit: &dyn Fn(&Path)) {
    let p = store.new_snapshot().unwrap();
    mirror(&store.snapshot_path(base), p.dir());
    edit(p.dir());
    if shares {
        p.record_shared_from(base).unwrap();
    }
    p.commit(id).unwrap();
}

/// Replaces the file at `rel` by a new inode with `data`, keeping its
/// directory's mtime.
fn rewrite(dir: &Path, rel: &str, data: &[u8]) {
    let path = dir.join(rel);
    let parent = path.parent().unwrap();
    let dir_mtime = parent.metadata().unwrap().mtime() as u64;
    let old = path.metadata().ok();
    let _ = std::fs::remove_file(&path);
    std::fs::write(&path, data).unwrap();
    if let Some(old) = old {
        std::fs::set_permissions(&path, old.permissions()).unwrap();
        set_mtime(&path, old.mtime() as u64);
    }
    set_mtime(parent, dir_mtime);
}

/// Exports `edit` applied to `base` both ways; asserts equal digests and
/// returns how the reusing export was made.
fn check(
    store: &Store,
    base: &str,
    name: &str,
    epoch: Option<i64>,
    edit: &dyn Fn(&Path),
) -> ReuseStats {
    let reused_id = format!("{name}-reused");
    let full_id = format!("{name}-full");
    derived(store, base, &reused_id, true, edit);
    derived(store, &reused_id, &full_id, false, &|_| {});
    let (reused, stats) = export_layer_with_stats(store, &reused_id, &opts(epoch)).unwrap();
    let (full, none) = export_layer_with_stats(store, &full_id, &opts(epoch)).unwrap();
    assert!(none.is_none(), "{name}: no hint, no reuse");
    assert_eq!(reused.blob, full.blob, "{name}");
    // The bytes stored are those hashed.
    let stored = std::fs::read(store.blob_path(&reused.blob.digest)).unwrap();
    let sum = format!("sha256:{}", hex::encode(Sha256::digest(&stored)));
    assert_eq!(sum, reused.blob.digest, "{name}");
    assert_eq!(reused.diff_id, full.diff_id, "{name}");
    stats.unwrap_or_else(|| panic!("{name}: the old blob was not used"))
}

#[test]
fn reused_layers_equal_full_exports_whatever_the_edit() {
    for epoch in [None, Some(1_000_000)] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        first(&store, "one");
        export_layer_with_stats(&store, "one", &opts(epoch)).unwrap();
        let e = |name: &str, edit: &dyn Fn(&Path)| check(&store, "one", name, epoch, edit);

        let s = e("same", &|_| {});
        assert_eq!(s.made, 1024, "only the closing blocks are made");
        assert_eq!(s.resumed, 5 << 20, "{s:?}");

        // A new inode with the same bytes' length and times: same header,
        // but not provably the same data, so made afresh.
        let s = e("start", &|d| {
            rewrite(d, "a-big/b0.bin", &content(99, 1_300_000))
        });
        assert_eq!(s.resumed, 0, "{s:?}");
        assert!(s.copied > 3_900_000 && s.made > 1_300_000, "{s:?}");

        let s = e("middle", &|d| rewrite(d, "m/f100", b"edited\n"));
        assert_eq!(s.resumed, 5 << 20, "{s:?}");
        assert!(s.made < 4096, "{s:?}");

        let s = e("end", &|d| rewrite(d, "z/last.txt", b"another end\n"));
        assert_eq!(s.resumed, 5 << 20, "{s:?}");
        e("added", &|d| rewrite(d, "m/f100a", b"new file\n"));
        e("deleted", &|d| {
            std::fs::remove_file(d.join("m/f050")).unwrap()
        });
        e("file-mode", &|d| {
            let data = std::fs::read(d.join("m/f150")).unwrap();
            rewrite(d, "m/f150", &data);
            std::fs::set_permissions(d.join("m/f150"), PermissionsExt::from_mode(0o600)).unwrap();
        });
        e("dir-mode", &|d| {
            std::fs::set_permissions(d.join("m"), PermissionsExt::from_mode(0o700)).unwrap();
        });
        e("hard-link", &|d| {
            std::fs::hard_link(d.join("m/f160"), d.join("m/f160-alias")).unwrap();
            let mtime = d.join("a-big").metadata().unwrap().mtime() as u64;
            set_mtime(&d.join("m"), mtime);
        });
        e("alias-gone", &|d| {
            std::fs::remove_file(d.join("m/f000-alias")).unwrap()
        });
        e("mtime", &|d| set_mtime(&d.join("z"), 1_600_000_000));

        // The reused export's own index serves the next edit.
        let s = check(&store, "middle-reused", "next", epoch, &|d| {
            rewrite(d, "m/f199", b"again\n")
        });
        assert_eq!(s.resumed, 5 << 20, "{s:?}");
    }
}

#[test]
fn an_index_in_doubt_means_a_full_export() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    first(&store, "one");
    export_layer_with_stats(&store, "one", &opts(None)).unwrap();
    let index = dir.path().join("layer-index/one");
    let mut bytes = std::fs::read(&index).unwrap();
    let last = bytes.len() - 40;
    bytes[last] ^= 1;
    std::fs::write(&index, &bytes).unwrap();
    derived(&store, "one", "two", true, &|d| rewrite(d, "m/f100", b"x"));
    let (_, stats) = export_layer_with_stats(&store, "two", &opts(None)).unwrap();
    assert!(stats.is_none(), "a torn index is not used");

    // A layer made again compressed drops the index of its old blob.
    let gz = ExportOptions {
        compression: Compression::Gzip(1),
        ..opts(Some(5))
    };
    assert!(dir.path().join("layer-index/two").exists());
    export_layer_with_stats(&store, "two", &gz).unwrap();
    assert!(!dir.path().join("layer-index/two").exists());
    derived(&store, "two", "three", true, &|_| {});
    let (_, stats) = export_layer_with_stats(&store, "three", &opts(None)).unwrap();
    assert!(stats.is_none(), "no index of an uncompressed blob");
}

#[test]
fn fsck_checks_layer_indexes_and_prune_removes_them_with_their_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    first(&store, "one");
    export_layer_with_stats(&store, "one", &opts(None)).unwrap();
    derived(&store, "one", "two", true, &|_| {});
    export_layer_with_stats(&store, "two", &opts(None)).unwrap();
    let report = store.fsck(false).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);

    // A hash state that is not the blob's (written whole, so it decodes).
    let index = dir.path().join("layer-index/two");
    let bytes = std::fs::read(&index).unwrap();
    let body = &bytes[..bytes.len() - 32];
    let mut changed = body.to_vec();
    changed[8 + 64 + 16] ^= 1; // the first state's first byte
    changed.extend_from_slice(blake3::hash(&changed).as_bytes());
    std::fs::write(&index, &changed).unwrap();
    let report = store.fsck(true).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0].contains("layer index two has hash states"));
    assert!(!index.exists(), "repair removed it");

    // Nothing tags or records the snapshots: prune takes them, and their
    // indexes and hints with them.
    assert!(dir.path().join("layer-index/one").exists());
    store.prune(PruneOptions::default()).unwrap();
    for gone in ["layer-index/one", "shared-from/two", "snapshots/one"] {
        assert!(!dir.path().join(gone).exists(), "{gone}");
    }
}
