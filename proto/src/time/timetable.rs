use std::time::Duration;

use super::{
    clock::{Slot, SlotClock, Timestamp, duration_millis},
    windows::{ConsensusWindows, PipeliningMode},
};

/// L1 slots shorter than this select the fast local profile (smaller budgets), as on a devnet.
const FAST_PROFILE_BELOW_L1_SLOT: Duration = Duration::from_secs(8);

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
    /// L1 publishing time to E. The clamp only ever lowers a budget.
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
        // A minimum block longer than a block would make every sub-slot unusable.
        b.min_block = b.min_block.min(block_ms);
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
mod tests {
    use super::*;

    fn clock(slot: u64, l1_slot: u64) -> SlotClock {
        SlotClock::new(
            Timestamp::from_secs(1_000_000),
            Duration::from_secs(slot),
            Duration::from_secs(l1_slot),
            32,
        )
        .unwrap()
    }

    fn table(
        mode: PipeliningMode,
        slot: u64,
        l1_slot: u64,
        block_ms: u64,
        reexecution_ms: u64,
        budgets: SequencerBudgets,
    ) -> Timetable {
        let windows = ConsensusWindows::new(
            clock(slot, l1_slot),
            Duration::from_millis(block_ms),
            mode,
            Duration::from_millis(reexecution_ms),
        );
        Timetable::new(windows, budgets).unwrap()
    }

    /// R = D, default budgets: the reference's configuration.
    fn pipelined(slot: u64, l1_slot: u64, block: u64) -> Timetable {
        let block = block * 1000;
        table(
            PipeliningMode::Pipelined,
            slot,
            l1_slot,
            block,
            block,
            SequencerBudgets::default(),
        )
    }

    fn non_pipelined(slot: u64, l1_slot: u64, block: u64) -> Timetable {
        let block = block * 1000;
        table(
            PipeliningMode::NonPipelined,
            slot,
            l1_slot,
            block,
            block,
            SequencerBudgets::default(),
        )
    }

    /// Seconds relative to T, as the reference table writes them.
    fn rel(schedule: &SlotSchedule, at: Timestamp) -> f64 {
        schedule.relative_to_t(at) as f64 / 1000.0
    }

    #[test]
    fn pipelined_production_numbers_match_reference_table() {
        let table = pipelined(72, 12, 6);
        let s = table.schedule(Slot(100));
        assert_eq!(s.max_blocks_per_checkpoint, 10);
        assert_eq!(s.dead_zone, Duration::from_secs(11));
        assert_eq!(rel(&s, s.build_frame_start), -84.0);
        assert_eq!(rel(&s, s.first_subslot_start), -83.0);
        assert_eq!(rel(&s, s.block_build_deadlines[0]), -77.0);
        assert_eq!(rel(&s, s.block_build_deadlines[1]), -71.0);
        assert_eq!(rel(&s, *s.block_build_deadlines.last().unwrap()), -23.0);
        assert_eq!(rel(&s, s.last_block_build_time), -23.0);
        assert_eq!(rel(&s, s.start_deadline), -25.0);
        assert_eq!(rel(&s, s.checkpoint_proposal_send_time), -22.0);
        assert_eq!(rel(&s, s.checkpoint_proposal_receive_ideal), -20.0);
        assert_eq!(rel(&s, s.checkpoint_proposal_receive_deadline), -18.0);
        assert_eq!(rel(&s, s.l1_publish_ideal_time), -12.0);
        assert_eq!(rel(&s, s.attestation_deadline), 48.0);
        assert!((s.building_share - 60.0 / 72.0).abs() < 1e-9);
    }

    #[test]
    fn a_short_reexecution_budget_buys_a_block() {
        // 72/12/6 with P = 1.5 s: R = D gives 10 blocks; R = 1 s gives 11, and the proposal
        // deadline moves from T − 18 to T − 13.
        let budgets = SequencerBudgets {
            p2p_propagation_time: Duration::from_millis(1_500),
            ..SequencerBudgets::default()
        };
        let reference = table(PipeliningMode::Pipelined, 72, 12, 6_000, 6_000, budgets);
        let short = table(PipeliningMode::Pipelined, 72, 12, 6_000, 1_000, budgets);
        assert_eq!(reference.max_blocks_per_checkpoint(), 10);
        assert_eq!(short.max_blocks_per_checkpoint(), 11);
        let s = short.schedule(Slot(100));
        assert_eq!(rel(&s, s.checkpoint_proposal_receive_deadline), -13.0);
        assert_eq!(s.dead_zone, Duration::from_secs(5));
        // Send, arrive, re-execute, attest: everything back by the L1 publish time.
        assert_eq!(rel(&s, s.last_block_build_time), -17.0);
        assert_eq!(rel(&s, s.checkpoint_proposal_receive_ideal), -14.5);
        assert!(s.checkpoint_proposal_receive_ideal <= s.checkpoint_proposal_receive_deadline);
        assert_eq!(rel(&s, *s.block_build_deadlines.last().unwrap()), -17.0);
    }

    #[test]
    fn fast_profile_block_counts() {
        assert_eq!(pipelined(36, 4, 6).max_blocks_per_checkpoint(), 4);
        assert_eq!(pipelined(36, 4, 8).max_blocks_per_checkpoint(), 3);
    }

    #[test]
    fn non_pipelined_baseline_numbers() {
        assert_eq!(non_pipelined(72, 12, 8).max_blocks_per_checkpoint(), 5);
        let table = non_pipelined(72, 12, 6);
        assert_eq!(table.max_blocks_per_checkpoint(), 8);
        assert_eq!(table.dead_zone(), Duration::from_secs(23));
        let s = table.schedule(Slot(100));
        assert_eq!(rel(&s, s.build_frame_start), -12.0);
        assert_eq!(rel(&s, s.last_block_build_time), 37.0);
        assert_eq!(rel(&s, s.start_deadline), 35.0);
        // Consensus: proposals until T + S − 2E − R, attestations until T + S − 2E.
        assert_eq!(rel(&s, s.checkpoint_proposal_receive_deadline), 42.0);
        assert_eq!(rel(&s, s.attestation_deadline), 48.0);
        assert_eq!(rel(&s, s.l1_publish_ideal_time), 48.0);
        assert!(s.checkpoint_proposal_receive_ideal <= s.checkpoint_proposal_receive_deadline);
    }

    #[test]
    fn both_modes_fit_blocks_on_the_fast_profiles() {
        // devnet 24/2/2 and ci 12/1/1 (R = D): the non-pipelined publishing time shrinks to E.
        for (slot, l1, block) in [(24, 2, 2), (12, 1, 1)] {
            for mode in [PipeliningMode::Pipelined, PipeliningMode::NonPipelined] {
                let t = table(
                    mode,
                    slot,
                    l1,
                    block * 1000,
                    block * 1000,
                    SequencerBudgets::default(),
                );
                let s = t.schedule(Slot(100));
                assert!(
                    s.max_blocks_per_checkpoint >= 8,
                    "{slot}/{l1}/{block} {mode}: {} blocks",
                    s.max_blocks_per_checkpoint
                );
                assert!(
                    s.checkpoint_proposal_receive_ideal <= s.checkpoint_proposal_receive_deadline,
                    "{slot}/{l1}/{block} {mode}"
                );
                assert!(s.l1_publish_ideal_time <= s.attestation_deadline);
            }
        }
        assert_eq!(non_pipelined(24, 2, 2).max_blocks_per_checkpoint(), 9);
        assert_eq!(pipelined(24, 2, 2).max_blocks_per_checkpoint(), 9);
        assert_eq!(non_pipelined(12, 1, 1).max_blocks_per_checkpoint(), 9);
        assert_eq!(pipelined(12, 1, 1).max_blocks_per_checkpoint(), 8);
    }

    #[test]
    fn pipelining_builds_more_blocks_than_the_baseline() {
        for block in [4, 6, 8, 12] {
            let p = pipelined(72, 12, block).max_blocks_per_checkpoint();
            let n = non_pipelined(72, 12, block).max_blocks_per_checkpoint();
            assert!(p > n, "D={block}: pipelined {p} vs non-pipelined {n}");
        }
    }

    #[test]
    fn subslot_selection_skips_short_subslots_and_flags_the_last() {
        let s = pipelined(72, 12, 6).schedule(Slot(100));
        let t = s.target_slot_start;
        // At T−78 the first sub-slot (deadline T−77) has 1 s left < 2 s minimum: skip to the second.
        let chosen = s
            .select_subslot(t.saturating_sub(Duration::from_secs(78)), 0)
            .unwrap();
        assert_eq!(chosen.index, 1);
        assert_eq!(rel(&s, chosen.deadline), -71.0);
        assert_eq!(rel(&s, chosen.wait_for_txs_deadline), -73.0);
        assert!(!chosen.is_last);
        let last = s
            .select_subslot(t.saturating_sub(Duration::from_secs(26)), 0)
            .unwrap();
        assert_eq!(last.index, 9);
        assert!(last.is_last);
        assert_eq!(
            s.select_subslot(t.saturating_sub(Duration::from_secs(24)), 0),
            None
        );
    }

    #[test]
    fn invalid_parameters_are_refused() {
        let make = |block_ms, budgets| {
            Timetable::new(
                ConsensusWindows::new(
                    clock(72, 12),
                    Duration::from_millis(block_ms),
                    PipeliningMode::Pipelined,
                    Duration::from_millis(block_ms),
                ),
                budgets,
            )
        };
        let budgets = SequencerBudgets::default();
        assert_eq!(make(0, budgets), Err(TimetableError::ZeroBlockDuration));
        assert!(matches!(
            make(72_000, budgets),
            Err(TimetableError::BlockNotShorterThanSlot { .. })
        ));
        assert!(matches!(
            make(40_000, budgets),
            Err(TimetableError::NoRoomForBlocks { .. })
        ));
        // Absurd budgets saturate into a typed error instead of overflowing.
        let absurd = SequencerBudgets {
            checkpoint_init_time: Duration::MAX,
            p2p_propagation_time: Duration::MAX,
            ..budgets
        };
        assert!(matches!(
            make(6_000, absurd),
            Err(TimetableError::NoRoomForBlocks { .. })
        ));
    }

    #[test]
    fn non_pipelined_publishing_must_cover_one_l1_slot() {
        // 72/12/6, P = 2 s: with L < E − P = 10 s the rule no longer guarantees that a full
        // checkpoint's proposal arrives by T + S − 2E − R (here the floor of the block count
        // leaves slack, elsewhere it does not: see the grid test below).
        let with = |l1_publishing_ms| SequencerBudgets {
            l1_publishing_time: Duration::from_millis(l1_publishing_ms),
            ..SequencerBudgets::default()
        };
        let windows = ConsensusWindows::new(
            clock(72, 12),
            Duration::from_secs(6),
            PipeliningMode::NonPipelined,
            Duration::from_secs(6),
        );
        assert_eq!(
            Timetable::new(windows, with(9_999)),
            Err(TimetableError::PublishingShorterThanL1Slot {
                propagation_ms: 2_000,
                l1_publishing_ms: 9_999,
                l1_slot_ms: 12_000,
            })
        );
        let s = Timetable::new(windows, with(10_000))
            .unwrap()
            .schedule(Slot(100));
        assert!(s.checkpoint_proposal_receive_ideal <= s.checkpoint_proposal_receive_deadline);
        // The fast profile drops P to 0: the publishing time alone must be one L1 block.
        let fast = ConsensusWindows::new(
            clock(24, 2),
            Duration::from_secs(2),
            PipeliningMode::NonPipelined,
            Duration::from_secs(2),
        );
        assert!(matches!(
            Timetable::new(fast, with(1_500)),
            Err(TimetableError::PublishingShorterThanL1Slot {
                propagation_ms: 0,
                ..
            })
        ));
        // Pipelined schedules do not use it.
        assert!(Timetable::new(windows.with_mode(PipeliningMode::Pipelined), with(0)).is_ok());
    }

    #[test]
    fn every_accepted_schedule_meets_its_consensus_deadlines() {
        // Over a grid of profiles and budgets, whatever Timetable::new accepts hands the
        // checkpoint proposal to validators by the receive deadline, and its last block ends
        // by the last block build time.
        let secs = |values: &[u64]| values.iter().map(|v| v * 500).collect::<Vec<_>>();
        for (slot, l1, block) in [(72, 12, 6), (72, 12, 4), (36, 4, 6), (24, 2, 2), (12, 1, 1)] {
            for mode in [PipeliningMode::Pipelined, PipeliningMode::NonPipelined] {
                for reexecution in [block * 500, block * 1000] {
                    for propagation in secs(&[0, 1, 3, 4]) {
                        for l1_publishing in secs(&[0, 1, 4, 12, 24, 30]) {
                            let budgets = SequencerBudgets {
                                p2p_propagation_time: Duration::from_millis(propagation),
                                l1_publishing_time: Duration::from_millis(l1_publishing),
                                ..SequencerBudgets::default()
                            };
                            let windows = ConsensusWindows::new(
                                clock(slot, l1),
                                Duration::from_secs(block),
                                mode,
                                Duration::from_millis(reexecution),
                            );
                            let Ok(table) = Timetable::new(windows, budgets) else {
                                continue;
                            };
                            let s = table.schedule(Slot(100));
                            let case = format!(
                                "{slot}/{l1}/{block} {mode} R {reexecution} P {propagation} L {l1_publishing}"
                            );
                            assert!(
                                s.checkpoint_proposal_receive_ideal
                                    <= s.checkpoint_proposal_receive_deadline,
                                "{case}: proposal due {} after its deadline",
                                s.checkpoint_proposal_receive_ideal
                                    .millis_since(s.checkpoint_proposal_receive_deadline)
                            );
                            assert!(
                                *s.block_build_deadlines.last().unwrap() <= s.last_block_build_time,
                                "{case}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn no_room_reports_every_reserved_part() {
        let windows = ConsensusWindows::new(
            clock(72, 12),
            Duration::from_secs(6),
            PipeliningMode::Pipelined,
            Duration::from_secs(62),
        );
        let Err(TimetableError::NoRoomForBlocks { reserved, .. }) =
            Timetable::new(windows, SequencerBudgets::default())
        else {
            panic!("R = 62 s leaves no room in a 72 s slot")
        };
        assert_eq!(reserved.total_ms(), 1_000 + 1_000 + 4_000 + 62_000);
        assert_eq!(reserved.largest(), (ReservedPart::Reexecution, 62_000));
        let text = TimetableError::NoRoomForBlocks {
            mode: PipeliningMode::Pipelined,
            slot_ms: 72_000,
            block_ms: 6_000,
            reserved,
        }
        .to_string();
        assert!(text.contains("re-execution 62000"), "{text}");
        let lots_of_init = SequencerBudgets {
            checkpoint_init_time: Duration::from_secs(70),
            ..SequencerBudgets::default()
        };
        let Err(TimetableError::NoRoomForBlocks { reserved, .. }) = Timetable::new(
            windows.with_mode(PipeliningMode::NonPipelined),
            lots_of_init,
        ) else {
            panic!("70 s of init leaves no room")
        };
        assert_eq!(reserved.largest(), (ReservedPart::Init, 70_000));
        assert_eq!(reserved.l1_publishing_ms, 12_000);
    }

    #[test]
    fn cap_lowers_block_count() {
        assert_eq!(
            pipelined(72, 12, 6)
                .with_max_blocks_cap(4)
                .max_blocks_per_checkpoint(),
            4
        );
        assert_eq!(
            pipelined(72, 12, 6)
                .with_max_blocks_cap(40)
                .max_blocks_per_checkpoint(),
            10
        );
    }
}
