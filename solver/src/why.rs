//! Why a step runs: on a miss (and only then), the step's ingredients are
//! compared with those of the same step (stage and instruction ordinal) of
//! the previous build (see `rbuild_explain`), else of the records the
//! cache sources (`--cache-from`) carry; the context selections this
//! build checksummed are listed (path → digest) so that a later build can
//! name the files that changed, and a step that ran keeps its lists in
//! the store.

use std::collections::HashMap;

use rbuild_cache::{BuildEntry, BuildStep, FileList, KeyInput, Store};
use rbuild_explain::{Cause, NoCache, Previous, Step};
use rbuild_frontend::graph::{BuildGraph, Op};

use crate::context::Listing;
use crate::imported::ImportedStep;

/// A step's identity across builds: stage, instruction ordinal, platform.
type StepId = (String, usize, String);

fn step_id(s: &BuildStep) -> StepId {
    (s.stage.clone(), s.ordinal, s.platform.clone())
}

/// What a solve explains its misses with.
#[derive(Default)]
pub(crate) struct Why {
    /// The previous build's steps by (stage, ordinal, platform).
    previous: HashMap<StepId, BuildStep>,
    /// The steps the cache sources recorded, by (stage, ordinal,
    /// platform): compared with when the previous build has no record.
    cached: HashMap<StepId, ImportedStep>,
    /// When a prune last removed records.
    pruned: Option<i64>,
    /// This build's context selections by checksum.
    listings: HashMap<String, Listing>,
}

/// A listing as the store keeps it: sorted by path, each path once,
/// digests shortened to 16 hex digits (plenty to tell a change). Made on
/// a miss only, so a build that hits pays nothing for it.
fn file_list(listing: &Listing) -> FileList {
    let mut files: Vec<(String, String)> = (listing.iter())
        .map(|(path, digest)| (path.to_string(), hex::encode(digest)))
        .collect();
    files.sort_unstable();
    files.dedup_by(|a, b| a.0 == b.0);
    FileList(files)
}

impl Why {
    /// With this build's `listings`, and no previous build yet (every
    /// step never ran).
    pub(crate) fn new(listings: HashMap<String, Listing>) -> Self {
        Why {
            listings,
            ..Why::default()
        }
    }

    /// Explains against `previous`, the latest build of the same tag or
    /// Dockerfile and target.
    pub(crate) fn compare_with(&mut self, store: &Store, previous: BuildEntry) {
        let steps = previous.steps.into_iter();
        self.previous = steps.map(|s| (step_id(&s), s)).collect();
        // Unknown, a gone record still reads as pruned.
        self.pruned = store.last_prune().ok().flatten();
    }

    /// Also explains against `steps`, those the cache sources recorded
    /// (the first of an identity kept), where the previous build has no
    /// record of a step.
    pub(crate) fn compare_with_cache(&mut self, steps: &[ImportedStep]) {
        for step in steps {
            (self.cached.entry(step_id(&step.step))).or_insert_with(|| step.clone());
        }
    }

    /// Why node `i` (a step whose record key is `record`) runs; `None`
    /// for a node that is not an instruction's step.
    pub(crate) fn cause(
        &self,
        store: &Store,
        graph: &BuildGraph,
        i: usize,
        ingredients: &rbuild_cache::KeyIngredients,
        no_cache: NoCache,
    ) -> Option<Cause> {
        let node = &graph.nodes[i];
        let info = node.step.as_ref()?;
        let id = (
            info.stage.clone(),
            info.ordinal,
            ingredients.platform.clone(),
        );
        let before = self.previous.get(&id);
        let record = before.and_then(|b| store.get_record(&b.key).ok().flatten());
        let cached = self.cached.get(&id);
        let previous = match (before, &record, cached) {
            (Some(b), Some(r), _) if r.snapshots.iter().all(|s| store.has_snapshot(s)) => {
                Previous::Recorded {
                    instruction: &b.instruction,
                    ingredients: r.ingredients.as_ref(),
                }
            }
            (_, _, Some(c)) => Previous::Cached {
                source: &c.source,
                instruction: &c.step.instruction,
                ingredients: &c.ingredients,
            },
            (None, _, None) => Previous::None,
            (Some(b), _, None) => Previous::Gone {
                instruction: &b.instruction,
                pruned: self.pruned,
            },
        };
        let input_names: Vec<String> = (node.inputs.iter())
            .map(|n| graph.nodes[n.0].name.clone())
            .collect();
        let step = Step {
            instruction: &info.instruction,
            ingredients,
            input_names: &input_names,
            base_reference: base_reference(graph, i),
        };
        let lists = |sum: &str| match self.listings.get(sum) {
            Some(listing) => Some(file_list(listing)),
            None => store.file_list(sum).ok().flatten(),
        };
        Some(rbuild_explain::explain(&step, &previous, no_cache, &lists))
    }

    /// Keeps the file lists of the context selections of a step that ran
    /// (`ingredients` are its record's), for a later build to compare.
    pub(crate) fn keep_lists(
        &self,
        store: &Store,
        ingredients: &rbuild_cache::KeyIngredients,
    ) -> Result<(), String> {
        for input in &ingredients.inputs {
            if let KeyInput::Content(sum) = input
                && let Some(listing) = self.listings.get(sum)
            {
                (store.put_file_list(sum, &file_list(listing))).map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }
}

/// The reference of the base image node `i` stands on, if any.
fn base_reference(graph: &BuildGraph, mut i: usize) -> Option<&str> {
    loop {
        let node = &graph.nodes[i];
        match &node.op {
            Op::Image(source) => return Some(&source.reference),
            Op::Exec(_) | Op::File(_) => i = node.inputs.first()?.0,
            Op::Scratch | Op::Context(_) => return None,
        }
    }
}
