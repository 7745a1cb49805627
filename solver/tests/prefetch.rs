//! The resolver's early layer pulls: once asked to
//! (`ImageResolver::prefetch_layers`), resolving a registry image pulls
//! and unpacks its layers with no step asking for them; otherwise only a
//! step's ask does.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rbuild_cache::Store;
use rbuild_registry::testing::TestRegistry;
use rbuild_registry::{Client, ClientOptions, Platform, Reference};
use rbuild_solver::ImageResolver;
use sha2::{Digest, Sha256};

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Pushes a one-layer image (a file `/marker`) as `name`; its layer's digest.
async fn push_image(name: &str) -> String {
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(3);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    tar.append_data(&mut header, "marker", &b"hi\n"[..])
        .unwrap();
    let tar = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    let layer = gz.finish().unwrap();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [sha256(&tar)]},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": sha256(&layer), "size": layer.len()}],
    }))
    .unwrap();
    let reference = Reference::parse(name).unwrap();
    let client = Client::new(ClientOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for blob in [&config, &layer] {
        let path = dir.path().join("blob");
        std::fs::write(&path, blob).unwrap();
        client
            .push_blob(&reference, &sha256(blob), &path)
            .await
            .unwrap();
    }
    let media_type = "application/vnd.oci.image.manifest.v1+json";
    client
        .push_manifest(&reference, media_type, &manifest)
        .await
        .unwrap();
    sha256(&layer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asked_to_prefetch_the_resolver_unpacks_the_layers_it_resolves() {
    let registry = TestRegistry::start();
    let name = format!("{}/prefetch/base:v1", registry.addr);
    let layer = push_image(&name).await;
    let snapshot = format!("sha256-{}", layer.strip_prefix("sha256:").unwrap());
    let platform = Platform {
        os: String::from("linux"),
        architecture: String::from("amd64"),
        variant: None,
    };
    for prefetch in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let client = Client::new(ClientOptions::default()).unwrap();
        let images = Arc::new(ImageResolver::new(store.clone(), client));
        if prefetch {
            images.prefetch_layers();
        }
        let image = images.resolve(&name, &platform).await.unwrap();
        // Nothing asks for the layer: it comes only if prefetched.
        let deadline = Instant::now() + Duration::from_secs(if prefetch { 10 } else { 1 });
        while !store.has_snapshot(&snapshot) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            store.has_snapshot(&snapshot),
            prefetch,
            "prefetch {prefetch}"
        );
        assert_eq!(store.has_blob(&layer), prefetch, "prefetch {prefetch}");
        // A step's ask finds it (or pulls it now), the same snapshot.
        let asked = images.snapshot(&image.layers[0]).await.unwrap();
        assert_eq!(asked, snapshot);
        let marker = store.snapshot_path(&snapshot).join("marker");
        assert_eq!(std::fs::read_to_string(marker).unwrap(), "hi\n");
    }
}
