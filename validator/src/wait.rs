//! Waiting for a condition on a store until a deadline of the injected clock: woken by the
//! store's watch channel (every change), never by polling the store on a timer.

use std::time::Duration;

use tandem_proto::time::{Clock, Timestamp};
use tokio::sync::watch;

/// Longest real-time sleep between two looks at the clock, so a clock moved by hand (tests) is
/// noticed; the wall clock is followed exactly.
const CLOCK_POLL: Duration = Duration::from_millis(50);

/// Something that says when what a waiter looks at may have changed.
pub(crate) trait Changes {
    /// Marks the current state seen.
    fn mark_seen(&mut self);
    /// Returns at the next change; `false` when no change can come any more.
    async fn changed(&mut self) -> bool;
}

impl<T> Changes for watch::Receiver<T> {
    fn mark_seen(&mut self) {
        self.borrow_and_update();
    }

    async fn changed(&mut self) -> bool {
        watch::Receiver::changed(self).await.is_ok()
    }
}

impl<A: Changes, B: Changes> Changes for (A, B) {
    fn mark_seen(&mut self) {
        self.0.mark_seen();
        self.1.mark_seen();
    }

    async fn changed(&mut self) -> bool {
        tokio::select! {
            a = self.0.changed() => a,
            b = self.1.changed() => b,
        }
    }
}

/// Returns `Ok(true)` as soon as `check` holds, re-checking on every change of `changes`;
/// `Ok(false)` once `clock` reads `deadline` (a deadline already past means one check). If no
/// change can come any more, the last check decides.
pub(crate) async fn wait_until<E>(
    clock: &dyn Clock,
    deadline: Timestamp,
    changes: &mut impl Changes,
    mut check: impl FnMut() -> Result<bool, E>,
) -> Result<bool, E> {
    loop {
        // Mark the current state seen before checking, so a change after the check wakes us.
        changes.mark_seen();
        if check()? {
            return Ok(true);
        }
        let now = clock.now();
        if now >= deadline {
            return Ok(false);
        }
        tokio::select! {
            biased;
            open = changes.changed() => {
                if !open {
                    return check();
                }
            }
            () = tokio::time::sleep(now.until(deadline).min(CLOCK_POLL)) => {}
        }
    }
}

/// Waits for the next change after the current state of `changes`; `false` when `deadline`
/// came first or no change can come.
pub(crate) async fn next_change(
    clock: &dyn Clock,
    deadline: Timestamp,
    changes: &mut impl Changes,
) -> bool {
    loop {
        let now = clock.now();
        if now >= deadline {
            return false;
        }
        tokio::select! {
            biased;
            open = changes.changed() => return open,
            () = tokio::time::sleep(now.until(deadline).min(CLOCK_POLL)) => {}
        }
    }
}
