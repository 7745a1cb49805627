//! Whether a source of the build context may be bound as it is on the host
//! instead of through a private copy: when the copy would show exactly the
//! same entries, with the same owners, modes, times and link counts.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::context::{self, Excluded};
use crate::layered::FsView;
use crate::modes::ContextModes;

/// The mode the copy gives the directory it copies a directory source into
/// (the mount's root).
pub const COPY_ROOT_MODE: u32 = 0o755;

/// Whether the context entry `top` (at `host`) and, for a directory,
/// everything below it, looks in the sandbox as a copy would show it: no
/// entry `.dockerignore` hides; every entry root's (the copy's owner) with
/// the mode `modes` carries; a directory `top` with the copy root's mode;
/// no extended attributes (the copy drops them), no file linked from
/// elsewhere (the copy's link count would differ) and no overlay whiteout
/// (a character device 0/0, hidden when an `rw` overlay mounts the tree).
pub fn shows_as_copied(
    view: &dyn FsView,
    top: &str,
    host: &Path,
    ignored: Excluded<'_>,
    modes: ContextModes,
) -> io::Result<bool> {
    let meta = host.symlink_metadata()?;
    if !meta.is_dir() {
        return entry_as_copied(host, &meta, modes);
    }
    if meta.mode() & 0o7777 != COPY_ROOT_MODE || !root_owned(&meta) || has_xattrs(host)? {
        return Ok(false);
    }
    for (path, entry) in context::walk_hosts(view, top, &context::nothing_excluded)? {
        if ignored(&path) || !entry_as_copied(&entry, &entry.symlink_metadata()?, modes)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether one entry below the source shows as its copy would.
fn entry_as_copied(host: &Path, meta: &std::fs::Metadata, modes: ContextModes) -> io::Result<bool> {
    let kind = meta.file_type();
    let mode_kept = kind.is_symlink() || modes.permissions(meta.mode()) == meta.mode() & 0o7777;
    let whiteout = kind.is_char_device() && meta.rdev() == 0;
    let linked = !kind.is_dir() && meta.nlink() > 1;
    Ok(mode_kept && root_owned(meta) && !whiteout && !linked && !has_xattrs(host)?)
}

/// Whether root owns the entry, as it owns every copied context file.
fn root_owned(meta: &std::fs::Metadata) -> bool {
    meta.uid() == 0 && meta.gid() == 0
}

/// Whether `host` (not followed) carries extended attributes.
fn has_xattrs(host: &Path) -> io::Result<bool> {
    let path = CString::new(host.as_os_str().as_bytes())
        .map_err(|_| io::Error::other(format!("{}: NUL in path", host.display())))?;
    // SAFETY: `path` is a valid C string; a null buffer of size 0 only
    // asks for the size of the name list.
    let size = unsafe { libc::llistxattr(path.as_ptr(), std::ptr::null_mut(), 0) };
    match size {
        -1 => {
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::ENOTSUP) => Ok(false),
                _ => Err(err),
            }
        }
        n => Ok(n > 0),
    }
}
