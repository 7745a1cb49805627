//! The child side of the sandbox, entered by `clone` with new namespaces:
//! it is pid 1 of its pid namespace. It mounts the overlay root and the
//! system mounts, pivots into the root, then becomes the process (execve),
//! so that the image's process is pid 1 as in Docker. With `--init` it
//! forks the process instead and stays as its init (see `init`). Only
//! async-signal-safe calls: see `sys`.

use std::ffi::{CStr, c_int};

use crate::console::Console;
use crate::plan::{MountKind, Plan};
use crate::sys::{self, cvt};

/// File descriptors the child works with (all opened by the parent).
#[derive(Clone, Copy)]
pub struct Fds {
    /// The error pipe's write end (close-on-exec).
    pub error: c_int,
    /// stdin/stdout/stderr for the process, when redirected.
    pub stdio: Option<[c_int; 3]>,
    /// The terminal to open in the sandbox, whose slave becomes the
    /// process's controlling terminal and stdio.
    pub console: Option<Console>,
}

/// What the clone callback receives.
pub struct Args<'a> {
    pub plan: &'a Plan,
    pub fds: Fds,
    pub argv: &'a [*const libc::c_char],
    pub env: &'a [*const libc::c_char],
}

macro_rules! try_sys {
    ($fd:expr, $what:expr, $e:expr) => {
        match $e {
            Ok(v) => v,
            Err(err) => sys::fail($fd, $what, err),
        }
    };
}

/// Opens (creating when missing) a path below `root` given its prefixes;
/// returns an `O_PATH` fd of the last one (or a dup of `root`).
fn open_or_create(
    root: c_int,
    prefixes: &[std::ffi::CString],
    last_is_file: bool,
) -> Result<c_int, c_int> {
    // SAFETY: plain system calls on fds we own and C strings from the plan.
    unsafe {
        let mut parent = cvt(libc::fcntl(root, libc::F_DUPFD_CLOEXEC, 0))?;
        let n = prefixes.len();
        for (i, p) in prefixes.iter().enumerate() {
            let fd = match sys::open_in_root(root, p, libc::O_PATH) {
                Ok(fd) => Ok(fd),
                Err(libc::ENOENT) => {
                    let name = last_component(p);
                    let created = if i + 1 == n && last_is_file {
                        let f = libc::openat(
                            parent,
                            name.as_ptr(),
                            libc::O_CREAT | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                            0o644,
                        );
                        cvt(f).map(|f| {
                            libc::close(f);
                        })
                    } else {
                        cvt(libc::mkdirat(parent, name.as_ptr(), 0o755)).map(drop)
                    };
                    created.and_then(|()| sys::open_in_root(root, p, libc::O_PATH))
                }
                Err(e) => Err(e),
            };
            libc::close(parent);
            parent = fd?;
        }
        Ok(parent)
    }
}

/// The part of a relative path after its last `/`.
fn last_component(path: &CStr) -> &CStr {
    let bytes = path.to_bytes_with_nul();
    match bytes.iter().rposition(|b| *b == b'/') {
        Some(i) => CStr::from_bytes_with_nul(&bytes[i + 1..]).expect("ends with NUL"),
        None => path,
    }
}

/// The clone callback: never returns normally.
pub extern "C" fn main(arg: *mut libc::c_void) -> c_int {
    // SAFETY: the parent passes a pointer to `Args` that outlives the clone
    // (the child runs on a copy of the parent's memory).
    let args = unsafe { &*(arg as *const Args<'_>) };
    let plan = args.plan;
    let efd = args.fds.error;
    // SAFETY: plain system calls on values prepared by the parent.
    unsafe {
        // Die with the parent. (getppid is 0 across the pid namespace, so
        // the usual re-check is not possible; the window is a few syscalls.)
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        libc::umask(0);
        // Into the limits' cgroups before anything is started ("0": the
        // writer itself).
        for fd in &plan.cgroup_procs {
            let rc = libc::write(*fd, c"0".as_ptr().cast(), 1);
            try_sys!(efd, c"join the sandbox's cgroup", cvt(rc as c_int));
        }
        if let Some(fd) = plan.netns {
            try_sys!(
                efd,
                c"join the network namespace",
                cvt(libc::setns(fd, libc::CLONE_NEWNET))
            );
        }
        try_sys!(
            efd,
            c"make mounts private",
            cvt(libc::mount(
                c"none".as_ptr(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null()
            ))
        );
        try_sys!(efd, c"make the sandbox's files", make_files(plan));
        for (dir, number) in &plan.layer_dirs {
            let fd = try_sys!(
                efd,
                dir,
                cvt(libc::open(dir.as_ptr(), libc::O_PATH | libc::O_DIRECTORY))
            );
            try_sys!(efd, dir, cvt(libc::dup3(fd, *number, libc::O_CLOEXEC)));
            libc::close(fd);
        }
        try_sys!(
            efd,
            c"mount the overlay root",
            cvt(libc::mount(
                c"overlay".as_ptr(),
                plan.rootdir.as_ptr(),
                c"overlay".as_ptr(),
                libc::MS_NODEV,
                plan.overlay_data.as_ptr().cast()
            ))
        );
        let root = try_sys!(
            efd,
            c"open the root",
            cvt(libc::open(
                plan.rootdir.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC
            ))
        );
        for m in &plan.mounts {
            if matches!(m.kind, MountKind::Mask | MountKind::ReadOnly) {
                try_sys!(efd, &m.what, cover(root, m));
                continue;
            }
            let target = try_sys!(efd, &m.what, open_or_create(root, &m.prefixes, m.is_file));
            match &m.kind {
                MountKind::Fs {
                    fstype,
                    flags,
                    data,
                } => {
                    try_sys!(
                        efd,
                        &m.what,
                        sys::mount_on_fd(fstype, target, fstype, *flags, data.as_deref())
                    );
                }
                MountKind::Bind { source, attrs } => {
                    try_sys!(efd, &m.what, sys::bind(source, target, *attrs));
                }
                MountKind::Mask | MountKind::ReadOnly => {}
                MountKind::Overlay {
                    data,
                    at,
                    source,
                    readonly,
                } => {
                    let (flags, attrs) = if *readonly {
                        (libc::MS_RDONLY, sys::MOUNT_ATTR_RDONLY)
                    } else {
                        (0, 0)
                    };
                    let rc = libc::mount(
                        c"overlay".as_ptr(),
                        at.as_ptr(),
                        c"overlay".as_ptr(),
                        flags | libc::MS_NODEV | libc::MS_NOSUID,
                        data.as_ptr().cast(),
                    );
                    try_sys!(efd, &m.what, cvt(rc));
                    let attrs = attrs | sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOSUID;
                    try_sys!(efd, &m.what, sys::bind(source, target, attrs));
                }
            }
            libc::close(target);
            if m.prefixes.len() == 1 && m.prefixes[0].as_bytes() == b"dev" {
                populate_dev(root, plan, efd);
            }
        }
        // A missing working directory is created, as Docker does.
        let cwd = try_sys!(
            efd,
            c"create the working directory",
            open_or_create(root, &plan.cwd_prefixes, false)
        );
        libc::close(cwd);
        if plan.readonly_root {
            // The root mount only: the mounts inside it keep their modes.
            try_sys!(efd, c"make the root read-only", sys::set_readonly(root));
        }
        if plan.loopback {
            loopback_up(efd);
        }
        let host = plan.hostname.as_bytes();
        try_sys!(
            efd,
            c"set the hostname",
            cvt(libc::sethostname(host.as_ptr().cast(), host.len()))
        );
        try_sys!(
            efd,
            c"chdir to the root",
            cvt(libc::chdir(plan.rootdir.as_ptr()))
        );
        try_sys!(
            efd,
            c"pivot_root",
            cvt(libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) as c_int)
        );
        try_sys!(
            efd,
            c"detach the old root",
            cvt(libc::umount2(c".".as_ptr(), libc::MNT_DETACH))
        );
        try_sys!(efd, c"chdir to /", cvt(libc::chdir(c"/".as_ptr())));
        libc::close(root);
        let tty = args.fds.console.as_ref().map(|console| {
            try_sys!(
                efd,
                c"open the sandbox's terminal",
                crate::console::open_and_send(console)
            )
        });
        if let Some(fd) = plan.net_ready {
            wait_for_network(fd, efd);
        }

        if plan.init.is_none() {
            // The image's process is pid 1 itself, as in Docker without
            // --init; rbuild, outside the pid namespace, waits for it.
            let empty: libc::sigset_t = std::mem::zeroed();
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            exec_process(args, tty);
        }
        // --init: block signals, fork the process, then wait.
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &all, &mut old);
        // The raw system call, not glibc's fork(): that one takes malloc's
        // locks, which another thread of our parent may have held when it
        // cloned us.
        let child = libc::syscall(libc::SYS_fork) as libc::pid_t;
        if child < 0 {
            sys::fail(
                efd,
                c"fork",
                std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
            );
        }
        if child == 0 {
            let empty: libc::sigset_t = std::mem::zeroed();
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            exec_process(args, tty);
        }
        if let Some(fds) = args.fds.stdio {
            for fd in fds {
                libc::close(fd);
            }
        }
        if let Some(tty) = tty {
            libc::close(tty);
        }
        libc::close(efd);
        crate::init::run(plan, child)
    }
}

/// What the error pipe says first when the network helper failed (the
/// parent then reports the helper's own messages).
pub const NETWORK_DOWN: &CStr = c"the sandbox's network did not come up";

/// Waits for the network helper's ready byte on `fd` (the helper
/// configures the namespace while the sandbox is set up).
unsafe fn wait_for_network(fd: c_int, efd: c_int) {
    let mut byte = 0u8;
    loop {
        // SAFETY: a one-byte buffer on the stack.
        let n = unsafe { libc::read(fd, (&mut byte as *mut u8).cast(), 1) };
        if n == 1 {
            break;
        }
        let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        if n < 0 && e == libc::EINTR {
            continue;
        }
        sys::fail(efd, NETWORK_DOWN, libc::EIO);
    }
    // SAFETY: closing the pipe end, ours alone in this process.
    unsafe { libc::close(fd) };
}

/// Links and directories in the fresh /dev tmpfs (the device nodes are
/// bound onto it later).
unsafe fn populate_dev(root: c_int, plan: &Plan, efd: c_int) {
    // SAFETY: system calls on fds we own and C strings from the plan.
    unsafe {
        let dev = try_sys!(
            efd,
            c"open /dev",
            sys::open_in_root(root, c"dev", libc::O_PATH | libc::O_DIRECTORY)
        );
        for (name, target) in &plan.dev_links {
            try_sys!(
                efd,
                name,
                cvt(libc::symlinkat(target.as_ptr(), dev, name.as_ptr()))
            );
        }
        for dir in [c"pts", c"shm"] {
            try_sys!(efd, dir, cvt(libc::mkdirat(dev, dir.as_ptr(), 0o755)));
        }
        libc::close(dev);
    }
}

/// Applies a masked or read-only path of `masks` below `root`; a path the
/// kernel does not have is skipped.
fn cover(root: c_int, m: &crate::plan::InnerMount) -> Result<(), c_int> {
    let Some(path) = m.prefixes.last() else {
        return Ok(());
    };
    let target = match sys::open_in_root(root, path, libc::O_PATH | libc::O_NOFOLLOW) {
        Ok(fd) => fd,
        Err(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    // SAFETY: fstat into a stack value, mounts on an fd we own.
    let result = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        cvt(libc::fstat(target, &mut st)).and_then(|_| match m.kind {
            MountKind::Mask if st.st_mode & libc::S_IFMT == libc::S_IFDIR => sys::mount_on_fd(
                c"tmpfs",
                target,
                c"tmpfs",
                libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                None,
            ),
            MountKind::Mask => sys::bind(c"/dev/null", target, 0),
            _ => sys::rebind(
                target,
                sys::MOUNT_ATTR_RDONLY
                    | sys::MOUNT_ATTR_NOSUID
                    | sys::MOUNT_ATTR_NODEV
                    | sys::MOUNT_ATTR_NOEXEC,
            ),
        })
    };
    // SAFETY: closing our fd.
    unsafe { libc::close(target) };
    result
}

/// Mounts a tmpfs on the files dir (in our mount namespace only) and
/// writes the made files there, with their modes and owners.
fn make_files(plan: &Plan) -> Result<(), c_int> {
    // SAFETY: system calls on C strings from the plan and fds we own.
    unsafe {
        cvt(libc::mount(
            c"tmpfs".as_ptr(),
            plan.files_dir.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            c"mode=0755".as_ptr().cast(),
        ))?;
        let dir = cvt(libc::open(
            plan.files_dir.as_ptr(),
            libc::O_DIRECTORY | libc::O_RDONLY | libc::O_CLOEXEC,
        ))?;
        for f in &plan.files {
            let fd = libc::openat(
                dir,
                f.name.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC,
                f.mode,
            );
            let result = cvt(fd).and_then(|fd| {
                let mut rest = &f.content[..];
                while !rest.is_empty() {
                    let n = libc::write(fd, rest.as_ptr().cast(), rest.len());
                    if n <= 0 {
                        return cvt(-1);
                    }
                    rest = &rest[n as usize..];
                }
                cvt(libc::fchown(fd, f.uid, f.gid))?;
                cvt(libc::fchmod(fd, f.mode))
            });
            if fd >= 0 {
                libc::close(fd);
            }
            if let Err(e) = result {
                libc::close(dir);
                return Err(e);
            }
        }
        libc::close(dir);
        Ok(())
    }
}

/// Brings up `lo` in a new network namespace.
unsafe fn loopback_up(efd: c_int) {
    // SAFETY: an ifreq on the stack and a socket we close.
    unsafe {
        let sock = try_sys!(
            efd,
            c"socket",
            cvt(libc::socket(
                libc::AF_INET,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                0
            ))
        );
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        try_sys!(
            efd,
            c"get lo flags",
            cvt(libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req))
        );
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        try_sys!(
            efd,
            c"bring lo up",
            cvt(libc::ioctl(sock, libc::SIOCSIFFLAGS, &req))
        );
        libc::close(sock);
    }
}

/// Exit code of a sandbox whose program was not found (Docker's).
pub const EXIT_NOT_FOUND: c_int = 127;

/// Exit code of a sandbox whose program could not be executed (Docker's).
pub const EXIT_CANNOT_EXECUTE: c_int = 126;

/// The process: stdio (the terminal `tty` when there is one), identity,
/// capabilities, then exec.
unsafe fn exec_process(args: &Args<'_>, tty: Option<c_int>) -> ! {
    let plan = args.plan;
    let efd = args.fds.error;
    // SAFETY: system calls on values prepared by the parent.
    unsafe {
        if let Some(tty) = tty {
            libc::setsid();
            try_sys!(
                efd,
                c"set the controlling terminal",
                cvt(libc::ioctl(tty, libc::TIOCSCTTY, 0))
            );
            for fd in 0..3 {
                libc::dup2(tty, fd);
            }
            libc::close(tty);
        } else if let Some(fds) = args.fds.stdio {
            for (target, fd) in fds.iter().enumerate() {
                libc::dup2(*fd, target as c_int);
            }
            for fd in fds {
                if fd > 2 {
                    libc::close(fd);
                }
            }
        }
        // No descriptor rbuild inherited (a make jobserver's pipe, a CI
        // runner's files) may reach the process: every fd above stdio is
        // closed on exec (the error pipe still reports a failed exec).
        try_sys!(
            efd,
            c"close inherited descriptors",
            cvt(libc::syscall(
                libc::SYS_close_range,
                3,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC
            ) as c_int)
        );
        for sig in [libc::SIGPIPE, libc::SIGINT, libc::SIGQUIT, libc::SIGTERM] {
            libc::signal(sig, libc::SIG_DFL);
        }
        for (resource, limit) in &plan.rlimits {
            try_sys!(
                efd,
                c"set a --ulimit",
                cvt(libc::setrlimit(*resource as _, limit))
            );
        }
        for cap in &plan.drop_caps {
            libc::prctl(libc::PR_CAPBSET_DROP, *cap as libc::c_ulong, 0, 0, 0);
        }
        if plan.no_new_privs {
            try_sys!(
                efd,
                c"set no_new_privs",
                cvt(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
            );
        }
        // Before the ids change: without no_new_privs, installing a filter
        // needs CAP_SYS_ADMIN, which a non-root user no longer has. What
        // follows (setgroups, setresuid, chdir, execve) is allowed by
        // Docker's profile, as in runc.
        if let Some(program) = &plan.seccomp {
            let fprog = program.fprog();
            let rc = libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &fprog as *const libc::sock_fprog,
            );
            try_sys!(efd, c"install the seccomp filter", cvt(rc as c_int));
        }
        // Raw system calls: glibc's wrappers would try to change the ids of
        // every thread it believes the process has (ours are copies of a
        // multithreaded parent's bookkeeping) and wait for them forever.
        let (uid, gid) = (plan.uid as libc::c_long, plan.gid as libc::c_long);
        if plan.set_groups {
            let rc = libc::syscall(libc::SYS_setgroups, plan.groups.len(), plan.groups.as_ptr());
            try_sys!(efd, c"setgroups", cvt(rc as c_int));
        }
        try_sys!(
            efd,
            c"setgid",
            cvt(libc::syscall(libc::SYS_setresgid, gid, gid, gid) as c_int)
        );
        try_sys!(
            efd,
            c"setuid",
            cvt(libc::syscall(libc::SYS_setresuid, uid, uid, uid) as c_int)
        );
        // A change of ids clears the parent-death signal: set it again, so
        // that the process (pid 1 of the sandbox) still dies with rbuild.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        try_sys!(
            efd,
            c"chdir to the working directory",
            cvt(libc::chdir(plan.cwd.as_ptr()))
        );
        libc::umask(0o022);
        let mut last = libc::ENOENT;
        for path in &plan.candidates {
            libc::execve(path.as_ptr(), args.argv.as_ptr(), args.env.as_ptr());
            let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            if e != libc::ENOENT && e != libc::ENOTDIR {
                last = e;
            }
        }
        if last == libc::ENOENT {
            sys::write_all(efd, plan.not_found.as_bytes());
            libc::_exit(EXIT_NOT_FOUND);
        }
        // Found but not runnable (no permission, not an executable
        // format): Docker's 126.
        sys::write_all(efd, b"exec ");
        sys::write_all(efd, plan.candidates[0].to_bytes());
        sys::write_all(efd, b": ");
        sys::write_all(
            efd,
            std::ffi::CStr::from_ptr(libc::strerror(last)).to_bytes(),
        );
        libc::_exit(EXIT_CANNOT_EXECUTE)
    }
}
