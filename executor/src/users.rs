//! `USER` resolution: `name`, `uid`, `name:group`, `uid:gid` looked up in
//! the sandbox root's /etc/passwd and /etc/group (read from the layers,
//! top first, before the sandbox starts), with supplementary groups and
//! the home directory, as Docker does.

use std::path::{Path, PathBuf};

use crate::ExecError;

/// A resolved user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// Home directory (`/` when unknown).
    pub home: String,
}

/// Reads `etc/<name>` from the topmost layer that has it (or hides it).
fn read_etc(layers: &[PathBuf], name: &str) -> String {
    for layer in layers.iter().rev() {
        let path = layer.join("etc").join(name);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => return std::fs::read_to_string(&path).unwrap_or_default(),
            // A whiteout or something else: the file is gone from here down.
            Ok(_) => return String::new(),
            Err(_) => {}
        }
        // An opaque or whited-out /etc hides the layers below.
        if is_hidden(&layer.join("etc")) {
            return String::new();
        }
    }
    String::new()
}

fn is_hidden(etc: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(etc).is_ok_and(|m| m.file_type().is_char_device())
}

/// Entries of a colon-separated database (`passwd`, `group`).
fn entries(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
}

/// Resolves `spec` against the layers' /etc/passwd and /etc/group.
pub fn resolve(layers: &[PathBuf], spec: &str) -> Result<User, ExecError> {
    let passwd = read_etc(layers, "passwd");
    let group = read_etc(layers, "group");
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let entry = entries(&passwd).find(|e| {
        e.len() >= 4
            && (e[0] == user_part || (user_part.parse::<u32>().is_ok() && e[2] == user_part))
    });
    let (uid, mut gid, name, home) = match (&entry, user_part.parse::<u32>()) {
        (Some(e), _) => (
            e[2].parse()
                .map_err(|_| bad(spec, "bad uid in /etc/passwd"))?,
            e[3].parse()
                .map_err(|_| bad(spec, "bad gid in /etc/passwd"))?,
            Some(e[0].to_string()),
            e.get(5)
                .filter(|h| !h.is_empty())
                .map_or("/", |h| h)
                .to_string(),
        ),
        (None, Ok(uid)) => (uid, 0, None, String::from("/")),
        (None, Err(_)) => {
            return Err(ExecError::Setup(format!(
                "unable to find user {user_part}: no matching entries in passwd file"
            )));
        }
    };
    if let Some(g) = group_part {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => entries(&group)
                .find(|e| e.len() >= 3 && e[0] == g)
                .and_then(|e| e[2].parse().ok())
                .ok_or_else(|| {
                    ExecError::Setup(format!(
                        "unable to find group {g}: no matching entries in group file"
                    ))
                })?,
        };
    }
    let mut groups = vec![gid];
    if let (Some(name), None) = (&name, group_part) {
        for e in entries(&group) {
            if e.len() >= 4
                && e[3].split(',').any(|m| m == name)
                && let Ok(g) = e[2].parse::<u32>()
                && !groups.contains(&g)
            {
                groups.push(g);
            }
        }
    }
    Ok(User {
        uid,
        gid,
        groups,
        home,
    })
}

fn bad(spec: &str, message: &str) -> ExecError {
    ExecError::Setup(format!("user {spec}: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers() -> (tempfile::TempDir, Vec<PathBuf>) {
        let dir = tempfile::tempdir().unwrap();
        let low = dir.path().join("low");
        let top = dir.path().join("top");
        std::fs::create_dir_all(low.join("etc")).unwrap();
        std::fs::create_dir_all(top.join("etc")).unwrap();
        std::fs::write(low.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        std::fs::write(
            top.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            low.join("etc/group"),
            "root:x:0:\napp:x:1001:\nextra:x:2000:app,other\n",
        )
        .unwrap();
        (dir, vec![low, top])
    }

    #[test]
    fn names_numbers_and_groups() {
        let (_d, l) = layers();
        let app = resolve(&l, "app").unwrap();
        assert_eq!(
            (app.uid, app.gid, app.groups.clone(), app.home.as_str()),
            (1000, 1001, vec![1001, 2000], "/home/app")
        );
        assert_eq!(resolve(&l, "").unwrap().uid, 0);
        let n = resolve(&l, "4242:4343").unwrap();
        assert_eq!((n.uid, n.gid, n.groups), (4242, 4343, vec![4343]));
        assert_eq!(resolve(&l, "app:extra").unwrap().gid, 2000);
        assert_eq!(resolve(&l, "1000").unwrap().home, "/home/app");
        let err = resolve(&l, "nobody").unwrap_err().to_string();
        assert!(err.contains("unable to find user nobody"), "{err}");
        assert!(resolve(&l, "app:nogroup").is_err());
    }
}
