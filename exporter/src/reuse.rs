//! The layer tar of a snapshot that shares files with an earlier one
//! whose uncompressed blob is indexed (see `rbuild_cache::LayerIndex`),
//! made from that blob's bytes where they are provably the same (issue
//! 19: w2's one-file edit re-read, re-framed and re-hashed all 227 MB).
//!
//! An entry of the new tar is the old blob's entry at the same path when
//! its header bytes hash the same and, for a file's data, the file is the
//! same inode: snapshots are never written in place and the old snapshot
//! still exists (its inodes cannot have been reused), so the bytes are
//! those the old export wrote. Where the two tars start alike, the new
//! blob starts with the old one's bytes copied in the kernel up to the
//! last hash checkpoint, and its SHA-256 resumes from the state recorded
//! there; everything after is hashed as it is written, the unchanged
//! entries read from the old blob rather than from thousands of files
//! (by the thread that hashes and writes: the walk's thread only names
//! the ranges, a MiB at a time).

use std::fs::File;
use std::io::{self, Write};
use std::iter::Peekable;
use std::path::{Path, PathBuf};

use rbuild_cache::midstate::CHECKPOINT;
use rbuild_cache::{BlobWriter, IndexCursor, IndexEntries, IndexEntry, LayerIndex};

use crate::layer::{TarEntry, walk_entries};
use crate::pipe::{ChunkSender, Opener, piped_opening};

/// The bytes of a run of unchanged entries sent at once: its copy and
/// hashing go on while the walk frames the entries after it.
const RUN_SENT: u64 = 1 << 20;

/// How much of a reused export came from where.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReuseStats {
    /// Bytes at the start copied from the old blob without hashing.
    pub resumed: u64,
    /// Bytes of unchanged entries read from the old blob (and hashed).
    pub copied: u64,
    /// Bytes made afresh from the snapshot's files.
    pub made: u64,
}

/// Writes the layer tar of `dir` into `blob`, reusing what `old` (the
/// index of the blob in `old_blob`) holds unchanged; returns the blob, the
/// new tar's index entries and where its bytes came from.
pub(crate) fn write_tar_reusing(
    dir: &Path,
    left_out: &std::collections::HashSet<PathBuf>,
    epoch: Option<i64>,
    old: &LayerIndex,
    old_blob: &File,
    blob: BlobWriter,
) -> io::Result<(BlobWriter, IndexEntries, ReuseStats)> {
    if old_blob.metadata()?.len() != old.blob.size {
        return Err(io::Error::other("the indexed blob has another size"));
    }
    let mut blob = Some(blob);
    let begin = |states: usize| {
        let mut blob = blob.take().expect("begun once");
        blob.start_with(old_blob, old.checkpoints[..states].to_vec())?;
        Ok(blob)
    };
    let mut made = None;
    let produce = |opener: Opener<usize>| -> io::Result<ChunkSender> {
        let mut plan = Plan {
            old: old.entries().peekable(),
            states: old.checkpoints.len(),
            pos: 0,
            opener: Some(opener),
            out: None,
            run: (0, 0),
            entries: IndexEntries::default(),
            stats: ReuseStats::default(),
        };
        let end = walk_entries(dir, left_out, epoch, |entry| plan.add(&entry))?;
        plan.flush_run()?;
        plan.open()?.write_all(&end)?;
        plan.stats.made += end.len() as u64;
        made = Some((plan.entries, plan.stats));
        Ok(plan.out.expect("opened"))
    };
    let blob = piped_opening(produce, begin, Some(old_blob))?;
    let (entries, stats) = made.expect("produced");
    Ok((blob, entries, stats))
}

/// The producer's state: where the new tar is, what the old one holds
/// next, and whether the new one still starts like the old.
struct Plan<'a> {
    old: Peekable<IndexCursor<'a>>,
    /// How many hash states of the old blob there are.
    states: usize,
    /// Bytes of the new tar so far.
    pos: u64,
    /// Until the tars differ: the pipe, not yet opened.
    opener: Option<Opener<usize>>,
    out: Option<ChunkSender>,
    /// Old bytes to send next (offset, length): runs of unchanged
    /// entries are read at once.
    run: (u64, u64),
    entries: IndexEntries,
    stats: ReuseStats,
}

impl Plan<'_> {
    /// Adds the next entry of the new tar.
    fn add(&mut self, entry: &TarEntry<'_>) -> io::Result<()> {
        let new = entry.index_entry();
        let same = self.old_entry(&new);
        self.entries.push(&new);
        if self.opener.is_some() && same == Some(self.pos) {
            // Still the old tar's start: its bytes are where they were.
            self.pos += new.span;
            return Ok(());
        }
        self.open()?;
        match same {
            Some(at) if self.run.0 + self.run.1 == at => {
                self.run.1 += new.span;
                // Sent as it grows: everything after an edit is one run,
                // which held the hashing back until the walk was done.
                if self.run.1 >= RUN_SENT {
                    self.flush_run()?;
                }
            }
            Some(at) => {
                self.flush_run()?;
                self.run = (at, new.span);
            }
            None => {
                self.flush_run()?;
                let out = self.out.as_mut().expect("opened");
                out.write_all(entry.header)?;
                entry.write_body(out)?;
                self.stats.made += new.span;
            }
        }
        self.pos += new.span;
        Ok(())
    }

    /// Sends the pending run of old bytes.
    fn flush_run(&mut self) -> io::Result<()> {
        let (at, len) = std::mem::take(&mut self.run);
        if len > 0 {
            self.open()?.send_range(at, len)?;
            self.stats.copied += len;
        }
        Ok(())
    }

    /// The offset of the old entry whose bytes are `new`'s, if any.
    fn old_entry(&mut self, new: &IndexEntry) -> Option<u64> {
        // Both tars are in the walk's order, which is `Path`'s
        // (component by component, bytes within one).
        while self
            .old
            .next_if(|(_, old)| old.path.as_path() < new.path.as_path())
            .is_some()
        {}
        let (at, old) = self.old.next_if(|(_, old)| old.path == new.path)?;
        let same = old.header == new.header
            && old.span == new.span
            && (old.dev, old.ino) == (new.dev, new.ino);
        same.then_some(at)
    }

    /// The pipe, opened at the first byte that differs from the old tar:
    /// the consumer starts the blob with the old one's bytes up to the
    /// last hash state before it, then this side sends the rest of the
    /// common start from the old blob.
    fn open(&mut self) -> io::Result<&mut ChunkSender> {
        if let Some(opener) = self.opener.take() {
            let states = usize::try_from(self.pos / CHECKPOINT)
                .unwrap_or(usize::MAX)
                .min(self.states);
            let resumed = states as u64 * CHECKPOINT;
            let mut out = opener.open(states)?;
            out.send_range(resumed, self.pos - resumed)?;
            self.stats.resumed = resumed;
            self.stats.copied += self.pos - resumed;
            self.out = Some(out);
        }
        Ok(self.out.as_mut().expect("opened"))
    }
}
