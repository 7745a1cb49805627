//! `rbuild run`'s mount and host options as `docker run` writes them:
//! `--tmpfs PATH[:OPTIONS]`, `--mount type=bind|tmpfs|volume,…`,
//! `--add-host NAME:IP` and sizes such as `64m`.

use rbuild_executor::{BindMount, HostAddress, HostEntry, TmpfsMount};

/// A run option that is not as Docker writes it.
#[derive(Debug, thiserror::Error)]
#[error("invalid {flag} {value:?}: {reason}")]
pub struct OptionError {
    /// The flag (`--tmpfs`, `--mount`, `--add-host`, `--shm-size`).
    pub flag: &'static str,
    /// The value given.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

fn error(flag: &'static str, value: &str, reason: impl Into<String>) -> OptionError {
    OptionError {
        flag,
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// A `--mount` value.
#[derive(Debug, Clone, PartialEq)]
pub enum MountOption {
    /// `type=bind`: a host path.
    Bind(BindMount),
    /// `type=tmpfs`: an empty tmpfs.
    Tmpfs(TmpfsMount),
    /// `type=volume`: a named volume of the store (`source` is its name).
    Volume {
        /// The volume's name.
        name: String,
        /// Absolute path inside the sandbox.
        target: String,
        /// Mount read-only.
        readonly: bool,
    },
}

/// `64m` → 67108864: bytes, or a number with b, k, m or g (powers of
/// 1024, as Docker's units), for `flag`.
pub fn parse_size(flag: &'static str, value: &str) -> Result<u64, OptionError> {
    let lower = value.trim().to_ascii_lowercase();
    let digits = lower.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let shift = match &lower[digits.len()..] {
        "" | "b" => 0,
        "k" | "kb" => 10,
        "m" | "mb" => 20,
        "g" | "gb" => 30,
        _ => return Err(error(flag, value, "the unit must be b, k, m or g")),
    };
    let number: u64 = digits
        .parse()
        .map_err(|_| error(flag, value, "expected a size such as 64m"))?;
    number
        .checked_shl(shift)
        .filter(|b| *b >> shift == number && *b > 0)
        .ok_or_else(|| error(flag, value, "out of range"))
}

/// `--tmpfs PATH[:OPTIONS]`: options `size=` and the modes every tmpfs
/// has here (`rw`, `nosuid`, `nodev`).
pub fn parse_tmpfs(value: &str) -> Result<TmpfsMount, OptionError> {
    let (target, options) = value.split_once(':').unwrap_or((value, ""));
    if !target.starts_with('/') {
        return Err(error("--tmpfs", value, "the path must be absolute"));
    }
    let mut size = None;
    for option in options.split(',').filter(|o| !o.is_empty()) {
        match option.split_once('=') {
            Some(("size", s)) => size = Some(parse_size("--tmpfs", s)?),
            None if matches!(option, "rw" | "nosuid" | "nodev") => {}
            _ => {
                return Err(error(
                    "--tmpfs",
                    value,
                    format!("option {option:?} is not supported (size=, rw, nosuid, nodev are)"),
                ));
            }
        }
    }
    Ok(TmpfsMount {
        target: target.to_string(),
        size,
    })
}

/// `--mount type=bind|tmpfs|volume,source=…,target=…[,readonly]
/// [,tmpfs-size=…]`, as `docker run --mount` (`src`, `dst`,
/// `destination` and `ro` are the same keys). A bind's host path must
/// exist.
pub fn parse_mount(value: &str) -> Result<MountOption, OptionError> {
    let fail = |reason: String| error("--mount", value, reason);
    let (mut kind, mut source, mut target, mut readonly, mut size) =
        ("volume", None, None, false, None);
    for field in value.split(',') {
        let (key, val) = field
            .split_once('=')
            .map_or((field, None), |(k, v)| (k, Some(v)));
        match (key, val) {
            ("type", Some(t)) => kind = t,
            ("source" | "src", Some(s)) => source = Some(s),
            ("target" | "dst" | "destination", Some(t)) => target = Some(t),
            ("readonly" | "ro", None | Some("true" | "1")) => readonly = true,
            ("readonly" | "ro", Some("false" | "0")) => readonly = false,
            ("tmpfs-size", Some(s)) => size = Some(parse_size("--mount", s)?),
            _ => return Err(fail(format!("unknown field {field:?}"))),
        }
    }
    let target = target
        .filter(|t| t.starts_with('/'))
        .ok_or_else(|| fail(String::from("an absolute target= is required")))?
        .to_string();
    if size.is_some() && kind != "tmpfs" {
        return Err(fail(String::from("tmpfs-size is for type=tmpfs")));
    }
    match kind {
        "bind" => {
            let host = source.ok_or_else(|| fail(String::from("source= is required")))?;
            let source = std::fs::canonicalize(host).map_err(|e| fail(format!("{host}: {e}")))?;
            Ok(MountOption::Bind(BindMount {
                source,
                target,
                readonly,
            }))
        }
        "tmpfs" if source.is_some() => Err(fail(String::from("a tmpfs has no source"))),
        "tmpfs" => Ok(MountOption::Tmpfs(TmpfsMount { target, size })),
        "volume" => {
            let name = source.ok_or_else(|| {
                fail(String::from(
                    "source= (the volume's name) is required: rbuild makes no anonymous volumes",
                ))
            })?;
            Ok(MountOption::Volume {
                name: name.to_string(),
                target,
                readonly,
            })
        }
        other => Err(fail(format!(
            "type {other:?} is not supported (bind, tmpfs, volume are)"
        ))),
    }
}

/// `--add-host NAME:IP` (or `NAME=IP`; an IPv6 address may follow the
/// first `:` as it is, or in brackets; `host-gateway` for the address the
/// sandbox reaches the host at, as Docker's).
pub fn parse_add_host(value: &str) -> Result<HostEntry, OptionError> {
    let (name, ip) = value
        .split_once('=')
        .or_else(|| value.split_once(':'))
        .ok_or_else(|| error("--add-host", value, "expected NAME:IP"))?;
    if name.is_empty() {
        return Err(error("--add-host", value, "the name is empty"));
    }
    let ip: HostAddress = ip.parse().map_err(|_| {
        error(
            "--add-host",
            value,
            format!("{ip:?} is not an IP address (nor host-gateway)"),
        )
    })?;
    Ok(HostEntry {
        name: name.to_string(),
        ip,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_dockers() {
        assert_eq!(parse_size("--shm-size", "64m").unwrap(), 64 << 20);
        assert_eq!(parse_size("--shm-size", "2G").unwrap(), 2 << 30);
        for bad in ["", "0", "12x", "-1m"] {
            assert!(parse_size("--shm-size", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tmpfs_takes_a_path_and_a_size() {
        let t = parse_tmpfs("/scratch:rw,size=1m").unwrap();
        assert_eq!((t.target.as_str(), t.size), ("/scratch", Some(1 << 20)));
        assert_eq!(parse_tmpfs("/t").unwrap().size, None);
        assert!(parse_tmpfs("rel").is_err());
        assert!(parse_tmpfs("/t:exec").is_err());
    }

    #[test]
    fn mounts_read_as_dockers() {
        let MountOption::Bind(b) = parse_mount("type=bind,src=/tmp,dst=/mnt,ro").unwrap() else {
            panic!("a bind")
        };
        assert_eq!((b.target.as_str(), b.readonly), ("/mnt", true));
        assert_eq!(
            parse_mount("type=tmpfs,target=/t,tmpfs-size=2k").unwrap(),
            MountOption::Tmpfs(TmpfsMount {
                target: "/t".into(),
                size: Some(2048)
            })
        );
        assert_eq!(
            parse_mount("source=data,target=/data").unwrap(),
            MountOption::Volume {
                name: "data".into(),
                target: "/data".into(),
                readonly: false
            }
        );
        for bad in [
            "type=bind,target=/x",
            "type=bind,src=/nonexistent-path,dst=/x",
            "type=tmpfs",
            "type=volume,target=/x",
            "type=npipe,src=a,target=/x",
            "type=bind,src=/tmp,dst=/x,propagation=shared",
        ] {
            assert!(parse_mount(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hosts_take_v4_and_v6_addresses() {
        let h = parse_add_host("db:10.1.2.3").unwrap();
        assert_eq!(
            (h.name.as_str(), h.ip.to_string().as_str()),
            ("db", "10.1.2.3")
        );
        assert_eq!(parse_add_host("v6:::1").unwrap().ip.to_string(), "::1");
        assert_eq!(
            parse_add_host("v6=[fe80::1]").unwrap().ip.to_string(),
            "fe80::1"
        );
        assert_eq!(
            parse_add_host("gw:host-gateway").unwrap().ip,
            HostAddress::HostGateway
        );
        assert!(parse_add_host("db").is_err());
        assert!(parse_add_host("db:nope").is_err());
    }
}
