//! An image in the store, read through the image model: its manifest, its
//! config and its layers with their diff_ids. Every export (push, archives,
//! filesystems) and the commands that show images start here.

use rbuild_cache::{BlobInfo, LayerRecord, Store};
use rbuild_image::manifest::{self, parse_config, parse_manifest};
use rbuild_image::{ConfigFile, ImageManifest};

use crate::ExportError;

/// A stored image, read.
#[derive(Debug, Clone)]
pub struct StoredImage {
    /// Its manifest's digest.
    pub digest: String,
    /// The manifest.
    pub manifest: ImageManifest,
    /// The config's digest: the image id.
    pub config_digest: String,
    /// The config.
    pub config: ConfigFile,
    /// The layers, bottom first, as the store records them.
    pub layers: Vec<LayerRecord>,
}

impl StoredImage {
    /// Reads the image whose manifest blob is `digest`.
    pub fn read(store: &Store, digest: &str) -> Result<Self, ExportError> {
        let manifest = parse_manifest(&store.read_blob(digest)?, &format!("manifest {digest}"))?;
        let config_digest = manifest.config().digest().to_string();
        let config = parse_config(
            &store.read_blob(&config_digest)?,
            &format!("config {config_digest}"),
        )?;
        let layers = manifest::layers(&manifest, &config)?
            .into_iter()
            .map(|l| LayerRecord {
                snapshot: String::new(),
                diff_id: l.diff_id,
                blob: BlobInfo {
                    digest: l.descriptor.digest().to_string(),
                    size: l.descriptor.size(),
                },
                media_type: l.descriptor.media_type().to_string(),
                epoch: None,
            })
            .collect();
        Ok(Self {
            digest: digest.to_string(),
            manifest,
            config_digest,
            config,
            layers,
        })
    }
}
