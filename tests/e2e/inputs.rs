//! Hostile build inputs through the binary: a Dockerfile or `.dockerignore`
//! that is a device, a FIFO, a symlink out of its directory, a huge line,
//! an exponential ignore pattern. Each ends in bounded time with a clear
//! error (or a quick success), and nothing outside the context is echoed.

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use super::support::TestContext;

/// Runs rbuild, killing it (and failing the test) after `limit`.
fn within(t: &TestContext, limit: Duration, args: &[&str]) -> Output {
    let mut child = t
        .cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run rbuild");
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > limit {
            child.kill().expect("kill");
            child.wait().expect("reap");
            panic!("rbuild {args:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

fn failure(t: &TestContext, args: &[&str]) -> String {
    let out = within(t, Duration::from_secs(20), args);
    assert!(!out.status.success(), "rbuild {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_dockerfile_that_is_a_device_or_a_fifo_is_refused_at_once() {
    let t = TestContext::new();
    let ctx = t.context("ctx", &[("a", "a")]);
    let ctx = ctx.to_str().unwrap();
    // Grew to 4-5 GB before.
    let e = failure(&t, &["build", "-f", "/dev/zero", ctx]);
    assert!(e.contains("/dev/zero is a character device"), "{e}");
    // Blocked forever before.
    let fifo = t.path("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let e = failure(&t, &["build", "-f", fifo.to_str().unwrap(), ctx]);
    assert!(e.contains("is a FIFO, not a regular file"), "{e}");
}

#[test]
fn a_symlinked_dockerfile_or_ignore_file_stays_inside_its_directory() {
    let t = TestContext::new();
    std::fs::write(t.path("secret"), "BOGUS top-secret-content\n").unwrap();
    let ctx = t.context("ctx", &[("a", "a")]);
    std::os::unix::fs::symlink("../secret", ctx.join("Dockerfile")).unwrap();
    let e = failure(&t, &["build", ctx.to_str().unwrap()]);
    assert!(
        e.contains("is a symlink to a file that is not inside"),
        "{e}"
    );
    assert!(!e.contains("top-secret"), "{e}");

    // A link inside the directory is followed, as BuildKit does.
    std::fs::remove_file(ctx.join("Dockerfile")).unwrap();
    std::fs::write(ctx.join("Dockerfile.real"), "FROM scratch\nCOPY a /a\n").unwrap();
    std::os::unix::fs::symlink("Dockerfile.real", ctx.join("Dockerfile")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", ctx.join(".dockerignore")).unwrap();
    let e = failure(&t, &["build", ctx.to_str().unwrap()]);
    assert!(e.contains(".dockerignore is a symlink"), "{e}");
    std::fs::remove_file(ctx.join(".dockerignore")).unwrap();
    t.ok(&["build", "-q", ctx.to_str().unwrap()]);
}

#[test]
fn errors_quote_a_short_escaped_excerpt_of_a_huge_line() {
    let t = TestContext::new();
    let line = format!("RUN \u{1b}[2J{}", "x".repeat(10 << 20));
    let ctx = t.context("ctx", &[("Dockerfile", &format!("FROM scratch\n{line}\n"))]);
    let e = failure(&t, &["build", ctx.to_str().unwrap()]);
    assert!(e.contains("Dockerfile:2"), "{e}");
    assert!(e.len() < 2_000, "{} bytes on stderr", e.len());
    assert!(
        !e.contains('\u{1b}'),
        "a raw escape sequence reached stderr"
    );
}

#[test]
fn an_exponential_ignore_pattern_is_matched_at_once() {
    // 24 stars and an `a` took over a minute on five files before.
    let t = TestContext::new();
    let ignore = format!("{}a\n", "*".repeat(24));
    let ctx = t.context(
        "ctx",
        &[
            ("Dockerfile", "FROM scratch\nCOPY . /\n"),
            (".dockerignore", &ignore),
            ("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "1"),
            ("cccccccccccccccccccccccccccccc", "2"),
            ("dddddddddddddddddddddddddddddd", "3"),
            ("eeeeeeeeeeeeeeeeeeeeeeeeeeeeee", "4"),
            ("data", "5"),
        ],
    );
    let dest = t.path("out");
    let out = within(
        &t,
        Duration::from_secs(20),
        &[
            "build",
            "-o",
            &format!("type=local,dest={}", dest.display()),
            ctx.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dest.join("data").exists(), "`data` ends in a: excluded");
    assert!(dest.join("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb").exists());
}
