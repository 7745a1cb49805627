//! The build's remote cache: `--cache-from` sources read before the solve
//! (a source that cannot be used is a warning), `--cache-to` caches
//! written after the outputs (a failure fails the build unless
//! `ignore-error=true`), and which steps each export holds.

use std::sync::Arc;

use rbuild_cache::{BuildStep, CacheKey};
use rbuild_frontend::graph::{BuildGraph, NodeId, Op};
use rbuild_remote_cache::{CacheTarget, Held, ImportedCaches, Mode};
use rbuild_solver::{LAYOUT_PREFIX, Layer};

use crate::events::{Event, Recorder};
use crate::output::Output;
use crate::session::host_platform;
use crate::{BuildError, BuildRequest, Session};

/// Reads the request's `--cache-from` sources; `None` without any.
pub(crate) fn import(
    session: &Session,
    request: &BuildRequest,
    recorder: &Recorder,
) -> Option<Arc<ImportedCaches>> {
    if request.cache_from.is_empty() {
        return None;
    }
    let step = recorder.begin("importing cache manifest");
    let (caches, errors) = session.runtime.block_on(rbuild_remote_cache::import(
        &session.store,
        session.images.client(),
        &host_platform(),
        &request.cache_from,
    ));
    for error in errors {
        recorder.emit(Event::Warning {
            message: format!("cache import skipped: {error}"),
        });
    }
    recorder.note(&step, &format!("{} cached steps found", caches.len()));
    recorder.end(step);
    Some(Arc::new(caches))
}

/// The solved graph as an export reads it: its nodes' record keys and the
/// targets whose steps it holds (one per platform of the build).
pub(crate) struct SolvedSteps<'a> {
    /// The graph solved (all platforms' for a multi-platform build).
    pub graph: &'a BuildGraph,
    /// The images' target nodes.
    pub targets: &'a [NodeId],
    /// Each node's record key, in graph order.
    pub records: &'a [CacheKey],
    /// The instructions' steps (identity, text, key), which an export
    /// keeps with its records (none for an inline cache).
    pub steps: &'a [BuildStep],
}

/// The record keys an export of `mode` holds: with `min`, the steps each
/// target stands on in its own stage (the image's layers); with `max`,
/// every RUN, COPY and ADD the targets need, in every stage.
pub(crate) fn export_keys(solved: &SolvedSteps, mode: Mode) -> Vec<CacheKey> {
    let SolvedSteps {
        graph,
        targets,
        records,
        ..
    } = solved;
    let is_step = |i: usize| matches!(graph.nodes[i].op, Op::Exec(_) | Op::File(_));
    let mut keys = Vec::new();
    let mut seen = vec![false; graph.nodes.len()];
    let mut stack: Vec<usize> = targets.iter().map(|t| t.0).collect();
    while let Some(i) = stack.pop() {
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        if is_step(i) {
            keys.push(records[i].clone());
        } else if mode == Mode::Min {
            // The stage's base: below it nothing is a step of this stage.
            continue;
        }
        let inputs = &graph.nodes[i].inputs;
        match mode {
            Mode::Min => stack.extend(inputs.first().map(|x| x.0)),
            Mode::Max => stack.extend(inputs.iter().map(|x| x.0)),
        }
    }
    keys
}

/// The inline cache the image config carries, when `--cache-to
/// type=inline` asks for one: the records of the image's own steps.
pub(crate) fn inline(
    session: &Session,
    request: &BuildRequest,
    solved: &SolvedSteps,
    state: &[Layer],
) -> Result<Option<serde_json::Value>, BuildError> {
    if !(request.cache_to.iter()).any(|c| c.target == CacheTarget::Inline) {
        return Ok(None);
    }
    let keys = export_keys(solved, Mode::Min);
    rbuild_remote_cache::inline_cache(&session.store, &keys, state)
        .map(Some)
        .map_err(BuildError::CacheExport)
}

/// Writes every `--cache-to` cache of the request (an inline one is in
/// the image already).
pub(crate) fn export(
    session: &Session,
    request: &BuildRequest,
    solved: &SolvedSteps,
    imported: Option<&ImportedCaches>,
    epoch: Option<i64>,
    recorder: &Recorder,
) -> Result<(), BuildError> {
    for spec in (request.cache_to.iter()).filter(|c| c.target != CacheTarget::Inline) {
        let step = recorder.begin("exporting cache");
        let keys = export_keys(solved, spec.mode);
        let written = session.runtime.block_on(rbuild_remote_cache::export(
            &session.store,
            session.images.client(),
            &session.images,
            imported,
            Held {
                keys: &keys,
                steps: solved.steps,
            },
            epoch,
            spec,
        ));
        match written {
            Ok(report) => recorder.note(
                &step,
                &format!(
                    "writing cache {} to {}: {} steps, {} layers, {} bytes done",
                    report.manifest,
                    report.target,
                    report.records,
                    report.layers,
                    report.layer_bytes
                ),
            ),
            Err(error) if spec.ignore_error => recorder.emit(Event::Warning {
                message: format!("cache export failed (ignore-error=true): {error}"),
            }),
            Err(error) => return Err(BuildError::CacheExport(error)),
        }
        recorder.end(step);
    }
    Ok(())
}

/// Whether the image export may leave `layer`'s blob where it is: every
/// output is a push to a registry that is known to hold the blob (it came
/// from a cache there), so the push mounts it and its bytes never move.
pub(crate) fn stays_remote(session: &Session, request: &BuildRequest, layer: &Layer) -> bool {
    let Layer::Blob {
        reference,
        blob,
        media_type,
        ..
    } = layer
    else {
        return false;
    };
    let compressed = media_type.ends_with("gzip") || media_type.ends_with("zstd");
    if reference.starts_with(LAYOUT_PREFIX) || !compressed || request.outputs.is_empty() {
        return false;
    }
    let Ok(sources) = session.store.blob_sources(&blob.digest) else {
        return false;
    };
    request.outputs.iter().all(|output| match output {
        Output::Image {
            names,
            push: Some(_),
        } => request.tags.iter().chain(names).all(|name| {
            rbuild_image::Reference::parse(name).is_ok_and(|r| {
                let registry = format!("{}/", r.registry);
                sources.iter().any(|s| s.starts_with(&registry))
            })
        }),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use rbuild_frontend::{BuildOptions, Dockerfile};

    use super::*;

    #[test]
    fn min_holds_the_target_stage_and_max_every_stage() {
        let source = "FROM scratch AS build\nCOPY a /a\nCOPY b /b\n\
                      FROM scratch\nCOPY c /c\nCOPY --from=build /a /a\n";
        let parsed = Dockerfile::parse("Dockerfile", source.as_bytes()).unwrap();
        let options = BuildOptions {
            platform: String::from("linux/amd64"),
            ..Default::default()
        };
        let graph = parsed.lower(&options, &Default::default()).unwrap();
        let records: Vec<CacheKey> = (0..graph.nodes.len())
            .map(|i| CacheKey::parse(&format!("{i:064x}")).unwrap())
            .collect();
        let steps = |keys: Vec<CacheKey>| {
            let mut names: Vec<String> = keys
                .iter()
                .map(|k| {
                    let i = records.iter().position(|r| r == k).unwrap();
                    graph.nodes[i].name.clone()
                })
                .collect();
            names.sort();
            names
        };
        let solved = SolvedSteps {
            graph: &graph,
            targets: &[graph.target],
            records: &records,
            steps: &[],
        };
        let min = steps(export_keys(&solved, Mode::Min));
        let max = steps(export_keys(&solved, Mode::Max));
        assert_eq!(min.len(), 2, "{min:?}");
        assert!(min.iter().all(|n| n.starts_with("[stage-1")), "{min:?}");
        assert_eq!(max.len(), 4, "{max:?}");
        assert_eq!(
            max.iter().filter(|n| n.starts_with("[build")).count(),
            2,
            "{max:?}"
        );
    }
}
