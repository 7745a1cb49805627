//! `rbuild pull`: an image from its registry into the store, tagged.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use rbuild_build::Session;
use rbuild_image::Platform;
use rbuild_registry::{ClientOptions, Reference};

/// `rbuild pull` arguments, as `docker pull`'s.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// Print only the manifest digest.
    #[arg(short, long)]
    quiet: bool,

    /// The platform to pull from an index (`linux/arm64`, `arm64`; the
    /// host's by default).
    #[arg(long, value_name = "PLATFORM")]
    platform: Option<String>,

    /// The image (`busybox`, `host:port/repo:tag`, `repo@sha256:…`).
    image: String,
}

/// Pulls the manifest, config and all layer blobs, then tags the image.
pub fn run(root: &Path, args: PullArgs) -> anyhow::Result<ExitCode> {
    let session = Session::open(root, ClientOptions::default())?;
    let reference = Reference::parse(&args.image)?;
    let platform = match &args.platform {
        Some(p) => Platform::parse(p)?,
        None => Platform::host(),
    };
    let image = session
        .runtime
        .block_on(session.images.pull(&args.image, &platform))?;
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
