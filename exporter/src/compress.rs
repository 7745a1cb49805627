//! Layer blobs in another compression: gzip in parallel (independent
//! 4 MiB members, compressed on every core and concatenated, a valid
//! multi-member gzip stream that is byte-identical for the same input),
//! zstd, or none. Results are recorded in the store, so a layer is
//! compressed once.

use std::io::{Read, Write};

use rayon::prelude::*;
use rbuild_cache::{LayerRecord, Store};

use crate::{Compression, ExportError, io_error};

/// Size of the independently compressed gzip members.
const MEMBER: usize = 4 << 20;

/// Whether a layer media type is compressed, and how.
fn compression_of(media_type: &str) -> Option<&'static str> {
    if media_type.ends_with("gzip") {
        Some("gzip")
    } else if media_type.ends_with("zstd") {
        Some("zstd")
    } else {
        None
    }
}

fn kind(c: Compression) -> String {
    match c {
        Compression::Uncompressed => String::from("none"),
        Compression::Gzip(l) => format!("gzip-{l}"),
        Compression::Zstd(l) => format!("zstd-{l}"),
    }
}

/// How much of a member [`compresses`] tries, at its start and middle.
const SAMPLE: usize = 16 << 10;

/// Whether a member is worth compressing: deflate at its fastest level
/// saves at least 3% on samples from its start and middle. Random or already
/// compressed bytes are then stored (deflate's stored blocks) at memory
/// speed instead of costing a full compression pass for nothing. The
/// choice depends only on the bytes, so output stays deterministic.
fn compresses(member: &[u8]) -> bool {
    let middle = member.len() / 2;
    let windows = [
        &member[..member.len().min(SAMPLE)],
        &member[middle..member.len().min(middle + SAMPLE)],
    ];
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    let sampled: usize = windows.iter().map(|w| w.len()).sum();
    let packed = windows
        .iter()
        .try_for_each(|w| z.write_all(w))
        .and_then(|()| z.finish());
    packed.is_ok_and(|p| p.len() * 100 < sampled * 97)
}

/// gzip of `input` into `out`, members compressed in parallel.
pub fn parallel_gzip(mut input: impl Read, mut out: impl Write, level: u32) -> std::io::Result<()> {
    let batch = rayon::current_num_threads().max(1) * 2;
    loop {
        let mut chunks = Vec::with_capacity(batch);
        for _ in 0..batch {
            let mut buf = Vec::with_capacity(MEMBER);
            (&mut input).take(MEMBER as u64).read_to_end(&mut buf)?;
            if buf.is_empty() {
                break;
            }
            chunks.push(buf);
        }
        if chunks.is_empty() {
            break;
        }
        let last = chunks.len() < batch || chunks.last().is_some_and(|c| c.len() < MEMBER);
        let compressed: Vec<std::io::Result<Vec<u8>>> = chunks
            .par_iter()
            .map(|c| {
                let level = if compresses(c) {
                    flate2::Compression::new(level)
                } else {
                    flate2::Compression::none()
                };
                let mut gz = flate2::GzBuilder::new()
                    .mtime(0)
                    .operating_system(255)
                    .write(Vec::with_capacity(c.len() / 3), level);
                gz.write_all(c)?;
                gz.finish()
            })
            .collect();
        for c in compressed {
            out.write_all(&c?)?;
        }
        if last {
            break;
        }
    }
    out.flush()
}

/// `layer` with its blob compressed as `target` (the same record when it
/// already is, or when it is compressed otherwise and `target` is
/// `Uncompressed`).
pub fn recompress(
    store: &Store,
    layer: &LayerRecord,
    target: Compression,
    oci: bool,
) -> Result<LayerRecord, ExportError> {
    let current = compression_of(&layer.media_type);
    let wanted = match target {
        Compression::Uncompressed => None,
        Compression::Gzip(_) => Some("gzip"),
        Compression::Zstd(_) => Some("zstd"),
    };
    if current.is_some() || current == wanted {
        // Base layers are pushed as pulled, never re-encoded.
        return Ok(layer.clone());
    }
    let k = kind(target);
    if let Some(v) = store.variant(&layer.diff_id, &k)? {
        return Ok(v);
    }
    let what = || format!("compress layer {}", layer.diff_id);
    let input =
        std::fs::File::open(store.blob_path(&layer.blob.digest)).map_err(io_error(what()))?;
    let input = std::io::BufReader::with_capacity(1 << 20, input);
    let mut blob = store.blob_writer()?;
    match target {
        Compression::Gzip(level) => {
            parallel_gzip(input, &mut blob, level).map_err(io_error(what()))?
        }
        Compression::Zstd(level) => {
            let mut zs = zstd::Encoder::new(&mut blob, level).map_err(io_error(what()))?;
            zs.multithread(crate::ZSTD_WORKERS)
                .map_err(io_error(what()))?;
            let mut input = input;
            std::io::copy(&mut input, &mut zs).map_err(io_error(what()))?;
            zs.finish().map_err(io_error(what()))?;
        }
        Compression::Uncompressed => unreachable!("handled above"),
    }
    let info = blob.commit(None)?;
    let record = LayerRecord {
        snapshot: layer.snapshot.clone(),
        diff_id: layer.diff_id.clone(),
        blob: info,
        media_type: target.media_type(oci).to_string(),
        epoch: layer.epoch,
    };
    store.put_variant(&layer.diff_id, &k, &record)?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incompressible_members_are_stored() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let random: Vec<u8> = (0..MEMBER)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        assert!(!compresses(&random));
        assert!(compresses(&vec![b'a'; MEMBER]));
        let mut out = Vec::new();
        parallel_gzip(&random[..], &mut out, 6).unwrap();
        assert!(out.len() > random.len(), "stored, not squeezed");
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&out[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, random);
    }

    #[test]
    fn parallel_gzip_is_valid_and_deterministic() {
        let data: Vec<u8> = (0..(MEMBER * 3 + 12345)).map(|i| (i % 251) as u8).collect();
        let mut a = Vec::new();
        let mut b = Vec::new();
        parallel_gzip(&data[..], &mut a, 6).unwrap();
        parallel_gzip(&data[..], &mut b, 6).unwrap();
        assert_eq!(a, b);
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&a[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
        let mut empty = Vec::new();
        parallel_gzip(&[][..], &mut empty, 6).unwrap();
        assert!(empty.is_empty());
    }
}
