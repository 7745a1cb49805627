//! Manifests and indexes: oci-spec's types (they carry Docker schema 2
//! manifests too: the same fields, other media types), read from bytes
//! with errors that say what was read, and the layers of an image paired
//! with their uncompressed digests.

use std::collections::{BTreeMap, HashMap};

use serde::de::DeserializeOwned;

pub use oci_spec::image::{Descriptor, Digest, ImageIndex, ImageManifest, MediaType};

use crate::{ConfigFile, ImageError};

fn parse<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, ImageError> {
    serde_json::from_slice(bytes).map_err(|source| ImageError::Malformed {
        what: what.to_string(),
        source,
    })
}

/// Reads an image manifest; `what` names it in errors (`manifest sha256:…`).
pub fn parse_manifest(bytes: &[u8], what: &str) -> Result<ImageManifest, ImageError> {
    parse(bytes, what)
}

/// Reads an image index; `what` names it in errors.
pub fn parse_index(bytes: &[u8], what: &str) -> Result<ImageIndex, ImageError> {
    parse(bytes, what)
}

/// Reads an image config; `what` names it in errors.
pub fn parse_config(bytes: &[u8], what: &str) -> Result<ConfigFile, ImageError> {
    parse(bytes, what)
}

/// A digest from its text (`sha256:` and 64 hex digits, or another
/// algorithm oci-spec knows).
pub fn digest(text: &str) -> Result<Digest, ImageError> {
    text.parse()
        .map_err(|e: oci_spec::OciSpecError| ImageError::Digest {
            digest: text.to_string(),
            reason: e.to_string(),
        })
}

/// A descriptor of a blob: its media type, digest and size.
pub fn descriptor(
    media_type: &str,
    digest_text: &str,
    size: u64,
) -> Result<Descriptor, ImageError> {
    Ok(Descriptor::new(
        MediaType::from(media_type),
        size,
        digest(digest_text)?,
    ))
}

/// An image manifest (schema version 2) of `media_type` (OCI's or
/// Docker's), with `annotations` when there are any.
pub fn image_manifest(
    media_type: &str,
    config: Descriptor,
    layers: Vec<Descriptor>,
    annotations: &BTreeMap<String, String>,
) -> ImageManifest {
    let mut builder = oci_spec::image::ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::from(media_type))
        .config(config)
        .layers(layers);
    if !annotations.is_empty() {
        builder = builder.annotations(
            annotations
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<HashMap<_, _>>(),
        );
    }
    builder.build().expect("every required field is set")
}

/// An OCI image index (schema version 2) listing `manifests`.
pub fn image_index(manifests: Vec<Descriptor>) -> ImageIndex {
    oci_spec::image::ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(manifests)
        .build()
        .expect("every required field is set")
}

/// Whether a manifest uses OCI media types (one without a media type is
/// taken as OCI, as the image spec says).
pub fn is_oci(manifest: &ImageManifest) -> bool {
    manifest
        .media_type()
        .as_ref()
        .is_none_or(|m| m.to_string().contains("oci"))
}

/// What a blob named by an image document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobKind {
    /// A manifest (named by an index).
    Manifest,
    /// An image config.
    Config,
    /// A layer.
    Layer,
}

impl BlobKind {
    /// Its name in messages.
    pub fn name(self) -> &'static str {
        match self {
            BlobKind::Manifest => "manifest",
            BlobKind::Config => "config",
            BlobKind::Layer => "layer",
        }
    }
}

/// The fields of an index or a manifest that name other blobs. Only the
/// digests are read: the store's garbage collector and fsck keep what a
/// document names even when the rest of a descriptor is not to the spec.
#[derive(serde::Deserialize)]
struct Document {
    #[serde(default)]
    manifests: Vec<Named>,
    config: Option<Named>,
    #[serde(default)]
    layers: Vec<Named>,
}

/// A descriptor, as far as naming a blob goes.
#[derive(serde::Deserialize)]
struct Named {
    digest: String,
}

/// The blobs an index (its manifests) or a manifest (its config and
/// layers) names, with their kinds.
pub fn referenced_blobs(bytes: &[u8], what: &str) -> Result<Vec<(BlobKind, String)>, ImageError> {
    let doc: Document = parse(bytes, what)?;
    let named = |kind, d: &Named| (kind, d.digest.clone());
    Ok(doc
        .manifests
        .iter()
        .map(|d| named(BlobKind::Manifest, d))
        .chain(doc.config.iter().map(|d| named(BlobKind::Config, d)))
        .chain(doc.layers.iter().map(|d| named(BlobKind::Layer, d)))
        .collect())
}

/// Twelve hex digits of a digest, as Docker shows image ids.
pub fn short_id(digest: &str) -> String {
    digest
        .trim_start_matches("sha256:")
        .chars()
        .take(12)
        .collect()
}

/// One layer of an image: its manifest descriptor and its uncompressed
/// digest from the config.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageLayer {
    /// The layer blob as the manifest lists it.
    pub descriptor: Descriptor,
    /// Its `rootfs.diff_ids` entry.
    pub diff_id: String,
}

/// The layers of `manifest`, bottom first, each with its diff_id from
/// `config`; fails when the two disagree on how many there are.
pub fn layers(
    manifest: &ImageManifest,
    config: &ConfigFile,
) -> Result<Vec<ImageLayer>, ImageError> {
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != manifest.layers().len() {
        return Err(ImageError::LayerCount {
            layers: manifest.layers().len(),
            diff_ids: diff_ids.len(),
        });
    }
    Ok(manifest
        .layers()
        .iter()
        .zip(diff_ids)
        .map(|(descriptor, diff_id)| ImageLayer {
            descriptor: descriptor.clone(),
            diff_id: diff_id.clone(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::to_canonical_json;

    const DIGEST_A: &str =
        "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const DIGEST_B: &str =
        "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn written_manifest() -> String {
        format!(
            r#"{{"annotations":{{"a":"1","b":"2"}},"config":{{"digest":"{DIGEST_A}","mediaType":"application/vnd.oci.image.config.v1+json","size":12}},"layers":[{{"digest":"{DIGEST_B}","mediaType":"application/vnd.oci.image.layer.v1.tar","size":34}}],"mediaType":"application/vnd.oci.image.manifest.v1+json","schemaVersion":2}}"#
        )
    }

    #[test]
    fn a_written_manifest_round_trips_byte_for_byte() {
        let text = written_manifest();
        let m = parse_manifest(text.as_bytes(), "manifest").unwrap();
        assert_eq!(m.config().digest().to_string(), DIGEST_A);
        assert_eq!(String::from_utf8(to_canonical_json(&m)).unwrap(), text);
    }

    #[test]
    fn docker_manifests_keep_their_media_types() {
        let text = written_manifest()
            .replace(crate::media::OCI_MANIFEST, crate::media::DOCKER_MANIFEST)
            .replace(crate::media::OCI_CONFIG, crate::media::DOCKER_CONFIG);
        let m = parse_manifest(text.as_bytes(), "manifest").unwrap();
        assert_eq!(String::from_utf8(to_canonical_json(&m)).unwrap(), text);
    }

    #[test]
    fn manifests_made_here_are_the_written_form() {
        let m = image_manifest(
            crate::media::OCI_MANIFEST,
            descriptor(crate::media::OCI_CONFIG, DIGEST_A, 12).unwrap(),
            vec![descriptor(crate::media::OCI_LAYER_TAR, DIGEST_B, 34).unwrap()],
            &BTreeMap::from([("b".into(), "2".into()), ("a".into(), "1".into())]),
        );
        assert!(is_oci(&m));
        assert_eq!(
            String::from_utf8(to_canonical_json(&m)).unwrap(),
            written_manifest()
        );
        let bare = image_manifest(
            crate::media::DOCKER_MANIFEST,
            m.config().clone(),
            vec![],
            &BTreeMap::new(),
        );
        assert!(!is_oci(&bare));
        assert!(
            !String::from_utf8(to_canonical_json(&bare))
                .unwrap()
                .contains("annotations")
        );
    }

    #[test]
    fn an_index_round_trips_byte_for_byte() {
        let text = format!(
            r#"{{"manifests":[{{"annotations":{{"org.opencontainers.image.ref.name":"latest"}},"digest":"{DIGEST_A}","mediaType":"application/vnd.oci.image.manifest.v1+json","size":5}}],"mediaType":"application/vnd.oci.image.index.v1+json","schemaVersion":2}}"#
        );
        let i = parse_index(text.as_bytes(), "index").unwrap();
        assert_eq!(String::from_utf8(to_canonical_json(&i)).unwrap(), text);
    }

    #[test]
    fn layers_pair_with_diff_ids_and_disagreement_fails() {
        let m = parse_manifest(written_manifest().as_bytes(), "manifest").unwrap();
        let mut config = ConfigFile::default();
        config.rootfs.diff_ids = vec![String::from("sha256:cc")];
        let l = layers(&m, &config).unwrap();
        assert_eq!(l[0].descriptor.digest().to_string(), DIGEST_B);
        assert_eq!(l[0].diff_id, "sha256:cc");
        config.rootfs.diff_ids.clear();
        let e = layers(&m, &config).unwrap_err().to_string();
        assert!(e.contains("disagree"), "{e}");
    }

    #[test]
    fn indexes_name_manifests_and_manifests_name_config_and_layers() {
        let m = referenced_blobs(written_manifest().as_bytes(), "manifest").unwrap();
        assert_eq!(
            m,
            [
                (BlobKind::Config, DIGEST_A.to_string()),
                (BlobKind::Layer, DIGEST_B.to_string())
            ]
        );
        let index = to_canonical_json(&image_index(vec![m_descriptor()]));
        assert_eq!(
            referenced_blobs(&index, "index").unwrap(),
            [(BlobKind::Manifest, DIGEST_A.to_string())]
        );
        assert!(referenced_blobs(b"[1]", "blob").is_err());
        // Digests are enough (a descriptor without a media type still
        // names its blob).
        let bare = format!(r#"{{"config":{{"digest":"{DIGEST_A}"}},"layers":[]}}"#);
        assert_eq!(
            referenced_blobs(bare.as_bytes(), "manifest").unwrap(),
            [(BlobKind::Config, DIGEST_A.to_string())]
        );
    }

    fn m_descriptor() -> Descriptor {
        descriptor(crate::media::OCI_MANIFEST, DIGEST_A, 1).unwrap()
    }

    #[test]
    fn short_ids_are_twelve_hex_digits() {
        assert_eq!(short_id(DIGEST_B), "bbbbbbbbbbbb");
    }

    #[test]
    fn malformed_documents_name_what_was_read() {
        let e = parse_manifest(b"{}", "manifest sha256:x")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("manifest sha256:x: "), "{e}");
        assert!(digest("sha256:short").is_err());
    }
}
