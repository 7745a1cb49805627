//! Moby's two build-level conformance files (`testdata/conformance/builds/
//! moby/`), built target by target on a busybox base: `COPY --from` makes
//! missing parents at any depth, and keeps (or, with `--chown`, sets)
//! ownership; the second file's RUN steps check ownership themselves and
//! fail the build on a mismatch.

use super::support::{TestContext, repo};

fn moby(name: &str) -> String {
    repo()
        .join("testdata/conformance/builds/moby")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn moby_multi_stage_copy_targets_build_and_place_the_file() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let ctx = t.context("ctx", &[]);
    std::fs::create_dir_all(&ctx).unwrap();
    let file = moby("Dockerfile.TestBuildMultiStageCopy");
    for (target, path) in [
        ("copy_to_root", "hello"),
        ("copy_to_newdir", "newdir/hello"),
        ("copy_to_newdir_nested", "newdir/newsubdir/hello"),
        ("copy_to_existingdir", "existingdir/hello"),
        ("copy_to_newsubdir", "existingdir/newsubdir/hello"),
    ] {
        let out = t.path(target);
        t.ok(&[
            "build",
            "-q",
            "-f",
            &file,
            "--target",
            target,
            "-o",
            &format!("type=local,dest={}", out.display()),
            ctx.to_str().unwrap(),
        ]);
        let copied = std::fs::read_to_string(out.join(path))
            .unwrap_or_else(|e| panic!("{target}: {path}: {e}"));
        assert_eq!(copied, "Hello World\n", "{target}");
    }
}

#[test]
fn moby_preserve_ownership_targets_pass_their_own_checks() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let ctx = t.context("ctx", &[]);
    std::fs::create_dir_all(&ctx).unwrap();
    let file = moby("Dockerfile.TestBuildPreserveOwnership");
    for target in ["copy_from", "copy_from_chowned"] {
        // The target's last RUN exits 1 on any ownership mismatch.
        t.ok(&[
            "build",
            "-q",
            "-f",
            &file,
            "--target",
            target,
            ctx.to_str().unwrap(),
        ]);
    }
}
