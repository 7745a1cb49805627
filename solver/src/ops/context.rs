//! The build context: read in place by the copies and binds that use it
//! (with its `.dockerignore`), so its own result is no layer (its op is
//! [`super::scratch::Empty`]).

use rbuild_frontend::IgnoreMatcher;
use rbuild_frontend::graph::{BuildGraph, Op};

/// The `.dockerignore` matcher of the graph's context source.
pub(crate) fn context_ignore(graph: &BuildGraph) -> Result<IgnoreMatcher, String> {
    let patterns = graph
        .nodes
        .iter()
        .find_map(|n| match &n.op {
            Op::Context(c) => Some(c.exclude_patterns.clone()),
            _ => None,
        })
        .unwrap_or_default();
    IgnoreMatcher::new(&patterns).map_err(|e| e.to_string())
}

/// Whether `op` is the context source.
pub(crate) fn is_context(op: &Op) -> bool {
    matches!(op, Op::Context(_))
}
