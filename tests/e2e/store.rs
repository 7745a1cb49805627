//! The store's promises and the files rbuild keeps for the user: login
//! through credential helpers and never over a file it cannot read.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rbuild_registry::testing::TestRegistry;

use crate::support::TestContext;

/// A credential helper (`docker-credential-e2e`) that keeps one entry in
/// `stored.json` beside it and notes what it was asked to erase.
fn install_helper(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let script = format!(
        r#"#!/bin/sh
d={dir}
case "$1" in
  store) cat > "$d/stored.json" ;;
  get) read server; if [ -f "$d/stored.json" ]; then cat "$d/stored.json"; else echo "credentials not found in native keychain"; exit 1; fi ;;
  erase) read server; echo "$server" > "$d/erased"; rm -f "$d/stored.json" ;;
  *) exit 2 ;;
esac
"#,
        dir = dir.display()
    );
    let helper = dir.join("docker-credential-e2e");
    std::fs::write(&helper, script).unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `rbuild ARGS` with a docker config dir and the helper dir on `$PATH`.
fn with_config(t: &TestContext, args: &[&str]) -> std::process::Output {
    let path = format!(
        "{}:{}",
        t.path("helper").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    t.cmd(args)
        .env("DOCKER_CONFIG", t.path("docker"))
        .env("PATH", path)
        .output()
        .expect("run rbuild")
}

#[test]
fn login_and_logout_store_and_erase_through_the_credential_helper() {
    let registry = TestRegistry::start_with_auth("alice", "s3cret");
    let t = TestContext::new();
    install_helper(&t.path("helper"));
    let config = t.path("docker/config.json");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, r#"{"credsStore": "e2e", "auths": {}}"#).unwrap();

    let out = with_config(
        &t,
        &["login", "-u", "alice", "-p", "s3cret", &registry.addr],
    );
    assert!(out.status.success(), "{out:?}");
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.path("helper/stored.json")).unwrap()).unwrap();
    assert_eq!(stored["ServerURL"], registry.addr.as_str());
    assert_eq!(stored["Username"], "alice");
    assert_eq!(stored["Secret"], "s3cret");
    let file = std::fs::read_to_string(&config).unwrap();
    assert!(!file.contains("auth\""), "no copy in the file: {file}");
    assert!(file.contains("credsStore"), "{file}");

    // Push reads them back through the helper.
    t.make_busybox("busybox");
    let remote = format!("{}/team/busybox", registry.addr);
    t.ok(&["tag", "busybox", &remote]);
    let out = with_config(&t, &["push", "-q", &remote]);
    assert!(out.status.success(), "{out:?}");

    let out = with_config(&t, &["logout", &registry.addr]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(t.path("helper/erased"))
            .unwrap()
            .trim(),
        registry.addr
    );
    assert!(!t.path("helper/stored.json").exists());
    let out = with_config(&t, &["push", "-q", &remote]);
    assert!(!out.status.success(), "anonymous push is refused: {out:?}");
}

#[test]
fn login_refuses_to_overwrite_a_config_it_cannot_parse() {
    let registry = TestRegistry::start_with_auth("alice", "s3cret");
    let t = TestContext::new();
    let config = t.path("docker/config.json");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    let broken = "{\"auths\": {\"other.example\": {\"auth\": \"b3RoZXI6cGFzcw==\"}},,}";
    std::fs::write(&config, broken).unwrap();
    let out = with_config(
        &t,
        &["login", "-u", "alice", "-p", "s3cret", &registry.addr],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("config.json") && stderr.contains("refusing to overwrite"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&config).unwrap(), broken);
}

#[test]
fn login_without_a_helper_writes_a_private_file_and_keeps_other_entries() {
    let registry = TestRegistry::start_with_auth("alice", "s3cret");
    let t = TestContext::new();
    let config = t.path("docker/config.json");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(
        &config,
        r#"{"auths": {"other.example": {"auth": "b3RoZXI6cGFzcw=="}}, "detachKeys": "ctrl-x"}"#,
    )
    .unwrap();
    let out = with_config(
        &t,
        &["login", "-u", "alice", "-p", "s3cret", &registry.addr],
    );
    assert!(out.status.success(), "{out:?}");
    let mode = std::fs::metadata(&config).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    assert_eq!(file["auths"]["other.example"]["auth"], "b3RoZXI6cGFzcw==");
    assert_eq!(file["detachKeys"], "ctrl-x");
    assert_eq!(
        file["auths"][registry.addr.as_str()]["auth"],
        rbuild_registry::auth::encode_base64(b"alice:s3cret")
    );
    // No temp file is left beside it.
    let names: Vec<_> = std::fs::read_dir(config.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["config.json"]);
}

#[test]
fn builds_pulls_pushes_tags_loads_and_prunes_at_once_leave_a_clean_store() {
    // The short version of the stress script: 4 rounds of 9 commands at once.
    let out = std::process::Command::new(crate::support::repo().join("scripts/stress-store.sh"))
        .arg("4")
        .env("RBUILD", env!("CARGO_BIN_EXE_rbuild"))
        .output()
        .expect("run scripts/stress-store.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("OK: 4 rounds"), "{stdout}");
}

/// Builds `ctx` tagged `tag` with `SOURCE_DATE_EPOCH=epoch` (or unset);
/// returns the printed digest.
fn build_with_epoch(t: &TestContext, epoch: Option<&str>, args: &[&str]) -> String {
    let mut cmd = t.cmd(&[&["build", "-q"], args].concat());
    cmd.env_remove("SOURCE_DATE_EPOCH");
    if let Some(e) = epoch {
        cmd.env("SOURCE_DATE_EPOCH", e);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A store with a busybox base built at `SOURCE_DATE_EPOCH=0`, so that
/// stores can be compared.
fn store_with_base() -> TestContext {
    let t = TestContext::new();
    let ctx = t.path("busybox-ctx");
    crate::support::copy_dir(&crate::support::repo().join("testdata/busybox"), &ctx);
    std::fs::copy(crate::support::busybox(), ctx.join("busybox")).unwrap();
    build_with_epoch(&t, Some("0"), &["-t", "busybox", ctx.to_str().unwrap()]);
    t
}

#[test]
fn source_date_epoch_makes_its_own_layers_on_a_warm_store_and_clamps_type_tar() {
    let files = [
        (
            "Dockerfile",
            "FROM busybox\nCOPY f /f\nRUN echo made > /made\n",
        ),
        ("f", "content\n"),
    ];
    let warm = store_with_base();
    let ctx = warm.context("app", &files);
    let ctx = ctx.to_str().unwrap();
    let unclamped = build_with_epoch(&warm, None, &["-t", "app", ctx]);
    let clamped = build_with_epoch(&warm, Some("1000"), &["-t", "app", ctx]);
    assert_ne!(unclamped, clamped);

    let fresh = store_with_base();
    let ctx2 = fresh.context("app", &files);
    let reference = build_with_epoch(&fresh, Some("1000"), &["-t", "app", ctx2.to_str().unwrap()]);
    assert_eq!(
        clamped, reference,
        "the warm store reused a layer of another epoch"
    );
    // And back: the unclamped layers are found again.
    assert_eq!(
        build_with_epoch(&warm, None, &["-t", "app", ctx]),
        unclamped
    );

    // type=tar clamps file times too (RUN wrote /made just now).
    let tar_path = warm.path("fs.tar");
    let output = format!("type=tar,dest={}", tar_path.display());
    build_with_epoch(&warm, Some("1000"), &["-o", &output, ctx]);
    let mut archive = tar::Archive::new(std::fs::File::open(&tar_path).unwrap());
    let mut seen = 0;
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let mtime = entry.header().mtime().unwrap();
        assert!(
            mtime <= 1000,
            "{:?} has mtime {mtime}",
            entry.path().unwrap()
        );
        seen += 1;
    }
    assert!(seen > 100, "the whole filesystem is there ({seen} entries)");
}

/// Runs git in `dir`, with fixed identities and times.
fn git(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_DATE", "1600000000 +0000")
        .env("GIT_AUTHOR_DATE", "1600000000 +0000")
        .output()
        .expect("git");
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

#[test]
fn two_fresh_stores_building_one_git_commit_get_one_digest_with_no_flags() {
    let t = TestContext::new();
    let origin = t.context(
        "origin",
        &[
            ("Dockerfile", "FROM scratch\nCOPY app.sh data/ /app/\n"),
            ("app.sh", "#!/bin/sh\necho hi\n"),
            ("data/x", "x\n"),
        ],
    );
    std::fs::set_permissions(
        origin.join("app.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    git(&origin, &["init", "-q"]);
    git(&origin, &["add", "."]);
    git(&origin, &["commit", "-qm", "one"]);
    // What a checkout under umask 002 makes of the same commit.
    let group_writable = |dir: &Path| {
        for (name, mode) in [("app.sh", 0o775), ("data", 0o775), ("data/x", 0o664)] {
            std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(mode))
                .unwrap();
        }
    };
    let build = |store: &TestContext, clone: &str, extra: &[&str]| {
        let dir = store.path(clone);
        git(
            origin.parent().unwrap(),
            &[
                "clone",
                "-q",
                origin.to_str().unwrap(),
                dir.to_str().unwrap(),
            ],
        );
        if clone == "clone-b" {
            group_writable(&dir);
        }
        // The clones' files are written now, seconds apart.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let mut args = vec!["build", "--progress", "plain"];
        args.extend_from_slice(extra);
        args.push(dir.to_str().unwrap());
        let mut cmd = store.cmd(&args);
        cmd.env_remove("SOURCE_DATE_EPOCH");
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let log = String::from_utf8_lossy(&out.stderr).to_string();
        let digest = log
            .split("writing image ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("the image digest in the progress")
            .to_string();
        (digest, log)
    };
    let a = TestContext::new();
    let b = TestContext::new();
    let (first, log) = build(&a, "clone-a", &[]);
    assert!(
        log.contains("SOURCE_DATE_EPOCH=1600000000: the context's git HEAD commit time"),
        "{log}"
    );
    assert!(
        log.contains("context file modes as git records them"),
        "{log}"
    );
    let (second, _) = build(&b, "clone-b", &[]);
    assert_eq!(first, second, "another machine, another umask, one digest");
    let (off, log) = build(&b, "clone-c", &["--source-date-epoch", "none"]);
    assert_ne!(off, first, "real times differ");
    assert!(!log.contains("git HEAD"), "{log}");
    let (flag, _) = build(&b, "clone-d", &["--source-date-epoch", "1600000000"]);
    assert_eq!(flag, first);
}

#[test]
fn owners_of_context_files_are_not_part_of_cache_keys() {
    let t = store_with_base();
    let ctx = t.context(
        "owned",
        &[
            (
                "Dockerfile",
                "FROM busybox\nCOPY f /f\nRUN stat -c %u:%g /f > /owner\n",
            ),
            ("f", "same content\n"),
        ],
    );
    let ctx = ctx.to_str().unwrap();
    let build = || {
        let log = t
            .ok(&["build", "--progress", "plain", "-t", "owned", ctx])
            .stderr;
        String::from_utf8(log).unwrap()
    };
    build();
    std::os::unix::fs::chown(format!("{ctx}/f"), Some(4321), Some(4321)).unwrap();
    let log = build();
    let line = log.lines().find(|l| l.contains("COPY f /f")).expect(&log);
    let step = line.split_whitespace().next().unwrap();
    assert!(log.contains(&format!("{step} CACHED")), "{log}");
    assert_eq!(
        t.stdout(&["run", "--rm", "owned", "cat", "/owner"]),
        "0:0\n"
    );
}
