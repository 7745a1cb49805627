//! Errors of a build and of the image commands the library serves.

use std::path::PathBuf;

/// Why a build (or opening what it needs) failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The store could not be opened.
    #[error("open store {}: {source}", root.display())]
    OpenStore {
        /// Its directory.
        root: PathBuf,
        /// Why.
        #[source]
        source: rbuild_cache::StoreError,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] rbuild_cache::StoreError),
    /// The registry client failed.
    #[error(transparent)]
    Registry(#[from] rbuild_registry::RegistryError),
    /// The Dockerfile or a `.dockerignore` could not be read.
    #[error(transparent)]
    Input(#[from] rbuild_frontend::input::InputError),
    /// The Dockerfile is not there.
    #[error("Dockerfile {} not found", .0.display())]
    NoDockerfile(PathBuf),
    /// The Dockerfile (or `.dockerignore`) is wrong; the error names the
    /// file, line and column.
    #[error(transparent)]
    Frontend(#[from] rbuild_frontend::FrontendError),
    /// A step needs an entitlement the request does not grant.
    #[error(
        "{at}{step}: {what} needs the {} entitlement: pass --allow {}",
        entitlement.name(),
        entitlement.name()
    )]
    Entitlement {
        /// `Dockerfile:line:column: `, or empty.
        at: String,
        /// The step's name.
        step: String,
        /// What needs it (`RUN --network=host`).
        what: &'static str,
        /// The entitlement.
        entitlement: crate::Entitlement,
    },
    /// `SOURCE_DATE_EPOCH` is out of range.
    #[error(transparent)]
    Epoch(#[from] crate::epoch::EpochError),
    /// A step failed.
    #[error(transparent)]
    Solve(#[from] rbuild_solver::SolveError),
    /// Writing the image or an output failed.
    #[error(transparent)]
    Export(#[from] rbuild_exporter::ExportError),
    /// Pushing to one of the image's names failed.
    #[error("push {name}: {source}")]
    Push {
        /// The name pushed to.
        name: String,
        /// Why.
        #[source]
        source: rbuild_exporter::ExportError,
    },
    /// A name to push to is not a reference.
    #[error(transparent)]
    Reference(#[from] rbuild_image::ReferenceError),
    /// A push was asked for an image without a name.
    #[error("--push needs a name: give -t or name=")]
    PushWithoutName,
    /// RUN steps for a platform this machine cannot run.
    #[error(transparent)]
    Emulation(#[from] rbuild_executor::BinfmtError),
    /// An `--annotation` that cannot be placed.
    #[error("--annotation {0}")]
    Annotation(String),
    /// An output that cannot hold a multi-platform image.
    #[error("a multi-platform build cannot be exported as {0}")]
    MultiPlatform(&'static str),
    /// A file could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, with the path.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `--no-cache-filter` names a stage the build has no step of.
    #[error("--no-cache-filter {0}: no stage of that name has a step in this build")]
    NoSuchStage(String),
    /// `rbuild run --pull=never` names an image the store lacks.
    #[error("image {0} is not in the store and --pull=never forbids pulling it")]
    NotPulled(String),
    /// Writing a `--cache-to` cache failed (and `ignore-error` is not set).
    #[error("export cache: {0}")]
    CacheExport(#[source] rbuild_remote_cache::CacheError),
    /// The build was cancelled ([`crate::CancelToken`]).
    #[error("the build was cancelled")]
    Cancelled,
}

impl BuildError {
    /// Where in the Dockerfile the step that failed is, when a step
    /// failed (for an excerpt of the Dockerfile under the error).
    pub fn step_location(&self) -> Option<&rbuild_frontend::graph::Location> {
        match self {
            BuildError::Solve(rbuild_solver::SolveError::Step { location, .. }) => {
                location.as_ref()
            }
            _ => None,
        }
    }
}

/// Maps an I/O error to [`BuildError::Io`] saying what was done.
pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BuildError {
    let what = what.into();
    move |source| BuildError::Io { what, source }
}
