//! The steps that make a store write durable, behind a trait so that their
//! order can be recorded and checked in tests: this kernel has no
//! dm-flakey, and dropping caches never discards dirty pages, so a power
//! loss cannot be staged; what can be checked is that every file is
//! synced before the rename that makes it visible.
//!
//! The durability contract (README, "The store's promises") rests on two
//! rules the store keeps through this trait:
//! - a blob, record, tag index, layer record or snapshot listing is synced
//!   before it is renamed into place, so a name never shows torn bytes;
//! - a snapshot's listing is durable before the snapshot is renamed into
//!   place; snapshots themselves are not synced (overlay upper dirs are
//!   `volatile`, and syncing every file of every layer would give back
//!   that speed). Instead, the first command after a reboot checks every
//!   snapshot against its listing before any record naming it is trusted
//!   (see `recovery`).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The durable-write steps.
pub trait Disk: std::fmt::Debug + Send + Sync {
    /// Flushes a file's data and metadata to stable storage (`fsync`).
    fn sync(&self, file: &File, path: &Path) -> io::Result<()>;
    /// Renames `from` over `to` (atomic within one filesystem).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
}

/// The real disk.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealDisk;

impl Disk for RealDisk {
    fn sync(&self, file: &File, _path: &Path) -> io::Result<()> {
        file.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
}

/// One durable-write step, as [`RecordingDisk`] saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskStep {
    /// A file was synced.
    Sync(PathBuf),
    /// `from` was renamed to `to`.
    Rename(PathBuf, PathBuf),
}

/// The real disk, recording every step in order: what a test of the
/// write order (the power-loss contract) reads.
#[derive(Debug, Default)]
pub struct RecordingDisk {
    steps: Mutex<Vec<DiskStep>>,
}

impl RecordingDisk {
    /// The steps so far.
    pub fn steps(&self) -> Vec<DiskStep> {
        self.steps.lock().expect("poisoned").clone()
    }
}

impl Disk for RecordingDisk {
    fn sync(&self, file: &File, path: &Path) -> io::Result<()> {
        RealDisk.sync(file, path)?;
        let step = DiskStep::Sync(path.to_path_buf());
        self.steps.lock().expect("poisoned").push(step);
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        RealDisk.rename(from, to)?;
        let step = DiskStep::Rename(from.to_path_buf(), to.to_path_buf());
        self.steps.lock().expect("poisoned").push(step);
        Ok(())
    }
}
