//! `--memory`, `--cpus` and `--pids-limit`, shared by `build` (for every
//! RUN) and `run`, read as `docker run` reads them.

use anyhow::{Context, bail};
use clap::Args;
use rbuild_executor::Limits;

/// The resource-limit flags.
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Memory limit: bytes, or a number with b, k, m or g (`512m`).
    #[arg(short = 'm', long, value_name = "BYTES")]
    memory: Option<String>,

    /// How many CPUs' worth of time (`1.5`).
    #[arg(long, value_name = "CPUS")]
    cpus: Option<f64>,

    /// Most processes and threads at once.
    #[arg(long = "pids-limit", value_name = "N")]
    pids_limit: Option<u64>,
}

impl LimitArgs {
    /// The limits (the sandbox checks `--cpus`).
    pub fn limits(&self) -> anyhow::Result<Limits> {
        Ok(Limits {
            memory: self.memory.as_deref().map(parse_bytes).transpose()?,
            cpus: self.cpus,
            pids: self.pids_limit,
        })
    }
}

/// `512m` → 536870912, as Docker's units (powers of 1024).
fn parse_bytes(value: &str) -> anyhow::Result<u64> {
    let lower = value.trim().to_ascii_lowercase();
    let digits = lower.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &lower[digits.len()..];
    let shift = match unit {
        "" | "b" => 0,
        "k" | "kb" => 10,
        "m" | "mb" => 20,
        "g" | "gb" => 30,
        _ => bail!("invalid --memory {value:?}: the unit must be b, k, m or g"),
    };
    let number: u64 = digits
        .parse()
        .with_context(|| format!("invalid --memory {value:?}: expected e.g. 512m"))?;
    number
        .checked_shl(shift)
        .filter(|b| *b >> shift == number && *b > 0)
        .with_context(|| format!("invalid --memory {value:?}: out of range"))
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn memory_sizes_read_as_dockers() {
        assert_eq!(parse_bytes("512m").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1G").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert_eq!(parse_bytes("64kb").unwrap(), 64 << 10);
        for bad in ["", "0", "12x", "m", "-1m", "99999999999999999g"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }
}
