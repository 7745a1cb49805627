//! Escape probes (`escape/probe.c`) run in the bundled sandbox as root:
//! sysctls, the sysrq trigger, masked /proc files, device nodes (made with
//! mknod or present in the image), mount, umount, unshare, keyctl, bpf,
//! ptrace and kill of a host process, host paths and the host's command
//! line in /proc. Every probe must be blocked. The e2e tests run the same
//! probes rootless and against runc and crun.

#[path = "escape/harness.rs"]
mod harness;
mod support;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use support::{Sandbox, output};

/// Every probe of `probe.c`, in the order it prints them (markers last).
const PROBES: &[&str] = &[
    "sysrq-trigger",
    "core_pattern",
    "swappiness",
    "hostname-sysctl",
    "proc-keys",
    "proc-timer_list",
    "proc-kcore",
    "kmsg",
    "vcs1",
    "sda",
    "copied-node",
    "mount",
    "umount",
    "unshare-user",
    "unshare-mount",
    "keyctl",
    "bpf",
    "ptrace-host",
    "kill-host",
    "capture-host-traffic",
    "inherited-fd",
];

/// The probe, compiled once (static, so it runs on any root).
fn probe() -> &'static Path {
    static PROBE: OnceLock<PathBuf> = OnceLock::new();
    PROBE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("rbuild-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        harness::compile_probe(&dir)
    })
}

/// A busybox root with the probe at /probe and a device node at
/// /probe-node (as a COPY from a context would put it there).
fn sandbox_with_probe() -> Sandbox {
    let s = Sandbox::new();
    std::fs::copy(probe(), s.base.join("probe")).unwrap();
    nix::sys::stat::mknod(
        &s.base.join("probe-node"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 11),
    )
    .unwrap();
    s
}

/// The probe's verdicts: (probe, blocked).
fn verdicts(out: &str) -> Vec<(String, bool)> {
    out.lines()
        .filter_map(|l| {
            if let Some(name) = l.strip_prefix("blocked ") {
                Some((name.to_string(), true))
            } else {
                l.strip_prefix("ESCAPED ")
                    .map(|rest| (rest.split(':').next().unwrap_or("").to_string(), false))
            }
        })
        .collect()
}

/// Runs the probe with `markers` and prints the confinement lines of
/// /proc/self/status after it; exits with the probe's status.
fn probe_spec(s: &Sandbox, markers: &[String]) -> rbuild_executor::RunSpec {
    std::fs::write(s.base.join("markers"), markers.join("\n")).unwrap();
    let mut spec = s.spec(
        "/probe \"$1\" /markers; code=$?; grep -E '^(Seccomp|NoNewPrivs|Cap(Bnd|Eff|Prm)):' /proc/self/status; exit $code",
    );
    spec.args.push(String::from("sh"));
    spec.args.push(harness::host_ids());
    // The default network (a namespace of its own), not the host's that
    // the other sandbox tests share for speed.
    spec.network = rbuild_executor::Network::default();
    spec
}

#[test]
fn every_escape_probe_is_blocked_as_root() {
    let s = sandbox_with_probe();
    // The test binary's path (the host's command line, which a clone of
    // it as pid 1 would show), the test's temp dir (the layer's host
    // path), and the sandbox's own temp dirs.
    let markers = [
        std::env::args().next().unwrap(),
        s.dir.path().display().to_string(),
        String::from("rbuild-sandbox"),
    ];
    let (code, out, err) = output(&probe_spec(&s, &markers));
    let got = verdicts(&out);
    let mut expected: Vec<String> = PROBES.iter().map(|p| p.to_string()).collect();
    expected.extend((1..=markers.len()).map(|i| format!("marker-{i}")));
    let names: Vec<String> = got.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(names, expected, "every probe ran: {out}{err}");
    let escaped: Vec<&str> = out.lines().filter(|l| l.starts_with("ESCAPED")).collect();
    assert!(escaped.is_empty(), "escapes:\n{}", escaped.join("\n"));
    assert_eq!(code, 0, "{err}");
    for line in [
        "Seccomp:\t2",
        "NoNewPrivs:\t1",
        "CapBnd:\t00000000a80425fb",
        "CapEff:\t00000000a80425fb",
    ] {
        assert!(out.contains(line), "{line} in {out}");
    }
}

#[test]
fn seccomp_and_no_new_privs_follow_the_security_options() {
    let s = Sandbox::new();
    let status =
        "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; unshare -U true && echo unshared";
    let mut spec = s.spec(status);
    spec.security = rbuild_executor::Security {
        seccomp: rbuild_executor::Seccomp::Unconfined,
        no_new_privileges: false,
        insecure: false,
        cap_add: Vec::new(),
        cap_drop: Vec::new(),
    };
    let (code, out, err) = output(&spec);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("NoNewPrivs:\t0\nSeccomp:\t0\n"), "{out}");
    // A profile file that allows everything but unshare.
    spec.security.seccomp = rbuild_executor::Seccomp::Profile(String::from(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["unshare"],"action":"SCMP_ACT_ERRNO"}]}"#,
    ));
    let (_, out, _) = output(&spec);
    assert!(out.starts_with("NoNewPrivs:\t0\nSeccomp:\t2\n"), "{out}");
    assert!(!out.contains("unshared"), "{out}");
    spec.security.insecure = true;
    let (_, out, _) = output(&spec);
    assert!(
        out.contains("Seccomp:\t0\n") && out.contains("unshared"),
        "insecure: {out}"
    );
}

#[test]
fn init_shows_nothing_of_the_host_and_has_no_capabilities() {
    let s = sandbox_with_probe();
    let markers = [
        std::env::args().next().unwrap(),
        s.dir.path().display().to_string(),
        String::from("rbuild-sandbox"),
    ];
    let mut spec = probe_spec(&s, &markers);
    spec.init = true;
    let (code, out, err) = output(&spec);
    let escaped: Vec<&str> = out.lines().filter(|l| l.starts_with("ESCAPED")).collect();
    assert!(escaped.is_empty(), "escapes:\n{}", escaped.join("\n"));
    assert_eq!(code, 0, "{err}");

    let mut spec = s.spec(
        "echo pid=$$; tr '\\0' ' ' < /proc/1/cmdline; echo; grep -E '^(CapEff|CapBnd):' /proc/1/status; \
         cat /proc/1/environ && echo environ-readable; exit 4",
    );
    spec.init = true;
    let (code, out, _) = output(&spec);
    assert_eq!(code, 4, "init exits with the process's status");
    let lines: Vec<&str> = out.lines().map(str::trim_end).collect();
    assert_eq!(lines[..2], ["pid=2", "rbuild-init"], "{out}");
    assert!(lines.contains(&"CapEff:\t0000000000000000"), "{out}");
    assert!(lines.contains(&"CapBnd:\t0000000000000000"), "{out}");
    assert!(!out.contains("environ-readable"), "{out}");
}
