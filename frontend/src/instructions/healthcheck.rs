//! `HEALTHCHECK [--interval=… --timeout=… --start-period=…
//! --start-interval=… --retries=…] NONE | CMD …`.

use crate::ast::Instruction;
use crate::quote;

use super::flags::Flags;

/// A typed HEALTHCHECK; durations in nanoseconds, 0 when not given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthcheckCommand {
    /// `["NONE"]`, `["CMD", …]` or `["CMD-SHELL", "…"]`.
    pub test: Vec<String>,
    /// `--interval`.
    pub interval: u64,
    /// `--timeout`.
    pub timeout: u64,
    /// `--start-period`.
    pub start_period: u64,
    /// `--start-interval`.
    pub start_interval: u64,
    /// `--retries`.
    pub retries: u64,
}

impl HealthcheckCommand {
    /// Types a HEALTHCHECK instruction.
    pub fn parse(ins: &Instruction) -> Result<Self, String> {
        let flags = Flags::parse(
            ins,
            &[
                "interval",
                "timeout",
                "start-period",
                "start-interval",
                "retries",
            ],
        )?;
        let kind = ins
            .args
            .first()
            .map(|s| s.to_ascii_uppercase())
            .unwrap_or_default();
        let test = match kind.as_str() {
            "NONE" => vec![String::from("NONE")],
            "CMD" if ins.args.len() > 1 => {
                if ins.json {
                    std::iter::once(String::from("CMD"))
                        .chain(ins.args[1..].iter().cloned())
                        .collect()
                } else {
                    vec![String::from("CMD-SHELL"), ins.args[1].clone()]
                }
            }
            _ => {
                return Err(String::from(
                    "HEALTHCHECK must be NONE or CMD followed by a command",
                ));
            }
        };
        let dur = |name: &str| -> Result<u64, String> {
            match flags.string(name) {
                None => Ok(0),
                Some(v) => {
                    duration(v).ok_or_else(|| format!("invalid --{name}={}", quote::line(v)))
                }
            }
        };
        Ok(Self {
            test,
            interval: dur("interval")?,
            timeout: dur("timeout")?,
            start_period: dur("start-period")?,
            start_interval: dur("start-interval")?,
            retries: match flags.string("retries") {
                None => 0,
                Some(v) => v
                    .parse()
                    .map_err(|_| format!("invalid --retries={}", quote::excerpt(v)))?,
            },
        })
    }
}

/// Docker duration strings (`30s`, `1m30s`, `500ms`) in nanoseconds.
fn duration(s: &str) -> Option<u64> {
    let mut total: f64 = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += n * mult;
    }
    Some(total as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_add_up_their_units() {
        assert_eq!(duration("1m30s"), Some(90_000_000_000));
        assert_eq!(duration("500ms"), Some(500_000_000));
        assert_eq!(duration("1.5h"), Some(5_400_000_000_000));
        assert_eq!(duration(""), None);
        assert_eq!(duration("10"), None);
        assert_eq!(duration("3d"), None);
    }
}
