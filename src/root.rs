//! Where the store lives.

use std::path::PathBuf;

/// `--root`, else `$RBUILD_ROOT`, else `/var/lib/rbuild` as root, else
/// `$XDG_DATA_HOME/rbuild` (`~/.local/share/rbuild`).
pub fn store_root(flag: Option<PathBuf>) -> PathBuf {
    if let Some(p) = flag {
        return p;
    }
    if let Some(p) = std::env::var_os("RBUILD_ROOT").filter(|p| !p.is_empty()) {
        return p.into();
    }
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/rbuild");
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".local/share")
        });
    data.join("rbuild")
}
