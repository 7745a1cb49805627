//! Executes the op graph that the frontend lowers a Dockerfile into. Every
//! vertex gets a content-based cache key up front (its op definition plus
//! its inputs' keys; for context files, the checksum of exactly the files a
//! COPY selects), then the target is realized on demand: a vertex whose key
//! has a result in the store is not run (nor are its inputs), identical
//! vertices run once, and independent vertices run at once.

mod archive;
mod as_is;
mod bind;
mod cachemount;
mod context;
mod dag;
mod error;
mod exec;
mod fileop;
mod image;
mod imported;
mod keyenc;
mod keys;
mod layered;
mod modes;
mod ops;
mod owner;
mod progress;
mod remote;
mod run_gate;
mod schedule;
mod share;
mod source_state;
mod ssh;
mod staging;
mod state;
mod walk;
mod why;

pub use error::{FailedBlob, SolveError};

/// The cache-key checksum of a whole directory, as a `COPY . /dest` of it
/// keys it (content, types and modes of every entry; `hashes` is the
/// stat fast path). For benchmarks and diagnostics.
pub fn checksum_dir(
    dir: &std::path::Path,
    hashes: Option<&rbuild_cache::FileHashCache>,
) -> Result<String, String> {
    let view = layered::HostTree::new(dir);
    context::checksum(
        &view,
        &[],
        &context::nothing_excluded,
        hashes,
        ContextModes::OnDisk,
    )
}
/// The cache key of every node of `graph` for `platform`, in graph order,
/// with every context selection keyed as `context_sum`: what computing
/// keys costs without a context to read. For benchmarks and diagnostics.
pub fn graph_keys(
    graph: &rbuild_frontend::graph::BuildGraph,
    platform: &str,
    context_sum: &str,
) -> Vec<rbuild_cache::CacheKey> {
    let remotes = std::collections::HashMap::new();
    let sum = |_: &[&rbuild_frontend::graph::CopyAction]| Ok::<_, ()>(context_sum.to_string());
    match keys::compute(graph, platform, &remotes, sum) {
        Ok(keys) => keys.keys,
        Err((_, ())) => unreachable!("the context sum never fails"),
    }
}
pub use image::{ImageResolver, LAYOUT_PREFIX, PulledImage};
pub use imported::{ImportedCache, ImportedResult, ImportedStep};
pub use modes::ContextModes;
pub use progress::{Progress, StagedWork, VertexStatus};
pub use rbuild_explain::Cause;
pub use schedule::{LayerMade, SolveOptions, SolveResult, Solver, StagedLayers, Target};
pub use state::Layer;
