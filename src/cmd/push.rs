//! `rbuild push`: an image from the store to its registry.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use rbuild_build::{Session, local};
use rbuild_registry::{ClientOptions, Reference};

use crate::compression::compression;

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

/// Pushes the image's blobs and manifest.
pub fn run(root: &Path, args: PushArgs) -> anyhow::Result<ExitCode> {
    let session = Session::open(root, ClientOptions::default())?;
    let found = local::find(&session.store, &args.image)?;
    let reference = Reference::parse(&args.image)
        .ok()
        .filter(|r| r.digest.is_some() || found.name == Some(r.store_name()))
        .with_context(|| {
            format!(
                "{}: an image id names no repository to push to; tag it first (rbuild tag ID NAME)",
                args.image
            )
        })?;
    let desc = found.index.unwrap_or(found.manifest);
    let client = rbuild_registry::Client::new(ClientOptions::default())?;
    let digest = session.runtime.block_on(rbuild_exporter::push_image(
        &session.store,
        &desc,
        &reference,
        &client,
        compression(&args.compression, None)?,
        false,
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
