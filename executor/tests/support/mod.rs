//! What the executor's integration tests share: a busybox root filesystem
//! on a temp dir, a spec that runs a shell script on it, and a runner that
//! collects the output.

use std::path::{Path, PathBuf};

use rbuild_executor::{Network, RootFs, RunSpec, Stdio, Stream};

/// A root filesystem layer with Debian's static busybox and its applets.
pub fn busybox_layer(dir: &Path) -> PathBuf {
    let root = dir.join("base");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("busybox-static is installed");
    let list = std::process::Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(applet));
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        root.join("etc/group"),
        "root:x:0:\napp:x:1000:\nwheel:x:10:app\n",
    )
    .unwrap();
    root
}

/// A temp dir with a busybox layer in it.
pub struct Sandbox {
    /// The temp dir.
    pub dir: tempfile::TempDir,
    /// The busybox layer.
    pub base: PathBuf,
}

impl Sandbox {
    /// A fresh temp dir and busybox layer.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let base = busybox_layer(dir.path());
        Self { dir, base }
    }

    /// Runs `sh -c script` as root on the busybox layer.
    pub fn spec(&self, script: &str) -> RunSpec {
        RunSpec {
            rootfs: RootFs {
                lowers: vec![self.base.clone()],
                upper: None,
            },
            args: vec!["sh".into(), "-c".into(), script.into()],
            env: vec![],
            cwd: "/".into(),
            user: String::new(),
            hostname: "sandbox".into(),
            network: Network::Host,
            mounts: vec![],
            layer_mounts: vec![],
            tmpfs: vec![],
            stdio: Stdio::Capture,
            security: Default::default(),
            init: false,
            files: vec![],
            limits: Default::default(),
            readonly_rootfs: false,
            extra_hosts: Vec::new(),
            shm_size: None,
            ulimits: Vec::new(),
            ports: Vec::new(),
        }
    }

    /// A fresh upper dir and its work dir.
    #[allow(dead_code)]
    pub fn upper(&self, name: &str) -> (PathBuf, PathBuf) {
        let (u, w) = (
            self.dir.path().join(name),
            self.dir.path().join(format!("{name}.work")),
        );
        std::fs::create_dir(&u).unwrap();
        std::fs::create_dir(&w).unwrap();
        (u, w)
    }
}

/// Runs `spec`: its exit code, stdout and stderr.
pub fn output(spec: &RunSpec) -> (i32, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = rbuild_executor::run(spec, &mut |s, line| match s {
        Stream::Stdout => out.extend_from_slice(line),
        Stream::Stderr => err.extend_from_slice(line),
    })
    .unwrap();
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}
