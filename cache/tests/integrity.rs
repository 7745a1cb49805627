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
