//! Blobs under `blobs/sha256/<hex>`: written through a sha256 hasher into a
//! temp file, verified, then renamed into place.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::durable::Disk;
use crate::error::{StoreError, io_err};
use crate::midstate::{CHECKPOINT, CheckpointedSha256, Midstate};

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

/// A blob being written: hashes as it goes (recording the hash's state
/// every [`CHECKPOINT`] bytes, see [`crate::midstate`]); invisible until
/// committed. It may start with a prefix of another blob whose hash state
/// is known ([`BlobWriter::start_with`]). Every [`WRITE_BACK`] bytes it asks the kernel to start writing them to
/// disk (`sync_file_range`, without waiting), so the sync at the commit
/// waits for the last few megabytes, not for all of a large layer (w2's
/// 227 MB COPY layer: its writeback then overlaps the tar being made).
#[derive(Debug)]
pub struct BlobWriter {
    file: tempfile::NamedTempFile,
    hasher: CheckpointedSha256,
    size: u64,
    /// Where the bytes not yet handed to write-back start.
    written_back: u64,
    blobs_dir: PathBuf,
    disk: Arc<dyn Disk>,
    /// The copy of the prefix [`Self::start_with`] began, running beside
    /// the writes after it.
    prefix: Option<std::thread::JoinHandle<std::io::Result<()>>>,
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
            hasher: CheckpointedSha256::new(),
            size: 0,
            written_back: 0,
            blobs_dir,
            disk,
            prefix: None,
        })
    }

    /// Starts the blob with the first `checkpoints.len() * CHECKPOINT`
    /// bytes of `from`, whose hash states at each checkpoint were
    /// `checkpoints` (recorded when `from` was written): they are copied
    /// in the kernel (`copy_file_range`) and not hashed again. Only before
    /// anything else is written. The copy runs on a thread of its own
    /// while the bytes after it are written and hashed (on ext4 it is a
    /// page-cache copy: w2's edit, 129 MiB, ~0.2 s the export waited for
    /// before hashing anything); [`Self::commit`] waits for it.
    pub fn start_with(&mut self, from: &File, checkpoints: Vec<Midstate>) -> std::io::Result<()> {
        assert_eq!(self.size, 0, "start_with on a blob already written to");
        let len = checkpoints.len() as u64 * CHECKPOINT;
        let (from, to) = (from.try_clone()?, self.file.as_file().try_clone()?);
        let copy = move || {
            copy_range(&from, &to, len)?;
            start_write_back(&to, 0, len);
            Ok(())
        };
        let thread = std::thread::Builder::new().name(String::from("blob-prefix"));
        self.prefix = Some(thread.spawn(copy)?);
        std::io::Seek::seek(self.file.as_file_mut(), std::io::SeekFrom::Start(len))?;
        self.hasher = CheckpointedSha256::resume(checkpoints);
        self.size = len;
        self.written_back = len;
        Ok(())
    }

    /// Another handle on the file being written, to read what was written
    /// so far at given offsets (`FileExt::read_at`, which leaves the
    /// writer's offset alone).
    pub(crate) fn reader(&self) -> std::io::Result<File> {
        self.file.as_file().try_clone()
    }

    /// The hash states recorded so far, one per [`CHECKPOINT`] bytes.
    pub fn checkpoints(&self) -> &[Midstate] {
        self.hasher.checkpoints()
    }

    /// Verifies the digest (when given), syncs, and renames into place.
    pub fn commit(mut self, expected: Option<&str>) -> Result<BlobInfo, StoreError> {
        if let Some(prefix) = self.prefix.take() {
            let copied = prefix
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the prefix copy panicked")));
            copied.map_err(io_err("copy the start of", self.file.path()))?;
        }
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
            start_write_back(self.file.as_file(), self.written_back, self.size);
            self.written_back = self.size;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Asks the kernel to start writing bytes `from..to` of `file` to disk,
/// without waiting: a hint, the sync at the commit is what makes the
/// blob durable.
fn start_write_back(file: &File, from: u64, to: u64) {
    // SAFETY: an open descriptor; the call only reads its arguments.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            from as i64,
            (to - from) as i64,
            libc::SYNC_FILE_RANGE_WRITE,
        )
    };
}

/// Copies the first `len` bytes of `from` to the start of `to` (both at
/// explicit offsets: neither file position moves), in the kernel where
/// the filesystem can (`copy_file_range`; a reflink on XFS or btrfs),
/// else through a buffer.
fn copy_range(from: &File, to: &File, len: u64) -> std::io::Result<()> {
    let (mut off_in, mut off_out): (i64, i64) = (0, 0);
    while (off_in as u64) < len {
        let left = usize::try_from(len - off_in as u64).unwrap_or(usize::MAX);
        // SAFETY: open descriptors and offsets owned by this frame.
        let n = unsafe {
            libc::copy_file_range(
                from.as_raw_fd(),
                &mut off_in,
                to.as_raw_fd(),
                &mut off_out,
                left.min(1 << 30),
                0,
            )
        };
        match n {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n if n > 0 => {}
            _ => {
                let err = std::io::Error::last_os_error();
                let unsupported = [libc::EXDEV, libc::ENOSYS, libc::EOPNOTSUPP, libc::EINVAL];
                if off_in > 0 || !err.raw_os_error().is_some_and(|e| unsupported.contains(&e)) {
                    return Err(err);
                }
                return copy_through_buffer(from, to, len);
            }
        }
    }
    Ok(())
}

/// [`copy_range`] where the kernel cannot copy between the two files.
fn copy_through_buffer(from: &File, to: &File, len: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0u64;
    while at < len {
        let n = usize::try_from(len - at)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        from.read_exact_at(&mut buf[..n], at)?;
        to.write_all_at(&buf[..n], at)?;
        at += n as u64;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    #[test]
    fn a_blob_started_with_another_ones_prefix_holds_and_names_its_own_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let first: Vec<u8> = (0..(5 * CHECKPOINT as usize / 2))
            .map(|i| (i % 241) as u8)
            .collect();
        let mut w = store.blob_writer().unwrap();
        w.write_all(&first).unwrap();
        let states = w.checkpoints().to_vec();
        assert_eq!(states.len(), 2);
        let info = w.commit(None).unwrap();

        let mut second = first[..2 * CHECKPOINT as usize + 100].to_vec();
        second.extend_from_slice(b"and then its own bytes");
        let mut w = store.blob_writer().unwrap();
        let old = File::open(store.blob_path(&info.digest)).unwrap();
        w.start_with(&old, states).unwrap();
        w.write_all(&second[2 * CHECKPOINT as usize..]).unwrap();
        let made = w.commit(None).unwrap();
        assert_eq!(made.size, second.len() as u64);
        assert_eq!(
            made.digest,
            format!("sha256:{}", hex::encode(Sha256::digest(&second)))
        );
        assert_eq!(store.read_blob(&made.digest).unwrap(), second);
    }

    #[test]
    fn a_prefix_that_cannot_be_copied_fails_the_commit_and_names_no_blob() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut w = store.blob_writer().unwrap();
        w.write_all(&vec![7u8; 2 * CHECKPOINT as usize]).unwrap();
        let states = w.checkpoints().to_vec();
        w.commit(None).unwrap();
        // The old blob is shorter than its two checkpoints say: the copy
        // on its own thread fails after the writes after it succeeded.
        let short = dir.path().join("short");
        std::fs::write(&short, vec![7u8; CHECKPOINT as usize]).unwrap();
        let mut w = store.blob_writer().unwrap();
        w.start_with(&File::open(&short).unwrap(), states).unwrap();
        w.write_all(b"tail").unwrap();
        let err = w.commit(None).unwrap_err().to_string();
        assert!(err.contains("copy the start of"), "{err}");
        let blobs = std::fs::read_dir(dir.path().join("blobs/sha256"))
            .unwrap()
            .count();
        assert_eq!(blobs, 1, "only the first blob");
    }
}
