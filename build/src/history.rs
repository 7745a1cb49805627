//! The history and `created` of a built image: entries of layer steps that
//! added nothing are marked empty, and each entry of this build gets the
//! time its step's result was first made (config-only steps that of the
//! step before them), so that a cached rebuild is the same image; with
//! `SOURCE_DATE_EPOCH`, that time.

use std::collections::BTreeMap;

use rbuild_frontend::graph::NodeId;
use rbuild_image::History;
use rbuild_solver::SolveResult;

use crate::time::{now_rfc3339, rfc3339};

/// The history to write, and the image's `created`.
pub(crate) fn mark_history(
    history: &[History],
    result: &SolveResult,
    layer_nodes: &[NodeId],
    epoch: Option<i64>,
) -> (Vec<History>, String) {
    mark(
        history,
        &result.layer_added,
        &result.layer_created,
        layer_nodes.len(),
        epoch,
    )
}

/// [`mark_history`] over the solve's per-layer facts: whether each layer
/// step of this build added files, and when its result was made.
fn mark(
    history: &[History],
    layer_added: &[bool],
    layer_created: &[i64],
    built_layers: usize,
    epoch: Option<i64>,
) -> (Vec<History>, String) {
    let mut out = history.to_vec();
    let layer_entries: Vec<usize> = out
        .iter()
        .enumerate()
        .filter(|(_, h)| !h.empty_layer)
        .map(|(i, _)| i)
        .collect();
    let ours = &layer_entries[layer_entries.len().saturating_sub(built_layers)..];
    let mut stamp: BTreeMap<usize, i64> = BTreeMap::new();
    for ((&entry, &was_added), &created) in ours.iter().zip(layer_added).zip(layer_created) {
        out[entry].empty_layer = !was_added;
        stamp.insert(entry, created);
    }
    // Config steps before the first layer of an image on scratch take
    // that layer's time, not now: a build from a cache writes the same
    // history (and image) as the build that made it.
    let first_layer_time = stamp.values().next().map(|t| rfc3339(epoch.unwrap_or(*t)));
    let base_time = out.iter().rev().find_map(|h| h.created.clone());
    let mut last: Option<String> = base_time.or(first_layer_time);
    for (i, h) in out.iter_mut().enumerate() {
        if let Some(t) = stamp.get(&i) {
            last = Some(rfc3339(epoch.unwrap_or(*t)));
        }
        match &h.created {
            Some(c) => last = last.or_else(|| Some(c.clone())),
            None => {
                h.created = Some(
                    epoch
                        .map(rfc3339)
                        .or_else(|| last.clone())
                        .unwrap_or_else(now_rfc3339),
                )
            }
        }
    }
    let created = epoch
        .map(rfc3339)
        .or_else(|| out.last().and_then(|h| h.created.clone()))
        .unwrap_or_else(now_rfc3339);
    (out, created)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(created_by: &str, empty_layer: bool, created: Option<&str>) -> History {
        History {
            created: created.map(str::to_string),
            created_by: created_by.to_string(),
            empty_layer,
            ..History::default()
        }
    }

    #[test]
    fn layer_steps_get_their_results_time_and_config_steps_the_one_before() {
        let history = [
            entry("base", false, Some("2000-01-01T00:00:00Z")),
            entry("RUN a", false, None),
            entry("ENV X=1", true, None),
            entry("COPY b", false, None),
        ];
        let (out, created) = mark(&history, &[true, false], &[100, 200], 2, None);
        assert_eq!(out[0].created.as_deref(), Some("2000-01-01T00:00:00Z"));
        assert_eq!(out[1].created.as_deref(), Some("1970-01-01T00:01:40Z"));
        assert!(!out[1].empty_layer);
        assert_eq!(out[2].created.as_deref(), Some("1970-01-01T00:01:40Z"));
        assert_eq!(out[3].created.as_deref(), Some("1970-01-01T00:03:20Z"));
        assert!(out[3].empty_layer, "a COPY that added nothing");
        assert_eq!(created, "1970-01-01T00:03:20Z");
    }

    #[test]
    fn config_steps_before_the_first_layer_on_scratch_take_its_time() {
        let history = [entry("ARG A", true, None), entry("COPY a", false, None)];
        let (out, created) = mark(&history, &[true], &[100], 1, None);
        assert_eq!(out[0].created.as_deref(), Some("1970-01-01T00:01:40Z"));
        assert_eq!(created, "1970-01-01T00:01:40Z");
    }

    #[test]
    fn source_date_epoch_stamps_every_new_entry_and_created() {
        let history = [entry("RUN a", false, None), entry("CMD x", true, None)];
        let (out, created) = mark(&history, &[true], &[100], 1, Some(0));
        assert!(
            out.iter()
                .all(|h| h.created.as_deref() == Some("1970-01-01T00:00:00Z"))
        );
        assert_eq!(created, "1970-01-01T00:00:00Z");
    }
}
