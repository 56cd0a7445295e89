//! The sequencer's states (reference §3.1) and the tracker that records time spent in each.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Instant,
};

use tokio::sync::watch;

use crate::{
    error::{SequencerError, SequencerResult},
    metrics,
};

/// What the sequencer is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SequencerState {
    /// Not running.
    Stopped,
    /// Shutting down: every other transition raises [`SequencerError::Interrupted`].
    Stopping,
    /// Between ticks.
    Idle,
    /// Reading the clock and checking sync.
    Synchronizing,
    /// Checking it may propose (depth and slot guards, the L1 pre-check).
    ProposerCheck,
    /// Reading the globals and forking the world state.
    InitializingCheckpoint,
    /// Waiting for enough txs for the next block.
    WaitingForTxs,
    /// Building a block.
    CreatingBlock,
    /// Waiting for the next sub-slot's deadline.
    WaitingUntilNextBlock,
    /// Assembling, validating and gossiping the checkpoint.
    AssemblingCheckpoint,
    /// A background job collects attestations.
    CollectingAttestations,
    /// A background job hands the checkpoint to the publisher and waits for its outcome.
    PublishingCheckpoint,
}

impl SequencerState {
    /// Label for metrics and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Stopped => "stopped",
            Self::Stopping => "stopping",
            Self::Idle => "idle",
            Self::Synchronizing => "synchronizing",
            Self::ProposerCheck => "proposer_check",
            Self::InitializingCheckpoint => "initializing_checkpoint",
            Self::WaitingForTxs => "waiting_for_txs",
            Self::CreatingBlock => "creating_block",
            Self::WaitingUntilNextBlock => "waiting_until_next_block",
            Self::AssemblingCheckpoint => "assembling_checkpoint",
            Self::CollectingAttestations => "collecting_attestations",
            Self::PublishingCheckpoint => "publishing_checkpoint",
        }
    }
}

/// The loop's state, shared with its handle. The background jobs record their own phases
/// (collecting, publishing) through [`StateTracker::phase`] without moving the loop's state:
/// the loop goes on to the next target slot meanwhile.
#[derive(Debug, Clone)]
pub(crate) struct StateTracker {
    inner: Arc<Mutex<(SequencerState, Instant)>>,
    watch: Arc<watch::Sender<SequencerState>>,
}

impl StateTracker {
    pub(crate) fn new() -> (Self, watch::Receiver<SequencerState>) {
        let (watch, receiver) = watch::channel(SequencerState::Stopped);
        (
            Self {
                inner: Arc::new(Mutex::new((SequencerState::Stopped, Instant::now()))),
                watch: Arc::new(watch),
            },
            receiver,
        )
    }

    pub(crate) fn current(&self) -> SequencerState {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).0
    }

    /// Moves to `next`, recording the time spent in the previous state. While stopping only
    /// `Stopped` is allowed: anything else is [`SequencerError::Interrupted`], which is how work
    /// in progress learns it must abort.
    pub(crate) fn set(&self, next: SequencerState) -> SequencerResult<()> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let (previous, since) = *inner;
        if previous == SequencerState::Stopping && next != SequencerState::Stopped {
            return Err(SequencerError::Interrupted);
        }
        if previous != next {
            metrics::state_time(previous, since.elapsed());
            *inner = (next, Instant::now());
            self.watch.send_replace(next);
        }
        Ok(())
    }

    /// Forces `Stopping` (shutdown), whatever the state.
    pub(crate) fn stopping(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        metrics::state_time(inner.0, inner.1.elapsed());
        *inner = (SequencerState::Stopping, Instant::now());
        self.watch.send_replace(SequencerState::Stopping);
    }

    /// A background phase: its time is recorded when the guard drops. Refused while stopping.
    pub(crate) fn phase(&self, state: SequencerState) -> SequencerResult<PhaseTimer> {
        if self.current() == SequencerState::Stopping {
            return Err(SequencerError::Interrupted);
        }
        Ok(PhaseTimer {
            state,
            since: Instant::now(),
        })
    }
}

/// Records the time of a background phase when dropped.
#[derive(Debug)]
pub(crate) struct PhaseTimer {
    state: SequencerState,
    since: Instant,
}

impl Drop for PhaseTimer {
    fn drop(&mut self) {
        metrics::state_time(self.state, self.since.elapsed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transition_while_stopping_is_interrupted() {
        let (tracker, watch) = StateTracker::new();
        tracker.set(SequencerState::Idle).unwrap();
        tracker.set(SequencerState::CreatingBlock).unwrap();
        assert_eq!(*watch.borrow(), SequencerState::CreatingBlock);
        tracker.stopping();
        assert!(matches!(
            tracker.set(SequencerState::WaitingUntilNextBlock),
            Err(SequencerError::Interrupted)
        ));
        assert!(matches!(
            tracker.phase(SequencerState::PublishingCheckpoint),
            Err(SequencerError::Interrupted)
        ));
        tracker.set(SequencerState::Stopped).unwrap();
        assert_eq!(tracker.current(), SequencerState::Stopped);
    }
}
