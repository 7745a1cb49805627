//! Filesystem parity with BuildKit: owners from user names, symlinks among
//! COPY sources and in the destination, `.dockerignore` re-inclusion, and
//! RUN bind mounts, each checked in the built image.

use crate::support::TestContext;
use crate::text;

/// `sh -c SCRIPT` as root in `image`.
fn sh(t: &TestContext, image: &str, script: &str) -> String {
    t.stdout(&[
        "run",
        "--rm",
        "-u",
        "0",
        "--entrypoint",
        "",
        image,
        "sh",
        "-c",
        script,
    ])
}

/// Builds `dockerfile` with `files` as its context into `tag`.
fn build(t: &TestContext, tag: &str, dockerfile: &str, files: &[(&str, &str)]) {
    let mut all = vec![("Dockerfile", dockerfile)];
    all.extend_from_slice(files);
    let ctx = t.context(tag, &all);
    t.ok(&["build", "-q", "-t", tag, ctx.to_str().unwrap()]);
}

/// The error output of a build that must fail.
fn build_error(t: &TestContext, name: &str, dockerfile: &str, files: &[(&str, &str)]) -> String {
    let mut all = vec![("Dockerfile", dockerfile)];
    all.extend_from_slice(files);
    let ctx = t.context(name, &all);
    let out = t.cmd(&["build", ctx.to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success(), "{name} built: {}", text(&out));
    text(&out)
}

#[test]
fn user_names_become_their_primary_group_and_numbers_keep_gid_equal_uid() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let df = "FROM busybox\n\
              RUN echo app:x:1000:1001::/home/app:/bin/sh >> /etc/passwd \\\n\
                  && echo appgrp:x:1001: >> /etc/group && echo staff:x:50: >> /etc/group\n\
              USER app\n\
              WORKDIR /work/deep\n\
              USER 1002\n\
              WORKDIR /num\n\
              USER app:staff\n\
              WORKDIR /grp\n\
              USER root\n\
              COPY --chown=app f /f1\n\
              COPY --chown=app:staff f /f2\n\
              COPY --chown=1000 f /f3\n\
              COPY --chown=app:1234 f /f4\n";
    build(&t, "owners", df, &[("f", "x")]);
    let out = sh(
        &t,
        "owners",
        "cd / && stat -c '%u:%g %n' work work/deep num grp f1 f2 f3 f4",
    );
    assert_eq!(
        out,
        "1000:1001 work\n1000:1001 work/deep\n1002:1002 num\n1000:50 grp\n\
         1000:1001 f1\n1000:50 f2\n1000:1000 f3\n1000:1234 f4\n"
    );
}

#[test]
fn a_symlink_among_several_sources_is_copied_as_its_file() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let ctx = t.context(
        "links",
        &[
            (
                "Dockerfile",
                "FROM busybox\nCOPY a b link dest/\nCOPY l* wild/\nCOPY dirlink contents/\n",
            ),
            ("a", "A"),
            ("b", "B"),
            ("d/inner", "I"),
        ],
    );
    std::os::unix::fs::symlink("a", ctx.join("link")).unwrap();
    std::os::unix::fs::symlink("d", ctx.join("dirlink")).unwrap();
    t.ok(&["build", "-q", "-t", "links", ctx.to_str().unwrap()]);
    let out = sh(
        &t,
        "links",
        "cd / && for f in dest/a dest/b dest/link wild/link contents/inner; do \
         test -L $f && echo $f is a link; echo $f=$(cat $f); done",
    );
    assert_eq!(
        out,
        "dest/a=A\ndest/b=B\ndest/link=A\nwild/link=A\ncontents/inner=I\n"
    );
}

#[test]
fn a_copy_never_hides_a_symlinked_directory_of_the_base() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    build(
        &t,
        "merged",
        "FROM busybox\nRUN mkdir -p /usr/lib && echo old > /usr/lib/old && ln -s usr/lib /lib\n",
        &[],
    );
    // Into the link: the files land behind it, and it stays a link.
    build(
        &t,
        "into",
        "FROM merged\nCOPY rootfs/lib/ /lib/\nADD rootfs/lib /lib\n",
        &[("rootfs/lib/mod.so", "M")],
    );
    let out = sh(&t, "into", "readlink /lib; cat /usr/lib/mod.so /lib/old");
    assert_eq!(out, "usr/lib\nMold\n");
    // A tree with `lib/` onto `/`: BuildKit refuses, and so does rbuild,
    // rather than shadow /lib (and everything behind it) with a directory.
    for instruction in ["COPY", "ADD"] {
        let err = build_error(
            &t,
            &format!("onto-{instruction}"),
            &format!("FROM merged\n{instruction} rootfs/ /\n"),
            &[("rootfs/lib/mod.so", "M")],
        );
        assert!(err.contains("cannot copy to non-directory: /lib"), "{err}");
    }
}

#[test]
fn copies_keep_the_source_mtimes_of_files_and_of_the_copied_directory() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let ctx = t.context(
        "times",
        &[
            (
                "Dockerfile",
                "FROM busybox\nCOPY dir /fresh\nRUN mkdir /existing && touch -d @5 /existing\nCOPY dir /existing\n",
            ),
            ("dir/sub/f", "f"),
        ],
    );
    for (path, secs) in [
        ("dir/sub/f", 1_000_000_000),
        ("dir/sub", 1_100_000_000),
        ("dir", 1_200_000_000),
    ] {
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
        std::fs::File::open(ctx.join(path))
            .unwrap()
            .set_modified(time)
            .unwrap();
    }
    let c = ctx.to_str().unwrap();
    t.ok(&[
        "build",
        "-q",
        "--source-date-epoch",
        "none",
        "-t",
        "times",
        c,
    ]);
    let out = sh(
        &t,
        "times",
        "cd / && stat -c '%Y %n' fresh fresh/sub fresh/sub/f existing existing/sub/f",
    );
    assert_eq!(
        out,
        "1200000000 fresh\n1100000000 fresh/sub\n1000000000 fresh/sub/f\n\
         1200000000 existing\n1000000000 existing/sub/f\n"
    );
}

#[test]
fn cache_mounts_honour_owner_mode_ro_from_source_and_private_sharing() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let df = "FROM busybox AS seed\n\
              RUN mkdir /seed && echo seeded > /seed/s\n\
              FROM busybox AS a\n\
              RUN --mount=type=cache,target=/c,id=p,sharing=private sh -c 'touch /c/a; sleep 2; ls /c > /seen'\n\
              FROM busybox AS b\n\
              RUN --mount=type=cache,target=/c,id=p,sharing=private sh -c 'touch /c/b; sleep 2; ls /c > /seen'\n\
              FROM busybox\n\
              RUN --mount=type=cache,target=/c,uid=1000,gid=1500,mode=0750 stat -c '%u:%g %a' /c > /owner\n\
              RUN --mount=type=cache,target=/r,ro sh -c 'touch /r/x 2>/dev/null && echo rw > /ro || echo ro > /ro'\n\
              RUN --mount=type=cache,target=/f,from=seed,source=/seed cat /f/s > /seeded\n\
              RUN --mount=type=tmpfs,target=/t,size=1m df -k /t | tail -1 | awk '{print $2}' > /tsize\n\
              COPY --from=a /seen /a\n\
              COPY --from=b /seen /b\n";
    build(&t, "caches", df, &[]);
    let out = sh(&t, "caches", "cd / && cat owner ro seeded tsize a b");
    assert_eq!(out, "1000:1500 750\nro\nseeded\n1024\na\nb\n");
    // A symlink a RUN left in a cache never leads a `source` out of it.
    let probe = format!("/tmp/rbuild-cache-escape-{}", std::process::id());
    let df = format!(
        "FROM busybox\n\
         RUN --mount=type=cache,target=/c,id=esc ln -s / /c/up\n\
         RUN --mount=type=cache,target=/c,id=esc,source=up{probe} touch /c/made\n"
    );
    build(&t, "escape", &df, &[]);
    assert!(
        !std::path::Path::new(&probe).exists(),
        "{probe} was made on the host"
    );
}

#[test]
fn dockerignore_exceptions_inside_excluded_directories_are_copied() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    build(
        &t,
        "reinclude",
        "FROM busybox\nCOPY . /ctx/\nCOPY sub /sub\n",
        &[
            (".dockerignore", "sub\n!sub/b.txt\n"),
            ("sub/a.txt", "a"),
            ("sub/b.txt", "b"),
            ("top.txt", "t"),
        ],
    );
    let out = sh(&t, "reinclude", "cd / && find ctx/sub sub | sort");
    assert_eq!(out, "ctx/sub\nctx/sub/b.txt\nsub\nsub/b.txt\n");
    build(
        &t,
        "deep",
        "FROM busybox\nCOPY . /ctx/\n",
        &[
            (".dockerignore", "*\n!sub/deep/c.log\n"),
            ("sub/deep/c.log", "c"),
            ("sub/deep/d.log", "d"),
            ("top.txt", "t"),
        ],
    );
    let out = sh(&t, "deep", "cd /ctx && find . | sort");
    assert_eq!(out, ".\n./sub\n./sub/deep\n./sub/deep/c.log\n");
}

#[test]
fn bind_mounts_show_exactly_their_source_and_key_on_it() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let df = "FROM busybox AS build\n\
              RUN mkdir -p /out/sub && echo built > /out/sub/artifact\n\
              FROM scratch AS one\n\
              COPY f /usr/lib/f\n\
              FROM busybox\n\
              RUN --mount=type=bind,source=sub,target=/s find /s | sort > /sub-list\n\
              RUN --mount=type=bind,source=sub,target=/s,rw sh -c 'echo x > /s/new && cat /s/new' > /rw-out\n\
              RUN --mount=type=bind,source=sub,target=/s ls /s > /after-rw\n\
              RUN --mount=type=bind,target=/tmp find /tmp | sort > /ctx-list\n\
              RUN --mount=type=bind,from=build,source=/out/sub/artifact,target=/one cat /one > /file\n\
              RUN --mount=type=bind,from=one,source=/usr/lib,target=/m cat /m/f > /image\n";
    let ctx = t.context(
        "binds",
        &[
            ("Dockerfile", df),
            (".dockerignore", "secret.key\n**/*.tmp\n"),
            ("sub/keep.txt", "k"),
            ("sub/x.tmp", "x"),
            ("secret.key", "s"),
            ("f", "from-image"),
        ],
    );
    let c = ctx.to_str().unwrap();
    t.ok(&["build", "-q", "-t", "binds", c]);
    let out = sh(
        &t,
        "binds",
        "cd / && cat ctx-list sub-list rw-out after-rw file image",
    );
    assert_eq!(
        out,
        "/tmp\n/tmp/.dockerignore\n/tmp/Dockerfile\n/tmp/f\n/tmp/sub\n/tmp/sub/keep.txt\n\
         /s\n/s/keep.txt\nx\nkeep.txt\nbuilt\nfrom-image"
    );
    // An ignored file changed: every step is cached. A file outside `sub`
    // changed: the bind of the whole context runs again, those of `sub` not.
    std::fs::write(ctx.join("secret.key"), "changed").unwrap();
    let log = text(&t.ok(&["build", "--progress=plain", "-t", "binds", c]));
    assert!(crate::step_cached(&log, "target=/tmp find"), "{log}");
    std::fs::write(ctx.join("f"), "changed").unwrap();
    let log = text(&t.ok(&["build", "--progress=plain", "-t", "binds", c]));
    assert!(!crate::step_cached(&log, "target=/tmp find"), "{log}");
    assert!(
        crate::step_cached(&log, "source=sub,target=/s find"),
        "{log}"
    );
}

#[test]
fn a_context_bind_a_copy_would_show_unchanged_is_bound_as_it_is() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let t = TestContext::new();
    t.make_busybox("busybox");
    let df = "FROM busybox\n\
              RUN --mount=type=bind,source=src,target=/s,rw sh -c 'echo new > /s/new && echo w > /s/main.c && rm /s/data.txt && chmod 600 /s/main.c && ls /s && cat /s/main.c' > /rw-out\n\
              RUN --mount=type=bind,source=src,target=/s sh -c 'stat -c \"%u:%g %a %n\" /s /s/main.c; ls /s; touch /s/x || echo refused; grep \" /s \" /proc/self/mountinfo | cut -d\" \" -f4' > /ro-out 2>/dev/null\n\
              RUN --mount=type=bind,target=/c find /c | sort > /ctx-list\n";
    let ctx = t.context(
        "asis",
        &[
            ("Dockerfile", df),
            (".dockerignore", "secret.key\n"),
            ("secret.key", "s"),
            ("src/main.c", "m"),
            ("src/data.txt", "d"),
        ],
    );
    for dir in [&ctx, &ctx.join("src")] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    t.ok(&["build", "-q", "-t", "asis", ctx.to_str().unwrap()]);
    let out = sh(&t, "asis", "cd / && cat rw-out ro-out ctx-list");
    let host_src = ctx.join("src");
    let host_src = host_src.to_str().unwrap();
    let lines: Vec<&str> = out.lines().collect();
    // rw: the writes are seen by the RUN...
    assert_eq!(lines[..4], ["main.c", "new", "w", "0:0 755 /s"], "{out}");
    // ...and never reach the host; a read-only one refuses them.
    assert_eq!(
        std::fs::read_to_string(ctx.join("src/main.c")).unwrap(),
        "m"
    );
    assert_eq!(
        std::fs::read_to_string(ctx.join("src/data.txt")).unwrap(),
        "d"
    );
    assert!(!ctx.join("src/new").exists() && !ctx.join("src/x").exists());
    let mode = std::fs::metadata(ctx.join("src/main.c")).unwrap().mode();
    assert_eq!(mode & 0o777, 0o644);
    assert_eq!(
        lines[4..8],
        ["0:0 644 /s/main.c", "data.txt", "main.c", "refused"],
        "{out}"
    );
    // The bind of `src` is the host directory itself, not a copy.
    assert!(
        host_src.ends_with(lines[8]) && lines[8].ends_with("/asis/src"),
        "{out}"
    );
    // A whole-context bind still hides what .dockerignore excludes.
    assert_eq!(
        lines[9..],
        [
            "/c",
            "/c/.dockerignore",
            "/c/Dockerfile",
            "/c/src",
            "/c/src/data.txt",
            "/c/src/main.c"
        ],
        "{out}"
    );
}

#[test]
fn copy_link_makes_a_layer_independent_of_its_base() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let df = "FROM busybox\n\
              ARG V=1\n\
              RUN mkdir -p /opt/real && ln -s real /opt/link && ln -s real /opt/link2 && echo $V > /v\n\
              COPY --link a.txt /opt/link/a.txt\n\
              COPY --link --chmod=600 a.txt /opt/link2/c.txt\n";
    let ctx = t.context("link", &[("Dockerfile", df), ("a.txt", "A")]);
    let c = ctx.to_str().unwrap();
    t.ok(&["build", "-q", "-t", "link", c]);
    let check = "cd /opt && stat -c '%F %a %n' link link2 link/a.txt real/c.txt; ls real; cat /v";
    let out = sh(&t, "link", check);
    assert_eq!(
        out,
        "directory 755 link\nsymbolic link 777 link2\nregular file 644 link/a.txt\n\
         regular file 600 real/c.txt\nc.txt\n1\n",
        "--link does not follow the base's symlink; with --chmod it copies as usual"
    );
    // Another base: the linked copy is not run again, and lands on it.
    let log = text(&t.ok(&[
        "build",
        "--progress=plain",
        "--build-arg",
        "V=2",
        "-t",
        "link",
        c,
    ]));
    assert!(!crate::step_cached(&log, "RUN mkdir"), "{log}");
    assert!(crate::step_cached(&log, "COPY --link a.txt"), "{log}");
    assert!(!crate::step_cached(&log, "COPY --link --chmod"), "{log}");
    assert_eq!(
        sh(&t, "link", check),
        out.replace("\n1\n", "\n2\n"),
        "the cached layer sits on the new base"
    );
    // Names cannot be looked up below a linked copy (BuildKit refuses too).
    let err = build_error(
        &t,
        "link-chown",
        "FROM busybox
COPY --link --chown=nobody a.txt /x
",
        &[("a.txt", "A")],
    );
    assert!(err.contains("use numeric ids"), "{err}");
    build(
        &t,
        "link-numeric",
        "FROM busybox
COPY --link --chown=7:8 a.txt /x
",
        &[("a.txt", "A")],
    );
    assert_eq!(sh(&t, "link-numeric", "stat -c %u:%g /x"), "7:8\n");
}

#[test]
fn chmod_modes_the_directories_a_copy_makes_and_unpack_false_keeps_archives() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let ctx = t.context(
        "made",
        &[
            (
                "Dockerfile",
                "FROM busybox\n\
                 COPY --chmod=0750 dir /d\n\
                 COPY --chmod=0700 a.txt /opt/made/\n\
                 ADD --unpack=false local.tar /kept/\n\
                 ADD local.tar /unpacked/\n",
            ),
            ("dir/s/b.txt", "b"),
            ("a.txt", "a"),
            ("t/l", "l"),
        ],
    );
    let status = std::process::Command::new("tar")
        .args(["-cf", "local.tar", "-C", "t", "l"])
        .current_dir(&ctx)
        .status()
        .unwrap();
    assert!(status.success());
    t.ok(&["build", "-q", "-t", "made", ctx.to_str().unwrap()]);
    let out = sh(
        &t,
        "made",
        "cd / && stat -c '%a %n' d d/s d/s/b.txt opt opt/made opt/made/a.txt && ls kept && ls unpacked",
    );
    assert_eq!(
        out,
        "750 d\n750 d/s\n750 d/s/b.txt\n700 opt\n700 opt/made\n700 opt/made/a.txt\nlocal.tar\nl\n",
        "made directories (also the missing /opt) take the octal --chmod mode"
    );
}
