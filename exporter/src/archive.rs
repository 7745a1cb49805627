//! Image archives: the docker format (`manifest.json` + config + layer
//! tars, as `docker save` writes and `docker load` reads) and OCI image
//! layouts (a directory or a tar of one).

use std::io::{Read, Write};
use std::path::Path;

use std::collections::BTreeMap;

use oci_spec::image::Descriptor;
use rbuild_cache::Store;
use rbuild_image::json::to_canonical_json;
use rbuild_image::manifest::{descriptor, image_index, image_manifest};
use rbuild_image::media;
use rbuild_image::reference::split_store_name;
use serde::{Deserialize, Serialize};

use crate::stored::StoredImage;
use crate::{ExportError, io_error};

/// One image of a docker archive's `manifest.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ArchiveEntry {
    /// The config's file in the archive.
    config: String,
    /// Its names (`null` in archives of untagged images).
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    /// The layer tars' files, bottom first.
    layers: Vec<String>,
}

/// A docker archive's `repositories`: repository → tag → top layer id.
type Repositories = BTreeMap<String, BTreeMap<String, String>>;

/// The hex of a digest read from a manifest or config, checked before it
/// names a file or an archive entry.
fn hex(digest: &str) -> Result<&str, ExportError> {
    Ok(rbuild_cache::digest_hex(digest)?)
}

/// Appends a file entry with fixed metadata (deterministic archives).
fn append(
    builder: &mut tar::Builder<impl Write>,
    name: &str,
    size: u64,
    data: impl Read,
) -> std::io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(size);
    h.set_mtime(0);
    builder.append_data(&mut h, name, data)
}

fn append_bytes(
    builder: &mut tar::Builder<impl Write>,
    name: &str,
    bytes: &[u8],
) -> std::io::Result<()> {
    append(builder, name, bytes.len() as u64, bytes)
}

/// Writes a docker archive of `images` (name, manifest) to `out`: layers
/// uncompressed, as `docker load` (20.10 and later) and `podman load` read.
pub fn save_docker_archive(
    store: &Store,
    images: &[(String, Descriptor)],
    out: impl Write,
) -> Result<(), ExportError> {
    let what = || String::from("write docker archive");
    let mut builder = tar::Builder::new(out);
    let mut manifest = Vec::new();
    let mut written: Vec<String> = Vec::new();
    let mut repositories = Repositories::new();
    for (name, desc) in images {
        let image = StoredImage::read(store, desc.digest().as_ref())?;
        let (layers, config_digest) = (image.layers, image.config_digest);
        let config_name = format!("{}.json", hex(&config_digest)?);
        if !written.contains(&config_name) {
            append_bytes(
                &mut builder,
                &config_name,
                &store.read_blob(&config_digest)?,
            )
            .map_err(io_error(what()))?;
            written.push(config_name.clone());
        }
        let mut layer_names = Vec::new();
        for l in &layers {
            let entry = format!("{}/layer.tar", hex(&l.diff_id)?);
            if !written.contains(&entry) {
                let file = std::fs::File::open(store.blob_path(&l.blob.digest))
                    .map_err(io_error(what()))?;
                // Layers go in uncompressed, so the size is that of the tar.
                let mut tmp = tempfile::tempfile().map_err(io_error(what()))?;
                let size = std::io::copy(
                    &mut rbuild_cache::decompress(file).map_err(io_error(what()))?,
                    &mut tmp,
                )
                .map_err(io_error(what()))?;
                std::io::Seek::rewind(&mut tmp).map_err(io_error(what()))?;
                append(&mut builder, &entry, size, tmp).map_err(io_error(what()))?;
                written.push(entry.clone());
            }
            layer_names.push(entry);
        }
        // Docker wants `name:tag` in `RepoTags`, `latest` spelled out.
        let (repo, tag) = split_store_name(name);
        manifest.push(ArchiveEntry {
            config: config_name,
            repo_tags: Some(vec![format!("{repo}:{tag}")]),
            layers: layer_names,
        });
        let top = match layers.last() {
            Some(l) => hex(&l.diff_id)?.to_string(),
            None => String::new(),
        };
        repositories
            .entry(repo.to_string())
            .or_default()
            .insert(tag.to_string(), top);
    }
    append_bytes(&mut builder, "manifest.json", &to_canonical_json(&manifest))
        .map_err(io_error(what()))?;
    append_bytes(
        &mut builder,
        "repositories",
        &to_canonical_json(&repositories),
    )
    .map_err(io_error(what()))?;
    builder
        .into_inner()
        .and_then(|mut w| w.flush())
        .map_err(io_error(what()))
}

/// Reads a docker archive into the store; returns each image's tags and
/// the manifest written for it (OCI media types, layers uncompressed). An
/// OCI image layout archive is loaded as it is (see `oci_load`).
pub fn load_docker_archive(
    store: &Store,
    input: impl Read,
) -> Result<Vec<(Vec<String>, Descriptor)>, ExportError> {
    let what = || String::from("read docker archive");
    let dir = tempfile::Builder::new()
        .prefix("load-")
        .tempdir_in(store.root().join("tmp"))
        .map_err(io_error(what()))?;
    let mut archive = tar::Archive::new(input);
    archive.unpack(dir.path()).map_err(io_error(what()))?;
    if !dir.path().join("manifest.json").exists() && crate::oci_load::is_layout(dir.path()) {
        return crate::oci_load::load_layout(store, dir.path());
    }
    let manifest: Vec<ArchiveEntry> = serde_json::from_slice(
        &std::fs::read(dir.path().join("manifest.json"))
            .map_err(io_error("read manifest.json of the archive"))?,
    )
    .map_err(|e| ExportError::Other(format!("manifest.json: {e}")))?;
    let mut out = Vec::new();
    for entry in manifest {
        let config_path = inside(dir.path(), &entry.config)?;
        let config = store.put_blob(
            &std::fs::read(&config_path)
                .map_err(io_error(format!("read {}", config_path.display())))?,
        )?;
        let mut layers = Vec::new();
        for l in &entry.layers {
            let path = inside(dir.path(), l)?;
            let mut blob = store.blob_writer()?;
            let file =
                std::fs::File::open(&path).map_err(io_error(format!("read {}", path.display())))?;
            // Stored uncompressed: bounded as an unpack would be.
            let limit = rbuild_cache::Limits::for_compressed(
                file.metadata().map_err(io_error(what()))?.len(),
            )
            .max_bytes;
            let copied = std::io::copy(
                &mut rbuild_cache::decompress(file)
                    .map_err(io_error(what()))?
                    .take(limit.saturating_add(1)),
                &mut blob,
            )
            .map_err(io_error(what()))?;
            if copied > limit {
                return Err(ExportError::Other(format!(
                    "layer {l}: {}",
                    rbuild_cache::UnpackError::TooLarge { limit }
                )));
            }
            let info = blob.commit(None)?;
            layers.push(descriptor(media::OCI_LAYER_TAR, &info.digest, info.size)?);
        }
        let doc = image_manifest(
            media::OCI_MANIFEST,
            descriptor(media::OCI_CONFIG, &config.digest, config.size)?,
            layers,
            &BTreeMap::new(),
        );
        let blob = store.put_blob(&to_canonical_json(&doc))?;
        out.push((
            entry.repo_tags.unwrap_or_default(),
            descriptor(media::OCI_MANIFEST, &blob.digest, blob.size)?,
        ));
    }
    Ok(out)
}

/// The file a docker archive's `manifest.json` names, found inside the
/// unpacked archive `dir` (its symlinks followed, never out of `dir`).
fn inside(dir: &Path, name: &str) -> Result<std::path::PathBuf, ExportError> {
    rbuild_cache::contain::existing_inside(dir, name.as_bytes())
        .map_err(|e| ExportError::Other(format!("docker archive manifest.json: {e}")))
}

/// Writes an OCI image layout holding the image or index `desc` (tagged
/// `name`) to `dest`: a directory, or a tar of one when `as_tar`.
pub fn export_oci(
    store: &Store,
    desc: &Descriptor,
    name: &str,
    dest: &Path,
    as_tar: bool,
) -> Result<(), ExportError> {
    let what = || format!("write OCI layout {}", dest.display());
    let blobs = crate::reachable_blobs(store, desc.digest().as_ref())?;
    let mut d = desc.clone();
    let mut annotations = std::collections::HashMap::new();
    annotations.insert(rbuild_cache::REF_NAME.to_string(), name.to_string());
    // As BuildKit's OCI exporter: the name containerd (and `load`) reads.
    annotations.insert(
        crate::oci_load::CONTAINERD_NAME.to_string(),
        name.to_string(),
    );
    d.set_annotations(Some(annotations));
    let index = to_canonical_json(&image_index(vec![d]));
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    if as_tar {
        let file = std::fs::File::create(dest).map_err(io_error(what()))?;
        let mut builder = tar::Builder::new(std::io::BufWriter::new(file));
        append_bytes(&mut builder, "oci-layout", layout).map_err(io_error(what()))?;
        append_bytes(&mut builder, "index.json", &index).map_err(io_error(what()))?;
        for b in &blobs {
            let path = store.blob_path(b);
            let size = std::fs::metadata(&path).map_err(io_error(what()))?.len();
            let file = std::fs::File::open(&path).map_err(io_error(what()))?;
            append(
                &mut builder,
                &format!("blobs/sha256/{}", hex(b)?),
                size,
                file,
            )
            .map_err(io_error(what()))?;
        }
        builder
            .into_inner()
            .and_then(|mut w| w.flush())
            .map_err(io_error(what()))
    } else {
        std::fs::create_dir_all(dest.join("blobs/sha256")).map_err(io_error(what()))?;
        std::fs::write(dest.join("oci-layout"), layout).map_err(io_error(what()))?;
        std::fs::write(dest.join("index.json"), &index).map_err(io_error(what()))?;
        for b in &blobs {
            let target = dest.join("blobs/sha256").join(hex(b)?);
            if std::fs::hard_link(store.blob_path(b), &target).is_err() {
                std::fs::copy(store.blob_path(b), &target).map_err(io_error(what()))?;
            }
        }
        Ok(())
    }
}
