//! `RUN --mount=type=cache`: which directory of the store a RUN gets, and
//! what a new one starts with, as BuildKit's cache mounts behave.
//!
//! A cache directory is named by its id and by what seeds it: nothing, a
//! root made with `uid`/`gid`/`mode` (BuildKit mounts `/cache` of a
//! scratch state with that directory made), or the `source` path of a
//! `from` state (BuildKit starts the cache from that state). Two mounts with
//! one id and another seed are two caches, as in BuildKit, whose cache key
//! is the id plus the seed state's id.
//!
//! Sharing: `shared` users mount one directory at once; `locked` users take
//! it one at a time; a `private` user that finds a directory in use takes
//! the next free one (making it, seeded, when there is none), so concurrent
//! private users never see each other's files. Every holder keeps a lock
//! file of its directory: shared, or exclusive.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use rbuild_cache::Store;
use rbuild_frontend::graph::{FileAction, FileOp, Sharing};

use crate::fileop::{self, Source};
use crate::keys;
use crate::layered::LayerStack;

/// How many private directories one cache may have at once.
const MAX_PRIVATE: usize = 256;

/// What a new cache directory starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seed {
    /// An empty directory owned by root, 0755.
    Empty,
    /// An empty directory with this owner and mode (`uid`, `gid`, `mode`;
    /// BuildKit's defaults 0, 0, 0755).
    Root {
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
        /// Permission bits.
        mode: u32,
    },
    /// The tree at `source` of a state: its layers (bottom first) and the
    /// state's cache key, which names the cache.
    Tree {
        /// The state's layers, bottom first.
        layers: Vec<PathBuf>,
        /// The state's cache key.
        key: String,
        /// The path inside the state.
        source: String,
    },
}

impl Seed {
    /// What the cache directory's name holds besides the id (nothing for
    /// an empty seed, so that such caches keep the directory they had).
    fn identity(&self) -> String {
        match self {
            Seed::Empty => String::new(),
            Seed::Root { uid, gid, mode } => format!("root {uid}:{gid} {mode:o}"),
            Seed::Tree { key, source, .. } => format!("tree {key} {source}"),
        }
    }

    /// Fills the new, empty cache directory `dir`.
    fn fill(&self, dir: &Path) -> Result<(), String> {
        match self {
            Seed::Empty => Ok(()),
            Seed::Root { uid, gid, mode } => std::os::unix::fs::chown(dir, Some(*uid), Some(*gid))
                .and_then(|()| {
                    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(*mode))
                })
                .map_err(|e| format!("set up cache directory {}: {e}", dir.display())),
            Seed::Tree { layers, source, .. } => {
                let view = LayerStack::new(layers.clone());
                let from = Source::layers(&view);
                let op = FileOp {
                    actions: vec![FileAction::Copy(keys::mount_source_copy(1, source))],
                };
                fileop::apply(&op, &[], dir, &[None, Some(from)], &Default::default())
                    .map_err(|e| format!("seed cache from {source}: {e}"))
            }
        }
    }
}

/// A cache directory in use: unlocked when dropped.
#[derive(Debug)]
pub struct CacheDir {
    /// The directory to mount.
    pub dir: PathBuf,
    _lock: Flock<File>,
}

/// The directory of cache `id` seeded by `seed` for one RUN, held as
/// `sharing` says until the returned value is dropped. May wait (a
/// `locked` cache in use, or a shared one while a new directory is seeded).
pub fn acquire(store: &Store, id: &str, seed: &Seed, sharing: Sharing) -> Result<CacheDir, String> {
    let identity = seed.identity();
    let slot = |n: usize| -> Result<(PathBuf, PathBuf), String> {
        let mut name = id.to_string();
        if !identity.is_empty() {
            name = format!("{name}\0{identity}");
        }
        if n > 0 {
            name = format!("{name}\0#{n}");
        }
        store
            .cache_mount_dir(&name)
            .map_err(|e| format!("cache mount {id}: {e}"))
    };
    match sharing {
        Sharing::Shared => {
            let (dir, lock) = slot(0)?;
            if !lock.with_extension("ready").exists() {
                // Seeded under the exclusive lock; once the marker is
                // there, shared users never wait for each other.
                drop(prepare(&dir, &lock, seed)?);
            }
            let lock = take(&lock, FlockArg::LockShared, id)?.ok_or_else(|| busy(id))?;
            Ok(CacheDir { dir, _lock: lock })
        }
        Sharing::Locked => {
            let (dir, lock) = slot(0)?;
            let lock = prepare(&dir, &lock, seed)?;
            Ok(CacheDir { dir, _lock: lock })
        }
        Sharing::Private => {
            for n in 0..MAX_PRIVATE {
                let (dir, lock_path) = slot(n)?;
                if let Some(lock) = take(&lock_path, FlockArg::LockExclusiveNonblock, id)? {
                    fill_once(&dir, &lock_path, seed)?;
                    return Ok(CacheDir { dir, _lock: lock });
                }
            }
            Err(format!(
                "cache mount {id}: all {MAX_PRIVATE} private directories are in use"
            ))
        }
    }
}

/// Takes the lock of `dir` exclusively and seeds `dir` if it is new.
fn prepare(dir: &Path, lock: &Path, seed: &Seed) -> Result<Flock<File>, String> {
    let held = take(lock, FlockArg::LockExclusive, &dir.display().to_string())?
        .ok_or_else(|| busy(&dir.display().to_string()))?;
    fill_once(dir, lock, seed)?;
    Ok(held)
}

/// Seeds `dir` unless it was seeded before (a marker next to its lock
/// says so). The caller holds the lock exclusively. What a killed seeding
/// left behind is cleared first.
fn fill_once(dir: &Path, lock: &Path, seed: &Seed) -> Result<(), String> {
    let marker = lock.with_extension("ready");
    if marker.exists() {
        return Ok(());
    }
    if *seed != Seed::Empty {
        for entry in std::fs::read_dir(dir).map_err(|e| format!("read {}: {e}", dir.display()))? {
            let path = entry.map_err(|e| e.to_string())?.path();
            let gone = match path.symlink_metadata().is_ok_and(|m| m.is_dir()) {
                true => std::fs::remove_dir_all(&path),
                false => std::fs::remove_file(&path),
            };
            gone.map_err(|e| format!("clear {}: {e}", path.display()))?;
        }
        seed.fill(dir)?;
    }
    File::create(&marker)
        .map(drop)
        .map_err(|e| format!("create {}: {e}", marker.display()))
}

/// The lock at `path` taken as `how`; `None` when a non-blocking attempt
/// finds it held.
fn take(path: &Path, how: FlockArg, id: &str) -> Result<Option<Flock<File>>, String> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| format!("open {}: {e}", path.display()))?;
    match Flock::lock(file, how) {
        Ok(lock) => Ok(Some(lock)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(format!("lock cache mount {id}: {e}")),
    }
}

fn busy(id: &str) -> String {
    format!("cache mount {id} is busy")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    #[test]
    fn private_users_get_a_directory_each_and_reuse_free_ones() {
        let (_dir, store) = store();
        let first = acquire(&store, "c", &Seed::Empty, Sharing::Private).unwrap();
        std::fs::write(first.dir.join("mine"), "1").unwrap();
        let second = acquire(&store, "c", &Seed::Empty, Sharing::Private).unwrap();
        assert_ne!(
            first.dir, second.dir,
            "a private cache in use is not shared"
        );
        assert!(!second.dir.join("mine").exists());
        let first_dir = first.dir.clone();
        drop(first);
        let again = acquire(&store, "c", &Seed::Empty, Sharing::Private).unwrap();
        assert_eq!(again.dir, first_dir, "a free directory is used again");
        assert!(again.dir.join("mine").exists());
        // Shared users meet in the first directory.
        drop(again);
        let a = acquire(&store, "c", &Seed::Empty, Sharing::Shared).unwrap();
        let b = acquire(&store, "c", &Seed::Empty, Sharing::Shared).unwrap();
        assert_eq!(a.dir, b.dir);
        assert_eq!(a.dir, first_dir);
    }

    #[test]
    fn seeds_name_their_own_cache_and_fill_it_once() {
        let (dir, store) = store();
        let root = Seed::Root {
            uid: 1000,
            gid: 1500,
            mode: 0o750,
        };
        let made = acquire(&store, "c", &root, Sharing::Shared).unwrap();
        let meta = made.dir.metadata().unwrap();
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o7777),
            (1000, 1500, 0o750)
        );
        let plain = acquire(&store, "c", &Seed::Empty, Sharing::Shared).unwrap();
        assert_ne!(made.dir, plain.dir);
        let layer = dir.path().join("layer");
        std::fs::create_dir_all(layer.join("seed/sub")).unwrap();
        std::fs::write(layer.join("seed/sub/s"), "seeded").unwrap();
        let tree = Seed::Tree {
            layers: vec![layer.clone()],
            key: String::from("k"),
            source: String::from("/seed"),
        };
        let seeded = acquire(&store, "t", &tree, Sharing::Locked).unwrap();
        assert_eq!(
            std::fs::read_to_string(seeded.dir.join("sub/s")).unwrap(),
            "seeded"
        );
        std::fs::write(seeded.dir.join("added"), "kept").unwrap();
        let seeded_dir = seeded.dir.clone();
        drop(seeded);
        let again = acquire(&store, "t", &tree, Sharing::Locked).unwrap();
        assert_eq!(again.dir, seeded_dir);
        assert!(again.dir.join("added").exists(), "seeded once, then kept");
    }
}
