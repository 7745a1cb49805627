//! One testdata case per group of instructions and flags, each asserting
//! the files in the built image and its config.

use std::process::Command;

use crate::support::{TestContext, copy_dir, repo};

/// Copies `testdata/NAME` into the test dir and returns it.
fn case(t: &TestContext, name: &str) -> std::path::PathBuf {
    let dir = t.path(name);
    copy_dir(&repo().join("testdata").join(name), &dir);
    dir
}

/// `sh -c SCRIPT` as root in `image`.
fn sh(t: &TestContext, image: &str, script: &str) -> String {
    t.stdout(&[
        "run",
        "--rm",
        "-u",
        "0",
        "--entrypoint",
        "",
        image,
        "sh",
        "-c",
        script,
    ])
}

#[test]
fn copy_and_add_follow_dockers_rules() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let ctx = case(&t, "copy-rules");
    std::fs::set_permissions(
        ctx.join("bin/tool"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let status = Command::new("tar")
        .args(["czf", "archive.tar.gz", "src", "a"])
        .current_dir(&ctx)
        .status()
        .unwrap();
    assert!(status.success());
    t.ok(&["build", "-q", "-t", "copy", ctx.to_str().unwrap()]);
    let out = sh(
        &t,
        "copy",
        "cd / && stat -c '%a %u:%g %n' owned owned/main.c usr/local/bin/tool etc/app/a.conf etc/app/b.conf; \
         ls etc/app data parents/a parents/b; echo linked: $(ls linked); echo unpacked: $(ls unpacked) $(ls unpacked/src); \
         cat renamed.txt dir/single.txt linked/single.txt; /usr/local/bin/tool",
    );
    for want in [
        "755 1234:1234 owned\n",
        "644 1234:1234 owned/main.c",
        "755 0:0 usr/local/bin/tool",
        "640 0:0 etc/app/a.conf",
        "640 0:0 etc/app/b.conf",
        "linked: single.txt\n",
        "unpacked: a src main.c\n",
        "single\nsingle\nsingle\ntool",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    assert!(
        !out.contains("README"),
        "conf/*.conf selects only .conf: {out}"
    );
    assert!(
        out.contains("keep.txt") && !out.contains("skip.tmp"),
        "--exclude: {out}"
    );
    assert!(
        out.contains("x.txt") && out.contains("y.txt"),
        "--parents: {out}"
    );
    assert!(!out.contains("archive.tar.gz"), "{out}");
}

#[test]
fn config_instructions_write_dockers_config() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let ctx = case(&t, "config");
    t.ok(&["build", "-q", "-t", "config", ctx.to_str().unwrap()]);
    let image = t.config("config");
    let c = &image["config"];
    let env: Vec<&str> = c["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    for want in ["A=1", "B=two words", "C=1-x"] {
        assert!(env.contains(&want), "{want} in {env:?}");
    }
    assert_eq!(c["Labels"]["a.b"], "c");
    assert_eq!(c["Labels"]["with space"], "v");
    assert!(c["ExposedPorts"].get("80/tcp").is_some(), "{c}");
    assert!(c["ExposedPorts"].get("443/udp").is_some(), "{c}");
    assert!(c["Volumes"].get("/data").is_some(), "{c}");
    assert_eq!(c["StopSignal"], "SIGTERM");
    assert_eq!(c["Healthcheck"]["Test"], serde_json::json!(["CMD", "true"]));
    assert_eq!(c["Healthcheck"]["Interval"], 5_000_000_000u64);
    assert_eq!(c["Healthcheck"]["Retries"], 2);
    assert_eq!(c["Shell"], serde_json::json!(["/bin/sh", "-ec"]));
    assert_eq!(
        c["OnBuild"],
        serde_json::json!(["RUN echo triggered > /tmp/onbuild.txt"])
    );
    assert_eq!(c["WorkingDir"], "/w/sub");
    assert_eq!(c["User"], "1000:1000");
    assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/echo"]));
    assert_eq!(c["Cmd"], serde_json::json!(["a", "b"]));
    assert_eq!(image["author"], "Jane Doe <jane@example.com>");
    let history = image["history"].as_array().unwrap();
    let last = history.last().unwrap();
    assert!(
        last["created_by"]
            .as_str()
            .unwrap()
            .contains("CMD [\"a\" \"b\"]"),
        "{last}"
    );
    assert_eq!(last["empty_layer"], true);
    // ENTRYPOINT + CMD run as Docker runs them; WORKDIR was created.
    assert_eq!(t.stdout(&["run", "--rm", "config"]).trim(), "a b");
    assert_eq!(sh(&t, "config", "cd /w/sub && pwd").trim(), "/w/sub");

    // A child image runs the ONBUILD trigger.
    let child = case(&t, "onbuild");
    t.ok(&["build", "-q", "-t", "child", child.to_str().unwrap()]);
    assert_eq!(sh(&t, "child", "cat /seen.txt").trim(), "triggered");
    let child_config = t.config("child");
    assert!(
        child_config["config"]["OnBuild"].is_null(),
        "triggers are not inherited"
    );
}

#[test]
fn run_forms_shell_heredocs_and_network() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let ctx = case(&t, "run-forms");
    t.ok(&["build", "-q", "-t", "runs", ctx.to_str().unwrap()]);
    let out = sh(
        &t,
        "runs",
        "cat /exec.txt /shell.txt /heredoc.txt /inline.txt /links.txt",
    );
    assert_eq!(
        out, "exec\nfrom-shell\nheredoc1\nheredoc2\ninline\n1\n",
        "{out}"
    );
}

#[test]
fn stages_by_name_index_and_image_with_args_and_target() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let ctx = case(&t, "multistage");
    let c = ctx.to_str().unwrap();
    t.ok(&["build", "-q", "-t", "multi", "--build-arg", "VERSION=2", c]);
    let out = sh(
        &t,
        "multi",
        "cat /from-index /from-name; cmp /from-image /bin/busybox && echo same",
    );
    assert_eq!(out, "v2\nsecond\nsame\n");
    t.ok(&["build", "-q", "-t", "first", "--target", "first", c]);
    let out = sh(&t, "first", "cat /version; ls /second 2>&1 || true");
    assert!(out.starts_with("v1\n"), "{out}");
    assert!(out.contains("No such file"), "{out}");
    let unknown = t.cmd(&["build", "--target", "nope", c]).output().unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("nope"));
}

#[test]
fn run_mounts_cache_tmpfs_bind_and_secret() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let ctx = case(&t, "mounts");
    let secret = t.path("token");
    std::fs::write(&secret, "s3cret").unwrap();
    let secret_arg = format!("id=token,src={}", secret.display());
    let c = ctx.to_str().unwrap();
    t.ok(&["build", "-q", "-t", "mounts", "--secret", &secret_arg, c]);
    let out = sh(
        &t,
        "mounts",
        "cat /cache-count /tmpfs.txt /bound.txt /ctx.txt /secret-len /optional.txt; ls -d /cache /scratch /mnt /in.txt /run/secrets 2>/dev/null; true",
    );
    assert_eq!(
        out, "1\ntmpfs\nfrom-stage\nfrom-context\n6\nskipped\n",
        "mount points stay out of the image: {out}"
    );
    // The cache mount persists across builds; the secret never reaches a layer.
    t.ok(&[
        "build",
        "-q",
        "-t",
        "mounts",
        "--no-cache",
        "--secret",
        &secret_arg,
        c,
    ]);
    assert_eq!(sh(&t, "mounts", "cat /cache-count"), "2\n");
    // Only the `required=true` secret fails the build, by its own check
    // (a missing optional secret, as `optional` above, is skipped).
    let missing = t.cmd(&["build", "--no-cache", c]).output().unwrap();
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        !missing.status.success()
            && stderr.contains("secret token not found: pass it with --secret id=token"),
        "a required secret that is missing fails the build: {stderr}"
    );
}

/// A RUN that changes nothing (overlayfs only copied up the directory of
/// its mount points) adds no layer, as BuildKit drops an empty one: its
/// history entry is empty and the next RUN still sees every file.
#[test]
fn a_run_that_changes_nothing_adds_no_layer() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let ctx = t.context(
        "nothing",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN true\nRUN echo x > /etc/x\nRUN true\nRUN cat /etc/x /etc/passwd >/dev/null\n",
        )],
    );
    t.ok(&["build", "-q", "-t", "nothing", ctx.to_str().unwrap()]);
    let (base, image) = (t.config("busybox"), t.config("nothing"));
    let layers = |c: &serde_json::Value| c["rootfs"]["diff_ids"].as_array().unwrap().len();
    assert_eq!(layers(&image), layers(&base) + 1, "only the RUN that wrote");
    let history = image["history"].as_array().unwrap();
    let empty: Vec<bool> = history[history.len() - 4..]
        .iter()
        .map(|h| h["empty_layer"] == true)
        .collect();
    assert_eq!(empty, [true, false, true, true], "{history:?}");
    assert_eq!(sh(&t, "nothing", "cat /etc/x"), "x\n");
}
