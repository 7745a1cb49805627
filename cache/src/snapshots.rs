//! Snapshots: directories under `snapshots/<id>`, used read-only as overlay
//! lower dirs. A new one is filled in a temp dir, its listing recorded
//! (`listings/<id>`, see [`crate::listing`]), then it is renamed into place.
//! The paths its layer tar leaves out (a RUN's unchanged copy-ups, which
//! the next RUN still sees) are a NUL-terminated list that the filler may
//! write as `left-out` beside the directory it fills; it is kept as
//! `left-out/<id>`, written before the snapshot is renamed into place.

use std::collections::HashSet;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::copied::{self, CopiedWriter};
use crate::durable::Disk;
use crate::error::{StoreError, io_err};
use crate::fsutil;
use crate::listing::Listing;

/// Checks that a snapshot id is a plain file name.
pub(crate) fn check_id(id: &str) -> Result<(), StoreError> {
    let ok = !id.is_empty()
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid {
            what: format!("snapshot id {id:?}"),
            message: String::from("must be letters, digits, '-', '_' or '.'"),
        })
    }
}

/// A snapshot being created; removed on drop unless committed.
#[derive(Debug)]
pub struct PendingSnapshot {
    tmp: tempfile::TempDir,
    dir: PathBuf,
    work: PathBuf,
    root: PathBuf,
    disk: Arc<dyn Disk>,
}

impl PendingSnapshot {
    /// A pending snapshot of the store at `root`.
    pub(crate) fn new(root: PathBuf, disk: Arc<dyn Disk>) -> Result<Self, StoreError> {
        let tmp_dir = &root.join("tmp");
        let tmp = tempfile::Builder::new()
            .prefix("snap-")
            .tempdir_in(tmp_dir)
            .map_err(io_err("create temp dir in", tmp_dir))?;
        let dir = tmp.path().join("fs");
        let work = tmp.path().join("work");
        std::fs::create_dir(&dir).map_err(io_err("mkdir", &dir))?;
        std::fs::create_dir(&work).map_err(io_err("mkdir", &work))?;
        Ok(Self {
            tmp,
            dir,
            work,
            root,
            disk,
        })
    }

    /// The directory to fill (overlay upper dir).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// An empty overlay work dir on the same filesystem.
    pub fn work_dir(&self) -> &Path {
        &self.work
    }

    /// Starts the record of the source stamps of the files a COPY writes
    /// into [`Self::dir`] (paths relative to it), kept with the snapshot
    /// when it is committed (see [`crate::copied`]).
    pub fn copied_writer(&self) -> Result<CopiedWriter, StoreError> {
        CopiedWriter::create(&self.tmp.path().join("copied"))
    }

    /// Keeps `made`, a record of source stamps written by a
    /// [`CopiedWriter`] elsewhere on the store's filesystem (a copy made
    /// before this snapshot was started, then moved into [`Self::dir`]),
    /// as the one [`Self::copied_writer`] would have written.
    pub fn adopt_copied(&self, made: &Path) -> Result<(), StoreError> {
        let path = self.tmp.path().join("copied");
        std::fs::rename(made, &path).map_err(io_err("rename into", &path))
    }

    /// Records that the COPY filling [`Self::dir`] shares files with
    /// snapshot `from` (hard links to it), kept with the snapshot when it
    /// is committed (see [`crate::copied`]).
    pub fn record_shared_from(&self, from: &str) -> Result<(), StoreError> {
        check_id(from)?;
        let path = self.tmp.path().join("shared-from");
        std::fs::write(&path, from).map_err(io_err("write", &path))
    }

    /// Whether the snapshot holds only directories that its left-out list
    /// (see [`left_out`]) names: directories overlayfs copied up for a
    /// step that changed nothing in them (a RUN's mount points, made and
    /// removed again). Its layer would be empty, and over the layers below
    /// it shows nothing they do not: such a step adds no layer. Visits at
    /// most one entry more than the list holds.
    pub fn only_unchanged_dirs(&self) -> Result<bool, StoreError> {
        let path = self.tmp.path().join("left-out");
        let list = match std::fs::read(&path) {
            Ok(list) => list,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        let left_out: HashSet<&Path> = list
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| Path::new(std::ffi::OsStr::from_bytes(p)))
            .collect();
        let mut dirs = vec![PathBuf::new()];
        while let Some(rel) = dirs.pop() {
            let dir = self.dir.join(&rel);
            for entry in std::fs::read_dir(&dir).map_err(io_err("read", &dir))? {
                let entry = entry.map_err(io_err("read", &dir))?;
                let kind = entry.file_type().map_err(io_err("stat", &entry.path()))?;
                let child = rel.join(entry.file_name());
                if !kind.is_dir() || !left_out.contains(child.as_path()) {
                    return Ok(false);
                }
                dirs.push(child);
            }
        }
        Ok(true)
    }

    /// Makes the snapshot visible under `id` (atomic rename) after its
    /// listing is recorded. If `id` already exists, the pending one is
    /// discarded and `Ok` returned.
    pub fn commit(self, id: &str) -> Result<(), StoreError> {
        check_id(id)?;
        let target = self.root.join("snapshots").join(id);
        if target.exists() {
            return Ok(());
        }
        let left_out = self.tmp.path().join("left-out");
        let list = match std::fs::read(&left_out) {
            Ok(list) => Some(list),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err("read", &left_out)(e)),
        };
        // The listing and the left-out list are written at once: their
        // syncs overlap (one journal commit where the filesystem groups
        // them), a whole sync less on the way to every step's next one.
        let disk = &*self.disk;
        std::thread::scope(|scope| {
            let listing = scope.spawn(|| record_listing(disk, &self.root, id, &self.dir));
            if let Some(list) = &list {
                let tmp = self.root.join("tmp");
                fsutil::write_atomic(disk, &tmp, &left_out_path(&self.root, id), list)?;
            }
            listing.join().expect("the listing thread panicked")
        })?;
        let hints = [
            ("copied", copied::copied_path(&self.root, id)),
            ("shared-from", copied::shared_from_path(&self.root, id)),
        ];
        for (name, kept) in hints {
            let made = self.tmp.path().join(name);
            if made.exists() {
                // A hint (see `crate::copied`): renamed, not synced.
                std::fs::rename(&made, &kept).map_err(io_err("rename into", &kept))?;
            }
        }
        match self.disk.rename(&self.dir, &target) {
            Ok(()) => Ok(()),
            // Another process committed the same id meanwhile: the listing
            // must be the one of what is there.
            Err(_) if target.exists() => record_listing(&*self.disk, &self.root, id, &target),
            Err(e) => Err(io_err("rename snapshot into", &target)(e)),
        }
        .map(|()| drop(self.tmp))
    }
}

/// Path of the listing of snapshot `id`.
pub(crate) fn listing_path(root: &Path, id: &str) -> PathBuf {
    root.join("listings").join(id)
}

/// Path of the list of paths snapshot `id`'s layer tar leaves out.
pub(crate) fn left_out_path(root: &Path, id: &str) -> PathBuf {
    root.join("left-out").join(id)
}

/// The paths (relative to the snapshot) that snapshot `id`'s layer tar
/// leaves out; empty when it has no list.
pub(crate) fn left_out(root: &Path, id: &str) -> Result<HashSet<PathBuf>, StoreError> {
    let path = left_out_path(root, id);
    let list = match std::fs::read(&path) {
        Ok(list) => list,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashSet::new()),
        Err(e) => return Err(io_err("read", &path)(e)),
    };
    Ok(list
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| PathBuf::from(std::ffi::OsStr::from_bytes(p)))
        .collect())
}

/// Records the listing of the snapshot `id` whose files are in `dir`.
pub(crate) fn record_listing(
    disk: &dyn Disk,
    root: &Path,
    id: &str,
    dir: &Path,
) -> Result<(), StoreError> {
    let listing = Listing::of(dir)?;
    fsutil::write_atomic(
        disk,
        &root.join("tmp"),
        &listing_path(root, id),
        &listing.encode(),
    )
}

#[cfg(test)]
mod tests {
    use crate::Store;

    #[test]
    fn only_directories_the_left_out_list_names_make_a_snapshot_of_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let pending = store.new_snapshot().unwrap();
        let fs = pending.dir().to_path_buf();
        std::fs::create_dir_all(fs.join("etc/ssl")).unwrap();
        assert!(!pending.only_unchanged_dirs().unwrap(), "no list: changed");

        let list = fs.with_file_name("left-out");
        std::fs::write(&list, "etc\0").unwrap();
        assert!(
            !pending.only_unchanged_dirs().unwrap(),
            "etc/ssl is not listed"
        );
        std::fs::write(&list, "etc\0etc/ssl\0").unwrap();
        assert!(pending.only_unchanged_dirs().unwrap());

        std::fs::write(fs.join("etc/ssl/new"), "").unwrap();
        std::fs::write(&list, "etc\0etc/ssl\0etc/ssl/new\0").unwrap();
        assert!(
            !pending.only_unchanged_dirs().unwrap(),
            "a listed file keeps its snapshot"
        );
    }
}
