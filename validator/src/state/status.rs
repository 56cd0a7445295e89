//! How far the world state follows the archiver: the node's readiness.

use tandem_proto::{B256, BlockId};
use tandem_state::{ReexecutionError, TxError};

/// Why the chain follower stopped applying blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StallReason {
    /// Executing the archiver's block gave another result than its header claims.
    Mismatch(ReexecutionError),
    /// A tx of the archiver's block does not recover (bad signature, wrong chain).
    InvalidTx {
        /// Position in the block.
        index: usize,
        /// Why.
        error: TxError,
    },
    /// The archiver's chain leaves the world state's below its final block: nothing that can
    /// be rolled back (a store was replaced, or L1 reorganised finality away).
    DivergedBelowFinal {
        /// The world state's final block.
        finalized: u64,
    },
}

impl std::fmt::Display for StallReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Mismatch(err) => write!(f, "re-execution mismatch: {err}"),
            Self::InvalidTx { index, error } => write!(f, "tx {index} is invalid: {error}"),
            Self::DivergedBelowFinal { finalized } => write!(
                f,
                "the archiver's chain diverges from the world state below its final block {finalized}"
            ),
        }
    }
}

impl StallReason {
    /// Metric label.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Mismatch(_) => "mismatch",
            Self::InvalidTx { .. } => "invalid_tx",
            Self::DivergedBelowFinal { .. } => "diverged_below_final",
        }
    }
}

/// Where the chain follower stands. The node is ready (its `/ready`) only when
/// [`FollowerStatus::is_ready`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowerStatus {
    /// Not reconciled yet since start.
    Starting,
    /// Applying the archiver's blocks.
    Syncing {
        /// World-state tip.
        world: u64,
        /// The archiver's proposed tip.
        archiver: u64,
    },
    /// The world state ends where the archiver's proposed chain does.
    InSync {
        /// The common tip.
        tip: BlockId,
    },
    /// The archiver is behind the world state's final block (a store being rebuilt from L1):
    /// nothing is rolled back or applied until it catches up.
    WaitingForArchiver {
        /// World-state final block.
        finalized: u64,
        /// The archiver's proposed tip.
        archiver: u64,
    },
    /// A reconcile step failed without a fatal error (the archiver or the world state could
    /// not be read, say): the world state may no longer follow the archiver, so the node is
    /// not ready until a later step (retried every second and on every archiver change)
    /// succeeds.
    ReconcileFailed {
        /// The step's error.
        error: String,
    },
    /// Applying stopped at `block` (the archiver's block there); it resumes only when the
    /// archiver's chain no longer holds that block.
    Stalled {
        /// Number of the block that could not be applied.
        number: u64,
        /// Its hash.
        hash: B256,
        /// Why.
        reason: StallReason,
    },
}

impl FollowerStatus {
    /// Whether the node can validate proposals on top of the chain.
    pub const fn is_ready(&self) -> bool {
        matches!(self, Self::InSync { .. })
    }

    /// Metric label of the state.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Syncing { .. } => "syncing",
            Self::InSync { .. } => "in_sync",
            Self::WaitingForArchiver { .. } => "waiting_for_archiver",
            Self::Stalled { .. } => "stalled",
            Self::ReconcileFailed { .. } => "reconcile_failed",
        }
    }
}

/// The node's readiness as `/ready` reports it: a receiver of the follower's status.
#[derive(Debug, Clone)]
pub struct Readiness(pub(crate) tokio::sync::watch::Receiver<FollowerStatus>);

impl Readiness {
    /// The current status.
    pub fn status(&self) -> FollowerStatus {
        self.0.borrow().clone()
    }

    /// Whether the node is ready now.
    pub fn is_ready(&self) -> bool {
        self.0.borrow().is_ready()
    }

    /// Waits until the status satisfies `done`; `None` if the state service stopped.
    pub async fn wait_for(&self, done: impl Fn(&FollowerStatus) -> bool) -> Option<FollowerStatus> {
        let mut rx = self.0.clone();
        rx.wait_for(|status| done(status))
            .await
            .ok()
            .map(|s| s.clone())
    }
}

/// Counters of the chain follower since start (also exported as metrics).
#[derive(Debug, Default)]
pub(crate) struct FollowerStats {
    given: std::sync::atomic::AtomicU64,
    executed_here: std::sync::atomic::AtomicU64,
    rolled_back: std::sync::atomic::AtomicU64,
}

/// A reading of [`FollowerStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerCounts {
    /// Blocks applied from an executed block handed over (never executed again).
    pub given: u64,
    /// Blocks the follower executed itself (from L1 bodies, after a restart, or blocks stored
    /// without their executed block).
    pub executed_here: u64,
    /// Blocks rolled back.
    pub rolled_back: u64,
}

impl FollowerStats {
    pub(crate) fn applied(&self, given: bool) {
        let counter = if given {
            &self.given
        } else {
            &self.executed_here
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn rolled_back(&self, blocks: u64) {
        self.rolled_back
            .fetch_add(blocks, std::sync::atomic::Ordering::Relaxed);
    }

    /// The counts now.
    pub(crate) fn counts(&self) -> FollowerCounts {
        let load = |counter: &std::sync::atomic::AtomicU64| {
            counter.load(std::sync::atomic::Ordering::Relaxed)
        };
        FollowerCounts {
            given: load(&self.given),
            executed_here: load(&self.executed_here),
            rolled_back: load(&self.rolled_back),
        }
    }
}
