//! `--chown` values resolved against the destination's /etc/passwd and
//! /etc/group, as Docker does: `user`, `uid`, `user:group`, `uid:gid`; a user
//! without a group uses the same numeric id as the group.

use crate::layered::{self, FsView};

/// A numeric owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

impl Owner {
    /// root:root.
    pub const ROOT: Owner = Owner { uid: 0, gid: 0 };
}

/// Resolves a `--chown` value in the tree `view`.
pub fn resolve(view: &dyn FsView, spec: &str) -> Result<Owner, String> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let uid = lookup(view, "/etc/passwd", user)
        .ok_or_else(|| format!("unable to find user {user}: no matching entries in passwd file"))?;
    let gid = match group {
        Some(g) => lookup(view, "/etc/group", g).ok_or_else(|| {
            format!("unable to find group {g}: no matching entries in group file")
        })?,
        None => uid,
    };
    Ok(Owner { uid, gid })
}

/// A numeric id, or the id of `name` in the colon-separated database `file`.
fn lookup(view: &dyn FsView, file: &str, name: &str) -> Option<u32> {
    if let Ok(id) = name.parse() {
        return Some(id);
    }
    let path = layered::resolve(view, file, true).ok()?;
    let text = std::fs::read_to_string(view.locate(&path)?).ok()?;
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == name).then(|| fields.nth(1)?.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layered::HostTree;

    #[test]
    fn names_and_numbers() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        let view = HostTree::new(dir.path());
        assert_eq!(
            resolve(&view, "app").unwrap(),
            Owner {
                uid: 1000,
                gid: 1000
            }
        );
        assert_eq!(
            resolve(&view, "app:staff").unwrap(),
            Owner { uid: 1000, gid: 50 }
        );
        assert_eq!(
            resolve(&view, "300:400").unwrap(),
            Owner { uid: 300, gid: 400 }
        );
        assert!(
            resolve(&view, "ghost")
                .unwrap_err()
                .contains("unable to find user ghost")
        );
        assert!(resolve(&view, "app:ghosts").is_err());
    }
}
