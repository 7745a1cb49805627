//! `rbuild run`'s sandbox from an image, with Docker's rules: `--entrypoint`
//! replaces ENTRYPOINT and drops CMD, arguments replace CMD; `-e` values
//! add to or replace the image's Env by name; WorkingDir (else `/`), User
//! and the hostname (the image id's first twelve digits) unless given;
//! `-v` binds and `--security-opt`s as `docker run` reads them.

use std::path::PathBuf;

use rbuild_executor::{
    BindMount, HostEntry, Limits, Network, PortForward, RootFs, RunSpec, Seccomp, Security, Stdio,
    TmpfsMount, Ulimit,
};
use rbuild_image::manifest::short_id;
use rbuild_image::{ImageConfig, Reference};

use crate::{BuildError, Session};

/// Why a sandbox cannot be made as asked.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Neither the image nor the request gives a command.
    #[error("no command specified: the image has no ENTRYPOINT or CMD")]
    NoCommand,
    /// A `-v` value is not `HOST:CONTAINER[:ro|rw]` or names no host path.
    #[error("invalid volume {value:?}: {reason}")]
    Volume {
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `--security-opt` is not one rbuild knows.
    #[error(
        "--security-opt {0}: expected seccomp=unconfined, seccomp=FILE or no-new-privileges[=true|false]"
    )]
    SecurityOption(String),
    /// A file named by an option could not be read.
    #[error("{what} {}: {source}", path.display())]
    Read {
        /// The option (`--env-file`, `--security-opt seccomp`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// An image opened to run: its config and its layers unpacked.
#[derive(Debug, Clone)]
pub struct RunImage {
    /// The manifest digest.
    pub digest: String,
    /// The image's config object.
    pub config: ImageConfig,
    /// Its layers' snapshot directories, bottom first.
    pub lowers: Vec<PathBuf>,
}

/// When `rbuild run` asks the registry for the image (`--pull`, as
/// `docker run --pull`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    /// Only when the store does not have it (the default).
    #[default]
    Missing,
    /// Always, and the registry's image is run.
    Always,
    /// Never: an image the store lacks is an error.
    Never,
}

/// Opens `name` to run: from the store, else (or always, with
/// [`PullPolicy::Always`]) pulled from its registry and then tagged in
/// the store, as `docker run` keeps what it pulls; its layers unpacked.
/// Of a multi-platform image, `platform`'s; one of another architecture
/// than the host's needs qemu-user (see [`rbuild_executor::check_emulation`]).
pub fn open_image(
    session: &Session,
    name: &str,
    policy: PullPolicy,
    platform: &rbuild_image::Platform,
) -> Result<RunImage, BuildError> {
    let host = crate::host_platform();
    rbuild_executor::check_emulation(&host.architecture, &platform.architecture)?;
    // Only a pulled image gets the name: one of the store (found by name,
    // id or digest) keeps the names it has.
    let in_store = session.store.find_image(name)?.is_some();
    let pulled = policy == PullPolicy::Always || !in_store;
    if policy == PullPolicy::Never && !in_store {
        return Err(BuildError::NotPulled(name.to_string()));
    }
    let store_name = Reference::parse(name)?.store_name();
    let image = session.runtime.block_on(async {
        if policy == PullPolicy::Always {
            let pulled = session.images.pull(name, platform).await;
            pulled.map(std::sync::Arc::new)
        } else {
            session.images.resolve(name, platform).await
        }
    })?;
    let lowers = session.runtime.block_on(async {
        let mut out = Vec::with_capacity(image.layers.len());
        for layer in &image.layers {
            let snapshot = session.images.snapshot(layer).await?;
            out.push(session.store.snapshot_path(&snapshot));
        }
        Ok::<_, rbuild_solver::SolveError>(out)
    })?;
    if pulled {
        // Tagged once every layer is stored: a name never points at less.
        session
            .store
            .tag(&store_name, &image.manifest_descriptor()?)?;
    }
    Ok(RunImage {
        digest: image.digest.clone(),
        config: image.config.clone(),
        lowers,
    })
}

/// What `rbuild run` asks of the sandbox, beside the image.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    /// `--entrypoint` (empty: none).
    pub entrypoint: Option<String>,
    /// The command and its arguments (default: the image's CMD).
    pub command: Vec<String>,
    /// `KEY=VALUE` (or bare `KEY`, taken from this environment) entries,
    /// `--env-file` lines first, then `-e` values.
    pub env: Vec<String>,
    /// `--workdir`.
    pub workdir: Option<String>,
    /// `--user`.
    pub user: Option<String>,
    /// `--hostname`, else `--name`.
    pub hostname: Option<String>,
    /// The network.
    pub network: Network,
    /// `-v` binds.
    pub volumes: Vec<BindMount>,
    /// A pseudo-terminal (and `TERM=xterm` unless the image or `-e`
    /// sets it, as Docker).
    pub tty: bool,
    /// Give the process rbuild's stdin (`-i`); otherwise it reads
    /// /dev/null (or a terminal that gets no input).
    pub interactive: bool,
    /// A read-only root filesystem.
    pub readonly_rootfs: bool,
    /// Empty tmpfs mounts (`--tmpfs`, `--mount type=tmpfs`).
    pub tmpfs: Vec<TmpfsMount>,
    /// `/etc/hosts` entries (`--add-host`).
    pub extra_hosts: Vec<HostEntry>,
    /// `--ulimit`s.
    pub ulimits: Vec<Ulimit>,
    /// `--shm-size` in bytes.
    pub shm_size: Option<u64>,
    /// `-p` published ports.
    pub ports: Vec<PortForward>,
    /// Seccomp and no_new_privs.
    pub security: Security,
    /// A small init as pid 1.
    pub init: bool,
    /// Memory, CPUs, pids.
    pub limits: Limits,
}

/// The sandbox spec of `request` on `image`.
pub fn spec(image: &RunImage, request: &RunRequest) -> Result<RunSpec, RunError> {
    let config = &image.config;
    let args = command_line(config, request.entrypoint.as_deref(), &request.command);
    if args.is_empty() {
        return Err(RunError::NoCommand);
    }
    let mut image_env = config.env.clone();
    if request.tty && !image_env.iter().any(|e| e.starts_with("TERM=")) {
        // As Docker: a terminal's TERM, unless the image or -e sets one.
        image_env.insert(0, String::from("TERM=xterm"));
    }
    Ok(RunSpec {
        rootfs: RootFs {
            lowers: image.lowers.clone(),
            upper: None,
        },
        args,
        env: merge_env(&image_env, &request.env),
        cwd: request.workdir.clone().unwrap_or_else(|| {
            if config.working_dir.is_empty() {
                String::from("/")
            } else {
                config.working_dir.clone()
            }
        }),
        user: request.user.clone().unwrap_or_else(|| config.user.clone()),
        hostname: request
            .hostname
            .clone()
            .unwrap_or_else(|| short_id(&image.digest)),
        network: request.network,
        mounts: request.volumes.clone(),
        layer_mounts: Vec::new(),
        tmpfs: request.tmpfs.clone(),
        stdio: match (request.tty, request.interactive) {
            (true, true) => Stdio::Tty,
            (true, false) => Stdio::TtyNoInput,
            (false, true) => Stdio::Inherit,
            (false, false) => Stdio::NoInput,
        },
        security: request.security.clone(),
        init: request.init,
        files: Vec::new(),
        limits: request.limits,
        readonly_rootfs: request.readonly_rootfs,
        extra_hosts: request.extra_hosts.clone(),
        shm_size: request.shm_size,
        ulimits: request.ulimits.clone(),
        ports: request.ports.clone(),
    })
}

/// The sandbox's security from `--security-opt`s: Docker's defaults
/// (default seccomp profile, no_new_privs off) unless they say otherwise.
pub fn security(options: &[String]) -> Result<Security, RunError> {
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
                let text = std::fs::read_to_string(file).map_err(|source| RunError::Read {
                    what: "--security-opt seccomp: read",
                    path: PathBuf::from(file),
                    source,
                })?;
                security.seccomp = Seccomp::Profile(text);
            }
            ("no-new-privileges", None | Some("true")) => security.no_new_privileges = true,
            ("no-new-privileges", Some("false")) => security.no_new_privileges = false,
            _ => return Err(RunError::SecurityOption(option.clone())),
        }
    }
    Ok(security)
}

/// The `KEY=VALUE` lines of `--env-file`s, as `docker run` reads them
/// (blank lines and `#` comments skipped; a bare `KEY` comes from the
/// environment).
pub fn read_env_files(files: &[PathBuf]) -> Result<Vec<String>, RunError> {
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|source| RunError::Read {
            what: "read --env-file",
            path: f.clone(),
            source,
        })?;
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
pub fn parse_volume(value: &str) -> Result<BindMount, RunError> {
    let invalid = |reason: String| RunError::Volume {
        value: value.to_string(),
        reason,
    };
    let parts: Vec<&str> = value.split(':').collect();
    let (host, target, readonly) = match parts.as_slice() {
        [h, t] => (*h, *t, false),
        [h, t, "ro"] => (*h, *t, true),
        [h, t, "rw"] => (*h, *t, false),
        _ => return Err(invalid(String::from("expected HOST:CONTAINER[:ro|rw]"))),
    };
    if !target.starts_with('/') {
        return Err(invalid(String::from("the container path must be absolute")));
    }
    let source = std::fs::canonicalize(host).map_err(|e| invalid(format!("{host}: {e}")))?;
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

/// The image's environment with overrides added or replacing by name.
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

    fn image(config: ImageConfig) -> RunImage {
        RunImage {
            digest: format!("sha256:{}", "ab".repeat(32)),
            config,
            lowers: vec![PathBuf::from("/layers/1")],
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
    fn the_spec_takes_the_images_settings_unless_the_request_overrides_them() {
        let mut c = config(None, Some(&["sh"]));
        c.env = vec!["A=1".into(), "B=2".into()];
        c.user = String::from("app");
        let img = image(c);
        let plain = spec(&img, &RunRequest::default()).unwrap();
        assert_eq!(plain.args, ["sh"]);
        assert_eq!(plain.env, ["A=1", "B=2"]);
        assert_eq!((plain.cwd.as_str(), plain.user.as_str()), ("/", "app"));
        assert_eq!(plain.hostname, "abababababab");
        assert_eq!(plain.rootfs.lowers, [PathBuf::from("/layers/1")]);
        assert!(matches!(plain.stdio, Stdio::NoInput));
        let request = RunRequest {
            env: vec!["A=3".into()],
            workdir: Some("/w".into()),
            user: Some("0".into()),
            hostname: Some("box".into()),
            tty: true,
            interactive: true,
            ..RunRequest::default()
        };
        let overridden = spec(&img, &request).unwrap();
        assert_eq!(overridden.env, ["TERM=xterm", "B=2", "A=3"]);
        assert_eq!(
            (
                overridden.cwd.as_str(),
                overridden.user.as_str(),
                overridden.hostname.as_str()
            ),
            ("/w", "0", "box")
        );
        assert!(matches!(overridden.stdio, Stdio::Tty));
    }

    #[test]
    fn an_image_without_a_command_needs_one() {
        let e = spec(&image(ImageConfig::default()), &RunRequest::default()).unwrap_err();
        assert!(matches!(e, RunError::NoCommand));
    }

    #[test]
    fn security_options_are_dockers() {
        let s = security(&[]).unwrap();
        assert!(!s.no_new_privileges && matches!(s.seccomp, Seccomp::Default));
        let s = security(&["seccomp:unconfined".into(), "no-new-privileges".into()]).unwrap();
        assert!(s.no_new_privileges && matches!(s.seccomp, Seccomp::Unconfined));
        assert!(security(&["apparmor=x".into()]).is_err());
        assert!(security(&["seccomp=/nonexistent.json".into()]).is_err());
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
