//! Cancelling a build from outside it (the CLI trips the token from its
//! signal handler): the build's sandboxes are killed at once, and the
//! build returns [`crate::BuildError::Cancelled`] instead of going on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// A token that cancels the builds it is given to; clones share it.
#[derive(Debug, Clone, Default)]
pub struct CancelToken {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    cancelled: AtomicBool,
    notify: Notify,
}

impl CancelToken {
    /// A token not yet tripped.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels: every sandbox of this process is killed (their steps fail
    /// at once) and the build stops before its next phase.
    pub fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::SeqCst);
        self.inner.notify.notify_waiters();
        rbuild_executor::signal_sandboxes(libc::SIGKILL);
    }

    /// Whether [`CancelToken::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    /// Completes once the token is tripped.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.inner.notify.notified();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tripped_token_wakes_whoever_waits_on_it() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let token = CancelToken::new();
        assert!(!token.is_cancelled());
        let waiter = token.clone();
        runtime.block_on(async {
            let wait = tokio::spawn(async move { waiter.cancelled().await });
            tokio::task::yield_now().await;
            token.cancel();
            tokio::time::timeout(std::time::Duration::from_secs(5), wait)
                .await
                .expect("woken")
                .unwrap();
        });
        assert!(token.is_cancelled());
    }
}
