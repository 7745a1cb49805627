//! `rbuild inspect`: an image's config and manifest as JSON, as
//! `docker image inspect` shows what an image is.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use rbuild_build::local;
use rbuild_cache::Store;
use rbuild_image::Platform;
use rbuild_image::json::to_canonical_json_pretty;

use crate::template::Template;

/// `rbuild inspect` arguments.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Print each image through a Go template (`{{.Id}}`,
    /// `{{.Config.Cmd}}`, `{{json .RootFS}}`) instead of the JSON array.
    #[arg(short = 'f', long = "format", value_name = "TEMPLATE")]
    format: Option<String>,

    /// Of a multi-platform image, this platform's (`linux/arm64`,
    /// `arm64`; the host's, else the first, by default), as `docker image
    /// inspect --platform`; a single-platform image must be for it.
    #[arg(long, value_name = "PLATFORM")]
    platform: Option<String>,

    /// Images to show.
    #[arg(required = true)]
    images: Vec<String>,
}

/// Prints a JSON array with one object per image, in `docker image
/// inspect`'s shape, or each image through `--format`.
pub fn run(root: &Path, args: InspectArgs) -> anyhow::Result<ExitCode> {
    let store = Store::open(root)?;
    let platform = args.platform.as_deref().map(Platform::parse).transpose()?;
    let shown = args
        .images
        .iter()
        .map(|image| local::inspect(&store, image, platform.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    match &args.format {
        Some(format) => {
            let template = Template::parse(format)?;
            for image in &shown {
                outln!("{}", template.render(&serde_json::to_value(image)?)?)?;
            }
        }
        None => outln!("{}", to_canonical_json_pretty(&shown))?,
    }
    Ok(ExitCode::SUCCESS)
}
