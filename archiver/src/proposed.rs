//! Proposed blocks and checkpoints: checked by the insertion rules, written by the store.

use tandem_proto::{B256, RecoveredTx, archive::ArchiveTree, block_body_hash};

use crate::{
    chain::ProposedSummary,
    codec::{HeaderRecord, encode_txs},
    error::{ArchiverError, ArchiverResult},
    records::{ProposedCheckpoint, StoredHeader},
    rules::{
        BlockDecision, CheckpointClaim, CheckpointDecision, check_proposed_block,
        check_proposed_checkpoint, verify_checkpoint_blocks,
    },
    store::{Added, ArchiverStore, Change, PendingTxs, ProposedBlock, ProposedCheckpointInput},
    tables::{BlockTxs, HeaderViews, ProposedCheckpoints, Reads},
};

impl ArchiverStore {
    /// Stores a block received in a validated proposal or built here. The identical block
    /// again is [`Added::AlreadyStored`].
    pub fn add_proposed_block(
        &mut self,
        block: ProposedBlock,
    ) -> ArchiverResult<Added<StoredHeader>> {
        let hash = block.header.hash();
        let tx_hashes: Vec<B256> = block.txs.iter().map(RecoveredTx::hash).collect();
        let body_matches = block_body_hash(&tx_hashes) == block.header.body_hash;
        let decision = check_proposed_block(
            &self.chain,
            &self.identity,
            &self.limits,
            &block.header,
            hash,
            body_matches,
            |number| {
                Ok(self
                    .db()
                    .get::<HeaderViews>(&number)?
                    .map(|stored| stored.hash))
            },
        )?;
        let number = block.header.block_number;
        if decision == BlockDecision::AlreadyStored {
            let stored = self
                .db()
                .require::<HeaderViews>(&number, "a block vanished")?;
            return Ok(Added::AlreadyStored(stored));
        }
        let mut archive: ArchiveTree = self.chain.last.archive.clone();
        let archive_root = archive
            .append(hash)
            .map_err(|_| ArchiverError::Corrupt("archive full"))?;
        let record = HeaderRecord {
            header: block.header,
            hash,
            archive_root,
            archive,
        };
        let mut batch = self.db().batch();
        Self::put_block(
            &mut batch,
            &record,
            &hash,
            &encode_txs(block.txs.iter().map(RecoveredTx::tx)),
            Some(&block.proposer_signature),
        );
        let stored = StoredHeader {
            header: record.header.clone(),
            hash,
            archive_root,
        };
        let mut next = self.chain.clone();
        next.last = crate::chain::LastBlock {
            header: record.header,
            hash,
            archive: record.archive,
        };
        // Not synced: proposed blocks can be fetched again; the WAL survives process crashes.
        let mut change = Change::new(batch, next, false);
        change.add_pending = Some((
            number,
            PendingTxs {
                hashes: tx_hashes,
                recovered: block.txs,
            },
        ));
        self.commit(change)?;
        metrics::counter!("archiver_blocks_added_total", "source" => "proposal").increment(1);
        Ok(Added::Stored(stored))
    }

    /// Stores a validated checkpoint proposal whose blocks are stored. Stored blocks after the
    /// proposal's last block (the proposer gossiped more blocks than it proposed) are removed
    /// in the same batch, with a [`PruneEvent`]: the proposal seals the block set.
    pub fn add_proposed_checkpoint(
        &mut self,
        input: ProposedCheckpointInput,
    ) -> ArchiverResult<Added<ProposedCheckpoint>> {
        let claim = CheckpointClaim {
            number: input.number,
            payload: &input.payload,
            start_block: input.start_block,
            block_count: input.block_count,
        };
        let decision = check_proposed_checkpoint(&self.chain, &self.limits, claim, self.db())?;
        let end = match decision {
            CheckpointDecision::AlreadyStored(stored) => return Ok(Added::AlreadyStored(*stored)),
            CheckpointDecision::Add { end } => end,
        };
        let header = |number: u64| {
            self.db()
                .require::<HeaderViews>(&number, "a block below the tip is missing")
        };
        let parent = header(input.start_block - 1)?;
        let mut blocks = Vec::new();
        for number in input.start_block..end {
            blocks.push(header(number)?);
        }
        let total_mana_used = verify_checkpoint_blocks(
            input.number,
            &input.payload,
            parent.archive_root,
            &self.identity,
            blocks.iter().map(|b| (&b.header, b.archive_root)),
        )
        .map_err(|reason| ArchiverError::ProposedCheckpointBlocks {
            number: input.number,
            reason,
        })?;
        // L1 refuses a body that does not hash to the header's body hash: such a proposal can
        // never land, so nothing may build on it.
        if self.body_hash(&blocks)? != input.payload.header.body_hash {
            return Err(ArchiverError::ProposedCheckpointBlocks {
                number: input.number,
                reason: "body hash does not match its blocks' txs",
            });
        }
        let record = ProposedCheckpoint {
            number: input.number,
            payload: input.payload,
            start_block: input.start_block,
            block_count: input.block_count,
            total_mana_used,
            proposer_signature: input.proposer_signature,
        };
        let mut batch = self.db().batch();
        let mut next = self.chain.clone();
        let last = blocks.pop().ok_or(ArchiverError::Corrupt("no blocks"))?;
        let prune = self.remove_blocks_from(
            &mut batch,
            &mut next,
            end,
            crate::PruneKind::OutsideProposedCheckpoint,
            &crate::senders::RecoveredBlocks::default(),
        )?;
        next.proposed
            .insert(record.number, ProposedSummary::of(&record, last.hash));
        batch.put::<ProposedCheckpoints>(&record.number, &record);
        let removed_from = prune.as_ref().map(|_| end);
        self.commit(Change::new(batch, next, false).removing(removed_from, prune))?;
        metrics::counter!("archiver_proposed_checkpoints_added_total").increment(1);
        Ok(Added::Stored(record))
    }

    /// The checkpoint body hash of stored blocks (hashed from their stored txs).
    fn body_hash(&self, blocks: &[StoredHeader]) -> ArchiverResult<B256> {
        let mut txs = Vec::with_capacity(blocks.len());
        for block in blocks {
            txs.push(
                self.db()
                    .get_encoded::<BlockTxs>(&block.header.block_number)?
                    .ok_or(ArchiverError::Corrupt("a stored block has no tx record"))?,
            );
        }
        Ok(crate::codec::checkpoint_body_hash(
            blocks
                .iter()
                .zip(&txs)
                .map(|(b, t)| (&b.header, t.as_ref())),
        )?)
    }
}
