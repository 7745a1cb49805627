//! The sandbox end to end: the escape probes (`executor/tests/escape/
//! probe.c`) in a RUN step and in `rbuild run`, as root, rootless, and
//! under runc and crun as the reference; secrets with BuildKit's defaults;
//! the `security.insecure` entitlement.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::TestContext;
use crate::{as_user, busybox_context, give_to, succeeded};

/// A build arg no ARG declares: it must not be visible anywhere inside.
const UNDECLARED: &str = "undeclared-arg-value-5150";

/// Compiles the probe (static, so that it runs on busybox) into `dir`.
fn compile_probe(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("executor/tests/escape/probe.c");
    let out = dir.join("probe");
    let status = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("a C compiler (cc) is installed");
    assert!(status.success(), "compile {}", src.display());
    out
}

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
        &format!("HOST_PID={}", std::process::id()),
        "--build-arg",
        &format!("UNDECLARED={UNDECLARED}"),
        ctx.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec()
}

/// `rbuild run` of the probe, with extra flags before the image.
fn run_args(flags: &[&str]) -> Vec<String> {
    let pid = std::process::id().to_string();
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
