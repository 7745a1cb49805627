//! Everything the sandbox's child side needs, computed and allocated
//! before the clone: C strings, pointer arrays, resolved ids. The child
//! then only walks this plan with raw system calls.

use std::ffi::{CString, c_int};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::users::User;
use crate::{ExecError, FileMount, RunSpec};
use crate::{Seccomp, caps, host_devices, masks, rootless, seccomp, sys};

/// Docker's default PATH, used when the environment has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The group of terminals in Docker's images.
const TTY_GID: u32 = 5;

/// The size of /dev/shm without `--shm-size`: 64 MiB, as Docker and
/// BuildKit.
const DEFAULT_SHM_SIZE: u64 = 64 << 20;

/// The device nodes of the sandbox's /dev, bound from the host's /dev.
/// They are the only usable devices: every other mount (the root overlay,
/// the /dev tmpfs, binds, layer mounts) is `nodev`, so a node COPYed in or
/// made with `mknod` (CAP_MKNOD stays, as in Docker) cannot be opened. A
/// bind works the same rootful and rootless and on cgroup v1 and v2, where
/// a device cgroup would need a v1 controller or an eBPF program. A
/// privileged sandbox gets every host device the same way (`host_devices`).
pub(crate) const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// The symlinks of the sandbox's /dev: (name, target).
pub(crate) const DEV_LINKS: &[(&str, &str)] = &[
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
    ("core", "/proc/kcore"),
];

/// Attributes of every bind of a host path.
const BIND_ATTRS: u64 = sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV;

/// What is mounted at a mountpoint inside the root.
pub enum MountKind {
    /// A fresh filesystem (`proc`, `tmpfs`, `devpts`, `sysfs`).
    Fs {
        fstype: CString,
        flags: libc::c_ulong,
        data: Option<CString>,
    },
    /// A host path, with `MOUNT_ATTR_*` attributes.
    Bind { source: CString, attrs: u64 },
    /// A masked path (see `masks`): an empty read-only tmpfs on a
    /// directory, the host's /dev/null on a file; skipped when missing.
    Mask,
    /// A path made read-only (see `masks`); skipped when missing.
    ReadOnly,
    /// An overlay of layers mounted at the host dir `at` first, then its
    /// `source` subpath bound.
    Overlay {
        data: CString,
        at: CString,
        source: CString,
        readonly: bool,
    },
}

/// One mount inside the root.
pub struct InnerMount {
    /// The mountpoint's path prefixes relative to the root (`a`, `a/b`),
    /// created when missing.
    pub prefixes: Vec<CString>,
    /// The mountpoint is a file (bind of a file), not a directory.
    pub is_file: bool,
    /// What to mount.
    pub kind: MountKind,
    /// What the error message calls it.
    pub what: CString,
}

/// A file the child writes on its tmpfs before binding it.
pub struct MadeFile {
    /// Its name in the files dir.
    pub name: CString,
    /// Content, permission bits and owner.
    pub content: Vec<u8>,
    pub mode: libc::mode_t,
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
}

/// What `--init` needs: this process's argv and environment memory areas
/// (start, end), which init overwrites.
pub struct InitPlan {
    /// argv's area, then the environment's.
    pub areas: [(usize, usize); 2],
}

/// The whole plan.
pub struct Plan {
    /// Every overlay's layer, upper and work dir, with the fd number the
    /// overlay options name it by (`/proc/self/fd/N`, so that mountinfo
    /// inside shows no store path and many layers fit in the options).
    /// The parent holds these fd numbers (`layer_fds`); the child reopens
    /// each path onto its number, so that the fd refers to a mount of the
    /// child's own mount namespace, as overlayfs requires.
    pub layer_dirs: Vec<(CString, c_int)>,
    /// The fds that hold those numbers.
    pub layer_fds: Vec<OwnedFd>,
    /// Where the made files are written (a tmpfs mounted by the child).
    pub files_dir: CString,
    /// The made files, named by index in `files_dir`.
    pub files: Vec<MadeFile>,
    /// Overlay mount options.
    pub overlay_data: CString,
    /// Where the overlay root is mounted.
    pub rootdir: CString,
    /// Mounts inside the root, in order.
    pub mounts: Vec<InnerMount>,
    /// Symlinks in /dev: (name, target).
    pub dev_links: Vec<(CString, CString)>,
    /// Hostname.
    pub hostname: CString,
    /// Bring up `lo` (own network namespace).
    pub loopback: bool,
    /// A prepared network namespace to join (an open nsfs fd).
    pub netns: Option<c_int>,
    /// The namespace's ready pipe, read before the exec: the process
    /// starts only once its network is up.
    pub net_ready: Option<c_int>,
    /// `cgroup.procs` files (open for writing) of the cgroups to join.
    pub cgroup_procs: Vec<c_int>,
    /// Resolved user.
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
    pub groups: Vec<libc::gid_t>,
    /// Set the supplementary groups (not allowed with a single-id map).
    pub set_groups: bool,
    /// Working directory prefixes (relative to the root), created when
    /// missing, and the absolute working directory.
    pub cwd_prefixes: Vec<CString>,
    pub cwd: CString,
    /// Candidate paths of the program (PATH lookup), tried in order.
    pub candidates: Vec<CString>,
    /// `exec: "NAME": executable file not found in $PATH`.
    pub not_found: CString,
    pub argv: Vec<CString>,
    pub env: Vec<CString>,
    /// Capabilities to drop from the bounding set.
    pub drop_caps: Vec<c_int>,
    /// The seccomp filter to install, if any.
    pub seccomp: Option<Arc<seccomp::Program>>,
    /// Set no_new_privs before the exec.
    pub no_new_privs: bool,
    /// Run under a small init (`rbuild run --init`) instead of as pid 1.
    pub init: Option<InitPlan>,
    /// The highest capability number of this kernel.
    pub last_cap: c_int,
    /// Make the root mount read-only once everything is mounted in it.
    pub readonly_root: bool,
    /// `setrlimit` calls before the exec: (resource, limit).
    pub rlimits: Vec<(c_int, libc::rlimit)>,
}

fn cstr(s: impl AsRef<[u8]>) -> Result<CString, ExecError> {
    CString::new(s.as_ref())
        .map_err(|_| ExecError::Setup(String::from("a string contains a NUL byte")))
}

fn cpath(p: &Path) -> Result<CString, ExecError> {
    cstr(p.as_os_str().as_bytes())
}

/// `a/b/c` → [`a`, `a/b`, `a/b/c`] (relative, without `.`/`..`).
pub fn prefixes(path: &str) -> Result<Vec<CString>, ExecError> {
    let mut out = Vec::new();
    let mut acc = String::new();
    for c in path.split('/').filter(|c| !c.is_empty() && *c != ".") {
        if c == ".." {
            return Err(ExecError::Setup(format!("{path}: '..' is not allowed")));
        }
        if !acc.is_empty() {
            acc.push('/');
        }
        acc.push_str(c);
        out.push(cstr(&acc)?);
    }
    Ok(out)
}

fn fs_mount(
    path: &str,
    fstype: &str,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<InnerMount, ExecError> {
    Ok(InnerMount {
        prefixes: prefixes(path)?,
        is_file: false,
        kind: MountKind::Fs {
            fstype: cstr(fstype)?,
            flags,
            data: data.map(cstr).transpose()?,
        },
        what: cstr(format!("mount {fstype} on /{path}"))?,
    })
}

fn bind_mount(source: &Path, target: &str, attrs: u64) -> Result<InnerMount, ExecError> {
    let is_file = !source.is_dir();
    if !source.exists() {
        return Err(ExecError::Setup(format!(
            "bind source {} does not exist",
            source.display()
        )));
    }
    Ok(InnerMount {
        prefixes: prefixes(target)?,
        is_file,
        kind: MountKind::Bind {
            source: cpath(source)?,
            attrs,
        },
        what: cstr(format!("bind {} on {target}", source.display()))?,
    })
}

/// The paths a plan mounts on, relative to the root: stubs the sandbox may
/// have created in the upper dir. `files` are the files bound (as for
/// [`build`]).
pub fn mountpoints(spec: &RunSpec, files: &[FileMount]) -> Vec<String> {
    let mut out: Vec<String> = ["proc", "dev", "sys"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let targets = spec
        .mounts
        .iter()
        .map(|m| m.target.as_str())
        .chain(spec.tmpfs.iter().map(|t| t.target.as_str()))
        .chain(spec.layer_mounts.iter().map(|m| m.target.as_str()))
        .chain(files.iter().map(|f| f.target.as_str()));
    out.extend(targets.map(|t| t.trim_start_matches('/').to_string()));
    out
}

/// The host directories a sandbox uses.
pub struct Dirs<'a> {
    /// The mount point of the root overlay.
    pub root: &'a Path,
    /// Its upper dir.
    pub upper: &'a Path,
    /// Its work dir.
    pub work: &'a Path,
    /// An empty dir standing in for no lower layer.
    pub empty: &'a Path,
    /// A private temp dir for layer mounts.
    pub scratch: &'a Path,
    /// An empty dir the child mounts a tmpfs on for the made files.
    pub files: &'a Path,
}

/// Open layer dirs: the fds and (path, fd number) pairs.
#[derive(Default)]
struct LayerFds {
    fds: Vec<OwnedFd>,
    dirs: Vec<(CString, c_int)>,
}

/// Opens `dir` as an O_PATH fd kept in `fds`; its `/proc/self/fd/N` name.
fn fd_name(dir: &Path, fds: &mut LayerFds) -> Result<PathBuf, ExecError> {
    let fd = nix::fcntl::open(
        dir,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| ExecError::Setup(format!("open {}: {e}", dir.display())))?;
    let name = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    fds.dirs.push((cpath(dir)?, fd.as_raw_fd()));
    fds.fds.push(fd);
    Ok(name)
}

/// The overlay options of layers (bottom first) and an optional upper and
/// work dir, every dir named by an fd kept in `fds`.
fn fd_overlay_options(
    lowers: &[&Path],
    upper: Option<(&Path, &Path)>,
    fds: &mut LayerFds,
) -> Result<String, ExecError> {
    let lowers: Vec<PathBuf> = distinct_layers(lowers)
        .iter()
        .map(|l| fd_name(l, fds))
        .collect::<Result<_, _>>()?;
    let lower_refs: Vec<&Path> = lowers.iter().map(PathBuf::as_path).collect();
    let upper = match upper {
        Some((u, w)) => Some((fd_name(u, fds)?, fd_name(w, fds)?)),
        None => None,
    };
    overlay_options(
        &lower_refs,
        upper.as_ref().map(|(u, w)| (u.as_path(), w.as_path())),
    )
}

/// Layers (bottom first) with each one named once, at its topmost place.
/// An image may hold one layer twice (two COPY steps that wrote the same
/// files share a snapshot), and overlayfs refuses a lower dir named twice
/// (ELOOP); the lower occurrence adds nothing that the upper one does not
/// cover again, so dropping it leaves the same tree.
fn distinct_layers<'a>(lowers: &[&'a Path]) -> Vec<&'a Path> {
    let mut out: Vec<&Path> = Vec::with_capacity(lowers.len());
    for (i, l) in lowers.iter().enumerate() {
        if !lowers[i + 1..].contains(l) {
            out.push(l);
        }
    }
    out
}

/// The overlay options for layers (bottom first), with an optional upper.
pub(crate) fn overlay_options(
    lowers: &[&Path],
    upper: Option<(&Path, &Path)>,
) -> Result<String, ExecError> {
    let lowers = distinct_layers(lowers);
    for l in &lowers {
        let s = l.display().to_string();
        if s.contains(',') || s.contains(':') {
            return Err(ExecError::Setup(format!(
                "layer path {s} contains ',' or ':'"
            )));
        }
    }
    let names: Vec<String> = lowers
        .iter()
        .rev()
        .map(|l| l.display().to_string())
        .collect();
    let mut data = format!("lowerdir={}", names.join(":"));
    if let Some((u, w)) = upper {
        data.push_str(&format!(
            ",upperdir={},workdir={}",
            u.display(),
            w.display()
        ));
    }
    // `userxattr`: overlay metadata (opaque dirs) in `user.overlay.*`,
    // which works as root and in a user namespace alike. `volatile`: the
    // unmount does not sync the whole upper filesystem, which made every
    // RUN wait for the writeback of all the store's dirty data (a 260 MB
    // COPY before it: 1.2 s → 0.4 s). An upper dir is either thrown away
    // or becomes a snapshot, which is not synced either: what survives a
    // killed build is what the kernel holds, as for every other file.
    data.push_str(",redirect_dir=nofollow,metacopy=off,userxattr,volatile");
    Ok(data)
}

/// Builds the plan of `spec`. `files` are the files to make and bind
/// (/etc/hosts, /etc/resolv.conf, /etc/hostname, secrets).
pub fn build(
    spec: &RunSpec,
    user: &User,
    dirs: &Dirs<'_>,
    files: &[FileMount],
) -> Result<Plan, ExecError> {
    let (root, upper, work, empty) = (dirs.root, dirs.upper, dirs.work, dirs.empty);
    let lowers: Vec<&Path> = if spec.rootfs.lowers.is_empty() {
        vec![empty]
    } else {
        spec.rootfs.lowers.iter().map(PathBuf::as_path).collect()
    };
    let mut layer_fds = LayerFds::default();
    let overlay_data = fd_overlay_options(&lowers, Some((upper, work)), &mut layer_fds)?;

    let mut mounts = vec![
        fs_mount(
            "proc",
            "proc",
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            None,
        )?,
        fs_mount(
            "dev",
            "tmpfs",
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_STRICTATIME,
            Some("mode=755,size=65536k"),
        )?,
        fs_mount(
            "dev/pts",
            "devpts",
            libc::MS_NOSUID | libc::MS_NOEXEC,
            // The tty group, when it exists (not with a single-id map).
            Some(if rootless::gid_mapped(TTY_GID) {
                "newinstance,ptmxmode=0666,mode=0620,gid=5"
            } else {
                "newinstance,ptmxmode=0666,mode=0620"
            }),
        )?,
        fs_mount(
            "dev/shm",
            "tmpfs",
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            Some(&format!(
                "mode=1777,size={}",
                spec.shm_size.unwrap_or(DEFAULT_SHM_SIZE)
            )),
        )?,
    ];
    let insecure = spec.security.insecure;
    let dev_attrs = sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NOEXEC;
    for name in DEVICES {
        let host = Path::new("/dev").join(name);
        mounts.push(bind_mount(&host, &format!("/dev/{name}"), dev_attrs)?);
    }
    if insecure {
        // As Docker's --privileged: the host's devices too.
        let own: Vec<&str> = DEVICES
            .iter()
            .copied()
            .chain(DEV_LINKS.iter().map(|(name, _)| *name))
            .collect();
        for rel in host_devices::list(Path::new("/dev"), &own) {
            let host = Path::new("/dev").join(&rel);
            let inner = format!("/dev/{}", rel.display());
            mounts.push(bind_mount(&host, &inner, dev_attrs)?);
        }
    }
    let sys_ro = if insecure { 0 } else { libc::MS_RDONLY };
    if rootless::in_user_namespace() {
        // No sysfs without a network namespace of ours: bind the host's.
        mounts.push(bind_mount(
            Path::new("/sys"),
            "/sys",
            BIND_ATTRS | sys::MOUNT_ATTR_NOEXEC | sys::MOUNT_ATTR_RDONLY,
        )?);
    } else {
        mounts.push(fs_mount(
            "sys",
            "sysfs",
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | sys_ro,
            None,
        )?);
    }
    let (masked, read_only) = if insecure {
        (&[][..], &[][..])
    } else {
        (masks::MASKED, masks::READ_ONLY)
    };
    for path in masked {
        mounts.push(InnerMount {
            prefixes: prefixes(path)?,
            is_file: false,
            kind: MountKind::Mask,
            what: cstr(format!("mask /{path}"))?,
        });
    }
    for path in read_only {
        mounts.push(InnerMount {
            prefixes: prefixes(path)?,
            is_file: false,
            kind: MountKind::ReadOnly,
            what: cstr(format!("make /{path} read-only"))?,
        });
    }
    let mut made = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let name = i.to_string();
        let ro = if f.readonly {
            sys::MOUNT_ATTR_RDONLY
        } else {
            0
        };
        mounts.push(InnerMount {
            prefixes: prefixes(&f.target)?,
            is_file: true,
            kind: MountKind::Bind {
                source: cpath(&dirs.files.join(&name))?,
                attrs: BIND_ATTRS | sys::MOUNT_ATTR_NOEXEC | ro,
            },
            what: cstr(format!("bind a file on {}", f.target))?,
        });
        made.push(MadeFile {
            name: cstr(name)?,
            content: f.content.clone(),
            mode: f.mode,
            uid: f.uid,
            gid: f.gid,
        });
    }
    for m in &spec.mounts {
        if !m.target.starts_with('/') {
            return Err(ExecError::Setup(format!(
                "mount target {} is not absolute",
                m.target
            )));
        }
        let ro = if m.readonly {
            sys::MOUNT_ATTR_RDONLY
        } else {
            0
        };
        mounts.push(bind_mount(&m.source, &m.target, BIND_ATTRS | ro)?);
    }
    for t in &spec.tmpfs {
        let data = t.data();
        mounts.push(fs_mount(
            t.target.trim_start_matches('/'),
            "tmpfs",
            libc::MS_NOSUID | libc::MS_NODEV,
            Some(&data),
        )?);
    }
    for (i, m) in spec.layer_mounts.iter().enumerate() {
        let at = dirs.scratch.join(format!("layers-{i}"));
        std::fs::create_dir(&at)
            .map_err(|e| ExecError::Setup(format!("create {}: {e}", at.display())))?;
        let mut lowers: Vec<&Path> = m.lowers.iter().map(PathBuf::as_path).collect();
        if lowers.len() < 2 && !m.readwrite {
            // Without an upper dir overlayfs wants two lower dirs (a
            // one-layer image gave EINVAL): the empty one goes below.
            lowers.insert(0, empty);
        } else if lowers.is_empty() {
            lowers.push(empty);
        }
        let upper_dirs = if m.readwrite {
            let (u, w) = (
                dirs.scratch.join(format!("layers-{i}.upper")),
                dirs.scratch.join(format!("layers-{i}.work")),
            );
            for d in [&u, &w] {
                std::fs::create_dir(d)
                    .map_err(|e| ExecError::Setup(format!("create {}: {e}", d.display())))?;
            }
            Some((u, w))
        } else {
            None
        };
        let data = fd_overlay_options(
            &lowers,
            upper_dirs.as_ref().map(|(u, w)| (u.as_path(), w.as_path())),
            &mut layer_fds,
        )?;
        let source = at.join(m.source.trim_start_matches('/'));
        mounts.push(InnerMount {
            prefixes: prefixes(&m.target)?,
            is_file: false,
            kind: MountKind::Overlay {
                data: cstr(data)?,
                at: cpath(&at)?,
                source: cpath(&source)?,
                readonly: !m.readwrite,
            },
            what: cstr(format!("mount layers on {}", m.target))?,
        });
    }

    let dev_links = DEV_LINKS
        .iter()
        .map(|(a, b)| Ok((cstr(a)?, cstr(b)?)))
        .collect::<Result<_, ExecError>>()?;

    let mut env = spec.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home));
    }
    let path_var = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH)
        .to_string();
    let program = spec
        .args
        .first()
        .ok_or_else(|| ExecError::Setup(String::from("no command to run")))?;
    let candidates: Vec<String> = if program.contains('/') {
        vec![program.clone()]
    } else {
        path_var
            .split(':')
            .map(|d| if d.is_empty() { "." } else { d })
            .map(|d| format!("{}/{program}", d.trim_end_matches('/')))
            .collect()
    };
    let cwd = if spec.cwd.is_empty() {
        "/"
    } else {
        spec.cwd.as_str()
    };
    if !cwd.starts_with('/') {
        return Err(ExecError::Setup(format!(
            "working directory {cwd} is not absolute"
        )));
    }
    let kept =
        caps::kept(&spec.security.cap_add, &spec.security.cap_drop).map_err(ExecError::Setup)?;
    let kept_names: Vec<&str> = kept.iter().map(|(name, _)| *name).collect();
    let drop_caps = if insecure {
        Vec::new()
    } else {
        (0..=caps::last())
            .filter(|c| !kept.iter().any(|(_, n)| n == c))
            .collect()
    };
    let default_caps = kept_names == caps::default_names();
    let seccomp = match (&spec.security.seccomp, insecure) {
        (_, true) | (Seccomp::Unconfined, _) => None,
        (Seccomp::Default, false) if default_caps => Some(seccomp::default_program()?),
        (Seccomp::Default, false) => Some(seccomp::program(None, &kept_names)?),
        (Seccomp::Profile(text), false) => Some(seccomp::program(Some(text), &kept_names)?),
    };
    Ok(Plan {
        layer_dirs: layer_fds.dirs,
        layer_fds: layer_fds.fds,
        files_dir: cpath(dirs.files)?,
        files: made,
        overlay_data: cstr(overlay_data)?,
        rootdir: cpath(root)?,
        mounts,
        dev_links,
        hostname: cstr(&spec.hostname)?,
        loopback: spec.network == crate::Network::None,
        netns: None,
        net_ready: None,
        cgroup_procs: Vec::new(),
        uid: user.uid,
        gid: user.gid,
        groups: user.groups.clone(),
        set_groups: rootless::setgroups_allowed(),
        cwd_prefixes: prefixes(cwd)?,
        cwd: cstr(cwd)?,
        candidates: candidates.iter().map(cstr).collect::<Result<_, _>>()?,
        not_found: cstr(format!(
            "exec: \"{program}\": executable file not found in $PATH"
        ))?,
        argv: spec.args.iter().map(cstr).collect::<Result<_, _>>()?,
        env: env.iter().map(cstr).collect::<Result<_, _>>()?,
        drop_caps,
        seccomp,
        no_new_privs: spec.security.no_new_privileges,
        init: if spec.init {
            Some(
                crate::init::memory_areas().ok_or_else(|| {
                    ExecError::Setup(String::from("read /proc/self/stat for --init"))
                })?,
            )
        } else {
            None
        },
        last_cap: caps::last(),
        readonly_root: spec.readonly_rootfs,
        rlimits: spec
            .ulimits
            .iter()
            .map(|u| (u.resource, u.rlimit()))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layer_named_twice_is_kept_at_its_topmost_place() {
        let (a, b, c) = (Path::new("/a"), Path::new("/b"), Path::new("/c"));
        assert_eq!(distinct_layers(&[a, b, a, c]), [b, a, c]);
        assert_eq!(distinct_layers(&[a, a]), [a]);
        let options = overlay_options(&[a, b, a], None).unwrap();
        assert!(options.starts_with("lowerdir=/a:/b,"), "{options}");
    }
}
