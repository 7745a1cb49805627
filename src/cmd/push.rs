//! `rbuild push`: an image from the store to its registry.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use rbuild_build::local;
use rbuild_exporter::Compression;
use rbuild_registry::{ClientOptions, Reference};

use super::session::Session;

/// `rbuild push` arguments, as `docker push`'s.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// Print only the pushed manifest's digest.
    #[arg(short, long)]
    quiet: bool,

    /// Layer compression for layers stored uncompressed: `gzip` (default),
    /// `zstd` or `uncompressed`.
    #[arg(long, default_value = "gzip", value_parser = ["gzip", "zstd", "uncompressed"])]
    compression: String,

    /// The image, named for its registry (`host:port/repo[:tag]`).
    image: String,
}

/// The compression of a `--compression` / `compression=` value, with its
/// `compression-level` range-checked as BuildKit documents it: gzip 0-9,
/// zstd 0-22.
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

/// Pushes the image's blobs and manifest.
pub fn run(root: &Path, args: PushArgs) -> anyhow::Result<ExitCode> {
    let session = Session::open(root, ClientOptions::default())?;
    let reference = Reference::parse(&args.image)?;
    let desc = local::find(&session.store, &args.image)?.manifest;
    let client = rbuild_registry::Client::new(ClientOptions::default())?;
    let digest = session.runtime.block_on(rbuild_exporter::push_image(
        &session.store,
        &desc,
        &reference,
        &client,
        compression(&args.compression, None)?,
        false,
    ))?;
    if args.quiet {
        outln!("{digest}")?;
    } else {
        outln!(
            "{}: digest: {digest}",
            reference.tag.as_deref().unwrap_or("latest")
        )?;
    }
    Ok(ExitCode::SUCCESS)
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
