//! `rbuild build`'s flags that reach every RUN or decide what is cached,
//! one test each: `--network`, `--add-host`/`--ulimit`/`--shm-size` (and
//! that they are part of the steps' keys), `--no-cache-filter`, `--pull`
//! (and `run --pull always`; without it, a warning when a pulled base's
//! registry cannot be reached), `--progress=rawjson`, `--jobs`.

use crate::support::TestContext;
use crate::text;

/// A store with the busybox image `bb`.
fn with_busybox() -> TestContext {
    let t = TestContext::new();
    t.make_busybox("bb");
    t
}

/// Builds `dockerfile` tagged `tag` with `flags`; the build's output.
fn build(t: &TestContext, tag: &str, flags: &[&str], dockerfile: &str) -> String {
    let ctx = t.context(&format!("ctx-{tag}"), &[("Dockerfile", dockerfile)]);
    let mut args = vec!["build", "--progress", "plain", "-t", tag];
    args.extend_from_slice(flags);
    args.push(ctx.to_str().unwrap());
    text(&t.ok(&args))
}

/// Whether the plain log shows the step named `step` as CACHED.
fn cached(log: &str, step: &str) -> bool {
    let Some(n) = log
        .lines()
        .find(|l| l.contains(step))
        .and_then(|l| l.split_whitespace().next())
    else {
        panic!("no step {step:?} in\n{log}")
    };
    log.lines().any(|l| l == format!("{n} CACHED"))
}

#[test]
fn build_network_applies_to_runs_without_their_own() {
    let t = with_busybox();
    // /proc/net/dev: two header lines, then one per interface.
    let df = "FROM bb\nRUN wc -l < /proc/net/dev > /own\nRUN --network=none wc -l < /proc/net/dev > /none\n";
    build(&t, "none", &["--network", "none"], df);
    assert_eq!(t.stdout(&["run", "none", "cat", "/own", "/none"]), "3\n3\n");
    build(&t, "dflt", &[], df);
    assert_eq!(
        t.stdout(&["run", "dflt", "cat", "/own"]),
        "4\n",
        "lo and tap0"
    );
    // The build's own --network=host is its grant (no --allow), as buildx.
    build(&t, "host", &["--network", "host"], df);
    let host = std::fs::read_to_string("/proc/net/dev")
        .unwrap()
        .lines()
        .count();
    assert_eq!(
        t.stdout(&["run", "host", "cat", "/own"]).trim(),
        host.to_string()
    );
}

#[test]
fn add_host_ulimit_and_shm_size_reach_every_run_and_key_it() {
    let t = with_busybox();
    let df = "FROM bb\nRUN grep -w db /etc/hosts > /hosts; ulimit -n > /nofile; df -k /dev/shm | tail -1 > /shm\n";
    let flags = |ip: &'static str| {
        [
            "--add-host",
            ip,
            "--ulimit",
            "nofile=77:88",
            "--shm-size",
            "2m",
        ]
    };
    build(&t, "x", &flags("db:10.9.8.7"), df);
    let out = t.stdout(&["run", "x", "cat", "/hosts", "/nofile", "/shm"]);
    assert!(out.starts_with("10.9.8.7\tdb\n77\n"), "{out}");
    assert!(out.contains(" 2048 "), "{out}");
    let again = build(&t, "x", &flags("db:10.9.8.7"), df);
    assert!(cached(&again, "RUN grep -w db"), "{again}");
    // Another address is another step, as in BuildKit.
    let other = build(&t, "x", &flags("db:10.9.8.6"), df);
    assert!(!cached(&other, "RUN grep -w db"), "{other}");
    let ctx = t.context("bad", &[("Dockerfile", df)]);
    let bad = t
        .cmd(&["build", "--ulimit", "nofile=9:1", ctx.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(text(&bad).contains("--ulimit"), "{}", text(&bad));
}

#[test]
fn no_cache_filter_reruns_a_stage_and_what_depends_on_it() {
    let t = with_busybox();
    let df = "FROM bb AS a\nRUN echo a > /a\nFROM bb AS b\nRUN echo b > /b\nFROM b\nCOPY --from=a /a /a\n";
    build(&t, "f", &[], df);
    let log = build(&t, "f", &["--no-cache-filter", "a"], df);
    assert!(!cached(&log, "RUN echo a"), "{log}");
    assert!(!cached(&log, "COPY --from=a"), "{log}");
    assert!(cached(&log, "RUN echo b"), "{log}");
    let ctx = t.context("ctx-f", &[("Dockerfile", df)]);
    let bad = t
        .cmd(&["build", "--no-cache-filter", "zz", ctx.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        text(&bad).contains("--no-cache-filter zz"),
        "{}",
        text(&bad)
    );
}

#[test]
fn jobs_bounds_the_runs_at_once_and_ready_ones_start_in_dockerfile_order() {
    let t = with_busybox();
    // Four stages ready together once `base` is made; each RUN logs its
    // start and end in one shared cache mount.
    let mut df = String::from("FROM bb AS base\nRUN touch /base\n");
    for s in ["w", "x", "y", "z"] {
        df += &format!(
            "FROM base AS {s}\n\
             RUN --mount=type=cache,target=/c,id=log \
             sh -c 'echo start {s} >> /c/log; sleep 0.2; echo end {s} >> /c/log; touch /{s}'\n"
        );
    }
    df += "FROM bb\nCOPY --from=z /z /z\nCOPY --from=y /y /y\nCOPY --from=x /x /x\n\
           COPY --from=w /w /w\nRUN --mount=type=cache,target=/c,id=log cp /c/log /log\n";
    build(&t, "jobs", &["--jobs", "1"], &df);
    assert_eq!(
        t.stdout(&["run", "jobs", "cat", "/log"]),
        "start w\nend w\nstart x\nend x\nstart y\nend y\nstart z\nend z\n"
    );
}

#[test]
fn pull_resolves_bases_at_the_registry_whatever_the_store_holds() {
    let registry = rbuild_registry::testing::TestRegistry::start();
    let t = with_busybox();
    let remote = format!("{}/base/bb", registry.addr);
    // The registry gets a newer base; the store keeps the old under the name.
    build(&t, "newer", &[], "FROM bb\nRUN echo newer > /marker\n");
    t.ok(&["tag", "newer", &remote]);
    t.ok(&["push", "-q", &remote]);
    t.ok(&["tag", "bb", &remote]);
    let df = format!("FROM {remote}\nRUN cat /marker > /seen 2>/dev/null || echo old > /seen\n");
    build(&t, "app", &[], &df);
    assert_eq!(t.stdout(&["run", "app", "cat", "/seen"]), "old\n");
    build(&t, "app", &["--pull"], &df);
    assert_eq!(t.stdout(&["run", "app", "cat", "/seen"]), "newer\n");
    // `run --pull always` runs the registry's image too.
    t.ok(&["tag", "bb", &remote]);
    assert_eq!(
        t.stdout(&["run", "--pull", "always", &remote, "cat", "/marker"]),
        "newer\n"
    );
}

#[test]
fn a_pulled_base_whose_registry_is_gone_builds_with_a_warning() {
    let registry = rbuild_registry::testing::TestRegistry::start();
    let t = with_busybox();
    let remote = format!("{}/base/bb", registry.addr);
    t.ok(&["tag", "bb", &remote]);
    t.ok(&["push", "-q", &remote]);
    t.ok(&["rmi", &remote]);
    t.ok(&["pull", &remote]);
    // Tagged here, never pulled: the store made it, nothing to check.
    let dead = format!("127.0.0.1:{}/base/local", closed_port());
    t.ok(&["tag", "bb", &dead]);
    let df = format!("FROM {remote}\nRUN echo one\n");
    let reachable = build(&t, "app", &[], &df);
    assert!(!reachable.contains("WARNING"), "{reachable}");
    drop(registry);
    let gone = build(&t, "app", &[], &df);
    let warning = gone
        .lines()
        .find(|l| l.starts_with("WARNING: registry"))
        .unwrap_or_else(|| panic!("no warning in\n{gone}"));
    let addr = remote.split('/').next().unwrap();
    assert!(
        warning.contains(&format!("registry {addr} cannot be reached")),
        "{warning}"
    );
    assert!(warning.contains(&remote), "{warning}");
    let local = build(&t, "app2", &[], &format!("FROM {dead}\nRUN echo two\n"));
    assert!(!local.contains("WARNING"), "{local}");
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

#[test]
fn rawjson_progress_is_buildkits_solve_status_lines() {
    let t = with_busybox();
    let ctx = t.context(
        "raw",
        &[("Dockerfile", "FROM bb\nRUN echo from-the-step\n")],
    );
    let out = t.ok(&["build", "--progress", "rawjson", ctx.to_str().unwrap()]);
    let lines = rawjson_lines(out.stderr);
    let run = lines
        .iter()
        .flat_map(|s| s["vertexes"].as_array().cloned().unwrap_or_default())
        .find(|v| {
            v["name"].as_str().is_some_and(|n| n.contains("RUN echo")) && v["completed"].is_string()
        })
        .expect("the RUN's completed vertex");
    let digest = run["digest"].as_str().unwrap();
    assert!(digest.starts_with("sha256:") && run["started"].is_string());
    // Its output is a log of that vertex, base64 as Go encodes bytes
    // ("from-the-step\n").
    assert!(lines.iter().any(|s| {
        s["logs"].as_array().is_some_and(|logs| {
            logs.iter()
                .any(|l| l["vertex"] == digest && l["data"] == "ZnJvbS10aGUtc3RlcAo=")
        })
    }));
    // It names the step it reads (the base image's), started before it.
    let inputs = run["inputs"].as_array().expect("the RUN's inputs");
    assert_eq!(inputs.len(), 1, "{run}");
    assert!(lines.iter().any(|s| {
        s["vertexes"].as_array().is_some_and(|vs| {
            vs.iter()
                .any(|v| v["digest"] == inputs[0] && v["name"].as_str().unwrap().contains("FROM"))
        })
    }));
    // Its process's span is a status of that vertex, inside the step's own.
    let process = lines
        .iter()
        .flat_map(|s| s["statuses"].as_array().cloned().unwrap_or_default())
        .find(|s| s["id"] == "process" && s["vertex"] == digest)
        .expect("the RUN's process status");
    let (started, completed) = (process["started"].as_str(), process["completed"].as_str());
    assert!(run["started"].as_str() <= started && started <= completed);
    assert!(completed <= run["completed"].as_str(), "{process} {run}");
    // BUILDKIT_PROGRESS picks it too.
    let env = t
        .cmd(&["build", ctx.to_str().unwrap()])
        .env("BUILDKIT_PROGRESS", "rawjson")
        .output()
        .unwrap();
    let first = String::from_utf8(env.stderr).unwrap();
    assert!(first.starts_with("{\"vertexes\""), "{first}");
}

#[test]
fn rawjson_shows_a_copy_staged_ahead_of_its_base_as_a_status_of_its_step() {
    let t = with_busybox();
    let ctx = t.context(
        "staged",
        &[
            (
                "Dockerfile",
                "FROM bb\nRUN echo made > /made\nCOPY f /dst/f\n",
            ),
            ("f", "copied\n"),
        ],
    );
    let out = t.ok(&["build", "--progress", "rawjson", ctx.to_str().unwrap()]);
    let lines = rawjson_lines(out.stderr);
    let completed = |part: &str| {
        (lines.iter())
            .flat_map(|s| s["vertexes"].as_array().cloned().unwrap_or_default())
            .find(|v| v["name"].as_str().unwrap().contains(part) && v["completed"].is_string())
            .unwrap_or_else(|| panic!("a completed {part}"))
    };
    let (run, copy) = (completed("RUN echo"), completed("COPY f"));
    // The copy from the context onto the RUN was made ahead of it: a
    // status of the COPY's vertex, which still starts once its base is
    // made.
    let staged = (lines.iter())
        .flat_map(|s| s["statuses"].as_array().cloned().unwrap_or_default())
        .find(|s| s["id"] == "staged copy")
        .expect("the staged copy's status");
    assert_eq!(staged["vertex"], copy["digest"], "{staged}");
    assert!(staged["started"].as_str() <= staged["completed"].as_str());
    assert!(
        run["completed"].as_str() <= copy["started"].as_str(),
        "{run} {copy}"
    );
}

#[test]
fn a_failed_run_shows_its_dockerfile_lines() {
    let t = with_busybox();
    let ctx = t.context(
        "fails",
        &[(
            "Dockerfile",
            "FROM bb\nRUN echo ok\nRUN echo about to fail && \\\n    false\n",
        )],
    );
    let out = t.cmd(&["build", ctx.to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "Dockerfile:3\n--------------------\n   1 |     FROM bb\n   2 |     RUN echo ok\n   3 | >>> RUN echo about to fail && \\\n     |     ^\n   4 | >>>     false\n--------------------\n"
        ),
        "{err}"
    );
}

/// The status lines of a `--progress=rawjson` build's stderr.
fn rawjson_lines(stderr: Vec<u8>) -> Vec<serde_json::Value> {
    String::from_utf8(stderr)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}
