//! Lowering matches BuildKit on the behaviours issue 17 found different:
//! each test lowers a small Dockerfile (no root, no network) and checks
//! the op graph or image config BuildKit would produce.

use std::collections::BTreeMap;

use rbuild_frontend::graph::{BuildGraph, FileAction, MountKind, Op, RemoteSource, Sharing};
use rbuild_frontend::{BuildOptions, Dockerfile};

fn options() -> BuildOptions {
    BuildOptions {
        platform: String::from("linux/amd64"),
        ..Default::default()
    }
}

fn lower(source: &str) -> Result<BuildGraph, String> {
    let df = Dockerfile::parse("Dockerfile", source.as_bytes()).map_err(|e| e.to_string())?;
    df.lower(&options(), &BTreeMap::new())
        .map_err(|e| e.to_string())
}

fn graph(source: &str) -> BuildGraph {
    lower(source).unwrap_or_else(|e| panic!("{e}"))
}

fn error(source: &str) -> String {
    lower(source).expect_err("lowering must fail")
}

/// The op of the target node.
fn target_op(g: &BuildGraph) -> &Op {
    &g.nodes[g.target.0].op
}

const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[test]
fn a_scratch_stage_gets_buildkits_working_dir_and_path() {
    let g = graph("FROM scratch\n");
    assert_eq!(g.config.working_dir, "/");
    assert_eq!(g.config.env, [PATH]);
    let g = graph("FROM scratch\nENV PATH=/x A=1\n");
    assert_eq!(g.config.env, ["PATH=/x", "A=1"]);
}

#[test]
fn a_run_on_scratch_sees_the_default_path() {
    let g = graph("FROM scratch\nRUN true\n");
    let Op::Exec(exec) = target_op(&g) else {
        panic!("RUN lowers to an exec");
    };
    assert_eq!(exec.env, [PATH]);
    assert_eq!(exec.cwd, "/");
}

#[test]
fn env_words_see_the_environment_of_before_the_instruction() {
    let g = graph("FROM scratch\nENV A=0\nENV A=1 C=${A}-x D=$C\n");
    assert_eq!(g.config.env, [PATH, "A=1", "C=0-x", "D="]);
    assert_eq!(g.history.last().unwrap().created_by, "ENV A=1 C=0-x D=");
}

#[test]
fn arg_words_see_the_variables_of_before_the_instruction() {
    let g = graph("FROM scratch\nARG A=0\nARG A=1 C=${A}-x\nENV C=$C\n");
    assert_eq!(g.config.env, [PATH, "C=0-x"]);
    let g = graph("ARG A=0\nARG A=1 B=${A}-x\nFROM scratch\nARG B\nENV B=$B\n");
    assert_eq!(g.config.env, [PATH, "B=0-x"]);
}

#[test]
fn unknown_flags_are_errors_where_buildkit_rejects_them() {
    for (line, keyword) in [
        ("WORKDIR --x=1 /a", "WORKDIR"),
        ("USER --x=1 me", "USER"),
        ("EXPOSE --x=1 80", "EXPOSE"),
        ("VOLUME --x=1 /v", "VOLUME"),
        ("SHELL --x=1 [\"/bin/sh\",\"-c\"]", "SHELL"),
        ("MAINTAINER --x=1 me", "MAINTAINER"),
        ("ONBUILD --x=1 RUN true", "ONBUILD"),
    ] {
        let e = error(&format!("FROM scratch\n{line}\n"));
        assert!(
            e.starts_with(&format!("Dockerfile:2:1: unknown flag: --x for {keyword}")),
            "{e}"
        );
    }
}

#[test]
fn stopsignal_and_arg_let_unknown_flags_pass() {
    let g = graph("FROM scratch\nARG --x=1 A=1\nSTOPSIGNAL --x=1 SIGTERM\nENV A=$A\n");
    assert_eq!(g.config.stop_signal, "SIGTERM");
    assert_eq!(g.config.env, [PATH, "A=1"]);
}

#[test]
fn a_check_directive_is_accepted_with_a_notice() {
    let g = graph("# check=skip=all\nFROM scratch\n");
    assert_eq!(g.warnings.len(), 1);
    assert!(
        g.warnings[0].contains("build checks do not run yet"),
        "{:?}",
        g.warnings
    );
    assert!(graph("FROM scratch\n").warnings.is_empty());
}

/// The mkfile actions of the target node.
fn mkfiles(g: &BuildGraph) -> Vec<(String, String, u32)> {
    let Op::File(f) = target_op(g) else {
        panic!("COPY lowers to a file op");
    };
    f.actions
        .iter()
        .filter_map(|a| match a {
            FileAction::Mkfile {
                path, data, mode, ..
            } => Some((
                path.clone(),
                String::from_utf8_lossy(data).into_owned(),
                *mode,
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn heredoc_chmod_sets_the_files_mode() {
    let g = graph("FROM scratch\nCOPY --chmod=0755 <<EOF /run.sh\necho hi\nEOF\n");
    assert_eq!(
        mkfiles(&g),
        [(String::from("/run.sh"), String::from("echo hi\n"), 0o755)]
    );
    let g = graph("FROM scratch\nCOPY --chmod=u+x <<EOF /run.sh\necho hi\nEOF\n");
    assert_eq!(mkfiles(&g)[0].2, 0o744);
    let g = graph("FROM scratch\nCOPY <<EOF /f\nx\nEOF\n");
    assert_eq!(mkfiles(&g)[0].2, 0o644);
}

#[test]
fn chmod_is_expanded_before_it_is_parsed() {
    let g = graph("FROM scratch\nARG MODE=0700\nCOPY --chmod=$MODE <<EOF /f\nx\nEOF\n");
    assert_eq!(mkfiles(&g)[0].2, 0o700);
    let c = copy_of("FROM scratch\nARG MODE=u+x\nCOPY --chmod=${MODE} a /d/\n");
    assert_eq!(c.chmod.as_deref(), Some("u+x"));
}

#[test]
fn an_invalid_chmod_is_an_error_at_its_line() {
    let e = error("FROM scratch\nCOPY --chmod=8 a /b\n");
    assert!(e.starts_with("Dockerfile:2:1: invalid --chmod=8"), "{e}");
}

#[test]
fn an_unquoted_heredoc_is_expanded_with_escapes_and_quotes_as_buildkit() {
    let g = graph(concat!(
        "FROM scratch\nENV NAME=world\n",
        "COPY <<EOF /f\n",
        "hello $NAME\n",
        "literal=\\$NAME\n",
        "quoted='$NAME' \"$NAME\"\n",
        "back\\\\slash ${NAME:-x}\n",
        "EOF\n",
    ));
    assert_eq!(
        mkfiles(&g)[0].1,
        "hello world\nliteral=$NAME\nquoted='world' \"world\"\nback\\slash world\n"
    );
}

#[test]
fn a_quoted_heredoc_is_verbatim() {
    for delimiter in ["'EOF'", "\"EOF\""] {
        let g = graph(&format!(
            "FROM scratch\nENV NAME=world\nCOPY <<{delimiter} /f\n$NAME \\$NAME\nEOF\n"
        ));
        assert_eq!(mkfiles(&g)[0].1, "$NAME \\$NAME\n");
    }
}

#[test]
fn a_heredoc_copy_does_not_read_the_context() {
    // Its key is the hash of its op and parent: no context input, so an
    // edit elsewhere in the Dockerfile (part of the context) cannot change it.
    let g = graph("FROM scratch\nCOPY <<EOF /f\nx\nEOF\n");
    let target = &g.nodes[g.target.0];
    assert_eq!(target.inputs.len(), 1);
    assert!(matches!(g.nodes[target.inputs[0].0].op, Op::Scratch));
    let a = graph("FROM scratch\nLABEL a=1\nCOPY <<EOF /f\nx\nEOF\n");
    let b = graph("FROM scratch\nLABEL a=2\nCOPY <<EOF /f\nx\nEOF\n");
    assert_eq!(a.nodes[a.target.0].op, b.nodes[b.target.0].op);
    // With a context source as well, the context stays an input.
    let g = graph("FROM scratch\nCOPY <<EOF a.txt /d/\nx\nEOF\n");
    assert_eq!(g.nodes[g.target.0].inputs.len(), 2);
}

#[test]
fn expose_validates_ports_ranges_and_protocols_with_the_position() {
    let g = graph("FROM scratch\nENV P=81\nEXPOSE 80 $P/udp 90-91/SCTP\n");
    let keys: Vec<&str> = g.config.exposed_ports.keys().map(String::as_str).collect();
    assert_eq!(keys, ["80/tcp", "81/udp", "90/sctp", "91/sctp"]);
    assert_eq!(
        g.history.last().unwrap().created_by,
        "EXPOSE map[80/tcp:{} 81/udp:{} 90/sctp:{} 91/sctp:{}]"
    );
    for (spec, message) in [
        ("1-200000", "invalid containerPort: 1-200000"),
        ("1-4294967296", "invalid containerPort: 1-4294967296"),
        ("90-80", "invalid port range: 90-80"),
        ("80/icmp", "invalid proto: icmp"),
    ] {
        let e = error(&format!("FROM scratch\n\nEXPOSE 22 {spec}\n"));
        assert!(e.starts_with("Dockerfile:3:1: EXPOSE: "), "{e}");
        assert!(e.contains(message), "{e}");
    }
}

/// The mounts of the target node (a RUN).
fn mounts(source: &str) -> Vec<MountKind> {
    let g = graph(source);
    let Op::Exec(exec) = target_op(&g) else {
        panic!("RUN lowers to an exec");
    };
    exec.mounts.iter().map(|m| m.kind.clone()).collect()
}

#[test]
fn cache_mount_options_are_carried_in_the_graph() {
    let m = mounts(concat!(
        "FROM scratch AS seed\nFROM scratch\n",
        "RUN --mount=type=cache,target=/c,sharing=private,uid=1000,gid=100,mode=0750,ro,from=seed,source=/s true\n"
    ));
    assert_eq!(
        m,
        [MountKind::Cache {
            id: String::from("/c"),
            sharing: Sharing::Private,
            uid: Some(1000),
            gid: Some(100),
            mode: Some(0o750),
            readonly: true,
            from: Some(1),
            source: Some(String::from("/s")),
        }]
    );
}

#[test]
fn tmpfs_size_and_bind_rw_are_carried_in_the_graph() {
    let m = mounts(
        "FROM scratch\nRUN --mount=type=tmpfs,target=/t,size=64m --mount=target=/b,rw true\n",
    );
    assert_eq!(
        m[0],
        MountKind::Tmpfs {
            size: Some(64 << 20)
        }
    );
    assert!(
        matches!(
            m[1],
            MountKind::Bind {
                readwrite: true,
                ..
            }
        ),
        "{m:?}"
    );
}

#[test]
fn a_bad_mount_option_is_an_error_at_its_line() {
    let e = error("FROM scratch\nRUN --mount=type=bind,target=/a,uid=1 true\n");
    assert!(
        e.starts_with("Dockerfile:2:1: RUN --mount=type=bind,target=/a,uid=1: uid not allowed for \"bind\" type mounts"),
        "{e}"
    );
}

/// The copy actions of the target node.
fn copy_of(source: &str) -> rbuild_frontend::graph::CopyAction {
    let g = graph(source);
    let Op::File(f) = target_op(&g) else {
        panic!("COPY lowers to a file op");
    };
    match &f.actions[0] {
        FileAction::Copy(c) => c.clone(),
        other => panic!("not a copy: {other:?}"),
    }
}

#[test]
fn add_checksum_unpack_and_link_are_carried() {
    let c = copy_of("FROM scratch\nADD --checksum=sha256:abc https://example.com/a.tar /d/\n");
    assert_eq!(
        c.remote,
        Some(RemoteSource::Http {
            url: String::from("https://example.com/a.tar"),
            checksum: Some(String::from("sha256:abc")),
        })
    );
    assert!(
        !c.extract_archives,
        "a remote archive is not unpacked by default"
    );
    let c = copy_of("FROM scratch\nADD --unpack=true https://example.com/a.tar /d/\n");
    assert!(c.extract_archives);
    let c = copy_of("FROM scratch\nADD --checksum=0123abcd https://example.com/r.git#v1 /d/\n");
    assert!(
        matches!(&c.remote, Some(RemoteSource::Git { checksum: Some(s), .. }) if s == "0123abcd"),
        "{c:?}"
    );
    let c = copy_of("FROM scratch\nADD --unpack=false a.tar /d/\n");
    assert!(!c.extract_archives);
    assert!(copy_of("FROM scratch\nADD a.tar /d/\n").extract_archives);
    assert!(copy_of("FROM scratch\nCOPY --link a /d/\n").link);
}

#[test]
fn arg_is_recorded_in_the_history_as_an_empty_layer() {
    let g = graph("FROM scratch\nARG A B=x${A}y\n");
    let last = g.history.last().unwrap();
    assert_eq!(last.created_by, "ARG A B=xy");
    assert!(last.empty_layer);
}

#[test]
fn a_run_history_lists_the_stages_args_with_their_current_values() {
    // BuildKit's runCommandString: every ARG of the stage, the value the
    // environment holds (an ENV of the same name wins), "" when unset.
    let g = graph("FROM scratch\nARG A=1 U\nENV A=2\nRUN true\n");
    assert_eq!(
        g.history.last().unwrap().created_by,
        "RUN |2 A=2 U= /bin/sh -c true # buildkit"
    );
}

#[test]
fn a_stage_from_a_stage_inherits_its_arg_values_but_not_its_arg_list() {
    let g = graph("FROM scratch AS one\nARG L=l1\nFROM one\nRUN true\n");
    let Op::Exec(exec) = target_op(&g) else {
        panic!("RUN lowers to an exec");
    };
    assert_eq!(exec.env, [PATH, "L=l1"]);
    assert_eq!(
        g.history.last().unwrap().created_by,
        "RUN /bin/sh -c true # buildkit"
    );
}

#[test]
fn an_arg_after_an_env_of_the_same_name_wins_for_later_words() {
    // BuildKit adds ARG values to the state's environment, as ENV does.
    let g = graph("FROM scratch\nENV V=env\nARG V=arg\nLABEL v=$V\n");
    assert_eq!(g.config.labels["v"], "arg");
    assert_eq!(g.config.env, [PATH, "V=env"]);
}

#[test]
fn run_network_and_security_are_typed_in_the_graph() {
    use rbuild_frontend::graph::{NetworkMode, Security};
    let g = graph("FROM scratch\nRUN --network=none --security=insecure true\n");
    let Op::Exec(exec) = target_op(&g) else {
        panic!("RUN lowers to an exec");
    };
    assert_eq!(
        (exec.network, exec.security),
        (NetworkMode::None, Security::Insecure)
    );
    let e = error("FROM scratch\nRUN --security=lax true\n");
    assert!(
        e.contains("RUN --security=lax: expected sandbox or insecure"),
        "{e}"
    );
}

#[test]
fn stopsignal_is_checked_as_buildkit_checks_it() {
    let g = graph("FROM scratch\nARG S=sigkill\nSTOPSIGNAL $S\n");
    assert_eq!(g.config.stop_signal, "sigkill");
    let e = error("FROM scratch\nSTOPSIGNAL SIGNOPE\n");
    assert!(
        e.starts_with("Dockerfile:2:1: Invalid signal: SIGNOPE"),
        "{e}"
    );
}

#[test]
fn a_mount_from_an_image_in_any_key_case_is_a_base_image() {
    let df = Dockerfile::parse(
        "Dockerfile",
        b"FROM scratch\nRUN --mount=type=bind,From=tools:1,target=/t true\n",
    )
    .unwrap();
    let bases = df.base_images(&options()).unwrap();
    let names: Vec<&str> = bases.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["tools:1"]);
}

#[test]
fn onbuild_registers_a_trigger_without_a_history_entry() {
    let g = graph("FROM scratch\nENV A=1\nONBUILD RUN true\n");
    assert_eq!(
        g.config.on_build.as_deref(),
        Some(&[String::from("RUN true")][..])
    );
    assert_eq!(g.history.len(), 1, "{:?}", g.history);
}

#[test]
fn platform_args_are_known_only_where_buildkit_declares_them() {
    // Global scope (FROM lines) sees them; a stage only the ARGs it declares.
    let g = graph(
        "FROM --platform=$BUILDPLATFORM scratch AS b\nFROM scratch\nARG TARGETARCH\nRUN echo $TARGETARCH $TARGETOS\n",
    );
    let Op::Exec(exec) = target_op(&g) else {
        panic!("RUN lowers to an exec");
    };
    assert_eq!(exec.env, [PATH, "TARGETARCH=amd64"]);
}

#[test]
fn a_from_platform_that_is_none_is_an_error_at_its_line() {
    let e = error("FROM scratch\nFROM --platform=linux/amd64/v3/x scratch\nRUN true\n");
    assert!(
        e.starts_with("Dockerfile:2:1: FROM --platform: invalid platform"),
        "{e}"
    );
    let e = error("ARG P=arm/v7\nFROM --platform=$P scratch\n");
    assert!(
        e.contains("is an architecture, not an operating system"),
        "{e}"
    );
}
