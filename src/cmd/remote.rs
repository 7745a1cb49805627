//! Build contexts given as URLs, as `docker build URL` takes them: a git
//! repository (`https://…/repo.git`, `git://…`, `git@…`, `github.com/…`,
//! with `#REF[:SUBDIR]`) cloned with `git` into a temporary directory, or
//! any other `http(s)://` URL fetched: a tar (plain, gzip or zstd) is the
//! context, anything else is a Dockerfile with an empty context.

use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use rbuild_build::named::NamedContext;
use std::collections::BTreeMap;

use super::stdin::{BuildInputs, archive_or_dockerfile};

/// The most a fetched context may hold (compressed): 4 GiB.
const MAX_DOWNLOAD: u64 = 4 << 30;

/// What kind of remote context a build argument names, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteKind {
    /// A git repository.
    Git,
    /// A file over HTTP(S).
    Http,
}

/// The kind of remote context `arg` is, as Docker tells them apart.
pub fn kind(arg: &str) -> Option<RemoteKind> {
    let url = arg.split('#').next().unwrap_or(arg);
    if arg.starts_with("git://")
        || arg.starts_with("git@")
        || arg.starts_with("github.com/")
        || ((url.starts_with("http://") || url.starts_with("https://")) && url.ends_with(".git"))
    {
        Some(RemoteKind::Git)
    } else if arg.starts_with("http://") || arg.starts_with("https://") {
        Some(RemoteKind::Http)
    } else {
        None
    }
}

/// Clones the repository `arg` (`URL[#REF[:SUBDIR]]`) into `into`; the
/// context directory (SUBDIR of the checkout, if given).
pub fn clone(arg: &str, into: &Path) -> anyhow::Result<PathBuf> {
    let (url, fragment) = arg.split_once('#').unwrap_or((arg, ""));
    let (reference, subdir) = fragment.split_once(':').unwrap_or((fragment, ""));
    let url = if url.starts_with("github.com/") {
        format!("https://{url}")
    } else {
        url.to_string()
    };
    let git = |args: &[&str], dir: Option<&Path>| -> anyhow::Result<()> {
        let mut cmd = Command::new("git");
        if let Some(dir) = dir {
            cmd.current_dir(dir);
        }
        let out = cmd
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .output()
            .context("run git (is it installed?)")?;
        if !out.status.success() {
            bail!(
                "git {}: {}",
                args.first().unwrap_or(&""),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    };
    let dest = into.to_str().context("a temp dir that is not UTF-8")?;
    let shallow = if reference.is_empty() {
        git(&["clone", "--quiet", "--depth", "1", &url, dest], None)
    } else {
        git(
            &[
                "clone", "--quiet", "--depth", "1", "--branch", reference, &url, dest,
            ],
            None,
        )
    };
    if shallow.is_err() {
        // A commit (not a branch or tag) needs the history to check out.
        let _ = std::fs::remove_dir_all(into);
        git(&["clone", "--quiet", &url, dest], None).with_context(|| format!("clone {url}"))?;
        git(&["checkout", "--quiet", reference], Some(into))
            .with_context(|| format!("check out {reference} of {url}"))?;
    }
    let context = into.join(subdir.trim_start_matches('/'));
    let inside = context
        .canonicalize()
        .with_context(|| format!("{subdir}: not in {url}"))?;
    if !inside.starts_with(into.canonicalize()?) || !inside.is_dir() {
        bail!("{subdir}: not a directory of {url}");
    }
    Ok(inside)
}

/// Downloads `url` into the file `to` (at most [`MAX_DOWNLOAD`] bytes);
/// its size.
pub fn download(url: &str, to: &mut std::fs::File) -> anyhow::Result<u64> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut response = reqwest::get(url)
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("fetch {url}"))?;
        let mut size = 0u64;
        while let Some(chunk) = response
            .chunk()
            .await
            .with_context(|| format!("fetch {url}"))?
        {
            size += chunk.len() as u64;
            if size > MAX_DOWNLOAD {
                bail!("{url}: larger than {MAX_DOWNLOAD} bytes");
            }
            to.write_all(&chunk)?;
        }
        Ok(size)
    })
}

/// The build inputs of the remote context `url`: its files in a
/// temporary directory; `file` relative to the context.
pub fn read(url: &str, kind: RemoteKind, file: Option<&Path>) -> anyhow::Result<BuildInputs> {
    let dir = tempfile::Builder::new().prefix("rbuild-remote").tempdir()?;
    match kind {
        RemoteKind::Git => {
            let context = clone(url, &dir.path().join("checkout"))?;
            let dockerfile = context.join(file.unwrap_or(Path::new("Dockerfile")));
            Ok(BuildInputs::in_temp(context, dockerfile, dir))
        }
        RemoteKind::Http => {
            let mut spool = tempfile::tempfile_in(dir.path())?;
            let size = download(url, &mut spool)?;
            spool.rewind()?;
            archive_or_dockerfile(spool, size, dir, file, url)
        }
    }
}

/// `--build-context NAME=VALUE`s: `docker-image://REF`, a URL (fetched as
/// a build context is) or a directory. The fetched ones live in the
/// returned inputs, to be kept until the build ends.
pub fn named_contexts(
    values: &[String],
) -> anyhow::Result<(BTreeMap<String, NamedContext>, Vec<BuildInputs>)> {
    let mut named = BTreeMap::new();
    let mut fetched = Vec::new();
    for value in values {
        let (name, source) = value
            .split_once('=')
            .filter(|(n, s)| !n.is_empty() && !s.is_empty())
            .with_context(|| format!("invalid --build-context {value:?}: expected NAME=SOURCE"))?;
        let context = if let Some(reference) = source.strip_prefix("docker-image://") {
            NamedContext::Image(reference.to_string())
        } else if source.starts_with("oci-layout://") || source.starts_with("target:") {
            bail!(
                "--build-context {value}: only docker-image://, URLs and directories are supported"
            );
        } else if let Some(kind) = kind(source) {
            let inputs = read(source, kind, None)?;
            let dir = inputs.context.clone();
            fetched.push(inputs);
            NamedContext::Dir(dir)
        } else {
            let dir = std::fs::canonicalize(source)
                .with_context(|| format!("--build-context {value}"))?;
            if !dir.is_dir() {
                bail!("--build-context {value}: not a directory");
            }
            NamedContext::Dir(dir)
        };
        named.insert(name.to_string(), context);
    }
    Ok((named, fetched))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_told_apart_as_docker_does() {
        for git in [
            "https://example.com/r.git",
            "https://example.com/r.git#main:sub",
            "git://example.com/r",
            "git@example.com:r.git",
            "github.com/moby/buildkit",
        ] {
            assert_eq!(kind(git), Some(RemoteKind::Git), "{git}");
        }
        assert_eq!(
            kind("https://example.com/ctx.tar.gz"),
            Some(RemoteKind::Http)
        );
        assert_eq!(kind("./dir"), None);
        assert_eq!(kind("-"), None);
    }

    #[test]
    fn named_contexts_are_images_or_directories() {
        let dir = tempfile::tempdir().unwrap();
        let values = [
            String::from("base=docker-image://busybox:1"),
            format!("files={}", dir.path().display()),
        ];
        let (named, _) = named_contexts(&values).unwrap();
        assert_eq!(named["base"], NamedContext::Image("busybox:1".into()));
        assert_eq!(
            named["files"],
            NamedContext::Dir(dir.path().canonicalize().unwrap())
        );
        for bad in ["x", "=dir", "x=oci-layout://l", "x=/nonexistent-dir"] {
            assert!(named_contexts(&[bad.to_string()]).is_err(), "{bad}");
        }
    }
}
