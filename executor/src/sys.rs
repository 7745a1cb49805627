//! Raw system calls for the sandbox's child side. Everything here is
//! async-signal-safe: no allocation, no locks — the child of a
//! multithreaded process may only do this kind of work.

use std::ffi::{CStr, c_char, c_int, c_long, c_uint, c_void};

/// `openat2`'s `RESOLVE_IN_ROOT`: resolve as if the dirfd were `/`.
const RESOLVE_IN_ROOT: u64 = 0x10;
/// `openat2`'s `RESOLVE_NO_MAGICLINKS`.
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
/// `open_tree` flag: clone the tree instead of opening it.
const OPEN_TREE_CLONE: c_uint = 1;
/// `AT_RECURSIVE` for `open_tree` and `mount_setattr`.
const AT_RECURSIVE: c_uint = 0x8000;
/// `move_mount` flags: from / to an empty path (the fds themselves).
const MOVE_MOUNT_F_EMPTY_PATH: c_uint = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: c_uint = 0x40;
/// `mount_setattr` attribute: read-only.
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
/// `mount_setattr` attribute: setuid bits are ignored.
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
/// `mount_setattr` attribute: device nodes cannot be opened.
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
/// `mount_setattr` attribute: nothing can be executed.
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// An errno-carrying result.
pub type SysResult<T> = Result<T, c_int>;

fn errno() -> c_int {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn check(rc: c_long) -> SysResult<c_long> {
    if rc < 0 { Err(errno()) } else { Ok(rc) }
}

/// A libc return value as a result: negative is the errno.
pub fn cvt(rc: c_int) -> SysResult<c_int> {
    if rc < 0 { Err(errno()) } else { Ok(rc) }
}

/// Opens `path` below `root` as if `root` were `/` (symlinks included).
pub fn open_in_root(root: c_int, path: &CStr, flags: c_int) -> SysResult<c_int> {
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: valid pointers for the duration of the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root,
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    check(rc).map(|fd| fd as c_int)
}

/// Binds the host tree `source` onto the mountpoint fd `target`,
/// recursively, with the mount attributes `attrs` (`MOUNT_ATTR_*`) set on
/// every mount of the copy.
pub fn bind(source: &CStr, target: c_int, attrs: u64) -> SysResult<()> {
    // SAFETY: a valid C string; the syscall does not keep the pointer.
    let tree = check(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            source.as_ptr(),
            OPEN_TREE_CLONE | AT_RECURSIVE | libc::O_CLOEXEC as c_uint,
        )
    })? as c_int;
    attach(tree, target, attrs)
}

/// Binds the tree at the mountpoint fd `target` onto itself with the
/// attributes `attrs` added (a read-only path: `MOUNT_ATTR_RDONLY`).
pub fn rebind(target: c_int, attrs: u64) -> SysResult<()> {
    // SAFETY: an fd we own and an empty path.
    let tree = check(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            target,
            c"".as_ptr(),
            OPEN_TREE_CLONE | AT_RECURSIVE | (libc::AT_EMPTY_PATH | libc::O_CLOEXEC) as c_uint,
        )
    })? as c_int;
    attach(tree, target, attrs)
}

/// Makes the mount whose root is the fd `mount` read-only, not the mounts
/// below it.
pub fn set_readonly(mount: c_int) -> SysResult<()> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: an fd we own and a MountAttr on the stack.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mount,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
    .map(drop)
}

/// Sets `attrs` on the detached tree `tree`, moves it onto `target` and
/// closes it.
fn attach(tree: c_int, target: c_int, attrs: u64) -> SysResult<()> {
    // SAFETY: fds we own and a MountAttr on the stack; the syscalls do not
    // keep pointers.
    unsafe {
        if attrs != 0 {
            let attr = MountAttr {
                attr_set: attrs,
                attr_clr: 0,
                propagation: 0,
                userns_fd: 0,
            };
            let rc = libc::syscall(
                libc::SYS_mount_setattr,
                tree,
                c"".as_ptr(),
                libc::AT_EMPTY_PATH as c_uint | AT_RECURSIVE,
                &attr as *const MountAttr,
                std::mem::size_of::<MountAttr>(),
            );
            if rc < 0 {
                let e = errno();
                libc::close(tree);
                return Err(e);
            }
        }
        let rc = libc::syscall(
            libc::SYS_move_mount,
            tree,
            c"".as_ptr(),
            target,
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        );
        let e = errno();
        libc::close(tree);
        if rc < 0 { Err(e) } else { Ok(()) }
    }
}

/// `mount(2)` onto the mountpoint fd `target` (via `/proc/self/fd/N`).
pub fn mount_on_fd(
    source: &CStr,
    target: c_int,
    fstype: &CStr,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> SysResult<()> {
    let mut buf = [0u8; 40];
    let path = fd_path(target, &mut buf);
    // SAFETY: valid C strings.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            path.as_ptr(),
            fstype.as_ptr(),
            flags,
            data.map_or(std::ptr::null(), |d| d.as_ptr().cast::<c_void>()),
        )
    };
    if rc < 0 { Err(errno()) } else { Ok(()) }
}

/// Writes `/proc/self/fd/<fd>\0` into `buf` without allocating.
pub fn fd_path(fd: c_int, buf: &mut [u8; 40]) -> &CStr {
    let prefix = b"/proc/self/fd/";
    buf[..prefix.len()].copy_from_slice(prefix);
    let mut digits = [0u8; 12];
    let n = itoa(fd as i64, &mut digits);
    buf[prefix.len()..prefix.len() + n].copy_from_slice(&digits[..n]);
    buf[prefix.len() + n] = 0;
    CStr::from_bytes_until_nul(&buf[..]).expect("NUL written above")
}

/// Decimal digits of `v` into `out`; returns their count.
pub fn itoa(v: i64, out: &mut [u8; 12]) -> usize {
    let mut tmp = [0u8; 20];
    let mut n = 0;
    let neg = v < 0;
    let mut x = v.unsigned_abs();
    loop {
        tmp[n] = b'0' + (x % 10) as u8;
        n += 1;
        x /= 10;
        if x == 0 {
            break;
        }
    }
    let mut len = 0;
    if neg {
        out[0] = b'-';
        len = 1;
    }
    for i in (0..n).rev() {
        if len < out.len() {
            out[len] = tmp[i];
            len += 1;
        }
    }
    len
}

/// Writes all of `bytes` to `fd`, ignoring errors (best effort reporting).
pub fn write_all(fd: c_int, bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        // SAFETY: a valid buffer.
        let n = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
        if n <= 0 {
            return;
        }
        rest = &rest[n as usize..];
    }
}

/// Reports `what` and `errno` on `fd` (the error pipe) and exits.
pub fn fail(fd: c_int, what: &CStr, err: c_int) -> ! {
    write_all(fd, what.to_bytes());
    write_all(fd, b": ");
    // SAFETY: strerror's result is only read here, before exiting.
    let text = unsafe { CStr::from_ptr(libc::strerror(err)) };
    write_all(fd, text.to_bytes());
    // SAFETY: exiting the child without running the parent's destructors.
    unsafe { libc::_exit(EXIT_SETUP_FAILED) }
}

/// Exit code of a sandbox init whose setup failed (the message is on the
/// error pipe).
pub const EXIT_SETUP_FAILED: c_int = 125;

/// A pointer array for `execve`, NULL-terminated.
pub fn ptrs(items: &[std::ffi::CString]) -> Vec<*const c_char> {
    items
        .iter()
        .map(|c| c.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_without_allocating() {
        let mut b = [0u8; 40];
        assert_eq!(fd_path(17, &mut b).to_str().unwrap(), "/proc/self/fd/17");
        let mut d = [0u8; 12];
        let n = itoa(-305, &mut d);
        assert_eq!(&d[..n], b"-305");
        let n = itoa(0, &mut d);
        assert_eq!(&d[..n], b"0");
    }
}
