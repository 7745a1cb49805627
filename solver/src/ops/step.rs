//! What every step (RUN, COPY, ADD, WORKDIR) does around its own work: a
//! new snapshot over its base's layers, kept if the step changed anything,
//! and the result recorded under the step's keys.

use std::path::{Path, PathBuf};

use rbuild_cache::{CacheRecord, CopiedWriter, PendingSnapshot};

use super::ContentKey;
use crate::error::StepFailure;
use crate::schedule::{NodeResult, Solver, now_secs};
use crate::state::{Layer, State};

/// A step under way: its base unpacked, its snapshot started.
pub(crate) struct Step<'a> {
    solver: &'a Solver,
    i: usize,
    /// Whether it is a linked copy, made on an empty tree.
    link: bool,
    /// The base's snapshots (none for a linked copy).
    base: Vec<String>,
    /// The base's snapshot dirs, bottom first.
    lowers: Vec<PathBuf>,
    pending: PendingSnapshot,
}

impl<'a> Step<'a> {
    /// Starts step `i` on `base` (input 0's result): unpacks it unless the
    /// step is a linked copy, and starts an empty snapshot.
    pub(crate) async fn begin(
        solver: &'a Solver,
        i: usize,
        base: &NodeResult,
        link: bool,
    ) -> Result<Self, StepFailure> {
        let base = match link {
            true => Vec::new(),
            false => solver.materialize(&base.state).await?,
        };
        let lowers = solver.snapshot_paths(&base);
        let pending = solver.store().new_snapshot().map_err(|e| e.to_string())?;
        Ok(Step {
            solver,
            i,
            link,
            base,
            lowers,
            pending,
        })
    }

    /// The base's snapshot dirs, bottom first.
    pub(crate) fn lowers(&self) -> &[PathBuf] {
        &self.lowers
    }

    /// Where the step writes its changes.
    pub(crate) fn upper(&self) -> &Path {
        self.pending.dir()
    }

    /// The overlay work dir beside [`Self::upper`].
    pub(crate) fn work(&self) -> &Path {
        self.pending.work_dir()
    }

    /// Starts the record of the source stamps of the context files the
    /// step copies, kept with its snapshot for the next run to share from.
    pub(crate) fn copied_writer(&self) -> Result<CopiedWriter, String> {
        self.pending.copied_writer().map_err(|e| e.to_string())
    }

    /// Keeps `made`, the source stamps of the context files a copy staged
    /// ahead of the step recorded (see [`Self::copied_writer`]), with its
    /// snapshot.
    pub(crate) fn adopt_copied(&self, made: &Path) -> Result<(), String> {
        self.pending.adopt_copied(made).map_err(|e| e.to_string())
    }

    /// Records that the step's copy shares files with snapshot `from`, so
    /// that its layer export can reuse that snapshot's layer bytes.
    pub(crate) fn record_shared_from(&self, from: &str) -> Result<(), String> {
        self.pending
            .record_shared_from(from)
            .map_err(|e| e.to_string())
    }

    /// Keeps the changes as a snapshot if there are any, records the
    /// result under the step's key (and `content_key`; written while the
    /// next steps go on), and returns it on `base`.
    pub(crate) fn commit(
        self,
        base: &NodeResult,
        content_key: ContentKey,
    ) -> Result<NodeResult, StepFailure> {
        let (solver, i) = (self.solver, self.i);
        let upper = self.pending.dir();
        let changed = std::fs::read_dir(upper)
            .map_err(|e| format!("read {}: {e}", upper.display()))?
            .next()
            .is_some();
        // A step that left only unchanged copied-up directories (`RUN
        // true`: its mount points' /etc) adds no layer, as BuildKit drops
        // a layer whose diff is empty; its snapshot is not kept either, so
        // the next step's overlay does not grow by a layer of nothing.
        let added = changed
            && !self
                .pending
                .only_unchanged_dirs()
                .map_err(|e| e.to_string())?;
        let mut snapshots = self.base;
        if added {
            let id = snapshot_id(solver, i);
            self.pending.commit(&id).map_err(|e| e.to_string())?;
            snapshots.push(id);
        }
        let created = now_secs();
        // The record under the step's key names the content key's.
        let linked = content_key.as_ref().map(|(key, _)| key.clone());
        let mine = (solver.records[i].clone(), solver.ingredients[i].clone());
        let records = std::iter::once((mine, linked)).chain(content_key.map(|k| (k, None)));
        for ((key, ingredients), content_key) in records {
            let record = CacheRecord {
                snapshots: snapshots.clone(),
                added,
                created,
                ingredients: Some(solver.recorded(i, ingredients)),
                content_key,
            };
            solver.record(key, record);
        }
        let mut state: State = match self.link {
            true => base.state.clone(),
            false => Vec::new(),
        };
        state.extend(snapshots.into_iter().map(Layer::Snapshot));
        Ok(NodeResult {
            state,
            added,
            created,
        })
    }
}

/// The id of step `i`'s new snapshot: its record key, unless `--no-cache`
/// asked for a fresh run whose result may differ from an earlier one.
fn snapshot_id(solver: &Solver, i: usize) -> String {
    if !solver.opts.ignores_cache(i) {
        return solver.records[i].to_string();
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut h = blake3::Hasher::new();
    h.update(solver.records[i].as_str().as_bytes());
    h.update(&nanos.to_le_bytes());
    h.update(&std::process::id().to_le_bytes());
    h.finalize().to_hex().to_string()
}
