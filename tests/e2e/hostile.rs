//! Hostile names on every path that writes them: layers (unpack into the
//! store, `-o type=local|tar`, `COPY --from`) and `ADD` archives are
//! refused with an error naming the entry, and nothing beside the target
//! changes; non-UTF-8 names travel byte-exact.

use std::path::Path;

use crate::support::TestContext;
use crate::text;

/// A tar of (name, kind) entries with raw names (the tar crate refuses
/// `..`, hostile layers do not): kind "f:<text>" file, "l:<target>"
/// symlink, "h:<target>" hard link, "d" directory.
fn raw_tar(entries: Entries<'_>) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        let (k, arg) = kind.split_at(1);
        let arg = arg.strip_prefix(':').unwrap_or("");
        let data: &[u8] = match k {
            "f" => arg.as_bytes(),
            _ => &[],
        };
        h.set_entry_type(match k {
            "f" => tar::EntryType::Regular,
            "l" => tar::EntryType::Symlink,
            "h" => tar::EntryType::Link,
            _ => tar::EntryType::Directory,
        });
        h.as_old_mut().linkname[..arg.len().min(100)]
            .copy_from_slice(&arg.as_bytes()[..arg.len().min(100)]);
        if k == "f" {
            h.as_old_mut().linkname = [0; 100];
        }
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

/// Tar entries as [`raw_tar`] takes them.
type Entries<'a> = &'a [(&'a str, &'a str)];

/// Loads an image `tag` whose one layer is `layer` (a docker archive read
/// by `rbuild load`, which stores the layer without unpacking it).
fn load_image(t: &TestContext, tag: &str, layer: &[u8]) {
    use sha2::Digest;
    let diff_id = format!("sha256:{}", hex::encode(sha2::Sha256::digest(layer)));
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
    });
    let manifest = serde_json::json!([
        { "Config": "config.json", "RepoTags": [tag], "Layers": ["layer.tar"] }
    ]);
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("config.json", serde_json::to_vec(&config).unwrap()),
        ("manifest.json", serde_json::to_vec(&manifest).unwrap()),
        ("layer.tar", layer.to_vec()),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    let archive = t.path(&format!("{tag}.tar"));
    std::fs::write(&archive, b.into_inner().unwrap()).unwrap();
    t.ok(&["load", "-i", archive.to_str().unwrap()]);
}

/// Bait files around `dir/out`, and their content, to check afterwards.
fn bait(dir: &Path) -> Vec<(std::path::PathBuf, &'static str)> {
    let files = [
        (dir.join("keep"), "sibling"),
        (dir.join("out/keep"), "in the destination"),
        (dir.join("up/keep"), "beside the parent"),
    ];
    for (p, content) in &files {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    files.to_vec()
}

/// No file of the store is named `keep` (the name hostile entries write).
fn assert_store_clean(t: &TestContext) {
    let found: Vec<_> = walkdir::WalkDir::new(t.root())
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_name() == "keep" || e.file_name() == "x")
        .map(|e| e.path().to_path_buf())
        .collect();
    assert!(found.is_empty(), "written into the store: {found:?}");
}

/// What the store's `tmp/` holds (a finished command leaves nothing).
fn store_tmp(t: &TestContext) -> Vec<std::ffi::OsString> {
    std::fs::read_dir(t.root().join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect()
}

fn assert_intact(files: &[(std::path::PathBuf, &str)]) {
    for (p, content) in files {
        assert_eq!(
            std::fs::read_to_string(p).ok().as_deref(),
            Some(*content),
            "{} was changed",
            p.display()
        );
    }
}

#[test]
fn hostile_layers_are_refused_on_export_copy_from_and_run() {
    let t = TestContext::new();
    let layers: [(&str, Entries<'_>, &str); 4] = [
        ("wh-dotdot", &[("out/.wh...", "f:")], ".wh..."),
        (
            "through-link",
            &[("up", "l:../.."), ("up/keep", "f:changed")],
            "symlink up",
        ),
        ("hard-out", &[("x", "h:../keep")], "`..` leaves"),
        ("dotdot", &[("../keep", "f:changed")], "`..` leaves"),
    ];
    for (tag, entries, message) in layers {
        load_image(&t, tag, &raw_tar(entries));
        let work = t.path(&format!("work-{tag}"));
        let files = bait(&work);
        let ctx = t.context(
            &format!("ctx-{tag}"),
            &[("Dockerfile", &format!("FROM {tag}\n"))],
        );
        for output in [
            format!("type=local,dest={}", work.join("out").display()),
            format!("type=tar,dest={}", work.join("out/fs.tar").display()),
        ] {
            let out = t
                .cmd(&["build", "-q", ctx.to_str().unwrap(), "-o", &output])
                .output()
                .unwrap();
            assert!(!out.status.success(), "{tag} {output}: {}", text(&out));
            assert!(
                text(&out).contains(message),
                "{tag} {output}: {}",
                text(&out)
            );
            assert_intact(&files);
        }
        for dockerfile in [
            format!("FROM scratch\nCOPY --from={tag} / /copied/\n"),
            format!("FROM {tag}\nRUN true\n"),
        ] {
            std::fs::write(ctx.join("Dockerfile"), &dockerfile).unwrap();
            let out = t
                .cmd(&["build", "-q", ctx.to_str().unwrap()])
                .output()
                .unwrap();
            assert!(!out.status.success(), "{dockerfile}: {}", text(&out));
            assert!(text(&out).contains(message), "{dockerfile}: {}", text(&out));
            assert_intact(&files);
        }
        let store_tmp = store_tmp(&t);
        assert!(
            store_tmp.is_empty(),
            "{tag}: store tmp/ holds {store_tmp:?}"
        );
        assert_store_clean(&t);
    }
}

#[test]
fn hostile_archives_in_add_are_refused() {
    let t = TestContext::new();
    let archives: [(Entries<'_>, &str); 3] = [
        (&[("../../keep", "f:changed")], "`..` leaves"),
        (
            &[("up", "l:../../.."), ("up/keep", "f:changed")],
            "symlink up",
        ),
        (&[("x", "h:/etc/passwd")], "x: No such file"),
    ];
    for (i, (entries, message)) in archives.into_iter().enumerate() {
        let work = t.path(&format!("work-{i}"));
        let files = bait(&work);
        let ctx = t.context(
            &format!("ctx-{i}"),
            &[("Dockerfile", "FROM scratch\nADD evil.tar /dest/\n")],
        );
        std::fs::write(ctx.join("evil.tar"), raw_tar(entries)).unwrap();
        let out = t
            .cmd(&["build", "-q", ctx.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{entries:?}: {}", text(&out));
        assert!(text(&out).contains(message), "{entries:?}: {}", text(&out));
        assert_intact(&files);
        assert!(ctx.join("evil.tar").is_file());
        assert_store_clean(&t);
        assert!(!Path::new("/keep").exists());
    }
}

#[test]
fn non_utf8_names_stay_byte_exact_from_context_to_layer_to_export() {
    use std::os::unix::ffi::OsStrExt;
    let t = TestContext::new();
    let name = std::ffi::OsStr::from_bytes(b"bad\xffname");
    let ctx = t.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM scratch AS first\nCOPY . /ctx/\nFROM scratch\nCOPY --from=first /ctx/ /again/\n",
        )],
    );
    std::fs::write(ctx.join(name), "bytes").unwrap();
    let local = t.path("local");
    let tarball = t.path("fs.tar");
    let ctx_arg = ctx.to_str().unwrap();
    for target in ["first", ""] {
        let mut args = vec!["build", "-q", ctx_arg];
        if !target.is_empty() {
            args.extend(["--target", target]);
        }
        let local_arg = format!("type=local,dest={}", local.display());
        let tar_arg = format!("type=tar,dest={}", tarball.display());
        args.extend(["-o", &local_arg, "-o", &tar_arg]);
        t.ok(&args);
        let dir = if target.is_empty() { "again" } else { "ctx" };
        assert_eq!(
            std::fs::read_to_string(local.join(dir).join(name)).unwrap(),
            "bytes"
        );
        let mut archive = tar::Archive::new(std::fs::File::open(&tarball).unwrap());
        let names: Vec<Vec<u8>> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path_bytes().into_owned())
            .collect();
        let wanted = [dir.as_bytes(), b"/bad\xffname"].concat();
        assert!(names.contains(&wanted), "{names:?}");
        std::fs::remove_dir_all(&local).unwrap();
    }
}

#[test]
fn a_build_that_fails_at_once_leaves_the_store_tmp_empty_and_the_filter_compiled() {
    // The first build of a store compiles the sandbox's seccomp filter on
    // a thread of its own and keeps it in the store: a build that fails
    // before the compile is done must wait for it rather than end while
    // its temp file is in tmp/ (what made the test above fail under load).
    let t = TestContext::new();
    t.ok(&["images"]);
    let ctx = t.context(
        "ctx",
        &[("Dockerfile", "FROM scratch\nCOPY missing.txt /\n")],
    );
    let out = t
        .cmd(&["build", "-q", ctx.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("missing.txt"), "{}", text(&out));
    let tmp = store_tmp(&t);
    assert!(tmp.is_empty(), "store tmp/ holds {tmp:?}");
    assert!(
        t.root().join("seccomp.bpf").is_file(),
        "the compiled filter is kept"
    );
}
