//! File helpers shared by everything that writes layer contents: safe
//! relative paths from archives, removal of any kind of entry, and
//! timestamps set without following symlinks.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use nix::sys::stat::{UtimensatFlags, utimensat};
use nix::sys::time::TimeSpec;

/// An archive path as a clean relative path (`None` for the root itself);
/// an error for `..` or anything else that would leave the destination.
pub fn relative_in_layer(raw: &Path) -> io::Result<Option<PathBuf>> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: path escapes the layer", raw.display()),
                ));
            }
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// Removes whatever is at `path` (a directory with its content); nothing
/// there is fine.
pub fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(_) => Ok(()),
    }
}

/// Sets access and modification time of `path` itself (not a symlink's target).
pub fn set_mtime(path: &Path, secs: i64, nanos: i64) -> io::Result<()> {
    let t = TimeSpec::new(secs, nanos);
    utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &t,
        &t,
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(io::Error::from)
}
