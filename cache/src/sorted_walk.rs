//! A depth-first walk of a directory in name-byte order (tar order: a
//! directory before what it holds) that stats each entry through its
//! directory's handle (`statx` on the directory's descriptor and the
//! name), not by its whole path: below the store a snapshot's files sit
//! nine or ten components deep, and a path stat looks every one of them
//! up again (issue 19: the w2 edit's 20,000-file snapshot is walked at
//! its commit, for the listing, and at its export). A directory's entries
//! are read and stated while it is open, then it is closed before the
//! walk goes below it: one descriptor open at a time, at any depth.

use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::io;
use std::path::{Path, PathBuf};

/// One entry of the walk.
pub struct WalkEntry<'a> {
    /// Its path (the walked directory joined with `rel`).
    pub path: &'a Path,
    /// Its path relative to the walked directory.
    pub rel: &'a Path,
    /// Its metadata, not following a symlink.
    pub meta: &'a Metadata,
}

/// The walk could not read a directory or stat an entry.
#[derive(Debug, thiserror::Error)]
#[error("{op} {}: {source}", path.display())]
pub struct WalkError {
    /// What was being done (`read dir`, `stat`).
    pub op: &'static str,
    /// The directory or entry.
    pub path: PathBuf,
    /// The cause.
    #[source]
    pub source: io::Error,
}

impl From<WalkError> for io::Error {
    fn from(e: WalkError) -> Self {
        io::Error::new(e.source.kind(), e)
    }
}

/// Hands `visit` everything below `dir` (not `dir` itself), depth first,
/// each directory's entries sorted by name bytes; never follows a
/// symlink. Stops at the first error, the walk's or `visit`'s.
pub fn walk_sorted<E: From<WalkError>>(
    dir: &Path,
    mut visit: impl FnMut(WalkEntry<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let mut path = dir.to_path_buf();
    walk_below(dir, &mut path, &mut visit)
}

/// Walks the directory at `path` (which is below `root` or `root`
/// itself), leaving `path` as it found it.
fn walk_below<E: From<WalkError>>(
    root: &Path,
    path: &mut PathBuf,
    visit: &mut impl FnMut(WalkEntry<'_>) -> Result<(), E>,
) -> Result<(), E> {
    for (name, meta) in sorted_entries(path)? {
        path.push(&name);
        let rel = path.strip_prefix(root).expect("below the root");
        visit(WalkEntry {
            path,
            rel,
            meta: &meta,
        })?;
        if meta.is_dir() {
            walk_below(root, path, visit)?;
        }
        path.pop();
    }
    Ok(())
}

/// The entries of the directory at `path` with their metadata (stated
/// through the open directory), sorted by name bytes.
fn sorted_entries(path: &Path) -> Result<Vec<(OsString, Metadata)>, WalkError> {
    let failed = |op, at: &Path| {
        let at = at.to_path_buf();
        move |source| WalkError {
            op,
            path: at,
            source,
        }
    };
    let mut entries = Vec::new();
    for entry in fs::read_dir(path).map_err(failed("read dir", path))? {
        let entry = entry.map_err(failed("read dir", path))?;
        // std's DirEntry::metadata is an fstatat/statx on the directory's
        // descriptor, never following a symlink.
        let meta = entry.metadata().map_err(failed("stat", &entry.path()))?;
        entries.push((entry.file_name(), meta));
    }
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_depth_first_in_name_byte_order_without_following_links() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        // '-' and '.' sort before '/': "a-b" and "a.d" come after all of
        // "a/...", as in tar order, not before as whole paths would sort.
        fs::create_dir_all(r.join("a/c")).unwrap();
        fs::write(r.join("a/c/f"), "f").unwrap();
        fs::write(r.join("a-b"), "ab").unwrap();
        fs::write(r.join("a.d"), "ad").unwrap();
        fs::write(r.join("B"), "upper").unwrap();
        std::os::unix::fs::symlink("a", r.join("link")).unwrap();
        let mut seen = Vec::new();
        walk_sorted(r, |e| {
            assert_eq!(e.path, r.join(e.rel));
            let kind = match e.meta.file_type() {
                t if t.is_symlink() => 'l',
                t if t.is_dir() => 'd',
                _ => 'f',
            };
            seen.push(format!("{kind} {}", e.rel.display()));
            Ok::<_, WalkError>(())
        })
        .unwrap();
        assert_eq!(
            seen,
            ["f B", "d a", "d a/c", "f a/c/f", "f a-b", "f a.d", "l link"]
        );
    }

    #[test]
    fn an_unreadable_root_and_a_visit_error_stop_the_walk() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone");
        let err = walk_sorted(&gone, |_| Ok::<_, WalkError>(())).unwrap_err();
        assert_eq!((err.op, err.path), ("read dir", gone));
        fs::write(dir.path().join("x"), "").unwrap();
        fs::write(dir.path().join("y"), "").unwrap();
        let mut visits = 0;
        let err = walk_sorted(dir.path(), |_| {
            visits += 1;
            Err(io::Error::other("stop"))
        })
        .unwrap_err();
        assert_eq!((err.to_string(), visits), ("stop".to_string(), 1));
    }
}
