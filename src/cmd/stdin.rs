//! Standard input as the build context (`rbuild build - < ctx.tar`, or `<
//! Dockerfile` for a build with an empty context, as `docker build -`) or
//! as the Dockerfile (`-f -`), or a URL as the context (see `remote`):
//! read into a private temporary directory that lives as long as the
//! build.

use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rbuild_cache::{Limits, Whiteouts};

use super::remote;

/// The context and Dockerfile of a build once standard input is read.
pub struct BuildInputs {
    /// The context directory.
    pub context: PathBuf,
    /// The Dockerfile.
    pub dockerfile: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

/// Whether a path argument means standard input.
fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// The context and Dockerfile of `context` and `-f file`, either of which
/// may be `-`.
pub fn read(context: &Path, file: Option<&Path>) -> anyhow::Result<BuildInputs> {
    if let Some(url) = context.to_str()
        && let Some(kind) = remote::kind(url)
    {
        if file.is_some_and(is_stdin) {
            bail!("-f - takes the Dockerfile from standard input: give a local context with it");
        }
        return remote::read(url, kind, file);
    }
    let context_stdin = is_stdin(context);
    let file_stdin = file.is_some_and(is_stdin);
    if context_stdin && file_stdin {
        bail!("standard input cannot be both the build context and the Dockerfile");
    }
    if !context_stdin && !file_stdin {
        return Ok(BuildInputs {
            context: context.to_path_buf(),
            dockerfile: file.map_or_else(|| context.join("Dockerfile"), Path::to_path_buf),
            _dir: None,
        });
    }
    let dir = tempfile::Builder::new().prefix("rbuild-stdin").tempdir()?;
    let mut spool = tempfile::tempfile_in(dir.path())?;
    let size =
        std::io::copy(&mut std::io::stdin().lock(), &mut spool).context("read standard input")?;
    spool.rewind()?;
    if file_stdin {
        let dockerfile = dir.path().join("Dockerfile");
        std::io::copy(&mut spool, &mut std::fs::File::create(&dockerfile)?)?;
        return Ok(BuildInputs {
            context: context.to_path_buf(),
            dockerfile,
            _dir: Some(dir),
        });
    }
    archive_or_dockerfile(spool, size, dir, file, "standard input")
}

/// The build inputs a spooled file (in `dir`, `size` bytes, from `what`)
/// gives: a tar (plain, gzip or zstd) is the context, anything else the
/// Dockerfile of an empty context. A relative `file` names a file of the
/// archive, as with docker.
pub(super) fn archive_or_dockerfile(
    mut spool: std::fs::File,
    size: u64,
    dir: tempfile::TempDir,
    file: Option<&Path>,
    what: &str,
) -> anyhow::Result<BuildInputs> {
    let unpacked = dir.path().join("context");
    std::fs::create_dir(&unpacked)?;
    let dockerfile = if is_archive(&mut spool)? {
        let reader = rbuild_cache::decompress(spool).context("read the context archive")?;
        rbuild_cache::unpack(
            reader,
            &unpacked,
            Whiteouts::Literal,
            Limits::for_compressed(size),
        )
        .with_context(|| format!("unpack the context archive from {what}"))?;
        unpacked.join(file.unwrap_or(Path::new("Dockerfile")))
    } else {
        // Not an archive: the Dockerfile alone, with an empty context.
        let dockerfile = dir.path().join("Dockerfile");
        std::io::copy(&mut spool, &mut std::fs::File::create(&dockerfile)?)?;
        file.map_or(dockerfile, Path::to_path_buf)
    };
    Ok(BuildInputs::in_temp(unpacked, dockerfile, dir))
}

impl BuildInputs {
    /// Inputs whose files live in `dir`, kept as long as they are.
    pub(super) fn in_temp(context: PathBuf, dockerfile: PathBuf, dir: tempfile::TempDir) -> Self {
        Self {
            context,
            dockerfile,
            _dir: Some(dir),
        }
    }
}

/// Whether `file` holds a tar (plain, gzip or zstd), judged by its magic
/// bytes; rewinds it.
fn is_archive(file: &mut std::fs::File) -> anyhow::Result<bool> {
    let mut head = [0u8; 262];
    let n = file.read(&mut head)?;
    file.rewind()?;
    let head = &head[..n];
    Ok(head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || head.get(257..262) == Some(b"ustar"))
}
