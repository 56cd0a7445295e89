//! Following L1, in two phases so that L1 I/O never holds up the writer:
//!
//! 1. [`fetch_l1_update`] (async, reads only: see `fetch`) plans the steps.
//! 2. [`apply_l1_step`] (sync, one store write per step): the actor applies the planned steps
//!    one at a time between queued proposals; [`sync_step`] does both phases at once.
//!
//! Prunes ([`prune`]) do not depend on a fetch: the uncheckpointed-slot prune goes by L1 time
//! (the newest synced L1 block: every L1 block up to it was read, so a slot that ended before it
//! can no longer get its checkpoint), the orphan prune by the consensus deadlines and the wall
//! clock. The actor runs them on every tick, whether L1 answers or not.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use futures::future::BoxFuture;
use tandem_proto::{
    B256,
    time::{ConsensusWindows, Slot, SlotClock, Timestamp},
};

pub use crate::fetch::fetch_l1_update;
use crate::{
    awaiting::L1EventOutcome,
    error::{ArchiverError, ArchiverResult},
    prune::PruneEvent,
    records::{L1CheckpointEvent, L1Ref},
    senders::RecoveredBlocks,
    store::ArchiverStore,
};

/// An L1 block header, as the sync needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L1Block {
    /// Number.
    pub number: u64,
    /// Hash.
    pub hash: B256,
    /// Parent hash.
    pub parent_hash: B256,
    /// Timestamp, seconds.
    pub timestamp: u64,
}

impl L1Block {
    /// Number, hash and timestamp.
    pub const fn reference(&self) -> L1Ref {
        L1Ref {
            number: self.number,
            hash: self.hash,
            timestamp: self.timestamp,
        }
    }
}

/// A future of the L1 source.
pub type L1Future<'a, T> = BoxFuture<'a, ArchiverResult<T>>;

/// What the archiver needs from L1 (defined here, the consumer; implemented for
/// [`tandem_l1::L1Reader`] in `l1_source`).
pub trait L1Source: Send + Sync + 'static {
    /// Number of the latest L1 block.
    fn latest_block(&self) -> L1Future<'_, u64>;
    /// The latest finalized L1 block, if the node reports one.
    fn finalized_block(&self) -> L1Future<'_, Option<L1Block>>;
    /// Block `number` of the canonical chain; `None` if the RPC does not have it (yet).
    fn block(&self, number: u64) -> L1Future<'_, Option<L1Block>>;
    /// The rollup's `CheckpointProposed` events in blocks `from..=to`, in order; each with its
    /// calldata when it could be read.
    fn checkpoint_events(&self, from: u64, to: u64) -> L1Future<'_, Vec<L1CheckpointEvent>>;
}

/// Settings of the L1 sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncConfig {
    /// L1 block the rollup was deployed in (sync starts there).
    pub deployment_block: u64,
    /// L1 blocks to wait before trusting a block's events.
    pub confirmations: u64,
    /// Most L1 blocks per log query.
    pub batch_size: u64,
    /// Most ranges per fetch, so one fetch stays bounded during a long catch-up.
    pub max_batches_per_step: u32,
    /// Extra time after the checkpoint-proposal receive deadline before blocks without a
    /// proposal are pruned as orphans.
    pub orphan_prune_tolerance: Duration,
}

/// One planned change to the store (one write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum L1Step {
    /// L1 reorganised: keep checkpoints up to `keep`, move the cursor to `marker` if given.
    Rollback {
        /// Highest checkpoint still on L1.
        keep: u64,
        /// New cursor (none when a re-read event revealed the reorg: the range goes on).
        marker: Option<L1Ref>,
        /// Senders of the checkpointed blocks it removes, recovered by the fetch.
        recovered: RecoveredBlocks,
    },
    /// A `CheckpointProposed` event, in order.
    Event(Box<L1CheckpointEvent>),
    /// Every event up to this block is applied.
    Advance(L1Ref),
    /// Checkpoints whose L1 block is on L1's finalized chain, newest first: the first one
    /// stored as included in that very block (hash included) becomes the finalized tip.
    Finalized {
        /// `(checkpoint, its L1 block)`.
        candidates: Vec<(u64, L1Ref)>,
    },
    /// Retry the first L1 checkpoint waiting for its body.
    ResolveAwaiting,
}

/// What a fetch found: the steps to apply, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L1Update {
    /// Steps, in order.
    pub steps: Vec<L1Step>,
    /// Whether the fetch stopped before the confirmed L1 head.
    pub behind: bool,
    /// Latest L1 block seen.
    pub head: u64,
}

/// What a sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// L1 checkpoints applied (promoted or inserted).
    pub checkpoints: u64,
    /// L1 checkpoints stored awaiting their body.
    pub awaiting: u64,
    /// Last L1 block processed.
    pub synced_to: Option<u64>,
    /// Whether the sync stopped before the confirmed L1 head.
    pub behind: bool,
    /// Blocks removed, in order.
    pub prunes: Vec<PruneEvent>,
}

/// What applying steps needs besides the store.
#[derive(Debug, Clone, Copy)]
pub struct PruneContext<'a> {
    /// Slot arithmetic.
    pub slot_clock: &'a SlotClock,
    /// Consensus deadlines (orphan prune).
    pub windows: &'a ConsensusWindows,
    /// Orphan tolerance.
    pub orphan_prune_tolerance: Duration,
    /// Slots with a checkpoint proposal seen on gossip.
    pub proposals_seen: &'a BTreeSet<u64>,
    /// Slots whose blocks are held from the orphan prune until the given time (catch-up
    /// storing a checkpoint's blocks before the checkpoint itself).
    pub orphan_holds: &'a BTreeMap<u64, Timestamp>,
    /// Wall-clock time (orphan prune only).
    pub now: Timestamp,
}

/// What one applied step did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepOutcome {
    /// An L1 checkpoint was applied.
    pub applied_checkpoint: bool,
    /// An L1 checkpoint was stored awaiting its body.
    pub awaiting: bool,
    /// The cursor moved to this block.
    pub advanced_to: Option<u64>,
    /// The awaiting queue moved: retry it again.
    pub resolve_again: bool,
}

/// Applies one step (one store write, two for an event that reveals a reorg).
pub fn apply_l1_step(store: &mut ArchiverStore, step: L1Step) -> ArchiverResult<StepOutcome> {
    let mut outcome = StepOutcome::default();
    match step {
        L1Step::Rollback {
            keep,
            marker,
            recovered,
        } => {
            store.rollback_l1_with(keep, marker, &recovered)?;
        }
        L1Step::Event(event) => {
            let number = event.number;
            match store.apply_l1_event(*event)? {
                L1EventOutcome::Known => {}
                L1EventOutcome::Applied(_) => {
                    outcome.applied_checkpoint = true;
                    tracing::info!(target: "archiver", checkpoint = number, "checkpoint on L1");
                }
                L1EventOutcome::Awaiting(_) => outcome.awaiting = true,
            }
        }
        L1Step::Advance(block) => {
            store.set_l1_synced(block)?;
            outcome.advanced_to = Some(block.number);
        }
        L1Step::Finalized { candidates } => {
            for (checkpoint, l1) in candidates {
                if store.finalize_l1_checkpoint(checkpoint, l1)? {
                    break;
                }
            }
        }
        L1Step::ResolveAwaiting => {
            if store.resolve_awaiting()?.is_some() {
                outcome.applied_checkpoint = true;
                outcome.resolve_again = true;
            }
        }
    }
    Ok(outcome)
}

/// The uncheckpointed-slot prune, by L1 time: every L1 block up to the newest synced one was
/// read, and no later L1 block can be in an earlier slot, so a slot before the synced block's
/// whose checkpoint is not on L1 will never have it. A stale cursor (L1 unreachable) only makes
/// it wait. One store write at most.
pub fn prune_uncheckpointed(
    store: &mut ArchiverStore,
    context: &PruneContext<'_>,
) -> ArchiverResult<Option<PruneEvent>> {
    let Some(synced) = store.l1_synced() else {
        return Ok(None);
    };
    match context
        .slot_clock
        .slot_at(Timestamp::from_secs(synced.timestamp))
    {
        Some(slot) => store.prune_uncheckpointed(slot.0),
        None => Ok(None),
    }
}

/// The orphan prune, by the consensus deadlines and the wall clock (needs nothing from L1).
/// One store write at most.
pub fn prune_orphans(
    store: &mut ArchiverStore,
    context: &PruneContext<'_>,
) -> ArchiverResult<Option<PruneEvent>> {
    let deadline = |slot: u64| {
        let deadline = orphan_deadline(
            context.windows,
            context.orphan_prune_tolerance,
            context.proposals_seen.contains(&slot),
            Slot(slot),
        );
        context
            .orphan_holds
            .get(&slot)
            .map_or(deadline, |&hold| deadline.max(hold))
            .as_millis()
    };
    store.prune_orphans(context.now.as_millis(), deadline)
}

/// Both prunes, whatever L1 does.
pub fn prune(store: &mut ArchiverStore, context: &PruneContext<'_>) -> ArchiverResult<()> {
    prune_uncheckpointed(store, context)?;
    prune_orphans(store, context)?;
    Ok(())
}

/// Fetches and applies everything in one go, then prunes (what the actor does step by step
/// between its commands). The prunes run even when L1 fails (its error is returned after
/// them); on error, prunes committed are in [`ArchiverStore::take_prune_events`].
pub async fn sync_step(
    store: &mut ArchiverStore,
    source: &dyn L1Source,
    config: &SyncConfig,
    context: &PruneContext<'_>,
) -> ArchiverResult<SyncReport> {
    let mut report = SyncReport::default();
    let synced = async {
        let update = fetch_l1_update(&store.reader(), source, config).await?;
        report.behind = update.behind;
        let mut steps: std::collections::VecDeque<L1Step> = update.steps.into();
        while let Some(step) = steps.pop_front() {
            let outcome = apply_l1_step(store, step)?;
            report.merge(&outcome);
            if outcome.resolve_again {
                steps.push_front(L1Step::ResolveAwaiting);
            }
        }
        Ok::<_, ArchiverError>(())
    }
    .await;
    match synced {
        Err(err) if err.is_fatal() => return Err(err),
        synced => {
            prune(store, context)?;
            synced?;
        }
    }
    report.prunes = store.take_prune_events();
    Ok(report)
}

impl SyncReport {
    pub(crate) fn merge(&mut self, outcome: &StepOutcome) {
        self.checkpoints += u64::from(outcome.applied_checkpoint);
        self.awaiting += u64::from(outcome.awaiting);
        if outcome.advanced_to.is_some() {
            self.synced_to = outcome.advanced_to;
        }
    }
}

/// When the blocks of `slot` not covered by a proposed checkpoint become orphans. With a valid
/// checkpoint proposal seen on gossip they get until the synced deadline (its blocks may still be
/// re-executing); without one, a proposer withholding its checkpoint must not stall the next
/// proposer, so they go right after the receive deadline plus `tolerance`.
pub fn orphan_deadline(
    windows: &ConsensusWindows,
    tolerance: Duration,
    proposal_seen: bool,
    slot: Slot,
) -> Timestamp {
    if proposal_seen {
        windows.checkpoint_proposal_synced_deadline(slot)
    } else {
        windows
            .checkpoint_proposal_receive_deadline(slot)
            .saturating_add(tolerance)
    }
}
