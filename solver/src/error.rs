//! Solver errors: each names the step that failed, and a layer blob that
//! could not be had is named by type, so that a caller can tell it from
//! any other failure (a cache whose blobs are gone is dropped, not fatal).

use rbuild_frontend::graph::Location;

/// A failed solve.
#[derive(Debug, thiserror::Error)]
pub enum SolveError {
    /// A step failed; `step` is its progress name.
    #[error("{step}{}: {message}", location_suffix(.location))]
    Step {
        /// The step's progress name, e.g. `[2/3] RUN make`.
        step: String,
        /// Where the instruction is.
        location: Option<Location>,
        /// What went wrong.
        message: String,
        /// The layer blob it could not get, when that is why it failed.
        blob: Option<Box<FailedBlob>>,
    },
    /// A layer blob could not be had from where it was recorded.
    #[error("layer {} from {}: {cause}", .blob.digest, .blob.source)]
    Blob {
        /// The blob.
        blob: FailedBlob,
        /// Why: gone, unreachable, or not the bytes its digest names.
        cause: Box<SolveError>,
    },
    /// The store failed outside any step.
    #[error(transparent)]
    Store(#[from] rbuild_cache::StoreError),
    /// The registry failed outside any step.
    #[error(transparent)]
    Registry(#[from] rbuild_registry::RegistryError),
    /// Anything else, with context.
    #[error("{0}")]
    Other(String),
    /// The build was cancelled because another step failed.
    #[error("cancelled")]
    Cancelled,
}

impl SolveError {
    /// The layer blob whose failure this is, if it is one (of a step, or
    /// outside any).
    pub fn failed_blob(&self) -> Option<&FailedBlob> {
        match self {
            SolveError::Step { blob, .. } => blob.as_deref(),
            SolveError::Blob { blob, .. } => Some(blob),
            _ => None,
        }
    }
}

/// A layer blob that could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedBlob {
    /// Its digest (`sha256:…`).
    pub digest: String,
    /// Where it was to come from: the reference of an image or cache, or
    /// a layout directory (`LAYOUT_PREFIX` and its path).
    pub source: String,
}

/// Why a step failed, as the ops and the scheduler pass it on: what to
/// say, and the layer blob it could not get when that is why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFailure {
    /// What went wrong.
    pub message: String,
    /// The layer blob it could not get, if that is the cause.
    pub blob: Option<FailedBlob>,
}

impl From<String> for StepFailure {
    fn from(message: String) -> Self {
        StepFailure {
            message,
            blob: None,
        }
    }
}

impl From<SolveError> for StepFailure {
    fn from(error: SolveError) -> Self {
        StepFailure {
            blob: error.failed_blob().cloned(),
            message: error.to_string(),
        }
    }
}

fn location_suffix(location: &Option<Location>) -> String {
    match location {
        Some(l) => format!(" (line {})", l.line),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_failure_keeps_its_blob_through_a_step_failure() {
        let blob = FailedBlob {
            digest: format!("sha256:{}", "a".repeat(64)),
            source: String::from("registry.example/cache:main"),
        };
        let fetch = SolveError::Blob {
            blob: blob.clone(),
            cause: Box::new(SolveError::Other(String::from("404 Not Found"))),
        };
        let failure = StepFailure::from(fetch);
        assert_eq!(failure.blob.as_ref(), Some(&blob));
        assert!(failure.message.contains("404 Not Found"), "{failure:?}");
        let plain = StepFailure::from(SolveError::Other(String::from("exit code 1")));
        assert_eq!(plain.blob, None);
        assert_eq!(StepFailure::from(String::from("x")).blob, None);
    }
}
