//! Pushing an image from the store: layers compressed as asked (locally
//! built layers are stored uncompressed; base layers go as pulled), each
//! uploaded as soon as it is ready, with existence checks, then the
//! manifest.

use oci_spec::image::Descriptor;
use rbuild_cache::{BlobInfo, LayerRecord, Store};
use rbuild_registry::{Client, Reference};
use serde_json::Value;

use crate::{Compression, ExportError, compress};

/// How many blobs are uploaded at once.
const PARALLEL_UPLOADS: usize = 4;

/// Uploads blobs of the store to one repository, a few at a time.
struct Uploader<'a> {
    store: &'a Store,
    client: &'a Client,
    reference: &'a Reference,
    /// `registry/repository` of the destination.
    here: String,
    slots: tokio::sync::Semaphore,
}

impl Uploader<'_> {
    /// Uploads blob `digest` (skipped when the registry has it), by a
    /// cross-repository mount when a repository of the same registry is
    /// known to hold it; remembers the destination as one of its sources.
    async fn blob(&self, digest: &str) -> Result<(), ExportError> {
        let _slot = self.slots.acquire().await.expect("never closed");
        let same_registry = format!("{}/", self.reference.registry);
        let from = self
            .store
            .blob_sources(digest)?
            .into_iter()
            .filter(|r| r != &self.here)
            .find_map(|r| r.strip_prefix(&same_registry).map(str::to_string));
        self.client
            .push_blob_from(
                self.reference,
                digest,
                &self.store.blob_path(digest),
                from.as_deref(),
            )
            .await?;
        self.store.add_blob_source(digest, &self.here)?;
        Ok(())
    }
}

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
            epoch: None,
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
    let config_digest = doc["config"]["digest"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let upload = Uploader {
        store,
        client,
        reference,
        here: format!("{}/{}", reference.registry, reference.repository),
        slots: tokio::sync::Semaphore::new(PARALLEL_UPLOADS),
    };
    // A pipeline: each layer goes up as soon as it is compressed, while the
    // next one compresses (one at a time: each uses every core).
    let compressing = tokio::sync::Semaphore::new(1);
    let layer_jobs = layers.into_iter().map(|layer| {
        let (upload, compressing) = (&upload, &compressing);
        async move {
            let converted = {
                let _turn = compressing.acquire().await.expect("never closed");
                let store = store.clone();
                tokio::task::spawn_blocking(move || {
                    compress::recompress(&store, &layer, compression, oci)
                })
                .await
                .map_err(|e| ExportError::Other(format!("compression task: {e}")))??
            };
            upload.blob(&converted.blob.digest).await?;
            Ok::<_, ExportError>(converted)
        }
    });
    let (pushed, ()) = futures::future::try_join(
        futures::future::try_join_all(layer_jobs),
        upload.blob(&config_digest),
    )
    .await?;
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
