//! One module per subcommand, plus what they share.

pub mod archive;
pub mod build;
pub mod debug;
pub mod history;
pub mod images;
pub mod inspect;
mod limits;
pub mod login;
pub mod manifest;
pub mod output;
pub mod prune;
pub mod pull;
pub mod push;
mod remote;
pub mod rmi;
pub mod run;
pub mod secrets;
mod ssh;
pub mod stdin;
pub mod tag;
