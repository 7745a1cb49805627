//! Which state of its source stage a staged copy reads (issue 19): the
//! first state of the stage in which the paths it copies are all there,
//! when that is below the stage's last step. `/deps`, made by a stage's
//! first RUN and left alone by the steps after it, is then copied while
//! those run. Whether they did leave it alone is checked once they are
//! done, on their own layers: no entry at a copied path or at any of its
//! ancestors (a change, a whiteout or an opaque directory would be one).
//! Otherwise the early copy is dropped and the copy made as usual.

use std::path::Path;
use std::sync::Arc;

use futures::StreamExt;
use futures::stream::FuturesUnordered;

use crate::dag::Dag;
use crate::layered::{self, FsView, LayerStack};
use crate::schedule::{NodeResult, Solver};
use crate::state::{Layer, State};

/// The state of node `source` a copy of `paths` (clean absolute paths)
/// reads: the first of its stage's states made, as its steps end, in which
/// every path is there and reached through directories only, and whether
/// that is an earlier one than its own. `None` when the source fails.
pub(crate) async fn first_complete(
    solver: &Solver,
    dag: &Arc<Dag<Solver>>,
    source: usize,
    paths: Option<&[String]>,
) -> Option<(NodeResult, bool)> {
    // A task of its own: the source's realization may be the one this
    // starts, which must go on while a step below is looked at, and not
    // be dropped half done when an earlier state is chosen.
    let mut whole = tokio::spawn(dag.clone().realize(source));
    // The steps below in any order: a step found in the cache is made
    // from its record without the steps under it, which are then never
    // made (an edit above a cached RUN), so none may be waited for alone.
    let mut below: FuturesUnordered<_> = (paths
        .map_or_else(Vec::new, |_| steps_below(solver, source)))
    .into_iter()
    .map(|step| dag.realized(step))
    .collect();
    loop {
        tokio::select! {
            biased;
            made = &mut whole => return made.ok()?.ok().map(|m| (m, false)),
            made = below.next(), if !below.is_empty() => {
                let made = made?.ok()?;
                if has_all(solver, &made.state, paths?).await {
                    return Some((made, true));
                }
            }
        }
    }
}

/// Whether the steps that made `whole` on `early` (a state below it)
/// left `paths` alone: their layers hold nothing at any of them or at
/// their ancestors.
pub(crate) fn left_alone(solver: &Solver, early: &State, whole: &State, paths: &[String]) -> bool {
    let Some(above) = whole.strip_prefix(early.as_slice()) else {
        return false;
    };
    above.iter().all(|layer| {
        let Layer::Snapshot(id) = layer else {
            return false;
        };
        leaves_alone(&solver.store().snapshot_path(id), paths)
    })
}

/// Whether the layer in `dir` holds nothing at any of `paths` or at their
/// ancestors, the root included: an opaque root hides all below it.
fn leaves_alone(dir: &Path, paths: &[String]) -> bool {
    !layered::is_opaque(dir)
        && paths.iter().all(|path| {
            let mut prefix = String::from("/");
            layered::components(path).all(|name| {
                prefix = layered::child(&prefix, name);
                layered::host_join(dir, &prefix).symlink_metadata().is_err()
            })
        })
}

/// The steps of `source`'s stage below it (its input-0 chain of steps),
/// bottom first.
fn steps_below(solver: &Solver, source: usize) -> Vec<usize> {
    let is_step = |n: usize| crate::ops::of(&solver.graph.nodes[n].op).cacheable();
    let mut below = Vec::new();
    let mut node = solver.graph.nodes[source].inputs.first().map(|x| x.0);
    while let Some(n) = node.filter(|&n| is_step(n)) {
        below.push(n);
        node = solver.graph.nodes[n].inputs.first().map(|x| x.0);
    }
    below.reverse();
    below
}

/// Whether every one of `paths` is there in `state`, reached through
/// directories only and not a symlink itself.
async fn has_all(solver: &Solver, state: &State, paths: &[String]) -> bool {
    let Ok(snapshots) = solver.materialize(state).await else {
        return false;
    };
    let stack = LayerStack::new(solver.snapshot_paths(&snapshots));
    paths.iter().all(|path| {
        let names: Vec<&str> = layered::components(path).collect();
        let mut prefix = String::from("/");
        names.iter().enumerate().all(|(n, name)| {
            prefix = layered::child(&prefix, name);
            let meta = stack
                .locate(&prefix)
                .and_then(|h| h.symlink_metadata().ok());
            meta.is_some_and(|m| m.is_dir() || (n + 1 == names.len() && !m.is_symlink()))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layer_leaves_paths_alone_unless_it_holds_them_an_ancestor_or_an_opaque_root() {
        let dir = tempfile::tempdir().unwrap();
        let layer = dir.path();
        let paths = ["/deps/lib".to_string(), "/app/bin".to_string()];
        std::fs::create_dir_all(layer.join("srv/deps")).unwrap();
        assert!(leaves_alone(layer, &paths), "other paths only");
        std::fs::create_dir(layer.join("app")).unwrap();
        assert!(!leaves_alone(layer, &paths), "an ancestor");
        std::fs::remove_dir(layer.join("app")).unwrap();
        let root = std::ffi::CString::new(layer.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: valid pointers and lengths.
        let rc = unsafe {
            libc::lsetxattr(
                root.as_ptr(),
                rbuild_cache::OPAQUE_XATTR.as_ptr(),
                b"y".as_ptr().cast(),
                1,
                0,
            )
        };
        assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
        assert!(!leaves_alone(layer, &paths), "an opaque root");
    }
}
