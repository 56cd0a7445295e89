//! SIGINT and SIGTERM for the long-running commands (`devnet`, `spam`).
//!
//! The streams are installed once and kept for the command's whole life: tokio only delivers
//! a signal to listeners that exist when it arrives, so a listener made afresh on each pass of
//! a loop misses a Ctrl-C that lands between two passes (and the default action is already
//! replaced, so nothing else would stop the process).

use tokio::signal::unix::{Signal, SignalKind, signal};

/// Both stop signals, registered from [`StopSignals::install`] on.
pub(crate) struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
}

impl StopSignals {
    /// Registers the listeners (needs a running tokio runtime).
    pub(crate) fn install() -> std::io::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Resolves on the next SIGINT or SIGTERM, including one that arrived since the last call
    /// (cancel-safe: use it in `select!`).
    pub(crate) async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_signal_sent_while_nobody_waits_is_still_seen() {
        let mut signals = StopSignals::install().unwrap();
        // Nobody is in `recv` now: the old per-loop `ctrl_c()` lost exactly this one.
        // SAFETY: signalling our own process, whose SIGINT disposition tokio replaced above.
        unsafe { libc::raise(libc::SIGINT) };
        tokio::time::timeout(Duration::from_secs(5), signals.recv())
            .await
            .expect("the SIGINT raised before recv was delivered");
    }
}
