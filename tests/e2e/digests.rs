//! Digests as a registry holds them: `--metadata-file` after `--push`
//! names the pushed manifest, an image pulled and pushed unchanged keeps
//! its manifest digest, and `save`/`load` keeps the image id.

use crate::support::{TestContext, skopeo};

/// The digest the registry serves for `reference` (skopeo's).
fn registry_digest(reference: &str) -> String {
    let out = skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{reference}"),
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["Digest"].as_str().unwrap().to_string()
}

#[test]
fn metadata_after_push_names_the_registrys_digest() {
    let registry = rbuild_registry::testing::TestRegistry::start();
    let t = TestContext::new();
    t.make_busybox("bb");
    let remote = format!("{}/meta/app:v1", registry.addr);
    let ctx = t.context("app", &[("Dockerfile", "FROM bb\nRUN echo x > /x\n")]);
    let metadata = t.path("metadata.json");
    t.ok(&[
        "build",
        "-q",
        "-o",
        "type=registry,oci-mediatypes=false",
        "-t",
        &remote,
        "--metadata-file",
        metadata.to_str().unwrap(),
        ctx.to_str().unwrap(),
    ]);
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&metadata).unwrap()).unwrap();
    let pushed = registry_digest(&remote);
    assert_eq!(written["containerimage.digest"].as_str().unwrap(), pushed);
    // Docker schema 2 on the way out: not the store's OCI manifest.
    let local = t.stdout(&["inspect", "-f", "{{.Digest}}", &remote]);
    assert_ne!(local.trim(), pushed);
}

#[test]
fn a_pulled_image_pushed_unchanged_keeps_its_digest() {
    let registry = rbuild_registry::testing::TestRegistry::start();
    let t = TestContext::new();
    t.make_busybox("bb");
    let first = format!("{}/keep/a:v1", registry.addr);
    t.ok(&["tag", "bb", &first]);
    t.ok(&["push", "-q", &first]);
    let pulled_digest = registry_digest(&first);
    // Another store pulls it and pushes it under another name.
    let u = TestContext::new();
    u.ok(&["pull", "-q", &first]);
    let second = format!("{}/keep/b:v1", registry.addr);
    u.ok(&["tag", &first, &second]);
    let pushed = u.stdout(&["push", "-q", &second]);
    assert_eq!(pushed.trim(), pulled_digest);
    assert_eq!(registry_digest(&second), pulled_digest);
}

#[test]
fn save_and_load_keep_the_image_id() {
    let t = TestContext::new();
    t.make_busybox("bb");
    let id = t.stdout(&["inspect", "-f", "{{.Id}}", "bb"]);
    let archive = t.path("bb.tar");
    t.ok(&["save", "-o", archive.to_str().unwrap(), "bb"]);
    let u = TestContext::new();
    u.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(u.stdout(&["inspect", "-f", "{{.Id}}", "bb"]), id);
}

#[test]
fn an_oci_archive_loads_with_its_name_and_ids() {
    let t = TestContext::new();
    t.make_busybox("bb");
    let ctx = t.context("app", &[("Dockerfile", "FROM bb\nRUN echo x > /x\n")]);
    let archive = t.path("app-oci.tar");
    let id = t.stdout(&[
        "build",
        "-q",
        "-t",
        "app:v1",
        "-o",
        &format!("type=oci,dest={}", archive.display()),
        ctx.to_str().unwrap(),
    ]);
    let u = TestContext::new();
    let loaded = u.stdout(&["load", "-i", archive.to_str().unwrap()]);
    assert!(loaded.contains("Loaded image: app:v1"), "{loaded}");
    assert_eq!(
        u.stdout(&["inspect", "-f", "{{.Id}}", "app:v1"]).trim(),
        id.trim()
    );
    assert_eq!(u.stdout(&["run", "app:v1", "cat", "/x"]), "x\n");
}
