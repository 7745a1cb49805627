//! Typed instructions: flag values parsed and validated before lowering.

pub mod expose;
pub mod mount;
