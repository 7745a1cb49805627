//! Platforms (`linux/amd64`, `linux/arm/v7`): parsed from the specifiers
//! users write and normalised as containerd's `platforms.Parse` followed by
//! `platforms.Normalize` does (BuildKit reads `--platform` and `FROM
//! --platform` that way), so that `arm64`, `linux/aarch64` and
//! `linux/arm64/v8` are one platform, `linux/arm64`; formatted as
//! `os/arch[/variant]` (containerd's `platforms.Format`).

use std::fmt;

/// A platform: OS, architecture and (for ARM) the variant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`, `arm`, …
    pub architecture: String,
    /// `v7`, … (`None` when the architecture has none or its default).
    pub variant: Option<String>,
}

/// Why a platform specifier is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid platform {specifier:?}: {reason}")]
pub struct PlatformError {
    /// The specifier as written.
    pub specifier: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Architectures containerd knows (`isKnownArch`), after normalising.
const KNOWN_ARCHITECTURES: &[&str] = &[
    "386",
    "amd64",
    "amd64p32",
    "arm",
    "armbe",
    "arm64",
    "arm64be",
    "ppc64",
    "ppc64le",
    "loong64",
    "mips",
    "mipsle",
    "mips64",
    "mips64le",
    "mips64p32",
    "mips64p32le",
    "ppc",
    "riscv",
    "riscv64",
    "s390",
    "s390x",
    "sparc",
    "sparc64",
    "wasm",
];

/// Operating systems containerd knows (`isKnownOS`).
const KNOWN_OSES: &[&str] = &[
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "hurd",
    "illumos",
    "ios",
    "js",
    "linux",
    "nacl",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "wasip1",
    "windows",
    "zos",
];

impl Platform {
    /// A platform of `os` and `architecture` with `variant` (empty for
    /// none), normalised.
    pub fn new(os: &str, architecture: &str, variant: &str) -> Self {
        let (architecture, variant) = normalize_arch(architecture, variant);
        Self {
            os: normalize_os(os),
            architecture,
            variant: (!variant.is_empty()).then_some(variant),
        }
    }

    /// Parses a specifier, `os`, `arch` or `os/arch[/variant]`, and
    /// normalises it: `arm64` → `linux/arm64`, `linux/arm` →
    /// `linux/arm/v7`, `linux/x86_64` → `linux/amd64`.
    pub fn parse(specifier: &str) -> Result<Self, PlatformError> {
        let error = |reason: &str| PlatformError {
            specifier: specifier.to_string(),
            reason: reason.to_string(),
        };
        let parts: Vec<&str> = specifier.split('/').collect();
        if parts.len() > 3 {
            return Err(error("expected os, arch or os/arch[/variant]"));
        }
        if parts.iter().any(|p| !valid_component(p)) {
            return Err(error(
                "every part must be letters, digits, '_', '.' or '-' and not empty",
            ));
        }
        let host = Self::host();
        match parts[..] {
            [one] => {
                let os = normalize_os(one);
                if KNOWN_OSES.contains(&os.as_str()) {
                    return Ok(Self { os, ..host });
                }
                let p = Self::new(&host.os, one, "");
                if KNOWN_ARCHITECTURES.contains(&p.architecture.as_str()) {
                    Ok(p)
                } else {
                    Err(error("unknown operating system or architecture"))
                }
            }
            [os, arch] | [os, arch, _] => {
                let os = normalize_os(os);
                if !KNOWN_OSES.contains(&os.as_str())
                    && KNOWN_ARCHITECTURES.contains(&normalize_arch(&os, "").0.as_str())
                {
                    // `arm/v7` would be OS `arm`: certainly a slip.
                    return Err(error(&format!(
                        "{os:?} is an architecture, not an operating system (write {}/{specifier})",
                        host.os
                    )));
                }
                Ok(Self::new(&os, arch, parts.get(2).copied().unwrap_or("")))
            }
            _ => Err(error("expected os, arch or os/arch[/variant]")),
        }
    }

    /// Parses a comma-separated list of specifiers (`--platform
    /// linux/amd64,linux/arm64`), dropping repeats, keeping the order.
    pub fn parse_list(list: &str) -> Result<Vec<Self>, PlatformError> {
        let mut out: Vec<Self> = Vec::new();
        for specifier in list.split(',').map(str::trim) {
            let p = Self::parse(specifier)?;
            if !out.contains(&p) {
                out.push(p);
            }
        }
        Ok(out)
    }

    /// The platform of this machine (`linux/amd64` on x86-64,
    /// `linux/arm64` on aarch64), normalised.
    pub fn host() -> Self {
        let arch = match std::env::consts::ARCH {
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Self::new(std::env::consts::OS, arch, "")
    }

    /// The variant, empty when there is none (as BuildKit's `*VARIANT` args).
    pub fn variant_str(&self) -> &str {
        self.variant.as_deref().unwrap_or("")
    }

    /// This platform as an OCI descriptor's platform.
    pub fn to_oci(&self) -> oci_spec::image::Platform {
        let mut p = oci_spec::image::Platform::default();
        p.set_os(oci_spec::image::Os::from(self.os.as_str()));
        p.set_architecture(oci_spec::image::Arch::from(self.architecture.as_str()));
        p.set_variant(self.variant.clone());
        p
    }

    /// The normalised platform an OCI descriptor names.
    pub fn from_oci(p: &oci_spec::image::Platform) -> Self {
        Self::new(
            &p.os().to_string(),
            &p.architecture().to_string(),
            p.variant().as_deref().unwrap_or(""),
        )
    }
}

impl fmt::Display for Platform {
    /// `os/arch[/variant]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Platform {
    type Err = PlatformError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// containerd's specifier component: `[A-Za-z0-9_.-]+`.
fn valid_component(part: &str) -> bool {
    !part.is_empty()
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// containerd's `normalizeOS`: lower case, `macos` → `darwin`.
fn normalize_os(os: &str) -> String {
    match os.to_ascii_lowercase().as_str() {
        "macos" => String::from("darwin"),
        other => other.to_string(),
    }
}

/// containerd's `normalizeArch`: the canonical architecture and variant.
fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let arch = arch.to_ascii_lowercase();
    let variant = variant.to_ascii_lowercase();
    let (a, v) = match arch.as_str() {
        "i386" => ("386", ""),
        "x86_64" | "x86-64" | "amd64" => ("amd64", if variant == "v1" { "" } else { &variant }),
        "aarch64" | "arm64" => (
            "arm64",
            match variant.as_str() {
                "8" | "v8" | "v8.0" => "",
                "9" | "9.0" | "v9.0" => "v9",
                other => other,
            },
        ),
        "armhf" => ("arm", "v7"),
        "armel" => ("arm", "v6"),
        "arm" => {
            return (
                String::from("arm"),
                match variant.as_str() {
                    "" | "7" => String::from("v7"),
                    "5" | "6" | "8" => format!("v{variant}"),
                    other => other.to_string(),
                },
            );
        }
        other => (other, variant.as_str()),
    };
    (a.to_string(), v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(s: &str) -> String {
        Platform::parse(s).unwrap().to_string()
    }

    #[test]
    fn specifiers_normalise_as_containerd_does() {
        assert_eq!(parsed("linux/amd64"), "linux/amd64");
        assert_eq!(parsed("amd64"), "linux/amd64");
        assert_eq!(parsed("x86_64"), "linux/amd64");
        assert_eq!(parsed("linux/amd64/v1"), "linux/amd64");
        assert_eq!(parsed("linux/amd64/v3"), "linux/amd64/v3");
        assert_eq!(parsed("arm64"), "linux/arm64");
        assert_eq!(parsed("aarch64"), "linux/arm64");
        assert_eq!(parsed("linux/arm64/v8"), "linux/arm64");
        assert_eq!(parsed("Linux/ARM64"), "linux/arm64");
        assert_eq!(parsed("linux/arm"), "linux/arm/v7");
        assert_eq!(parsed("linux/arm/7"), "linux/arm/v7");
        assert_eq!(parsed("linux/arm/v6"), "linux/arm/v6");
        assert_eq!(parsed("linux/armhf"), "linux/arm/v7");
        assert_eq!(parsed("linux/i386"), "linux/386");
        assert_eq!(parsed("windows/amd64"), "windows/amd64");
        assert_eq!(parsed("linux"), Platform::host().to_string());
    }

    #[test]
    fn malformed_specifiers_are_errors_that_say_why() {
        for bad in [
            "",
            "linux/",
            "/amd64",
            "a/b/c/d",
            "linux/amd 64",
            "nonsense",
            "arm/v7",
        ] {
            assert!(Platform::parse(bad).is_err(), "{bad:?} parsed");
        }
        let e = Platform::parse("arm64/v8").unwrap_err().to_string();
        assert!(e.contains("write linux/arm64/v8"), "{e}");
    }

    #[test]
    fn lists_keep_order_and_drop_repeats() {
        let list = Platform::parse_list("linux/amd64, arm64,linux/arm64/v8,linux/arm").unwrap();
        let names: Vec<String> = list.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["linux/amd64", "linux/arm64", "linux/arm/v7"]);
        assert!(Platform::parse_list("linux/amd64,").is_err());
    }

    #[test]
    fn formatting_round_trips() {
        for s in [
            "linux/amd64",
            "linux/arm64",
            "linux/arm/v7",
            "linux/riscv64",
        ] {
            let p = Platform::parse(s).unwrap();
            assert_eq!(p.to_string(), s);
            assert_eq!(Platform::parse(&p.to_string()).unwrap(), p);
            assert_eq!(Platform::from_oci(&p.to_oci()), p);
        }
    }

    #[test]
    fn the_host_is_a_normalised_linux_platform() {
        let host = Platform::host();
        assert_eq!(host.os, "linux");
        assert_eq!(Platform::parse(&host.to_string()).unwrap(), host);
        #[cfg(target_arch = "x86_64")]
        assert_eq!(host.to_string(), "linux/amd64");
        #[cfg(target_arch = "aarch64")]
        assert_eq!(host.to_string(), "linux/arm64");
    }
}
