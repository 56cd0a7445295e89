//! The proposer's timetable: sub-slot deadlines for any target slot, in both modes.
//!
//! Unlike the reference (§1.5, whose fast-profile clamp only lowers the minimum block to 1 s),
//! the minimum block is capped at D / 2 in every profile and mode, so a sub-slot reached less
//! than D / 2 late keeps its block; an operator's larger `min_block_duration` is lowered to it.

use std::time::Duration;

mod budgets;

pub use budgets::{ReservedPart, ReservedTime, SequencerBudgets, TimetableError};

use super::{
    clock::{Slot, SlotClock, Timestamp, duration_millis},
    windows::{ConsensusWindows, PipeliningMode},
};

/// L1 slots shorter than this select the fast local profile (smaller budgets), as on a devnet.
const FAST_PROFILE_BELOW_L1_SLOT: Duration = Duration::from_secs(8);

/// Budgets after the fast-profile clamp, in ms. `l1_publishing` is used only by the
/// non-pipelined schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Budgets {
    init: u64,
    min_block: u64,
    propagation: u64,
    prepare: u64,
    l1_publishing: u64,
}

fn ms(duration: Duration) -> u64 {
    duration_millis(duration)
}

/// The proposer's schedule for any target slot, from the network's [`ConsensusWindows`]
/// (genesis, S, E, D, mode, R) and local budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timetable {
    windows: ConsensusWindows,
    budgets: Budgets,
    max_blocks: u32,
}

impl Timetable {
    /// The schedule of `windows`' mode.
    ///
    /// Pipelined (G4): with E < 8 s the fast local profile lowers propagation and prepare time
    /// to 0.5 s and the minimum block to 1 s. Non-pipelined (G0): the fast profile lowers
    /// propagation to 0, assemble and init to 0.5 s, the minimum execution time to 1 s and the
    /// L1 publishing time to E. In every profile the minimum block is at most D / 2. The clamp
    /// only ever lowers a budget.
    pub fn new(
        windows: ConsensusWindows,
        budgets: SequencerBudgets,
    ) -> Result<Self, TimetableError> {
        let clock = windows.slot_clock();
        let mut b = Budgets {
            init: ms(budgets.checkpoint_init_time),
            min_block: ms(budgets.min_block_duration),
            propagation: ms(budgets.p2p_propagation_time),
            prepare: ms(budgets.checkpoint_prepare_time),
            l1_publishing: ms(budgets.l1_publishing_time),
        };
        if clock.l1_slot_duration() < FAST_PROFILE_BELOW_L1_SLOT {
            match windows.mode() {
                PipeliningMode::Pipelined => {
                    b.propagation = b.propagation.min(500);
                    b.prepare = b.prepare.min(500);
                    b.min_block = b.min_block.min(1_000);
                }
                PipeliningMode::NonPipelined => {
                    b.propagation = 0;
                    b.prepare = b.prepare.min(500);
                    b.init = b.init.min(500);
                    b.min_block = b.min_block.min(1_000);
                    b.l1_publishing = b.l1_publishing.min(ms(clock.l1_slot_duration()));
                }
            }
        }
        let block_ms = ms(windows.block_duration());
        let slot_ms = ms(clock.slot_duration());
        if block_ms == 0 {
            return Err(TimetableError::ZeroBlockDuration);
        }
        if block_ms >= slot_ms {
            return Err(TimetableError::BlockNotShorterThanSlot { block_ms, slot_ms });
        }
        // At most half a block (at least 1 ms): with a minimum as long as D (the ci profile's
        // 1 s), a sub-slot reached even a millisecond late would be skipped. The first one is
        // reached late whenever no checkpoint of the build slot's predecessor is on L1 yet (the
        // second checkpoint after a start, or after a missed one): the sync guard then waits
        // for the L1 block at the frame opening to be mined and synced, up to E on a 1 s L1.
        b.min_block = b.min_block.min(block_ms / 2).max(1);
        let l1_slot_ms = ms(clock.l1_slot_duration());
        if windows.mode() == PipeliningMode::NonPipelined
            && b.propagation.saturating_add(b.l1_publishing) < l1_slot_ms
        {
            return Err(TimetableError::PublishingShorterThanL1Slot {
                propagation_ms: b.propagation,
                l1_publishing_ms: b.l1_publishing,
                l1_slot_ms,
            });
        }
        let reserved = Self::reserved(&windows, &b);
        let max_blocks = slot_ms
            .saturating_sub(reserved.total_ms())
            .checked_div(block_ms)
            .unwrap_or(0);
        if max_blocks == 0 {
            return Err(TimetableError::NoRoomForBlocks {
                mode: windows.mode(),
                slot_ms,
                block_ms,
                reserved,
            });
        }
        Ok(Self {
            windows,
            budgets: b,
            max_blocks: u32::try_from(max_blocks).unwrap_or(u32::MAX),
        })
    }

    /// What the frame of `windows` keeps for other work than blocks. At the end of the frame
    /// (the dead zone, everything but init): pipelined `prep + P + R + P` (gossip the
    /// checkpoint, re-execute the last block, return attestations); non-pipelined
    /// `prep + P + R + P + l1_publishing`. The reference budgets R = D.
    fn reserved(windows: &ConsensusWindows, b: &Budgets) -> ReservedTime {
        ReservedTime {
            init_ms: b.init,
            prepare_ms: b.prepare,
            propagation_ms: b.propagation,
            reexecution_ms: ms(windows.last_block_reexecution_budget()),
            l1_publishing_ms: match windows.mode() {
                PipeliningMode::Pipelined => 0,
                PipeliningMode::NonPipelined => b.l1_publishing,
            },
        }
    }

    /// Lowers the maximum number of blocks to a network-configured cap.
    pub fn with_max_blocks_cap(mut self, cap: u32) -> Self {
        self.max_blocks = self.max_blocks.min(cap.max(1));
        self
    }

    /// The schedule followed.
    pub const fn mode(&self) -> PipeliningMode {
        self.windows.mode()
    }

    /// The consensus windows it is built on.
    pub const fn windows(&self) -> &ConsensusWindows {
        &self.windows
    }

    /// The slot clock it is built on.
    pub const fn slot_clock(&self) -> &SlotClock {
        self.windows.slot_clock()
    }

    /// D.
    pub const fn block_duration(&self) -> Duration {
        self.windows.block_duration()
    }

    /// Most blocks in one checkpoint.
    pub const fn max_blocks_per_checkpoint(&self) -> u32 {
        self.max_blocks
    }

    /// Time of each slot not spent building, see [`SlotSchedule::dead_zone`].
    pub fn dead_zone(&self) -> Duration {
        let reserved = Self::reserved(&self.windows, &self.budgets);
        Duration::from_millis(reserved.total_ms().saturating_sub(reserved.init_ms))
    }

    /// Share of the slot spent building blocks: `max_blocks · D / S`.
    pub fn building_share(&self) -> f64 {
        let building = u64::from(self.max_blocks).saturating_mul(ms(self.block_duration()));
        building as f64 / ms(self.slot_clock().slot_duration()) as f64
    }

    /// Absolute deadlines for building `target`.
    pub fn schedule(&self, target: Slot) -> SlotSchedule {
        let d = Duration::from_millis;
        let b = &self.budgets;
        let windows = &self.windows;
        let clock = windows.slot_clock();
        let t = clock.slot_start(target);
        let e = clock.l1_slot_duration();
        let block_ms = ms(self.block_duration());
        let reexecution = windows.last_block_reexecution_budget();
        let round_trip = d(b.propagation.saturating_mul(2));

        let build_frame_start = windows.build_frame_start(target);
        let first_subslot_start = build_frame_start.saturating_add(d(b.init));
        let block_build_deadlines: Vec<Timestamp> = (1..=u64::from(self.max_blocks))
            .map(|k| first_subslot_start.saturating_add(d(k.saturating_mul(block_ms))))
            .collect();
        let (last_block_build_time, l1_publish_ideal_time) = match self.mode() {
            // Send, arrive (P), re-execute (R) and return attestations (P) by T − E.
            PipeliningMode::Pipelined => (
                t.saturating_sub(e)
                    .saturating_sub(reexecution)
                    .saturating_sub(round_trip)
                    .saturating_sub(d(b.prepare)),
                t.saturating_sub(e),
            ),
            PipeliningMode::NonPipelined => (
                first_subslot_start
                    .saturating_add(d(u64::from(self.max_blocks).saturating_mul(block_ms))),
                build_frame_start
                    .saturating_add(clock.slot_duration())
                    .saturating_sub(d(b.l1_publishing)),
            ),
        };
        let send = last_block_build_time.saturating_add(d(b.prepare));
        SlotSchedule {
            mode: self.mode(),
            target_slot: target,
            target_slot_start: t,
            build_frame_start,
            first_subslot_start,
            block_build_deadlines,
            min_block_duration: d(b.min_block),
            last_block_build_time,
            start_deadline: last_block_build_time.saturating_sub(d(b.min_block)),
            checkpoint_proposal_send_time: send,
            checkpoint_proposal_receive_ideal: send.saturating_add(d(b.propagation)),
            checkpoint_proposal_receive_deadline: windows
                .checkpoint_proposal_receive_deadline(target),
            l1_publish_ideal_time,
            attestation_deadline: windows.attestation_deadline(target),
            max_blocks_per_checkpoint: self.max_blocks,
            dead_zone: self.dead_zone(),
            building_share: self.building_share(),
        }
    }
}

/// The proposer's deadlines for one target slot, as absolute times.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotSchedule {
    /// The schedule followed.
    pub mode: PipeliningMode,
    /// The slot the checkpoint is for.
    pub target_slot: Slot,
    /// T: start of the target slot.
    pub target_slot_start: Timestamp,
    /// When building may start: `T − S − E` pipelined, `T − E` non-pipelined.
    pub build_frame_start: Timestamp,
    /// Start of the first sub-slot (after init).
    pub first_subslot_start: Timestamp,
    /// Execution cutoff of each sub-slot, in order; one per possible block.
    pub block_build_deadlines: Vec<Timestamp>,
    /// A sub-slot with less than this left is skipped.
    pub min_block_duration: Duration,
    /// Cutoff of the last block.
    pub last_block_build_time: Timestamp,
    /// Latest useful start of building; after it the proposer abandons the slot.
    pub start_deadline: Timestamp,
    /// When the checkpoint proposal is gossiped.
    pub checkpoint_proposal_send_time: Timestamp,
    /// When validators are expected to have it.
    pub checkpoint_proposal_receive_ideal: Timestamp,
    /// Consensus deadline for receiving it (pipelined: `T − E − R`).
    pub checkpoint_proposal_receive_deadline: Timestamp,
    /// When the L1 tx should go out (pipelined: `T − E`).
    pub l1_publish_ideal_time: Timestamp,
    /// Last instant attestations count (pipelined: `T + S − 2E`).
    pub attestation_deadline: Timestamp,
    /// Most blocks in the checkpoint.
    pub max_blocks_per_checkpoint: u32,
    /// Time at the end of the frame not spent building (excluding init).
    pub dead_zone: Duration,
    /// `max_blocks · D / S`.
    pub building_share: f64,
}

/// A sub-slot chosen for the next block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubSlot {
    /// 0-based index (= index of the block within the checkpoint if none was skipped).
    pub index: u32,
    /// Execution cutoff.
    pub deadline: Timestamp,
    /// Stop waiting for txs at this time.
    pub wait_for_txs_deadline: Timestamp,
    /// Whether this is the checkpoint's last sub-slot.
    pub is_last: bool,
}

impl SlotSchedule {
    /// The first sub-slot at or after `from_index` with at least the minimum block duration left
    /// at `now`; `None` when no sub-slot is usable any more. Deadlines never move: a block that
    /// finishes early waits for its deadline before the next starts.
    pub fn select_subslot(&self, now: Timestamp, from_index: u32) -> Option<SubSlot> {
        let last = self.block_build_deadlines.len().checked_sub(1)?;
        self.block_build_deadlines
            .iter()
            .enumerate()
            .skip(usize::try_from(from_index).unwrap_or(usize::MAX))
            .find(|(_, deadline)| now.until(**deadline) >= self.min_block_duration)
            .map(|(index, deadline)| SubSlot {
                index: u32::try_from(index).unwrap_or(u32::MAX),
                deadline: *deadline,
                wait_for_txs_deadline: deadline.saturating_sub(self.min_block_duration),
                is_last: index == last,
            })
    }

    /// Signed milliseconds of `at` relative to the target slot start T.
    pub fn relative_to_t(&self, at: Timestamp) -> i64 {
        at.millis_since(self.target_slot_start)
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests;
