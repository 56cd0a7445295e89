//! The job's block loop: wait for txs, build, hold each block until the next one is built,
//! then sign, store and gossip it (reference §3.6).

use super::*;

/// Candidates copied out of the pool per block beyond its tx limit (to replace txs that fail).
const CANDIDATE_SLACK: usize = 64;

/// Txs that failed in this job's builds (they stay in the pool: the state service drops them
/// when it sees fit). They and their senders' later txs are no candidates any more in this job:
/// neither counted while waiting for txs nor handed to the builder again.
#[derive(Debug, Default)]
pub(super) struct FailedTxs {
    hashes: HashSet<B256>,
}

impl FailedTxs {
    fn record(&mut self, failed: &[(B256, TxError)]) {
        self.hashes.extend(failed.iter().map(|(hash, _)| *hash));
    }

    fn len(&self) -> usize {
        self.hashes.len()
    }

    /// `candidates` (best first, each sender's in nonce order) less the failed txs and every
    /// later tx of their senders (they cannot run without the failed nonce).
    fn runnable(&self, candidates: Vec<RecoveredTx>) -> Vec<RecoveredTx> {
        if self.hashes.is_empty() {
            return candidates;
        }
        let mut blocked = HashSet::new();
        candidates
            .into_iter()
            .filter(|tx| {
                if self.hashes.contains(&tx.hash()) {
                    blocked.insert(tx.sender());
                }
                !blocked.contains(&tx.sender())
            })
            .collect()
    }
}

/// The blocks built in order, and the last one unsigned and unstored.
pub(super) type BuiltBlocks = (Vec<Block>, Option<PendingBlock>);

/// The block loop: `Err(reason)` when the checkpoint was abandoned. Returns the blocks in
/// order and the last one unsigned and unstored (it rides inside the checkpoint proposal: p2p
/// refuses a checkpoint proposal without its last block, so the last block is never gossiped
/// alone).
///
/// Each block is held until the next one is built with enough txs; only then is the held one
/// signed, stored and gossiped. A sub-slot whose build falls short (its txs failed) changes
/// nothing: the held block stays the last, and those txs are no candidates for the rest of the
/// job.
pub(super) async fn build_blocks(
    ctx: &Ctx,
    job: &JobPlan,
    fork: &mut Fork,
    globals: &impl Fn(u32) -> BlockGlobals,
) -> SequencerResult<Result<BuiltBlocks, AbortReason>> {
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
    let mut failed = FailedTxs::default();
    let mut from_index = 0u32;
    loop {
        if blocks.len() >= max_blocks as usize {
            break;
        }
        // The timetable's minimum block is at most D / 2, so a wake-up (or a release) up to
        // D / 2 late after a sub-slot deadline keeps the next sub-slot.
        let now = ctx.now();
        let Some(sub) = schedule.select_subslot(now, from_index) else {
            // Every sub-slot left is too short (the last one reached late): those are lost too.
            let len = u32::try_from(schedule.block_build_deadlines.len()).unwrap_or(u32::MAX);
            if from_index < len {
                report_skipped(ctx, schedule, from_index, len, now);
            }
            break;
        };
        if sub.index > from_index {
            report_skipped(ctx, schedule, from_index, sub.index, now);
        }
        from_index = sub.index.saturating_add(1);
        // The budget changes only when a block is built, so this sub-slot's limits are known
        // before it waits.
        let limits = budget.block_limits(max_blocks.saturating_sub(sub.index), sub.deadline);
        // Txs this block's share can hold, by count and by mana.
        let fits = limits
            .max_txs
            .min(usize::try_from(limits.max_mana / TX_MANA).unwrap_or(usize::MAX));
        if fits == 0 {
            // The checkpoint's budget is spent: no later block could hold a tx either.
            break;
        }
        // A minimum above this block's share could never be met (every sub-slot dropped with
        // a full pool): it is capped by the share. A later block needs at least one tx
        // whatever the setting (no empty filler blocks).
        let capped_min = ctx.config.min_txs_per_block.min(fits);
        let min_txs = if blocks.is_empty() {
            capped_min
        } else {
            capped_min.max(1)
        };
        let force_empty = ctx.config.build_checkpoint_if_empty && sub.is_last && blocks.is_empty();
        ctx.tracker.set(SequencerState::WaitingForTxs)?;
        let enough = wait_for_txs(ctx, fork, &failed, min_txs, sub.wait_for_txs_deadline).await;
        if !enough && !force_empty {
            if sub.is_last {
                break;
            }
            ctx.tracker.set(SequencerState::WaitingUntilNextBlock)?;
            ctx.sleep_until(sub.deadline).await;
            continue;
        }
        ctx.tracker.set(SequencerState::CreatingBlock)?;
        let wanted = limits
            .max_txs
            .saturating_add(CANDIDATE_SLACK)
            .saturating_add(failed.len());
        let candidates = failed.runnable(ctx.deps.world.candidates(fork, wanted));
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
        failed.record(&built.failed);
        if built.txs.len() < min_txs && !force_empty {
            // Not enough valid txs: nothing changes (the held block stays the last), the
            // sub-slot is dropped.
            if sub.is_last {
                break;
            }
            ctx.tracker.set(SequencerState::WaitingUntilNextBlock)?;
            ctx.sleep_until(sub.deadline).await;
            continue;
        }
        // This block is committed: the held one is not the last any more.
        if let Some(previous) = held.take()
            && let Err(reason) = release(ctx, job, target, &previous).await?
        {
            return Ok(Err(reason));
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
    }
    Ok(Ok((blocks, held)))
}

/// Reports sub-slots `first..chosen` skipped because the loop reached them at `starts`, with
/// less than the minimum block duration left.
fn report_skipped(ctx: &Ctx, schedule: &SlotSchedule, first: u32, chosen: u32, starts: Timestamp) {
    let opened = first
        .checked_sub(1)
        .and_then(|previous| schedule.block_build_deadlines.get(previous as usize))
        .copied()
        .unwrap_or(schedule.first_subslot_start);
    let late_ms = u64::try_from(starts.millis_since(opened)).unwrap_or(0);
    let count = chosen.saturating_sub(first);
    metrics::subslots_skipped(count);
    tracing::warn!(target: "sequencer", slot = schedule.target_slot.0, first, count, late_ms,
        "sub-slots skipped: reached with less than the minimum block duration left");
    ctx.emit(SequencerEvent::SubSlotsSkipped {
        target: schedule.target_slot,
        first,
        count,
        late_ms,
    });
}

/// Signs, stores and gossips a block that is not the checkpoint's last; `Err` when it is too
/// late for it or the archiver refused it (the checkpoint is abandoned).
async fn release(
    ctx: &Ctx,
    job: &JobPlan,
    target: Slot,
    block: &PendingBlock,
) -> SequencerResult<Result<(), AbortReason>> {
    let signed = ctx
        .deps
        .signer
        .sign_block_proposal(job.proposer, block.unsigned_proposal())
        .await?;
    if past_send_deadline(ctx, job) {
        return Ok(Err(AbortReason::PastSendDeadline));
    }
    if !block.store(ctx, target, signed.signature).await {
        return Ok(Err(AbortReason::StoreFailed));
    }
    // Once stored it goes out (as the checkpoint, step 14): a stored block no peer has helps
    // nobody.
    if let Err(err) = ctx.deps.gossip.publish_block_proposal(signed).await {
        tracing::warn!(target: "sequencer", %err, "gossiping a block proposal failed");
    }
    Ok(Ok(()))
}

/// Waits until at least `min` txs that did not fail in this job are ready on `fork`, or the
/// clock reaches `deadline`.
async fn wait_for_txs(
    ctx: &Ctx,
    fork: &Fork,
    failed: &FailedTxs,
    min: usize,
    deadline: Timestamp,
) -> bool {
    loop {
        if min == 0 {
            return true;
        }
        // Failed txs and their senders' later txs are skipped: look a little further.
        let wanted = min
            .saturating_add(failed.len())
            .saturating_add(if failed.hashes.is_empty() {
                0
            } else {
                CANDIDATE_SLACK
            });
        if failed
            .runnable(ctx.deps.world.candidates(fork, wanted))
            .len()
            >= min
        {
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
