//! The progress events a solve emits, one stream per vertex.

use std::time::{Duration, SystemTime};

use rbuild_explain::Cause;

/// How a vertex ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VertexStatus {
    /// It ran.
    Done(Duration),
    /// Its result came from the cache.
    Cached,
    /// It failed.
    Error(Duration),
}

/// The work a copy staged ahead of its base does (see the solver's
/// staging), each reported as a span of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StagedWork {
    /// The content key's checksum of what the copy selects, made first.
    Checksum,
    /// The copy itself, made only when the content key found nothing.
    Copy,
    /// The layer of the copy made from it, once its base is made (see
    /// [`crate::StagedLayers`]).
    Export,
}

/// Receives progress of a solve. Vertices are numbered by the caller's
/// sense of order: `index` is the graph node index.
pub trait Progress: Send + Sync {
    /// A vertex started work; `inputs` are the shown vertices it reads
    /// (directly, or through vertices progress does not show).
    fn started(&self, index: usize, name: &str, inputs: &[usize]);
    /// A step started work because the cache had no result for it, for
    /// `cause` (by default reported as [`Progress::started`]).
    fn started_after_miss(&self, index: usize, name: &str, inputs: &[usize], cause: &Cause) {
        let _ = cause;
        self.started(index, name, inputs);
    }
    /// A RUN step's process ran from `started` (its sandbox being set
    /// up) to `ended` (its exit); by default not reported.
    fn process(&self, index: usize, started: SystemTime, ended: SystemTime) {
        let _ = (index, started, ended);
    }
    /// Part of a copy staged ahead of step `index`'s base ran from
    /// `started` to `ended`; by default not reported.
    fn staged(&self, index: usize, work: StagedWork, started: SystemTime, ended: SystemTime) {
        let _ = (index, work, started, ended);
    }
    /// A vertex wrote a line of output (RUN stdout/stderr).
    fn log(&self, index: usize, line: &[u8]);
    /// A vertex ended.
    fn finished(&self, index: usize, name: &str, status: VertexStatus);
}
