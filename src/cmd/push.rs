//! `rbuild push`: an image from the store to its registry.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use rbuild_exporter::Compression;
use rbuild_registry::{ClientOptions, Reference};
use rbuild_solver::store_name;

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

/// The compression of a `--compression` / `compression=` value.
pub fn compression(name: &str, level: Option<i32>) -> anyhow::Result<Compression> {
    Ok(match name {
        "gzip" => Compression::Gzip(level.map_or(Ok(6), u32::try_from)?),
        "zstd" => Compression::Zstd(level.unwrap_or(3)),
        "uncompressed" => Compression::Uncompressed,
        other => {
            anyhow::bail!("unknown compression {other:?}: expected gzip, zstd or uncompressed")
        }
    })
}

/// Pushes the image's blobs and manifest.
pub fn run(root: &Path, args: PushArgs) -> anyhow::Result<ExitCode> {
    let session = Session::open(root, ClientOptions::default())?;
    let reference = Reference::parse(&args.image)?;
    let desc = session
        .store
        .resolve_tag(&store_name(&reference))?
        .with_context(|| format!("no such image: {}", args.image))?;
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
        println!("{digest}");
    } else {
        println!(
            "{}: digest: {digest}",
            reference.tag.as_deref().unwrap_or("latest")
        );
    }
    Ok(ExitCode::SUCCESS)
}
