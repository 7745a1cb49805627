//! Foreign-platform RUN: a binary of another architecture runs through
//! qemu-user, which the kernel starts for it when binfmt_misc has a handler
//! for its ELF machine. The handler must carry the F ("fix binary") flag:
//! the kernel then opens the interpreter when it is registered, so it is
//! found from inside a sandbox whose root has no qemu (Debian's
//! `qemu-user-static` registers its handlers so, through `binfmt-support`).
//! Without one the build fails before it starts, naming the fix; no host
//! binary is ever run in a foreign image's place.

use std::path::Path;

/// Where the kernel's binfmt_misc handlers are.
pub const BINFMT_MISC: &str = "/proc/sys/fs/binfmt_misc";

/// Why RUN steps of an architecture cannot run here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BinfmtError {
    /// No qemu-user exists for the architecture.
    #[error("RUN for {arch}: rbuild knows no qemu-user emulator for this architecture")]
    Unknown {
        /// The OCI architecture (`mips`).
        arch: String,
    },
    /// binfmt_misc is not mounted.
    #[error(
        "RUN for {arch} needs qemu-user through binfmt_misc, which is not mounted at {BINFMT_MISC}: mount -t binfmt_misc binfmt_misc {BINFMT_MISC}, then apt-get install qemu-user-static binfmt-support (or update-binfmts --enable qemu-{qemu})"
    )]
    NotMounted {
        /// The OCI architecture.
        arch: String,
        /// qemu's name for it.
        qemu: &'static str,
    },
    /// No handler, or a disabled one, for the architecture.
    #[error(
        "RUN for {arch} needs qemu-{qemu} registered in binfmt_misc: apt-get install qemu-user-static binfmt-support (or update-binfmts --enable qemu-{qemu})"
    )]
    NotRegistered {
        /// The OCI architecture.
        arch: String,
        /// qemu's name for it.
        qemu: &'static str,
    },
    /// A handler without the F flag: its interpreter would be looked up
    /// inside the sandbox, where it is not.
    #[error(
        "RUN for {arch}: binfmt_misc's qemu-{qemu} handler lacks the F (fix binary) flag, so the sandbox cannot find its interpreter; register it with F: apt-get install qemu-user-static binfmt-support, whose handlers have it (flags now: {flags:?})"
    )]
    NoFixBinary {
        /// The OCI architecture.
        arch: String,
        /// qemu's name for it.
        qemu: &'static str,
        /// The handler's flags as the kernel shows them.
        flags: String,
    },
}

/// qemu-user's name for an OCI architecture.
fn qemu_name(arch: &str) -> Option<&'static str> {
    Some(match arch {
        "amd64" => "x86_64",
        "386" => "i386",
        "arm64" => "aarch64",
        "arm" => "arm",
        "ppc64le" => "ppc64le",
        "ppc64" => "ppc64",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "mips64le" => "mips64el",
        "mips64" => "mips64",
        "mipsle" => "mipsel",
        "mips" => "mips",
        "loong64" => "loongarch64",
        _ => return None,
    })
}

/// Whether the host (OCI architecture `host`) runs `arch` binaries itself.
fn native(host: &str, arch: &str) -> bool {
    host == arch || (host == "amd64" && arch == "386")
}

/// Checks that RUN steps for the OCI architecture `arch` can run on a host
/// of architecture `host` (both as OCI names them: `amd64`, `arm64`):
/// natively, or through a qemu handler of [`BINFMT_MISC`] with the F flag.
pub fn check_emulation(host: &str, arch: &str) -> Result<(), BinfmtError> {
    check_in(Path::new(BINFMT_MISC), host, arch)
}

/// [`check_emulation`] against the binfmt_misc directory `dir`.
fn check_in(dir: &Path, host: &str, arch: &str) -> Result<(), BinfmtError> {
    if native(host, arch) {
        return Ok(());
    }
    let arch_owned = arch.to_string();
    let qemu = qemu_name(arch).ok_or_else(|| BinfmtError::Unknown {
        arch: arch_owned.clone(),
    })?;
    if !dir.join("register").exists() {
        return Err(BinfmtError::NotMounted {
            arch: arch_owned,
            qemu,
        });
    }
    let not_registered = || BinfmtError::NotRegistered {
        arch: arch_owned.clone(),
        qemu,
    };
    let entry =
        std::fs::read_to_string(dir.join(format!("qemu-{qemu}"))).map_err(|_| not_registered())?;
    if entry.lines().next() != Some("enabled") {
        return Err(not_registered());
    }
    let flags = entry
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .unwrap_or_default()
        .trim()
        .to_string();
    if !flags.contains('F') {
        return Err(BinfmtError::NoFixBinary {
            arch: arch_owned,
            qemu,
            flags,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A binfmt_misc directory with `handlers` (name, contents).
    fn binfmt(handlers: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("register"), "").unwrap();
        for (name, text) in handlers {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    const AARCH64_F: &str =
        "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PF\noffset 0\n";

    #[test]
    fn the_host_architecture_needs_no_emulator() {
        let none = tempfile::tempdir().unwrap();
        assert_eq!(check_in(none.path(), "amd64", "amd64"), Ok(()));
        assert_eq!(check_in(none.path(), "amd64", "386"), Ok(()));
        assert_eq!(check_in(none.path(), "arm64", "arm64"), Ok(()));
    }

    #[test]
    fn a_registered_handler_with_the_f_flag_is_enough() {
        let dir = binfmt(&[("qemu-aarch64", AARCH64_F)]);
        assert_eq!(check_in(dir.path(), "amd64", "arm64"), Ok(()));
    }

    #[test]
    fn each_missing_piece_is_named_with_its_fix() {
        let unmounted = tempfile::tempdir().unwrap();
        let e = check_in(unmounted.path(), "amd64", "arm64").unwrap_err();
        assert!(matches!(e, BinfmtError::NotMounted { .. }), "{e}");
        assert!(e.to_string().contains("mount -t binfmt_misc"), "{e}");

        let empty = binfmt(&[]);
        let e = check_in(empty.path(), "amd64", "arm64").unwrap_err();
        assert!(
            e.to_string()
                .contains("apt-get install qemu-user-static binfmt-support"),
            "{e}"
        );
        assert!(e.to_string().contains("qemu-aarch64"), "{e}");

        let disabled = binfmt(&[("qemu-aarch64", &AARCH64_F.replace("enabled", "disabled"))]);
        let e = check_in(disabled.path(), "amd64", "arm64").unwrap_err();
        assert!(matches!(e, BinfmtError::NotRegistered { .. }), "{e}");

        let no_f = binfmt(&[("qemu-aarch64", &AARCH64_F.replace("PF", "P"))]);
        let e = check_in(no_f.path(), "amd64", "arm64").unwrap_err();
        assert!(matches!(e, BinfmtError::NoFixBinary { .. }), "{e}");
        assert!(e.to_string().contains("F (fix binary)"), "{e}");

        let e = check_in(empty.path(), "amd64", "sparc64").unwrap_err();
        assert!(matches!(e, BinfmtError::Unknown { .. }), "{e}");
    }

    #[test]
    fn other_handlers_do_not_stand_in() {
        let dir = binfmt(&[("qemu-arm", &AARCH64_F.replace("aarch64", "arm"))]);
        assert!(check_in(dir.path(), "amd64", "arm64").is_err());
        assert_eq!(check_in(dir.path(), "amd64", "arm"), Ok(()));
    }
}
