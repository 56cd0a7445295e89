//! What the loop, its jobs and their background pipelines share.

use std::time::Duration;

use tandem_proto::time::{Clock, Timestamp};
use tokio::sync::broadcast;

use crate::{
    config::SequencerConfig,
    deps::{ProtocolParams, SequencerDeps},
    events::SequencerEvent,
    state::StateTracker,
};

/// Longest real-time sleep between two clock reads while waiting for a clock deadline (the
/// clock is injected: a test's clock may jump).
const CLOCK_RECHECK: Duration = Duration::from_millis(20);

pub(crate) struct Ctx {
    pub(crate) deps: SequencerDeps,
    pub(crate) config: SequencerConfig,
    pub(crate) params: ProtocolParams,
    pub(crate) tracker: StateTracker,
    pub(crate) events: broadcast::Sender<SequencerEvent>,
}

impl Ctx {
    pub(crate) fn now(&self) -> Timestamp {
        self.deps.clock.now()
    }

    pub(crate) fn emit(&self, event: SequencerEvent) {
        // No subscriber is fine.
        let _ = self.events.send(event);
    }

    /// Sleeps until the clock reads `deadline` (returns at once if it already does).
    pub(crate) async fn sleep_until(&self, deadline: Timestamp) {
        sleep_until(self.deps.clock.as_ref(), deadline).await;
    }
}

/// Sleeps until `clock` reads `deadline`, re-reading it at least every [`CLOCK_RECHECK`].
pub(crate) async fn sleep_until(clock: &dyn Clock, deadline: Timestamp) {
    loop {
        let left = clock.now().until(deadline);
        if left.is_zero() {
            return;
        }
        tokio::time::sleep(left.min(CLOCK_RECHECK)).await;
    }
}
