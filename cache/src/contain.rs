//! Containment of names from layers and archives: the one check every
//! path that writes or reads by such a name goes through (layer unpack,
//! the filesystem export, ADD of archives, docker archives). A name is
//! cleaned to plain components (`..`, absolute prefixes and NUL refused),
//! bounded in length and depth, and resolved below a root without ever
//! passing through a symlink, so nothing it names can lie outside the root.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The longest name accepted (bytes): Linux's `PATH_MAX`.
pub const MAX_NAME_BYTES: usize = 4096;

/// The deepest name accepted (components). Real images stay far below it
/// (deep `node_modules` trees reach about 60); the limit keeps recursive
/// walks and removals of an unpacked tree shallow.
pub const MAX_DEPTH: usize = 512;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A `..` component.
    #[error("`..` leaves the destination")]
    ParentComponent,
    /// A NUL byte (a C string would cut the name short).
    #[error("NUL byte in the name")]
    Nul,
    /// Longer than [`MAX_NAME_BYTES`].
    #[error("name of {0} bytes is longer than the limit of {MAX_NAME_BYTES}")]
    TooLong(usize),
    /// Deeper than [`MAX_DEPTH`].
    #[error("name nested {0} deep is deeper than the limit of {MAX_DEPTH}")]
    TooDeep(usize),
    /// A whiteout whose hidden name is empty, `.` or `..`.
    #[error("whiteout of `{0}` is not a file name")]
    BadWhiteout(String),
    /// A name that goes through a symlink below the root.
    #[error("path goes through the symlink {0}")]
    ThroughSymlink(String),
    /// A name whose parent is not a directory.
    #[error("parent {0} is not a directory")]
    ParentNotDirectory(String),
}

/// An error about one named entry: the refusal or the I/O failure, with
/// the entry's name escaped (control bytes and non-UTF-8 shown as `\xNN`).
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    /// The name is unsafe.
    #[error("{entry}: {reason}")]
    Refused {
        /// The entry, escaped.
        entry: String,
        /// Why.
        reason: Refusal,
    },
    /// Writing or reading the entry failed.
    #[error("{entry}: {error}")]
    Io {
        /// The entry, escaped.
        entry: String,
        /// The failure.
        error: io::Error,
    },
}

impl EntryError {
    /// A refusal of the entry named `raw`.
    pub fn refused(raw: &[u8], reason: Refusal) -> Self {
        Self::Refused {
            entry: escape(raw),
            reason,
        }
    }

    /// An I/O failure on the entry named `raw`.
    pub fn io(raw: &[u8], error: io::Error) -> Self {
        Self::Io {
            entry: escape(raw),
            error,
        }
    }
}

/// `raw` for a message: printable ASCII as it is, everything else (control
/// bytes, non-UTF-8, multibyte characters) as `\xNN`, at most 256 bytes.
pub fn escape(raw: &[u8]) -> String {
    const SHOWN: usize = 256;
    let mut out = raw[..raw.len().min(SHOWN)].escape_ascii().to_string();
    if raw.len() > SHOWN {
        out.push_str(&format!("… ({} bytes)", raw.len()));
    }
    out
}

/// A name from a layer or archive as a clean relative path (`None` for the
/// root itself): `.` and leading `/` dropped, everything that could leave
/// the root or break a system call refused.
pub fn clean(raw: &[u8]) -> Result<Option<PathBuf>, Refusal> {
    if raw.contains(&0) {
        return Err(Refusal::Nul);
    }
    if raw.len() > MAX_NAME_BYTES {
        return Err(Refusal::TooLong(raw.len()));
    }
    let mut out = PathBuf::new();
    let mut depth = 0;
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(Refusal::ParentComponent),
            name => {
                depth += 1;
                out.push(OsStr::from_bytes(name));
            }
        }
    }
    if depth > MAX_DEPTH {
        return Err(Refusal::TooDeep(depth));
    }
    Ok((depth > 0).then_some(out))
}

/// What a clean entry path means in a layer (OCI image spec, "Whiteouts").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerEntry {
    /// A file, directory, link or device at this path.
    Plain(PathBuf),
    /// `.wh.NAME`: the path of `NAME`, deleted from the layers below.
    Whiteout(PathBuf),
    /// `.wh..wh..opq`: this directory hides the content of layers below.
    Opaque(PathBuf),
}

/// The prefix of whiteout names.
const WHITEOUT: &[u8] = b".wh.";
/// The name that marks an opaque directory.
const OPAQUE: &[u8] = b".wh..wh..opq";

/// Reads the whiteout convention of a clean layer path. Other `.wh..wh.`
/// names (aufs metadata) and whiteouts of `.`, `..` or nothing are refused.
pub fn layer_entry(rel: PathBuf) -> Result<LayerEntry, Refusal> {
    let name = rel.file_name().map(OsStrExt::as_bytes).unwrap_or_default();
    let parent = || rel.parent().map(Path::to_path_buf).unwrap_or_default();
    if name == OPAQUE {
        return Ok(LayerEntry::Opaque(parent()));
    }
    match name.strip_prefix(WHITEOUT) {
        None => Ok(LayerEntry::Plain(rel)),
        Some(hidden) if matches!(hidden, b"" | b"." | b"..") || hidden.starts_with(WHITEOUT) => {
            Err(Refusal::BadWhiteout(escape(hidden)))
        }
        Some(hidden) => Ok(LayerEntry::Whiteout(
            parent().join(OsStr::from_bytes(hidden)),
        )),
    }
}

/// Checks that every parent of the clean path `rel` below `root` is a
/// real directory (never a symlink), making missing ones (mode 0755) when
/// `create`; returns the host path of `rel`. A missing parent without
/// `create` is an I/O `NotFound`.
pub fn resolve_parents(root: &Path, rel: &Path, create: bool) -> Result<PathBuf, ResolveError> {
    let mut current = root.to_path_buf();
    let mut shown = PathBuf::new();
    let parent = rel.parent().unwrap_or(Path::new(""));
    for c in parent.components() {
        current.push(c);
        shown.push(c);
        match fs::symlink_metadata(&current) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(ResolveError::Refused(Refusal::ThroughSymlink(escape(
                    shown.as_os_str().as_bytes(),
                ))));
            }
            Ok(_) => {
                return Err(ResolveError::Refused(Refusal::ParentNotDirectory(escape(
                    shown.as_os_str().as_bytes(),
                ))));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                fs::create_dir(&current).map_err(ResolveError::Io)?;
            }
            Err(e) => return Err(ResolveError::Io(e)),
        }
    }
    Ok(root.join(rel))
}

/// Why [`resolve_parents`] failed.
#[derive(Debug)]
pub enum ResolveError {
    /// The path is unsafe.
    Refused(Refusal),
    /// A parent could not be read or made.
    Io(io::Error),
}

impl ResolveError {
    /// As an [`EntryError`] about the entry named `raw`.
    pub fn about(self, raw: &[u8]) -> EntryError {
        match self {
            Self::Refused(r) => EntryError::refused(raw, r),
            Self::Io(e) => EntryError::io(raw, e),
        }
    }
}

/// The most symlinks [`existing_inside`] follows for one name (Linux's
/// `MAXSYMLINKS`).
const MAX_SYMLINKS: usize = 40;

/// The host path of the existing entry named `raw` inside `root`, read as
/// if `root` were `/` (as `chroot` would): symlinks are followed, but `..`
/// and absolute targets stop at `root`, so the result always lies inside
/// it. For names from archives that may hold symlinks (`docker save`
/// links repeated layers to their first copy).
pub fn existing_inside(root: &Path, raw: &[u8]) -> Result<PathBuf, EntryError> {
    let err = |kind: io::ErrorKind, what: &str| EntryError::io(raw, io::Error::new(kind, what));
    if raw.contains(&0) {
        return Err(EntryError::refused(raw, Refusal::Nul));
    }
    let mut pending: Vec<Vec<u8>> = split_reversed(raw);
    let mut resolved: Vec<Vec<u8>> = Vec::new();
    let mut hops = 0;
    while let Some(c) = pending.pop() {
        match c.as_slice() {
            b"" | b"." => continue,
            b".." => {
                resolved.pop();
                continue;
            }
            _ => {}
        }
        let mut host = root.to_path_buf();
        host.extend(resolved.iter().map(|c| OsStr::from_bytes(c)));
        host.push(OsStr::from_bytes(&c));
        let meta = fs::symlink_metadata(&host).map_err(|e| EntryError::io(raw, e))?;
        if meta.file_type().is_symlink() {
            hops += 1;
            if hops > MAX_SYMLINKS {
                return Err(err(
                    io::ErrorKind::InvalidData,
                    "too many levels of symlinks",
                ));
            }
            let target = fs::read_link(&host).map_err(|e| EntryError::io(raw, e))?;
            let target = target.as_os_str().as_bytes();
            if target.starts_with(b"/") {
                resolved.clear();
            }
            pending.extend(split_reversed(target));
        } else {
            if !meta.is_dir() && !pending.iter().all(|c| c.is_empty() || c == b".") {
                return Err(err(io::ErrorKind::NotADirectory, "not a directory"));
            }
            resolved.push(c);
        }
    }
    let mut host = root.to_path_buf();
    host.extend(resolved.iter().map(|c| OsStr::from_bytes(c)));
    Ok(host)
}

/// The components of a name, last first (a stack to pop from).
fn split_reversed(name: &[u8]) -> Vec<Vec<u8>> {
    name.split(|b| *b == b'/')
        .rev()
        .map(<[u8]>::to_vec)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_drops_dots_and_roots_and_refuses_escapes() {
        assert_eq!(clean(b"/a/./b/").unwrap(), Some(PathBuf::from("a/b")));
        assert_eq!(clean(b"./").unwrap(), None);
        assert_eq!(clean(b"a/../b"), Err(Refusal::ParentComponent));
        assert_eq!(clean(b"a\0b"), Err(Refusal::Nul));
        let deep = "a/".repeat(MAX_DEPTH + 1);
        assert_eq!(clean(deep.as_bytes()), Err(Refusal::TooDeep(MAX_DEPTH + 1)));
        let long = "a".repeat(MAX_NAME_BYTES + 1);
        assert_eq!(
            clean(long.as_bytes()),
            Err(Refusal::TooLong(MAX_NAME_BYTES + 1))
        );
        assert_eq!(
            clean(b"bad\xffname").unwrap(),
            Some(PathBuf::from(OsStr::from_bytes(b"bad\xffname")))
        );
    }

    #[test]
    fn whiteouts_must_name_a_file() {
        let entry = |s: &str| layer_entry(PathBuf::from(s));
        assert_eq!(entry("a/.wh.b"), Ok(LayerEntry::Whiteout("a/b".into())));
        assert_eq!(entry(".wh..wh..opq"), Ok(LayerEntry::Opaque("".into())));
        assert_eq!(entry("a/b"), Ok(LayerEntry::Plain("a/b".into())));
        for bad in ["a/.wh...", "a/.wh..", "a/.wh.", ".wh..wh.plnk"] {
            assert!(matches!(entry(bad), Err(Refusal::BadWhiteout(_))), "{bad}");
        }
    }

    #[test]
    fn parents_never_go_through_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        std::os::unix::fs::symlink("/", root.join("link")).unwrap();
        let err = resolve_parents(&root, Path::new("link/tmp/x"), true).unwrap_err();
        assert!(matches!(
            err,
            ResolveError::Refused(Refusal::ThroughSymlink(ref s)) if s == "link"
        ));
        let made = resolve_parents(&root, Path::new("d/e/f"), true).unwrap();
        assert_eq!(made, root.join("d/e/f"));
        assert!(root.join("d/e").is_dir());
    }

    #[test]
    fn names_read_inside_a_root_stay_inside() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir_all(root.join("d/e")).unwrap();
        fs::write(dir.path().join("secret"), "s").unwrap();
        fs::write(root.join("d/e/f"), "f").unwrap();
        std::os::unix::fs::symlink("/", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../..", root.join("d/up")).unwrap();
        std::os::unix::fs::symlink("e/f", root.join("d/rel")).unwrap();
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        let inside = |name: &str| existing_inside(&root, name.as_bytes());
        assert_eq!(inside("/d/e").unwrap(), root.join("d/e"));
        assert_eq!(inside("d/rel").unwrap(), root.join("d/e/f"));
        assert_eq!(inside("abs/d/e/f").unwrap(), root.join("d/e/f"));
        assert_eq!(inside("d/up/d/e").unwrap(), root.join("d/e"));
        assert_eq!(inside("../d").unwrap(), root.join("d"));
        assert!(
            inside("../secret").is_err(),
            "the parent of the root is the root"
        );
        assert!(inside("d/up/secret").is_err());
        assert!(inside("loop").is_err());
        assert!(inside("d/e/f/g").is_err());
    }

    #[test]
    fn escape_shows_hostile_bytes() {
        assert_eq!(escape(b"a\x1b[31m\xff"), "a\\x1b[31m\\xff");
        assert!(escape(&[b'a'; 1000]).ends_with("(1000 bytes)"));
    }
}
