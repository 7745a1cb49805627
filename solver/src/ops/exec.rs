//! RUN: a process in a sandbox over its base, with its `--mount`s.

use std::time::SystemTime;

use futures::future::{BoxFuture, FutureExt};
use rbuild_frontend::graph::{ExecOp, NetworkMode, Op};

use super::step::Step;
use super::{ContentKey, SolveOp, context_ignore};
use crate::bind::BindSource;
use crate::error::StepFailure;
use crate::exec;
use crate::schedule::{NodeResult, Solver};

/// A RUN step.
pub(crate) struct Exec<'a>(pub(crate) &'a ExecOp);

impl SolveOp for Exec<'_> {
    fn cacheable(&self) -> bool {
        true
    }

    /// A RUN with a network starts it while its inputs are made.
    fn will_run(&self) {
        if self.0.network == NetworkMode::Default {
            rbuild_executor::prepare_network();
        }
    }

    fn execute<'a>(
        &'a self,
        solver: &'a Solver,
        i: usize,
        inputs: &'a [NodeResult],
        content_key: ContentKey,
    ) -> BoxFuture<'a, Result<NodeResult, StepFailure>> {
        async move {
            let step = Step::begin(solver, i, &inputs[0], false).await?;
            let mounts = mount_inputs(solver, i, inputs).await?;
            let _running = solver.runs.start(i).await;
            if solver.stopping() {
                return Err(String::from("not run: the build is stopping").into());
            }
            let op = self.0.clone();
            let lowers = step.lowers().to_vec();
            let dirs = (step.upper().to_path_buf(), step.work().to_path_buf());
            let progress = solver.progress.clone();
            let limits = solver.opts.limits;
            let started = SystemTime::now();
            let ran = tokio::task::spawn_blocking(move || {
                let ran = exec::run(&op, lowers, dirs, &mounts, limits, &mut |line| {
                    progress.log(i, line)
                });
                progress.process(i, started, SystemTime::now());
                ran
            });
            ran.await.map_err(|e| e.to_string())??;
            step.commit(&inputs[0], content_key)
        }
        .boxed()
    }
}

/// What the `RUN --mount`s of exec `i` need: secrets, the store (cache
/// dirs, room for bind copies), and the states and keys of its inputs.
async fn mount_inputs(
    solver: &Solver,
    i: usize,
    results: &[NodeResult],
) -> Result<exec::MountInputs, StepFailure> {
    let graph_inputs = &solver.graph.nodes[i].inputs;
    let mut out = exec::MountInputs {
        secrets: solver.opts.secrets.clone(),
        ssh: solver.opts.ssh.clone(),
        ..Default::default()
    };
    for (pos, input) in graph_inputs.iter().enumerate().skip(1) {
        let source = match &solver.graph.nodes[input.0].op {
            Op::Context(_) => BindSource::Context {
                dir: solver.opts.context_dir.clone(),
                ignore: context_ignore(&solver.graph)?,
                modes: solver.opts.context_modes,
            },
            _ => {
                let snaps = solver.materialize(&results[pos].state).await?;
                BindSource::Layers(solver.snapshot_paths(&snaps))
            }
        };
        out.binds.resize(pos + 1, None);
        out.binds[pos] = Some(source);
    }
    out.store = Some(solver.store().clone());
    out.keys = graph_inputs
        .iter()
        .map(|n| solver.keys[n.0].to_string())
        .collect();
    Ok(out)
}
