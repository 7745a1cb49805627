//! A copy staged before its base is ready (issue 19). A `COPY --from`
//! starts as soon as its source is made — or the first state of the
//! source stage that holds what it copies, when the later steps leave that
//! alone (see [`crate::source_state`]): first the checksum of what it
//! selects, which its step's content key needs and which is published
//! as soon as it is known; then, unless that content key already names a
//! result (an edit that left the copied files as they were: the step will
//! be found by it), the copy itself. A copy from the build context onto a
//! RUN starts with the solve (the context is there from the start), with
//! the sharing of unchanged files and the records a context copy makes
//! (see [`crate::ops`]' file step). Either is made on an empty tree in the
//! store's tmp while the steps its base waits for still run. Once the
//! base is made, the staged tree is renamed into the step's new snapshot,
//! but only when the base holds nothing that would have made the copy
//! differ: the destination absent, each of its ancestors absent or a plain
//! directory (no symlink to follow, no file to refuse). The ancestors the
//! base has are copied up into the new snapshot with their owner, mode and
//! mtime, as the copy itself does. Otherwise the copy is made as usual.
//!
//! What is staged needs nothing of the base: one copy from one stage,
//! image or the context, no `--parents`, no `--link` (made on an empty
//! tree already), an owner only by number (a name resolves through the
//! destination's /etc/passwd). Renaming keeps every file's inode and link
//! count, so no RUN sees a difference.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use futures::future::{BoxFuture, FutureExt, Shared};
use rbuild_cache::files::set_mtime;
use rbuild_frontend::graph::{CopyAction, FileAction, FileOp};
use rbuild_frontend::wildcard;

use crate::context;
use crate::dag::Dag;
use crate::fileop::{self, Source};
use crate::layered::{self, FsView, LayerStack};
use crate::progress::StagedWork;
use crate::schedule::Solver;
use crate::source_state;

/// A copy that may be staged: its op, which input it copies from and the
/// destination everything it writes is below.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    op: FileOp,
    /// The input position of the source.
    source: usize,
    /// The destination, a clean absolute path other than `/`.
    dest: String,
    /// Whether the source is the build context.
    context: bool,
}

impl Plan {
    /// The plan of `op` when it is one copy that needs nothing of its base
    /// (see the module doc) from input `1` of two, which `is_context` says
    /// is the build context or not; `None` otherwise.
    pub(crate) fn of(op: &FileOp, inputs: usize, is_context: bool) -> Option<Plan> {
        let [FileAction::Copy(copy)] = op.actions.as_slice() else {
            return None;
        };
        let numeric = |c: &str| c.split(':').all(|id| id.parse::<u32>().is_ok());
        let plain = copy.remote.is_none()
            && !copy.extract_archives
            && !copy.parents
            && !copy.link
            && copy.chown.as_deref().is_none_or(numeric);
        let dest = layered::clean(&copy.dest);
        let one_source = inputs == 2 && copy.source_input == 1;
        (plain && one_source && dest != "/").then(|| Plan {
            op: op.clone(),
            source: copy.source_input,
            dest,
            context: is_context,
        })
    }

    /// The paths the copy selects in its source, clean, when none is a
    /// wildcard (a wildcard's matches may grow with later steps).
    fn plain_sources(&self) -> Option<Vec<String>> {
        let [FileAction::Copy(copy)] = self.op.actions.as_slice() else {
            return None;
        };
        let wild = copy.sources.iter().any(|s| wildcard::has_wildcards(s));
        (!wild).then(|| copy.sources.iter().map(|s| layered::clean(s)).collect())
    }

    /// The content key's checksum of what the copy selects in the
    /// source state's `layers` (bottom first), as [`crate::ops`]' file
    /// step computes it.
    pub(crate) fn checksum(
        &self,
        layers: Vec<PathBuf>,
        epoch: Option<i64>,
    ) -> Result<String, String> {
        let copies: Vec<&CopyAction> = (self.op.actions.iter())
            .filter_map(|a| match a {
                FileAction::Copy(c) => Some(c),
                _ => None,
            })
            .collect();
        context::stage_checksum(&LayerStack::new(layers), &copies, epoch)
    }

    /// Makes the copy into a new dir in `tmp` from the source state's
    /// `layers` (bottom first), as onto an empty tree.
    pub(crate) fn copy(
        &self,
        layers: Vec<PathBuf>,
        tmp: &Path,
    ) -> Result<tempfile::TempDir, String> {
        let stack = LayerStack::new(layers);
        let dir = new_dir(tmp)?;
        let mut sources: Vec<Option<Source<'_>>> = (0..=self.source).map(|_| None).collect();
        sources[self.source] = Some(Source::layers(&stack));
        fileop::apply(&self.op, &[], &tree(&dir), &sources, &HashMap::new())?;
        Ok(dir)
    }

    /// Makes node `i`'s copy from the build context into a new dir in
    /// `tmp`, as onto an empty tree, with what its step needs besides.
    fn copy_context(
        &self,
        solver: &Solver,
        i: usize,
        tmp: &Path,
    ) -> Result<(tempfile::TempDir, StagedContextCopy), String> {
        let dir = new_dir(tmp)?;
        let copied = dir.path().join("copied");
        let made = crate::ops::stage_context_copy(solver, i, &self.op, &tree(&dir), &copied)?;
        Ok((dir, made))
    }

    /// What was staged: the copy in `dir` (`None` when not made) and the
    /// checksums of what it selects (`None` when not computed).
    fn staged(&self, dir: Option<tempfile::TempDir>, sums: Option<Vec<String>>) -> Staged {
        Staged {
            dir,
            dest: self.dest.clone(),
            sums,
            context: None,
            pre_exported: false,
        }
    }
}

/// A new dir for a staged copy in `tmp`, holding the empty tree it is
/// made on (see [`tree`]); removed on drop.
fn new_dir(tmp: &Path) -> Result<tempfile::TempDir, String> {
    let dir = tempfile::Builder::new()
        .prefix("stage-")
        .tempdir_in(tmp)
        .map_err(|e| format!("temp dir in {}: {e}", tmp.display()))?;
    let tree = tree(&dir);
    fs::create_dir(&tree).map_err(|e| format!("mkdir {}: {e}", tree.display()))?;
    Ok(dir)
}

/// The tree a staged copy is made on, in its `dir`.
fn tree(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("tree")
}

/// What a copy from the build context staged ahead of its base leaves
/// for its step besides the tree (see [`crate::ops`]' file step).
#[derive(Debug)]
pub(crate) struct StagedContextCopy {
    /// The source stamps of the context files copied (a `copied` file in
    /// the staged dir), when it recorded them.
    pub(crate) copied: Option<PathBuf>,
    /// The copy's lineage (the snapshot it makes is the next one's
    /// to share from).
    pub(crate) lineage: Option<String>,
    /// The snapshot it shared unchanged files with.
    pub(crate) shared_from: Option<String>,
}

/// A copy made ahead of its base.
#[derive(Debug)]
pub(crate) struct Staged {
    /// The copy's changes on an empty tree, removed on drop; `None` when
    /// the copy was not made because its content key found a result.
    dir: Option<tempfile::TempDir>,
    /// The destination everything it wrote is below.
    dest: String,
    /// The content key's checksums of what it selects, one per source
    /// (when it was asked for).
    pub(crate) sums: Option<Vec<String>>,
    /// What a copy from the build context leaves besides.
    context: Option<StagedContextCopy>,
    /// Whether the tree was handed to the solver's tree-staged hook (see
    /// [`Solver::on_tree_staged`]) as the layer it commits to, its
    /// ancestors already those the base gives them.
    pre_exported: bool,
}

/// Where a staged copy lands in a base: the ancestors of its
/// destination that the base has, each a plain directory, with their
/// metadata, and the first path the base lacks (everything below it is
/// new); `None` when the base holds the destination or something other
/// than a directory on the way to it.
type Placement = (Vec<(String, fs::Metadata)>, String);

/// The [`Placement`] of a copy to `dest` in `base`.
fn placement(base: &LayerStack, dest: &str) -> Option<Placement> {
    let names: Vec<&str> = layered::components(dest).collect();
    let mut kept = Vec::new();
    let mut path = String::from("/");
    for (n, name) in names.iter().enumerate() {
        path = layered::child(&path, name);
        match base.locate(&path).map(|host| host.symlink_metadata()) {
            None => return Some((kept, path)),
            Some(Ok(meta)) if meta.is_dir() && n + 1 < names.len() => {
                kept.push((path.clone(), meta));
            }
            Some(_) => return None,
        }
    }
    None
}

/// Gives each directory of `kept` below `root` the owner and mode of its
/// metadata, then (deepest first, after whatever changed below it) its
/// mtime, as a copy onto the base leaves the ancestors it copied up.
fn copy_up_metadata(root: &Path, kept: &[(String, fs::Metadata)]) -> Result<(), String> {
    let failed = |what: &str, p: &Path, e: std::io::Error| format!("{what} {}: {e}", p.display());
    for (path, meta) in kept {
        let out = layered::host_join(root, path);
        std::os::unix::fs::lchown(&out, Some(meta.uid()), Some(meta.gid()))
            .map_err(|e| failed("chown", &out, e))?;
        fs::set_permissions(&out, fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(|e| failed("chmod", &out, e))?;
    }
    for (path, meta) in kept.iter().rev() {
        let out = layered::host_join(root, path);
        set_mtime(&out, meta.mtime(), meta.mtime_nsec())
            .map_err(|e| failed("set times of", &out, e))?;
    }
    Ok(())
}

impl Staged {
    /// What a copy from the build context left besides its tree.
    pub(crate) fn context_copy(&self) -> Option<&StagedContextCopy> {
        self.context.as_ref()
    }

    /// Moves the staged copy into `upper`, the empty new layer over the
    /// base's `lowers` (bottom first), when the base holds nothing that
    /// would make the copy differ (see the module doc). `false`, `upper`
    /// left empty, when it does.
    pub(crate) fn commit(&self, lowers: &[PathBuf], upper: &Path) -> Result<bool, String> {
        let Some(dir) = &self.dir else {
            return Ok(false);
        };
        let base = LayerStack::new(lowers.to_vec());
        let Some((kept, first_new)) = placement(&base, &self.dest) else {
            return Ok(false);
        };
        let from = layered::host_join(&tree(dir), &first_new);
        let Ok(made) = from.symlink_metadata() else {
            // The copy wrote nothing there (a wildcard that matched nothing).
            return Ok(false);
        };
        let failed =
            |what: &str, p: &Path, e: std::io::Error| format!("{what} {}: {e}", p.display());
        for (path, _) in &kept {
            let out = layered::host_join(upper, path);
            fs::create_dir(&out).map_err(|e| failed("mkdir", &out, e))?;
        }
        let to = layered::host_join(upper, &first_new);
        fs::rename(&from, &to).map_err(|e| failed("rename into", &to, e))?;
        // Times last: the rename may touch the moved directory's, and it
        // does touch its new parent's.
        set_mtime(&to, made.mtime(), made.mtime_nsec())
            .map_err(|e| failed("set times of", &to, e))?;
        copy_up_metadata(upper, &kept)?;
        Ok(true)
    }

    /// Whether the tree was handed to the tree-staged hook as the layer
    /// this copy commits to (see [`Solver::on_tree_staged`]).
    pub(crate) fn pre_exported(&self) -> bool {
        self.pre_exported
    }
}

/// The thread staged copies run on: one of their own, so that a copy
/// made ahead (often never used: the step is then found by its content
/// key) leaves rayon's global pool, whose threads the copies and
/// checksums of the steps the build waits for use, to those.
fn background_pool() -> &'static rayon::ThreadPool {
    static POOL: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .thread_name(|_| String::from("rbuild-staging"))
            .build()
            .expect("a thread for staged copies")
    })
}

/// Stages node `i`'s copy from the build context, as `plan` says: the
/// context is there from the start, but the copy waits until its base
/// (a RUN) is about to run (the RUN's own base made), as until then the
/// steps below are what the build waits for, and they need the cores.
async fn stage_context(
    me: Arc<Solver>,
    dag: Arc<Dag<Solver>>,
    i: usize,
    plan: Arc<Plan>,
) -> Option<Arc<Staged>> {
    let base = me.graph.nodes[i].inputs[0].0;
    if let Some(below) = me.graph.nodes[base].inputs.first() {
        // The base found in the cache: its own base is never made.
        tokio::select! {
            _ = dag.realized(below.0) => {}
            _ = dag.realized(base) => {}
        }
    }
    if me.stopping() {
        return None;
    }
    let (tmp, solver, copied) = (me.store().root().join("tmp"), me.clone(), plan.clone());
    let job = move || copied.copy_context(&solver, i, &tmp);
    let (dir, made) = in_background(&me, i, StagedWork::Copy, Pool::Global, job).await?;
    let mut staged = plan.staged(Some(dir), None);
    staged.context = Some(made);
    Some(Arc::new(staged))
}

/// Stages node `i`'s copy from an earlier stage or image, as `plan`
/// says, once `dag` has made its source: the checksum of what it copies
/// first (for the step's content key), then the copy itself, unless that
/// content key already names a result (the step will be found by it).
async fn stage_from_stage(
    me: Arc<Solver>,
    dag: Arc<Dag<Solver>>,
    i: usize,
    plan: Arc<Plan>,
) -> Option<Arc<Staged>> {
    let source = me.graph.nodes[i].inputs[plan.source].0;
    let paths = plan.plain_sources();
    let (made, early) = source_state::first_complete(&me, &dag, source, paths.as_deref()).await?;
    if me.stopping() {
        return None;
    }
    let snapshots = me.materialize(&made.state).await.ok()?;
    let layers = me.snapshot_paths(&snapshots);
    let is_stage = crate::ops::of(&me.graph.nodes[source].op).cacheable();
    let sums = match is_stage && !me.opts.ignores_cache(i) {
        true => {
            let (plan, layers, epoch) = (plan.clone(), layers.clone(), me.opts.epoch);
            let sum = in_background(&me, i, StagedWork::Checksum, Pool::Own, move || {
                plan.checksum(layers, epoch)
            });
            Some(vec![sum.await?])
        }
        false => None,
    };
    let found = sums.as_deref().is_some_and(|s| me.has_content_result(i, s));
    let dir = match found || me.stopping() {
        true => None,
        false => {
            let (plan, tmp) = (plan.clone(), me.store().root().join("tmp"));
            let copy = in_background(&me, i, StagedWork::Copy, Pool::Own, move || {
                plan.copy(layers, &tmp)
            });
            Some(copy.await?)
        }
    };
    let pre_exported = match &dir {
        Some(dir) => pre_export(&me, &dag, i, &plan.dest, tree(dir), early.then_some(source)).await,
        None => false,
    };
    if early {
        let whole = dag.clone().realize(source).await.ok()?;
        let paths = paths.as_deref().unwrap_or_default();
        if !source_state::left_alone(&me, &made.state, &whole.state, paths) {
            return None;
        }
    }
    let mut staged = plan.staged(dir, sums);
    staged.pre_exported = pre_exported;
    Some(Arc::new(staged))
}

/// Hands node `i`'s staged `tree` to the solver's staged-layers hook
/// (see [`Solver::on_tree_staged`]) as the layer its copy to `dest`
/// commits to, once the step's base is made: the ancestors the base has
/// are given the base's owner, mode and mtime first, as the commit gives
/// them. Only if the hook wants it, asked before and again after the
/// base is made, and told each time whether the step still waits for the
/// later steps of the source stage (`early`: the stage, when the copy
/// read an earlier state of it). Whether the hook took it (not when the
/// base refuses the copy, the copy wrote nothing, or it failed).
async fn pre_export(
    me: &Arc<Solver>,
    dag: &Arc<Dag<Solver>>,
    i: usize,
    dest: &str,
    tree: PathBuf,
    early: Option<usize>,
) -> bool {
    let wanted = || {
        let waits = early.is_some_and(|source| dag.outcome(source).is_none());
        me.staged_layers.as_ref().is_some_and(|h| h.wants(i, waits))
    };
    if !wanted() {
        return false;
    }
    let base = me.graph.nodes[i].inputs[0].0;
    let Ok(made) = dag.clone().realize(base).await else {
        return false;
    };
    if !wanted() {
        return false;
    }
    let Ok(snapshots) = me.materialize(&made.state).await else {
        return false;
    };
    let lowers = me.snapshot_paths(&snapshots);
    let (solver, dest) = (me.clone(), dest.to_string());
    let job = move || {
        let Some((kept, first_new)) = placement(&LayerStack::new(lowers), &dest) else {
            return Ok(false);
        };
        if layered::host_join(&tree, &first_new)
            .symlink_metadata()
            .is_err()
        {
            return Ok(false);
        }
        copy_up_metadata(&tree, &kept)?;
        let hook = solver.staged_layers.as_ref().expect("checked above");
        Ok(hook.pre_export(i, &tree))
    };
    let done = in_background(me, i, StagedWork::Export, Pool::Own, job).await;
    done.unwrap_or(false)
}

/// Which threads staged work runs on.
#[derive(Clone, Copy)]
enum Pool {
    /// The staging thread (see [`background_pool`]): work that may
    /// never be used.
    Own,
    /// Rayon's global pool, as the step's own work would: a copy from
    /// the context, always used unless its base refuses it.
    Global,
}

/// Runs `job`, staged work of node `i`, on a blocking thread in `pool`
/// and reports its span; its result, `None` when it
/// failed (the step made as usual then reports why).
async fn in_background<T: Send + 'static>(
    solver: &Solver,
    i: usize,
    work: StagedWork,
    pool: Pool,
    job: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Option<T> {
    let progress = solver.progress.clone();
    let timed = move || {
        let started = SystemTime::now();
        let done = job();
        progress.staged(i, work, started, SystemTime::now());
        done
    };
    let done = tokio::task::spawn_blocking(move || match pool {
        Pool::Own => background_pool().install(timed),
        Pool::Global => timed(),
    });
    done.await.ok()?.ok()
}

/// A staging under way: its copy, or `None` when it could not be made
/// (the copy made as usual then reports why).
type Pending = Shared<BoxFuture<'static, Option<Arc<Staged>>>>;

/// The copies of one solve being staged, by node.
#[derive(Default)]
pub(crate) struct Staging {
    started: Mutex<HashMap<usize, Pending>>,
    /// The nodes whose pre-exported staged tree was committed as their
    /// layer (see [`Self::note_committed`]).
    committed: Mutex<HashSet<usize>>,
}

impl Staging {
    /// Starts staging node `i`'s copy as `plan` says, once `dag` has
    /// made its source: the checksum of what it copies first (published
    /// for the step's content key), then the copy itself, unless that
    /// content key already names a result (the step will be found by it).
    pub(crate) fn start(solver: &Arc<Solver>, dag: &Arc<Dag<Solver>>, i: usize, plan: Plan) {
        let (me, dag, plan) = (solver.clone(), dag.clone(), Arc::new(plan));
        let task = match plan.context {
            true => tokio::spawn(stage_context(me, dag, i, plan)),
            false => tokio::spawn(stage_from_stage(me, dag, i, plan)),
        };
        let pending = task.map(|joined| joined.ok().flatten()).boxed().shared();
        let mut started = solver.staging.started.lock().expect("poisoned");
        started.insert(i, pending);
    }

    /// Node `i`'s staged copy, once made, if it was staged (it stays for
    /// [`Self::take`]).
    pub(crate) async fn get(&self, i: usize) -> Option<Arc<Staged>> {
        let pending = self.started.lock().expect("poisoned").get(&i).cloned();
        pending?.await
    }

    /// Node `i`'s staged copy, once made, if it was staged; forgotten here.
    pub(crate) async fn take(&self, i: usize) -> Option<Arc<Staged>> {
        let pending = self.started.lock().expect("poisoned").remove(&i);
        pending?.await
    }

    /// Notes that node `i` committed its staged tree, which was
    /// pre-exported (see [`Staged::pre_exported`]), as its layer.
    pub(crate) fn note_committed(&self, i: usize) {
        self.committed.lock().expect("poisoned").insert(i);
    }

    /// Whether node `i`'s layer is its pre-exported staged tree; forgotten
    /// here.
    pub(crate) fn take_committed(&self, i: usize) -> bool {
        self.committed.lock().expect("poisoned").remove(&i)
    }

    /// Waits for every staging not taken (a step found in the cache by its
    /// content key, a failed solve) and removes what it made.
    pub(crate) async fn finish(&self) {
        let left = std::mem::take(&mut *self.started.lock().expect("poisoned"));
        for (_, pending) in left {
            drop(pending.await);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn copy(source: &str, dest: &str, chown: Option<&str>, chmod: Option<&str>) -> FileOp {
        FileOp {
            actions: vec![FileAction::Copy(CopyAction {
                source_input: 1,
                sources: vec![source.to_string()],
                dest: dest.into(),
                chown: chown.map(String::from),
                chmod: chmod.map(String::from),
                exclude: vec![],
                parents: false,
                link: false,
                extract_archives: false,
                remote: None,
            })],
        }
    }

    /// Everything of a tree a layer keeps: per path, its kind, owner,
    /// mode, size, content or link target, mtime (of files, and of the
    /// directories `timed` names) and link count.
    fn describe(root: &Path, timed: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            let path = root.join(&rel);
            let meta = path.symlink_metadata().unwrap();
            let what = if meta.is_dir() {
                let mut names: Vec<_> = fs::read_dir(&path)
                    .unwrap()
                    .map(|e| e.unwrap().file_name())
                    .collect();
                names.sort();
                stack.extend(names.into_iter().map(|n| rel.join(n)));
                match timed.contains(&rel.to_str().unwrap()) {
                    true => format!("dir {}", meta.mtime_nsec() + meta.mtime() * 1_000_000_000),
                    false => String::from("dir"),
                }
            } else if meta.is_symlink() {
                format!("link {}", fs::read_link(&path).unwrap().display())
            } else {
                format!(
                    "file {:?} {} {}",
                    fs::read(&path).unwrap(),
                    meta.mtime(),
                    meta.nlink()
                )
            };
            out.push(format!(
                "{} {} {}:{} {:o} {what}",
                rel.display(),
                meta.len() * u64::from(meta.is_file()),
                meta.uid(),
                meta.gid(),
                meta.mode() & 0o7777
            ));
        }
        out.sort();
        out
    }

    /// A source stage with a tree (hard links, a symlink, an odd mode) and
    /// a base with /usr (0700, an old mtime) and a /link -> usr symlink.
    fn source_and_base(dir: &Path) -> (PathBuf, PathBuf) {
        let (src, base) = (dir.join("src"), dir.join("base"));
        fs::create_dir_all(src.join("deps/sub")).unwrap();
        for n in 0..20 {
            fs::write(src.join(format!("deps/pkg{n}.so")), format!("{n}")).unwrap();
        }
        fs::hard_link(src.join("deps/pkg0.so"), src.join("deps/sub/same.so")).unwrap();
        symlink("pkg1.so", src.join("deps/alias.so")).unwrap();
        fs::set_permissions(src.join("deps/pkg2.so"), fs::Permissions::from_mode(0o751)).unwrap();
        set_mtime(&src.join("deps"), 1_600_000_000, 5).unwrap();
        fs::create_dir_all(base.join("usr/share")).unwrap();
        fs::write(base.join("usr/share/existing"), "x").unwrap();
        fs::set_permissions(base.join("usr"), fs::Permissions::from_mode(0o700)).unwrap();
        set_mtime(&base.join("usr"), 1_500_000_000, 7).unwrap();
        symlink("usr", base.join("link")).unwrap();
        (src, base)
    }

    /// The copy made as usual on `base` and staged then committed on it:
    /// what each left in its new layer (`None` for a staged copy the
    /// base refused).
    fn both_ways(
        op: &FileOp,
        src: &Path,
        base: &Path,
        timed: &[&str],
    ) -> (Vec<String>, Option<Vec<String>>) {
        let scratch = tempfile::tempdir().unwrap();
        let (usual, staged_upper) = (scratch.path().join("usual"), scratch.path().join("staged"));
        fs::create_dir(&usual).unwrap();
        fs::create_dir(&staged_upper).unwrap();
        let stack = LayerStack::new(vec![src.to_path_buf()]);
        let sources = [None, Some(Source::layers(&stack))];
        fileop::apply(op, &[base.to_path_buf()], &usual, &sources, &HashMap::new()).unwrap();
        let plan = Plan::of(op, 2, false).expect("stageable");
        let dir = plan.copy(vec![src.to_path_buf()], scratch.path()).unwrap();
        let staged = plan.staged(Some(dir), None);
        let committed = staged.commit(&[base.to_path_buf()], &staged_upper).unwrap();
        let left = fs::read_dir(&staged_upper).unwrap().count();
        assert!(
            committed || left == 0,
            "a refused commit leaves the layer empty"
        );
        (
            describe(&usual, timed),
            committed.then(|| describe(&staged_upper, timed)),
        )
    }

    #[test]
    fn a_staged_copy_commits_to_what_the_usual_copy_makes() {
        let dir = tempfile::tempdir().unwrap();
        let (src, base) = source_and_base(dir.path());
        let cases = [
            // Below an ancestor the base has (copied up, 0700, its mtime).
            (
                copy("/deps", "/usr/lib/app", None, None),
                vec!["usr", "usr/lib/app"],
            ),
            // Into a new tree, numeric owner and a mode.
            (
                copy("/deps/", "/opt/a/", Some("1000:50"), Some("640")),
                vec!["opt/a"],
            ),
            // One file into a new directory.
            (copy("/deps/pkg3.so", "/out/hash/", None, None), vec![]),
            (copy("/deps/pkg*.so", "/usr/glob/", None, None), vec!["usr"]),
        ];
        for (op, timed) in cases {
            let (usual, staged) = both_ways(&op, &src, &base, &timed);
            assert_eq!(Some(usual), staged, "{op:?}");
        }
    }

    #[test]
    fn a_base_that_would_change_the_copy_gets_the_usual_copy() {
        let dir = tempfile::tempdir().unwrap();
        let (src, base) = source_and_base(dir.path());
        fs::write(base.join("file"), "a file").unwrap();
        for (op, why) in [
            (
                copy("/deps", "/usr/share", None, None),
                "the destination exists",
            ),
            (
                copy("/deps", "/link/app", None, None),
                "it is under a symlink",
            ),
            (
                copy("/deps", "/file/app", None, None),
                "an ancestor is a file",
            ),
        ] {
            let plan = Plan::of(&op, 2, false).expect("stageable");
            let scratch = tempfile::tempdir().unwrap();
            let dir = plan.copy(vec![src.clone()], scratch.path()).unwrap();
            let staged = plan.staged(Some(dir), None);
            let upper = scratch.path().join("upper");
            fs::create_dir(&upper).unwrap();
            assert!(
                !staged.commit(std::slice::from_ref(&base), &upper).unwrap(),
                "{why}"
            );
            assert_eq!(fs::read_dir(&upper).unwrap().count(), 0, "{why}");
        }
    }

    #[test]
    fn only_copies_that_need_nothing_of_the_base_are_staged() {
        let named = copy("/deps", "/app", Some("nobody"), None);
        assert!(
            Plan::of(&named, 2, false).is_none(),
            "a user name needs /etc/passwd"
        );
        let numeric = copy("/deps", "/app", Some("65534:65534"), None);
        assert!(Plan::of(&numeric, 2, false).is_some());
        let plain = copy("/deps", "/app", None, None);
        assert!(Plan::of(&plain, 2, true).is_some(), "from the context too");
        assert!(Plan::of(&plain, 3, false).is_none(), "one source only");
        assert!(Plan::of(&copy("/deps", "/", None, None), 2, false).is_none());
        let mut linked = plain.clone();
        if let FileAction::Copy(c) = &mut linked.actions[0] {
            c.link = true;
        }
        assert!(Plan::of(&linked, 2, false).is_none());
    }
}
