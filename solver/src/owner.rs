//! `--chown` values (and the USER a WORKDIR is created as) resolved against
//! the destination's /etc/passwd and /etc/group, as BuildKit's file ops do:
//! `user`, `uid`, `user:group`, `uid:gid`. A user name without a group
//! takes the user's primary group from /etc/passwd; a numeric user without
//! a group takes its own number as the group (BuildKit's `ByID`), whatever
//! /etc/passwd says. `root` is 0 even without /etc/passwd.

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
    let owner = match number(user) {
        Some(uid) => Owner { uid, gid: uid },
        None => {
            let entry = find(view, "/etc/passwd", user).ok_or_else(|| {
                format!("unable to find user {user}: no matching entries in passwd file")
            })?;
            let id = |n: usize| {
                entry
                    .get(n)
                    .and_then(|f| f.parse().ok())
                    .ok_or_else(|| format!("user {user}: bad entry in /etc/passwd"))
            };
            Owner {
                uid: id(2)?,
                gid: id(3)?,
            }
        }
    };
    let gid = match group {
        None => owner.gid,
        Some(g) => match number(g) {
            Some(gid) => gid,
            None => find(view, "/etc/group", g)
                .and_then(|entry| entry.get(2)?.parse().ok())
                .ok_or_else(|| {
                    format!("unable to find group {g}: no matching entries in group file")
                })?,
        },
    };
    Ok(Owner { gid, ..owner })
}

/// A numeric id (`root` is 0, as BuildKit parses it).
fn number(name: &str) -> Option<u32> {
    match name {
        "root" => Some(0),
        n => n.parse().ok(),
    }
}

/// The fields of the entry named `name` in the colon-separated database
/// `file` of `view`.
fn find(view: &dyn FsView, file: &str, name: &str) -> Option<Vec<String>> {
    let path = layered::resolve(view, file, true).ok()?;
    let text = std::fs::read_to_string(view.locate(&path)?).ok()?;
    text.lines()
        .map(|line| line.split(':').map(str::to_string).collect::<Vec<_>>())
        .find(|fields| fields.first().is_some_and(|f| f == name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layered::HostTree;

    #[test]
    fn names_take_their_primary_group_and_numbers_their_own() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        let view = HostTree::new(dir.path());
        let owner = |spec| resolve(&view, spec);
        assert_eq!(
            owner("app").unwrap(),
            Owner {
                uid: 1000,
                gid: 1001
            },
            "a name takes its primary group from /etc/passwd"
        );
        assert_eq!(
            owner("1000").unwrap(),
            Owner {
                uid: 1000,
                gid: 1000
            },
            "a number keeps gid = uid, as BuildKit"
        );
        assert_eq!(owner("app:staff").unwrap(), Owner { uid: 1000, gid: 50 });
        assert_eq!(owner("app:7").unwrap(), Owner { uid: 1000, gid: 7 });
        assert_eq!(owner("300:400").unwrap(), Owner { uid: 300, gid: 400 });
        assert_eq!(owner("root").unwrap(), Owner::ROOT);
        assert!(
            owner("ghost")
                .unwrap_err()
                .contains("unable to find user ghost")
        );
        assert!(owner("app:ghosts").is_err());
    }

    #[test]
    fn root_needs_no_passwd_file() {
        let dir = tempfile::tempdir().unwrap();
        let view = HostTree::new(dir.path());
        assert_eq!(resolve(&view, "root:root").unwrap(), Owner::ROOT);
        assert!(resolve(&view, "app").is_err());
    }
}
