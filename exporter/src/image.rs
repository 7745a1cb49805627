//! The image config and manifest of a built image, as canonical JSON (keys
//! sorted), so that the same inputs give the same digests.

use std::collections::BTreeMap;

use oci_spec::image::Descriptor;
use rbuild_cache::{LayerRecord, Store};
use rbuild_image::json::to_canonical_json;
use rbuild_image::manifest::{descriptor, image_manifest};
use rbuild_image::{ConfigFile, History, ImageConfig, RootFs, media};

use crate::{ExportError, ExportOptions};

/// An image to write: layers bottom first, the `config` object, history.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// Layers, bottom first.
    pub layers: Vec<LayerRecord>,
    /// The config's `config` object.
    pub config: ImageConfig,
    /// History entries, in order.
    pub history: Vec<History>,
    /// `author` (MAINTAINER).
    pub author: Option<String>,
    /// Manifest annotations (`--annotation`).
    pub annotations: BTreeMap<String, String>,
    /// `created`, RFC 3339.
    pub created: String,
    /// `os`.
    pub os: String,
    /// `architecture`.
    pub architecture: String,
    /// `variant`.
    pub variant: Option<String>,
    /// The inline build cache the config carries (`--cache-to
    /// type=inline`), if asked for.
    pub inline_cache: Option<serde_json::Value>,
}

/// The image config document.
fn config_file(image: &ImageSpec) -> ConfigFile {
    ConfigFile {
        architecture: image.architecture.clone(),
        os: image.os.clone(),
        variant: image.variant.clone(),
        created: Some(image.created.clone()),
        author: image.author.clone(),
        config: image.config.clone(),
        rootfs: RootFs {
            diff_ids: image.layers.iter().map(|l| l.diff_id.clone()).collect(),
            ..RootFs::default()
        },
        history: image.history.clone(),
        inline_cache: image.inline_cache.clone(),
    }
}

/// Writes the config and manifest blobs; returns the manifest descriptor.
pub fn write_image(
    store: &Store,
    image: &ImageSpec,
    opts: &ExportOptions,
) -> Result<Descriptor, ExportError> {
    let (manifest_type, config_type) = if opts.oci_mediatypes {
        (media::OCI_MANIFEST, media::OCI_CONFIG)
    } else {
        (media::DOCKER_MANIFEST, media::DOCKER_CONFIG)
    };
    let config = store.put_blob(&to_canonical_json(&config_file(image)))?;
    let layers = image
        .layers
        .iter()
        .map(|l| {
            descriptor(
                &media::layer_in_family(&l.media_type, opts.oci_mediatypes),
                &l.blob.digest,
                l.blob.size,
            )
        })
        .collect::<Result<_, _>>()?;
    let manifest = image_manifest(
        manifest_type,
        descriptor(config_type, &config.digest, config.size)?,
        layers,
        &image.annotations,
    );
    let blob = store.put_blob(&to_canonical_json(&manifest))?;
    Ok(descriptor(manifest_type, &blob.digest, blob.size)?)
}
