//! `--ssh default|ID=SOCKET`: the ssh agents a build's `RUN
//! --mount=type=ssh` may use, as `docker buildx build --ssh` names them
//! (`default` alone is `$SSH_AUTH_SOCK`). Only agent sockets are
//! forwarded; key files are refused (load them into an `ssh-agent`).

use std::collections::BTreeMap;
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;

use anyhow::{Context, bail};

/// Reads the `--ssh` values: agent id → socket.
pub fn parse(values: &[String]) -> anyhow::Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    for value in values {
        let (id, paths) = value.split_once('=').unwrap_or((value, ""));
        if id.is_empty() {
            bail!("invalid --ssh {value:?}: expected default or ID=SOCKET");
        }
        let socket = match paths
            .split(',')
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()[..]
        {
            [] if id == "default" => std::env::var_os("SSH_AUTH_SOCK")
                .map(PathBuf::from)
                .context("--ssh default: SSH_AUTH_SOCK is not set (is an ssh-agent running?)")?,
            [] => bail!("invalid --ssh {value:?}: give the agent's socket, ID=SOCKET"),
            [one] => PathBuf::from(one),
            _ => bail!("--ssh {id}: one agent socket per id"),
        };
        let kind = std::fs::metadata(&socket)
            .with_context(|| format!("--ssh {id}: {}", socket.display()))?
            .file_type();
        if !kind.is_socket() {
            bail!(
                "--ssh {id}: {} is not an agent socket (key files are not read: \
                 add them to an ssh-agent with ssh-add and pass its socket)",
                socket.display()
            );
        }
        out.insert(id.to_string(), socket);
    }
    Ok(out)
}
