//! `rbuild tag`: another name for an image in the store.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use rbuild_build::local;
use rbuild_cache::Store;

/// `rbuild tag` arguments, as `docker tag`'s.
#[derive(Debug, Args)]
pub struct TagArgs {
    /// The image to name.
    source: String,
    /// The new name.
    target: String,
}

/// Points `target` at the manifest `source` names.
pub fn run(root: &Path, args: TagArgs) -> anyhow::Result<ExitCode> {
    let store = Store::open(root)?;
    let source = local::find(&store, &args.source)?;
    store.tag(&local::store_name(&args.target)?, &source.manifest)?;
    Ok(ExitCode::SUCCESS)
}
