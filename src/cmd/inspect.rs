//! `rbuild inspect`: an image's config and manifest as JSON, as
//! `docker image inspect` shows what an image is.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use rbuild_build::local;
use rbuild_cache::Store;
use rbuild_image::ImageManifest;
use rbuild_image::json::to_canonical_json_pretty;
use rbuild_image::manifest::parse_manifest;
use serde::Serialize;

/// `rbuild inspect` arguments.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Images to show.
    #[arg(required = true)]
    images: Vec<String>,
}

/// What is shown of one image.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Shown {
    name: String,
    id: String,
    digest: String,
    manifest: ImageManifest,
    /// The config blob as stored, every field of it: the image model reads
    /// only the fields it knows, and a pulled image's config has more
    /// (Docker's `container_config`, `Hostname`, …) that inspect must show.
    config: serde_json::Value,
}

/// Prints a JSON array with one object per image: name, manifest digest,
/// manifest and image config.
pub fn run(root: &Path, args: InspectArgs) -> anyhow::Result<ExitCode> {
    let store = Store::open(root)?;
    let mut out = Vec::new();
    for image in &args.images {
        let found = local::find(&store, image)?;
        let digest = found.manifest.digest().to_string();
        let manifest = parse_manifest(
            &store.read_blob(&digest)?,
            &format!("{image}: manifest {digest}"),
        )?;
        let id = manifest.config().digest().to_string();
        let config = serde_json::from_slice(&store.read_blob(&id)?)
            .with_context(|| format!("{image}: config {id}"))?;
        out.push(Shown {
            name: found.name,
            id,
            digest,
            manifest,
            config,
        });
    }
    outln!("{}", to_canonical_json_pretty(&out))?;
    Ok(ExitCode::SUCCESS)
}
