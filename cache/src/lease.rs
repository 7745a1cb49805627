//! The store lease: every open [`crate::Store`] handle holds `gc.lock`
//! shared, so whatever a command reads or writes stays put while it runs;
//! `prune` and `fsck` turn that lock exclusive for their duration, so they
//! wait for every other command (build, run, pull, push, tag, load, save,
//! inspect, …) and every other command waits for them.
//!
//! `flock` locks belong to an open file, so two handles of one process on
//! one store would each hold a lock of their own, and a prune through one
//! would wait forever for the other. The handles of a process therefore
//! share one lease per store, and its exclusive mode is taken by one
//! thread at a time.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use nix::fcntl::{Flock, FlockArg};

use crate::error::{StoreError, io_err};

/// A shared `flock` on a store's `gc.lock`, held while any handle lives.
#[derive(Debug)]
pub(crate) struct Lease {
    lock: Flock<File>,
    path: PathBuf,
    exclusive: Mutex<()>,
}

/// The leases of this process, by lock file.
fn leases() -> &'static Mutex<HashMap<PathBuf, Weak<Lease>>> {
    static LEASES: OnceLock<Mutex<HashMap<PathBuf, Weak<Lease>>>> = OnceLock::new();
    LEASES.get_or_init(Mutex::default)
}

impl Lease {
    /// This process's lease on the lock file `path` (canonical), taken
    /// (shared, waiting for a prune or fsck to finish) if no handle of
    /// this process holds it yet.
    pub(crate) fn take(path: &Path) -> Result<Arc<Self>, StoreError> {
        let mut map = leases().lock().expect("poisoned");
        if let Some(lease) = map.get(path).and_then(Weak::upgrade) {
            return Ok(lease);
        }
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(io_err("open lock", path))?;
        let lock = Flock::lock(file, FlockArg::LockShared).map_err(|(_, e)| StoreError::Io {
            op: "lock",
            path: path.to_path_buf(),
            source: e.into(),
        })?;
        let lease = Arc::new(Self {
            lock,
            path: path.to_path_buf(),
            exclusive: Mutex::new(()),
        });
        map.retain(|_, weak| weak.strong_count() > 0);
        map.insert(path.to_path_buf(), Arc::downgrade(&lease));
        Ok(lease)
    }

    /// Turns the lease exclusive (waiting for every other process's
    /// handles to close) until the guard is dropped.
    pub(crate) fn exclusive(&self) -> Result<ExclusiveLease<'_>, StoreError> {
        let turn = self.exclusive.lock().unwrap_or_else(|e| e.into_inner());
        self.lock
            .relock(FlockArg::LockExclusive)
            .map_err(|e| StoreError::Io {
                op: "lock exclusively",
                path: self.path.clone(),
                source: e.into(),
            })?;
        Ok(ExclusiveLease {
            lease: self,
            _turn: turn,
        })
    }
}

/// The store held exclusively; shared again on drop.
#[derive(Debug)]
pub(crate) struct ExclusiveLease<'a> {
    lease: &'a Lease,
    _turn: MutexGuard<'a, ()>,
}

impl Drop for ExclusiveLease<'_> {
    fn drop(&mut self) {
        // Should going back to shared fail, the lock stays exclusive:
        // others wait longer, nothing is unsafe.
        let _ = self.lease.lock.relock(FlockArg::LockShared);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_of_one_process_share_the_lease_and_can_turn_it_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gc.lock");
        let a = Lease::take(&path).unwrap();
        let b = Lease::take(&path).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        // Would wait forever if `b` held a lock of its own.
        drop(a.exclusive().unwrap());
        drop(b.exclusive().unwrap());
    }

    #[test]
    fn exclusive_waits_for_another_process_holding_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gc.lock");
        let lease = Lease::take(&path).unwrap();
        // util-linux flock(1) holds the lock shared, as another rbuild
        // would: it says when it holds it, and leaves a marker just before
        // it lets go, so the order is checked without timing guesses.
        let released = dir.path().join("released");
        let mut other = std::process::Command::new("flock")
            .arg("--shared")
            .arg(&path)
            .args(["sh", "-c", "echo held; sleep 1; : > \"$0\""])
            .arg(&released)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("flock(1) from util-linux");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(other.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line, "held\n");
        assert!(!released.exists());
        let exclusive = lease.exclusive().unwrap();
        assert!(released.exists(), "did not wait for the other holder");
        other.wait().unwrap();
        // And another process now waits for us.
        let blocked = std::process::Command::new("flock")
            .args(["--shared", "--nonblock"])
            .arg(&path)
            .arg("true")
            .status()
            .unwrap();
        assert!(!blocked.success());
        drop(exclusive);
        let shared = std::process::Command::new("flock")
            .args(["--shared", "--nonblock"])
            .arg(&path)
            .arg("true")
            .status()
            .unwrap();
        assert!(shared.success(), "shared again after the guard");
    }
}
