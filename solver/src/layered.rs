//! Read-only views of filesystem trees without mounting anything: a plain
//! host directory (the build context) and a stack of overlay-format layers
//! (a state's snapshots), plus path resolution confined to the view's root,
//! so no `..` or symlink can lead outside it.
//!
//! Paths in views are `String`s; host names that are not UTF-8 are kept
//! byte-exact by a reversible encoding ([`name_of`], [`host_name`]).

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::{CString, OsStr};
use std::fs::Metadata;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A tree addressed by absolute, clean paths (`/`, `/a/b`).
pub trait FsView {
    /// The host path holding `path` itself (no symlink followed), if it exists.
    fn locate(&self, path: &str) -> Option<PathBuf>;

    /// The names in the directory at `path`, sorted.
    fn list(&self, path: &str) -> io::Result<Vec<String>>;

    /// The entries of the directory at `path`, sorted, each with its host
    /// path and whether it is a directory (not following symlinks).
    fn list_entries(&self, path: &str) -> io::Result<Vec<(String, PathBuf, bool)>> {
        let mut out = Vec::new();
        for name in self.list(path)? {
            let child = child(path, &name);
            if let Some(host) = self.locate(&child) {
                let is_dir = host.symlink_metadata().is_ok_and(|m| m.is_dir());
                out.push((name, host, is_dir));
            }
        }
        Ok(out)
    }
}

/// A host directory seen as a root.
pub struct HostTree {
    root: PathBuf,
}

impl HostTree {
    /// A view rooted at `root`.
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }
}

impl FsView for HostTree {
    fn locate(&self, path: &str) -> Option<PathBuf> {
        let p = host_join(&self.root, path);
        p.symlink_metadata().ok().map(|_| p)
    }

    fn list(&self, path: &str) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(host_join(&self.root, path))? {
            names.push(name_of(&entry?.file_name()));
        }
        names.sort();
        Ok(names)
    }

    /// One `readdir`, no `stat` per entry: the entry types come with it.
    fn list_entries(&self, path: &str) -> io::Result<Vec<(String, PathBuf, bool)>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(host_join(&self.root, path))? {
            let entry = entry?;
            let is_dir = entry.file_type()?.is_dir();
            out.push((name_of(&entry.file_name()), entry.path(), is_dir));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

/// Overlay layers (whiteouts as 0/0 character devices, opaque directories
/// marked with `user.overlay.opaque=y`), bottom first.
///
/// The layers below a writable top never change while the view is used,
/// so what they say is remembered: a path they do not hold (nothing below
/// it is looked for in them again), and what each of them says of each
/// directory on the way to a path (so that the files of one directory
/// cost one `statx` a layer, not one for each directory above them and an
/// opaque check of each). A copy into a new directory on a base of n
/// layers then costs n lookups for the directory rather than n for each
/// of its files (a 120-layer image built one `COPY` a layer made ~100,000
/// failed `statx` calls, growing with the square of the layers).
pub struct LayerStack {
    layers: Vec<PathBuf>,
    /// How many of the bottom layers never change.
    fixed: usize,
    /// Paths the fixed layers do not hold, as [`components`] joined by `/`.
    missing: Mutex<HashSet<String>>,
    /// What fixed layer `.0` says of directory `.1` (joined components).
    dirs: Mutex<HashMap<(usize, String), Dir>>,
}

/// What one layer says of a directory on the way to a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    /// It is a directory of this layer; `opaque` if it or one above it is
    /// opaque (this layer hides the layers below it there).
    Here { opaque: bool },
    /// This layer does not hold it, and nothing above it hides it: the
    /// layers below are looked at.
    Absent,
    /// A whiteout, a non-directory, or an opaque directory above where it
    /// is missing: nothing below it is in this layer or those under it.
    Hidden,
}

/// What the layers of a stack say of a path, read from the top down.
enum Lookup {
    /// This layer holds it.
    Found(PathBuf),
    /// A whiteout, a non-directory or an opaque directory hides it from
    /// the layers below.
    Hidden,
    /// None of these layers holds or hides it.
    Absent,
}

impl LayerStack {
    /// A view of `layers`, bottom first, none of which changes while the
    /// view is used.
    pub fn new(layers: Vec<PathBuf>) -> Self {
        let fixed = layers.len();
        Self {
            layers,
            fixed,
            missing: Mutex::default(),
            dirs: Mutex::default(),
        }
    }

    /// A view of `lowers` (bottom first, never changing) with `upper`,
    /// being written, on top.
    pub fn over(lowers: Vec<PathBuf>, upper: PathBuf) -> Self {
        let fixed = lowers.len();
        let mut layers = lowers;
        layers.push(upper);
        Self {
            layers,
            fixed,
            missing: Mutex::default(),
            dirs: Mutex::default(),
        }
    }

    /// Whether `path` (joined components) or a directory above it is known
    /// to be missing from the fixed layers.
    fn known_missing(&self, path: &str) -> bool {
        let missing = self.missing.lock().expect("poisoned");
        let above = path.match_indices('/').map(|(i, _)| &path[..i]);
        above
            .chain([path])
            .any(|p| !p.is_empty() && missing.contains(p))
    }
}

impl LayerStack {
    /// Looks `components` (at least one) up in the fixed layers, top first.
    fn look_up_fixed(&self, components: &[&str]) -> Lookup {
        let dirs = &components[..components.len() - 1];
        for layer in (0..self.fixed).rev() {
            let opaque = match self.dir(layer, dirs) {
                Dir::Here { opaque } => opaque,
                Dir::Absent => continue,
                Dir::Hidden => return Lookup::Hidden,
            };
            let here = host_path(&self.layers[layer], components);
            match here.symlink_metadata() {
                Ok(meta) if is_whiteout(&meta) => return Lookup::Hidden,
                Ok(_) => return Lookup::Found(here),
                Err(_) if opaque => return Lookup::Hidden,
                Err(_) => {}
            }
        }
        Lookup::Absent
    }

    /// What fixed layer `layer` says of the directory `dirs`, from what
    /// it says of the one above.
    fn dir(&self, layer: usize, dirs: &[&str]) -> Dir {
        let Some((_, above)) = dirs.split_last() else {
            return Dir::Here { opaque: false };
        };
        let key = (layer, dirs.join("/"));
        if let Some(known) = self.dirs.lock().expect("poisoned").get(&key) {
            return *known;
        }
        let said = match self.dir(layer, above) {
            Dir::Here { opaque } => {
                let here = host_path(&self.layers[layer], dirs);
                match here.symlink_metadata() {
                    Err(_) if opaque => Dir::Hidden,
                    Err(_) => Dir::Absent,
                    Ok(meta) if !meta.is_dir() => Dir::Hidden,
                    Ok(_) => Dir::Here {
                        opaque: opaque || is_opaque(&here),
                    },
                }
            }
            other => other,
        };
        self.dirs.lock().expect("poisoned").insert(key, said);
        said
    }
}

/// The host path of `components` in `layer`.
fn host_path(layer: &Path, components: &[&str]) -> PathBuf {
    let mut here = layer.to_path_buf();
    for c in components {
        here.push(host_name(c));
    }
    here
}

/// Looks `components` up in `layers`, top first.
fn look_up<'a>(layers: impl Iterator<Item = &'a PathBuf>, components: &[&str]) -> Lookup {
    for layer in layers {
        let mut here = layer.clone();
        let mut opaque = false;
        for (i, c) in components.iter().enumerate() {
            here.push(host_name(c));
            let Ok(meta) = here.symlink_metadata() else {
                break;
            };
            if is_whiteout(&meta) {
                return Lookup::Hidden;
            }
            if i + 1 == components.len() {
                return Lookup::Found(here);
            }
            if !meta.is_dir() {
                // A non-directory hides whatever lower layers have below it.
                return Lookup::Hidden;
            }
            opaque |= is_opaque(&here);
        }
        if opaque {
            return Lookup::Hidden;
        }
    }
    Lookup::Absent
}

impl FsView for LayerStack {
    fn locate(&self, path: &str) -> Option<PathBuf> {
        let components: Vec<&str> = components(path).collect();
        if components.is_empty() {
            // The root: the top layer's (an empty stack's still exists).
            return self.layers.last().cloned();
        }
        let changing = &self.layers[self.fixed..];
        match look_up(changing.iter().rev(), &components) {
            Lookup::Found(host) => return Some(host),
            Lookup::Hidden => return None,
            Lookup::Absent => {}
        }
        let joined = components.join("/");
        if self.known_missing(&joined) {
            return None;
        }
        match self.look_up_fixed(&components) {
            Lookup::Found(host) => Some(host),
            // Nothing below a path the layers do not show can exist there.
            Lookup::Hidden | Lookup::Absent => {
                self.missing.lock().expect("poisoned").insert(joined);
                None
            }
        }
    }

    fn list(&self, path: &str) -> io::Result<Vec<String>> {
        let mut names = BTreeSet::new();
        for layer in &self.layers {
            let dir = host_join(layer, path);
            if dir.is_dir() && !dir.is_symlink() {
                for entry in std::fs::read_dir(&dir)? {
                    names.insert(name_of(&entry?.file_name()));
                }
            }
        }
        Ok(names
            .into_iter()
            .filter(|n| self.locate(&child(path, n)).is_some())
            .collect())
    }
}

/// Whether a directory entry is an overlay whiteout.
pub fn is_whiteout(meta: &Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// Whether a directory of a layer is opaque: it hides what the layers
/// below hold under it.
pub(crate) fn is_opaque(dir: &Path) -> bool {
    let Ok(path) = CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    let mut value = [0u8; 1];
    // SAFETY: both pointers are valid for the given lengths.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            rbuild_cache::OPAQUE_XATTR.as_ptr(),
            value.as_mut_ptr().cast(),
            value.len(),
        )
    };
    n == 1 && value[0] == b'y'
}

/// The components of a clean absolute path.
pub fn components(path: &str) -> impl DoubleEndedIterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty() && *c != ".")
}

/// `dir/name` for clean absolute paths.
pub fn child(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// The parent of a clean absolute path (`/` for `/`).
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// The last component of a clean absolute path (empty for `/`).
pub fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or("")
}

/// Cleans a path lexically into an absolute one: `.` and empty components
/// dropped, `..` applied but never above the root.
pub fn clean(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    format!("/{}", out.join("/"))
}

/// The host path of the view path `path` below the host directory `root`.
pub fn host_join(root: &Path, path: &str) -> PathBuf {
    let mut p = root.to_path_buf();
    for c in components(path) {
        p.push(host_name(c));
    }
    p
}

/// The first of the 256 characters that stand for raw bytes: U+10FF00 +
/// byte, the end of Supplementary Private Use Area-B.
const RAW_BYTE_BASE: u32 = 0x10_FF00;

/// A host name (or symlink target) as a view name: UTF-8 as it is; each
/// byte of an invalid sequence, and of a genuine character in the range
/// that stands for raw bytes, as its stand-in character (U+10FF00 + byte).
/// [`host_name`] reverses it exactly, so every host name has one view
/// name and back.
pub fn name_of(host: &OsStr) -> String {
    let bytes = host.as_bytes();
    let escape = |out: &mut String, raw: &[u8]| {
        out.extend(
            raw.iter()
                .map(|b| char::from_u32(RAW_BYTE_BASE + u32::from(*b)).expect("a valid char")),
        );
    };
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for ch in chunk.valid().chars() {
            if u32::from(ch) >= RAW_BYTE_BASE {
                escape(&mut out, ch.encode_utf8(&mut [0; 4]).as_bytes());
            } else {
                out.push(ch);
            }
        }
        escape(&mut out, chunk.invalid());
    }
    out
}

/// The host bytes of a view name (the reverse of [`name_of`]).
pub fn host_name(name: &str) -> Cow<'_, OsStr> {
    if !name.chars().any(|c| u32::from(c) >= RAW_BYTE_BASE) {
        return Cow::Borrowed(OsStr::new(name));
    }
    let mut out = Vec::with_capacity(name.len());
    for ch in name.chars() {
        match u32::from(ch).checked_sub(RAW_BYTE_BASE) {
            Some(b) => out.push(b as u8),
            None => out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    Cow::Owned(std::os::unix::ffi::OsStringExt::from_vec(out))
}

/// Resolves `path` in `view` like the kernel would inside a chroot: every
/// symlink met on the way (and the last one too, when `follow_last`) is
/// followed, relative ones from their directory, absolute ones from the
/// view's root, and `..` never climbs above the root. Missing components
/// are kept as they are, so the result may name something that does not
/// exist yet.
pub fn resolve(view: &dyn FsView, path: &str, follow_last: bool) -> io::Result<String> {
    let mut pending: Vec<String> = components(&clean(path)).rev().map(String::from).collect();
    let mut resolved = String::from("/");
    let mut hops = 0;
    while let Some(c) = pending.pop() {
        if c == ".." {
            resolved = parent(&resolved).to_string();
            continue;
        }
        let candidate = child(&resolved, &c);
        let is_last = pending.is_empty();
        let link = match view.locate(&candidate) {
            Some(host) if (!is_last || follow_last) && host.is_symlink() => {
                Some(std::fs::read_link(&host)?)
            }
            _ => None,
        };
        match link {
            Some(target) => {
                hops += 1;
                if hops > 40 {
                    return Err(io::Error::other(format!(
                        "too many levels of symbolic links in {path}"
                    )));
                }
                let target = name_of(target.as_os_str());
                if target.starts_with('/') {
                    resolved = String::from("/");
                }
                pending.extend(
                    target
                        .split('/')
                        .filter(|c| !c.is_empty() && *c != ".")
                        .rev()
                        .map(String::from),
                );
            }
            None => resolved = candidate,
        }
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_round_trip_byte_exact() {
        for raw in [
            &b"plain"[..],
            b"bad\xffname",
            b"\xc3",
            "caf\u{e9}".as_bytes(),
            "\u{10ff41}".as_bytes(),
            b"\xf4\x8f\xbd\x81\xff",
        ] {
            let name = name_of(OsStr::from_bytes(raw));
            assert_eq!(host_name(&name).as_bytes(), raw, "{name:?}");
        }
        assert_eq!(name_of(OsStr::new("café")), "café");
        assert_ne!(
            name_of(OsStr::from_bytes(b"a\xff")),
            name_of(OsStr::from_bytes(b"a\xfe"))
        );
    }
    use std::os::unix::fs::symlink;

    #[test]
    fn cleans_paths() {
        assert_eq!(clean("a/./b//c/"), "/a/b/c");
        assert_eq!(clean("/../../x"), "/x");
        assert_eq!(clean(""), "/");
        assert_eq!(parent("/a/b"), "/a");
        assert_eq!(parent("/a"), "/");
        assert_eq!(base_name("/a/b"), "b");
    }

    #[test]
    fn symlinks_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        symlink("usr/bin", root.join("bin")).unwrap();
        symlink("/../../../etc", root.join("escape")).unwrap();
        symlink("../../..", root.join("usr/bin/up")).unwrap();
        let view = HostTree::new(root);
        assert_eq!(resolve(&view, "/bin/sh", true).unwrap(), "/usr/bin/sh");
        assert_eq!(
            resolve(&view, "/escape/passwd", true).unwrap(),
            "/etc/passwd"
        );
        assert_eq!(resolve(&view, "/usr/bin/up/x", true).unwrap(), "/x");
        assert_eq!(resolve(&view, "/bin", false).unwrap(), "/bin");
    }

    #[test]
    fn layers_merge_with_whiteouts_and_opaque_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let low = dir.path().join("low");
        let up = dir.path().join("up");
        for d in ["a", "b", "c"] {
            std::fs::create_dir_all(low.join(d)).unwrap();
            std::fs::write(low.join(d).join("old"), "x").unwrap();
        }
        std::fs::create_dir_all(up.join("a")).unwrap();
        std::fs::write(up.join("a/new"), "y").unwrap();
        nix::sys::stat::mknod(
            &up.join("b"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .unwrap();
        std::fs::create_dir_all(up.join("c")).unwrap();
        std::fs::write(up.join("c/fresh"), "z").unwrap();
        let c = CString::new(up.join("c").as_os_str().as_bytes()).unwrap();
        // SAFETY: valid pointers and lengths.
        let rc = unsafe {
            libc::lsetxattr(
                c.as_ptr(),
                rbuild_cache::OPAQUE_XATTR.as_ptr(),
                b"y".as_ptr().cast(),
                1,
                0,
            )
        };
        assert_eq!(rc, 0);
        // A file over a lower directory, and deeper trees under each.
        std::fs::create_dir_all(low.join("d/x")).unwrap();
        std::fs::write(up.join("d"), "file").unwrap();
        std::fs::create_dir_all(low.join("c/deep/x")).unwrap();
        std::fs::create_dir_all(low.join("a/deep/x")).unwrap();
        std::fs::create_dir_all(up.join("e/deep")).unwrap();
        let layers = vec![low, up];
        let view = LayerStack::new(layers.clone());
        assert_eq!(view.list("/").unwrap(), vec!["a", "c", "d", "e"]);
        assert_eq!(view.list("/a").unwrap(), vec!["deep", "new", "old"]);
        assert_eq!(view.list("/c").unwrap(), vec!["fresh"]);
        assert!(view.locate("/b/old").is_none());
        assert!(view.locate("/c/old").is_none());
        assert!(view.locate("/a/old").is_some());
        // What the view remembers changes no answer: each path, asked
        // twice, as a walk of every layer from the top answers it.
        let paths = [
            "/a",
            "/a/old",
            "/a/new",
            "/a/deep/x",
            "/a/deep/y",
            "/b",
            "/b/old",
            "/c/old",
            "/c/fresh",
            "/c/deep",
            "/c/deep/x",
            "/d",
            "/d/x",
            "/e/deep",
            "/e/deep/x",
            "/f/g",
        ];
        for _ in 0..2 {
            for path in paths {
                let walked =
                    match look_up(layers.iter().rev(), &components(path).collect::<Vec<_>>()) {
                        Lookup::Found(host) => Some(host),
                        Lookup::Hidden | Lookup::Absent => None,
                    };
                assert_eq!(view.locate(path), walked, "{path}");
            }
        }
    }

    #[test]
    fn what_the_upper_gains_is_seen_past_a_remembered_miss() {
        let dir = tempfile::tempdir().unwrap();
        let (low, up) = (dir.path().join("low"), dir.path().join("up"));
        std::fs::create_dir_all(low.join("a")).unwrap();
        std::fs::write(low.join("a/old"), "old").unwrap();
        std::fs::create_dir(&up).unwrap();
        let view = LayerStack::over(vec![low.clone()], up.clone());
        assert!(view.locate("/new").is_none());
        assert!(view.locate("/new/file").is_none());
        // The copy makes the directory and its file in the upper layer.
        std::fs::create_dir(up.join("new")).unwrap();
        std::fs::write(up.join("new/file"), "x").unwrap();
        assert_eq!(view.locate("/new/file"), Some(up.join("new/file")));
        assert_eq!(view.list("/").unwrap(), vec!["a", "new"]);
        // A miss below a directory the lower layer holds is not a miss of it.
        assert!(view.locate("/a/gone").is_none());
        assert_eq!(view.locate("/a/old"), Some(low.join("a/old")));
        std::fs::write(up.join("a-sibling"), "").unwrap();
        assert!(
            view.locate("/a-sibling").is_some(),
            "a prefix of a name is no parent"
        );
    }
}
