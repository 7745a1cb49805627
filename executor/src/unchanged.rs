//! Finds what a RUN's upper dir holds that BuildKit's overlay differ
//! leaves out of the layer (moby/buildkit util/overlay `Changes` and
//! `sameDirent`): an entry overlayfs only copied up (`ln LOWER NEW`,
//! `chmod` to the same mode, `mv f t && mv t f`) is the same as the one
//! below it and is no layer content, a directory that is the same as below
//! and holds nothing else is none either, and a whiteout of a path no
//! lower layer has hides nothing. As in BuildKit, the snapshot keeps them
//! (the next RUN sees the copied-up entries, e.g. `LOWER` and `NEW` still
//! one hard-link group); only the layer tar leaves them out, from the list
//! [`write_left_out`] records beside the upper dir. A hard link whose other
//! name is left out becomes a plain file in the tar, as in BuildKit's.
//!
//! The layers below are read as overlayfs merges them (whiteouts, opaque
//! directories, a non-directory hiding what is under it), by `lstat` on
//! real directories only: no symlink of a layer is ever followed.

use std::collections::HashSet;
use std::fs::{self, Metadata};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The real directories (topmost first) that overlayfs merges into one
/// directory of the lower layers; empty when the lowers have no directory
/// there.
type Merged = Vec<PathBuf>;

/// Whether `meta` is an overlay whiteout (a 0/0 character device).
fn is_whiteout(meta: &Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// The entry the merged directory `dirs` shows as `name`: the topmost
/// layer's, `None` when no layer has it or a whiteout hides it.
fn entry(dirs: &[PathBuf], name: &std::ffi::OsStr) -> Option<(PathBuf, Metadata)> {
    for dir in dirs {
        let path = dir.join(name);
        match path.symlink_metadata() {
            Ok(meta) if is_whiteout(&meta) => return None,
            Ok(meta) => return Some((path, meta)),
            Err(_) => continue,
        }
    }
    None
}

/// The merged directory `name` of the merged directory `dirs`: the layers'
/// directories of that name down to the first opaque one, stopping at a
/// whiteout or a non-directory.
fn child(dirs: &[PathBuf], name: &std::ffi::OsStr) -> Merged {
    let mut out = Vec::new();
    for dir in dirs {
        let path = dir.join(name);
        match path.symlink_metadata() {
            Ok(meta) if meta.is_dir() => {
                let opaque = crate::is_opaque(&path);
                out.push(path);
                if opaque {
                    break;
                }
            }
            Ok(_) => break,
            Err(_) => continue,
        }
    }
    out
}

/// The merged directory of the lowers (bottom first, as in `RootFs`) at
/// the relative path `rel`.
fn merged_dir(lowers: &[PathBuf], rel: &Path) -> Merged {
    let mut dirs: Merged = lowers.iter().rev().cloned().collect();
    for name in rel.iter() {
        dirs = child(&dirs, name);
    }
    dirs
}

/// What the lowers (bottom first) show at `rel`, `None` when nothing.
pub(crate) fn below(lowers: &[PathBuf], rel: &Path) -> Option<(PathBuf, Metadata)> {
    let name = rel.file_name()?;
    let parent = rel.parent().unwrap_or(Path::new(""));
    entry(&merged_dir(lowers, parent), name)
}

/// `security.capability` of `path`, when it has one.
fn capability(path: &Path) -> Option<Vec<u8>> {
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let name = c"security.capability";
    let mut buf = vec![0u8; 256];
    // SAFETY: valid strings and a buffer of the given length.
    let n = unsafe {
        libc::lgetxattr(
            p.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let n = usize::try_from(n).ok()?;
    buf.truncate(n);
    Some(buf)
}

/// Whether two regular files hold the same bytes.
fn same_content(a: &Path, b: &Path) -> io::Result<bool> {
    let (mut fa, mut fb) = (fs::File::open(a)?, fs::File::open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let n = fa.read(&mut ba)?;
        if n == 0 {
            return Ok(fb.read(&mut bb[..1])? == 0);
        }
        fb.read_exact(&mut bb[..n])?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
    }
}

/// BuildKit's `sameDirent`: type and mode, owner, device number and file
/// capabilities equal; for a non-directory also size and mtime seconds,
/// then the mtime nanoseconds, or, when both are 0 (times from a tar), the
/// link target or the content.
fn same(upper: &Path, u: &Metadata, lower: &Path, l: &Metadata) -> io::Result<bool> {
    if (u.mode(), u.uid(), u.gid(), u.rdev()) != (l.mode(), l.uid(), l.gid(), l.rdev())
        || capability(upper) != capability(lower)
    {
        return Ok(false);
    }
    if u.is_dir() {
        return Ok(true);
    }
    if u.len() != l.len() || u.mtime() != l.mtime() {
        return Ok(false);
    }
    if u.mtime_nsec() != 0 || l.mtime_nsec() != 0 {
        return Ok(u.mtime_nsec() == l.mtime_nsec());
    }
    if u.file_type().is_symlink() {
        return Ok(fs::read_link(upper)? == fs::read_link(lower)?);
    }
    if u.len() == 0 || !u.is_file() {
        return Ok(true);
    }
    same_content(upper, lower)
}

/// The paths (relative to `upper`) of what in `upper` is the same as in
/// `lowers` (bottom first): copied-up entries without a change, directories
/// that are the same as below (not opaque ones) and hold nothing but such
/// entries, and whiteouts of nothing. Deepest first, so a directory whose
/// entries are all unchanged is unchanged too.
pub(crate) fn unchanged(lowers: &[PathBuf], upper: &Path) -> io::Result<Vec<PathBuf>> {
    // Every upper directory with the merged lower directory it covers,
    // parents before children; handled in reverse, children first.
    let mut dirs: Vec<(PathBuf, Merged)> = Vec::new();
    let mut todo = vec![(upper.to_path_buf(), merged_dir(lowers, Path::new("")))];
    while let Some((dir, merged)) = todo.pop() {
        for e in fs::read_dir(&dir)? {
            let e = e?;
            if e.file_type()?.is_dir() {
                let path = e.path();
                // Under an opaque directory nothing of the lowers shows.
                let below = if crate::is_opaque(&path) {
                    Vec::new()
                } else {
                    child(&merged, &e.file_name())
                };
                todo.push((path, below));
            }
        }
        dirs.push((dir, merged));
    }
    let mut out: HashSet<PathBuf> = HashSet::new();
    let mut order = Vec::new();
    for (dir, merged) in dirs.iter().rev() {
        for e in fs::read_dir(dir)? {
            let e = e?;
            let path = e.path();
            let meta = path.symlink_metadata()?;
            let lower = entry(merged, &e.file_name());
            let left_out = if is_whiteout(&meta) {
                lower.is_none()
            } else if let Some((lower_path, lower_meta)) = lower {
                same(&path, &meta, &lower_path, &lower_meta)?
                    && (!meta.is_dir() || (all_in(&path, &out)? && !crate::is_opaque(&path)))
            } else {
                false
            };
            if left_out {
                out.insert(path.clone());
                order.push(path);
            }
        }
    }
    Ok(order
        .into_iter()
        .map(|p| p.strip_prefix(upper).expect("below upper").to_path_buf())
        .collect())
}

/// Whether every entry of the directory `dir` is in `set`.
fn all_in(dir: &Path, set: &HashSet<PathBuf>) -> io::Result<bool> {
    for e in fs::read_dir(dir)? {
        if !set.contains(&e?.path()) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Where the list of an upper dir's left-out paths is kept: the file
/// `left-out` beside the upper dir (outside what the RUN sees), which the
/// store keeps with the snapshot when it is committed.
fn left_out_path(upper: &Path) -> PathBuf {
    upper.with_file_name("left-out")
}

/// Records the paths of `upper` that the layer tar leaves out (those of
/// [`unchanged`]) in [`left_out_path`], each followed by a NUL byte;
/// written to a temp file and renamed, so the list is whole or absent.
pub(crate) fn write_left_out(lowers: &[PathBuf], upper: &Path) -> io::Result<()> {
    let paths = unchanged(lowers, upper)?;
    if paths.is_empty() {
        return Ok(());
    }
    let mut bytes = Vec::new();
    for p in &paths {
        bytes.extend_from_slice(p.as_os_str().as_bytes());
        bytes.push(0);
    }
    let target = left_out_path(upper);
    let tmp = upper.with_file_name("left-out.tmp");
    fs::write(&tmp, bytes)?;
    fs::rename(&tmp, &target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// Writes a lower file, with an mtime long past (nothing written now
    /// can share it).
    fn write(path: &Path, content: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
        let past = std::time::UNIX_EPOCH + std::time::Duration::new(1_000_000_000, 5);
        let f = fs::File::options().write(true).open(path).unwrap();
        f.set_modified(past).unwrap();
    }

    /// Copies `from` to `to` with its mode and mtime, as a copy-up does.
    fn copy_up(from: &Path, to: &Path) {
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::copy(from, to).unwrap();
        let m = from.symlink_metadata().unwrap();
        let f = fs::File::options().write(true).open(to).unwrap();
        f.set_modified(m.modified().unwrap()).unwrap();
    }

    fn whiteout(path: &Path) {
        let p = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid path; a 0/0 character device is overlay's whiteout.
        assert_eq!(
            unsafe { libc::mknod(p.as_ptr(), libc::S_IFCHR | 0o600, 0) },
            0
        );
    }

    #[test]
    fn drops_copy_ups_keeps_changes() {
        let t = tempfile::tempdir().unwrap();
        let (low, up) = (t.path().join("low"), t.path().join("up"));
        write(&low.join("etc/same"), "one");
        write(&low.join("etc/edited"), "two");
        write(&low.join("etc/chmodded"), "three");
        write(&low.join("etc/keep/x"), "x");
        copy_up(&low.join("etc/same"), &up.join("etc/same"));
        copy_up(&low.join("etc/edited"), &up.join("etc/edited"));
        fs::write(up.join("etc/edited"), "TWO").unwrap(); // same size, new mtime
        copy_up(&low.join("etc/chmodded"), &up.join("etc/chmodded"));
        fs::set_permissions(up.join("etc/chmodded"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::hard_link(up.join("etc/same"), up.join("new")).unwrap();
        fs::create_dir_all(up.join("etc/keep")).unwrap();
        whiteout(&up.join("never-was"));
        whiteout(&up.join("etc/keep/x"));
        let left_out = unchanged(std::slice::from_ref(&low), &up).unwrap();
        let out = |p: &str| left_out.contains(&PathBuf::from(p));
        assert!(out("etc/same"), "a mere copy-up is left out");
        assert!(up.join("etc/same").exists(), "but the snapshot keeps it");
        assert_eq!(
            up.join("new").metadata().unwrap().nlink(),
            2,
            "so its new name stays linked to it"
        );
        assert!(!out("new"), "its new name is layer content");
        assert!(!out("etc/edited"), "a changed file stays");
        assert!(!out("etc/chmodded"), "a new mode stays");
        assert!(!out("etc/keep/x"), "a real whiteout stays");
        assert!(!out("etc"), "a directory with changes stays");
        assert!(out("never-was"), "a whiteout of nothing is left out");
        write_left_out(&[low], &up).unwrap();
        assert_eq!(
            fs::read(left_out_path(&up)).unwrap(),
            b"etc/same\0never-was\0",
            "the list is recorded beside the upper dir, deepest first"
        );
    }

    #[test]
    fn drops_empty_same_dirs_and_reads_lowers_merged() {
        let t = tempfile::tempdir().unwrap();
        let (base, top, up) = (
            t.path().join("base"),
            t.path().join("top"),
            t.path().join("up"),
        );
        write(&base.join("etc/hostname"), "");
        write(&base.join("opt/f"), "f");
        fs::create_dir_all(top.join("etc")).unwrap();
        whiteout(&top.join("etc/hostname"));
        fs::create_dir_all(up.join("etc")).unwrap();
        fs::create_dir_all(up.join("var/new")).unwrap();
        copy_up(&base.join("opt/f"), &up.join("opt/f"));
        let lowers = [base.clone(), top.clone()];
        assert!(
            below(&lowers, Path::new("etc/hostname")).is_none(),
            "whited out"
        );
        assert!(below(&lowers, Path::new("opt/f")).is_some());
        let left_out = unchanged(&lowers, &up).unwrap();
        let out = |p: &str| left_out.contains(&PathBuf::from(p));
        assert!(out("etc"), "a copied-up empty directory is left out");
        assert!(out("opt/f") && out("opt"), "so is one of copy-ups only");
        assert!(
            left_out.iter().position(|p| p == Path::new("opt/f"))
                < left_out.iter().position(|p| p == Path::new("opt")),
            "deepest first"
        );
        assert!(up.join("opt/f").exists(), "the snapshot keeps them");
        assert!(!out("var/new") && !out("var"), "new directories stay");
    }
}
