//! Selecting COPY/ADD sources in a tree (the context or another state) and
//! checksumming exactly what is selected: the content-based cache key of a
//! copy from the build context.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use rayon::prelude::*;

use rbuild_cache::{FileHashCache, FileStamp};
use rbuild_frontend::graph::CopyAction;
use rbuild_frontend::wildcard;

use crate::layered::{self, FsView};
use crate::modes::ContextModes;
use crate::walk::{Walked, walk_each};
use rbuild_frontend::chmod::Chmod;

/// A predicate saying a context path (`a/b`, no leading `/`) is excluded.
pub type Excluded<'a> = &'a (dyn Fn(&str) -> bool + Sync);

/// The predicate of a tree nothing is excluded from (layers, fetched
/// sources, a directory checked as a whole).
pub fn nothing_excluded(_: &str) -> bool {
    false
}

/// One source a pattern selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    /// The path as selected: its directories resolved, its last component
    /// not followed. A copy names its result after this path's last
    /// component (`COPY link dest/` makes `dest/link`).
    pub named: String,
    /// The path its content is read from: every symlink followed, as
    /// BuildKit follows a COPY source that is a symlink.
    pub resolved: String,
}

/// Expands one source pattern into the sources it names, in order.
/// Wildcards match per component; symlinks met on the way, and a source
/// that is itself a symlink, are followed within the tree. A source that
/// names nothing (or only excluded paths) is an error.
pub fn expand(
    view: &dyn FsView,
    pattern: &str,
    excluded: Excluded<'_>,
) -> io::Result<Vec<Selected>> {
    let clean = layered::clean(pattern);
    if !wildcard::has_wildcards(&clean) {
        let named = layered::resolve(view, &clean, false)?;
        return match select(view, named, excluded)? {
            Some(found) => Ok(vec![found]),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{pattern}: not found"),
            )),
        };
    }
    let mut found = vec![String::from("/")];
    for c in layered::components(&clean) {
        let mut next = Vec::new();
        for dir in &found {
            if wildcard::has_wildcards(c) {
                let dir = layered::resolve(view, dir, true)?;
                if let Ok(names) = view.list(&dir) {
                    next.extend(
                        names
                            .iter()
                            .filter(|n| wildcard::component_matches(c, n))
                            .map(|n| layered::child(&dir, n)),
                    );
                }
            } else {
                next.push(layered::child(dir, c));
            }
        }
        found = next;
    }
    let mut out = Vec::new();
    for p in found {
        let named = layered::resolve(view, &p, false)?;
        out.extend(select(view, named, excluded)?);
    }
    if out.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{pattern}: no source files were specified"),
        ));
    }
    Ok(out)
}

/// The source `named` names, unless it (or what it links to) is missing
/// or excluded. The root is never excluded.
fn select(
    view: &dyn FsView,
    named: String,
    excluded: Excluded<'_>,
) -> io::Result<Option<Selected>> {
    let hidden = |p: &str| p != "/" && excluded(relative(p));
    let Some(host) = view.locate(&named) else {
        return Ok(None);
    };
    let resolved = match host.is_symlink() {
        true => layered::resolve(view, &named, true)?,
        false => named.clone(),
    };
    if resolved != named && view.locate(&resolved).is_none() {
        return Ok(None);
    }
    if (hidden(&named) || hidden(&resolved)) && !reincludes(view, &resolved, excluded)? {
        return Ok(None);
    }
    Ok(Some(Selected { named, resolved }))
}

/// Whether the excluded `path` is a directory with something below it
/// that a `!` exception re-includes (BuildKit's context then has it).
fn reincludes(view: &dyn FsView, path: &str, excluded: Excluded<'_>) -> io::Result<bool> {
    match view.locate(path) {
        Some(host) if host.is_dir() && !host.is_symlink() => {
            Ok(!walk_hosts(view, path, excluded)?.is_empty())
        }
        _ => Ok(false),
    }
}

/// `path` without its leading `/`.
pub fn relative(path: &str) -> &str {
    path.trim_start_matches('/')
}

/// Everything below `root` (not `root` itself), as
/// [`walk_each`](crate::walk::walk_each) visits it, with each path's host
/// path.
pub fn walk_hosts(
    view: &dyn FsView,
    root: &str,
    excluded: Excluded<'_>,
) -> io::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    walk_each(view, root, excluded, &mut |w| {
        out.push((w.path, w.host));
        Ok(())
    })?;
    Ok(out)
}

/// The checksum of what `copies` select (the whole tree when `copies` is
/// empty): paths, types, permission bits as they reach the layer (as
/// `modes` says, then `--chmod`), file contents and symlink targets; never owners or
/// timestamps, which a context copy does not carry into the image.
pub fn checksum(
    view: &(dyn FsView + Sync),
    copies: &[&CopyAction],
    ignored: Excluded<'_>,
    hashes: Option<&FileHashCache>,
    modes: ContextModes,
) -> Result<String, String> {
    let carried = Carried::ModeAndContent(modes);
    Ok(checksum_of(view, copies, ignored, hashes, carried)?.0)
}

/// Each selected file (its context-relative path) with the first 8 bytes
/// of the digest of what a copy carries of it, in selection order, as the
/// checksum saw it: what a later build compares its own selection with.
/// The paths share one buffer (some 40 bytes a file in all).
#[derive(Debug, Default)]
pub struct Listing {
    paths: String,
    ends: Vec<usize>,
    digests: Vec<[u8; 8]>,
}

impl Listing {
    /// Appends `path` with (the start of) its digest.
    fn push(&mut self, path: &str, digest: &[u8; 32]) {
        self.paths.push_str(path);
        self.ends.push(self.paths.len());
        self.digests
            .push(digest[..8].try_into().expect("eight bytes"));
    }

    /// Gives back what the buffers hold beyond the listing: it is kept
    /// for the whole build.
    fn shrink_to_fit(&mut self) {
        self.paths.shrink_to_fit();
        self.ends.shrink_to_fit();
        self.digests.shrink_to_fit();
    }

    /// The files in selection order: path and short digest.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8; 8])> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        (starts.zip(&self.ends))
            .map(|(start, &end)| &self.paths[start..end])
            .zip(&self.digests)
    }
}

/// The context-relative path of a checksummed entry's name: a named
/// source's entry is named `pattern\0named\0resolved`, a file under it by
/// its path.
fn listed_path(name: &str) -> &str {
    relative(
        name.rsplit_once('\0')
            .map_or(name, |(_, resolved)| resolved),
    )
}

/// [`checksum`], with the [`Listing`] it was computed from.
pub fn checksum_listed(
    view: &(dyn FsView + Sync),
    copies: &[&CopyAction],
    ignored: Excluded<'_>,
    hashes: Option<&FileHashCache>,
    modes: ContextModes,
) -> Result<(String, Listing), String> {
    let carried = Carried::ModeAndContent(modes);
    checksum_of(view, copies, ignored, hashes, carried)
}

/// The checksum of what `copies` select in an earlier stage's layers
/// (`COPY --from=stage`): as [`checksum`], plus owners and modification
/// times, which such a copy keeps, as a layer keeps them: whole seconds,
/// clamped to `epoch` (`SOURCE_DATE_EPOCH`) when set. So the checksum is
/// the same over a stage made here and over its layers unpacked from a
/// cache on another machine.
pub fn stage_checksum(
    view: &(dyn FsView + Sync),
    copies: &[&CopyAction],
    epoch: Option<i64>,
) -> Result<String, String> {
    let carried = Carried::Everything { epoch };
    Ok(checksum_of(view, copies, &|_| false, None, carried)?.0)
}

/// What of a file, besides its path, type and permission bits (after
/// `--chmod`), a copy carries into the layer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Carried {
    /// Content and symlink targets, permission bits as `ContextModes`
    /// says (a copy from the build context).
    ModeAndContent(ContextModes),
    /// Also owners, modification times (as a layer keeps them: see
    /// [`stage_checksum`]) and device numbers (a copy from a stage).
    Everything {
        /// The `SOURCE_DATE_EPOCH` layers clamp times to.
        epoch: Option<i64>,
    },
}

fn checksum_of(
    view: &(dyn FsView + Sync),
    copies: &[&CopyAction],
    ignored: Excluded<'_>,
    hashes: Option<&FileHashCache>,
    carried: Carried,
) -> Result<(String, Listing), String> {
    let whole = [String::from(".")];
    let mut summer = Summer {
        hashes,
        carried,
        batch: Vec::with_capacity(BATCH),
        hasher: blake3::Hasher::new(),
        listing: Listing::default(),
    };
    let mut add = |sources: &[String], exclude: &[String], chmod: Option<Chmod>| {
        let excludes = clean_excludes(exclude);
        let excluded = |p: &str| ignored(p) || excludes.iter().any(|e| matches_path(e, p));
        for pattern in sources {
            for found in expand(view, pattern, &excluded).map_err(|e| e.to_string())? {
                let Selected { named, resolved } = found;
                // Gone since it was listed: deleted while the build runs.
                let host = view.locate(&resolved).ok_or_else(|| vanished(&resolved))?;
                let is_dir = host.is_dir();
                let name = format!("{pattern}\0{named}\0{resolved}");
                summer.add(name, host, chmod.as_ref())?;
                if is_dir {
                    let top = [resolved.clone()];
                    let inside = |p: &str| excluded(p) || copy_excludes(&excludes, &top, p);
                    // A digest's error stops the walk, its message kept.
                    let mut visit = |w: Walked| {
                        (summer.add(w.path, w.host, chmod.as_ref())).map_err(io::Error::other)
                    };
                    walk_each(view, &resolved, &inside, &mut visit).map_err(|e| e.to_string())?;
                }
            }
        }
        Ok::<_, String>(())
    };
    if copies.is_empty() {
        add(&whole, &[], None)?;
    }
    for copy in copies {
        let chmod = copy.chmod.as_deref().map(Chmod::parse).transpose()?;
        add(&copy.sources, &copy.exclude, chmod)?;
    }
    summer.flush()?;
    let mut listing = summer.listing;
    listing.shrink_to_fit();
    Ok((summer.hasher.finalize().to_hex().to_string(), listing))
}

/// How many entries are digested at a time (in parallel).
const BATCH: usize = 4096;

/// The checksum being computed: the selected entries are digested in
/// batches, in parallel within one, and fed to the checksum and the
/// listing in selection order; never all of them at once in memory.
struct Summer<'a> {
    hashes: Option<&'a FileHashCache>,
    carried: Carried,
    /// Entries not digested yet: name, host path, `--chmod`.
    batch: Vec<(String, PathBuf, Option<Chmod>)>,
    hasher: blake3::Hasher,
    listing: Listing,
}

impl Summer<'_> {
    /// Adds the entry `name` (read at `host`), digested with the next
    /// batch.
    fn add(&mut self, name: String, host: PathBuf, chmod: Option<&Chmod>) -> Result<(), String> {
        self.batch.push((name, host, chmod.cloned()));
        match self.batch.len() >= BATCH {
            true => self.flush(),
            false => Ok(()),
        }
    }

    /// Digests the batch into the checksum and the listing.
    fn flush(&mut self) -> Result<(), String> {
        let (hashes, carried) = (self.hashes, self.carried);
        let digests: Vec<Result<([u8; 32], bool), String>> = (self.batch.par_iter())
            .map(|(name, host, chmod)| {
                entry_digest(name, host, chmod.as_ref(), hashes, carried).map_err(|e| {
                    let path = name.rsplit('\0').next().unwrap_or(name);
                    match e.kind() {
                        io::ErrorKind::NotFound => vanished(path),
                        _ => format!("{}: {e}", escaped(path)),
                    }
                })
            })
            .collect();
        for ((name, _, _), d) in self.batch.drain(..).zip(digests) {
            let (d, is_dir) = d?;
            self.hasher.update(&d);
            // Directories are in the checksum, not in the list of files.
            if !is_dir {
                self.listing.push(listed_path(&name), &d);
            }
        }
        Ok(())
    }
}

/// The error for a selected file that is gone (deleted during the build).
pub fn vanished(path: &str) -> String {
    format!("{}: deleted while the build was reading it", escaped(path))
}

/// A view path for a message: its host bytes, escaped.
pub fn escaped(path: &str) -> String {
    rbuild_cache::contain::escape(layered::host_name(path).as_encoded_bytes())
}

/// `--exclude` patterns as context-relative paths.
pub fn clean_excludes(exclude: &[String]) -> Vec<String> {
    exclude
        .iter()
        .map(|e| relative(&layered::clean(e)).to_string())
        .collect()
}

/// Whether a copy's `--exclude` patterns exclude `path`: a pattern matches
/// the path (or a parent) relative to the context root or to one of
/// `sources` (the copy's source directories, or the directory a wildcard
/// matched), as BuildKit applies them per source.
pub fn copy_excludes(excludes: &[String], sources: &[String], path: &str) -> bool {
    excludes.iter().any(|e| {
        matches_path(e, path)
            || sources.iter().any(|s| {
                let dir = relative(&layered::clean(s)).to_string();
                !dir.is_empty()
                    && path
                        .strip_prefix(dir.as_str())
                        .and_then(|rest| rest.strip_prefix('/'))
                        .is_some_and(|rest| matches_path(e, rest))
            })
    })
}

/// `--exclude` patterns match a path or any of its parents.
fn matches_path(pattern: &str, path: &str) -> bool {
    let pat: Vec<&str> = pattern.split('/').collect();
    let comps: Vec<&str> = path.split('/').collect();
    comps.len() >= pat.len()
        && pat
            .iter()
            .zip(&comps)
            .all(|(p, c)| wildcard::component_matches(p, c))
}

/// The blake3 of a file's content, from `hashes` (by the file's
/// context-relative path, `key`) when its stamp (inode, size, mtime,
/// ctime) is unchanged.
fn content_hash(
    key: &str,
    host: &std::path::Path,
    meta: &std::fs::Metadata,
    hashes: Option<&FileHashCache>,
) -> io::Result<[u8; 32]> {
    let stamp = FileStamp::of(meta);
    if let Some(hash) = hashes.and_then(|c| c.get(key, &stamp)) {
        return Ok(hash);
    }
    let mut h = blake3::Hasher::new();
    if meta.len() > 1 << 20 {
        h.update_mmap_rayon(host)?;
    } else {
        h.update(&std::fs::read(host)?);
    }
    let hash = *h.finalize().as_bytes();
    if let Some(c) = hashes {
        c.insert(key, stamp, hash);
    }
    Ok(hash)
}

/// The digest of what a copy carries of one entry (see [`Carried`]), and
/// whether it is a directory.
fn entry_digest(
    name: &str,
    host: &std::path::Path,
    chmod: Option<&Chmod>,
    hashes: Option<&FileHashCache>,
    carried: Carried,
) -> io::Result<([u8; 32], bool)> {
    let meta = host.symlink_metadata()?;
    let mut h = blake3::Hasher::new();
    h.update(&(name.len() as u64).to_le_bytes());
    h.update(name.as_bytes());
    let modes = match carried {
        Carried::ModeAndContent(modes) => modes,
        Carried::Everything { .. } => ContextModes::OnDisk,
    };
    let mode = modes.apply(meta.mode());
    let perm = match chmod {
        Some(c) if !meta.is_symlink() => c.apply(mode, meta.is_dir()),
        _ => mode & 0o7777,
    };
    h.update(&((meta.mode() & 0o170_000) | perm).to_le_bytes());
    if let Carried::Everything { epoch } = carried {
        for n in [meta.uid(), meta.gid()] {
            h.update(&n.to_le_bytes());
        }
        let mtime = epoch.map_or(meta.mtime(), |e| meta.mtime().min(e));
        for n in [mtime, meta.rdev() as i64] {
            h.update(&n.to_le_bytes());
        }
    }
    if meta.is_file() {
        h.update(&meta.len().to_le_bytes());
        h.update(&content_hash(listed_path(name), host, &meta, hashes)?);
    } else if meta.is_symlink() {
        h.update(std::fs::read_link(host)?.as_os_str().as_encoded_bytes());
    }
    Ok((*h.finalize().as_bytes(), meta.is_dir()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layered::HostTree;

    /// The paths [`walk_hosts`] lists.
    fn walk(view: &HostTree, root: &str, excluded: Excluded<'_>) -> io::Result<Vec<String>> {
        let walked = walk_hosts(view, root, excluded)?;
        Ok(walked.into_iter().map(|(path, _)| path).collect())
    }

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("src/sub")).unwrap();
        std::fs::write(r.join("src/a.c"), "a").unwrap();
        std::fs::write(r.join("src/b.h"), "b").unwrap();
        std::fs::write(r.join("src/sub/c.c"), "c").unwrap();
        std::fs::write(r.join("README"), "r").unwrap();
        dir
    }

    #[test]
    fn expands_wildcards_and_plain_paths() {
        let dir = tree();
        let view = HostTree::new(dir.path());
        let none = |_: &str| false;
        let named = |pattern| -> Vec<String> {
            expand(&view, pattern, &none)
                .unwrap()
                .into_iter()
                .map(|s| s.named)
                .collect()
        };
        assert_eq!(named("src/*.c"), vec!["/src/a.c"]);
        assert_eq!(named("./README"), vec!["/README"]);
        assert!(expand(&view, "nope", &none).is_err());
        assert!(expand(&view, "*.zip", &none).is_err());
        let ex = |p: &str| p == "README";
        assert!(expand(&view, "README", &ex).is_err());
    }

    #[test]
    fn a_symlink_source_keeps_its_name_and_reads_its_target() {
        let dir = tree();
        std::os::unix::fs::symlink("src/a.c", dir.path().join("link")).unwrap();
        let view = HostTree::new(dir.path());
        let none = |_: &str| false;
        let want = vec![Selected {
            named: String::from("/link"),
            resolved: String::from("/src/a.c"),
        }];
        assert_eq!(expand(&view, "link", &none).unwrap(), want);
        assert_eq!(expand(&view, "li?k", &none).unwrap(), want);
        let excluded_target = |p: &str| p == "src/a.c";
        assert!(expand(&view, "link", &excluded_target).is_err());
    }

    fn copy_of(sources: &[&str], chmod: Option<&str>, exclude: &[&str]) -> CopyAction {
        CopyAction {
            source_input: 1,
            sources: sources.iter().map(|s| s.to_string()).collect(),
            dest: String::from("/"),
            chown: None,
            chmod: chmod.map(str::to_string),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
            parents: false,
            link: false,
            extract_archives: false,
            remote: None,
        }
    }

    #[test]
    fn checksum_sees_content_not_times_nor_unselected_files() {
        let dir = tree();
        let view = HostTree::new(dir.path());
        let none = |_: &str| false;
        let src = copy_of(&["src"], None, &[]);
        let before = checksum(&view, &[&src], &none, None, ContextModes::OnDisk).unwrap();
        std::fs::write(dir.path().join("README"), "changed").unwrap();
        let f = std::fs::File::options()
            .write(true)
            .open(dir.path().join("src/a.c"))
            .unwrap();
        f.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(
            checksum(&view, &[&src], &none, None, ContextModes::OnDisk).unwrap(),
            before
        );
        std::fs::write(dir.path().join("src/sub/c.c"), "C").unwrap();
        assert_ne!(
            checksum(&view, &[&src], &none, None, ContextModes::OnDisk).unwrap(),
            before
        );
        let ex = |p: &str| p == "src/sub/c.c";
        let excluded = checksum(&view, &[&src], &ex, None, ContextModes::OnDisk).unwrap();
        std::fs::write(dir.path().join("src/sub/c.c"), "CC").unwrap();
        assert_eq!(
            checksum(&view, &[&src], &ex, None, ContextModes::OnDisk).unwrap(),
            excluded
        );
        let own_exclude = copy_of(&["src"], None, &["src/sub"]);
        let before = checksum(&view, &[&own_exclude], &none, None, ContextModes::OnDisk).unwrap();
        std::fs::write(dir.path().join("src/sub/c.c"), "CCC").unwrap();
        assert_eq!(
            checksum(&view, &[&own_exclude], &none, None, ContextModes::OnDisk).unwrap(),
            before
        );
    }

    #[test]
    fn a_stage_checksum_sees_times_as_a_layer_keeps_them() {
        let dir = tree();
        let view = HostTree::new(dir.path());
        let a = copy_of(&["src/a.c"], None, &[]);
        let set = |secs: u64, nanos: u32| {
            let at = std::time::UNIX_EPOCH + std::time::Duration::new(secs, nanos);
            let f = std::fs::File::options()
                .write(true)
                .open(dir.path().join("src/a.c"));
            f.unwrap().set_modified(at).unwrap();
        };
        let sum = |epoch| stage_checksum(&view, &[&a], epoch).unwrap();
        set(2_000, 0);
        let whole = sum(None);
        // A tar header has whole seconds: the nanoseconds are not hashed.
        set(2_000, 123_456_789);
        assert_eq!(sum(None), whole);
        set(2_001, 0);
        assert_ne!(sum(None), whole);
        // Times past SOURCE_DATE_EPOCH are the epoch in a layer.
        assert_eq!(sum(Some(2_000)), whole);
        set(5_000, 0);
        assert_eq!(sum(Some(2_000)), whole);
    }

    #[test]
    fn checksum_hashes_modes_after_chmod() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tree();
        let view = HostTree::new(dir.path());
        let none = |_: &str| false;
        let a = dir.path().join("src/a.c");
        let plain = copy_of(&["src/a.c"], None, &[]);
        let chmod = copy_of(&["src/a.c"], Some("755"), &[]);
        let (p1, c1) = (
            checksum(&view, &[&plain], &none, None, ContextModes::OnDisk).unwrap(),
            checksum(&view, &[&chmod], &none, None, ContextModes::OnDisk).unwrap(),
        );
        std::fs::set_permissions(&a, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_ne!(
            checksum(&view, &[&plain], &none, None, ContextModes::OnDisk).unwrap(),
            p1
        );
        assert_eq!(
            checksum(&view, &[&chmod], &none, None, ContextModes::OnDisk).unwrap(),
            c1
        ); // As git records them, 0600 and 0644 are one mode (0644): a
        // checkout under another umask keys the same.
        let git =
            |copy: &CopyAction| checksum(&view, &[copy], &none, None, ContextModes::Git).unwrap();
        let private = git(&plain);
        std::fs::set_permissions(&a, std::fs::Permissions::from_mode(0o664)).unwrap();
        assert_eq!(git(&plain), private);
        std::fs::set_permissions(&a, std::fs::Permissions::from_mode(0o744)).unwrap();
        assert_ne!(git(&plain), private, "the owner's exec bit counts");
    }

    /// A host tree whose file `victim` is deleted once it was located
    /// twice (resolved, then found) or listed: a context file deleted
    /// while the build reads the context.
    struct Vanishing {
        tree: HostTree,
        victim: std::path::PathBuf,
        seen: std::sync::atomic::AtomicUsize,
    }

    impl Vanishing {
        fn delete(&self) {
            let _ = std::fs::remove_file(&self.victim);
        }
    }

    impl FsView for Vanishing {
        fn locate(&self, path: &str) -> Option<PathBuf> {
            let found = self.tree.locate(path);
            if found.as_ref() == Some(&self.victim)
                && self.seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 1
            {
                self.delete();
            }
            found
        }

        fn list(&self, path: &str) -> io::Result<Vec<String>> {
            self.tree.list(path)
        }

        fn list_entries(&self, path: &str) -> io::Result<Vec<(String, PathBuf, bool)>> {
            let entries = self.tree.list_entries(path)?;
            if entries.iter().any(|(_, host, _)| *host == self.victim) {
                self.delete();
            }
            Ok(entries)
        }
    }

    #[test]
    fn context_files_deleted_during_the_build_are_named() {
        let none = |_: &str| false;
        for (source, victim) in [("src/a.c", "src/a.c"), ("src", "src/sub/c.c")] {
            let dir = tree();
            let view = Vanishing {
                tree: HostTree::new(dir.path()),
                victim: dir.path().join(victim),
                seen: Default::default(),
            };
            let copy = copy_of(&[source], None, &[]);
            let err = checksum(&view, &[&copy], &none, None, ContextModes::OnDisk).unwrap_err();
            assert_eq!(
                err,
                format!("/{victim}: deleted while the build was reading it")
            );
        }
    }

    #[test]
    fn non_utf8_names_are_selected_and_checksummed_byte_exact() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tree();
        let bad = |b: u8| dir.path().join(std::ffi::OsStr::from_bytes(&[b'x', b]));
        std::fs::write(bad(0xff), "1").unwrap();
        std::fs::write(bad(0xfe), "2").unwrap();
        let view = HostTree::new(dir.path());
        let none = |_: &str| false;
        let found = expand(&view, "x*", &none).unwrap();
        assert_eq!(found.len(), 2);
        for path in &found {
            let path = &path.resolved;
            assert!(view.locate(path).is_some_and(|h| h.is_file()), "{path:?}");
        }
        let all = copy_of(&["x*"], None, &[]);
        let before = checksum(&view, &[&all], &none, None, ContextModes::OnDisk).unwrap();
        std::fs::write(bad(0xfe), "3").unwrap();
        assert_ne!(
            checksum(&view, &[&all], &none, None, ContextModes::OnDisk).unwrap(),
            before
        );
    }

    #[test]
    fn re_included_files_bring_their_excluded_parents() {
        let dir = tree();
        std::fs::create_dir_all(dir.path().join("src/sub/deep")).unwrap();
        std::fs::write(dir.path().join("src/sub/deep/c.log"), "c").unwrap();
        let view = HostTree::new(dir.path());
        let patterns = |p: &[&str]| {
            let p: Vec<String> = p.iter().map(|s| s.to_string()).collect();
            rbuild_frontend::IgnoreMatcher::new(&p).unwrap()
        };
        let star = patterns(&["*", "!src/sub/deep/c.log"]);
        let ignored = |p: &str| star.is_excluded(p);
        assert_eq!(
            walk(&view, "/", &ignored).unwrap(),
            vec!["/src", "/src/sub", "/src/sub/deep", "/src/sub/deep/c.log"]
        );
        let sub = patterns(&["src", "!src/b.h"]);
        let ignored = |p: &str| sub.is_excluded(p);
        let found = expand(&view, "src", &ignored).unwrap();
        assert_eq!(
            found[0].resolved, "/src",
            "an excluded dir with a re-included file"
        );
        assert_eq!(walk(&view, "/src", &ignored).unwrap(), vec!["/src/b.h"]);
        let none_back = patterns(&["src"]);
        let ignored = |p: &str| none_back.is_excluded(p);
        assert!(expand(&view, "src", &ignored).is_err());
    }

    #[test]
    fn file_hashes_are_kept_by_context_relative_path() {
        let dir = tree();
        let store = rbuild_cache::Store::open(&dir.path().join(".store")).unwrap();
        // Changed over 2 s ago: old enough for the hash cache to trust.
        std::thread::sleep(std::time::Duration::from_millis(2100));
        let view = HostTree::new(dir.path());
        let none = |_: &str| false;
        let src = copy_of(&["src"], None, &[]);
        let hashes = store.file_hashes("ctx");
        let sum = checksum(&view, &[&src], &none, Some(&hashes), ContextModes::OnDisk).unwrap();
        hashes.save().unwrap();
        let hashes = store.file_hashes("ctx");
        let stamp = |p: &str| FileStamp::of(&std::fs::metadata(dir.path().join(p)).unwrap());
        assert_eq!(
            hashes.get("src/sub/c.c", &stamp("src/sub/c.c")),
            Some(*blake3::hash(b"c").as_bytes())
        );
        assert_eq!(hashes.get("README", &stamp("README")), None, "not selected");
        let warm = checksum(&view, &[&src], &none, Some(&hashes), ContextModes::OnDisk).unwrap();
        assert_eq!(warm, sum);
        std::fs::write(dir.path().join("src/a.c"), "A").unwrap();
        assert_ne!(
            checksum(&view, &[&src], &none, Some(&hashes), ContextModes::OnDisk).unwrap(),
            sum,
            "a rewritten file (new ctime) is read again"
        );
    }

    #[test]
    fn walk_lists_descendants_in_order() {
        let dir = tree();
        let view = HostTree::new(dir.path());
        let none = |_: &str| false;
        assert_eq!(
            walk(&view, "/src", &none).unwrap(),
            vec!["/src/a.c", "/src/b.h", "/src/sub", "/src/sub/c.c"]
        );
    }
}
