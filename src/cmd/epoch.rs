//! The build's `SOURCE_DATE_EPOCH`: `--source-date-epoch SECONDS|none`,
//! else the `SOURCE_DATE_EPOCH` variable, else, when the context is a git
//! work tree, the time of its HEAD commit, so that two machines building
//! one commit get one digest with no flags (BuildKit needs the variable,
//! and `rewrite-timestamp=true` for file times, to do the same).

use std::path::Path;

use anyhow::Context;
use rbuild_solver::ContextModes;

/// The latest `SOURCE_DATE_EPOCH` accepted: 9999-12-31T23:59:59Z, the last
/// instant RFC 3339 (the image config's `created`) can write.
pub const MAX_SOURCE_DATE_EPOCH: i64 = 253_402_300_799;

/// Where the build's epoch came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochSource {
    /// `--source-date-epoch SECONDS`.
    Flag,
    /// The `SOURCE_DATE_EPOCH` variable.
    Environment,
    /// The context's git HEAD commit.
    GitHead,
}

/// Seconds as a `SOURCE_DATE_EPOCH`, checked; `what` names the value in
/// the error.
fn parse(value: &str, what: &str) -> anyhow::Result<i64> {
    value
        .parse()
        .ok()
        .filter(|secs| (0..=MAX_SOURCE_DATE_EPOCH).contains(secs))
        .with_context(|| {
            format!(
                "invalid {what} {}: expected seconds from 0 to {MAX_SOURCE_DATE_EPOCH}",
                rbuild_frontend::quote::excerpt(value)
            )
        })
}

/// The epoch of a build of `context`, and where it came from; `None` when
/// there is none (file times and `created` are then the real ones).
pub fn resolve(flag: Option<&str>, context: &Path) -> anyhow::Result<Option<(i64, EpochSource)>> {
    match flag {
        Some("none") => return Ok(None),
        Some(v) => return Ok(Some((parse(v, "--source-date-epoch")?, EpochSource::Flag))),
        None => {}
    }
    if let Ok(v) = std::env::var("SOURCE_DATE_EPOCH")
        && !v.is_empty()
    {
        return Ok(Some((
            parse(&v, "SOURCE_DATE_EPOCH")?,
            EpochSource::Environment,
        )));
    }
    Ok(git_head_time(context).map(|t| (t, EpochSource::GitHead)))
}

/// The permission bits context files carry into the image: as git records
/// them (0644, or 0755 for executables, directories 0755) when the context
/// is a git work tree, whatever umask the checkout was made under, so that
/// two machines building one commit get one image; as on disk otherwise,
/// or when `--source-date-epoch none` asks for real times and modes.
pub fn context_modes(
    flag: Option<&str>,
    epoch: Option<(i64, EpochSource)>,
    context: &Path,
) -> ContextModes {
    let in_git = match epoch {
        _ if flag == Some("none") => false,
        Some((_, EpochSource::GitHead)) => true,
        _ => git_head_time(context).is_some(),
    };
    if in_git {
        ContextModes::Git
    } else {
        ContextModes::OnDisk
    }
}

/// The committer time of HEAD of the git work tree `dir` is in, if it is
/// in one (and git is installed).
fn git_head_time(dir: &Path) -> Option<i64> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["log", "-1", "--format=%ct", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    std::str::from_utf8(&out.stdout)
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|secs| (0..=MAX_SOURCE_DATE_EPOCH).contains(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_wins_and_none_turns_the_epoch_off() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            resolve(Some("12"), dir.path()).unwrap(),
            Some((12, EpochSource::Flag))
        );
        assert_eq!(resolve(Some("none"), dir.path()).unwrap(), None);
        let err = resolve(Some("-1"), dir.path()).unwrap_err().to_string();
        assert!(err.contains("invalid --source-date-epoch \"-1\""), "{err}");
    }

    #[test]
    fn a_git_work_tree_gives_its_head_commit_time() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(git_head_time(dir.path()), None, "not a work tree");
        let git = |args: &[&str]| {
            let ok = std::process::Command::new("git")
                .arg("-C")
                .arg(dir.path())
                .args(args)
                .env("GIT_COMMITTER_DATE", "1234567890 +0000")
                .env("GIT_AUTHOR_DATE", "1000000000 +0000")
                .output()
                .unwrap()
                .status
                .success();
            assert!(ok, "git {args:?}");
        };
        git(&["init", "-q"]);
        assert_eq!(git_head_time(dir.path()), None, "no commit yet");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/f"), "x").unwrap();
        git(&["add", "."]);
        git(&[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "m",
        ]);
        assert_eq!(git_head_time(&dir.path().join("sub")), Some(1_234_567_890));
        let head = Some((1_234_567_890, EpochSource::GitHead));
        assert_eq!(context_modes(None, head, dir.path()), ContextModes::Git);
        let flag = Some((5, EpochSource::Flag));
        assert_eq!(
            context_modes(Some("5"), flag, dir.path()),
            ContextModes::Git
        );
        assert_eq!(
            context_modes(Some("none"), None, dir.path()),
            ContextModes::OnDisk
        );
        let elsewhere = tempfile::tempdir().unwrap();
        assert_eq!(
            context_modes(None, None, elsewhere.path()),
            ContextModes::OnDisk
        );
    }
}
