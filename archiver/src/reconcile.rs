//! Reconciliation with L1: a checkpoint mined on L1 promotes the matching proposed checkpoint,
//! or writes the blocks of its body after removing local blocks that disagree (local blocks of
//! later slots on top are kept); an L1 reorg rolls back to the last checkpoint still on L1,
//! never below the finalized one. Events whose body cannot be used are handled in `awaiting`.

use tandem_proto::{B256, Block, encode_checkpoint_body, keccak256};

use crate::{
    chain::{CheckpointSummary, LastBlock},
    codec::HeaderRecord,
    error::{ArchiverError, ArchiverResult},
    prune::PruneKind,
    records::{CheckpointRecord, L1Ref, PayloadSource},
    rules::{plan_l1_checkpoint, verify_checkpoint_blocks},
    senders::RecoveredBlocks,
    store::{ArchiverStore, Change, L1CheckpointInput, L1Outcome},
    tables::{
        AwaitingCheckpoints, Checkpoints, HeaderViews, MetaL1Synced, ProposedCheckpoints, Reads,
        SlotCheckpoints,
    },
};

impl ArchiverStore {
    /// Adds checkpoint `input.number` as mined on L1: promotes the matching proposed checkpoint,
    /// or writes its blocks from the body after removing local blocks that disagree.
    pub fn add_l1_checkpoint(&mut self, input: L1CheckpointInput) -> ArchiverResult<L1Outcome> {
        self.insert_l1(input, PayloadSource::L1Calldata)
    }

    pub(crate) fn insert_l1(
        &mut self,
        input: L1CheckpointInput,
        source: PayloadSource,
    ) -> ArchiverResult<L1Outcome> {
        let expected = self.chain.checkpointed.number + 1;
        if input.number != expected {
            return Err(ArchiverError::L1CheckpointNotSequential {
                expected,
                got: input.number,
            });
        }
        let db = self.db();
        let awaiting = self.chain.awaiting.contains(&input.number);
        if let Some(proposed) = db.get::<ProposedCheckpoints>(&input.number)?
            && proposed.payload.header.hash() == input.payload.header.hash()
            && proposed.payload.archive == input.payload.archive
        {
            let record = CheckpointRecord {
                number: input.number,
                payload: input.payload,
                start_block: proposed.start_block,
                block_count: proposed.block_count,
                l1: input.l1,
                attestations: input.attestations,
                source,
            };
            let last_hash = self
                .chain
                .proposed
                .get(&input.number)
                .ok_or(ArchiverError::Corrupt(
                    "a stored proposed checkpoint is not in memory",
                ))?
                .last_block
                .hash;
            let mut batch = db.batch();
            self.put_pending_tx_index(&mut batch, record.start_block..=record.last_block());
            Self::put_checkpoint(&mut batch, &record);
            batch.delete::<ProposedCheckpoints>(&input.number);
            if awaiting {
                batch.delete::<AwaitingCheckpoints>(&input.number);
            }
            let mut next = self.chain.clone();
            next.checkpointed = CheckpointSummary::of(&record, last_hash);
            next.proposed.remove(&input.number);
            next.awaiting.remove(&input.number);
            self.commit(Change::new(batch, next, true))?;
            metrics::counter!("archiver_l1_checkpoints_total", "outcome" => "promoted")
                .increment(1);
            return Ok(L1Outcome::Promoted);
        }

        // Verify L1's blocks against the checkpointed tip before changing anything.
        let fail = |reason| ArchiverError::L1CheckpointBlocks {
            number: input.number,
            reason,
        };
        let start = self.chain.checkpointed.last_block.number + 1;
        let parent = self.header_record(start - 1)?;
        let mut chained: Vec<(HeaderRecord, &Block)> = Vec::with_capacity(input.blocks.len());
        for (offset, block) in input.blocks.iter().enumerate() {
            if block.header.block_number != start + offset as u64 {
                return Err(fail("block numbers are not sequential"));
            }
            if !block.body_matches_header() {
                return Err(fail("txs do not match a header"));
            }
            let previous = chained.last().map_or(&parent.archive, |(b, _)| &b.archive);
            if block.header.last_archive_root != previous.root() {
                return Err(fail("blocks do not chain"));
            }
            let hash = block.hash();
            let mut archive = previous.clone();
            let archive_root = archive
                .append(hash)
                .map_err(|_| ArchiverError::Corrupt("archive full"))?;
            chained.push((
                HeaderRecord {
                    header: block.header.clone(),
                    hash,
                    archive_root,
                    archive,
                },
                block,
            ));
        }
        verify_checkpoint_blocks(
            input.number,
            &input.payload,
            parent.archive_root,
            &self.identity,
            chained.iter().map(|(b, _)| (&b.header, b.archive_root)),
        )
        .map_err(fail)?;
        if input.payload.header.body_hash != keccak256(encode_checkpoint_body(&input.blocks)) {
            return Err(fail("body does not hash to the header's body hash"));
        }

        let latest = self.chain.last.number();
        let l1_hashes: Vec<B256> = chained.iter().map(|(b, _)| b.header.hash()).collect();
        let plan = plan_l1_checkpoint(input.number, start, &l1_hashes, latest, |n| {
            let stored = self
                .db()
                .require::<HeaderViews>(&n, "a block below the tip is missing")?;
            Ok((stored.hash, stored.header.checkpoint_number))
        })?;
        let mut batch = self.db().batch();
        let mut next = self.chain.clone();
        let pruned = match plan.first_conflict {
            Some(first) => {
                // Only uncheckpointed blocks disagree: their senders are known.
                self.remove_blocks_from(
                    &mut batch,
                    &mut next,
                    first,
                    PruneKind::L1Divergence,
                    &RecoveredBlocks::default(),
                )?
            }
            None => {
                // A diverged proposed checkpoint of this number goes with everything above it;
                // no block changes, so no prune event.
                Self::evict_proposed_from(&mut batch, &mut next, input.number);
                None
            }
        };
        let rewrite_from = plan.first_conflict.unwrap_or(latest + 1);
        let mut written = 0;
        for (record, block) in &chained {
            let number = record.header.block_number;
            if number >= rewrite_from {
                Self::put_block(
                    &mut batch,
                    record,
                    &record.hash,
                    &crate::codec::encode_txs(block.txs.iter()),
                    None,
                );
                Self::put_tx_index(&mut batch, number, &block.tx_hashes());
                written += 1;
            } else {
                self.put_pending_tx_index(&mut batch, [number]);
            }
        }
        let (last_record, _) = chained
            .last()
            .ok_or(fail("a checkpoint has at least one block"))?;
        if last_record.header.block_number >= rewrite_from {
            next.last = LastBlock::of(last_record.clone());
        }
        let record = CheckpointRecord {
            number: input.number,
            payload: input.payload,
            start_block: start,
            block_count: chained.len() as u64,
            l1: input.l1,
            attestations: input.attestations,
            source,
        };
        Self::put_checkpoint(&mut batch, &record);
        if awaiting {
            batch.delete::<AwaitingCheckpoints>(&input.number);
        }
        next.checkpointed = CheckpointSummary::of(&record, last_record.header.hash());
        next.awaiting.remove(&input.number);
        self.commit(Change::new(batch, next, true).removing(plan.first_conflict, pruned.clone()))?;
        metrics::counter!("archiver_l1_checkpoints_total", "outcome" => "inserted").increment(1);
        metrics::counter!("archiver_blocks_added_total", "source" => "l1").increment(written);
        Ok(L1Outcome::Inserted {
            new_blocks: written,
            pruned,
        })
    }

    pub(crate) fn put_checkpoint(batch: &mut crate::tables::Batch, record: &CheckpointRecord) {
        batch.put::<Checkpoints>(&record.number, record);
        batch.put::<SlotCheckpoints>(&record.payload.header.slot, &record.number);
    }

    /// L1 reorganised: forget L1 checkpoints (and awaiting ones) above `keep`, every block
    /// after its last block and the proposed checkpoints they carried; move the L1 cursor to
    /// `marker` if given. Refuses to go below the finalized checkpoint.
    pub fn rollback_l1(
        &mut self,
        keep: u64,
        marker: Option<L1Ref>,
    ) -> ArchiverResult<Option<crate::PruneEvent>> {
        self.rollback_l1_with(keep, marker, &RecoveredBlocks::default())
    }

    /// [`ArchiverStore::rollback_l1`] with the senders of the checkpointed blocks it removes
    /// recovered beforehand, off the writer (the L1 fetch does: see `senders`); blocks missing
    /// from `recovered` are recovered here.
    pub fn rollback_l1_with(
        &mut self,
        keep: u64,
        marker: Option<L1Ref>,
        recovered: &RecoveredBlocks,
    ) -> ArchiverResult<Option<crate::PruneEvent>> {
        let finalized = self.chain.finalized.checkpoint.number;
        let checkpointed = self.chain.checkpointed.number;
        if keep < finalized && checkpointed > keep {
            return Err(ArchiverError::ReorgBelowFinalized {
                checkpoint: keep + 1,
                finalized,
            });
        }
        let mut batch = self.db().batch();
        let mut next = self.chain.clone();
        let above = keep
            .checked_add(1)
            .map_or_else(Default::default, |first| next.awaiting.split_off(&first));
        for number in above {
            batch.delete::<AwaitingCheckpoints>(&number);
        }
        let mut prune = None;
        if checkpointed > keep {
            let kept = self
                .db()
                .require::<Checkpoints>(&keep, "a checkpoint below the tip is missing")?;
            for removed in keep + 1..=checkpointed {
                let record = self
                    .db()
                    .require::<Checkpoints>(&removed, "a checkpoint below the tip is missing")?;
                batch.delete::<Checkpoints>(&removed);
                batch.delete::<SlotCheckpoints>(&record.payload.header.slot);
            }
            let event = self.remove_blocks_from(
                &mut batch,
                &mut next,
                kept.last_block() + 1,
                PruneKind::L1Reorg,
                recovered,
            )?;
            // Everything proposed sat on the removed checkpoints.
            let mut evicted = Self::evict_proposed_from(&mut batch, &mut next, keep + 1);
            let kept_last = self.header_record(kept.last_block())?;
            next.checkpointed = CheckpointSummary::of(&kept, kept_last.header.hash());
            if let Some(mut event) = event {
                event.evicted_checkpoints.append(&mut evicted);
                prune = Some(event);
            }
        }
        if let Some(marker) = marker {
            batch.put::<MetaL1Synced>(&(), &marker);
            next.l1_synced = Some(marker);
        }
        if next == self.chain {
            return Ok(None);
        }
        let removed_from = prune.as_ref().map(|event| event.first_removed_block);
        self.commit(Change::new(batch, next, true).removing(removed_from, prune.clone()))?;
        metrics::gauge!("archiver_l1_checkpoints_awaiting_body")
            .set(self.chain.awaiting.len() as f64);
        Ok(prune)
    }

    /// L1 reorganised: [`ArchiverStore::rollback_l1`] without moving the cursor. No-op if no
    /// checkpoint is above `number`.
    pub fn remove_checkpoints_after(
        &mut self,
        number: u64,
    ) -> ArchiverResult<Option<crate::PruneEvent>> {
        self.rollback_l1(number, None)
    }

    /// Marks checkpoint `number` (and those before it) as finalized if it is stored as included
    /// in L1 block `l1` (hash included), which the caller checked is on L1's finalized chain;
    /// returns whether it is finalized now. A checkpoint not stored so (not applied, or rolled
    /// back meanwhile) is left for the next sync.
    pub fn finalize_l1_checkpoint(&mut self, number: u64, l1: L1Ref) -> ArchiverResult<bool> {
        if number <= self.chain.finalized.checkpoint.number {
            return Ok(true);
        }
        if number > self.chain.checkpointed.number {
            return Ok(false);
        }
        let record = self
            .db()
            .require::<Checkpoints>(&number, "a checkpoint below the tip is missing")?;
        if record.l1 != l1 {
            return Ok(false);
        }
        self.set_finalized(number)?;
        Ok(true)
    }
}
