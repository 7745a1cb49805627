//! `rbuild run`: a command in a new sandbox made from an image, with
//! Docker's rules for ENTRYPOINT, CMD, Env, WorkingDir and User.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use rbuild_build::Session;
use rbuild_build::run::{self, RunRequest};
use rbuild_executor::Network;
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

    /// Bind a host path: `HOST:CONTAINER[:ro|rw]`; repeatable.
    #[arg(short = 'v', long = "volume", value_name = "HOST:CONTAINER[:ro]")]
    volumes: Vec<String>,

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
    if matches!(args.network.as_str(), "bridge" | "default") {
        // Made while the image is opened.
        rbuild_executor::prepare_network();
    }
    let session = Session::open(root, ClientOptions::default())?;
    Reference::parse(&args.image).with_context(|| format!("invalid image {:?}", args.image))?;
    let image = run::open_image(&session, &args.image)?;
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
        volumes: args
            .volumes
            .iter()
            .map(|v| run::parse_volume(v))
            .collect::<Result<_, _>>()?,
        tty: args.tty,
        security: run::security(&args.security_opts)?,
        init: args.init,
        limits: args.limits.limits()?,
    };
    let spec = run::spec(&image, &request)?;
    let _ = (args.rm, args.interactive);
    let runtime = (args.runtime != "bundled").then_some(args.runtime.as_str());
    let code = rbuild_executor::run_with(runtime, &spec, &mut |_, _| {})?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(255)))
}
