//! Errors of cache export and import.

use std::path::PathBuf;

/// A failed cache export or import.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A `--cache-to` / `--cache-from` value that cannot be used.
    #[error("cache option {text:?}: {message}")]
    Spec {
        /// The value as given.
        text: String,
        /// What is wrong with it.
        message: String,
    },
    /// There is no cache where the source points.
    #[error("{what}: no cache there")]
    Missing {
        /// The source.
        what: String,
    },
    /// The source holds something other than an rbuild cache.
    #[error("{what}: not an rbuild cache (config media type {media_type:?})")]
    Foreign {
        /// The source.
        what: String,
        /// The config media type found.
        media_type: String,
    },
    /// The cache is damaged or of an unknown version.
    #[error("{what}: malformed cache: {message}")]
    Malformed {
        /// The source.
        what: String,
        /// What is wrong.
        message: String,
    },
    /// A file of a layout directory could not be read or written.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] rbuild_registry::RegistryError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] rbuild_cache::StoreError),
    /// Making a layer blob failed.
    #[error(transparent)]
    Export(#[from] rbuild_exporter::ExportError),
    /// Fetching a layer an exported key names failed.
    #[error(transparent)]
    Solve(#[from] rbuild_solver::SolveError),
}

/// An [`CacheError::Io`] maker for `map_err`.
pub(crate) fn io_err(
    op: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> CacheError {
    let path = path.to_path_buf();
    move |source| CacheError::Io { op, path, source }
}
