//! Unpacking a layer or archive tar into a directory: the one extraction
//! routine of rbuild (snapshots in the store, the exported filesystem,
//! ADD of archives). Every name goes through [`crate::contain`], so
//! nothing lands outside the destination (no `..`, no write through a
//! symlink, no hard link to outside); and the stream is bounded (see
//! [`Limits`]): a decompression bomb, a huge PAX header or a huge xattr is
//! refused with an error naming the entry, before it fills disk or memory.
//!
//! Whiteouts are handled as the destination needs ([`Whiteouts`]): kept as
//! overlay whiteouts (`.wh.name` → a 0/0 character device, `.wh..wh..opq`
//! → the `user.overlay.opaque=y` xattr), applied (deleted), or, for ADD,
//! not whiteouts at all.

use std::cell::Cell;
use std::collections::HashSet;
use std::ffi::{CStr, CString, OsStr};
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use nix::sys::stat::{Mode, SFlag, mknod};
use sha2::{Digest, Sha256};

use crate::contain::{self, EntryError, LayerEntry, Refusal};
use crate::files::{remove_any, set_mtime};

/// A decompressing reader for a layer blob (gzip, zstd or plain), chosen
/// by magic bytes so that a mislabelled media type still reads. The magic
/// is read whole even from a reader that gives a few bytes at a time (a
/// layer unpacked while it downloads).
pub fn decompress<'a>(mut file: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let mut head = Vec::with_capacity(4);
    (&mut file).take(4).read_to_end(&mut head)?;
    let chained = io::Cursor::new(head.clone()).chain(file);
    Ok(match head.as_slice() {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::MultiGzDecoder::new(io::BufReader::new(
            chained,
        ))),
        [0x28, 0xb5, 0x2f, 0xfd] => Box::new(zstd::stream::read::Decoder::new(chained)?),
        _ => Box::new(chained),
    })
}

/// What whiteout entries mean where a tar is unpacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whiteouts {
    /// Kept as overlay whiteouts: the destination is one layer of a stack.
    Overlay,
    /// Applied: what they name is deleted from the destination, which
    /// holds the layers below (a flattened filesystem).
    Apply,
    /// No whiteouts: `.wh.` names are plain files (ADD, as Docker does).
    Literal,
}

/// Bounds on one unpack.
///
/// The uncompressed stream may hold at most [`Limits::RATIO`] times the
/// compressed size, and never less than [`Limits::FLOOR`]: gzip cannot
/// exceed 1032:1, so no gzip layer is refused, while zstd, xz or bzip2
/// bombs (10⁴–10⁶:1) are. `RBUILD_MAX_UNPACK_RATIO` sets another ratio
/// (`0`: no limit). The metadata before one entry (PAX headers, GNU long
/// names, sparse maps), which the tar reader holds in memory, may hold at
/// most [`Limits::HEADER_BYTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes of the uncompressed stream.
    pub max_bytes: u64,
    /// Most bytes read while reading the headers of one entry.
    pub max_header_bytes: u64,
}

impl Limits {
    /// Uncompressed bytes allowed per compressed byte.
    pub const RATIO: u64 = 2048;
    /// Uncompressed bytes always allowed, whatever the compressed size.
    pub const FLOOR: u64 = 1 << 30;
    /// Metadata bytes allowed before one entry.
    pub const HEADER_BYTES: u64 = 1 << 20;
    /// The environment variable that overrides [`Limits::RATIO`].
    pub const RATIO_VAR: &str = "RBUILD_MAX_UNPACK_RATIO";

    /// The limits for a stream whose compressed form has `compressed` bytes.
    pub fn for_compressed(compressed: u64) -> Self {
        Self::with_ratio(compressed, Self::ratio())
    }

    /// The ratio in force: `RBUILD_MAX_UNPACK_RATIO`, else [`Limits::RATIO`].
    pub fn ratio() -> u64 {
        std::env::var(Self::RATIO_VAR)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(Self::RATIO)
    }

    /// The limits for `compressed` bytes at `ratio` (`0`: no limit).
    pub fn with_ratio(compressed: u64, ratio: u64) -> Self {
        let max_bytes = match ratio {
            0 => u64::MAX,
            r => compressed.saturating_mul(r).max(Self::FLOOR),
        };
        Self {
            max_bytes,
            max_header_bytes: Self::HEADER_BYTES,
        }
    }
}

/// Why an unpack failed.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// An entry was refused or could not be written.
    #[error(transparent)]
    Entry(#[from] EntryError),
    /// The uncompressed stream is larger than allowed.
    #[error(
        "uncompressed stream larger than {limit} bytes (a decompression bomb? raise {} to allow it)",
        Limits::RATIO_VAR
    )]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The headers of one entry (PAX, long names) are larger than allowed.
    #[error("headers of the entry after {after} larger than the limit of {limit} bytes")]
    HeaderTooLarge {
        /// The entry before (escaped), or `the start`.
        after: String,
        /// The limit.
        limit: u64,
    },
    /// The stream is not a readable tar.
    #[error("after {after}: {error}")]
    Read {
        /// The entry before (escaped), or `the start`.
        after: String,
        /// The failure.
        error: io::Error,
    },
}

impl From<UnpackError> for io::Error {
    fn from(e: UnpackError) -> Self {
        io::Error::new(io::ErrorKind::InvalidData, e.to_string())
    }
}

/// How far the reader may go, and whether it was stopped.
#[derive(Default)]
struct Meter {
    read: Cell<u64>,
    limit: Cell<u64>,
    tripped: Cell<bool>,
}

/// A reader that hashes what passes through (the layer's diff_id) and
/// fails once it reaches the meter's limit.
struct Metered<R> {
    inner: R,
    hasher: Sha256,
    meter: Rc<Meter>,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let allowed = self.meter.limit.get().saturating_sub(self.meter.read.get());
        if allowed == 0 && !buf.is_empty() {
            // At the limit: fine only if the stream ends here.
            if self.inner.read(&mut [0u8; 1])? == 0 {
                return Ok(0);
            }
            self.meter.tripped.set(true);
            return Err(io::Error::new(io::ErrorKind::InvalidData, "limit reached"));
        }
        let take = buf
            .len()
            .min(usize::try_from(allowed).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..take])?;
        self.hasher.update(&buf[..n]);
        self.meter.read.set(self.meter.read.get() + n as u64);
        Ok(n)
    }
}

/// Unpacks the tar stream `reader` into the directory `dest` within
/// `limits`; returns `sha256:` of the uncompressed stream.
pub fn unpack(
    reader: impl Read,
    dest: &Path,
    whiteouts: Whiteouts,
    limits: Limits,
) -> Result<String, UnpackError> {
    let meter = Rc::new(Meter::default());
    let metered = Metered {
        inner: reader,
        hasher: Sha256::new(),
        meter: Rc::clone(&meter),
    };
    let mut archive = tar::Archive::new(metered);
    let mut state = State {
        dest,
        whiteouts,
        written: HashSet::new(),
        dir_times: Vec::new(),
    };
    let mut last = String::from("the start");
    let read_error = |last: &str, error: io::Error| -> UnpackError {
        if !meter.tripped.get() {
            UnpackError::Read {
                after: last.to_string(),
                error,
            }
        } else if meter.read.get() >= limits.max_bytes {
            UnpackError::TooLarge {
                limit: limits.max_bytes,
            }
        } else {
            UnpackError::HeaderTooLarge {
                after: last.to_string(),
                limit: limits.max_header_bytes,
            }
        }
    };
    {
        let header_limit = || {
            meter
                .read
                .get()
                .saturating_add(limits.max_header_bytes)
                .min(limits.max_bytes)
        };
        meter.limit.set(header_limit());
        let entries = archive.entries().map_err(|e| read_error(&last, e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| read_error(&last, e))?;
            meter.limit.set(limits.max_bytes);
            let raw = entry.path_bytes().into_owned();
            let result = state.entry(&mut entry, &raw);
            // Whatever was not read (skipped kinds, errors) is drained here,
            // within the data limit, so that headers alone meet the header limit.
            let drained = io::copy(&mut entry, &mut io::sink());
            if meter.tripped.get() {
                return Err(UnpackError::TooLarge {
                    limit: limits.max_bytes,
                });
            }
            result?;
            drained.map_err(|e| read_error(&contain::escape(&raw), e))?;
            last = contain::escape(&raw);
            meter.limit.set(header_limit());
        }
    }
    let mut metered = archive.into_inner();
    meter.limit.set(limits.max_bytes);
    // Read to the end, so that the digest covers trailing padding too.
    io::copy(&mut metered, &mut io::sink()).map_err(|e| read_error(&last, e))?;
    state.finish()?;
    Ok(format!("sha256:{}", hex::encode(metered.hasher.finalize())))
}

/// What one unpack has done so far.
struct State<'a> {
    dest: &'a Path,
    whiteouts: Whiteouts,
    /// Paths this stream wrote (applied opaque dirs keep them).
    written: HashSet<PathBuf>,
    /// Directories whose mtime to set once everything is written.
    dir_times: Vec<(PathBuf, i64)>,
}

impl State<'_> {
    /// Unpacks one entry named `raw`.
    fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        raw: &[u8],
    ) -> Result<(), EntryError> {
        let refused = |r: Refusal| EntryError::refused(raw, r);
        let io_err = |e: io::Error| EntryError::io(raw, e);
        let Some(rel) = contain::clean(raw).map_err(refused)? else {
            return Ok(());
        };
        let host = contain::resolve_parents(self.dest, &rel, true).map_err(|e| e.about(raw))?;
        let meaning = match self.whiteouts {
            Whiteouts::Literal => LayerEntry::Plain(rel),
            _ => contain::layer_entry(rel).map_err(refused)?,
        };
        match (meaning, self.whiteouts) {
            (LayerEntry::Opaque(_), Whiteouts::Overlay) => {
                let dir = host.parent().unwrap_or(self.dest);
                set_xattr(dir, OPAQUE_XATTR, b"y").map_err(io_err)
            }
            (LayerEntry::Opaque(dir), _) => {
                for child in fs::read_dir(self.dest.join(&dir)).map_err(io_err)? {
                    let child = child.map_err(io_err)?;
                    if !self.written.contains(&dir.join(child.file_name())) {
                        remove_any(&child.path()).map_err(io_err)?;
                    }
                }
                Ok(())
            }
            (LayerEntry::Whiteout(hidden), whiteouts) => {
                let target = self.dest.join(&hidden);
                remove_any(&target).map_err(io_err)?;
                if whiteouts == Whiteouts::Overlay {
                    mknod(&target, SFlag::S_IFCHR, Mode::empty(), 0)
                        .map_err(|e| io_err(e.into()))?;
                }
                Ok(())
            }
            (LayerEntry::Plain(rel), _) => {
                self.plain(entry, raw, &host)?;
                if self.whiteouts == Whiteouts::Apply {
                    self.written.insert(rel);
                }
                Ok(())
            }
        }
    }

    /// Writes a file, directory, link or device entry at `path`.
    fn plain<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        raw: &[u8],
        path: &Path,
    ) -> Result<(), EntryError> {
        let io_err = |e: io::Error| EntryError::io(raw, e);
        let header = entry.header().clone();
        let kind = header.entry_type();
        let mode = header.mode().map_err(io_err)? & 0o7777;
        let uid = header.uid().map_err(io_err)?;
        let gid = header.gid().map_err(io_err)?;
        let (uid, gid) = (owner_id(uid, raw)?, owner_id(gid, raw)?);
        let mtime = header.mtime().unwrap_or(0).min(i64::MAX as u64) as i64;
        if kind.is_dir() {
            match fs::symlink_metadata(path) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    remove_any(path).map_err(io_err)?;
                    fs::create_dir(path).map_err(io_err)?;
                }
                Err(_) => fs::create_dir(path).map_err(io_err)?,
            }
        } else if kind.is_hard_link() {
            let target = self.hard_link_target(entry, raw)?;
            remove_any(path).map_err(io_err)?;
            return fs::hard_link(target, path).map_err(io_err);
        } else {
            remove_any(path).map_err(io_err)?;
            if kind.is_file() || kind == tar::EntryType::Continuous || kind.is_gnu_sparse() {
                let mut out = fs::File::create(path).map_err(io_err)?;
                io::copy(entry, &mut out).map_err(io_err)?;
            } else if kind.is_symlink() {
                let target = entry.link_name_bytes().ok_or_else(|| {
                    io_err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "symlink without target",
                    ))
                })?;
                symlink(OsStr::from_bytes(&target), path).map_err(io_err)?;
            } else if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
                let flag = if kind.is_character_special() {
                    SFlag::S_IFCHR
                } else if kind.is_block_special() {
                    SFlag::S_IFBLK
                } else {
                    SFlag::S_IFIFO
                };
                let dev = nix::sys::stat::makedev(
                    u64::from(header.device_major().map_err(io_err)?.unwrap_or(0)),
                    u64::from(header.device_minor().map_err(io_err)?.unwrap_or(0)),
                );
                mknod(path, flag, Mode::from_bits_truncate(mode), dev)
                    .map_err(|e| io_err(e.into()))?;
            } else {
                // PAX/GNU metadata entries are consumed by the tar reader;
                // anything else has no place in a layer.
                return Ok(());
            }
        }
        std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(io_err)?;
        if !kind.is_symlink() {
            fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_err)?;
        }
        self.xattrs(entry, raw, path)?;
        if kind.is_dir() {
            self.dir_times.push((path.to_path_buf(), mtime));
            Ok(())
        } else {
            set_mtime(path, mtime, 0).map_err(io_err)
        }
    }

    /// The host path a hard link entry links to: a name inside the
    /// destination (checked as any entry name), which exists and is no
    /// directory.
    fn hard_link_target<R: Read>(
        &self,
        entry: &tar::Entry<'_, R>,
        raw: &[u8],
    ) -> Result<PathBuf, EntryError> {
        let io_err = |e: io::Error| EntryError::io(raw, e);
        let target = entry.link_name_bytes().ok_or_else(|| {
            io_err(io::Error::new(
                io::ErrorKind::InvalidData,
                "hard link without target",
            ))
        })?;
        let rel = contain::clean(&target)
            .map_err(|r| EntryError::refused(raw, r))?
            .ok_or_else(|| {
                io_err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "hard link to the root",
                ))
            })?;
        let host = contain::resolve_parents(self.dest, &rel, false).map_err(|e| e.about(raw))?;
        match fs::symlink_metadata(&host) {
            Ok(m) if m.is_dir() => Err(io_err(io::Error::new(
                io::ErrorKind::InvalidData,
                "hard link to a directory",
            ))),
            Ok(_) => Ok(host),
            Err(e) => Err(io_err(e)),
        }
    }

    /// Sets the `SCHILY.xattr.` attributes of the entry's PAX header on
    /// `path`. Overlay metadata comes from whiteout entries only: a layer
    /// must not smuggle in its own.
    fn xattrs<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        raw: &[u8],
        path: &Path,
    ) -> Result<(), EntryError> {
        let io_err = |e: io::Error| EntryError::io(raw, e);
        let Some(exts) = entry.pax_extensions().map_err(io_err)? else {
            return Ok(());
        };
        for ext in exts {
            let ext = ext.map_err(io_err)?;
            let Some(attr) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") else {
                continue;
            };
            if attr.windows(9).any(|w| w == b".overlay.") {
                continue;
            }
            let value = ext.value_bytes();
            if value.len() > MAX_XATTR_BYTES {
                return Err(io_err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "xattr {} of {} bytes is larger than the limit of {MAX_XATTR_BYTES}",
                        contain::escape(attr),
                        value.len()
                    ),
                )));
            }
            let name = CString::new(attr).map_err(|e| io_err(io::Error::other(e)))?;
            set_xattr(path, &name, value).map_err(|e| {
                io_err(io::Error::new(
                    e.kind(),
                    format!("xattr {}: {e}", contain::escape(attr)),
                ))
            })?;
        }
        Ok(())
    }

    /// Sets the directories' times, deepest first (writing into a
    /// directory changes its mtime).
    fn finish(self) -> Result<(), EntryError> {
        for (dir, mtime) in self.dir_times.iter().rev() {
            set_mtime(dir, *mtime, 0).map_err(|e| EntryError::io(dir.as_os_str().as_bytes(), e))?;
        }
        Ok(())
    }
}

/// The largest xattr value Linux stores (`XATTR_SIZE_MAX`).
const MAX_XATTR_BYTES: usize = 64 << 10;

/// A numeric owner as a host id (tar allows 64 bits, Linux 32).
fn owner_id(id: u64, raw: &[u8]) -> Result<u32, EntryError> {
    u32::try_from(id).map_err(|_| {
        EntryError::io(
            raw,
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("owner id {id} out of range"),
            ),
        )
    })
}

/// The xattr that marks an opaque directory of an overlay layer: the
/// `user.overlay.` namespace of overlayfs's `userxattr` option, which the
/// executor's mounts use so that root and rootless mode share one format.
pub const OPAQUE_XATTR: &CStr = c"user.overlay.opaque";

fn set_xattr(path: &Path, n: &CStr, value: &[u8]) -> io::Result<()> {
    let p = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: valid NUL-terminated strings and a live buffer of `value.len()` bytes.
    let rc = unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
