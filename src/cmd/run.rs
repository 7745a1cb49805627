//! `rbuild run`: a command in a new sandbox made from an image, with
//! Docker's rules for ENTRYPOINT, CMD, Env, WorkingDir and User.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use rbuild_build::Session;
use rbuild_executor::{BindMount, Network, RootFs, RunSpec, Seccomp, Security, Stdio};
use rbuild_image::{ImageConfig, Reference};
use rbuild_registry::ClientOptions;

use super::limits::LimitArgs;
use crate::show::short_id;

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
    if matches!(args.network.as_str(), "bridge" | "default") {
        // Made while the image is opened.
        rbuild_executor::prepare_network();
    }
    let session = Session::open(root, ClientOptions::default())?;
    let reference =
        Reference::parse(&args.image).with_context(|| format!("invalid image {:?}", args.image))?;
    let name = reference.store_name();
    let image = session
        .runtime
        .block_on(session.images.resolve(&args.image))?;
    let config = image.config.clone();
    let lowers = session.runtime.block_on(async {
        let mut out = Vec::new();
        for layer in &image.layers {
            out.push(
                session
                    .store
                    .snapshot_path(&session.images.snapshot(layer).await?),
            );
        }
        Ok::<_, rbuild_solver::SolveError>(out)
    })?;
    if session.store.resolve_tag(&name)?.is_none() {
        // Pulled from a registry just now: keep it, as `docker run` does,
        // once every layer is stored (a name never points at less).
        session.store.tag(&name, &image.manifest_descriptor()?)?;
    }

    let argv = command_line(&config, args.entrypoint.as_deref(), &args.command);
    if argv.is_empty() {
        bail!("no command specified: the image has no ENTRYPOINT or CMD");
    }
    let spec = RunSpec {
        rootfs: RootFs {
            lowers,
            upper: None,
        },
        args: argv,
        env: merge_env(
            &config.env,
            &[read_env_files(&args.env_files)?, args.env.clone()].concat(),
        ),
        cwd: args
            .workdir
            .clone()
            .unwrap_or_else(|| non_empty_or(&config.working_dir, "/")),
        user: args.user.clone().unwrap_or_else(|| config.user.clone()),
        hostname: args
            .hostname
            .clone()
            .or_else(|| args.name.clone())
            .unwrap_or_else(|| short_id(&image.digest)),
        network: match args.network.as_str() {
            "none" => Network::None,
            "host" => Network::Host,
            _ => Network::Private,
        },
        mounts: args
            .volumes
            .iter()
            .map(|v| parse_volume(v))
            .collect::<anyhow::Result<_>>()?,
        layer_mounts: Vec::new(),
        tmpfs: Vec::new(),
        stdio: if args.tty { Stdio::Tty } else { Stdio::Inherit },
        security: security(&args.security_opts)?,
        init: args.init,
        files: Vec::new(),
        limits: args.limits.limits()?,
    };
    let _ = (args.rm, args.interactive);
    let runtime = (args.runtime != "bundled").then_some(args.runtime.as_str());
    let code = rbuild_executor::run_with(runtime, &spec, &mut |_, _| {})?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(255)))
}

/// The sandbox's security from `--security-opt`s: Docker's defaults
/// (default seccomp profile, no_new_privs off) unless they say otherwise.
fn security(options: &[String]) -> anyhow::Result<Security> {
    let mut security = Security {
        no_new_privileges: false,
        ..Security::default()
    };
    for option in options {
        // Docker also accepts the older `seccomp:…` spelling.
        let (key, value) = option
            .split_once(['=', ':'])
            .map_or((option.as_str(), None), |(k, v)| (k, Some(v)));
        match (key, value) {
            ("seccomp", Some("unconfined")) => security.seccomp = Seccomp::Unconfined,
            ("seccomp", Some(file)) => {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("--security-opt seccomp: read {file}"))?;
                security.seccomp = Seccomp::Profile(text);
            }
            ("no-new-privileges", None | Some("true")) => security.no_new_privileges = true,
            ("no-new-privileges", Some("false")) => security.no_new_privileges = false,
            _ => bail!(
                "--security-opt {option}: expected seccomp=unconfined, seccomp=FILE \
                 or no-new-privileges[=true|false]"
            ),
        }
    }
    Ok(security)
}

/// The `KEY=VALUE` lines of `--env-file`s, as `docker run` reads them
/// (blank lines and `#` comments skipped; a bare `KEY` comes from the
/// environment).
fn read_env_files(files: &[std::path::PathBuf]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("read --env-file {}", f.display()))?;
        out.extend(
            text.lines()
                .map(str::trim_start)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    Ok(out)
}

/// `-v HOST:CONTAINER[:ro|rw]` → a bind mount; the host path must exist.
fn parse_volume(value: &str) -> anyhow::Result<BindMount> {
    let parts: Vec<&str> = value.split(':').collect();
    let (host, target, readonly) = match parts.as_slice() {
        [h, t] => (*h, *t, false),
        [h, t, "ro"] => (*h, *t, true),
        [h, t, "rw"] => (*h, *t, false),
        _ => bail!("invalid volume {value:?}: expected HOST:CONTAINER[:ro|rw]"),
    };
    if !target.starts_with('/') {
        bail!("invalid volume {value:?}: the container path must be absolute");
    }
    let source =
        std::fs::canonicalize(host).with_context(|| format!("invalid volume {value:?}: {host}"))?;
    Ok(BindMount {
        source,
        target: target.to_string(),
        readonly,
    })
}

/// Docker's rule: `--entrypoint` replaces ENTRYPOINT and drops the image's
/// CMD; arguments replace CMD.
fn command_line(config: &ImageConfig, entrypoint: Option<&str>, command: &[String]) -> Vec<String> {
    let mut argv: Vec<String> = match entrypoint {
        Some("") => Vec::new(),
        Some(e) => vec![e.to_string()],
        None => config.entrypoint.clone().unwrap_or_default(),
    };
    if !command.is_empty() {
        argv.extend(command.iter().cloned());
    } else if entrypoint.is_none() {
        argv.extend(config.cmd.clone().unwrap_or_default());
    }
    argv
}

/// The image's environment with `-e` values added or replacing by name.
fn merge_env(image: &[String], overrides: &[String]) -> Vec<String> {
    let mut env: Vec<String> = image.to_vec();
    for o in overrides {
        let entry = match o.split_once('=') {
            Some(_) => o.clone(),
            None => match std::env::var(o) {
                Ok(v) => format!("{o}={v}"),
                Err(_) => continue,
            },
        };
        let key = entry.split('=').next().unwrap_or_default().to_string();
        env.retain(|e| e.split('=').next() != Some(key.as_str()));
        env.push(entry);
    }
    env
}

fn non_empty_or(value: &str, default: &str) -> String {
    if value.is_empty() {
        default.to_string()
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(entrypoint: Option<&[&str]>, cmd: Option<&[&str]>) -> ImageConfig {
        ImageConfig {
            entrypoint: entrypoint.map(|e| e.iter().map(|s| s.to_string()).collect()),
            cmd: cmd.map(|e| e.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn entrypoint_and_cmd_combine_as_docker() {
        let c = config(Some(&["/ep"]), Some(&["a"]));
        assert_eq!(command_line(&c, None, &[]), ["/ep", "a"]);
        assert_eq!(command_line(&c, None, &["b".into()]), ["/ep", "b"]);
        assert_eq!(command_line(&c, Some("/x"), &[]), ["/x"]);
        assert_eq!(command_line(&c, Some(""), &["sh".into()]), ["sh"]);
        assert_eq!(
            command_line(&config(None, Some(&["sh"])), None, &[]),
            ["sh"]
        );
    }

    #[test]
    fn volumes_parse_as_docker() {
        let v = parse_volume("/tmp:/mnt:ro").unwrap();
        assert_eq!((v.target.as_str(), v.readonly), ("/mnt", true));
        assert!(!parse_volume("/tmp:/mnt").unwrap().readonly);
        assert!(parse_volume("/tmp:relative").is_err());
        assert!(parse_volume("/nonexistent-path:/mnt").is_err());
        assert!(parse_volume("/tmp:/mnt:bogus").is_err());
    }

    #[test]
    fn env_files_skip_comments() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("env");
        std::fs::write(&f, "# c\nA=1\n\n  B=two words\n").unwrap();
        assert_eq!(read_env_files(&[f]).unwrap(), ["A=1", "B=two words"]);
        assert!(read_env_files(&[dir.path().join("missing")]).is_err());
    }

    #[test]
    fn env_overrides_by_name() {
        let env = merge_env(&["A=1".into(), "B=2".into()], &["A=3".into(), "C=4".into()]);
        assert_eq!(env, ["B=2", "A=3", "C=4"]);
    }
}
