//! Multi-platform builds (issue 18): an image index with one manifest per
//! platform, steps that do not depend on the target platform run once,
//! foreign RUN under qemu-user (binfmt_misc, F flag), the index pushed and
//! each platform pulled back with skopeo.

use std::path::Path;
use std::process::Command;

use crate::support::{TestContext, skopeo};

/// A C program that writes `uname -m` to the file its argument names.
const MACHINE_C: &str = r#"#include <stdio.h>
#include <sys/utsname.h>
int main(int argc, char **argv) {
    struct utsname u;
    if (argc < 2 || uname(&u) != 0) return 1;
    FILE *f = fopen(argv[1], "w");
    if (!f) return 1;
    fprintf(f, "%s\n", u.machine);
    return fclose(f) != 0;
}
"#;

/// Compiles [`MACHINE_C`] statically for amd64 (gcc) and arm64 (Debian's
/// gcc-aarch64-linux-gnu) into `ctx/bin/{amd64,arm64}/machine`.
fn machine_binaries(ctx: &Path) {
    let source = ctx.join("machine.c");
    std::fs::create_dir_all(ctx).unwrap();
    std::fs::write(&source, MACHINE_C).unwrap();
    for (arch, cc) in [("amd64", "gcc"), ("arm64", "aarch64-linux-gnu-gcc")] {
        let out = ctx.join("bin").join(arch);
        std::fs::create_dir_all(&out).unwrap();
        let status = Command::new(cc)
            .args(["-static", "-Os", "-o"])
            .arg(out.join("machine"))
            .arg(&source)
            .status()
            .unwrap_or_else(|e| panic!("{cc} (see scripts/install-deps.sh): {e}"));
        assert!(status.success(), "{cc} failed");
    }
}

/// The JSON of a blob of an OCI layout.
fn blob(layout: &Path, digest: &str) -> serde_json::Value {
    let path = layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The file names in an uncompressed layer blob of an OCI layout.
fn layer_files(layout: &Path, digest: &str) -> Vec<String> {
    let path = layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect()
}

/// How many progress lines name a step (`#N name`; `#N DONE` lines do not).
fn started(progress: &str, step: &str) -> usize {
    progress.lines().filter(|l| l.contains(step)).count()
}

#[test]
fn a_two_platform_scratch_image_is_an_index_of_one_manifest_per_platform() {
    let t = TestContext::new();
    let ctx = t.context(
        "scratch",
        &[
            (
                "Dockerfile",
                "FROM --platform=$BUILDPLATFORM scratch AS build\nARG TARGETARCH\nCOPY a /a\nFROM scratch\nARG TARGETARCH\nARG TARGETPLATFORM\nCOPY --from=build /a /$TARGETARCH\nLABEL built.for=$TARGETPLATFORM\n",
            ),
            ("a", "shared\n"),
        ],
    );
    let layout = t.path("layout");
    let out = t.ok(&[
        "build",
        "--progress",
        "plain",
        "--platform",
        "linux/amd64",
        "--platform",
        "arm64",
        "-t",
        "multi",
        "--annotation",
        "index:org.opencontainers.image.title=two",
        "--annotation",
        "manifest-descriptor[linux/arm64]:org.example.entry=arm",
        "-o",
        &format!("type=oci,dest={},tar=false", layout.display()),
        ctx.to_str().unwrap(),
    ]);
    let progress = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        started(&progress, "COPY a /a"),
        1,
        "shared step runs once:\n{progress}"
    );
    assert_eq!(started(&progress, "COPY --from=build"), 2, "{progress}");

    let outer: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(layout.join("index.json")).unwrap()).unwrap();
    let index = blob(&layout, outer["manifests"][0]["digest"].as_str().unwrap());
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(
        index["annotations"]["org.opencontainers.image.title"],
        "two"
    );
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{index}");
    assert_eq!(entries[0]["annotations"], serde_json::Value::Null);
    assert_eq!(entries[1]["annotations"]["org.example.entry"], "arm");
    for (entry, arch) in entries.iter().zip(["amd64", "arm64"]) {
        assert_eq!(entry["platform"]["os"], "linux");
        assert_eq!(entry["platform"]["architecture"], arch);
        let manifest = blob(&layout, entry["digest"].as_str().unwrap());
        let config = blob(&layout, manifest["config"]["digest"].as_str().unwrap());
        assert_eq!(config["architecture"], arch);
        assert_eq!(config["os"], "linux");
        assert_eq!(
            config["config"]["Labels"]["built.for"],
            format!("linux/{arch}")
        );
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1, "{manifest}");
        let files = layer_files(&layout, layers[0]["digest"].as_str().unwrap());
        assert_eq!(files, [arch], "the layer holds the platform's own file");
    }
    // skopeo reads each platform of the layout.
    for arch in ["amd64", "arm64"] {
        let config = skopeo(&[
            "inspect",
            "--config",
            "--override-arch",
            arch,
            &format!("oci:{}:multi", layout.display()),
        ]);
        assert!(
            config.contains(&format!("\"architecture\": \"{arch}\"")),
            "{config}"
        );
    }

    // The store lists and inspects it with its platforms.
    let images = t.stdout(&["images"]);
    assert!(
        images.contains("PLATFORMS") && images.contains("linux/amd64,linux/arm64"),
        "{images}"
    );
    let inspect = t.stdout(&["inspect", "--format", "{{json .Platforms}}", "multi"]);
    assert_eq!(inspect.trim(), r#"["linux/amd64","linux/arm64"]"#);

    // The index digest `-q` prints is the image's id: run, images.
    let metadata = t.path("metadata.json");
    let id = t.stdout(&[
        "build",
        "-q",
        "--platform",
        "linux/amd64,linux/arm64",
        "--metadata-file",
        metadata.to_str().unwrap(),
        ctx.to_str().unwrap(),
    ]);
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&metadata).unwrap()).unwrap();
    assert_eq!(written["containerimage.digest"], id.trim());
    assert_eq!(
        written["containerimage.config.digest"],
        serde_json::Value::Null,
        "no one config"
    );
    let short: String = id
        .trim()
        .trim_start_matches("sha256:")
        .chars()
        .take(12)
        .collect();
    assert!(t.stdout(&["images", "-q"]).contains(&short));
    assert_eq!(
        t.stdout(&["inspect", "--format", "{{.Index}}", &short])
            .trim(),
        id.trim()
    );

    // Outputs that hold one image say why they cannot take two.
    let err = t
        .cmd(&[
            "build",
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            &format!("type=docker,dest={}", t.path("d.tar").display()),
            ctx.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!err.status.success());
    assert!(
        String::from_utf8_lossy(&err.stderr)
            .contains("multi-platform build cannot be exported as type=docker"),
        "{}",
        String::from_utf8_lossy(&err.stderr)
    );
    // type=local: one directory per platform, as buildx writes.
    let local = t.path("local");
    t.ok(&[
        "build",
        "-q",
        "--platform",
        "linux/amd64,linux/arm64",
        "-o",
        &format!("type=local,dest={}", local.display()),
        ctx.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(local.join("linux_amd64/amd64")).unwrap(),
        "shared\n"
    );
    assert_eq!(
        std::fs::read_to_string(local.join("linux_arm64/arm64")).unwrap(),
        "shared\n"
    );
}

#[test]
fn a_foreign_run_goes_through_qemu_and_a_build_platform_stage_runs_once() {
    let t = TestContext::new();
    let base_ctx = t.path("base");
    machine_binaries(&base_ctx);
    std::fs::write(
        base_ctx.join("Dockerfile"),
        "FROM scratch\nARG TARGETARCH\nCOPY bin/$TARGETARCH/machine /machine\n",
    )
    .unwrap();
    t.ok(&[
        "build",
        "-q",
        "--platform",
        "linux/amd64,linux/arm64",
        "-t",
        "base:two",
        base_ctx.to_str().unwrap(),
    ]);
    // A cross-compile stage on the build platform (its RUN shared by both
    // targets), TARGETARCH choosing what it hands each target, and a RUN
    // of the target's own binary.
    let ctx = t.context(
        "app",
        &[(
            "Dockerfile",
            "FROM --platform=$BUILDPLATFORM base:two AS build\nRUN [\"/machine\", \"/built-on\"]\nARG TARGETARCH\nCOPY bin/$TARGETARCH/machine /for-target\nFROM base:two\nCOPY --from=build /built-on /for-target /\nRUN [\"/for-target\", \"/runs-on\"]\n",
        )],
    );
    machine_binaries(&ctx);
    let local = t.path("out");
    let out = t.ok(&[
        "build",
        "--progress",
        "plain",
        "--platform",
        "linux/amd64,linux/arm64",
        "-o",
        &format!("type=local,dest={}", local.display()),
        ctx.to_str().unwrap(),
    ]);
    let progress = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        started(&progress, "RUN [\"/machine\", \"/built-on\"]"),
        1,
        "the build-platform RUN is shared:\n{progress}"
    );
    let read = |p: &str| std::fs::read_to_string(local.join(p)).unwrap();
    assert_eq!(read("linux_amd64/built-on"), "x86_64\n");
    assert_eq!(read("linux_arm64/built-on"), "x86_64\n");
    assert_eq!(read("linux_amd64/runs-on"), "x86_64\n");
    assert_eq!(
        read("linux_arm64/runs-on"),
        "aarch64\n",
        "arm64 RUN went through qemu"
    );

    // One foreign platform alone: its image, its RUN under qemu.
    let arm_only = t.path("arm-only");
    t.ok(&[
        "build",
        "-q",
        "--platform",
        "arm64",
        "-o",
        &format!("type=local,dest={}", arm_only.display()),
        ctx.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(arm_only.join("runs-on")).unwrap(),
        "aarch64\n"
    );
    assert_eq!(
        std::fs::read_to_string(arm_only.join("built-on")).unwrap(),
        "x86_64\n"
    );

    // rbuild run picks the platform asked for; arm64 runs under qemu.
    for (platform, machine) in [("linux/arm64", "aarch64\n"), ("linux/amd64", "x86_64\n")] {
        let shown = t.stdout(&[
            "run",
            "--rm",
            "--platform",
            platform,
            "base:two",
            "/machine",
            "/dev/stdout",
        ]);
        assert_eq!(shown, machine);
    }

    // A platform the base's index lacks: the error lists what it has.
    let err = t
        .cmd(&["build", "--platform", "linux/s390x", ctx.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&err.stderr);
    assert!(!err.status.success());
    assert!(
        stderr.contains(
            "no image for platform linux/s390x in the index; it has: linux/amd64, linux/arm64"
        ),
        "{stderr}"
    );
}

#[test]
fn a_pushed_index_pulls_back_per_platform_with_skopeo() {
    let registry = rbuild_registry::testing::TestRegistry::start();
    let t = TestContext::new();
    let ctx = t.context(
        "push",
        &[(
            "Dockerfile",
            "FROM scratch\nARG TARGETARCH\nCOPY Dockerfile /$TARGETARCH\n",
        )],
    );
    let remote = format!("{}/multi/app:1", registry.addr);
    t.ok(&[
        "build",
        "-q",
        "--platform",
        "linux/amd64,linux/arm64",
        "-t",
        &remote,
        "--push",
        ctx.to_str().unwrap(),
    ]);
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{remote}"),
    ]);
    let index: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2, "{raw}");
    for arch in ["amd64", "arm64"] {
        let dest = t.path(&format!("pulled-{arch}"));
        skopeo(&[
            "copy",
            "--src-tls-verify=false",
            "--override-arch",
            arch,
            &format!("docker://{remote}"),
            &format!("oci:{}:x", dest.display()),
        ]);
        let config = skopeo(&["inspect", "--config", &format!("oci:{}:x", dest.display())]);
        assert!(
            config.contains(&format!("\"architecture\": \"{arch}\"")),
            "{config}"
        );
    }
    // rbuild pull takes the platform asked for from the index.
    let u = TestContext::new();
    u.ok(&["pull", "-q", "--platform", "arm64", &remote]);
    let arch = u.stdout(&["inspect", "--format", "{{.Architecture}}", &remote]);
    assert_eq!(arch.trim(), "arm64");
}

/// The `pushed by digest: REPO@DIGEST` a plain progress display names.
fn pushed_by_digest(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    text.lines()
        .find_map(|l| l.split("pushed by digest: ").nth(1))
        .unwrap_or_else(|| panic!("no digest pushed:\n{text}"))
        .trim()
        .to_string()
}

#[test]
fn images_pushed_by_digest_join_into_one_index_without_their_layers() {
    let registry = rbuild_registry::testing::TestRegistry::start();
    let t = TestContext::new();
    let ctx = t.context(
        "ci",
        &[(
            "Dockerfile",
            "FROM scratch\nARG TARGETARCH\nCOPY Dockerfile /built-for-$TARGETARCH\n",
        )],
    );
    // Each platform as its own CI runner would: pushed untagged.
    let mut sources = Vec::new();
    for (platform, output) in [
        ("linux/amd64", "--push-by-digest"),
        ("linux/arm64", "--output=type=registry,push-by-digest=true"),
    ] {
        let repo = format!("{}/ci/{}", registry.addr, platform.replace('/', "-"));
        let out = t.ok(&[
            "build",
            "--progress",
            "plain",
            "--platform",
            platform,
            "-t",
            &repo,
            output,
            ctx.to_str().unwrap(),
        ]);
        let pushed = pushed_by_digest(&out.stderr);
        assert!(pushed.starts_with(&format!("{repo}@sha256:")), "{pushed}");
        let tagged = Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{repo}:latest"))
            .output()
            .unwrap();
        assert!(!tagged.status.success(), "pushed without a tag");
        sources.push(pushed);
    }
    let joined = format!("{}/ci/app:1", registry.addr);
    let mut args = vec!["manifest", "create", "-q", "-t", &joined];
    args.extend(sources.iter().map(String::as_str));
    let digest = t.stdout(&args);
    assert!(digest.trim().starts_with("sha256:"), "{digest}");

    let shown = t.stdout(&["manifest", "inspect", &joined]);
    let index: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let archs: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(archs, ["amd64", "arm64"]);
    // Every platform pulls from the joined repository: manifests copied,
    // blobs mounted.
    for arch in ["amd64", "arm64"] {
        let dest = t.path(&format!("joined-{arch}"));
        skopeo(&[
            "copy",
            "--src-tls-verify=false",
            "--override-arch",
            arch,
            &format!("docker://{joined}"),
            &format!("oci:{}:x", dest.display()),
        ]);
        let config = skopeo(&["inspect", "--config", &format!("oci:{}:x", dest.display())]);
        assert!(
            config.contains(&format!("\"architecture\": \"{arch}\"")),
            "{config}"
        );
    }
    // A source on another registry is refused: layers are never pulled.
    let err = t
        .cmd(&["manifest", "create", "-t", &joined, "example.com/other/app@sha256:0000000000000000000000000000000000000000000000000000000000000000"])
        .output()
        .unwrap();
    assert!(!err.status.success());
    assert!(
        String::from_utf8_lossy(&err.stderr).contains("pulls no layers"),
        "{}",
        String::from_utf8_lossy(&err.stderr)
    );
}

#[test]
fn one_cache_export_holds_every_platform_for_an_empty_store() {
    let t = TestContext::new();
    let ctx = t.context(
        "cached",
        &[
            (
                "Dockerfile",
                "FROM --platform=$BUILDPLATFORM scratch AS build\nCOPY a /a\nFROM scratch\nARG TARGETARCH\nCOPY --from=build /a /$TARGETARCH\nCOPY a /again-$TARGETARCH\n",
            ),
            ("a", "cached\n"),
        ],
    );
    let cache = t.path("cache");
    let build = |t: &TestContext, cache_flag: &str| {
        t.ok(&[
            "build",
            "--progress",
            "plain",
            "--platform",
            "linux/amd64,linux/arm64",
            "-t",
            "cached",
            cache_flag,
            ctx.to_str().unwrap(),
        ])
    };
    build(
        &t,
        &format!("--cache-to=type=local,dest={},mode=max", cache.display()),
    );
    // Each platform's config (its id): the layers may differ in
    // compression (the cache's are zstd), the images may not.
    let configs = |t: &TestContext| -> Vec<String> {
        ["amd64", "arm64"]
            .map(|arch| {
                let image = format!("oci:{}:cached", t.root().display());
                skopeo(&["inspect", "--config", "--override-arch", arch, &image])
            })
            .to_vec()
    };
    let first = configs(&t);

    // Another store: every step of both platforms comes from the cache.
    let u = TestContext::new();
    let out = build(
        &u,
        &format!("--cache-from=type=local,src={}", cache.display()),
    );
    let log = String::from_utf8_lossy(&out.stderr);
    let steps: Vec<&str> = log.lines().filter(|l| l.contains(" COPY ")).collect();
    assert_eq!(
        steps.len(),
        5,
        "one shared COPY (shown once), two per platform:\n{log}"
    );
    for step in steps {
        let n = step.split_whitespace().next().unwrap();
        assert!(log.contains(&format!("{n} CACHED")), "{step} ran:\n{log}");
    }
    assert_eq!(first, configs(&u), "the same images");
}

#[test]
fn a_final_from_platform_stage_names_its_platform_unless_one_is_asked_for() {
    let t = TestContext::new();
    let base = t.context(
        "base",
        &[
            (
                "Dockerfile",
                "FROM scratch\nARG TARGETARCH\nCOPY $TARGETARCH /f\n",
            ),
            // Layers of 2048 and 2560 bytes tell the platforms' histories apart.
            ("amd64", "amd64\n"),
            ("arm64", &"arm64\n".repeat(100)),
        ],
    );
    let base = base.to_str().unwrap();
    t.ok(&[
        "build",
        "-q",
        "--platform",
        "linux/amd64,linux/arm64",
        "-t",
        "base2",
        base,
    ]);
    let format = "{{.Architecture}}";
    // inspect and history pick a platform of the index with --platform.
    let shown = t.stdout(&["inspect", "--platform", "arm64", "-f", format, "base2"]);
    assert_eq!(shown.trim(), "arm64");
    let steps = t.stdout(&["history", "--platform", "linux/arm64", "base2"]);
    assert!(steps.contains("2.560kB"), "{steps}");
    let steps = t.stdout(&["history", "--platform", "linux/amd64", "base2"]);
    assert!(steps.contains("2.048kB"), "{steps}");
    let out = t
        .cmd(&["inspect", "--platform", "linux/arm/v7", "base2"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("it has linux/amd64, linux/arm64"), "{err}");

    // As BuildKit: without --platform the config is the final stage's
    // base's platform; an asked-for target platform wins over it.
    let ctx = t.context(
        "final",
        &[(
            "Dockerfile",
            "FROM --platform=linux/arm64 base2\nLABEL final=1\n",
        )],
    );
    let ctx = ctx.to_str().unwrap();
    t.ok(&["build", "-q", "-t", "implicit", ctx]);
    assert_eq!(
        t.stdout(&["inspect", "-f", format, "implicit"]).trim(),
        "arm64"
    );
    t.ok(&[
        "build",
        "-q",
        "--platform",
        "linux/amd64",
        "-t",
        "explicit",
        ctx,
    ]);
    assert_eq!(
        t.stdout(&["inspect", "-f", format, "explicit"]).trim(),
        "amd64"
    );
}
