//! `rbuild images`: the tagged images in the store.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use rbuild_cache::Store;
use rbuild_image::manifest::{parse_manifest, short_id};
use rbuild_image::reference::split_store_name;

use crate::show::human_size;

/// `rbuild images` arguments.
#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Only show image digests.
    #[arg(short, long)]
    quiet: bool,
}

/// Lists the images: repository, tag, digest, size (config and layers).
pub fn run(root: &Path, args: ImagesArgs) -> anyhow::Result<ExitCode> {
    let store = Store::open(root)?;
    let images = store.images()?;
    if !args.quiet {
        outln!(
            "{:<40} {:<16} {:<14} {:>10}",
            "REPOSITORY",
            "TAG",
            "IMAGE ID",
            "SIZE"
        )?;
    }
    for (name, desc) in images {
        let digest = desc.digest().to_string();
        if args.quiet {
            outln!("{digest}")?;
            continue;
        }
        let manifest = parse_manifest(&store.read_blob(&digest)?, &format!("{name}: manifest"))?;
        let size =
            manifest.config().size() + manifest.layers().iter().map(|l| l.size()).sum::<u64>();
        let (repo, tag) = split_store_name(&name);
        outln!(
            "{repo:<40} {tag:<16} {:<14} {:>10}",
            short_id(&digest),
            human_size(size)
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
