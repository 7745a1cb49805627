//! The OCI distribution client: reference parsing and normalization, manifest
//! and blob pull with platform selection and digest verification, push with
//! existence checks, auth from `~/.docker/config.json` (basic and bearer).

use std::io::Write;
use std::path::Path;

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
        /// Registry host.
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

/// A normalized image reference (`docker.io/library/busybox:latest`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host[:port], e.g. `docker.io`, `127.0.0.1:5000`.
    pub registry: String,
    /// Repository path, e.g. `library/busybox`.
    pub repository: String,
    /// Tag, if any (defaults to `latest` when there is no digest).
    pub tag: Option<String>,
    /// Digest, if any.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses and normalizes with Docker's rules.
    pub fn parse(s: &str) -> Result<Self, RegistryError> {
        todo!("registry: parse {s}")
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
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

/// Client options.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Hosts allowed over plain HTTP besides loopback.
    pub insecure_registries: Vec<String>,
}

/// The registry client. Cheap to clone; tokens are shared.
#[derive(Debug, Clone)]
pub struct Client {
    options: ClientOptions,
}

impl Client {
    /// A client with credentials from `~/.docker/config.json`.
    pub fn new(options: ClientOptions) -> Result<Self, RegistryError> {
        Ok(Self { options })
    }

    /// Fetches the manifest for `reference`, selecting `platform` from an index.
    pub async fn pull_manifest(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<PulledManifest, RegistryError> {
        todo!("registry: manifest {reference} {platform:?} {:?}", self.options)
    }

    /// Streams a blob into `sink`, verifying its digest; returns its size.
    pub async fn pull_blob(
        &self,
        reference: &Reference,
        digest: &str,
        sink: &mut (dyn Write + Send),
    ) -> Result<u64, RegistryError> {
        let _ = sink;
        todo!("registry: blob {reference} {digest}")
    }

    /// Uploads the file at `path` as blob `digest`, unless the registry has it.
    pub async fn push_blob(
        &self,
        reference: &Reference,
        digest: &str,
        path: &Path,
    ) -> Result<(), RegistryError> {
        todo!("registry: push {reference} {digest} {}", path.display())
    }

    /// Uploads a manifest under the reference's tag (or digest).
    pub async fn push_manifest(
        &self,
        reference: &Reference,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<String, RegistryError> {
        todo!("registry: manifest {reference} {media_type} {}", bytes.len())
    }
}
