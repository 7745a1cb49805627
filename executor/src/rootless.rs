//! Rootless mode. An unprivileged user cannot mount overlays or create
//! namespaces on the host, but can in a user namespace of its own in which
//! it is root. rbuild enters one at startup, before any thread exists:
//! the invoking user becomes root (uid and gid 0), and, when `/etc/subuid`
//! and `/etc/subgid` grant the user subordinate ids and `newuidmap` /
//! `newgidmap` are installed, ids 1… map to that range, so images whose
//! files belong to other users unpack as they are. Without subordinate ids
//! only root exists in the namespace: images owned by root work, others
//! fail with an error that says what to add.
//!
//! Inside, the sandbox differs where the kernel keeps privileges for the
//! initial namespace: /sys is bound read-only from the host instead of
//! mounted (sysfs needs a network namespace of ours), device nodes are
//! bound from the host's /dev instead of created, and supplementary groups
//! cannot be set when only one id is mapped.

use std::io::{Read, Write};
use std::process::Command;
use std::sync::OnceLock;

use crate::ExecError;

/// How rbuild's ids relate to the host's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdMapping {
    /// rbuild runs as root on the host: no user namespace.
    Host,
    /// Only the invoking user is mapped (to root).
    Single,
    /// The invoking user is root, and `count` subordinate ids follow.
    Subordinate {
        /// How many subordinate uids (and gids, the smaller of both) are mapped.
        count: u32,
    },
}

/// A range of subordinate ids: `start` on the host, `count` long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    start: u32,
    count: u32,
}

/// The first range granted to `name` or `id` in a subuid/subgid file.
fn subordinate_range(text: &str, name: &str, id: u32) -> Option<Range> {
    let id = id.to_string();
    text.lines().find_map(|line| {
        let mut parts = line.trim().split(':');
        let owner = parts.next()?;
        let start = parts.next()?.parse().ok()?;
        let count = parts.next()?.parse().ok()?;
        (owner == name || owner == id)
            .then_some(Range { start, count })
            .filter(|r| r.count > 0)
    })
}

/// Enters a new user namespace in which the calling user is root, unless
/// rbuild already runs as root. Must be called while the process has a
/// single thread (the kernel refuses `unshare(CLONE_NEWUSER)` otherwise).
pub fn enter_user_namespace() -> Result<IdMapping, ExecError> {
    let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    if nix::unistd::geteuid().is_root() {
        return Ok(IdMapping::Host);
    }
    let name = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_default();
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let uids = subordinate_range(&read("/etc/subuid"), &name, uid.as_raw());
    let gids = subordinate_range(&read("/etc/subgid"), &name, gid.as_raw());
    let tools = ["newuidmap", "newgidmap"].map(find_program);
    match (uids, gids, tools) {
        (Some(u), Some(g), [Some(newuidmap), Some(newgidmap)]) => {
            let maps = [(newuidmap, uid.as_raw(), u), (newgidmap, gid.as_raw(), g)];
            unshare_mapped_by_helper(&maps)?;
            Ok(IdMapping::Subordinate {
                count: u.count.min(g.count),
            })
        }
        _ => {
            unshare_user()?;
            let write = |file: &str, text: String| {
                std::fs::write(file, text)
                    .map_err(|e| ExecError::Setup(format!("rootless: write {file}: {e}")))
            };
            write("/proc/self/setgroups", "deny".into())?;
            write("/proc/self/uid_map", format!("0 {uid} 1"))?;
            write("/proc/self/gid_map", format!("0 {gid} 1"))?;
            Ok(IdMapping::Single)
        }
    }
}

fn unshare_user() -> Result<(), ExecError> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER).map_err(|e| {
        ExecError::Setup(format!(
            "rootless: cannot create a user namespace ({e}); check \
             /proc/sys/user/max_user_namespaces or run as root"
        ))
    })
}

/// Writes a multi-range map needs privilege in the parent namespace: a
/// child forked before `unshare` stays outside and runs the setuid
/// `newuidmap`/`newgidmap` on us once we are in the new namespace.
fn unshare_mapped_by_helper(maps: &[(std::path::PathBuf, u32, Range); 2]) -> Result<(), ExecError> {
    let (go_r, go_w) = nix::unistd::pipe().map_err(|e| ExecError::Setup(format!("pipe: {e}")))?;
    let target = std::process::id().to_string();
    // SAFETY: the process has one thread (a precondition of
    // `enter_user_namespace`), so the child may allocate and spawn.
    let fork =
        unsafe { nix::unistd::fork() }.map_err(|e| ExecError::Setup(format!("fork: {e}")))?;
    match fork {
        nix::unistd::ForkResult::Child => {
            drop(go_w);
            let mut byte = [0u8; 1];
            let ready = std::fs::File::from(go_r).read_exact(&mut byte).is_ok();
            let ok = ready
                && maps.iter().all(|(program, id, range)| {
                    Command::new(program)
                        .arg(&target)
                        .args(["0", &id.to_string(), "1", "1"])
                        .args([range.start.to_string(), range.count.to_string()])
                        .status()
                        .is_ok_and(|s| s.success())
                });
            // SAFETY: leaving the forked child without running the parent's
            // destructors or atexit handlers.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(go_r);
            let unshared = unshare_user();
            let mut go = std::fs::File::from(go_w);
            if unshared.is_ok() {
                let _ = go.write_all(b"g");
            }
            drop(go);
            let status = nix::sys::wait::waitpid(child, None)
                .map_err(|e| ExecError::Setup(format!("wait for newuidmap: {e}")))?;
            unshared?;
            if status != nix::sys::wait::WaitStatus::Exited(child, 0) {
                return Err(ExecError::Setup(String::from(
                    "rootless: newuidmap/newgidmap failed to map the subordinate ids \
                     of /etc/subuid and /etc/subgid",
                )));
            }
            Ok(())
        }
    }
}

fn find_program(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .chain(["/usr/bin".into(), "/usr/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Whether this process runs in a user namespace other than the host's
/// (whose uid map is the identity over every id).
pub(crate) fn in_user_namespace() -> bool {
    static ROOTLESS: OnceLock<bool> = OnceLock::new();
    *ROOTLESS.get_or_init(|| {
        std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|m| {
            let fields: Vec<&str> = m.split_whitespace().collect();
            fields != ["0", "0", "4294967295"]
        })
    })
}

/// Whether the group `gid` exists in this process's user namespace.
pub(crate) fn gid_mapped(gid: u32) -> bool {
    id_mapped("/proc/self/gid_map", gid)
}

/// Fails unless the user's uid and gid exist in this process's user
/// namespace, with advice when rootless mode lacks subordinate ids.
pub(crate) fn check_mapped(user: &crate::users::User) -> Result<(), ExecError> {
    if id_mapped("/proc/self/uid_map", user.uid) && gid_mapped(user.gid) {
        return Ok(());
    }
    Err(ExecError::Setup(format!(
        "user {}:{} is not mapped in rootless mode's user namespace: grant the \
         invoking user enough subordinate ids in /etc/subuid and /etc/subgid and \
         install newuidmap/newgidmap (Debian's uidmap package)",
        user.uid, user.gid
    )))
}

fn id_mapped(file: &str, id: u32) -> bool {
    let map = std::fs::read_to_string(file).unwrap_or_default();
    map.lines().any(|line| {
        let f: Vec<u64> = line
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        f.len() == 3 && (f[0]..f[0] + f[2]).contains(&u64::from(id))
    })
}

/// Whether `setgroups(2)` is allowed (not denied by a single-id map).
pub(crate) fn setgroups_allowed() -> bool {
    std::fs::read_to_string("/proc/self/setgroups").map_or(true, |s| s.trim() != "deny")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subordinate_ranges_by_name_or_id() {
        let text = "alice:100000:65536\n1001:200000:1000\nbob:300000:0\n";
        assert_eq!(
            subordinate_range(text, "alice", 1000),
            Some(Range {
                start: 100000,
                count: 65536
            })
        );
        assert_eq!(
            subordinate_range(text, "carol", 1001),
            Some(Range {
                start: 200000,
                count: 1000
            })
        );
        assert_eq!(subordinate_range(text, "bob", 1002), None, "empty range");
        assert_eq!(subordinate_range("garbage\n", "alice", 1000), None);
    }
}
