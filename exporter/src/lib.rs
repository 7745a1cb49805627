//! Turns snapshots into images: each layer's diff (an overlay upper dir,
//! whiteouts converted to `.wh.` entries) becomes a deterministic tar,
//! compressed and named by sha256; then the image config and manifest. Writes
//! the result to the local store, OCI and docker archives, plain directories,
//! and registries.

use rbuild_cache::{LayerRecord, Store};

/// Errors of the exporter.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] rbuild_cache::StoreError),
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] rbuild_registry::RegistryError),
    /// Anything else, with context.
    #[error("{0}")]
    Other(String),
}

/// Layer compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// No compression (`application/vnd.oci.image.layer.v1.tar`).
    Uncompressed,
    /// gzip at a level 0–9.
    Gzip(u32),
    /// zstd at a level 1–22.
    Zstd(i32),
}

/// Options shared by layer and image export.
#[derive(Debug, Clone, Copy)]
pub struct ExportOptions {
    /// Layer compression.
    pub compression: Compression,
    /// `SOURCE_DATE_EPOCH`: mtimes newer are clamped to it; `created` uses it.
    pub source_date_epoch: Option<i64>,
    /// OCI media types (true) or Docker schema 2 (false).
    pub oci_mediatypes: bool,
}

/// Makes (or finds, when already made with the same options) the layer blob
/// of a snapshot: a deterministic tar of the snapshot directory with overlay
/// whiteouts written as `.wh.` entries. Records it in the store.
pub fn export_layer(store: &Store, snapshot: &str, opts: &ExportOptions) -> Result<LayerRecord, ExportError> {
    todo!("exporter: layer {} {snapshot} {opts:?}", store.root().display())
}

/// An image to write: layers bottom first, the `config` object, history.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// Layers, bottom first.
    pub layers: Vec<LayerRecord>,
    /// The config's `config` object (Docker field names).
    pub config: serde_json::Value,
    /// History entries (serialized `History` objects), in order.
    pub history: Vec<serde_json::Value>,
    /// `os`.
    pub os: String,
    /// `architecture`.
    pub architecture: String,
    /// `variant`.
    pub variant: Option<String>,
}

/// Writes the config and manifest blobs; returns the manifest descriptor.
pub fn write_image(
    store: &Store,
    image: &ImageSpec,
    opts: &ExportOptions,
) -> Result<oci_spec::image::Descriptor, ExportError> {
    todo!("exporter: image {} {image:?} {opts:?}", store.root().display())
}
