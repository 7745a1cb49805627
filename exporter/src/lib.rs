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
    let (made, stats) = make_blob(store, Some(snapshot), &dir, &left_out, opts)?;
    Ok((made.record(store, snapshot)?, stats))
}

/// A layer blob in the store made from a directory that is not yet a
/// snapshot ([`export_tree`]): the layer of the snapshot the directory
/// becomes unchanged, recorded as its by [`TreeBlob::record`]. A blob
/// never recorded is garbage that `prune` collects, as any blob no
/// image or layer record names.
#[derive(Debug)]
pub struct TreeBlob {
    info: BlobInfo,
    diff_id: String,
    media_type: String,
    epoch: Option<i64>,
    index: Option<LayerIndex>,
}

impl TreeBlob {
    /// The blob's digest.
    pub fn digest(&self) -> &str {
        &self.info.digest
    }

    /// Records the blob as the layer of `snapshot`, the snapshot its
    /// directory became with every entry as it was when the blob was
    /// made (the caller's promise: nothing here reads the snapshot).
    pub fn record(self, store: &Store, snapshot: &str) -> Result<LayerRecord, ExportError> {
        let record = LayerRecord {
            snapshot: snapshot.to_string(),
            diff_id: self.diff_id,
            blob: self.info,
            media_type: self.media_type,
            epoch: self.epoch,
        };
        store.put_layer(&record)?;
        if let Some(index) = self.index {
            store.put_layer_index(snapshot, &index)?;
        }
        Ok(record)
    }
}

/// Makes the layer blob of the directory `dir` (every entry below it, as
/// [`export_layer`] makes a snapshot's) before it is a snapshot, so that
/// it is ready when it becomes one.
pub fn export_tree(
    store: &Store,
    dir: &Path,
    opts: &ExportOptions,
) -> Result<TreeBlob, ExportError> {
    make_blob(store, None, dir, &HashSet::new(), opts).map(|(made, _)| made)
}

/// The layer blob of `dir` without the paths in `left_out`, made as
/// `opts` say; from the indexed blob of the snapshot that `snapshot`
/// shares files with where there is one.
fn make_blob(
    store: &Store,
    snapshot: Option<&str>,
    dir: &Path,
    left_out: &HashSet<PathBuf>,
    opts: &ExportOptions,
) -> Result<(TreeBlob, Option<ReuseStats>), ExportError> {
    let name = snapshot.map_or_else(|| dir.display().to_string(), str::to_string);
    let what = || format!("export layer {name}");
    // The tar is made on a thread of its own (see `pipe`) while this one
    // compresses, hashes and writes it. An uncompressed layer's diff_id is
    // its blob digest: hashed once, by the blob writer.
    let epoch = opts.source_date_epoch;
    let tar = |w: &mut dyn Write| layer::write_tar(dir, left_out, w, epoch).map(drop);
    let (info, diff_id, index, stats) = match opts.compression {
        Compression::Uncompressed => {
            let (blob, entries, stats) =
                uncompressed_tar(store, snapshot, dir, left_out, epoch, what())?;
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
    let made = TreeBlob {
        diff_id: diff_id.unwrap_or_else(|| info.digest.clone()),
        info,
        media_type: opts.compression.media_type(opts.oci_mediatypes).to_string(),
        epoch,
        index,
    };
    Ok((made, stats))
}

/// The uncompressed layer tar of `dir` written into a new blob: made
/// from the indexed blob of the snapshot that `snapshot` shares files
/// with where there is one (any failure there: made afresh), else from
/// its files; `what` names it in errors. Returns
/// the blob (not committed), the tar's index entries and, when an old
/// blob was used, how.
fn uncompressed_tar(
    store: &Store,
    snapshot: Option<&str>,
    dir: &Path,
    left_out: &HashSet<PathBuf>,
    epoch: Option<i64>,
    what: String,
) -> Result<(BlobWriter, IndexEntries, Option<ReuseStats>), ExportError> {
    let shared_from = snapshot.and_then(|s| store.shared_from(s));
    let reusable = shared_from.and_then(|previous| {
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
    pipe::piped(tar, &mut blob).map_err(io_error(what))?;
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
