//! The content-hash cache of context files: context-relative path →
//! (inode, size, mtime, ctime) → blake3 of the content. A file whose stamp
//! is unchanged is not read again. ctime cannot be set from user space and
//! changes on every write, so "same name, size and mtime, new content" is
//! still caught; an entry hashed within the timestamp granularity of its
//! last change is not trusted later ("racily clean", as git calls it).
//!
//! Held compactly, as the cache file encodes it: the file's records, sorted
//! by path, in one buffer (looked up by binary search), and the records
//! added by this build in a second one; saving merges the two into a new
//! file, streamed. About 90 bytes plus the path per file, for 250,000
//! files some 30 MB (a map of owned paths took twice as much, and the
//! whole file again while reading or writing it).

use std::cmp::Ordering as By;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
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

    /// The stamp's bytes in a record.
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.ino.to_le_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.mtime.to_le_bytes());
        out.extend_from_slice(&self.ctime.to_le_bytes());
    }

    /// The stamp a record's stamp bytes hold.
    fn decode(mut r: &[u8]) -> Option<Self> {
        Some(Self {
            ino: u64::from_le_bytes(take(&mut r)?),
            size: u64::from_le_bytes(take(&mut r)?),
            mtime: i128::from_le_bytes(take(&mut r)?),
            ctime: i128::from_le_bytes(take(&mut r)?),
        })
    }
}

/// How close to "now" a change may be before its hash is not kept.
const RACY_NANOS: i128 = 2_000_000_000;

/// The first bytes of a cache file (and its format's version): then the
/// number of records (u64) and the records, sorted by path, each path
/// once. Version 1 keyed host paths, unsorted; such a file is not read
/// (it only costs a re-hash).
const MAGIC: &[u8; 8] = b"RBHASH2\n";

/// The bytes of a record's stamp.
const STAMP: usize = 8 + 8 + 16 + 16;

/// The bytes of a record besides its path: path length, stamp, hash.
const RECORD_FIXED: usize = 4 + STAMP + 32;

/// Encoded records one after another (`u32` path length, path, stamp,
/// hash), and where each begins.
#[derive(Debug, Default)]
struct Records {
    bytes: Vec<u8>,
    starts: Vec<usize>,
}

impl Records {
    /// Appends the record of `path`.
    fn push(&mut self, path: &str, stamp: &FileStamp, hash: &[u8; 32]) {
        self.starts.push(self.bytes.len());
        self.bytes
            .extend_from_slice(&(path.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(path.as_bytes());
        stamp.encode(&mut self.bytes);
        self.bytes.extend_from_slice(hash);
    }

    /// Sorts the records by path; stable, so that of equal paths the
    /// last inserted stays last.
    fn sort(&mut self) {
        let bytes = &self.bytes;
        (self.starts).sort_by(|a, b| path_of(&bytes[*a..]).cmp(path_of(&bytes[*b..])));
    }

    /// Record `i`'s bytes.
    fn record(&self, i: usize) -> &[u8] {
        let start = self.starts[i];
        let len = path_len(&self.bytes[start..]);
        &self.bytes[start..start + RECORD_FIXED + len]
    }

    /// Record `i`'s path.
    fn path(&self, i: usize) -> &[u8] {
        path_of(self.record(i))
    }

    /// The records of a cache file's bytes (validated: complete, sorted,
    /// each path once); `None` when they are not one.
    fn decode(bytes: Vec<u8>) -> Option<Self> {
        let mut r = bytes.strip_prefix(MAGIC.as_slice())?;
        let count = u64::from_le_bytes(take(&mut r)?) as usize;
        let mut starts = Vec::with_capacity(count.min(r.len() / RECORD_FIXED));
        let mut at = MAGIC.len() + 8;
        let mut previous: Option<&[u8]> = None;
        while !r.is_empty() {
            let len = u32::from_le_bytes(take(&mut r)?) as usize;
            let (path, rest) = r.split_at_checked(len)?;
            std::str::from_utf8(path).ok()?;
            if previous.is_some_and(|p| p >= path) {
                return None;
            }
            r = rest.get(STAMP + 32..)?;
            previous = Some(path);
            starts.push(at);
            at += RECORD_FIXED + len;
        }
        (starts.len() == count).then_some(Records { bytes, starts })
    }

    /// The index of the record of `path`.
    fn find(&self, path: &str) -> Option<usize> {
        let (mut lo, mut hi) = (0, self.starts.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.path(mid).cmp(path.as_bytes()) {
                By::Less => lo = mid + 1,
                By::Greater => hi = mid,
                By::Equal => return Some(mid),
            }
        }
        None
    }
}

/// A record's path length.
fn path_len(record: &[u8]) -> usize {
    u32::from_le_bytes(record[..4].try_into().expect("four bytes")) as usize
}

/// A record's path.
fn path_of(record: &[u8]) -> &[u8] {
    &record[4..4 + path_len(record)]
}

/// A record's stamp and hash.
fn value_of(record: &[u8]) -> Option<(FileStamp, [u8; 32])> {
    let mut r = &record[4 + path_len(record)..];
    let stamp = FileStamp::decode(&r[..STAMP])?;
    r = &r[STAMP..];
    Some((stamp, take(&mut r)?))
}

/// The next `N` bytes of `r`, consumed.
fn take<const N: usize>(r: &mut &[u8]) -> Option<[u8; N]> {
    let (head, rest) = r.split_first_chunk::<N>()?;
    *r = rest;
    Some(*head)
}

/// The records of `old` and `new` merged by path (`new` sorted, the
/// last of a path winning): what the saved file holds, in order.
fn merged<'a>(old: &'a Records, new: &'a Records) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut olds = (0..old.starts.len()).map(|i| old.record(i)).peekable();
    let mut news = (0..new.starts.len()).map(|i| new.record(i)).peekable();
    std::iter::from_fn(move || {
        // The last of equal new paths: the latest insert.
        let next_new = |news: &mut std::iter::Peekable<_>| {
            let mut rec: &'a [u8] = news.next()?;
            while let Some(following) = news.next_if(|n: &&[u8]| path_of(n) == path_of(rec)) {
                rec = following;
            }
            Some(rec)
        };
        match (olds.peek(), news.peek()) {
            (Some(o), Some(n)) => match path_of(o).cmp(path_of(n)) {
                By::Less => olds.next(),
                By::Equal => {
                    olds.next();
                    next_new(&mut news)
                }
                By::Greater => next_new(&mut news),
            },
            (Some(_), None) => olds.next(),
            (None, _) => next_new(&mut news),
        }
    })
}

/// A persistent map from context-relative file path to the hash of its
/// content. It is read in the background from the moment it is opened,
/// while the caller walks the files it will ask about.
#[derive(Debug)]
pub struct FileHashCache {
    path: PathBuf,
    tmp_dir: PathBuf,
    loading: Mutex<Option<JoinHandle<Records>>>,
    /// The cache file's records, once read.
    old: OnceLock<Records>,
    /// The records inserted since, in insertion order.
    new: Mutex<Records>,
    dirty: AtomicBool,
}

impl FileHashCache {
    pub(crate) fn load(path: PathBuf, tmp_dir: PathBuf) -> Self {
        let file = path.clone();
        // A missing or unreadable cache only costs a re-hash.
        let read = move || {
            std::fs::read(&file)
                .ok()
                .and_then(Records::decode)
                .unwrap_or_default()
        };
        Self {
            path,
            tmp_dir,
            loading: Mutex::new(std::thread::Builder::new().spawn(read).ok()),
            old: OnceLock::new(),
            new: Mutex::default(),
            dirty: AtomicBool::new(false),
        }
    }

    /// The file's records, once the background read is done.
    fn old(&self) -> &Records {
        self.old.get_or_init(|| {
            let loading = self.loading.lock().expect("poisoned").take();
            loading.and_then(|h| h.join().ok()).unwrap_or_default()
        })
    }

    /// The hash recorded for `path` if its stamp is still `stamp`. A file
    /// hashed earlier in this build is not looked up (it is hashed again):
    /// only a cold build asks twice, when two copies select one file.
    pub fn get(&self, path: &str, stamp: &FileStamp) -> Option<[u8; 32]> {
        let old = self.old();
        let (recorded, hash) = value_of(old.record(old.find(path)?))?;
        (recorded == *stamp).then_some(hash)
    }

    /// Records the hash of `path` at `stamp` (unless the change is too
    /// recent to be told apart from a next one).
    pub fn insert(&self, path: &str, stamp: FileStamp, hash: [u8; 32]) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or_default();
        if now - stamp.ctime.max(stamp.mtime) < RACY_NANOS || path.len() > u32::MAX as usize {
            return;
        }
        (self.new.lock().expect("poisoned")).push(path, &stamp, &hash);
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// Writes the cache back if anything changed: the file's records and
    /// the new ones merged, streamed to a temp file renamed over the old.
    pub fn save(&self) -> Result<(), StoreError> {
        if !self.dirty.load(Ordering::Relaxed) {
            return Ok(());
        }
        let old = self.old();
        let mut new = self.new.lock().expect("poisoned");
        new.sort();
        let count = merged(old, &new).count() as u64;
        // A cache: a lost update only costs a re-hash.
        fsutil::write_atomic_with(&crate::RealDisk, &self.tmp_dir, &self.path, |out| {
            write_records(out, count, merged(old, &new))
        })
    }
}

/// Writes a cache file of `count` records.
fn write_records<'a>(
    out: &mut dyn Write,
    count: u64,
    records: impl Iterator<Item = &'a [u8]>,
) -> io::Result<()> {
    out.write_all(MAGIC)?;
    out.write_all(&count.to_le_bytes())?;
    records.into_iter().try_for_each(|r| out.write_all(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(ino: u64) -> FileStamp {
        FileStamp {
            ino,
            size: 3,
            mtime: -5,
            ctime: 1 << 100,
        }
    }

    fn file_of(records: &Records) -> Vec<u8> {
        let mut order = Records {
            bytes: records.bytes.clone(),
            starts: records.starts.clone(),
        };
        order.sort();
        let none = Records::default();
        let count = merged(&none, &order).count() as u64;
        let mut out = Vec::new();
        write_records(&mut out, count, merged(&none, &order)).unwrap();
        out
    }

    #[test]
    fn cache_files_round_trip_and_damaged_ones_are_refused() {
        let mut records = Records::default();
        records.push("a/é", &stamp(7), &[9; 32]);
        records.push("", &stamp(8), &[0; 32]);
        let bytes = file_of(&records);
        let read = Records::decode(bytes.clone()).expect("a valid file");
        assert_eq!(
            read.find("a/é").map(|i| value_of(read.record(i))),
            Some(Some((stamp(7), [9; 32])))
        );
        assert_eq!(
            read.find("").map(|i| value_of(read.record(i))),
            Some(Some((stamp(8), [0; 32])))
        );
        assert_eq!(read.find("a"), None);
        for cut in [0, MAGIC.len(), bytes.len() - 1] {
            assert!(
                Records::decode(bytes[..cut].to_vec()).is_none(),
                "cut at {cut}"
            );
        }
        assert!(Records::decode(b"{\"a\": 1}".to_vec()).is_none());
        let mut v1 = bytes.clone();
        v1[..MAGIC.len()].copy_from_slice(b"RBHASH1\n");
        assert!(Records::decode(v1).is_none(), "the host-path version");
    }

    #[test]
    fn unsorted_or_repeated_paths_are_refused() {
        let mut unsorted = Vec::from(*MAGIC);
        unsorted.extend_from_slice(&2u64.to_le_bytes());
        let mut records = Records::default();
        records.push("b", &stamp(1), &[1; 32]);
        records.push("a", &stamp(2), &[2; 32]);
        unsorted.extend_from_slice(&records.bytes);
        assert!(Records::decode(unsorted).is_none());
        let mut repeated = Vec::from(*MAGIC);
        repeated.extend_from_slice(&2u64.to_le_bytes());
        repeated.extend_from_slice(records.record(0));
        repeated.extend_from_slice(records.record(0));
        assert!(Records::decode(repeated).is_none());
    }

    #[test]
    fn saving_merges_new_records_over_old_ones_in_path_order() {
        let mut old = Records::default();
        for (p, i) in [("a", 1), ("c", 2), ("e", 3)] {
            old.push(p, &stamp(i), &[i as u8; 32]);
        }
        let old = Records::decode(file_of(&old)).unwrap();
        let mut new = Records::default();
        new.push("d", &stamp(10), &[10; 32]);
        new.push("c", &stamp(11), &[11; 32]);
        new.push("c", &stamp(12), &[12; 32]);
        new.sort();
        let out: Vec<(&[u8], u64)> = merged(&old, &new)
            .map(|r| (path_of(r), value_of(r).unwrap().0.ino))
            .collect();
        let want: Vec<(&[u8], u64)> = vec![(b"a", 1), (b"c", 12), (b"d", 10), (b"e", 3)];
        assert_eq!(out, want);
    }
}
