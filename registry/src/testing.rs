//! A real registry for tests: Debian's `docker-registry` (the CNCF
//! distribution server) on a free loopback port, with temporary storage,
//! optionally behind htpasswd Basic auth; stopped on drop.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running registry server.
pub struct TestRegistry {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl TestRegistry {
    /// Starts an open registry.
    pub fn start() -> Self {
        Self::launch(None)
    }

    /// Starts a registry that requires `user`/`password` (htpasswd, bcrypt).
    pub fn start_with_auth(user: &str, password: &str) -> Self {
        Self::launch(Some((user, password)))
    }

    fn launch(auth: Option<(&str, &str)>) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("rbuild-registry")
            .tempdir()
            .expect("temp dir");
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("a free port")
            .local_addr()
            .expect("addr")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = auth {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("htpasswd (apache2-utils) is installed");
            let file: PathBuf = dir.path().join("htpasswd");
            std::fs::write(&file, out.stdout).expect("write htpasswd");
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: rbuild-test\n    path: {}\n",
                file.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("write config");
        let binary = ["/usr/bin/docker-registry", "/usr/sbin/docker-registry"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("docker-registry is installed (see .ci/run)");
        let child = Command::new(binary)
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let registry = Self {
            addr,
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&registry.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not start on {}",
                registry.addr
            );
            std::thread::sleep(Duration::from_millis(25));
        }
        registry
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
