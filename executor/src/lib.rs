//! Runs one process in a sandbox: new mount, pid, ipc, uts (and net, unless
//! host networking) namespaces, an overlayfs root whose lower dirs are a
//! snapshot's layers and whose upper dir collects the changes, /proc, a
//! minimal /dev, /etc/hosts, resolv.conf and hostname, reduced capabilities
//! and no_new_privs. The same executor serves RUN and `rbuild run`.

use std::path::PathBuf;

/// Errors of the executor.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// Setting up the sandbox failed (namespaces, mounts, user lookup).
    #[error("sandbox setup failed: {0}")]
    Setup(String),
}

/// The root filesystem of a sandbox.
#[derive(Debug, Clone, Default)]
pub struct RootFs {
    /// Read-only layers, bottom first. May be empty (scratch).
    pub lowers: Vec<PathBuf>,
    /// Where changes go (must be empty at first), with its overlay work dir
    /// on the same filesystem. `None` makes a throw-away upper dir.
    pub upper: Option<(PathBuf, PathBuf)>,
}

/// Network of the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// Share the host's network namespace.
    #[default]
    Host,
    /// A new network namespace with only `lo`.
    None,
}

/// A host path bound into the sandbox.
#[derive(Debug, Clone)]
pub struct BindMount {
    /// Host path.
    pub source: PathBuf,
    /// Absolute path inside the sandbox.
    pub target: String,
    /// Mount read-only.
    pub readonly: bool,
}

/// Where the process's stdio goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stdio {
    /// stdout and stderr are captured and handed to the output callback line
    /// by line; stdin is /dev/null (RUN).
    #[default]
    Capture,
    /// The caller's stdin/stdout/stderr are used directly (`rbuild run`).
    Inherit,
    /// Like `Inherit`, with a new pseudo-terminal (`rbuild run -t`).
    Tty,
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
    /// Hostname inside the sandbox.
    pub hostname: String,
    /// Network mode.
    pub network: Network,
    /// Extra bind mounts.
    pub mounts: Vec<BindMount>,
    /// Stdio handling.
    pub stdio: Stdio,
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
    let _ = output;
    todo!("executor: run {:?}", spec.args)
}
