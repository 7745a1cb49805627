//! A solved state's layers as image layers: each built snapshot exported
//! (a tar, its digest, the blob and its layer record), each base-image
//! blob made sure of. Several layers at once: each export ends in syncs
//! (the blob, the layer record) that are waits rather than work, and
//! concurrent syncs share the filesystem's journal commits.
//!
//! The layers the targets' steps make are exported while the solve goes
//! on, each as soon as its step made it ([`EarlyExports`]), so that at the
//! end only the last is left: the export at the end finds the others'
//! layer records in the store. A copy staged ahead of its base has its
//! layer's blob made from the staged tree while the steps it waits for
//! still run (see [`rbuild_solver::StagedLayers`]); once its step commits
//! that tree, only the layer record is left to write.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rbuild_cache::{LayerRecord, Store};
use rbuild_exporter::{Compression, ExportOptions, TreeBlob};
use rbuild_frontend::graph::BuildGraph;
use rbuild_solver::{Layer, StagedLayers, Target};

use crate::pool::BoundedPool;
use crate::remote_cache;
use crate::{BuildError, BuildRequest, Session};

/// How many layers are exported at once: by the early exports during
/// the solve, and by the export at the end (which starts after the early
/// ones are done, so the two never add up).
const WORKERS: usize = 8;

/// How the layers of an image in the store are exported at `epoch`
/// (`SOURCE_DATE_EPOCH`): uncompressed, with OCI media types.
pub(crate) fn export_options(epoch: Option<i64>) -> ExportOptions {
    ExportOptions {
        compression: Compression::Uncompressed,
        source_date_epoch: epoch,
        oci_mediatypes: true,
    }
}

/// The layers of a solve's targets exported while it goes on, each as
/// soon as a step made it and one of [`WORKERS`] threads is free (a
/// 120-layer image would otherwise export all its layers at once). A
/// failed export is left for the export at the end, which makes it again
/// and reports it.
pub(crate) struct EarlyExports {
    /// The nodes whose layers are the targets': each target's node and
    /// those its filesystem is made on.
    nodes: HashSet<usize>,
    /// Exports snapshots by id, or records a blob made ahead as one's.
    exports: BoundedPool<(String, Option<TreeBlob>)>,
    /// Where the blobs made ahead go, and how they are made.
    store: Store,
    opts: ExportOptions,
    /// The blobs made ahead from staged trees, by node, until the node's
    /// step commits one (a blob left here is never recorded: `prune`
    /// collects it).
    made_ahead: Mutex<HashMap<usize, TreeBlob>>,
}

impl EarlyExports {
    /// Exports to `store` as `opts` say the layers made by the nodes of
    /// `graph` that the filesystems of `targets` are made of.
    pub(crate) fn new(
        store: Store,
        opts: ExportOptions,
        graph: &BuildGraph,
        targets: &[Target],
    ) -> Self {
        let mut nodes = HashSet::new();
        for target in targets {
            // A step's filesystem is its input 0's, plus its own layer.
            let mut node = Some(target.node.0);
            while let Some(n) = node.filter(|n| nodes.insert(*n)) {
                node = graph.nodes[n].inputs.first().map(|input| input.0);
            }
        }
        let pool_store = store.clone();
        let exports = BoundedPool::new(WORKERS, move |(id, ahead): (String, Option<TreeBlob>)| {
            // A blob made ahead is the layer unless the snapshot leaves
            // paths out of its tar (a staged copy's never does).
            let unchanged = pool_store.left_out(&id).is_ok_and(|l| l.is_empty());
            match ahead.filter(|_| unchanged) {
                Some(blob) => drop(blob.record(&pool_store, &id)),
                None => drop(rbuild_exporter::export_layer(&pool_store, &id, &opts)),
            }
        });
        EarlyExports {
            nodes,
            exports,
            store,
            opts,
            made_ahead: Mutex::default(),
        }
    }

    /// Node `node` made the snapshot `id`: exported now if it is a
    /// layer of a target; from the blob made ahead when `staged` (the
    /// snapshot is the tree [`StagedLayers::pre_export`] took).
    pub(crate) fn made(&self, node: usize, id: &str, staged: bool) {
        if self.nodes.contains(&node) {
            let mut ahead = self.made_ahead.lock().expect("poisoned");
            let blob = ahead.remove(&node).filter(|_| staged);
            self.exports.submit((id.to_string(), blob));
        }
    }

    /// Waits for the exports under way and those queued (none outlives
    /// the build: dropping waits too). A panicked export is made again at
    /// the end, and fails there.
    pub(crate) fn finish(&self) {
        self.exports.finish();
    }
}

impl StagedLayers for EarlyExports {
    /// A layer of a target, while its step waits for others: else the
    /// commit and the export after it (beside the steps after it) are
    /// sooner done than the export before it.
    fn wants(&self, node: usize, waits: bool) -> bool {
        waits && self.nodes.contains(&node)
    }

    fn pre_export(&self, node: usize, tree: &Path) -> bool {
        let Ok(blob) = rbuild_exporter::export_tree(&self.store, tree, &self.opts) else {
            return false;
        };
        let mut ahead = self.made_ahead.lock().expect("poisoned");
        ahead.insert(node, blob);
        true
    }
}

/// The layer records of `state`, bottom first; the first failure (in
/// layer order) if any fails, after which no further layer is started.
pub(crate) fn export_layers(
    session: &Session,
    request: &BuildRequest,
    state: &[Layer],
    opts: &ExportOptions,
) -> Result<Vec<LayerRecord>, BuildError> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let done: Vec<Mutex<Option<Result<LayerRecord, BuildError>>>> =
        state.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..WORKERS.min(state.len()) {
            scope.spawn(|| {
                while !failed.load(Ordering::SeqCst) {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(layer) = state.get(i) else { break };
                    let record = export_one(session, request, layer, opts);
                    failed.fetch_or(record.is_err(), Ordering::SeqCst);
                    *done[i].lock().expect("poisoned") = Some(record);
                }
            });
        }
    });
    // The layers not started after a failure all come after it.
    (done.into_iter())
        .map_while(|slot| slot.into_inner().expect("poisoned"))
        .collect()
}

/// One layer's record: a built snapshot exported, a base image's blob
/// pulled unless it stays in a remote cache.
fn export_one(
    session: &Session,
    request: &BuildRequest,
    layer: &Layer,
    opts: &ExportOptions,
) -> Result<LayerRecord, BuildError> {
    Ok(match layer {
        Layer::Snapshot(id) => rbuild_exporter::export_layer(&session.store, id, opts)?,
        Layer::Blob {
            blob,
            media_type,
            diff_id,
            ..
        } => {
            if !remote_cache::stays_remote(session, request, layer) {
                session
                    .runtime
                    .block_on(session.images.ensure_blob(layer))?;
            }
            LayerRecord {
                snapshot: String::new(),
                diff_id: diff_id.clone(),
                blob: blob.clone(),
                media_type: media_type.clone(),
                epoch: None,
            }
        }
    })
}
