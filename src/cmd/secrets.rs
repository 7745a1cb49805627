//! `--secret id=ID,src=PATH|env=VAR` (or `id=ID` alone: the variable ID
//! if set, else the file ID): secrets handed to `RUN
//! --mount=type=secret`, never part of a cache key or an image. Values from
//! the environment are written to a private temporary file that lives as
//! long as the build.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use anyhow::{Context, bail};

/// The secrets of one build.
pub struct Secrets {
    files: BTreeMap<String, PathBuf>,
    _dir: Option<tempfile::TempDir>,
}

impl Secrets {
    /// Parses the `--secret` values, as `docker buildx build` reads them.
    pub fn parse(values: &[String]) -> anyhow::Result<Self> {
        let mut files = BTreeMap::new();
        let mut dir: Option<tempfile::TempDir> = None;
        for value in values {
            let mut id = None;
            let mut src = None;
            let mut env = None;
            for field in value.split(',') {
                match field.split_once('=') {
                    Some(("id", v)) => id = Some(v.to_string()),
                    Some(("src" | "source", v)) => src = Some(PathBuf::from(v)),
                    Some(("env", v)) => env = Some(v.to_string()),
                    Some(("type", "file" | "env")) => {}
                    _ => bail!("invalid --secret {value:?}: unknown field {field:?}"),
                }
            }
            let id = id
                .or_else(|| env.clone())
                .with_context(|| format!("invalid --secret {value:?}: no id"))?;
            // `id=X` alone, as buildx: the variable X if it is set, else
            // the file X.
            let (src, env) = match (src, env) {
                (None, None) if std::env::var_os(&id).is_some() => (None, Some(id.clone())),
                (None, None) => (Some(PathBuf::from(&id)), None),
                given => given,
            };
            let path = match (src, env) {
                (Some(p), None) => {
                    if !p.is_file() {
                        bail!("--secret {id}: {} is not a file", p.display());
                    }
                    p
                }
                (None, Some(var)) => {
                    let secret = std::env::var(&var)
                        .with_context(|| format!("--secret {id}: ${var} is not set"))?;
                    let dir = match &mut dir {
                        Some(d) => d,
                        None => dir.insert(
                            tempfile::Builder::new()
                                .prefix("rbuild-secrets")
                                .tempdir()?,
                        ),
                    };
                    let path = dir.path().join(&id);
                    std::fs::File::options()
                        .write(true)
                        .create_new(true)
                        .mode(0o400)
                        .open(&path)
                        .and_then(|mut f| f.write_all(secret.as_bytes()))
                        .with_context(|| format!("write {}", path.display()))?;
                    path
                }
                _ => bail!("invalid --secret {value:?}: give exactly one of src= and env="),
            };
            files.insert(id, path);
        }
        Ok(Self { files, _dir: dir })
    }

    /// Secret id → file holding it.
    pub fn sources(&self) -> BTreeMap<String, PathBuf> {
        self.files.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_files_and_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cret").unwrap();
        // SAFETY: tests in this module do not read the environment concurrently.
        unsafe { std::env::set_var("RBUILD_TEST_SECRET", "from-env") };
        let s = Secrets::parse(&[
            format!("id=tok,src={}", file.display()),
            String::from("id=e,env=RBUILD_TEST_SECRET"),
        ])
        .unwrap();
        let files = s.sources();
        assert_eq!(files["tok"], file);
        assert_eq!(std::fs::read_to_string(&files["e"]).unwrap(), "from-env");
        // `id=X` alone: the variable X, else the file X.
        let alone = Secrets::parse(&[String::from("id=RBUILD_TEST_SECRET")]).unwrap();
        let from_env = &alone.sources()["RBUILD_TEST_SECRET"];
        assert_eq!(std::fs::read_to_string(from_env).unwrap(), "from-env");
        let as_file = Secrets::parse(&[format!("id={}", file.display())]).unwrap();
        assert_eq!(as_file.sources()[file.to_str().unwrap()], file);
        assert!(Secrets::parse(&[String::from("id=rbuild-no-such-file")]).is_err());
        assert!(Secrets::parse(&[String::from("id=x,src=/nonexistent")]).is_err());
        assert!(Secrets::parse(&[String::from("bogus=1")]).is_err());
    }
}
