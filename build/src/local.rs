//! Images of the local store found by the name a user gives (`busybox`,
//! `docker.io/library/busybox:latest` and `busybox:latest` are one image):
//! parse, normalize to the store's name, resolve the tag, or say there is
//! no such image. Every command that names a stored image goes through
//! here; listing and inspecting the store's images too.

use oci_spec::image::Descriptor;
use rbuild_cache::{Store, StoreError};
use rbuild_image::manifest::parse_manifest;
use rbuild_image::{ImageError, ImageManifest, Reference, ReferenceError};
use serde::Serialize;

/// Why an image was not found.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The name is not a reference.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A manifest in the store is not one.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// A config in the store is not JSON.
    #[error("{name}: config {digest}: {source}")]
    Config {
        /// The image's name.
        name: String,
        /// The config's digest.
        digest: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The store has no image of that name.
    #[error("no such image: {0}")]
    NoSuchImage(String),
}

/// An image of the store.
#[derive(Debug, Clone)]
pub struct LocalImage {
    /// Its name in the store (`busybox`, `hello:v2`).
    pub name: String,
    /// Its manifest.
    pub manifest: Descriptor,
}

/// The store's name for what a user typed (`docker.io/library/busybox` →
/// `busybox`).
pub fn store_name(text: &str) -> Result<String, ReferenceError> {
    Ok(Reference::parse(text)?.store_name())
}

/// The image `text` names in `store`.
pub fn find(store: &Store, text: &str) -> Result<LocalImage, LookupError> {
    let name = store_name(text)?;
    let manifest = store
        .resolve_tag(&name)?
        .ok_or_else(|| LookupError::NoSuchImage(text.to_string()))?;
    Ok(LocalImage { name, manifest })
}

/// An image as `rbuild images` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSummary {
    /// Its name in the store.
    pub name: String,
    /// Its manifest's digest.
    pub digest: String,
    /// The bytes of its config and layers, as `docker images` counts them.
    pub size: u64,
}

/// The tagged images of the store, by name.
pub fn list(store: &Store) -> Result<Vec<ImageSummary>, LookupError> {
    let mut out = Vec::new();
    for (name, desc) in store.images()? {
        let digest = desc.digest().to_string();
        let manifest = parse_manifest(&store.read_blob(&digest)?, &format!("{name}: manifest"))?;
        let size =
            manifest.config().size() + manifest.layers().iter().map(|l| l.size()).sum::<u64>();
        out.push(ImageSummary { name, digest, size });
    }
    Ok(out)
}

/// What `rbuild inspect` shows of an image (field names as `docker image
/// inspect` writes them).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Inspection {
    /// Its name in the store.
    pub name: String,
    /// The image id (config digest).
    pub id: String,
    /// The manifest digest.
    pub digest: String,
    /// The manifest.
    pub manifest: ImageManifest,
    /// The config blob as stored, every field of it: the image model reads
    /// only the fields it knows, and a pulled image's config has more
    /// (Docker's `container_config`, `Hostname`, …) that inspect shows.
    pub config: serde_json::Value,
}

/// The image `text` names, for `rbuild inspect`.
pub fn inspect(store: &Store, text: &str) -> Result<Inspection, LookupError> {
    let found = find(store, text)?;
    let digest = found.manifest.digest().to_string();
    let manifest = parse_manifest(
        &store.read_blob(&digest)?,
        &format!("{text}: manifest {digest}"),
    )?;
    let id = manifest.config().digest().to_string();
    let config =
        serde_json::from_slice(&store.read_blob(&id)?).map_err(|source| LookupError::Config {
            name: text.to_string(),
            digest: id.clone(),
            source,
        })?;
    Ok(Inspection {
        name: found.name,
        id,
        digest,
        manifest,
        config,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use rbuild_image::json::to_canonical_json;
    use rbuild_image::manifest::{descriptor, image_manifest};
    use rbuild_image::media;

    /// The config of the test image (with a field the model does not know).
    const CONFIG: &[u8] = br#"{"rootfs":{"type":"layers","diff_ids":[]},"x":1}"#;

    /// A store with one image tagged `busybox`: [`CONFIG`] and a 5-byte layer.
    fn store_with_busybox() -> (tempfile::TempDir, Store, Descriptor) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let config = store.put_blob(CONFIG).unwrap();
        let layer = store.put_blob(b"layer").unwrap();
        let manifest = image_manifest(
            media::OCI_MANIFEST,
            descriptor(media::OCI_CONFIG, &config.digest, config.size).unwrap(),
            vec![descriptor(media::OCI_LAYER_TAR, &layer.digest, layer.size).unwrap()],
            &Default::default(),
        );
        let blob = store.put_blob(&to_canonical_json(&manifest)).unwrap();
        let desc = descriptor(media::OCI_MANIFEST, &blob.digest, blob.size).unwrap();
        store.tag("busybox", &desc).unwrap();
        (dir, store, desc)
    }

    #[test]
    fn listing_counts_config_and_layers() {
        let (_dir, store, desc) = store_with_busybox();
        let listed = list(&store).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].name, "busybox");
        assert_eq!(listed[0].digest, desc.digest().to_string());
        assert_eq!(listed[0].size, CONFIG.len() as u64 + 5);
    }

    #[test]
    fn inspection_shows_the_config_as_stored() {
        let (_dir, store, _) = store_with_busybox();
        let shown = inspect(&store, "docker.io/library/busybox").unwrap();
        assert_eq!(shown.name, "busybox");
        assert_eq!(shown.config["x"], 1, "a field the model does not know");
        assert_eq!(shown.id, shown.manifest.config().digest().to_string());
    }

    #[test]
    fn every_spelling_of_a_name_finds_the_same_image() {
        let (_dir, store, desc) = store_with_busybox();
        for text in [
            "busybox",
            "busybox:latest",
            "docker.io/library/busybox:latest",
        ] {
            let found = find(&store, text).unwrap();
            assert_eq!(found.name, "busybox");
            assert_eq!(found.manifest.digest(), desc.digest());
        }
        let e = find(&store, "other").unwrap_err();
        assert_eq!(e.to_string(), "no such image: other");
        assert!(matches!(
            find(&store, "UPPER"),
            Err(LookupError::Reference(_))
        ));
    }
}
