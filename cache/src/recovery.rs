//! After a restart of the machine, the store is checked before anything in
//! it is trusted. Snapshots are not synced (see `durable`), so a power
//! loss can leave one short; its listing, synced before the snapshot was
//! renamed into place, says what it held. The store remembers the boot it
//! was last used in (`boot-id`, from `/proc/sys/kernel/random/boot_id`);
//! the first command of a new boot takes the store exclusively, checks
//! every snapshot against its listing, every record, every layer record
//! and every tagged image (as `fsck`, without re-hashing blobs, which were
//! synced before they were named), removes what is broken, then records
//! the boot. A kill -9 needs none of this: the kernel keeps what was
//! written, and every name appears by rename after what it names.
//!
//! The boot is recorded without a sync: only a file that names the boot
//! running skips the check, and after a power loss the machine runs
//! another boot whatever the file kept (torn, the old boot, or none), so
//! its sync would guard nothing (and cost every new store one).

use crate::{Store, StoreError, copied};

/// The file holding the boot the store was last used in.
const FILE: &str = "boot-id";

/// This boot's id; `None` where the kernel does not say.
fn current_boot() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

impl Store {
    /// Checks the store if it was last used before a restart (see the
    /// module docs).
    pub(crate) fn recover_after_restart(&self) -> Result<(), StoreError> {
        let Some(boot) = current_boot() else {
            return Ok(());
        };
        let path = self.root.join(FILE);
        let recorded = || {
            std::fs::read_to_string(&path)
                .ok()
                .map(|s| s.trim().to_string())
        };
        if recorded().as_deref() == Some(boot.as_str()) {
            return Ok(());
        }
        let _exclusive = self.lease.exclusive()?;
        let last = recorded();
        if last.as_deref() == Some(boot.as_str()) {
            return Ok(());
        }
        // A store never used before has nothing to check.
        if last.is_some() || self.root.join("index.json").exists() {
            let report = self.check(true, false)?;
            if !report.removed.is_empty() {
                eprintln!(
                    "rbuild: store {} was last used before a restart; removed what was not whole: {}",
                    self.root.display(),
                    report.removed.join(", ")
                );
            }
        }
        let tmp = self.root.join("tmp");
        copied::write_hint(&tmp, &path, format!("{boot}\n").as_bytes())
    }
}
