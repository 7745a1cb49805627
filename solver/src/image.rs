//! Base images: resolved to a manifest digest and config before lowering
//! (the local store first, as `docker build` does, then the registry), and
//! their layers pulled and unpacked lazily, once, when a step needs files.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use oci_spec::image::ImageManifest;
use rbuild_cache::{BlobInfo, BlobWriter, LayerFeed, LayerRecord, Store};
use rbuild_frontend::ResolvedImage;
use rbuild_image::manifest::{self, parse_config, parse_manifest};
use rbuild_image::{History, ImageConfig, media};
use rbuild_registry::{Client, Platform, Reference, RegistryError};
use tokio::sync::OnceCell;

use crate::error::{FailedBlob, SolveError};
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
        manifest::descriptor(&self.media_type, &self.digest, self.size)
            .map_err(|e| SolveError::Other(format!("{}: {e}", self.reference)))
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

/// A blob that could not be had from `source`, and why.
fn failed_blob(source: &str, digest: &str, cause: SolveError) -> SolveError {
    SolveError::Blob {
        blob: FailedBlob {
            digest: digest.to_string(),
            source: source.to_string(),
        },
        cause: Box::new(cause),
    }
}

/// The start of a [`Layer::Blob`] reference that names an OCI layout
/// directory (a local build cache, `oci-layout://DIR`) instead of a
/// registry repository.
pub const LAYOUT_PREFIX: &str = "oci-layout://";

type Unpacked = Arc<OnceCell<String>>;

/// An image resolved (or being resolved) for a name and platform.
type Resolved = Arc<OnceCell<Arc<PulledImage>>>;

/// Resolves images and materializes their layers, each at most once per build.
pub struct ImageResolver {
    store: Store,
    client: Client,
    resolved: Mutex<HashMap<(String, Platform), Resolved>>,
    unpacked: Mutex<HashMap<String, Unpacked>>,
    /// The resolver itself once [`ImageResolver::prefetch_layers`] asked
    /// for the layers of what it fetches from a registry.
    prefetch: Mutex<Option<Weak<ImageResolver>>>,
}

impl ImageResolver {
    /// A resolver over the store and the registry.
    pub fn new(store: Store, client: Client) -> Self {
        Self {
            store,
            client,
            resolved: Mutex::default(),
            unpacked: Mutex::default(),
            prefetch: Mutex::default(),
        }
    }

    /// From now on, the layers of every image fetched from a registry are
    /// pulled and unpacked in the background as soon as its manifest is
    /// read (before its config, and before the build's graph is made), so
    /// that the first step to need them finds them ready or on the way.
    /// A layer pulled so fails for the step that needs it, which tries
    /// again.
    pub fn prefetch_layers(self: &Arc<Self>) {
        *self.prefetch.lock().expect("poisoned") = Some(Arc::downgrade(self));
    }

    /// Starts pulling `manifest`'s layers (of `reference`) if asked to.
    fn prefetch_from(&self, reference: &Reference, manifest: &ImageManifest) {
        let prefetch = self.prefetch.lock().expect("poisoned");
        let Some(me) = prefetch.as_ref().and_then(Weak::upgrade) else {
            return;
        };
        for layer in manifest.layers() {
            let (me, reference) = (me.clone(), reference.to_string());
            let blob = BlobInfo {
                digest: layer.digest().to_string(),
                size: layer.size(),
            };
            let media_type = layer.media_type().to_string();
            tokio::spawn(async move {
                let _ = me.snapshot_of(&reference, &blob, &media_type).await;
            });
        }
    }

    /// The registry client it pulls with.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Resolves `name` (as written in FROM) for `platform`, once per build:
    /// later [`ImageResolver::resolve`]s of the name as written or fully
    /// qualified get the same image.
    pub async fn resolve(
        &self,
        name: &str,
        platform: &Platform,
    ) -> Result<Arc<PulledImage>, SolveError> {
        let cell = self.resolution(name, platform);
        let image = cell
            .get_or_try_init(|| async { self.fetch(name, platform).await.map(Arc::new) })
            .await?
            .clone();
        Ok(self.also_by_reference(image, platform))
    }

    /// `image`, also the resolution of its fully qualified reference, the
    /// name the graph's `FROM` steps resolve: so the step gets the image
    /// the build was planned with (not a second answer of the registry,
    /// whose tag may have moved), without asking again.
    fn also_by_reference(&self, image: Arc<PulledImage>, platform: &Platform) -> Arc<PulledImage> {
        let _ = self
            .resolution(&image.reference, platform)
            .set(image.clone());
        image
    }

    /// The once-per-build resolution of `name`.
    fn resolution(&self, name: &str, platform: &Platform) -> Resolved {
        let mut resolved = self.resolved.lock().expect("poisoned");
        let key = (name.to_string(), platform.clone());
        resolved.entry(key).or_default().clone()
    }

    /// Resolves `name` at its registry whatever the store holds (`build
    /// --pull`), once per build: later [`ImageResolver::resolve`]s of the
    /// name (as written or fully qualified) get the registry's image.
    pub async fn pull_base(
        &self,
        name: &str,
        platform: &Platform,
    ) -> Result<Arc<PulledImage>, SolveError> {
        let cell = self.resolution(name, platform);
        let image = cell
            .get_or_try_init(|| async {
                let reference = Reference::parse(name).map_err(RegistryError::from)?;
                self.fetch_remote(&reference, platform).await.map(Arc::new)
            })
            .await?
            .clone();
        Ok(self.also_by_reference(image, platform))
    }

    /// The store's image first (by name, `name@sha256:…` or image id),
    /// then the registry's.
    async fn fetch(&self, name: &str, platform: &Platform) -> Result<PulledImage, SolveError> {
        let Some(found) = self.store.find_image(name)? else {
            let reference = Reference::parse(name).map_err(RegistryError::from)?;
            return self.fetch_remote(&reference, platform).await;
        };
        // Layers not yet pulled come from where the image's name points
        // (an image found by id is named by one of its tags).
        let reference = match Reference::parse(name) {
            Ok(r) if r.digest.is_some() || found.names.contains(&r.store_name()) => r,
            _ => Reference::parse(found.names.first().map_or(name, String::as_str))
                .map_err(RegistryError::from)?,
        };
        let mut digest = found.manifest.digest().to_string();
        if let Some(index) = &found.index {
            // A multi-platform image of the store: the platform's manifest.
            let bytes = self.store.read_blob(index.digest().as_ref())?;
            let chosen = rbuild_registry::answers::platform_manifest(&bytes, platform)
                .map_err(|e| SolveError::Other(format!("{name}: {e}")))?;
            digest = chosen.unwrap_or(digest);
        }
        let bytes = self.store.read_blob(&digest)?;
        self.read_image(&reference, digest, bytes).await
    }

    /// Pulls `name` for `platform` from its registry whatever the store
    /// holds (`rbuild pull`): manifest, config and every layer blob,
    /// layers at once.
    pub async fn pull(&self, name: &str, platform: &Platform) -> Result<PulledImage, SolveError> {
        let reference = Reference::parse(name).map_err(RegistryError::from)?;
        let image = self.fetch_remote(&reference, platform).await?;
        let pulls = image.layers.iter().map(|layer| self.ensure_blob(layer));
        futures::future::try_join_all(pulls).await?;
        Ok(image)
    }

    async fn fetch_remote(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<PulledImage, SolveError> {
        let pulled = self.client.pull_manifest(reference, platform).await?;
        self.prefetch_from(reference, &pulled.manifest);
        // Stored while the config is pulled: the two blobs' syncs overlap.
        let (store, bytes) = (self.store.clone(), pulled.bytes.clone());
        let stored = tokio::task::spawn_blocking(move || store.put_blob(&bytes));
        let image = self
            .read_image(reference, pulled.digest.clone(), pulled.bytes)
            .await;
        stored
            .await
            .map_err(|e| SolveError::Other(format!("store the manifest: {e}")))??;
        // Where the image came from: a build that later finds it in the
        // store checks that this registry can still be reached.
        self.store.add_blob_source(
            &pulled.digest,
            &format!("{}/{}", reference.registry, reference.repository),
        )?;
        image
    }

    /// Reads a manifest (pulling its config blob when missing).
    async fn read_image(
        &self,
        reference: &Reference,
        digest: String,
        manifest_bytes: Vec<u8>,
    ) -> Result<PulledImage, SolveError> {
        let name = reference.to_string();
        let bad = |e| SolveError::Other(format!("{name}: {e}"));
        let manifest = parse_manifest(&manifest_bytes, "bad manifest").map_err(bad)?;
        let config_digest = manifest.config().digest().to_string();
        if !self.store.has_blob(&config_digest) {
            let mut writer = self.store.blob_writer()?;
            self.client
                .pull_config(reference, &config_digest, &mut writer)
                .await?;
            writer.commit(Some(&config_digest))?;
        }
        let config = parse_config(&self.store.read_blob(&config_digest)?, "bad image config")
            .map_err(bad)?;
        let layers = manifest::layers(&manifest, &config)
            .map_err(bad)?
            .into_iter()
            .map(|l| Layer::Blob {
                reference: name.clone(),
                blob: BlobInfo {
                    digest: l.descriptor.digest().to_string(),
                    size: l.descriptor.size(),
                },
                media_type: l.descriptor.media_type().to_string(),
                diff_id: l.diff_id,
            })
            .collect();
        Ok(PulledImage {
            reference: name.clone(),
            digest,
            media_type: manifest
                .media_type()
                .as_ref()
                .map_or_else(|| media::OCI_MANIFEST.to_string(), ToString::to_string),
            size: manifest_bytes.len() as u64,
            config: config.config,
            history: config.history,
            layers,
        })
    }

    /// Makes sure a layer's blob is in the store (pulling it if needed,
    /// or copying it from a layout directory); its digest is verified. A
    /// blob that cannot be had is a [`SolveError::Blob`] naming it.
    pub async fn ensure_blob(&self, layer: &Layer) -> Result<(), SolveError> {
        match layer {
            Layer::Blob {
                reference, blob, ..
            } => self.ensure_blob_of(reference, blob).await,
            Layer::Snapshot(_) => Ok(()),
        }
    }

    /// [`ImageResolver::ensure_blob`] of blob `blob` of `reference`.
    async fn ensure_blob_of(&self, reference: &str, blob: &BlobInfo) -> Result<(), SolveError> {
        if self.store.has_blob(&blob.digest) {
            return Ok(());
        }
        let fetched = match reference.strip_prefix(LAYOUT_PREFIX) {
            Some(dir) => self.copy_from_layout(std::path::Path::new(dir), &blob.digest),
            None => {
                let writer = self.store.blob_writer()?;
                let commit = |w: BlobWriter| w.commit(Some(&blob.digest));
                self.pull_into(reference, &blob.digest, writer, commit)
                    .await
            }
        };
        fetched.map_err(|cause| failed_blob(reference, &blob.digest, cause))
    }

    /// Pulls blob `digest` of `reference` into `sink` (the store's writer
    /// of it), which verifies it, `commit` puts it in place; then where
    /// it came from is recorded.
    async fn pull_into<W: std::io::Write + Send>(
        &self,
        reference: &str,
        digest: &str,
        mut sink: W,
        commit: impl FnOnce(W) -> Result<BlobInfo, rbuild_cache::StoreError>,
    ) -> Result<(), SolveError> {
        let reference = Reference::parse(reference).map_err(RegistryError::from)?;
        self.client.pull_blob(&reference, digest, &mut sink).await?;
        commit(sink)?;
        self.store.add_blob_source(
            digest,
            &format!("{}/{}", reference.registry, reference.repository),
        )?;
        Ok(())
    }

    /// Pulls the registry layer `blob` of `reference`, which the store
    /// lacks, while unpacking it (see [`rbuild_cache::StreamedUnpack`]):
    /// the unpack no longer waits for the whole download and its sync.
    async fn pull_and_unpack(
        &self,
        reference: &str,
        blob: &BlobInfo,
        media_type: &str,
    ) -> Result<LayerRecord, SolveError> {
        let (feed, unpack) = self.store.unpack_layer_streamed(blob, media_type)?;
        let commit = |f: LayerFeed| f.commit(Some(&blob.digest));
        self.pull_into(reference, &blob.digest, feed, commit)
            .await
            .map_err(|cause| failed_blob(reference, &blob.digest, cause))?;
        tokio::task::spawn_blocking(move || unpack.finish())
            .await
            .map_err(|e| SolveError::Other(format!("unpack task: {e}")))?
            .map_err(SolveError::from)
    }

    /// Copies blob `digest` from the layout directory `dir` into the
    /// store, verifying it.
    fn copy_from_layout(&self, dir: &std::path::Path, digest: &str) -> Result<(), SolveError> {
        let hex = rbuild_cache::digest_hex(digest)?;
        let path = dir.join("blobs/sha256").join(hex);
        let failed = |e: std::io::Error| SolveError::Other(format!("{}: {e}", path.display()));
        let mut file = std::fs::File::open(&path).map_err(failed)?;
        let mut writer = self.store.blob_writer()?;
        std::io::copy(&mut file, &mut writer).map_err(failed)?;
        writer.commit(Some(digest))?;
        Ok(())
    }

    /// The snapshot of a layer, pulling and unpacking it on first use.
    pub async fn snapshot(&self, layer: &Layer) -> Result<String, SolveError> {
        match layer {
            Layer::Snapshot(id) => Ok(id.clone()),
            Layer::Blob {
                reference,
                blob,
                media_type,
                ..
            } => self.snapshot_of(reference, blob, media_type).await,
        }
    }

    /// The snapshot of layer blob `blob` of `reference`, pulling and
    /// unpacking it on first use.
    async fn snapshot_of(
        &self,
        reference: &str,
        blob: &BlobInfo,
        media_type: &str,
    ) -> Result<String, SolveError> {
        let cell = self
            .unpacked
            .lock()
            .expect("poisoned")
            .entry(blob.digest.clone())
            .or_default()
            .clone();
        cell.get_or_try_init(|| async {
            if !reference.starts_with(LAYOUT_PREFIX) && !self.store.has_blob(&blob.digest) {
                let record = self.pull_and_unpack(reference, blob, media_type).await?;
                return Ok(record.snapshot);
            }
            self.ensure_blob_of(reference, blob).await?;
            let store = self.store.clone();
            let (blob, media_type) = (blob.clone(), media_type.to_string());
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
