//! Blobs under `blobs/sha256/<hex>`: written through a sha256 hasher into a
//! temp file, verified, then renamed into place.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::durable::Disk;
use crate::error::{StoreError, io_err};

/// A blob as stored: its sha256 digest and size.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BlobInfo {
    /// `sha256:<hex>`.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
}

/// The hex part of a `sha256:<hex>` digest, checked (64 lowercase hex
/// digits), so that it is safe as a file name.
pub fn digest_hex(digest: &str) -> Result<&str, StoreError> {
    digest
        .strip_prefix("sha256:")
        .filter(|h| {
            h.len() == 64
                && h.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        })
        .ok_or_else(|| StoreError::Invalid {
            what: digest.to_string(),
            message: String::from("not a sha256 digest"),
        })
}

/// Bytes written between two write-back starts (see [`BlobWriter`]).
const WRITE_BACK: u64 = 8 << 20;

/// A blob being written: hashes as it goes; invisible until committed.
/// Every [`WRITE_BACK`] bytes it asks the kernel to start writing them to
/// disk (`sync_file_range`, without waiting), so the sync at the commit
/// waits for the last few megabytes, not for all of a large layer (w2's
/// 227 MB COPY layer: its writeback then overlaps the tar being made).
#[derive(Debug)]
pub struct BlobWriter {
    file: tempfile::NamedTempFile,
    hasher: Sha256,
    size: u64,
    /// Where the bytes not yet handed to write-back start.
    written_back: u64,
    blobs_dir: PathBuf,
    disk: Arc<dyn Disk>,
}

impl BlobWriter {
    pub(crate) fn new(
        tmp_dir: &Path,
        blobs_dir: PathBuf,
        disk: Arc<dyn Disk>,
    ) -> Result<Self, StoreError> {
        let file = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(tmp_dir)
            .map_err(io_err("create temp blob in", tmp_dir))?;
        Ok(Self {
            file,
            hasher: Sha256::new(),
            size: 0,
            written_back: 0,
            blobs_dir,
            disk,
        })
    }

    /// Verifies the digest (when given), syncs, and renames into place.
    pub fn commit(self, expected: Option<&str>) -> Result<BlobInfo, StoreError> {
        let actual = format!("sha256:{}", hex::encode(self.hasher.finalize()));
        if let Some(expected) = expected
            && expected != actual
        {
            return Err(StoreError::DigestMismatch {
                expected: expected.to_string(),
                actual,
            });
        }
        let path = self.blobs_dir.join(&actual["sha256:".len()..]);
        if !path.exists() {
            self.disk
                .sync(self.file.as_file(), self.file.path())
                .map_err(io_err("sync", self.file.path()))?;
            let tmp = self.file.into_temp_path();
            self.disk
                .rename(&tmp, &path)
                .map_err(io_err("rename blob into", &path))?;
            // Renamed away: nothing is left to delete.
            let _ = tmp.keep();
        }
        Ok(BlobInfo {
            digest: actual,
            size: self.size,
        })
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        if self.size - self.written_back >= WRITE_BACK {
            // A hint: the sync at the commit is what makes the blob durable.
            use std::os::fd::AsRawFd;
            // SAFETY: an open descriptor; the call only reads its arguments.
            unsafe {
                libc::sync_file_range(
                    self.file.as_file().as_raw_fd(),
                    self.written_back as i64,
                    (self.size - self.written_back) as i64,
                    libc::SYNC_FILE_RANGE_WRITE,
                )
            };
            self.written_back = self.size;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Recomputes a stored blob's digest.
pub(crate) fn verify(path: &Path) -> Result<String, StoreError> {
    let mut file = std::fs::File::open(path).map_err(io_err("open", path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = std::io::Read::read(&mut file, &mut buf).map_err(io_err("read", path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
}
