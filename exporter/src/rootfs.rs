//! The final filesystem of an image as plain files (`type=local`) or one
//! tar (`type=tar`): layers applied in order by the store's one unpack
//! routine, whiteouts deleting what they name, opaque directories emptied;
//! nothing lands outside the destination.

use std::fs;
use std::io::Write;
use std::path::Path;

use oci_spec::image::Descriptor;
use rbuild_cache::{Limits, Store, Whiteouts};

use crate::stored::StoredImage;
use crate::{ExportError, io_error};

/// Writes the image's final filesystem into the directory `dest`.
pub fn export_rootfs(store: &Store, desc: &Descriptor, dest: &Path) -> Result<(), ExportError> {
    let what = || format!("write the filesystem to {}", dest.display());
    let layers = StoredImage::read(store, desc.digest().as_ref())?.layers;
    fs::create_dir_all(dest).map_err(io_error(what()))?;
    for l in layers {
        let file = fs::File::open(store.blob_path(&l.blob.digest)).map_err(io_error(what()))?;
        let limits = Limits::for_compressed(file.metadata().map_err(io_error(what()))?.len());
        let reader = rbuild_cache::decompress(file).map_err(io_error(what()))?;
        rbuild_cache::unpack(reader, dest, Whiteouts::Apply, limits)
            .map_err(|e| ExportError::Other(format!("{}: layer {}: {e}", what(), l.blob.digest)))?;
    }
    Ok(())
}

/// Writes the image's final filesystem as one tar to `out`, file times
/// clamped to `epoch` (`SOURCE_DATE_EPOCH`) when given.
pub fn export_rootfs_tar(
    store: &Store,
    desc: &Descriptor,
    epoch: Option<i64>,
    out: impl Write,
) -> Result<(), ExportError> {
    let dir = tempfile::Builder::new()
        .prefix("rootfs-")
        .tempdir_in(store.root().join("tmp"))
        .map_err(io_error("create a temp dir"))?;
    export_rootfs(store, desc, dir.path())?;
    crate::layer::write_tar(dir.path(), &Default::default(), out, epoch)
        .map(drop)
        .map_err(io_error("write the filesystem tar"))
}
