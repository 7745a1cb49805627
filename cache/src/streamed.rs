//! A layer unpacked while its blob is being written (pulled): the unpack
//! follows the blob's temporary file on a thread of its own, reading each
//! byte once it is written, instead of starting after the whole blob is
//! downloaded, verified and synced. Nothing unverified becomes visible:
//! the unpack reads the end of the stream only once the blob is committed
//! (its digest checked, synced, renamed into place), and the snapshot and
//! its layer record are committed after that ([`StreamedUnpack::finish`]);
//! a blob that fails leaves only the pending snapshot, which is removed.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crate::Store;
use crate::blobs::{BlobInfo, BlobWriter};
use crate::error::{StoreError, io_err};
use crate::records::LayerRecord;
use crate::snapshots::PendingSnapshot;
use crate::unpack::Limits;

/// How far the blob is written, and how it ended.
#[derive(Debug, Default)]
struct Progress {
    written: u64,
    /// `Some(true)` once the blob is committed, `Some(false)` once it failed.
    ended: Option<bool>,
}

/// What the writer tells the unpack.
#[derive(Debug, Default)]
struct Feed {
    progress: Mutex<Progress>,
    changed: Condvar,
}

impl Feed {
    fn update(&self, change: impl FnOnce(&mut Progress)) {
        change(&mut self.progress.lock().expect("poisoned"));
        self.changed.notify_all();
    }
}

/// The writing side: a layer blob's [`BlobWriter`] whose unpack follows
/// what is written. Dropped without [`LayerFeed::commit`], the unpack
/// fails.
#[derive(Debug)]
pub struct LayerFeed {
    writer: Option<BlobWriter>,
    feed: Arc<Feed>,
}

impl LayerFeed {
    /// Commits the blob as [`BlobWriter::commit`] does (digest checked
    /// against `expected`, synced, renamed into place); then the unpack
    /// may read to its end.
    pub fn commit(mut self, expected: Option<&str>) -> Result<BlobInfo, StoreError> {
        let writer = self.writer.take().expect("committed once");
        let committed = writer.commit(expected);
        let ok = committed.is_ok();
        self.feed.update(|p| p.ended = Some(ok));
        committed
    }
}

impl Write for LayerFeed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let writer = self.writer.as_mut().expect("written before the commit");
        let n = writer.write(buf)?;
        self.feed.update(|p| p.written += n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.as_mut().map_or(Ok(()), Write::flush)
    }
}

impl Drop for LayerFeed {
    fn drop(&mut self) {
        if self.writer.is_some() {
            self.feed.update(|p| p.ended = Some(false));
        }
    }
}

/// The reading side: the blob's bytes as they are written, waiting for
/// more while it is not committed; an error once it failed.
struct FeedReader {
    file: File,
    at: u64,
    feed: Arc<Feed>,
}

impl Read for FeedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let ready = {
            let mut progress = self.feed.progress.lock().expect("poisoned");
            loop {
                if progress.written > self.at {
                    break progress.written - self.at;
                }
                match progress.ended {
                    Some(true) => return Ok(0),
                    Some(false) => {
                        return Err(io::Error::other("the layer's blob was not pulled whole"));
                    }
                    None => progress = self.feed.changed.wait(progress).expect("poisoned"),
                }
            }
        };
        let len = buf.len().min(usize::try_from(ready).unwrap_or(usize::MAX));
        let n = self.file.read_at(&mut buf[..len], self.at)?;
        if n == 0 && len > 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the layer's blob is shorter than written",
            ));
        }
        self.at += n as u64;
        Ok(n)
    }
}

/// The uncompressed stream of a layer being pulled, held to the unpack
/// limit of the compressed bytes arrived so far: the blob's size the
/// manifest declares (which sets the unpack's own limit) is only proven
/// by the digest at the end, and a manifest overstating it must not let
/// a decompression bomb past the ratio meanwhile.
struct RatioGuard<R> {
    inner: R,
    /// Uncompressed bytes read so far.
    read: u64,
    feed: Arc<Feed>,
    /// The most uncompressed bytes allowed for so many compressed ones.
    limit_of: Box<dyn Fn(u64) -> u64 + Send>,
}

impl<R: Read> Read for RatioGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        let arrived = self.feed.progress.lock().expect("poisoned").written;
        let limit = (self.limit_of)(arrived);
        if self.read > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "uncompressed stream larger than {limit} bytes for the {arrived} compressed bytes pulled so far (a decompression bomb? raise {} to allow it)",
                    Limits::RATIO_VAR
                ),
            ));
        }
        Ok(n)
    }
}

/// An unpack following a [`LayerFeed`].
#[derive(Debug)]
pub struct StreamedUnpack {
    store: Store,
    blob: BlobInfo,
    media_type: String,
    unpacking: JoinHandle<Result<(PendingSnapshot, String), StoreError>>,
}

impl StreamedUnpack {
    /// Waits for the unpack and commits its snapshot and layer record (the
    /// record [`Store::unpack_layer`] would make). Only after the feed's
    /// [`LayerFeed::commit`] succeeded: before, the unpack waits for the
    /// rest of the blob; after a failed one, it fails.
    pub fn finish(self) -> Result<LayerRecord, StoreError> {
        let unpacked = self
            .unpacking
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
        self.store
            .commit_unpacked(unpacked, &self.blob, &self.media_type)
    }
}

impl Store {
    /// Starts pulling layer `blob` (of `media_type`) into the store while
    /// unpacking it: the bytes written to the [`LayerFeed`] become the
    /// blob, and a thread unpacks them into a snapshot as they come; see
    /// [`StreamedUnpack::finish`].
    pub fn unpack_layer_streamed(
        &self,
        blob: &BlobInfo,
        media_type: &str,
    ) -> Result<(LayerFeed, StreamedUnpack), StoreError> {
        let writer = self.blob_writer()?;
        let path = self.blob_path(&blob.digest);
        let file = writer
            .reader()
            .map_err(io_err("reopen the temporary file of", &path))?;
        let feed = Arc::new(Feed::default());
        let reader = FeedReader {
            file,
            at: 0,
            feed: feed.clone(),
        };
        let (store, target, guarded) = (self.clone(), blob.clone(), feed.clone());
        let unpacking = std::thread::Builder::new()
            .name(String::from("layer-unpack"))
            .spawn(move || {
                let ratio = Limits::ratio();
                let guard = |stream| -> Box<dyn Read> {
                    Box::new(RatioGuard {
                        inner: stream,
                        read: 0,
                        feed: guarded,
                        limit_of: Box::new(move |arrived| {
                            Limits::with_ratio(arrived, ratio).max_bytes
                        }),
                    })
                };
                let limits = Limits::for_compressed(target.size);
                store.unpack_blob_bytes(reader, limits, &target, guard)
            })
            .map_err(io_err("start the unpack of", &path))?;
        let unpack = StreamedUnpack {
            store: self.clone(),
            blob: blob.clone(),
            media_type: media_type.to_string(),
            unpacking,
        };
        Ok((
            LayerFeed {
                writer: Some(writer),
                feed,
            },
            unpack,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_uncompressed_stream_is_held_to_the_compressed_bytes_arrived() {
        let feed = Arc::new(Feed::default());
        feed.update(|p| p.written = 10);
        let mut guard = RatioGuard {
            inner: &[7u8; 100][..],
            read: 0,
            feed: feed.clone(),
            limit_of: Box::new(|compressed| compressed * 4),
        };
        let mut buf = [0u8; 30];
        assert_eq!(guard.read(&mut buf).unwrap(), 30);
        // 60 bytes out of 10 arrived: past 4 times as many.
        let refused = guard.read(&mut buf).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::InvalidData);
        assert!(
            refused.to_string().contains("larger than 40 bytes"),
            "{refused}"
        );
        // More arrived: 25 allow 100.
        feed.update(|p| p.written = 25);
        assert_eq!(guard.read(&mut buf).unwrap(), 30);
    }
}
