//! Outputs and store commands, each checked by a real consumer.

use std::process::Command;

use crate::support::{TestContext, repo, skopeo};

#[test]
fn every_output_type_is_read_by_real_consumers() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let hello = repo().join("testdata/hello");
    let h = hello.to_str().unwrap();
    let oci = t.path("hello-oci.tar");
    let docker = t.path("hello-docker.tar");
    let local = t.path("hello-local");
    let tarball = t.path("hello-rootfs.tar");
    let iid = t.path("iid");
    let meta = t.path("meta.json");
    t.ok(&[
        "build",
        "-q",
        "-t",
        "hello:v1",
        h,
        "-o",
        &format!("type=oci,dest={}", oci.display()),
        "-o",
        &format!("type=docker,dest={}", docker.display()),
        "-o",
        &format!("type=local,dest={}", local.display()),
        "-o",
        &format!("type=tar,dest={}", tarball.display()),
        "--iidfile",
        iid.to_str().unwrap(),
        "--metadata-file",
        meta.to_str().unwrap(),
    ]);
    let config_digest = std::fs::read_to_string(&iid).unwrap();
    assert!(config_digest.starts_with("sha256:"));
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    assert_eq!(m["containerimage.config.digest"], config_digest.as_str());

    assert!(
        skopeo(&[
            "inspect",
            "--config",
            &format!("oci-archive:{}", oci.display())
        ])
        .contains("GREETING=hello")
    );
    assert!(
        skopeo(&[
            "inspect",
            "--config",
            &format!("docker-archive:{}", docker.display())
        ])
        .contains("GREETING=hello")
    );
    assert_eq!(
        std::fs::read_to_string(local.join("app/built.txt")).unwrap(),
        "built by rbuild\n"
    );
    assert!(local.join("bin/busybox").is_file());
    // type=tar holds the same files, bytes and metadata as type=local.
    let untarred = t.path("hello-untarred");
    std::fs::create_dir(&untarred).unwrap();
    let status = Command::new("tar")
        .args(["-xpf"])
        .arg(&tarball)
        .args(["--numeric-owner", "-C"])
        .arg(&untarred)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(untarred.join("app/greet.sh").is_file());
    let diff = Command::new("diff")
        .arg("-r")
        .arg(&untarred)
        .arg(&local)
        .output()
        .unwrap();
    assert!(
        diff.status.success(),
        "{}",
        String::from_utf8_lossy(&diff.stdout)
    );
    let metadata = |dir: &std::path::Path| {
        let out = Command::new("find")
            .arg(dir)
            .args(["-mindepth", "1", "-printf", "%P %y %m %U:%G %l\\n"])
            .output()
            .unwrap();
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        lines.sort();
        lines
    };
    let expected = metadata(&local);
    assert!(
        expected
            .iter()
            .any(|l| l.starts_with("app/greet.sh f 755 0:0")),
        "{expected:?}"
    );
    assert_eq!(metadata(&untarred), expected);

    // umoci's unpack of the stored image equals type=local.
    let bundle = t.path("bundle");
    let out = Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:hello:v1", t.root().display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let diff = Command::new("diff")
        .arg("-r")
        .arg(bundle.join("rootfs"))
        .arg(&local)
        .output()
        .unwrap();
    assert!(
        diff.status.success(),
        "{}",
        String::from_utf8_lossy(&diff.stdout)
    );

    // podman loads the docker archive.
    let podman = std::process::Command::new("podman")
        .arg("--root")
        .arg(t.path("podman-root"))
        .arg("--runroot")
        .arg(t.path("podman-run"))
        .args(["load", "-i"])
        .arg(&docker)
        .output()
        .expect("podman is installed (.ci/run)");
    assert!(
        podman.status.success(),
        "{}",
        String::from_utf8_lossy(&podman.stderr)
    );
    assert!(String::from_utf8_lossy(&podman.stdout).contains("hello:v1"));

    // save/load round trip into another store.
    let saved = t.path("saved.tar");
    t.ok(&["save", "-o", saved.to_str().unwrap(), "hello:v1"]);
    let u = TestContext::new();
    let loaded = u.stdout(&["load", "-i", saved.to_str().unwrap()]);
    assert!(loaded.contains("Loaded image: hello:v1"), "{loaded}");
    assert!(
        u.stdout(&["run", "--rm", "hello:v1"])
            .contains("hello from")
    );
}

#[test]
fn builds_are_reproducible_with_source_date_epoch() {
    let digest = |name: &str, touch: i64| {
        let t = TestContext::new();
        let base = t.path("busybox-ctx");
        crate::support::copy_dir(&repo().join("testdata/busybox"), &base);
        std::fs::copy(crate::support::busybox(), base.join("busybox")).unwrap();
        let out = t
            .cmd(&["build", "-q", "-t", "busybox", base.to_str().unwrap()])
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ctx = t.path(name);
        crate::support::copy_dir(&repo().join("testdata/hello"), &ctx);
        let when =
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_001_000 + touch as u64);
        std::fs::File::options()
            .write(true)
            .open(ctx.join("greet.sh"))
            .unwrap()
            .set_modified(when)
            .unwrap();
        let out = t
            .cmd(&["build", "-q", ctx.to_str().unwrap()])
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let a = digest("ctx-a", 0);
    let b = digest("ctx-b", 12345);
    assert!(a.starts_with("sha256:"));
    assert_eq!(a, b, "clean stores, different paths and mtimes: same image");
}

#[test]
fn store_commands_rmi_prune_du_fsck_and_parse() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let hello = repo().join("testdata/hello");
    t.ok(&["build", "-q", "-t", "hello", hello.to_str().unwrap()]);
    t.ok(&["build", "-q", "-t", "hello", hello.to_str().unwrap()]);
    let du = t.stdout(&["du", "--verbose"]);
    assert!(
        du.contains("CACHE KEY") && du.contains("LAST USED") && du.contains("s ago"),
        "records listed with creation and last use: {du}"
    );
    assert!(
        du.contains("snapshots") && du.contains("Reclaimable"),
        "{du}"
    );
    assert!(t.stdout(&["debug", "fsck"]).contains("0 problems"));
    t.ok(&["rmi", "hello"]);
    assert!(!t.stdout(&["images"]).contains("hello "));
    let pruned = t.stdout(&["prune", "--all", "--force"]);
    assert!(pruned.contains("Total reclaimed space"), "{pruned}");
    // busybox is still tagged, so it still runs.
    assert!(
        t.stdout(&["run", "--rm", "busybox", "echo", "ok"])
            .contains("ok")
    );
    let dump = t.stdout(&[
        "debug",
        "parse",
        "--dump",
        hello.join("Dockerfile").to_str().unwrap(),
    ]);
    assert!(dump.starts_with("(from \"busybox\")\n"), "{dump}");
    let bad = t.path("Dockerfile.bad");
    std::fs::write(&bad, "FROM busybox\nRUN [\"a\", [1]]\n").unwrap();
    let out = t
        .cmd(&[
            "build",
            "-f",
            bad.to_str().unwrap(),
            hello.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Dockerfile.bad:2:1"),
        "errors name file:line:column: {err}"
    );
}

#[test]
fn prune_waits_for_a_running_build() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let ctx = t.context(
        "slow",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN sleep 2 && echo done > /done\n",
        )],
    );
    let mut build = t
        .cmd(&["build", "-q", "-t", "slow", ctx.to_str().unwrap()])
        .spawn()
        .unwrap();
    // Wait until the build holds its shared lease on the store (an
    // exclusive try-lock fails), so prune surely starts during the build.
    let lease = t.root().join("gc.lock");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the build took no lease"
        );
        assert!(build.try_wait().unwrap().is_none(), "the build ended early");
        let held = std::fs::File::open(&lease).ok().is_some_and(|f| {
            nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).is_err()
        });
        if held {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // The lease is taken before the RUN starts and held until it ended,
    // so a prune that waits for it takes at least the RUN's 2 s.
    let leased = std::time::Instant::now();
    t.ok(&["prune", "--all", "--force"]);
    let waited = leased.elapsed();
    assert!(
        waited >= std::time::Duration::from_secs(2),
        "prune returned after {waited:?}, while the build ran"
    );
    assert!(build.wait().unwrap().success());
    assert_eq!(t.stdout(&["run", "--rm", "slow", "cat", "/done"]), "done\n");
    assert!(t.stdout(&["debug", "fsck"]).contains("0 problems"));
}

#[test]
fn killed_builds_leave_the_store_valid() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let ctx = t.context(
        "killed",
        &[
            ("Dockerfile", "FROM busybox\nCOPY big /big\nRUN i=0; while [ $i -lt 300 ]; do dd if=/dev/zero of=/f$i bs=64k count=4 2>/dev/null; i=$((i+1)); done\n"),
            ("big", &"x".repeat(8 << 20)),
        ],
    );
    let c = ctx.to_str().unwrap();
    for delay_ms in [50u64, 150, 300, 600] {
        let mut child = t
            .cmd(&["build", "-q", "--no-cache", "-t", "killed", c])
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        let fsck = t.stdout(&["debug", "fsck"]);
        assert!(
            fsck.contains(" 0 problems"),
            "after a kill at {delay_ms} ms: {fsck}"
        );
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(t.root().to_str().unwrap()),
        "no mount left behind"
    );
    t.ok(&["build", "-q", "-t", "killed", c]);
    assert_eq!(
        t.stdout(&["run", "--rm", "killed", "sh", "-c", "ls / | grep -c '^f'"]),
        "300\n"
    );
    t.ok(&["prune", "--all", "--force"]);
    assert!(
        std::fs::read_dir(t.root().join("tmp"))
            .unwrap()
            .next()
            .is_none(),
        "prune clears leftovers of killed builds"
    );
}

#[test]
fn annotations_and_docker_media_types() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let hello = repo().join("testdata/hello");
    let h = hello.to_str().unwrap();
    t.ok(&[
        "build",
        "-q",
        "-t",
        "oci",
        "--annotation",
        "org.example.k=v",
        h,
    ]);
    let raw = skopeo(&[
        "inspect",
        "--raw",
        &format!("oci:{}:oci", t.root().display()),
    ]);
    assert!(
        raw.contains("application/vnd.oci.image.manifest.v1+json")
            && raw.contains("\"org.example.k\":\"v\""),
        "{raw}"
    );
    let registry = rbuild_registry::testing::TestRegistry::start();
    let remote = format!("{}/media/hello", registry.addr);
    t.ok(&[
        "build",
        "-q",
        "-t",
        &remote,
        "-o",
        "type=registry,oci-mediatypes=false",
        h,
    ]);
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{remote}"),
    ]);
    assert!(
        raw.contains("application/vnd.docker.distribution.manifest.v2+json"),
        "{raw}"
    );
    assert!(
        !raw.contains("vnd.oci.image.layer"),
        "layers use Docker media types too: {raw}"
    );
    let u = TestContext::new();
    assert!(u.stdout(&["run", "--rm", &remote]).contains("hello from"));
}

#[test]
fn pulls_and_unpacks_killed_midway_and_concurrent_builds_with_prune() {
    let registry = rbuild_registry::testing::TestRegistry::start();
    let t = TestContext::new();
    t.make_busybox("busybox");
    let big = t.context(
        "big",
        &[("Dockerfile", "FROM busybox\nRUN i=0; while [ $i -lt 64 ]; do dd if=/dev/urandom of=/blob$i bs=1M count=1 2>/dev/null; i=$((i+1)); done\n")],
    );
    let remote = format!("{}/kill/big", registry.addr);
    t.ok(&["build", "-q", "-t", &remote, big.to_str().unwrap()]);
    t.ok(&["push", "-q", "--compression", "gzip", &remote]);

    // Pull + unpack killed at several points: the store stays valid.
    let u = TestContext::new();
    for delay_ms in [20u64, 100, 250, 500] {
        let mut child = u.cmd(&["run", "--rm", &remote, "true"]).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        let fsck = u.stdout(&["debug", "fsck"]);
        assert!(
            fsck.contains(" 0 problems"),
            "after a kill at {delay_ms} ms: {fsck}"
        );
    }
    assert_eq!(
        u.stdout(&["run", "--rm", &remote, "sh", "-c", "ls / | grep -c blob"]),
        "64\n"
    );

    // Two builds and a prune at once on one store.
    let a = t.context("a", &[("Dockerfile", "FROM busybox\nRUN echo a > /a\n")]);
    let b = t.context("b", &[("Dockerfile", "FROM busybox\nRUN echo b > /b\n")]);
    let ba = t
        .cmd(&["build", "-q", "-t", "a", a.to_str().unwrap()])
        .spawn()
        .unwrap();
    let bb = t
        .cmd(&["build", "-q", "-t", "b", b.to_str().unwrap()])
        .spawn()
        .unwrap();
    let pr = t.cmd(&["prune", "--all", "--force"]).spawn().unwrap();
    for c in [ba, bb, pr] {
        assert!(c.wait_with_output().unwrap().status.success());
    }
    assert!(t.stdout(&["debug", "fsck"]).contains(" 0 problems"));
    assert_eq!(t.stdout(&["run", "--rm", "a", "cat", "/a"]), "a\n");
    assert_eq!(t.stdout(&["run", "--rm", "b", "cat", "/b"]), "b\n");
}
