//! `rbuild run`: a command in a new sandbox made from an image, with
//! Docker's rules for ENTRYPOINT, CMD, Env, WorkingDir and User.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use rbuild_build::Session;
use rbuild_build::run::{self, PullPolicy, RunRequest};
use rbuild_build::runopts::{self, MountOption};
use rbuild_executor::{BindMount, ExecError, Network, PortForward, TmpfsMount, Ulimit};
use rbuild_image::Reference;
use rbuild_registry::ClientOptions;

use super::limits::LimitArgs;

/// `rbuild run` arguments, named as `docker run`'s.
#[derive(Debug, Args)]
#[command(trailing_var_arg = true)]
pub struct RunArgs {
    /// Accepted for compatibility: the sandbox is always removed on exit.
    #[arg(long)]
    rm: bool,

    /// Set an environment variable (`KEY=VALUE`, or `KEY` from the environment).
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,

    /// Read environment variables from a file (`KEY=VALUE` lines, `#`
    /// comments); `-e` values come after and win.
    #[arg(long = "env-file", value_name = "FILE")]
    env_files: Vec<std::path::PathBuf>,

    /// The OCI runtime to run the sandbox with: `bundled` (default) or an
    /// external one on PATH such as `runc`, given the same spec.
    #[arg(long, default_value = "bundled", value_name = "RUNTIME")]
    runtime: String,

    /// A name for the sandbox (its hostname unless --hostname is given).
    #[arg(long)]
    name: Option<String>,

    /// Working directory inside the sandbox.
    #[arg(short = 'w', long = "workdir")]
    workdir: Option<String>,

    /// User (`name`, `uid`, `name:group`, `uid:gid`).
    #[arg(short = 'u', long = "user")]
    user: Option<String>,

    /// Override the image's ENTRYPOINT.
    #[arg(long)]
    entrypoint: Option<String>,

    /// Network: `bridge` (default; also `default`: a network namespace of
    /// its own with outbound access through a user-mode NAT), `host` or
    /// `none`.
    #[arg(long, default_value = "bridge", value_parser = ["bridge", "default", "host", "none"])]
    network: String,

    /// Publish a port: `[HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp]`
    /// (the default network's helper forwards it); repeatable.
    #[arg(short = 'p', long = "publish", value_name = "HOST:CONTAINER")]
    publish: Vec<String>,

    /// Hostname inside the sandbox.
    #[arg(long)]
    hostname: Option<String>,

    /// Allocate a pseudo-terminal.
    #[arg(short = 't', long = "tty")]
    tty: bool,

    /// Keep stdin open.
    #[arg(short = 'i', long = "interactive")]
    interactive: bool,

    /// Refused: rbuild has no daemon to keep a sandbox in the background.
    #[arg(short = 'd', long)]
    detach: bool,

    /// Bind a host path (`/HOST:CONTAINER[:ro|rw]`) or a named volume of
    /// the store (`NAME:CONTAINER[:ro|rw]`, made on first use); repeatable.
    #[arg(short = 'v', long = "volume", value_name = "HOST|NAME:CONTAINER[:ro]")]
    volumes: Vec<String>,

    /// A mount: `type=bind,source=HOST,target=PATH[,readonly]`,
    /// `type=tmpfs,target=PATH[,tmpfs-size=SIZE]` or
    /// `type=volume,source=NAME,target=PATH[,readonly]`; repeatable.
    #[arg(long = "mount", value_name = "type=TYPE,source=…,target=…")]
    mounts: Vec<String>,

    /// An empty tmpfs at PATH (`PATH[:size=SIZE]`); repeatable.
    #[arg(long = "tmpfs", value_name = "PATH[:size=SIZE]")]
    tmpfs: Vec<String>,

    /// Mount the image's root filesystem read-only.
    #[arg(long = "read-only")]
    read_only: bool,

    /// Add a capability to Docker's default set (`NET_ADMIN`, `ALL`); repeatable.
    #[arg(long = "cap-add", value_name = "CAP")]
    cap_add: Vec<String>,

    /// Remove a capability from it (`CHOWN`, `ALL`); repeatable.
    #[arg(long = "cap-drop", value_name = "CAP")]
    cap_drop: Vec<String>,

    /// Every capability, no seccomp filter, no masked /proc paths and a
    /// writable /sys (the devices stay the default set).
    #[arg(long)]
    privileged: bool,

    /// Add an /etc/hosts entry (`NAME:IP`); repeatable.
    #[arg(long = "add-host", value_name = "NAME:IP")]
    add_hosts: Vec<String>,

    /// A process resource limit (`nofile=1024[:2048]`); repeatable.
    #[arg(long = "ulimit", value_name = "NAME=SOFT[:HARD]")]
    ulimits: Vec<String>,

    /// The size of /dev/shm (`64m`, the default).
    #[arg(long = "shm-size", value_name = "SIZE")]
    shm_size: Option<String>,

    /// When to pull the image: `missing` (default), `always` or `never`.
    #[arg(long, default_value = "missing", value_parser = ["missing", "always", "never"])]
    pull: String,

    /// The platform of a multi-platform image to run (`linux/arm64`,
    /// `arm64`; the host's by default); another architecture runs through
    /// qemu-user.
    #[arg(long, value_name = "PLATFORM")]
    platform: Option<String>,

    /// Security options, as `docker run`: `seccomp=unconfined`,
    /// `seccomp=PROFILE.json`, `no-new-privileges[=true|false]`; repeatable.
    #[arg(long = "security-opt", value_name = "OPTION")]
    security_opts: Vec<String>,

    /// Run a small init as pid 1 that reaps zombies and forwards signals
    /// (otherwise the image's process is pid 1, as in Docker).
    #[arg(long)]
    init: bool,

    #[command(flatten)]
    limits: LimitArgs,

    /// The image.
    image: String,

    /// The command and its arguments (default: the image's CMD).
    command: Vec<String>,
}

/// Runs the image; the exit code is the process's.
pub fn run(root: &Path, args: RunArgs) -> anyhow::Result<ExitCode> {
    if args.detach {
        anyhow::bail!(
            "rbuild has no daemon: `run -d` cannot keep a sandbox running after rbuild exits; run it in the foreground"
        );
    }
    if matches!(args.network.as_str(), "bridge" | "default") && args.publish.is_empty() {
        // Made while the image is opened.
        rbuild_executor::prepare_network();
    }
    let session = Session::open(root, ClientOptions::default())?;
    Reference::parse(&args.image).with_context(|| format!("invalid image {:?}", args.image))?;
    let (volumes, tmpfs) = mounts(&args, &session.store)?;
    let policy = match args.pull.as_str() {
        "always" => PullPolicy::Always,
        "never" => PullPolicy::Never,
        _ => PullPolicy::Missing,
    };
    let platform = match &args.platform {
        Some(p) => rbuild_image::Platform::parse(p)?,
        None => rbuild_image::Platform::host(),
    };
    let image = run::open_image(&session, &args.image, policy, &platform)?;
    let mut security = run::security(&args.security_opts)?;
    security.cap_add = args.cap_add.clone();
    security.cap_drop = args.cap_drop.clone();
    security.insecure = args.privileged;
    let request = RunRequest {
        entrypoint: args.entrypoint.clone(),
        command: args.command.clone(),
        env: [run::read_env_files(&args.env_files)?, args.env.clone()].concat(),
        workdir: args.workdir.clone(),
        user: args.user.clone(),
        hostname: args.hostname.clone().or_else(|| args.name.clone()),
        network: match args.network.as_str() {
            "none" => Network::None,
            "host" => Network::Host,
            _ => Network::Private,
        },
        volumes,
        tty: args.tty,
        interactive: args.interactive,
        security,
        init: args.init,
        limits: args.limits.limits()?,
        readonly_rootfs: args.read_only,
        tmpfs,
        extra_hosts: args
            .add_hosts
            .iter()
            .map(|h| runopts::parse_add_host(h))
            .collect::<Result<_, _>>()?,
        ulimits: args
            .ulimits
            .iter()
            .map(|u| Ulimit::parse(u).map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<_>>()?,
        shm_size: args
            .shm_size
            .as_deref()
            .map(|s| runopts::parse_size("--shm-size", s))
            .transpose()?,
        ports: args
            .publish
            .iter()
            .map(|p| PortForward::parse(p).map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<_>>()?,
    };
    let spec = run::spec(&image, &request)?;
    let _ = args.rm;
    let runtime = (args.runtime != "bundled").then_some(args.runtime.as_str());
    let code = match rbuild_executor::run_with(runtime, &spec, &mut |_, _| {}) {
        Ok(code) => code,
        // As docker run: 127 for a command not found, 126 for one that
        // cannot be executed (other errors are rbuild's own: 125).
        Err(ExecError::Exec(message)) => {
            eprintln!("error: {message}");
            127
        }
        Err(ExecError::CannotExecute(message)) => {
            eprintln!("error: {message}");
            126
        }
        Err(e) => return Err(e.into()),
    };
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(255)))
}

/// The binds (`-v`, `--mount type=bind|volume`) and tmpfs mounts
/// (`--tmpfs`, `--mount type=tmpfs`) asked for; named volumes live in the
/// store, made on first use.
fn mounts(
    args: &RunArgs,
    store: &rbuild_cache::Store,
) -> anyhow::Result<(Vec<BindMount>, Vec<TmpfsMount>)> {
    let volume = |name: &str, target: String, readonly: bool| -> anyhow::Result<BindMount> {
        Ok(BindMount {
            source: store.volume_dir(name)?,
            target,
            readonly,
        })
    };
    let mut binds = Vec::new();
    for v in &args.volumes {
        let source = v.split(':').next().unwrap_or_default();
        // As Docker: a source that is not a path is a volume's name.
        if !source.contains('/') && !source.starts_with('.') {
            let bind = run::parse_volume(&v.replacen(source, "/", 1))?;
            binds.push(volume(source, bind.target, bind.readonly)?);
        } else {
            binds.push(run::parse_volume(v)?);
        }
    }
    let mut tmpfs = args
        .tmpfs
        .iter()
        .map(|t| runopts::parse_tmpfs(t))
        .collect::<Result<Vec<_>, _>>()?;
    for m in &args.mounts {
        match runopts::parse_mount(m)? {
            MountOption::Bind(bind) => binds.push(bind),
            MountOption::Tmpfs(t) => tmpfs.push(t),
            MountOption::Volume {
                name,
                target,
                readonly,
            } => binds.push(volume(&name, target, readonly)?),
        }
    }
    Ok((binds, tmpfs))
}
