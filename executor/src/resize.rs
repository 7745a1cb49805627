//! The caller's terminal size for the sandbox's terminal of `run -t`: read
//! once for the new terminal, then copied again on every SIGWINCH (a
//! resize of the caller's terminal), as `docker run -t` and runc's console
//! do. The signal handler only writes a byte to a pipe (async-signal-safe);
//! the tty proxy polls the pipe's other end and copies the size with
//! `TIOCSWINSZ`, which sends the sandbox's process its own SIGWINCH.

use std::ffi::c_int;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

/// The write end of the pipe of the resize watch in place (-1: none).
static NOTIFY: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_resize(_: c_int) {
    let fd = NOTIFY.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = 0u8;
        // SAFETY: write(2) is async-signal-safe; the pipe is non-blocking,
        // so a full pipe (resizes already pending) drops the byte.
        unsafe { libc::write(fd, (&raw const byte).cast(), 1) };
    }
}

/// The caller's terminal size (of stdout, else stdin), if either is a
/// terminal.
pub fn terminal_size() -> Option<libc::winsize> {
    [1, 0].into_iter().find_map(|fd| {
        // SAFETY: a zeroed winsize is valid; TIOCGWINSZ fills it.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
        (rc == 0).then_some(ws)
    })
}

/// SIGWINCH caught into a pipe until dropped (the previous handler is put
/// back then).
pub struct ResizeWatch {
    read: OwnedFd,
    /// Held open for the handler, which knows it by number (`NOTIFY`).
    _write: OwnedFd,
    saved: SigAction,
}

impl ResizeWatch {
    /// Starts catching SIGWINCH; `None` if the pipe or handler cannot be
    /// made (the terminal then keeps its first size).
    pub fn start() -> Option<Self> {
        let flags = nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK;
        let (read, write) = nix::unistd::pipe2(flags).ok()?;
        NOTIFY.store(write.as_raw_fd(), Ordering::Relaxed);
        let action = SigAction::new(
            SigHandler::Handler(on_resize),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        // SAFETY: the handler only loads an atomic and calls write(2).
        match unsafe { sigaction(Signal::SIGWINCH, &action) } {
            Ok(saved) => Some(Self {
                read,
                _write: write,
                saved,
            }),
            Err(_) => {
                NOTIFY.store(-1, Ordering::Relaxed);
                None
            }
        }
    }

    /// What to poll for resizes.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// After the poll said so: empties the pipe and gives `terminal` the
    /// caller's terminal's size now.
    pub fn apply(&self, terminal: BorrowedFd<'_>) {
        let mut buf = [0u8; 64];
        // SAFETY: reading into a live buffer from our non-blocking pipe.
        while unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {
        }
        if let Some(size) = terminal_size() {
            // SAFETY: TIOCSWINSZ reads a valid winsize.
            unsafe { libc::ioctl(terminal.as_raw_fd(), libc::TIOCSWINSZ, &size) };
        }
    }
}

impl Drop for ResizeWatch {
    fn drop(&mut self) {
        // SAFETY: restoring the handler in place before this watch.
        let _ = unsafe { sigaction(Signal::SIGWINCH, &self.saved) };
        NOTIFY.store(-1, Ordering::Relaxed);
    }
}
