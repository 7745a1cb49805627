//! ADD from a URL or a git repository: fetched once per build, before the
//! cache keys are computed, into a directory the copy then reads from. The
//! key is the fetched content's checksum (the `--checksum` is verified), or
//! the commit a git ref resolves to.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use futures::StreamExt;
use rbuild_frontend::graph::RemoteSource;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// A fetched remote source.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The directory holding it.
    pub dir: PathBuf,
    /// The names to copy from `dir` (a file name, or `.`/a subdirectory of a repository).
    pub sources: Vec<String>,
    /// What the cache key includes: the content digest or the commit.
    pub checksum: String,
}

/// Fetches `remote` into the new directory `into`.
pub async fn fetch(remote: &RemoteSource, into: &Path) -> Result<Fetched, String> {
    tokio::fs::create_dir_all(into)
        .await
        .map_err(|e| format!("mkdir {}: {e}", into.display()))?;
    match remote {
        RemoteSource::Http { url, checksum } => fetch_http(url, checksum.as_deref(), into).await,
        RemoteSource::Git {
            url,
            keep_git_dir,
            checksum,
        } => fetch_git(url, *keep_git_dir, checksum.as_deref(), into).await,
    }
}

/// The file name a download gets: the URL path's last segment.
fn file_name(url: &reqwest::Url) -> String {
    url.path_segments()
        .and_then(|mut s| s.rfind(|x| !x.is_empty()).map(str::to_string))
        .unwrap_or_else(|| String::from("index.html"))
}

async fn fetch_http(url: &str, checksum: Option<&str>, into: &Path) -> Result<Fetched, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("invalid URL {url}: {e}"))?;
    let name = file_name(&parsed);
    let response = reqwest::get(parsed)
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| format!("download {url}: {e}"))?;
    let modified = response
        .headers()
        .get(reqwest::header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    let path = into.join(&name);
    let mut file = tokio::fs::File::create(&path)
        .await
        .map_err(|e| format!("create {}: {e}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| format!("download {url}: {e}"))?;
        hasher.update(&chunk);
        file.write_all(&chunk)
            .await
            .map_err(|e| format!("write {}: {e}", path.display()))?;
    }
    file.flush()
        .await
        .map_err(|e| format!("write {}: {e}", path.display()))?;
    drop(file);
    let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
    if let Some(expected) = checksum
        && expected != digest
    {
        return Err(format!(
            "checksum mismatch for {url}: expected {expected}, got {digest}"
        ));
    }
    // Docker gives downloads mode 0600 and the server's Last-Modified time.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("chmod {}: {e}", path.display()))?;
    if let Some(t) = modified {
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(t))
            .map_err(|e| format!("set time of {}: {e}", path.display()))?;
    }
    Ok(Fetched {
        dir: into.to_path_buf(),
        sources: vec![name.clone()],
        checksum: format!("{name}\0{digest}"),
    })
}

/// `url#ref:subdir` → (url, ref, subdir).
fn split_git_url(url: &str) -> (&str, Option<&str>, Option<&str>) {
    let Some((repo, fragment)) = url.split_once('#') else {
        return (url, None, None);
    };
    let (reference, subdir) = match fragment.split_once(':') {
        Some((r, d)) => (r, Some(d)),
        None => (fragment, None),
    };
    let non_empty = |s: &str| !s.is_empty();
    (
        repo,
        Some(reference).filter(|r| non_empty(r)),
        subdir.filter(|d| non_empty(d)),
    )
}

async fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = tokio::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .await
        .map_err(|e| format!("run git: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Clones the commit `url` names into `into`. With `checksum` (ADD
/// `--checksum`), the commit must start with it, as BuildKit checks.
async fn fetch_git(
    url: &str,
    keep_git_dir: bool,
    checksum: Option<&str>,
    into: &Path,
) -> Result<Fetched, String> {
    if let Some(sum) = checksum
        && (sum.is_empty() || !sum.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(format!(
            "invalid checksum {sum} for Git URL, expected hex commit hash"
        ));
    }
    let (repo, reference, subdir) = split_git_url(url);
    let checkout = into.join("repo");
    std::fs::create_dir(&checkout).map_err(|e| format!("mkdir {}: {e}", checkout.display()))?;
    git(&checkout, &["init", "-q"]).await?;
    git(&checkout, &["remote", "add", "origin", repo]).await?;
    let wanted = reference.unwrap_or("HEAD");
    git(
        &checkout,
        &["fetch", "-q", "--depth", "1", "origin", wanted],
    )
    .await?;
    git(&checkout, &["checkout", "-q", "FETCH_HEAD"]).await?;
    let commit = git(&checkout, &["rev-parse", "HEAD"]).await?;
    let commit = commit.trim();
    if let Some(sum) = checksum
        && !commit.starts_with(sum)
    {
        return Err(format!("expected checksum to match {sum}, got {commit}"));
    }
    if !keep_git_dir {
        std::fs::remove_dir_all(checkout.join(".git")).map_err(|e| format!("remove .git: {e}"))?;
    }
    let source = match subdir {
        Some(d) => format!("repo/{}", d.trim_matches('/')),
        None => String::from("repo"),
    };
    Ok(Fetched {
        dir: into.to_path_buf(),
        sources: vec![format!("{source}/.")],
        checksum: format!("{commit}\0{source}\0{keep_git_dir}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// Serves `body` once over HTTP on a loopback port.
    fn serve_once(body: &'static [u8]) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: Wed, 21 Oct 2015 07:28:00 GMT\r\nConnection: close\r\n\r\n",
                body.len()
            );
            s.write_all(head.as_bytes()).unwrap();
            s.write_all(body).unwrap();
        });
        format!("http://{addr}/files/tool.sh")
    }

    #[tokio::test]
    async fn downloads_verify_the_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let sum = format!("sha256:{}", hex::encode(Sha256::digest(b"echo hi\n")));
        let remote = RemoteSource::Http {
            url: serve_once(b"echo hi\n"),
            checksum: Some(sum),
        };
        let fetched = fetch(&remote, &dir.path().join("a")).await.unwrap();
        assert_eq!(fetched.sources, ["tool.sh"]);
        let file = fetched.dir.join("tool.sh");
        assert_eq!(std::fs::read(&file).unwrap(), b"echo hi\n");
        let meta = std::fs::metadata(&file).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        use std::os::unix::fs::MetadataExt;
        assert_eq!(meta.mtime(), 1_445_412_480);

        let bad = RemoteSource::Http {
            url: serve_once(b"tampered"),
            checksum: Some(format!("sha256:{}", "0".repeat(64))),
        };
        let err = fetch(&bad, &dir.path().join("b")).await.unwrap_err();
        assert!(err.contains("checksum mismatch"), "{err}");
    }

    #[tokio::test]
    async fn git_sources_check_out_a_ref_and_subdir() {
        let dir = tempfile::tempdir().unwrap();
        let origin = dir.path().join("origin");
        std::fs::create_dir_all(origin.join("sub")).unwrap();
        std::fs::write(origin.join("sub/f.txt"), "v1").unwrap();
        for args in [
            &["init", "-q", "-b", "main"][..],
            &["add", "."],
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "commit",
                "-qm",
                "one",
            ],
            &["tag", "v1"],
        ] {
            git(&origin, args).await.unwrap();
        }
        let url = format!("file://{}#v1:sub", origin.display());
        let remote = RemoteSource::Git {
            url,
            keep_git_dir: false,
            checksum: None,
        };
        let fetched = fetch(&remote, &dir.path().join("fetch")).await.unwrap();
        assert_eq!(fetched.sources, ["repo/sub/."]);
        assert_eq!(
            std::fs::read_to_string(fetched.dir.join("repo/sub/f.txt")).unwrap(),
            "v1"
        );
        assert!(!fetched.dir.join("repo/.git").exists());
        // --checksum: a prefix of the commit the ref resolves to.
        let commit = git(&origin, &["rev-parse", "v1"]).await.unwrap();
        let with_sum = |sum: &str| RemoteSource::Git {
            url: format!("file://{}#v1:sub", origin.display()),
            keep_git_dir: false,
            checksum: Some(sum.to_string()),
        };
        fetch(&with_sum(&commit.trim()[..12]), &dir.path().join("ok"))
            .await
            .unwrap();
        let err = fetch(&with_sum("0000000"), &dir.path().join("bad"))
            .await
            .unwrap_err();
        assert!(err.contains("expected checksum to match 0000000"), "{err}");
        let err = fetch(&with_sum("main"), &dir.path().join("hex"))
            .await
            .unwrap_err();
        assert!(err.contains("expected hex commit hash"), "{err}");
        assert_eq!(split_git_url("u#r"), ("u", Some("r"), None));
        assert_eq!(split_git_url("u"), ("u", None, None));
    }
}
