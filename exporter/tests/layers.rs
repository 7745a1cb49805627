//! Layers and images: deterministic bytes, OCI whiteouts, real consumers.

use std::os::unix::fs::symlink;
use std::process::Command;

use rbuild_cache::Store;
use rbuild_exporter::{Compression, ExportOptions, ImageSpec, export_layer, write_image};

fn opts(compression: Compression) -> ExportOptions {
    ExportOptions {
        compression,
        source_date_epoch: Some(1_000_000),
        oci_mediatypes: true,
    }
}

/// A snapshot with a file, a dir, a symlink, a hard link, a whiteout and an
/// opaque dir; `stamp` varies mtimes.
fn snapshot(store: &Store, id: &str, stamp: i64) {
    let p = store.new_snapshot().unwrap();
    let d = p.dir();
    std::fs::create_dir_all(d.join("app/sub")).unwrap();
    std::fs::create_dir_all(d.join("opaque")).unwrap();
    std::fs::write(d.join("app/main"), "main").unwrap();
    std::fs::hard_link(d.join("app/main"), d.join("app/alias")).unwrap();
    symlink("main", d.join("app/link")).unwrap();
    nix::sys::stat::mknod(
        &d.join("gone"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::empty(),
        0,
    )
    .unwrap();
    let c = std::ffi::CString::new(d.join("opaque").to_str().unwrap()).unwrap();
    // SAFETY: valid path and value.
    unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            rbuild_cache::OPAQUE_XATTR.as_ptr(),
            b"y".as_ptr().cast(),
            1,
            0,
        )
    };
    for f in ["app/main", "app/sub", "opaque"] {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs((2_000_000 + stamp) as u64);
        std::fs::File::open(d.join(f))
            .unwrap()
            .set_modified(t)
            .unwrap();
    }
    p.commit(id).unwrap();
}

fn listing(store: &Store, digest: &str, flag: &str) -> String {
    let out = Command::new("tar")
        .args([flag, "-tvf"])
        .arg(store.blob_path(digest))
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn layers_are_deterministic_and_carry_oci_whiteouts() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    snapshot(&store, "a", 0);
    snapshot(&store, "b", 77);
    let a = export_layer(&store, "a", &opts(Compression::Gzip(6))).unwrap();
    let b = export_layer(&store, "b", &opts(Compression::Gzip(6))).unwrap();
    assert_eq!(a.blob, b.blob, "same content, mtimes clamped → same blob");
    assert_eq!(a.diff_id, b.diff_id);
    assert_eq!(a.media_type, "application/vnd.oci.image.layer.v1.tar+gzip");
    assert_eq!(
        export_layer(&store, "a", &opts(Compression::Gzip(6))).unwrap(),
        a,
        "recorded"
    );
    let list = listing(&store, &a.blob.digest, "-z");
    for want in [
        "app/\n",
        "app/main link to app/alias",
        "app/link -> main",
        ".wh.gone",
        "opaque/.wh..wh..opq",
    ] {
        assert!(list.contains(want), "missing {want:?} in\n{list}");
    }
    assert!(
        list.contains("1970-01-12"),
        "mtime clamped to the epoch: {list}"
    );
    let first = list.find("app/alias").unwrap();
    assert!(
        first < list.find("app/link").unwrap() && list.find("app/sub/").unwrap() > first,
        "entries sorted: {list}"
    );

    snapshot(&store, "z", 5);
    let z = export_layer(&store, "z", &opts(Compression::Zstd(3))).unwrap();
    assert_eq!(
        z.diff_id, a.diff_id,
        "the same tar whatever the compression"
    );
    assert!(listing(&store, &z.blob.digest, "--zstd").contains(".wh.gone"));
}

#[test]
fn images_are_read_by_skopeo_and_umoci() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    snapshot(&store, "layer", 0);
    let o = opts(Compression::Uncompressed);
    let layer = export_layer(&store, "layer", &o).unwrap();
    let spec = ImageSpec {
        layers: vec![layer],
        config: rbuild_image::ImageConfig {
            env: vec!["A=1".into()],
            cmd: Some(vec!["/app/main".into()]),
            ..Default::default()
        },
        history: vec![rbuild_image::History {
            created_by: "COPY . /app".into(),
            ..Default::default()
        }],
        author: Some("me".into()),
        annotations: [("org.example.k".to_string(), "v".to_string())].into(),
        created: "1970-01-12T13:46:40Z".into(),
        os: "linux".into(),
        architecture: "amd64".into(),
        variant: None,
        inline_cache: None,
    };
    let m1 = write_image(&store, &spec, &o).unwrap();
    let m2 = write_image(&store, &spec, &o).unwrap();
    assert_eq!(m1.digest(), m2.digest(), "deterministic manifest");
    store.tag("img", &m1).unwrap();
    let out = Command::new("skopeo")
        .args(["inspect", "--config"])
        .arg(format!("oci:{}:img", store.root().display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(config["author"], "me");
    assert_eq!(config["config"]["Cmd"][0], "/app/main");
    let bundle = dir.path().join("bundle");
    let out = Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:img", store.root().display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(bundle.join("rootfs/app/alias")).unwrap(),
        "main"
    );
    assert!(!bundle.join("rootfs/gone").exists());
}

#[test]
fn digests_from_hostile_manifests_never_name_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let bait = dir.path().join("bait");
    std::fs::write(&bait, "keep").unwrap();
    let escape = "sha256:../../../../bait";
    let real_layer = store.put_blob(b"layer").unwrap().digest;
    // A config whose diff_id climbs out (refused where it would name an
    // archive entry), and a manifest whose layer digest does (refused
    // when the manifest is read: it is not a digest).
    for (diff_id, layer_digest, refusal) in [
        (escape, real_layer.as_str(), "not a sha256 digest"),
        ("sha256:00", escape, "Invalid encoded value"),
    ] {
        let config = store
            .put_blob(
                serde_json::json!({ "rootfs": { "type": "layers", "diff_ids": [diff_id] } })
                    .to_string()
                    .as_bytes(),
            )
            .unwrap();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.digest, "size": config.size },
            "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": 1 }],
        });
        let blob = store.put_blob(manifest.to_string().as_bytes()).unwrap();
        let desc = oci_spec::image::Descriptor::new(
            oci_spec::image::MediaType::ImageManifest,
            blob.size,
            blob.digest.parse::<oci_spec::image::Digest>().unwrap(),
        );
        let err = rbuild_exporter::save_docker_archive(
            &store,
            &[(String::from("hostile"), desc.clone())],
            std::io::sink(),
        )
        .unwrap_err();
        assert!(err.to_string().contains(refusal), "{err}");
        if diff_id == escape {
            continue;
        }
        let layout = dir.path().join("layout/deep");
        let err =
            rbuild_exporter::export_oci(&store, &desc, "hostile", &layout, false).unwrap_err();
        assert!(err.to_string().contains(refusal), "{err}");
    }
    assert_eq!(std::fs::read_to_string(&bait).unwrap(), "keep");
    assert!(!dir.path().join("layout/bait").exists());
}

#[test]
fn docker_archives_cannot_name_files_outside_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let secret = dir.path().join("secret.json");
    std::fs::write(&secret, "{}").unwrap();
    for (config, layer) in [
        (secret.to_str().unwrap().to_string(), "layer.tar"),
        (
            "../../../../../../../../../../../../".to_string() + secret.to_str().unwrap(),
            "layer.tar",
        ),
        ("config.json".to_string(), "link/secret.json"),
    ] {
        let mut b = tar::Builder::new(Vec::new());
        let manifest =
            serde_json::json!([{ "Config": config, "RepoTags": ["x:1"], "Layers": [layer] }]);
        for (name, data) in [
            ("manifest.json", manifest.to_string().into_bytes()),
            ("config.json", b"{}".to_vec()),
            ("layer.tar", vec![0; 1024]),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, &data[..]).unwrap();
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "link", dir.path()).unwrap();
        let archive = b.into_inner().unwrap();
        let err = rbuild_exporter::load_docker_archive(&store, &archive[..]).unwrap_err();
        assert!(
            err.to_string().contains("docker archive manifest.json"),
            "{config} {layer}: {err}"
        );
    }
}

#[test]
fn large_xattrs_and_non_utf8_names_reach_the_layer_whole() {
    use std::io::Read;
    use std::os::unix::ffi::OsStrExt;
    // On tmpfs (user xattrs since Linux 6.6), whose values may reach 64 KiB;
    // ext4 caps a value at one block.
    let dir = tempfile::tempdir_in("/dev/shm").unwrap();
    let store = Store::open(dir.path()).unwrap();
    let p = store.new_snapshot().unwrap();
    let name = std::ffi::OsStr::from_bytes(b"bad\xffname");
    let file = p.dir().join(name);
    std::fs::write(&file, "x").unwrap();
    // 10 KB: more than a first 4 KiB read of the value returns.
    let value = vec![b'v'; 10_000];
    let c = std::ffi::CString::new(file.as_os_str().as_bytes()).unwrap();
    // SAFETY: valid strings and buffer.
    let rc = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            c"user.big".as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
    p.commit("big").unwrap();
    let layer = export_layer(&store, "big", &opts(Compression::Uncompressed)).unwrap();
    let mut archive =
        tar::Archive::new(std::fs::File::open(store.blob_path(&layer.blob.digest)).unwrap());
    let mut entries = archive.entries().unwrap();
    let mut entry = entries.next().unwrap().unwrap();
    assert_eq!(&entry.path_bytes()[..], b"bad\xffname");
    let xattrs: Vec<(Vec<u8>, usize)> = entry
        .pax_extensions()
        .unwrap()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.key_bytes().to_vec(), e.value_bytes().len())
        })
        .collect();
    assert_eq!(xattrs, [(b"SCHILY.xattr.user.big".to_vec(), 10_000)]);
    let mut content = String::new();
    entry.read_to_string(&mut content).unwrap();
    assert_eq!(content, "x");
}

#[test]
fn left_out_paths_stay_in_the_snapshot_but_not_in_the_layer() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let p = store.new_snapshot().unwrap();
    let d = p.dir();
    std::fs::create_dir_all(d.join("base")).unwrap();
    std::fs::create_dir_all(d.join("copied")).unwrap();
    std::fs::write(d.join("base/data"), "data").unwrap();
    std::fs::hard_link(d.join("base/data"), d.join("new")).unwrap();
    std::fs::write(d.join("copied/f"), "f").unwrap();
    // As a RUN records its unchanged copy-ups: beside the dir it filled.
    std::fs::write(
        d.with_file_name("left-out"),
        "copied/f\0copied\0base/data\0",
    )
    .unwrap();
    p.commit("run").unwrap();
    assert_eq!(store.left_out("run").unwrap().len(), 3);
    let layer = export_layer(&store, "run", &opts(Compression::Uncompressed)).unwrap();
    let mut archive =
        tar::Archive::new(std::fs::File::open(store.blob_path(&layer.blob.digest)).unwrap());
    let entries: Vec<(String, tar::EntryType)> = archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            (path, e.header().entry_type())
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("base/".to_string(), tar::EntryType::Directory),
            ("new".to_string(), tar::EntryType::Regular),
        ],
        "left-out paths are absent; a link to one is a regular file"
    );
    let snap = store.snapshot_path("run");
    assert_eq!(
        snap.join("base/data").metadata().unwrap().nlink(),
        2,
        "the snapshot keeps the left-out name, linked as the RUN left it"
    );
    assert!(snap.join("copied/f").exists());
}

/// A snapshot of 100 files in two directories, with hard links inside it
/// to files 0, 40 and 99 (file 40 twice). With `outside`, every file also
/// has a name outside the snapshot, as after a COPY that shares files
/// with an earlier snapshot; without, the files are made afresh.
fn linked_snapshot(store: &Store, id: &str, outside: Option<&std::path::Path>) {
    let p = store.new_snapshot().unwrap();
    let d = p.dir();
    for sub in ["a", "b"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    for i in 0..100 {
        let rel = format!("{}/f{i:03}", if i < 50 { "a" } else { "b" });
        let data = format!("file {i}\n").repeat(i + 1);
        match outside {
            Some(out) => {
                let kept = out.join(format!("{id}-{i}"));
                std::fs::write(&kept, data).unwrap();
                std::fs::hard_link(&kept, d.join(&rel)).unwrap();
            }
            None => std::fs::write(d.join(&rel), data).unwrap(),
        }
    }
    for (target, alias) in [
        ("a/f000", "b/z0"),
        ("a/f040", "b/z40"),
        ("a/f040", "b/z40b"),
        ("b/f099", "b/z99"),
    ] {
        std::fs::hard_link(d.join(target), d.join(alias)).unwrap();
    }
    p.commit(id).unwrap();
}

#[test]
fn names_linked_from_outside_the_layer_leave_its_tar_as_without_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    linked_snapshot(&store, "shared", Some(&outside));
    linked_snapshot(&store, "fresh", None);
    let shared = export_layer(&store, "shared", &opts(Compression::Uncompressed)).unwrap();
    let fresh = export_layer(&store, "fresh", &opts(Compression::Uncompressed)).unwrap();
    assert_eq!(shared.blob, fresh.blob, "the same tar bytes");

    let mut archive =
        tar::Archive::new(std::fs::File::open(store.blob_path(&shared.blob.digest)).unwrap());
    let mut links = Vec::new();
    let mut regular = 0;
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        match entry.header().entry_type() {
            tar::EntryType::Link => {
                let target = entry.link_name().unwrap().unwrap();
                links.push((path, target.to_string_lossy().into_owned()));
            }
            tar::EntryType::Regular => regular += 1,
            _ => {}
        }
    }
    assert_eq!(regular, 100, "each file's first name carries its data");
    let want = [
        ("b/z0", "a/f000"),
        ("b/z40", "a/f040"),
        ("b/z40b", "a/f040"),
        ("b/z99", "b/f099"),
    ];
    let want: Vec<(String, String)> = (want.iter())
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(links, want, "later names link to the first, in tar order");
}
