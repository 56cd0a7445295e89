//! Reads off the writer's queue: [`ArchiverReader`] is cloneable and opens [`ReadView`]s, each a
//! RocksDB snapshot with the tips of that snapshot. Reads never wait for the writer, the writer
//! never serves reads, and every read through one view sees one state of the store.

use std::sync::Arc;

use tandem_proto::{
    B256, Block, BlockId, BlockProposal, L2Tips, Tx,
    time::{Slot, SlotClock, Timestamp},
};

use crate::{
    awaiting::L1SyncStatus,
    error::{ArchiverError, ArchiverResult},
    records::{
        AwaitingCheckpoint, CheckpointRecord, L1Ref, ProposedCheckpoint, StoredBlock, StoredHeader,
    },
    store::Shared,
    tables::{
        Archives, AwaitingCheckpoints, BlockHashes, BlockSignatures, BlockTxs, Checkpoints,
        HeaderViews, MetaL1Synced, MetaPruneSeq, MetaTips, ProposedCheckpoints, Reads,
        SlotCheckpoints, Snapshot, TxLocations,
    },
    txindex::miss_is_exact,
};

/// A tx found in a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxInBlock {
    /// The tx.
    pub tx: Tx,
    /// The block holding it.
    pub block: BlockId,
    /// Its position in the block.
    pub index: u32,
}

/// Cloneable read access to the store; see the module docs.
#[derive(Debug, Clone)]
pub struct ArchiverReader {
    shared: Arc<Shared>,
}

impl ArchiverReader {
    pub(crate) const fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// A consistent view of the store as of now.
    pub fn view(&self) -> ArchiverResult<ReadView<'_>> {
        // The generation first, then the snapshot: see `txindex`.
        let generation = self.shared.pending_txs.generation();
        let snapshot = self.shared.db.snapshot();
        Ok(ReadView {
            shared: &self.shared,
            snapshot,
            tips: std::cell::OnceCell::new(),
            generation,
        })
    }

    /// The tips as of now.
    pub fn tips(&self) -> ArchiverResult<L2Tips> {
        self.view()?.tips()
    }

    /// The chain's signing domain (to recover senders).
    pub(crate) fn domain(&self) -> tandem_proto::SigningDomain {
        self.shared.domain
    }
}

/// One consistent state of the store.
pub struct ReadView<'a> {
    shared: &'a Shared,
    snapshot: Snapshot<'a>,
    /// Read on first use (most reads do not need them).
    tips: std::cell::OnceCell<L2Tips>,
    generation: u64,
}

impl std::fmt::Debug for ReadView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadView")
            .field("tips", &self.tips)
            .finish()
    }
}

impl ReadView<'_> {
    /// The tips of this view.
    pub fn tips(&self) -> ArchiverResult<L2Tips> {
        if let Some(tips) = self.tips.get() {
            return Ok(*tips);
        }
        let tips = self.snapshot.require::<MetaTips>(&(), "no tips stored")?;
        Ok(*self.tips.get_or_init(|| tips))
    }

    /// A block header by number.
    pub fn header(&self, number: u64) -> ArchiverResult<Option<StoredHeader>> {
        self.snapshot.get::<HeaderViews>(&number)
    }

    /// The hash of block `number` (the chain follower's common-ancestor search).
    pub fn block_hash(&self, number: u64) -> ArchiverResult<Option<B256>> {
        Ok(self.header(number)?.map(|header| header.hash))
    }

    /// A block header by hash.
    pub fn header_by_hash(&self, hash: &B256) -> ArchiverResult<Option<StoredHeader>> {
        self.by_index(self.snapshot.get::<BlockHashes>(hash)?)
    }

    /// The header of the block after which the archive has root `archive` (a proposal's
    /// parent, from its `last_archive_root`).
    pub fn header_by_archive(&self, archive: &B256) -> ArchiverResult<Option<StoredHeader>> {
        self.by_index(self.snapshot.get::<Archives>(archive)?)
    }

    fn by_index(&self, number: Option<u64>) -> ArchiverResult<Option<StoredHeader>> {
        match number {
            Some(number) => Ok(Some(
                self.snapshot
                    .require::<HeaderViews>(&number, "an index points at a missing block")?,
            )),
            None => Ok(None),
        }
    }

    /// A block by number.
    pub fn block(&self, number: u64) -> ArchiverResult<Option<StoredBlock>> {
        match self.header(number)? {
            Some(header) => Ok(Some(self.complete(header)?)),
            None => Ok(None),
        }
    }

    /// A block by hash.
    pub fn block_by_hash(&self, hash: &B256) -> ArchiverResult<Option<StoredBlock>> {
        self.header_by_hash(hash)?
            .map(|header| self.complete(header))
            .transpose()
    }

    /// The block after which the archive has root `archive`.
    pub fn block_by_archive(&self, archive: &B256) -> ArchiverResult<Option<StoredBlock>> {
        self.header_by_archive(archive)?
            .map(|header| self.complete(header))
            .transpose()
    }

    fn complete(&self, header: StoredHeader) -> ArchiverResult<StoredBlock> {
        let number = header.header.block_number;
        let txs = self
            .snapshot
            .require::<BlockTxs>(&number, "a stored block has no tx record")?;
        Ok(StoredBlock {
            block: Block {
                header: header.header,
                txs,
            },
            archive_root: header.archive_root,
            proposer_signature: self.snapshot.get::<BlockSignatures>(&number)?,
        })
    }

    /// Block `number` as the signed proposal it came in, to serve to peers; `None` if it is not
    /// stored or came from L1 only (no proposer signature).
    pub fn block_proposal(&self, number: u64) -> ArchiverResult<Option<BlockProposal>> {
        let Some(block) = self.block(number)? else {
            return Ok(None);
        };
        let Some(signature) = block.proposer_signature else {
            return Ok(None);
        };
        Ok(Some(BlockProposal {
            tx_hashes: block.block.tx_hashes(),
            header: block.block.header,
            archive_root: block.archive_root,
            signature,
            txs: block.block.txs,
        }))
    }

    /// The blocks of `slot`, in order (empty if it has none).
    pub fn blocks_of_slot(&self, slot: u64) -> ArchiverResult<Vec<StoredBlock>> {
        if let Some(record) = self.checkpoint_by_slot(slot)? {
            return (record.start_block..=record.last_block())
                .map(|n| {
                    self.block(n)?
                        .ok_or(ArchiverError::Corrupt("a checkpointed block is missing"))
                })
                .collect();
        }
        // Not checkpointed: only blocks above the checkpointed tip can be of that slot (slots
        // grow with block numbers).
        let mut blocks = Vec::new();
        for number in
            self.tips()?.checkpointed.block.number + 1..=self.tips()?.proposed.block.number
        {
            let header = self
                .snapshot
                .require::<HeaderViews>(&number, "a block below the tip is missing")?;
            if header.header.slot > slot {
                break;
            }
            if header.header.slot == slot {
                blocks.push(self.complete(header)?);
            }
        }
        Ok(blocks)
    }

    /// A tx by hash, with the block holding it.
    pub fn tx(&self, hash: &B256) -> ArchiverResult<Option<TxInBlock>> {
        if let Some((number, index)) = self.snapshot.get::<TxLocations>(hash)? {
            return self.tx_at(number, index, hash);
        }
        let index = &self.shared.pending_txs;
        if let Some((number, position)) = index.get(hash)
            && number <= self.tips()?.proposed.block.number
            && let Some(found) = self.tx_at(number, position, hash)?
        {
            return Ok(Some(found));
        }
        if miss_is_exact(self.generation, index.generation()) {
            return Ok(None);
        }
        // The index changed since this view was taken: look through the view's own
        // uncheckpointed blocks.
        for number in
            self.tips()?.checkpointed.block.number + 1..=self.tips()?.proposed.block.number
        {
            let txs = self
                .snapshot
                .require::<BlockTxs>(&number, "a stored block has no tx record")?;
            if let Some(position) = txs.iter().position(|tx| tx.hash() == *hash) {
                return self.tx_at(number, position as u32, hash);
            }
        }
        Ok(None)
    }

    /// The tx at `(number, index)` of this view, if it is `hash`.
    fn tx_at(&self, number: u64, index: u32, hash: &B256) -> ArchiverResult<Option<TxInBlock>> {
        let (Some(header), Some(txs)) = (
            self.snapshot.get::<HeaderViews>(&number)?,
            self.snapshot.get::<BlockTxs>(&number)?,
        ) else {
            return Ok(None);
        };
        Ok(txs
            .into_iter()
            .nth(index as usize)
            .filter(|tx| tx.hash() == *hash)
            .map(|tx| TxInBlock {
                tx,
                block: BlockId {
                    number,
                    hash: header.hash,
                },
                index,
            }))
    }

    /// An L1 checkpoint by number.
    pub fn checkpoint(&self, number: u64) -> ArchiverResult<Option<CheckpointRecord>> {
        self.snapshot.get::<Checkpoints>(&number)
    }

    /// The L1 checkpoint of `slot`.
    pub fn checkpoint_by_slot(&self, slot: u64) -> ArchiverResult<Option<CheckpointRecord>> {
        match self.snapshot.get::<SlotCheckpoints>(&slot)? {
            Some(number) => self.checkpoint(number),
            None => Ok(None),
        }
    }

    /// A proposed checkpoint by number.
    pub fn proposed_checkpoint(&self, number: u64) -> ArchiverResult<Option<ProposedCheckpoint>> {
        self.snapshot.get::<ProposedCheckpoints>(&number)
    }

    /// The proposed checkpoint of `slot`.
    pub fn proposed_checkpoint_by_slot(
        &self,
        slot: u64,
    ) -> ArchiverResult<Option<ProposedCheckpoint>> {
        Ok(self
            .proposed_checkpoints()?
            .into_iter()
            .find(|proposed| proposed.payload.header.slot == slot))
    }

    /// All proposed checkpoints, lowest first.
    pub fn proposed_checkpoints(&self) -> ArchiverResult<Vec<ProposedCheckpoint>> {
        self.snapshot
            .entries::<ProposedCheckpoints>(rocksdb::IteratorMode::Start)
            .map(|entry| Ok(entry?.1))
            .collect()
    }

    /// Last L1 block whose events are in the store.
    pub fn l1_synced(&self) -> ArchiverResult<Option<L1Ref>> {
        self.snapshot.get::<MetaL1Synced>(&())
    }

    /// Number of prunes ever committed (the `seq` of the latest [`crate::PruneEvent`]).
    pub fn prune_seq(&self) -> ArchiverResult<u64> {
        Ok(self.snapshot.get::<MetaPruneSeq>(&())?.unwrap_or(0))
    }

    /// L1 checkpoints stored as facts but not applied yet, lowest first.
    pub fn awaiting_checkpoints(&self) -> ArchiverResult<Vec<AwaitingCheckpoint>> {
        self.snapshot
            .entries::<AwaitingCheckpoints>(rocksdb::IteratorMode::Start)
            .map(|entry| Ok(entry?.1))
            .collect()
    }

    /// Whether every L1 checkpoint read is applied, or which one blocks and why (then the node
    /// is not ready).
    pub fn l1_status(&self) -> ArchiverResult<L1SyncStatus> {
        let awaiting = self.awaiting_checkpoints()?;
        Ok(match awaiting.first() {
            None => L1SyncStatus::Following,
            Some(first) => L1SyncStatus::Blocked {
                checkpoint: first.event.number,
                slot: first.event.slot,
                problem: first.problem,
                waiting: awaiting.len() as u64,
            },
        })
    }

    /// The L2 slot up to which this node has seen all L1 data (reference §3.4): the later of the
    /// slot before the one of the L1 block after the last synced one, and the slot of the latest
    /// checkpoint — but before the first L1 checkpoint waiting for its body.
    pub fn synced_l2_slot(&self, slot_clock: &SlotClock) -> ArchiverResult<Option<Slot>> {
        let from_l1 = self.l1_synced()?.and_then(|synced| {
            let next_block = slot_clock.next_l1_block_time(Timestamp::from_secs(synced.timestamp));
            slot_clock.slot_at(next_block).and_then(Slot::prev)
        });
        let checkpointed = self
            .checkpoint(self.tips()?.checkpointed.checkpoint.number)?
            .ok_or(ArchiverError::Corrupt("the checkpointed record is missing"))?;
        let from_checkpoint =
            (checkpointed.number > 0).then_some(Slot(checkpointed.payload.header.slot));
        let synced = from_l1.max(from_checkpoint);
        Ok(match self.awaiting_checkpoints()?.first() {
            Some(first) => synced.min(Slot(first.event.slot).prev()),
            None => synced,
        })
    }
}
