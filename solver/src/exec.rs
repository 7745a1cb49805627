//! Exec ops (RUN): one process in the bundled sandbox, its root an overlay
//! of the input state's snapshots with a fresh snapshot as the upper dir.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;

use rbuild_executor::{BindMount, Network, RootFs, RunSpec, Stdio};
use rbuild_frontend::graph::{ExecOp, MountKind, NetworkMode};

/// How many trailing output lines a failure quotes.
const TAIL_LINES: usize = 10;

/// The sandbox mounts of `exec`'s `RUN --mount`s.
fn mounts(exec: &ExecOp, secrets: &BTreeMap<String, PathBuf>) -> Result<Vec<BindMount>, String> {
    let mut out = Vec::new();
    for m in &exec.mounts {
        match &m.kind {
            MountKind::Secret { id, required } => match secrets.get(id) {
                Some(file) => out.push(BindMount {
                    source: file.clone(),
                    target: m.target.clone(),
                    readonly: true,
                }),
                None if *required => {
                    return Err(format!(
                        "secret {id} not found: pass it with --secret id={id},src=PATH"
                    ));
                }
                None => {}
            },
            other => {
                let kind = match other {
                    MountKind::Bind { .. } => "bind",
                    MountKind::Cache { .. } => "cache",
                    _ => "tmpfs",
                };
                return Err(format!("RUN --mount=type={kind} is not supported yet"));
            }
        }
    }
    Ok(out)
}

/// Runs `exec` with `lowers` (bottom first) as its root and `upper`/`work`
/// collecting its changes. Every output line goes to `log`.
pub fn run(
    exec: &ExecOp,
    lowers: Vec<PathBuf>,
    upper: (PathBuf, PathBuf),
    secrets: &BTreeMap<String, PathBuf>,
    log: &mut dyn FnMut(&[u8]),
) -> Result<(), String> {
    let mounts = mounts(exec, secrets)?;
    let spec = RunSpec {
        rootfs: RootFs {
            lowers,
            upper: Some(upper),
        },
        args: exec.args.clone(),
        env: exec.env.clone(),
        cwd: exec.cwd.clone(),
        user: exec.user.clone(),
        hostname: String::from("rbuild"),
        network: match exec.network {
            NetworkMode::Host => Network::Host,
            NetworkMode::None => Network::None,
        },
        mounts,
        stdio: Stdio::Capture,
    };
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
        "process {:?} did not complete successfully: exit code: {code}",
        exec.args.join(" ")
    );
    if !tail.is_empty() {
        message.push_str("\nlast output:\n");
        for line in &tail {
            message.push_str(&String::from_utf8_lossy(line));
        }
    }
    Err(message.trim_end().to_string())
}
