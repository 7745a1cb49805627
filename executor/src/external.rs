//! The same sandbox described as an OCI runtime spec (`config.json`,
//! checked against oci-spec's types) and run by an external runtime (runc,
//! crun): rbuild mounts the overlay root in a private mount namespace
//! (`unshare --mount`, so nothing is left on the host) and execs the runtime
//! there on the bundle.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio as ProcStdio};

use serde_json::{Value, json};

use crate::plan::DEFAULT_PATH;
use crate::users::User;
use crate::{ExecError, Network, RunSpec, Stdio, Stream};

/// The OCI runtime spec of `spec` for a bundle whose root is `rootfs`;
/// `files` are the hosts, resolv.conf and hostname files to bind.
pub fn runtime_spec(
    spec: &RunSpec,
    user: &User,
    files: &[(std::path::PathBuf, &str)],
) -> Result<oci_spec::runtime::Spec, ExecError> {
    let mut env = spec.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home));
    }
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
    ];
    let insecure = spec.security.insecure;
    let mut sys_options = vec!["nosuid", "noexec", "nodev"];
    if !insecure {
        sys_options.push("ro");
    }
    mounts.push(
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_options}),
    );
    for (file, target) in files {
        mounts.push(json!({"destination": target, "type": "bind", "source": file, "options": ["rbind", "rprivate"]}));
    }
    for m in &spec.mounts {
        let mut options = vec!["rbind", "rprivate"];
        if m.readonly {
            options.push("ro");
        }
        mounts.push(json!({"destination": m.target, "type": "bind", "source": m.source, "options": options}));
    }
    for t in &spec.tmpfs {
        let data = t.data();
        let options: Vec<&str> = ["nosuid", "nodev"]
            .into_iter()
            .chain(data.split(','))
            .collect();
        mounts.push(json!({"destination": t.target, "type": "tmpfs", "source": "tmpfs", "options": options}));
    }
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    if spec.network != Network::Host {
        namespaces.push(json!({"type": "network"}));
    }
    // Privileged: every capability rbuild has, as the bundled sandbox.
    let kept = if insecure {
        crate::caps::current()
    } else {
        crate::caps::kept(&spec.security.cap_add, &spec.security.cap_drop)
            .map_err(ExecError::Setup)?
    };
    let caps: Vec<&str> = kept.into_iter().map(|(name, _)| name).collect();
    let seccomp = match &spec.security.seccomp {
        _ if insecure => None,
        crate::Seccomp::Default => Some(crate::seccomp::oci(None, &caps)?),
        crate::Seccomp::Unconfined => None,
        crate::Seccomp::Profile(text) => Some(crate::seccomp::oci(Some(text), &caps)?),
    };
    let (masked, read_only) = if insecure {
        (Vec::new(), Vec::new())
    } else {
        let absolute = |paths: &[&str]| paths.iter().map(|p| format!("/{p}")).collect::<Vec<_>>();
        (
            absolute(crate::masks::MASKED),
            absolute(crate::masks::READ_ONLY),
        )
    };
    let mut value: Value = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": spec.stdio.is_tty(),
            "user": {"uid": user.uid, "gid": user.gid, "additionalGids": user.groups},
            "args": spec.args,
            "env": env,
            "cwd": if spec.cwd.is_empty() { "/" } else { spec.cwd.as_str() },
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": spec.security.no_new_privileges,
        },
        "root": {"path": "rootfs", "readonly": spec.readonly_rootfs},
        "hostname": if spec.hostname.is_empty() { "rbuild" } else { spec.hostname.as_str() },
        "mounts": mounts,
        "linux": {
            "namespaces": namespaces,
            "seccomp": seccomp,
            "maskedPaths": masked,
            "readonlyPaths": read_only,
        },
    });
    if insecure {
        // The host's devices (as the bundled sandbox binds them), all of
        // them allowed by the device cgroup.
        value["linux"]["devices"] = Value::Array(host_devices());
        value["linux"]["resources"] = json!({"devices": [{"allow": true, "access": "rwm"}]});
    }
    serde_json::from_value(value).map_err(|e| ExecError::Setup(format!("runtime spec: {e}")))
}

/// The host's devices a privileged sandbox gets, as OCI `linux.devices`
/// entries (the runtime makes or binds each).
fn host_devices() -> Vec<Value> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let dev = Path::new("/dev");
    let own: Vec<&str> = crate::plan::DEVICES
        .iter()
        .copied()
        .chain(crate::plan::DEV_LINKS.iter().map(|(name, _)| *name))
        .collect();
    crate::host_devices::list(dev, &own)
        .into_iter()
        .filter_map(|rel| {
            let path = dev.join(&rel);
            let meta = std::fs::symlink_metadata(&path).ok()?;
            let kind = if meta.file_type().is_block_device() {
                "b"
            } else {
                "c"
            };
            let rdev = meta.rdev();
            Some(json!({
                "path": path,
                "type": kind,
                "major": libc::major(rdev),
                "minor": libc::minor(rdev),
                "fileMode": meta.mode() & 0o7777,
                "uid": meta.uid(),
                "gid": meta.gid(),
            }))
        })
        .collect()
}

/// Writes the sandbox's made files into `dir` (with their modes and
/// owners) for a runtime to bind: (host path, target).
pub fn write_files(
    dir: &Path,
    files: &[crate::FileMount],
) -> Result<Vec<(std::path::PathBuf, String)>, ExecError> {
    let made = dir.join("files");
    let fail = |e: std::io::Error| ExecError::Setup(format!("write sandbox files: {e}"));
    std::fs::create_dir_all(&made).map_err(fail)?;
    let mut out = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let path = made.join(i.to_string());
        std::fs::write(&path, &f.content).map_err(fail)?;
        std::os::unix::fs::chown(&path, Some(f.uid), Some(f.gid)).map_err(fail)?;
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(f.mode))
            .map_err(fail)?;
        out.push((path, f.target.clone()));
    }
    Ok(out)
}

/// Makes the spec's network namespace the prepared one at `path`.
fn join_network(config: &mut oci_spec::runtime::Spec, path: &str) -> Result<(), ExecError> {
    use oci_spec::runtime::{LinuxNamespaceBuilder, LinuxNamespaceType};
    let namespaces = config
        .linux_mut()
        .as_mut()
        .and_then(|l| l.namespaces_mut().as_mut())
        .ok_or_else(|| ExecError::Setup(String::from("runtime spec without namespaces")))?;
    namespaces.retain(|n| n.typ() != LinuxNamespaceType::Network);
    namespaces.push(
        LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::Network)
            .path(path)
            .build()
            .map_err(|e| ExecError::Setup(format!("runtime spec: {e}")))?,
    );
    Ok(())
}

/// The shell step run in the private mount namespace: mount the overlay
/// root (`$1` options at `$2`), then exec the runtime command that follows.
const MOUNT_ROOT_AND_EXEC: &str =
    "mount -t overlay overlay -o \"$1\" \"$2\" && shift 2 && exec \"$@\"";

/// Whether `runtime` names crun (a path or a bare name).
fn is_crun(runtime: &str) -> bool {
    Path::new(runtime).file_name().is_some_and(|n| n == "crun")
}

/// What the bundled side prepared for an external runtime's sandbox.
pub struct Sandbox<'a> {
    /// The sandbox's private temp dir (the bundle goes there).
    pub dir: &'a Path,
    /// The overlay root's mount options.
    pub overlay: &'a str,
    /// The resolved user.
    pub user: &'a User,
    /// The hosts, resolv.conf and hostname files to bind.
    pub files: &'a [(std::path::PathBuf, &'a str)],
    /// A path to the prepared network namespace to join, if any.
    pub netns: Option<String>,
}

/// Runs `spec` with the external runtime `runtime` (e.g. `runc`, `crun`).
pub fn run_external(
    runtime: &str,
    spec: &RunSpec,
    sandbox: &Sandbox<'_>,
    output: &mut dyn FnMut(Stream, &[u8]),
) -> Result<i32, ExecError> {
    let Sandbox {
        dir,
        overlay: overlay_options,
        user,
        files,
        ..
    } = *sandbox;
    let bundle = dir.join("bundle");
    let rootfs = bundle.join("rootfs");
    std::fs::create_dir_all(&rootfs)
        .map_err(|e| ExecError::Setup(format!("create {}: {e}", rootfs.display())))?;
    let mut config = runtime_spec(spec, user, files)?;
    if let Some(path) = &sandbox.netns {
        join_network(&mut config, path)?;
    }
    config
        .save(bundle.join("config.json"))
        .map_err(|e| ExecError::Setup(format!("write config.json: {e}")))?;
    let id = format!(
        "rbuild-{}-{}",
        std::process::id(),
        dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    let cgroups_off = is_crun(runtime);
    let script = if cgroups_off {
        // crun refuses a hybrid cgroup v1/v2 host outright, even without
        // managing cgroups; in this private mount namespace it sees a plain
        // cgroup2 hierarchy and is told to leave cgroups alone (rbuild sets
        // no resource limits).
        format!("mount -t cgroup2 cgroup2 /sys/fs/cgroup && {MOUNT_ROOT_AND_EXEC}")
    } else {
        MOUNT_ROOT_AND_EXEC.to_string()
    };
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(script)
        .arg("sh")
        .arg(overlay_options)
        .arg(&rootfs)
        .arg(runtime);
    if cgroups_off {
        cmd.arg("--cgroup-manager=disabled");
    }
    cmd.args(["run", "--bundle"]).arg(&bundle).arg(&id);
    let status = if spec.stdio == Stdio::Capture {
        cmd.stdin(ProcStdio::null())
            .stdout(ProcStdio::piped())
            .stderr(ProcStdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| ExecError::Setup(format!("run {runtime}: {e}")))?;
        let stderr = child.stderr.take().expect("piped");
        let errors = std::thread::spawn(move || {
            let mut lines = Vec::new();
            let mut r = BufReader::new(stderr);
            let mut line = Vec::new();
            while r.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
                lines.push(std::mem::take(&mut line));
            }
            lines
        });
        let mut r = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = Vec::new();
        while r.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
            output(Stream::Stdout, &line);
            line.clear();
        }
        for l in errors.join().unwrap_or_default() {
            output(Stream::Stderr, &l);
        }
        child.wait()
    } else {
        cmd.status()
    }
    .map_err(|e| ExecError::Setup(format!("run {runtime}: {e}")))?;
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}
