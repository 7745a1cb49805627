//! The pest grammar of the Dockerfile language's parser directives and
//! heredoc markers. This crate holds the grammar only (`dockerfile.pest`);
//! `rbuild-frontend` reads its parse trees (and splits instructions into
//! words itself, see the grammar's header).

// pest_derive generates the undocumented `Rule` enum.
#![allow(missing_docs)]

/// The pest parser generated from `dockerfile.pest`.
#[derive(pest_derive::Parser)]
#[grammar = "dockerfile.pest"]
pub struct DockerfileParser;
