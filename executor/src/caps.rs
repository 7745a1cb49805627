//! Linux capabilities by name and number: Docker's default set, the one a
//! RUN step and `rbuild run` keep in their bounding set.

use std::ffi::c_int;

/// The 14 capabilities a Docker container keeps by default (their numbers
/// are in [`ALL`]).
const DEFAULT: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_RAW",
    "CAP_SYS_CHROOT",
    "CAP_MKNOD",
    "CAP_AUDIT_WRITE",
    "CAP_SETFCAP",
];

/// The highest capability number this kernel knows.
pub fn last() -> c_int {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// The names of the default capabilities.
pub fn default_names() -> Vec<&'static str> {
    DEFAULT.to_vec()
}

/// Every capability Linux defines, by name and number (as `--cap-add`
/// names them).
const ALL: &[(&str, c_int)] = &[
    ("CAP_CHOWN", 0),
    ("CAP_DAC_OVERRIDE", 1),
    ("CAP_DAC_READ_SEARCH", 2),
    ("CAP_FOWNER", 3),
    ("CAP_FSETID", 4),
    ("CAP_KILL", 5),
    ("CAP_SETGID", 6),
    ("CAP_SETUID", 7),
    ("CAP_SETPCAP", 8),
    ("CAP_LINUX_IMMUTABLE", 9),
    ("CAP_NET_BIND_SERVICE", 10),
    ("CAP_NET_BROADCAST", 11),
    ("CAP_NET_ADMIN", 12),
    ("CAP_NET_RAW", 13),
    ("CAP_IPC_LOCK", 14),
    ("CAP_IPC_OWNER", 15),
    ("CAP_SYS_MODULE", 16),
    ("CAP_SYS_RAWIO", 17),
    ("CAP_SYS_CHROOT", 18),
    ("CAP_SYS_PTRACE", 19),
    ("CAP_SYS_PACCT", 20),
    ("CAP_SYS_ADMIN", 21),
    ("CAP_SYS_BOOT", 22),
    ("CAP_SYS_NICE", 23),
    ("CAP_SYS_RESOURCE", 24),
    ("CAP_SYS_TIME", 25),
    ("CAP_SYS_TTY_CONFIG", 26),
    ("CAP_MKNOD", 27),
    ("CAP_LEASE", 28),
    ("CAP_AUDIT_WRITE", 29),
    ("CAP_AUDIT_CONTROL", 30),
    ("CAP_SETFCAP", 31),
    ("CAP_MAC_OVERRIDE", 32),
    ("CAP_MAC_ADMIN", 33),
    ("CAP_SYSLOG", 34),
    ("CAP_WAKE_ALARM", 35),
    ("CAP_BLOCK_SUSPEND", 36),
    ("CAP_AUDIT_READ", 37),
    ("CAP_PERFMON", 38),
    ("CAP_BPF", 39),
    ("CAP_CHECKPOINT_RESTORE", 40),
];

/// The capability `name` (`NET_ADMIN`, `cap_net_admin`: Docker takes both,
/// any case), by its canonical name and number.
fn lookup(name: &str) -> Option<(&'static str, c_int)> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    ALL.iter().find(|(n, _)| *n == full).copied()
}

/// The capabilities kept with `--cap-add`/`--cap-drop` applied to
/// Docker's default set, as Docker applies them: `ALL` in `add` starts
/// from every capability, `ALL` in `drop` from none; then the named ones
/// are added and dropped (a drop wins). An unknown name is an error.
pub fn kept(add: &[String], drop: &[String]) -> Result<Vec<(&'static str, c_int)>, String> {
    let is_all = |n: &String| n.eq_ignore_ascii_case("ALL");
    let resolve = |names: &[String]| -> Result<Vec<(&'static str, c_int)>, String> {
        names
            .iter()
            .filter(|n| !is_all(n))
            .map(|n| lookup(n).ok_or_else(|| format!("unknown capability {n:?}")))
            .collect()
    };
    let (added, dropped) = (resolve(add)?, resolve(drop)?);
    let mut kept: Vec<(&'static str, c_int)> = if add.iter().any(is_all) {
        ALL.to_vec()
    } else if drop.iter().any(is_all) {
        Vec::new()
    } else {
        ALL.iter()
            .filter(|(n, _)| DEFAULT.contains(n))
            .copied()
            .collect()
    };
    for cap in added {
        if !kept.contains(&cap) {
            kept.push(cap);
        }
    }
    kept.retain(|cap| !dropped.contains(cap));
    kept.retain(|(_, number)| *number <= last());
    kept.sort_by_key(|(_, number)| *number);
    Ok(kept)
}

/// The capabilities of rbuild's own bounding set: what a privileged
/// sandbox keeps (as Docker's and BuildKit's "all capabilities" are the
/// daemon's current ones).
pub fn current() -> Vec<(&'static str, c_int)> {
    ALL.iter()
        .copied()
        .filter(|(_, number)| {
            // SAFETY: PR_CAPBSET_READ only reads the calling thread's set.
            unsafe { libc::prctl(libc::PR_CAPBSET_READ, *number as libc::c_ulong) == 1 }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(add: &[&str], drop: &[&str]) -> Vec<&'static str> {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        kept(&owned(add), &owned(drop))
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    }

    #[test]
    fn adds_and_drops_apply_to_dockers_default_set() {
        assert_eq!(names(&[], &[]), default_names());
        let more = names(&["net_admin"], &["CAP_CHOWN", "mknod"]);
        assert!(more.contains(&"CAP_NET_ADMIN"));
        assert!(!more.contains(&"CAP_CHOWN") && !more.contains(&"CAP_MKNOD"));
        assert_eq!(names(&["CHOWN"], &["ALL"]), ["CAP_CHOWN"]);
        let all = names(&["ALL"], &["SYS_ADMIN"]);
        assert!(all.contains(&"CAP_SYS_PTRACE") && !all.contains(&"CAP_SYS_ADMIN"));
        assert!(kept(&["CAP_FLY".into()], &[]).is_err());
    }
}
