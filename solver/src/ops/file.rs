//! COPY, ADD and WORKDIR: file actions applied to a base, reading the
//! context, earlier stages and fetched remote sources.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::{BoxFuture, FutureExt};
use rbuild_cache::{CopiedWriter, Store};
use rbuild_frontend::IgnoreMatcher;
use rbuild_frontend::graph::{BuildGraph, CopyAction, FileAction, FileOp, Op};

use super::context::is_context;
use super::step::Step;
use super::{ContentKey, SolveOp, context_ignore};
use crate::context;
use crate::error::{SolveError, StepFailure};
use crate::fileop::{self, Remote, Source};
use crate::keys;
use crate::layered::{HostTree, LayerStack};
use crate::modes::ContextModes;
use crate::remote::{self, Fetched};
use crate::schedule::{NodeResult, Solver, step_error};
use crate::staging::{Plan, Staged, StagedContextCopy};
use crate::state::Layer;

/// A file step.
pub(crate) struct File<'a>(pub(crate) &'a FileOp);

impl SolveOp for File<'_> {
    fn cacheable(&self) -> bool {
        true
    }

    fn links_onto_base(&self) -> bool {
        keys::is_link_op(self.0)
    }

    /// A copy from one earlier stage, image or the build context that
    /// needs nothing of its base is made ahead of it (see
    /// [`crate::staging`]); from the context only onto a RUN, the base
    /// that takes long to make (a copy onto a quick one gains nothing,
    /// and onto the WORKDIR it copies into it would be refused).
    fn staging_plan(&self, solver: &Solver, i: usize) -> Option<Plan> {
        let inputs = &solver.graph.nodes[i].inputs;
        let source = inputs.get(1)?;
        let context = is_context(&solver.graph.nodes[source.0].op);
        let onto_run = matches!(solver.graph.nodes[inputs[0].0].op, Op::Exec(_));
        let wanted = solver.opts.stage_copies && !self.links_onto_base() && (onto_run || !context);
        wanted.then(|| Plan::of(self.0, inputs.len(), context))?
    }

    /// The content key of a copy from earlier stages (`COPY --from=stage`),
    /// as BuildKit keys such copies: from the op, its base's key (or the
    /// content key its base is known by) and the checksum of exactly the
    /// files it selects in each source stage (content, modes, owners,
    /// times), instead of the source stages' keys. A source stage that was
    /// rebuilt but left the copied files as they were then still hits the
    /// cache, the store's or an imported one. `None` for every other file
    /// step, and with `--no-cache`.
    fn content_key<'a>(
        &'a self,
        solver: &'a Solver,
        i: usize,
        inputs: &'a [NodeResult],
    ) -> BoxFuture<'a, Result<ContentKey, StepFailure>> {
        async move {
            let node = &solver.graph.nodes[i];
            let is_stage = |n: usize| super::of(&solver.graph.nodes[n].op).cacheable();
            let stage_inputs = node.inputs.iter().skip(1).filter(|n| is_stage(n.0)).count();
            let all_copies = (self.0.actions.iter())
                .all(|a| matches!(a, FileAction::Copy(c) if c.remote.is_none()));
            if solver.opts.ignores_cache(i)
                || stage_inputs == 0
                || stage_inputs + 1 != node.inputs.len()
                || !all_copies
            {
                return Ok(None);
            }
            let (ingredients, _) = solver.content_ingredients(i);
            if let Some(staged) = solver.staging.get(i).await
                && let Some(sums) = &staged.sums
            {
                return Ok(Some(keys::content_key(&ingredients, sums)));
            }
            let mut sources = Vec::new();
            for (pos, input) in inputs.iter().enumerate().skip(1) {
                let snaps = solver.materialize(&input.state).await?;
                sources.push((pos, solver.snapshot_paths(&snaps)));
            }
            let (op, epoch) = (self.0.clone(), solver.opts.epoch);
            let sums = tokio::task::spawn_blocking(move || {
                sources
                    .into_iter()
                    .map(|(pos, layers)| {
                        let copies: Vec<&CopyAction> = op
                            .actions
                            .iter()
                            .filter_map(|a| match a {
                                FileAction::Copy(c) if c.source_input == pos => Some(c),
                                _ => None,
                            })
                            .collect();
                        context::stage_checksum(&LayerStack::new(layers), &copies, epoch)
                    })
                    .collect::<Result<Vec<String>, String>>()
            })
            .await
            .map_err(|e| e.to_string())??;
            Ok(Some(keys::content_key(&ingredients, &sums)))
        }
        .boxed()
    }

    fn execute<'a>(
        &'a self,
        solver: &'a Solver,
        i: usize,
        inputs: &'a [NodeResult],
        content_key: ContentKey,
    ) -> BoxFuture<'a, Result<NodeResult, StepFailure>> {
        async move {
            let link = self.links_onto_base();
            if link {
                named_chown_refused(self.0)?;
            }
            let staged = solver.staging.take(i).await;
            let step = Step::begin(solver, i, &inputs[0], link).await?;
            if let Some(staged) = staged
                && commit_staged(staged.clone(), &step).await?
            {
                if staged.pre_exported() {
                    solver.staging.note_committed(i);
                }
                let (mut lineage, mut shared_from) = (None, None);
                if let Some(made) = staged.context_copy() {
                    if let Some(copied) = &made.copied {
                        step.adopt_copied(copied)?;
                    }
                    (lineage, shared_from) = (made.lineage.clone(), made.shared_from.clone());
                }
                return finish(solver, step, &inputs[0], content_key, lineage, shared_from);
            }
            let graph_inputs = &solver.graph.nodes[i].inputs;
            let mut sources: Vec<Option<Vec<PathBuf>>> = Vec::new();
            let mut is_ctx: Vec<bool> = Vec::new();
            for (pos, input) in graph_inputs.iter().enumerate() {
                let ctx = is_context(&solver.graph.nodes[input.0].op);
                let layers = match ctx || pos == 0 {
                    true => None,
                    false => {
                        let snaps = solver.materialize(&inputs[pos].state).await?;
                        Some(solver.snapshot_paths(&snaps))
                    }
                };
                sources.push(layers);
                is_ctx.push(ctx);
            }
            let op = self.0.clone();
            let ignore = context_ignore(&solver.graph)?;
            let context_dir = solver.opts.context_dir.clone();
            let context_modes = solver.opts.context_modes;
            let (lowers, upper) = (step.lowers().to_vec(), step.upper().to_path_buf());
            let remotes: Vec<(usize, Fetched)> = (0..op.actions.len())
                .filter_map(|a| solver.remotes.get(&(i, a)).map(|f| (a, f.clone())))
                .collect();
            let lineage = context_copy_lineage(&op, &is_ctx, &context_dir);
            let store = solver.store().clone();
            // `--no-cache` copies everything afresh (and records for later).
            let share = !solver.opts.ignores_cache(i);
            let lookup = lineage.clone().filter(|_| share);
            let records = lineage.as_ref().map(|_| step.copied_writer()).transpose()?;
            let shared_from = tokio::task::spawn_blocking(move || {
                let inputs = FileInputs {
                    sources: &sources,
                    is_context: &is_ctx,
                    context_dir: &context_dir,
                    context_modes,
                    ignore: &ignore,
                    remotes: &remotes,
                };
                copy_sharing(&store, &op, &lowers, &upper, &inputs, lookup, records)
            })
            .await
            .map_err(|e| e.to_string())??;
            finish(solver, step, &inputs[0], content_key, lineage, shared_from)
        }
        .boxed()
    }
}

/// Ends a file step whose changes are in `step`: notes the snapshot its
/// copy shared files with (`shared_from`), commits it and records it as
/// the last one made by the copy's `lineage`.
fn finish(
    solver: &Solver,
    step: Step<'_>,
    base: &NodeResult,
    content_key: ContentKey,
    lineage: Option<String>,
    shared_from: Option<String>,
) -> Result<NodeResult, StepFailure> {
    if let Some(from) = shared_from {
        step.record_shared_from(&from)?;
    }
    let result = step.commit(base, content_key)?;
    if let (Some(lineage), true, Some(Layer::Snapshot(id))) =
        (&lineage, result.added, result.state.last())
    {
        solver
            .store()
            .set_lineage(lineage, id)
            .map_err(|e| e.to_string())?;
    }
    Ok(result)
}

/// Applies `op` onto `lowers` into `upper`, sharing the unchanged
/// context files of the snapshot its `lineage` made last (when given);
/// the stamps of the context files it copies go to `records`. The
/// snapshot it shared files with.
fn copy_sharing(
    store: &Store,
    op: &FileOp,
    lowers: &[PathBuf],
    upper: &Path,
    inputs: &FileInputs<'_>,
    lineage: Option<String>,
    mut records: Option<CopiedWriter>,
) -> Result<Option<String>, String> {
    let found = lineage.and_then(|l| previous_snapshot(store, &l));
    let (shared_from, previous) = found.unzip();
    apply_file_op(
        op,
        lowers,
        upper,
        inputs,
        previous.as_ref(),
        records.as_mut(),
    )?;
    records.map_or(Ok(()), |r| r.finish().map_err(|e| e.to_string()))?;
    Ok(shared_from)
}

/// Makes node `i`'s copy from the build context (its only source), `op`,
/// into `tree` as onto an empty tree, as [`SolveOp::execute`] makes it on
/// the base, for a copy staged ahead of its base (see [`crate::staging`]):
/// what it needs to be committed as the step's.
pub(crate) fn stage_context_copy(
    solver: &Solver,
    i: usize,
    op: &FileOp,
    tree: &Path,
    copied: &Path,
) -> Result<StagedContextCopy, String> {
    let graph_inputs = &solver.graph.nodes[i].inputs;
    let is_ctx: Vec<bool> = (graph_inputs.iter())
        .map(|n| is_context(&solver.graph.nodes[n.0].op))
        .collect();
    let context_dir = &solver.opts.context_dir;
    let lineage = context_copy_lineage(op, &is_ctx, context_dir);
    let lookup = lineage.clone().filter(|_| !solver.opts.ignores_cache(i));
    let copied = lineage.as_ref().map(|_| copied.to_path_buf());
    let records = copied.as_deref().map(CopiedWriter::create);
    let records = records.transpose().map_err(|e| e.to_string())?;
    let inputs = FileInputs {
        sources: &vec![None; is_ctx.len()],
        is_context: &is_ctx,
        context_dir,
        context_modes: solver.opts.context_modes,
        ignore: &context_ignore(&solver.graph)?,
        remotes: &[],
    };
    let shared_from = copy_sharing(solver.store(), op, &[], tree, &inputs, lookup, records)?;
    Ok(StagedContextCopy {
        copied,
        lineage,
        shared_from,
    })
}

/// Moves the copy `staged` ahead of the base into `step`'s new layer,
/// unless the base would have made it differ; whether it did.
async fn commit_staged(staged: Arc<Staged>, step: &Step<'_>) -> Result<bool, String> {
    let (lowers, upper) = (step.lowers().to_vec(), step.upper().to_path_buf());
    tokio::task::spawn_blocking(move || staged.commit(&lowers, &upper))
        .await
        .map_err(|e| e.to_string())?
}

/// The lineage of a file op that is one plain COPY from the build context
/// (no ADD extraction, no other action that could overwrite what it
/// copied): blake3 of the op and the context dir, whatever the context
/// holds and whatever the base (the same COPY in two stages may share
/// files too). Each run records its snapshot under it, and the next run
/// shares the unchanged files of that snapshot (see
/// [`fileop::Previous`], which checks every file). A local hint, never
/// part of a cache key.
fn context_copy_lineage(op: &FileOp, is_context: &[bool], context_dir: &Path) -> Option<String> {
    let [FileAction::Copy(copy)] = op.actions.as_slice() else {
        return None;
    };
    let plain = copy.remote.is_none()
        && !copy.extract_archives
        && is_context.get(copy.source_input) == Some(&true);
    if !plain {
        return None;
    }
    // The same directory however it was named (`.` or its whole path).
    let context_dir = context_dir.canonicalize().ok()?;
    let mut h = blake3::Hasher::new();
    h.update(b"rbuild context-copy lineage 1\0");
    h.update(&serde_json::to_vec(op).ok()?);
    h.update(context_dir.as_os_str().as_bytes());
    Some(h.finalize().to_hex().to_string())
}

/// The snapshot the step with `lineage` made last (its id) and the
/// source stamps of its files, when both are still there.
fn previous_snapshot(store: &Store, lineage: &str) -> Option<(String, fileop::Previous)> {
    let id = store.lineage_snapshot(lineage)?;
    let previous = fileop::Previous {
        files: store.copied_files(&id)?,
        dir: store.snapshot_path(&id),
    };
    Some((id, previous))
}

/// What a file op reads besides its destination state.
struct FileInputs<'a> {
    /// The layers of each non-context input (`None` where not read).
    sources: &'a [Option<Vec<PathBuf>>],
    /// Which inputs are the build context.
    is_context: &'a [bool],
    context_dir: &'a Path,
    /// The permission bits context files carry.
    context_modes: ContextModes,
    ignore: &'a IgnoreMatcher,
    /// Fetched remote sources by action index.
    remotes: &'a [(usize, Fetched)],
}

/// Applies `op`, sharing unchanged files with `previous`; the stamps of
/// the context files it copies go to `records`.
fn apply_file_op(
    op: &FileOp,
    lowers: &[PathBuf],
    upper: &Path,
    inputs: &FileInputs<'_>,
    previous: Option<&fileop::Previous>,
    records: Option<&mut CopiedWriter>,
) -> Result<(), String> {
    let host = HostTree::new(inputs.context_dir);
    let stacks: Vec<Option<LayerStack>> = inputs
        .sources
        .iter()
        .map(|s| s.clone().map(LayerStack::new))
        .collect();
    let ignored = |p: &str| inputs.ignore.is_excluded(p);
    let views: Vec<Option<Source<'_>>> = stacks
        .iter()
        .zip(inputs.is_context)
        .map(|(stack, &ctx)| {
            if ctx {
                Some(Source {
                    view: &host,
                    is_context: true,
                    modes: inputs.context_modes,
                    ignored: &ignored,
                })
            } else {
                stack.as_ref().map(|s| Source {
                    view: s,
                    is_context: false,
                    modes: ContextModes::OnDisk,
                    ignored: &ignored,
                })
            }
        })
        .collect();
    let trees: Vec<(usize, HostTree, &Fetched)> = inputs
        .remotes
        .iter()
        .map(|(a, f)| (*a, HostTree::new(&f.dir), f))
        .collect();
    let remotes: HashMap<usize, Remote<'_>> = trees
        .iter()
        .map(|(a, tree, f)| {
            let remote = Remote {
                source: Source {
                    view: tree,
                    is_context: true,
                    modes: ContextModes::OnDisk,
                    ignored: &context::nothing_excluded,
                },
                names: f.sources.clone(),
            };
            (*a, remote)
        })
        .collect();
    fileop::apply_sharing(op, lowers, upper, &views, &remotes, previous, records)
}

/// A linked copy is made on an empty tree, with no /etc/passwd to read
/// names from: `--chown` must be numeric (or `root`), as BuildKit requires
/// ("invalid user index: -1"; newer frontends refuse it while parsing).
fn named_chown_refused(op: &FileOp) -> Result<(), String> {
    let numeric = |id: &str| id == "root" || id.parse::<u32>().is_ok();
    for action in &op.actions {
        if let FileAction::Copy(CopyAction {
            chown: Some(chown), ..
        }) = action
            && !chown.split(':').all(numeric)
        {
            return Err(format!(
                "COPY --link --chown={chown}: a linked copy cannot look up user or group names \
                 (it does not see the base's /etc/passwd); use numeric ids, or drop --link"
            ));
        }
    }
    Ok(())
}

/// Fetches every remote ADD source of the graph into `dir`, by (node,
/// action).
pub(crate) async fn fetch_remotes(
    graph: &BuildGraph,
    dir: &Path,
) -> Result<HashMap<(usize, usize), Fetched>, SolveError> {
    let mut out = HashMap::new();
    for (i, node) in graph.nodes.iter().enumerate() {
        let rbuild_frontend::graph::Op::File(f) = &node.op else {
            continue;
        };
        for (a, action) in f.actions.iter().enumerate() {
            if let FileAction::Copy(CopyAction {
                remote: Some(remote),
                ..
            }) = action
            {
                let fetched = remote::fetch(remote, &dir.join(format!("{i}-{a}")))
                    .await
                    .map_err(|message| step_error(graph, i, message))?;
                out.insert((i, a), fetched);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_context_copy_has_one_lineage_however_its_directory_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("ctx")).unwrap();
        let op = crate::fileop::test_copy(&["."], "/app/");
        let lineage = |p: &Path| context_copy_lineage(&op, &[false, true], p).unwrap();
        let whole = lineage(&dir.path().join("ctx"));
        assert_eq!(lineage(&dir.path().join("ctx/../ctx/.")), whole);
        assert_ne!(lineage(dir.path()), whole, "another directory");
    }
}
