//! `rbuild pull`: an image from its registry into the store, tagged.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use rbuild_build::Session;
use rbuild_registry::{ClientOptions, Reference};

/// `rbuild pull` arguments, as `docker pull`'s.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// Print only the manifest digest.
    #[arg(short, long)]
    quiet: bool,

    /// The image (`busybox`, `host:port/repo:tag`, `repo@sha256:…`).
    image: String,
}

/// Pulls the manifest, config and all layer blobs, then tags the image.
pub fn run(root: &Path, args: PullArgs) -> anyhow::Result<ExitCode> {
    let session = Session::open(root, ClientOptions::default())?;
    let reference = Reference::parse(&args.image)?;
    let image = session.runtime.block_on(
        session
            .images
            .pull(&args.image, &rbuild_build::host_platform()),
    )?;
    session
        .store
        .tag(&reference.store_name(), &image.manifest_descriptor()?)?;
    if args.quiet {
        outln!("{}", image.digest)?;
    } else {
        outln!("Digest: {}", image.digest)?;
        outln!("Status: downloaded {reference}")?;
    }
    Ok(ExitCode::SUCCESS)
}
