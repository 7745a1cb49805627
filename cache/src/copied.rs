//! What a COPY's snapshot was copied from, so that the next run of the same
//! step can share the files that did not change instead of copying them
//! again (issue 19: a one-file edit of a 25,000-file context).
//!
//! - `copied/<snapshot id>`: for every regular file the copy wrote, its
//!   path in the snapshot and the stamp of the source file it was read
//!   from (device, inode, size, mtime, ctime). ctime changes on every
//!   write and cannot be set from user space, so an equal stamp means the
//!   source still holds the bytes the snapshot's file got. Written
//!   record by record as the copy goes (path order for a tree), read back
//!   as its own bytes with an index sorted by path, so neither side holds
//!   a map of every file (250,000 of them at issue 19's scale).
//! - `lineage/<hex>`: the snapshot the step with that lineage (its op and
//!   base, whatever the context's content) made last.
//! - `shared-from/<snapshot id>`: the id of the snapshot whose files the
//!   copy shared, so that the layer export can copy that snapshot's layer
//!   bytes for them (see `layer_index`).
//!
//! All are hints: read back only when they parse and check out, never
//! synced, and a missing or torn one only means that everything is copied.
//! A shared file is a hard link between two snapshots; snapshots are
//! never written in place (a RUN writes into its overlay upper dir, which
//! copies a lower file up before changing it), so sharing keeps each
//! snapshot as it was made.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{StoreError, io_err};

/// The version of a source file a copy read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceStamp {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime: i128,
    /// Status change time, nanoseconds since the epoch.
    pub ctime: i128,
}

impl SourceStamp {
    /// The stamp of a file's metadata.
    pub fn of(meta: &std::fs::Metadata) -> Self {
        let nanos = |s: i64, ns: i64| i128::from(s) * 1_000_000_000 + i128::from(ns);
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: nanos(meta.mtime(), meta.mtime_nsec()),
            ctime: nanos(meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// The first bytes of a `copied` file (and its format's version).
const MAGIC: &[u8; 8] = b"RBCOPY1\n";

/// The bytes of a record after its path: the stamp's five fields.
const STAMP_LEN: usize = 8 * 3 + 16 * 2;

/// The records of a `copied` file, held as the file's own bytes plus
/// where each record starts, ordered by path (~95 B a file; a map of
/// paths to stamps took ~150 B): found by binary search.
pub struct CopiedFiles {
    bytes: Vec<u8>,
    /// Record offsets in `bytes`, sorted by path; of equal paths, the
    /// one written last is last.
    starts: Vec<u32>,
}

impl CopiedFiles {
    /// The records of the `copied` file at `path`; `None` when it is
    /// missing or does not read back whole.
    pub fn read(path: &Path) -> Option<Self> {
        decode(std::fs::read(path).ok()?)
    }

    /// The stamp of the source of the file at `path` (the last one
    /// recorded for it).
    pub fn get(&self, path: &Path) -> Option<SourceStamp> {
        let key = path.as_os_str().as_bytes();
        let after = self.starts.partition_point(|&at| self.path_at(at) <= key);
        let at = *self.starts.get(after.checked_sub(1)?)?;
        (self.path_at(at) == key).then(|| self.stamp_at(at))
    }

    /// How many records there are.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// The path of the record at `at` (checked when read).
    fn path_at(&self, at: u32) -> &[u8] {
        let at = at as usize;
        let len = u32::from_le_bytes(self.bytes[at..at + 4].try_into().expect("4 bytes"));
        &self.bytes[at + 4..at + 4 + len as usize]
    }

    fn stamp_at(&self, at: u32) -> SourceStamp {
        let mut r = &self.bytes[at as usize + 4 + self.path_at(at).len()..];
        let mut next = |n| {
            let (head, rest) = r.split_at(n);
            r = rest;
            head
        };
        let u64_of = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
        let i128_of = |b: &[u8]| i128::from_le_bytes(b.try_into().expect("16 bytes"));
        SourceStamp {
            dev: u64_of(next(8)),
            ino: u64_of(next(8)),
            size: u64_of(next(8)),
            mtime: i128_of(next(16)),
            ctime: i128_of(next(16)),
        }
    }
}

/// The records in a `copied` file's bytes; `None` when they are not one
/// (torn, of another version, or over 4 GiB).
fn decode(bytes: Vec<u8>) -> Option<CopiedFiles> {
    let body_len = bytes.len().checked_sub(32)?;
    let (body, sum) = bytes.split_at(body_len);
    if blake3::hash(body).as_bytes() != sum || !body.starts_with(MAGIC) {
        return None;
    }
    u32::try_from(body_len).ok()?;
    let mut starts = Vec::new();
    let mut at = MAGIC.len();
    while at < body_len {
        starts.push(at as u32);
        let mut r = &body[at..];
        let len = u32::from_le_bytes(take(&mut r)?) as usize;
        at = at.checked_add(4 + len + STAMP_LEN)?;
    }
    if at != body_len {
        return None;
    }
    let mut files = CopiedFiles { bytes, starts };
    // A copy of one tree records in path order; anything else is sorted.
    let mut starts = std::mem::take(&mut files.starts);
    if !starts.is_sorted_by_key(|&at| files.path_at(at)) {
        starts.sort_by_key(|&at| files.path_at(at));
    }
    files.starts = starts;
    Some(files)
}

/// Writes a `copied` file record by record, so that the copy of a large
/// tree never holds its records, ending it with the blake3 of everything
/// before.
pub struct CopiedWriter {
    out: BufWriter<File>,
    path: PathBuf,
    sum: blake3::Hasher,
    record: Vec<u8>,
}

impl CopiedWriter {
    /// Starts the file at `path`.
    pub fn create(path: &Path) -> Result<Self, StoreError> {
        let file = File::create(path).map_err(io_err("create", path))?;
        let mut writer = CopiedWriter {
            out: BufWriter::new(file),
            path: path.to_path_buf(),
            sum: blake3::Hasher::new(),
            record: Vec::new(),
        };
        writer.write(MAGIC.as_slice())?;
        Ok(writer)
    }

    /// Records that the file at `path` was copied from a source with `stamp`.
    pub fn push(&mut self, path: &Path, stamp: &SourceStamp) -> Result<(), StoreError> {
        let mut record = std::mem::take(&mut self.record);
        record.clear();
        let name = path.as_os_str().as_bytes();
        record.extend_from_slice(&(name.len() as u32).to_le_bytes());
        record.extend_from_slice(name);
        record.extend_from_slice(&stamp.dev.to_le_bytes());
        record.extend_from_slice(&stamp.ino.to_le_bytes());
        record.extend_from_slice(&stamp.size.to_le_bytes());
        record.extend_from_slice(&stamp.mtime.to_le_bytes());
        record.extend_from_slice(&stamp.ctime.to_le_bytes());
        let written = self.write(&record);
        self.record = record;
        written
    }

    /// Ends the file with its checksum.
    pub fn finish(mut self) -> Result<(), StoreError> {
        let sum = self.sum.finalize();
        self.out
            .write_all(sum.as_bytes())
            .and_then(|()| self.out.flush())
            .map_err(io_err("write", &self.path))
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.sum.update(bytes);
        self.out
            .write_all(bytes)
            .map_err(io_err("write", &self.path))
    }
}

fn take<const N: usize>(r: &mut &[u8]) -> Option<[u8; N]> {
    let (head, rest) = r.split_at_checked(N)?;
    *r = rest;
    head.try_into().ok()
}

/// Path of the `copied` file of snapshot `id`.
pub(crate) fn copied_path(root: &Path, id: &str) -> PathBuf {
    root.join("copied").join(id)
}

/// Path of the note naming the snapshot whose files snapshot `id` shares.
pub(crate) fn shared_from_path(root: &Path, id: &str) -> PathBuf {
    root.join("shared-from").join(id)
}

/// Path of the lineage record `lineage` (a hex name, checked by the caller).
pub(crate) fn lineage_path(root: &Path, lineage: &str) -> PathBuf {
    root.join("lineage").join(lineage)
}

/// Whether a lineage name is safe as a file name: 64 lowercase hex digits.
pub(crate) fn check_lineage(lineage: &str) -> Result<(), StoreError> {
    let ok = lineage.len() == 64
        && lineage
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    match ok {
        true => Ok(()),
        false => Err(StoreError::Invalid {
            what: format!("lineage {lineage:?}"),
            message: String::from("must be 64 lowercase hex digits"),
        }),
    }
}

/// Writes `bytes` at `path` through a temp file in `tmp_dir` and a rename,
/// without a sync: a hint that is checked when read.
pub(crate) fn write_hint(tmp_dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    write_hint_with(tmp_dir, path, |out| out.write_all(bytes))
}

/// [`write_hint`] of what `write` writes.
pub(crate) fn write_hint_with(
    tmp_dir: &Path,
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), StoreError> {
    let tmp =
        tempfile::NamedTempFile::new_in(tmp_dir).map_err(io_err("create temp file in", tmp_dir))?;
    let mut out = std::io::BufWriter::new(tmp.as_file());
    write(&mut out)
        .and_then(|()| out.flush())
        .map_err(io_err("write", tmp.path()))?;
    drop(out);
    tmp.persist(path)
        .map_err(|e| io_err("rename into", path)(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(n: u64) -> SourceStamp {
        SourceStamp {
            dev: 1,
            ino: n,
            size: n * 10,
            mtime: -5,
            ctime: i128::from(n) << 70,
        }
    }

    /// The bytes of a `copied` file of `files`, written in that order.
    fn written(files: &[(&str, SourceStamp)]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("copied");
        let mut writer = CopiedWriter::create(&path).unwrap();
        for (name, stamp) in files {
            writer.push(Path::new(name), stamp).unwrap();
        }
        writer.finish().unwrap();
        std::fs::read(path).unwrap()
    }

    #[test]
    fn copied_files_round_trip_and_a_torn_file_reads_as_none() {
        let bytes = written(&[("app/a.txt", stamp(1)), ("app/d/b", stamp(2))]);
        let back = decode(bytes.clone()).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back.get(Path::new("app/d/b")), Some(stamp(2)));
        assert_eq!(back.get(Path::new("app/a.txt")), Some(stamp(1)));
        assert_eq!(back.get(Path::new("app/d")), None);
        assert_eq!(back.get(Path::new("app/d/b/c")), None);
        assert!(decode(bytes[..bytes.len() - 1].to_vec()).is_none(), "torn");
        let mut flipped = bytes.clone();
        flipped[MAGIC.len() + 5] ^= 1;
        assert!(decode(flipped).is_none(), "changed");
        assert!(decode(Vec::new()).is_none());
        assert!(decode(written(&[])).unwrap().is_empty());
    }

    #[test]
    fn records_out_of_path_order_are_found_and_the_last_of_a_path_wins() {
        let names = ["m/2", "a/9", "z", "m/10", "a/9", "b"];
        let files: Vec<(&str, SourceStamp)> =
            (1..).zip(names).map(|(n, name)| (name, stamp(n))).collect();
        let back = decode(written(&files)).unwrap();
        assert_eq!(back.len(), 6);
        assert_eq!(back.get(Path::new("a/9")), Some(stamp(5)), "written last");
        for (name, n) in [("m/2", 1), ("z", 3), ("m/10", 4), ("b", 6)] {
            assert_eq!(back.get(Path::new(name)), Some(stamp(n)), "{name}");
        }
        assert_eq!(back.get(Path::new("a")), None);
        assert_eq!(back.get(Path::new("")), None);
    }

    #[test]
    fn lineage_names_are_hex_only() {
        assert!(check_lineage(&"ab".repeat(32)).is_ok());
        assert!(check_lineage("../x").is_err());
        assert!(check_lineage(&"AB".repeat(32)).is_err());
    }
}
