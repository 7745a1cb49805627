//! The Dockerfile frontend: parses a Dockerfile with the pest grammar of
//! `rbuild-grammar`, expands ARG/ENV words, reads `.dockerignore`, and lowers
//! the stages the target needs into the op graph ([`graph`]) that the solver
//! executes, plus the image config the target stage carries ([`config`]).
//!
//! Lowering is two-phase so that the caller can resolve base images
//! (possibly in parallel, over the network) without this crate knowing how:
//! [`Dockerfile::parse`] → [`Dockerfile::base_images`] → caller resolves each
//! → [`Dockerfile::lower`].

pub mod ast;
mod chain;
pub mod chmod;
pub mod config;
mod dump;
mod env;
pub mod expand;
pub mod graph;
mod ignore;
pub mod input;
pub mod instructions;
pub mod lines;
mod lower;
pub mod quote;
pub mod stacked;
mod stages;
mod used_vars;
mod vars;
pub mod wildcard;
mod word;

use std::collections::BTreeMap;

pub use ignore::{IgnoreMatcher, parse_dockerignore};

use config::{History, ImageConfig};
use graph::BuildGraph;

/// A frontend error: always names the file, and line and column where
/// known, followed by the source line with a caret under the column.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}{excerpt}")]
pub struct FrontendError {
    /// The Dockerfile's name as the user gave it.
    pub file: String,
    /// 1-based line (0 when the error is about the whole file).
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What went wrong and what was expected.
    pub message: String,
    /// The source line and a caret (empty when there is no line).
    pub excerpt: String,
}

/// Build-wide inputs of lowering.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    /// `--target`: the stage to build; the last stage when `None`.
    pub target: Option<String>,
    /// Target platform as `os/arch[/variant]`, normalised (see
    /// [`rbuild_image::Platform`]), e.g. `linux/amd64`.
    pub platform: String,
    /// The platform the build runs on (`BUILDPLATFORM`); the target
    /// platform when empty.
    pub build_platform: String,
    /// The `.dockerignore` patterns, in order (see [`parse_dockerignore`]).
    pub ignore_patterns: Vec<String>,
}

impl BuildOptions {
    /// The build platform: [`Self::build_platform`], or the target's.
    pub fn build_platform(&self) -> &str {
        match self.build_platform.as_str() {
            "" => &self.platform,
            p => p,
        }
    }
}

/// A registry image a stage needs, for the platform it needs it for (a
/// `FROM --platform=$BUILDPLATFORM` stage's base differs per platform
/// from the others').
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BaseImage {
    /// The image as written (ARGs expanded).
    pub name: String,
    /// The platform wanted, `os/arch[/variant]`.
    pub platform: String,
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

impl FrontendError {
    /// An error at a line (column 1) of `file`.
    pub fn at(file: &str, line: usize, column: usize, message: impl Into<String>) -> Self {
        Self {
            file: file.to_string(),
            line,
            column,
            message: message.into(),
            excerpt: String::new(),
        }
    }

    /// Adds the source line of the error, with a caret under its column.
    fn with_source(mut self, source: &str) -> Self {
        if self.line == 0 {
            return self;
        }
        if let Some(text) = source.lines().nth(self.line - 1) {
            let number = self.line.to_string();
            let pad = " ".repeat(number.len());
            // The column counts characters of the line; past the excerpt's
            // cut the caret goes at its end.
            let text = quote::line(text);
            let caret = " ".repeat(self.column.saturating_sub(1).min(quote::EXCERPT_CHARS));
            self.excerpt = format!("\n {number} | {text}\n {pad} | {caret}^");
        }
        self
    }
}

/// A parsed Dockerfile, ready to be lowered.
#[derive(Debug, Clone)]
pub struct Dockerfile {
    file: String,
    source: String,
    directives: lines::Directives,
    instructions: Vec<ast::Instruction>,
    expanded: ExpansionBudget,
}

/// Most bytes all the word expansions of one [`Dockerfile::base_images`]
/// or [`Dockerfile::lower`] call may produce together: one expansion is
/// bounded ([`expand::MAX_EXPANDED`]), and this bounds how many (`ENV
/// A1=$A A2=$A …`, a heredoc of `$A` lines) keep their results at once.
pub const MAX_TOTAL_EXPANDED: usize = 64 << 20;

/// The bytes expanded so far by the current lowering call.
#[derive(Debug, Default)]
struct ExpansionBudget(std::sync::atomic::AtomicUsize);

impl Clone for ExpansionBudget {
    fn clone(&self) -> Self {
        Self(std::sync::atomic::AtomicUsize::new(self.spent()))
    }
}

impl ExpansionBudget {
    fn spent(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn reset(&self) {
        self.0.store(0, std::sync::atomic::Ordering::Relaxed);
    }

    /// Counts `bytes` more; an error message once the total passes
    /// [`MAX_TOTAL_EXPANDED`].
    fn spend(&self, bytes: usize) -> Result<(), String> {
        let before = self
            .0
            .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
        if before + bytes > MAX_TOTAL_EXPANDED {
            return Err(format!(
                "the expanded words of this Dockerfile add up to more than {MAX_TOTAL_EXPANDED} bytes"
            ));
        }
        Ok(())
    }
}

/// Reads and splits `text` into its directives and instructions.
fn read(
    file: &str,
    text: &str,
) -> Result<(lines::Directives, Vec<ast::Instruction>), FrontendError> {
    let (directives, raw) =
        lines::read(text).map_err(|e| FrontendError::at(file, e.line, 1, e.message))?;
    if raw.is_empty() {
        return Err(FrontendError::at(file, 0, 0, "file with no instructions"));
    }
    let instructions = raw
        .into_iter()
        .map(|r| {
            let (line, column) = (r.line, r.column);
            ast::split(r, directives.escape).map_err(|e| FrontendError::at(file, line, column, e.0))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((directives, instructions))
}

/// BuildKit's AST dump of `source` (the conformance corpus format).
pub fn dump_ast(file: &str, source: &[u8]) -> Result<String, FrontendError> {
    read(file, &String::from_utf8_lossy(source)).map(|(_, i)| dump::dump(&i))
}

impl Dockerfile {
    /// Parses `source`; `file` names it in errors.
    pub fn parse(file: &str, source: &[u8]) -> Result<Self, FrontendError> {
        let text = String::from_utf8_lossy(source).into_owned();
        let (directives, instructions) = read(file, &text).map_err(|e| e.with_source(&text))?;
        if let Some(syntax) = &directives.syntax {
            let frontend = syntax.split(['@', ':']).next().unwrap_or_default();
            let builtin = [
                "docker/dockerfile",
                "docker.io/docker/dockerfile",
                "docker.io/docker/dockerfile-upstream",
                "docker/dockerfile-upstream",
            ];
            if !builtin.contains(&frontend) {
                return Err(FrontendError::at(
                    file,
                    1,
                    1,
                    format!(
                        "# syntax={syntax}: only the built-in Dockerfile frontend (docker/dockerfile:1) is supported; rbuild does not pull frontend images"
                    ),
                ));
            }
        }
        Ok(Self {
            file: file.to_string(),
            source: text,
            directives,
            instructions,
            expanded: ExpansionBudget::default(),
        })
    }

    /// The instructions, in file order.
    pub fn instructions(&self) -> &[ast::Instruction] {
        &self.instructions
    }

    /// The registry images (as written, ARGs expanded) that the stages the
    /// target needs start FROM or read, each with the platform its stage
    /// is for. `scratch` and stage names are not included.
    pub fn base_images(&self, opts: &BuildOptions) -> Result<Vec<BaseImage>, FrontendError> {
        self.expanded.reset();
        stages::base_images(self, opts).map_err(|e| e.with_source(&self.source))
    }

    /// Lowers the stages the target needs into the op graph. `images` maps
    /// each name returned by [`Dockerfile::base_images`] to its resolution.
    pub fn lower(
        &self,
        opts: &BuildOptions,
        images: &BTreeMap<BaseImage, ResolvedImage>,
    ) -> Result<BuildGraph, FrontendError> {
        self.expanded.reset();
        lower::lower(self, opts, images).map_err(|e| e.with_source(&self.source))
    }
}
