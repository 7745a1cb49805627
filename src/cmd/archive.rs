//! `rbuild save` and `rbuild load`: docker archives, as `docker save` and
//! `docker load` write and read them (`load` also takes an OCI image
//! layout archive).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use rbuild_build::local;
use rbuild_cache::Store;

/// `rbuild save` arguments.
#[derive(Debug, Args)]
pub struct SaveArgs {
    /// The archive to write (default: stdout).
    #[arg(short, long)]
    output: Option<PathBuf>,

    /// Images to save.
    #[arg(required = true)]
    images: Vec<String>,
}

/// Writes the images into one docker archive.
pub fn save(root: &Path, args: SaveArgs) -> anyhow::Result<ExitCode> {
    let store = Store::open(root)?;
    let mut images = Vec::new();
    for image in &args.images {
        let found = local::find(&store, image)?;
        let name = found
            .name
            .with_context(|| format!("{image}: the image has no name to save it under"))?;
        images.push((name, found.manifest));
    }
    match &args.output {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("create {}", path.display()))?;
            rbuild_exporter::save_docker_archive(&store, &images, std::io::BufWriter::new(file))?;
        }
        None => rbuild_exporter::save_docker_archive(&store, &images, std::io::stdout().lock())?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `rbuild load` arguments.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The archive to read (default: stdin).
    #[arg(short, long)]
    input: Option<PathBuf>,
}

/// Reads a docker archive (or an OCI layout archive) into the store and
/// tags its images.
pub fn load(root: &Path, args: LoadArgs) -> anyhow::Result<ExitCode> {
    let store = Store::open(root)?;
    let loaded = match &args.input {
        Some(path) => {
            let file =
                std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
            rbuild_exporter::load_docker_archive(&store, std::io::BufReader::new(file))?
        }
        None => rbuild_exporter::load_docker_archive(&store, std::io::stdin().lock())?,
    };
    for (tags, desc) in loaded {
        if tags.is_empty() {
            // Found by its id until named or pruned, as Docker's `<none>`.
            store.keep_dangling(&desc)?;
            outln!("Loaded image ID: {}", desc.digest())?;
        }
        for t in tags {
            let name = local::store_name(&t)?;
            store.tag(&name, &desc)?;
            outln!("Loaded image: {name}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
