//! Waiting for instants of the injected [`Clock`], so deadlines follow the clock tests drive
//! (a `ManualClock`) as well as the wall clock.

use std::{future::Future, time::Duration};

use tandem_proto::time::{Clock, Timestamp};

/// Longest real-time sleep between two looks at the clock: a clock moved by hand is noticed
/// within this; the wall clock is followed exactly.
pub(crate) const CLOCK_POLL: Duration = Duration::from_millis(50);

/// Returns once `clock` reads `deadline` or later.
pub(crate) async fn sleep_until(clock: &dyn Clock, deadline: Timestamp) {
    loop {
        let now = clock.now();
        if now >= deadline {
            return;
        }
        tokio::time::sleep(now.until(deadline).min(CLOCK_POLL)).await;
    }
}

/// Runs `work` until `deadline`; `None` when the deadline came first (`work` is dropped).
pub(crate) async fn before<F: Future>(
    clock: &dyn Clock,
    deadline: Timestamp,
    work: F,
) -> Option<F::Output> {
    tokio::select! {
        biased;
        output = work => Some(output),
        () = sleep_until(clock, deadline) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_proto::time::ManualClock;

    #[tokio::test]
    async fn follows_a_manual_clock() {
        let clock = ManualClock::new(Timestamp::from_secs(100));
        let deadline = Timestamp::from_secs(160);
        let never = futures::future::pending::<()>();
        let waiting = tokio::spawn({
            let clock = clock.clone();
            async move { before(&clock, deadline, never).await }
        });
        tokio::time::sleep(3 * CLOCK_POLL).await;
        assert!(!waiting.is_finished(), "returned before the clock moved");
        clock.advance(Duration::from_secs(60));
        assert_eq!(waiting.await.unwrap(), None);
        // Work that finishes first wins, even at the deadline.
        assert_eq!(before(&clock, deadline, async { 7 }).await, Some(7));
    }
}
