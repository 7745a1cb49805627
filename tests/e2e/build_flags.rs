//! `docker build` flags as CI scripts pass them: each one does what
//! BuildKit does with it, or is refused clearly.

use std::io::Write;
use std::process::{Output, Stdio};

use crate::support::TestContext;

/// Runs rbuild with `input` on standard input.
fn with_stdin(t: &TestContext, args: &[&str], input: &[u8], env: &[(&str, &str)]) -> Output {
    let mut cmd = t.cmd(args);
    cmd.envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn rbuild");
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// Fails the test unless `out` succeeded.
fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The entry names of a tar.
fn tar_names(bytes: &[u8]) -> Vec<String> {
    tar::Archive::new(bytes)
        .entries()
        .expect("a tar")
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect()
}

#[test]
fn labels_are_set_over_the_dockerfiles() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let ctx = t.context(
        "ctx",
        &[("Dockerfile", "FROM busybox\nLABEL a=dockerfile keep=yes\n")],
    );
    t.ok(&[
        "build",
        "-q",
        "-t",
        "labelled",
        "--label",
        "a=cli",
        "--label",
        "bare",
        ctx.to_str().unwrap(),
    ]);
    let labels = &t.config("labelled")["config"]["Labels"];
    assert_eq!(labels["a"], "cli", "--label wins over LABEL");
    assert_eq!(labels["keep"], "yes");
    assert_eq!(labels["bare"], "");
}

#[test]
fn dash_o_dash_writes_only_a_tar_to_stdout_and_cacheonly_names_nothing() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let ctx = t.context(
        "ctx",
        &[("Dockerfile", "FROM busybox\nRUN echo x > /made\n")],
    );
    let out = t.ok(&["build", "-q", "-o", "-", ctx.to_str().unwrap()]);
    let names = tar_names(&out.stdout);
    assert!(names.iter().any(|n| n == "made"), "{names:?}");

    let ctx = t.context(
        "cacheonly",
        &[("Dockerfile", "FROM busybox\nRUN echo y > /y\n")],
    );
    let dir = ctx.to_str().unwrap();
    t.ok(&["build", "-t", "never", "-o", "type=cacheonly", dir]);
    assert!(
        !t.stdout(&["images"]).contains("never"),
        "cacheonly names nothing"
    );
    let again = t.ok(&["build", "--progress", "plain", "-o", "type=cacheonly", dir]);
    let log = String::from_utf8_lossy(&again.stderr);
    assert!(log.contains("CACHED"), "the cache holds the steps:\n{log}");
}

#[test]
fn dockerfile_and_context_from_stdin() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    // -f -: the Dockerfile from stdin, the context a directory.
    let ctx = t.context("ctx", &[("file.txt", "from-dir\n")]);
    let out = with_stdin(
        &t,
        &["build", "-q", "-t", "a", "-f", "-", ctx.to_str().unwrap()],
        b"FROM busybox\nCOPY file.txt /\n",
        &[],
    );
    assert_ok(&out, "-f -");
    assert_eq!(
        t.stdout(&["run", "--rm", "a", "cat", "/file.txt"]),
        "from-dir\n"
    );

    // -: a tar on stdin is the context (with its Dockerfile).
    let mut tar = tar::Builder::new(Vec::new());
    for (name, content) in [
        ("Dockerfile", "FROM busybox\nCOPY in-tar.txt /\n"),
        ("in-tar.txt", "from-tar\n"),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        tar.append_data(&mut header, name, content.as_bytes())
            .unwrap();
    }
    let out = with_stdin(
        &t,
        &["build", "-q", "-t", "b", "-"],
        &tar.into_inner().unwrap(),
        &[],
    );
    assert_ok(&out, "- with a tar");
    assert_eq!(
        t.stdout(&["run", "--rm", "b", "cat", "/in-tar.txt"]),
        "from-tar\n"
    );

    // `rbuild -` with a Dockerfile alone: an empty context.
    let out = with_stdin(
        &t,
        &["-", "-q"],
        b"FROM busybox\nRUN echo alone > /a\n",
        &[],
    );
    assert_ok(&out, "rbuild - with a Dockerfile");
    let id = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        t.stdout(&["run", "--rm", id.trim(), "cat", "/a"]),
        "alone\n"
    );
    // Unnamed, it is a dangling image until prune forgets it.
    let short = &id.trim()["sha256:".len()..][..12];
    let listed = t.stdout(&["images"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("<none>") && l.contains(short)),
        "{listed}"
    );
    t.ok(&["prune"]);
    assert!(!t.stdout(&["images"]).contains(short));
    let out = with_stdin(&t, &["build", "-f", "-", "-"], b"FROM busybox\n", &[]);
    assert!(!out.status.success(), "stdin cannot be both");
}

#[test]
fn a_bare_secret_id_is_the_variable_else_the_file() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let ctx = t.context(
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM busybox\nRUN --mount=type=secret,id=RBUILD_E2E_TOKEN cat /run/secrets/RBUILD_E2E_TOKEN > /seen\n",
            ),
        ],
    );
    let dir = ctx.to_str().unwrap();
    let out = with_stdin(
        &t,
        &[
            "build",
            "-q",
            "--no-cache",
            "-t",
            "env",
            "--secret",
            "id=RBUILD_E2E_TOKEN",
            dir,
        ],
        b"",
        &[("RBUILD_E2E_TOKEN", "from-env")],
    );
    assert_ok(&out, "secret from the environment");
    assert_eq!(
        t.stdout(&["run", "--rm", "env", "cat", "/seen"]),
        "from-env"
    );
    // Unset: the file of that name (relative to the working directory).
    std::fs::write(t.path("RBUILD_E2E_TOKEN"), "from-file").unwrap();
    let out = t
        .cmd(&[
            "build",
            "-q",
            "--no-cache",
            "-t",
            "file",
            "--secret",
            "id=RBUILD_E2E_TOKEN",
            dir,
        ])
        .env_remove("RBUILD_E2E_TOKEN")
        .current_dir(t.path(""))
        .output()
        .unwrap();
    assert_ok(&out, "secret from a file");
    assert_eq!(
        t.stdout(&["run", "--rm", "file", "cat", "/seen"]),
        "from-file"
    );
}

#[test]
fn accepted_flags_say_so_once_and_attestations_need_false() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let ctx = t.context("ctx", &[("Dockerfile", "FROM busybox\n")]);
    let dir = ctx.to_str().unwrap();
    let out = t.ok(&[
        "build",
        "-q",
        "--load",
        "--builder",
        "default",
        "--provenance=false",
        "--sbom=false",
        dir,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("one builder").count(), 1, "{err}");
    for refused in [
        "--provenance=true",
        "--sbom=true",
        "--provenance=mode=max",
        "--sbom",
    ] {
        let out = t.cmd(&["build", "-q", dir, refused]).output().unwrap();
        assert!(!out.status.success(), "{refused}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("=false"), "{refused}: {err}");
    }
}

#[test]
fn buildkit_progress_picks_the_display() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let ctx = t.context(
        "ctx",
        &[("Dockerfile", "FROM busybox\nRUN echo shown-line\n")],
    );
    let dir = ctx.to_str().unwrap();
    let plain = with_stdin(
        &t,
        &["build", "--no-cache", dir],
        b"",
        &[("BUILDKIT_PROGRESS", "plain")],
    );
    assert_ok(&plain, "plain");
    let log = String::from_utf8_lossy(&plain.stderr);
    assert!(log.contains("shown-line") && log.contains("DONE"), "{log}");
    let quiet = with_stdin(
        &t,
        &["build", "--no-cache", dir],
        b"",
        &[("BUILDKIT_PROGRESS", "quiet")],
    );
    assert_ok(&quiet, "quiet");
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains("shown-line"));
}

#[test]
fn unknown_words_are_unknown_commands_and_paths_are_contexts() {
    let t = TestContext::new();
    let out = t.cmd(&["biuld", "."]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown command \"biuld\"; did you mean \"build\"?"),
        "{err}"
    );
    for args in [
        &["exec", "x", "sh"][..],
        &["ps"],
        &["stop", "x"],
        &["run", "-d", "busybox"],
    ] {
        let out = t.cmd(args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("rbuild has no daemon"), "{args:?}: {err}");
    }
    t.make_busybox("busybox");
    let ctx = t.context("ctx", &[("Dockerfile", "FROM busybox\n")]);
    let out = t
        .cmd(&["./ctx", "-q"])
        .current_dir(t.path(""))
        .output()
        .unwrap();
    assert_ok(&out, "rbuild ./ctx");
    assert!(ctx.is_dir());
}
