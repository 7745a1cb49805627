//! End-to-end tests: the rbuild binary builds real images (RUN in real
//! namespaces on real overlayfs) into a private store, and runs them.

mod build_flags;
mod build_step_flags;
mod conformance;
mod copy_sharing;
mod digests;
mod docker_ci;
mod early_export;
mod explain;
#[path = "../../executor/tests/support/host_mounts.rs"]
mod host_mounts;
mod hostile;
mod inputs;
mod instructions;
mod limits;
mod network;
mod outputs;
mod parity;
mod platforms;
#[path = "../../executor/tests/escape/harness.rs"]
mod probe_harness;
mod references;
mod remote_cache;
mod remote_contexts;
mod run_flags;
mod sandbox;
mod ssh;
mod store;
mod support;

use std::process::Command;

use support::{TestContext, busybox, copy_dir, repo, skopeo};

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn hello_builds_runs_and_is_cached_the_second_time() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let hello = repo().join("testdata/hello");
    let first = t.ok(&[
        "build",
        "--progress=plain",
        "-t",
        "hello",
        hello.to_str().unwrap(),
    ]);
    let log = text(&first);
    assert!(log.contains("RUN chmod +x greet.sh"), "{log}");
    assert!(log.contains("DONE"), "{log}");

    let images = t.stdout(&["images"]);
    assert!(
        images
            .lines()
            .any(|l| l.starts_with("hello ") && l.contains("latest")),
        "{images}"
    );

    let run = t.ok(&["run", "--rm", "hello"]);
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(out.contains("hello from "), "{out}");
    assert!(out.contains("built by rbuild"), "{out}");

    let cfg = t.config("hello");
    let c = &cfg["config"];
    assert!(
        c["Env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "GREETING=hello"),
        "{c}"
    );
    assert_eq!(c["Cmd"], serde_json::json!(["./greet.sh"]));
    assert_eq!(c["WorkingDir"], "/app");
    assert_eq!(c["Labels"]["org.example.demo"], "hello");
    assert!(c["ExposedPorts"].get("8080/tcp").is_some(), "{c}");

    let second = t.ok(&[
        "build",
        "--progress=plain",
        "-t",
        "hello",
        hello.to_str().unwrap(),
    ]);
    let log2 = text(&second);
    for line in log2
        .lines()
        .filter(|l| l.contains("] RUN ") || l.contains("] COPY "))
    {
        let n = line.split_whitespace().next().unwrap();
        assert!(
            log2.contains(&format!("{n} CACHED")),
            "step {line:?} not cached:\n{log2}"
        );
    }
    let d1 = t.stdout(&["build", "-q", "-t", "hello", hello.to_str().unwrap()]);
    let d2 = t.stdout(&["build", "-q", "-t", "hello", hello.to_str().unwrap()]);
    assert_eq!(d1, d2, "a cached rebuild gives the same image");
}

#[test]
fn run_passes_exit_codes_args_and_isolation() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let out = t.stdout(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo pid=$$; hostname; id -u; ls /",
    ]);
    assert!(
        out.contains("pid=1\n"),
        "the image's process is pid 1, as in Docker: {out}"
    );
    assert!(out.contains("\n0\n"), "{out}");
    assert!(out.contains("bin"), "{out}");
    let status = t
        .cmd(&["run", "--rm", "busybox", "sh", "-c", "exit 7"])
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(7));
    let user = t.stdout(&["run", "--rm", "-u", "65534", "busybox", "id", "-u"]);
    assert_eq!(user.trim(), "65534");
    let env = t.stdout(&[
        "run",
        "--rm",
        "-e",
        "X=42",
        "-w",
        "/tmp",
        "busybox",
        "sh",
        "-c",
        "echo $X $(pwd)",
    ]);
    assert_eq!(env.trim(), "42 /tmp");
}

#[test]
fn failing_run_names_the_step_and_exit_code() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let ctx = t.context(
        "fail",
        &[("Dockerfile", "FROM busybox\nRUN echo before && exit 3\n")],
    );
    let out = t
        .cmd(&["build", "--progress=plain", ctx.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let log = text(&out);
    assert!(log.contains("exit code: 3"), "{log}");
    assert!(log.contains("RUN echo before && exit 3"), "{log}");
    assert!(log.contains("before"), "{log}");
}

#[test]
fn copy_from_stages_and_context_semantics() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let df = "FROM busybox AS build\n\
              RUN mkdir -p /out/sub && echo one > /out/one && echo two > /out/sub/two && chown -R 5:6 /out\n\
              FROM busybox\n\
              COPY --from=build /out/ /dest/\n\
              COPY a.txt b.txt /files/\n\
              COPY --chown=7:8 dir /owned\n\
              USER 65534\n";
    let ctx = t.context(
        "stages",
        &[
            ("Dockerfile", df),
            ("a.txt", "A"),
            ("b.txt", "B"),
            ("dir/x/y.txt", "Y"),
            ("ignored.txt", "I"),
        ],
    );
    t.ok(&["build", "-q", "-t", "stages", ctx.to_str().unwrap()]);
    let out = t.stdout(&[
        "run", "--rm", "-u", "0", "stages", "sh", "-c",
        "cat /dest/one /dest/sub/two /files/a.txt /files/b.txt /owned/x/y.txt; stat -c '%u:%g %n' /dest/one /owned/x/y.txt /owned",
    ]);
    assert!(out.contains("one\ntwo\nABY"), "{out}");
    assert!(
        out.contains("5:6 /dest/one"),
        "COPY --from keeps owners: {out}"
    );
    assert!(out.contains("7:8 /owned/x/y.txt"), "{out}");
    assert!(out.contains("7:8 /owned\n"), "{out}");
    assert_eq!(t.config("stages")["config"]["User"], "65534");
}

#[test]
fn context_edits_invalidate_only_what_they_touch() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let df = "FROM busybox\nCOPY a.txt /a.txt\nRUN cat /a.txt > /copy\nCOPY b.txt /b.txt\n";
    let ctx = t.context(
        "edits",
        &[
            ("Dockerfile", df),
            ("a.txt", "A1"),
            ("b.txt", "B1"),
            ("other", "O"),
        ],
    );
    let c = ctx.to_str().unwrap();
    t.ok(&["build", "-q", c]);
    let cached = step_cached;
    // Unselected file changed, selected file touched: all cached.
    std::fs::write(ctx.join("other"), "O2").unwrap();
    std::fs::File::options()
        .write(true)
        .open(ctx.join("a.txt"))
        .unwrap()
        .set_modified(std::time::SystemTime::now())
        .unwrap();
    let log = text(&t.ok(&["build", "--progress=plain", c]));
    assert!(
        cached(&log, "COPY a.txt") && cached(&log, "RUN cat") && cached(&log, "COPY b.txt"),
        "{log}"
    );
    // b.txt changed: only its step reruns.
    std::fs::write(ctx.join("b.txt"), "B2").unwrap();
    let log = text(&t.ok(&["build", "--progress=plain", c]));
    assert!(
        cached(&log, "COPY a.txt") && cached(&log, "RUN cat"),
        "{log}"
    );
    assert!(!cached(&log, "COPY b.txt"), "{log}");
    // --no-cache reruns everything.
    let log = text(&t.ok(&["build", "--progress=plain", "--no-cache", c]));
    assert!(!cached(&log, "RUN cat"), "{log}");
}

/// Whether the step whose header line contains `step` is reported CACHED.
fn step_cached(log: &str, step: &str) -> bool {
    let line = log
        .lines()
        .find(|l| l.contains(step))
        .unwrap_or_else(|| panic!("{step} missing in {log}"));
    let n = line.split_whitespace().next().unwrap();
    log.contains(&format!("{n} CACHED"))
}

#[test]
fn copies_from_stages_key_on_the_files_they_select() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let df = "FROM busybox AS build\n\
              ARG T=1000\n\
              COPY dep.txt /dep.txt\n\
              RUN mkdir /deps && cp /dep.txt /deps/lib && touch -d @$T /deps/lib\n\
              COPY src.txt /src.txt\n\
              RUN mkdir /out && cat /src.txt > /out/app && cat /proc/sys/kernel/random/uuid > /out/id\n\
              FROM busybox\n\
              COPY --from=build /deps /usr/lib/app\n\
              COPY --from=build /out/ /app/\n";
    let ctx = t.context(
        "stagecopies",
        &[("Dockerfile", df), ("dep.txt", "D1"), ("src.txt", "S1")],
    );
    let c = ctx.to_str().unwrap();
    t.ok(&["build", "-q", "-t", "sc", c]);
    let build = |extra: &[&str]| {
        let mut args = vec!["build", "--progress=plain", "-t", "sc", c];
        args.extend_from_slice(extra);
        text(&t.ok(&args))
    };
    // The source stage reran, but /deps came out the same: the copy of it
    // is a cache hit; the copy of /out is not.
    std::fs::write(ctx.join("src.txt"), "S2").unwrap();
    let log = build(&[]);
    assert!(!step_cached(&log, "RUN mkdir /out"), "{log}");
    assert!(step_cached(&log, "COPY --from=build /deps"), "{log}");
    assert!(!step_cached(&log, "COPY --from=build /out/"), "{log}");
    let out = t.stdout(&["run", "--rm", "sc", "cat", "/usr/lib/app/lib", "/app/app"]);
    assert_eq!(out, "D1S2");
    // Same content, another modification time: the copy keeps times, so
    // it reruns.
    let log = build(&["--build-arg", "T=2000"]);
    assert!(!step_cached(&log, "COPY --from=build /deps"), "{log}");
    let out = t.stdout(&["run", "--rm", "sc", "stat", "-c", "%Y", "/usr/lib/app/lib"]);
    assert_eq!(out, "2000\n");
    // Other content: reruns, and the image has it.
    std::fs::write(ctx.join("dep.txt"), "D2").unwrap();
    let log = build(&["--build-arg", "T=2000"]);
    assert!(!step_cached(&log, "COPY --from=build /deps"), "{log}");
    let out = t.stdout(&["run", "--rm", "sc", "cat", "/usr/lib/app/lib"]);
    assert_eq!(out, "D2");
    // --no-cache: no content-key hit either.
    let log = build(&["--build-arg", "T=2000", "--no-cache"]);
    assert!(!step_cached(&log, "COPY --from=build /deps"), "{log}");
}

#[test]
fn push_to_a_registry_then_build_from_it_in_an_empty_store() {
    let registry = rbuild_registry::testing::TestRegistry::start();
    let t = TestContext::new();
    t.make_busybox("busybox");
    let remote = format!("{}/base/busybox", registry.addr);
    t.ok(&["tag", "busybox", &remote]);
    let pushed = t.stdout(&["push", "-q", &remote]);
    assert!(pushed.trim().starts_with("sha256:"), "{pushed}");
    // A real consumer sees it in the registry, with gzip layers.
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{remote}"),
    ]);
    assert!(raw.contains("tar+gzip"), "{raw}");

    // A second, empty store builds FROM the registry image, pulling it.
    let u = TestContext::new();
    let df =
        format!("FROM {remote}\nRUN echo built-on-pulled > /proof\nCMD [\"cat\", \"/proof\"]\n");
    let ctx = u.context("from-registry", &[("Dockerfile", &df)]);
    u.ok(&["build", "-q", "-t", "app", ctx.to_str().unwrap()]);
    assert_eq!(u.stdout(&["run", "--rm", "app"]).trim(), "built-on-pulled");
    // And `pull` into a third store gives the same manifest digest.
    let v = TestContext::new();
    let pulled = v.stdout(&["pull", "-q", &remote]);
    assert_eq!(pulled.trim(), pushed.trim());
    assert!(v.stdout(&["run", "--rm", &remote, "true"]).is_empty());
}

#[test]
fn run_env_files_volumes_and_names() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let env = t.path("env");
    std::fs::write(&env, "# settings\nA=from-file\nB=1\n").unwrap();
    let shared = t.path("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::write(shared.join("in.txt"), "host data").unwrap();
    let volume = format!("{}:/data", shared.display());
    let out = t.stdout(&[
        "run",
        "--rm",
        "--env-file",
        env.to_str().unwrap(),
        "-e",
        "B=2",
        "-v",
        &volume,
        "--name",
        "box",
        "busybox",
        "sh",
        "-c",
        "echo $A $B $(hostname); cat /data/in.txt; echo out > /data/out.txt",
    ]);
    assert_eq!(out, "from-file 2 box\nhost data");
    for runtime in ["runc", "crun"] {
        let out = t.stdout(&[
            "run",
            "--rm",
            "--runtime",
            runtime,
            "busybox",
            "sh",
            "-c",
            "echo $$ via $0",
        ]);
        assert_eq!(out, "1 via sh\n", "{runtime}");
    }
    assert_eq!(
        std::fs::read_to_string(shared.join("out.txt")).unwrap(),
        "out\n"
    );
}

#[test]
fn images_round_trip_with_skopeo_through_a_registry() {
    let registry = rbuild_registry::testing::TestRegistry::start();
    let t = TestContext::new();
    t.make_busybox("busybox");
    // skopeo pushes an image from rbuild's store (an OCI layout) …
    let remote = format!("{}/interop/busybox:skopeo", registry.addr);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:busybox", t.root().display()),
        &format!("docker://{remote}"),
    ]);
    // … rbuild pulls and runs what skopeo pushed …
    let u = TestContext::new();
    assert!(
        u.stdout(&["run", "--rm", &remote, "echo", "pulled"])
            .contains("pulled")
    );
    // … and skopeo pulls what rbuild pushed.
    let back = format!("{}/interop/busybox:rbuild", registry.addr);
    u.ok(&["tag", &remote, &back]);
    u.ok(&["push", &back]);
    let dir = t.path("copied");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{back}"),
        &format!("dir:{}", dir.display()),
    ]);
    assert!(dir.join("manifest.json").is_file());
}

#[test]
fn killing_rbuild_kills_the_sandbox() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let marker = "rbuild-kill-test-4711";
    let mut child = t
        .cmd(&[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            &format!("sleep 30; echo {marker}"),
        ])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let sandboxed = |pattern: &str| {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
            .any(|c| {
                String::from_utf8_lossy(&c)
                    .replace('\0', " ")
                    .contains(pattern)
            })
    };
    assert!(sandboxed(marker), "the sandboxed process is running");
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while sandboxed(marker) {
        assert!(
            std::time::Instant::now() < deadline,
            "the sandbox outlived rbuild"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains("rbuild-sandbox"),
        "no sandbox mount on the host"
    );
}

/// Gives the test's directory (contexts, home, the store to be) to
/// `user:group`, once, before it runs rbuild.
fn give_to(t: &TestContext, user: &str) {
    std::fs::create_dir_all(t.path("home")).unwrap();
    let status = Command::new("chown")
        .args(["-R", user])
        .arg(t.path(""))
        .status()
        .unwrap();
    assert!(status.success());
}

/// `rbuild …` as the unprivileged `user:group` (names or ids), on the test's
/// store.
fn as_user(t: &TestContext, user: &str, args: &[&str]) -> std::process::Output {
    let (uid, gid) = user.split_once(':').expect("user:group");
    Command::new("setpriv")
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={gid}"),
            "--clear-groups",
            "--",
        ])
        .arg(env!("CARGO_BIN_EXE_rbuild"))
        .arg("--root")
        .arg(t.root())
        .args(args)
        .env("HOME", t.path("home"))
        .env("CI", "true")
        .output()
        .expect("run setpriv")
}

/// Stdout and stderr of a successful command.
fn succeeded(out: std::process::Output) -> String {
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    text
}

/// The busybox base context, for builds by another user.
fn busybox_context(t: &TestContext) -> String {
    let base = t.path("busybox-ctx");
    copy_dir(&repo().join("testdata/busybox"), &base);
    std::fs::copy(busybox(), base.join("busybox")).unwrap();
    base.to_str().unwrap().to_string()
}

#[test]
fn rootless_mode_builds_and_runs_as_an_unprivileged_user() {
    let t = TestContext::new();
    let base = busybox_context(&t);
    let app = t.context(
        "app",
        &[(
            "Dockerfile",
            "FROM busybox\n\
             RUN mkdir -p /d/a && touch /d/a/x /d/keep && cat /proc/self/uid_map\n\
             RUN rm -rf /d && mkdir /d && touch /d/new\n",
        )],
    );
    let mounts_before = host_mounts::rbuild_mounts(&[&t.path("")]);
    give_to(&t, "65534:65534");
    let nobody = |args: &[&str]| as_user(&t, "65534:65534", args);
    succeeded(nobody(&["build", "-t", "busybox", &base]));
    let log = succeeded(nobody(&["build", "-t", "app", app.to_str().unwrap()]));
    // The RUN saw itself as root, mapped onto nobody on the host.
    assert!(
        log.split_whitespace()
            .collect::<Vec<_>>()
            .windows(3)
            .any(|w| w == ["0", "65534", "1"]),
        "{log}"
    );
    // The second RUN replaced /d: an opaque directory in the layer.
    let out = succeeded(nobody(&[
        "run",
        "--rm",
        "app",
        "sh",
        "-c",
        "ls /d; id -u; echo $$",
    ]));
    assert_eq!(out, "new\n0\n1\n");
    let out = succeeded(nobody(&[
        "run",
        "--rm",
        "--network",
        "none",
        "app",
        "cat",
        "/proc/net/dev",
    ]));
    assert_eq!(out.lines().count(), 3, "only lo: {out}");
    // Only root exists without subordinate ids: a clear error, no crash.
    let out = nobody(&["run", "--rm", "-u", "1000", "app", "id"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/etc/subuid"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Everything in the store belongs to nobody on the host.
    let meta = std::fs::metadata(t.root().join("index.json")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 65534);
    assert_eq!(
        host_mounts::rbuild_mounts(&[&t.path("")]),
        mounts_before,
        "no mount left on the host"
    );
}

#[test]
fn rootless_mode_maps_subordinate_ids() {
    // .ci/run creates this user with 65,536 subordinate ids from 200000.
    let user = "rbuild-rootless:rbuild-rootless";
    let t = TestContext::new();
    let base = busybox_context(&t);
    let app = t.context(
        "app",
        &[
            (
                "Dockerfile",
                "FROM busybox\n\
                 RUN echo app:x:1000:1000::/home/app:/bin/sh >> /etc/passwd \\\n\
                     && echo app:x:1000: >> /etc/group && mkdir -p /home/app \\\n\
                     && chown app:app /home/app && cat /proc/self/uid_map\n\
                 COPY --chown=app:app f /home/app/f\n\
                 USER app\n\
                 RUN id && touch /home/app/made\n",
            ),
            ("f", "data"),
        ],
    );
    give_to(&t, user);
    succeeded(as_user(&t, user, &["build", "-t", "busybox", &base]));
    let log = succeeded(as_user(
        &t,
        user,
        &["build", "-t", "app", app.to_str().unwrap()],
    ));
    assert!(log.contains("uid=1000(app) gid=1000(app)"), "{log}");
    let host_uid = Command::new("id")
        .args(["-u", "rbuild-rootless"])
        .output()
        .unwrap();
    let host_uid = String::from_utf8(host_uid.stdout).unwrap();
    // The uid map, as the RUN printed it (after the `#3 0.123` prefixes).
    let map: Vec<Vec<&str>> = log
        .lines()
        .map(|l| l.split_whitespace().skip(2).collect::<Vec<_>>())
        .filter(|f| f.len() == 3 && f.iter().all(|x| x.parse::<u32>().is_ok()))
        .collect();
    assert_eq!(
        map,
        [["0", host_uid.trim(), "1"], ["1", "200000", "65536"]],
        "{log}"
    );
    let out = succeeded(as_user(
        &t,
        user,
        &[
            "run",
            "--rm",
            "app",
            "stat",
            "-c",
            "%u:%g %n",
            "/home/app/f",
            "/home/app/made",
        ],
    ));
    assert_eq!(out, "1000:1000 /home/app/f\n1000:1000 /home/app/made\n");
    // On the host, uid 1000 of the image is subordinate id 200000 + 999.
    let owners = Command::new("find")
        .arg(t.root())
        .args(["-name", "made", "-printf", "%U\n"])
        .output()
        .unwrap();
    let owners = String::from_utf8(owners.stdout).unwrap();
    assert!(
        !owners.is_empty() && owners.lines().all(|u| u == "200999"),
        "{owners}"
    );
}

#[test]
fn a_reader_that_closes_stdout_ends_the_command_quietly() {
    let t = TestContext::new();
    // A pipe whose read end is closed before rbuild starts: its first
    // write to stdout gets EPIPE, as under `rbuild images | head -0`.
    let (read, write) = nix::unistd::pipe().expect("pipe");
    drop(read);
    let out = t
        .cmd(&["images"])
        .stdout(std::process::Stdio::from(write))
        .output()
        .expect("run rbuild");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "status {}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}
