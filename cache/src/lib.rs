//! The embedded store every other part stands on, in one directory that is
//! itself an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`),
//! plus unpacked layer snapshots (overlay lower dirs), a key index (cache key
//! → result), the content-hash cache of context files, and cache mounts.
//!
//! Every write goes to a temp name on the same filesystem, then is renamed
//! into place, so a killed process never leaves a partial object reachable.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O operation on a path failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A blob's content does not match the expected digest.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What the caller said the content hashes to.
        expected: String,
        /// What it hashes to.
        actual: String,
    },
    /// A referenced object is not in the store.
    #[error("not found: {0}")]
    NotFound(String),
}

/// A blob as stored: its sha256 digest and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobInfo {
    /// `sha256:<hex>`.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
}

/// A layer known to the store: its snapshot and, once exported or pulled,
/// its blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// The snapshot holding the unpacked layer.
    pub snapshot: String,
    /// `sha256:` of the uncompressed tar (the config's diff_id).
    pub diff_id: String,
    /// The blob (possibly compressed).
    pub blob: BlobInfo,
    /// The blob's media type.
    pub media_type: String,
}

/// What a cache key resolves to: the layers of a filesystem state, bottom
/// first, each a snapshot id (plus its layer record if it has a blob).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheRecord {
    /// Snapshot ids, bottom layer first.
    pub snapshots: Vec<String>,
    /// Free-form data the solver keeps with the result (e.g. an image's
    /// manifest and config for a base image).
    pub meta: serde_json::Value,
}

/// The store.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        todo!("cache: open {}", root.display())
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Path of a blob by digest (whether or not it exists).
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        todo!("cache: blob path {digest}")
    }

    /// Whether the blob is in the store.
    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).exists()
    }

    /// Starts a streamed blob write.
    pub fn blob_writer(&self) -> Result<BlobWriter, StoreError> {
        todo!()
    }

    /// Writes a whole blob from memory.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<BlobInfo, StoreError> {
        let mut w = self.blob_writer()?;
        w.write_all(bytes).map_err(|source| StoreError::Io {
            op: "write blob",
            path: self.root.clone(),
            source,
        })?;
        w.commit(None)
    }

    /// Reads a whole blob.
    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>, StoreError> {
        todo!("cache: read {digest}")
    }

    /// Points `name` (e.g. `hello:latest`) at a manifest in `index.json`.
    pub fn tag(&self, name: &str, manifest: &oci_spec::image::Descriptor) -> Result<(), StoreError> {
        todo!("cache: tag {name} {manifest:?}")
    }

    /// The manifest descriptor a name points at.
    pub fn resolve_tag(&self, name: &str) -> Result<Option<oci_spec::image::Descriptor>, StoreError> {
        todo!("cache: resolve {name}")
    }

    /// All tagged images: (name, manifest descriptor), sorted by name.
    pub fn images(&self) -> Result<Vec<(String, oci_spec::image::Descriptor)>, StoreError> {
        todo!()
    }

    /// Path of a snapshot's directory (whether or not it exists).
    pub fn snapshot_path(&self, id: &str) -> PathBuf {
        todo!("cache: snapshot {id}")
    }

    /// Whether the snapshot exists (fully written).
    pub fn has_snapshot(&self, id: &str) -> bool {
        self.snapshot_path(id).exists()
    }

    /// Starts a new snapshot: an empty dir to fill (an overlay upper dir, or
    /// the target of a copy), with an overlay work dir beside it.
    pub fn new_snapshot(&self) -> Result<PendingSnapshot, StoreError> {
        todo!()
    }

    /// Unpacks a layer blob (gzip, zstd or plain tar) into a snapshot with
    /// OCI whiteouts converted to overlay whiteouts; returns the layer
    /// record. Idempotent: an unpacked layer is not unpacked again.
    pub fn unpack_layer(&self, blob: &BlobInfo, media_type: &str) -> Result<LayerRecord, StoreError> {
        todo!("cache: unpack {blob:?} {media_type}")
    }

    /// Records a layer (snapshot ↔ blob).
    pub fn put_layer(&self, layer: &LayerRecord) -> Result<(), StoreError> {
        todo!("cache: layer {layer:?}")
    }

    /// The layer record of a snapshot, if it has a blob.
    pub fn layer_of_snapshot(&self, snapshot: &str) -> Result<Option<LayerRecord>, StoreError> {
        todo!("cache: layer of {snapshot}")
    }

    /// Looks up a cache key.
    pub fn get_record(&self, key: &str) -> Result<Option<CacheRecord>, StoreError> {
        todo!("cache: get {key}")
    }

    /// Stores a cache key's result. Every snapshot it names must exist.
    pub fn put_record(&self, key: &str, record: &CacheRecord) -> Result<(), StoreError> {
        todo!("cache: put {key} {record:?}")
    }
}

/// A blob being written: hashes as it goes; invisible until committed.
#[derive(Debug)]
pub struct BlobWriter {
    _private: (),
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        todo!("{}", buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl BlobWriter {
    /// Verifies the digest (when given), syncs, and renames into place.
    pub fn commit(self, expected: Option<&str>) -> Result<BlobInfo, StoreError> {
        todo!("{expected:?}")
    }
}

/// A snapshot being created; removed on drop unless committed.
#[derive(Debug)]
pub struct PendingSnapshot {
    _private: (),
}

impl PendingSnapshot {
    /// The directory to fill (overlay upper dir).
    pub fn dir(&self) -> &Path {
        todo!()
    }

    /// An empty overlay work dir on the same filesystem.
    pub fn work_dir(&self) -> &Path {
        todo!()
    }

    /// Makes the snapshot visible under `id` (atomic rename). If `id`
    /// already exists, the pending one is discarded and `Ok` returned.
    pub fn commit(self, id: &str) -> Result<(), StoreError> {
        todo!("{id}")
    }
}
