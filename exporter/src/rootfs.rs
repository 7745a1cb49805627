//! The final filesystem of an image as plain files (`type=local`) or one
//! tar (`type=tar`): layers applied in order, whiteouts deleting what they
//! name, opaque directories emptied; nothing lands outside the destination.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use oci_spec::image::Descriptor;
use rbuild_cache::Store;
use rbuild_cache::files::{relative_in_layer, remove_any};

use crate::push::{image_layers, read_json};
use crate::{ExportError, io_error};

/// Checks that no parent of `rel` below `dest` is a symlink.
fn check_parents(dest: &Path, rel: &Path) -> io::Result<()> {
    let mut p = dest.to_path_buf();
    for c in rel.parent().into_iter().flat_map(Path::components) {
        p.push(c);
        if fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: path goes through a symlink", rel.display()),
            ));
        }
    }
    Ok(())
}

/// Applies one layer tar onto `dest`.
fn apply_layer(reader: impl io::Read, dest: &Path) -> io::Result<()> {
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(true);
    archive.set_overwrite(true);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let Some(rel) = relative_in_layer(&entry.path()?)? else {
            continue;
        };
        check_parents(dest, &rel)?;
        let name = rel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parent = dest.join(rel.parent().unwrap_or(Path::new("")));
        if name == ".wh..wh..opq" {
            if let Ok(children) = fs::read_dir(&parent) {
                for c in children {
                    remove_any(&c?.path())?;
                }
            }
            continue;
        }
        if let Some(hidden) = name.strip_prefix(".wh.") {
            remove_any(&parent.join(hidden))?;
            continue;
        }
        let target = dest.join(&rel);
        if !entry.header().entry_type().is_dir() {
            remove_any(&target)?;
        }
        entry.unpack_in(dest)?;
    }
    Ok(())
}

/// Writes the image's final filesystem into the directory `dest`.
pub fn export_rootfs(store: &Store, desc: &Descriptor, dest: &Path) -> Result<(), ExportError> {
    let what = || format!("write the filesystem to {}", dest.display());
    let doc = read_json(store, desc.digest().as_ref())?;
    let (_, layers) = image_layers(store, &doc)?;
    fs::create_dir_all(dest).map_err(io_error(what()))?;
    for l in layers {
        let file = fs::File::open(store.blob_path(&l.blob.digest)).map_err(io_error(what()))?;
        let reader = rbuild_cache::decompress(file).map_err(io_error(what()))?;
        apply_layer(reader, dest).map_err(io_error(what()))?;
    }
    Ok(())
}

/// Writes the image's final filesystem as one tar to `out`.
pub fn export_rootfs_tar(
    store: &Store,
    desc: &Descriptor,
    out: impl Write,
) -> Result<(), ExportError> {
    let dir = tempfile::Builder::new()
        .prefix("rootfs-")
        .tempdir_in(store.root().join("tmp"))
        .map_err(io_error("create a temp dir"))?;
    export_rootfs(store, desc, dir.path())?;
    crate::layer::write_tar(dir.path(), out, None).map_err(io_error("write the filesystem tar"))
}
