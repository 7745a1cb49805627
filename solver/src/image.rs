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
    /// Manifest media type.
    pub media_type: String,
    /// Manifest size in bytes.
    pub size: u64,
    /// The `config` object of its image config.
    pub config: ImageConfig,
    /// Its history.
    pub history: Vec<History>,
    /// Its layers, bottom first, not yet unpacked.
    pub layers: Vec<Layer>,
}

impl PulledImage {
    /// The descriptor of its manifest, as the store tags it.
    pub fn manifest_descriptor(&self) -> Result<oci_spec::image::Descriptor, SolveError> {
        let digest: oci_spec::image::Digest = self
            .digest
            .parse()
            .map_err(|e| SolveError::Other(format!("{}: bad digest: {e}", self.reference)))?;
        Ok(oci_spec::image::Descriptor::new(
            oci_spec::image::MediaType::from(self.media_type.as_str()),
            self.size,
            digest,
        ))
    }

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
        match self.store.resolve_tag(&store_name(&reference))? {
            Some(desc) => {
                let digest = desc.digest().to_string();
                let bytes = self.store.read_blob(&digest)?;
                self.read_image(&reference, digest, bytes).await
            }
            None => self.fetch_remote(&reference).await,
        }
    }

    /// Pulls `name` from its registry whatever the store holds (`rbuild
    /// pull`): manifest, config and every layer blob, layers at once.
    pub async fn pull(&self, name: &str) -> Result<PulledImage, SolveError> {
        let reference = Reference::parse(name)?;
        let image = self.fetch_remote(&reference).await?;
        let pulls = image.layers.iter().map(|layer| self.ensure_blob(layer));
        futures::future::try_join_all(pulls).await?;
        Ok(image)
    }

    async fn fetch_remote(&self, reference: &Reference) -> Result<PulledImage, SolveError> {
        let pulled = self.client.pull_manifest(reference, &self.platform).await?;
        self.store.put_blob(&pulled.bytes)?;
        self.read_image(reference, pulled.digest, pulled.bytes)
            .await
    }

    /// Reads a manifest (pulling its config blob when missing).
    async fn read_image(
        &self,
        reference: &Reference,
        digest: String,
        manifest_bytes: Vec<u8>,
    ) -> Result<PulledImage, SolveError> {
        let name = reference.to_string();
        let manifest: oci_manifest::Manifest = serde_json::from_slice(&manifest_bytes)
            .map_err(|e| SolveError::Other(format!("{name}: bad manifest: {e}")))?;
        let config_digest = manifest.config.digest.clone();
        if !self.store.has_blob(&config_digest) {
            let mut writer = self.store.blob_writer()?;
            self.client
                .pull_config(reference, &config_digest, &mut writer)
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
                reference: name.clone(),
                blob: BlobInfo {
                    digest: l.digest,
                    size: l.size,
                },
                media_type: l.media_type,
                diff_id,
            })
            .collect();
        Ok(PulledImage {
            reference: name,
            digest,
            media_type: manifest
                .media_type
                .unwrap_or_else(|| String::from("application/vnd.oci.image.manifest.v1+json")),
            size: manifest_bytes.len() as u64,
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
            self.store.add_blob_source(
                &blob.digest,
                &format!("{}/{}", reference.registry, reference.repository),
            )?;
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
    #[serde(rename_all = "camelCase")]
    pub struct Manifest {
        pub media_type: Option<String>,
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
