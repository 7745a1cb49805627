//! A multi-platform image: an OCI image index listing one manifest per
//! platform (each descriptor naming its platform), as canonical JSON so
//! that the same manifests give the same index digest; and the blobs an
//! index or manifest reaches, for copying it whole.

use std::collections::{BTreeMap, HashMap};

use oci_spec::image::Descriptor;
use rbuild_cache::Store;
use rbuild_image::json::to_canonical_json;
use rbuild_image::manifest::{descriptor, image_index, referenced_blobs};
use rbuild_image::{Platform, media};

use crate::ExportError;

/// Writes an index of `manifests` (each with its platform, in order) with
/// `annotations` (`--annotation index:…`); returns its descriptor.
pub fn write_index(
    store: &Store,
    manifests: &[(Descriptor, Platform)],
    annotations: &BTreeMap<String, String>,
) -> Result<Descriptor, ExportError> {
    let entries = manifests
        .iter()
        .map(|(d, p)| {
            let mut d = d.clone();
            d.set_platform(Some(p.to_oci()));
            d
        })
        .collect();
    let mut index = image_index(entries);
    if !annotations.is_empty() {
        let map: HashMap<String, String> = annotations.clone().into_iter().collect();
        index.set_annotations(Some(map));
    }
    let blob = store.put_blob(&to_canonical_json(&index))?;
    Ok(descriptor(media::OCI_INDEX, &blob.digest, blob.size)?)
}

/// The platform manifests of the index `desc` (an image manifest is its
/// own single entry, without a platform).
pub fn index_manifests(
    store: &Store,
    desc: &Descriptor,
) -> Result<Vec<(Descriptor, Option<Platform>)>, ExportError> {
    if !rbuild_cache::is_index_type(desc.media_type().as_ref()) {
        return Ok(vec![(desc.clone(), None)]);
    }
    let digest = desc.digest().to_string();
    let index = rbuild_image::manifest::parse_index(
        &store.read_blob(&digest)?,
        &format!("index {digest}"),
    )?;
    Ok(index
        .manifests()
        .iter()
        .map(|d| (d.clone(), d.platform().as_ref().map(Platform::from_oci)))
        .collect())
}

/// Every blob `digest` reaches (itself first; for an index its manifests,
/// their configs and layers), each once; a named digest that is not one
/// is an error.
pub fn reachable_blobs(store: &Store, digest: &str) -> Result<Vec<String>, ExportError> {
    let mut out: Vec<String> = Vec::new();
    let mut stack = vec![digest.to_string()];
    while let Some(d) = stack.pop() {
        if out.contains(&d) {
            continue;
        }
        out.push(d.clone());
        let bytes = store.read_blob(&d)?;
        // Configs and layers name nothing (and are not documents).
        if let Ok(children) = referenced_blobs(&bytes, &d) {
            for (_, child) in children.into_iter().rev() {
                // A digest that is none must never become a file name.
                rbuild_image::manifest::digest(&child)?;
                stack.push(child);
            }
        }
    }
    Ok(out)
}
