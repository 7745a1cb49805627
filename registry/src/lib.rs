//! The OCI distribution client: reference parsing and normalization, manifest
//! and blob pull with platform selection and digest verification, push with
//! existence checks and cross-repository mounts, auth from
//! `~/.docker/config.json` (entries and credential helpers; Basic and
//! Bearer tokens), retries with backoff. Written directly on reqwest: the
//! protocol is small, and rbuild needs streamed, verified blob transfers.

pub mod auth;
mod client;
mod reference;
#[cfg(feature = "testing")]
pub mod testing;

pub use auth::Credentials;
pub use client::{Client, ClientOptions};
pub use reference::Reference;

/// Errors of the registry client.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The reference does not parse.
    #[error("invalid reference {reference:?}: {reason}")]
    InvalidReference {
        /// The text given.
        reference: String,
        /// Why it is invalid.
        reason: String,
    },
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
    /// Anything else (transport, decoding, digest mismatch).
    #[error("{0}")]
    Other(String),
}

/// A platform, e.g. `linux/amd64`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`, …
    pub architecture: String,
    /// `v8`, …
    pub variant: Option<String>,
}

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
