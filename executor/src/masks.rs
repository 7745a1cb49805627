//! The /proc and /sys paths a sandbox hides or makes read-only: the lists
//! of containerd's default spec, which BuildKit's RUN and Docker's
//! containers apply. They are mounted right after /proc and /sys, so that
//! nothing mounted later can uncover them; a path this kernel does not have
//! is skipped.

/// Paths covered by an empty read-only tmpfs (directories) or by the host's
/// /dev/null (files): reading them shows nothing of the host (keys, kernel
/// memory, timers, firmware tables, power caps).
pub const MASKED: &[&str] = &[
    "proc/acpi",
    "proc/asound",
    "proc/kcore",
    "proc/keys",
    "proc/latency_stats",
    "proc/timer_list",
    "proc/timer_stats",
    "proc/sched_debug",
    "proc/scsi",
    "sys/firmware",
    "sys/devices/virtual/powercap",
];

/// Paths bound read-only onto themselves: sysctls, the sysrq trigger, IRQ
/// affinities and the filesystems' tunables stay readable but cannot be
/// written, even by root inside.
pub const READ_ONLY: &[&str] = &[
    "proc/bus",
    "proc/fs",
    "proc/irq",
    "proc/sys",
    "proc/sysrq-trigger",
];
