//! The comparison: a step's ingredients now against its previous build's.

use rbuild_cache::{FileList, INGREDIENTS_VERSION, KeyIngredients, KeyInput, StepVar};

use crate::cause::Cause;
use crate::credentials::{REDACTED, looks_like_credential};
use crate::files::diff;

/// A step that is about to run, as this build sees it.
#[derive(Debug, Clone, Copy)]
pub struct Step<'a> {
    /// Its instruction as written.
    pub instruction: &'a str,
    /// What its key is computed from.
    pub ingredients: &'a KeyIngredients,
    /// The name of the step behind each input, by input position.
    pub input_names: &'a [String],
    /// The stage's base image as FROM names it, if it has one.
    pub base_reference: Option<&'a str>,
}

/// Whether the build asked for the step to run whatever the cache holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoCache {
    /// It did not.
    Off,
    /// `--no-cache`.
    All,
    /// `--no-cache-filter` named its stage or one it builds on.
    Filter,
}

/// What the previous build knew of the step.
#[derive(Debug, Clone, Copy)]
pub enum Previous<'a> {
    /// No earlier build had it.
    None,
    /// An earlier build had it; its record is gone.
    Gone {
        /// Its instruction then.
        instruction: &'a str,
        /// When a prune last removed records (Unix seconds), if ever.
        pruned: Option<i64>,
    },
    /// An earlier build had it and its record is there.
    Recorded {
        /// Its instruction then.
        instruction: &'a str,
        /// What its key was computed from (`None` in records older than
        /// the ingredients).
        ingredients: Option<&'a KeyIngredients>,
    },
    /// No earlier build on this store had it (or its record is gone); a
    /// cache source (`--cache-from`) recorded it.
    Cached {
        /// The cache source, as `--cache-from` named it.
        source: &'a str,
        /// Its instruction then.
        instruction: &'a str,
        /// What its key was computed from.
        ingredients: &'a KeyIngredients,
    },
}

/// The cause of `step`'s miss, the first of, most specific first:
/// `--no-cache` (or `--no-cache-filter`), never ran, instruction text,
/// record pruned, key scheme,
/// a build arg or ENV value, the base image, files under its sources, a
/// parent step, and else its definition. `lists` gives the file list of a
/// context checksum (this build's or a kept one).
pub fn explain(
    step: &Step<'_>,
    previous: &Previous<'_>,
    no_cache: NoCache,
    lists: &dyn Fn(&str) -> Option<FileList>,
) -> Cause {
    match no_cache {
        NoCache::All => return Cause::NoCache,
        NoCache::Filter => return Cause::NoCacheFilter,
        NoCache::Off => {}
    }
    let (instruction, old) = match *previous {
        Previous::None => return Cause::NeverRan,
        Previous::Cached {
            source,
            instruction,
            ingredients,
        } => {
            let recorded = Previous::Recorded {
                instruction,
                ingredients: Some(ingredients),
            };
            return Cause::Cached {
                source: source.to_string(),
                found: Box::new(explain(step, &recorded, no_cache, lists)),
            };
        }
        Previous::Gone {
            instruction,
            pruned,
        } => match instruction == step.instruction {
            true => return Cause::Pruned { when: pruned },
            false => (instruction, None),
        },
        Previous::Recorded {
            instruction,
            ingredients,
        } => (instruction, ingredients),
    };
    if instruction != step.instruction {
        return Cause::Instruction {
            old: instruction.to_string(),
            new: step.instruction.to_string(),
        };
    }
    let new = step.ingredients;
    let Some(old) = old.filter(|o| o.version == new.version) else {
        return Cause::Scheme {
            old: old.map(|o| o.version),
            new: INGREDIENTS_VERSION,
        };
    };
    variable(&old.vars, &new.vars)
        .or_else(|| base_image(step, old))
        .or_else(|| files(old, new, lists))
        .or_else(|| parent(step, old))
        .unwrap_or(Cause::Definition)
}

/// The first variable whose value (or origin) differs, then the first
/// that is gone.
fn variable(old: &[StepVar], new: &[StepVar]) -> Option<Cause> {
    let find = |list: &[StepVar], name: &str| list.iter().find(|v| v.name == name).cloned();
    let changed = new
        .iter()
        .find(|v| find(old, &v.name).as_ref() != Some(*v))
        .map(|v| (find(old, &v.name), Some(v.clone())));
    let gone = || {
        old.iter()
            .find(|v| find(new, &v.name).is_none())
            .map(|v| (Some(v.clone()), None))
    };
    let (was, is) = changed.or_else(gone)?;
    let some = was.as_ref().or(is.as_ref()).expect("one side is set");
    let shown = |v: &Option<StepVar>| {
        v.as_ref()
            .map(|v| v.value.clone())
            .filter(|v| !v.starts_with(REDACTED))
    };
    let redacted = looks_like_credential(&some.name);
    Some(Cause::Variable {
        origin: is.as_ref().unwrap_or(some).origin,
        name: some.name.clone(),
        old: shown(&was).filter(|_| !redacted),
        new: shown(&is).filter(|_| !redacted),
        redacted,
    })
}

fn base_image(step: &Step<'_>, old: &KeyIngredients) -> Option<Cause> {
    let new = step.ingredients;
    (old.base_image != new.base_image).then(|| Cause::BaseImage {
        reference: step.base_reference.unwrap_or("(none)").to_string(),
        old: old.base_image.clone(),
        new: new.base_image.clone(),
    })
}

/// The first context input whose checksum differs, with its file lists
/// compared (no list, or no file changed: its sources); a remote source
/// whose checksum differs.
fn files(
    old: &KeyIngredients,
    new: &KeyIngredients,
    lists: &dyn Fn(&str) -> Option<FileList>,
) -> Option<Cause> {
    for (was, is) in old.inputs.iter().zip(&new.inputs) {
        let (KeyInput::Content(was), KeyInput::Content(is)) = (was, is) else {
            continue;
        };
        if was == is {
            continue;
        }
        return Some(match (lists(was), lists(is)) {
            (Some(was), Some(is)) => match diff(&was, &is) {
                // Only a directory changed (the lists hold files).
                (_, 0, _) => Cause::Sources,
                (first, changed, total) => Cause::Files {
                    first,
                    changed,
                    total,
                },
            },
            _ => Cause::Sources,
        });
    }
    (old.remotes != new.remotes).then_some(Cause::Sources)
}

/// The first input built by a step whose key differs.
fn parent(step: &Step<'_>, old: &KeyIngredients) -> Option<Cause> {
    let new = step.ingredients;
    if old.inputs.len() != new.inputs.len() {
        return None;
    }
    let pos = old.inputs.iter().zip(&new.inputs).position(
        |(was, is)| matches!((was, is), (KeyInput::State(a), KeyInput::State(b)) if a != b),
    )?;
    Some(Cause::Parent {
        step: step.input_names.get(pos).cloned().unwrap_or_default(),
    })
}
