//! Why a step ran (`rbuild build` on a cache miss): one test per cause,
//! each asserting the exact text plain progress prints on the step's
//! line, as a user reads it after changing one input.

use std::path::PathBuf;

use crate::support::{TestContext, copy_dir, repo};

const DOCKERFILE: &str = "\
FROM busybox
ARG VERSION=1
ARG API_TOKEN=none
COPY src/ /src/
RUN cat /src/* > /all && echo $VERSION > /v
";

const COPY: &str = "[4/5] COPY src/ /src/";
const RUN: &str = "[5/5] RUN cat /src/* > /all && echo $VERSION > /v";

/// A store with a busybox base and a context of three files.
fn setup() -> (TestContext, PathBuf) {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let ctx = t.context(
        "ctx",
        &[
            ("Dockerfile", DOCKERFILE),
            ("src/a.txt", "a\n"),
            ("src/b.txt", "b\n"),
            ("src/c.txt", "c\n"),
        ],
    );
    (t, ctx)
}

/// Builds `ctx` tagged `app` with `args`; the progress log.
fn build(t: &TestContext, ctx: &std::path::Path, args: &[&str]) -> String {
    let mut all = vec!["build", "--progress=plain", "-t", "app"];
    all.extend_from_slice(args);
    all.push(ctx.to_str().unwrap());
    String::from_utf8(t.ok(&all).stderr).unwrap()
}

/// The cause on the header line of step `step` (after `  — `), or
/// `None` when it has none (cached).
fn cause<'a>(log: &'a str, step: &str) -> Option<&'a str> {
    let header = log
        .lines()
        .find(|l| {
            l.split_once(' ')
                .is_some_and(|(_, rest)| rest.starts_with(step))
        })
        .unwrap_or_else(|| panic!("no line of {step:?} in:\n{log}"));
    header.split_once("  — ").map(|(_, c)| c)
}

#[test]
fn a_first_build_says_each_step_never_ran_and_a_rebuild_says_nothing() {
    let (t, ctx) = setup();
    let log = build(&t, &ctx, &[]);
    assert_eq!(cause(&log, COPY), Some("never ran before on this store"));
    assert_eq!(cause(&log, RUN), Some("never ran before on this store"));
    let again = build(&t, &ctx, &[]);
    assert_eq!(cause(&again, COPY), None, "{again}");
    assert!(
        !again.contains("  — "),
        "a cached build explains nothing:\n{again}"
    );
}

#[test]
fn an_edited_file_is_named_and_the_step_after_it_points_upstream() {
    let (t, ctx) = setup();
    build(&t, &ctx, &[]);
    std::fs::write(ctx.join("src/b.txt"), "B\n").unwrap();
    let log = build(&t, &ctx, &[]);
    assert_eq!(cause(&log, COPY), Some("src/b.txt modified (1 of 3 files)"));
    assert_eq!(cause(&log, RUN), Some(&*format!("parent step ran: {COPY}")));
    std::fs::remove_file(ctx.join("src/a.txt")).unwrap();
    std::fs::write(ctx.join("src/d.txt"), "d\n").unwrap();
    let log = build(&t, &ctx, &[]);
    assert_eq!(
        cause(&log, COPY),
        Some("src/a.txt removed, src/d.txt added (2 of 4 files)")
    );
}

#[test]
fn a_changed_instruction_shows_its_old_and_new_text() {
    let (t, ctx) = setup();
    build(&t, &ctx, &[]);
    let edited = DOCKERFILE.replace("> /v", "> /version");
    std::fs::write(ctx.join("Dockerfile"), edited).unwrap();
    let log = build(&t, &ctx, &[]);
    assert_eq!(
        cause(&log, "[5/5] RUN"),
        Some(
            r#"instruction changed: "RUN cat /src/* > /all && echo $VERSION > /v" → "RUN cat /src/* > /all && echo $VERSION > /version""#
        )
    );
}

#[test]
fn a_changed_build_arg_is_named_and_a_credential_is_never_shown() {
    let (t, ctx) = setup();
    build(&t, &ctx, &[]);
    let log = build(&t, &ctx, &["--build-arg", "VERSION=2"]);
    assert_eq!(cause(&log, COPY), None, "the COPY does not use it");
    assert_eq!(
        cause(&log, RUN),
        Some(r#"build arg VERSION changed: "1" → "2""#)
    );
    let log = build(
        &t,
        &ctx,
        &[
            "--build-arg",
            "VERSION=2",
            "--build-arg",
            "API_TOKEN=hunter2",
        ],
    );
    assert_eq!(
        cause(&log, RUN),
        Some("build arg API_TOKEN changed (value redacted)")
    );
    let records = std::fs::read_dir(t.root().join("records")).unwrap();
    for record in records {
        let text = std::fs::read_to_string(record.unwrap().path()).unwrap();
        assert!(
            !text.contains("hunter2"),
            "a record keeps the value: {text}"
        );
    }
}

#[test]
fn a_rebuilt_base_image_shows_both_digests() {
    let (t, ctx) = setup();
    build(&t, &ctx, &[]);
    let digest = |t: &TestContext| t.stdout(&["inspect", "--format", "{{.Digest}}", "busybox"]);
    let before = digest(&t);
    // The same base with a label more: another manifest.
    let base = t.path("busybox-ctx");
    copy_dir(&repo().join("testdata/busybox"), &base);
    let dockerfile = base.join("Dockerfile");
    let text = std::fs::read_to_string(&dockerfile).unwrap() + "LABEL rebuilt=yes\n";
    std::fs::write(&dockerfile, text).unwrap();
    t.ok(&["build", "-q", "-t", "busybox", base.to_str().unwrap()]);
    let after = digest(&t);
    let short = |d: &str| d.trim()[..("sha256:".len() + 12)].to_string();
    let log = build(&t, &ctx, &[]);
    let expected = format!(
        "base image docker.io/library/busybox:latest changed: {} → {}",
        short(&before),
        short(&after)
    );
    assert_eq!(cause(&log, COPY), Some(&*expected));
}

#[test]
fn no_cache_its_filter_and_a_pruned_record_are_named() {
    let (t, ctx) = setup();
    build(&t, &ctx, &[]);
    let log = build(&t, &ctx, &["--no-cache"]);
    assert_eq!(cause(&log, COPY), Some("--no-cache"));
    let log = build(&t, &ctx, &["--no-cache-filter", "stage-0"]);
    assert_eq!(cause(&log, COPY), Some("--no-cache-filter"));
    t.ok(&["prune", "--all"]);
    let log = build(&t, &ctx, &[]);
    let pruned = cause(&log, COPY).unwrap();
    assert!(
        pruned.starts_with("its cache record was pruned (") && pruned.ends_with(" GMT)"),
        "{log}"
    );
}

#[test]
fn explain_prints_a_table_and_the_metadata_file_carries_the_causes() {
    let (t, ctx) = setup();
    build(&t, &ctx, &[]);
    std::fs::write(ctx.join("src/c.txt"), "C\n").unwrap();
    let meta = t.path("meta.json");
    let log = build(
        &t,
        &ctx,
        &["--explain", "--metadata-file", meta.to_str().unwrap()],
    );
    let table: Vec<&str> = log
        .lines()
        .skip_while(|l| !l.starts_with("STEP "))
        .collect();
    assert!(table.len() >= 3, "{log}");
    let row = |step: &str| {
        let row = table.iter().find(|l| l.starts_with(step)).unwrap();
        row[step.len()..]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(row(COPY), "ran src/c.txt modified (1 of 3 files)");
    assert_eq!(row(RUN), format!("ran parent step ran: {COPY}"));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    let explained = json["rbuild.explain"].as_array().unwrap();
    assert_eq!(explained[0]["step"], COPY);
    assert_eq!(explained[0]["cause"], "files");
    assert_eq!(explained[0]["changed"], 1);
    assert_eq!(explained[0]["first"][0]["path"], "src/c.txt");
    assert_eq!(explained[0]["text"], "src/c.txt modified (1 of 3 files)");
    assert_eq!(explained[1]["cause"], "parent");
}

#[test]
fn each_platform_of_a_build_is_compared_with_its_own_previous_step() {
    let t = TestContext::new();
    let ctx = t.context(
        "ctx",
        &[
            ("Dockerfile", "FROM scratch\nCOPY a.txt /\n"),
            ("a.txt", "a\n"),
        ],
    );
    let platforms = ["--platform", "linux/amd64,linux/arm64"];
    build(&t, &ctx, &platforms);
    std::fs::write(ctx.join("a.txt"), "b\n").unwrap();
    let log = build(&t, &ctx, &platforms);
    for platform in ["linux/amd64", "linux/arm64"] {
        let step = format!("[{platform} 2/2] COPY a.txt /");
        assert_eq!(
            cause(&log, &step),
            Some("a.txt modified (1 of 1 file)"),
            "{log}"
        );
    }
}

#[test]
fn a_store_with_only_a_cache_source_compares_with_its_records() {
    let registry = rbuild_registry::testing::TestRegistry::start();
    let (publisher, ctx) = setup();
    // Both stores pull the base from the registry: the same digest.
    let base = format!("{}/base/busybox", registry.addr);
    publisher.ok(&["tag", "busybox", &base]);
    publisher.ok(&["push", "-q", &base]);
    let a = TestContext::new();
    let dockerfile = DOCKERFILE.replace("FROM busybox", &format!("FROM {base}"));
    std::fs::write(ctx.join("Dockerfile"), &dockerfile).unwrap();
    let cache = format!("{}/cache/app:main", registry.addr);
    build(
        &a,
        &ctx,
        &["--cache-to", &format!("type=registry,ref={cache}")],
    );

    // Store B is empty: no previous build, only A's cache records.
    let b = TestContext::new();
    std::fs::write(ctx.join("src/b.txt"), "B\n").unwrap();
    let log = build(
        &b,
        &ctx,
        &["--cache-from", &cache, "--build-arg", "VERSION=2"],
    );
    // The cache has no file lists: the checksum tells, not the file.
    let from = format!("(previous build from cache {cache})");
    assert_eq!(
        cause(&log, COPY),
        Some(&*format!("the content of its sources changed {from}")),
        "{log}"
    );
    assert_eq!(
        cause(&log, RUN),
        Some(&*format!(r#"build arg VERSION changed: "1" → "2" {from}"#)),
        "{log}"
    );
    // An empty store without the cache: nothing to compare with.
    let c = TestContext::new();
    let log = build(&c, &ctx, &[]);
    assert_eq!(cause(&log, COPY), Some("never ran before on this store"));
}
