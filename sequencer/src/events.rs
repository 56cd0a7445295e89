//! What the sequencer reports as it works (logs carry the same; tests and the node's status
//! read these).

use tandem_proto::{B256, time::Slot};

use crate::{
    metrics::PrecheckReason,
    outcome::{AbortReason, CheckpointResult},
    pipeline::DiscardReason,
};

/// Capacity of the event channel; a slow subscriber misses events (`Lagged`), the sequencer
/// never waits for one.
pub const SEQUENCER_EVENTS_CAPACITY: usize = 1024;

/// One thing the sequencer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SequencerEvent {
    /// Prepare refused a target slot this node is (or may be) proposer of.
    PrecheckFailed {
        /// The target slot.
        target: Slot,
        /// Why.
        reason: PrecheckReason,
    },
    /// Prepare passed: a job starts.
    Preparing {
        /// The target slot.
        target: Slot,
        /// The wall-clock slot (of the next L1 block) it is built in.
        build_slot: Slot,
        /// The checkpoint number.
        checkpoint_number: u64,
        /// Whether it builds on a proposed (not yet on L1) parent.
        had_proposed_parent: bool,
        /// The checkpoint the plan makes L1's tip (`next checkpoint − 1`).
        simulated_checkpointed: u64,
        /// Proposed checkpoints the plan lays over L1.
        pipeline_depth: usize,
        /// Build start relative to the build slot's start, ms (−E at the frame opening); only
        /// when building on a proposed parent.
        build_start_offset_ms: Option<i64>,
        /// Build start relative to the build frame's opening, ms.
        frame_offset_ms: u64,
    },
    /// The block loop skipped sub-slots: it reached them with less than the minimum block
    /// duration left (reference §1.5's sub-slot selection), so their blocks are lost.
    SubSlotsSkipped {
        /// The target slot.
        target: Slot,
        /// Index of the first sub-slot skipped.
        first: u32,
        /// How many were skipped.
        count: u32,
        /// How late the loop reached the first skipped sub-slot, ms after it started.
        late_ms: u64,
    },
    /// A block was built, signed and stored.
    BlockProposed {
        /// The target slot.
        target: Slot,
        /// Block number.
        number: u64,
        /// Its hash.
        hash: B256,
        /// Its index within the checkpoint.
        index: u32,
        /// Txs in it.
        txs: usize,
        /// Time to build it (execution and sealing), µs.
        build_micros: u64,
    },
    /// The job ended without gossiping a checkpoint.
    CheckpointAborted {
        /// The target slot.
        target: Slot,
        /// Why.
        reason: AbortReason,
    },
    /// The checkpoint proposal was gossiped (the loop is free again).
    CheckpointProposed {
        /// The target slot.
        target: Slot,
        /// Build slot.
        build_slot: Slot,
        /// Checkpoint number.
        number: u64,
        /// Blocks in it.
        blocks: usize,
        /// Txs in it.
        txs: usize,
        /// Whether it builds on a proposed parent.
        had_proposed_parent: bool,
    },
    /// Attestation collection ended.
    AttestationsCollected {
        /// The target slot.
        target: Slot,
        /// Attestations collected.
        count: usize,
        /// Attestations needed.
        quorum: usize,
        /// Time from the start of collection to quorum or the deadline, ms.
        elapsed_ms: u64,
    },
    /// The background job discarded the checkpoint: its parent is not what it was built on.
    PipelineDiscarded {
        /// The target slot.
        target: Slot,
        /// Checkpoint number.
        number: u64,
        /// Why.
        reason: DiscardReason,
    },
    /// The publisher finished with the checkpoint (or it was never handed over).
    CheckpointOutcome {
        /// The target slot.
        target: Slot,
        /// Checkpoint number.
        number: u64,
        /// How it ended.
        result: CheckpointResult,
    },
}
