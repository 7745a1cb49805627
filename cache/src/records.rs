//! The key index: cache key → result, and snapshot → layer blob. One small
//! JSON file per entry under `records/` and `layers/`, each written
//! atomically, so concurrent builds and killed processes never see half an
//! entry and lookups cost one file read.

use serde::{Deserialize, Serialize};

use crate::blobs::BlobInfo;

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
    /// The `SOURCE_DATE_EPOCH` the blob's file times were clamped to, for
    /// a layer exported from a built snapshot (part of its identity: the
    /// same snapshot makes another blob under another epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<i64>,
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

/// Checks that a cache key is usable as a file name (hex, as the solver makes them).
pub(crate) fn check_key(key: &str) -> Result<(), crate::StoreError> {
    if !key.is_empty()
        && key.len() <= 128
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        Ok(())
    } else {
        Err(crate::StoreError::Invalid {
            what: format!("cache key {key:?}"),
            message: String::from("must be letters, digits or '-'"),
        })
    }
}
