//! Errors of the store.

use std::path::{Path, PathBuf};

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
    /// Stored data (or a layer being unpacked) is malformed or unsafe.
    #[error("{what}: {message}")]
    Invalid {
        /// The object.
        what: String,
        /// What is wrong with it.
        message: String,
    },
}

/// Attaches the operation and path to an I/O error.
pub(crate) fn io_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { op, path, source }
}
