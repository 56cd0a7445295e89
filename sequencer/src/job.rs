//! The checkpoint proposal job, blocking part (reference §3.6): globals under the plan, the
//! block loop per the timetable, signing, storing, gossip, assembly, `validateHeader` under the
//! plan, and the checkpoint proposal. It returns as soon as the proposal is gossiped: the
//! loop is then free for the next target slot, and the background pipeline takes over.

use std::time::{Duration, Instant};

use alloy::primitives::Bytes;
use tandem_archiver::{ProposedBlock, ProposedCheckpointInput};
use tandem_proto::{
    B256, Block, BlockProposal, CheckpointProposal, ConsensusPayload, RecoveredTx, Signature,
    checkpoint_header_of,
    time::{PipeliningMode, Slot, SlotSchedule},
};
use tandem_state::{BlockGlobals, CandidateTxs, Fork, build_block};

use crate::{
    budget::CheckpointBudget,
    context::Ctx,
    error::{SequencerError, SequencerResult},
    events::SequencerEvent,
    metrics,
    prepare::JobPlan,
    state::SequencerState,
};

/// Candidates copied out of the pool per block beyond its tx limit (to replace txs that fail).
const CANDIDATE_SLACK: usize = 64;
/// A wake-up this late after the sub-slot deadline slept to still counts as on time: the next
/// sub-slot starts at that deadline, and with a minimum block as long as D (the fast profiles)
/// the wake-up's own jitter would otherwise make every other sub-slot unusable.
const WAKE_UP_TOLERANCE: Duration = Duration::from_millis(100);

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

/// Why a job ended without a checkpoint proposal (event and outcome label).
pub(crate) fn abort(ctx: &Ctx, target: Slot, reason: &'static str) -> Option<BuiltCheckpoint> {
    metrics::outcome(reason);
    metrics::slot_missed();
    ctx.emit(SequencerEvent::CheckpointAborted { target, reason });
    None
}

/// Runs the blocking part of the job. `Ok(None)`: nothing was gossiped (the reason was
/// reported).
pub(crate) async fn propose_checkpoint(
    ctx: &Ctx,
    job: JobPlan,
) -> SequencerResult<Option<BuiltCheckpoint>> {
    let target = job.snapshot.target;
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
            return Ok(abort(ctx, target, "fee_read_failed"));
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
        return Ok(abort(ctx, target, "world_state_moved"));
    }
    // 9. The block loop.
    let Some((blocks, held)) = build_blocks(ctx, &job, &mut fork, &globals).await? else {
        return Ok(None);
    };
    let Some(last) = held else {
        return Ok(abort(ctx, target, "checkpoint_empty"));
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
        return Ok(abort(ctx, target, "header_validation_failed"));
    }
    // Sign the checkpoint and its last block in one recorded duty.
    let proposal = ctx
        .deps
        .signer
        .sign_checkpoint_proposal(proposer, payload.clone(), Some(last.unsigned_proposal()))
        .await?;
    // 13. Store the last block and the checkpoint before gossiping it.
    let Some(signed_last) = &proposal.last_block else {
        return Err(SequencerError::LastBlockDropped);
    };
    if !last.store(ctx, target, signed_last.signature).await {
        return Ok(abort(ctx, target, "store_failed"));
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
        return Ok(abort(ctx, target, "store_failed"));
    }
    // 14. Gossip.
    if let Err(err) = ctx
        .deps
        .gossip
        .publish_checkpoint_proposal(proposal.clone())
        .await
    {
        tracing::warn!(target: "sequencer", %err, "gossiping the checkpoint proposal failed");
    }
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

/// The block loop: `None` when the checkpoint was aborted (reported). Returns the blocks in
/// order and the last one unsigned and unstored (it rides inside the checkpoint proposal: p2p
/// refuses a checkpoint proposal without its last block, so the last block is never gossiped
/// alone).
///
/// Each block is held until the next sub-slot is about to build (enough txs are there); only
/// then is it signed, stored and gossiped. From that moment the next sub-slot commits a block
/// even if all its candidates fail (possibly empty), so there is always a last block to carry.
async fn build_blocks(
    ctx: &Ctx,
    job: &JobPlan,
    fork: &mut Fork,
    globals: &impl Fn(u32) -> BlockGlobals,
) -> SequencerResult<Option<(Vec<Block>, Option<PendingBlock>)>> {
    let target = job.snapshot.target;
    let schedule = &job.schedule;
    let max_blocks = schedule.max_blocks_per_checkpoint;
    let mut budget = CheckpointBudget::new(
        &ctx.config,
        ctx.params.mana_limit,
        ctx.params.max_body_bytes,
        max_blocks,
    );
    let mut blocks: Vec<Block> = Vec::new();
    let mut held: Option<PendingBlock> = None;
    let mut from_index = 0u32;
    // The deadline last slept to: the next sub-slot starts there.
    let mut slept_to: Option<tandem_proto::time::Timestamp> = None;
    loop {
        if blocks.len() >= max_blocks as usize {
            break;
        }
        let now = ctx.now();
        let starts = match slept_to.take() {
            Some(deadline) if deadline.until(now) <= WAKE_UP_TOLERANCE => deadline.min(now),
            _ => now,
        };
        let Some(sub) = schedule.select_subslot(starts, from_index) else {
            break;
        };
        from_index = sub.index.saturating_add(1);
        // The budget changes only when a block is built, so this sub-slot's limits are known
        // before it waits.
        let limits = budget.block_limits(max_blocks.saturating_sub(sub.index), sub.deadline);
        // A minimum above this block's share of the budget could never be met (every sub-slot
        // dropped with a full pool): it is capped by the share. A later block needs at least
        // one tx whatever the setting (no empty filler blocks).
        let capped_min = ctx.config.min_txs_per_block.min(limits.max_txs);
        let min_txs = if blocks.is_empty() {
            capped_min
        } else {
            capped_min.max(1)
        };
        let force_empty = ctx.config.build_checkpoint_if_empty && sub.is_last && blocks.is_empty();
        ctx.tracker.set(SequencerState::WaitingForTxs)?;
        let enough = wait_for_txs(ctx, fork, min_txs, sub.wait_for_txs_deadline).await;
        if !enough && !force_empty {
            if sub.is_last {
                break;
            }
            ctx.tracker.set(SequencerState::WaitingUntilNextBlock)?;
            ctx.sleep_until(sub.deadline).await;
            slept_to = Some(sub.deadline);
            continue;
        }
        // This sub-slot builds: the held block is not the last one any more.
        let released = match held.take() {
            Some(previous) => {
                if !release(ctx, job, target, &previous).await? {
                    return Ok(None);
                }
                true
            }
            None => false,
        };
        ctx.tracker.set(SequencerState::CreatingBlock)?;
        let candidates = ctx
            .deps
            .world
            .candidates(fork, limits.max_txs.saturating_add(CANDIDATE_SLACK));
        let index = u32::try_from(blocks.len()).unwrap_or(u32::MAX);
        let started = Instant::now();
        let built = build_block(
            fork,
            &globals(index),
            &mut CandidateTxs::new(candidates),
            &limits,
            ctx.deps.clock.as_ref(),
        )?;
        let build_time = started.elapsed();
        metrics::block_built(build_time);
        if built.txs.len() < min_txs && !force_empty && !released {
            // Not enough valid txs: nothing changes, the sub-slot is dropped.
            if sub.is_last {
                break;
            }
            ctx.tracker.set(SequencerState::WaitingUntilNextBlock)?;
            ctx.sleep_until(sub.deadline).await;
            slept_to = Some(sub.deadline);
            continue;
        }
        let mana = built.header.total_mana_used;
        budget.add_block(built.txs.len(), mana);
        let (executed, txs) = fork.commit(built)?;
        let pending = PendingBlock {
            block: executed.block().clone(),
            archive_root: executed.archive_root(),
            txs: txs.clone(),
            build_micros: u64::try_from(build_time.as_micros()).unwrap_or(u64::MAX),
        };
        // The state service first: the follower then applies it without executing it again.
        ctx.deps.world.submit_executed(executed, txs).await?;
        blocks.push(pending.block.clone());
        held = Some(pending);
        if sub.is_last || blocks.len() >= max_blocks as usize {
            break;
        }
        ctx.tracker.set(SequencerState::WaitingUntilNextBlock)?;
        ctx.sleep_until(sub.deadline).await;
        slept_to = Some(sub.deadline);
    }
    Ok(Some((blocks, held)))
}

/// Signs, stores and gossips a block that is not the checkpoint's last; `false` when the
/// archiver refused it (the checkpoint is abandoned, reported).
async fn release(
    ctx: &Ctx,
    job: &JobPlan,
    target: Slot,
    block: &PendingBlock,
) -> SequencerResult<bool> {
    let signed = ctx
        .deps
        .signer
        .sign_block_proposal(job.proposer, block.unsigned_proposal())
        .await?;
    if !block.store(ctx, target, signed.signature).await {
        abort(ctx, target, "store_failed");
        return Ok(false);
    }
    if let Err(err) = ctx.deps.gossip.publish_block_proposal(signed).await {
        tracing::warn!(target: "sequencer", %err, "gossiping a block proposal failed");
    }
    Ok(true)
}

/// Waits until at least `min` txs are ready on `fork`, or the clock reaches `deadline`.
async fn wait_for_txs(
    ctx: &Ctx,
    fork: &Fork,
    min: usize,
    deadline: tandem_proto::time::Timestamp,
) -> bool {
    loop {
        if min == 0 || ctx.deps.world.candidates(fork, min).len() >= min {
            return true;
        }
        let now = ctx.now();
        if now >= deadline {
            return false;
        }
        let nap = now.until(deadline).min(ctx.config.tx_poll_interval);
        ctx.sleep_until(now.saturating_add(nap.max(Duration::from_millis(1))))
            .await;
    }
}

/// Whether this network pipelines.
pub(crate) fn pipelined(ctx: &Ctx) -> bool {
    ctx.params.timetable.mode() == PipeliningMode::Pipelined
}
