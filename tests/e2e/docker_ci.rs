//! A CI job written for the docker CLI (`tests/docker-ci/ci.sh`), run
//! unchanged with `docker` being rbuild: a symlink named `docker` first on
//! PATH, the store and a registry of the test's own.

use std::process::Command;

use crate::support::{TestContext, repo};
use crate::text;

#[test]
fn a_docker_cli_ci_script_runs_unchanged() {
    let registry = rbuild_registry::testing::TestRegistry::start();
    let t = TestContext::new();
    t.make_busybox("busybox");
    let bin = t.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_rbuild"), bin.join("docker")).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg(repo().join("tests/docker-ci/ci.sh"))
        .env("PATH", path)
        .env("RBUILD_ROOT", t.root())
        .env("REGISTRY", &registry.addr)
        .env("CI", "true")
        .output()
        .unwrap();
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("docker-ci: ok"), "{log}");
}
