//! SIGINT, SIGTERM and SIGHUP during `rbuild build` and `rbuild run`: the
//! sandboxes are ended (or the signal forwarded to them) and their dirs
//! removed before rbuild exits, so that nothing is left behind.
//!
//! The signals are blocked in every thread (the mask is set before any is
//! spawned) and taken by one thread with `sigwait`. A build cancels at the
//! first signal: its sandboxes are killed, and rbuild exits with 128+signal
//! once they are gone. `rbuild run` forwards the signal to the process, as
//! `docker run` does (a pid 1 without a handler ignores it, as in Docker);
//! a second SIGINT or SIGTERM kills the sandbox. A signal that comes
//! before the sandbox runs ends rbuild at once.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use nix::sys::signal::{SigSet, Signal};
use rbuild_build::CancelToken;

/// What a signal does.
#[derive(Debug, Clone)]
pub enum OnSignal {
    /// Cancel the build (its sandboxes are killed) and exit (`rbuild build`).
    Cancel(CancelToken),
    /// Forward it to the sandbox; kill it on the second (`rbuild run`).
    Forward,
}

/// 128+signal once a signal has ended the sandboxes (0 before).
static CANCELLED: AtomicU8 = AtomicU8::new(0);

/// The exit code of a command a signal ended (128+signal), which wins
/// over the command's own result (the killed step's error).
pub fn cancelled() -> Option<std::process::ExitCode> {
    let code = CANCELLED.load(Ordering::SeqCst);
    (code != 0).then(|| std::process::ExitCode::from(code))
}

/// How long rbuild waits for killed sandboxes to be cleaned up.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(10);

fn signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(s);
    }
    set
}

/// Blocks the signals in this thread (and so in every thread it spawns)
/// and starts the thread that handles them. Call before other threads
/// exist.
pub fn handle(mode: OnSignal) -> anyhow::Result<()> {
    let set = signals();
    set.thread_block()?;
    std::thread::Builder::new()
        .name(String::from("signals"))
        .spawn(move || wait_loop(set, mode))?;
    Ok(())
}

fn wait_loop(set: SigSet, mode: OnSignal) {
    let mut forwarded = false;
    loop {
        let Ok(signal) = set.wait() else {
            continue;
        };
        if matches!(mode, OnSignal::Forward)
            && (!forwarded || signal == Signal::SIGHUP)
            && rbuild_executor::signal_sandboxes(signal as i32) > 0
        {
            forwarded = true;
            continue;
        }
        CANCELLED.store(128 + signal as u8, Ordering::SeqCst);
        match &mode {
            OnSignal::Cancel(token) => token.cancel(),
            OnSignal::Forward => {
                rbuild_executor::signal_sandboxes(libc::SIGKILL);
            }
        }
        rbuild_executor::wait_until_idle(CLEANUP_TIMEOUT);
        std::process::exit(128 + signal as i32);
    }
}
