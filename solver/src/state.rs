//! The result of a vertex: a root filesystem as a stack of layers.

use rbuild_cache::BlobInfo;

/// One layer of a filesystem state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layer {
    /// An unpacked layer: a snapshot directory in the store.
    Snapshot(String),
    /// An image layer that is not unpacked (maybe not even pulled) yet: base
    /// images are pulled lazily, only when something needs their files.
    Blob {
        /// Where to pull it from when the store lacks it.
        reference: String,
        /// The compressed blob.
        blob: BlobInfo,
        /// The blob's media type.
        media_type: String,
        /// The uncompressed digest.
        diff_id: String,
    },
}

/// A filesystem state: layers bottom first.
pub type State = Vec<Layer>;
