//! Turns snapshots into images: each layer's diff (an overlay upper dir,
//! whiteouts converted to `.wh.` entries) becomes a deterministic tar,
//! compressed and named by sha256; then the image config and manifest. Writes
//! the result to the local store, OCI and docker archives, plain directories,
//! and registries.

mod archive;
mod compress;
mod first_names;
mod image;
mod index;
mod layer;
mod oci_load;
mod pipe;
mod push;
mod reuse;
mod rootfs;
mod stored;

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use rbuild_cache::midstate::Midstate;
use rbuild_cache::{BlobInfo, BlobWriter, IndexEntries, LayerIndex, LayerRecord, Store};

pub use archive::{export_oci, load_docker_archive, save_docker_archive};
pub use compress::{parallel_gzip, recompress};
pub use image::{ImageSpec, write_image};
pub use index::{index_manifests, reachable_blobs, write_index};
pub use push::push_image;
pub use reuse::ReuseStats;
pub use rootfs::{export_rootfs, export_rootfs_tar};
pub use stored::StoredImage;

/// Errors of the exporter.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] rbuild_cache::StoreError),
    /// An image's manifest or config is not what its kind needs.
    #[error(transparent)]
    Image(#[from] rbuild_image::ImageError),
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] rbuild_registry::RegistryError),
    /// Reading or writing files failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Anything else, with context.
    #[error("{0}")]
    Other(String),
}

/// Worker threads of zstd (a fixed number: the frame layout, and so the
/// bytes, depend on it).
pub(crate) const ZSTD_WORKERS: u32 = 2;

/// Layer compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// No compression (`application/vnd.oci.image.layer.v1.tar`).
    Uncompressed,
    /// gzip at a level 0–9.
    Gzip(u32),
    /// zstd at a level 1–22.
    Zstd(i32),
}

impl Compression {
    /// The layer media type with this compression.
    pub fn media_type(self, oci: bool) -> &'static str {
        match (self, oci) {
            (Compression::Uncompressed, true) => "application/vnd.oci.image.layer.v1.tar",
            (Compression::Gzip(_), true) => "application/vnd.oci.image.layer.v1.tar+gzip",
            (Compression::Zstd(_), true) => "application/vnd.oci.image.layer.v1.tar+zstd",
            (Compression::Uncompressed, false) => "application/vnd.docker.image.rootfs.diff.tar",
            (Compression::Gzip(_), false) => "application/vnd.docker.image.rootfs.diff.tar.gzip",
            (Compression::Zstd(_), false) => "application/vnd.docker.image.rootfs.diff.tar.zstd",
        }
    }
}

/// Options shared by layer and image export.
#[derive(Debug, Clone, Copy)]
pub struct ExportOptions {
    /// Layer compression.
    pub compression: Compression,
    /// `SOURCE_DATE_EPOCH`: mtimes newer are clamped to it; `created` uses it.
    pub source_date_epoch: Option<i64>,
    /// OCI media types (true) or Docker schema 2 (false).
    pub oci_mediatypes: bool,
}

fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ExportError {
    let what = what.into();
    move |source| ExportError::Io { what, source }
}

/// Makes (or finds, when already made) the layer blob of a snapshot: a
/// deterministic tar of the snapshot directory with overlay whiteouts
/// written as `.wh.` entries, compressed as asked. Records it in the store.
/// A blob made under another `SOURCE_DATE_EPOCH` is not this layer (its
/// times differ) and is made again; a layer unpacked from a blob is that
/// blob, whatever the epoch. An uncompressed blob is indexed, and made
/// from the indexed blob of the snapshot this one shares files with where
/// there is one (see `reuse`).
pub fn export_layer(
    store: &Store,
    snapshot: &str,
    opts: &ExportOptions,
) -> Result<LayerRecord, ExportError> {
    export_layer_with_stats(store, snapshot, opts).map(|(record, _)| record)
}

/// [`export_layer`], also saying how much of an uncompressed layer came
/// from an earlier blob (`None` when none was used).
pub fn export_layer_with_stats(
    store: &Store,
    snapshot: &str,
    opts: &ExportOptions,
) -> Result<(LayerRecord, Option<ReuseStats>), ExportError> {
    if let Some(record) = store.layer_of_snapshot(snapshot)?
        && (record.epoch == opts.source_date_epoch
            || record.snapshot.strip_prefix("sha256-")
                == record.blob.digest.strip_prefix("sha256:"))
    {
        return Ok((record, None));
    }
    let dir = store.snapshot_path(snapshot);
    let left_out = store.left_out(snapshot)?;
    let what = || format!("export layer {snapshot}");
    // The tar is made on a thread of its own (see `pipe`) while this one
    // compresses, hashes and writes it. An uncompressed layer's diff_id is
    // its blob digest: hashed once, by the blob writer.
    let epoch = opts.source_date_epoch;
    let tar = |w: &mut dyn Write| layer::write_tar(&dir, &left_out, w, epoch).map(drop);
    let (info, diff_id, index, stats) = match opts.compression {
        Compression::Uncompressed => {
            let (blob, entries, stats) = uncompressed_tar(store, snapshot, &dir, &left_out, epoch)?;
            let (info, checkpoints) = commit(blob, what)?;
            let index = LayerIndex::new(info.clone(), checkpoints, entries);
            (info, None, Some(index), stats)
        }
        Compression::Gzip(level) => {
            let gz = flate2::GzBuilder::new()
                .mtime(0)
                .operating_system(255)
                .write(store.blob_writer()?, flate2::Compression::new(level));
            let mut out = layer::HashingWriter::new(gz);
            pipe::piped(tar, &mut out).map_err(io_error(what()))?;
            let (gz, diff_id) = out.finish();
            let blob = gz.finish().map_err(io_error(what()))?;
            (commit(blob, what)?.0, Some(diff_id), None, None)
        }
        Compression::Zstd(level) => {
            let mut zs =
                zstd::Encoder::new(store.blob_writer()?, level).map_err(io_error(what()))?;
            // zstd's own worker threads compress while the tar is written;
            // the output depends on the level only, not on the machine.
            zs.multithread(ZSTD_WORKERS).map_err(io_error(what()))?;
            let mut out = layer::HashingWriter::new(zs);
            pipe::piped(tar, &mut out).map_err(io_error(what()))?;
            let (zs, diff_id) = out.finish();
            let blob = zs.finish().map_err(io_error(what()))?;
            (commit(blob, what)?.0, Some(diff_id), None, None)
        }
    };
    let record = LayerRecord {
        snapshot: snapshot.to_string(),
        diff_id: diff_id.unwrap_or_else(|| info.digest.clone()),
        blob: info,
        media_type: opts.compression.media_type(opts.oci_mediatypes).to_string(),
        epoch: opts.source_date_epoch,
    };
    store.put_layer(&record)?;
    if let Some(index) = index {
        store.put_layer_index(snapshot, &index)?;
    }
    Ok((record, stats))
}

/// The uncompressed layer tar of `snapshot` written into a new blob: made
/// from the indexed blob of the snapshot it shares files with where there
/// is one (any failure there: made afresh), else from its files. Returns
/// the blob (not committed), the tar's index entries and, when an old
/// blob was used, how.
fn uncompressed_tar(
    store: &Store,
    snapshot: &str,
    dir: &Path,
    left_out: &HashSet<PathBuf>,
    epoch: Option<i64>,
) -> Result<(BlobWriter, IndexEntries, Option<ReuseStats>), ExportError> {
    let reusable = store.shared_from(snapshot).and_then(|previous| {
        let index = store.layer_index(&previous)?;
        let file = std::fs::File::open(store.blob_path(&index.blob.digest)).ok()?;
        Some((index, file))
    });
    if let Some((index, file)) = reusable {
        let made =
            reuse::write_tar_reusing(dir, left_out, epoch, &index, &file, store.blob_writer()?);
        if let Ok((blob, entries, stats)) = made {
            return Ok((blob, entries, Some(stats)));
        }
    }
    let mut blob = store.blob_writer()?;
    let mut entries = None;
    let tar = |w: &mut dyn Write| {
        entries = Some(layer::write_tar(dir, left_out, w, epoch)?);
        Ok(())
    };
    pipe::piped(tar, &mut blob).map_err(io_error(format!("export layer {snapshot}")))?;
    Ok((blob, entries.expect("written"), None))
}

/// Flushes and commits a layer blob; returns it with its hash states.
fn commit(
    mut blob: BlobWriter,
    what: impl Fn() -> String,
) -> Result<(BlobInfo, Vec<Midstate>), ExportError> {
    blob.flush().map_err(io_error(what()))?;
    let checkpoints = blob.checkpoints().to_vec();
    Ok((blob.commit(None)?, checkpoints))
}
