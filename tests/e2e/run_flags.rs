//! `rbuild run`'s docker-run flags, one test each: the read-only root,
//! tmpfs and `--mount`s, named volumes, capabilities, `--privileged`,
//! `--add-host`, `--ulimit`, `--shm-size`, `--pull`, `-t`/`-i` (and the
//! terminal's size and resizes), `-p` and Docker's exit codes.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::process::{Output, Stdio};

use crate::support::TestContext;

/// A store with the busybox image `bb`.
fn with_busybox() -> TestContext {
    let t = TestContext::new();
    t.make_busybox("bb");
    t
}

/// `rbuild run ARGS… bb sh -c SCRIPT`, its output whatever the exit.
fn run_sh(t: &TestContext, flags: &[&str], script: &str) -> Output {
    let mut args = vec!["run"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["bb", "sh", "-c", script]);
    t.cmd(&args).output().expect("run rbuild")
}

/// Like [`run_sh`], failing the test unless it exits 0; its stdout.
fn sh_ok(t: &TestContext, flags: &[&str], script: &str) -> String {
    let out = run_sh(t, flags, script);
    assert!(
        out.status.success(),
        "run {flags:?} {script:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn read_only_root_keeps_tmpfs_and_dev_shm_writable() {
    let t = with_busybox();
    let out = sh_ok(
        &t,
        &["--read-only", "--tmpfs", "/scratch:size=1m"],
        "touch /x 2>/dev/null && echo root-writable; touch /scratch/y && echo tmpfs-ok; \
         touch /dev/shm/z && echo shm-ok; df -k /scratch | tail -1",
    );
    assert!(!out.contains("root-writable"), "{out}");
    assert!(out.contains("tmpfs-ok") && out.contains("shm-ok"), "{out}");
    assert!(out.contains(" 1024 "), "a 1 MiB tmpfs: {out}");
    // Without the flag the root is writable.
    assert!(sh_ok(&t, &[], "touch /x && echo root-writable").contains("root-writable"));
}

#[test]
fn mounts_bind_tmpfs_and_volumes_as_docker() {
    let t = with_busybox();
    let host = t.path("host");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("in"), "from-host").unwrap();
    let bind = format!("type=bind,source={},target=/h,readonly", host.display());
    let out = sh_ok(
        &t,
        &[
            "--mount",
            &bind,
            "--mount",
            "type=tmpfs,target=/t,tmpfs-size=2m",
            "--mount",
            "type=volume,source=data,target=/data",
        ],
        "cat /h/in; echo; touch /h/x 2>/dev/null || echo bind-ro; df -k /t | tail -1; \
         echo kept > /data/f",
    );
    assert!(
        out.contains("from-host") && out.contains("bind-ro"),
        "{out}"
    );
    assert!(out.contains(" 2048 "), "a 2 MiB tmpfs: {out}");
    // The named volume outlives the sandbox: through --mount and -v alike.
    assert_eq!(sh_ok(&t, &["-v", "data:/v:ro"], "cat /v/f"), "kept\n");
    let bad = run_sh(&t, &["--mount", "type=bind,target=/x"], "true");
    assert_eq!(bad.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("source= is required"));
}

#[test]
fn named_volumes_are_listed_by_du_and_removed_by_prune() {
    let t = with_busybox();
    sh_ok(
        &t,
        &["-v", "cachevol:/c"],
        "head -c 300000 /dev/zero > /c/blob",
    );
    let du = t.stdout(&["du"]);
    let row = du
        .lines()
        .find(|l| l.starts_with("volumes"))
        .unwrap_or_default();
    assert_eq!(row.split_whitespace().nth(1), Some("1"), "{du}");
    t.ok(&["prune", "--volumes"]);
    assert_eq!(
        sh_ok(&t, &["-v", "cachevol:/c"], "ls /c | wc -l").trim(),
        "0",
        "prune --volumes emptied the store's volumes"
    );
}

#[test]
fn capabilities_are_added_dropped_and_privileged() {
    let t = with_busybox();
    let bounding = |flags: &[&str]| {
        let out = sh_ok(&t, flags, "grep CapBnd /proc/self/status");
        u64::from_str_radix(out.split_whitespace().nth(1).unwrap(), 16).unwrap()
    };
    let default = bounding(&[]);
    let (chown, net_admin, sys_admin) = (1u64, 1u64 << 12, 1u64 << 21);
    assert!(default & chown != 0 && default & net_admin == 0);
    assert_eq!(
        bounding(&["--cap-drop", "ALL", "--cap-add", "CHOWN"]),
        chown
    );
    let added = bounding(&["--cap-add", "NET_ADMIN", "--cap-drop", "chown"]);
    assert_eq!(added, (default | net_admin) & !chown);
    assert!(bounding(&["--privileged"]) & sys_admin != 0);
    // With CAP_SYS_ADMIN the seccomp profile lets mount through, as Docker's.
    let mounted = sh_ok(
        &t,
        &["--cap-add", "SYS_ADMIN"],
        "mkdir -p /m && mount -t tmpfs none /m && echo mounted",
    );
    assert!(mounted.contains("mounted"), "{mounted}");
    let bad = run_sh(&t, &["--cap-add", "FLY"], "true");
    assert_eq!(bad.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown capability"));
}

#[test]
fn privileged_gets_the_host_devices_and_no_seccomp_or_masks() {
    let t = with_busybox();
    let script = "find /dev -type c -o -type b | grep -v '^/dev/pts/' | sort; \
        grep Seccomp: /proc/self/status; \
        grep -cE ' /proc/(sys|kcore|keys|timer_list) ' /proc/self/mountinfo; true";
    let default = sh_ok(&t, &[], script);
    let (devices, rest) = default.split_at(default.find("Seccomp:").unwrap());
    assert_eq!(
        devices,
        "/dev/full\n/dev/null\n/dev/random\n/dev/tty\n/dev/urandom\n/dev/zero\n"
    );
    // Filtered, and some of those /proc paths masked or read-only.
    assert!(
        rest.starts_with("Seccomp:\t2\n") && !rest.ends_with("\n0\n"),
        "{rest}"
    );
    // Docker's --privileged: every device of the host's /dev, as
    // containerd's HostDevices walks it (ptmx stays the sandbox's own link
    // to its devpts), no seccomp filter, nothing masked or read-only.
    let mut expected = host_devices(std::path::Path::new("/dev"));
    expected.sort();
    // The same with the external runtimes, given the same spec.
    for runtime in ["bundled", "runc", "crun"] {
        let privileged = sh_ok(&t, &["--privileged", "--runtime", runtime], script);
        let mut lines: Vec<&str> = privileged.lines().collect();
        assert_eq!(lines.pop(), Some("0"), "{runtime}: {privileged}");
        assert_eq!(lines.pop(), Some("Seccomp:\t0"), "{runtime}: {privileged}");
        assert_eq!(lines, expected, "{runtime}: {privileged}");
    }
}

/// The character and block devices under `dir` that Docker's
/// `--privileged` gives a container, as in-sandbox paths.
fn host_devices(dir: &std::path::Path) -> Vec<String> {
    use std::os::unix::fs::FileTypeExt;
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().into_string().unwrap();
        let kind = entry.file_type().unwrap();
        let skipped = ["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];
        if kind.is_dir() && !skipped.contains(&name.as_str()) {
            out.extend(host_devices(&entry.path()));
        } else if (kind.is_char_device() || kind.is_block_device())
            && !(dir == std::path::Path::new("/dev")
                && ["console", "ptmx"].contains(&name.as_str()))
        {
            out.push(entry.path().display().to_string());
        }
    }
    out
}

#[test]
fn add_host_ulimit_and_shm_size_reach_the_sandbox() {
    let t = with_busybox();
    let out = sh_ok(
        &t,
        &[
            "--add-host",
            "db:10.1.2.3",
            "--ulimit",
            "nofile=100:200",
            "--shm-size",
            "1m",
        ],
        "grep db /etc/hosts; ulimit -n; ulimit -Hn; df -k /dev/shm | tail -1",
    );
    assert!(out.contains("10.1.2.3\tdb"), "{out}");
    assert!(out.contains("\n100\n200\n"), "{out}");
    assert!(out.contains(" 1024 "), "{out}");
    let bad = run_sh(&t, &["--add-host", "db"], "true");
    assert_eq!(bad.status.code(), Some(125));
}

#[test]
fn host_gateway_leads_to_the_host_from_run_and_build() {
    let t = with_busybox();
    // A server of the host's, on every interface (as Docker's gateway
    // reaches them).
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let _ = conn.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 9\r\n\r\nfrom-host");
        }
    });
    let fetch = format!(
        "ip=$(awk '$2 == \"gw\" {{print $1}}' /etc/hosts); echo $ip; wget -q -O - http://$ip:{port}/"
    );
    let default = sh_ok(&t, &["--add-host", "gw:host-gateway"], &fetch);
    let (ip, answer) = default.split_once('\n').unwrap();
    assert_eq!(answer, "from-host", "{default}");
    assert!(
        !ip.starts_with("127.") && !ip.starts_with("10.0.2."),
        "{ip}"
    );
    // On the host network the host is its own loopback.
    let host = sh_ok(
        &t,
        &["--network", "host", "--add-host", "gw=host-gateway"],
        &fetch,
    );
    assert_eq!(host, "127.0.0.1\nfrom-host");
    // A build's RUN, which keys on the word, not on this host's address.
    let ctx = t.context(
        "gw",
        &[("Dockerfile", &format!("FROM bb\nRUN ({fetch}) > /got\n"))],
    );
    t.ok(&[
        "build",
        "-q",
        "-t",
        "gw",
        "--add-host",
        "gw:host-gateway",
        ctx.to_str().unwrap(),
    ]);
    let got = t.stdout(&["run", "gw", "cat", "/got"]);
    assert_eq!(got, format!("{ip}\nfrom-host"));
}

#[test]
fn pull_never_refuses_a_missing_image_and_keeps_a_stored_one() {
    let t = with_busybox();
    assert_eq!(sh_ok(&t, &["--pull", "never"], "echo ok"), "ok\n");
    let out = t
        .cmd(&["run", "--pull", "never", "nothere:v1", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--pull=never"));
}

#[test]
fn stdin_reaches_the_process_only_with_dash_i() {
    let t = with_busybox();
    let feed = |flags: &[&str]| {
        let mut args = vec!["run"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["bb", "cat"]);
        let mut child = t
            .cmd(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"fed\n").unwrap();
        String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
    };
    assert_eq!(feed(&["-i"]), "fed\n");
    assert_eq!(feed(&[]), "");
}

#[test]
fn dash_t_is_a_terminal_with_term_and_no_stray_bytes() {
    let t = with_busybox();
    let out = run_sh(&t, &["-t"], "[ -t 0 ] && [ -t 1 ] && echo tty; echo $TERM");
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "tty\r\nxterm\r\n");
    let quiet = run_sh(&t, &["-t"], "true");
    assert!(quiet.stdout.is_empty(), "{:?}", quiet.stdout);
    let plain = sh_ok(&t, &[], "[ -t 1 ] || echo no-tty; echo \"[$TERM]\"");
    assert_eq!(plain, "no-tty\n[]\n");
}

#[test]
fn dash_t_is_a_terminal_of_the_sandbox_s_own_devpts() {
    let t = with_busybox();
    // The terminal is opened in the sandbox's devpts, so it has a name
    // there (a host pty would be "not a tty"), with --init as without.
    for flags in [&["-t"][..], &["-t", "--init"]] {
        let out = run_sh(&t, flags, "tty; ls -1 /dev/pts");
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            "/dev/pts/0\r\n0\r\nptmx\r\n",
            "{flags:?}"
        );
    }
}

#[test]
fn dash_t_takes_the_callers_terminal_size_and_follows_its_resizes() {
    let t = with_busybox();
    let size = |ws_row, ws_col| libc::winsize {
        ws_row,
        ws_col,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // rbuild's stdio is a terminal of 33x77 that the test then resizes.
    let pty = nix::pty::openpty(Some(&size(33, 77)), None).expect("openpty");
    let slave = || Stdio::from(pty.slave.try_clone().unwrap());
    let script = "stty size; i=0; while [ \"$(stty size)\" = '33 77' ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; stty size";
    let mut child = t
        .cmd(&["run", "-t", "bb", "sh", "-c", script])
        .stdin(slave())
        .stdout(slave())
        .stderr(slave())
        .spawn()
        .expect("run rbuild");
    drop(pty.slave);
    let master = std::fs::File::from(pty.master);
    let mut reader = master.try_clone().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = std::io::Read::read(&mut reader, &mut buf) {
            let _ = tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    });
    let mut seen = String::new();
    while !seen.contains("33 77") {
        match rx.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(text) => seen.push_str(&text),
            Err(e) => panic!("no first size ({e}) in {seen:?}"),
        }
    }
    // A resize: the terminal's new size, then SIGWINCH to rbuild.
    // SAFETY: TIOCSWINSZ on our own pty master; a signal to our child.
    unsafe {
        assert_eq!(
            libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size(40, 100)),
            0
        );
        libc::kill(child.id() as libc::pid_t, libc::SIGWINCH);
    }
    assert!(child.wait().unwrap().success());
    while let Ok(text) = rx.recv_timeout(std::time::Duration::from_secs(10)) {
        seen.push_str(&text);
    }
    assert_eq!(seen, "33 77\r\n40 100\r\n");
}

#[test]
fn exit_codes_are_dockers_126_and_127() {
    let t = with_busybox();
    let code = |args: &[&str]| t.cmd(args).output().unwrap().status.code();
    assert_eq!(code(&["run", "bb", "no-such-command"]), Some(127));
    assert_eq!(code(&["run", "bb", "/etc/passwd"]), Some(126));
    assert_eq!(code(&["run", "bb", "sh", "-c", "exit 3"]), Some(3));
}

#[test]
fn publish_forwards_a_host_port_to_the_sandbox() {
    use std::io::Read;
    let t = with_busybox();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = t
        .cmd(&[
            "run",
            "-p",
            &format!("127.0.0.1:{port}:80"),
            "bb",
            "sh",
            "-c",
            "echo from-the-sandbox | nc -l -p 80 >/dev/null",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let mut answer = String::new();
    while started.elapsed() < std::time::Duration::from_secs(20) {
        if let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = conn.write_all(b"hi\n");
            let _ = conn.read_to_string(&mut answer);
            if !answer.is_empty() {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(answer, "from-the-sandbox\n");
    let host = run_sh(&t, &["--network", "host", "-p", "8080:80"], "true");
    assert_eq!(host.status.code(), Some(125));
}
