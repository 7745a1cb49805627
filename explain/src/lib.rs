//! Why a build step missed the cache: its key ingredients are compared
//! with those its previous build recorded (the same step of the latest
//! build of the tag, else of the Dockerfile and target), and the first
//! difference, most specific first, becomes a [`Cause`] for the progress
//! line, the `--explain` table and the metadata file. Pure: the caller
//! reads the records and file lists; nothing here touches the store, so
//! every cause is unit-tested without root.

mod cause;
mod compare;
mod credentials;
mod files;

pub use cause::{Cause, FileChange, FileChangeKind};
pub use compare::{NoCache, Previous, Step, explain};
pub use credentials::{looks_like_credential, recorded_value};
pub use files::diff;
