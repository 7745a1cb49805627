//! Images of the local store found by the name a user gives (`busybox`,
//! `docker.io/library/busybox:latest` and `busybox:latest` are one image):
//! parse, normalize to the store's name, resolve the tag, or say there is
//! no such image. Every command that names a stored image goes through
//! here.

use oci_spec::image::Descriptor;
use rbuild_cache::{Store, StoreError};
use rbuild_image::{Reference, ReferenceError};

/// Why an image was not found.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The name is not a reference.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_a_name_finds_the_same_image() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let blob = store.put_blob(b"{}").unwrap();
        let desc = rbuild_image::manifest::descriptor(
            rbuild_image::media::OCI_MANIFEST,
            &blob.digest,
            blob.size,
        )
        .unwrap();
        store.tag("busybox", &desc).unwrap();
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
