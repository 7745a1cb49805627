//! Base images: resolved to a manifest digest and config before lowering
//! (the local store first, as `docker build` does, then the registry), and
//! their layers pulled and unpacked lazily, once, when a step needs files.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rbuild_cache::{BlobInfo, Store};
use rbuild_frontend::ResolvedImage;
use rbuild_frontend::config::{History, ImageConfig};
use rbuild_registry::{Client, Platform, Reference};
use serde::Deserialize;
use tokio::sync::OnceCell;

use crate::error::SolveError;
use crate::state::Layer;

/// A resolved base image.
#[derive(Debug, Clone)]
pub struct PulledImage {
    /// The fully qualified reference.
    pub reference: String,
    /// Manifest digest.
    pub digest: String,
    /// The `config` object of its image config.
    pub config: ImageConfig,
    /// Its history.
    pub history: Vec<History>,
    /// Its layers, bottom first, not yet unpacked.
    pub layers: Vec<Layer>,
}

impl PulledImage {
    /// The frontend's view of the image.
    pub fn to_frontend(&self) -> ResolvedImage {
        ResolvedImage {
            reference: self.reference.clone(),
            digest: self.digest.clone(),
            config: self.config.clone(),
            history: self.history.clone(),
        }
    }
}

/// The parts of an image config the solver reads.
#[derive(Deserialize)]
struct ConfigBlob {
    #[serde(default)]
    config: ImageConfig,
    #[serde(default)]
    history: Vec<History>,
    rootfs: RootFs,
}

#[derive(Deserialize)]
struct RootFs {
    diff_ids: Vec<String>,
}

type Unpacked = Arc<OnceCell<String>>;

/// Resolves images and materializes their layers, each at most once per build.
pub struct ImageResolver {
    store: Store,
    client: Client,
    platform: Platform,
    resolved: Mutex<HashMap<String, Arc<OnceCell<Arc<PulledImage>>>>>,
    unpacked: Mutex<HashMap<String, Unpacked>>,
}

/// The name an image has in the local store: Docker's familiar form with a
/// `:latest` tag left out (`hello`, `hello:v2`, `127.0.0.1:5000/busybox`).
pub fn store_name(reference: &Reference) -> String {
    let mut name = reference.to_string();
    if let Some(rest) = name.strip_prefix("docker.io/") {
        name = rest.strip_prefix("library/").unwrap_or(rest).to_string();
    }
    match name.strip_suffix(":latest") {
        Some(short) if reference.digest.is_none() => short.to_string(),
        _ => name,
    }
}

impl ImageResolver {
    /// A resolver over the store and the registry, for `platform`.
    pub fn new(store: Store, client: Client, platform: Platform) -> Self {
        Self {
            store,
            client,
            platform,
            resolved: Mutex::default(),
            unpacked: Mutex::default(),
        }
    }

    /// Resolves `name` (as written in FROM), once per build.
    pub async fn resolve(&self, name: &str) -> Result<Arc<PulledImage>, SolveError> {
        let cell = self
            .resolved
            .lock()
            .expect("poisoned")
            .entry(name.to_string())
            .or_default()
            .clone();
        cell.get_or_try_init(|| async { self.fetch(name).await.map(Arc::new) })
            .await
            .cloned()
    }

    async fn fetch(&self, name: &str) -> Result<PulledImage, SolveError> {
        let reference = Reference::parse(name)?;
        let (digest, manifest_bytes) = match self.store.resolve_tag(&store_name(&reference))? {
            Some(desc) => {
                let digest = desc.digest().to_string();
                (digest.clone(), self.store.read_blob(&digest)?)
            }
            None => {
                let pulled = self
                    .client
                    .pull_manifest(&reference, &self.platform)
                    .await?;
                self.store.put_blob(&pulled.bytes)?;
                (pulled.digest, pulled.bytes)
            }
        };
        let manifest: oci_manifest::Manifest = serde_json::from_slice(&manifest_bytes)
            .map_err(|e| SolveError::Other(format!("{name}: bad manifest: {e}")))?;
        let config_digest = manifest.config.digest.clone();
        if !self.store.has_blob(&config_digest) {
            let mut writer = self.store.blob_writer()?;
            self.client
                .pull_blob(&reference, &config_digest, &mut writer)
                .await?;
            writer.commit(Some(&config_digest))?;
        }
        let config: ConfigBlob = serde_json::from_slice(&self.store.read_blob(&config_digest)?)
            .map_err(|e| SolveError::Other(format!("{name}: bad image config: {e}")))?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(SolveError::Other(format!(
                "{name}: config and manifest disagree on the number of layers"
            )));
        }
        let layers = manifest
            .layers
            .into_iter()
            .zip(config.rootfs.diff_ids)
            .map(|(l, diff_id)| Layer::Blob {
                reference: reference.to_string(),
                blob: BlobInfo {
                    digest: l.digest,
                    size: l.size,
                },
                media_type: l.media_type,
                diff_id,
            })
            .collect();
        Ok(PulledImage {
            reference: reference.to_string(),
            digest,
            config: config.config,
            history: config.history,
            layers,
        })
    }

    /// Makes sure a layer's blob is in the store (pulling it if needed).
    pub async fn ensure_blob(&self, layer: &Layer) -> Result<(), SolveError> {
        if let Layer::Blob {
            reference, blob, ..
        } = layer
            && !self.store.has_blob(&blob.digest)
        {
            let reference = Reference::parse(reference)?;
            let mut writer = self.store.blob_writer()?;
            self.client
                .pull_blob(&reference, &blob.digest, &mut writer)
                .await?;
            writer.commit(Some(&blob.digest))?;
        }
        Ok(())
    }

    /// The snapshot of a layer, pulling and unpacking it on first use.
    pub async fn snapshot(&self, layer: &Layer) -> Result<String, SolveError> {
        let (blob, media_type) = match layer {
            Layer::Snapshot(id) => return Ok(id.clone()),
            Layer::Blob {
                blob, media_type, ..
            } => (blob, media_type),
        };
        let cell = self
            .unpacked
            .lock()
            .expect("poisoned")
            .entry(blob.digest.clone())
            .or_default()
            .clone();
        cell.get_or_try_init(|| async {
            self.ensure_blob(layer).await?;
            let store = self.store.clone();
            let (blob, media_type) = (blob.clone(), media_type.clone());
            let record =
                tokio::task::spawn_blocking(move || store.unpack_layer(&blob, &media_type))
                    .await
                    .map_err(|e| SolveError::Other(format!("unpack task: {e}")))??;
            Ok::<_, SolveError>(record.snapshot)
        })
        .await
        .cloned()
    }
}

/// The few manifest fields the solver needs, for OCI and Docker manifests alike.
mod oci_manifest {
    use serde::Deserialize;

    #[derive(Deserialize)]
    pub struct Manifest {
        pub config: Descriptor,
        pub layers: Vec<Descriptor>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Descriptor {
        pub media_type: String,
        pub digest: String,
        pub size: u64,
    }
}
