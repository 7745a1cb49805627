//! The sandbox's networks: RUN's and `rbuild run`'s default (a namespace
//! of its own with outbound access through slirp4netns), `host` (an
//! entitlement for RUN) and `none`, against HTTP servers of the test on
//! the host's loopback and on its external address.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::TestContext;

/// An HTTP server on `addr` answering every request with `body`; its port.
fn serve(addr: Ipv4Addr, body: &'static str) -> u16 {
    let listener = TcpListener::bind((addr, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf);
            let _ = write!(
                conn,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// The host's first global IPv4 address (not loopback).
fn external_address() -> Ipv4Addr {
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next()?.parse().ok())
        .expect("the host has a global IPv4 address")
}

/// A shell line printing `LABEL=BODY:REACHED` when `url` answers,
/// `LABEL=FAILED` otherwise.
fn probe(label: &str, url: &str) -> String {
    format!("echo {label}=$(wget -q -O- {url} && echo :REACHED || echo FAILED)")
}

#[test]
fn run_steps_get_outbound_access_but_not_the_hosts_loopback() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let host = external_address();
    let outside = serve(Ipv4Addr::UNSPECIFIED, "outside");
    let inside = serve(Ipv4Addr::LOCALHOST, "loopback");
    let dockerfile = format!(
        "FROM busybox\n\
         RUN {out}; {gw}; {lo}; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ' '; echo; cat /etc/resolv.conf\n\
         RUN --network=none {out_none}\n\
         RUN --network=host {lo_host}\n",
        out = probe("outside", &format!("http://{host}:{outside}/")),
        gw = probe("gateway", &format!("http://10.0.2.2:{inside}/")),
        lo = probe("own-loopback", &format!("http://127.0.0.1:{inside}/")),
        out_none = probe("none", &format!("http://{host}:{outside}/")),
        lo_host = probe("host-loopback", &format!("http://127.0.0.1:{inside}/")),
    );
    let ctx = t.context("net", &[("Dockerfile", &dockerfile)]);
    let ctx = ctx.to_str().unwrap();

    // Without the entitlement, the host-network step is refused up front.
    let out = t.cmd(&["build", "--progress=plain", ctx]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("RUN --network=host")
            && stderr.contains("--allow network.host")
            && stderr.contains("Dockerfile:4:1"),
        "{stderr}"
    );
    assert!(!stderr.contains("outside="), "nothing ran: {stderr}");

    let out = t.ok(&["build", "--progress=plain", "--allow", "network.host", ctx]);
    let log = String::from_utf8_lossy(&out.stderr);
    // Default: the host's external address answers, its loopback does not
    // (neither through the gateway nor as the sandbox's own 127.0.0.1); only
    // lo and the helper's tap0 exist; DNS goes to the helper's forwarder.
    for expected in [
        "outside=outside:REACHED",
        "gateway=FAILED",
        "own-loopback=FAILED",
        "lo tap0 \n",
        "nameserver 10.0.2.3\n",
        // --network=none reaches nothing; --network=host the loopback.
        "none=FAILED",
        "host-loopback=loopback:REACHED",
    ] {
        assert!(log.contains(expected), "{expected:?} in {log}");
    }
}

#[test]
fn run_command_networks_default_host_and_none() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    let host = external_address();
    let outside = serve(Ipv4Addr::UNSPECIFIED, "outside");
    let inside = serve(Ipv4Addr::LOCALHOST, "loopback");
    let script = format!(
        "{}; {}; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ' '",
        probe("outside", &format!("http://{host}:{outside}/")),
        probe("loopback", &format!("http://127.0.0.1:{inside}/"))
    );
    let run = |network: &[&str]| {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(network);
        args.extend_from_slice(&["busybox", "sh", "-c", &script]);
        t.stdout(&args)
    };
    let isolated = "outside=outside:REACHED\nloopback=FAILED\nlo tap0 ";
    assert_eq!(run(&[]), isolated);
    assert_eq!(run(&["--network", "bridge"]), isolated);
    assert_eq!(
        run(&["--network", "none"]),
        "outside=FAILED\nloopback=FAILED\nlo "
    );
    let on_host = run(&["--network", "host"]);
    assert!(
        on_host.starts_with("outside=outside:REACHED\nloopback=loopback:REACHED\n"),
        "{on_host}"
    );
}

#[test]
fn a_helper_that_fails_is_reported_with_its_own_words() {
    // The sandbox is set up while the helper works; a helper that ends
    // without configuring the network stops the process from starting,
    // and its message is the error.
    use std::os::unix::fs::PermissionsExt;
    let t = TestContext::new();
    t.make_busybox("busybox");
    let bin = t.path("fake-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let fake = bin.join("slirp4netns");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'cannot open tap0: no luck' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let out = t
        .cmd(&["run", "--rm", "busybox", "sh", "-c", "echo started"])
        .env("PATH", path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "slirp4netns could not configure the sandbox's network: cannot open tap0: no luck"
        ),
        "{stderr}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("started"),
        "the process must not run"
    );
}

/// Processes of the process group `pgid` still running (not zombies).
fn live_in_group(pgid: u32) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok())
        .filter_map(|stat| {
            let (head, tail) = stat.rsplit_once(')')?;
            let fields: Vec<&str> = tail.split_whitespace().collect();
            let (state, group) = (fields.first()?, fields.get(2)?.parse::<u32>().ok()?);
            (group == pgid && *state != "Z").then(|| head.to_string())
        })
        .collect()
}

/// Waits up to 5 s for the process group `pgid` to be gone.
fn assert_group_ends(pgid: u32, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let live = live_in_group(pgid);
        if live.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "{what} left behind: {live:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn network_helpers_end_with_rbuild_even_when_it_is_killed() {
    let t = TestContext::new();
    t.make_busybox("busybox");
    // Three steps: the pool holds prepared namespaces when the build ends.
    let ctx = t.context(
        "steps",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo 1 > /a\nRUN echo 2 > /b\nRUN echo 3 > /c\n",
        )],
    );
    let mut build = t.cmd(&["build", "-q", ctx.to_str().unwrap()]);
    build.process_group(0);
    let child = build.spawn().unwrap();
    let pgid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_group_ends(pgid, "a finished build");

    let ctx = t.context("sleeps", &[("Dockerfile", "FROM busybox\nRUN sleep 60\n")]);
    let mut build = t.cmd(&["build", "-q", ctx.to_str().unwrap()]);
    build.process_group(0);
    let mut child = build.spawn().unwrap();
    let pgid = child.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    let running = |name: &str| live_in_group(pgid).iter().any(|p| p.ends_with(name));
    while !(running("(slirp4netns") && running("(sleep")) {
        assert!(Instant::now() < deadline, "the RUN's helper never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_group_ends(pgid, "a build killed with SIGKILL");
}

#[test]
fn rootless_mode_gets_the_same_default_network() {
    let t = TestContext::new();
    let base = crate::busybox_context(&t);
    crate::give_to(&t, "65534:65534");
    let nobody = |args: &[&str]| crate::as_user(&t, "65534:65534", args);
    assert!(
        nobody(&["build", "-q", "-t", "busybox", &base])
            .status
            .success()
    );
    let host = external_address();
    let outside = serve(Ipv4Addr::UNSPECIFIED, "outside");
    let inside = serve(Ipv4Addr::LOCALHOST, "loopback");
    let script = format!(
        "{}; {}; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ' '",
        probe("outside", &format!("http://{host}:{outside}/")),
        probe("gateway", &format!("http://10.0.2.2:{inside}/"))
    );
    let out = nobody(&["run", "--rm", "busybox", "sh", "-c", &script]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "outside=outside:REACHED\ngateway=FAILED\nlo tap0 ",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
