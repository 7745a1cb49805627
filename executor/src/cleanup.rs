//! What the sandboxes of this process leave behind, and how it goes away.
//!
//! Every mount of a sandbox lives in its own mount namespace and every
//! process in its pid namespace, so both vanish with its pid 1, which dies
//! with rbuild (`PR_SET_PDEATHSIG`). What remains is the sandbox's temp
//! dir (`rbuild-sandbox-PID-…`, named after the rbuild process). A live
//! sandbox is registered here, so that a signal handler can end it
//! ([`signal_sandboxes`]) and wait until its dir is removed
//! ([`wait_until_idle`]); the dirs of an rbuild killed with SIGKILL are
//! swept by the next rbuild that starts a sandbox ([`sweep_once`]).

use std::path::Path;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// The prefix of every sandbox dir in the temp dir.
pub const PREFIX: &str = "rbuild-sandbox-";

/// pid 1 of every live sandbox of this process.
static LIVE: Mutex<Vec<libc::pid_t>> = Mutex::new(Vec::new());
/// Signalled when a sandbox is gone (its dir removed).
static GONE: Condvar = Condvar::new();

/// A registered sandbox: removes its dir, then unregisters it, on drop.
pub struct Registered {
    pid: libc::pid_t,
    dir: Option<tempfile::TempDir>,
}

/// Registers the sandbox whose pid 1 is `pid` and whose temp dir is `dir`.
pub fn register(pid: libc::pid_t, dir: tempfile::TempDir) -> Registered {
    lock().push(pid);
    Registered {
        pid,
        dir: Some(dir),
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        drop(self.dir.take());
        lock().retain(|p| *p != self.pid);
        GONE.notify_all();
    }
}

fn lock() -> std::sync::MutexGuard<'static, Vec<libc::pid_t>> {
    LIVE.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Sends `signal` to pid 1 of every live sandbox of this process (a
/// forwarded SIGTERM, or SIGKILL to end them); how many there are.
pub fn signal_sandboxes(signal: libc::c_int) -> usize {
    let live = lock();
    for pid in live.iter() {
        // SAFETY: kill has no memory effects; the pid is our child, not
        // yet reaped (it is unregistered only after the wait).
        unsafe { libc::kill(*pid, signal) };
    }
    live.len()
}

/// Waits until no sandbox of this process is live (their dirs removed),
/// at most `timeout`; whether none is.
pub fn wait_until_idle(timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut live = lock();
    while !live.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        live = GONE
            .wait_timeout(live, left)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0;
    }
    true
}

/// Removes, once per process, the sandbox dirs in `temp` whose rbuild
/// process is gone (killed with SIGKILL). Dirs of live processes and dirs
/// this user may not remove are left alone.
pub fn sweep_once(temp: &Path) {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(|| sweep(temp));
}

fn sweep(temp: &Path) {
    let Ok(entries) = std::fs::read_dir(temp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        // SAFETY: kill with signal 0 only checks that the process exists.
        let alive = unsafe { libc::kill(owner, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        if !alive {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_only_the_dirs_of_dead_processes() {
        let temp = tempfile::tempdir().unwrap();
        // A pid above the kernel's maximum is never alive.
        let dead = temp.path().join(format!("{PREFIX}99999999-abc"));
        let mine = temp
            .path()
            .join(format!("{PREFIX}{}-abc", std::process::id()));
        let other = temp.path().join("rbuild-other");
        for d in [&dead, &mine, &other] {
            std::fs::create_dir_all(d.join("upper/x")).unwrap();
        }
        sweep(temp.path());
        assert!(!dead.exists());
        assert!(mine.exists() && other.exists());
    }

    #[test]
    fn waits_until_registered_sandboxes_are_gone() {
        let dir = tempfile::Builder::new().prefix(PREFIX).tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let registered = register(libc::pid_t::MAX, dir);
        assert!(!wait_until_idle(Duration::from_millis(20)));
        let t = std::thread::spawn(move || drop(registered));
        assert!(wait_until_idle(Duration::from_secs(5)));
        t.join().unwrap();
        assert!(
            !path.exists(),
            "the dir is removed before it counts as gone"
        );
    }
}
