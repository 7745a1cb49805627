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

use crate::StoreError;
use crate::fsutil;

/// What identifies a file's version without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
type Entries = HashMap<String, (FileStamp, [u8; 32])>;

/// The first bytes of a cache file (and its format's version).
const MAGIC: &[u8; 8] = b"RBHASH1\n";

/// The bytes of one entry besides its path: length, stamp, hash.
const ENTRY_FIXED: usize = 4 + 8 + 8 + 16 + 16 + 32;

/// The cache file's bytes for `entries`.
fn encode(entries: &Entries) -> Vec<u8> {
    let paths: usize = entries.keys().map(String::len).sum();
    let mut out = Vec::with_capacity(MAGIC.len() + 8 + paths + entries.len() * ENTRY_FIXED);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    for (path, (stamp, hash)) in entries {
        out.extend_from_slice(&(path.len() as u32).to_le_bytes());
        out.extend_from_slice(path.as_bytes());
        out.extend_from_slice(&stamp.ino.to_le_bytes());
        out.extend_from_slice(&stamp.size.to_le_bytes());
        out.extend_from_slice(&stamp.mtime.to_le_bytes());
        out.extend_from_slice(&stamp.ctime.to_le_bytes());
        out.extend_from_slice(hash);
    }
    out
}

/// The entries in a cache file's bytes; `None` when they are not one.
fn decode(bytes: &[u8]) -> Option<Entries> {
    let mut r = bytes.strip_prefix(MAGIC.as_slice())?;
    let count = u64::from_le_bytes(take(&mut r)?) as usize;
    let mut entries = Entries::with_capacity(count.min(r.len() / ENTRY_FIXED));
    while !r.is_empty() {
        let len = u32::from_le_bytes(take(&mut r)?) as usize;
        let (path, rest) = r.split_at_checked(len)?;
        r = rest;
        let path = std::str::from_utf8(path).ok()?.to_string();
        let stamp = FileStamp {
            ino: u64::from_le_bytes(take(&mut r)?),
            size: u64::from_le_bytes(take(&mut r)?),
            mtime: i128::from_le_bytes(take(&mut r)?),
            ctime: i128::from_le_bytes(take(&mut r)?),
        };
        entries.insert(path, (stamp, take(&mut r)?));
    }
    (entries.len() == count).then_some(entries)
}

/// The next `N` bytes of `r`, consumed.
fn take<const N: usize>(r: &mut &[u8]) -> Option<[u8; N]> {
    let (head, rest) = r.split_first_chunk::<N>()?;
    *r = rest;
    Some(*head)
}

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
                .and_then(|b| decode(&b))
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
    pub fn get(&self, path: &str, stamp: &FileStamp) -> Option<[u8; 32]> {
        let entries = self.entries().read().expect("poisoned");
        entries
            .get(path)
            .filter(|(s, _)| s == stamp)
            .map(|(_, h)| *h)
    }

    /// Records the hash of `path` at `stamp` (unless the change is too
    /// recent to be told apart from a next one).
    pub fn insert(&self, path: &str, stamp: FileStamp, hash: [u8; 32]) {
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
        let bytes = encode(&self.entries().read().expect("poisoned"));
        // A cache: a lost update only costs a re-hash.
        fsutil::write_atomic(&crate::RealDisk, &self.tmp_dir, &self.path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_files_round_trip_and_damaged_ones_are_refused() {
        let stamp = FileStamp {
            ino: 7,
            size: 3,
            mtime: -5,
            ctime: 1 << 100,
        };
        let entries: Entries = [
            (String::from("a/é"), (stamp, [9; 32])),
            (String::from(""), (FileStamp { ino: 8, ..stamp }, [0; 32])),
        ]
        .into();
        let bytes = encode(&entries);
        assert_eq!(decode(&bytes), Some(entries));
        for cut in [0, MAGIC.len(), bytes.len() - 1] {
            assert_eq!(decode(&bytes[..cut]), None, "cut at {cut}");
        }
        assert_eq!(decode(b"{\"a\": 1}"), None);
    }
}
