//! Snapshots: directories under `snapshots/<id>`, used read-only as overlay
//! lower dirs. A new one is filled in a temp dir and renamed into place.

use std::path::{Path, PathBuf};

use crate::error::{StoreError, io_err};

/// Checks that a snapshot id is a plain file name.
pub(crate) fn check_id(id: &str) -> Result<(), StoreError> {
    let ok = !id.is_empty()
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid {
            what: format!("snapshot id {id:?}"),
            message: String::from("must be letters, digits, '-', '_' or '.'"),
        })
    }
}

/// A snapshot being created; removed on drop unless committed.
#[derive(Debug)]
pub struct PendingSnapshot {
    tmp: tempfile::TempDir,
    dir: PathBuf,
    work: PathBuf,
    snapshots_dir: PathBuf,
}

impl PendingSnapshot {
    pub(crate) fn new(tmp_dir: &Path, snapshots_dir: PathBuf) -> Result<Self, StoreError> {
        let tmp = tempfile::Builder::new()
            .prefix("snap-")
            .tempdir_in(tmp_dir)
            .map_err(io_err("create temp dir in", tmp_dir))?;
        let dir = tmp.path().join("fs");
        let work = tmp.path().join("work");
        std::fs::create_dir(&dir).map_err(io_err("mkdir", &dir))?;
        std::fs::create_dir(&work).map_err(io_err("mkdir", &work))?;
        Ok(Self {
            tmp,
            dir,
            work,
            snapshots_dir,
        })
    }

    /// The directory to fill (overlay upper dir).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// An empty overlay work dir on the same filesystem.
    pub fn work_dir(&self) -> &Path {
        &self.work
    }

    /// Makes the snapshot visible under `id` (atomic rename). If `id`
    /// already exists, the pending one is discarded and `Ok` returned.
    pub fn commit(self, id: &str) -> Result<(), StoreError> {
        check_id(id)?;
        let target = self.snapshots_dir.join(id);
        if target.exists() {
            return Ok(());
        }
        match std::fs::rename(&self.dir, &target) {
            Ok(()) => Ok(()),
            // Another process committed the same id meanwhile.
            Err(_) if target.exists() => Ok(()),
            Err(e) => Err(io_err("rename snapshot into", &target)(e)),
        }
        .map(|()| drop(self.tmp))
    }
}
