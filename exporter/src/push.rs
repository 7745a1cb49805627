//! Pushing an image from the store: layers compressed as asked (locally
//! built layers are stored uncompressed; base layers go as pulled), each
//! uploaded as soon as it is ready, with existence checks, then the
//! manifest.

use oci_spec::image::{Descriptor, MediaType};
use rbuild_cache::Store;
use rbuild_image::json::to_canonical_json;
use rbuild_image::manifest::{descriptor, is_oci};
use rbuild_image::media;
use rbuild_registry::{Client, Reference};

use crate::stored::StoredImage;
use crate::{Compression, ExportError, compress};

/// How many blobs are uploaded at once.
const PARALLEL_UPLOADS: usize = 4;

/// Uploads blobs of the store to one repository, a few at a time.
struct Uploader<'a> {
    store: &'a Store,
    client: &'a Client,
    reference: &'a Reference,
    /// `registry/repository` of the destination.
    here: String,
    slots: tokio::sync::Semaphore,
}

impl Uploader<'_> {
    /// Uploads blob `digest` (skipped when the registry has it), by a
    /// cross-repository mount when a repository of the same registry is
    /// known to hold it; remembers the destination as one of its sources.
    async fn blob(&self, digest: &str) -> Result<(), ExportError> {
        let _slot = self.slots.acquire().await.expect("never closed");
        let same_registry = format!("{}/", self.reference.registry);
        let from = self
            .store
            .blob_sources(digest)?
            .into_iter()
            .filter(|r| r != &self.here)
            .find_map(|r| r.strip_prefix(&same_registry).map(str::to_string));
        self.client
            .push_blob_from(
                self.reference,
                digest,
                &self.store.blob_path(digest),
                from.as_deref(),
            )
            .await?;
        self.store.add_blob_source(digest, &self.here)?;
        Ok(())
    }
}

/// Pushes the image `manifest` points at to `reference`, with Docker
/// schema 2 media types when `docker_media_types`; returns the pushed
/// manifest's digest. For an index (a multi-platform image), each
/// platform's manifest goes up by digest, then an index of the pushed
/// manifests under `reference`. With `by_digest` the image (or index) is
/// pushed untagged, named by its digest only (`push-by-digest=true`).
pub async fn push_image(
    store: &Store,
    manifest: &Descriptor,
    reference: &Reference,
    client: &Client,
    compression: Compression,
    docker_media_types: bool,
    by_digest: bool,
) -> Result<String, ExportError> {
    let named = |bytes: &[u8]| match by_digest {
        true => untagged(reference, bytes),
        false => reference.clone(),
    };
    let platforms = crate::index_manifests(store, manifest)?;
    if platforms.len() == 1 && platforms[0].1.is_none() {
        let (media_type, bytes) = upload_image(
            store,
            manifest,
            reference,
            client,
            compression,
            docker_media_types,
        )
        .await?;
        let to = named(&bytes);
        return Ok(client.push_manifest(&to, &media_type, &bytes).await?);
    }
    let mut pushed = Vec::with_capacity(platforms.len());
    for (desc, platform) in platforms {
        let (media_type, bytes) = upload_image(
            store,
            &desc,
            reference,
            client,
            compression,
            docker_media_types,
        )
        .await?;
        let digest = client
            .push_manifest(&untagged(reference, &bytes), &media_type, &bytes)
            .await?;
        let mut d = descriptor(&media_type, &digest, bytes.len() as u64)?;
        d.set_platform(platform.map(|p| p.to_oci()));
        pushed.push(d);
    }
    let digest = manifest.digest().to_string();
    let mut index = rbuild_image::manifest::parse_index(
        &store.read_blob(&digest)?,
        &format!("index {digest}"),
    )?;
    index.set_manifests(pushed);
    let bytes = to_canonical_json(&index);
    store.put_blob(&bytes)?;
    let to = named(&bytes);
    Ok(client.push_manifest(&to, media::OCI_INDEX, &bytes).await?)
}

/// `reference`'s repository, naming the manifest `bytes` by its digest.
fn untagged(reference: &Reference, bytes: &[u8]) -> Reference {
    Reference {
        tag: None,
        digest: Some(format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes))
        )),
        ..reference.clone()
    }
}

/// Uploads the layers and config of the image `manifest` points at, then
/// gives its manifest as it must be pushed (media type and bytes; layers
/// compressed as asked), stored too.
async fn upload_image(
    store: &Store,
    manifest: &Descriptor,
    reference: &Reference,
    client: &Client,
    compression: Compression,
    docker_media_types: bool,
) -> Result<(String, Vec<u8>), ExportError> {
    let image = StoredImage::read(store, manifest.digest().as_ref())?;
    let mut doc = image.manifest;
    if docker_media_types {
        doc.set_media_type(Some(MediaType::from(media::DOCKER_MANIFEST)));
        let mut config = doc.config().clone();
        config.set_media_type(MediaType::from(media::DOCKER_CONFIG));
        doc.set_config(config);
    }
    let oci = is_oci(&doc);
    let (layers, config_digest) = (image.layers, image.config_digest);
    let upload = Uploader {
        store,
        client,
        reference,
        here: format!("{}/{}", reference.registry, reference.repository),
        slots: tokio::sync::Semaphore::new(PARALLEL_UPLOADS),
    };
    // A pipeline: each layer goes up as soon as it is compressed, while the
    // next one compresses (one at a time: each uses every core).
    let compressing = tokio::sync::Semaphore::new(1);
    let layer_jobs = layers.into_iter().map(|layer| {
        let (upload, compressing) = (&upload, &compressing);
        async move {
            let converted = {
                let _turn = compressing.acquire().await.expect("never closed");
                let store = store.clone();
                tokio::task::spawn_blocking(move || {
                    compress::recompress(&store, &layer, compression, oci)
                })
                .await
                .map_err(|e| ExportError::Other(format!("compression task: {e}")))??
            };
            upload.blob(&converted.blob.digest).await?;
            Ok::<_, ExportError>(converted)
        }
    });
    let (pushed, ()) = futures::future::try_join(
        futures::future::try_join_all(layer_jobs),
        upload.blob(&config_digest),
    )
    .await?;
    let layers = pushed
        .iter()
        .map(|l| {
            descriptor(
                &media::layer_in_family(&l.media_type, oci),
                &l.blob.digest,
                l.blob.size,
            )
        })
        .collect::<Result<_, _>>()?;
    doc.set_layers(layers);
    let bytes = to_canonical_json(&doc);
    store.put_blob(&bytes)?;
    let media_type = doc
        .media_type()
        .as_ref()
        .map_or_else(|| media::OCI_MANIFEST.to_string(), ToString::to_string);
    Ok((media_type, bytes))
}
