//! Exec ops (RUN): one process in the bundled sandbox, its root an overlay
//! of the input state's snapshots with a fresh snapshot as the upper dir.

use std::collections::VecDeque;
use std::path::PathBuf;

use rbuild_executor::{Network, RootFs, RunSpec, Stdio};
use rbuild_frontend::graph::{ExecOp, MountKind, NetworkMode};

/// How many trailing output lines a failure quotes.
const TAIL_LINES: usize = 10;

/// Runs `exec` with `lowers` (bottom first) as its root and `upper`/`work`
/// collecting its changes. Every output line goes to `log`.
pub fn run(
    exec: &ExecOp,
    lowers: Vec<PathBuf>,
    upper: (PathBuf, PathBuf),
    log: &mut dyn FnMut(&[u8]),
) -> Result<(), String> {
    if let Some(m) = exec.mounts.first() {
        let kind = match m.kind {
            MountKind::Bind { .. } => "bind",
            MountKind::Cache { .. } => "cache",
            MountKind::Tmpfs => "tmpfs",
            MountKind::Secret { .. } => "secret",
        };
        return Err(format!("RUN --mount=type={kind} is not supported yet"));
    }
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
        mounts: Vec::new(),
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
