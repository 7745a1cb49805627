//! The test context: a private store, the rbuild binary, and helpers to
//! make base images from Debian's static busybox.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A private store and a scratch directory, removed on drop.
pub struct TestContext {
    dir: tempfile::TempDir,
}

impl TestContext {
    /// A fresh store.
    pub fn new() -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("rbuild-e2e")
                .tempdir()
                .expect("temp dir"),
        }
    }

    /// The store root.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// A scratch path under the test dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `rbuild --root STORE ARGS…`.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rbuild"));
        c.arg("--root")
            .arg(self.root())
            .args(args)
            .env("CI", "true");
        c
    }

    /// Runs rbuild and returns its output, failing the test on a non-zero exit.
    pub fn ok(&self, args: &[&str]) -> Output {
        let out = self.cmd(args).output().expect("run rbuild");
        assert!(
            out.status.success(),
            "rbuild {args:?} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs rbuild and returns stdout as text.
    pub fn stdout(&self, args: &[&str]) -> String {
        String::from_utf8(self.ok(args).stdout).expect("utf-8")
    }

    /// Builds a busybox base image tagged `tag` from /bin/busybox.
    pub fn make_busybox(&self, tag: &str) {
        let ctx = self.path("busybox-ctx");
        copy_dir(&repo().join("testdata/busybox"), &ctx);
        std::fs::copy(busybox(), ctx.join("busybox")).expect("copy busybox");
        self.ok(&["build", "-q", "-t", tag, ctx.to_str().unwrap()]);
    }

    /// Writes a context from (path, content) pairs; returns its dir.
    pub fn context(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = self.path(name);
        for (p, content) in files {
            let f = dir.join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, content).unwrap();
        }
        dir
    }

    /// The image config of a tagged image, as stored: the manifest as
    /// skopeo reads it from the store's OCI layout, then its config blob.
    pub fn config(&self, tag: &str) -> serde_json::Value {
        let raw = skopeo(&[
            "inspect",
            "--raw",
            &format!("oci:{}:{tag}", self.root().display()),
        ]);
        let manifest: serde_json::Value = serde_json::from_str(&raw).expect("manifest json");
        let digest = manifest["config"]["digest"]
            .as_str()
            .expect("config digest");
        let blob = self
            .root()
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"));
        serde_json::from_slice(&std::fs::read(blob).expect("config blob")).expect("config json")
    }
}

/// Runs skopeo (a real consumer of what rbuild writes), failing the test
/// on a non-zero exit; returns its stdout.
pub fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo").args(args).output().expect("skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Debian's static busybox.
pub fn busybox() -> PathBuf {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("busybox-static is installed (see .ci/run)")
}

/// Copies a directory tree (regular files and dirs).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
