//! A snapshot directory (an overlay upper dir, or the files a COPY wrote)
//! as a deterministic layer tar: entries sorted by path, numeric owners
//! without names, mtimes clamped to `SOURCE_DATE_EPOCH` when set, hard
//! links kept, overlay whiteouts written as OCI `.wh.` entries and opaque
//! directories as `.wh..wh..opq`, overlay's own xattrs dropped, and the
//! paths the snapshot's store records as left out (a RUN's copy-ups
//! without a change) skipped: a hard link to one of them is then written
//! as a regular file, as BuildKit's differ does.

use std::collections::HashSet;
use std::ffi::CString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rbuild_cache::IndexEntries;
use rbuild_cache::sorted_walk::{WalkEntry, walk_sorted};
use sha2::{Digest, Sha256};

use crate::first_names::FirstNames;

/// A writer that hashes what passes through (the layer's diff_id).
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
        }
    }

    /// The inner writer and `sha256:` of everything written.
    pub fn finish(self) -> (W, String) {
        (
            self.inner,
            format!("sha256:{}", hex::encode(self.hasher.finalize())),
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Calls `read(buffer, len)` (an `lgetxattr`/`llistxattr`) with 4 KiB,
/// and when that is too small (`ERANGE`, up to Linux's 64 KiB) again with
/// the size it reports for a null buffer.
fn read_sized(read: impl Fn(*mut libc::c_void, usize) -> isize) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    let mut len = read(buf.as_mut_ptr().cast(), buf.len());
    if len < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ERANGE) {
        let size = usize::try_from(read(std::ptr::null_mut(), 0)).ok()?;
        buf.resize(size, 0);
        len = read(buf.as_mut_ptr().cast(), buf.len());
    }
    let len = usize::try_from(len).ok()?;
    buf.truncate(len);
    Some(buf)
}

/// Reads one extended attribute of `path` (not following symlinks).
fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = CString::new(path.as_os_str().as_bytes()).ok()?;
    let n = CString::new(name).ok()?;
    // SAFETY: valid strings, and a buffer of the given length (or null and 0).
    read_sized(|buf, len| unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf, len) })
}

/// The extended attributes an image keeps (`security.capability`, `user.*`…):
/// all but overlay's own.
fn kept_xattrs(path: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(p) = CString::new(path.as_os_str().as_bytes()) else {
        return Vec::new();
    };
    // SAFETY: a valid string, and a buffer of the given length (or null and 0).
    let Some(names) =
        read_sized(|buf, len| unsafe { libc::llistxattr(p.as_ptr(), buf.cast(), len) })
    else {
        return Vec::new();
    };
    let mut out: Vec<(String, Vec<u8>)> = names
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .filter_map(|n| std::str::from_utf8(n).ok())
        .filter(|n| !n.starts_with("trusted.overlay.") && !n.starts_with("user.overlay."))
        .filter_map(|n| xattr(path, n).map(|v| (n.to_string(), v)))
        .collect();
    out.sort();
    out
}

fn is_opaque(path: &Path) -> bool {
    xattr(path, rbuild_cache::OPAQUE_XATTR.to_str().expect("ASCII")).is_some_and(|v| v == b"y")
}

/// The file whose bytes follow a tar entry's header.
#[derive(Debug)]
pub(crate) struct Body {
    /// Where it is.
    pub path: PathBuf,
    /// Its size (the header's).
    pub size: u64,
    /// Its device.
    pub dev: u64,
    /// Its inode.
    pub ino: u64,
}

/// One entry of a layer tar as the walk makes it.
pub(crate) struct TarEntry<'a> {
    /// The path walked, relative to the snapshot.
    pub rel: &'a Path,
    /// Every byte of the entry before its data (a pax or GNU long-name
    /// entry, the header, an opaque directory's `.wh..wh..opq` entry).
    pub header: &'a [u8],
    /// The file whose bytes follow, for a regular file's first name.
    pub body: Option<Body>,
}

impl TarEntry<'_> {
    /// Zero bytes after the data, up to the next 512-byte block.
    pub fn padding(&self) -> u64 {
        self.body
            .as_ref()
            .map_or(0, |b| b.size.next_multiple_of(512) - b.size)
    }

    /// Bytes of the whole entry in the tar.
    pub fn span(&self) -> u64 {
        self.header.len() as u64 + self.body.as_ref().map_or(0, |b| b.size) + self.padding()
    }

    /// The entry as a layer index keeps it.
    pub fn index_entry(&self) -> rbuild_cache::IndexEntry {
        let (dev, ino) = self.body.as_ref().map_or((0, 0), |b| (b.dev, b.ino));
        rbuild_cache::IndexEntry {
            path: self.rel.to_path_buf(),
            dev,
            ino,
            span: self.span(),
            header: rbuild_cache::header_hash(self.header),
        }
    }

    /// Writes the data and its padding into `out`.
    pub fn write_body(&self, out: &mut dyn Write) -> io::Result<()> {
        let Some(body) = &self.body else {
            return Ok(());
        };
        let file = fs::File::open(&body.path)?;
        let copied = io::copy(&mut io::Read::take(file, body.size), out)?;
        if copied != body.size {
            return Err(io::Error::other(format!(
                "{} changed while it was exported ({copied} of {} bytes)",
                body.path.display(),
                body.size
            )));
        }
        out.write_all(&[0u8; 512][..self.padding() as usize])
    }
}

/// Writes the layer tar of `dir` into `out`, without the paths (relative
/// to `dir`) in `left_out`; returns its index entries.
pub fn write_tar(
    dir: &Path,
    left_out: &HashSet<PathBuf>,
    mut out: impl Write,
    epoch: Option<i64>,
) -> io::Result<IndexEntries> {
    let mut entries = IndexEntries::default();
    let end = walk_entries(dir, left_out, epoch, |entry| {
        out.write_all(entry.header)?;
        entry.write_body(&mut out)?;
        entries.push(&entry.index_entry());
        Ok(())
    })?;
    out.write_all(&end)?;
    out.flush()?;
    Ok(entries)
}

/// Walks `dir` in tar order (sorted by name bytes, depth first), handing
/// `visit` each entry of its layer tar; returns the bytes that close the
/// tar (two zero blocks).
pub(crate) fn walk_entries(
    dir: &Path,
    left_out: &HashSet<PathBuf>,
    epoch: Option<i64>,
    mut visit: impl FnMut(TarEntry<'_>) -> io::Result<()>,
) -> io::Result<Vec<u8>> {
    // Headers are framed by the tar crate into this buffer, taken out
    // after each entry.
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    let mut links = FirstNames::default();
    let clamp = |t: i64| -> u64 {
        let t = t.max(0);
        match epoch {
            Some(e) if t > e => e as u64,
            _ => t as u64,
        }
    };
    walk_sorted(dir, |entry| {
        if left_out.contains(entry.rel) {
            return Ok(());
        }
        let body = frame_entry(&mut builder, &entry, &mut links, &clamp)?;
        let header = std::mem::take(builder.get_mut());
        if header.is_empty() {
            return Ok(());
        }
        visit(TarEntry {
            rel: entry.rel,
            header: &header,
            body,
        })
    })?;
    builder.into_inner()
}

/// Frames the headers of one walked entry into `builder`; returns the
/// file whose bytes follow them, if any. Writes nothing for what a tar
/// cannot hold (sockets).
fn frame_entry(
    builder: &mut tar::Builder<Vec<u8>>,
    entry: &WalkEntry<'_>,
    links: &mut FirstNames,
    clamp: &dyn Fn(i64) -> u64,
) -> io::Result<Option<Body>> {
    let (path, rel, meta) = (entry.path, entry.rel, entry.meta);
    // Names go in byte-exact (non-UTF-8 ones too).
    let name = rel.to_path_buf();
    let ft = meta.file_type();
    let mut h = tar::Header::new_gnu();
    h.set_uid(u64::from(meta.uid()));
    h.set_gid(u64::from(meta.gid()));
    h.set_mode(meta.mode() & 0o7777);
    h.set_mtime(clamp(meta.mtime()));
    h.set_size(0);
    if ft.is_char_device() && meta.rdev() == 0 {
        // An overlay whiteout: the OCI form is an empty `.wh.` file.
        let mut hidden = b".wh.".to_vec();
        hidden.extend_from_slice(path.file_name().expect("a walked entry").as_bytes());
        let wh = rel.with_file_name(std::ffi::OsStr::from_bytes(&hidden));
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_mtime(clamp(meta.mtime()));
        h.set_size(0);
        builder.append_data(&mut h, wh, io::empty())?;
        return Ok(None);
    }
    if ft.is_socket() {
        // Sockets have no tar form (as in Docker): skipped.
        return Ok(None);
    }
    let xattrs = kept_xattrs(path);
    if !xattrs.is_empty() {
        let pax: Vec<(String, Vec<u8>)> = xattrs
            .into_iter()
            .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v))
            .collect();
        builder.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))?;
    }
    if ft.is_dir() {
        h.set_entry_type(tar::EntryType::Directory);
        let mut dir_name = name.as_os_str().to_owned();
        dir_name.push("/");
        builder.append_data(&mut h, &dir_name, io::empty())?;
        if is_opaque(path) {
            let mut o = tar::Header::new_gnu();
            o.set_entry_type(tar::EntryType::Regular);
            o.set_mode(0o644);
            o.set_mtime(clamp(meta.mtime()));
            o.set_size(0);
            builder.append_data(&mut o, name.join(".wh..wh..opq"), io::empty())?;
        }
    } else if ft.is_symlink() {
        h.set_entry_type(tar::EntryType::Symlink);
        let target = fs::read_link(path)?;
        builder.append_link(&mut h, &name, target)?;
    } else if ft.is_file() {
        if meta.nlink() > 1
            && let Some(first) = links.first_or_record(meta.dev(), meta.ino(), &name)
        {
            h.set_entry_type(tar::EntryType::Link);
            builder.append_link(&mut h, &name, first)?;
            return Ok(None);
        }
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(meta.len());
        // The header alone: with no data, the tar crate writes no padding.
        builder.append_data(&mut h, &name, io::empty())?;
        return Ok(Some(Body {
            path: path.to_path_buf(),
            size: meta.len(),
            dev: meta.dev(),
            ino: meta.ino(),
        }));
    } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
        h.set_entry_type(if ft.is_char_device() {
            tar::EntryType::Char
        } else if ft.is_block_device() {
            tar::EntryType::Block
        } else {
            tar::EntryType::Fifo
        });
        let rdev = meta.rdev();
        h.set_device_major(libc::major(rdev))?;
        h.set_device_minor(libc::minor(rdev))?;
        builder.append_data(&mut h, &name, io::empty())?;
    }
    Ok(None)
}
