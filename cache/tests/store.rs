//! The store against its contract: verified blobs, an OCI layout that
//! skopeo reads, safe layer unpacking, records, prune and fsck.

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::process::Command;

use oci_spec::image::{Descriptor, MediaType};
use rbuild_cache::{BlobInfo, CacheKey, CacheRecord, PruneOptions, Store, StoreError};

/// Commits a snapshot `id` holding one file `name` with `content`.
fn committed_snapshot(store: &Store, id: &str, name: &str, content: &[u8]) {
    let pending = store.new_snapshot().unwrap();
    std::fs::write(pending.dir().join(name), content).unwrap();
    pending.commit(id).unwrap();
}

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    (dir, store)
}

/// A tar with the given (path, kind) entries: kind "d" dir, "f:<text>"
/// file, "l:<target>" symlink, "h:<target>" hard link.
fn tar_of(entries: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, kind) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_000_000);
        // Raw names: the tar crate refuses `..`, hostile layers do not.
        let raw =
            |field: &mut [u8], value: &str| field[..value.len()].copy_from_slice(value.as_bytes());
        raw(&mut h.as_old_mut().name, path);
        let (k, arg) = kind.split_at(1);
        let arg = arg.strip_prefix(':').unwrap_or("");
        let data: &[u8] = match k {
            "d" => {
                h.set_entry_type(tar::EntryType::Directory);
                &[]
            }
            "f" => {
                h.set_entry_type(tar::EntryType::Regular);
                arg.as_bytes()
            }
            "l" | "h" => {
                h.set_entry_type(if k == "l" {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                });
                raw(&mut h.as_old_mut().linkname, arg);
                &[]
            }
            _ => unreachable!(),
        };
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

#[test]
fn blobs_are_verified_and_content_addressed() {
    let (_d, store) = store();
    let info = store.put_blob(b"hello").unwrap();
    assert_eq!(info.digest, sha256(b"hello"));
    assert_eq!(store.read_blob(&info.digest).unwrap(), b"hello");
    let mut w = store.blob_writer().unwrap();
    w.write_all(b"tampered").unwrap();
    let err = w.commit(Some(&sha256(b"expected"))).unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
    assert!(
        !store.has_blob(&sha256(b"tampered")),
        "nothing partial visible"
    );
    assert_eq!(
        std::fs::read_dir(store.root().join("tmp")).unwrap().count(),
        0,
        "the temp file is gone"
    );
    assert!(matches!(
        store.read_blob(&sha256(b"absent")),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn tags_live_in_an_oci_layout_that_skopeo_reads() {
    let (_d, store) = store();
    let config = store.put_blob(br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{"Env":["A=1"]}}"#).unwrap();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[]}}"#,
        config.digest, config.size
    );
    let m = store.put_blob(manifest.as_bytes()).unwrap();
    let desc = Descriptor::new(
        MediaType::ImageManifest,
        m.size,
        m.digest.parse::<oci_spec::image::Digest>().unwrap(),
    );
    store.tag("hello", &desc).unwrap();
    store.tag("127.0.0.1:5000/busybox", &desc).unwrap();
    store.tag("hello", &desc).unwrap();
    let names: Vec<String> = store
        .images()
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["127.0.0.1:5000/busybox", "hello"]);
    assert_eq!(
        store
            .resolve_tag("hello")
            .unwrap()
            .unwrap()
            .digest()
            .to_string(),
        m.digest
    );
    let out = Command::new("skopeo")
        .args(["inspect", "--config"])
        .arg(format!("oci:{}:hello", store.root().display()))
        .output()
        .expect("skopeo is installed (.ci/run)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("A=1"));
    assert!(store.untag("hello").unwrap());
    assert!(store.resolve_tag("hello").unwrap().is_none());
    assert!(!store.untag("hello").unwrap());
}

#[test]
fn layers_unpack_with_overlay_whiteouts_and_links() {
    let (_d, store) = store();
    let tar = tar_of(&[
        ("etc", "d"),
        ("etc/passwd", "f:root"),
        ("etc/.wh.shadow", "f:"),
        ("var/.wh..wh..opq", "f:"),
        ("bin/sh", "l:busybox"),
        ("bin/hard", "h:etc/passwd"),
    ]);
    let blob = store.put_blob(&gzip(&tar)).unwrap();
    let record = store
        .unpack_layer(&blob, "application/vnd.oci.image.layer.v1.tar+gzip")
        .unwrap();
    assert_eq!(
        record.diff_id,
        sha256(&tar),
        "diff_id is the uncompressed digest"
    );
    let root = store.snapshot_path(&record.snapshot);
    assert_eq!(
        std::fs::read_to_string(root.join("etc/passwd")).unwrap(),
        "root"
    );
    let wh = std::fs::symlink_metadata(root.join("etc/shadow")).unwrap();
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "whiteout"
    );
    let mut buf = [0u8; 4];
    let c = std::ffi::CString::new(root.join("var").to_str().unwrap()).unwrap();
    // SAFETY: valid path and buffer.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            rbuild_cache::OPAQUE_XATTR.as_ptr(),
            buf.as_mut_ptr().cast(),
            4,
        )
    };
    assert_eq!((n, buf[0]), (1, b'y'), "opaque dir");
    assert_eq!(
        std::fs::read_link(root.join("bin/sh")).unwrap().to_str(),
        Some("busybox")
    );
    assert_eq!(
        std::fs::metadata(root.join("bin/hard")).unwrap().ino(),
        std::fs::metadata(root.join("etc/passwd")).unwrap().ino()
    );
    assert_eq!(
        store.layer_of_snapshot(&record.snapshot).unwrap().unwrap(),
        record
    );
    // Idempotent.
    assert_eq!(
        store.unpack_layer(&blob, "x").unwrap().snapshot,
        record.snapshot
    );
}

/// Everything below `root` (type, and content for files and symlinks),
/// to show that nothing changed.
fn listing(root: &std::path::Path) -> Vec<(std::path::PathBuf, String)> {
    walkdir::WalkDir::new(root)
        .sort_by_file_name()
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let t = e.file_type();
            let what = if t.is_symlink() {
                format!("-> {}", std::fs::read_link(e.path()).unwrap().display())
            } else if t.is_file() {
                format!(
                    "= {}",
                    String::from_utf8_lossy(&std::fs::read(e.path()).unwrap())
                )
            } else {
                format!("{t:?}")
            };
            (e.path().to_path_buf(), what)
        })
        .collect()
}

#[test]
fn hostile_layers_cannot_escape() {
    let (d, store) = store();
    // Bait beside the store and in its tmp/, where pending snapshots live.
    std::fs::write(d.path().join("bait"), "keep").unwrap();
    std::fs::write(store.root().join("tmp/bait"), "keep").unwrap();
    let before = listing(d.path());
    for entries in [
        &[("../escape", "f:x")][..],
        &[("a/../../escape", "f:x")][..],
        &[("link", "l:/"), ("link/tmp/escape", "f:x")][..],
        &[("link", "l:.."), ("link/escape", "f:x")][..],
        &[("a", "d"), ("a/b", "h:../../bait")][..],
        &[("root", "l:/"), ("b", "h:root/etc/passwd")][..],
        &[("up", "l:.."), ("b", "h:up/bait")][..],
        // Whiteouts of `..` and `.` (the hidden name of `.wh...` is `..`).
        &[(".wh...", "f:")][..],
        &[("a", "d"), ("a/.wh...", "f:")][..],
        &[("a", "d"), ("a/.wh..", "f:")][..],
        &[("up", "l:.."), ("up/.wh.bait", "f:")][..],
        &[("up", "l:.."), ("up/.wh..wh..opq", "f:")][..],
    ] {
        let blob = store.put_blob(&tar_of(entries)).unwrap();
        let err = store
            .unpack_layer(&blob, "application/vnd.oci.image.layer.v1.tar")
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Invalid { .. }),
            "{entries:?}: {err}"
        );
        let last = entries.last().unwrap().0;
        assert!(err.to_string().contains(last), "{err} names {last}");
        let after: Vec<_> = listing(d.path())
            .into_iter()
            .filter(|(p, _)| !p.starts_with(store.root().join("blobs")))
            .collect();
        let expected: Vec<_> = before
            .iter()
            .filter(|(p, _)| !p.starts_with(store.root().join("blobs")))
            .cloned()
            .collect();
        assert_eq!(after, expected, "{entries:?} changed something");
    }
    assert!(!std::path::Path::new("/tmp/escape").exists());
    assert!(!std::path::Path::new("/escape").exists());
}

#[test]
fn oversized_layers_and_headers_are_refused() {
    use rbuild_cache::{Limits, UnpackError, Whiteouts};
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_bytes: 64 << 10,
        max_header_bytes: 8 << 10,
    };
    // A bomb: 1 MiB of zeros compresses to a few hundred bytes.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1 << 20);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "zeros", std::io::repeat(0).take(1 << 20))
        .unwrap();
    let bomb = zstd::encode_all(&b.into_inner().unwrap()[..], 19).unwrap();
    assert!(bomb.len() < 1 << 10, "{} bytes", bomb.len());
    let out = dir.path().join("bomb");
    std::fs::create_dir(&out).unwrap();
    let reader = zstd::stream::read::Decoder::new(&bomb[..]).unwrap();
    let err = rbuild_cache::unpack(reader, &out, Whiteouts::Overlay, limits).unwrap_err();
    assert!(
        matches!(err, UnpackError::TooLarge { limit } if limit == 64 << 10),
        "{err}"
    );
    // A PAX header of 100 KiB (a huge path or xattr) before one entry.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_cksum();
    b.append_data(&mut h, "small", &b"x"[..]).unwrap();
    let huge = vec![b'v'; 100 << 10];
    b.append_pax_extensions([("SCHILY.xattr.user.big", &huge[..])])
        .unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_cksum();
    b.append_data(&mut h, "after", &b"x"[..]).unwrap();
    let out = dir.path().join("pax");
    std::fs::create_dir(&out).unwrap();
    let tar = b.into_inner().unwrap();
    let err = rbuild_cache::unpack(&tar[..], &out, Whiteouts::Overlay, limits).unwrap_err();
    assert!(
        matches!(&err, UnpackError::HeaderTooLarge { after, limit } if after == "small" && *limit == 8 << 10),
        "{err}"
    );
    // Within the default header limit, an xattr over Linux's 64 KiB is
    // refused by name instead.
    let out = dir.path().join("xattr");
    std::fs::create_dir(&out).unwrap();
    let err = rbuild_cache::unpack(&tar[..], &out, Whiteouts::Overlay, Limits::with_ratio(1, 0))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("after: xattr user.big of 102400 bytes"),
        "{err}"
    );
}

#[test]
fn unpack_limits_follow_the_compressed_size() {
    use rbuild_cache::Limits;
    assert_eq!(
        Limits::with_ratio(10, Limits::RATIO).max_bytes,
        Limits::FLOOR
    );
    assert_eq!(
        Limits::with_ratio(1 << 30, Limits::RATIO).max_bytes,
        Limits::RATIO << 30
    );
    assert_eq!(Limits::with_ratio(10, 0).max_bytes, u64::MAX);
}

#[test]
fn records_need_their_snapshots_and_prune_keeps_tagged_images() {
    let (_d, store) = store();
    committed_snapshot(&store, "built", "f", b"data");
    let record = CacheRecord {
        snapshots: vec!["built".into()],
        added: true,
        created: 1,
        ingredients: None,
        content_key: None,
    };
    let (k1, k2) = (key_of("k1"), key_of("k2"));
    store.put_record(&k1, &record).unwrap();
    assert_eq!(store.get_record(&k1).unwrap().unwrap(), record);
    let missing = CacheRecord {
        snapshots: vec!["absent".into()],
        ..record.clone()
    };
    assert!(store.put_record(&k2, &missing).is_err());

    // A tagged image with one layer.
    let layer = store.put_blob(&tar_of(&[("f", "f:x")])).unwrap();
    let unpacked = store
        .unpack_layer(&layer, "application/vnd.oci.image.layer.v1.tar")
        .unwrap();
    let manifest = format!(
        r#"{{"schemaVersion":2,"config":{{"digest":"{c}","size":1}},"layers":[{{"digest":"{l}","size":{s}}}]}}"#,
        c = layer.digest,
        l = layer.digest,
        s = layer.size
    );
    let m: BlobInfo = store.put_blob(manifest.as_bytes()).unwrap();
    let desc = Descriptor::new(
        MediaType::ImageManifest,
        m.size,
        m.digest.parse::<oci_spec::image::Digest>().unwrap(),
    );
    store.tag("img", &desc).unwrap();
    let orphan = store.put_blob(b"orphan").unwrap();

    let report = store.prune(PruneOptions::default()).unwrap();
    assert_eq!(report.blobs, 1, "{report:?}");
    assert!(!store.has_blob(&orphan.digest));
    assert!(store.has_snapshot("built"), "records keep their snapshots");
    let du = store.disk_usage().unwrap();
    assert!(du.reclaimable >= 4, "{du:?}");

    store
        .prune(PruneOptions {
            all: true,
            ..Default::default()
        })
        .unwrap();
    assert!(store.get_record(&k1).unwrap().is_none());
    assert!(!store.has_snapshot("built"));
    assert!(store.has_blob(&m.digest) && store.has_blob(&layer.digest));
    assert!(
        store.has_snapshot(&unpacked.snapshot),
        "unpacked layers of images stay"
    );
}

#[test]
fn prune_by_age_and_by_size_keeps_the_newest() {
    let (_d, store) = store();
    for (key, created, bytes) in [
        ("old", 100, 3000usize),
        ("mid", 200, 3000),
        ("new", 300, 3000),
    ] {
        committed_snapshot(&store, key, "data", &vec![1u8; bytes]);
        let record = CacheRecord {
            snapshots: vec![key.into()],
            added: true,
            created,
            ingredients: None,
            content_key: None,
        };
        store.put_record(&key_of(key), &record).unwrap();
    }
    let r = store
        .prune(PruneOptions {
            older_than: Some(150),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(r.records, 1);
    assert!(!store.has_snapshot("old") && store.has_snapshot("mid"));
    store
        .prune(PruneOptions {
            keep_bytes: Some(3500),
            ..Default::default()
        })
        .unwrap();
    assert!(
        store.get_record(&key_of("mid")).unwrap().is_none(),
        "the oldest goes first"
    );
    assert!(store.has_snapshot("new") && store.get_record(&key_of("new")).unwrap().is_some());
}

#[test]
fn fsck_finds_and_repairs_corruption() {
    let (_d, store) = store();
    let good = store.put_blob(b"good").unwrap();
    let bad = store.put_blob(b"bad").unwrap();
    std::fs::write(store.blob_path(&bad.digest), b"flipped").unwrap();
    let report = store.fsck(false).unwrap();
    assert_eq!(report.blobs_checked, 2);
    assert_eq!(report.problems.len(), 1, "{report:?}");
    assert!(report.problems[0].contains(&bad.digest));
    store.fsck(true).unwrap();
    assert!(!store.has_blob(&bad.digest) && store.has_blob(&good.digest));
    assert!(store.fsck(false).unwrap().problems.is_empty());
}

#[test]
fn file_hashes_persist_and_reject_changed_stamps() {
    let (d, store) = store();
    let f = d.path().join("f");
    std::fs::write(&f, "x").unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    let stamp = rbuild_cache::FileStamp {
        mtime: 1,
        ctime: old
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i128,
        ..rbuild_cache::FileStamp::of(&std::fs::metadata(&f).unwrap())
    };
    let cache = store.file_hashes("ctx");
    cache.insert("f", stamp, [1; 32]);
    cache.save().unwrap();
    let cache = store.file_hashes("ctx");
    assert_eq!(cache.get("f", &stamp), Some([1; 32]));
    let changed = rbuild_cache::FileStamp {
        ctime: stamp.ctime + 1,
        ..stamp
    };
    assert_eq!(cache.get("f", &changed), None);
    // A change this recent is not trusted.
    let fresh = rbuild_cache::FileStamp::of(&std::fs::metadata(&f).unwrap());
    cache.insert("g", fresh, [2; 32]);
    assert_eq!(cache.get("g", &fresh), None);
}

#[test]
fn new_snapshots_are_spread_over_the_filesystem() {
    // On disk (/var/tmp), not on a tmpfs /tmp, where inode flags do not exist.
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let store = rbuild_cache::Store::open(dir.path()).unwrap();
    let tmp = std::fs::File::open(store.root().join("tmp")).unwrap();
    let mut flags: libc::c_long = 0;
    // SAFETY: one long read through a valid pointer on an fd we own.
    let rc = unsafe {
        libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(&tmp),
            libc::FS_IOC_GETFLAGS,
            &mut flags,
        )
    };
    if rc == 0 {
        assert_ne!(flags & 0x0002_0000, 0, "FS_TOPDIR_FL on tmp/");
    } else {
        // Only a filesystem without inode flags may refuse: tmpfs or overlayfs.
        let err = std::io::Error::last_os_error();
        let fs = nix::sys::statfs::statfs(&store.root().join("tmp")).unwrap();
        let kind = fs.filesystem_type();
        assert!(
            kind == nix::sys::statfs::TMPFS_MAGIC
                || kind == nix::sys::statfs::OVERLAYFS_SUPER_MAGIC,
            "FS_IOC_GETFLAGS failed ({err}) on a filesystem of type {kind:?}"
        );
    }
}

#[test]
fn layers_exported_from_built_snapshots_are_not_unpacked_again() {
    let (_d, store) = store();
    committed_snapshot(&store, "built-1", "built", b"x");
    // An empty tar stands for the layer exported from it.
    let mut w = store.blob_writer().unwrap();
    w.write_all(&[0u8; 1024]).unwrap();
    let blob = w.commit(None).unwrap();
    let media_type = "application/vnd.oci.image.layer.v1.tar";
    let layer = rbuild_cache::LayerRecord {
        snapshot: String::from("built-1"),
        diff_id: blob.digest.clone(),
        blob: blob.clone(),
        media_type: media_type.to_string(),
        epoch: None,
    };
    store.put_layer(&layer).unwrap();
    assert_eq!(store.unpack_layer(&blob, media_type).unwrap(), layer);
    let unpacked = format!("sha256-{}", &blob.digest["sha256:".len()..]);
    assert!(!store.has_snapshot(&unpacked));
    // Once the built snapshot is gone, the blob is unpacked as usual.
    store
        .prune(PruneOptions {
            all: true,
            ..PruneOptions::default()
        })
        .unwrap();
    assert!(!store.has_snapshot("built-1"));
    let mut w = store.blob_writer().unwrap();
    w.write_all(&[0u8; 1024]).unwrap();
    let blob = w.commit(None).unwrap();
    assert_eq!(
        store.unpack_layer(&blob, media_type).unwrap().snapshot,
        unpacked
    );
    assert!(store.has_snapshot(&unpacked));
}

/// A cache key named after `name`, for tests.
fn key_of(name: &str) -> CacheKey {
    CacheKey::from_hash(&blake3::hash(name.as_bytes()))
}

/// A gzip layer with a file, a whiteout, a symlink and a hard link.
fn small_layer() -> (Vec<u8>, Vec<u8>) {
    let tar = tar_of(&[
        ("etc", "d"),
        ("etc/passwd", "f:root"),
        ("etc/.wh.shadow", "f:"),
        ("bin/sh", "l:busybox"),
        ("bin/hard", "h:etc/passwd"),
    ]);
    let gz = gzip(&tar);
    (tar, gz)
}

/// What the store's `tmp/` holds (the pending snapshots among it).
fn tmp_entries(store: &Store) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(store.root().join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("snap-"))
        .collect();
    names.sort();
    names
}

#[test]
fn a_layer_unpacked_while_its_blob_is_written_shows_once_the_blob_is_committed() {
    let media_type = "application/vnd.oci.image.layer.v1.tar+gzip";
    let (tar, gz) = small_layer();
    // The same layer unpacked from its stored blob, in another store.
    let (_r, reference) = store();
    let blob = reference.put_blob(&gz).unwrap();
    let expected = reference.unpack_layer(&blob, media_type).unwrap();
    assert_eq!(expected.diff_id, sha256(&tar));

    let (_d, store) = store();
    let (mut feed, unpack) = store.unpack_layer_streamed(&blob, media_type).unwrap();
    for chunk in gz.chunks(7) {
        feed.write_all(chunk).unwrap();
    }
    // All written, not yet committed: the unpack waits for the end, and
    // neither the blob nor the snapshot is visible.
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(!store.has_blob(&blob.digest));
    assert!(!store.has_snapshot(&expected.snapshot));
    assert_eq!(tmp_entries(&store).len(), 1, "the pending snapshot");
    assert_eq!(feed.commit(Some(&blob.digest)).unwrap(), blob);
    let record = unpack.finish().unwrap();
    assert_eq!(record, expected);
    // The same tree: names, kinds, contents, and the store's listing of
    // it (modes, owners, sizes).
    let tree = |store: &Store| {
        let root = store.snapshot_path(&record.snapshot);
        let listed = std::fs::read(store.root().join("listings").join(&record.snapshot)).unwrap();
        let entries: Vec<_> = listing(&root)
            .into_iter()
            .map(|(path, kind)| (path.strip_prefix(&root).unwrap().to_path_buf(), kind))
            .collect();
        (entries, listed)
    };
    assert_eq!(tree(&store), tree(&reference));
    assert_eq!(
        store.layer_of_snapshot(&record.snapshot).unwrap().unwrap(),
        record
    );
    assert!(tmp_entries(&store).is_empty());
    assert!(store.fsck(false).unwrap().problems.is_empty());
}

#[test]
fn a_layer_whose_blob_fails_while_it_is_unpacked_leaves_nothing() {
    let media_type = "application/vnd.oci.image.layer.v1.tar+gzip";
    let (_, gz) = small_layer();
    // Another whole layer, which unpacks but is not the blob asked for.
    let other = gzip(&tar_of(&[("other", "f:not the layer")]));
    let (_r, reference) = store();
    let blob = reference.put_blob(&gz).unwrap();
    let id = reference.unpack_layer(&blob, media_type).unwrap().snapshot;
    for case in ["cut short", "not the bytes of its digest"] {
        let (_d, store) = store();
        let (mut feed, unpack) = store.unpack_layer_streamed(&blob, media_type).unwrap();
        match case {
            "cut short" => {
                feed.write_all(&gz[..gz.len() / 2]).unwrap();
                drop(feed);
            }
            _ => {
                feed.write_all(&other).unwrap();
                let refused = feed.commit(Some(&blob.digest)).unwrap_err();
                assert!(
                    matches!(refused, StoreError::DigestMismatch { .. }),
                    "{refused}"
                );
            }
        }
        let failed = unpack.finish().unwrap_err();
        assert!(
            failed.to_string().contains("not pulled whole"),
            "{case}: {failed}"
        );
        assert!(!store.has_blob(&blob.digest), "{case}");
        assert!(!store.has_snapshot(&id), "{case}");
        assert!(store.layer_of_snapshot(&id).unwrap().is_none(), "{case}");
        assert!(tmp_entries(&store).is_empty(), "{case}");
        assert!(store.fsck(false).unwrap().problems.is_empty(), "{case}");
    }
}

/// Gives at most one byte per read, as a layer still downloading may.
struct ByteByByte<'a>(&'a [u8]);

impl Read for ByteByByte<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some((first, rest)) = self.0.split_first() else {
            return Ok(0);
        };
        match buf.first_mut() {
            Some(out) => {
                *out = *first;
                self.0 = rest;
                Ok(1)
            }
            None => Ok(0),
        }
    }
}

#[test]
fn a_compressed_layer_read_a_byte_at_a_time_is_recognised_by_its_magic() {
    let tar = tar_of(&[("a", "f:hello")]);
    let zstd = zstd::encode_all(&tar[..], 3).unwrap();
    for (kind, bytes) in [("gzip", gzip(&tar)), ("zstd", zstd), ("plain", tar.clone())] {
        let mut out = Vec::new();
        rbuild_cache::decompress(ByteByByte(&bytes))
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, tar, "{kind}");
    }
}
