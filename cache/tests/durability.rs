//! The durability contract, checked where it can be: the order of syncs
//! and renames through a recording disk (a power loss cannot be staged on
//! this kernel), and the check the first command after a restart makes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rbuild_cache::{CacheKey, CacheRecord, DiskStep, RecordingDisk, Store};

/// The last step before `before` that is `wanted`.
fn last(
    steps: &[DiskStep],
    before: usize,
    wanted: impl Fn(&DiskStep) -> bool,
    what: &str,
) -> usize {
    steps[..before]
        .iter()
        .rposition(wanted)
        .unwrap_or_else(|| panic!("no step {what} in {steps:#?}"))
}

/// Where the file last renamed to `to` came from and when.
fn renamed_to(steps: &[DiskStep], to: &Path) -> (usize, PathBuf) {
    let rename = |s: &DiskStep| matches!(s, DiskStep::Rename(_, t) if t == to);
    let at = last(steps, steps.len(), rename, "rename");
    let DiskStep::Rename(from, _) = &steps[at] else {
        unreachable!()
    };
    (at, from.clone())
}

/// The file last renamed to `to` was synced first; when it was named.
fn synced_before_named(steps: &[DiskStep], to: &Path) -> usize {
    let (at, from) = renamed_to(steps, to);
    last(
        steps,
        at,
        |s| matches!(s, DiskStep::Sync(p) if *p == from),
        "sync",
    );
    at
}

#[test]
fn every_name_appears_after_what_it_names_is_synced() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let disk = Arc::new(RecordingDisk::default());
    let store = Store::open_on(&root, disk.clone()).unwrap();

    let blob = store.put_blob(b"{}").unwrap();
    let pending = store.new_snapshot().unwrap();
    std::fs::write(pending.dir().join("f"), b"data").unwrap();
    pending.commit("built").unwrap();
    let record = CacheRecord {
        snapshots: vec![String::from("built")],
        added: true,
        created: 1,
        ingredients: None,
        content_key: None,
    };
    let key = CacheKey::from_hash(&blake3::hash(b"key"));
    store.put_record(&key, &record).unwrap();
    let desc = oci_spec::image::Descriptor::new(
        oci_spec::image::MediaType::ImageManifest,
        blob.size,
        blob.digest.parse::<oci_spec::image::Digest>().unwrap(),
    );
    store.tag("img", &desc).unwrap();

    let steps = disk.steps();
    let blob_named = synced_before_named(&steps, &store.blob_path(&blob.digest));
    let index_named = synced_before_named(&steps, &root.join("index.json"));
    assert!(blob_named < index_named, "a tag only names a stored blob");
    let listing_named = synced_before_named(&steps, &root.join("listings/built"));
    let (snapshot_named, _) = renamed_to(&steps, &store.snapshot_path("built"));
    let record_named = synced_before_named(&steps, &root.join(format!("records/{key}.json")));
    assert!(
        listing_named < snapshot_named && snapshot_named < record_named,
        "listing, then snapshot, then the record naming it: {steps:#?}"
    );
    synced_before_named(&steps, &root.join("store-version"));
    synced_before_named(&steps, &root.join("oci-layout"));
    // The boot is recorded as a hint, not through the synced writes
    // (see `recovery`).
    let boot_id = root.join("boot-id");
    assert!(boot_id.exists());
    assert!(
        !steps
            .iter()
            .any(|s| matches!(s, DiskStep::Rename(_, to) if *to == boot_id)),
        "{steps:#?}"
    );
}

#[test]
fn the_first_command_after_a_restart_removes_snapshots_left_short() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = Store::open(&root).unwrap();
    let pending = store.new_snapshot().unwrap();
    std::fs::write(pending.dir().join("f"), vec![7u8; 8192]).unwrap();
    pending.commit("built").unwrap();
    let record = CacheRecord {
        snapshots: vec![String::from("built")],
        added: true,
        created: 1,
        ingredients: None,
        content_key: None,
    };
    let key = CacheKey::from_hash(&blake3::hash(b"key"));
    store.put_record(&key, &record).unwrap();
    // What a power loss can leave: the file's blocks never written.
    let file = store.snapshot_path("built").join("f");
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(0)
        .unwrap();

    // In the same boot, nothing is walked (the kernel kept every write).
    Store::open(&root).unwrap();
    assert!(store.has_snapshot("built"));

    // As if the store was last used in another boot.
    std::fs::write(root.join("boot-id"), "an-earlier-boot\n").unwrap();
    Store::open(&root).unwrap();
    assert!(!store.has_snapshot("built"), "the short snapshot is gone");
    assert!(store.get_record(&key).unwrap().is_none(), "and its record");
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    assert_eq!(std::fs::read_to_string(root.join("boot-id")).unwrap(), boot);
    assert!(store.fsck(false).unwrap().problems.is_empty());
}

#[test]
fn a_blob_source_list_torn_by_a_power_loss_reads_as_none() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = Store::open(&root).unwrap();
    let blob = store.put_blob(b"layer").unwrap();
    store.add_blob_source(&blob.digest, "reg/app").unwrap();
    assert_eq!(store.blob_sources(&blob.digest).unwrap(), ["reg/app"]);
    // A hint, written without a sync: what a power loss may leave of it.
    let hex = blob.digest.strip_prefix("sha256:").unwrap();
    std::fs::write(
        root.join("sources").join(format!("{hex}.json")),
        b"[\"reg/a",
    )
    .unwrap();
    assert!(store.blob_sources(&blob.digest).unwrap().is_empty());
    store.add_blob_source(&blob.digest, "reg/other").unwrap();
    assert_eq!(store.blob_sources(&blob.digest).unwrap(), ["reg/other"]);
    assert!(store.fsck(false).unwrap().problems.is_empty());
}
