//! Sharing a COPY's unchanged context files with the snapshot the same
//! step made last (issue 19: w2's one-file edit): a file whose source
//! still has the stamp recorded when it was copied, and whose copy there
//! has the owner, mode and mtime this copy would give it, is hard-linked
//! instead of copied.
//!
//! Inside a directory the copy made (where nothing below existed), the
//! files of one directory are shared through handles of the two parent
//! directories: one `fstatat` and one `linkat` by name per file, where
//! whole paths cost a lookup of every component (nine or ten below the
//! store) for each of the stat of the old file, the stat of the new path
//! and the link: 20,000 files, the most of the COPY's time.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};

use rbuild_cache::{CopiedFiles, SourceStamp};

use crate::owner::Owner;

/// The snapshot a step made last and the source stamps of the context
/// files its copy read: a file whose source still has the same stamp
/// (device, inode, size, mtime and ctime, which every write changes) and
/// whose copy there has the owner, mode and mtime this copy would give it
/// holds exactly the bytes a new copy would. It is hard-linked instead:
/// snapshots are never written in place, so the two stay as made.
pub struct Previous {
    /// The snapshot's directory.
    pub dir: PathBuf,
    /// Its files' source stamps, by path in the snapshot.
    pub files: CopiedFiles,
}

impl Previous {
    /// The file of the previous snapshot at `rel` when it is the copy
    /// of a source with `stamp` that this copy would make as `wanted`.
    pub(crate) fn shareable(
        &self,
        rel: &Path,
        stamp: &SourceStamp,
        wanted: &Wanted,
    ) -> Option<PathBuf> {
        if !self.copied_from(rel, stamp) {
            return None;
        }
        let path = self.dir.join(rel);
        let meta = path.symlink_metadata().ok()?;
        let held = Held {
            is_file: meta.is_file(),
            size: meta.len(),
            owner: Owner {
                uid: meta.uid(),
                gid: meta.gid(),
            },
            mode: meta.mode(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
        };
        wanted.is_held(&held, stamp).then_some(path)
    }

    /// Whether the previous copy wrote `rel` from a source with `stamp`.
    fn copied_from(&self, rel: &Path, stamp: &SourceStamp) -> bool {
        self.files.get(rel).as_ref() == Some(stamp)
    }

    /// Handles of the directory `rel_dir` (relative to the snapshots) in
    /// the previous snapshot and of `out_dir` (the same directory in the
    /// new one, which the copy made), to share the files of that
    /// directory by name; `None` when either cannot be opened.
    pub(crate) fn dir_pair(&self, rel_dir: &Path, out_dir: &Path) -> Option<DirPair<'_>> {
        Some(DirPair {
            previous: self,
            old: open_dir(&self.dir.join(rel_dir))?,
            new: open_dir(out_dir)?,
            rel_dir: rel_dir.to_path_buf(),
        })
    }
}

/// The metadata a copied regular file gets.
pub(crate) struct Wanted {
    /// Its owner.
    pub owner: Owner,
    /// Its permission bits.
    pub mode: u32,
    /// Its modification time (seconds, nanoseconds).
    pub mtime: (i64, i64),
}

/// What a previous snapshot's file holds, as its stat says.
struct Held {
    is_file: bool,
    size: u64,
    owner: Owner,
    /// The whole `st_mode`.
    mode: u32,
    mtime: (i64, i64),
}

impl Wanted {
    /// Whether `held` is a regular file of the source's size with this
    /// metadata.
    fn is_held(&self, held: &Held, stamp: &SourceStamp) -> bool {
        held.is_file
            && held.size == stamp.size
            && held.owner == self.owner
            && held.mode & 0o7777 == self.mode
            && held.mtime == self.mtime
    }
}

/// The same directory in the previous snapshot and in the new one, open
/// (see the module's doc).
pub(crate) struct DirPair<'p> {
    previous: &'p Previous,
    old: OwnedFd,
    new: OwnedFd,
    /// The directory's path relative to the snapshots.
    rel_dir: PathBuf,
}

/// What [`DirPair::share`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Shared {
    /// The new snapshot's file is a hard link to the previous one's.
    Linked,
    /// Not shared: the previous file differs, or the new directory
    /// already holds something by that name (the usual copy decides).
    No,
}

impl DirPair<'_> {
    /// Links the previous snapshot's file `name` of this directory into
    /// the new one when it is the copy of a source with `stamp` that this
    /// copy would make as `wanted`.
    pub(crate) fn share(&self, name: &OsStr, stamp: &SourceStamp, wanted: &Wanted) -> Shared {
        if !self.previous.copied_from(&self.rel_dir.join(name), stamp) {
            return Shared::No;
        }
        let Ok(stat) = nix::sys::stat::fstatat(&self.old, name, AtFlags::AT_SYMLINK_NOFOLLOW)
        else {
            return Shared::No;
        };
        if !wanted.is_held(&held_of(&stat), stamp) {
            return Shared::No;
        }
        // EEXIST (something is there already: a directory, which the
        // usual copy refuses, or a file it replaces) and any other
        // failure leave the file to the usual copy.
        match nix::unistd::linkat(&self.old, name, &self.new, name, AtFlags::empty()) {
            Ok(()) => Shared::Linked,
            Err(_) => Shared::No,
        }
    }
}

/// What `stat` says of a file.
fn held_of(stat: &FileStat) -> Held {
    Held {
        is_file: SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG,
        size: stat.st_size as u64,
        owner: Owner {
            uid: stat.st_uid,
            gid: stat.st_gid,
        },
        mode: stat.st_mode,
        mtime: (stat.st_mtime, stat.st_mtime_nsec),
    }
}

/// A handle of the directory at `path` (never through a symlink at its
/// last component).
fn open_dir(path: &Path) -> Option<OwnedFd> {
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    nix::fcntl::open(path, flags, Mode::empty()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rbuild_cache::CopiedWriter;
    use std::os::unix::fs::PermissionsExt;

    /// A previous snapshot holding `d/f` (mode 0644, root, the source's
    /// mtime) copied from the source file `src`, and an empty new `d`.
    struct Setup {
        _tmp: tempfile::TempDir,
        previous: Previous,
        new_dir: PathBuf,
        stamp: SourceStamp,
        wanted: Wanted,
    }

    fn setup() -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::write(&src, "content").unwrap();
        let meta = src.symlink_metadata().unwrap();
        let stamp = SourceStamp::of(&meta);
        let old = tmp.path().join("old");
        std::fs::create_dir_all(old.join("d")).unwrap();
        let copy = old.join("d/f");
        std::fs::copy(&src, &copy).unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o644)).unwrap();
        rbuild_cache::files::set_mtime(&copy, meta.mtime(), meta.mtime_nsec()).unwrap();
        let records = tmp.path().join("copied");
        let mut writer = CopiedWriter::create(&records).unwrap();
        writer.push(Path::new("d/f"), &stamp).unwrap();
        writer.finish().unwrap();
        let new_dir = tmp.path().join("new/d");
        std::fs::create_dir_all(&new_dir).unwrap();
        let copied = copy.symlink_metadata().unwrap();
        let wanted = Wanted {
            owner: Owner {
                uid: copied.uid(),
                gid: copied.gid(),
            },
            mode: 0o644,
            mtime: (meta.mtime(), meta.mtime_nsec()),
        };
        Setup {
            previous: Previous {
                dir: old,
                files: CopiedFiles::read(&records).unwrap(),
            },
            _tmp: tmp,
            new_dir,
            stamp,
            wanted,
        }
    }

    fn ino(path: &Path) -> u64 {
        path.symlink_metadata().unwrap().ino()
    }

    #[test]
    fn an_unchanged_file_is_linked_by_name_and_a_path_shareable_agrees() {
        let s = setup();
        let old = s.previous.dir.join("d/f");
        assert_eq!(
            s.previous.shareable(Path::new("d/f"), &s.stamp, &s.wanted),
            Some(old.clone())
        );
        let pair = s.previous.dir_pair(Path::new("d"), &s.new_dir).unwrap();
        assert_eq!(
            pair.share(OsStr::new("f"), &s.stamp, &s.wanted),
            Shared::Linked
        );
        assert_eq!(ino(&s.new_dir.join("f")), ino(&old));
    }

    #[test]
    fn a_changed_source_other_metadata_or_a_taken_name_is_not_shared() {
        let s = setup();
        let pair = s.previous.dir_pair(Path::new("d"), &s.new_dir).unwrap();
        let name = OsStr::new("f");
        let touched = SourceStamp {
            ctime: s.stamp.ctime + 1,
            ..s.stamp
        };
        assert_eq!(pair.share(name, &touched, &s.wanted), Shared::No, "source");
        let chmodded = Wanted {
            mode: 0o600,
            ..s.wanted
        };
        assert_eq!(pair.share(name, &s.stamp, &chmodded), Shared::No, "mode");
        let later = Wanted {
            mtime: (s.wanted.mtime.0 + 1, s.wanted.mtime.1),
            ..s.wanted
        };
        assert_eq!(pair.share(name, &s.stamp, &later), Shared::No, "mtime");
        assert!(
            s.new_dir.join("f").symlink_metadata().is_err(),
            "nothing made"
        );
        // A name the new directory already holds is left to the usual copy.
        std::fs::create_dir(s.new_dir.join("f")).unwrap();
        assert_eq!(pair.share(name, &s.stamp, &s.wanted), Shared::No, "taken");
        assert!(s.new_dir.join("f").is_dir());
        // A directory the previous snapshot lacks has no pair.
        assert!(s.previous.dir_pair(Path::new("gone"), &s.new_dir).is_none());
    }
}
