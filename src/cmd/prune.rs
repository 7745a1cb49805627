//! `rbuild prune` and `rbuild du`: the store's disk use, and removing what
//! tagged images do not need (`--all`: the build cache too).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use rbuild_cache::{PruneOptions, Store};
use rbuild_frontend::quote;

use crate::show::human_size;

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

    /// `until=DURATION` (e.g. `24h`, `90m`, `1h30m`): also remove cache
    /// records made longer ago than that.
    #[arg(long, value_name = "until=DURATION")]
    filter: Option<String>,

    /// Then remove the oldest cache records until the build cache takes at
    /// most this much (`10GB`, `512MB`, `1.5g`; 1024-based).
    #[arg(long, value_name = "SIZE")]
    keep_storage: Option<String>,

    /// Also remove the named volumes of `rbuild run` (as `docker system
    /// prune --volumes`).
    #[arg(long)]
    volumes: bool,
}

/// Longest `until=` accepted: a thousand years, far beyond any record's age.
const MAX_DURATION_SECS: i64 = 1_000 * 365 * 86_400;

/// `24h`, `90m`, `1h30m`, `45s` in seconds, at most [`MAX_DURATION_SECS`].
fn parse_duration(s: &str) -> anyhow::Result<i64> {
    let too_long = || {
        anyhow::anyhow!(
            "invalid duration {}: longer than 1000 years",
            quote::excerpt(s)
        )
    };
    let mut total = 0i64;
    let mut number = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: i64 = match number.parse() {
            Ok(n) => n,
            Err(e) if *e.kind() == std::num::IntErrorKind::PosOverflow => return Err(too_long()),
            Err(_) => bail!("invalid duration {}", quote::excerpt(s)),
        };
        number.clear();
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => bail!(
                "invalid duration {}: units are s, m, h, d",
                quote::excerpt(s)
            ),
        };
        total = n
            .checked_mul(unit)
            .and_then(|secs| total.checked_add(secs))
            .filter(|t| *t <= MAX_DURATION_SECS)
            .ok_or_else(too_long)?;
    }
    if !number.is_empty() {
        bail!(
            "invalid duration {}: a number needs a unit (s, m, h, d)",
            quote::excerpt(s)
        );
    }
    Ok(total)
}

/// `10GB`, `512MB`, `1.5g`, `100` (bytes) in bytes, 1024-based like Docker's.
fn parse_size(s: &str) -> anyhow::Result<u64> {
    let t = s.trim().to_ascii_lowercase();
    let digits = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let n: f64 = t[..digits]
        .parse()
        .with_context(|| format!("invalid size {s:?}"))?;
    let mult = match t[digits..].trim_end_matches('b').trim_end_matches('i') {
        "" => 1u64,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => bail!("invalid size {s:?}"),
    };
    Ok((n * mult as f64) as u64)
}

/// Prunes and reports what went.
pub fn run(root: &Path, args: PruneArgs) -> anyhow::Result<ExitCode> {
    let store = Store::open(root)?;
    let _ = args.force;
    let older_than = match &args.filter {
        Some(f) => {
            let d = f.strip_prefix("until=").with_context(|| {
                format!("invalid --filter {f:?}: only until=DURATION is supported")
            })?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            Some(now - parse_duration(d)?)
        }
        None => None,
    };
    let r = store.prune(PruneOptions {
        all: args.all,
        dry_run: args.dry_run,
        older_than,
        keep_bytes: args.keep_storage.as_deref().map(parse_size).transpose()?,
    })?;
    let verb = if args.dry_run {
        "Would reclaim"
    } else {
        "Total reclaimed space"
    };
    let (volumes, volume_bytes) = if args.volumes {
        store.remove_volumes(args.dry_run)?
    } else {
        (0, 0)
    };
    outln!(
        "{verb}: {} ({} blobs, {} snapshots, {} cache records, {volumes} volumes)",
        human_size(r.bytes + volume_bytes),
        r.blobs,
        r.snapshots,
        r.records
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `rbuild du` arguments.
#[derive(Debug, Args)]
pub struct DuArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,

    /// Also list every cache record: key, age, size of its own layer.
    #[arg(short, long)]
    verbose: bool,
}

/// Prints the store's disk use.
pub fn du(root: &Path, args: DuArgs) -> anyhow::Result<ExitCode> {
    let store = Store::open(root)?;
    let du = store.disk_usage()?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&du)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!("{:<16} {:>8} {:>12}", "TYPE", "COUNT", "SIZE")?;
    outln!(
        "{:<16} {:>8} {:>12}",
        "blobs",
        du.blobs.0,
        human_size(du.blobs.1)
    )?;
    outln!(
        "{:<16} {:>8} {:>12}",
        "snapshots",
        du.snapshots.0,
        human_size(du.snapshots.1)
    )?;
    outln!(
        "{:<16} {:>8} {:>12}",
        "cache mounts",
        du.cache_mounts.0,
        human_size(du.cache_mounts.1)
    )?;
    outln!("{:<16} {:>8} {:>12}", "cache records", du.records, "-")?;
    outln!(
        "{:<16} {:>8} {:>12}",
        "volumes",
        du.volumes.0,
        human_size(du.volumes.1)
    )?;
    outln!(
        "Reclaimable with `prune --all`: {}",
        human_size(du.reclaimable)
    )?;
    if args.verbose {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let ago = |t: Option<i64>| {
            t.map_or_else(
                || String::from("-"),
                |c| format!("{}s ago", (now - c).max(0)),
            )
        };
        outln!()?;
        outln!(
            "{:<16} {:>12} {:>12} {:>8} {:>10}",
            "CACHE KEY",
            "CREATED",
            "LAST USED",
            "LAYERS",
            "SIZE"
        )?;
        for r in store.record_usage()? {
            let key: String = r.key.as_str().chars().take(16).collect();
            outln!(
                "{key:<16} {:>12} {:>12} {:>8} {:>10}",
                ago(r.created),
                ago(r.last_used),
                r.layers,
                human_size(r.size)
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("1h30m").unwrap(), 5400);
        assert_eq!(parse_duration("2d").unwrap(), 172_800);
        assert!(parse_duration("10").is_err() && parse_duration("5x").is_err());
        for huge in [
            "9223372036854775807d",
            "99999999999999999999999s",
            "1000000d",
        ] {
            let e = parse_duration(huge).unwrap_err().to_string();
            assert!(e.contains("longer than 1000 years"), "{e}");
        }
        assert_eq!(parse_size("10GB").unwrap(), 10 << 30);
        assert_eq!(parse_size("512mb").unwrap(), 512 << 20);
        assert_eq!(parse_size("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("ten").is_err());
    }
}
