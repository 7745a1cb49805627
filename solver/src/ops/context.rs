//! The build context: read in place by the copies and binds that use it
//! (with its `.dockerignore`), so its own result is no layer.

use futures::future::{BoxFuture, FutureExt};
use rbuild_frontend::IgnoreMatcher;
use rbuild_frontend::graph::{BuildGraph, Op};

use super::{ContentKey, SolveOp};
use crate::schedule::{NodeResult, Solver};

/// The context source; its users read the context dir themselves.
pub(crate) struct Context;

impl SolveOp for Context {
    fn shown(&self) -> bool {
        false
    }

    fn execute<'a>(
        &'a self,
        _: &'a Solver,
        _: usize,
        _: &'a [NodeResult],
        _: ContentKey,
    ) -> BoxFuture<'a, Result<NodeResult, String>> {
        async { Ok(NodeResult::empty()) }.boxed()
    }
}

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
