//! `rbuild inspect`: an image's config and manifest as JSON, as
//! `docker image inspect` shows what an image is.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use rbuild_cache::Store;
use rbuild_registry::Reference;
use rbuild_solver::store_name;
use serde_json::{Value, json};

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
    let mut out = Vec::new();
    for image in &args.images {
        let name = store_name(&Reference::parse(image)?);
        let desc = store
            .resolve_tag(&name)?
            .with_context(|| format!("no such image: {image}"))?;
        let digest = desc.digest().to_string();
        let manifest: Value = serde_json::from_slice(&store.read_blob(&digest)?)
            .with_context(|| format!("{image}: manifest {digest}"))?;
        let config_digest = manifest["config"]["digest"]
            .as_str()
            .with_context(|| format!("{image}: manifest without config"))?;
        let config: Value = serde_json::from_slice(&store.read_blob(config_digest)?)
            .with_context(|| format!("{image}: config {config_digest}"))?;
        out.push(json!({
            "Name": name,
            "Id": config_digest,
            "Digest": digest,
            "Manifest": manifest,
            "Config": config,
        }));
    }
    outln!("{}", serde_json::to_string_pretty(&out)?)?;
    Ok(ExitCode::SUCCESS)
}
