//! Exec ops (RUN): one process in the bundled sandbox, its root an overlay
//! of the input state's snapshots with a fresh snapshot as the upper dir.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;

use crate::bind::{self, BindSource, Bound};
use crate::cachemount::{self, CacheDir, Seed};
use crate::layered;
use crate::ssh::AgentRelay;
use rbuild_executor::{
    BindMount, FileMount, Network, RootFs, RunSpec, Security, Stdio, TmpfsMount,
};
use rbuild_frontend::graph::{ExecOp, MountKind, NetworkMode};

/// How many trailing output lines a failure quotes.
const TAIL_LINES: usize = 10;

/// Everything the mounts of an exec need from outside it.
#[derive(Debug, Clone, Default)]
pub struct MountInputs {
    /// Secret id → host file.
    pub secrets: BTreeMap<String, PathBuf>,
    /// The state of each of the exec's inputs (index = input position).
    pub binds: Vec<Option<BindSource>>,
    /// The cache key of each of the exec's inputs (index = input
    /// position): a cache mount's `from` state names the cache.
    pub keys: Vec<String>,
    /// The store: cache mount directories, and room for bind copies.
    pub store: Option<rbuild_cache::Store>,
    /// Ssh agent id → the agent's socket on the host (`--ssh`).
    pub ssh: BTreeMap<String, PathBuf>,
}

/// What the sandbox's mounts need while it runs: cache mount directories
/// (and their locks), private copies for bind mounts, ssh agent relays.
struct Held {
    _caches: Vec<CacheDir>,
    _copies: Vec<tempfile::TempDir>,
    _relays: Vec<AgentRelay>,
}

/// The sandbox's mounts for `exec`'s `RUN --mount`s, and what to hold
/// while it runs.
fn mounts(exec: &ExecOp, inputs: &MountInputs, spec: &mut RunSpec) -> Result<Held, String> {
    let mut caches = Vec::new();
    let mut copies = Vec::new();
    let mut relays = Vec::new();
    for m in &exec.mounts {
        match &m.kind {
            MountKind::Ssh {
                id,
                required,
                mode,
                uid,
                gid,
            } => match inputs.ssh.get(id) {
                Some(agent) => {
                    let relay = AgentRelay::start(agent, *mode, *uid, *gid)?;
                    spec.mounts.push(BindMount {
                        source: relay.socket(),
                        target: m.target.clone(),
                        readonly: false,
                    });
                    relays.push(relay);
                }
                None if *required => {
                    return Err(format!(
                        "no ssh agent {id}: pass one with --ssh {id}[=SOCKET]"
                    ));
                }
                None => {}
            },
            MountKind::Secret {
                id,
                required,
                env,
                mode,
                uid,
                gid,
            } => match inputs.secrets.get(id) {
                Some(file) => {
                    let content = std::fs::read(file)
                        .map_err(|e| format!("read secret {id} ({}): {e}", file.display()))?;
                    if let Some(name) = env {
                        let value = String::from_utf8_lossy(&content);
                        spec.env.push(format!("{name}={value}"));
                    }
                    if !m.target.is_empty() {
                        // BuildKit's defaults: 0400, owned by root.
                        spec.files.push(FileMount {
                            target: m.target.clone(),
                            content,
                            mode: mode.unwrap_or(0o400),
                            uid: uid.unwrap_or(0),
                            gid: gid.unwrap_or(0),
                            readonly: true,
                        });
                    }
                }
                None if *required => {
                    return Err(format!(
                        "secret {id} not found: pass it with --secret id={id},src=PATH"
                    ));
                }
                None => {}
            },
            MountKind::Tmpfs { size } => spec.tmpfs.push(TmpfsMount {
                target: m.target.clone(),
                size: *size,
            }),
            MountKind::Cache {
                id,
                sharing,
                uid,
                gid,
                mode,
                readonly,
                from,
                source,
            } => {
                let store = inputs
                    .store
                    .as_ref()
                    .ok_or_else(|| format!("cache mount {id} has no store"))?;
                let source = source.as_deref().unwrap_or("/");
                let seed = match from {
                    Some(input) => match (inputs.binds.get(*input), inputs.keys.get(*input)) {
                        (Some(Some(BindSource::Layers(layers))), Some(key)) => Seed::Tree {
                            layers: layers.clone(),
                            key: key.clone(),
                            source: source.to_string(),
                        },
                        _ => return Err(format!("cache mount {id}: its from= state is missing")),
                    },
                    None if uid.is_some() || gid.is_some() || mode.is_some() => Seed::Root {
                        uid: uid.unwrap_or(0),
                        gid: gid.unwrap_or(0),
                        mode: mode.unwrap_or(0o755),
                    },
                    None => Seed::Empty,
                };
                let held = cachemount::acquire(store, id, &seed, *sharing)?;
                let mut dir = held.dir.clone();
                if from.is_none() && source != "/" {
                    // A `source` of an empty cache: the directory is made,
                    // resolved inside the cache (a RUN may have left a
                    // symlink there; it never leads out).
                    let view = layered::HostTree::new(&dir);
                    let inside = layered::resolve(&view, source, true)
                        .map_err(|e| format!("cache mount {id}: {source}: {e}"))?;
                    dir = layered::host_join(&dir, &inside);
                    std::fs::create_dir_all(&dir)
                        .map_err(|e| format!("cache mount {id}: create {source}: {e}"))?;
                }
                caches.push(held);
                spec.mounts.push(BindMount {
                    source: dir,
                    target: m.target.clone(),
                    readonly: *readonly,
                });
            }
            MountKind::Bind {
                input,
                source,
                readwrite,
            } => {
                let from = inputs
                    .binds
                    .get(*input)
                    .and_then(Option::as_ref)
                    .ok_or_else(|| format!("bind mount input {input} is missing"))?;
                let scratch = inputs
                    .store
                    .as_ref()
                    // The store's tmp: what a killed build leaves there,
                    // prune removes.
                    .map(|s| s.root().join("tmp"))
                    .ok_or_else(|| String::from("bind mounts have no store"))?;
                match bind::prepare(from, source, &m.target, *readwrite, &scratch)? {
                    Bound::Copy { mount, holder } => {
                        spec.mounts.push(mount);
                        copies.push(holder);
                    }
                    Bound::AsIs(mount) => spec.mounts.push(mount),
                    Bound::Layers(mount) => spec.layer_mounts.push(mount),
                }
            }
        }
    }
    Ok(Held {
        _caches: caches,
        _copies: copies,
        _relays: relays,
    })
}

/// Runs `exec` with `lowers` (bottom first) as its root and `upper`/`work`
/// collecting its changes. Every output line goes to `log`.
pub fn run(
    exec: &ExecOp,
    lowers: Vec<PathBuf>,
    upper: (PathBuf, PathBuf),
    inputs: &MountInputs,
    limits: rbuild_executor::Limits,
    log: &mut dyn FnMut(&[u8]),
) -> Result<(), String> {
    let mut spec = RunSpec {
        rootfs: RootFs {
            lowers,
            upper: Some(upper),
        },
        args: exec.args.clone(),
        env: exec.env.to_vec(),
        cwd: exec.cwd.clone(),
        user: exec.user.clone(),
        // BuildKit's default sandbox hostname (in `hostname` and /etc/hosts).
        hostname: String::from("buildkitsandbox"),
        network: match exec.network {
            NetworkMode::Default => Network::Private,
            NetworkMode::Host => Network::Host,
            NetworkMode::None => Network::None,
        },
        mounts: Vec::new(),
        layer_mounts: Vec::new(),
        tmpfs: Vec::new(),
        stdio: Stdio::Capture,
        security: Security {
            insecure: exec.security == rbuild_frontend::graph::Security::Insecure,
            ..Security::default()
        },
        init: false,
        files: Vec::new(),
        limits,
        readonly_rootfs: false,
        extra_hosts: exec
            .extras
            .extra_hosts
            .iter()
            .map(|(name, ip)| {
                Ok(rbuild_executor::HostEntry {
                    name: name.clone(),
                    // An address, or `host-gateway` (resolved by the
                    // sandbox, never in the key).
                    ip: ip
                        .parse()
                        .map_err(|_| format!("--add-host {name}: bad address {ip}"))?,
                })
            })
            .collect::<Result<_, String>>()?,
        shm_size: exec.extras.shm_size,
        ulimits: exec
            .extras
            .ulimits
            .iter()
            .map(|u| rbuild_executor::Ulimit::parse(u))
            .collect::<Result<_, String>>()?,
        ports: Vec::new(),
    };
    let _held = mounts(exec, inputs, &mut spec)?;
    let mut tail: VecDeque<Vec<u8>> = VecDeque::with_capacity(TAIL_LINES);
    let code = rbuild_executor::run(&spec, &mut |_stream, line| {
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line.to_vec());
        log(line);
    })
    .map_err(|e| e.to_string())?;
    if code == 0 {
        return Ok(());
    }
    let mut message = format!(
        "process {} did not complete successfully: exit code: {code}",
        rbuild_frontend::quote::excerpt(&exec.args.join(" "))
    );
    if !tail.is_empty() {
        message.push_str("\nlast output:\n");
        for line in &tail {
            message.push_str(&String::from_utf8_lossy(line));
        }
    }
    Err(message.trim_end().to_string())
}
