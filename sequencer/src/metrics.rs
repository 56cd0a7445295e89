//! The sequencer's metrics (`sequencer_*`; the node exports them with the `tandem_` prefix).

use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};

use crate::state::SequencerState;

/// Describes every sequencer metric and registers the labelled counters at zero.
pub fn describe_metrics() {
    describe_gauge!(
        "sequencer_pipeline_depth",
        "proposed (not yet on L1) checkpoints the last prepared checkpoint builds on"
    );
    describe_histogram!(
        "sequencer_blocks_per_checkpoint",
        "blocks in each checkpoint built here"
    );
    describe_histogram!(
        "sequencer_txs_per_checkpoint",
        "txs in each checkpoint built here"
    );
    describe_histogram!(
        "sequencer_build_start_offset_seconds",
        "time from the build frame opening to the start of building"
    );
    describe_histogram!(
        "sequencer_block_build_seconds",
        "time to build one block (execution and sealing)"
    );
    describe_histogram!(
        "sequencer_attestation_collection_seconds",
        "time from gossiping a checkpoint proposal to quorum (or the deadline)"
    );
    describe_histogram!(
        "sequencer_state_seconds",
        "time spent in each sequencer state"
    );
    describe_counter!(
        "sequencer_slots_filled_total",
        "target slots whose checkpoint built here landed on L1"
    );
    describe_counter!(
        "sequencer_slots_missed_total",
        "target slots this node was proposer of and whose checkpoint did not land"
    );
    describe_counter!(
        "sequencer_checkpoint_outcomes_total",
        "checkpoints built here, by result"
    );
    describe_counter!(
        "sequencer_checkpoint_precheck_failed_total",
        "target slots this node was proposer of and did not build for, by reason"
    );
    describe_counter!(
        "sequencer_pipeline_parent_mismatch_total",
        "checkpoints discarded because their parent did not land as built on, by reason"
    );
    describe_counter!(
        "sequencer_pipeline_discards_total",
        "pipelined checkpoints built and gossiped that never landed"
    );
    for reason in PrecheckReason::ALL {
        counter!("sequencer_checkpoint_precheck_failed_total", "reason" => reason.as_str())
            .increment(0);
    }
    for reason in crate::pipeline::DiscardReason::ALL {
        counter!("sequencer_pipeline_parent_mismatch_total", "reason" => reason.as_str())
            .increment(0);
    }
    describe_counter!(
        "sequencer_pipeline_task_failures_total",
        "background pipeline tasks that panicked or were cancelled (seen at shutdown)"
    );
    for reason in crate::outcome::AbortReason::ALL {
        counter!("sequencer_checkpoint_outcomes_total", "result" => reason.as_str()).increment(0);
    }
    describe_counter!(
        "sequencer_subslots_skipped_total",
        "sub-slots the block loop reached with less than the minimum block left (blocks lost)"
    );
    counter!("sequencer_subslots_skipped_total").increment(0);
    counter!("sequencer_pipeline_discards_total").increment(0);
    counter!("sequencer_pipeline_task_failures_total").increment(0);
    counter!("sequencer_slots_filled_total").increment(0);
    counter!("sequencer_slots_missed_total").increment(0);
}

/// Why prepare refused a target slot this node is (or may be) proposer of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrecheckReason {
    /// The epoch cache does not know the target slot's committee.
    NoCommittee,
    /// The archiver has not seen all L1 data of the slot before the current one.
    ArchiverBehind,
    /// World state and archiver disagree on the tip.
    WorldStateBehind,
    /// The tip block's checkpoint is neither on L1 nor a proposed checkpoint (re-executed
    /// blocks of a checkpoint whose proposal has not come).
    OrphanBlock,
    /// The tips say a proposed checkpoint exists but it cannot be read (or has another number).
    IncoherentTips,
    /// The proposed checkpoint is not the tip block's checkpoint.
    ProposedCheckpointNotParent,
    /// Too late to start building for the target slot.
    PastStartDeadline,
    /// The checkpoint would be more than two above the checkpointed one.
    DepthExceeded,
    /// The tip block is already of the target slot (or later).
    SlotAlreadyTaken,
    /// The simulation plan could not be built.
    PlanFailed,
    /// `canProposeAtTime` refused (or L1 could not be read).
    RollupContractCheckFailed,
    /// `canProposeAtTime` answered another slot.
    SlotMismatch,
    /// `canProposeAtTime` answered another checkpoint number (usually a pending archiver sync).
    CheckpointNumberMismatch,
}

impl PrecheckReason {
    /// Every reason.
    pub const ALL: [Self; 13] = [
        Self::NoCommittee,
        Self::ArchiverBehind,
        Self::WorldStateBehind,
        Self::OrphanBlock,
        Self::IncoherentTips,
        Self::ProposedCheckpointNotParent,
        Self::PastStartDeadline,
        Self::DepthExceeded,
        Self::SlotAlreadyTaken,
        Self::PlanFailed,
        Self::RollupContractCheckFailed,
        Self::SlotMismatch,
        Self::CheckpointNumberMismatch,
    ];

    /// Metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NoCommittee => "no_committee",
            Self::ArchiverBehind => "archiver_behind",
            Self::WorldStateBehind => "world_state_behind",
            Self::OrphanBlock => "orphan_block",
            Self::IncoherentTips => "incoherent_tips",
            Self::ProposedCheckpointNotParent => "proposed_checkpoint_not_parent",
            Self::PastStartDeadline => "past_start_deadline",
            Self::DepthExceeded => "depth_exceeded",
            Self::SlotAlreadyTaken => "slot_already_taken",
            Self::PlanFailed => "plan_failed",
            Self::RollupContractCheckFailed => "rollup_contract_check_failed",
            Self::SlotMismatch => "slot_mismatch",
            Self::CheckpointNumberMismatch => "checkpoint_number_mismatch",
        }
    }
}

pub(crate) fn precheck_failed(reason: PrecheckReason) {
    counter!("sequencer_checkpoint_precheck_failed_total", "reason" => reason.as_str())
        .increment(1);
}

pub(crate) fn state_time(state: SequencerState, spent: Duration) {
    histogram!("sequencer_state_seconds", "state" => state.as_str()).record(spent.as_secs_f64());
}

pub(crate) fn pipeline_depth(depth: usize) {
    gauge!("sequencer_pipeline_depth").set(depth as f64);
}

pub(crate) fn build_start_offset(offset: Duration) {
    histogram!("sequencer_build_start_offset_seconds").record(offset.as_secs_f64());
}

pub(crate) fn subslots_skipped(count: u32) {
    counter!("sequencer_subslots_skipped_total").increment(u64::from(count));
}

pub(crate) fn block_built(spent: Duration) {
    histogram!("sequencer_block_build_seconds").record(spent.as_secs_f64());
}

pub(crate) fn checkpoint_built(blocks: usize, txs: usize) {
    histogram!("sequencer_blocks_per_checkpoint").record(blocks as f64);
    histogram!("sequencer_txs_per_checkpoint").record(txs as f64);
}

pub(crate) fn attestations_collected(spent: Duration) {
    histogram!("sequencer_attestation_collection_seconds").record(spent.as_secs_f64());
}

pub(crate) fn outcome(result: &'static str) {
    counter!("sequencer_checkpoint_outcomes_total", "result" => result).increment(1);
}

pub(crate) fn slot_filled() {
    counter!("sequencer_slots_filled_total").increment(1);
}

pub(crate) fn slot_missed() {
    counter!("sequencer_slots_missed_total").increment(1);
}

pub(crate) fn parent_mismatch(reason: &'static str) {
    counter!("sequencer_pipeline_parent_mismatch_total", "reason" => reason).increment(1);
}

pub(crate) fn pipeline_discard() {
    counter!("sequencer_pipeline_discards_total").increment(1);
}

pub(crate) fn pipeline_task_failed() {
    counter!("sequencer_pipeline_task_failures_total").increment(1);
}
