//! Runs one process in a sandbox: new mount, pid, ipc, uts (and net, unless
//! host networking) namespaces, an overlayfs root whose lower dirs are a
//! snapshot's layers and whose upper dir collects the changes, /proc, a
//! minimal /dev, /etc/hosts, resolv.conf and hostname, reduced capabilities
//! and no_new_privs. The same executor serves RUN and `rbuild run`.
//!
//! Design: everything the sandbox needs (C strings, mount list, resolved
//! user, PATH candidates) is prepared in the caller, which may be a
//! multithreaded process; then `clone` enters new namespaces and the child
//! only makes raw, async-signal-safe system calls (see `sys`). The child
//! is pid 1 of its pid namespace: it writes the sandbox's files on a
//! private tmpfs, mounts the overlay root (layers named by fd, so no store
//! path shows in mountinfo) and the system mounts (paths resolved inside
//! the root with `openat2` `RESOLVE_IN_ROOT`, so a symlink in an image
//! cannot redirect a mount to the host), masks /proc and /sys paths
//! (`masks`), pivots into the root, drops capabilities to Docker's set
//! (`caps`), installs the seccomp filter compiled once per process
//! (`seccomp`) and execs the image's process, which stays pid 1 (`init`
//! for `--init`). Only the default devices can be opened: everything else
//! is mounted `nodev`. Every mount lives in the sandbox's mount namespace,
//! so all of them vanish with its last process; the child dies with its
//! parent (`PR_SET_PDEATHSIG`), and its temp dir is removed on return, on
//! a signal, or by the next rbuild (`cleanup`).
//!
//! Networks: [`Network::Private`] (the default) joins a network namespace
//! prepared with a `slirp4netns` helper for outbound access (see
//! `network`; [`prepare_network`] starts one ahead for a sandbox to come,
//! and the sandbox waits for the helper only right before the exec),
//! [`Network::None`] has only `lo`, [`Network::Host`] shares the host's.
//!
//! Limits: [`RunSpec::limits`] (memory, CPUs, pids) become cgroups of the
//! sandbox's own (see `cgroup`), joined by its init before the process
//! starts and removed after it; rootful only.

mod binfmt;
mod caps;
mod cgroup;
mod child;
mod cleanup;
mod console;
mod external;
mod host_devices;
mod host_gateway;
mod init;
mod masks;
mod network;
mod plan;
mod ports;
mod resize;
mod rootless;
mod seccomp;
mod stdio;
mod sys;
mod ulimit;
mod unchanged;
mod users;

use std::ffi::c_void;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

pub use binfmt::{BINFMT_MISC, BinfmtError, check_emulation};
pub use cgroup::Limits;
pub use cleanup::{signal_sandboxes, wait_until_idle};
pub use external::runtime_spec;
pub use network::prepare_one as prepare_network;
pub use plan::DEFAULT_PATH;
pub use ports::PortForward;
pub use rootless::{IdMapping, enter_user_namespace};
pub use seccomp::{Precompiling, ProgramCache as SeccompCache, precompile as precompile_seccomp};
pub use ulimit::Ulimit;
pub use users::{User, resolve as resolve_user};

/// Errors of the executor.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// Setting up the sandbox failed (namespaces, mounts, user lookup).
    #[error("sandbox setup failed: {0}")]
    Setup(String),
    /// The program was not found (Docker's exit code 127).
    #[error("{0}")]
    Exec(String),
    /// The program was found but could not be executed: no permission,
    /// not an executable format (Docker's exit code 126).
    #[error("{0}")]
    CannotExecute(String),
}

fn setup<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> ExecError + '_ {
    move |e| ExecError::Setup(format!("{what}: {e}"))
}

/// The root filesystem of a sandbox.
#[derive(Debug, Clone, Default)]
pub struct RootFs {
    /// Read-only layers, bottom first. May be empty (scratch).
    pub lowers: Vec<PathBuf>,
    /// Where changes go (must be empty at first), with its overlay work dir
    /// on the same filesystem. `None` makes a throw-away upper dir. The
    /// upper dir's unchanged copy-ups, which its layer leaves out, are
    /// listed in a file `left-out` beside it (see `unchanged`).
    pub upper: Option<(PathBuf, PathBuf)>,
}

/// Network of the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// A network namespace of its own with outbound access through a
    /// user-mode NAT, and DNS (Docker's default; see `network`).
    #[default]
    Private,
    /// Share the host's network namespace.
    Host,
    /// A new network namespace with only `lo`.
    None,
}

/// A host path bound into the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    /// Host path.
    pub source: PathBuf,
    /// Absolute path inside the sandbox.
    pub target: String,
    /// Mount read-only.
    pub readonly: bool,
}

/// A file made for the sandbox and bound at a path: /etc/hosts and its
/// kin, or a secret (`RUN --mount=type=secret`). The sandbox writes it on
/// a tmpfs of its own mount namespace, so it never exists on the host's
/// disk and its mount shows no host path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMount {
    /// Absolute path inside the sandbox.
    pub target: String,
    /// The file's content.
    pub content: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
    /// Owner inside the sandbox.
    pub uid: u32,
    /// Group inside the sandbox.
    pub gid: u32,
    /// Mount read-only.
    pub readonly: bool,
}

/// A filesystem state (layers, bottom first) mounted at a path: its
/// `source` subdirectory, read-only, or writable with the writes thrown
/// away (`RUN --mount=type=bind,from=…`).
#[derive(Debug, Clone)]
pub struct LayerMount {
    /// Layers, bottom first.
    pub lowers: Vec<PathBuf>,
    /// Path inside the state to mount (`/` for all of it).
    pub source: String,
    /// Absolute path inside the sandbox.
    pub target: String,
    /// Allow writes (to a throw-away upper dir).
    pub readwrite: bool,
}

/// An empty tmpfs (`RUN --mount=type=tmpfs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TmpfsMount {
    /// Absolute path inside the sandbox.
    pub target: String,
    /// `size=` in bytes; the kernel's default (half the memory) when `None`.
    pub size: Option<u64>,
}

impl TmpfsMount {
    /// The filesystem options (mounted `nosuid,nodev` as every mount
    /// here): a world-writable sticky root, and BuildKit's `size`.
    pub fn data(&self) -> String {
        match self.size {
            Some(size) => format!("mode=1777,size={size}"),
            None => String::from("mode=1777"),
        }
    }
}

/// The seccomp filter of a sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Seccomp {
    /// Docker's default profile (as BuildKit's RUN and `docker run`).
    #[default]
    Default,
    /// No filter (`--security-opt seccomp=unconfined`).
    Unconfined,
    /// A profile in Docker's JSON format: the text of
    /// `--security-opt seccomp=FILE`.
    Profile(String),
}

/// What confines the process beyond its namespaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Security {
    /// The seccomp filter (ignored when `insecure`).
    pub seccomp: Seccomp,
    /// Set no_new_privs: setuid binaries and file capabilities cannot
    /// raise privileges (on for RUN, as BuildKit; off by default for
    /// `rbuild run`, as Docker).
    pub no_new_privileges: bool,
    /// `RUN --security=insecure`: every capability, no seccomp filter, no
    /// masked or read-only /proc paths, a writable /sys (BuildKit's
    /// insecure mode, and `rbuild run --privileged`; the devices stay the
    /// default set).
    pub insecure: bool,
    /// Capabilities added to Docker's default set (`--cap-add`; `ALL`).
    pub cap_add: Vec<String>,
    /// Capabilities removed from it (`--cap-drop`; `ALL`).
    pub cap_drop: Vec<String>,
}

impl Default for Security {
    /// The strict defaults of a RUN step.
    fn default() -> Self {
        Self {
            seccomp: Seccomp::Default,
            no_new_privileges: true,
            insecure: false,
            cap_add: Vec::new(),
            cap_drop: Vec::new(),
        }
    }
}

/// Where the process's stdio goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stdio {
    /// stdout and stderr are captured and handed to the output callback line
    /// by line; stdin is /dev/null (RUN).
    #[default]
    Capture,
    /// The caller's stdin/stdout/stderr are used directly (`rbuild run -i`).
    Inherit,
    /// The caller's stdout/stderr; stdin is /dev/null (`rbuild run`
    /// without `-i`, as Docker attaches no input then).
    NoInput,
    /// A new pseudo-terminal, fed the caller's stdin (`rbuild run -it`).
    Tty,
    /// A new pseudo-terminal that gets no input (`rbuild run -t`).
    TtyNoInput,
}

impl Stdio {
    /// Whether the process gets a pseudo-terminal.
    pub fn is_tty(self) -> bool {
        matches!(self, Stdio::Tty | Stdio::TtyNoInput)
    }
}

/// An `/etc/hosts` entry beyond the defaults (`--add-host NAME:IP`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    /// The host name.
    pub name: String,
    /// Its address.
    pub ip: HostAddress,
}

/// The address of an [`HostEntry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostAddress {
    /// This address.
    Ip(std::net::IpAddr),
    /// `host-gateway`: where the sandbox reaches the host (see
    /// `host_gateway`), resolved when the sandbox is made.
    HostGateway,
}

impl std::str::FromStr for HostAddress {
    type Err = std::net::AddrParseError;

    /// `host-gateway`, or an IPv4 or IPv6 address (which may be in
    /// brackets).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == host_gateway::HOST_GATEWAY {
            return Ok(Self::HostGateway);
        }
        let bare = text.strip_prefix('[').and_then(|t| t.strip_suffix(']'));
        bare.unwrap_or(text).parse().map(Self::Ip)
    }
}

impl std::fmt::Display for HostAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ip(ip) => ip.fmt(f),
            Self::HostGateway => f.write_str(host_gateway::HOST_GATEWAY),
        }
    }
}

/// Everything about one process to run.
#[derive(Debug, Clone, Default)]
pub struct RunSpec {
    /// The root filesystem.
    pub rootfs: RootFs,
    /// argv (argv[0] looked up in PATH of `env` when not absolute).
    pub args: Vec<String>,
    /// `KEY=value` entries.
    pub env: Vec<String>,
    /// Working directory (created if missing).
    pub cwd: String,
    /// `name`, `uid`, `name:group` or `uid:gid`; empty = root.
    pub user: String,
    /// Hostname inside the sandbox (its UTS namespace). Only a sandbox
    /// whose changes are thrown away (`rbuild run`, as `docker run`) also
    /// gets an /etc/hostname; a build's RUN (`rootfs.upper` given) gets
    /// none, as in BuildKit.
    pub hostname: String,
    /// Network mode.
    pub network: Network,
    /// Extra bind mounts.
    pub mounts: Vec<BindMount>,
    /// Layer states mounted at paths.
    pub layer_mounts: Vec<LayerMount>,
    /// Empty tmpfs mounts.
    pub tmpfs: Vec<TmpfsMount>,
    /// Files made for the sandbox (secrets).
    pub files: Vec<FileMount>,
    /// Stdio handling.
    pub stdio: Stdio,
    /// Seccomp, no_new_privs and the insecure mode.
    pub security: Security,
    /// Run the process under a small init that reaps zombies and forwards
    /// signals (`rbuild run --init`); otherwise the process is pid 1.
    pub init: bool,
    /// Resource limits (cgroups; rootful only, bundled runtime only).
    pub limits: Limits,
    /// Mount the root filesystem read-only (`rbuild run --read-only`);
    /// /dev, /proc, binds, tmpfs mounts and the made files stay writable.
    pub readonly_rootfs: bool,
    /// `/etc/hosts` entries after the defaults (`--add-host`).
    pub extra_hosts: Vec<HostEntry>,
    /// The size of /dev/shm in bytes (`--shm-size`); 64 MiB, Docker's
    /// default, when `None`.
    pub shm_size: Option<u64>,
    /// Process resource limits set before the exec (`--ulimit`).
    pub ulimits: Vec<Ulimit>,
    /// Host ports forwarded to the sandbox (`-p`; the private network only).
    pub ports: Vec<PortForward>,
}

/// Which stream a captured chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Runs the process to completion and returns its exit code (128+signal when
/// killed). With [`Stdio::Capture`], `output` receives each line (with its
/// newline) as it is written. Every process and mount of the sandbox is gone
/// when this returns, also on error.
pub fn run(spec: &RunSpec, output: &mut dyn FnMut(Stream, &[u8])) -> Result<i32, ExecError> {
    run_with(None, spec, output)
}

/// [`run`] with an external OCI runtime (`runc`, `crun`) instead of the
/// bundled sandbox when `runtime` names one: the same process, described
/// as an OCI runtime spec ([`runtime_spec`]).
pub fn run_with(
    runtime: Option<&str>,
    spec: &RunSpec,
    output: &mut dyn FnMut(Stream, &[u8]),
) -> Result<i32, ExecError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(ExecError::Setup(String::from(
            "sandboxes need root, on the host or in a user namespace \
             (see enter_user_namespace)",
        )));
    }
    cleanup::sweep_once(&std::env::temp_dir());
    let dir = tempfile::Builder::new()
        .prefix(&format!("{}{}-", cleanup::PREFIX, std::process::id()))
        .tempdir()
        .map_err(setup("create a temp dir"))?;
    let root = dir.path().join("root");
    let empty = dir.path().join("empty");
    for d in [&root, &empty] {
        std::fs::create_dir(d).map_err(setup("create a temp dir"))?;
    }
    let (upper, work) = match &spec.rootfs.upper {
        Some((u, w)) => (u.clone(), w.clone()),
        None => {
            let (u, w) = (dir.path().join("upper"), dir.path().join("work"));
            for d in [&u, &w] {
                std::fs::create_dir(d).map_err(setup("create a temp dir"))?;
            }
            (u, w)
        }
    };
    let hostname = if spec.hostname.is_empty() {
        "rbuild"
    } else {
        spec.hostname.as_str()
    };
    let mut files = system_files(
        hostname,
        spec.network,
        &spec.extra_hosts,
        spec.rootfs.upper.is_none(),
    )?;
    files.extend(spec.files.iter().cloned());
    let user = users::resolve(&spec.rootfs.lowers, &spec.user)?;
    rootless::check_mapped(&user)?;
    let netns = match spec.network {
        Network::Private if !spec.ports.is_empty() => {
            let socket = dir.path().join("slirp.sock");
            let ns = network::take_with_api(&socket)?;
            ports::publish(&socket, &spec.ports)?;
            Some(ns)
        }
        Network::Private => Some(network::take()?),
        Network::Host | Network::None if !spec.ports.is_empty() => {
            return Err(ExecError::Setup(String::from(
                "-p publishes ports of the default network, not of host or none",
            )));
        }
        Network::Host | Network::None => None,
    };
    if let Some(runtime) = runtime {
        if spec.limits.any() || !spec.ulimits.is_empty() || spec.shm_size.is_some() {
            return Err(ExecError::Setup(format!(
                "--memory, --cpus, --pids-limit, --ulimit and --shm-size work with the bundled runtime, not {runtime}"
            )));
        }
        let mut lowers: Vec<&Path> = spec.rootfs.lowers.iter().map(PathBuf::as_path).collect();
        if lowers.is_empty() {
            lowers.push(&empty);
        }
        let options = plan::overlay_options(&lowers, Some((&upper, &work)))?;
        let written = external::write_files(dir.path(), &files)?;
        let files: Vec<(PathBuf, &str)> = written
            .iter()
            .map(|(p, t)| (p.clone(), t.as_str()))
            .collect();
        if let Some(ns) = &netns {
            ns.wait_ready()?;
        }
        let sandbox = external::Sandbox {
            dir: dir.path(),
            overlay: &options,
            user: &user,
            files: &files,
            netns: netns.as_ref().map(network::Namespace::path),
        };
        return external::run_external(runtime, spec, &sandbox, output);
    }
    let dirs = plan::Dirs {
        root: &root,
        upper: &upper,
        work: &work,
        empty: &empty,
        scratch: dir.path(),
        files: &dir.path().join("files"),
    };
    std::fs::create_dir(dirs.files).map_err(setup("create a temp dir"))?;
    let mut plan = plan::build(spec, &user, &dirs, &files)?;
    plan.netns = netns.as_ref().map(network::Namespace::fd);
    plan.net_ready = netns.as_ref().map(network::Namespace::ready_fd);
    let cgroups = cgroup::Cgroups::create(&spec.limits)?;
    plan.cgroup_procs = cgroups.procs_fds();
    let argv = sys::ptrs(&plan.argv);
    let env = sys::ptrs(&plan.env);

    let (err_r, err_w) = pipe()?;
    let mut capture = None;
    let mut console_socket = None;
    let mut keep: Vec<OwnedFd> = Vec::new();
    let fds = match spec.stdio {
        Stdio::Capture => {
            let devnull = std::fs::File::open("/dev/null").map_err(setup("open /dev/null"))?;
            let (out_r, out_w) = pipe()?;
            let (er_r, er_w) = pipe()?;
            let stdio = [devnull.as_raw_fd(), out_w.as_raw_fd(), er_w.as_raw_fd()];
            keep.extend([OwnedFd::from(devnull), out_w, er_w]);
            capture = Some((out_r, er_r));
            child::Fds {
                error: err_w.as_raw_fd(),
                stdio: Some(stdio),
                console: None,
            }
        }
        Stdio::Inherit => child::Fds {
            error: err_w.as_raw_fd(),
            stdio: None,
            console: None,
        },
        Stdio::NoInput => {
            let devnull = std::fs::File::open("/dev/null").map_err(setup("open /dev/null"))?;
            let stdio = [devnull.as_raw_fd(), 1, 2];
            keep.push(OwnedFd::from(devnull));
            child::Fds {
                error: err_w.as_raw_fd(),
                stdio: Some(stdio),
                console: None,
            }
        }
        Stdio::Tty | Stdio::TtyNoInput => {
            let (ours, theirs) =
                console::socket_pair().map_err(setup("make the terminal's socket"))?;
            let socket = theirs.as_raw_fd();
            keep.push(theirs);
            console_socket = Some(ours);
            child::Fds {
                error: err_w.as_raw_fd(),
                stdio: None,
                console: Some(console::Console {
                    socket,
                    winsize: resize::terminal_size(),
                }),
            }
        }
    };
    let args = child::Args {
        plan: &plan,
        fds,
        argv: &argv,
        env: &env,
    };
    let mut flags =
        libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS;
    if spec.network == Network::None {
        flags |= libc::CLONE_NEWNET;
    }
    let interactive = spec.stdio != Stdio::Capture;
    let _ignored = interactive.then(IgnoreInterrupts::new);
    let mut stack = vec![0u8; 1 << 20];
    // SAFETY: the child runs `child::main` on its own copy of our memory
    // (no CLONE_VM), with a stack at the top of `stack`; `args` lives
    // until we have waited for it.
    let pid = unsafe {
        let top = stack.as_mut_ptr().add(stack.len());
        libc::clone(
            child::main,
            top.cast::<c_void>(),
            flags | libc::SIGCHLD,
            &args as *const child::Args<'_> as *mut c_void,
        )
    };
    if pid < 0 {
        return Err(ExecError::Setup(format!(
            "clone: {}",
            std::io::Error::last_os_error()
        )));
    }
    let _registered = cleanup::register(pid, dir);
    drop(keep);
    drop(err_w);
    let tty_master = match console_socket.as_ref().map(console::receive_master) {
        Some(Err(e)) => {
            // SAFETY: signalling our own child, then reaping it.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let _ = wait(pid);
            return Err(ExecError::Setup(format!(
                "receive the sandbox's terminal: {e}"
            )));
        }
        Some(Ok(master)) => master,
        None => None,
    };
    let _raw = tty_master.as_ref().and_then(|_| stdio::RawMode::enter());
    if let Some((out, err)) = capture {
        stdio::capture(out, err, output);
    } else if let Some(master) = tty_master {
        stdio::proxy_tty(master, spec.stdio == Stdio::Tty);
    }
    let code = wait(pid)?;
    drop(cgroups);
    drop(stack);
    let mut message = String::new();
    std::io::Read::read_to_string(&mut std::fs::File::from(err_r), &mut message).ok();
    if let Some(ns) = netns
        && message
            .as_bytes()
            .starts_with(child::NETWORK_DOWN.to_bytes())
    {
        return Err(ns.failure());
    }
    if spec.rootfs.upper.is_some() {
        remove_stubs(
            &spec.rootfs.lowers,
            &upper,
            &plan::mountpoints(spec, &files),
        );
        unchanged::write_left_out(&spec.rootfs.lowers, &upper)
            .map_err(setup("record the unchanged copy-ups the layer leaves out"))?;
    }
    if !message.is_empty() {
        return Err(match code {
            child::EXIT_NOT_FOUND => ExecError::Exec(message),
            child::EXIT_CANNOT_EXECUTE => ExecError::CannotExecute(message),
            _ => ExecError::Setup(message),
        });
    }
    Ok(code)
}

fn pipe() -> Result<(OwnedFd, OwnedFd), ExecError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(setup("pipe"))
}

/// Waits for the sandbox's init; its exit code, or 128+signal.
fn wait(pid: libc::pid_t) -> Result<i32, ExecError> {
    loop {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            return Ok(if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            });
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(ExecError::Setup(format!("waitpid: {e}")));
        }
    }
}

/// /etc/hosts (with `extra_hosts` last, as Docker writes them),
/// /etc/resolv.conf and, when `with_hostname`, /etc/hostname for the
/// sandbox.
fn system_files(
    hostname: &str,
    net: Network,
    extra_hosts: &[HostEntry],
    with_hostname: bool,
) -> Result<Vec<FileMount>, ExecError> {
    let mut hosts =
        format!("127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for entry in extra_hosts {
        let ip = match entry.ip {
            HostAddress::Ip(ip) => ip,
            HostAddress::HostGateway => host_gateway::address(net)?,
        };
        hosts.push_str(&format!("{ip}\t{}\n", entry.name));
    }
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let resolv = match net {
        Network::Private => network::resolv_conf(&host_resolv),
        Network::Host | Network::None => host_resolv,
    };
    let hostname = with_hostname.then(|| (format!("{hostname}\n"), "/etc/hostname"));
    Ok([(hosts, "/etc/hosts"), (resolv, "/etc/resolv.conf")]
        .into_iter()
        .chain(hostname)
        .map(|(content, target)| FileMount {
            target: target.to_string(),
            content: content.into_bytes(),
            mode: 0o644,
            uid: 0,
            gid: 0,
            readonly: false,
        })
        .collect())
}

/// Ignores SIGINT and SIGQUIT while an interactive process runs (it gets
/// them from the terminal itself), as `system(3)` does.
struct IgnoreInterrupts {
    saved: Vec<(nix::sys::signal::Signal, nix::sys::signal::SigAction)>,
}

impl IgnoreInterrupts {
    fn new() -> Self {
        use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
        let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
        let saved = [Signal::SIGINT, Signal::SIGQUIT]
            .into_iter()
            // SAFETY: installing SIG_IGN is always sound.
            .filter_map(|s| unsafe { sigaction(s, &ignore) }.ok().map(|old| (s, old)))
            .collect();
        Self { saved }
    }
}

impl Drop for IgnoreInterrupts {
    fn drop(&mut self) {
        for (s, old) in &self.saved {
            // SAFETY: restoring the previous disposition.
            let _ = unsafe { nix::sys::signal::sigaction(*s, old) };
        }
    }
}

fn is_empty_dir(path: &Path) -> bool {
    std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_none())
}

/// The xattr overlayfs marks an opaque upper directory with (the mounts
/// use `userxattr`).
pub const OPAQUE_XATTR: &std::ffi::CStr = c"user.overlay.opaque";

fn is_opaque(path: &Path) -> bool {
    let Ok(p) = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()))
    else {
        return false;
    };
    let mut buf = [0u8; 4];
    // SAFETY: valid path and buffer.
    let n = unsafe {
        libc::lgetxattr(
            p.as_ptr(),
            OPAQUE_XATTR.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    n > 0
}

/// Removes the mountpoints the sandbox had to create in the upper dir
/// (empty files and directories the lower layers do not show), deepest
/// first, so that they do not end up in the layer.
fn remove_stubs(lowers: &[PathBuf], upper: &Path, mountpoints: &[String]) {
    let mut paths: Vec<String> = Vec::new();
    for m in mountpoints {
        let mut acc = String::new();
        for c in m.split('/').filter(|c| !c.is_empty()) {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(c);
            if !paths.contains(&acc) {
                paths.push(acc.clone());
            }
        }
    }
    paths.sort_by_key(|p| std::cmp::Reverse(p.matches('/').count()));
    for rel in paths {
        let path = upper.join(&rel);
        let Ok(meta) = path.symlink_metadata() else {
            continue;
        };
        // Created for a mount: an empty file or directory the lowers (as
        // overlayfs merges them) do not have. A directory copied up only
        // because a mountpoint was made inside is left out of the layer
        // with the unchanged copy-ups (`unchanged`).
        let made = (meta.is_dir() && is_empty_dir(&path)) || (meta.is_file() && meta.len() == 0);
        if made && unchanged::below(lowers, Path::new(&rel)).is_none() {
            let _ = if meta.is_dir() {
                std::fs::remove_dir(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
}
