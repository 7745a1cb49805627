//! A solved state's layers as image layers: each built snapshot exported
//! (a tar, its digest, the blob and its layer record), each base-image
//! blob made sure of. Several layers at once: each export ends in syncs
//! (the blob, the layer record) that are waits rather than work, and
//! concurrent syncs share the filesystem's journal commits.
//!
//! The layers the targets' steps make are exported while the solve goes
//! on, each as soon as its step made it ([`EarlyExports`]), so that at the
//! end only the last is left: the export at the end finds the others'
//! layer records in the store.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rbuild_cache::{LayerRecord, Store};
use rbuild_exporter::{Compression, ExportOptions};
use rbuild_frontend::graph::BuildGraph;
use rbuild_solver::{Layer, Target};

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
    /// Exports snapshots by id.
    exports: BoundedPool<String>,
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
        let exports = BoundedPool::new(WORKERS, move |id: String| {
            drop(rbuild_exporter::export_layer(&store, &id, &opts));
        });
        EarlyExports { nodes, exports }
    }

    /// Node `node` made the snapshot `id`: exported now if it is a
    /// layer of a target.
    pub(crate) fn made(&self, node: usize, id: &str) {
        if self.nodes.contains(&node) {
            self.exports.submit(id.to_string());
        }
    }

    /// Waits for the exports under way and those queued (none outlives
    /// the build: dropping waits too). A panicked export is made again at
    /// the end, and fails there.
    pub(crate) fn finish(&self) {
        self.exports.finish();
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
