//! Images already in a registry joined into one index (`rbuild manifest
//! create`, as `docker buildx imagetools create`): CI builds each platform
//! on its own runner, pushes it by digest, then joins them. No layer is
//! pulled: a source in another repository of the target's registry has its
//! blobs mounted there (cross-repository mount), and its manifest copied.

use std::collections::{BTreeMap, HashMap};

use oci_spec::image::Descriptor;
use rbuild_image::manifest::{descriptor, image_index, parse_index, parse_manifest};
use rbuild_image::{ConfigFile, Platform, Reference, media};

use crate::{Client, RegistryError};

/// What [`join`] pushed.
#[derive(Debug, Clone)]
pub struct Joined {
    /// The index's digest.
    pub digest: String,
    /// The index as pushed.
    pub bytes: Vec<u8>,
}

fn error(message: String) -> RegistryError {
    RegistryError::Other(message)
}

/// Joins the images `sources` name (manifests, or indexes whose entries
/// are all taken) into one OCI index with `annotations`, pushed as
/// `target`. Each source must be on `target`'s registry.
pub async fn join(
    client: &Client,
    target: &Reference,
    sources: &[Reference],
    annotations: &BTreeMap<String, String>,
) -> Result<Joined, RegistryError> {
    let mut entries: Vec<Descriptor> = Vec::new();
    for source in sources {
        if source.registry != target.registry {
            return Err(error(format!(
                "{source}: not on {}, the target's registry; rbuild manifest create mounts blobs across repositories of one registry and pulls no layers (push the image there by digest first)",
                target.registry
            )));
        }
        let (media_type, bytes) = client.raw_manifest(source).await?;
        for entry in source_entries(client, source, &media_type, &bytes).await? {
            copy_manifest(client, source, target, &entry).await?;
            if !entries.iter().any(|e| e.digest() == entry.digest()) {
                entries.push(entry);
            }
        }
    }
    let mut index = image_index(entries);
    if !annotations.is_empty() {
        index.set_annotations(Some(
            annotations.clone().into_iter().collect::<HashMap<_, _>>(),
        ));
    }
    let bytes = rbuild_image::json::to_canonical_json(&index);
    let digest = client
        .push_manifest(target, media::OCI_INDEX, &bytes)
        .await?;
    Ok(Joined { digest, bytes })
}

/// The index entries a source gives: an index's own, or one for a
/// manifest with the platform its config names.
async fn source_entries(
    client: &Client,
    source: &Reference,
    media_type: &str,
    bytes: &[u8],
) -> Result<Vec<Descriptor>, RegistryError> {
    let digest = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes))
    );
    let bad = |e: rbuild_image::ImageError| error(format!("{source}: {e}"));
    if media_type == media::OCI_INDEX || media_type.contains("manifest.list") {
        return Ok(parse_index(bytes, "index")
            .map_err(bad)?
            .manifests()
            .clone());
    }
    let manifest = parse_manifest(bytes, "manifest").map_err(bad)?;
    let mut config = Vec::new();
    let config_digest = manifest.config().digest().to_string();
    client
        .pull_config(source, &config_digest, &mut config)
        .await?;
    let config: ConfigFile = serde_json::from_slice(&config)
        .map_err(|e| error(format!("{source}: config {config_digest}: {e}")))?;
    let platform = Platform::new(
        &config.os,
        &config.architecture,
        config.variant.as_deref().unwrap_or(""),
    );
    let kind = match media_type {
        "" => media::OCI_MANIFEST,
        given => given,
    };
    let mut entry = descriptor(kind, &digest, bytes.len() as u64).map_err(bad)?;
    entry.set_platform(Some(platform.to_oci()));
    Ok(vec![entry])
}

/// Makes the manifest `entry` names (in `source`'s repository) one of
/// `target`'s: its config and layers mounted, the manifest pushed by
/// digest. Nothing to do within one repository.
async fn copy_manifest(
    client: &Client,
    source: &Reference,
    target: &Reference,
    entry: &Descriptor,
) -> Result<(), RegistryError> {
    if source.repository == target.repository {
        return Ok(());
    }
    let digest = entry.digest().to_string();
    let by_digest = |r: &Reference| Reference {
        tag: None,
        digest: Some(digest.clone()),
        ..r.clone()
    };
    let (media_type, bytes) = client.raw_manifest(&by_digest(source)).await?;
    let manifest = parse_manifest(&bytes, &format!("{source} manifest {digest}"))
        .map_err(|e| error(e.to_string()))?;
    let blobs = std::iter::once(manifest.config()).chain(manifest.layers());
    for blob in blobs {
        client
            .mount_blob(target, blob.digest().as_ref(), &source.repository)
            .await?;
    }
    client
        .push_manifest(&by_digest(target), &media_type, &bytes)
        .await?;
    Ok(())
}
