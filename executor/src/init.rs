//! The sandbox's init for `rbuild run --init`: pid 1 reaps zombies,
//! forwards signals to the process and exits with its status. It is the
//! sandbox's clone of rbuild, so before it waits it stops looking like
//! rbuild: its command line and environment memory are overwritten (so
//! /proc/1/cmdline and /proc/1/environ show `rbuild-init` and nothing of
//! the host's argv or build args), it drops every capability, and it is
//! not dumpable (the process cannot ptrace it or read its memory). It gets
//! the same seccomp filter as the process. Only async-signal-safe calls.

use std::ffi::c_int;

use crate::plan::{InitPlan, Plan};

/// The name init shows in /proc/1/cmdline and /proc/1/comm.
const NAME: &[u8] = b"rbuild-init\0";

/// `_LINUX_CAPABILITY_VERSION_3`.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Where the kernel keeps this process's argv and environment strings
/// (fields 48–51 of /proc/self/stat), read in the parent before the clone.
pub fn memory_areas() -> Option<InitPlan> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses, start at 3.
    let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let field = |n: usize| rest.get(n - 3)?.parse::<usize>().ok();
    Some(InitPlan {
        areas: [(field(48)?, field(49)?), (field(50)?, field(51)?)],
    })
}

/// Clears the argv and environment areas and writes `NAME` at the start.
///
/// # Safety
/// `areas` must be this process's argv and environment areas.
unsafe fn scrub(areas: &[(usize, usize); 2]) {
    for (start, end) in areas {
        if end > start {
            // SAFETY: the kernel's argv/env area of this process, mapped
            // writable (it is on the initial stack).
            unsafe { std::ptr::write_bytes(*start as *mut u8, 0, end - start) };
        }
    }
    let (start, end) = areas[0];
    if end - start >= NAME.len() {
        // SAFETY: as above, and the name fits.
        unsafe { std::ptr::copy_nonoverlapping(NAME.as_ptr(), start as *mut u8, NAME.len()) };
    }
}

/// Becomes the sandbox's init for `process` and never returns.
///
/// # Safety
/// Called in the sandbox's child after the fork of the process.
pub unsafe fn run(plan: &Plan, process: libc::pid_t) -> ! {
    // SAFETY: plain system calls on stack values.
    unsafe {
        if let Some(init) = &plan.init {
            scrub(&init.areas);
        }
        for fd in &plan.layer_fds {
            libc::close(std::os::fd::AsRawFd::as_raw_fd(fd));
        }
        libc::prctl(libc::PR_SET_NAME, NAME.as_ptr());
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        if let Some(program) = &plan.seccomp {
            let fprog = program.fprog();
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &fprog as *const libc::sock_fprog,
            );
        }
        for cap in 0..=plan.last_cap {
            libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0);
        }
        let header = CapHeader {
            version: CAPABILITY_VERSION_3,
            pid: 0,
        };
        let none = [CapData {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        }; 2];
        libc::syscall(libc::SYS_capset, &header as *const CapHeader, none.as_ptr());
        wait_loop(process)
    }
}

/// Reaps every child, forwards signals to the process, and exits with its
/// status once it is gone.
unsafe fn wait_loop(process: libc::pid_t) -> ! {
    // SAFETY: signal-set operations on stack values and waitpid.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        let mut code: Option<c_int> = None;
        loop {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let sig = libc::sigwaitinfo(&set, &mut info);
            if sig == libc::SIGCHLD {
                loop {
                    let mut status = 0;
                    let pid = libc::waitpid(-1, &mut status, libc::WNOHANG);
                    if pid <= 0 {
                        break;
                    }
                    if pid == process {
                        code = Some(if libc::WIFEXITED(status) {
                            libc::WEXITSTATUS(status)
                        } else {
                            128 + libc::WTERMSIG(status)
                        });
                    }
                }
                if let Some(c) = code {
                    libc::_exit(c);
                }
            } else if sig > 0 {
                libc::kill(process, sig);
            }
        }
    }
}
