//! `rbuild rmi`: remove image names (the data goes with `prune`).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use rbuild_build::local;
use rbuild_cache::Store;
use rbuild_image::reference::split_store_name;

/// `rbuild rmi` arguments, as `docker rmi`'s.
#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Remove every name of an image given by id even when the names
    /// span several repositories.
    #[arg(short, long)]
    force: bool,

    /// Images to remove.
    #[arg(required = true)]
    images: Vec<String>,
}

/// Untags each image; fails if one does not exist. A name removes that
/// name; an id or digest removes every name of the image, as `docker rmi`
/// does (with `--force` when they span several repositories).
pub fn run(root: &Path, args: RmiArgs) -> anyhow::Result<ExitCode> {
    let store = Store::open(root)?;
    let mut code = ExitCode::SUCCESS;
    for image in &args.images {
        match names_to_remove(&store, image, args.force) {
            Ok(names) => {
                for name in names {
                    store.untag(&name)?;
                    outln!("Untagged: {name}")?;
                }
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                code = ExitCode::FAILURE;
            }
        }
    }
    Ok(code)
}

/// The names `rbuild rmi TEXT` removes.
fn names_to_remove(store: &Store, text: &str, force: bool) -> anyhow::Result<Vec<String>> {
    let found = local::find(store, text)?;
    if let Ok(name) = local::store_name(text)
        && found.names.contains(&name)
    {
        return Ok(vec![name]);
    }
    let repositories: BTreeSet<&str> = found.names.iter().map(|n| split_store_name(n).0).collect();
    if repositories.len() > 1 && !force {
        bail!(
            "conflict: unable to delete {text} (must be forced): the image is referenced in multiple repositories ({})",
            found.names.join(", ")
        );
    }
    Ok(found.names)
}
