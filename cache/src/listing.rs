//! Snapshot listings: when a snapshot is committed, a digest of what it
//! holds (every entry's path, kind, mode, owner, size, link target and
//! device number, in path order) is recorded in `listings/<id>`, before the
//! snapshot becomes visible. `fsck` walks the snapshot again and compares,
//! so a snapshot left short by a power loss (a truncated or missing file)
//! or changed since is found. Times are left out (nothing a reader sees
//! depends on a lower dir's times but the layer tar, which is a blob and
//! has its own digest) and so is content, which would cost a full read of
//! every layer on every commit: a file that kept its size but lost its
//! bytes is not found.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::error::StoreError;
use crate::sorted_walk::{WalkError, walk_sorted};

/// What a listing records: how many entries, and the digest of them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listing {
    /// Entries below the snapshot's root.
    pub entries: u64,
    /// blake3 of every entry's description, in path order.
    pub digest: [u8; 32],
}

impl Listing {
    /// Walks `dir` and describes it (each entry stated through its
    /// directory's handle: see [`crate::sorted_walk`]).
    pub fn of(dir: &Path) -> Result<Self, StoreError> {
        let mut hasher = blake3::Hasher::new();
        let mut entries = 0u64;
        let walked = walk_sorted(dir, |entry| {
            let meta = entry.meta;
            let relative = entry.rel.as_os_str().as_bytes();
            hasher.update(&(relative.len() as u64).to_le_bytes());
            hasher.update(relative);
            hasher.update(&meta.mode().to_le_bytes());
            hasher.update(&meta.uid().to_le_bytes());
            hasher.update(&meta.gid().to_le_bytes());
            let size = if meta.is_file() { meta.size() } else { 0 };
            hasher.update(&size.to_le_bytes());
            hasher.update(&meta.rdev().to_le_bytes());
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(entry.path).map_err(|source| WalkError {
                    op: "read link",
                    path: entry.path.to_path_buf(),
                    source,
                })?;
                let target = target.as_os_str().as_bytes();
                hasher.update(&(target.len() as u64).to_le_bytes());
                hasher.update(target);
            }
            entries += 1;
            Ok::<_, WalkError>(())
        });
        walked.map_err(|e| StoreError::Io {
            op: e.op,
            path: e.path,
            source: e.source,
        })?;
        Ok(Self {
            entries,
            digest: *hasher.finalize().as_bytes(),
        })
    }

    /// The listing file's bytes: `<entries> <hex digest>\n`.
    pub fn encode(&self) -> Vec<u8> {
        format!("{} {}\n", self.entries, hex::encode(self.digest)).into_bytes()
    }

    /// A listing file's content; `None` when it is not one.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        let (entries, digest) = text.strip_suffix('\n')?.split_once(' ')?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(digest, &mut out).ok()?;
        Some(Self {
            entries: entries.parse().ok()?,
            digest: out,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_change_with_what_a_reader_sees_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("d/f"), b"four").unwrap();
        std::os::unix::fs::symlink("d/f", dir.path().join("l")).unwrap();
        let first = Listing::of(dir.path()).unwrap();
        assert_eq!(first.entries, 3);
        assert_eq!(Listing::decode(&first.encode()), Some(first));
        assert_eq!(Listing::decode(b"3 zz\n"), None);
        // Times alone change nothing.
        crate::files::set_mtime(&dir.path().join("d/f"), 5, 0).unwrap();
        assert_eq!(Listing::of(dir.path()).unwrap(), first);
        // A truncated file, a lost file and a new one are all seen.
        std::fs::write(dir.path().join("d/f"), b"").unwrap();
        assert_ne!(Listing::of(dir.path()).unwrap(), first);
        std::fs::write(dir.path().join("d/f"), b"four").unwrap();
        assert_eq!(Listing::of(dir.path()).unwrap(), first);
        std::fs::remove_file(dir.path().join("l")).unwrap();
        assert_ne!(Listing::of(dir.path()).unwrap(), first);
    }
}
