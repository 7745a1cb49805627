//! The build as a library, between the command line and the parts: a
//! typed [`BuildRequest`] goes in ([`build`]), a typed [`BuildResult`]
//! comes out (image, digests, per-step records), with progress as a
//! stream of [`Event`]s and a [`CancelToken`] to stop it. It owns the
//! pipeline (frontend → solver → exporter), the image's history and id,
//! and the outputs. Beside builds: images of the store found by name
//! ([`local`]) and the sandbox of `rbuild run` ([`run`]).

mod base_check;
mod cancel;
pub mod epoch;
mod error;
mod events;
mod history;
mod layers;
pub mod local;
pub mod named;
mod output;
mod pipeline;
mod platforms;
mod pool;
mod previous;
mod remote_cache;
mod request;
pub mod run;
pub mod runflags;
pub mod runopts;
mod session;
pub mod time;

pub use cancel::CancelToken;
pub use error::BuildError;
pub use events::{Event, EventSink, StepId, StepRecord, StepStatus};
pub use output::{Output, PushOptions, TarDest};
pub use pipeline::build;
pub use rbuild_solver::{Cause, StagedWork};
pub use request::{BuildRequest, BuildResult, Entitlement};
pub use session::{Session, host_platform};
