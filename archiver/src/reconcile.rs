//! Reconciliation with L1: apply what L1 says, in order, never silently.
//!
//! - An event for the next checkpoint promotes the matching proposed checkpoint, or writes the
//!   blocks of its body (removing local blocks that disagree), or — when the body cannot be used
//!   (calldata unreadable, body undecodable or not matching its header) and no local data
//!   rebuilds the header L1 accepted — is stored as an *awaiting* L1 fact. Later events queue
//!   behind it; the L1 cursor keeps moving. A body supplied later (from peers) is accepted only
//!   if it hashes to what L1 committed to.
//! - An event for a checkpoint already stored (or awaiting) must match it (header hash, archive,
//!   L1 block): a difference is an L1 reorg, rolled back, never skipped. Below the finalized
//!   checkpoint it is a fatal error.

use tandem_proto::{
    B256, Block, CheckpointHeader, ConsensusPayload, MAX_CHECKPOINT_SIZE,
    block_headers_hash, decode_checkpoint_body, encode_checkpoint_body, keccak256,
};

use crate::{
    chain::{CheckpointSummary, LastBlock},
    error::{ArchiverError, ArchiverResult},
    prune::PruneKind,
    records::{
        AwaitingCheckpoint, BodyProblem, CheckpointRecord, HeaderRecord, L1CheckpointEvent, L1Ref,
        PayloadSource,
    },
    rules::{plan_l1_checkpoint, verify_checkpoint_blocks},
    store::{ArchiverStore, Change, L1CheckpointInput, L1Outcome},
    tables::{
        AwaitingCheckpoints, BlockTxs, Checkpoints, HeaderViews, MetaL1Synced,
        ProposedCheckpoints, Reads, SlotCheckpoints,
    },
};

/// What applying one L1 event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum L1EventOutcome {
    /// The store already has exactly this checkpoint (a re-read range).
    Known,
    /// The checkpoint was applied.
    Applied(L1Outcome),
    /// Stored as an L1 fact awaiting its body: the first one of the queue has `problem`, the
    /// ones after it have none (they wait for it).
    Awaiting(Option<BodyProblem>),
}

/// Where the L1 side stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L1SyncStatus {
    /// Every L1 checkpoint read so far is applied.
    Following,
    /// L1 checkpoint `checkpoint` cannot be applied: the node is not ready.
    Blocked {
        /// The first checkpoint that waits.
        checkpoint: u64,
        /// Its slot.
        slot: u64,
        /// Why; `None` if it was not tried yet (it waited behind an earlier one).
        problem: Option<BodyProblem>,
        /// L1 checkpoints waiting, it included.
        waiting: u64,
    },
}

/// The checkpoint header `blocks` make on top of the block whose archive is `parent_archive`:
/// every field of a checkpoint header derives from its blocks.
pub(crate) fn rebuild_checkpoint_header(parent_archive: B256, blocks: &[Block]) -> Option<CheckpointHeader> {
    let first = &blocks.first()?.header;
    let hashes: Vec<B256> = blocks.iter().map(Block::hash).collect();
    let mut mana: u64 = 0;
    let mut fees: u128 = 0;
    for block in blocks {
        mana = mana.checked_add(block.header.total_mana_used)?;
        fees = fees.checked_add(block.header.total_fees)?;
    }
    Some(CheckpointHeader {
        last_archive_root: parent_archive,
        block_headers_hash: block_headers_hash(&hashes),
        body_hash: keccak256(encode_checkpoint_body(blocks)),
        slot: first.slot,
        timestamp: first.timestamp,
        coinbase: first.coinbase,
        fee_recipient: first.fee_recipient,
        fee_per_mana: first.fee_per_mana,
        total_mana_used: mana,
        accumulated_fees: fees,
    })
}

impl ArchiverStore {
    /// Adds checkpoint `input.number` as mined on L1: promotes the matching proposed checkpoint,
    /// or writes its blocks from the body after removing local blocks that disagree.
    pub fn add_l1_checkpoint(&mut self, input: L1CheckpointInput) -> ArchiverResult<L1Outcome> {
        self.insert_l1(input, PayloadSource::L1Calldata)
    }

    fn insert_l1(
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
                .ok_or(ArchiverError::Corrupt("a stored proposed checkpoint is not in memory"))?
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
            self.commit(Change {
                batch,
                next,
                sync: true,
                add_pending: None,
                removed_from: None,
                prune: None,
            })?;
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
            let mut archive = previous.clone();
            let archive_root = archive
                .append(block.hash())
                .map_err(|_| ArchiverError::Corrupt("archive full"))?;
            chained.push((
                HeaderRecord {
                    header: block.header.clone(),
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
                self.remove_blocks_from(&mut batch, &mut next, first, PruneKind::L1Divergence)?
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
                    &crate::records::encode_txs(block.txs.iter()),
                    None,
                );
                Self::put_tx_index(&mut batch, number, &block.tx_hashes());
                written += 1;
            } else {
                self.put_pending_tx_index(&mut batch, [number]);
            }
        }
        let (last_record, _) = chained.last().ok_or(fail("a checkpoint has at least one block"))?;
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
        self.commit(Change {
            batch,
            next,
            sync: true,
            add_pending: None,
            removed_from: plan.first_conflict,
            prune: pruned.clone(),
        })?;
        metrics::counter!("archiver_l1_checkpoints_total", "outcome" => "inserted").increment(1);
        metrics::counter!("archiver_blocks_added_total", "source" => "l1").increment(written);
        Ok(L1Outcome::Inserted {
            new_blocks: written,
            pruned,
        })
    }

    fn put_checkpoint(batch: &mut crate::tables::Batch, record: &CheckpointRecord) {
        batch.put::<Checkpoints>(&record.number, record);
        batch.put::<SlotCheckpoints>(&record.payload.header.slot, &record.number);
    }

    /// Applies one `CheckpointProposed` event (see the module docs).
    pub fn apply_l1_event(&mut self, event: L1CheckpointEvent) -> ArchiverResult<L1EventOutcome> {
        let number = event.number;
        if number <= self.chain.checkpointed.number {
            let stored = self
                .db()
                .require::<Checkpoints>(&number, "a checkpoint below the tip is missing")?;
            if stored.payload.header.hash() == event.header_hash
                && stored.payload.archive == event.archive
                && stored.l1 == event.l1
            {
                return Ok(L1EventOutcome::Known);
            }
            tracing::warn!(
                target: "archiver",
                checkpoint = number,
                stored_l1 = stored.l1.number,
                l1 = event.l1.number,
                "L1 has another checkpoint under a stored number: rolling back"
            );
            metrics::counter!("archiver_l1_reorgs_total").increment(1);
            self.rollback_l1(number - 1, None)?;
        } else if self.chain.awaiting.contains(&number) {
            let stored = self
                .db()
                .require::<AwaitingCheckpoints>(&number, "an awaiting checkpoint is missing")?;
            if stored.event.header_hash == event.header_hash
                && stored.event.archive == event.archive
                && stored.event.l1 == event.l1
            {
                return Ok(L1EventOutcome::Known);
            }
            metrics::counter!("archiver_l1_reorgs_total").increment(1);
            self.rollback_l1(number - 1, None)?;
        }
        let expected = self.chain.checkpointed.number + 1 + self.chain.awaiting.len() as u64;
        if number != expected {
            return Err(ArchiverError::L1CheckpointNotSequential {
                expected,
                got: number,
            });
        }
        if !self.chain.awaiting.is_empty() {
            self.put_awaiting(AwaitingCheckpoint {
                event,
                problem: None,
            })?;
            return Ok(L1EventOutcome::Awaiting(None));
        }
        match self.try_apply(&event)? {
            Ok(outcome) => Ok(L1EventOutcome::Applied(outcome)),
            Err(problem) => {
                tracing::warn!(
                    target: "archiver",
                    checkpoint = number,
                    ?problem,
                    "L1 checkpoint cannot be applied from L1 alone: waiting for its body"
                );
                self.put_awaiting(AwaitingCheckpoint {
                    event,
                    problem: Some(problem),
                })?;
                Ok(L1EventOutcome::Awaiting(Some(problem)))
            }
        }
    }

    fn put_awaiting(&mut self, record: AwaitingCheckpoint) -> ArchiverResult<()> {
        let mut batch = self.db().batch();
        batch.put::<AwaitingCheckpoints>(&record.event.number, &record);
        let mut next = self.chain.clone();
        next.awaiting.insert(record.event.number);
        metrics::gauge!("archiver_l1_checkpoints_awaiting_body").set(next.awaiting.len() as f64);
        self.commit(Change {
            batch,
            next,
            sync: true,
            add_pending: None,
            removed_from: None,
            prune: None,
        })
    }

    /// Tries to apply the next checkpoint from what L1 and the store have: a matching proposed
    /// checkpoint, the calldata's body, or local blocks that rebuild L1's header.
    fn try_apply(
        &mut self,
        event: &L1CheckpointEvent,
    ) -> ArchiverResult<Result<L1Outcome, BodyProblem>> {
        let number = event.number;
        let l1_payload = event.calldata.as_ref().and_then(|calldata| {
            (calldata.header.hash() == event.header_hash).then(|| ConsensusPayload {
                header: calldata.header.clone(),
                archive: event.archive,
                fee_asset_price_modifier: calldata.fee_asset_price_modifier,
            })
        });
        let attestations = event
            .calldata
            .as_ref()
            .map(|calldata| calldata.attestations.clone())
            .unwrap_or_default();
        if let Some(proposed) = self.db().get::<ProposedCheckpoints>(&number)?
            && proposed.payload.header.hash() == event.header_hash
            && proposed.payload.archive == event.archive
        {
            let (payload, source) = match l1_payload {
                Some(payload) => (payload, PayloadSource::L1Calldata),
                None => (proposed.payload, PayloadSource::LocalProposal),
            };
            let input = L1CheckpointInput {
                number,
                payload,
                l1: event.l1,
                attestations,
                blocks: Vec::new(),
            };
            return Ok(Ok(self.insert_l1(input, source)?));
        }
        if let (Some(payload), Some(calldata)) = (l1_payload, &event.calldata) {
            let Ok(blocks) = decode_checkpoint_body(&calldata.body, MAX_CHECKPOINT_SIZE) else {
                return Ok(Err(BodyProblem::Undecodable));
            };
            let input = L1CheckpointInput {
                number,
                payload,
                l1: event.l1,
                attestations,
                blocks,
            };
            return match self.insert_l1(input, PayloadSource::L1Calldata) {
                Ok(outcome) => Ok(Ok(outcome)),
                Err(ArchiverError::L1CheckpointBlocks { reason, .. }) => {
                    tracing::warn!(target: "archiver", checkpoint = number, reason, "L1 body does not match its header");
                    Ok(Err(BodyProblem::DoesNotMatchHeader))
                }
                Err(err) => Err(err),
            };
        }
        // No usable calldata: local blocks of this checkpoint may rebuild L1's header.
        if let Some(input) = self.local_checkpoint(event)? {
            return Ok(Ok(self.insert_l1(input, PayloadSource::LocalBlocks)?));
        }
        Ok(Err(BodyProblem::CalldataMissing))
    }

    /// The stored blocks of checkpoint `event.number` after the checkpointed tip, if they make
    /// exactly the header and archive L1 accepted.
    fn local_checkpoint(
        &self,
        event: &L1CheckpointEvent,
    ) -> ArchiverResult<Option<L1CheckpointInput>> {
        let start = self.chain.checkpointed.last_block.number + 1;
        let parent = self
            .db()
            .require::<HeaderViews>(&(start - 1), "a block below the tip is missing")?;
        let mut blocks = Vec::new();
        let mut archive = None;
        for number in start..=self.chain.last.number() {
            let header = self
                .db()
                .require::<HeaderViews>(&number, "a block below the tip is missing")?;
            if header.header.checkpoint_number != event.number {
                break;
            }
            let txs = self
                .db()
                .require::<BlockTxs>(&number, "a stored block has no tx record")?;
            archive = Some(header.archive_root);
            blocks.push(Block {
                header: header.header,
                txs,
            });
        }
        let Some(header) = rebuild_checkpoint_header(parent.archive_root, &blocks) else {
            return Ok(None);
        };
        if header.hash() != event.header_hash || archive != Some(event.archive) {
            return Ok(None);
        }
        Ok(Some(L1CheckpointInput {
            number: event.number,
            payload: ConsensusPayload {
                header,
                archive: event.archive,
                fee_asset_price_modifier: 0,
            },
            l1: event.l1,
            attestations: Vec::new(),
            blocks,
        }))
    }

    /// Retries the first awaiting L1 checkpoint; `Some` if it (and so the queue) moved.
    pub fn resolve_awaiting(&mut self) -> ArchiverResult<Option<L1Outcome>> {
        let Some(&number) = self.chain.awaiting.first() else {
            return Ok(None);
        };
        let record = self
            .db()
            .require::<AwaitingCheckpoints>(&number, "an awaiting checkpoint is missing")?;
        match self.try_apply(&record.event)? {
            Ok(outcome) => {
                metrics::gauge!("archiver_l1_checkpoints_awaiting_body")
                    .set(self.chain.awaiting.len() as f64);
                Ok(Some(outcome))
            }
            Err(problem) => {
                if record.problem != Some(problem) {
                    self.put_awaiting(AwaitingCheckpoint {
                        event: record.event,
                        problem: Some(problem),
                    })?;
                }
                Ok(None)
            }
        }
    }

    /// The first awaiting checkpoint if it needs its header and body from peers: `(number,
    /// header hash)`.
    pub fn body_wanted(&self) -> ArchiverResult<Option<(u64, B256)>> {
        let Some(&number) = self.chain.awaiting.first() else {
            return Ok(None);
        };
        let record = self
            .db()
            .require::<AwaitingCheckpoints>(&number, "an awaiting checkpoint is missing")?;
        Ok((record.problem == Some(BodyProblem::CalldataMissing))
            .then_some((number, record.event.header_hash)))
    }

    /// Accepts header and body of awaiting checkpoint `number` from outside (peers), only if
    /// `hash(header)` is L1's header hash, `keccak(body)` is the header's body hash, and the
    /// blocks it holds make the header and L1's archive. `fee_asset_price_modifier` is the
    /// supplier's claim (L1's event does not carry it).
    pub fn supply_checkpoint_body(
        &mut self,
        number: u64,
        header: CheckpointHeader,
        body: &[u8],
        fee_asset_price_modifier: i64,
    ) -> ArchiverResult<L1Outcome> {
        let reject = |reason| ArchiverError::SuppliedBodyRejected { number, reason };
        if self.chain.awaiting.first() != Some(&number) {
            return Err(ArchiverError::NotAwaitingBody { number });
        }
        let record = self
            .db()
            .require::<AwaitingCheckpoints>(&number, "an awaiting checkpoint is missing")?;
        if record.problem != Some(BodyProblem::CalldataMissing) {
            return Err(ArchiverError::NotAwaitingBody { number });
        }
        if header.hash() != record.event.header_hash {
            return Err(reject("header does not hash to L1's header hash"));
        }
        if keccak256(body) != header.body_hash {
            return Err(reject("body does not hash to the header's body hash"));
        }
        // From here the body is L1's: problems with it are L1's, not the supplier's.
        let blocks = match decode_checkpoint_body(body, MAX_CHECKPOINT_SIZE) {
            Ok(blocks) => blocks,
            Err(_) => {
                self.put_awaiting(AwaitingCheckpoint {
                    problem: Some(BodyProblem::Undecodable),
                    ..record
                })?;
                return Err(reject("L1's body does not decode"));
            }
        };
        let input = L1CheckpointInput {
            number,
            payload: ConsensusPayload {
                header,
                archive: record.event.archive,
                fee_asset_price_modifier,
            },
            l1: record.event.l1,
            attestations: Vec::new(),
            blocks,
        };
        match self.insert_l1(input, PayloadSource::Peer) {
            Ok(outcome) => {
                metrics::gauge!("archiver_l1_checkpoints_awaiting_body")
                    .set(self.chain.awaiting.len() as f64);
                Ok(outcome)
            }
            Err(ArchiverError::L1CheckpointBlocks { reason, .. }) => {
                self.put_awaiting(AwaitingCheckpoint {
                    problem: Some(BodyProblem::DoesNotMatchHeader),
                    ..record
                })?;
                Err(reject(reason))
            }
            Err(err) => Err(err),
        }
    }

    /// L1 reorganised: forget L1 checkpoints (and awaiting ones) above `keep`, every block
    /// after its last block and the proposed checkpoints they carried; move the L1 cursor to
    /// `marker` if given. Refuses to go below the finalized checkpoint.
    pub fn rollback_l1(
        &mut self,
        keep: u64,
        marker: Option<L1Ref>,
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
        for number in next.awaiting.split_off(&(keep + 1)) {
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
        self.commit(Change {
            batch,
            next,
            sync: true,
            add_pending: None,
            removed_from,
            prune: prune.clone(),
        })?;
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

    /// Marks the checkpoints included at or before L1 block `l1_finalized` as finalized.
    pub fn finalize_up_to_l1_block(&mut self, l1_finalized: u64) -> ArchiverResult<()> {
        let mut number = self.chain.checkpointed.number;
        while number > self.chain.finalized.checkpoint.number {
            let record = self
                .db()
                .require::<Checkpoints>(&number, "a checkpoint below the tip is missing")?;
            if record.l1.number <= l1_finalized {
                return self.set_finalized(number);
            }
            number -= 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tandem_proto::block_body_hash;

    use super::*;

    #[test]
    fn a_rebuilt_header_commits_to_every_field_of_its_blocks() {
        let block = |number, mana| Block {
            header: tandem_proto::BlockHeader {
                block_number: number,
                slot: 7,
                timestamp: 70,
                fee_per_mana: 3,
                total_mana_used: mana,
                total_fees: u128::from(mana) * 3,
                body_hash: block_body_hash(&[]),
                ..Default::default()
            },
            txs: Vec::new(),
        };
        let blocks = [block(1, 10), block(2, 20)];
        let header = rebuild_checkpoint_header(B256::repeat_byte(1), &blocks).unwrap();
        assert_eq!(header.total_mana_used, 30);
        assert_eq!(header.accumulated_fees, 90);
        assert_eq!((header.slot, header.timestamp, header.fee_per_mana), (7, 70, 3));
        assert_eq!(header.body_hash, keccak256(encode_checkpoint_body(&blocks)));
        assert!(rebuild_checkpoint_header(B256::ZERO, &[]).is_none());
    }
}
