//! Pushing an image from the store: layers compressed as asked (locally
//! built layers are stored uncompressed; base layers go as pulled), blobs
//! uploaded at once with existence checks, then the manifest.

use oci_spec::image::Descriptor;
use rbuild_cache::{BlobInfo, LayerRecord, Store};
use rbuild_registry::{Client, Reference};
use serde_json::Value;

use crate::{Compression, ExportError, compress};

/// How many blobs are uploaded at once.
const PARALLEL_UPLOADS: usize = 4;

/// Reads a JSON blob.
pub(crate) fn read_json(store: &Store, digest: &str) -> Result<Value, ExportError> {
    serde_json::from_slice(&store.read_blob(digest)?)
        .map_err(|e| ExportError::Other(format!("blob {digest}: {e}")))
}

/// The layers of an image manifest, with the diff_ids from its config.
pub(crate) fn image_layers(
    store: &Store,
    manifest: &Value,
) -> Result<(Value, Vec<LayerRecord>), ExportError> {
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .ok_or_else(|| ExportError::Other(String::from("manifest without config")))?;
    let config = read_json(store, config_digest)?;
    let diff_ids = config["rootfs"]["diff_ids"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
    if diff_ids.len() != layers.len() {
        return Err(ExportError::Other(String::from(
            "config and manifest disagree on the number of layers",
        )));
    }
    let records = layers
        .iter()
        .zip(diff_ids)
        .map(|(l, d)| LayerRecord {
            snapshot: String::new(),
            diff_id: d.as_str().unwrap_or_default().to_string(),
            blob: BlobInfo {
                digest: l["digest"].as_str().unwrap_or_default().to_string(),
                size: l["size"].as_u64().unwrap_or_default(),
            },
            media_type: l["mediaType"].as_str().unwrap_or_default().to_string(),
        })
        .collect();
    Ok((config, records))
}

/// Pushes the image `manifest` points at to `reference`, with Docker
/// schema 2 media types when `docker_media_types`; returns the pushed
/// manifest's digest.
pub async fn push_image(
    store: &Store,
    manifest: &Descriptor,
    reference: &Reference,
    client: &Client,
    compression: Compression,
    docker_media_types: bool,
) -> Result<String, ExportError> {
    let mut doc = read_json(store, manifest.digest().as_ref())?;
    if docker_media_types {
        doc["mediaType"] = Value::from("application/vnd.docker.distribution.manifest.v2+json");
        doc["config"]["mediaType"] = Value::from("application/vnd.docker.container.image.v1+json");
    }
    let oci = doc["mediaType"].as_str().is_none_or(|m| m.contains("oci"));
    let (_, layers) = image_layers(store, &doc)?;
    let mut pushed = Vec::with_capacity(layers.len());
    for layer in layers {
        let store = store.clone();
        let converted = tokio::task::spawn_blocking(move || {
            compress::recompress(&store, &layer, compression, oci)
        })
        .await
        .map_err(|e| ExportError::Other(format!("compression task: {e}")))??;
        pushed.push(converted);
    }
    let config_digest = doc["config"]["digest"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut blobs: Vec<String> = pushed.iter().map(|l| l.blob.digest.clone()).collect();
    blobs.push(config_digest);
    let here = format!("{}/{}", reference.registry, reference.repository);
    let same_registry = format!("{}/", reference.registry);
    for batch in blobs.chunks(PARALLEL_UPLOADS) {
        let mut jobs = Vec::new();
        for d in batch {
            // A repository of the same registry known to hold the blob:
            // ask for a cross-repository mount instead of an upload.
            let from = store
                .blob_sources(d)?
                .into_iter()
                .filter(|r| r != &here)
                .find_map(|r| r.strip_prefix(&same_registry).map(str::to_string));
            jobs.push((d.clone(), store.blob_path(d), from));
        }
        let uploads = jobs
            .iter()
            .map(|(d, p, from)| client.push_blob_from(reference, d, p, from.as_deref()));
        futures::future::try_join_all(uploads).await?;
        for (d, _, _) in &jobs {
            store.add_blob_source(d, &here)?;
        }
    }
    doc["layers"] = Value::Array(
        pushed
            .iter()
            .map(|l| {
                serde_json::json!({
                    "mediaType": crate::image::layer_media_type(&l.media_type, oci),
                    "digest": l.blob.digest,
                    "size": l.blob.size,
                })
            })
            .collect(),
    );
    let bytes = serde_json::to_vec(&doc).expect("json serializes");
    store.put_blob(&bytes)?;
    let media_type = doc["mediaType"]
        .as_str()
        .unwrap_or("application/vnd.oci.image.manifest.v1+json")
        .to_string();
    Ok(client.push_manifest(reference, &media_type, &bytes).await?)
}
