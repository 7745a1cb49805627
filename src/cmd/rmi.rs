//! `rbuild rmi`: remove image names (the data goes with `prune`).

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use rbuild_build::local;
use rbuild_cache::Store;

/// `rbuild rmi` arguments, as `docker rmi`'s.
#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Accepted for compatibility (names are always removable).
    #[arg(short, long)]
    force: bool,

    /// Images to remove.
    #[arg(required = true)]
    images: Vec<String>,
}

/// Untags each image; fails if one does not exist.
pub fn run(root: &Path, args: RmiArgs) -> anyhow::Result<ExitCode> {
    let store = Store::open(root)?;
    let _ = args.force;
    let mut code = ExitCode::SUCCESS;
    for image in &args.images {
        let name = local::store_name(image)?;
        if store.untag(&name)? {
            outln!("Untagged: {name}")?;
        } else {
            eprintln!("error: no such image: {image}");
            code = ExitCode::FAILURE;
        }
    }
    Ok(code)
}
