//! ADD of local tar archives: recognized by content (not by name), as
//! Docker does — plain tar, or tar compressed with gzip, bzip2, xz or zstd —
//! and unpacked into the destination directory by the store's one unpack
//! routine (names contained, size bounded, `.wh.` names plain files).

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

use rbuild_cache::{Limits, Whiteouts};

/// The compression of an archive, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

fn sniff(head: &[u8]) -> Compression {
    match head {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [b'B', b'Z', b'h', ..] => Compression::Bzip2,
        [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => Compression::Xz,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
        _ => Compression::None,
    }
}

/// A decompressing reader over `file`; what is spooled to disk on the
/// way is bounded by `limits`.
fn decompressed(
    mut file: File,
    compression: Compression,
    limits: Limits,
) -> io::Result<Box<dyn Read>> {
    file.seek(SeekFrom::Start(0))?;
    let file = BufReader::new(file);
    Ok(match compression {
        Compression::None => Box::new(file),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(file)),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(file)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(file)?),
        Compression::Xz => {
            // lzma-rs decodes into a writer: spool to an unnamed temp file.
            let mut out = Capped {
                inner: tempfile::tempfile()?,
                left: limits.max_bytes,
            };
            let mut input = file;
            lzma_rs::xz_decompress(&mut input, &mut out).map_err(|e| {
                let message = match out.left {
                    0 => rbuild_cache::UnpackError::TooLarge {
                        limit: limits.max_bytes,
                    }
                    .to_string(),
                    _ => e.to_string(),
                };
                io::Error::new(io::ErrorKind::InvalidData, message)
            })?;
            let mut out = out.inner;
            out.seek(SeekFrom::Start(0))?;
            Box::new(BufReader::new(out))
        }
    })
}

/// A writer that fails once `left` bytes were written.
struct Capped<W> {
    inner: W,
    left: u64,
}

impl<W: Write> Write for Capped<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() as u64 > self.left {
            self.left = 0;
            return Err(io::Error::new(io::ErrorKind::InvalidData, "limit reached"));
        }
        let n = self.inner.write(buf)?;
        self.left -= n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Whether a tar header starts `block`: the `ustar` magic, or a valid
/// header checksum for old-style (v7) archives.
fn is_tar_header(block: &[u8]) -> bool {
    if block.len() < 512 {
        return false;
    }
    if &block[257..262] == b"ustar" {
        return true;
    }
    let stored = std::str::from_utf8(&block[148..156])
        .ok()
        .map(|s| s.trim_matches(|c: char| c == '\0' || c == ' '))
        .and_then(|s| u32::from_str_radix(s, 8).ok());
    let sum: u32 = block[..512]
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*b)
            }
        })
        .sum();
    stored == Some(sum) && block[0] != 0
}

/// A local archive to extract: its tar stream and its bounds.
pub struct Archive {
    tar: Box<dyn Read>,
    limits: Limits,
}

/// Opens `path` as a tar archive when it is one (after decompression).
pub fn open(path: &Path) -> io::Result<Option<Archive>> {
    let mut file = File::open(path)?;
    let limits = Limits::for_compressed(file.metadata()?.len());
    let mut head = [0u8; 6];
    let n = file.read(&mut head)?;
    let compression = sniff(&head[..n]);
    let mut probe = decompressed(file.try_clone()?, compression, limits)?;
    let mut block = vec![0u8; 512];
    if probe.read_exact(&mut block).is_err() || !is_tar_header(&block) {
        return Ok(None);
    }
    Ok(Some(Archive {
        tar: decompressed(file, compression, limits)?,
        limits,
    }))
}

/// Unpacks `archive` into the directory `dest`, keeping modes, owners,
/// times and xattrs; entries that would land outside `dest` are refused.
pub fn unpack(archive: Archive, dest: &Path) -> Result<(), rbuild_cache::UnpackError> {
    rbuild_cache::unpack(archive.tar, dest, Whiteouts::Literal, archive.limits).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tar_bytes() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_path("dir/hello.txt").unwrap();
        h.set_size(5);
        h.set_mode(0o640);
        h.set_uid(7);
        h.set_gid(8);
        h.set_cksum();
        b.append(&h, &b"hello"[..]).unwrap();
        b.into_inner().unwrap()
    }

    fn check(bytes: &[u8]) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a");
        std::fs::write(&file, bytes).unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        unpack(open(&file).unwrap().expect("an archive"), &out).unwrap();
        assert_eq!(
            std::fs::read_to_string(out.join("dir/hello.txt")).unwrap(),
            "hello"
        );
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(out.join("dir/hello.txt")).unwrap();
        assert_eq!((meta.mode() & 0o777, meta.uid(), meta.gid()), (0o640, 7, 8));
    }

    #[test]
    fn unpacks_every_compression() {
        let tar = tar_bytes();
        check(&tar);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        check(&gz.finish().unwrap());
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        bz.write_all(&tar).unwrap();
        check(&bz.finish().unwrap());
        check(&zstd::encode_all(&tar[..], 3).unwrap());
        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut &tar[..], &mut xz).unwrap();
        check(&xz);
    }

    #[test]
    fn other_files_are_not_archives() {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in [
            ("text", &b"just text, not a tar at all"[..]),
            ("gz-text", &[0x1f, 0x8b, 0, 0][..]),
            ("empty", &[][..]),
        ] {
            let file = dir.path().join(name);
            std::fs::write(&file, bytes).unwrap();
            assert!(open(&file).unwrap().is_none(), "{name}");
        }
    }
}
