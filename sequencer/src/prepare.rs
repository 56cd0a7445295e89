//! `prepare` (reference §3.3, §3.4): whether and on what this node builds for the target slot,
//! every guard in the reference's order, cheapest first; nothing touches L1 before the local
//! guards passed.

use std::collections::HashSet;

use tandem_archiver::ProposedCheckpoint;
use tandem_l1::{
    SimulationBase,
    overrides::{ProposedParent, SimulationPlan},
};
use tandem_proto::{
    Address, B256,
    time::{Epoch, PipeliningMode, Slot, SlotSchedule, Timestamp},
};

use crate::{
    context::Ctx,
    error::SequencerResult,
    metrics::{self, PrecheckReason},
    state::SequencerState,
};

/// One clock read: everything a tick decides is derived from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub(crate) now: Timestamp,
    /// Slot of the next L1 block (the build slot when pipelining).
    pub(crate) slot: Slot,
    /// The slot the checkpoint is for.
    pub(crate) target: Slot,
    pub(crate) target_epoch: Epoch,
}

impl Snapshot {
    /// `None` before the first L1 block of slot 0.
    pub(crate) fn at(ctx: &Ctx, now: Timestamp) -> Option<Self> {
        let clock = ctx.params.slot_clock();
        let slot = clock.slot_at_next_l1_block(now)?;
        let target = match ctx.params.timetable.mode() {
            PipeliningMode::Pipelined => slot.next(),
            PipeliningMode::NonPipelined => slot,
        };
        Some(Self {
            now,
            slot,
            target,
            target_epoch: clock.epoch_of(target),
        })
    }
}

/// The chain this node would build on (reference §3.4's result).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyncedTo {
    /// The tip block (world state = archiver).
    pub(crate) tip_number: u64,
    pub(crate) tip_hash: B256,
    pub(crate) tip_archive: B256,
    pub(crate) tip_slot: u64,
    /// The checkpoint of the tip block.
    pub(crate) checkpoint_number: u64,
    /// The checkpointed (L1) checkpoint.
    pub(crate) checkpointed: u64,
    /// Header hash of the tip block's checkpoint.
    pub(crate) parent_header_hash: B256,
    /// The tip's checkpoint when it is proposed (not on L1 yet).
    pub(crate) proposed_parent: Option<ProposedCheckpoint>,
}

/// What a job builds and with what.
#[derive(Debug, Clone)]
pub(crate) struct JobPlan {
    pub(crate) snapshot: Snapshot,
    pub(crate) checkpoint_number: u64,
    /// The key signing for this slot.
    pub(crate) proposer: Address,
    pub(crate) synced: SyncedTo,
    pub(crate) base: SimulationBase,
    pub(crate) plan: SimulationPlan,
    pub(crate) schedule: SlotSchedule,
}

impl JobPlan {
    pub(crate) const fn had_proposed_parent(&self) -> bool {
        self.synced.proposed_parent.is_some()
    }
}

/// What prepare decided.
#[derive(Debug)]
pub(crate) enum Prepared {
    /// Build.
    Job(Box<JobPlan>),
    /// Nothing to do (target already attempted, not the proposer).
    Nothing,
    /// This node may propose but cannot build now (the reason was counted and reported).
    Refused,
}

/// State of the loop between ticks.
#[derive(Debug, Default)]
pub(crate) struct Attempts {
    /// The last target slot a job was prepared for (or given up).
    pub(crate) last_attempted: Option<Slot>,
    /// The target slot of the refusals in `refused`.
    refused_slot: Option<Slot>,
    /// The reasons counted for `refused_slot`: each counts (and is logged) once per target
    /// slot, however often the ticks flip between them.
    refused: HashSet<PrecheckReason>,
}

impl Attempts {
    fn refuse(&mut self, ctx: &Ctx, target: Slot, reason: PrecheckReason) -> Prepared {
        if self.refused_slot != Some(target) {
            self.refused_slot = Some(target);
            self.refused.clear();
        }
        if self.refused.insert(reason) {
            metrics::precheck_failed(reason);
            ctx.emit(crate::SequencerEvent::PrecheckFailed { target, reason });
            match reason {
                // Expected while the chain catches up; not worth a warning.
                PrecheckReason::OrphanBlock | PrecheckReason::ArchiverBehind => {
                    tracing::debug!(target: "sequencer", slot = target.0, reason = reason.as_str(),
                        "not building (waiting for proposed checkpoint or L1 sync to catch up)");
                }
                _ => tracing::warn!(target: "sequencer", slot = target.0, reason = reason.as_str(),
                    "not building for this slot"),
            }
        }
        Prepared::Refused
    }
}

/// Reference §3.3, in its order.
pub(crate) async fn prepare(
    ctx: &Ctx,
    attempts: &mut Attempts,
    snap: Snapshot,
) -> SequencerResult<Prepared> {
    let target = snap.target;
    // 1. Skip a target already attempted (or built on by our own proposed checkpoint).
    if attempts.last_attempted.is_some_and(|last| last >= target) {
        return Ok(Prepared::Nothing);
    }
    // 3. Proposer check, cheap and first.
    let Some(duty) = ctx.deps.committee.duty(target) else {
        return Ok(attempts.refuse(ctx, target, PrecheckReason::NoCommittee));
    };
    let ours = ctx.deps.signer.addresses();
    let proposer = match duty.proposer {
        Some(proposer) if ours.contains(&proposer) => proposer,
        Some(_) => return Ok(Prepared::Nothing),
        // An empty committee: anyone may propose.
        None => match ours.first() {
            Some(first) => *first,
            None => return Ok(Prepared::Nothing),
        },
    };
    // 6. Sync.
    let synced = match check_sync(ctx, snap.slot)? {
        Ok(synced) => synced,
        Err(reason) => return Ok(attempts.refuse(ctx, target, reason)),
    };
    // 7. Start deadline.
    let schedule = ctx.params.timetable.schedule(target);
    if snap.now > schedule.start_deadline {
        attempts.last_attempted = Some(target);
        return Ok(attempts.refuse(ctx, target, PrecheckReason::PastStartDeadline));
    }
    // 8.
    let checkpoint_number = synced.checkpoint_number.saturating_add(1);
    ctx.tracker.set(SequencerState::ProposerCheck)?;
    // 10. Depth guard: never beyond checkpointed + 2.
    if checkpoint_number > synced.checkpointed.saturating_add(2) {
        return Ok(attempts.refuse(ctx, target, PrecheckReason::DepthExceeded));
    }
    // 11. Slot taken.
    if synced.tip_slot >= target.0 {
        return Ok(attempts.refuse(ctx, target, PrecheckReason::SlotAlreadyTaken));
    }
    // 14–15. The simulation plan: proposed checkpoints between L1's tip and ours.
    let base = match ctx.deps.l1.simulation_base().await {
        Ok(base) => base,
        Err(err) => {
            tracing::warn!(target: "sequencer", %err, "reading L1 for the simulation plan failed");
            return Ok(attempts.refuse(ctx, target, PrecheckReason::RollupContractCheckFailed));
        }
    };
    let plan = match simulation_plan(ctx, &base, checkpoint_number)? {
        Some(plan) => plan,
        None => return Ok(attempts.refuse(ctx, target, PrecheckReason::PlanFailed)),
    };
    let parent_archive = synced
        .proposed_parent
        .as_ref()
        .map_or(synced.tip_archive, |parent| parent.payload.archive);
    let depth = plan
        .next_checkpoint_number()
        .saturating_sub(base.checkpointed.saturating_add(1));
    metrics::pipeline_depth(usize::try_from(depth).unwrap_or(usize::MAX));
    // 18. canProposeAt, simulated in the target slot under the plan.
    let clock = ctx.params.slot_clock();
    let next_l1 = clock.next_l1_block_time(snap.now);
    let at = match ctx.params.timetable.mode() {
        PipeliningMode::Pipelined => next_l1.saturating_add(clock.slot_duration()),
        PipeliningMode::NonPipelined => next_l1,
    };
    match ctx
        .deps
        .l1
        .can_propose_at(at, parent_archive, proposer, &base, &plan)
        .await
    {
        Err(err) => {
            tracing::warn!(target: "sequencer", slot = target.0, %err, "canProposeAt refused");
            return Ok(attempts.refuse(ctx, target, PrecheckReason::RollupContractCheckFailed));
        }
        Ok(answer) if answer.slot != target => {
            return Ok(attempts.refuse(ctx, target, PrecheckReason::SlotMismatch));
        }
        Ok(answer) if answer.next_checkpoint != checkpoint_number => {
            return Ok(attempts.refuse(ctx, target, PrecheckReason::CheckpointNumberMismatch));
        }
        Ok(_) => {}
    }
    // 19.
    attempts.last_attempted = Some(target);
    tracing::info!(target: "sequencer", checkpoint = checkpoint_number, target_slot = target.0,
        build_slot = snap.slot.0, proposed_parent = synced.proposed_parent.is_some(),
        "preparing checkpoint proposal");
    Ok(Prepared::Job(Box::new(JobPlan {
        snapshot: snap,
        checkpoint_number,
        proposer,
        synced,
        base,
        plan,
        schedule,
    })))
}

/// Reference §3.4: `Ok(Err(reason))` when the node is not in a state to build on.
pub(crate) fn check_sync(
    ctx: &Ctx,
    slot: Slot,
) -> SequencerResult<Result<SyncedTo, PrecheckReason>> {
    let chain = &ctx.deps.chain;
    // 1. The archiver has seen all L1 data of the slot before this one.
    let synced_slot = chain.synced_l2_slot()?;
    let l1_synced = match synced_slot {
        Some(synced) => synced.0.saturating_add(1) >= slot.0,
        None => slot.0 == 0,
    };
    if !l1_synced {
        return Ok(Err(PrecheckReason::ArchiverBehind));
    }
    // 2. World state and archiver agree on the tip.
    let tips = chain.tips();
    let world = ctx.deps.world.tip();
    if world.number != tips.proposed.block.number || world.hash != tips.proposed.block.hash {
        return Ok(Err(PrecheckReason::WorldStateBehind));
    }
    // 3.
    let Some(tip) = chain.header(world.number)? else {
        return Ok(Err(PrecheckReason::WorldStateBehind));
    };
    let checkpoint_number = tip.header.checkpoint_number;
    let checkpointed = tips.checkpointed.checkpoint.number;
    let proposed_number = tips.proposed_checkpoint.checkpoint.number;
    let has_proposed = proposed_number > checkpointed;
    // 5. Coherence: the tips' proposed checkpoint must be readable, with that number.
    let proposed = if has_proposed {
        match chain.proposed_checkpoint(proposed_number)? {
            Some(proposed) if proposed.number == proposed_number => Some(proposed),
            _ => return Ok(Err(PrecheckReason::IncoherentTips)),
        }
    } else {
        None
    };
    // 4. Orphan guard: the tip's checkpoint is on L1 or is exactly the proposed one.
    if checkpoint_number > checkpointed && proposed_number < checkpoint_number {
        return Ok(Err(PrecheckReason::OrphanBlock));
    }
    // 6. A proposed checkpoint must be the parent, ending at the tip.
    if let Some(proposed) = &proposed
        && (proposed.number != checkpoint_number
            || proposed.last_block() != tip.header.block_number)
    {
        return Ok(Err(PrecheckReason::ProposedCheckpointNotParent));
    }
    let parent_header_hash = match &proposed {
        Some(proposed) => proposed.payload.header.hash(),
        None => tips.checkpointed.checkpoint.hash,
    };
    Ok(Ok(SyncedTo {
        tip_number: tip.header.block_number,
        tip_hash: tip.hash,
        tip_archive: tip.archive_root,
        tip_slot: tip.header.slot,
        checkpoint_number,
        checkpointed,
        parent_header_hash,
        proposed_parent: proposed,
    }))
}

/// The plan for building `checkpoint_number` over L1's state in `base`: every proposed
/// checkpoint between L1's tip and ours laid over it (`None` when one is missing or the fee
/// headers cannot be derived).
fn simulation_plan(
    ctx: &Ctx,
    base: &SimulationBase,
    checkpoint_number: u64,
) -> SequencerResult<Option<SimulationPlan>> {
    let mut parents = Vec::new();
    for number in base.checkpointed.saturating_add(1)..checkpoint_number {
        let Some(proposed) = ctx.deps.chain.proposed_checkpoint(number)? else {
            tracing::warn!(target: "sequencer", number, l1_checkpointed = base.checkpointed,
                "a checkpoint between L1's tip and ours is neither on L1 nor proposed");
            return Ok(None);
        };
        parents.push(ProposedParent {
            number,
            archive: proposed.payload.archive,
            header_hash: proposed.payload.header.hash(),
            slot: proposed.payload.header.slot,
            mana_used: proposed.total_mana_used,
            fee_asset_price_modifier: proposed.payload.fee_asset_price_modifier,
        });
    }
    match SimulationPlan::from_base(base, &parents, &ctx.params.fees) {
        Ok(plan) => Ok(Some(plan)),
        Err(err) => {
            tracing::warn!(target: "sequencer", %err, "cannot build the simulation plan");
            Ok(None)
        }
    }
}
