//! The OCI image layout side of the store: `oci-layout` and `index.json`,
//! whose manifests carry the tag in `org.opencontainers.image.ref.name`, so
//! `skopeo inspect oci:<root>:<name>` reads a tagged image directly.

use std::path::Path;

use oci_spec::image::{Descriptor, ImageIndex, ImageIndexBuilder};

use crate::durable::Disk;
use crate::error::{StoreError, io_err};
use crate::fsutil;

/// The annotation holding an image's name in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Reads `index.json` (an empty index when it does not exist yet).
pub fn read_index(path: &Path) -> Result<ImageIndex, StoreError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoreError::Invalid {
            what: path.display().to_string(),
            message: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(empty_index()),
        Err(e) => Err(io_err("read", path)(e)),
    }
}

fn empty_index() -> ImageIndex {
    ImageIndexBuilder::default()
        .schema_version(2u32)
        .manifests(Vec::<Descriptor>::new())
        .build()
        .expect("a valid empty index")
}

/// Writes `index.json` atomically.
pub fn write_index(
    disk: &dyn Disk,
    tmp_dir: &Path,
    path: &Path,
    index: &ImageIndex,
) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(index).expect("an index serializes");
    fsutil::write_atomic(disk, tmp_dir, path, &bytes)
}

/// The name a descriptor of `index.json` carries.
pub fn ref_name(desc: &Descriptor) -> Option<&str> {
    desc.annotations()
        .as_ref()
        .and_then(|a| a.get(REF_NAME))
        .map(String::as_str)
}

/// `index` with `name` pointing at `manifest` (replacing what it pointed at)
/// or removed when `manifest` is `None`; entries sorted by name.
pub fn retag(index: &mut ImageIndex, name: &str, manifest: Option<&Descriptor>) {
    // A dangling entry of the manifest that gets the name goes: the image
    // is named now.
    let mut manifests: Vec<Descriptor> = index
        .manifests()
        .iter()
        .filter(|d| ref_name(d) != Some(name))
        .filter(|d| ref_name(d).is_some() || manifest.is_none_or(|m| m.digest() != d.digest()))
        .cloned()
        .collect();
    if let Some(m) = manifest {
        let mut d = m.clone();
        let mut annotations = d.annotations().clone().unwrap_or_default();
        annotations.insert(REF_NAME.to_string(), name.to_string());
        d.set_annotations(Some(annotations));
        manifests.push(d);
    }
    manifests.sort_by(|a, b| ref_name(a).cmp(&ref_name(b)));
    index.set_manifests(manifests);
}
