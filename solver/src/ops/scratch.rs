//! Sources of no layers: `FROM scratch`, and the build context (whose
//! users read the context dir in place, see context.rs).

use futures::future::{BoxFuture, FutureExt};

use super::{ContentKey, SolveOp};
use crate::error::StepFailure;
use crate::schedule::{NodeResult, Solver};

/// An empty filesystem; nothing to do, nothing to show.
pub(crate) struct Empty;

impl SolveOp for Empty {
    fn shown(&self) -> bool {
        false
    }

    fn execute<'a>(
        &'a self,
        _: &'a Solver,
        _: usize,
        _: &'a [NodeResult],
        _: ContentKey,
    ) -> BoxFuture<'a, Result<NodeResult, StepFailure>> {
        async { Ok(NodeResult::empty()) }.boxed()
    }
}
