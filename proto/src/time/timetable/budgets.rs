//! What the proposer's schedule is made of: its local budgets, the time a build frame reserves
//! for other work than blocks, and why a schedule cannot be built.

use std::time::Duration;

use crate::time::windows::PipeliningMode;

/// The proposer's local budgets. They only shape its own plan; consensus deadlines never depend
/// on them. The non-pipelined schedule reads `checkpoint_prepare_time` as its assemble time and
/// `min_block_duration` as its minimum execution time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequencerBudgets {
    /// Time from build-frame start to the first sub-slot (sync, proposer check, fork).
    pub checkpoint_init_time: Duration,
    /// Shortest useful block: a sub-slot with less time left is skipped.
    pub min_block_duration: Duration,
    /// Expected one-way gossip propagation time (P).
    pub p2p_propagation_time: Duration,
    /// Time to assemble and sign the checkpoint after the last block.
    pub checkpoint_prepare_time: Duration,
    /// Non-pipelined only: time reserved at the end of the slot to get the L1 tx mined. The fast
    /// profile lowers it to E (one L1 block).
    pub l1_publishing_time: Duration,
}

impl Default for SequencerBudgets {
    fn default() -> Self {
        Self {
            checkpoint_init_time: Duration::from_secs(1),
            min_block_duration: Duration::from_secs(2),
            p2p_propagation_time: Duration::from_secs(2),
            checkpoint_prepare_time: Duration::from_secs(1),
            l1_publishing_time: Duration::from_secs(12),
        }
    }
}

/// Why a timetable cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimetableError {
    /// D is zero.
    #[error("block duration must be greater than zero")]
    ZeroBlockDuration,
    /// D is not below S.
    #[error("block duration {block_ms} ms must be shorter than the slot duration {slot_ms} ms")]
    BlockNotShorterThanSlot {
        /// D in ms.
        block_ms: u64,
        /// S in ms.
        slot_ms: u64,
    },
    /// The budgets leave no room for a single block.
    #[error(
        "the {mode} schedule leaves no room for a block of {block_ms} ms in a slot of {slot_ms} ms: \
         {reserved}"
    )]
    NoRoomForBlocks {
        /// The schedule.
        mode: PipeliningMode,
        /// S in ms.
        slot_ms: u64,
        /// D in ms.
        block_ms: u64,
        /// What the frame keeps for other work than blocks.
        reserved: ReservedTime,
    },
    /// Non-pipelined: the proposal of a full checkpoint would be due after its consensus
    /// deadline. It arrives at `T + S − E − P − R − l1_publishing` at the latest, which is at or
    /// before `T + S − 2E − R` only when `P + l1_publishing ≥ E`.
    #[error(
        "the non-pipelined schedule needs p2p propagation ({propagation_ms} ms) + L1 publishing \
         time ({l1_publishing_ms} ms) of at least one L1 slot ({l1_slot_ms} ms): otherwise a full \
         checkpoint's proposal reaches validators after its deadline T + S − 2E − R"
    )]
    PublishingShorterThanL1Slot {
        /// P in ms, after the fast-profile clamp.
        propagation_ms: u64,
        /// The L1 publishing budget in ms, after the fast-profile clamp.
        l1_publishing_ms: u64,
        /// E in ms.
        l1_slot_ms: u64,
    },
}

/// One use of the build frame other than building blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReservedPart {
    /// Sync, proposer check and fork before the first block.
    Init,
    /// Assembling and signing the checkpoint.
    Prepare,
    /// Gossip to validators and back (counted twice).
    Propagation,
    /// Re-executing the last block (R, a protocol constant).
    Reexecution,
    /// Getting the L1 tx mined (non-pipelined only).
    L1Publishing,
}

/// The time a build frame keeps for other work than blocks, in ms, after the fast-profile
/// clamp: what an error reports so the operator can see which budget to lower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReservedTime {
    /// Checkpoint init.
    pub init_ms: u64,
    /// Checkpoint prepare (assemble and sign).
    pub prepare_ms: u64,
    /// One-way propagation P (the frame keeps it twice).
    pub propagation_ms: u64,
    /// R.
    pub reexecution_ms: u64,
    /// L1 publishing (0 when pipelined).
    pub l1_publishing_ms: u64,
}

impl ReservedTime {
    /// Each part with the time it takes from the frame (propagation counted twice).
    pub fn parts(&self) -> [(ReservedPart, u64); 5] {
        [
            (ReservedPart::Init, self.init_ms),
            (ReservedPart::Prepare, self.prepare_ms),
            (
                ReservedPart::Propagation,
                self.propagation_ms.saturating_mul(2),
            ),
            (ReservedPart::Reexecution, self.reexecution_ms),
            (ReservedPart::L1Publishing, self.l1_publishing_ms),
        ]
    }

    /// The whole reserved time.
    pub fn total_ms(&self) -> u64 {
        self.parts()
            .iter()
            .fold(0u64, |sum, (_, ms)| sum.saturating_add(*ms))
    }

    /// The part taking the most time (the first of equals, in [`ReservedTime::parts`] order).
    pub fn largest(&self) -> (ReservedPart, u64) {
        self.parts()
            .into_iter()
            .fold((ReservedPart::Init, 0), |best, part| {
                if part.1 > best.1 { part } else { best }
            })
    }
}

impl std::fmt::Display for ReservedTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ms reserved = init {} + prepare {} + 2 × propagation {} + re-execution {}",
            self.total_ms(),
            self.init_ms,
            self.prepare_ms,
            self.propagation_ms,
            self.reexecution_ms
        )?;
        if self.l1_publishing_ms > 0 {
            write!(f, " + L1 publishing {}", self.l1_publishing_ms)?;
        }
        Ok(())
    }
}
