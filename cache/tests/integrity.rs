//! The store's integrity promises: what prune clears besides blobs and
//! snapshots, what fsck finds in a broken store and what `--repair` does.

use oci_spec::image::{Descriptor, MediaType};
use rbuild_cache::{BlobInfo, FileStamp, PruneOptions, Store};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    (dir, store)
}

/// A plain tar holding one file.
fn one_file_tar(name: &str, content: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(content.len() as u64);
    b.append_data(&mut h, name, content).unwrap();
    b.into_inner().unwrap()
}

/// An image tagged `name`: a config and one (unpacked) layer. Returns
/// (manifest, config, layer).
fn tagged_image(store: &Store, name: &str) -> (BlobInfo, BlobInfo, BlobInfo) {
    let media_type = "application/vnd.oci.image.layer.v1.tar";
    let layer = store
        .put_blob(&one_file_tar("hello", name.as_bytes()))
        .unwrap();
    store.unpack_layer(&layer, media_type).unwrap();
    let config = store
        .put_blob(
            format!(r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#, layer.digest)
                .as_bytes(),
        )
        .unwrap();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{c}","size":{cs}}},"layers":[{{"mediaType":"{media_type}","digest":"{l}","size":{ls}}}]}}"#,
        c = config.digest,
        cs = config.size,
        l = layer.digest,
        ls = layer.size
    );
    let m = store.put_blob(manifest.as_bytes()).unwrap();
    let desc = Descriptor::new(
        MediaType::ImageManifest,
        m.size,
        m.digest.parse::<oci_spec::image::Digest>().unwrap(),
    );
    store.tag(name, &desc).unwrap();
    (m, config, layer)
}

#[test]
fn prune_drops_blob_sources_with_their_blobs_and_hash_caches_with_the_build_cache() {
    let (_d, store) = store();
    let (_, _, layer) = tagged_image(&store, "img");
    let orphan = store.put_blob(b"orphan").unwrap();
    store.add_blob_source(&layer.digest, "reg/app").unwrap();
    store.add_blob_source(&orphan.digest, "reg/app").unwrap();
    let hashes = store.file_hashes("ctx");
    let stamp = FileStamp {
        ino: 1,
        size: 1,
        mtime: 0,
        ctime: 0,
    };
    hashes.insert("f", stamp, [7; 32]);
    hashes.save().unwrap();
    let hash_files = || {
        std::fs::read_dir(store.root().join("hashes"))
            .unwrap()
            .count()
    };
    assert_eq!(hash_files(), 1);

    let report = store.prune(PruneOptions::default()).unwrap();
    assert_eq!(report.caches, 1, "{report:?}");
    assert!(store.blob_sources(&orphan.digest).unwrap().is_empty());
    assert_eq!(store.blob_sources(&layer.digest).unwrap(), ["reg/app"]);
    assert_eq!(hash_files(), 1, "a plain prune keeps the hash caches");

    // `until=` drops caches not saved since the cut-off; `--all` drops all.
    let future = i64::MAX;
    let dry = store
        .prune(PruneOptions {
            older_than: Some(future),
            dry_run: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(dry.caches, 1, "{dry:?}");
    assert_eq!(hash_files(), 1, "a dry run removes nothing");
    store
        .prune(PruneOptions {
            all: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(hash_files(), 0);
    assert_eq!(store.blob_sources(&layer.digest).unwrap(), ["reg/app"]);
}

/// Problems of a check, then a repair, then a clean check.
fn check_repair_clean(store: &Store) -> (Vec<String>, Vec<String>) {
    let found = store.fsck(false).unwrap();
    let repaired = store.fsck(true).unwrap();
    assert_eq!(
        repaired.problems[..found.problems.len()],
        found.problems[..]
    );
    let after = store.fsck(false).unwrap();
    assert!(after.problems.is_empty(), "{after:?}");
    (found.problems, repaired.removed)
}

#[test]
fn fsck_finds_images_missing_a_config_or_a_layer_and_repair_untags_them() {
    let (_d, store) = store();
    let (_, config, _) = tagged_image(&store, "no-config");
    let (_, _, layer) = tagged_image(&store, "no-layer");
    tagged_image(&store, "whole");
    std::fs::remove_file(store.blob_path(&config.digest)).unwrap();
    std::fs::remove_file(store.blob_path(&layer.digest)).unwrap();
    let report = store.fsck(false).unwrap();
    assert_eq!(report.images_checked, 3);
    let (problems, removed) = check_repair_clean(&store);
    assert_eq!(
        problems,
        [
            format!(
                "image no-config is incomplete: missing config {}",
                config.digest
            ),
            format!(
                "image no-layer is incomplete: missing layer {}",
                layer.digest
            ),
        ]
    );
    assert_eq!(removed, ["name no-config", "name no-layer"]);
    let names: Vec<String> = store
        .images()
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["whole"]);
}

#[test]
fn fsck_finds_a_corrupt_layer_blob_and_repair_removes_it_and_the_name() {
    let (_d, store) = store();
    let (_, _, layer) = tagged_image(&store, "img");
    std::fs::write(store.blob_path(&layer.digest), b"flipped").unwrap();
    let (problems, removed) = check_repair_clean(&store);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].starts_with(&format!("blob {} is corrupt", layer.digest)));
    assert_eq!(
        removed,
        [format!("blob {}", layer.digest), String::from("name img")]
    );
}

#[test]
fn fsck_finds_snapshots_that_lost_files_and_repair_removes_them_and_their_records() {
    let (_d, store) = store();
    let pending = store.new_snapshot().unwrap();
    std::fs::write(pending.dir().join("big"), vec![1u8; 4096]).unwrap();
    std::fs::write(pending.dir().join("other"), b"x").unwrap();
    pending.commit("built").unwrap();
    let record = rbuild_cache::CacheRecord {
        snapshots: vec![String::from("built")],
        added: true,
        created: 1,
        ingredients: None,
        content_key: None,
    };
    let key = rbuild_cache::CacheKey::from_hash(&blake3::hash(b"key1"));
    store.put_record(&key, &record).unwrap();
    assert!(store.fsck(false).unwrap().problems.is_empty());

    // What a power loss leaves: a file cut short.
    let big = store.snapshot_path("built").join("big");
    std::fs::File::options()
        .write(true)
        .open(&big)
        .unwrap()
        .set_len(0)
        .unwrap();
    let report = store.fsck(false).unwrap();
    assert_eq!(report.snapshots_checked, 1);
    assert_eq!(
        report.problems,
        ["snapshot built does not match its listing (2 entries recorded, 2 found, or changed)"]
    );
    let repaired = store.fsck(true).unwrap();
    assert_eq!(
        repaired.removed,
        [String::from("snapshot built"), format!("record {key}.json")]
    );
    assert!(!store.has_snapshot("built"));
    assert!(store.get_record(&key).unwrap().is_none());
    assert!(store.fsck(false).unwrap().problems.is_empty());
}

#[test]
fn fsck_finds_unlisted_snapshots_dangling_layer_records_and_unreadable_records() {
    let (_d, store) = store();
    std::fs::create_dir(store.root().join("snapshots/stray")).unwrap();
    let blob = store.put_blob(b"layer").unwrap();
    let layer = rbuild_cache::LayerRecord {
        snapshot: String::from("gone"),
        diff_id: blob.digest.clone(),
        blob,
        media_type: String::from("application/vnd.oci.image.layer.v1.tar"),
        epoch: None,
    };
    store.put_layer(&layer).unwrap();
    std::fs::write(store.root().join("records/key2.json"), b"{half").unwrap();
    let (problems, removed) = check_repair_clean(&store);
    assert_eq!(
        problems,
        [
            "snapshot stray has no recorded listing",
            "record key2.json is unreadable",
            "layer record gone.json names missing snapshot gone",
        ]
    );
    assert_eq!(
        removed,
        [
            "snapshot stray",
            "record key2.json",
            "layer record gone.json"
        ]
    );
}

#[test]
fn a_store_of_format_1_is_migrated_and_a_newer_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    {
        let store = Store::open(&root).unwrap();
        tagged_image(&store, "img");
    }
    assert_eq!(
        std::fs::read_to_string(root.join("store-version")).unwrap(),
        format!("{}\n", rbuild_cache::STORE_VERSION)
    );
    // What an rbuild of format 1 left: no version file, no listings.
    std::fs::remove_file(root.join("store-version")).unwrap();
    std::fs::remove_dir_all(root.join("listings")).unwrap();
    let store = Store::open(&root).unwrap();
    assert_eq!(
        std::fs::read_to_string(root.join("store-version")).unwrap(),
        "2\n"
    );
    let report = store.fsck(false).unwrap();
    assert_eq!(report.snapshots_checked, 1);
    assert!(report.problems.is_empty(), "{report:?}");
    drop(store);

    std::fs::write(root.join("store-version"), "3\n").unwrap();
    let err = Store::open(&root).unwrap_err().to_string();
    assert!(
        err.contains("version 3, newer than this rbuild's 2") && err.contains("newer rbuild"),
        "{err}"
    );
    std::fs::write(root.join("store-version"), "two\n").unwrap();
    let err = Store::open(&root).unwrap_err().to_string();
    assert!(
        err.contains("store-version") && err.contains("\"two\""),
        "{err}"
    );
}
