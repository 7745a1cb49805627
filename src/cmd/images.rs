//! `rbuild images`: the tagged images in the store.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use rbuild_cache::Store;
use serde::Deserialize;

use super::run::short_id;

/// `rbuild images` arguments.
#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Only show image digests.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Deserialize)]
struct Manifest {
    config: Blob,
    layers: Vec<Blob>,
}

#[derive(Deserialize)]
struct Blob {
    size: u64,
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
        let manifest: Manifest = serde_json::from_slice(&store.read_blob(&digest)?)?;
        let size = manifest.config.size + manifest.layers.iter().map(|l| l.size).sum::<u64>();
        let (repo, tag) = split_tag(&name);
        outln!(
            "{repo:<40} {tag:<16} {:<14} {:>10}",
            short_id(&digest),
            human_size(size)
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `name[:tag]` → (name, tag), `latest` when there is none. A colon that
/// belongs to a registry port is not a tag separator.
fn split_tag(name: &str) -> (&str, &str) {
    match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (name, "latest"),
    }
}

/// Sizes as Docker prints them (decimal units).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.3}{}", UNITS[unit]).replace(".000", "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_tags_not_ports() {
        assert_eq!(split_tag("hello"), ("hello", "latest"));
        assert_eq!(split_tag("hello:v2"), ("hello", "v2"));
        assert_eq!(
            split_tag("127.0.0.1:5000/busybox"),
            ("127.0.0.1:5000/busybox", "latest")
        );
        assert_eq!(
            split_tag("127.0.0.1:5000/busybox:1"),
            ("127.0.0.1:5000/busybox", "1")
        );
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_500_000), "1.500MB");
        assert_eq!(human_size(2_000_000_000), "2GB");
    }
}
