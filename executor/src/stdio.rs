//! The parent's side of the process's stdio: line-by-line capture of
//! stdout and stderr, and the pseudo-terminal proxy of `run -t`.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::Stream;
use crate::resize::ResizeWatch;

/// Reads both pipes until they close, handing each complete line (and a
/// final partial one) to `output`.
pub fn capture(stdout: OwnedFd, stderr: OwnedFd, output: &mut dyn FnMut(Stream, &[u8])) {
    let mut streams = [
        (
            Some(std::fs::File::from(stdout)),
            Stream::Stdout,
            Vec::new(),
        ),
        (
            Some(std::fs::File::from(stderr)),
            Stream::Stderr,
            Vec::new(),
        ),
    ];
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let open: Vec<usize> = (0..2).filter(|i| streams[*i].0.is_some()).collect();
        if open.is_empty() {
            break;
        }
        let mut fds: Vec<PollFd<'_>> = open
            .iter()
            .map(|i| {
                PollFd::new(
                    streams[*i].0.as_ref().expect("open").as_fd(),
                    PollFlags::POLLIN,
                )
            })
            .collect();
        if poll(&mut fds, PollTimeout::NONE).is_err() {
            continue;
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        for (k, i) in open.into_iter().enumerate() {
            if !ready[k] {
                continue;
            }
            let (file, stream, pending) = &mut streams[i];
            let n = file.as_mut().expect("open").read(&mut buf).unwrap_or(0);
            if n == 0 {
                if !pending.is_empty() {
                    output(*stream, pending);
                    pending.clear();
                }
                *file = None;
                continue;
            }
            pending.extend_from_slice(&buf[..n]);
            while let Some(at) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=at).collect();
                output(*stream, &line);
            }
        }
    }
}

/// Puts the caller's terminal into raw mode until dropped.
pub struct RawMode {
    fd: i32,
    saved: nix::sys::termios::Termios,
}

impl RawMode {
    /// Raw mode on stdin, if it is a terminal.
    pub fn enter() -> Option<Self> {
        // SAFETY: stdin stays open for the life of the process.
        let stdin = unsafe { BorrowedFd::borrow_raw(0) };
        let saved = nix::sys::termios::tcgetattr(stdin).ok()?;
        let mut raw = saved.clone();
        nix::sys::termios::cfmakeraw(&mut raw);
        nix::sys::termios::tcsetattr(stdin, nix::sys::termios::SetArg::TCSANOW, &raw).ok()?;
        Some(Self { fd: 0, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: the fd was valid when raw mode was entered.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let _ = nix::sys::termios::tcsetattr(fd, nix::sys::termios::SetArg::TCSANOW, &self.saved);
    }
}

/// Copies the caller's stdin (when `forward_stdin`) to the pty master and
/// the master to stdout until the master reports the other side closed;
/// resizes of the caller's terminal are copied to the pty.
pub fn proxy_tty(master: OwnedFd, forward_stdin: bool) {
    let resizes = ResizeWatch::start();
    let mut master = std::fs::File::from(master);
    let mut stdout = std::io::stdout();
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: stdin stays open for the life of the process.
    let stdin = unsafe { BorrowedFd::borrow_raw(0) };
    let mut stdin_open = forward_stdin;
    loop {
        let mut fds = vec![PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        if let Some(watch) = &resizes {
            fds.push(PollFd::new(watch.fd(), PollFlags::POLLIN));
        }
        if stdin_open {
            fds.push(PollFd::new(stdin, PollFlags::POLLIN));
        }
        if poll(&mut fds, PollTimeout::NONE).is_err() {
            continue;
        }
        let ready = |i: usize| fds[i].revents().is_some_and(|r| !r.is_empty());
        let master_ready = ready(0);
        let resized = resizes.is_some() && ready(1);
        let stdin_ready = stdin_open && ready(fds.len() - 1);
        drop(fds);
        // Before any input that follows it: the size the user now sees.
        if let Some(watch) = resizes.as_ref().filter(|_| resized) {
            watch.apply(master.as_fd());
        }
        if master_ready {
            match master.read(&mut buf) {
                Ok(n) if n > 0 => {
                    let _ = stdout.write_all(&buf[..n]);
                    let _ = stdout.flush();
                }
                // EIO: the process side is gone.
                _ => return,
            }
        }
        if stdin_ready {
            // SAFETY: reading into a live buffer from fd 0.
            let n = unsafe { libc::read(stdin.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                stdin_open = false;
            } else {
                let _ = master.write_all(&buf[..n as usize]);
            }
        }
    }
}
