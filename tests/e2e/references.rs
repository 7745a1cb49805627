//! Image references as Docker users type them: the id `build -q` prints
//! (whole or short, with or without `sha256:`), `name@sha256:…` and
//! `name:tag@sha256:…`, resolved in the local store by every command that
//! takes an image and by FROM, `COPY --from` and `RUN --mount=from=`.

use crate::support::TestContext;

/// A store with busybox and an image `app` holding `/marker`; returns the
/// test context, the id `build -q` printed and the manifest digest.
fn app_image() -> (TestContext, String, String) {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let ctx = t.context(
        "app",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo app-marker > /marker\n",
        )],
    );
    let id = t.stdout(&["build", "-q", "-t", "app", ctx.to_str().unwrap()]);
    let id = id.trim().to_string();
    let shown: serde_json::Value =
        serde_json::from_str(&t.stdout(&["inspect", "app"])).expect("inspect json");
    assert_eq!(shown[0]["Id"], id.as_str(), "-q prints the image id");
    let digest = shown[0]["Digest"].as_str().expect("digest").to_string();
    assert_ne!(id, digest, "the image id is the config digest");
    (t, id, digest)
}

/// The reference forms that name `app`: id whole and short, with and
/// without `sha256:`, and digested names.
fn spellings(id: &str, digest: &str) -> Vec<String> {
    let hex = id.strip_prefix("sha256:").expect("sha256 id");
    vec![
        id.to_string(),
        hex.to_string(),
        hex[..12].to_string(),
        format!("sha256:{}", &hex[..12]),
        format!("app@{digest}"),
        format!("app:latest@{digest}"),
    ]
}

#[test]
fn run_takes_every_reference_form() {
    let (t, id, digest) = app_image();
    for reference in spellings(&id, &digest) {
        let out = t.stdout(&["run", "--rm", &reference, "cat", "/marker"]);
        assert_eq!(out, "app-marker\n", "{reference}");
    }
    let out = t
        .cmd(&["run", "--rm", "0123456789ab", "true"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(125),
        "an unknown id is no image: rbuild's own error, as docker run"
    );
}

#[test]
fn from_copy_from_and_mount_from_take_ids_and_digests() {
    let (t, id, digest) = app_image();
    let short = &id["sha256:".len()..][..12];
    let dockerfile = format!(
        "FROM {short}\n\
         COPY --from={id} /marker /copied\n\
         RUN --mount=from=app@{digest},target=/m cat /m/marker /copied /marker > /all\n"
    );
    let ctx = t.context("by-id", &[("Dockerfile", &dockerfile)]);
    t.ok(&["build", "-q", "-t", "by-id", ctx.to_str().unwrap()]);
    let out = t.stdout(&["run", "--rm", "by-id", "cat", "/all"]);
    assert_eq!(out, "app-marker\n".repeat(3));
}

#[test]
fn tag_inspect_save_and_rmi_take_ids_and_digests() {
    let (t, id, digest) = app_image();
    for (n, reference) in spellings(&id, &digest).iter().enumerate() {
        let name = format!("copy:{n}");
        t.ok(&["tag", reference, &name]);
        let shown: serde_json::Value =
            serde_json::from_str(&t.stdout(&["inspect", reference])).unwrap();
        assert_eq!(shown[0]["Id"], id.as_str(), "{reference}");
        let archive = t.path(&format!("{n}.tar"));
        t.ok(&["save", "-o", archive.to_str().unwrap(), reference]);
        assert!(std::fs::metadata(&archive).unwrap().len() > 0);
    }
    // By id, rmi removes every name of the image; they span two
    // repositories, so only with --force.
    let short = &id["sha256:".len()..][..12];
    let refused = t.cmd(&["rmi", short]).output().unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("multiple repositories"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let removed = t.stdout(&["rmi", "-f", short]);
    assert!(removed.contains("Untagged: app\n"), "{removed}");
    assert!(removed.contains("Untagged: copy:5\n"), "{removed}");
    assert!(!t.stdout(&["images"]).contains(short));
}

#[test]
fn inspect_has_dockers_shape_and_takes_a_format() {
    let (t, id, digest) = app_image();
    let shown: serde_json::Value = serde_json::from_str(&t.stdout(&["inspect", "app"])).unwrap();
    let image = &shown[0];
    assert_eq!(image["RepoTags"], serde_json::json!(["app:latest"]));
    assert_eq!(
        image["RepoDigests"],
        serde_json::json!([format!("app@{digest}")])
    );
    assert_eq!(image["Os"], "linux");
    assert!(image["Architecture"].is_string());
    assert!(image["Created"].is_string());
    assert_eq!(image["RootFS"]["Type"], "layers");
    // busybox: COPY, RUN, COPY; app: RUN.
    assert_eq!(image["RootFS"]["Layers"].as_array().unwrap().len(), 4);
    assert!(image["Size"].as_u64().unwrap() > 0);
    assert_eq!(image["Config"]["Cmd"], serde_json::json!(["sh"]));
    let formatted = t.stdout(&[
        "inspect",
        "-f",
        "{{.Id}} {{.Config.Cmd}} {{json .RepoTags}}",
        "app",
    ]);
    assert_eq!(formatted, format!("{id} [sh] [\"app:latest\"]\n"));
    let bad = t
        .cmd(&["inspect", "-f", "{{.Nope}}", "app"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
}

#[test]
fn images_filters_formats_and_management_aliases() {
    let (t, id, _) = app_image();
    let short = &id["sha256:".len()..][..12];
    let ctx = t.context(
        "labelled",
        &[(
            "Dockerfile",
            "FROM busybox\nLABEL team=core\nRUN echo > /l\n",
        )],
    );
    t.ok(&["build", "-q", "-t", "team/tool:v1", ctx.to_str().unwrap()]);

    let table = t.stdout(&["images"]);
    let header = table.lines().next().unwrap();
    for column in ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"] {
        assert!(header.contains(column), "{header}");
    }
    assert!(table.contains("ago"), "CREATED says how long ago:\n{table}");

    let names = |args: &[&str]| {
        let mut all = vec!["images", "--format", "{{.Repository}}:{{.Tag}}"];
        all.extend_from_slice(args);
        let mut out: Vec<String> = t.stdout(&all).lines().map(str::to_string).collect();
        out.sort();
        out
    };
    assert_eq!(names(&["app"]), ["app:latest"]);
    assert_eq!(names(&["team/tool:v1"]), ["team/tool:v1"]);
    assert_eq!(names(&["team/tool:v2"]), Vec::<String>::new());
    assert_eq!(names(&["--filter", "reference=team/*"]), ["team/tool:v1"]);
    assert_eq!(names(&["--filter", "label=team=core"]), ["team/tool:v1"]);
    assert_eq!(names(&["--filter", "label=team"]), ["team/tool:v1"]);
    assert_eq!(names(&["--filter", "dangling=true"]), Vec::<String>::new());
    assert_eq!(
        names(&["--filter", "dangling=false"]),
        ["app:latest", "busybox:latest", "team/tool:v1"]
    );
    let bad = t
        .cmd(&["images", "--filter", "color=red"])
        .output()
        .unwrap();
    assert!(!bad.status.success());

    let id_row = t.stdout(&["images", "--format", "{{.ID}} {{json .Repository}}", "app"]);
    assert_eq!(id_row, format!("{short} \"app\"\n"));
    let json: serde_json::Value =
        serde_json::from_str(&t.stdout(&["images", "--format", "{{json .}}", "app"])).unwrap();
    assert_eq!(json["ID"], short);
    let custom = t.stdout(&[
        "images",
        "--format",
        "table {{.Repository}}\t{{.ID}}",
        "app",
    ]);
    let lines: Vec<&str> = custom.lines().collect();
    assert!(
        lines[0].starts_with("REPOSITORY") && lines[0].contains("IMAGE ID"),
        "{custom}"
    );
    assert!(
        lines[1].starts_with("app ") && lines[1].ends_with(short),
        "{custom}"
    );

    // before= and since= compare creation times.
    let dir = ctx.to_str().unwrap();
    t.ok(&[
        "build",
        "-q",
        "-t",
        "old",
        "--source-date-epoch",
        "1000",
        dir,
    ]);
    t.ok(&[
        "build",
        "-q",
        "-t",
        "older",
        "--source-date-epoch",
        "500",
        dir,
    ]);
    assert_eq!(names(&["--filter", "before=old"]), ["older:latest"]);
    let since = names(&["--filter", "since=old"]);
    assert!(since.contains(&"app:latest".to_string()), "{since:?}");
    assert!(!since.iter().any(|n| n.starts_with("old")), "{since:?}");
    t.ok(&["rmi", "old", "older"]);

    // Docker's management forms are the same commands.
    assert_eq!(
        t.stdout(&["image", "ls", "-q", "app"]),
        format!("{short}\n")
    );
    t.ok(&["image", "inspect", "app"]);
    t.ok(&["system", "df"]);
    t.ok(&["image", "rm", "team/tool:v1"]);
    t.ok(&["image", "prune"]);
    t.ok(&["builder", "prune"]);
    assert_eq!(names(&[]), ["app:latest", "busybox:latest"]);
}

#[test]
fn history_lists_the_steps_newest_first_with_layer_sizes() {
    let (t, id, _) = app_image();
    let shown = t.stdout(&["history", &id[7..19]]);
    let lines: Vec<&str> = shown.lines().collect();
    assert!(
        lines[0].starts_with("CREATED") && lines[0].contains("CREATED BY"),
        "{shown}"
    );
    assert!(
        lines[1].contains("RUN") && lines[1].contains("app-marker"),
        "newest first:\n{shown}"
    );
    // The CMD step has no layer; the COPY of the busybox binary has one.
    let cmd = lines.iter().find(|l| l.contains("CMD")).expect("CMD step");
    assert!(cmd.contains(" 0B "), "{cmd}");
    let copy = lines
        .iter()
        .find(|l| l.contains("COPY busybox"))
        .expect("COPY step");
    assert!(copy.contains("MB"), "{copy}");
    // CREATED counts seconds up to the moment of each listing, so two
    // listings a second boundary apart differ there, and so does the
    // padding after it ("Less than a second ago" fills the column, "1
    // second ago" is padded): compare the rest.
    let again = t.stdout(&["image", "history", "app"]);
    assert_eq!(after_created(&again), after_created(&shown));
}

/// A history listing's rows without their CREATED column ("… ago") and
/// the padding after it, which every row must have; the header is kept
/// whole.
fn after_created(listing: &str) -> Vec<&str> {
    let mut lines = listing.lines();
    let header = lines.next().expect("a header");
    let rows = lines.map(|row| {
        row.split_once(" ago ")
            .unwrap_or_else(|| panic!("no CREATED in {row:?}"))
            .1
            .trim_start()
    });
    std::iter::once(header).chain(rows).collect()
}

/// A registry with busybox pushed as `base/busybox` through a proxy that
/// counts requests and can inject faults: the registry (kept running while
/// it lives), the proxy and the image's name through the proxy.
fn busybox_behind_a_proxy() -> (
    rbuild_registry::testing::TestRegistry,
    rbuild_registry::testing::FaultProxy,
    String,
) {
    use rbuild_registry::testing::{FaultProxy, TestRegistry};
    let registry = TestRegistry::start();
    let proxy = FaultProxy::start(&registry.addr);
    let publisher = TestContext::new();
    publisher.make_busybox("busybox");
    let base = format!("{}/base/busybox", proxy.addr);
    publisher.ok(&["tag", "busybox", &base]);
    publisher.ok(&["push", "-q", &base]);
    (registry, proxy, base)
}

/// Builds `FROM base` then `RUN run` as `app` in a new, empty store.
fn build_app_on(base: &str, run: &str) -> TestContext {
    let t = TestContext::new();
    let ctx = t.context(
        "app",
        &[("Dockerfile", &format!("FROM {base}\nRUN {run}\n"))],
    );
    t.ok(&["build", "-q", "-t", "app", ctx.to_str().unwrap()]);
    t
}

#[test]
fn a_registry_base_is_asked_for_once_per_build() {
    let (_registry, proxy, base) = busybox_behind_a_proxy();
    // An empty store: the build resolves the name, then its FROM step
    // takes the image so resolved (not a second answer of the registry).
    let before = proxy.requests().len();
    let t = build_app_on(&base, "echo hi > /marker");
    let requests = proxy.requests()[before..].to_vec();
    let manifests = requests
        .iter()
        .filter(|r| r.contains("/manifests/"))
        .count();
    assert_eq!(manifests, 1, "{requests:#?}");
    assert_eq!(t.stdout(&["run", "--rm", "app", "cat", "/marker"]), "hi\n");
}

#[test]
fn a_base_layer_whose_download_is_cut_is_resumed_and_unpacked_whole() {
    use rbuild_registry::testing::Fault;
    let (_registry, proxy, base) = busybox_behind_a_proxy();
    // Every connection of the build is cut after 64 KiB of answers: the
    // layer (busybox, ~1 MB) comes in pieces, each resumed with a Range
    // request, while it is unpacked.
    proxy.push_faults(std::iter::repeat_n(
        Fault::TruncateResponseAfter(64 << 10),
        200,
    ));
    let t = build_app_on(&base, "busybox --help > /marker");
    assert!(proxy.faults_applied() > 2, "{}", proxy.faults_applied());
    let fsck = t.stdout(&["debug", "fsck"]);
    assert!(fsck.contains(" 0 problems"), "{fsck}");
    let listed = t.stdout(&["run", "--rm", "app", "wc", "-c", "/bin/busybox"]);
    let size = std::fs::metadata(crate::support::busybox()).unwrap().len();
    assert_eq!(
        listed.split_whitespace().next(),
        Some(size.to_string().as_str())
    );
}
