//! Layer compression as `--compression` and `compression=` name it, with
//! `compression-level` range-checked as BuildKit documents it: gzip 0-9,
//! zstd 0-22.

use rbuild_exporter::Compression;

/// The compression `name` (`gzip`, `zstd`, `uncompressed`) at `level`
/// (the default level when `None`).
pub fn compression(name: &str, level: Option<i32>) -> anyhow::Result<Compression> {
    let checked = |range: std::ops::RangeInclusive<i32>, default: i32| match level {
        None => Ok(default),
        Some(l) if range.contains(&l) => Ok(l),
        Some(l) => anyhow::bail!(
            "compression-level={l} is out of range for {name} ({}-{})",
            range.start(),
            range.end()
        ),
    };
    Ok(match name {
        "gzip" => Compression::Gzip(checked(0..=9, 6)?.unsigned_abs()),
        "zstd" => Compression::Zstd(checked(0..=22, 3)?),
        "uncompressed" => Compression::Uncompressed,
        other => {
            anyhow::bail!(
                "unknown compression {}: expected gzip, zstd or uncompressed",
                rbuild_frontend::quote::excerpt(other)
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_levels_are_range_checked() {
        assert_eq!(compression("gzip", None).unwrap(), Compression::Gzip(6));
        assert_eq!(compression("gzip", Some(9)).unwrap(), Compression::Gzip(9));
        assert_eq!(
            compression("zstd", Some(22)).unwrap(),
            Compression::Zstd(22)
        );
        for (name, level) in [("gzip", 10), ("gzip", -1), ("zstd", 23), ("zstd", -5)] {
            let e = compression(name, Some(level)).unwrap_err().to_string();
            assert!(e.contains("out of range"), "{e}");
        }
        assert!(compression("lz4", None).is_err());
    }
}
