//! What an uncompressed layer blob exported from a snapshot holds, entry
//! by entry, so that the export of a later snapshot sharing its files can
//! copy the unchanged entries' bytes instead of reading and framing them
//! again (issue 19). Kept as `layer-index/<snapshot id>`:
//!
//! - the blob (digest and size) it describes, and the SHA-256 states of
//!   that blob at every [`CHECKPOINT`] bytes (see [`crate::midstate`]),
//!   so that a blob starting with the same bytes resumes its hash;
//! - per tar entry, in tar order: the path walked (relative to the
//!   snapshot), the device and inode of the file whose bytes follow its
//!   header (0 and 0 for entries without data), the length of its whole
//!   span in the tar (headers, data, padding) and a 128-bit blake3 of its
//!   header bytes. Spans are contiguous from offset 0; the tar's two
//!   closing zero blocks follow the last.
//!
//! An index is a hint: written without a sync, ending in a blake3 of all
//! before it, and trusted only while the snapshot it names still exists
//! (an inode number cannot be reused while its file lives) and its layer
//! record still names the blob. Prune removes an index before its
//! snapshot, so no index outlives the inodes it names.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::blobs::BlobInfo;
use crate::midstate::Midstate;

/// The first bytes of an index file (and its format's version; the
/// checkpoint interval is [`crate::midstate::CHECKPOINT`] in version 1).
const MAGIC: &[u8; 8] = b"RBLIDX1\n";

/// One tar entry of an indexed layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// The path walked, relative to the snapshot.
    pub path: PathBuf,
    /// Device of the file whose bytes follow the header (0 without data).
    pub dev: u64,
    /// Its inode (0 without data).
    pub ino: u64,
    /// Bytes of the entry in the tar: headers, data and padding.
    pub span: u64,
    /// blake3 of the entry's header bytes, first 16 bytes.
    pub header: [u8; 16],
}

/// The 16-byte header hash an [`IndexEntry`] keeps.
pub fn header_hash(header: &[u8]) -> [u8; 16] {
    let sum = blake3::hash(header);
    let mut out = [0u8; 16];
    out.copy_from_slice(&sum.as_bytes()[..16]);
    out
}

/// The entries of an index being made, encoded as they come (paths kept
/// as the length shared with the previous one and the rest, since tar
/// order keeps neighbours alike).
#[derive(Debug, Default)]
pub struct IndexEntries {
    bytes: Vec<u8>,
    count: u64,
    last_path: Vec<u8>,
}

impl IndexEntries {
    /// Appends the next entry in tar order.
    pub fn push(&mut self, entry: &IndexEntry) {
        let path = entry.path.as_os_str().as_bytes();
        let shared = path
            .iter()
            .zip(&self.last_path)
            .take_while(|(a, b)| a == b)
            .count();
        let rest = &path[shared..];
        self.bytes.extend_from_slice(&(shared as u32).to_le_bytes());
        self.bytes
            .extend_from_slice(&(rest.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(rest);
        self.bytes.extend_from_slice(&entry.dev.to_le_bytes());
        self.bytes.extend_from_slice(&entry.ino.to_le_bytes());
        self.bytes.extend_from_slice(&entry.span.to_le_bytes());
        self.bytes.extend_from_slice(&entry.header);
        self.last_path.truncate(shared);
        self.last_path.extend_from_slice(rest);
        self.count += 1;
    }
}

/// The index of one layer blob.
#[derive(Debug)]
pub struct LayerIndex {
    /// The blob it describes.
    pub blob: BlobInfo,
    /// The blob's hash states, `checkpoints[i]` after `(i + 1) *
    /// CHECKPOINT` bytes.
    pub checkpoints: Vec<Midstate>,
    entries: IndexEntries,
}

impl LayerIndex {
    /// The index of `blob`, with its hash states and entries.
    pub fn new(blob: BlobInfo, checkpoints: Vec<Midstate>, entries: IndexEntries) -> Self {
        Self {
            blob,
            checkpoints,
            entries,
        }
    }

    /// The entries in tar order, each with its offset in the blob.
    pub fn entries(&self) -> IndexCursor<'_> {
        IndexCursor {
            rest: &self.entries.bytes,
            left: self.entries.count,
            path: Vec::new(),
            offset: 0,
        }
    }

    /// Writes the index file's bytes, ending in the blake3 of all before,
    /// into `out` (the entries as they are: no copy of them is made).
    pub(crate) fn write(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let mut head = Vec::with_capacity(self.checkpoints.len() * 32 + 128);
        head.extend_from_slice(MAGIC);
        let hex = crate::blobs::digest_hex(&self.blob.digest).expect("a blob digest");
        head.extend_from_slice(hex.as_bytes());
        head.extend_from_slice(&self.blob.size.to_le_bytes());
        head.extend_from_slice(&(self.checkpoints.len() as u64).to_le_bytes());
        for state in &self.checkpoints {
            for word in state {
                head.extend_from_slice(&word.to_le_bytes());
            }
        }
        head.extend_from_slice(&self.entries.count.to_le_bytes());
        let mut sum = blake3::Hasher::new();
        sum.update(&head);
        sum.update(&self.entries.bytes);
        out.write_all(&head)?;
        out.write_all(&self.entries.bytes)?;
        out.write_all(sum.finalize().as_bytes())
    }

    /// The index in `bytes`; `None` when they are not one (torn, of
    /// another version, or entries that do not decode).
    pub(crate) fn decode(mut bytes: Vec<u8>) -> Option<Self> {
        let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(32)?)?;
        if blake3::hash(body).as_bytes() != sum {
            return None;
        }
        let mut r = body.strip_prefix(MAGIC.as_slice())?;
        let hex: [u8; 64] = take(&mut r)?;
        let digest = format!("sha256:{}", std::str::from_utf8(&hex).ok()?);
        crate::blobs::digest_hex(&digest).ok()?;
        let size = u64::from_le_bytes(take(&mut r)?);
        let count = usize::try_from(u64::from_le_bytes(take(&mut r)?)).ok()?;
        let mut checkpoints = Vec::with_capacity(count.min(r.len() / 32));
        for _ in 0..count {
            let mut state = [0u32; 8];
            for word in &mut state {
                *word = u32::from_le_bytes(take(&mut r)?);
            }
            checkpoints.push(state);
        }
        let entries = u64::from_le_bytes(take(&mut r)?);
        // The entries stay where they were read (a 250,000-file layer's
        // take about 15 MB): the rest of the file is cut off around them.
        let start = body.len() - r.len();
        bytes.truncate(body.len());
        bytes.drain(..start);
        let index = Self {
            blob: BlobInfo { digest, size },
            checkpoints,
            entries: IndexEntries {
                bytes,
                count: entries,
                last_path: Vec::new(),
            },
        };
        // Every entry decodes, and the spans and checkpoints fit the blob
        // (its two closing zero blocks after the last span).
        let mut cursor = index.entries();
        let mut end = 0u64;
        for _ in 0..entries {
            let (offset, entry) = cursor.next()?;
            end = offset.checked_add(entry.span)?;
        }
        let fits = cursor.rest.is_empty()
            && end.checked_add(1024) == Some(size)
            && index.checkpoints.len() as u64 * crate::midstate::CHECKPOINT <= size;
        fits.then_some(index)
    }
}

/// Reads an index's entries in order; each with its offset in the blob.
#[derive(Debug)]
pub struct IndexCursor<'a> {
    rest: &'a [u8],
    left: u64,
    path: Vec<u8>,
    offset: u64,
}

impl Iterator for IndexCursor<'_> {
    type Item = (u64, IndexEntry);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let r = &mut self.rest;
        let shared = u32::from_le_bytes(take(r)?) as usize;
        let len = u32::from_le_bytes(take(r)?) as usize;
        let (rest, after) = r.split_at_checked(len)?;
        *r = after;
        if shared > self.path.len() {
            return None;
        }
        self.path.truncate(shared);
        self.path.extend_from_slice(rest);
        let entry = IndexEntry {
            path: PathBuf::from(std::ffi::OsStr::from_bytes(&self.path)),
            dev: u64::from_le_bytes(take(r)?),
            ino: u64::from_le_bytes(take(r)?),
            span: u64::from_le_bytes(take(r)?),
            header: take(r)?,
        };
        let offset = self.offset;
        self.offset = offset.checked_add(entry.span)?;
        self.left -= 1;
        Some((offset, entry))
    }
}

fn take<const N: usize>(r: &mut &[u8]) -> Option<[u8; N]> {
    let (head, rest) = r.split_at_checked(N)?;
    *r = rest;
    head.try_into().ok()
}

/// Path of the index of the layer exported from snapshot `id`.
pub(crate) fn index_path(root: &Path, id: &str) -> PathBuf {
    root.join("layer-index").join(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    impl LayerIndex {
        fn encode(&self) -> Vec<u8> {
            let mut out = Vec::new();
            self.write(&mut out).unwrap();
            out
        }
    }

    fn entry(path: &str, ino: u64, span: u64) -> IndexEntry {
        IndexEntry {
            path: PathBuf::from(path),
            dev: u64::from(ino > 0),
            ino,
            span,
            header: header_hash(path.as_bytes()),
        }
    }

    fn index() -> LayerIndex {
        let mut entries = IndexEntries::default();
        let list = [
            entry("app", 0, 512),
            entry("app/a.txt", 7, 1024),
            entry("app/ab", 8, 2048),
            entry("b", 0, 512),
        ];
        for e in &list {
            entries.push(e);
        }
        let blob = BlobInfo {
            digest: format!("sha256:{}", "ab".repeat(32)),
            size: 512 + 1024 + 2048 + 512 + 1024,
        };
        LayerIndex::new(blob, Vec::new(), entries)
    }

    #[test]
    fn an_index_round_trips_with_offsets_and_shared_path_prefixes() {
        let bytes = index().encode();
        let back = LayerIndex::decode(bytes).expect("decodes");
        assert_eq!(back.blob, index().blob);
        let got: Vec<(u64, IndexEntry)> = back.entries().collect();
        assert_eq!(got.len(), 4);
        assert_eq!(got[1], (512, entry("app/a.txt", 7, 1024)));
        assert_eq!(got[2], (1536, entry("app/ab", 8, 2048)));
        assert_eq!(got[3], (3584, entry("b", 0, 512)));

        let mut states = index();
        states.blob.size += 1 << 20;
        states.entries.push(&entry("c", 9, 1 << 20));
        states.checkpoints = vec![[1, 2, 3, 4, 5, 6, 7, u32::MAX]];
        let back = LayerIndex::decode(states.encode()).expect("decodes");
        assert_eq!(back.checkpoints, states.checkpoints);
    }

    #[test]
    fn an_index_that_does_not_fit_its_blob_reads_as_none() {
        let mut short = index();
        short.blob.size += 512;
        assert!(LayerIndex::decode(short.encode()).is_none(), "spans");
        let mut states = index();
        states.checkpoints = vec![[0; 8]];
        assert!(LayerIndex::decode(states.encode()).is_none(), "states");
    }

    #[test]
    fn a_torn_or_changed_index_reads_as_none() {
        let bytes = index().encode();
        assert!(
            LayerIndex::decode(bytes[..bytes.len() - 1].to_vec()).is_none(),
            "torn"
        );
        let mut flipped = bytes.clone();
        flipped[MAGIC.len() + 70] ^= 1;
        assert!(LayerIndex::decode(flipped).is_none(), "changed");
        assert!(LayerIndex::decode(Vec::new()).is_none());
    }
}
