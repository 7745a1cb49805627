//! The image config and manifest of a built image, as canonical JSON (keys
//! sorted), so that the same inputs give the same digests.

use oci_spec::image::{Descriptor, Digest, MediaType};
use rbuild_cache::{LayerRecord, Store};
use serde_json::{Value, json};

use crate::{ExportError, ExportOptions};

/// An image to write: layers bottom first, the `config` object, history.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// Layers, bottom first.
    pub layers: Vec<LayerRecord>,
    /// The config's `config` object (Docker field names).
    pub config: Value,
    /// History entries (serialized `History` objects), in order.
    pub history: Vec<Value>,
    /// `author` (MAINTAINER).
    pub author: Option<String>,
    /// Manifest annotations (`--annotation`).
    pub annotations: std::collections::BTreeMap<String, String>,
    /// `created`, RFC 3339.
    pub created: String,
    /// `os`.
    pub os: String,
    /// `architecture`.
    pub architecture: String,
    /// `variant`.
    pub variant: Option<String>,
}

/// The image config JSON.
fn config_json(image: &ImageSpec) -> Value {
    let mut config = json!({
        "architecture": image.architecture,
        "os": image.os,
        "created": image.created,
        "config": image.config,
        "rootfs": {
            "type": "layers",
            "diff_ids": image.layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(),
        },
        "history": image.history,
    });
    if let Some(v) = &image.variant {
        config["variant"] = json!(v);
    }
    if let Some(a) = &image.author {
        config["author"] = json!(a);
    }
    config
}

/// A layer media type in the manifest's family (OCI or Docker schema 2).
pub(crate) fn layer_media_type(media_type: &str, oci: bool) -> String {
    let suffix = if media_type.ends_with("gzip") {
        Some("gzip")
    } else if media_type.ends_with("zstd") {
        Some("zstd")
    } else if media_type.ends_with("tar") {
        None
    } else {
        return media_type.to_string();
    };
    match (oci, suffix) {
        (true, Some(c)) => format!("application/vnd.oci.image.layer.v1.tar+{c}"),
        (true, None) => String::from("application/vnd.oci.image.layer.v1.tar"),
        (false, Some(c)) => format!("application/vnd.docker.image.rootfs.diff.tar.{c}"),
        (false, None) => String::from("application/vnd.docker.image.rootfs.diff.tar"),
    }
}

/// Writes the config and manifest blobs; returns the manifest descriptor.
pub fn write_image(
    store: &Store,
    image: &ImageSpec,
    opts: &ExportOptions,
) -> Result<Descriptor, ExportError> {
    let (manifest_type, config_type) = if opts.oci_mediatypes {
        (
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.config.v1+json",
        )
    } else {
        (
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.container.image.v1+json",
        )
    };
    let config = serde_json::to_vec(&config_json(image)).expect("json serializes");
    let config = store.put_blob(&config)?;
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": { "mediaType": config_type, "digest": config.digest, "size": config.size },
        "layers": image.layers.iter().map(|l| json!({
            "mediaType": layer_media_type(&l.media_type, opts.oci_mediatypes),
            "digest": l.blob.digest,
            "size": l.blob.size,
        })).collect::<Vec<_>>(),
    });
    if !image.annotations.is_empty() {
        manifest["annotations"] = json!(image.annotations);
    }
    let bytes = serde_json::to_vec(&manifest).expect("json serializes");
    let blob = store.put_blob(&bytes)?;
    let digest: Digest = blob
        .digest
        .parse()
        .map_err(|e| ExportError::Other(format!("manifest digest: {e}")))?;
    Ok(Descriptor::new(
        MediaType::from(manifest_type),
        blob.size,
        digest,
    ))
}
