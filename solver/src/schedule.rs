//! The scheduler: realizes the target on demand. A vertex with a cached
//! result is done without touching its inputs; otherwise its inputs are
//! realized concurrently, then it runs. Vertices with equal keys share one
//! realization, and RUN steps are limited to a number at a time.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::future::{BoxFuture, FutureExt, try_join_all};
use rbuild_cache::{CacheKey, CacheRecord, KeyIngredients, Store};
use rbuild_frontend::IgnoreMatcher;
use rbuild_frontend::graph::{BuildGraph, CopyAction, FileAction, NodeId, Op};
use tokio::sync::Semaphore;

use crate::bind::BindSource;
use crate::context;
use crate::dag::{Dag, Failure, Outcome, Vertices};
use crate::error::SolveError;
use crate::exec;
use crate::fileop::{self, Remote, Source};
use crate::image::ImageResolver;
use crate::keys;
use crate::layered::{HostTree, LayerStack};
use crate::modes::ContextModes;
use crate::progress::{Progress, VertexStatus};
use crate::remote::{self, Fetched};
use crate::state::{Layer, State};

/// How a solve behaves.
#[derive(Debug, Clone)]
pub struct SolveOptions {
    /// The build context directory.
    pub context_dir: PathBuf,
    /// Ignore cached results (`--no-cache`); results are still recorded.
    pub no_cache: bool,
    /// How many RUN steps may run at once.
    pub max_parallel_runs: usize,
    /// Secret id → host file, for `RUN --mount=type=secret`.
    pub secrets: BTreeMap<String, PathBuf>,
    /// Ssh agent id → agent socket, for `RUN --mount=type=ssh` (`--ssh`).
    pub ssh: BTreeMap<String, PathBuf>,
    /// Resource limits of every RUN (`--memory`, `--cpus`, `--pids-limit`).
    pub limits: rbuild_executor::Limits,
    /// The permission bits context files carry into the image.
    pub context_modes: ContextModes,
}

/// What a solve produced.
#[derive(Debug, Clone)]
pub struct SolveResult {
    /// The target's filesystem: layers bottom first.
    pub state: State,
    /// For each of the graph's `layer_nodes`: whether it added a layer
    /// (a step whose changes are empty adds none, as in BuildKit).
    pub layer_added: Vec<bool>,
    /// For each of the graph's `layer_nodes`: when its result was first
    /// made (Unix seconds), kept with the cache record so that a cached
    /// rebuild writes the same history and digest.
    pub layer_created: Vec<i64>,
}

/// What realizing a node gives.
#[derive(Debug, Clone)]
pub struct NodeResult {
    /// Its filesystem: layers bottom first.
    state: State,
    /// Whether it added a layer of its own.
    added: bool,
    /// When the result was first made (Unix seconds).
    created: i64,
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Solves one build graph.
pub struct Solver {
    store: Store,
    images: Arc<ImageResolver>,
    graph: BuildGraph,
    opts: SolveOptions,
    progress: Arc<dyn Progress>,
    keys: Vec<CacheKey>,
    /// What each node's result is recorded under (see [`keys::Keys`]).
    records: Vec<CacheKey>,
    /// What each record key is hashed from, kept in its record.
    ingredients: Vec<KeyIngredients>,
    /// Fetched remote sources by (node, action).
    remotes: HashMap<(usize, usize), Fetched>,
    /// Where they were fetched; removed with the solver.
    _fetch_dir: tempfile::TempDir,
    runs: Semaphore,
    reported: Mutex<Vec<bool>>,
}

impl Solver {
    /// Fetches remote ADD sources, computes every vertex's cache key
    /// (reading the context files that COPY selects) and prepares the solve.
    pub async fn new(
        store: Store,
        images: Arc<ImageResolver>,
        graph: BuildGraph,
        opts: SolveOptions,
        progress: Arc<dyn Progress>,
    ) -> Result<Self, SolveError> {
        let ignore = context_ignore(&graph).map_err(SolveError::Other)?;
        // In the store's tmp, which prune clears of what killed builds left.
        let fetch_dir = tempfile::Builder::new()
            .prefix("fetch-")
            .tempdir_in(store.root().join("tmp"))
            .map_err(|e| {
                SolveError::Other(format!("temp dir in {}: {e}", store.root().display()))
            })?;
        let remotes = fetch_remotes(&graph, fetch_dir.path()).await?;
        let sums = remotes
            .iter()
            .map(|(k, f)| (*k, f.checksum.clone()))
            .collect();
        let view = HostTree::new(&opts.context_dir);
        let context_name = std::fs::canonicalize(&opts.context_dir)
            .unwrap_or_else(|_| opts.context_dir.clone())
            .display()
            .to_string();
        let hashes = store.file_hashes(&context_name);
        let platform = images.platform_name();
        let keys::Keys {
            keys,
            records,
            ingredients,
        } = keys::compute(&graph, &platform, &sums, |copies| {
            let ignored = |p: &str| ignore.is_excluded(p);
            context::checksum(&view, copies, &ignored, Some(&hashes), opts.context_modes)
        })
        .map_err(|(i, message)| {
            step_error(&graph, i, format!("failed to compute cache key: {message}"))
        })?;
        hashes.save()?;
        let n = graph.nodes.len();
        Ok(Self {
            store,
            images,
            runs: Semaphore::new(opts.max_parallel_runs.max(1)),
            graph,
            opts,
            progress,
            keys,
            records,
            ingredients,
            remotes,
            _fetch_dir: fetch_dir,
            reported: Mutex::new(vec![false; n]),
        })
    }

    /// The cache key of every node, in graph order.
    pub fn keys(&self) -> &[CacheKey] {
        &self.keys
    }

    /// Realizes the target.
    pub async fn solve(self) -> Result<SolveResult, SolveError> {
        let target = self.graph.target.0;
        let inputs = (self.graph.nodes.iter())
            .map(|n| n.inputs.iter().map(|x| x.0).collect())
            .collect();
        let keys = self.keys.clone();
        let me = Arc::new(self);
        let dag = Arc::new(Dag::new(me.clone(), inputs, &keys));
        let result = dag
            .clone()
            .solve(target)
            .await
            .map_err(|f| me.failure_error(f))?;
        let mut layer_added = Vec::with_capacity(me.graph.layer_nodes.len());
        let mut layer_created = Vec::with_capacity(me.graph.layer_nodes.len());
        for node in &me.graph.layer_nodes {
            let (added, created) = match dag.outcome(node.0) {
                Some(Ok(r)) => (r.added, r.created),
                // Not realized because a later step was cached: read the record.
                _ => me
                    .cached(node.0)?
                    .map_or((false, now_secs()), |r| (r.added, r.created)),
            };
            layer_added.push(added);
            layer_created.push(created);
        }
        Ok(SolveResult {
            state: result.state,
            layer_added,
            layer_created,
        })
    }

    fn failure_error(&self, f: Failure) -> SolveError {
        if f.cancelled {
            return SolveError::Cancelled;
        }
        step_error(&self.graph, f.node, f.message)
    }

    /// Node `i`'s recorded result, if it has one; a linked copy's record
    /// holds its own layer only, stacked on whatever its base is now.
    async fn hit(self: Arc<Self>, dag: Arc<Dag<Self>>, i: usize) -> Outcome<Option<NodeResult>> {
        let node = &self.graph.nodes[i];
        if !matches!(node.op, Op::Exec(_) | Op::File(_)) {
            return Ok(None);
        }
        let link_base = match keys::is_link(&node.op) {
            true => Some(dag.realize(node.inputs[0].0).await?.state),
            false => None,
        };
        let Some(mut hit) = self.cached(i).map_err(|e| Failure::of(i, e.to_string()))? else {
            if let Op::Exec(op) = &node.op
                && op.network == rbuild_frontend::graph::NetworkMode::Default
            {
                // A RUN that will run: its network starts while its
                // inputs are made.
                rbuild_executor::prepare_network();
            }
            return Ok(None);
        };
        self.report_cached(i);
        if let Some(base) = link_base {
            hit.state.splice(0..0, base);
        }
        Ok(Some(hit))
    }

    /// Makes node `i`'s result from its inputs': a source, or a step
    /// found under its content key, or run.
    async fn make(&self, i: usize, inputs: Vec<NodeResult>) -> Result<NodeResult, String> {
        let node = &self.graph.nodes[i];
        let started = Instant::now();
        match &node.op {
            Op::Scratch | Op::Context(_) => Ok(NodeResult {
                state: Vec::new(),
                added: false,
                created: 0,
            }),
            Op::Image(source) => {
                self.start(i);
                let image = self.images.resolve(&source.reference).await;
                let image = image.map_err(|e| {
                    self.finish(i, VertexStatus::Error(started.elapsed()));
                    e.to_string()
                })?;
                self.finish(i, VertexStatus::Done(started.elapsed()));
                Ok(NodeResult {
                    state: image.layers.clone(),
                    added: false,
                    created: 0,
                })
            }
            Op::Exec(_) | Op::File(_) => {
                let content_key = self.content_key(i, &inputs).await?;
                if let Some((key, _)) = &content_key
                    && let Some(mut hit) = self.cached_as(i, key).map_err(|e| e.to_string())?
                {
                    self.report_cached(i);
                    if keys::is_link(&node.op) {
                        hit.state.splice(0..0, inputs[0].state.iter().cloned());
                    }
                    return Ok(hit);
                }
                self.start(i);
                let result = self.run_step(i, &inputs, content_key).await;
                let status = match &result {
                    Ok(_) => VertexStatus::Done(started.elapsed()),
                    Err(_) => VertexStatus::Error(started.elapsed()),
                };
                self.finish(i, status);
                result
            }
        }
    }

    /// The recorded result of node `i`, unless `--no-cache` or something it
    /// names is gone.
    fn cached(&self, i: usize) -> Result<Option<NodeResult>, SolveError> {
        if self.opts.no_cache {
            return Ok(None);
        }
        let Some(record) = self.store.get_record(&self.records[i])? else {
            return Ok(None);
        };
        self.usable(&self.records[i], record)
    }

    /// The result recorded under node `i`'s content key `key` (see
    /// [`Self::content_key`]), now also recorded under its key, so that
    /// the next build finds it without computing the content key.
    fn cached_as(&self, i: usize, key: &CacheKey) -> Result<Option<NodeResult>, SolveError> {
        let Some(record) = self.store.get_record(key)? else {
            return Ok(None);
        };
        let result = self.usable(key, record.clone())?;
        if result.is_some() {
            let mine = CacheRecord {
                ingredients: Some(self.ingredients[i].clone()),
                ..record
            };
            self.store.put_record(&self.records[i], &mine)?;
        }
        Ok(result)
    }

    /// `record` as a result, unless a snapshot it names is gone; marks it used.
    fn usable(
        &self,
        key: &CacheKey,
        record: CacheRecord,
    ) -> Result<Option<NodeResult>, SolveError> {
        if !record.snapshots.iter().all(|s| self.store.has_snapshot(s)) {
            return Ok(None);
        }
        self.store.touch_record(key)?;
        Ok(Some(NodeResult {
            state: record.snapshots.into_iter().map(Layer::Snapshot).collect(),
            added: record.added,
            // A record that does not say when it was made counts as new.
            created: Some(record.created)
                .filter(|&t| t > 0)
                .unwrap_or_else(now_secs),
        }))
    }

    /// The content key of a copy from earlier stages (`COPY --from=stage`),
    /// as BuildKit keys such copies: from the op, its base's key and the
    /// checksum of exactly the files it selects in each source stage
    /// (content, modes, owners, times), instead of the source stages' keys.
    /// A source stage that was rebuilt but left the copied files as they
    /// were then still hits the cache. `None` for every other node, and
    /// with `--no-cache`.
    async fn content_key(
        &self,
        i: usize,
        inputs: &[NodeResult],
    ) -> Result<Option<(CacheKey, KeyIngredients)>, String> {
        let node = &self.graph.nodes[i];
        let Op::File(op) = &node.op else {
            return Ok(None);
        };
        let is_stage = |n: &NodeId| matches!(self.graph.nodes[n.0].op, Op::Exec(_) | Op::File(_));
        let stage_inputs = node.inputs.iter().skip(1).filter(|n| is_stage(n)).count();
        let all_copies = op
            .actions
            .iter()
            .all(|a| matches!(a, FileAction::Copy(c) if c.remote.is_none()));
        if self.opts.no_cache
            || stage_inputs == 0
            || stage_inputs + 1 != node.inputs.len()
            || !all_copies
        {
            return Ok(None);
        }
        let mut sources = Vec::new();
        for (pos, input) in inputs.iter().enumerate().skip(1) {
            let snaps = self.materialize(&input.state).await?;
            let layers: Vec<PathBuf> = snaps.iter().map(|s| self.store.snapshot_path(s)).collect();
            sources.push((pos, layers));
        }
        let op = op.clone();
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
                    context::stage_checksum(&LayerStack::new(layers), &copies)
                })
                .collect::<Result<Vec<String>, String>>()
        })
        .await
        .map_err(|e| e.to_string())??;
        Ok(Some(keys::content_key(&self.ingredients[i], &sums)))
    }

    /// Runs step `i` (RUN, COPY, ADD, WORKDIR) on its inputs' results and
    /// records its result.
    async fn run_step(
        &self,
        i: usize,
        inputs: &[NodeResult],
        content_key: Option<(CacheKey, KeyIngredients)>,
    ) -> Result<NodeResult, String> {
        let node = &self.graph.nodes[i];
        let link = keys::is_link(&node.op);
        if link && let Op::File(f) = &node.op {
            named_chown_refused(f)?;
        }
        let base = match link {
            true => Vec::new(),
            false => self.materialize(&inputs[0].state).await?,
        };
        let lowers: Vec<PathBuf> = base.iter().map(|s| self.store.snapshot_path(s)).collect();
        let pending = self.store.new_snapshot().map_err(|e| e.to_string())?;
        let upper = pending.dir().to_path_buf();
        match &node.op {
            Op::Exec(op) => {
                let inputs = self.mount_inputs(&node.inputs, inputs).await?;
                let _permit = self.runs.acquire().await.map_err(|e| e.to_string())?;
                let (op, work, progress) = (
                    op.clone(),
                    pending.work_dir().to_path_buf(),
                    self.progress.clone(),
                );
                let upper = upper.clone();
                let limits = self.opts.limits;
                tokio::task::spawn_blocking(move || {
                    exec::run(&op, lowers, (upper, work), &inputs, limits, &mut |line| {
                        progress.log(i, line)
                    })
                })
                .await
                .map_err(|e| e.to_string())??;
            }
            Op::File(op) => {
                let mut sources: Vec<Option<Vec<PathBuf>>> = Vec::new();
                for (pos, input) in node.inputs.iter().enumerate() {
                    let layers = match (&self.graph.nodes[input.0].op, pos) {
                        (Op::Context(_), _) | (_, 0) => None,
                        _ => {
                            let snaps = self.materialize(&inputs[pos].state).await?;
                            Some(snaps.iter().map(|s| self.store.snapshot_path(s)).collect())
                        }
                    };
                    sources.push(layers);
                }
                let op = op.clone();
                let graph_inputs: Vec<NodeId> = node.inputs.clone();
                let ignore = context_ignore(&self.graph)?;
                let context_dir = self.opts.context_dir.clone();
                let context_modes = self.opts.context_modes;
                let is_context: Vec<bool> = graph_inputs
                    .iter()
                    .map(|n| matches!(self.graph.nodes[n.0].op, Op::Context(_)))
                    .collect();
                let upper = upper.clone();
                let remotes: Vec<(usize, Fetched)> = (0..op.actions.len())
                    .filter_map(|a| self.remotes.get(&(i, a)).map(|f| (a, f.clone())))
                    .collect();
                tokio::task::spawn_blocking(move || {
                    let inputs = FileInputs {
                        sources: &sources,
                        is_context: &is_context,
                        context_dir: &context_dir,
                        context_modes,
                        ignore: &ignore,
                        remotes: &remotes,
                    };
                    apply_file_op(&op, &lowers, &upper, &inputs)
                })
                .await
                .map_err(|e| e.to_string())??;
            }
            _ => unreachable!("only exec and file ops run"),
        }
        let added = std::fs::read_dir(&upper)
            .map_err(|e| format!("read {}: {e}", upper.display()))?
            .next()
            .is_some();
        let mut snapshots = base;
        if added {
            let id = self.snapshot_id(i);
            pending.commit(&id).map_err(|e| e.to_string())?;
            snapshots.push(id);
        }
        let created = now_secs();
        let mine = (self.records[i].clone(), self.ingredients[i].clone());
        for (key, ingredients) in std::iter::once(mine).chain(content_key) {
            let record = CacheRecord {
                snapshots: snapshots.clone(),
                added,
                created,
                ingredients: Some(ingredients),
            };
            self.store
                .put_record(&key, &record)
                .map_err(|e| e.to_string())?;
        }
        let mut state: State = match link {
            true => inputs[0].state.clone(),
            false => Vec::new(),
        };
        state.extend(snapshots.into_iter().map(Layer::Snapshot));
        Ok(NodeResult {
            state,
            added,
            created,
        })
    }

    /// What the `RUN --mount`s of an exec need: secrets, the store (cache
    /// dirs, room for bind copies), and the states and keys of its inputs.
    async fn mount_inputs(
        &self,
        graph_inputs: &[NodeId],
        results: &[NodeResult],
    ) -> Result<exec::MountInputs, String> {
        let mut out = exec::MountInputs {
            secrets: self.opts.secrets.clone(),
            ssh: self.opts.ssh.clone(),
            ..Default::default()
        };
        for (pos, input) in graph_inputs.iter().enumerate().skip(1) {
            let source = match &self.graph.nodes[input.0].op {
                Op::Context(_) => BindSource::Context {
                    dir: self.opts.context_dir.clone(),
                    ignore: context_ignore(&self.graph)?,
                    modes: self.opts.context_modes,
                },
                _ => {
                    let snaps = self.materialize(&results[pos].state).await?;
                    BindSource::Layers(snaps.iter().map(|s| self.store.snapshot_path(s)).collect())
                }
            };
            out.binds.resize(pos + 1, None);
            out.binds[pos] = Some(source);
        }
        out.store = Some(self.store.clone());
        out.keys = graph_inputs
            .iter()
            .map(|n| self.keys[n.0].to_string())
            .collect();
        Ok(out)
    }

    /// The id of a new snapshot: the key itself, unless `--no-cache` asked
    /// for a fresh run whose result may differ from an earlier one.
    fn snapshot_id(&self, i: usize) -> String {
        if !self.opts.no_cache {
            return self.records[i].to_string();
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let mut h = blake3::Hasher::new();
        h.update(self.records[i].as_str().as_bytes());
        h.update(&nanos.to_le_bytes());
        h.update(&std::process::id().to_le_bytes());
        h.finalize().to_hex().to_string()
    }

    /// Unpacks (pulling first if needed) every layer of a state.
    async fn materialize(&self, state: &State) -> Result<Vec<String>, String> {
        try_join_all(state.iter().map(|l| self.images.snapshot(l)))
            .await
            .map_err(|e| e.to_string())
    }

    fn start(&self, i: usize) {
        self.reported.lock().expect("poisoned")[i] = true;
        self.progress.started(i, &self.graph.nodes[i].name);
    }

    fn finish(&self, i: usize, status: VertexStatus) {
        self.progress.finished(i, &self.graph.nodes[i].name, status);
    }

    /// Reports node `i` and all its not yet reported ancestors as cached.
    fn report_cached(&self, i: usize) {
        let mut order = Vec::new();
        {
            let mut reported = self.reported.lock().expect("poisoned");
            let mut stack = vec![i];
            while let Some(n) = stack.pop() {
                if reported[n] {
                    continue;
                }
                reported[n] = true;
                let node = &self.graph.nodes[n];
                if !matches!(node.op, Op::Scratch | Op::Context(_)) {
                    order.push(n);
                }
                stack.extend(node.inputs.iter().map(|x| x.0));
            }
        }
        order.sort_unstable();
        for n in order {
            self.progress.started(n, &self.graph.nodes[n].name);
            self.finish(n, VertexStatus::Cached);
        }
    }
}

impl Vertices for Solver {
    type Output = NodeResult;

    fn recorded(
        self: Arc<Self>,
        dag: Arc<Dag<Self>>,
        i: usize,
    ) -> BoxFuture<'static, Outcome<Option<NodeResult>>> {
        self.hit(dag, i).boxed()
    }

    fn run(
        self: Arc<Self>,
        i: usize,
        inputs: Vec<NodeResult>,
    ) -> BoxFuture<'static, Result<NodeResult, String>> {
        async move { self.make(i, inputs).await }.boxed()
    }
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

fn apply_file_op(
    op: &rbuild_frontend::graph::FileOp,
    lowers: &[PathBuf],
    upper: &Path,
    inputs: &FileInputs<'_>,
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
    fileop::apply(op, lowers, upper, &views, &remotes)
}

/// A linked copy is made on an empty tree, with no /etc/passwd to read
/// names from: `--chown` must be numeric (or `root`), as BuildKit requires
/// ("invalid user index: -1"; newer frontends refuse it while parsing).
fn named_chown_refused(op: &rbuild_frontend::graph::FileOp) -> Result<(), String> {
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

/// Fetches every remote ADD source of the graph into `dir`.
async fn fetch_remotes(
    graph: &BuildGraph,
    dir: &Path,
) -> Result<HashMap<(usize, usize), Fetched>, SolveError> {
    let mut out = HashMap::new();
    for (i, node) in graph.nodes.iter().enumerate() {
        let Op::File(f) = &node.op else { continue };
        for (a, action) in f.actions.iter().enumerate() {
            if let rbuild_frontend::graph::FileAction::Copy(CopyAction {
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

/// The `.dockerignore` matcher of the graph's context source.
fn context_ignore(graph: &BuildGraph) -> Result<IgnoreMatcher, String> {
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

fn step_error(graph: &BuildGraph, i: usize, message: String) -> SolveError {
    let node = &graph.nodes[i];
    SolveError::Step {
        step: node.name.clone(),
        location: node.location,
        message,
    }
}
