//! `load` of an OCI image layout archive (`docker save` of Docker's
//! containerd store, `buildx -o type=oci`, `rbuild build -o type=oci`):
//! every blob copied into the store as it is (its digest verified), so
//! manifests, configs and image ids are unchanged; names from each index
//! entry's `io.containerd.image.name`, else its
//! `org.opencontainers.image.ref.name` when that is a full reference.

use std::path::Path;

use oci_spec::image::Descriptor;
use rbuild_cache::Store;

use crate::{ExportError, io_error};

/// The annotation containerd (and Docker's `save`) names an image with.
pub(crate) const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// The OCI annotation an image layout names an entry with.
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Whether the unpacked archive `dir` is an OCI image layout.
pub(crate) fn is_layout(dir: &Path) -> bool {
    dir.join("oci-layout").is_file() && dir.join("index.json").is_file()
}

/// Loads the layout unpacked in `dir` into `store`; each entry of its
/// index.json with the names it gives.
pub(crate) fn load_layout(
    store: &Store,
    dir: &Path,
) -> Result<Vec<(Vec<String>, Descriptor)>, ExportError> {
    let blobs = dir.join("blobs/sha256");
    let entries = std::fs::read_dir(&blobs).map_err(io_error("read the layout's blobs"))?;
    for entry in entries {
        let entry = entry.map_err(io_error("read the layout's blobs"))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !entry
            .file_type()
            .map_err(io_error("read a blob"))?
            .is_file()
        {
            continue;
        }
        let mut file =
            std::fs::File::open(entry.path()).map_err(io_error(format!("read blob {name}")))?;
        let mut writer = store.blob_writer()?;
        std::io::copy(&mut file, &mut writer).map_err(io_error(format!("copy blob {name}")))?;
        writer.commit(Some(&format!("sha256:{name}")))?;
    }
    let index: oci_spec::image::ImageIndex = serde_json::from_slice(
        &std::fs::read(dir.join("index.json")).map_err(io_error("read index.json"))?,
    )
    .map_err(|e| ExportError::Other(format!("index.json of the layout: {e}")))?;
    let mut out = Vec::new();
    for desc in index.manifests() {
        let digest = desc.digest().to_string();
        if !store.has_blob(&digest) {
            return Err(ExportError::Other(format!(
                "index.json names {digest}, which the layout does not hold"
            )));
        }
        let annotations = desc.annotations().clone().unwrap_or_default();
        let names = annotations
            .get(CONTAINERD_NAME)
            .or_else(|| annotations.get(REF_NAME).filter(|r| is_full_reference(r)))
            .map(|n| vec![n.clone()])
            .unwrap_or_default();
        out.push((names, desc.clone()));
    }
    Ok(out)
}

/// Whether a ref.name is a whole image reference (`repo:tag`,
/// `host/repo`) rather than only a tag (`latest`, `v1`).
fn is_full_reference(name: &str) -> bool {
    name.contains(':') || name.contains('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_references_name_an_image() {
        assert!(is_full_reference("app:v1"));
        assert!(is_full_reference("registry.example/app"));
        assert!(!is_full_reference("latest"));
    }
}
