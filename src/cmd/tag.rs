//! `rbuild tag`: another name for an image in the store.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use rbuild_cache::Store;
use rbuild_registry::Reference;
use rbuild_solver::store_name;

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
    let source = store_name(&Reference::parse(&args.source)?);
    let target = store_name(&Reference::parse(&args.target)?);
    let manifest = store
        .resolve_tag(&source)?
        .with_context(|| format!("no such image: {}", args.source))?;
    store.tag(&target, &manifest)?;
    Ok(ExitCode::SUCCESS)
}
