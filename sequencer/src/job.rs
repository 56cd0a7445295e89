//! The checkpoint proposal job, blocking part (reference §3.6): globals under the plan, the
//! block loop per the timetable, signing, storing, gossip, assembly, `validateHeader` under the
//! plan, and the checkpoint proposal. It returns as soon as the proposal is gossiped: the
//! loop is then free for the next target slot, and the background pipeline takes over.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use alloy::primitives::Bytes;
use tandem_archiver::{ProposedBlock, ProposedCheckpointInput};
use tandem_proto::{
    B256, Block, BlockProposal, CheckpointProposal, ConsensusPayload, RecoveredTx, Signature,
    checkpoint_header_of,
    time::{PipeliningMode, Slot, SlotSchedule, Timestamp},
};
use tandem_state::{BlockGlobals, CandidateTxs, Fork, TX_MANA, TxError, build_block};

use crate::{
    budget::CheckpointBudget,
    context::Ctx,
    error::{SequencerError, SequencerResult},
    events::SequencerEvent,
    metrics,
    outcome::AbortReason,
    prepare::JobPlan,
    state::SequencerState,
};

mod blocks;

use blocks::build_blocks;

/// The parent a checkpoint was built on, as the background pipeline checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ParentRef {
    pub(crate) number: u64,
    pub(crate) header_hash: B256,
    /// Proposed (not on L1) when the job started.
    pub(crate) proposed: bool,
}

/// A checkpoint gossiped by the job, for the background pipeline.
#[derive(Debug, Clone)]
pub(crate) struct BuiltCheckpoint {
    pub(crate) target: Slot,
    pub(crate) build_slot: Slot,
    pub(crate) number: u64,
    pub(crate) proposal: CheckpointProposal,
    pub(crate) body: Bytes,
    pub(crate) parent: ParentRef,
    pub(crate) schedule: SlotSchedule,
}

/// A block built and handed to the world state, not yet signed.
struct PendingBlock {
    block: Block,
    archive_root: B256,
    txs: Vec<RecoveredTx>,
    build_micros: u64,
}

impl PendingBlock {
    fn unsigned_proposal(&self) -> BlockProposal {
        BlockProposal {
            header: self.block.header.clone(),
            archive_root: self.archive_root,
            tx_hashes: self.txs.iter().map(RecoveredTx::hash).collect(),
            signature: Signature::default(),
            txs: self.block.txs.clone(),
        }
    }

    /// Stores the block (signed with `signature`) in our archiver and reports it; `false` when
    /// the archiver refused it (the checkpoint is then abandoned).
    async fn store(&self, ctx: &Ctx, target: Slot, signature: Signature) -> bool {
        let stored = ProposedBlock {
            header: self.block.header.clone(),
            txs: self.txs.clone(),
            proposer_signature: signature,
        };
        if let Err(err) = ctx.deps.chain.add_block(stored).await {
            tracing::error!(target: "sequencer", %err, block = self.block.header.block_number,
                "storing our block failed; abandoning the checkpoint");
            return false;
        }
        ctx.emit(SequencerEvent::BlockProposed {
            target,
            number: self.block.header.block_number,
            hash: self.block.hash(),
            index: self.block.header.index_within_checkpoint,
            txs: self.txs.len(),
            build_micros: self.build_micros,
        });
        true
    }
}

/// Reports a job that ended without a checkpoint proposal (outcome metric, missed slot, event).
fn abort(ctx: &Ctx, target: Slot, reason: AbortReason) {
    metrics::outcome(reason.as_str());
    metrics::slot_missed();
    ctx.emit(SequencerEvent::CheckpointAborted { target, reason });
}

/// Reports the job's end exactly once, whichever way it ends: an explicit abort, a `?` on a
/// failed dependency, or the job's future dropped by shutdown.
struct JobGuard<'a> {
    ctx: &'a Ctx,
    target: Slot,
    done: bool,
}

impl<'a> JobGuard<'a> {
    const fn new(ctx: &'a Ctx, target: Slot) -> Self {
        Self {
            ctx,
            target,
            done: false,
        }
    }

    /// Ends the job without a proposal, for `reason`.
    fn abort<T>(mut self, reason: AbortReason) -> Option<T> {
        self.done = true;
        abort(self.ctx, self.target, reason);
        None
    }

    /// The proposal was gossiped: nothing to report here.
    fn finish(mut self) {
        self.done = true;
    }
}

impl Drop for JobGuard<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let reason = if self.ctx.tracker.current() == SequencerState::Stopping {
            AbortReason::Interrupted
        } else {
            AbortReason::Failed
        };
        abort(self.ctx, self.target, reason);
    }
}

/// The latest time a block or the checkpoint proposal may still go out: the proposal's receive
/// deadline less the propagation budget P (reference §3.6 step 13). Past it validators would
/// refuse the proposal, so nothing more is stored or gossiped.
pub(crate) fn send_deadline(schedule: &SlotSchedule) -> Timestamp {
    let propagation = schedule
        .checkpoint_proposal_send_time
        .until(schedule.checkpoint_proposal_receive_ideal);
    schedule
        .checkpoint_proposal_receive_deadline
        .saturating_sub(propagation)
}

/// Runs the blocking part of the job. `Ok(None)`: nothing was gossiped (the reason was
/// reported); an error was reported as [`AbortReason::Failed`] too.
pub(crate) async fn propose_checkpoint(
    ctx: &Ctx,
    job: JobPlan,
) -> SequencerResult<Option<BuiltCheckpoint>> {
    let target = job.snapshot.target;
    let guard = JobGuard::new(ctx, target);
    let clock = ctx.params.slot_clock();
    // 1. Build start offset, from the build slot's start (−E at the frame opening).
    let started_at = ctx.now();
    let offset_ms = job
        .had_proposed_parent()
        .then(|| started_at.millis_since(clock.slot_start(job.snapshot.slot)));
    let from_frame = job.schedule.build_frame_start.until(started_at);
    metrics::build_start_offset(from_frame);
    ctx.emit(SequencerEvent::Preparing {
        target,
        build_slot: job.snapshot.slot,
        checkpoint_number: job.checkpoint_number,
        had_proposed_parent: job.had_proposed_parent(),
        simulated_checkpointed: job.plan.next_checkpoint_number().saturating_sub(1),
        pipeline_depth: usize::try_from(
            job.plan
                .next_checkpoint_number()
                .saturating_sub(job.base.checkpointed.saturating_add(1)),
        )
        .unwrap_or(usize::MAX),
        build_start_offset_ms: offset_ms,
        frame_offset_ms: u64::try_from(from_frame.as_millis()).unwrap_or(u64::MAX),
    });
    // 2–4. Globals, the fee read from L1 under the plan.
    ctx.tracker.set(SequencerState::InitializingCheckpoint)?;
    let fee_per_mana = match ctx.deps.l1.mana_min_fee(&job.base, &job.plan).await {
        Ok(fee) => fee,
        Err(err) => {
            tracing::warn!(target: "sequencer", slot = target.0, %err, "reading the fee under the plan failed");
            return Ok(guard.abort(AbortReason::FeeReadFailed));
        }
    };
    let proposer = job.proposer;
    let globals = |index: u32| BlockGlobals {
        checkpoint_number: job.checkpoint_number,
        index_within_checkpoint: index,
        slot: target.0,
        timestamp: job.schedule.target_slot_start.as_secs(),
        coinbase: ctx.config.coinbase.unwrap_or(proposer),
        fee_recipient: ctx.config.fee_recipient.unwrap_or(proposer),
        fee_per_mana,
    };
    // 8. Fork at the tip prepare checked.
    let mut fork = ctx.deps.world.fork(job.synced.tip_number)?;
    if fork.archive_root() != job.synced.tip_archive {
        return Ok(guard.abort(AbortReason::WorldStateMoved));
    }
    // 9. The block loop.
    let (blocks, held) = match build_blocks(ctx, &job, &mut fork, &globals).await? {
        Ok(built) => built,
        Err(reason) => return Ok(guard.abort(reason)),
    };
    let Some(last) = held else {
        return Ok(guard.abort(AbortReason::CheckpointEmpty));
    };
    // 11. Assemble.
    ctx.tracker.set(SequencerState::AssemblingCheckpoint)?;
    let parent_archive = blocks[0].header.last_archive_root;
    let (header, body) =
        checkpoint_header_of(parent_archive, &blocks).ok_or(SequencerError::Header)?;
    if body.len() > ctx.params.max_body_bytes {
        return Err(SequencerError::BodyTooLarge {
            len: body.len(),
            cap: ctx.params.max_body_bytes,
        });
    }
    let archive = last.archive_root;
    let payload = ConsensusPayload {
        header,
        archive,
        // No fee-asset price oracle yet: the price stays.
        fee_asset_price_modifier: 0,
    };
    let body = Bytes::from(body);
    // 12. The contract's header checks under the plan, before anything is gossiped.
    let args = tandem_l1::propose_args(job.checkpoint_number, &payload);
    if let Err(err) = ctx
        .deps
        .l1
        .validate_header(
            &args,
            &body,
            job.schedule.target_slot_start,
            &job.base,
            &job.plan,
        )
        .await
    {
        tracing::warn!(target: "sequencer", slot = target.0, checkpoint = job.checkpoint_number,
            %err, "validateHeader refused the checkpoint; not gossiping it");
        return Ok(guard.abort(AbortReason::HeaderValidationFailed));
    }
    // Sign the checkpoint and its last block in one recorded duty.
    let proposal = ctx
        .deps
        .signer
        .sign_checkpoint_proposal(proposer, payload.clone(), Some(last.unsigned_proposal()))
        .await?;
    // 13. Still in time? Then store the last block and the checkpoint before gossiping it.
    if past_send_deadline(ctx, &job) {
        return Ok(guard.abort(AbortReason::PastSendDeadline));
    }
    let Some(signed_last) = &proposal.last_block else {
        return Err(SequencerError::LastBlockDropped);
    };
    if !last.store(ctx, target, signed_last.signature).await {
        return Ok(guard.abort(AbortReason::StoreFailed));
    }
    let start_block = blocks[0].header.block_number;
    if let Err(err) = ctx
        .deps
        .chain
        .add_proposed_checkpoint(ProposedCheckpointInput {
            number: job.checkpoint_number,
            payload,
            start_block,
            block_count: blocks.len() as u64,
            proposer_signature: proposal.signature,
        })
        .await
    {
        tracing::error!(target: "sequencer", %err, "storing our proposed checkpoint failed");
        return Ok(guard.abort(AbortReason::StoreFailed));
    }
    // 14. Gossip. No deadline check after storing: peers accept until the receive deadline
    // + δ and P is still in hand, and a stored checkpoint no peer has would cost the next
    // slot too (we would build on it).
    if let Err(err) = ctx
        .deps
        .gossip
        .publish_checkpoint_proposal(proposal.clone())
        .await
    {
        tracing::warn!(target: "sequencer", %err, "gossiping the checkpoint proposal failed");
    }
    guard.finish();
    let txs: usize = blocks.iter().map(|block| block.txs.len()).sum();
    metrics::checkpoint_built(blocks.len(), txs);
    tracing::info!(target: "sequencer", checkpoint = job.checkpoint_number, target_slot = target.0,
        blocks = blocks.len(), txs, "checkpoint proposal gossiped");
    ctx.emit(SequencerEvent::CheckpointProposed {
        target,
        build_slot: job.snapshot.slot,
        number: job.checkpoint_number,
        blocks: blocks.len(),
        txs,
        had_proposed_parent: job.had_proposed_parent(),
    });
    Ok(Some(BuiltCheckpoint {
        target,
        build_slot: job.snapshot.slot,
        number: job.checkpoint_number,
        proposal,
        body,
        parent: ParentRef {
            number: job.synced.checkpoint_number,
            header_hash: job.synced.parent_header_hash,
            proposed: job.had_proposed_parent(),
        },
        schedule: job.schedule,
    }))
}

/// Whether the clock is past the job's send deadline (logged when it is).
fn past_send_deadline(ctx: &Ctx, job: &JobPlan) -> bool {
    let deadline = send_deadline(&job.schedule);
    let now = ctx.now();
    let late = now > deadline;
    if late {
        tracing::warn!(target: "sequencer", slot = job.snapshot.target.0,
            late_ms = deadline.until(now).as_millis() as u64,
            "past the send deadline; not storing or gossiping the checkpoint");
    }
    late
}

/// Whether this network pipelines.
pub(crate) fn pipelined(ctx: &Ctx) -> bool {
    ctx.params.timetable.mode() == PipeliningMode::Pipelined
}
