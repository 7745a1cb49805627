//! The content-hash cache of context files: path → (inode, size, mtime,
//! ctime) → blake3 of the content. A file whose stamp is unchanged is not
//! read again. ctime cannot be set from user space and changes on every
//! write, so "same name, size and mtime, new content" is still caught; an
//! entry hashed within the timestamp granularity of its last change is not
//! trusted later ("racily clean", as git calls it).

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, RwLock};
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};

use crate::StoreError;
use crate::fsutil;

/// What identifies a file's version without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStamp {
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime: i128,
    /// Status change time, nanoseconds since the epoch.
    pub ctime: i128,
}

impl FileStamp {
    /// The stamp of a file's metadata.
    pub fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            ino: meta.ino(),
            size: meta.size(),
            mtime: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        }
    }
}

/// How close to "now" a change may be before its hash is not kept.
const RACY_NANOS: i128 = 2_000_000_000;

/// Path → (stamp, content hash).
type Entries = HashMap<String, (FileStamp, String)>;

/// A persistent map from file path to the hash of its content. It is read
/// in the background from the moment it is opened, while the caller walks
/// the files it will ask about.
#[derive(Debug)]
pub struct FileHashCache {
    path: PathBuf,
    tmp_dir: PathBuf,
    loading: Mutex<Option<JoinHandle<Entries>>>,
    entries: OnceLock<RwLock<Entries>>,
    dirty: AtomicBool,
}

impl FileHashCache {
    pub(crate) fn load(path: PathBuf, tmp_dir: PathBuf) -> Self {
        let file = path.clone();
        // A missing or unreadable cache only costs a re-hash.
        let read = move || {
            std::fs::read(&file)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default()
        };
        Self {
            path,
            tmp_dir,
            loading: Mutex::new(std::thread::Builder::new().spawn(read).ok()),
            entries: OnceLock::new(),
            dirty: AtomicBool::new(false),
        }
    }

    /// The entries, once the background read is done.
    fn entries(&self) -> &RwLock<Entries> {
        self.entries.get_or_init(|| {
            let loading = self.loading.lock().expect("poisoned").take();
            RwLock::new(loading.and_then(|h| h.join().ok()).unwrap_or_default())
        })
    }

    /// The hash recorded for `path` if its stamp is still `stamp`.
    pub fn get(&self, path: &str, stamp: &FileStamp) -> Option<String> {
        let entries = self.entries().read().expect("poisoned");
        entries
            .get(path)
            .filter(|(s, _)| s == stamp)
            .map(|(_, h)| h.clone())
    }

    /// Records the hash of `path` at `stamp` (unless the change is too
    /// recent to be told apart from a next one).
    pub fn insert(&self, path: &str, stamp: FileStamp, hash: String) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or_default();
        if now - stamp.ctime.max(stamp.mtime) < RACY_NANOS {
            return;
        }
        self.entries()
            .write()
            .expect("poisoned")
            .insert(path.to_string(), (stamp, hash));
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// Writes the cache back if anything changed.
    pub fn save(&self) -> Result<(), StoreError> {
        if !self.dirty.load(Ordering::Relaxed) {
            return Ok(());
        }
        let bytes = serde_json::to_vec(&*self.entries().read().expect("poisoned"))
            .expect("hash entries serialize");
        fsutil::write_atomic(&self.tmp_dir, &self.path, &bytes)
    }
}
