//! The image model every part of rbuild shares, below them all: image
//! references with Docker's normalization and the store's name form
//! ([`reference`]), typed manifests and indexes (oci-spec's types) and
//! image configs with Docker's extensions ([`config`]), read from bytes
//! ([`manifest`]) and written as canonical JSON ([`json`]) so that the same
//! image always has the same digests, and platforms normalised as
//! containerd does ([`platform`]).

pub mod config;
pub mod json;
pub mod manifest;
pub mod media;
pub mod platform;
pub mod reference;

pub use config::{ConfigFile, EmptyObject, Healthcheck, History, ImageConfig, RootFs};
pub use manifest::{Descriptor, Digest, ImageIndex, ImageManifest, MediaType};
pub use platform::{Platform, PlatformError};
pub use reference::{Reference, ReferenceError};

/// Errors of reading an image's documents.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A manifest, index or config is not the JSON its kind needs.
    #[error("{what}: {source}")]
    Malformed {
        /// What was read (`manifest sha256:…`).
        what: String,
        /// Why it does not parse.
        #[source]
        source: serde_json::Error,
    },
    /// A manifest lists another number of layers than its config.
    #[error(
        "config and manifest disagree on the number of layers ({layers} layers, {diff_ids} diff_ids)"
    )]
    LayerCount {
        /// Layers in the manifest.
        layers: usize,
        /// `rootfs.diff_ids` in the config.
        diff_ids: usize,
    },
    /// A digest is not `algorithm:hex`.
    #[error("invalid digest {digest:?}: {reason}")]
    Digest {
        /// The text given.
        digest: String,
        /// Why it is invalid.
        reason: String,
    },
}
