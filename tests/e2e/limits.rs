//! `--memory`, `--cpus` and `--pids-limit` on `rbuild run` and (for every
//! RUN) `rbuild build`: the limits are in the sandbox's cgroups while it
//! runs, they bite, and the cgroups are gone afterwards.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;

use crate::support::TestContext;
use crate::{as_user, busybox_context, give_to};

/// Where the v1 hierarchy (or else the v2 one) of `controller` is mounted
/// on the host.
fn hierarchy(controller: &str) -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let v1 = mounts.lines().find_map(|l| {
        let (head, tail) = l.split_once(" - ")?;
        let fields: Vec<&str> = tail.split_whitespace().collect();
        (fields[0] == "cgroup" && fields[2].split(',').any(|o| o == controller))
            .then(|| PathBuf::from(head.split_whitespace().nth(4).unwrap()))
    });
    v1.unwrap_or_else(|| PathBuf::from("/sys/fs/cgroup"))
}

/// The host directory of the cgroup that a `/proc/self/cgroup` line (as
/// the sandbox printed it) names.
fn cgroup_dir(line: &str) -> PathBuf {
    let mut parts = line.splitn(3, ':');
    let (_, controllers, path) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
    let controller = controllers.split(',').next().unwrap_or("memory");
    hierarchy(if controller.is_empty() {
        "memory"
    } else {
        controller
    })
    .join(path.trim_start_matches('/'))
}

#[test]
fn run_limits_are_set_bite_and_are_removed() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    // While it runs, the host sees the limits in the sandbox's cgroups.
    let mut child = t
        .cmd(&[
            "run",
            "--rm",
            "-i",
            "--memory",
            "48m",
            "--cpus",
            "0.5",
            "--pids-limit",
            "25",
            "busybox",
            "sh",
            "-c",
            "grep -E ':(memory|pids|cpu[^:]*):' /proc/self/cgroup; echo end; read x; exit 0",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut dirs = Vec::new();
    loop {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "no end line");
        if line.trim() == "end" {
            break;
        }
        dirs.push((line.trim().to_string(), cgroup_dir(line.trim())));
    }
    let read = |file: &str| {
        dirs.iter()
            .find_map(|(_, d)| std::fs::read_to_string(d.join(file)).ok())
            .unwrap_or_else(|| panic!("{file} in {dirs:?}"))
    };
    let memory = std::fs::read_to_string(
        dirs.iter()
            .map(|(_, d)| d.join("memory.limit_in_bytes"))
            .find(|p| p.exists())
            .unwrap_or_else(|| dirs[0].1.join("memory.max")),
    )
    .unwrap();
    assert_eq!(memory.trim(), (48u64 << 20).to_string());
    assert_eq!(read("pids.max").trim(), "25");
    let cpu = dirs
        .iter()
        .find_map(|(_, d)| std::fs::read_to_string(d.join("cpu.cfs_quota_us")).ok())
        .unwrap_or_else(|| read("cpu.max"));
    assert!(cpu.starts_with("50000"), "{cpu}");
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    for (line, dir) in &dirs {
        if line.contains("rbuild-") {
            assert!(!dir.exists(), "{} left behind", dir.display());
        }
    }

    // Over the memory limit: killed (128 + SIGKILL), and fine without it.
    let hog = "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo ${#x}";
    let out = t
        .cmd(&["run", "--rm", "--memory", "16m", "busybox", "sh", "-c", hog])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(137), "{out:?}");
    assert_eq!(
        t.stdout(&["run", "--rm", "busybox", "sh", "-c", hog]),
        "67108864\n"
    );

    // A fork bomb meets the pids limit; without it, the same forks work.
    let forks = "for i in $(seq 40); do sleep 1 & done; wait; echo forked";
    let out = t
        .cmd(&[
            "run",
            "--rm",
            "--pids-limit",
            "10",
            "busybox",
            "sh",
            "-c",
            forks,
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("can't fork"),
        "{out:?}"
    );
    assert_eq!(
        t.stdout(&["run", "--rm", "busybox", "sh", "-c", forks]),
        "forked\n"
    );
}

#[test]
fn build_limits_apply_to_every_run_and_rootless_asks_are_refused() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let ctx = t.context(
        "bomb",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo first\nRUN for i in $(seq 40); do sleep 1 & done; wait\n",
        )],
    );
    let out = t
        .cmd(&[
            "build",
            "--progress=plain",
            "--pids-limit",
            "10",
            ctx.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{log}");
    assert!(log.contains("can't fork"), "{log}");
    t.ok(&["build", "--pids-limit", "100", ctx.to_str().unwrap()]);

    let t = TestContext::new();
    let base = busybox_context(&t);
    give_to(&t, "65534:65534");
    let nobody = |args: &[&str]| as_user(&t, "65534:65534", args);
    assert!(
        nobody(&["build", "-q", "-t", "busybox", &base])
            .status
            .success()
    );
    let out = nobody(&["run", "--rm", "--memory", "64m", "busybox", "true"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("need rootful rbuild"), "{stderr}");
}
