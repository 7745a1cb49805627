//! `rbuild history` (also `rbuild image history`): an image's steps,
//! newest first, as `docker history` lists them.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use rbuild_build::local;
use rbuild_build::time::{now_secs, parse_rfc3339};
use rbuild_cache::Store;
use rbuild_image::Platform;

use crate::show::{human_since, human_size};

/// `rbuild history` arguments.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Show whole instructions rather than 45 characters.
    #[arg(long)]
    no_trunc: bool,

    /// Of a multi-platform image, this platform's (`linux/arm64`,
    /// `arm64`; the host's, else the first, by default), as `docker
    /// history --platform`; a single-platform image must be for it.
    #[arg(long, value_name = "PLATFORM")]
    platform: Option<String>,

    /// The image.
    image: String,
}

/// Lists the steps: created, created by, size, comment.
pub fn run(root: &Path, args: HistoryArgs) -> anyhow::Result<ExitCode> {
    let store = Store::open(root)?;
    let now = now_secs();
    let platform = args.platform.as_deref().map(Platform::parse).transpose()?;
    let steps = local::history(&store, &args.image, platform.as_ref())?;
    outln!(
        "{:<16} {:<46} {:>10}   COMMENT",
        "CREATED",
        "CREATED BY",
        "SIZE"
    )?;
    for step in steps {
        let created = step
            .created
            .as_deref()
            .and_then(parse_rfc3339)
            .map_or_else(|| String::from("N/A"), |c| human_since(now - c));
        let by: String = match args.no_trunc || step.created_by.chars().count() <= 45 {
            true => step.created_by.clone(),
            false => step.created_by.chars().take(44).chain(['…']).collect(),
        };
        outln!(
            "{created:<16} {by:<46} {:>10}   {}",
            human_size(step.size),
            step.comment
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
