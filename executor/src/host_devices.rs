//! The host's devices a privileged sandbox gets (`run --privileged`, `RUN
//! --security=insecure`): every character and block device under the
//! host's /dev, as Docker (containerd's `HostDevices`) lists them: the
//! walk skips the directories `pts`, `shm`, `fd`, `mqueue`, `.lxc`,
//! `.lxd-mounts` and `.udev`, the `console` node, symlinks and fifos.
//! Nodes the sandbox's /dev makes itself (its default devices and
//! `ptmx`, a link to its own devpts) are left to it.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// Directories of /dev that hold no devices of the host to share.
const SKIPPED_DIRS: &[&str] = &["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];

/// The device nodes under `dev`, as paths relative to it, sorted; those
/// named in `own` (at the top level) are left out. A directory that
/// cannot be read is skipped.
pub fn list(dev: &Path, own: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    walk(dev, Path::new(""), own, &mut out);
    out.sort();
    out
}

fn walk(dir: &Path, rel: &Path, own: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(text) = name.to_str() else {
            continue;
        };
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let top = rel.as_os_str().is_empty();
        if kind.is_dir() {
            if !SKIPPED_DIRS.contains(&text) {
                walk(&entry.path(), &rel.join(text), own, out);
            }
        } else if (kind.is_char_device() || kind.is_block_device())
            && text != "console"
            && !(top && own.contains(&text))
        {
            out.push(rel.join(text));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_listed_as_docker_lists_them() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let node = |p: &str, kind| {
            let path = d.join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            nix::sys::stat::mknod(
                &path,
                kind,
                nix::sys::stat::Mode::from_bits_truncate(0o600),
                nix::sys::stat::makedev(1, 3),
            )
            .expect("mknod (the tests run as root)");
        };
        use nix::sys::stat::SFlag;
        node("kvm", SFlag::S_IFCHR);
        node("loop0", SFlag::S_IFBLK);
        node("net/tun", SFlag::S_IFCHR);
        node("null", SFlag::S_IFCHR);
        node("console", SFlag::S_IFCHR);
        node("pts/0", SFlag::S_IFCHR);
        node("shm/x", SFlag::S_IFCHR);
        node("a-fifo", SFlag::S_IFIFO);
        std::os::unix::fs::symlink("/proc/self/fd", d.join("fd")).unwrap();
        std::os::unix::fs::symlink("kvm", d.join("kvm-link")).unwrap();
        std::fs::write(d.join("plain"), "").unwrap();
        let found = list(d, &["null", "ptmx"]);
        let expected: Vec<PathBuf> = ["kvm", "loop0", "net/tun"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(found, expected);
    }
}
