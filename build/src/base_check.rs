//! The warning `docker build` users expect when a base image comes from
//! the store because its registry cannot be reached (without `--pull`):
//! for each base the store holds under its name and once pulled from that
//! name's registry, one manifest `HEAD` runs alongside the build; a
//! definite failure (no connection, DNS, TLS, a 5xx answer, no answer
//! within [`PROBE_CAP`]) becomes a warning naming the registry. The build
//! never waits for a probe longer than what is left of [`PROBE_CAP`]
//! since it started, and bases the store made itself (built, loaded,
//! tagged here) are never probed.

use std::time::Duration;

use rbuild_registry::{Reference, RegistryError};
use rbuild_solver::PulledImage;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::Session;
use crate::events::{Event, Recorder};

/// How long a probe may take, from its start: a loopback or LAN registry
/// answers in milliseconds, a distant one in a few hundred.
const PROBE_CAP: Duration = Duration::from_millis(1500);

/// The probes of one build's bases, running.
pub(crate) struct BaseChecks {
    probes: Vec<Probe>,
    deadline: Instant,
}

struct Probe {
    reference: Reference,
    digest: String,
    task: JoinHandle<Result<(), RegistryError>>,
}

impl BaseChecks {
    /// Starts a probe for each of `bases` (the name as written in FROM and
    /// the image it resolved to) that the store holds under that name and
    /// got from that name's registry.
    pub(crate) fn start(session: &Session, bases: &[(&str, &PulledImage)]) -> Self {
        let deadline = Instant::now() + PROBE_CAP;
        let probes = bases
            .iter()
            .filter_map(|(name, image)| {
                let reference = Reference::parse(&image.reference).ok()?;
                // Held under the name: the build resolved it from the store.
                session.store.find_image(name).ok().flatten()?;
                let origin = format!("{}/{}", reference.registry, reference.repository);
                let sources = session.store.blob_sources(&image.digest).ok()?;
                sources.contains(&origin).then_some(())?;
                let client = session.images.client().clone();
                let target = reference.clone();
                let task = session
                    .runtime
                    .spawn(async move { client.probe(&target, PROBE_CAP).await });
                Some(Probe {
                    reference,
                    digest: image.digest.clone(),
                    task,
                })
            })
            .collect();
        Self { probes, deadline }
    }

    /// Waits for the probes until their deadline at most and warns of each
    /// registry that could not be reached.
    pub(crate) fn finish(self, session: &Session, recorder: &Recorder) {
        if self.probes.is_empty() {
            return;
        }
        let deadline = self.deadline;
        let outcomes = session.runtime.block_on(async move {
            let mut outcomes = Vec::with_capacity(self.probes.len());
            for probe in self.probes {
                let outcome = match tokio::time::timeout_at(deadline, probe.task).await {
                    Ok(Ok(result)) => result,
                    Ok(Err(join)) => Err(RegistryError::Other(join.to_string())),
                    Err(_) => Err(RegistryError::Timeout {
                        what: format!("{}: manifest HEAD", probe.reference.registry),
                        after: PROBE_CAP,
                    }),
                };
                outcomes.push((probe.reference, probe.digest, outcome));
            }
            outcomes
        });
        for (reference, digest, outcome) in outcomes {
            if let Err(e) = outcome {
                recorder.emit(Event::Warning {
                    message: format!(
                        "registry {} cannot be reached ({e}); using the stored {reference} ({digest}), which may be out of date",
                        reference.registry
                    ),
                });
            }
        }
    }
}
