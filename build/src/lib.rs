//! The build as a library, between the command line and the parts: images
//! of the local store found by the names users give them ([`local`]).

pub mod local;
