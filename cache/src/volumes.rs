//! Named volumes (`rbuild run -v NAME:/path`, `--mount type=volume`):
//! directories under `volumes/` that outlive the sandboxes using them,
//! listed by `du` and removed by `prune --volumes`.

use std::path::PathBuf;

use crate::Store;
use crate::error::{StoreError, io_err};
use crate::gc::{dir_size, names, remove_path};

impl Store {
    /// The directory of the volume `name`, made on first use. A name is
    /// Docker's: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
    pub fn volume_dir(&self, name: &str) -> Result<PathBuf, StoreError> {
        let mut chars = name.chars();
        let valid = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
            && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !valid {
            return Err(StoreError::Invalid {
                what: format!("volume name {name:?}"),
                message: String::from("only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"),
            });
        }
        let dir = self.root().join("volumes").join(name);
        std::fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        Ok(dir)
    }

    /// How many volumes there are and their total size in bytes.
    pub fn volumes_usage(&self) -> Result<(usize, u64), StoreError> {
        let dir = self.root().join("volumes");
        if !dir.exists() {
            return Ok((0, 0));
        }
        let items = names(&dir)?;
        Ok((
            items.len(),
            items.iter().map(|n| dir_size(&dir.join(n))).sum(),
        ))
    }

    /// Removes every volume (none is in use when no `rbuild run` is);
    /// returns how many and the bytes freed (only counted if `dry_run`).
    pub fn remove_volumes(&self, dry_run: bool) -> Result<(usize, u64), StoreError> {
        let usage = self.volumes_usage()?;
        if !dry_run && usage.0 > 0 {
            let dir = self.root().join("volumes");
            for name in names(&dir)? {
                remove_path(&dir.join(name))?;
            }
        }
        Ok(usage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_are_made_counted_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.volumes_usage().unwrap(), (0, 0));
        let v = store.volume_dir("data").unwrap();
        std::fs::write(v.join("f"), "12345").unwrap();
        assert_eq!(store.volume_dir("data").unwrap(), v);
        assert_eq!(store.volumes_usage().unwrap(), (1, 5));
        assert_eq!(store.remove_volumes(true).unwrap(), (1, 5));
        assert!(v.join("f").exists());
        assert_eq!(store.remove_volumes(false).unwrap(), (1, 5));
        assert_eq!(store.volumes_usage().unwrap(), (0, 0));
        for bad in ["", "../x", "a/b", ".x"] {
            assert!(store.volume_dir(bad).is_err(), "{bad:?}");
        }
    }
}
