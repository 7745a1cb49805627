//! Reading the Dockerfile and the ignore file, bounded by construction:
//! only a regular file is read (a FIFO, a device or a directory is refused
//! before a byte is read, so `-f /dev/zero` or a FIFO cannot grow memory or
//! block), at most [`MAX_INPUT_BYTES`] of it, and a symlink is resolved
//! inside the file's own directory, as BuildKit resolves a symlinked
//! Dockerfile inside the directory it transfers: a link to `/etc/shadow` or
//! to `../other/Dockerfile` does not reach outside, so nothing outside
//! that directory is ever read or quoted in an error.

use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::Mode;

/// The largest Dockerfile or `.dockerignore` read: 16 MiB, hundreds of
/// times the largest real ones, and small enough to hold in memory.
pub const MAX_INPUT_BYTES: u64 = 16 << 20;

/// Why an input file could not be read. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// It could not be opened.
    #[error("cannot open {path}")]
    Open {
        /// The file as the user named it.
        path: String,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// It is a symlink whose target is not inside its directory.
    #[error(
        "{path} is a symlink to a file that is not inside {dir} (symlinks are resolved inside the file's directory, as BuildKit does)"
    )]
    OutsideLink {
        /// The file as the user named it.
        path: String,
        /// The directory it is resolved in.
        dir: String,
    },
    /// It is not a regular file.
    #[error("{path} is a {kind}, not a regular file")]
    NotRegular {
        /// The file as the user named it.
        path: String,
        /// `directory`, `FIFO`, `character device`…
        kind: &'static str,
    },
    /// It is larger than [`MAX_INPUT_BYTES`].
    #[error("{path} is larger than {MAX_INPUT_BYTES} bytes")]
    TooLarge {
        /// The file as the user named it.
        path: String,
    },
    /// Reading it failed.
    #[error("cannot read {path}")]
    Read {
        /// The file as the user named it.
        path: String,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
}

/// Reads the file `path` names, resolving symlinks inside its directory
/// (see the module docs). `Ok(None)` when there is no such file.
pub fn read_input(path: &Path) -> Result<Option<Vec<u8>>, InputError> {
    let shown = path.display().to_string();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Some(name) = path.file_name() else {
        return Err(InputError::NotRegular {
            path: shown,
            kind: "directory",
        });
    };
    let dir_fd = std::fs::File::open(dir).map_err(|source| InputError::Open {
        path: shown.clone(),
        source,
    })?;
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .mode(Mode::empty())
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = match openat2(&dir_fd, Path::new(name), how) {
        Ok(fd) => fd,
        Err(nix::Error::ENOENT) => {
            let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.is_symlink());
            return if is_link {
                Err(InputError::OutsideLink {
                    path: shown,
                    dir: dir.display().to_string(),
                })
            } else {
                Ok(None)
            };
        }
        Err(errno) => {
            return Err(InputError::Open {
                path: shown,
                source: errno.into(),
            });
        }
    };
    let file = std::fs::File::from(fd);
    let read_error = |source| InputError::Read {
        path: shown.clone(),
        source,
    };
    let kind = file.metadata().map_err(read_error)?.file_type();
    let not_regular = match () {
        _ if kind.is_file() => None,
        _ if kind.is_dir() => Some("directory"),
        _ if kind.is_fifo() => Some("FIFO"),
        _ if kind.is_char_device() => Some("character device"),
        _ if kind.is_block_device() => Some("block device"),
        _ if kind.is_socket() => Some("socket"),
        _ => Some("special file"),
    };
    if let Some(kind) = not_regular {
        return Err(InputError::NotRegular { path: shown, kind });
    }
    // The size is read, not trusted from the metadata: the file may grow.
    let mut bytes = Vec::new();
    file.take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(InputError::TooLarge { path: shown });
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_are_read_and_everything_else_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("Dockerfile");
        std::fs::write(&file, "FROM scratch\n").unwrap();
        assert_eq!(read_input(&file).unwrap().unwrap(), b"FROM scratch\n");
        assert!(read_input(&dir.path().join("absent")).unwrap().is_none());

        let e = read_input(Path::new("/dev/zero")).unwrap_err().to_string();
        assert!(e.contains("/dev/zero is a character device"), "{e}");
        let e = read_input(dir.path()).unwrap_err().to_string();
        assert!(e.contains("directory"), "{e}");

        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600)).unwrap();
        let e = read_input(&fifo).unwrap_err().to_string();
        assert!(e.contains("is a FIFO"), "{e}");
    }

    #[test]
    fn symlinks_resolve_inside_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let inner = dir.path().join("ctx");
        std::fs::create_dir(&inner).unwrap();
        std::fs::write(inner.join("Dockerfile.web"), "FROM web\n").unwrap();
        std::fs::write(dir.path().join("secret"), "outside\n").unwrap();
        let link = |name: &str, target: &str| {
            std::os::unix::fs::symlink(target, inner.join(name)).unwrap();
            inner.join(name)
        };
        let within = link("Dockerfile", "Dockerfile.web");
        assert_eq!(read_input(&within).unwrap().unwrap(), b"FROM web\n");
        // An absolute target is taken inside the directory, as BuildKit does.
        let rooted = link("rooted", "/Dockerfile.web");
        assert_eq!(read_input(&rooted).unwrap().unwrap(), b"FROM web\n");
        for (name, target) in [
            ("up", "../secret"),
            ("abs", "/etc/passwd"),
            ("zero", "/dev/zero"),
        ] {
            let e = read_input(&link(name, target)).unwrap_err().to_string();
            assert!(e.contains("not inside"), "{name}: {e}");
            assert!(!e.contains("outside\n") && !e.contains("root:"), "{e}");
        }
    }

    #[test]
    fn a_file_over_the_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("Dockerfile");
        let f = std::fs::File::create(&file).unwrap();
        f.set_len(MAX_INPUT_BYTES + 1).unwrap();
        let e = read_input(&file).unwrap_err().to_string();
        assert!(e.contains("larger than"), "{e}");
    }
}
