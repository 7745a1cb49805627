//! A solved state's layers as image layers: each built snapshot exported
//! (a tar, its digest, the blob and its layer record), each base-image
//! blob made sure of. Several layers at once: each export ends in syncs
//! (the blob, the layer record) that are waits rather than work, and
//! concurrent syncs share the filesystem's journal commits.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rbuild_cache::LayerRecord;
use rbuild_exporter::ExportOptions;
use rbuild_solver::Layer;

use crate::remote_cache;
use crate::{BuildError, BuildRequest, Session};

/// How many layers are exported at once.
const WORKERS: usize = 8;

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
