//! The sandbox for real: a busybox root on overlayfs, in new namespaces.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use rbuild_executor::{BindMount, ExecError, Network, Stream, run};

#[path = "support/host_mounts.rs"]
mod host_mounts;
mod support;

use host_mounts::rbuild_mounts;
use support::{Sandbox, output};

#[test]
fn exit_codes_and_streams() {
    let s = Sandbox::new();
    let (code, out, err) = output(&s.spec("echo one; echo two >&2; echo three; exit 3"));
    assert_eq!(code, 3);
    assert_eq!(out, "one\nthree\n");
    assert_eq!(err, "two\n");
    let (code, _, _) = output(&s.spec("sh -c 'kill -9 $$'; exit $?"));
    assert_eq!(code, 137, "killed by SIGKILL → 128+9");
    // pid 1 ignores signals it has no handler for, SIGKILL from inside
    // included, as in Docker without --init.
    let (code, out, _) = output(&s.spec("kill -9 $$; echo alive"));
    assert_eq!((code, out.as_str()), (0, "alive\n"));
}

#[test]
fn isolation_pid_hostname_mounts_and_devices() {
    let s = Sandbox::new();
    let before = rbuild_mounts(&[s.dir.path()]);
    let (code, out, err) = output(&s.spec(
        "echo pid=$$; hostname; cat /etc/hostname; echo processes /proc/[0-9]*; \
         test -c /dev/null && echo devnull; echo x > /dev/null; cat /proc/self/status | grep CapBnd; \
         echo mounts $(grep -c . /proc/mounts); test -e /work && echo host-visible; ls -d /dev/pts /dev/shm",
    ));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("pid=1\n"),
        "the image's process is pid 1: {out}"
    );
    assert!(out.contains("processes /proc/1\n"), "one process: {out}");
    // The root, proc, the /dev tmpfs, devpts, shm, 6 device nodes, sysfs,
    // hosts, resolv.conf and hostname; then one mount per masked or
    // read-only path this kernel has.
    let covered = [
        "/proc/acpi",
        "/proc/asound",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/proc/scsi",
        "/sys/firmware",
        "/sys/devices/virtual/powercap",
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sys",
        "/proc/sysrq-trigger",
    ];
    let mounts = 15 + covered.iter().filter(|p| Path::new(p).exists()).count();
    assert!(
        out.contains(&format!("mounts {mounts}\n")),
        "{mounts} mounts: {out}"
    );
    assert!(out.contains("sandbox\nsandbox\n"), "{out}");
    assert!(out.contains("devnull"), "{out}");
    assert!(
        out.contains("CapBnd:\t00000000a80425fb"),
        "Docker's default capabilities: {out}"
    );
    assert!(!out.contains("host-visible"), "{out}");
    assert!(out.contains("/dev/pts\n/dev/shm"), "{out}");
    assert_eq!(
        rbuild_mounts(&[s.dir.path()]),
        before,
        "no mount leaks to the host"
    );
}

#[test]
fn network_none_has_only_loopback() {
    let s = Sandbox::new();
    let mut spec = s.spec(
        "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '; ip link show lo | grep -c UP",
    );
    spec.network = Network::None;
    let (code, out, err) = output(&spec);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "lo\n1\n");
}

#[test]
fn writes_land_in_the_upper_dir_only() {
    let s = Sandbox::new();
    let (upper, work) = s.upper("upper");
    let mut spec = s.spec(
        "mkdir -p /new/dir && echo hi > /new/dir/f && rm /etc/group && echo more >> /etc/passwd",
    );
    spec.rootfs.upper = Some((upper.clone(), work));
    let (code, _, err) = output(&spec);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(upper.join("new/dir/f")).unwrap(),
        "hi\n"
    );
    let wh = std::fs::symlink_metadata(upper.join("etc/group")).unwrap();
    assert!(
        wh.file_type().is_char_device(),
        "a delete is an overlay whiteout"
    );
    assert!(
        std::fs::read_to_string(upper.join("etc/passwd"))
            .unwrap()
            .ends_with("more\n")
    );
    assert!(
        std::fs::read_to_string(s.base.join("etc/passwd"))
            .unwrap()
            .lines()
            .count()
            == 2,
        "lower untouched"
    );
    let mut names: Vec<String> = std::fs::read_dir(&upper)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["etc", "new"],
        "no mountpoint stubs (proc, dev, sys) in the layer"
    );
    assert!(
        !upper.join("etc/hosts").exists(),
        "{:?}",
        std::fs::read_dir(upper.join("etc"))
            .unwrap()
            .collect::<Vec<_>>()
    );
}

#[test]
fn build_runs_get_no_etc_hostname_and_keep_only_changes() {
    let s = Sandbox::new();
    let with_hostname = s.dir.path().join("with-hostname");
    std::fs::create_dir_all(with_hostname.join("etc")).unwrap();
    std::fs::write(with_hostname.join("etc/hostname"), "base\n").unwrap();
    let (upper, work) = s.upper("upper");
    let mut spec = s.spec("rm /etc/hostname && ln /etc/group /linked && hostname");
    spec.rootfs.lowers.push(with_hostname.clone());
    spec.rootfs.upper = Some((upper.clone(), work));
    let (code, out, err) = output(&spec);
    assert_eq!(
        (code, out.as_str()),
        (0, "sandbox\n"),
        "BuildKit's RUN has no /etc/hostname mount: {err}"
    );
    let hostname = std::fs::symlink_metadata(upper.join("etc/hostname")).unwrap();
    assert!(
        hostname.file_type().is_char_device(),
        "the delete is a whiteout"
    );
    let linked = std::fs::metadata(upper.join("linked")).unwrap();
    assert_eq!(
        linked.nlink(),
        2,
        "the next RUN sees /etc/group and /linked linked, as in BuildKit"
    );
    assert_eq!(
        std::fs::read(upper.with_file_name("left-out")).unwrap(),
        b"etc/group\0",
        "the copy-up `ln` made of /etc/group is no change: the layer leaves it out"
    );

    std::fs::remove_file(upper.with_file_name("left-out")).unwrap();
    let (upper, work) = s.upper("upper2");
    let mut spec = s.spec("test -e /etc/hostname && echo has || echo none");
    spec.rootfs.upper = Some((upper.clone(), work));
    let (code, out, err) = output(&spec);
    assert_eq!((code, out.as_str()), (0, "none\n"), "{err}");
    let left_out = std::fs::read_to_string(upper.with_file_name("left-out")).unwrap_or_default();
    let left_out: Vec<&str> = left_out.split_terminator('\0').collect();
    let kept: Vec<String> = std::fs::read_dir(&upper)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| !left_out.contains(&name.as_str()))
        .collect();
    assert!(kept.is_empty(), "no mount point, no changed /etc: {kept:?}");
    assert_eq!(
        output(&s.spec("cat /etc/hostname")).1,
        "sandbox\n",
        "`rbuild run` keeps docker run's /etc/hostname"
    );
}

#[test]
fn users_cwd_env_and_path_lookup() {
    let s = Sandbox::new();
    let mut spec = s.spec("id -u; id -g; id -G; pwd; echo $HOME $FOO; echo $PATH");
    spec.user = "app".into();
    spec.cwd = "/home/app/work".into();
    spec.env = vec!["FOO=bar".into()];
    let (code, out, err) = output(&spec);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!(
            "1000\n1000\n1000 10\n/home/app/work\n/home/app bar\n{}\n",
            rbuild_executor::DEFAULT_PATH
        )
    );
    let mut bad = s.spec("true");
    bad.args = vec!["no-such-program".into()];
    match run(&bad, &mut |_, _| {}) {
        Err(ExecError::Exec(m)) => assert!(m.contains("executable file not found"), "{m}"),
        other => panic!("{other:?}"),
    }
    let mut nouser = s.spec("true");
    nouser.user = "ghost".into();
    assert!(run(&nouser, &mut |_, _| {}).is_err());
}

#[test]
fn bind_mounts_and_scratch_roots() {
    let s = Sandbox::new();
    let shared = s.dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::write(shared.join("in.txt"), "from host").unwrap();
    let mut spec = s.spec("cat /mnt/in.txt; echo w > /mnt/out.txt 2>/dev/null || echo read-only");
    spec.mounts = vec![BindMount {
        source: shared.clone(),
        target: "/mnt".into(),
        readonly: true,
    }];
    let (code, out, _) = output(&spec);
    assert_eq!(code, 0);
    assert_eq!(out, "from hostread-only\n");
    spec.mounts[0].readonly = false;
    output(&spec);
    assert_eq!(
        std::fs::read_to_string(shared.join("out.txt")).unwrap(),
        "w\n"
    );

    // A scratch root: only what the layer has (one static binary).
    let scratch = s.dir.path().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    std::fs::copy("/bin/busybox", scratch.join("busybox")).unwrap();
    std::fs::set_permissions(
        scratch.join("busybox"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let mut spec = s.spec("");
    spec.rootfs.lowers = vec![scratch];
    spec.args = vec!["/busybox".into(), "echo".into(), "static".into()];
    assert_eq!(output(&spec).1, "static\n");
}

#[test]
fn init_reaps_orphans_and_concurrent_runs_work() {
    let s = Sandbox::new();
    let handles: Vec<_> = (0..3)
        .map(|i| {
            let spec = s.spec(&format!(
                "(sleep 0.2 &) ; sh -c 'sleep 0.1 & exit 0'; echo run{i}"
            ));
            std::thread::spawn(move || output(&spec))
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let (code, out, _) = h.join().unwrap();
        assert_eq!((code, out), (0, format!("run{i}\n")));
    }
}

#[test]
fn external_runtimes_run_the_same_spec() {
    let s = Sandbox::new();
    let before = rbuild_mounts(&[s.dir.path()]);
    for runtime in ["runc", "crun"] {
        let mut spec =
            s.spec("echo pid=$$; id -u; hostname; grep CapBnd /proc/self/status; exit 5");
        spec.user = "app".into();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = rbuild_executor::run_with(Some(runtime), &spec, &mut |st, line| match st {
            Stream::Stdout => out.extend_from_slice(line),
            Stream::Stderr => err.extend_from_slice(line),
        })
        .unwrap();
        assert_eq!(code, 5, "{runtime}: {}", String::from_utf8_lossy(&err));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "pid=1\n1000\nsandbox\nCapBnd:\t00000000a80425fb\n",
            "{runtime}"
        );
        assert_eq!(
            rbuild_mounts(&[s.dir.path()]),
            before,
            "no mount left on the host by {runtime}"
        );
    }
    let spec = s.spec("true");
    let json = serde_json::to_value(
        rbuild_executor::runtime_spec(
            &spec,
            &rbuild_executor::resolve_user(&spec.rootfs.lowers, "").unwrap(),
            &[],
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        json["process"]["capabilities"]["bounding"]
            .as_array()
            .unwrap()
            .len(),
        14
    );
}
