//! File ops (COPY, ADD of local files, WORKDIR, heredoc files) applied
//! without mounting: the destination state is read through its layers and
//! every change is written into a fresh layer directory (the new snapshot),
//! which therefore holds exactly the files the op wrote, plus the parent
//! directories it needed, copied up with their metadata as overlayfs would.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use rbuild_frontend::graph::{CopyAction, FileAction, FileOp, RemoteSource};
use rbuild_frontend::wildcard;

use rbuild_cache::files::set_mtime;
use rbuild_cache::{CopiedWriter, SourceStamp};

use crate::archive;
use crate::context::{self, Excluded, Selected};
use crate::layered::{self, FsView, LayerStack};
use crate::modes::ContextModes;
use crate::owner::{self, Owner};
pub use crate::share::Previous;
use crate::share::{DirPair, Shared, Wanted};
use crate::walk::{Walked, walk_each};
use rbuild_frontend::chmod::Chmod;

/// Where a copy reads from.
pub struct Source<'a> {
    /// The tree.
    pub view: &'a (dyn FsView + Sync),
    /// The build context: files are owned by root in the image, and
    /// `.dockerignore` applies.
    pub is_context: bool,
    /// The permission bits its files carry into the layer.
    pub modes: ContextModes,
    /// Context paths `.dockerignore` excludes.
    pub ignored: Excluded<'a>,
}

impl<'a> Source<'a> {
    /// A stage's or image's layers: owners and modes as stored, nothing excluded.
    pub fn layers(view: &'a (dyn FsView + Sync)) -> Self {
        Source {
            view,
            is_context: false,
            modes: ContextModes::OnDisk,
            ignored: &context::nothing_excluded,
        }
    }
}

/// A fetched remote source (ADD of a URL or git repository) of one copy.
pub struct Remote<'a> {
    /// The directory it was fetched into.
    pub source: Source<'a>,
    /// What to copy from that directory.
    pub names: Vec<String>,
}

/// Applies `op` on the state made of `dest_layers` (bottom first), writing
/// the changes into the empty directory `upper`. `sources[i]` is the tree
/// of the op's input `i` (`None` where the input is not read); `remotes`
/// holds the fetched source of each remote copy, by action index.
pub fn apply(
    op: &FileOp,
    dest_layers: &[PathBuf],
    upper: &Path,
    sources: &[Option<Source<'_>>],
    remotes: &HashMap<usize, Remote<'_>>,
) -> Result<(), String> {
    apply_sharing(op, dest_layers, upper, sources, remotes, None, None)
}

/// [`apply`] for a step's new snapshot: context files that `previous`
/// (the snapshot the same step made last) holds unchanged are hard-linked
/// from it instead of copied (see [`Previous`]). The stamps of the context
/// files the copy read go to `records` as they are copied, by their path
/// in `upper`, for the next run to share from.
pub fn apply_sharing(
    op: &FileOp,
    dest_layers: &[PathBuf],
    upper: &Path,
    sources: &[Option<Source<'_>>],
    remotes: &HashMap<usize, Remote<'_>>,
    previous: Option<&Previous>,
    records: Option<&mut CopiedWriter>,
) -> Result<(), String> {
    let writer = Writer::new(dest_layers, upper, previous, records);
    apply_with(writer, op, sources, remotes)
}

/// How many leaves (non-directories) of a copied tree are held at once
/// (see [`Writer::copy_tree`]): as many as the context checksum digests
/// in a batch, enough to keep both cores busy.
const LEAF_BATCH: usize = 4096;

/// Applies the actions of `op` with `writer`.
fn apply_with(
    mut writer: Writer<'_>,
    op: &FileOp,
    sources: &[Option<Source<'_>>],
    remotes: &HashMap<usize, Remote<'_>>,
) -> Result<(), String> {
    for (a, action) in op.actions.iter().enumerate() {
        match action {
            FileAction::Copy(copy) if copy.remote.is_some() => {
                let remote = remotes
                    .get(&a)
                    .ok_or_else(|| format!("remote source of copy {a} was not fetched"))?;
                let local = CopyAction {
                    sources: remote.names.clone(),
                    ..copy.clone()
                };
                writer.copy(&local, &remote.source)?;
            }
            FileAction::Copy(copy) => {
                let source = sources
                    .get(copy.source_input)
                    .and_then(Option::as_ref)
                    .ok_or_else(|| format!("copy source input {} is missing", copy.source_input))?;
                writer.copy(copy, source)?;
            }
            FileAction::Mkdir { path, mode, chown } => {
                let owner = writer.owner(chown.as_deref())?;
                writer
                    .ensure_dir(path, owner, *mode)
                    .map_err(|e| format!("mkdir {path}: {e}"))?;
            }
            FileAction::Mkfile {
                path,
                data,
                mode,
                chown,
            } => {
                let owner = writer.owner(chown.as_deref())?;
                writer
                    .mkfile(path, data, *mode, owner)
                    .map_err(|e| format!("write {path}: {e}"))?;
            }
        }
    }
    writer.finish().map_err(|e| format!("set times: {e}"))
}

struct Writer<'p> {
    /// The destination state with `upper` on top.
    view: LayerStack,
    upper: PathBuf,
    /// Directories whose mtime to set once everything is written (the
    /// last time given for a directory wins).
    dir_times: BTreeMap<PathBuf, (i64, i64)>,
    /// Directories this op made in `upper` where no layer below had
    /// anything: what is below them is only in `upper`.
    fresh_dirs: HashSet<PathBuf>,
    /// What the step made last, to share unchanged files from.
    previous: Option<&'p Previous>,
    /// How many leaves of a tree to hold at once (see [`Self::copy_tree`]).
    leaf_batch: usize,
    /// Where the stamps of the context files copied go, by path in `upper`.
    records: Option<&'p mut CopiedWriter>,
}

/// A copy of one tree in progress (see [`Writer::copy_tree`]).
struct TreeCopy<'a> {
    /// The tree's path in the source, without a trailing `/`.
    top: &'a str,
    /// Where it goes, without a trailing `/`.
    dest: &'a str,
    /// The batch of leaves not yet copied.
    leaves: Vec<Leaf>,
    /// The target of the first file of each source inode with more than
    /// one link (only those: a context has few).
    first_of: HashMap<(u64, u64), String>,
}

/// A non-directory of a copied tree, waiting in a batch (not stated yet:
/// a batch's leaves are stated in parallel, see [`Writer::copy_leaves`]).
struct Leaf {
    /// Its path in the source.
    path: String,
    /// Where the source holds it.
    host: PathBuf,
    /// Its path in the destination.
    target: String,
}

/// A leaf of a batch with its source's metadata.
struct StatedLeaf<'l> {
    leaf: &'l Leaf,
    meta: fs::Metadata,
    /// The target of the earlier file of the tree it is a hard link to.
    link_to: Option<String>,
}

impl<'p> Writer<'p> {
    fn new(
        dest_layers: &[PathBuf],
        upper: &Path,
        previous: Option<&'p Previous>,
        records: Option<&'p mut CopiedWriter>,
    ) -> Self {
        Writer {
            view: LayerStack::over(dest_layers.to_vec(), upper.to_path_buf()),
            upper: upper.to_path_buf(),
            dir_times: BTreeMap::new(),
            fresh_dirs: HashSet::new(),
            previous,
            leaf_batch: LEAF_BATCH,
            records,
        }
    }

    fn owner(&self, chown: Option<&str>) -> Result<Option<Owner>, String> {
        chown.map(|c| owner::resolve(&self.view, c)).transpose()
    }

    fn host(&self, path: &str) -> PathBuf {
        layered::host_join(&self.upper, path)
    }

    fn copy(&mut self, copy: &CopyAction, source: &Source<'_>) -> Result<(), String> {
        let chmod = copy.chmod.as_deref().map(Chmod::parse).transpose()?;
        let chown = self.owner(copy.chown.as_deref())?;
        let excludes = context::clean_excludes(&copy.exclude);
        let excluded = |p: &str| {
            (source.is_context && (source.ignored)(p))
                || context::copy_excludes(&excludes, &copy.sources, p)
        };
        let mut tops = Vec::new();
        for pattern in &copy.sources {
            let found = context::expand(source.view, pattern, &excluded)
                .map_err(|e| format!("failed to compute cache key: {e}"))?;
            tops.extend(found.into_iter().map(|top| (top, pattern.as_str())));
        }
        let many = tops.len() > 1 || copy.sources.iter().any(|s| wildcard::has_wildcards(s));
        let dest_root =
            layered::resolve(&self.view, &copy.dest, true).map_err(|e| e.to_string())?;
        let dest_is_dir = copy.parents
            || copy.dest.ends_with('/')
            || copy.dest.ends_with("/.")
            || self.view.locate(&dest_root).is_some_and(|h| h.is_dir());
        if many && !dest_is_dir && tops.len() > 1 {
            return Err("When using COPY with more than one source file, the destination must be a directory and end with a /".into());
        }
        let plan = CopyPlan {
            source,
            chown,
            chmod,
        };
        // Directories the copy makes: 0755, or an octal --chmod's mode (as
        // current BuildKit's copy passes it to MkdirAll; 0.11.6 kept 0755).
        let made_mode = match &plan.chmod {
            Some(Chmod::Octal(mode)) => mode & 0o777,
            _ => 0o755,
        };
        for (found, pattern) in tops {
            let Selected { named, resolved } = found;
            // --parents keeps the source's directories (below a `/./` pivot).
            let dest = match copy.parents {
                true => parents_target(&dest_root, pattern, &named),
                false => dest_root.clone(),
            };
            let host = source
                .view
                .locate(&resolved)
                .ok_or_else(|| context::vanished(&resolved))?;
            let created = chown.unwrap_or(Owner::ROOT);
            if host.is_dir() {
                self.ensure_dir(&dest, Some(created), made_mode)
                    .map_err(|e| format!("mkdir {dest}: {e}"))?;
                // --exclude also matches below each directory copied.
                let top = [resolved.clone()];
                let inside = |p: &str| excluded(p) || context::copy_excludes(&excludes, &top, p);
                self.copy_tree(&plan, &resolved, &dest, &inside)?;
                // The destination keeps its owner and mode (0755 when
                // made) but takes the source directory's mtime, as
                // BuildKit's copy restores it.
                let at = layered::resolve(&self.view, &dest, true)
                    .map_err(|e| format!("mkdir {dest}: {e}"))?;
                let meta = host.metadata().map_err(|e| format!("read {named}: {e}"))?;
                self.dir_times
                    .insert(self.host(&at), (meta.mtime(), meta.mtime_nsec()));
            } else if let Some(archive) = self.archive_to_extract(copy, source, &host)? {
                self.ensure_dir(&dest, Some(created), made_mode)
                    .map_err(|e| format!("mkdir {dest}: {e}"))?;
                archive::unpack(archive, &self.host(&dest))
                    .map_err(|e| format!("extract {named} to {dest}: {e}"))?;
            } else {
                let target = if copy.parents {
                    dest.clone()
                } else if dest_is_dir {
                    layered::child(&dest, layered::base_name(&named))
                } else {
                    dest.clone()
                };
                self.ensure_dir(layered::parent(&target), Some(created), made_mode)
                    .map_err(|e| format!("mkdir {}: {e}", layered::parent(&target)))?;
                self.copy_entry(&plan, &host, &target)
                    .map_err(|e| format!("copy {named} to {target}: {e}"))?;
            }
        }
        Ok(())
    }

    /// The archive `host` holds when this ADD extracts it: a local one
    /// unless `--unpack=false`, a downloaded one only with `--unpack=true`
    /// (the frontend says which in `extract_archives`), never a git tree.
    fn archive_to_extract(
        &self,
        copy: &CopyAction,
        source: &Source<'_>,
        host: &Path,
    ) -> Result<Option<archive::Archive>, String> {
        let git = matches!(copy.remote, Some(RemoteSource::Git { .. }));
        if !copy.extract_archives || git || !source.is_context {
            return Ok(None);
        }
        archive::open(host).map_err(|e| format!("read {}: {e}", host.display()))
    }

    /// Copies the tree at `top` to `dest` as the walk finds it: each
    /// directory at once (before anything below it), every other entry in
    /// batches of `self.leaf_batch`, copied in parallel (they only need
    /// their parents). Only a batch is held, never a plan of the whole
    /// tree (~330 B a file: 80 MB at 250,000 files).
    fn copy_tree(
        &mut self,
        plan: &CopyPlan<'_>,
        top: &str,
        dest: &str,
        excluded: Excluded<'_>,
    ) -> Result<(), String> {
        let mut tree = TreeCopy {
            top: top.trim_end_matches('/'),
            dest: dest.trim_end_matches('/'),
            leaves: Vec::new(),
            first_of: HashMap::new(),
        };
        let mut failed = None;
        let walked = walk_each(plan.source.view, top, excluded, &mut |walked| {
            self.take_entry(plan, &mut tree, walked).map_err(|e| {
                failed = Some(e);
                io::Error::other("copy failed")
            })
        });
        if let Some(message) = failed {
            return Err(message);
        }
        walked.map_err(|e| format!("read {top}: {e}"))?;
        self.copy_leaves(plan, &mut tree)
    }

    /// Copies a directory of the tree, or adds anything else to the batch
    /// (copying the batch once full).
    fn take_entry(
        &mut self,
        plan: &CopyPlan<'_>,
        tree: &mut TreeCopy<'_>,
        walked: Walked,
    ) -> Result<(), String> {
        let Walked { path, host, is_dir } = walked;
        let target = format!("{}{}", tree.dest, &path[tree.top.len()..]);
        if is_dir {
            let meta = host
                .symlink_metadata()
                .map_err(|_| context::vanished(&path))?;
            return self
                .copy_dir_entry(plan, &meta, &target)
                .map_err(|e| format!("copy {path} to {target}: {e}"));
        }
        tree.leaves.push(Leaf { path, host, target });
        match tree.leaves.len() >= self.leaf_batch {
            true => self.copy_leaves(plan, tree),
            false => Ok(()),
        }
    }

    /// Copies (in parallel) and links the batch of leaves, records the
    /// stamps of the copies in path order, and empties the batch. The
    /// leaves are stated first, in parallel too (by path: off the walk's
    /// thread, where w2's 20,000 stats were the COPY's largest serial
    /// part). A link's first file is in this batch or an earlier one:
    /// linked after it.
    fn copy_leaves(&mut self, plan: &CopyPlan<'_>, tree: &mut TreeCopy<'_>) -> Result<(), String> {
        use rayon::prelude::*;
        let metas: Vec<fs::Metadata> = (tree.leaves.par_iter())
            .map(|leaf| match leaf.host.symlink_metadata() {
                Ok(meta) if !meta.is_dir() => Ok(meta),
                // Listed as a non-directory: replaced while the build reads it.
                Ok(_) => Err(format!(
                    "{}: replaced by a directory while the build was reading it",
                    context::escaped(&leaf.path)
                )),
                Err(_) => Err(context::vanished(&leaf.path)),
            })
            .collect::<Result<_, _>>()?;
        let stated: Vec<StatedLeaf<'_>> = (tree.leaves.iter().zip(metas))
            .map(|(leaf, meta)| StatedLeaf {
                link_to: first_link(&mut tree.first_of, &leaf.target, &meta),
                leaf,
                meta,
            })
            .collect();
        let this = &*self;
        // A batch holds whole directories' files one after the other:
        // each directory's are shared through handles of it (see
        // `crate::share`).
        let dirs: Vec<&[StatedLeaf<'_>]> = stated
            .chunk_by(|a, b| layered::parent(&a.leaf.target) == layered::parent(&b.leaf.target))
            .collect();
        let copied: Vec<Option<(PathBuf, SourceStamp)>> = dirs
            .par_iter()
            .flat_map_iter(|dir| {
                let pair = this.dir_pair(plan, &dir[0].leaf.target);
                dir.iter().map(move |s| match s.link_to {
                    Some(_) => Ok(None),
                    None => (this.copy_non_dir(
                        plan,
                        &s.leaf.host,
                        &s.meta,
                        &s.leaf.target,
                        pair.as_ref(),
                    ))
                    .map_err(|e| format!("copy {} to {}: {e}", s.leaf.path, s.leaf.target)),
                })
            })
            .collect::<Result<_, _>>()?;
        for s in &stated {
            if let Some(first) = &s.link_to {
                self.link_non_dir(first, &s.leaf.target)
                    .map_err(|e| format!("copy {} to {}: {e}", s.leaf.path, s.leaf.target))?;
            }
        }
        self.record(copied.into_iter().flatten())
            .map_err(|e| format!("record the copied files: {e}"))?;
        tree.leaves.clear();
        Ok(())
    }

    /// The previous snapshot's and the new one's directory of the
    /// context file `target`, open, when this copy made that directory
    /// (nothing else can be there) and has a previous snapshot to share
    /// from.
    fn dir_pair(&self, plan: &CopyPlan<'_>, target: &str) -> Option<DirPair<'p>> {
        let previous = self.previous.filter(|_| plan.source.is_context)?;
        let out = self.host(target);
        let out_dir = out.parent().filter(|d| self.fresh_dirs.contains(*d))?;
        let rel_dir = out_dir.strip_prefix(&self.upper).ok()?;
        previous.dir_pair(rel_dir, out_dir)
    }

    /// Records the stamps of copied context files.
    fn record(&mut self, copied: impl Iterator<Item = (PathBuf, SourceStamp)>) -> io::Result<()> {
        let Some(records) = self.records.as_deref_mut() else {
            return Ok(());
        };
        for (rel, stamp) in copied {
            records.push(&rel, &stamp).map_err(io::Error::other)?;
        }
        Ok(())
    }

    /// Makes `to` a hard link to the copied file `first`.
    fn link_non_dir(&self, first: &str, to: &str) -> io::Result<()> {
        self.check_not_dir(to)?;
        let out = self.host(to);
        if out.symlink_metadata().is_ok() {
            fs::remove_file(&out)?;
        }
        fs::hard_link(self.host(first), out)
    }

    /// Copies one entry (a directory itself, not its content).
    fn copy_entry(&mut self, plan: &CopyPlan<'_>, from: &Path, to: &str) -> io::Result<()> {
        let meta = from.symlink_metadata()?;
        if meta.is_dir() {
            self.copy_dir_entry(plan, &meta, to)
        } else {
            let copied = self.copy_non_dir(plan, from, &meta, to, None)?;
            self.record(copied.into_iter())
        }
    }

    /// Copies the non-directory `from` to `to`, which must not be a
    /// directory (BuildKit: "cannot replace to directory … with file"),
    /// or links it from the previous snapshot (through `pair`, the
    /// handles of `to`'s directory, when given). Returns the path in
    /// `upper` and the stamp of a context file (to record), `None` for
    /// anything else.
    fn copy_non_dir(
        &self,
        plan: &CopyPlan<'_>,
        from: &Path,
        meta: &fs::Metadata,
        to: &str,
        pair: Option<&DirPair<'_>>,
    ) -> io::Result<Option<(PathBuf, SourceStamp)>> {
        let is_context_file = plan.source.is_context && meta.is_file();
        let out = self.host(to);
        let rel = || out.strip_prefix(&self.upper).expect("below upper");
        let stamp = SourceStamp::of(meta);
        let wanted = || Wanted {
            owner: plan.owner(meta),
            mode: plan.mode(meta).expect("a file has a mode"),
            mtime: (meta.mtime(), meta.mtime_nsec()),
        };
        if let (true, Some(pair), Some(name)) = (is_context_file, pair, out.file_name())
            && pair.share(name, &stamp, &wanted()) == Shared::Linked
        {
            return Ok(Some((rel().to_path_buf(), stamp)));
        }
        let may_exist = self.check_not_dir(to)?;
        if !is_context_file {
            return copy_leaf(plan, from, meta, &out).map(|()| None);
        }
        let shared = (self.previous)
            .and_then(|p| p.shareable(rel(), &stamp, &wanted()))
            .is_some_and(|path| link_leaf(&path, &out, may_exist).is_ok());
        if !shared {
            copy_leaf(plan, from, meta, &out)?;
        }
        Ok(Some((rel().to_path_buf(), stamp)))
    }

    /// Fails when `to` is a directory: a file never replaces one. Returns
    /// whether the new layer may hold something at `to` (false when it
    /// is known to hold nothing there).
    fn check_not_dir(&self, to: &str) -> io::Result<bool> {
        let out = self.host(to);
        let is_dir = |p: &Path| p.symlink_metadata().is_ok_and(|m| m.is_dir());
        let (dir_there, may_exist) = match out.parent().is_some_and(|p| self.fresh_dirs.contains(p))
        {
            // Only the new layer can hold it: one stat instead of a walk
            // down every layer (w2's 20,000 files: most of the COPY's time).
            true => match out.symlink_metadata() {
                Ok(meta) => (meta.is_dir(), true),
                Err(_) => (false, false),
            },
            false => (self.view.locate(to).is_some_and(|e| is_dir(&e)), true),
        };
        if dir_there {
            return Err(io::Error::other(format!(
                "cannot replace to directory {} with file",
                context::escaped(to)
            )));
        }
        Ok(may_exist)
    }

    /// Makes `to` a directory with the owner, mode and (once the copy is
    /// done) modification time of the source directory `meta` describes.
    fn copy_dir_entry(
        &mut self,
        plan: &CopyPlan<'_>,
        meta: &fs::Metadata,
        to: &str,
    ) -> io::Result<()> {
        let out = self.host(to);
        let existing = self.view.locate(to);
        if existing.is_none() {
            self.fresh_dirs.insert(out.clone());
        }
        if let Some(existing) = existing
            && !existing.symlink_metadata()?.is_dir()
        {
            // BuildKit (fsutil's copy) refuses too: a directory never
            // replaces a file or a symlink (`/bin -> usr/bin` on a merged-/usr
            // base), nor is a symlink below the destination followed.
            return Err(io::Error::other(format!(
                "cannot copy to non-directory: {}",
                context::escaped(to)
            )));
        }
        if !out.is_dir() {
            fs::create_dir(&out)?;
        }
        plan.apply_owner_and_mode(meta, &out)?;
        self.dir_times
            .insert(out, (meta.mtime(), meta.mtime_nsec()));
        Ok(())
    }

    /// Makes `path` a directory (and its parents), copying up existing ones
    /// into the new layer with their metadata. Directories it creates get
    /// `owner` (root when `None`) and `mode`, as BuildKit's `MkdirAll`.
    fn ensure_dir(&mut self, path: &str, owner: Option<Owner>, mode: u32) -> io::Result<()> {
        let path = layered::resolve(&self.view, path, true)?;
        let owner = owner.unwrap_or(Owner::ROOT);
        let mut current = String::from("/");
        let components: Vec<&str> = layered::components(&path).collect();
        for c in components {
            current = layered::child(&current, c);
            let out = self.host(&current);
            match self.view.locate(&current) {
                Some(host) if host.starts_with(&self.upper) => {
                    if !host.is_dir() {
                        return Err(io::Error::other(format!("{current} is not a directory")));
                    }
                }
                Some(host) => {
                    let meta = host.symlink_metadata()?;
                    if !meta.is_dir() {
                        return Err(io::Error::other(format!("{current} is not a directory")));
                    }
                    fs::create_dir(&out)?;
                    std::os::unix::fs::lchown(&out, Some(meta.uid()), Some(meta.gid()))?;
                    fs::set_permissions(&out, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
                    self.dir_times
                        .insert(out, (meta.mtime(), meta.mtime_nsec()));
                }
                None => {
                    fs::create_dir(&out)?;
                    self.fresh_dirs.insert(out.clone());
                    std::os::unix::fs::lchown(&out, Some(owner.uid), Some(owner.gid))?;
                    fs::set_permissions(&out, fs::Permissions::from_mode(mode))?;
                }
            }
        }
        Ok(())
    }

    fn mkfile(
        &mut self,
        path: &str,
        data: &[u8],
        mode: u32,
        owner: Option<Owner>,
    ) -> io::Result<()> {
        let path = layered::resolve(&self.view, path, true)?;
        self.ensure_dir(layered::parent(&path), None, 0o755)?;
        // A file never replaces a directory (`COPY <<EOF /etc` wiped /etc).
        self.check_not_dir(&path)?;
        let out = self.host(&path);
        if out.symlink_metadata().is_ok() {
            fs::remove_file(&out)?;
        }
        fs::write(&out, data)?;
        let owner = owner.unwrap_or(Owner::ROOT);
        std::os::unix::fs::lchown(&out, Some(owner.uid), Some(owner.gid))?;
        fs::set_permissions(&out, fs::Permissions::from_mode(mode))
    }

    fn finish(self) -> io::Result<()> {
        for (dir, (secs, nanos)) in &self.dir_times {
            set_mtime(dir, *secs, *nanos)?;
        }
        Ok(())
    }
}

/// The target of the earlier file of a copied tree that the file `meta`
/// describes is a hard link to (`first_of` holds the first target of each
/// inode with more than one link), or `None` when it is the first, which
/// `target` then is. Files that are hard links to each other stay one
/// file, as BuildKit's copy keeps them: the first (in path order) is
/// copied, the others are linked to it.
fn first_link(
    first_of: &mut HashMap<(u64, u64), String>,
    target: &str,
    meta: &fs::Metadata,
) -> Option<String> {
    if !meta.is_file() || meta.nlink() < 2 {
        return None;
    }
    match first_of.entry((meta.dev(), meta.ino())) {
        Entry::Occupied(first) => Some(first.get().clone()),
        Entry::Vacant(slot) => {
            slot.insert(target.to_string());
            None
        }
    }
}

/// Makes `out` a hard link to `shared`, replacing what is there (when
/// `may_exist`).
fn link_leaf(shared: &Path, out: &Path, may_exist: bool) -> io::Result<()> {
    if may_exist && out.symlink_metadata().is_ok() {
        fs::remove_file(out)?;
    }
    fs::hard_link(shared, out)
}

/// Copies the non-directory `from` (described by `meta`) to the host path
/// `out`, replacing what is there, with the copy's owner, mode and the
/// source's modification time.
fn copy_leaf(plan: &CopyPlan<'_>, from: &Path, meta: &fs::Metadata, out: &Path) -> io::Result<()> {
    if out.symlink_metadata().is_ok() {
        fs::remove_file(out)?;
    }
    if meta.is_symlink() {
        symlink(fs::read_link(from)?, out)?;
    } else if meta.is_file() {
        fs::copy(from, out)?;
    } else {
        copy_special(meta, out)?;
    }
    plan.apply_owner_and_mode(meta, out)?;
    set_mtime(out, meta.mtime(), meta.mtime_nsec())
}

impl CopyPlan<'_> {
    /// Gives the copy `out` of the entry `meta` describes its owner (the
    /// `--chown`, else root for context files, else the source's) and mode
    /// (after `--chmod`; symlinks have none).
    fn apply_owner_and_mode(&self, meta: &fs::Metadata, out: &Path) -> io::Result<()> {
        let owner = self.owner(meta);
        std::os::unix::fs::lchown(out, Some(owner.uid), Some(owner.gid))?;
        if let Some(mode) = self.mode(meta) {
            fs::set_permissions(out, fs::Permissions::from_mode(mode))?;
        }
        Ok(())
    }

    /// The owner of the copy of the entry `meta` describes.
    fn owner(&self, meta: &fs::Metadata) -> Owner {
        self.chown.unwrap_or(if self.source.is_context {
            Owner::ROOT
        } else {
            Owner {
                uid: meta.uid(),
                gid: meta.gid(),
            }
        })
    }

    /// The permission bits of the copy of the entry `meta` describes
    /// (`None` for a symlink, which has none).
    fn mode(&self, meta: &fs::Metadata) -> Option<u32> {
        if meta.is_symlink() {
            return None;
        }
        let mode = self.source.modes.apply(meta.mode());
        Some(match &self.chmod {
            Some(c) => c.apply(mode, meta.is_dir()),
            None => mode & 0o7777,
        })
    }
}

struct CopyPlan<'a> {
    source: &'a Source<'a>,
    chown: Option<Owner>,
    chmod: Option<Chmod>,
}

/// Where `--parents` puts the source `top` matched by `pattern`: below
/// `dest`, with the path `top` has after the pattern's `/./` pivot (its
/// whole path when there is none).
fn parents_target(dest: &str, pattern: &str, top: &str) -> String {
    let skip = match pattern.find("/./") {
        Some(at) => layered::components(&layered::clean(&pattern[..at])).count(),
        None => 0,
    };
    layered::components(top)
        .skip(skip)
        .fold(dest.to_string(), |path, c| layered::child(&path, c))
}

fn copy_special(meta: &fs::Metadata, out: &Path) -> io::Result<()> {
    let kind = nix::sys::stat::SFlag::from_bits_truncate(meta.mode() & libc::S_IFMT);
    let perm = nix::sys::stat::Mode::from_bits_truncate(meta.mode() & 0o7777);
    nix::sys::stat::mknod(out, kind, perm, meta.rdev()).map_err(io::Error::from)
}

/// A plain `COPY` for the crate's tests: `sources` of input 1 to `dest`,
/// no flags.
#[cfg(test)]
pub(crate) fn test_copy(sources: &[&str], dest: &str) -> FileOp {
    FileOp {
        actions: vec![FileAction::Copy(CopyAction {
            source_input: 1,
            sources: sources.iter().map(|s| s.to_string()).collect(),
            dest: dest.into(),
            chown: None,
            chmod: None,
            exclude: vec![],
            parents: false,
            link: false,
            extract_archives: false,
            remote: None,
        })],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layered::HostTree;
    use rbuild_cache::CopiedFiles;
    use std::sync::Mutex;

    use super::test_copy as copy;

    #[test]
    fn copies_follow_docker_destination_rules() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().join("ctx");
        let base = dir.path().join("base");
        let upper = dir.path().join("upper");
        fs::create_dir_all(ctx.join("d/e")).unwrap();
        fs::write(ctx.join("f.txt"), "f").unwrap();
        fs::write(ctx.join("d/e/g.txt"), "g").unwrap();
        fs::create_dir_all(base.join("usr/bin")).unwrap();
        fs::create_dir_all(base.join("existing")).unwrap();
        fs::set_permissions(base.join("existing"), fs::Permissions::from_mode(0o700)).unwrap();
        symlink("usr/bin", base.join("bin")).unwrap();
        fs::create_dir(&upper).unwrap();
        let view = HostTree::new(&ctx);
        let sources = context_source(&view);
        apply(
            &copy(&["f.txt"], "/bin/"),
            std::slice::from_ref(&base),
            &upper,
            &sources,
            &HashMap::new(),
        )
        .unwrap();
        apply(
            &copy(&["f.txt"], "/renamed"),
            std::slice::from_ref(&base),
            &upper,
            &sources,
            &HashMap::new(),
        )
        .unwrap();
        apply(
            &copy(&["f.txt"], "/existing"),
            std::slice::from_ref(&base),
            &upper,
            &sources,
            &HashMap::new(),
        )
        .unwrap();
        apply(
            &copy(&["d"], "/new/deep/"),
            std::slice::from_ref(&base),
            &upper,
            &sources,
            &HashMap::new(),
        )
        .unwrap();
        assert_eq!(
            fs::read_to_string(upper.join("usr/bin/f.txt")).unwrap(),
            "f"
        );
        assert_eq!(fs::read_to_string(upper.join("renamed")).unwrap(), "f");
        assert_eq!(
            fs::read_to_string(upper.join("existing/f.txt")).unwrap(),
            "f"
        );
        assert_eq!(
            fs::read_to_string(upper.join("new/deep/e/g.txt")).unwrap(),
            "g"
        );
        let existing = upper.join("existing").symlink_metadata().unwrap();
        assert_eq!(
            existing.mode() & 0o7777,
            0o700,
            "copied-up dirs keep their mode"
        );
        assert!(
            !upper.join("bin").exists(),
            "the symlink in the base is followed, not replaced"
        );
        let err = apply(
            &copy(&["f.txt", "d"], "/x"),
            &[base],
            &upper,
            &sources,
            &HashMap::new(),
        )
        .unwrap_err();
        assert!(err.contains("must be a directory"), "{err}");
    }

    fn context_source(view: &(dyn FsView + Sync)) -> [Option<Source<'_>>; 2] {
        [
            None,
            Some(Source {
                view,
                is_context: true,
                modes: ContextModes::OnDisk,
                ignored: &context::nothing_excluded,
            }),
        ]
    }

    #[test]
    fn a_symlink_source_is_followed_and_named_after_the_link() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().join("ctx");
        let upper = dir.path().join("upper");
        fs::create_dir_all(ctx.join("d")).unwrap();
        fs::write(ctx.join("a"), "a").unwrap();
        fs::write(ctx.join("b"), "b").unwrap();
        fs::write(ctx.join("d/inner"), "inner").unwrap();
        symlink("a", ctx.join("link")).unwrap();
        symlink("d", ctx.join("dirlink")).unwrap();
        fs::create_dir(&upper).unwrap();
        let view = HostTree::new(&ctx);
        let sources = context_source(&view);
        for op in [copy(&["a", "b", "link"], "/dest/"), copy(&["l*"], "/wild/")] {
            apply(&op, &[], &upper, &sources, &HashMap::new()).unwrap();
        }
        apply(
            &copy(&["dirlink"], "/contents/"),
            &[],
            &upper,
            &sources,
            &HashMap::new(),
        )
        .unwrap();
        for path in ["dest/a", "dest/link", "wild/link"] {
            let meta = upper.join(path).symlink_metadata().unwrap();
            assert!(meta.is_file(), "{path} is a copy of the link's file");
            assert_eq!(fs::read_to_string(upper.join(path)).unwrap(), "a");
        }
        assert_eq!(fs::read_to_string(upper.join("dest/b")).unwrap(), "b");
        assert_eq!(
            fs::read_to_string(upper.join("contents/inner")).unwrap(),
            "inner"
        );
    }

    #[test]
    fn a_tree_never_replaces_a_symlink_or_a_directory_below_the_destination() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().join("ctx");
        let base = dir.path().join("base");
        fs::create_dir_all(ctx.join("rootfs/bin")).unwrap();
        fs::write(ctx.join("rootfs/bin/tool"), "t").unwrap();
        fs::create_dir_all(ctx.join("files")).unwrap();
        fs::write(ctx.join("files/etc"), "not a dir").unwrap();
        fs::create_dir_all(base.join("usr/bin")).unwrap();
        fs::create_dir_all(base.join("etc")).unwrap();
        symlink("usr/bin", base.join("bin")).unwrap();
        let view = HostTree::new(&ctx);
        let sources = context_source(&view);
        let attempt = |op: FileOp| {
            let upper = tempfile::tempdir_in(dir.path()).unwrap();
            let result = apply(
                &op,
                std::slice::from_ref(&base),
                upper.path(),
                &sources,
                &HashMap::new(),
            );
            (result, upper)
        };
        let (err, upper) = attempt(copy(&["rootfs"], "/"));
        let err = err.unwrap_err();
        assert!(err.contains("cannot copy to non-directory: /bin"), "{err}");
        assert!(!upper.path().join("bin").exists(), "the link is not hidden");
        let (err, _) = attempt(copy(&["files"], "/"));
        let err = err.unwrap_err();
        assert!(
            err.contains("cannot replace to directory /etc with file"),
            "{err}"
        );
        // The destination itself is followed: the files land behind the link.
        let (ok, upper) = attempt(copy(&["rootfs/bin"], "/bin/"));
        ok.unwrap();
        assert!(upper.path().join("usr/bin/tool").is_file());
        assert!(!upper.path().join("bin").exists());
    }

    #[test]
    fn hard_links_in_a_copied_tree_stay_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().join("ctx");
        let upper = dir.path().join("upper");
        fs::create_dir_all(ctx.join("d/sub")).unwrap();
        fs::write(ctx.join("d/one"), "1").unwrap();
        fs::hard_link(ctx.join("d/one"), ctx.join("d/two")).unwrap();
        fs::hard_link(ctx.join("d/one"), ctx.join("d/sub/three")).unwrap();
        fs::create_dir(&upper).unwrap();
        let view = HostTree::new(&ctx);
        let sources = context_source(&view);
        apply(&copy(&["d"], "/d"), &[], &upper, &sources, &HashMap::new()).unwrap();
        apply(
            &copy(&["d/one", "d/two"], "/pair/"),
            &[],
            &upper,
            &sources,
            &HashMap::new(),
        )
        .unwrap();
        let ino = |p: &str| upper.join(p).symlink_metadata().unwrap().ino();
        assert_eq!(ino("d/one"), ino("d/two"));
        assert_eq!(ino("d/one"), ino("d/sub/three"));
        assert_ne!(ino("d/one"), ino("pair/one"), "another copy, another file");
        assert_ne!(
            ino("pair/one"),
            ino("pair/two"),
            "separate sources are not linked"
        );
        assert_eq!(fs::read_to_string(upper.join("d/sub/three")).unwrap(), "1");
    }

    /// A context that notes, each time the walk lists a directory, how
    /// many files the copy has written into `upper` by then.
    struct Watched<'a> {
        tree: HostTree,
        upper: &'a Path,
        written: Mutex<Vec<(String, usize)>>,
    }

    impl FsView for Watched<'_> {
        fn locate(&self, path: &str) -> Option<PathBuf> {
            self.tree.locate(path)
        }

        fn list(&self, path: &str) -> io::Result<Vec<String>> {
            self.tree.list(path)
        }

        fn list_entries(&self, path: &str) -> io::Result<Vec<(String, PathBuf, bool)>> {
            fn files(dir: &Path) -> usize {
                let Ok(entries) = fs::read_dir(dir) else {
                    return 0;
                };
                entries
                    .map(|e| e.unwrap().path())
                    .map(|p| if p.is_dir() { files(&p) } else { 1 })
                    .sum()
            }
            let seen = (path.to_string(), files(self.upper));
            self.written.lock().unwrap().push(seen);
            self.tree.list_entries(path)
        }
    }

    #[test]
    fn a_tree_is_copied_in_batches_while_it_is_walked() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().join("ctx");
        let upper = dir.path().join("upper");
        for d in 0..6 {
            fs::create_dir_all(ctx.join(format!("t/s{d}"))).unwrap();
            for f in 0..10 {
                fs::write(ctx.join(format!("t/s{d}/f{f}")), format!("{d}.{f}")).unwrap();
            }
        }
        fs::hard_link(ctx.join("t/s0/f0"), ctx.join("t/s5/link")).unwrap();
        fs::create_dir(&upper).unwrap();
        let view = Watched {
            tree: HostTree::new(&ctx),
            upper: &upper,
            written: Mutex::new(Vec::new()),
        };
        let sources = context_source(&view);
        let recorded = dir.path().join("copied");
        let mut records = CopiedWriter::create(&recorded).unwrap();
        let mut writer = Writer::new(&[], &upper, None, Some(&mut records));
        writer.leaf_batch = 8;
        apply_with(writer, &copy(&["t"], "/t"), &sources, &HashMap::new()).unwrap();
        records.finish().unwrap();
        // When the walk reaches the last directory, the 50 files before it
        // are found, and all but a batch's worth of them copied.
        let written = view.written.lock().unwrap().clone();
        let last = written.iter().find(|(path, _)| path == "/t/s5").unwrap();
        assert!((43..=50).contains(&last.1), "{written:?}");
        // Everything is there and recorded with its source's stamp, and
        // the link stays one file with its first (batches apart).
        let recorded = CopiedFiles::read(&recorded).unwrap();
        assert_eq!(recorded.len(), 60, "the link is not a copy");
        for d in 0..6 {
            for f in 0..10 {
                let rel = format!("t/s{d}/f{f}");
                assert_eq!(
                    fs::read_to_string(upper.join(&rel)).unwrap(),
                    format!("{d}.{f}")
                );
                let source = fs::symlink_metadata(ctx.join(&rel)).unwrap();
                let stamp = recorded.get(Path::new(&rel));
                assert_eq!(stamp, Some(SourceStamp::of(&source)), "{rel}");
            }
        }
        let ino = |p: &str| upper.join(p).symlink_metadata().unwrap().ino();
        assert_eq!(ino("t/s5/link"), ino("t/s0/f0"));
    }

    /// A host tree whose listings call every directory a file: what a
    /// copy sees of a file replaced by a directory once it was listed.
    struct Misread(HostTree);

    impl FsView for Misread {
        fn locate(&self, path: &str) -> Option<PathBuf> {
            self.0.locate(path)
        }

        fn list(&self, path: &str) -> io::Result<Vec<String>> {
            self.0.list(path)
        }

        fn list_entries(&self, path: &str) -> io::Result<Vec<(String, PathBuf, bool)>> {
            let entries = self.0.list_entries(path)?;
            Ok(entries.into_iter().map(|(n, h, _)| (n, h, false)).collect())
        }
    }

    #[test]
    fn a_file_that_became_a_directory_once_listed_fails_the_copy() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().join("ctx");
        let upper = dir.path().join("upper");
        fs::create_dir_all(ctx.join("t/sub")).unwrap();
        fs::write(ctx.join("t/sub/f"), "f").unwrap();
        fs::create_dir(&upper).unwrap();
        let view = Misread(HostTree::new(&ctx));
        let sources = context_source(&view);
        let err = apply(&copy(&["t"], "/t"), &[], &upper, &sources, &HashMap::new()).unwrap_err();
        assert_eq!(
            err,
            "/t/sub: replaced by a directory while the build was reading it"
        );
        assert!(upper.join("t").is_dir() && !upper.join("t/sub").exists());
    }

    #[test]
    fn excludes_apply_inside_each_directory_a_wildcard_matches() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().join("ctx");
        let upper = dir.path().join("upper");
        for f in ["dirx/x.md", "dirx/keep.txt", "diry/sub/z.md", "diry/w.txt"] {
            fs::create_dir_all(ctx.join(f).parent().unwrap()).unwrap();
            fs::write(ctx.join(f), f).unwrap();
        }
        fs::create_dir(&upper).unwrap();
        let view = HostTree::new(&ctx);
        let sources = context_source(&view);
        let mut op = copy(&["dir?"], "/top/");
        if let FileAction::Copy(c) = &mut op.actions[0] {
            c.exclude = vec![String::from("*.md"), String::from("sub")];
        }
        apply(&op, &[], &upper, &sources, &HashMap::new()).unwrap();
        let mut names: Vec<String> = fs::read_dir(upper.join("top"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["keep.txt", "w.txt"]);
    }

    #[test]
    fn a_made_file_never_replaces_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base");
        let upper = dir.path().join("upper");
        fs::create_dir_all(base.join("etc")).unwrap();
        fs::write(base.join("etc/passwd"), "root").unwrap();
        fs::create_dir(&upper).unwrap();
        let op = |path: &str| FileOp {
            actions: vec![FileAction::Mkfile {
                path: path.to_string(),
                data: b"x".to_vec(),
                mode: 0o644,
                chown: None,
            }],
        };
        let err = apply(
            &op("/etc"),
            std::slice::from_ref(&base),
            &upper,
            &[],
            &HashMap::new(),
        )
        .unwrap_err();
        assert!(
            err.contains("cannot replace to directory /etc with file"),
            "{err}"
        );
        assert!(!upper.join("etc").exists());
        apply(&op("/etc/new"), &[base], &upper, &[], &HashMap::new()).unwrap();
        assert_eq!(fs::read_to_string(upper.join("etc/new")).unwrap(), "x");
    }

    #[test]
    fn parents_keep_source_directories_below_the_pivot() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().join("ctx");
        let upper = dir.path().join("upper");
        fs::create_dir_all(ctx.join("x/sub")).unwrap();
        fs::create_dir_all(ctx.join("y")).unwrap();
        fs::write(ctx.join("x/sub/a.txt"), "xa").unwrap();
        fs::write(ctx.join("y/a.txt"), "ya").unwrap();
        fs::create_dir(&upper).unwrap();
        let view = HostTree::new(&ctx);
        let sources = context_source(&view);
        let mut op = copy(&["x/sub/a.txt", "y/a.txt", "./x/./sub"], "/out");
        if let FileAction::Copy(c) = &mut op.actions[0] {
            c.parents = true;
        }
        apply(&op, &[], &upper, &sources, &HashMap::new()).unwrap();
        assert_eq!(
            fs::read_to_string(upper.join("out/x/sub/a.txt")).unwrap(),
            "xa"
        );
        assert_eq!(fs::read_to_string(upper.join("out/y/a.txt")).unwrap(), "ya");
        assert_eq!(
            fs::read_to_string(upper.join("out/sub/a.txt")).unwrap(),
            "xa"
        );
    }

    #[test]
    fn add_extracts_local_archives_and_copies_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().join("ctx");
        let upper = dir.path().join("upper");
        fs::create_dir_all(&ctx).unwrap();
        fs::create_dir(&upper).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_path("inner/file").unwrap();
        h.set_size(2);
        h.set_mode(0o600);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        b.append(&h, &b"in"[..]).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &b.into_inner().unwrap()).unwrap();
        fs::write(ctx.join("a.tar.gz"), gz.finish().unwrap()).unwrap();
        fs::write(ctx.join("plain.gz"), "not really gzip").unwrap();
        let view = HostTree::new(&ctx);
        let sources = context_source(&view);
        let mut op = copy(&["a.tar.gz", "plain.gz"], "/dest/");
        if let FileAction::Copy(c) = &mut op.actions[0] {
            c.extract_archives = true;
        }
        apply(&op, &[], &upper, &sources, &HashMap::new()).unwrap();
        assert_eq!(
            fs::read_to_string(upper.join("dest/inner/file")).unwrap(),
            "in"
        );
        assert!(!upper.join("dest/a.tar.gz").exists());
        assert!(upper.join("dest/plain.gz").is_file());
    }

    #[test]
    fn a_rerun_shares_unchanged_files_in_made_and_in_existing_directories() {
        let dir = tempfile::tempdir().unwrap();
        let (ctx, base) = (dir.path().join("ctx"), dir.path().join("base"));
        fs::create_dir_all(ctx.join("sub")).unwrap();
        fs::create_dir_all(base.join("app")).unwrap();
        for (name, text) in [("top.txt", "top"), ("sub/a", "a"), ("sub/b", "b")] {
            fs::write(ctx.join(name), text).unwrap();
        }
        let tree = HostTree::new(&ctx);
        let sources = context_source(&tree);
        let op = copy(&["."], "/app/");
        // Each run copies onto the base (where /app exists) into an upper
        // of its own, recording what it copied.
        let run = |n: usize, previous: Option<&Previous>| {
            let upper = dir.path().join(format!("upper{n}"));
            fs::create_dir(&upper).unwrap();
            let recorded = dir.path().join(format!("copied{n}"));
            let mut records = CopiedWriter::create(&recorded).unwrap();
            let bases = [base.clone()];
            apply_sharing(
                &op,
                &bases,
                &upper,
                &sources,
                &HashMap::new(),
                previous,
                Some(&mut records),
            )
            .unwrap();
            records.finish().unwrap();
            let files = CopiedFiles::read(&recorded).unwrap();
            Previous { dir: upper, files }
        };
        let first = run(1, None);
        fs::write(ctx.join("sub/b"), "b, edited").unwrap();
        let second = run(2, Some(&first));
        let ino = |p: &Path| p.symlink_metadata().unwrap().ino();
        // top.txt is in /app, which the base holds (shared by path); sub
        // is a directory the copy made (shared through its handles).
        for rel in ["app/top.txt", "app/sub/a"] {
            assert_eq!(
                ino(&first.dir.join(rel)),
                ino(&second.dir.join(rel)),
                "{rel}"
            );
        }
        let b = [&first, &second].map(|p| fs::read_to_string(p.dir.join("app/sub/b")).unwrap());
        assert_eq!(b, ["b", "b, edited"]);
        assert_eq!(second.files.len(), 3, "every copied file is recorded");
    }
}
