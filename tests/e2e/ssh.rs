//! `RUN --mount=type=ssh` with `--ssh`: a real `ssh-agent` holding a key
//! made for the test, listed by the host's `ssh-add -l` inside the RUN.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use crate::support::TestContext;

/// An `ssh-agent` in the foreground on a socket of the test, holding one
/// new ed25519 key commented `rbuild-test-key`; killed on drop.
struct Agent {
    child: Child,
    socket: PathBuf,
}

impl Agent {
    fn start(dir: &Path) -> Self {
        let socket = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("ssh-agent (openssh-client) is installed");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !socket.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "ssh-agent never listened"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let key = dir.join("key");
        let made = Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "rbuild-test-key",
                "-f",
            ])
            .arg(&key)
            .status()
            .unwrap();
        assert!(made.success());
        let added = Command::new("ssh-add")
            .arg(&key)
            .env("SSH_AUTH_SOCK", &socket)
            .output()
            .unwrap();
        assert!(added.status.success(), "{added:?}");
        Self { child, socket }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A context whose image is busybox plus the host's `ssh-add` and the
/// libraries it loads, at their paths.
fn ssh_add_context(t: &TestContext) -> PathBuf {
    let ctx = t.path("ssh-add");
    let ldd = Command::new("ldd")
        .arg("/usr/bin/ssh-add")
        .output()
        .unwrap();
    let libs = String::from_utf8_lossy(&ldd.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
        .map(str::to_string)
        .collect::<Vec<_>>();
    for file in libs.iter().map(String::as_str).chain(["/usr/bin/ssh-add"]) {
        let to = ctx.join("root").join(file.trim_start_matches('/'));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(file, &to).unwrap();
    }
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nCOPY root/ /\n").unwrap();
    ctx
}

#[test]
fn ssh_mounts_forward_the_builds_agent() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    t.ok(&[
        "build",
        "-q",
        "-t",
        "ssh-add",
        ssh_add_context(&t).to_str().unwrap(),
    ]);
    let agent = Agent::start(&t.path(""));
    let ctx = t.context(
        "app",
        &[(
            "Dockerfile",
            "FROM ssh-add\n\
             RUN --mount=type=ssh echo sock=$SSH_AUTH_SOCK; ls -ln $SSH_AUTH_SOCK | cut -c1-10; ssh-add -l\n\
             USER 65534\n\
             RUN --mount=type=ssh,id=work,target=/tmp/agent,mode=0660,gid=65534 ls -ln /tmp/agent | cut -c1-10; SSH_AUTH_SOCK=/tmp/agent ssh-add -l\n\
             RUN --mount=type=ssh,id=absent test ! -e /run/buildkit/ssh_agent.0 && echo optional-skipped\n",
        )],
    );
    let ctx = ctx.to_str().unwrap();
    let socket = agent.socket.to_str().unwrap();
    let out = t
        .cmd(&[
            "build",
            "--progress=plain",
            "--ssh",
            "default",
            "--ssh",
            &format!("work={socket}"),
            ctx,
        ])
        .env("SSH_AUTH_SOCK", socket)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    // BuildKit's default target, SSH_AUTH_SOCK naming it, 0600 root-owned.
    assert!(log.contains("sock=/run/buildkit/ssh_agent.0\n"), "{log}");
    assert!(log.contains("srw-------\n"), "{log}");
    // mode= applies; gid= lets USER 65534 in through the group.
    assert!(log.contains("srw-rw----\n"), "{log}");
    assert_eq!(log.matches("rbuild-test-key (ED25519)").count(), 2, "{log}");
    assert!(log.contains("optional-skipped"), "{log}");

    // A required agent the build does not have; a key file instead of a socket.
    let required = t.context(
        "required",
        &[(
            "Dockerfile",
            "FROM ssh-add\nRUN --mount=type=ssh,required=true ssh-add -l\n",
        )],
    );
    let out = t
        .cmd(&["build", required.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("no ssh agent default: pass one with --ssh default"),
        "{stderr}"
    );
    let key = t.path("key");
    let out = t
        .cmd(&["build", "--ssh", &format!("default={}", key.display()), ctx])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("is not an agent socket"), "{stderr}");
}
