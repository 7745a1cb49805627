//! One module per subcommand, plus what they share.

pub mod build;
pub mod images;
pub mod inspect;
pub mod pull;
pub mod run;
pub mod secrets;
mod session;
pub mod tag;
