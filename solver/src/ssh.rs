//! `RUN --mount=type=ssh`: the build's ssh agent (`--ssh`) reachable from
//! one RUN, as BuildKit forwards it. A socket of the RUN's own, with the
//! mount's mode and owner (default 0600, 0:0), is bound into the sandbox;
//! a thread accepts its connections and relays each one to the host's
//! agent socket, so the agent's own socket (its mode, its directory) never
//! enters the sandbox. The relay ends with the RUN.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// A relay from a socket of the RUN's own to an agent on the host.
pub struct AgentRelay {
    /// Holds the socket.
    dir: tempfile::TempDir,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AgentRelay {
    /// Listens on a new socket with `mode` and owner `uid:gid` and relays
    /// every connection to the agent socket `agent`.
    pub fn start(agent: &Path, mode: u32, uid: u32, gid: u32) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("rbuild-ssh")
            .tempdir()
            .map_err(|e| format!("ssh agent relay: {e}"))?;
        let socket = dir.path().join("agent.sock");
        let listener = UnixListener::bind(&socket).map_err(|e| format!("ssh agent relay: {e}"))?;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(mode))
            .and_then(|()| std::os::unix::fs::chown(&socket, Some(uid), Some(gid)))
            .map_err(|e| format!("ssh agent relay: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (agent, flag) = (agent.to_path_buf(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                // A client whose agent is gone sees its connection closed.
                if let Ok(upstream) = UnixStream::connect(&agent) {
                    relay(conn, upstream);
                }
            }
        });
        Ok(Self {
            dir,
            stop,
            thread: Some(thread),
        })
    }

    /// The socket to bind into the sandbox.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("agent.sock")
    }
}

impl Drop for AgentRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop up to see the flag.
        let _ = UnixStream::connect(self.socket());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Copies both ways between two streams, each direction on a thread of
/// its own, until either side closes.
fn relay(a: UnixStream, b: UnixStream) {
    let pipe = |mut from: UnixStream, mut to: UnixStream| {
        std::thread::spawn(move || {
            // Either side closing ends the copy, with an error or not.
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(std::net::Shutdown::Write);
            let _ = from.shutdown(std::net::Shutdown::Read);
        });
    };
    if let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) {
        pipe(a, b2);
        pipe(b, a2);
    }
}
