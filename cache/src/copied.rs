//! What a COPY's snapshot was copied from, so that the next run of the same
//! step can share the files that did not change instead of copying them
//! again (issue 19: a one-file edit of a 25,000-file context).
//!
//! - `copied/<snapshot id>`: for every regular file the copy wrote, its
//!   path in the snapshot and the stamp of the source file it was read
//!   from (device, inode, size, mtime, ctime). ctime changes on every
//!   write and cannot be set from user space, so an equal stamp means the
//!   source still holds the bytes the snapshot's file got.
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

use std::collections::HashMap;
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

/// Snapshot path → the stamp of the source its file was copied from.
pub type CopiedFiles = HashMap<PathBuf, SourceStamp>;

/// The first bytes of a `copied` file (and its format's version).
const MAGIC: &[u8; 8] = b"RBCOPY1\n";

/// The bytes of `files`, ending in the blake3 of everything before.
pub(crate) fn encode(files: &[(PathBuf, SourceStamp)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + files.len() * 96 + 32);
    out.extend_from_slice(MAGIC);
    for (path, s) in files {
        let path = path.as_os_str().as_bytes();
        out.extend_from_slice(&(path.len() as u32).to_le_bytes());
        out.extend_from_slice(path);
        out.extend_from_slice(&s.dev.to_le_bytes());
        out.extend_from_slice(&s.ino.to_le_bytes());
        out.extend_from_slice(&s.size.to_le_bytes());
        out.extend_from_slice(&s.mtime.to_le_bytes());
        out.extend_from_slice(&s.ctime.to_le_bytes());
    }
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

/// The files in a `copied` file's bytes; `None` when they are not one
/// (torn, or of another version).
pub(crate) fn decode(bytes: &[u8]) -> Option<CopiedFiles> {
    let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(32)?)?;
    if blake3::hash(body).as_bytes() != sum {
        return None;
    }
    let mut r = body.strip_prefix(MAGIC.as_slice())?;
    let mut files = CopiedFiles::new();
    while !r.is_empty() {
        let len = u32::from_le_bytes(take(&mut r)?) as usize;
        let (path, rest) = r.split_at_checked(len)?;
        r = rest;
        let stamp = SourceStamp {
            dev: u64::from_le_bytes(take(&mut r)?),
            ino: u64::from_le_bytes(take(&mut r)?),
            size: u64::from_le_bytes(take(&mut r)?),
            mtime: i128::from_le_bytes(take(&mut r)?),
            ctime: i128::from_le_bytes(take(&mut r)?),
        };
        files.insert(PathBuf::from(std::ffi::OsStr::from_bytes(path)), stamp);
    }
    Some(files)
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
    let tmp =
        tempfile::NamedTempFile::new_in(tmp_dir).map_err(io_err("create temp file in", tmp_dir))?;
    std::fs::write(tmp.path(), bytes).map_err(io_err("write", tmp.path()))?;
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

    #[test]
    fn copied_files_round_trip_and_a_torn_file_reads_as_none() {
        let files = vec![
            (PathBuf::from("app/a.txt"), stamp(1)),
            (PathBuf::from("app/d/b"), stamp(2)),
        ];
        let bytes = encode(&files);
        let back = decode(&bytes).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[Path::new("app/d/b")], stamp(2));
        assert!(decode(&bytes[..bytes.len() - 1]).is_none(), "torn");
        let mut flipped = bytes.clone();
        flipped[MAGIC.len() + 5] ^= 1;
        assert!(decode(&flipped).is_none(), "changed");
        assert!(decode(b"").is_none());
        assert_eq!(decode(&encode(&[])).unwrap().len(), 0);
    }

    #[test]
    fn lineage_names_are_hex_only() {
        assert!(check_lineage(&"ab".repeat(32)).is_ok());
        assert!(check_lineage("../x").is_err());
        assert!(check_lineage(&"AB".repeat(32)).is_err());
    }
}
