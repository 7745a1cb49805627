//! Contexts that are not a local directory: `--build-context NAME=…` (an
//! image, a directory, a URL) for `FROM NAME` and `COPY --from=NAME`, and
//! URL contexts: a tarball over HTTP and a git repository (served by the
//! test over git's plain-HTTP protocol, cloned by `git`).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::TestContext;

/// An HTTP server on 127.0.0.1 serving the files under `root` (404 for
/// anything else); its base URL.
fn serve_dir(root: PathBuf) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut reader = BufReader::new(&conn);
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let path = path.split('?').next().unwrap_or(path);
            let file = root.join(path.trim_start_matches('/'));
            let mut conn = &conn;
            let inside = !path.contains("..");
            match std::fs::read(&file)
                .ok()
                .filter(|_| inside && file.is_file())
            {
                Some(body) => {
                    let _ = write!(
                        conn,
                        "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    );
                    let _ = conn.write_all(&body);
                }
                None => {
                    let _ = conn.write_all(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n");
                }
            }
        }
    });
    format!("http://127.0.0.1:{port}")
}

/// Runs git in `dir`, failing the test if it fails.
fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@e",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn named_contexts_stand_for_from_and_copy_from() {
    let t = TestContext::new();
    t.make_busybox("bb");
    let files = t.context("files", &[("f", "named-file\n")]);
    let ctx = t.context(
        "app",
        &[(
            "Dockerfile",
            "FROM base\nCOPY --from=files /f /f\nRUN cat /f > /g\n",
        )],
    );
    t.ok(&[
        "build",
        "-q",
        "-t",
        "named",
        "--build-context",
        "base=docker-image://bb",
        "--build-context",
        &format!("files={}", files.display()),
        ctx.to_str().unwrap(),
    ]);
    assert_eq!(t.stdout(&["run", "named", "cat", "/g"]), "named-file\n");
    // Without them `base` and `files` are images no registry has.
    let out = t.cmd(&["build", ctx.to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success());
}

#[test]
fn a_tarball_over_http_is_a_context() {
    let t = TestContext::new();
    t.make_busybox("bb");
    let served = t.path("www");
    std::fs::create_dir_all(&served).unwrap();
    let mut archive = tar::Builder::new(Vec::new());
    for (name, body) in [
        ("Dockerfile", "FROM bb\nCOPY hello.txt /\n"),
        ("hello.txt", "from-the-tarball\n"),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len() as u64);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_cksum();
        archive
            .append_data(&mut header, name, body.as_bytes())
            .unwrap();
    }
    std::fs::write(served.join("ctx.tar"), archive.into_inner().unwrap()).unwrap();
    let base = serve_dir(served);
    t.ok(&["build", "-q", "-t", "tarball", &format!("{base}/ctx.tar")]);
    assert_eq!(
        t.stdout(&["run", "tarball", "cat", "/hello.txt"]),
        "from-the-tarball\n"
    );
    // A URL as a named context too: its files for COPY --from.
    let named = t.context(
        "uses-named",
        &[(
            "Dockerfile",
            "FROM bb\nCOPY --from=remote /hello.txt /copied\n",
        )],
    );
    t.ok(&[
        "build",
        "-q",
        "-t",
        "named-url",
        "--build-context",
        &format!("remote={base}/ctx.tar"),
        named.to_str().unwrap(),
    ]);
    assert_eq!(
        t.stdout(&["run", "named-url", "cat", "/copied"]),
        "from-the-tarball\n"
    );
    let missing = t
        .cmd(&["build", &format!("{base}/nothing.tar")])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("404"));
}

#[test]
fn a_git_repository_is_a_context_with_ref_and_subdir() {
    let t = TestContext::new();
    t.make_busybox("bb");
    let work = t.context(
        "work",
        &[
            ("Dockerfile", "FROM bb\nCOPY v.txt /\n"),
            ("v.txt", "main\n"),
            ("sub/Dockerfile", "FROM bb\nCOPY s.txt /\n"),
            ("sub/s.txt", "in-subdir\n"),
        ],
    );
    git(&work, &["init", "-q"]);
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "one"]);
    git(&work, &["checkout", "-q", "-b", "other"]);
    std::fs::write(work.join("v.txt"), "other\n").unwrap();
    git(&work, &["commit", "-q", "-am", "two"]);
    let www = t.path("www");
    std::fs::create_dir_all(&www).unwrap();
    git(
        &www,
        &["clone", "-q", "--bare", work.to_str().unwrap(), "repo.git"],
    );
    git(&www.join("repo.git"), &["update-server-info"]);
    let url = format!("{}/repo.git", serve_dir(www));
    // The default branch of the bare clone is the one checked out: other.
    t.ok(&["build", "-q", "-t", "g1", &format!("{url}#main")]);
    assert_eq!(t.stdout(&["run", "g1", "cat", "/v.txt"]), "main\n");
    t.ok(&["build", "-q", "-t", "g2", &format!("{url}#other")]);
    assert_eq!(t.stdout(&["run", "g2", "cat", "/v.txt"]), "other\n");
    t.ok(&["build", "-q", "-t", "g3", &format!("{url}#main:sub")]);
    assert_eq!(t.stdout(&["run", "g3", "cat", "/s.txt"]), "in-subdir\n");
    let escape = t
        .cmd(&["build", &format!("{url}#main:../..")])
        .output()
        .unwrap();
    assert!(!escape.status.success());
}
