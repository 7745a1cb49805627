//! The causes of a cache miss and how they read.

use std::fmt;

use rbuild_cache::VarOrigin;
use serde::Serialize;

/// Why a step ran instead of coming from the cache: the first difference
/// from its previous build, most specific first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "cause", rename_all = "snake_case")]
pub enum Cause {
    /// `--no-cache` asked for every step to run.
    NoCache,
    /// `--no-cache-filter` asked for the step's stage (or one it builds
    /// on) to run.
    NoCacheFilter,
    /// No earlier build of this step on this store.
    NeverRan,
    /// The instruction's text changed.
    Instruction {
        /// As the previous build had it.
        old: String,
        /// As it is now.
        new: String,
    },
    /// The step's record was removed by a prune.
    Pruned {
        /// When a prune last removed records (Unix seconds), if known.
        when: Option<i64>,
    },
    /// The previous record was written under another key scheme (an
    /// rbuild of another version).
    Scheme {
        /// Its scheme; `None` when it kept no ingredients.
        old: Option<u32>,
        /// This rbuild's.
        new: u32,
    },
    /// A build arg or ENV value the step uses changed.
    Variable {
        /// ARG or ENV.
        origin: VarOrigin,
        /// Its name.
        name: String,
        /// The previous value (`None`: unset, or redacted).
        old: Option<String>,
        /// The value now (`None`: unset, or redacted).
        new: Option<String>,
        /// Its name looks like a credential: the values are not shown.
        redacted: bool,
    },
    /// The stage's base image resolved to another digest.
    BaseImage {
        /// The image as FROM names it.
        reference: String,
        /// The previous manifest digest.
        old: Option<String>,
        /// The digest now.
        new: Option<String>,
    },
    /// Files under a COPY/ADD source or bind mount changed.
    Files {
        /// The first few changes.
        first: Vec<FileChange>,
        /// How many paths changed.
        changed: usize,
        /// How many paths the old and new selections hold together.
        total: usize,
    },
    /// The content of its sources changed, with no file list to compare
    /// (a remote ADD source, or a list no longer kept) or none of their
    /// files changed (a directory did).
    Sources,
    /// A step it builds on ran (the cause is upstream).
    Parent {
        /// That step's name.
        step: String,
    },
    /// Something else of its definition changed: an earlier SHELL, USER,
    /// WORKDIR, the platform, or an option that is not in its text.
    Definition,
    /// The cause against the step's record in a cache source: this store
    /// had no previous build of the step, the cache did.
    Cached {
        /// The cache source, as `--cache-from` named it.
        source: String,
        /// What differs from its record there.
        found: Box<Cause>,
    },
}

/// One changed path of a copy's sources.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileChange {
    /// The context-relative path.
    pub path: String,
    /// What happened to it.
    pub kind: FileChangeKind,
}

/// What happened to a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileChangeKind {
    /// New since the previous build.
    Added,
    /// Gone since the previous build.
    Removed,
    /// Its content, type or mode changed.
    Modified,
}

impl fmt::Display for FileChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileChangeKind::Added => "added",
            FileChangeKind::Removed => "removed",
            FileChangeKind::Modified => "modified",
        })
    }
}

/// `sha256:` and the first 12 hex digits of a digest.
fn short(digest: &Option<String>) -> String {
    match digest {
        Some(d) => {
            let (algo, hex) = d.split_once(':').unwrap_or(("", d));
            let hex = hex.get(..12).unwrap_or(hex);
            match algo {
                "" => hex.to_string(),
                _ => format!("{algo}:{hex}"),
            }
        }
        None => String::from("none"),
    }
}

fn value(v: &Option<String>) -> String {
    match v {
        Some(v) => format!("{v:?}"),
        None => String::from("(unset)"),
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::NoCache => f.write_str("--no-cache"),
            Cause::NoCacheFilter => f.write_str("--no-cache-filter"),
            Cause::NeverRan => f.write_str("never ran before on this store"),
            Cause::Instruction { old, new } => {
                write!(f, "instruction changed: {old:?} → {new:?}")
            }
            Cause::Pruned { when: Some(t) } => {
                let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs((*t).max(0) as u64);
                write!(f, "its cache record was pruned ({})", httpdate::fmt_http_date(at))
            }
            Cause::Pruned { when: None } => f.write_str("its cache record was pruned"),
            Cause::Scheme { old: Some(old), new } => {
                write!(f, "cache key scheme changed (v{old} → v{new})")
            }
            Cause::Scheme { old: None, new } => {
                write!(f, "cache key scheme changed (v{new} keeps ingredients, the record did not)")
            }
            Cause::Variable {
                origin,
                name,
                old,
                new,
                redacted,
            } => {
                let kind = match origin {
                    rbuild_cache::VarOrigin::Arg => "build arg",
                    rbuild_cache::VarOrigin::Env => "ENV",
                };
                match redacted {
                    true => write!(f, "{kind} {name} changed (value redacted)"),
                    false => write!(f, "{kind} {name} changed: {} → {}", value(old), value(new)),
                }
            }
            Cause::BaseImage {
                reference,
                old,
                new,
            } => write!(
                f,
                "base image {reference} changed: {} → {}",
                short(old),
                short(new)
            ),
            Cause::Files {
                first,
                changed,
                total,
            } => {
                let named: Vec<String> = first.iter().map(|c| format!("{} {}", c.path, c.kind)).collect();
                let more = match changed > &first.len() {
                    true => ", …",
                    false => "",
                };
                let files = match total {
                    1 => "file",
                    _ => "files",
                };
                write!(f, "{}{more} ({changed} of {total} {files})", named.join(", "))
            }
            Cause::Sources => f.write_str("the content of its sources changed"),
            Cause::Parent { step } => write!(f, "parent step ran: {step}"),
            Cause::Definition => f.write_str(
                "its definition changed (an earlier SHELL, USER or WORKDIR, the platform, or an option)",
            ),
            Cause::Cached { source, found } => {
                write!(f, "{found} (previous build from cache {source})")
            }
        }
    }
}
