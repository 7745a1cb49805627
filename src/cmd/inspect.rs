//! `rbuild inspect`: an image's config and manifest as JSON, as
//! `docker image inspect` shows what an image is.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use rbuild_build::local;
use rbuild_cache::Store;
use rbuild_image::json::to_canonical_json_pretty;

/// `rbuild inspect` arguments.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Images to show.
    #[arg(required = true)]
    images: Vec<String>,
}

/// Prints a JSON array with one object per image: name, manifest digest,
/// manifest and image config.
pub fn run(root: &Path, args: InspectArgs) -> anyhow::Result<ExitCode> {
    let store = Store::open(root)?;
    let shown = args
        .images
        .iter()
        .map(|image| local::inspect(&store, image))
        .collect::<Result<Vec<_>, _>>()?;
    outln!("{}", to_canonical_json_pretty(&shown))?;
    Ok(ExitCode::SUCCESS)
}
