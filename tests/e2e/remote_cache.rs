//! The remote build cache (`--cache-to` / `--cache-from`) between two
//! stores, through the real registry the suite starts (and a fault proxy in
//! front of it) and through a local layout directory.

use std::path::{Path, PathBuf};

use rbuild_registry::testing::{Fault, FaultProxy, TestRegistry};

use crate::support::TestContext;
use crate::text;

/// Two stages; every RUN writes random bytes, so a copy of its result is
/// told from a rerun.
const DOCKERFILE: &str = "FROM BASE AS deps
RUN od -An -N8 -tx8 /dev/urandom > /deps
FROM BASE
COPY app.txt /app.txt
RUN od -An -N8 -tx8 /dev/urandom > /stamp && cat /app.txt >> /stamp
COPY --from=deps /deps /deps
COPY other.txt /other.txt
";

/// A machine: its own store, with the base image pushed to (or pulled
/// from) `registry`, and the build context.
struct Machine {
    t: TestContext,
    context: PathBuf,
}

impl Machine {
    /// The first machine, after busybox was pushed to `registry` as the
    /// base image (from a store of its own, so that both machines pull it
    /// and key it by the registry's manifest digest).
    fn first(registry: &str) -> Self {
        let publisher = TestContext::new();
        publisher.make_busybox("busybox");
        let base = format!("{registry}/base/busybox");
        publisher.ok(&["tag", "busybox", &base]);
        publisher.ok(&["push", "-q", &base]);
        Self::empty(registry)
    }

    /// An empty store (another machine).
    fn empty(registry: &str) -> Self {
        Self::with(TestContext::new(), registry)
    }

    fn with(t: TestContext, registry: &str) -> Self {
        Self::building(t, registry, DOCKERFILE)
    }

    /// A machine whose context's Dockerfile is `dockerfile` (`BASE` its
    /// base image), with the files of [`DOCKERFILE`]'s context.
    fn building(t: TestContext, registry: &str, dockerfile: &str) -> Self {
        let df = dockerfile.replace("BASE", &format!("{registry}/base/busybox"));
        let context = t.context(
            "ctx",
            &[
                ("Dockerfile", &df),
                ("app.txt", "app\n"),
                ("other.txt", "1\n"),
            ],
        );
        Self { t, context }
    }

    /// Builds with `args`; the plain progress log.
    fn build(&self, args: &[&str]) -> String {
        let mut all = vec!["build", "--progress=plain", "-t", "app"];
        all.extend_from_slice(args);
        all.push(self.context.to_str().unwrap());
        text(&self.t.ok(&all))
    }

    /// A file of the built image `app`.
    fn file(&self, path: &str) -> String {
        self.t.stdout(&["run", "--rm", "app", "cat", path])
    }

    fn image_id(&self) -> String {
        self.t
            .stdout(&["inspect", "--format", "{{.Id}}", "app"])
            .trim()
            .to_string()
    }
}

/// How many steps the log reports as run (not cached).
fn steps_run(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(" RUN ") || l.contains(" COPY "))
        .filter(|l| {
            let n = l.split_whitespace().next().unwrap();
            l.contains(" [") && !log.contains(&format!("{n} CACHED"))
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn an_empty_store_builds_from_a_registry_cache_without_running_a_step() {
    let registry = TestRegistry::start();
    let a = Machine::first(&registry.addr);
    let cache = format!(
        "type=registry,ref={}/cache/app:main,mode=max",
        registry.addr
    );
    let log = a.build(&["--cache-to", &cache]);
    assert!(log.contains("exporting cache"), "{log}");
    let stamp = a.file("/stamp");
    let deps = a.file("/deps");

    let b = Machine::empty(&registry.addr);
    let from = format!("{}/cache/app:main", registry.addr);
    let log = b.build(&["--cache-from", &from]);
    assert!(steps_run(&log).is_empty(), "{log}");
    // The RUNs' outputs are A's: they did not run on B.
    assert_eq!(b.file("/stamp"), stamp);
    assert_eq!(b.file("/deps"), deps);
    assert_eq!(b.image_id(), a.image_id());

    // B passes on what it only imported: C builds from B's export alone.
    let relay = format!("{}/cache/relay:main", registry.addr);
    let log = b.build(&[
        "--cache-from",
        &from,
        "--cache-to",
        &format!("type=registry,ref={relay},mode=max"),
    ]);
    assert!(steps_run(&log).is_empty(), "{log}");
    let c = Machine::empty(&registry.addr);
    let log = c.build(&["--cache-from", &relay]);
    assert!(steps_run(&log).is_empty(), "{log}");
    assert_eq!(c.file("/deps"), deps);
    // The relayed records kept A's key ingredients: a miss on C is
    // explained against them.
    std::fs::write(c.context.join("other.txt"), "3\n").unwrap();
    let log = c.build(&["--cache-from", &relay]);
    let line = (log.lines().find(|l| l.contains("COPY other.txt")))
        .unwrap_or_else(|| panic!("no COPY other.txt in {log}"));
    let explained =
        format!("the content of its sources changed (previous build from cache {relay})");
    assert!(line.ends_with(&explained), "{log}");

    // One file changed on B: only the step that reads it runs again, on
    // top of layers fetched from the cache.
    std::fs::write(b.context.join("other.txt"), "2\n").unwrap();
    let log = b.build(&["--cache-from", &from]);
    let run = steps_run(&log);
    assert_eq!(run.len(), 1, "{log}");
    assert!(run[0].contains("COPY other.txt"), "{log}");
    assert_eq!(b.file("/stamp"), stamp);
    assert_eq!(b.file("/other.txt"), "2\n");
}

/// A stage that is rebuilt when other.txt changes, though what the final
/// stage copies from it (made before) stays the same.
const STAGE_COPY: &str = "FROM BASE AS build
RUN mkdir /out && od -An -N8 -tx8 /dev/urandom > /out/lib
COPY other.txt /other.txt
FROM BASE
COPY --from=build /out /out
RUN od -An -N8 -tx8 /dev/urandom > /stamp
";

#[test]
fn a_copy_from_a_rebuilt_stage_is_found_by_its_files_in_a_remote_cache() {
    let registry = TestRegistry::start();
    let a = Machine::first(&registry.addr);
    let a = Machine::building(a.t, &registry.addr, STAGE_COPY);
    let cache = format!("{}/cache/stage:main", registry.addr);
    a.build(&["--cache-to", &format!("type=registry,ref={cache},mode=max")]);
    let (lib, stamp) = (a.file("/out/lib"), a.file("/stamp"));

    // B changes other.txt: the build stage's key changes, the files the
    // final stage copies from it do not. The copy is found by their
    // checksum, the RUN on top of it by the copy's: neither runs.
    let b = Machine::building(TestContext::new(), &registry.addr, STAGE_COPY);
    std::fs::write(b.context.join("other.txt"), "2\n").unwrap();
    let relay = format!("{}/cache/stage:relay", registry.addr);
    let log = b.build(&[
        "--cache-from",
        &cache,
        "--cache-to",
        &format!("type=registry,ref={relay},mode=max"),
    ]);
    let run = steps_run(&log);
    assert_eq!(run.len(), 1, "{log}");
    assert!(run[0].contains("COPY other.txt"), "{log}");
    assert_eq!(
        (b.file("/out/lib"), b.file("/stamp")),
        (lib.clone(), stamp.clone())
    );
    assert_eq!(b.image_id(), a.image_id());

    // C, with yet another other.txt, from B's export alone: B passed the
    // copy's record on under both its keys.
    let c = Machine::building(TestContext::new(), &registry.addr, STAGE_COPY);
    std::fs::write(c.context.join("other.txt"), "3\n").unwrap();
    let log = c.build(&["--cache-from", &relay]);
    let run = steps_run(&log);
    assert_eq!(run.len(), 1, "{log}");
    assert!(run[0].contains("COPY other.txt"), "{log}");
    assert_eq!(c.file("/stamp"), stamp);

    // The same within one store: A's RUN on top of the copy hits too.
    std::fs::write(a.context.join("other.txt"), "4\n").unwrap();
    let run = steps_run(&a.build(&[]));
    assert_eq!(run.len(), 1, "{run:?}");
    assert_eq!(a.file("/stamp"), stamp);
}

#[test]
fn a_fully_cached_build_pushed_to_the_cache_registry_downloads_no_layer() {
    let registry = TestRegistry::start();
    let proxy = FaultProxy::start(&registry.addr);
    let a = Machine::first(&proxy.addr);
    let cache = format!("{}/cache/app:main", proxy.addr);
    a.build(&["--cache-to", &format!("type=registry,ref={cache}")]);
    let b = Machine::empty(&proxy.addr);
    let before = proxy.requests().len();
    let target = format!("{}/app/b:v1", proxy.addr);
    let log = text(&b.t.ok(&[
        "build",
        "--progress=plain",
        "--cache-from",
        &cache,
        "--push",
        "-t",
        &target,
        b.context.to_str().unwrap(),
    ]));
    assert!(steps_run(&log).is_empty(), "{log}");
    let requests = proxy.requests()[before..].to_vec();
    let pulled: Vec<&String> = requests
        .iter()
        .filter(|r| r.starts_with("GET ") && r.contains("/blobs/sha256:"))
        .collect();
    // Only the configs (the base image's and the cache's): no layer.
    assert!(pulled.len() <= 2, "{pulled:#?}");
    assert!(
        requests.iter().any(|r| r.contains("mount=sha256:")),
        "{requests:#?}"
    );
    // A third store runs what B pushed.
    let c = TestContext::new();
    assert_eq!(
        c.stdout(&["run", "--rm", &target, "cat", "/app.txt"]),
        "app\n"
    );
}

#[test]
fn an_image_pushed_with_an_inline_cache_is_a_cache_source() {
    let registry = TestRegistry::start();
    let a = Machine::first(&registry.addr);
    let image = format!("{}/app/inline:v1", registry.addr);
    a.build(&["--cache-to", "type=inline"]);
    a.t.ok(&["tag", "app", &image]);
    a.t.ok(&["push", "-q", &image]);
    let stamp = a.file("/stamp");
    let b = Machine::empty(&registry.addr);
    let log = b.build(&["--cache-from", &image]);
    assert!(steps_run(&log).is_empty(), "{log}");
    assert_eq!(b.file("/stamp"), stamp);
    // An image without one is a warning, not a failed build.
    let c = Machine::empty(&registry.addr);
    let plain = format!("{}/base/busybox", registry.addr);
    let log = c.build(&["--cache-from", &plain]);
    assert!(log.contains("without an inline cache"), "{log}");
}

#[test]
fn mode_min_holds_the_image_steps_and_max_every_stage() {
    let registry = TestRegistry::start();
    let a = Machine::first(&registry.addr);
    let min = format!("{}/cache/app:min", registry.addr);
    let max = format!("{}/cache/app:max", registry.addr);
    a.build(&["--cache-to", &format!("type=registry,ref={min}")]);
    a.build(&["--cache-to", &format!("type=registry,ref={max},mode=max")]);
    for (cache, deps_cached) in [(min, false), (max, true)] {
        let b = Machine::empty(&registry.addr);
        // The image's steps are in both.
        assert!(steps_run(&b.build(&["--cache-from", &cache])).is_empty());
        // The deps stage alone only in max.
        let log = b.build(&["--cache-from", &cache, "--target", "deps"]);
        assert_eq!(steps_run(&log).is_empty(), deps_cached, "{cache}: {log}");
    }
}

#[test]
fn a_local_cache_directory_takes_two_concurrent_exports_and_rejects_a_damaged_blob() {
    let registry = TestRegistry::start();
    let a = Machine::first(&registry.addr);
    let dir = a.t.path("cache-dir");
    let dest = |tag: &str| format!("type=local,dest={},tag={tag},mode=max", dir.display());
    a.build(&[]);
    // Two jobs write one directory at once; both caches land whole.
    let (x, y) = (dest("x"), dest("y"));
    std::thread::scope(|s| {
        let one = s.spawn(|| a.build(&["--cache-to", &x]));
        let two = s.spawn(|| a.build(&["--cache-to", &y]));
        one.join().unwrap();
        two.join().unwrap();
    });
    let stamp = a.file("/stamp");
    for tag in ["x", "y"] {
        let b = Machine::empty(&registry.addr);
        let src = format!("type=local,src={},tag={tag}", dir.display());
        let log = b.build(&["--cache-from", &src]);
        assert!(steps_run(&log).is_empty(), "{tag}: {log}");
        assert_eq!(b.file("/stamp"), stamp);
    }
    // A damaged blob: the cache is refused with a warning, the build runs.
    corrupt_largest_blob(&dir);
    let b = Machine::empty(&registry.addr);
    let src = format!("type=local,src={},tag=x", dir.display());
    let log = b.build(&["--cache-from", &src]);
    assert!(log.contains("cache import skipped"), "{log}");
    assert!(!steps_run(&log).is_empty(), "{log}");
    assert_ne!(b.file("/stamp"), stamp);
}

/// Flips a byte in the middle of the largest blob of a layout.
fn corrupt_largest_blob(dir: &Path) {
    let blobs = dir.join("blobs/sha256");
    let largest = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| p.metadata().unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&largest).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&largest, bytes).unwrap();
}

#[test]
fn layers_gone_from_the_cache_registry_drop_the_cache_and_the_build_goes_on() {
    let registry = TestRegistry::start();
    let a = Machine::first(&registry.addr);
    let cache = format!("{}/cache/app:main", registry.addr);
    a.build(&["--cache-to", &format!("type=registry,ref={cache}")]);
    let stamp = a.file("/stamp");
    // The manifest is read up front; its layers are found gone only when
    // a changed step needs the files below it.
    let manifest = curl(&[
        "-H",
        "Accept: application/vnd.oci.image.manifest.v1+json",
        &format!("http://{}/v2/cache/app/manifests/main", registry.addr),
    ]);
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    for layer in manifest["layers"].as_array().unwrap() {
        let digest = layer["digest"].as_str().unwrap();
        let url = format!("http://{}/v2/cache/app/blobs/{digest}", registry.addr);
        curl(&["-X", "DELETE", &url]);
    }
    let b = Machine::empty(&registry.addr);
    std::fs::write(b.context.join("other.txt"), "2\n").unwrap();
    let log = b.build(&["--cache-from", &cache]);
    // The failure names the blob and the cache it was to come from.
    let warning = (log.lines().find(|l| l.contains("building without it")))
        .unwrap_or_else(|| panic!("no fallback in {log}"));
    assert!(warning.contains(": layer sha256:"), "{warning}");
    assert!(warning.contains(&format!(" from {cache}: ")), "{warning}");
    assert_ne!(b.file("/stamp"), stamp);
    assert_eq!(b.file("/other.txt"), "2\n");
}

/// `curl -fsS ARGS…`; its output.
fn curl(args: &[&str]) -> String {
    let out = std::process::Command::new("curl")
        .arg("-fsS")
        .args(args)
        .output()
        .expect("curl");
    assert!(out.status.success(), "curl {args:?}: {}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn two_stores_exporting_to_one_ref_at_once_leave_one_whole_cache() {
    let registry = TestRegistry::start();
    let one = Machine::first(&registry.addr);
    let two = Machine::empty(&registry.addr);
    std::fs::write(two.context.join("app.txt"), "two\n").unwrap();
    let cache = format!("{}/cache/app:shared", registry.addr);
    let spec = format!("type=registry,ref={cache},mode=max");
    std::thread::scope(|s| {
        let a = s.spawn(|| one.build(&["--cache-to", &spec]));
        let b = s.spawn(|| two.build(&["--cache-to", &spec]));
        a.join().unwrap();
        b.join().unwrap();
    });
    // The ref holds the whole cache of one of them, whichever came last.
    let fully_cached: Vec<bool> = [&one, &two]
        .iter()
        .map(|writer| {
            let reader = Machine::empty(&registry.addr);
            std::fs::copy(
                writer.context.join("app.txt"),
                reader.context.join("app.txt"),
            )
            .unwrap();
            let log = reader.build(&["--cache-from", &cache]);
            assert!(!log.contains("cache import skipped"), "{log}");
            let cached = steps_run(&log).is_empty();
            if cached {
                assert_eq!(reader.file("/stamp"), writer.file("/stamp"));
            }
            cached
        })
        .collect();
    assert_eq!(
        fully_cached.iter().filter(|&&c| c).count(),
        1,
        "{fully_cached:?}"
    );
}

#[test]
fn missing_and_foreign_caches_are_warnings_and_the_build_goes_on() {
    let registry = TestRegistry::start();
    let a = Machine::first(&registry.addr);
    // A BuildKit cache manifest (its config media type is BuildKit's).
    let foreign = format!("{}/cache/buildkit:latest", registry.addr);
    push_foreign(
        &foreign,
        br#"{"layers":[],"records":[]}"#,
        "application/vnd.buildkit.cacheconfig.v0",
    );
    let missing = format!("{}/cache/none:latest", registry.addr);
    let log = a.build(&["--cache-from", &foreign, "--cache-from", &missing]);
    assert!(log.contains("not an rbuild cache"), "{log}");
    assert!(log.contains("no cache there"), "{log}");
    assert!(a.t.path("ctx").exists());
}

#[test]
fn a_registry_failing_mid_export_fails_the_build_unless_errors_are_ignored() {
    let registry = TestRegistry::start();
    let proxy = FaultProxy::start(&registry.addr);
    let a = Machine::first(&registry.addr);
    a.build(&[]);
    let cache = format!("{}/cache/app:main", proxy.addr);
    // The first connection serves two answers, then every connection is
    // cut: the export breaks off after its first blobs.
    proxy.push_faults([Fault::CloseAtResponse(3)]);
    proxy.push_faults(std::iter::repeat_n(Fault::CloseAtResponse(1), 64));
    let spec = format!("type=registry,ref={cache},mode=max");
    let mut args = vec![
        "build",
        "--progress=plain",
        "-t",
        "app",
        "--cache-to",
        &spec,
    ];
    args.push(a.context.to_str().unwrap());
    let out = a.t.cmd(&args).output().unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("export cache"), "{}", text(&out));
    // Nothing half-written is a cache: the tag was never written.
    proxy.clear_faults();
    let b = Machine::empty(&registry.addr);
    let log = b.build(&["--cache-from", &cache]);
    assert!(log.contains("no cache there"), "{log}");
    // ignore-error=true: a warning, and the build succeeds.
    proxy.push_faults(std::iter::repeat_n(Fault::CloseAtResponse(1), 64));
    let spec = format!("{spec},ignore-error=true");
    let log = a.build(&["--cache-to", &spec]);
    assert!(
        log.contains("cache export failed (ignore-error=true)"),
        "{log}"
    );
}

/// Pushes `config` and a manifest naming it with `config_media_type` as
/// `reference`, as another tool would.
fn push_foreign(reference: &str, config: &[u8], config_media_type: &str) {
    use sha2::Digest;
    let reference = rbuild_registry::Reference::parse(reference).unwrap();
    let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(config)));
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), config).unwrap();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"{config_media_type}","digest":"{digest}","size":{}}},"layers":[]}}"#,
        config.len()
    );
    let client = rbuild_registry::Client::new(Default::default()).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        client
            .push_blob(&reference, &digest, file.path())
            .await
            .unwrap();
        client
            .push_manifest(
                &reference,
                "application/vnd.oci.image.manifest.v1+json",
                manifest.as_bytes(),
            )
            .await
            .unwrap();
    });
}
