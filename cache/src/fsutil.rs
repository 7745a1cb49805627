//! Small filesystem helpers: atomic file replacement and a directory lock.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

use crate::error::{StoreError, io_err};

/// Writes `bytes` to `path` atomically: a temp file in `tmp_dir` (same
/// filesystem), fsynced, then renamed over `path`.
pub fn write_atomic(tmp_dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut tmp =
        tempfile::NamedTempFile::new_in(tmp_dir).map_err(io_err("create temp file in", tmp_dir))?;
    tmp.write_all(bytes).map_err(io_err("write", tmp.path()))?;
    tmp.as_file()
        .sync_all()
        .map_err(io_err("sync", tmp.path()))?;
    tmp.persist(path).map_err(|e| StoreError::Io {
        op: "rename into",
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

/// A held `flock` on a lock file; released on drop.
#[derive(Debug)]
pub struct LockGuard {
    _lock: Flock<File>,
}

/// Takes `flock` on `path` (shared or exclusive), waiting for it.
pub fn lock(path: &Path, exclusive: bool) -> Result<LockGuard, StoreError> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io_err("open lock", path))?;
    let arg = if exclusive {
        FlockArg::LockExclusive
    } else {
        FlockArg::LockShared
    };
    let lock = Flock::lock(file, arg).map_err(|(_, e)| StoreError::Io {
        op: "lock",
        path: path.to_path_buf(),
        source: e.into(),
    })?;
    Ok(LockGuard { _lock: lock })
}
