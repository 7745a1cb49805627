//! Solver errors: each names the step that failed.

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

fn location_suffix(location: &Option<Location>) -> String {
    match location {
        Some(l) => format!(" (line {})", l.line),
        None => String::new(),
    }
}
