//! The unit tests' clock: tokio's paused time. It moves only when every task waits on a timer
//! (tokio auto-advances to the next one, never while a task runs or a blocking task is in
//! flight), so building, signing and storing take no clock time and every wait ends exactly
//! at its deadline: sub-slot outcomes never depend on how fast or loaded the machine is.

use std::sync::{Arc, Mutex};

use tandem_proto::time::{Clock, Timestamp};

/// A clock reading `base` plus the paused tokio time elapsed since `anchor`; `set` moves it.
#[derive(Debug, Clone)]
pub(crate) struct TestClock {
    inner: Arc<Mutex<(Timestamp, tokio::time::Instant)>>,
}

impl TestClock {
    /// Needs a tokio runtime with paused time (`#[tokio::test(start_paused = true)]`).
    pub(crate) fn new(start: Timestamp) -> Self {
        Self {
            inner: Arc::new(Mutex::new((start, tokio::time::Instant::now()))),
        }
    }

    /// Jumps to `now` (a test's set-up; no timer fires for the jump itself).
    pub(crate) fn set(&self, now: Timestamp) {
        *self.inner.lock().unwrap() = (now, tokio::time::Instant::now());
    }
}

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        let (base, anchor) = *self.inner.lock().unwrap();
        base.saturating_add(anchor.elapsed())
    }
}
