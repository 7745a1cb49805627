//! `rbuild prune` and `rbuild du`: the store's disk use, and removing what
//! tagged images do not need (`--all`: the build cache too).

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use rbuild_cache::{PruneOptions, Store};

use super::images::human_size;

/// `rbuild prune` arguments (as `docker builder prune`'s).
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove the whole build cache, not only unreferenced data.
    #[arg(short, long)]
    all: bool,

    /// Do not ask for confirmation (rbuild never asks; accepted for compatibility).
    #[arg(short, long)]
    force: bool,

    /// Only show what would be removed.
    #[arg(long)]
    dry_run: bool,
}

/// Prunes and reports what went.
pub fn run(root: &Path, args: PruneArgs) -> anyhow::Result<ExitCode> {
    let store = Store::open(root)?;
    let _ = args.force;
    let r = store.prune(PruneOptions {
        all: args.all,
        dry_run: args.dry_run,
    })?;
    let verb = if args.dry_run {
        "Would reclaim"
    } else {
        "Total reclaimed space"
    };
    println!(
        "{verb}: {} ({} blobs, {} snapshots, {} cache records)",
        human_size(r.bytes),
        r.blobs,
        r.snapshots,
        r.records
    );
    Ok(ExitCode::SUCCESS)
}

/// `rbuild du` arguments.
#[derive(Debug, Args)]
pub struct DuArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Prints the store's disk use.
pub fn du(root: &Path, args: DuArgs) -> anyhow::Result<ExitCode> {
    let store = Store::open(root)?;
    let du = store.disk_usage()?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&du)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<16} {:>8} {:>12}", "TYPE", "COUNT", "SIZE");
    println!(
        "{:<16} {:>8} {:>12}",
        "blobs",
        du.blobs.0,
        human_size(du.blobs.1)
    );
    println!(
        "{:<16} {:>8} {:>12}",
        "snapshots",
        du.snapshots.0,
        human_size(du.snapshots.1)
    );
    println!(
        "{:<16} {:>8} {:>12}",
        "cache mounts",
        du.cache_mounts.0,
        human_size(du.cache_mounts.1)
    );
    println!("{:<16} {:>8} {:>12}", "cache records", du.records, "-");
    println!(
        "Reclaimable with `prune --all`: {}",
        human_size(du.reclaimable)
    );
    Ok(ExitCode::SUCCESS)
}
