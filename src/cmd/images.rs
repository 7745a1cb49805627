//! `rbuild images`: the tagged images in the store.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use rbuild_build::local;
use rbuild_cache::Store;
use rbuild_image::manifest::short_id;
use rbuild_image::reference::split_store_name;

use crate::show::human_size;

/// `rbuild images` arguments.
#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Only show image ids (short, as `docker images -q`).
    #[arg(short, long)]
    quiet: bool,
}

/// Lists the images: repository, tag, image id, size (config and layers).
pub fn run(root: &Path, args: ImagesArgs) -> anyhow::Result<ExitCode> {
    let store = Store::open(root)?;
    if !args.quiet {
        outln!(
            "{:<40} {:<16} {:<14} {:>10}",
            "REPOSITORY",
            "TAG",
            "IMAGE ID",
            "SIZE"
        )?;
    }
    for image in local::list(&store)? {
        if args.quiet {
            outln!("{}", short_id(&image.id))?;
            continue;
        }
        let (repo, tag) = image
            .name
            .as_deref()
            .map_or(("<none>", "<none>"), split_store_name);
        outln!(
            "{repo:<40} {tag:<16} {:<14} {:>10}",
            short_id(&image.id),
            human_size(image.size)
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
