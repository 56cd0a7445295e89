//! Removing blocks: the uncheckpointed-slot prune, the orphan prune, and the removal every
//! prune, reorg and divergence shares. Every removal of at least one block commits a
//! [`PruneEvent`] with a sequence number stored in the same batch.

use tandem_proto::{RecoveredTx, Tx};

use crate::{
    chain::{ChainState, LastBlock},
    error::{ArchiverError, ArchiverResult},
    senders::{RecoveredBlocks, recover_txs},
    store::{ArchiverStore, Change},
    tables::{
        Archives, Batch, BlockHashes, BlockSignatures, BlockTxs, HeaderViews, Headers,
        ProposedCheckpoints, Reads, TxLocations,
    },
};

/// Why blocks were removed, for subscribers that must roll back with the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruneKind {
    /// The slot of the first uncheckpointed block ended (by L1 time) without an L1 checkpoint.
    UncheckpointedSlot,
    /// Blocks without a checkpoint proposal past its deadline.
    Orphan,
    /// A proposed checkpoint sealed its block set: stored blocks after its last one went.
    OutsideProposedCheckpoint,
    /// L1 mined a different checkpoint than the local one.
    L1Divergence,
    /// L1 reorganised away checkpoints.
    L1Reorg,
}

impl PruneKind {
    /// Metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::UncheckpointedSlot => "uncheckpointed_slot",
            Self::Orphan => "orphan",
            Self::OutsideProposedCheckpoint => "outside_proposed_checkpoint",
            Self::L1Divergence => "l1_divergence",
            Self::L1Reorg => "l1_reorg",
        }
    }
}

/// Blocks removed from the store. The world state rolls back to `first_removed_block − 1`; the
/// tx pool gets `txs` back (senders known, no recovery needed).
///
/// Events are a wake-up, not the source of truth: `seq` counts every prune ever committed (it is
/// stored with the prune), so a subscriber that lagged or restarted sees a gap and reconciles
/// against the store by block hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneEvent {
    /// Sequence number of this prune (1 for the first one the store ever committed).
    pub seq: u64,
    /// Why.
    pub kind: PruneKind,
    /// First removed block.
    pub first_removed_block: u64,
    /// Number of removed blocks (at least one).
    pub removed_blocks: u64,
    /// Proposed checkpoints evicted.
    pub evicted_checkpoints: Vec<u64>,
    /// Txs of the removed blocks, in block order.
    pub txs: Vec<RecoveredTx>,
}

pub(crate) fn record_prune(event: &PruneEvent) {
    let kind = event.kind.as_str();
    metrics::counter!("archiver_prunes_total", "kind" => kind).increment(1);
    metrics::counter!("archiver_pruned_blocks_total", "kind" => kind)
        .increment(event.removed_blocks);
    tracing::warn!(
        target: "archiver",
        kind,
        seq = event.seq,
        first = event.first_removed_block,
        blocks = event.removed_blocks,
        evicted = ?event.evicted_checkpoints,
        "pruned blocks"
    );
}

impl ArchiverStore {
    /// Removes blocks `from..=` the latest (with their indexes and every proposed checkpoint
    /// touching them) in `batch`, and updates `next` accordingly. `None` if there is nothing to
    /// remove. Checkpointed blocks among them are the caller's to un-checkpoint.
    pub(crate) fn remove_blocks_from(
        &self,
        batch: &mut Batch,
        next: &mut ChainState,
        from: u64,
        kind: PruneKind,
        recovered: &RecoveredBlocks,
    ) -> ArchiverResult<Option<crate::PruneEvent>> {
        let last = self.chain.last.number();
        if from > last || from == 0 {
            return Ok(None);
        }
        let db = self.db();
        let mut txs = Vec::new();
        let mut lowest_checkpoint = u64::MAX;
        for number in from..=last {
            let header = db.require::<HeaderViews>(&number, "a block below the tip is missing")?;
            lowest_checkpoint = lowest_checkpoint.min(header.header.checkpoint_number);
            let block_txs: Vec<Tx> =
                db.require::<BlockTxs>(&number, "a stored block has no tx record")?;
            if number <= self.chain.checkpointed.last_block.number {
                for tx in &block_txs {
                    batch.delete::<TxLocations>(&tx.hash());
                }
            }
            if let Some(pending) = self.pending.get(&number) {
                txs.extend(pending.recovered.iter().cloned());
            } else if let Some(given) = recovered.get(&header.hash) {
                txs.extend(given.iter().cloned());
            } else {
                // Nobody recovered them off the writer (a direct store user's rollback).
                metrics::counter!("archiver_senders_recovered_on_writer_total")
                    .increment(block_txs.len() as u64);
                txs.extend(recover_txs(block_txs, &self.shared.domain));
            }
            batch.delete::<Headers>(&number);
            batch.delete::<BlockTxs>(&number);
            batch.delete::<BlockSignatures>(&number);
            batch.delete::<BlockHashes>(&header.hash);
            batch.delete::<Archives>(&header.archive_root);
        }
        let evicted = Self::evict_proposed_from(batch, next, lowest_checkpoint);
        next.last = LastBlock::of(self.header_record(from - 1)?);
        next.prune_seq += 1;
        Ok(Some(crate::PruneEvent {
            seq: next.prune_seq,
            kind,
            first_removed_block: from,
            removed_blocks: last + 1 - from,
            evicted_checkpoints: evicted,
            txs,
        }))
    }

    /// Evicts the proposed checkpoints numbered `from` and above.
    pub(crate) fn evict_proposed_from(
        batch: &mut Batch,
        next: &mut ChainState,
        from: u64,
    ) -> Vec<u64> {
        let evicted: Vec<u64> = next.proposed.split_off(&from).into_keys().collect();
        for number in &evicted {
            batch.delete::<ProposedCheckpoints>(number);
        }
        evicted
    }

    /// Uncheckpointed-slot prune: if the first block after the checkpointed tip belongs to a slot
    /// before `first_open_slot` (the slot of the newest synced L1 block: no L1 block can be in an
    /// earlier slot any more), its checkpoint can no longer land: remove every block after the
    /// checkpointed tip and every proposed checkpoint. Waits while L1 checkpoints await a body
    /// (the local blocks may be theirs).
    pub fn prune_uncheckpointed(
        &mut self,
        first_open_slot: u64,
    ) -> ArchiverResult<Option<crate::PruneEvent>> {
        if !self.chain.awaiting.is_empty() {
            return Ok(None);
        }
        let first = self.chain.checkpointed.last_block.number + 1;
        let Some(block) = self.db().get::<HeaderViews>(&first)? else {
            return Ok(None);
        };
        if block.header.slot >= first_open_slot {
            return Ok(None);
        }
        self.remove_and_commit(first, PruneKind::UncheckpointedSlot, true)
    }

    /// Orphan prune: the first block above the proposed-checkpoint tip whose slot's
    /// `deadline_ms(slot)` has passed at `now_ms` (its checkpoint proposal never came) is removed
    /// with everything after it. Blocks of L1 checkpoints awaiting a body are kept (they may be
    /// that body).
    pub fn prune_orphans(
        &mut self,
        now_ms: u64,
        deadline_ms: impl Fn(u64) -> u64,
    ) -> ArchiverResult<Option<crate::PruneEvent>> {
        let awaited = self.chain.awaiting.last().copied();
        let tips = self.chain.tips();
        for number in tips.proposed_checkpoint.block.number + 1..=tips.proposed.block.number {
            let block = self
                .db()
                .require::<HeaderViews>(&number, "a block below the tip is missing")?;
            if awaited.is_some_and(|last| block.header.checkpoint_number <= last) {
                continue;
            }
            if now_ms > deadline_ms(block.header.slot) {
                return self.remove_and_commit(number, PruneKind::Orphan, false);
            }
        }
        Ok(None)
    }

    fn remove_and_commit(
        &mut self,
        from: u64,
        kind: PruneKind,
        evict_all: bool,
    ) -> ArchiverResult<Option<crate::PruneEvent>> {
        let mut batch = self.db().batch();
        let mut next = self.chain.clone();
        let Some(mut event) = self.remove_blocks_from(
            &mut batch,
            &mut next,
            from,
            kind,
            &RecoveredBlocks::default(),
        )?
        else {
            return Ok(None);
        };
        if evict_all {
            // Everything proposed sat on the blocks removed.
            event
                .evicted_checkpoints
                .extend(Self::evict_proposed_from(&mut batch, &mut next, 0));
        }
        if next.last.number() < next.checkpointed.last_block.number {
            return Err(ArchiverError::Corrupt(
                "a prune reached checkpointed blocks",
            ));
        }
        self.commit(Change::new(batch, next, false).removing(Some(from), Some(event.clone())))?;
        Ok(Some(event))
    }
}
