//! `FROM scratch`: the empty filesystem.

use futures::future::{BoxFuture, FutureExt};

use super::{ContentKey, SolveOp};
use crate::schedule::{NodeResult, Solver};

/// The empty filesystem; nothing to do, nothing to show.
pub(crate) struct Scratch;

impl SolveOp for Scratch {
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
