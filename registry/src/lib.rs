//! The OCI distribution client (references are the image model's), manifest
//! and blob pull with platform selection and digest verification, push with
//! existence checks and cross-repository mounts, auth from
//! `~/.docker/config.json` (entries and credential helpers; Basic and
//! Bearer tokens, renewed when the registry stops taking them), retries
//! with backoff, an idle timeout on every transfer, resumed blob downloads
//! and recovered chunked uploads. Written directly on reqwest: the
//! protocol is small, and rbuild needs streamed, verified blob transfers.

pub mod answers;
pub mod auth;
mod client;
pub mod helper;
pub mod join;
#[cfg(feature = "testing")]
pub mod testing;
mod tls;

pub use auth::Credentials;
pub use client::{Client, ClientOptions, MAX_ERROR_BYTES, MAX_MANIFEST_BYTES, MAX_TOKEN_BYTES};
pub use rbuild_image::{Reference, ReferenceError};

/// Errors of the registry client.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The reference does not parse.
    #[error(transparent)]
    InvalidReference(#[from] ReferenceError),
    /// The registry answered with an error.
    #[error("{registry}: {status}: {message}")]
    Status {
        /// Registry host (and what was asked of it).
        registry: String,
        /// HTTP status.
        status: u16,
        /// Registry's message.
        message: String,
    },
    /// A connection made no progress (no byte sent or received) for the
    /// client's idle timeout ([`ClientOptions::idle_timeout`]), every time
    /// it was tried.
    #[error("{what}: timed out: no data moved for {} s (stalled connection)", after.as_secs_f32())]
    Timeout {
        /// What was asked of which registry.
        what: String,
        /// The idle timeout that ran out.
        after: std::time::Duration,
    },
    /// Anything else (transport, decoding, digest mismatch).
    #[error("{0}")]
    Other(String),
}

pub use rbuild_image::Platform;

/// A single-platform image manifest as pulled.
#[derive(Debug, Clone)]
pub struct PulledManifest {
    /// Digest of `bytes` (the platform manifest, not the index).
    pub digest: String,
    /// Media type of `bytes`.
    pub media_type: String,
    /// The manifest exactly as served.
    pub bytes: Vec<u8>,
    /// The parsed manifest.
    pub manifest: oci_spec::image::ImageManifest,
}
