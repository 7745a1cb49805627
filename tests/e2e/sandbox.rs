//! The sandbox end to end: the escape probes (`executor/tests/escape/
//! probe.c`) in a RUN step and in `rbuild run`, as root, rootless, and
//! under runc and crun as the reference; secrets with BuildKit's defaults;
//! the `security.insecure` entitlement.

use std::path::{Path, PathBuf};

use crate::host_mounts::rbuild_mounts;
use crate::probe_harness::{compile_probe, host_ids};
use crate::support::TestContext;
use crate::{as_user, busybox_context, give_to, succeeded};

/// A build arg no ARG declares: it must not be visible anywhere inside.
const UNDECLARED: &str = "undeclared-arg-value-5150";

/// A context with the probe, a device node to COPY in (/dev/kmsg's
/// numbers, as a hostile context would hold it; not rootless, where COPY
/// cannot make one) and the markers: the store, the context, the sandbox
/// dirs and the undeclared build arg.
fn probe_context(t: &TestContext, with_node: bool) -> PathBuf {
    let node = if with_node { " probe-node" } else { "" };
    let dockerfile = format!(
        "FROM busybox\nARG HOST_PID\nCOPY probe{node} markers /\nRUN /probe \"$HOST_PID\" /markers\n"
    );
    let ctx = t.context("probe", &[("Dockerfile", &dockerfile)]);
    compile_probe(&ctx);
    if with_node {
        nix::sys::stat::mknod(
            &ctx.join("probe-node"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(1, 11),
        )
        .unwrap();
    }
    let markers = [
        t.root().display().to_string(),
        ctx.display().to_string(),
        String::from("rbuild-sandbox"),
        String::from(UNDECLARED),
    ];
    std::fs::write(ctx.join("markers"), markers.join("\n")).unwrap();
    ctx
}

/// The build arguments of the probe build.
fn build_args(ctx: &Path) -> Vec<String> {
    [
        "build",
        "--progress",
        "plain",
        "-t",
        "probe",
        "--build-arg",
        &format!("HOST_PID={}", host_ids()),
        "--build-arg",
        &format!("UNDECLARED={UNDECLARED}"),
        ctx.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec()
}

/// `rbuild run` of the probe, with extra flags before the image.
fn run_args(flags: &[&str]) -> Vec<String> {
    let pid = host_ids();
    let mut args: Vec<String> = vec!["run".into(), "--rm".into()];
    args.extend(flags.iter().map(|f| f.to_string()));
    args.extend(["probe", "/probe", &pid, "/markers"].map(String::from));
    args
}

/// Fails unless the probe ran (`blocked` lines for every marker) and no
/// probe escaped.
fn assert_all_blocked(what: &str, log: &str) {
    assert_blocked_except(what, log, &[]);
}

/// [`assert_all_blocked`], except for the probes named in `known`.
fn assert_blocked_except(what: &str, log: &str, known: &[&str]) {
    let escaped: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ESCAPED"))
        .filter(|l| !known.iter().any(|k| l.contains(&format!("ESCAPED {k}:"))))
        .collect();
    assert!(
        escaped.is_empty(),
        "{what}: escapes:\n{}",
        escaped.join("\n")
    );
    for probe in ["core_pattern", "kmsg", "copied-node", "keyctl", "marker-4"] {
        assert!(log.contains(&format!("blocked {probe}")), "{what}: {log}");
    }
}

fn refs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[test]
fn escape_probes_fail_in_run_steps_and_rbuild_run_as_root() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let ctx = probe_context(&t, true);
    let build = t.cmd(&refs(&build_args(&ctx))).output().unwrap();
    assert_all_blocked("RUN", &succeeded(build));
    let run = t.cmd(&refs(&run_args(&[]))).output().unwrap();
    assert_all_blocked("rbuild run", &succeeded(run));
    let init = t.cmd(&refs(&run_args(&["--init"]))).output().unwrap();
    assert_all_blocked("rbuild run --init", &succeeded(init));
}

#[test]
fn escape_probes_fail_under_runc_and_crun_too() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let ctx = probe_context(&t, true);
    t.ok(&refs(&build_args(&ctx)));
    for runtime in ["runc", "crun"] {
        let out = t
            .cmd(&refs(&run_args(&["--runtime", runtime])))
            .output()
            .unwrap();
        // The root overlay is mounted by rbuild's glue (a shell `mount` of
        // the store's layers by path) before the runtime runs: its options
        // show the store (marker 1) and the bundle dir (marker 3).
        assert_blocked_except(runtime, &crate::text(&out), &["marker-1", "marker-3"]);
    }
}

#[test]
fn escape_probes_fail_rootless() {
    let t = TestContext::new();
    let base = busybox_context(&t);
    let ctx = probe_context(&t, false);
    give_to(&t, "65534:65534");
    let nobody = |args: &[&str]| as_user(&t, "65534:65534", args);
    succeeded(nobody(&["build", "-q", "-t", "busybox", &base]));
    let log = succeeded(nobody(&refs(&build_args(&ctx))));
    assert_all_blocked("rootless RUN", &log);
    let log = succeeded(nobody(&refs(&run_args(&[]))));
    assert_all_blocked("rootless rbuild run", &log);
    let log = succeeded(nobody(&[
        "run",
        "--rm",
        "probe",
        "grep",
        "-E",
        "^(Seccomp|CapBnd|CapEff):",
        "/proc/self/status",
    ]));
    assert_eq!(
        log, "CapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\nSeccomp:\t2\n",
        "rootless: Docker's 14 capabilities and its seccomp filter"
    );
}

#[test]
fn secrets_are_0400_root_by_default_and_env_works() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let ctx = t.context(
        "secrets",
        &[(
            "Dockerfile",
            "FROM busybox\n\
             RUN --mount=type=secret,id=token stat -c '%a %u %g' /run/secrets/token > /default\n\
             RUN --mount=type=secret,id=token,mode=0440,uid=1000,gid=10 stat -c '%a %u %g' /run/secrets/token > /set\n\
             RUN --mount=type=secret,id=token,env=TOKEN sh -c 'echo \"$TOKEN\" > /env; ls /run/secrets 2>/dev/null > /files; true'\n\
             RUN echo \"${TOKEN:-unset}\" > /later\n",
        )],
    );
    let secret = t.path("token");
    std::fs::write(&secret, "s3cret").unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    t.ok(&[
        "build",
        "-q",
        "-t",
        "secrets",
        "--secret",
        &format!("id=token,src={}", secret.display()),
        ctx.to_str().unwrap(),
    ]);
    let out = t.stdout(&[
        "run",
        "--rm",
        "secrets",
        "sh",
        "-c",
        "cat /default /set /env /files /later; env | grep -c s3cret || true",
    ]);
    assert_eq!(
        out, "400 0 0\n440 1000 10\ns3cret\nunset\n0\n",
        "0400 root:root by default, mode/uid/gid when given; env= only in its RUN, no file"
    );
}

#[test]
fn insecure_runs_need_the_entitlement() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let ctx = t.context(
        "insecure",
        &[(
            "Dockerfile",
            "FROM busybox\n\
             RUN grep -E '^(Seccomp|CapBnd):' /proc/self/status > /sandboxed\n\
             RUN --security=insecure grep -E '^(Seccomp|CapBnd):' /proc/self/status > /insecure\n",
        )],
    );
    let c = ctx.to_str().unwrap();
    let refused = t
        .cmd(&["build", "-q", "-t", "insecure", c])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("--allow security.insecure") && err.contains(":3:"),
        "names the entitlement and the line: {err}"
    );
    t.ok(&[
        "build",
        "-q",
        "-t",
        "insecure",
        "--allow",
        "security.insecure",
        c,
    ]);
    let out = t.stdout(&["run", "--rm", "insecure", "cat", "/sandboxed", "/insecure"]);
    // Insecure keeps every capability rbuild itself has (BuildKit: all
    // current capabilities).
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let own = status.lines().find(|l| l.starts_with("CapBnd:")).unwrap();
    assert_eq!(
        out,
        format!("CapBnd:\t00000000a80425fb\nSeccomp:\t2\n{own}\nSeccomp:\t0\n")
    );
}

/// Whether a process whose command line contains `marker` exists.
fn running(marker: &str) -> bool {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .any(|c| {
            String::from_utf8_lossy(&c)
                .replace('\0', " ")
                .contains(marker)
        })
}

/// Waits until `what` holds, at most 10 s.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !check() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Starts `rbuild ARGS` with a private temp dir; returns it and the child
/// once the process with `marker` runs in its sandbox.
fn start(t: &TestContext, tmp: &Path, args: &[&str], marker: &str) -> std::process::Child {
    std::fs::create_dir_all(tmp).unwrap();
    let child = t
        .cmd(args)
        .env("TMPDIR", tmp)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    eventually("the sandboxed process starts", || running(marker));
    child
}

fn signal(child: &std::process::Child, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
}

fn is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().next().is_none()
}

#[test]
fn signals_end_sandboxes_and_leave_nothing_behind() {
    use nix::sys::signal::Signal::{SIGINT, SIGKILL, SIGTERM};
    let t = TestContext::new();
    t.make_busybox("busybox");
    let tmp = t.path("tmp");
    let mounts_before = rbuild_mounts(&[&t.path("")]);

    // run: SIGTERM is forwarded to the process, which handles it.
    // Markers only the sandbox's processes show (not rbuild's argv).
    let marker = "sleep 3001";
    let script = String::from("trap 'exit 3' TERM; sleep $((3000 + 1)) & wait");
    let mut child = start(
        &t,
        &tmp,
        &["run", "--rm", "busybox", "sh", "-c", &script],
        marker,
    );
    signal(&child, SIGTERM);
    assert_eq!(
        child.wait().unwrap().code(),
        Some(3),
        "the process's own exit"
    );
    eventually("the sandbox is gone", || !running(marker));
    assert!(is_empty(&tmp), "no sandbox dir left");

    // run: pid 1 without a handler ignores SIGTERM (as in Docker); a
    // second one kills the sandbox.
    let marker = "sleep 3002";
    let args = [
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "exec sleep $((3000 + 2))",
    ];
    let mut child = start(&t, &tmp, &args, marker);
    signal(&child, SIGTERM);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(running(marker), "ignored by pid 1");
    signal(&child, SIGTERM);
    assert_eq!(child.wait().unwrap().code(), Some(128 + 15));
    assert!(!running(marker) && is_empty(&tmp), "nothing left");

    // build: SIGINT cancels the RUN step.
    let ctx = t.context(
        "slow",
        &[("Dockerfile", "FROM busybox\nRUN sleep $((3000 + 3))\n")],
    );
    let mut child = start(&t, &tmp, &["build", ctx.to_str().unwrap()], "sleep 3003");
    signal(&child, SIGINT);
    assert_eq!(child.wait().unwrap().code(), Some(128 + 2));
    assert!(!running("sleep 3003") && is_empty(&tmp), "nothing left");

    // kill -9 leaves the dir; the next rbuild that runs a sandbox sweeps it.
    let args = [
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "exec sleep $((3000 + 4))",
    ];
    let mut child = start(&t, &tmp, &args, "sleep 3004");
    signal(&child, SIGKILL);
    child.wait().unwrap();
    eventually("the sandbox dies with rbuild", || !running("sleep 3004"));
    assert!(!is_empty(&tmp), "SIGKILL leaves the dir");
    let out = t
        .cmd(&["run", "--rm", "busybox", "true"])
        .env("TMPDIR", &tmp)
        .output();
    assert!(out.unwrap().status.success());
    assert!(is_empty(&tmp), "swept by the next run");
    assert_eq!(
        rbuild_mounts(&[&t.path("")]),
        mounts_before,
        "no mount left on the host"
    );
}
