//! Resource limits of a sandbox (`--memory`, `--cpus`, `--pids-limit`)
//! through cgroups, rootful only: a cgroup of its own per sandbox for each
//! controller a limit needs, on the cgroup v1 hierarchy of that controller
//! when the host mounts one (hybrid hosts), else on the v2 hierarchy when
//! it offers the controller. The sandbox's init joins them before it starts
//! the process (it writes `0` to their `cgroup.procs`, opened beforehand),
//! so everything the process starts is limited too. The cgroups are
//! removed when the sandbox has ended; ones a killed rbuild left behind are
//! removed the next time limits are used.
//!
//! Values as Docker writes them: memory as `memory.limit_in_bytes` (v1) or
//! `memory.max` (v2), with the swap allowance of `docker run --memory`
//! alone (as much swap as memory); CPUs as a CFS quota per 100 ms period;
//! pids as `pids.max`.

use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::ExecError;

/// The CFS period Docker uses, in microseconds.
const CPU_PERIOD_US: u64 = 100_000;

/// Resource limits; `None` leaves a resource unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    /// Memory in bytes.
    pub memory: Option<u64>,
    /// CPUs (fractions allowed, e.g. 1.5).
    pub cpus: Option<f64>,
    /// Processes and threads.
    pub pids: Option<u64>,
}

impl Limits {
    /// Whether any limit is set.
    pub fn any(&self) -> bool {
        self.memory.is_some() || self.cpus.is_some() || self.pids.is_some()
    }
}

/// One cgroup made for a sandbox, removed on drop.
#[derive(Debug)]
struct Group {
    dir: PathBuf,
    procs: File,
}

/// The cgroups of one sandbox, all with the same name.
#[derive(Debug, Default)]
pub(crate) struct Cgroups {
    name: String,
    groups: Vec<Group>,
}

impl Cgroups {
    /// Makes the cgroups that `limits` need, with the limits written.
    pub(crate) fn create(limits: &Limits) -> Result<Self, ExecError> {
        if !limits.any() {
            return Ok(Self::default());
        }
        if crate::rootless::in_user_namespace() {
            return Err(ExecError::Setup(String::from(
                "--memory, --cpus and --pids-limit need rootful rbuild: \
                 rootless mode cannot create cgroups",
            )));
        }
        let mut out = Self {
            name: format!(
                "rbuild-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ),
            groups: Vec::new(),
        };
        if let Some(bytes) = limits.memory {
            let group = out.add("memory")?;
            match group.version {
                Version::V1 => {
                    write(&group.dir, "memory.limit_in_bytes", &bytes.to_string())?;
                    let memsw = group.dir.join("memory.memsw.limit_in_bytes");
                    if memsw.exists() {
                        write(
                            &group.dir,
                            "memory.memsw.limit_in_bytes",
                            &(2 * bytes).to_string(),
                        )?;
                    }
                }
                Version::V2 => {
                    write(&group.dir, "memory.max", &bytes.to_string())?;
                    if group.dir.join("memory.swap.max").exists() {
                        write(&group.dir, "memory.swap.max", &bytes.to_string())?;
                    }
                }
            }
        }
        if let Some(cpus) = limits.cpus {
            if !(cpus > 0.0 && cpus.is_finite()) {
                return Err(ExecError::Setup(format!(
                    "--cpus {cpus}: expected a positive number"
                )));
            }
            let quota = ((cpus * CPU_PERIOD_US as f64).round() as u64).max(1000);
            let group = out.add("cpu")?;
            match group.version {
                Version::V1 => {
                    write(&group.dir, "cpu.cfs_period_us", &CPU_PERIOD_US.to_string())?;
                    write(&group.dir, "cpu.cfs_quota_us", &quota.to_string())?;
                }
                Version::V2 => write(&group.dir, "cpu.max", &format!("{quota} {CPU_PERIOD_US}"))?,
            }
        }
        if let Some(pids) = limits.pids {
            let group = out.add("pids")?;
            write(&group.dir, "pids.max", &pids.to_string())?;
        }
        Ok(out)
    }

    /// A new cgroup for `controller`, on the hierarchy that offers it.
    fn add(&mut self, controller: &str) -> Result<Placed, ExecError> {
        let (parent, version) = locate(controller)?;
        sweep(&parent);
        let dir = parent.join(&self.name);
        // Controllers on one hierarchy (all of v2, or v1's `cpu,cpuacct`)
        // share the cgroup.
        if let Some(g) = self.groups.iter().find(|g| g.dir == dir) {
            return Ok(Placed {
                dir: g.dir.clone(),
                version,
            });
        }
        std::fs::create_dir(&dir)
            .map_err(|e| ExecError::Setup(format!("create the cgroup {}: {e}", dir.display())))?;
        let procs = File::options()
            .write(true)
            .open(dir.join("cgroup.procs"))
            .map_err(|e| {
                let _ = std::fs::remove_dir(&dir);
                ExecError::Setup(format!("open {}/cgroup.procs: {e}", dir.display()))
            })?;
        self.groups.push(Group {
            dir: dir.clone(),
            procs,
        });
        Ok(Placed { dir, version })
    }

    /// The `cgroup.procs` files the sandbox's init writes `0` to.
    pub(crate) fn procs_fds(&self) -> Vec<RawFd> {
        self.groups.iter().map(|g| g.procs.as_raw_fd()).collect()
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        for g in &self.groups {
            remove(&g.dir);
        }
    }
}

/// Which cgroup version a hierarchy is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

/// A cgroup made for one controller.
struct Placed {
    dir: PathBuf,
    version: Version,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// The cgroup to create sandboxes' cgroups in for `controller`: ours in
/// its v1 hierarchy, or ours in the v2 hierarchy with the controller
/// enabled for children.
fn locate(controller: &str) -> Result<(PathBuf, Version), ExecError> {
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| ExecError::Setup(format!("read /proc/self/cgroup: {e}")))?;
    let mut unified = None;
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next(), parts.next());
        let (Some(controllers), Some(path)) = (controllers, path) else {
            continue;
        };
        if controllers.is_empty() {
            unified = Some(path.to_string());
        } else if controllers.split(',').any(|c| c == controller)
            && let Some(root) = v1_mount(controllers)
        {
            return Ok((below(&root, path), Version::V1));
        }
    }
    let root = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.join("cgroup.controllers").exists());
    if let (Some(root), Some(path)) = (root, unified) {
        let parent = below(root, &path);
        let offered =
            std::fs::read_to_string(parent.join("cgroup.controllers")).unwrap_or_default();
        if offered.split_whitespace().any(|c| c == controller) {
            write(&parent, "cgroup.subtree_control", &format!("+{controller}")).map_err(|e| {
                ExecError::Setup(format!(
                    "{e} (cgroup v2 allows controllers only below a cgroup without \
                     processes: run rbuild in a cgroup of its own, e.g. with \
                     `systemd-run --scope -p Delegate=yes`)"
                ))
            })?;
            return Ok((parent, Version::V2));
        }
    }
    Err(ExecError::Setup(format!(
        "no {controller} cgroup controller on this host (neither a v1 hierarchy \
         nor offered by cgroup v2)"
    )))
}

/// Where the v1 hierarchy of `controllers` (as /proc/self/cgroup names
/// them, e.g. `cpu,cpuacct`) is mounted.
fn v1_mount(controllers: &str) -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mounts.lines().find_map(|l| {
        let (head, tail) = l.split_once(" - ")?;
        let mut tail = tail.split_whitespace();
        if tail.next()? != "cgroup" {
            return None;
        }
        let options = tail.nth(1)?;
        let all = controllers
            .split(',')
            .all(|c| options.split(',').any(|o| o == c));
        if !all {
            return None;
        }
        Some(PathBuf::from(head.split_whitespace().nth(4)?))
    })
}

/// Our cgroup `path` below a hierarchy mounted at `root`; the mount's root
/// itself when the path is not visible there (a cgroup namespace, or our
/// own cgroup bound in as the root).
fn below(root: &Path, path: &str) -> PathBuf {
    let dir = root.join(path.trim_start_matches('/'));
    if dir.is_dir() {
        dir
    } else {
        root.to_path_buf()
    }
}

fn write(dir: &Path, file: &str, value: &str) -> Result<(), ExecError> {
    std::fs::write(dir.join(file), value)
        .map_err(|e| ExecError::Setup(format!("write {value} to {}/{file}: {e}", dir.display())))
}

/// Removes an empty cgroup, waiting briefly for the last processes of an
/// ended sandbox to be gone.
fn remove(dir: &Path) {
    for _ in 0..100 {
        match std::fs::remove_dir(dir) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            _ => return,
        }
    }
}

/// Removes the cgroups of rbuild processes that no longer run (left by a
/// killed rbuild) from `parent`.
fn sweep(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("rbuild-"))
            .and_then(|n| n.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir(entry.path());
        }
    }
}
