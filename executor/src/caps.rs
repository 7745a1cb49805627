//! Linux capabilities by name and number: Docker's default set, the one a
//! RUN step and `rbuild run` keep in their bounding set.

use std::ffi::c_int;

/// The 14 capabilities a Docker container keeps by default.
pub const DEFAULT: &[(&str, c_int)] = &[
    ("CAP_CHOWN", 0),
    ("CAP_DAC_OVERRIDE", 1),
    ("CAP_FOWNER", 3),
    ("CAP_FSETID", 4),
    ("CAP_KILL", 5),
    ("CAP_SETGID", 6),
    ("CAP_SETUID", 7),
    ("CAP_SETPCAP", 8),
    ("CAP_NET_BIND_SERVICE", 10),
    ("CAP_NET_RAW", 13),
    ("CAP_SYS_CHROOT", 18),
    ("CAP_MKNOD", 27),
    ("CAP_AUDIT_WRITE", 29),
    ("CAP_SETFCAP", 31),
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
    DEFAULT.iter().map(|(name, _)| *name).collect()
}
