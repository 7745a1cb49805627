//! Helpers shared by the integration tests that push and pull images.

// Each test binary uses only some of these.
#![allow(dead_code)]

use rbuild_registry::{Client, Platform, Reference};
use sha2::Digest;

/// `sha256:<hex>` of `b`.
pub fn digest(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)))
}

/// `linux/amd64`.
pub fn platform() -> Platform {
    Platform {
        os: "linux".into(),
        architecture: "amd64".into(),
        variant: None,
    }
}

/// `n` distinct layers of `size` bytes each.
pub fn layers(n: usize, size: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|l| (0..size).map(|i| ((i * 31 + l * 7) % 251) as u8).collect())
        .collect()
}

/// An image: its config blob and manifest for `layers`.
pub fn image(layers: &[Vec<u8>]) -> (Vec<u8>, Vec<u8>) {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    let entries: Vec<String> = layers
        .iter()
        .map(|l| {
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}"#,
                digest(l),
                l.len()
            )
        })
        .collect();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{}]}}"#,
        digest(&config),
        config.len(),
        entries.join(",")
    );
    (config, manifest.into_bytes())
}

/// Pushes the config, the layers, then the manifest; returns the manifest.
pub async fn push_image(
    client: &Client,
    r: &Reference,
    dir: &std::path::Path,
    layers: &[Vec<u8>],
) -> Result<Vec<u8>, rbuild_registry::RegistryError> {
    let (config, manifest) = image(layers);
    for (i, blob) in std::iter::once(&config).chain(layers).enumerate() {
        let p = dir.join(format!("blob-{i}"));
        std::fs::write(&p, blob).unwrap();
        client.push_blob(r, &digest(blob), &p).await?;
    }
    client
        .push_manifest(r, "application/vnd.oci.image.manifest.v1+json", &manifest)
        .await?;
    Ok(manifest)
}

/// Pulls the manifest and every layer of `r`, checking they are exactly
/// `manifest` and `layers`.
pub async fn pull_and_compare(client: &Client, r: &Reference, manifest: &[u8], layers: &[Vec<u8>]) {
    let pulled = client.pull_manifest(r, &platform()).await.unwrap();
    assert_eq!(pulled.bytes, manifest);
    assert_eq!(pulled.digest, digest(manifest));
    for layer in layers {
        let mut out = Vec::new();
        let n = client.pull_blob(r, &digest(layer), &mut out).await.unwrap();
        assert_eq!(n as usize, layer.len());
        assert!(out == *layer, "layer {} is byte-identical", digest(layer));
    }
}
