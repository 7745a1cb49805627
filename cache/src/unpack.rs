//! Unpacking a layer tar into a snapshot: OCI whiteouts become overlay
//! whiteouts (`.wh.name` → a 0/0 character device, `.wh..wh..opq` → the
//! `user.overlay.opaque=y` xattr), and nothing may land outside the
//! snapshot: `..` components are refused and no path is written through a
//! symlink.

use std::ffi::{CStr, CString};
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use crate::files::{relative_in_layer, remove_any, set_mtime};

use nix::sys::stat::{Mode, SFlag, mknod};
use sha2::{Digest, Sha256};

/// Why an entry could not be unpacked.
fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// A reader that hashes what passes through (the layer's diff_id).
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A decompressing reader for a layer blob (gzip, zstd or plain), chosen
/// by magic bytes so that a mislabelled media type still reads.
pub fn decompress<'a>(mut file: fs::File) -> io::Result<Box<dyn Read + 'a>> {
    let mut head = [0u8; 4];
    let n = file.read(&mut head)?;
    let head = head[..n].to_vec();
    let chained = io::Cursor::new(head.clone()).chain(file);
    Ok(match head.as_slice() {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::MultiGzDecoder::new(io::BufReader::new(
            chained,
        ))),
        [0x28, 0xb5, 0x2f, 0xfd] => Box::new(zstd::stream::read::Decoder::new(chained)?),
        _ => Box::new(chained),
    })
}

/// Unpacks the tar stream `reader` into the empty directory `dest`;
/// returns `sha256:` of the uncompressed stream.
pub fn unpack(reader: Box<dyn Read + '_>, dest: &Path) -> io::Result<String> {
    let mut hashing = HashingReader {
        inner: reader,
        hasher: Sha256::new(),
    };
    let mut dir_times: Vec<(PathBuf, i64)> = Vec::new();
    {
        let mut archive = tar::Archive::new(&mut hashing);
        for entry in archive.entries()? {
            let mut entry = entry?;
            let raw = entry.path()?.into_owned();
            let Some(rel) = relative_in_layer(&raw)? else {
                continue;
            };
            let name = rel
                .file_name()
                .map(|n| n.as_bytes().to_vec())
                .unwrap_or_default();
            let parent = ensure_parent(dest, &rel)?;
            if name == b".wh..wh..opq" {
                set_xattr(&parent, OPAQUE_XATTR, b"y")?;
                continue;
            }
            if let Some(hidden) = name.strip_prefix(b".wh.") {
                let target = parent.join(std::ffi::OsStr::from_bytes(hidden));
                remove_any(&target)?;
                mknod(&target, SFlag::S_IFCHR, Mode::empty(), 0).map_err(io::Error::from)?;
                continue;
            }
            let path = dest.join(&rel);
            let header = entry.header().clone();
            let kind = header.entry_type();
            let mode = header.mode()? & 0o7777;
            let (uid, gid) = (header.uid()? as u32, header.gid()? as u32);
            let mtime = header.mtime().unwrap_or(0) as i64;
            if kind.is_dir() {
                match fs::symlink_metadata(&path) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        remove_any(&path)?;
                        fs::create_dir(&path)?;
                    }
                    Err(_) => fs::create_dir(&path)?,
                }
            } else {
                remove_any(&path)?;
                if kind.is_file() || kind == tar::EntryType::Continuous {
                    let mut out = fs::File::create(&path)?;
                    io::copy(&mut entry, &mut out)?;
                } else if kind.is_symlink() {
                    let target = entry.link_name()?.ok_or_else(|| {
                        invalid(format!("{}: symlink without target", raw.display()))
                    })?;
                    symlink(target, &path)?;
                } else if kind.is_hard_link() {
                    let target = entry.link_name()?.ok_or_else(|| {
                        invalid(format!("{}: hard link without target", raw.display()))
                    })?;
                    let target = relative_in_layer(&target)?
                        .ok_or_else(|| invalid(format!("{}: bad hard link", raw.display())))?;
                    ensure_parent(dest, &target)?;
                    fs::hard_link(dest.join(target), &path)?;
                    continue;
                } else if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
                    let flag = if kind.is_character_special() {
                        SFlag::S_IFCHR
                    } else if kind.is_block_special() {
                        SFlag::S_IFBLK
                    } else {
                        SFlag::S_IFIFO
                    };
                    let dev = nix::sys::stat::makedev(
                        u64::from(header.device_major()?.unwrap_or(0)),
                        u64::from(header.device_minor()?.unwrap_or(0)),
                    );
                    mknod(&path, flag, Mode::from_bits_truncate(mode), dev)
                        .map_err(io::Error::from)?;
                } else {
                    // PAX/GNU metadata entries are consumed by the tar reader;
                    // anything else has no place in a layer.
                    continue;
                }
            }
            std::os::unix::fs::lchown(&path, Some(uid), Some(gid))?;
            if !kind.is_symlink() {
                fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
            }
            if let Some(exts) = entry.pax_extensions()? {
                for ext in exts {
                    let ext = ext?;
                    let attr = ext.key().ok().and_then(|k| k.strip_prefix("SCHILY.xattr."));
                    // Overlay metadata comes from whiteout entries only: a
                    // layer must not smuggle in its own.
                    if let Some(attr) = attr.filter(|a| !a.contains(".overlay.")) {
                        let attr = CString::new(attr).map_err(io::Error::other)?;
                        set_xattr(&path, &attr, ext.value_bytes())?;
                    }
                }
            }
            if kind.is_dir() {
                dir_times.push((path, mtime));
            } else {
                set_mtime(&path, mtime, 0)?;
            }
        }
    }
    // Read to the end, so that the digest covers trailing padding too.
    io::copy(&mut hashing, &mut io::sink())?;
    for (dir, mtime) in dir_times.iter().rev() {
        set_mtime(dir, *mtime, 0)?;
    }
    Ok(format!("sha256:{}", hex::encode(hashing.hasher.finalize())))
}

/// Makes the parent directories of `rel` (mode 0755, root) and checks that
/// none of them is a symlink; returns the parent's path.
fn ensure_parent(dest: &Path, rel: &Path) -> io::Result<PathBuf> {
    let mut current = dest.to_path_buf();
    if let Some(parent) = rel.parent() {
        for c in parent.components() {
            current.push(c);
            match fs::symlink_metadata(&current) {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(invalid(format!(
                        "{}: path goes through a symlink",
                        rel.display()
                    )));
                }
                Ok(_) => {
                    return Err(invalid(format!(
                        "{}: parent is not a directory",
                        rel.display()
                    )));
                }
                Err(_) => fs::create_dir(&current)?,
            }
        }
    }
    Ok(current)
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
