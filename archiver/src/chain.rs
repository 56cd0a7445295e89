//! What the writer keeps in memory about the chain, and the tips that derive from it.
//!
//! Every change computes the next [`ChainState`] first, checks the tips it gives, and only then
//! writes its batch (with the new tips in it, so snapshots see tips matching their data); the
//! in-memory state is replaced after the write succeeded. A refused change leaves both untouched.

use std::collections::{BTreeMap, BTreeSet};

use tandem_proto::{
    B256, BlockHeader, BlockId, CheckpointId, L2TipId, L2Tips, archive::ArchiveTree,
};

use crate::{
    codec::HeaderRecord,
    error::{ArchiverError, ArchiverResult},
    records::{CheckpointRecord, L1Ref, ProposedCheckpoint},
    tables::{
        Archives, AwaitingCheckpoints, BlockHashes, Checkpoints, Headers, MetaFinalized,
        MetaL1Synced, MetaPruneSeq, MetaTips, ProposedCheckpoints, Reads,
    },
};

/// The newest L1 checkpoint, as the tips need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CheckpointSummary {
    pub(crate) number: u64,
    pub(crate) header_hash: B256,
    pub(crate) start_block: u64,
    pub(crate) last_block: BlockId,
    pub(crate) l1: L1Ref,
}

impl CheckpointSummary {
    pub(crate) fn of(record: &CheckpointRecord, last_block_hash: B256) -> Self {
        Self {
            number: record.number,
            header_hash: record.payload.header.hash(),
            start_block: record.start_block,
            last_block: BlockId {
                number: record.last_block(),
                hash: last_block_hash,
            },
            l1: record.l1,
        }
    }

    pub(crate) const fn tip(&self) -> L2TipId {
        L2TipId {
            block: self.last_block,
            checkpoint: CheckpointId {
                number: self.number,
                hash: self.header_hash,
            },
        }
    }
}

/// A proposed checkpoint, as the tips and the insertion rules need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProposedSummary {
    pub(crate) header_hash: B256,
    pub(crate) start_block: u64,
    pub(crate) last_block: BlockId,
}

impl ProposedSummary {
    pub(crate) fn of(record: &ProposedCheckpoint, last_block_hash: B256) -> Self {
        Self {
            header_hash: record.payload.header.hash(),
            start_block: record.start_block,
            last_block: BlockId {
                number: record.last_block(),
                hash: last_block_hash,
            },
        }
    }
}

/// The latest stored block, with the archive after it (the next block extends it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LastBlock {
    pub(crate) header: BlockHeader,
    pub(crate) hash: B256,
    pub(crate) archive: ArchiveTree,
}

impl LastBlock {
    pub(crate) fn of(record: HeaderRecord) -> Self {
        Self {
            hash: record.hash,
            header: record.header,
            archive: record.archive,
        }
    }

    pub(crate) const fn number(&self) -> u64 {
        self.header.block_number
    }

    pub(crate) const fn archive_root(&self) -> B256 {
        self.archive.root()
    }
}

/// See the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChainState {
    pub(crate) checkpointed: CheckpointSummary,
    pub(crate) finalized: L2TipId,
    pub(crate) proposed: BTreeMap<u64, ProposedSummary>,
    pub(crate) last: LastBlock,
    pub(crate) l1_synced: Option<L1Ref>,
    /// L1 checkpoints stored as facts, not applied yet (see `reconcile`).
    pub(crate) awaiting: BTreeSet<u64>,
    pub(crate) prune_seq: u64,
}

impl ChainState {
    /// The tips this state gives.
    pub(crate) fn tips(&self) -> L2Tips {
        let checkpointed = self.checkpointed.tip();
        let proposed_checkpoint = match self.proposed.last_key_value() {
            // An entry at or below the checkpointed number cannot exist (promotion and eviction
            // delete it in the same batch); falling back keeps the tips sane if it did.
            Some((number, proposed)) if *number > checkpointed.checkpoint.number => L2TipId {
                block: proposed.last_block,
                checkpoint: CheckpointId {
                    number: *number,
                    hash: proposed.header_hash,
                },
            },
            _ => checkpointed,
        };
        let last_checkpoint = self.last.header.checkpoint_number;
        let proposed = L2TipId {
            block: BlockId {
                number: self.last.number(),
                hash: self.last.hash,
            },
            checkpoint: CheckpointId {
                number: last_checkpoint,
                hash: if last_checkpoint == proposed_checkpoint.checkpoint.number {
                    proposed_checkpoint.checkpoint.hash
                } else {
                    B256::ZERO
                },
            },
        };
        L2Tips {
            proposed,
            proposed_checkpoint,
            checkpointed,
            finalized: self.finalized,
        }
    }

    /// Number of the highest proposed checkpoint, or the checkpointed one.
    pub(crate) fn proposed_checkpoint_number(&self) -> u64 {
        self.proposed
            .last_key_value()
            .map_or(self.checkpointed.number, |(number, _)| *number)
            .max(self.checkpointed.number)
    }

    /// Last block of the highest proposed checkpoint, or of the checkpointed one.
    pub(crate) fn proposed_checkpoint_last_block(&self) -> u64 {
        self.tips().proposed_checkpoint.block.number
    }

    /// Rebuilds the state from what is stored.
    pub(crate) fn load(db: &impl Reads) -> ArchiverResult<Self> {
        let (checkpointed_number, record) = db
            .last::<Checkpoints>()?
            .ok_or(ArchiverError::Corrupt("no checkpoint record"))?;
        if record.number != checkpointed_number {
            return Err(ArchiverError::Corrupt(
                "checkpoint record under another number",
            ));
        }
        let last_hash = |number: u64| -> ArchiverResult<B256> {
            Ok(db
                .require::<Headers>(&number, "a checkpoint's block is missing")?
                .header
                .hash())
        };
        let checkpointed = CheckpointSummary::of(&record, last_hash(record.last_block())?);
        let finalized_number = db
            .get::<MetaFinalized>(&())?
            .unwrap_or(0)
            .min(checkpointed_number);
        let finalized_record =
            db.require::<Checkpoints>(&finalized_number, "finalized checkpoint missing")?;
        let finalized =
            CheckpointSummary::of(&finalized_record, last_hash(finalized_record.last_block())?)
                .tip();
        let mut proposed = BTreeMap::new();
        for entry in db.entries::<ProposedCheckpoints>(rocksdb::IteratorMode::Start) {
            let (number, record) = entry?;
            proposed.insert(
                number,
                ProposedSummary::of(&record, last_hash(record.last_block())?),
            );
        }
        let (_, last) = db
            .last::<Headers>()?
            .ok_or(ArchiverError::Corrupt("no blocks"))?;
        let mut awaiting = BTreeSet::new();
        for entry in db.entries::<AwaitingCheckpoints>(rocksdb::IteratorMode::Start) {
            awaiting.insert(entry?.0);
        }
        Ok(Self {
            checkpointed,
            finalized,
            proposed,
            last: LastBlock::of(last),
            l1_synced: db.get::<MetaL1Synced>(&())?,
            awaiting,
            prune_seq: db.get::<MetaPruneSeq>(&())?.unwrap_or(0),
        })
    }
}

/// Verifies what is stored from checkpoint `from_checkpoint` up: checkpoint numbers contiguous,
/// each checkpoint's blocks contiguous, indexed 0.. and chained, its archive and headers hash
/// matching them; the uncheckpointed blocks chained on the checkpointed tip with sequential
/// checkpoints and indices; the hash and archive indexes pointing at them; every proposed
/// checkpoint covering exactly stored blocks of its own number, in sequence; L1 checkpoints
/// awaiting a body right after the checkpointed tip; the stored tips equal to the derived ones.
pub(crate) fn check_consistency(db: &impl Reads, from_checkpoint: u64) -> ArchiverResult<()> {
    let corrupt = ArchiverError::Corrupt;
    let state = ChainState::load(db)?;
    let tips = state.tips();
    tips.check_invariants()?;
    if let Some(stored) = db.get::<MetaTips>(&())?
        && stored != tips
    {
        return Err(corrupt("stored tips differ from the stored chain"));
    }
    let from = from_checkpoint.min(state.checkpointed.number);
    let first = db.require::<Checkpoints>(&from, "a checkpoint below the tip is missing")?;
    // The block before the first checked one (genesis is checked against itself: it has no
    // parent, and the chain check skips block 0).
    let mut previous = db.require::<Headers>(
        &first.start_block.saturating_sub(1),
        "a block below the tip is missing",
    )?;
    let mut expected_block = first.start_block;
    let check_block = |number: u64, block: &HeaderRecord, previous: &HeaderRecord| {
        if block.header.block_number != number {
            return Err(corrupt("a block is stored under another number"));
        }
        if number > 0 && block.header.last_archive_root != previous.archive_root {
            return Err(corrupt("stored blocks do not chain"));
        }
        let hash = block.header.hash();
        if db.get::<BlockHashes>(&hash)? != Some(number)
            || db.get::<Archives>(&block.archive_root)? != Some(number)
        {
            return Err(corrupt("a block's hash or archive index is missing"));
        }
        Ok(())
    };
    for number in from..=state.checkpointed.number {
        let record = db.require::<Checkpoints>(&number, "checkpoint numbers are not contiguous")?;
        if record.number != number || record.start_block != expected_block {
            return Err(corrupt("checkpoints do not follow each other"));
        }
        let mut hashes = Vec::new();
        for (index, block_number) in (record.start_block..=record.last_block()).enumerate() {
            let block = db.require::<Headers>(&block_number, "a checkpointed block is missing")?;
            check_block(block_number, &block, &previous)?;
            if number > 0
                && (block.header.checkpoint_number != number
                    || block.header.index_within_checkpoint as usize != index)
            {
                return Err(corrupt(
                    "a checkpoint's blocks are not indexed 0.. within it",
                ));
            }
            hashes.push(block.header.hash());
            previous = block;
        }
        if previous.archive_root != record.payload.archive {
            return Err(corrupt("a checkpoint's archive is not its last block's"));
        }
        if number > 0
            && tandem_proto::block_headers_hash(&hashes) != record.payload.header.block_headers_hash
        {
            return Err(corrupt(
                "a checkpoint's headers hash does not match its blocks",
            ));
        }
        expected_block = record.last_block() + 1;
    }
    // Uncheckpointed blocks.
    for number in expected_block..=state.last.number() {
        let block = db.require::<Headers>(&number, "an uncheckpointed block is missing")?;
        check_block(number, &block, &previous)?;
        let (checkpoint, index) = (
            block.header.checkpoint_number,
            block.header.index_within_checkpoint,
        );
        let sequential = if checkpoint == previous.header.checkpoint_number {
            index == previous.header.index_within_checkpoint + 1
        } else {
            checkpoint == previous.header.checkpoint_number + 1 && index == 0
        };
        if !sequential {
            return Err(corrupt("uncheckpointed blocks are not in checkpoint order"));
        }
        previous = block;
    }
    if db.get::<Headers>(&(state.last.number() + 1))?.is_some() {
        return Err(corrupt("a block is stored above the proposed tip"));
    }
    // Proposed checkpoints.
    let mut expected_start = state.checkpointed.last_block.number + 1;
    let proposed = db.entries::<ProposedCheckpoints>(rocksdb::IteratorMode::Start);
    for (expected_number, entry) in (state.checkpointed.number + 1..).zip(proposed) {
        let (number, proposed) = entry?;
        if number != expected_number
            || proposed.number != number
            || proposed.start_block != expected_start
        {
            return Err(corrupt(
                "proposed checkpoints do not follow the checkpointed tip",
            ));
        }
        for (index, block_number) in (proposed.start_block..=proposed.last_block()).enumerate() {
            let block =
                db.require::<Headers>(&block_number, "a proposed checkpoint's block is missing")?;
            if block.header.checkpoint_number != number
                || block.header.index_within_checkpoint as usize != index
            {
                return Err(corrupt(
                    "proposed checkpoint covers another checkpoint's block",
                ));
            }
            if block_number == proposed.last_block()
                && block.archive_root != proposed.payload.archive
            {
                return Err(corrupt(
                    "a proposed checkpoint's archive is not its last block's",
                ));
            }
        }
        expected_start = proposed.last_block() + 1;
    }
    // L1 checkpoints awaiting a body start right after the checkpointed tip.
    for (expected, number) in (state.checkpointed.number + 1..).zip(&state.awaiting) {
        if *number != expected {
            return Err(corrupt("L1 checkpoints awaiting a body are not contiguous"));
        }
    }
    Ok(())
}
