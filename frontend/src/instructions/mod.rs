//! Typed instructions: flag values parsed and validated before lowering.

pub mod mount;
