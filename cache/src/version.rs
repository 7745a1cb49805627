//! The store's format version, in `store-version`. A store made before the
//! file existed is version 1. Opening a store migrates an older format in
//! place (under the exclusive lease, so no other command sees it half
//! done) and refuses a newer one with a message saying what to do.
//!
//! - 1 → 2: snapshots get listings (`listings/<id>`); the snapshots of a
//!   version-1 store are trusted as they are when their listings are made.

use std::path::Path;

use crate::error::{StoreError, io_err};
use crate::{Store, fsutil, gc, snapshots};

/// The format this rbuild writes.
pub const STORE_VERSION: u32 = 2;

/// The version file's name.
const FILE: &str = "store-version";

/// The version of the store at `root`; `None` for a store not made yet.
fn read(root: &Path) -> Result<Option<u32>, StoreError> {
    let path = root.join(FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| StoreError::Invalid {
                what: path.display().to_string(),
                message: format!("{:?} is not a store format version", text.trim()),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(root.join("index.json").exists().then_some(1))
        }
        Err(e) => Err(io_err("read", &path)(e)),
    }
}

impl Store {
    /// Brings the store to [`STORE_VERSION`] (or refuses a newer one).
    pub(crate) fn check_version(&self) -> Result<(), StoreError> {
        match read(&self.root)? {
            Some(STORE_VERSION) => return Ok(()),
            Some(v) if v > STORE_VERSION => {
                return Err(StoreError::Invalid {
                    what: format!("store {}", self.root.display()),
                    message: format!(
                        "its format is version {v}, newer than this rbuild's {STORE_VERSION}: \
                         use a newer rbuild, or another --root"
                    ),
                });
            }
            _ => {}
        }
        let _exclusive = self.lease.exclusive()?;
        // Another process may have migrated it while we waited.
        if read(&self.root)? == Some(1) {
            self.migrate_1_to_2()?;
        }
        fsutil::write_atomic(
            &*self.disk,
            &self.root.join("tmp"),
            &self.root.join(FILE),
            format!("{STORE_VERSION}\n").as_bytes(),
        )
    }

    /// Records a listing for every snapshot of a version-1 store.
    fn migrate_1_to_2(&self) -> Result<(), StoreError> {
        for id in gc::names(&self.root.join("snapshots"))? {
            snapshots::record_listing(&*self.disk, &self.root, &id, &self.snapshot_path(&id))?;
        }
        Ok(())
    }
}
