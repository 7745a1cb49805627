//! The scheduler: realizes the target on demand. A vertex with a cached
//! result is done without touching its inputs; otherwise its inputs are
//! realized concurrently, then it runs. Vertices with equal keys share one
//! realization, and RUN steps are limited to a number at a time.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::future::{BoxFuture, FutureExt, try_join_all};
use rbuild_cache::{
    BuildEntry, CacheKey, CacheRecord, KeyIngredients, KeyInput, Store, StoreError,
};
use rbuild_explain::{Cause, NoCache};
use rbuild_frontend::graph::{BuildGraph, NodeId, Op};
use tokio::task::JoinHandle;

use crate::context;
use crate::dag::{Dag, Failure, Outcome, Vertices};
use crate::error::{SolveError, StepFailure};
use crate::image::ImageResolver;
use crate::imported::{ImportedCache, ImportedStep};
use crate::keys;
use crate::layered::HostTree;
use crate::modes::ContextModes;
use crate::ops::{self, context_ignore, fetch_remotes};
use crate::progress::{Progress, VertexStatus};
use crate::remote::Fetched;
use crate::run_gate::{Place, RunGate};
use crate::staging::Staging;
use crate::state::{Layer, State};
use crate::why::Why;

/// How a solve behaves.
#[derive(Debug, Clone)]
pub struct SolveOptions {
    /// The build context directory.
    pub context_dir: PathBuf,
    /// Ignore cached results (`--no-cache`); results are still recorded.
    pub no_cache: bool,
    /// Nodes whose cached results are ignored besides (`--no-cache-filter`:
    /// a stage's steps and what depends on them).
    pub no_cache_nodes: std::collections::BTreeSet<usize>,
    /// How many RUN steps may run at once (of those ready, the first in
    /// the Dockerfile first).
    pub max_parallel_runs: usize,
    /// Secret id → host file, for `RUN --mount=type=secret`.
    pub secrets: BTreeMap<String, PathBuf>,
    /// Ssh agent id → agent socket, for `RUN --mount=type=ssh` (`--ssh`).
    pub ssh: BTreeMap<String, PathBuf>,
    /// Resource limits of every RUN (`--memory`, `--cpus`, `--pids-limit`).
    pub limits: rbuild_executor::Limits,
    /// The permission bits context files carry into the image.
    pub context_modes: ContextModes,
    /// Results to use where the store has none (`--cache-from`).
    pub imported: Option<Arc<dyn ImportedCache>>,
    /// The target platform: of every node that names no other (an
    /// ingredient of its key) and of the base images such nodes read.
    pub platform: rbuild_image::Platform,
    /// The `SOURCE_DATE_EPOCH` the build's layers clamp file times to
    /// (a copy from a stage keys on times as its layer keeps them).
    pub epoch: Option<i64>,
    /// Whether a `COPY --from` is made ahead of its base, as soon as its
    /// source is (see the solver's staging); the result is the same
    /// either way.
    pub stage_copies: bool,
}

impl SolveOptions {
    /// Whether node `i` runs whatever the cache holds.
    pub fn ignores_cache(&self, i: usize) -> bool {
        self.no_cache || self.no_cache_nodes.contains(&i)
    }
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

/// One image a solve realizes: the node holding its filesystem and the
/// nodes that add its layers (as [`BuildGraph::layer_nodes`]).
#[derive(Debug, Clone)]
pub struct Target {
    /// The node whose state is the image's filesystem.
    pub node: NodeId,
    /// The nodes of its stage that add a layer, in order.
    pub layer_nodes: Vec<NodeId>,
}

/// What realizing a node gives.
#[derive(Debug, Clone)]
pub struct NodeResult {
    /// Its filesystem: layers bottom first.
    pub(crate) state: State,
    /// Whether it added a layer of its own.
    pub(crate) added: bool,
    /// When the result was first made (Unix seconds).
    pub(crate) created: i64,
}

impl NodeResult {
    /// An empty filesystem, made by nothing.
    pub(crate) fn empty() -> Self {
        NodeResult {
            state: Vec::new(),
            added: false,
            created: 0,
        }
    }
}

/// When a recorded result was made: a record that does not say
/// (`created` 0) counts as new.
fn made_at(created: i64) -> i64 {
    if created > 0 { created } else { now_secs() }
}

/// Now, in Unix seconds.
pub(crate) fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Solves one build graph.
pub struct Solver {
    store: Store,
    pub(crate) images: Arc<ImageResolver>,
    pub(crate) graph: BuildGraph,
    pub(crate) opts: SolveOptions,
    pub(crate) progress: Arc<dyn Progress>,
    pub(crate) keys: Vec<CacheKey>,
    /// What each node's result is recorded under (see [`keys::Keys`]).
    pub(crate) records: Vec<CacheKey>,
    /// What each record key is hashed from, kept in its record with the
    /// variables listed (see [`Self::recorded`]).
    pub(crate) ingredients: Vec<KeyIngredients>,
    /// Fetched remote sources by (node, action).
    pub(crate) remotes: HashMap<(usize, usize), Fetched>,
    /// Where they were fetched; removed with the solver.
    _fetch_dir: tempfile::TempDir,
    /// Which RUN steps run: `max_parallel_runs` at once, in Dockerfile
    /// order.
    pub(crate) runs: RunGate,
    /// Which nodes progress has been told about.
    reported: Mutex<Vec<bool>>,
    /// For each node, the first node with its key: what progress shows of
    /// equal vertices (of two platforms' graphs, say), realized once.
    first_of_key: Vec<usize>,
    /// For each node, the shown nodes it reads (see [`shown_inputs`]).
    shown_inputs: Vec<Vec<usize>>,
    /// Set when the solve stops (see [`Dag::new`]).
    stop: Arc<AtomicBool>,
    /// What a miss is explained with.
    why: Why,
    /// Records being written (see [`Solver::record`]).
    writes: Mutex<Vec<JoinHandle<Result<(), StoreError>>>>,
    /// Node key → the content key its state is known by too (see
    /// [`Self::content_ingredients`]).
    content_of: Mutex<HashMap<CacheKey, CacheKey>>,
    /// The copies being made ahead of their bases.
    pub(crate) staging: Staging,
    /// Told of every layer a step makes (see [`Self::on_layer_made`]).
    layer_made: Option<LayerMade>,
    /// Handed the trees of staged copies (see [`Self::on_tree_staged`]).
    pub(crate) staged_layers: Option<Arc<dyn StagedLayers>>,
}

/// What is told of a layer a step made: the step's node, the new
/// snapshot's id, and whether the snapshot is the staged tree that
/// [`StagedLayers::pre_export`] took for the node.
pub type LayerMade = Box<dyn Fn(usize, &str, bool) + Send + Sync>;

/// Makes layers ahead from the trees of copies staged ahead of their
/// bases (see [`Solver::on_tree_staged`]).
pub trait StagedLayers: Send + Sync {
    /// Whether node `node`'s layer is wanted ahead; `waits`: whether
    /// its step still waits for other steps than its base (the later
    /// steps of the source stage its copy read an earlier state of),
    /// which making the layer now would overlap. When it does not, the
    /// layer made ahead only delays the step.
    fn wants(&self, node: usize, waits: bool) -> bool;
    /// Makes what it needs of `tree`, every entry below which is node
    /// `node`'s layer if its step commits the staged copy; whether it
    /// did. `tree` must be left as it is.
    fn pre_export(&self, node: usize, tree: &Path) -> bool;
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
        let platform = opts.platform.to_string();
        let mut listings = HashMap::new();
        let keys::Keys {
            keys,
            records,
            ingredients,
        } = keys::compute(&graph, &platform, &sums, |copies| {
            let ignored = |p: &str| ignore.is_excluded(p);
            let (sum, listing) = context::checksum_listed(
                &view,
                copies,
                &ignored,
                Some(&hashes),
                opts.context_modes,
            )?;
            listings.insert(sum.clone(), listing);
            Ok::<_, String>(sum)
        })
        .map_err(|(i, message)| {
            step_error(&graph, i, format!("failed to compute cache key: {message}"))
        })?;
        hashes.save()?;
        let n = graph.nodes.len();
        let first_of_key = first_of_key(&keys);
        let shown_inputs = shown_inputs(&graph, &first_of_key);
        Ok(Self {
            store,
            images,
            runs: RunGate::new(opts.max_parallel_runs, run_places(&graph)),
            graph,
            opts,
            progress,
            keys,
            records,
            ingredients,
            remotes,
            _fetch_dir: fetch_dir,
            reported: Mutex::new(vec![false; n]),
            first_of_key,
            shown_inputs,
            stop: Arc::default(),
            why: Why::new(listings),
            writes: Mutex::default(),
            content_of: Mutex::default(),
            staging: Staging::default(),
            layer_made: None,
            staged_layers: None,
        })
    }

    /// Explains every step that runs (see [`crate::why`]) against
    /// `previous`, the latest build of the same tag, else of the same
    /// Dockerfile and target; without it, each never ran before.
    pub fn compare_with(&mut self, previous: BuildEntry) {
        self.why.compare_with(&self.store, previous);
    }

    /// Explains a step that `compare_with` has no record of against the
    /// same step among `steps`, those the cache sources recorded (the
    /// first source's first).
    pub fn compare_with_cache(&mut self, steps: &[ImportedStep]) {
        self.why.compare_with_cache(steps);
    }

    /// Tells `told` of each layer a step makes, as soon as its snapshot is
    /// in the store (not of layers found in the cache): a build exports
    /// its image's layers while the later steps run.
    pub fn on_layer_made(&mut self, told: LayerMade) {
        self.layer_made = Some(told);
    }

    /// Hands `layers` the tree of each copy staged ahead of its base
    /// that its hook wants, once the step's base is made and the tree's
    /// ancestors are what the commit makes them: while the steps the
    /// copy waits for still run, the layer can be made from it. Whether
    /// the step then committed that tree as its layer is told to
    /// [`Self::on_layer_made`]'s hook.
    pub fn on_tree_staged(&mut self, layers: Arc<dyn StagedLayers>) {
        self.staged_layers = Some(layers);
    }

    /// The platform node `i` is for: its own, else the target's.
    pub(crate) fn node_platform(&self, i: usize) -> rbuild_image::Platform {
        match &self.graph.nodes[i].platform {
            Some(p) => {
                rbuild_image::Platform::parse(p).unwrap_or_else(|_| self.opts.platform.clone())
            }
            None => self.opts.platform.clone(),
        }
    }

    /// The cache key of every node, in graph order.
    pub fn keys(&self) -> &[CacheKey] {
        &self.keys
    }

    /// What every node's result is recorded under, in graph order: the
    /// keys a cache export lists.
    pub fn records(&self) -> &[CacheKey] {
        &self.records
    }

    /// Realizes the graph's target, unless `cancelled` completes first:
    /// then no step starts after it, the running ones end (their
    /// sandboxes are killed by whoever cancels) and the solve returns
    /// [`SolveError::Cancelled`].
    pub async fn solve(
        self,
        cancelled: impl Future<Output = ()>,
    ) -> Result<SolveResult, SolveError> {
        let target = Target {
            node: self.graph.target,
            layer_nodes: self.graph.layer_nodes.clone(),
        };
        let mut results = self
            .solve_all(std::slice::from_ref(&target), cancelled)
            .await?;
        Ok(results.remove(0))
    }

    /// Realizes several targets of the graph at once (the images of a
    /// multi-platform build), as [`Self::solve`]: a vertex they share, or
    /// two with equal keys, is realized once. Results in the order of
    /// `targets`.
    pub async fn solve_all(
        self,
        targets: &[Target],
        cancelled: impl Future<Output = ()>,
    ) -> Result<Vec<SolveResult>, SolveError> {
        let inputs = (self.graph.nodes.iter())
            .map(|n| n.inputs.iter().map(|x| x.0).collect())
            .collect();
        let keys = self.keys.clone();
        let stop = self.stop.clone();
        let me = Arc::new(self);
        let dag = Arc::new(Dag::new(me.clone(), inputs, &keys, stop));
        let solving = try_join_all(targets.iter().map(|t| dag.clone().solve(t.node.0)));
        tokio::pin!(solving);
        let states = tokio::select! {
            result = &mut solving => result,
            () = cancelled => {
                dag.cancel();
                solving.await
            }
        };
        me.staging.finish().await;
        let written = me.written().await;
        let states = states.map_err(|f| me.failure_error(f))?;
        written?;
        let results = targets.iter().zip(states);
        results
            .map(|(target, result)| me.target_result(&dag, target, result.state))
            .collect()
    }

    /// A realized target's result: its state and what its layer nodes did.
    fn target_result(
        &self,
        dag: &Dag<Self>,
        target: &Target,
        state: State,
    ) -> Result<SolveResult, SolveError> {
        let mut layer_added = Vec::with_capacity(target.layer_nodes.len());
        let mut layer_created = Vec::with_capacity(target.layer_nodes.len());
        for node in &target.layer_nodes {
            let (added, created) = match dag.outcome(node.0) {
                Some(Ok(r)) => (r.added, r.created),
                // Not realized because a later step was cached: read the record.
                _ => self.recorded_layer(node.0)?.unwrap_or((false, now_secs())),
            };
            layer_added.push(added);
            layer_created.push(created);
        }
        Ok(SolveResult {
            state,
            layer_added,
            layer_created,
        })
    }

    fn failure_error(&self, f: Failure) -> SolveError {
        if f.cancelled {
            return SolveError::Cancelled;
        }
        step_error(&self.graph, f.node, f.cause)
    }

    /// Node `i`'s recorded result, if it has one; a linked copy's record
    /// holds its own layer only, stacked on whatever its base is now.
    async fn hit(self: Arc<Self>, dag: Arc<Dag<Self>>, i: usize) -> Outcome<Option<NodeResult>> {
        let node = &self.graph.nodes[i];
        let op = ops::of(&node.op);
        if !op.cacheable() {
            return Ok(None);
        }
        let link_base = match op.links_onto_base() {
            true => Some(dag.clone().realize(node.inputs[0].0).await?.state),
            false => None,
        };
        let Some(mut hit) = self.cached(i).map_err(|e| Failure::of(i, e))? else {
            op.will_run();
            if let Some(plan) = op.staging_plan(&self, i) {
                Staging::start(&self, &dag, i, plan);
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
    async fn make(&self, i: usize, inputs: Vec<NodeResult>) -> Result<NodeResult, StepFailure> {
        let op = ops::of(&self.graph.nodes[i].op);
        if !op.shown() {
            return op.execute(self, i, &inputs, None).await;
        }
        let content_key = match op.content_key(self, i, &inputs).await? {
            Some(found) => Some(found),
            None => self.derived_key(i, op.cacheable()),
        };
        if let Some((key, _)) = &content_key {
            self.note_content(i, Some(key.clone()));
        }
        if let Some((key, _)) = &content_key
            && let Some(mut hit) = self.cached_as(i, key)?
        {
            self.report_cached(i);
            if op.links_onto_base() {
                hit.state.splice(0..0, inputs[0].state.iter().cloned());
            }
            return Ok(hit);
        }
        let started = Instant::now();
        let cause = match op.cacheable() {
            true => self.why.cause(
                &self.store,
                &self.graph,
                i,
                &self.recorded(i, self.ingredients[i].clone()),
                match (self.opts.no_cache, self.opts.no_cache_nodes.contains(&i)) {
                    (true, _) => NoCache::All,
                    (false, true) => NoCache::Filter,
                    (false, false) => NoCache::Off,
                },
            ),
            false => None,
        };
        self.start(i, cause.as_ref());
        let mut result = op.execute(self, i, &inputs, content_key).await;
        if result.is_ok() && op.cacheable() {
            let kept = self.why.keep_lists(&self.store, &self.ingredients[i]);
            result = kept.map_err(StepFailure::from).and(result);
        }
        if let (Ok(made), Some(told)) = (&result, &self.layer_made)
            && let (true, Some(Layer::Snapshot(id))) = (made.added, made.state.last())
        {
            told(i, id, self.staging.take_committed(i));
        }
        let status = match &result {
            Ok(_) => VertexStatus::Done(started.elapsed()),
            Err(_) => VertexStatus::Error(started.elapsed()),
        };
        self.finish(i, status);
        result
    }

    /// The recorded result of node `i`, unless `--no-cache` or something it
    /// names is gone.
    fn cached(&self, i: usize) -> Result<Option<NodeResult>, SolveError> {
        if self.opts.ignores_cache(i) {
            return Ok(None);
        }
        let key = &self.records[i];
        if let Some(record) = self.store.get_record(key)? {
            let content_key = record.content_key.clone();
            if let Some(result) = self.usable(key, record)? {
                self.note_content(i, content_key);
                return Ok(Some(result));
            }
        }
        Ok(self.imported(key).map(|(result, content_key)| {
            self.note_content(i, content_key);
            result
        }))
    }

    /// Notes that node `i`'s state is the one recorded under the content
    /// key `key` too, so that the content keys of its users name it by
    /// that. A linked copy's record is not its whole state: not noted.
    fn note_content(&self, i: usize, key: Option<CacheKey>) {
        if let Some(key) = key
            && !keys::is_link(&self.graph.nodes[i].op)
        {
            let mut known = self.content_of.lock().expect("poisoned");
            known.insert(self.keys[i].clone(), key);
        }
    }

    /// What node `i`'s record keeps of `ingredients` (its key's or a
    /// content key's): them with the step's variables listed (see
    /// [`keys::with_vars`]).
    pub(crate) fn recorded(&self, i: usize, ingredients: KeyIngredients) -> KeyIngredients {
        keys::with_vars(&self.graph.nodes[i], ingredients)
    }

    /// Node `i`'s record ingredients with each input state named by the
    /// content key it is known by, where it has one: a step on top of a
    /// copy found by its content key (its source stage rebuilt, the files
    /// it took the same) is found by these although its own key is new,
    /// as BuildKit's keys follow an input's content-based key. Whether
    /// any input was renamed.
    pub(crate) fn content_ingredients(&self, i: usize) -> (KeyIngredients, bool) {
        let mut ingredients = self.ingredients[i].clone();
        let known = self.content_of.lock().expect("poisoned");
        let mut renamed = false;
        for input in &mut ingredients.inputs {
            if let KeyInput::State(key) = input
                && let Some(content) = known.get(key)
            {
                *key = content.clone();
                renamed = true;
            }
        }
        (ingredients, renamed)
    }

    /// The content key of a cacheable step `i` with no key of its own
    /// kind: its key with its inputs named by their content keys, when
    /// one has any (see [`Self::content_ingredients`]).
    fn derived_key(&self, i: usize, cacheable: bool) -> ops::ContentKey {
        if !cacheable || self.opts.ignores_cache(i) {
            return None;
        }
        let (ingredients, renamed) = self.content_ingredients(i);
        renamed.then(|| (keys::key_of(&ingredients), ingredients))
    }

    /// Whether node `i`'s recorded result added a layer, and when it was
    /// made: for a node not realized because a later step was cached. Its
    /// snapshots are not looked for (the later step's hit found its own,
    /// these among them; checking every record's would make a cached
    /// build of n steps look n² snapshots up).
    fn recorded_layer(&self, i: usize) -> Result<Option<(bool, i64)>, SolveError> {
        if self.opts.ignores_cache(i) {
            return Ok(None);
        }
        let key = &self.records[i];
        let found = match self.store.get_record(key)? {
            Some(record) => {
                self.store.touch_record(key)?;
                Some((record.added, made_at(record.created)))
            }
            None => (self.imported(key)).map(|(r, _)| (r.added, r.created)),
        };
        Ok(found)
    }

    /// The result an imported cache holds under `key`, if any, and the
    /// content key it holds it under too.
    fn imported(&self, key: &CacheKey) -> Option<(NodeResult, Option<CacheKey>)> {
        let found = self.opts.imported.as_ref()?.lookup(key)?;
        let result = NodeResult {
            state: found.layers,
            added: found.added,
            created: made_at(found.created),
        };
        Some((result, found.content_key))
    }

    /// The result recorded under node `i`'s content key `key` (see
    /// [`ops::SolveOp::content_key`]) in the store, now also recorded
    /// under its key, so that the next build finds it without computing
    /// the content key; else the one an imported cache holds under it,
    /// noted there under its key too (for an export of this build).
    fn cached_as(&self, i: usize, key: &CacheKey) -> Result<Option<NodeResult>, SolveError> {
        if let Some(record) = self.store.get_record(key)?
            && let Some(result) = self.usable(key, record.clone())?
        {
            let mine = CacheRecord {
                ingredients: Some(self.recorded(i, self.ingredients[i].clone())),
                content_key: Some(key.clone()),
                ..record
            };
            self.store.put_record(&self.records[i], &mine)?;
            return Ok(Some(result));
        }
        let Some((result, _)) = self.imported(key) else {
            return Ok(None);
        };
        if let Some(imported) = &self.opts.imported {
            let ingredients = self.recorded(i, self.ingredients[i].clone());
            imported.alias(&self.records[i], key, &ingredients);
        }
        Ok(Some(result))
    }

    /// Whether node `i`'s content key with `sums` (the checksums of what
    /// it copies from each source) names a result, in the store or an
    /// imported cache, as its inputs' content keys are known now: a copy
    /// made ahead of its base is then not made (see [`crate::staging`]).
    pub(crate) fn has_content_result(&self, i: usize, sums: &[String]) -> bool {
        let (ingredients, _) = self.content_ingredients(i);
        let (key, _) = keys::content_key(&ingredients, sums);
        let stored = self.store.get_record(&key).ok().flatten();
        let usable = |r: CacheRecord| r.snapshots.iter().all(|s| self.store.has_snapshot(s));
        stored.is_some_and(usable)
            || (self.opts.imported.as_ref()).is_some_and(|cache| cache.lookup(&key).is_some())
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
            created: made_at(record.created),
        }))
    }

    /// Unpacks (pulling first if needed) every layer of a state.
    pub(crate) async fn materialize(&self, state: &State) -> Result<Vec<String>, StepFailure> {
        try_join_all(state.iter().map(|l| self.images.snapshot(l)))
            .await
            .map_err(StepFailure::from)
    }

    /// The dirs of snapshots `ids`, in order.
    pub(crate) fn snapshot_paths(&self, ids: &[String]) -> Vec<PathBuf> {
        ids.iter().map(|s| self.store.snapshot_path(s)).collect()
    }

    /// Records `record` under `key` on a blocking thread, so that its sync
    /// is not on the way to the next step; the solve waits for every
    /// record before it returns.
    pub(crate) fn record(&self, key: CacheKey, record: CacheRecord) {
        let store = self.store.clone();
        let write = tokio::task::spawn_blocking(move || store.put_record(&key, &record));
        self.writes.lock().expect("poisoned").push(write);
    }

    /// Waits for the records being written; the first failure.
    async fn written(&self) -> Result<(), SolveError> {
        let writes = std::mem::take(&mut *self.writes.lock().expect("poisoned"));
        for write in writes {
            write
                .await
                .map_err(|e| SolveError::Other(e.to_string()))??;
        }
        Ok(())
    }

    /// Whether the solve is stopping (cancelled, or a step failed): a
    /// step still waiting to start must not.
    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// The store results are kept in.
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// Reports node `i` as started; `cause` says why it was not cached.
    fn start(&self, i: usize, cause: Option<&Cause>) {
        self.reported.lock().expect("poisoned")[i] = true;
        let name = &self.graph.nodes[i].name;
        let inputs = &self.shown_inputs[i];
        match cause {
            Some(cause) => self.progress.started_after_miss(i, name, inputs, cause),
            None => self.progress.started(i, name, inputs),
        }
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
                let n = self.first_of_key[n];
                if reported[n] {
                    continue;
                }
                reported[n] = true;
                let node = &self.graph.nodes[n];
                if ops::of(&node.op).shown() {
                    order.push(n);
                }
                stack.extend(node.inputs.iter().map(|x| x.0));
            }
        }
        order.sort_unstable();
        for n in order {
            let name = &self.graph.nodes[n].name;
            self.progress.started(n, name, &self.shown_inputs[n]);
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
    ) -> BoxFuture<'static, Result<NodeResult, StepFailure>> {
        async move { self.make(i, inputs).await }.boxed()
    }

    fn gate(&self) -> Option<&RunGate> {
        Some(&self.runs)
    }
}

/// Where each RUN step of `graph` is in the Dockerfile, by node (see
/// [`RunGate`]); `None` for the other nodes.
fn run_places(graph: &BuildGraph) -> Vec<Option<Place>> {
    (graph.nodes.iter().enumerate())
        .map(|(i, node)| {
            let line = node.location.map_or(usize::MAX, |l| l.line);
            matches!(node.op, Op::Exec(_)).then_some((line, i))
        })
        .collect()
}

/// For each of `keys`, the index of the first equal one.
fn first_of_key(keys: &[CacheKey]) -> Vec<usize> {
    let mut first: HashMap<&CacheKey, usize> = HashMap::with_capacity(keys.len());
    (keys.iter().enumerate())
        .map(|(i, k)| *first.entry(k).or_insert(i))
        .collect()
}

/// For each node of `graph`, the nodes progress shows that it reads:
/// its inputs that are shown, and for each that is not (a context,
/// scratch), what that one reads, each as the first node with its key
/// (`first_of_key`), which is the one progress reports.
fn shown_inputs(graph: &BuildGraph, first_of_key: &[usize]) -> Vec<Vec<usize>> {
    let mut shown: Vec<Vec<usize>> = Vec::with_capacity(graph.nodes.len());
    for node in &graph.nodes {
        // Inputs come before the nodes that read them.
        let mut reads: Vec<usize> = Vec::new();
        for input in &node.inputs {
            let n = input.0;
            match ops::of(&graph.nodes[n].op).shown() {
                true => reads.push(first_of_key[n]),
                false => reads.extend_from_slice(&shown[n]),
            }
        }
        reads.sort_unstable();
        reads.dedup();
        shown.push(reads);
    }
    shown
}

/// Step `i`'s failure with `cause`, naming the step.
pub(crate) fn step_error(
    graph: &BuildGraph,
    i: usize,
    cause: impl Into<StepFailure>,
) -> SolveError {
    let node = &graph.nodes[i];
    let StepFailure { message, blob } = cause.into();
    SolveError::Step {
        step: node.name.clone(),
        location: node.location,
        message,
        blob: blob.map(Box::new),
    }
}
