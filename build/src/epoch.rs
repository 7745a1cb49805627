//! The build's `SOURCE_DATE_EPOCH`: `--source-date-epoch SECONDS|none`,
//! else the `SOURCE_DATE_EPOCH` variable, else, when the context is a git
//! work tree, the time of its HEAD commit, so that two machines building
//! one commit get one digest with no flags (BuildKit needs the variable,
//! and `rewrite-timestamp=true` for file times, to do the same).

use std::path::Path;

use rbuild_solver::ContextModes;

/// A `SOURCE_DATE_EPOCH` out of range or not a number.
#[derive(Debug, thiserror::Error)]
#[error("invalid {what} {value}: expected seconds from 0 to {MAX_SOURCE_DATE_EPOCH}")]
pub struct EpochError {
    /// Where the value came from (`--source-date-epoch`, `SOURCE_DATE_EPOCH`).
    pub what: &'static str,
    /// The value, quoted and shortened.
    pub value: String,
}

/// What the build was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceDateEpoch {
    /// Not said: the `SOURCE_DATE_EPOCH` variable, else the context's git
    /// HEAD commit time, else none.
    #[default]
    Default,
    /// `none`: real file times, modes and `created`.
    Off,
    /// These seconds.
    Seconds(i64),
}

impl SourceDateEpoch {
    /// Reads `--source-date-epoch SECONDS|none`.
    pub fn parse_flag(value: &str) -> Result<Self, EpochError> {
        match value {
            "none" => Ok(Self::Off),
            v => parse(v, "--source-date-epoch").map(Self::Seconds),
        }
    }
}

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
fn parse(value: &str, what: &'static str) -> Result<i64, EpochError> {
    value
        .parse()
        .ok()
        .filter(|secs| (0..=MAX_SOURCE_DATE_EPOCH).contains(secs))
        .ok_or_else(|| EpochError {
            what,
            value: rbuild_frontend::quote::excerpt(value),
        })
}

/// The epoch of a build of `context`, and where it came from; `None` when
/// there is none (file times and `created` are then the real ones).
pub fn resolve(
    asked: SourceDateEpoch,
    context: &Path,
) -> Result<Option<(i64, EpochSource)>, EpochError> {
    match asked {
        SourceDateEpoch::Off => return Ok(None),
        SourceDateEpoch::Seconds(secs) => return Ok(Some((secs, EpochSource::Flag))),
        SourceDateEpoch::Default => {}
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
    asked: SourceDateEpoch,
    epoch: Option<(i64, EpochSource)>,
    context: &Path,
) -> ContextModes {
    let in_git = match epoch {
        _ if asked == SourceDateEpoch::Off => false,
        Some((_, EpochSource::GitHead)) => true,
        // `resolve` asked git already: no commit.
        None => false,
        Some(_) => git_head_time(context).is_some(),
    };
    if in_git {
        ContextModes::Git
    } else {
        ContextModes::OnDisk
    }
}

/// The committer time of HEAD of the git work tree `dir` is in, if it is
/// in one (and git is installed). Git is not started (a few ms on every
/// build) when neither `dir` nor a parent has a `.git` and `GIT_DIR` does
/// not name a repository elsewhere.
fn git_head_time(dir: &Path) -> Option<i64> {
    let absolute = std::fs::canonicalize(dir).ok()?;
    if std::env::var_os("GIT_DIR").is_none()
        && !absolute.ancestors().any(|d| d.join(".git").exists())
    {
        return None;
    }
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
        let flag = |v| SourceDateEpoch::parse_flag(v).unwrap();
        assert_eq!(
            resolve(flag("12"), dir.path()).unwrap(),
            Some((12, EpochSource::Flag))
        );
        assert_eq!(resolve(flag("none"), dir.path()).unwrap(), None);
        let err = SourceDateEpoch::parse_flag("-1").unwrap_err().to_string();
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
        assert_eq!(
            context_modes(SourceDateEpoch::Default, head, dir.path()),
            ContextModes::Git
        );
        let flag = Some((5, EpochSource::Flag));
        assert_eq!(
            context_modes(SourceDateEpoch::Seconds(5), flag, dir.path()),
            ContextModes::Git
        );
        assert_eq!(
            context_modes(SourceDateEpoch::Off, None, dir.path()),
            ContextModes::OnDisk
        );
        let elsewhere = tempfile::tempdir().unwrap();
        assert_eq!(
            context_modes(SourceDateEpoch::Default, None, elsewhere.path()),
            ContextModes::OnDisk
        );
    }
}
