//! `FROM image`: a registry image's layers, pulled lazily.

use futures::future::{BoxFuture, FutureExt};
use rbuild_frontend::graph::ImageSource;

use super::{ContentKey, SolveOp};
use crate::error::StepFailure;
use crate::schedule::{NodeResult, Solver};

/// A base image; its result is its layers, unpacked only when read.
pub(crate) struct Image<'a>(pub(crate) &'a ImageSource);

impl SolveOp for Image<'_> {
    fn execute<'a>(
        &'a self,
        solver: &'a Solver,
        i: usize,
        _: &'a [NodeResult],
        _: ContentKey,
    ) -> BoxFuture<'a, Result<NodeResult, StepFailure>> {
        async move {
            let platform = solver.node_platform(i);
            let image = solver.images.resolve(&self.0.reference, &platform).await;
            let image = image.map_err(|e| e.to_string())?;
            Ok(NodeResult {
                state: image.layers.clone(),
                added: false,
                created: 0,
            })
        }
        .boxed()
    }
}
