//! What a build is asked to do, and what it gives back.

use std::collections::BTreeMap;
use std::path::PathBuf;

use oci_spec::image::Descriptor;

use crate::epoch::SourceDateEpoch;
use crate::events::StepRecord;
use crate::output::Output;

/// A permission a step may need (BuildKit's `--allow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Entitlement {
    /// `RUN --security=insecure`.
    SecurityInsecure,
    /// `RUN --network=host`.
    NetworkHost,
}

impl Entitlement {
    /// Its name as `--allow` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Entitlement::SecurityInsecure => "security.insecure",
            Entitlement::NetworkHost => "network.host",
        }
    }

    /// The entitlement named `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Self> {
        [Entitlement::SecurityInsecure, Entitlement::NetworkHost]
            .into_iter()
            .find(|e| e.name() == name)
    }
}

/// A build to do.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    /// The build context directory.
    pub context: PathBuf,
    /// The Dockerfile (its `.dockerignore` beside it wins over the context's).
    pub dockerfile: PathBuf,
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    /// The stage to build; the last one when `None`.
    pub target: Option<String>,
    /// The image's names in the store's form (`hello:v2`).
    pub tags: Vec<String>,
    /// Where the image goes besides the store (which always gets it).
    pub outputs: Vec<Output>,
    /// Labels added to the image config (`--label`), over the
    /// Dockerfile's LABELs.
    pub labels: BTreeMap<String, String>,
    /// Annotations as `--annotation` gives them: `key` or `manifest:key`
    /// on each manifest, `index:key` on a multi-platform image's index.
    pub annotations: BTreeMap<String, String>,
    /// The target platforms (`--platform`); the host's when empty. More
    /// than one make an image index with one manifest per platform.
    pub platforms: Vec<rbuild_image::Platform>,
    /// What steps are allowed beyond the default sandbox.
    pub entitlements: Vec<Entitlement>,
    /// Secret id → the file holding it, for `RUN --mount=type=secret`.
    pub secrets: BTreeMap<String, PathBuf>,
    /// Agent id → its socket, for `RUN --mount=type=ssh`.
    pub ssh: BTreeMap<String, PathBuf>,
    /// Run every step, whatever the cache holds.
    pub no_cache: bool,
    /// File times, modes and `created` (see [`crate::epoch`]).
    pub source_date_epoch: SourceDateEpoch,
    /// Resource limits of every RUN.
    pub limits: rbuild_executor::Limits,
    /// How many RUN steps may run at once.
    pub max_parallel_runs: usize,
    /// Caches to build from where the store has no result
    /// (`--cache-from`), the first source first.
    pub cache_from: Vec<rbuild_remote_cache::CacheSource>,
    /// Caches to write after the build (`--cache-to`).
    pub cache_to: Vec<rbuild_remote_cache::CacheExport>,
    /// The network of every RUN without `--network` (`build --network`).
    pub network: crate::runflags::BuildNetwork,
    /// `--add-host`, `--ulimit`, `--shm-size` of every RUN.
    pub sandbox: rbuild_frontend::graph::SandboxExtras,
    /// Stages whose steps (and what depends on them) run whatever the
    /// cache holds (`--no-cache-filter`).
    pub no_cache_filter: Vec<String>,
    /// Resolve every base image at its registry, whatever the store holds
    /// (`--pull`).
    pub pull: bool,
    /// `--build-context NAME=…`: what `FROM NAME` and `COPY --from=NAME`
    /// use instead of the image NAME.
    pub named_contexts: BTreeMap<String, crate::named::NamedContext>,
}

/// What a build made.
#[derive(Debug, Clone)]
pub struct BuildResult {
    /// The image's manifest in the store (an index for several platforms).
    pub manifest: Descriptor,
    /// The manifest digest the registry holds, when the image was pushed
    /// (the last push's).
    pub pushed_digest: Option<String>,
    /// The image id: its config's digest (the index digest for several
    /// platforms, as Docker's containerd store names them).
    pub image_id: String,
    /// Its names in the store.
    pub tags: Vec<String>,
    /// Every step, in the order they ended: name, cached or run, time.
    pub steps: Vec<StepRecord>,
}

impl BuildResult {
    /// The manifest digest (`sha256:…`).
    pub fn digest(&self) -> String {
        self.manifest.digest().to_string()
    }

    /// The build's metadata as `docker buildx build --metadata-file`
    /// writes it, as JSON, and under `rbuild.explain` why each step that
    /// ran was not cached: its name, the cause as the progress shows it
    /// (`text`) and as fields (`cause` naming the kind).
    pub fn metadata_json(&self) -> Vec<u8> {
        let mut metadata = serde_json::Map::from_iter(
            [
                ("containerimage.config.digest", self.image_id.clone()),
                // After a push, the digest a user pulls: the registry's.
                (
                    "containerimage.digest",
                    self.pushed_digest.clone().unwrap_or_else(|| self.digest()),
                ),
                ("image.name", self.tags.join(",")),
            ]
            .map(|(k, v)| (k.to_string(), serde_json::Value::from(v))),
        );
        // A multi-platform image has no one config: its id is the index's
        // digest, and buildx writes no config digest for it either.
        if self.image_id == self.digest() {
            metadata.remove("containerimage.config.digest");
        }
        let explained: Vec<serde_json::Value> = (self.steps.iter())
            .filter_map(|s| {
                let cause = s.cause.as_ref()?;
                let mut fields = serde_json::to_value(cause).expect("a cause serializes");
                fields["step"] = s.name.clone().into();
                fields["text"] = cause.to_string().into();
                Some(fields)
            })
            .collect();
        if !explained.is_empty() {
            metadata.insert(String::from("rbuild.explain"), explained.into());
        }
        serde_json::to_vec_pretty(&metadata).expect("JSON values serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entitlements_are_named_as_buildkit_names_them() {
        for e in [Entitlement::SecurityInsecure, Entitlement::NetworkHost] {
            assert_eq!(Entitlement::from_name(e.name()), Some(e));
        }
        assert_eq!(Entitlement::from_name("device"), None);
    }
}
