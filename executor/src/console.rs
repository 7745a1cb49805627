//! The sandbox's terminal for `run -t`, made as runc makes a container's
//! console: the child opens the pseudo-terminal on the sandbox's own
//! `/dev/ptmx` (a link to `pts/ptmx` of its `newinstance` devpts), so the
//! process's terminal is `/dev/pts/0` inside and `tty` names it; the child
//! keeps the slave and hands the master to rbuild over a socket pair
//! (`SCM_RIGHTS`, runc's console socket), which then proxies it to the
//! user's terminal. The child's half is async-signal-safe (see `sys`).

use std::ffi::c_int;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::sys::cvt;

/// What the child needs to make the terminal.
#[derive(Clone, Copy)]
pub struct Console {
    /// The child's end of the socket pair the master is sent over.
    pub socket: c_int,
    /// The user's terminal size, given to the new terminal before the
    /// process starts.
    pub winsize: Option<libc::winsize>,
}

/// Room for one descriptor's control message, aligned for `cmsghdr`.
type ControlBuffer = [u64; 4];

/// A connected pair of Unix stream sockets, close-on-exec: rbuild's end
/// first, the child's second.
pub fn socket_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: socketpair fills the two descriptors, which we then own.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both are fresh descriptors of ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// In the child, after `pivot_root`: opens a pseudo-terminal on the
/// sandbox's `/dev/ptmx`, sizes it, sends the master to rbuild and closes
/// the child's copies of the master and the socket; returns the slave
/// (close-on-exec) for the process's stdio. Errors are errno values.
///
/// # Safety
/// Only system calls; `console.socket` must be the child's socket end.
pub unsafe fn open_and_send(console: &Console) -> Result<c_int, c_int> {
    // SAFETY: system calls on descriptors this function opens or owns.
    unsafe {
        let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
        let master = cvt(libc::open(c"/dev/ptmx".as_ptr(), flags))?;
        let unlock: c_int = 0;
        cvt(libc::ioctl(master, libc::TIOCSPTLCK, &unlock))?;
        // The slave by the master, not by a path: no lookup to race with.
        let slave = cvt(libc::ioctl(master, libc::TIOCGPTPEER, flags))?;
        if let Some(size) = &console.winsize {
            cvt(libc::ioctl(slave, libc::TIOCSWINSZ, size))?;
        }
        send_fd(console.socket, master)?;
        libc::close(master);
        libc::close(console.socket);
        Ok(slave)
    }
}

/// Sends `fd` with one data byte over the Unix socket `socket`.
///
/// # Safety
/// Only system calls on the caller's descriptors.
unsafe fn send_fd(socket: c_int, fd: c_int) -> Result<(), c_int> {
    // SAFETY: the message points at live locals; CMSG_* walk `control`,
    // which is large and aligned enough for one descriptor.
    unsafe {
        let mut byte = 0u8;
        let mut iov = libc::iovec {
            iov_base: (&raw mut byte).cast(),
            iov_len: 1,
        };
        let mut control: ControlBuffer = [0; 4];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(size_of::<c_int>() as u32) as usize;
        let header = libc::CMSG_FIRSTHDR(&msg);
        (*header).cmsg_level = libc::SOL_SOCKET;
        (*header).cmsg_type = libc::SCM_RIGHTS;
        (*header).cmsg_len = libc::CMSG_LEN(size_of::<c_int>() as u32) as usize;
        libc::CMSG_DATA(header).cast::<c_int>().write_unaligned(fd);
        cvt(libc::sendmsg(socket, &msg, libc::MSG_NOSIGNAL) as c_int).map(drop)
    }
}

/// In rbuild: the master the child sent over `socket`, or `None` when the
/// child ended (its setup failed) before sending one.
pub fn receive_master(socket: &OwnedFd) -> std::io::Result<Option<OwnedFd>> {
    let mut byte = 0u8;
    let mut iov = libc::iovec {
        iov_base: (&raw mut byte).cast(),
        iov_len: 1,
    };
    let mut control: ControlBuffer = [0; 4];
    // SAFETY: a zeroed msghdr is valid; it then points at live locals.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of::<ControlBuffer>();
    let n = loop {
        // SAFETY: recvmsg writes within the buffers `msg` describes.
        let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            break n;
        }
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel filled `control` up to msg_controllen; a header
    // of SCM_RIGHTS carries a descriptor now ours.
    unsafe {
        let header = libc::CMSG_FIRSTHDR(&msg);
        if n == 0
            || header.is_null()
            || (*header).cmsg_level != libc::SOL_SOCKET
            || (*header).cmsg_type != libc::SCM_RIGHTS
        {
            return Ok(None);
        }
        let fd = libc::CMSG_DATA(header).cast::<c_int>().read_unaligned();
        Ok(Some(OwnedFd::from_raw_fd(fd)))
    }
}
