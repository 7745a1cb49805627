//! The permission bits a build-context file carries into the image: the
//! ones on disk (BuildKit's behaviour), or the ones git records, so that
//! two checkouts of one commit made under different umasks give one image.

/// The file-type bits of `st_mode`.
const TYPE_BITS: u32 = 0o170_000;
/// `S_IFDIR`.
const DIRECTORY: u32 = 0o040_000;
/// `S_IFLNK`.
const SYMLINK: u32 = 0o120_000;

/// Which permission bits context files carry into the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContextModes {
    /// The bits on disk.
    #[default]
    OnDisk,
    /// The bits git records, whatever the umask of the checkout made:
    /// directories 0755, files 0755 when their owner may execute them,
    /// else 0644 (git keeps only that one bit). Symlinks are unchanged.
    Git,
}

impl ContextModes {
    /// The permission bits (without the file type) an entry whose
    /// `st_mode` is `mode` carries.
    pub fn permissions(self, mode: u32) -> u32 {
        let kind = mode & TYPE_BITS;
        match self {
            Self::Git if kind == DIRECTORY || (kind != SYMLINK && mode & 0o100 != 0) => 0o755,
            Self::Git if kind != SYMLINK => 0o644,
            _ => mode & 0o7777,
        }
    }

    /// `mode` with its permission bits replaced by [`Self::permissions`].
    pub fn apply(self, mode: u32) -> u32 {
        (mode & TYPE_BITS) | self.permissions(mode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_modes_ignore_the_umask_and_keep_the_owner_exec_bit() {
        let git = ContextModes::Git;
        for (mode, want) in [
            (0o100_664, 0o644),
            (0o100_600, 0o644),
            (0o104_775, 0o755),
            (0o100_700, 0o755),
            (0o040_775, 0o755),
            (0o040_700, 0o755),
            (0o120_777, 0o777),
        ] {
            assert_eq!(git.permissions(mode), want, "{mode:o}");
        }
        assert_eq!(ContextModes::OnDisk.permissions(0o104_775), 0o4775);
        assert_eq!(git.apply(0o100_664), 0o100_644);
    }
}
