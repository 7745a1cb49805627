//! One module per op kind, each behind [`SolveOp`]: what the scheduler
//! (schedule.rs) asks of a vertex's op, so that it never matches on the
//! op's kind itself. This is what BuildKit calls an `Op` (its cache map
//! and its execution); the keys themselves are computed up front for the
//! whole graph (keys.rs), since a key needs its inputs' keys.

mod context;
mod exec;
mod file;
mod image;
mod scratch;
mod step;

use futures::future::{BoxFuture, FutureExt};
use rbuild_cache::{CacheKey, KeyIngredients};
use rbuild_frontend::graph::Op;

use crate::error::StepFailure;
use crate::schedule::{NodeResult, Solver};
use crate::staging::Plan;

pub(crate) use context::context_ignore;
pub(crate) use file::{fetch_remotes, stage_context_copy};

/// A content key found once a step's inputs are made, with what it is
/// hashed from (see [`SolveOp::content_key`]).
pub(crate) type ContentKey = Option<(CacheKey, KeyIngredients)>;

/// What the scheduler asks of one vertex's op.
pub(crate) trait SolveOp: Send + Sync {
    /// Whether the vertex shows in progress (a scratch or context source
    /// does nothing worth showing).
    fn shown(&self) -> bool {
        true
    }

    /// Whether its result is recorded under its key and looked up before
    /// it runs (the steps); sources are made afresh every solve.
    fn cacheable(&self) -> bool {
        false
    }

    /// Whether it is a linked copy: its record holds its own layer only,
    /// stacked on whatever its base (input 0) is now.
    fn links_onto_base(&self) -> bool {
        false
    }

    /// Told that the cache has no result for it, so it will run once its
    /// inputs are made: work it can start early starts here.
    fn will_run(&self) {}

    /// The plan of its work that may be done before its base (input 0)
    /// is made, if any (see [`crate::staging`]).
    fn staging_plan(&self, _solver: &Solver, _i: usize) -> Option<Plan> {
        None
    }

    /// A second key its result may be recorded under that depends on its
    /// inputs' contents rather than their keys (`None` by default).
    fn content_key<'a>(
        &'a self,
        _solver: &'a Solver,
        _i: usize,
        _inputs: &'a [NodeResult],
    ) -> BoxFuture<'a, Result<ContentKey, StepFailure>> {
        async { Ok(None) }.boxed()
    }

    /// Makes vertex `i`'s result from its inputs' results (for a step:
    /// runs it and records the result under its keys, `content_key`
    /// included).
    fn execute<'a>(
        &'a self,
        solver: &'a Solver,
        i: usize,
        inputs: &'a [NodeResult],
        content_key: ContentKey,
    ) -> BoxFuture<'a, Result<NodeResult, StepFailure>>;
}

/// The [`SolveOp`] of `op`: the one place that dispatches on an op's kind.
pub(crate) fn of(op: &Op) -> Box<dyn SolveOp + '_> {
    match op {
        Op::Scratch | Op::Context(_) => Box::new(scratch::Empty),
        Op::Image(source) => Box::new(image::Image(source)),
        Op::Exec(op) => Box::new(exec::Exec(op)),
        Op::File(op) => Box::new(file::File(op)),
    }
}
