//! Images of the store found by what a user types, resolved locally as
//! Docker does: a name (`busybox`, `hello:v2`), a digested reference
//! (`busybox@sha256:…` or `busybox:1@sha256:…`: the stored manifest of
//! that digest, whatever the name), or an image id (the config digest,
//! whole or its first twelve or more hex digits, with or without
//! `sha256:`). A multi-platform image (an index) is found as its host
//! platform's manifest (else its first), with the index beside it.

use oci_spec::image::Descriptor;
use rbuild_image::manifest::{descriptor, parse_index, parse_manifest};
use rbuild_image::reference::id_prefix;
use rbuild_image::{Platform, Reference, media};

use crate::{Store, StoreError};

/// An image of the store found by [`Store::find_image`].
#[derive(Debug, Clone, PartialEq)]
pub struct FoundImage {
    /// The names that point at its manifest (none when it was found by a
    /// digest and is not tagged), sorted.
    pub names: Vec<String>,
    /// Its manifest (of a multi-platform image: the host platform's).
    pub manifest: Descriptor,
    /// Its image id (config digest).
    pub id: String,
    /// The index the names point at, for a multi-platform image.
    pub index: Option<Descriptor>,
}

/// Whether `media_type` is an index's (OCI's, or Docker's manifest list).
pub fn is_index_type(media_type: &str) -> bool {
    media_type == media::OCI_INDEX || media_type.contains("manifest.list")
}

impl Store {
    /// The image `text` names in the store, or `None`. A name is tried
    /// before an id prefix (a repository may be called `0123456789ab`); an
    /// id prefix that matches several images is an error.
    pub fn find_image(&self, text: &str) -> Result<Option<FoundImage>, StoreError> {
        if let Ok(reference) = Reference::parse(text) {
            let manifest = match &reference.digest {
                Some(digest) => self.stored_manifest(digest)?,
                None => self.resolve_tag(&reference.store_name())?,
            };
            if let Some(manifest) = manifest {
                return self.found(manifest).map(Some);
            }
        }
        match id_prefix(text) {
            Some(prefix) => self.find_by_id(text, prefix),
            None => Ok(None),
        }
    }

    /// The descriptor of the manifest `digest` if the store holds it.
    fn stored_manifest(&self, digest: &str) -> Result<Option<Descriptor>, StoreError> {
        if !self.has_blob(digest) {
            return Ok(None);
        }
        let bytes = self.read_blob(digest)?;
        if let Ok(index) = parse_index(&bytes, "index") {
            let media_type = index
                .media_type()
                .as_ref()
                .map_or_else(|| media::OCI_INDEX.to_string(), ToString::to_string);
            if is_index_type(&media_type) {
                return descriptor(&media_type, digest, bytes.len() as u64)
                    .map(Some)
                    .map_err(invalid);
            }
        }
        let manifest = parse_manifest(&bytes, &format!("manifest {digest}")).map_err(invalid)?;
        let media_type = manifest
            .media_type()
            .as_ref()
            .map_or_else(|| media::OCI_MANIFEST.to_string(), ToString::to_string);
        descriptor(&media_type, digest, bytes.len() as u64)
            .map(Some)
            .map_err(invalid)
    }

    /// The image whose id starts with `prefix`.
    fn find_by_id(&self, text: &str, prefix: &str) -> Result<Option<FoundImage>, StoreError> {
        let mut matches: Vec<FoundImage> = Vec::new();
        let named = self.images()?.into_iter().map(|(_, d)| d);
        for manifest in named.chain(self.dangling()?) {
            let image = self.found(manifest)?;
            // A multi-platform image's id is its index digest (what a
            // build of it prints), as in Docker's containerd store.
            let index = image.index.as_ref().map(|d| d.digest().to_string());
            let hex = index.as_deref().unwrap_or(&image.id);
            let hex = hex.trim_start_matches("sha256:");
            if hex.starts_with(prefix) && !matches.iter().any(|m| m.id == image.id) {
                matches.push(image);
            }
        }
        match matches.len() {
            0 | 1 => Ok(matches.pop()),
            n => Err(StoreError::Invalid {
                what: text.to_string(),
                message: format!("image id prefix is ambiguous: {n} images have it"),
            }),
        }
    }

    /// The image of a stored manifest or index: its names and its id
    /// (the descriptor without the store's name annotation).
    pub fn found(&self, tagged: Descriptor) -> Result<FoundImage, StoreError> {
        let digest = tagged.digest().to_string();
        let named =
            descriptor(tagged.media_type().as_ref(), &digest, tagged.size()).map_err(invalid)?;
        let (manifest, index) = match is_index_type(tagged.media_type().as_ref()) {
            true => (self.host_manifest(&digest)?, Some(named.clone())),
            false => (named.clone(), None),
        };
        let manifest_digest = manifest.digest().to_string();
        let parsed = parse_manifest(
            &self.read_blob(&manifest_digest)?,
            &format!("manifest {manifest_digest}"),
        )
        .map_err(invalid)?;
        let names = self
            .images()?
            .into_iter()
            .filter(|(_, d)| d.digest() == named.digest())
            .map(|(name, _)| name)
            .collect();
        Ok(FoundImage {
            names,
            id: parsed.config().digest().to_string(),
            manifest,
            index,
        })
    }

    /// The manifest of the stored index `digest` for this machine's
    /// platform, else its first (without its platform field).
    fn host_manifest(&self, digest: &str) -> Result<Descriptor, StoreError> {
        let index =
            parse_index(&self.read_blob(digest)?, &format!("index {digest}")).map_err(invalid)?;
        let host = Platform::host();
        let entries = index.manifests();
        let chosen = entries
            .iter()
            .find(|d| d.platform().as_ref().map(Platform::from_oci) == Some(host.clone()))
            .or_else(|| entries.first())
            .ok_or_else(|| invalid(format!("index {digest} lists no manifest")))?;
        descriptor(
            chosen.media_type().as_ref(),
            chosen.digest().as_ref(),
            chosen.size(),
        )
        .map_err(invalid)
    }
}

fn invalid(e: impl std::fmt::Display) -> StoreError {
    StoreError::Invalid {
        what: "stored image".to_string(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use rbuild_image::json::to_canonical_json;
    use rbuild_image::manifest::image_manifest;

    use super::*;

    /// Stores an image whose config is `config`, tagged `name`.
    fn put_image(store: &Store, config: &[u8], name: &str) -> (Descriptor, String) {
        let config = store.put_blob(config).unwrap();
        let manifest = image_manifest(
            media::OCI_MANIFEST,
            descriptor(media::OCI_CONFIG, &config.digest, config.size).unwrap(),
            vec![],
            &Default::default(),
        );
        let blob = store.put_blob(&to_canonical_json(&manifest)).unwrap();
        let desc = descriptor(media::OCI_MANIFEST, &blob.digest, blob.size).unwrap();
        store.tag(name, &desc).unwrap();
        (desc, config.digest)
    }

    #[test]
    fn names_digests_and_ids_find_the_same_image() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (desc, id) = put_image(&store, br#"{"a":1}"#, "app:v1");
        store.tag("other", &desc).unwrap();
        let hex = id.trim_start_matches("sha256:");
        let digest = desc.digest().to_string();
        for text in [
            "app:v1".to_string(),
            "docker.io/library/app:v1".to_string(),
            id.clone(),
            hex.to_string(),
            hex[..12].to_string(),
            format!("sha256:{}", &hex[..12]),
            format!("app@{digest}"),
            format!("elsewhere:v9@{digest}"),
        ] {
            let found = store.find_image(&text).unwrap().expect(&text);
            assert_eq!(found.manifest, desc, "{text}");
            assert_eq!(found.id, id, "{text}");
            assert_eq!(found.names, ["app:v1", "other"], "{text}");
        }
        for absent in ["app:v2", &hex[..11], "sha256:0000000000000000"] {
            assert_eq!(store.find_image(absent).unwrap(), None, "{absent}");
        }
        let missing = format!("app@sha256:{}", "0".repeat(64));
        assert_eq!(store.find_image(&missing).unwrap(), None);
    }

    #[test]
    fn each_id_prefix_finds_its_own_image() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (_, a) = put_image(&store, b"{}", "a");
        let (_, b) = put_image(&store, b"{ }", "b");
        let short = |id: &str| id["sha256:".len().."sha256:".len() + 12].to_string();
        assert_eq!(store.find_image(&short(&a)).unwrap().unwrap().id, a);
        assert_eq!(store.find_image(&short(&b)).unwrap().unwrap().id, b);
    }
}
