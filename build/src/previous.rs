//! The build index a build explains its cache misses with: the previous
//! build of the same tag, else of the same Dockerfile and target, read
//! before the solve; this build recorded in its place once it succeeded.

use rbuild_cache::{BuildEntry, BuildStep, CacheKey};
use rbuild_frontend::graph::BuildGraph;

use crate::{BuildError, BuildRequest, Session};

/// What the index files a build under: its tags, the Dockerfile's
/// absolute path and the target (empty for the last stage).
fn index_keys(request: &BuildRequest) -> (String, String) {
    let dockerfile = std::path::absolute(&request.dockerfile)
        .unwrap_or_else(|_| request.dockerfile.clone())
        .display()
        .to_string();
    (dockerfile, request.target.clone().unwrap_or_default())
}

/// The previous build `request` compares with, if the index has one (an
/// unreadable entry explains nothing rather than failing the build).
pub(crate) fn previous_build(session: &Session, request: &BuildRequest) -> Option<BuildEntry> {
    let (dockerfile, target) = index_keys(request);
    let found = session
        .store
        .previous_build(&request.tags, &dockerfile, &target);
    found.ok().flatten()
}

/// The steps of `graph` (whose nodes' results are recorded under
/// `records`, for `platform` where a node names none): each step's
/// identity, text and record key, as the index and a cache export keep
/// them.
pub(crate) fn build_steps(
    graph: &BuildGraph,
    records: &[CacheKey],
    platform: &str,
) -> Vec<BuildStep> {
    (graph.nodes.iter().zip(records))
        .filter_map(|(node, key)| {
            let info = node.step.as_ref()?;
            Some(BuildStep {
                stage: info.stage.clone(),
                ordinal: info.ordinal,
                // As the step's key ingredients name it.
                platform: node.platform.as_deref().unwrap_or(platform).to_string(),
                instruction: info.instruction.clone(),
                key: key.clone(),
            })
        })
        .collect()
}

/// Records the build of `request` (its [`build_steps`]) as the latest of
/// its tags and of its Dockerfile and target.
pub(crate) fn record_build(
    session: &Session,
    request: &BuildRequest,
    steps: Vec<BuildStep>,
) -> Result<(), BuildError> {
    let (dockerfile, target) = index_keys(request);
    let entry = BuildEntry {
        created: crate::time::now_secs(),
        steps,
    };
    session
        .store
        .record_build(&request.tags, &dockerfile, &target, &entry)?;
    Ok(())
}
