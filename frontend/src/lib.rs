//! The Dockerfile frontend: parses a Dockerfile with the pest grammar of
//! `rbuild-grammar`, expands ARG/ENV words, reads `.dockerignore`, and lowers
//! the stages the target needs into the op graph ([`graph`]) that the solver
//! executes, plus the image config the target stage carries ([`config`]).
//!
//! Lowering is two-phase so that the caller can resolve base images
//! (possibly in parallel, over the network) without this crate knowing how:
//! [`Dockerfile::parse`] → [`Dockerfile::base_images`] → caller resolves each
//! → [`Dockerfile::lower`].

pub mod config;
pub mod graph;

use std::collections::BTreeMap;

use config::{History, ImageConfig};
use graph::BuildGraph;

/// A frontend error: always names the file, and line and column where known.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct FrontendError {
    /// The Dockerfile's name as the user gave it.
    pub file: String,
    /// 1-based line (0 when the error is about the whole file).
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What went wrong and what was expected.
    pub message: String,
}

/// Build-wide inputs of lowering.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    /// `--target`: the stage to build; the last stage when `None`.
    pub target: Option<String>,
    /// Target platform as `os/arch[/variant]`, e.g. `linux/amd64`.
    pub platform: String,
    /// The `.dockerignore` patterns, in order (see [`parse_dockerignore`]).
    pub ignore_patterns: Vec<String>,
}

/// A base image as the caller resolved it.
#[derive(Debug, Clone, Default)]
pub struct ResolvedImage {
    /// Fully qualified reference.
    pub reference: String,
    /// Manifest digest (`sha256:…`).
    pub digest: String,
    /// The image's config object.
    pub config: ImageConfig,
    /// The image's history.
    pub history: Vec<History>,
}

/// A parsed Dockerfile, ready to be lowered.
#[derive(Debug, Clone)]
pub struct Dockerfile {
    file: String,
}

impl Dockerfile {
    /// Parses `source`; `file` names it in errors.
    pub fn parse(file: &str, source: &[u8]) -> Result<Self, FrontendError> {
        let _ = source;
        todo!("frontend: parse {file}")
    }

    /// The registry images (as written, ARGs expanded) that the stages the
    /// target needs start FROM. `scratch` and stage names are not included.
    pub fn base_images(&self, opts: &BuildOptions) -> Result<Vec<String>, FrontendError> {
        let _ = opts;
        todo!("frontend: base images of {}", self.file)
    }

    /// Lowers the stages the target needs into the op graph. `images` maps
    /// each name returned by [`Dockerfile::base_images`] to its resolution.
    pub fn lower(
        &self,
        opts: &BuildOptions,
        images: &BTreeMap<String, ResolvedImage>,
    ) -> Result<BuildGraph, FrontendError> {
        let _ = (opts, images);
        todo!("frontend: lower {}", self.file)
    }
}

/// Parses a `.dockerignore` file into its patterns, in order (comments and
/// blank lines dropped, paths cleaned, `!` kept as a prefix).
pub fn parse_dockerignore(source: &str) -> Vec<String> {
    let _ = source;
    todo!("frontend: dockerignore")
}

/// Matches context paths against `.dockerignore` patterns with Docker's rules.
#[derive(Debug, Clone)]
pub struct IgnoreMatcher {
    patterns: Vec<String>,
}

impl IgnoreMatcher {
    /// Compiles the patterns.
    pub fn new(patterns: &[String]) -> Result<Self, FrontendError> {
        Ok(Self {
            patterns: patterns.to_vec(),
        })
    }

    /// Whether the context-relative path (`/`-separated, no leading `/`) is excluded.
    pub fn is_excluded(&self, path: &str) -> bool {
        let _ = path;
        todo!("frontend: ignore matching over {:?}", self.patterns)
    }
}
