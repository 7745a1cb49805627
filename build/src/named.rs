//! `--build-context NAME=…`: what `FROM NAME` and `COPY --from=NAME`
//! stand for instead of the image NAME, as BuildKit's named contexts:
//! another image, or a directory, made first into a one-layer image of the
//! store (`FROM scratch` + `COPY . /`, so its files are keyed by content
//! like any COPY) and used by its digest.

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::io;
use crate::{BuildError, BuildRequest, CancelToken, Session};

/// What a named context is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamedContext {
    /// An image reference (`docker-image://REF`).
    Image(String),
    /// A directory on this machine.
    Dir(PathBuf),
}

/// The image reference `context` resolves to: the image itself, or the
/// digest of the image made of the directory (with `request`'s epoch, so that it
/// is reproducible as the build is).
pub(crate) fn reference(
    session: &Session,
    request: &BuildRequest,
    context: &NamedContext,
    cancel: &CancelToken,
) -> Result<String, BuildError> {
    let dir = match context {
        NamedContext::Image(reference) => return Ok(reference.clone()),
        NamedContext::Dir(dir) => dir,
    };
    let scratch = tempfile::Builder::new()
        .prefix("rbuild-named-context")
        .tempdir()
        .map_err(io("create a temp dir for a named context"))?;
    let dockerfile = scratch.path().join("Dockerfile");
    std::fs::write(&dockerfile, "FROM scratch\nCOPY . /\n")
        .map_err(io(format!("write {}", dockerfile.display())))?;
    let sub = BuildRequest {
        context: dir.clone(),
        dockerfile,
        source_date_epoch: request.source_date_epoch,
        max_parallel_runs: 1,
        ..BuildRequest::default()
    };
    let made = crate::build(session, &sub, Arc::new(|_| {}), cancel)?;
    // By digest: the store has it untagged, and the name only says what
    // it is (`name@digest` is found locally first).
    Ok(format!("{DIR_CONTEXT_NAME}@{}", made.digest()))
}

/// The repository a directory context's image is referred to by.
const DIR_CONTEXT_NAME: &str = "rbuild/named-context";
