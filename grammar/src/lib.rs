//! The pest grammar of the Dockerfile language. This crate holds the grammar
//! only (`dockerfile.pest`); `rbuild-frontend` turns its parse tree into an AST.

// pest_derive generates the undocumented `Rule` enum.
#![allow(missing_docs)]

/// The pest parser generated from `dockerfile.pest`.
#[derive(pest_derive::Parser)]
#[grammar = "dockerfile.pest"]
pub struct DockerfileParser;
