//! The default network of a sandbox, as `docker build` and `docker run`
//! give it: a network namespace of its own with outbound access and DNS,
//! but none of the host's interfaces, loopback services or traffic.
//!
//! Each namespace gets a `slirp4netns` helper (Debian's package of the
//! same name, what rootless BuildKit and Podman use): a user-mode NAT that
//! owns a tap device inside the namespace (10.0.2.100/24, gateway
//! 10.0.2.2, DNS forwarder 10.0.2.3) and makes the sandbox's connections
//! as ordinary sockets of its own on the host. It needs no host firewall
//! or sysctl changes, works rootful and rootless alike, and is started
//! with `--disable-host-loopback`, so 10.0.2.2 does not lead to the
//! host's 127.0.0.1.
//!
//! The helper takes 8-30 ms here to configure the network, so it is never
//! waited for on the way: a namespace is started (made, its helper
//! spawned) as soon as a sandbox is announced ([`prepare_one`]: a RUN step
//! that missed the cache, `rbuild run`), in a background thread, as
//! BuildKit keeps a pool of network namespaces; the sandbox joins it while
//! the helper still works, and only the sandbox's last step before the
//! exec waits for the helper's ready signal (`Namespace::ready_fd`). A
//! namespace serves one sandbox only (whatever a RUN did to it cannot
//! reach the next one). Each helper ends when its namespace
//! is released, and on its own when rbuild exits, however it exits: it
//! watches a pipe (`--exit-fd`) whose other end only rbuild holds.

use nix::fcntl::OFlag;
use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags, posix_spawn};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Condvar, Mutex, OnceLock};

use crate::ExecError;

/// How many namespaces are started ahead of the sandboxes that asked for
/// them, at most.
const POOL_SIZE: usize = 2;

/// The helper's DNS forwarder (slirp4netns' default address).
pub(crate) const DNS_SERVER: &str = "10.0.2.3";

/// The fd numbers the helper gets its pipes and namespace on.
const READY_FD: RawFd = 3;
const EXIT_FD: RawFd = 4;
const NETNS_FD: RawFd = 5;

/// A prepared network namespace and its helper, for one sandbox.
#[derive(Debug)]
pub(crate) struct Namespace {
    /// The namespace (an nsfs file descriptor).
    fd: OwnedFd,
    /// The slirp4netns process serving it (taken when it is stopped).
    helper: Option<Pid>,
    /// The write end of the helper's exit pipe.
    _exit: OwnedFd,
    /// The read end of the helper's ready pipe: one byte once the network
    /// is configured, end of file if the helper failed.
    ready: OwnedFd,
    /// The helper's messages.
    errors: std::fs::File,
}

impl Namespace {
    /// The namespace's file descriptor, for `setns`.
    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// A path to the namespace that another process (an external runtime)
    /// can open while this one lives.
    pub(crate) fn path(&self) -> String {
        format!("/proc/{}/fd/{}", std::process::id(), self.fd.as_raw_fd())
    }

    /// A pipe end that becomes readable when the network is up: one byte
    /// to read once the helper has configured it, end of file if the
    /// helper failed (see [`Namespace::failure`]).
    pub(crate) fn ready_fd(&self) -> RawFd {
        self.ready.as_raw_fd()
    }

    /// Waits until the helper has configured the network.
    pub(crate) fn wait_ready(&self) -> Result<(), ExecError> {
        let mut byte = [0u8; 1];
        let mut ready = std::fs::File::from(self.ready.try_clone().map_err(setup)?);
        if ready.read(&mut byte).unwrap_or(0) == 1 {
            Ok(())
        } else {
            Err(self.failure())
        }
    }

    /// The error of a helper that did not configure the network, with
    /// what it said.
    pub(crate) fn failure(&self) -> ExecError {
        let mut message = String::new();
        let mut errors = &self.errors;
        std::io::Seek::rewind(&mut errors)
            .and_then(|()| errors.read_to_string(&mut message))
            .ok();
        ExecError::Setup(format!(
            "slirp4netns could not configure the sandbox's network: {}",
            message.trim()
        ))
    }

    /// A new namespace with its helper started; the network comes up
    /// while the caller goes on ([`Namespace::ready_fd`]). With
    /// `api_socket`, the helper listens there for requests (`ports`).
    fn start(api_socket: Option<&std::path::Path>) -> Result<Self, ExecError> {
        // The helper makes its tap device there; say so plainly when this
        // user may not (rootless, with a node not world-accessible).
        std::fs::File::options()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .map_err(|e| {
                ExecError::Setup(format!(
                    "the sandbox's network needs /dev/net/tun ({e}; Debian's udev \
                     makes it mode 0666): fix it, or use --network=host or none"
                ))
            })?;
        let fd = new_namespace()?;
        // Its messages, read if it fails to start.
        let errors = tempfile::tempfile().map_err(setup)?;
        let (ready_r, ready_w) = pipe()?;
        let (exit_r, exit_w) = pipe()?;
        let helper = spawn_helper(
            &[
                (ready_w.as_raw_fd(), READY_FD),
                (exit_r.as_raw_fd(), EXIT_FD),
                (fd.as_raw_fd(), NETNS_FD),
                (errors.as_raw_fd(), libc::STDERR_FILENO),
            ],
            api_socket,
        )?;
        Ok(Self {
            fd,
            helper: Some(helper),
            _exit: exit_w,
            ready: ready_r,
            errors,
        })
    }
}

/// Where `slirp4netns` is, looked up in PATH once.
fn helper_path() -> Result<&'static CString, ExecError> {
    static PATH: OnceLock<Option<CString>> = OnceLock::new();
    PATH.get_or_init(|| {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|dir| dir.join("slirp4netns"))
            .find(|p| {
                p.metadata()
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
            .and_then(|p| CString::new(p.into_os_string().into_vec()).ok())
    })
    .as_ref()
    .ok_or_else(|| {
        ExecError::Setup(String::from(
            "slirp4netns is not in PATH: install Debian's slirp4netns package for \
             the sandbox's network, or use --network=none or host",
        ))
    })
}

/// Starts the helper with `fds` (source, number in the helper) and
/// stdin/stdout on /dev/null. `posix_spawn` (glibc's is a vfork) rather
/// than a fork of this large, multithreaded process: the helper is on
/// the way to the sandbox's exec. Every source is first moved above all
/// sources and targets, so that no dup2 overwrites a source still to be
/// used (the sources can be numbered anywhere: a build with many layers
/// open has them above 100).
fn spawn_helper(
    fds: &[(RawFd, RawFd)],
    api_socket: Option<&std::path::Path>,
) -> Result<Pid, ExecError> {
    let spare = 1 + fds
        .iter()
        .map(|&(from, to)| from.max(to))
        .max()
        .unwrap_or(0);
    let spawn = |e: nix::Error| ExecError::Setup(format!("start slirp4netns: {e}"));
    let mut actions = PosixSpawnFileActions::init().map_err(spawn)?;
    for (i, (from, _)) in (0..).zip(fds) {
        actions.add_dup2(*from, spare + i).map_err(spawn)?;
    }
    for (i, (_, to)) in (0..).zip(fds) {
        actions.add_dup2(spare + i, *to).map_err(spawn)?;
        actions.add_close(spare + i).map_err(spawn)?;
    }
    for stdio in [libc::STDIN_FILENO, libc::STDOUT_FILENO] {
        actions
            .add_open(stdio, c"/dev/null", OFlag::O_RDWR, Mode::empty())
            .map_err(spawn)?;
    }
    // As `std::process::Command` does: no blocked signals, and the ones
    // this process ignores (SIGPIPE, SIGINT while `run` is interactive)
    // back to their default.
    let mut attr = PosixSpawnAttr::init().map_err(spawn)?;
    let mut defaults = SigSet::empty();
    for sig in [
        Signal::SIGPIPE,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGHUP,
        Signal::SIGTERM,
    ] {
        defaults.add(sig);
    }
    attr.set_sigdefault(&defaults).map_err(spawn)?;
    attr.set_sigmask(&SigSet::empty()).map_err(spawn)?;
    attr.set_flags(
        PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF | PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK,
    )
    .map_err(spawn)?;
    let api = api_socket.map(|p| format!("--api-socket={}", p.display()));
    let args: Vec<CString> = [
        "slirp4netns",
        "--configure",
        "--mtu=65520",
        "--disable-host-loopback",
        "--enable-sandbox",
        "--enable-seccomp",
        "--netns-type=path",
        &format!("--ready-fd={READY_FD}"),
        &format!("--exit-fd={EXIT_FD}"),
    ]
    .into_iter()
    .chain(api.as_deref())
    .chain([format!("/proc/self/fd/{NETNS_FD}").as_str(), "tap0"])
    .map(|a| CString::new(a).map_err(|_| ExecError::Setup(format!("{a}: a NUL byte"))))
    .collect::<Result<_, _>>()?;
    let env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.into_vec();
            kv.push(b'=');
            kv.extend(v.into_vec());
            CString::new(kv).ok()
        })
        .collect();
    posix_spawn(helper_path()?.as_c_str(), &actions, &attr, &args, &env).map_err(|e| {
        ExecError::Setup(format!(
            "start slirp4netns for the sandbox's network (install Debian's \
             slirp4netns package, or use --network=none or host): {e}"
        ))
    })
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // Killed rather than told through the exit pipe: a sandbox's init
        // started meanwhile holds copies of the pipe's write end until it
        // ends. Reaped on a thread of its own: its exit takes an RCU grace
        // period (its private mount namespace goes), ~20 ms nobody needs
        // to wait for.
        if let Some(helper) = self.helper.take() {
            let _ = kill(helper, Signal::SIGKILL);
            std::thread::spawn(move || waitpid(helper, None));
        }
    }
}

fn cvt(rc: libc::c_int) -> std::io::Result<libc::c_int> {
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn setup(e: impl std::fmt::Display) -> ExecError {
    ExecError::Setup(format!("prepare the sandbox's network: {e}"))
}

fn pipe() -> Result<(OwnedFd, OwnedFd), ExecError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(setup)
}

/// The sandbox's resolv.conf: the host's search domains and options,
/// with the helper's DNS forwarder (which asks the host's resolvers, even
/// one on the host's loopback) as the only name server.
pub(crate) fn resolv_conf(host: &str) -> String {
    let mut out: String = host
        .lines()
        .filter(|l| {
            let word = l.split_whitespace().next().unwrap_or("");
            matches!(word, "search" | "domain" | "options")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    out.push_str(&format!("nameserver {DNS_SERVER}\n"));
    out
}

/// A new, empty network namespace: a short-lived thread unshares its
/// own and hands out a file descriptor of it, which keeps it alive.
fn new_namespace() -> Result<OwnedFd, ExecError> {
    std::thread::spawn(|| -> std::io::Result<OwnedFd> {
        // SAFETY: this thread is ours alone and ends right after; unshare
        // and open have no memory-safety preconditions.
        unsafe {
            cvt(libc::unshare(libc::CLONE_NEWNET))?;
            let fd = cvt(libc::open(
                c"/proc/thread-self/ns/net".as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            ))?;
            Ok(OwnedFd::from_raw_fd(fd))
        }
    })
    .join()
    .map_err(|_| ExecError::Setup(String::from("network namespace thread panicked")))?
    .map_err(|e| ExecError::Setup(format!("create a network namespace: {e}")))
}

/// The started namespaces, whether a thread is starting more, and how many
/// sandboxes announced with [`prepare_one`] have not taken theirs yet.
struct Pool {
    ready: Vec<Namespace>,
    filling: bool,
    asked: usize,
}

impl Pool {
    /// How many namespaces should be started ahead: one per announced
    /// sandbox, at most [`POOL_SIZE`] (a build whose every RUN step
    /// missed the cache announces them all at once).
    fn target(&self) -> usize {
        self.asked.min(POOL_SIZE)
    }
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    ready: Vec::new(),
    filling: false,
    asked: 0,
});
static FILLED: Condvar = Condvar::new();

fn lock_pool() -> std::sync::MutexGuard<'static, Pool> {
    POOL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Announces a sandbox with the default network to come (a RUN step that
/// missed the cache, `rbuild run`): its namespace is started in the
/// background while the caller prepares the rest.
pub fn prepare_one() {
    lock_pool().asked += 1;
    fill();
}

/// Starts a thread filling the pool, unless one is at it or it is full.
fn fill() {
    let mut pool = lock_pool();
    if pool.filling || pool.ready.len() >= pool.target() {
        return;
    }
    pool.filling = true;
    drop(pool);
    std::thread::spawn(|| {
        loop {
            let started = Namespace::start(None);
            let mut pool = lock_pool();
            let ok = started.map(|ns| pool.ready.push(ns)).is_ok();
            // A failure is reported by the `take` that starts its own.
            let done = !ok || pool.ready.len() >= pool.target();
            if done {
                pool.filling = false;
            }
            FILLED.notify_all();
            if done {
                return;
            }
        }
    });
}

/// A namespace for one sandbox: a started one when there is one (waiting
/// for the one being started, if any), else a new one; the pool is
/// refilled in the background for the sandboxes still announced.
pub(crate) fn take() -> Result<Namespace, ExecError> {
    let mut pool = lock_pool();
    while pool.ready.is_empty() && pool.filling {
        pool = FILLED.wait(pool).unwrap_or_else(|e| e.into_inner());
    }
    let ns = pool.ready.pop();
    pool.asked = pool.asked.saturating_sub(1);
    drop(pool);
    fill();
    match ns {
        Some(ns) => Ok(ns),
        None => Namespace::start(None),
    }
}

/// A namespace of its own (not the pool's) whose helper listens for
/// requests on `api_socket`, for a sandbox that publishes ports.
pub(crate) fn take_with_api(api_socket: &std::path::Path) -> Result<Namespace, ExecError> {
    Namespace::start(Some(api_socket))
}

#[cfg(test)]
mod tests {
    use super::resolv_conf;

    #[test]
    fn resolv_conf_keeps_search_and_options_and_names_the_forwarder() {
        let host = "# generated\nnameserver 127.0.0.53\nnameserver 10.1.1.1\n\
                    search corp.example\noptions edns0 trust-ad\n";
        assert_eq!(
            resolv_conf(host),
            "search corp.example\noptions edns0 trust-ad\nnameserver 10.0.2.3\n"
        );
        assert_eq!(resolv_conf(""), "nameserver 10.0.2.3\n");
    }
}
