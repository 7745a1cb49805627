//! The progress events a solve emits, one stream per vertex.

use std::time::Duration;

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

/// Receives progress of a solve. Vertices are numbered by the caller's
/// sense of order: `index` is the graph node index.
pub trait Progress: Send + Sync {
    /// A vertex started work.
    fn started(&self, index: usize, name: &str);
    /// A step started work because the cache had no result for it, for
    /// `cause` (by default reported as [`Progress::started`]).
    fn started_after_miss(&self, index: usize, name: &str, cause: &Cause) {
        let _ = cause;
        self.started(index, name);
    }
    /// A vertex wrote a line of output (RUN stdout/stderr).
    fn log(&self, index: usize, line: &[u8]);
    /// A vertex ended.
    fn finished(&self, index: usize, name: &str, status: VertexStatus);
}
