//! The chain store on RocksDB: blocks, L1 checkpoints, proposed checkpoints and tips.
//!
//! One column family per table. Every change is one `WriteBatch`, so a crash leaves either all
//! of it or none; batches that record L1 facts (checkpoints, eviction, reorg rollback, sync
//! progress) are fsynced, proposed blocks are not (they can be fetched again from peers).
//! The tips are recomputed after every write from one RocksDB snapshot and their invariants
//! checked; readers get the cached copy.

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
};

use rocksdb::{ColumnFamilyDescriptor, DB, IteratorMode, Options, WriteBatch, WriteOptions};
use tandem_proto::{
    B256, Block, BlockHeader, BlockId, CheckpointHeader, CheckpointId, ConsensusPayload, L2TipId,
    L2Tips, RecoveredTx, Signature, Tx, archive::ArchiveTree, block_body_hash, block_headers_hash,
};

use crate::{
    error::ArchiverError,
    records::{
        CheckpointRecord, L1Ref, ProposedCheckpoint, StoredBlock, StoredHeader, decode_checkpoint,
        decode_header, decode_proposed, decode_txs, encode_checkpoint, encode_header,
        encode_proposed, encode_txs,
    },
};

const CF_BLOCKS: &str = "blocks";
const CF_BLOCK_TXS: &str = "block_txs";
const CF_BLOCK_HASHES: &str = "block_hashes";
const CF_ARCHIVES: &str = "archives";
const CF_TXS: &str = "txs";
const CF_CHECKPOINTS: &str = "checkpoints";
const CF_SLOTS: &str = "slots";
const CF_PROPOSED: &str = "proposed_checkpoints";
const CF_META: &str = "meta";
const TABLES: [&str; 9] = [
    CF_BLOCKS,
    CF_BLOCK_TXS,
    CF_BLOCK_HASHES,
    CF_ARCHIVES,
    CF_TXS,
    CF_CHECKPOINTS,
    CF_SLOTS,
    CF_PROPOSED,
    CF_META,
];

const KEY_CHECKPOINTED: &[u8] = b"checkpointed";
const KEY_FINALIZED: &[u8] = b"finalized";
const KEY_L1_SYNCED: &[u8] = b"l1_synced";
const KEY_GENESIS: &[u8] = b"genesis";

fn key(number: u64) -> [u8; 8] {
    number.to_be_bytes()
}

fn decode_u64(bytes: &[u8], what: &'static str) -> Result<u64, ArchiverError> {
    Ok(u64::from_be_bytes(
        bytes.try_into().map_err(|_| ArchiverError::Corrupt(what))?,
    ))
}

/// Why blocks were removed, for subscribers that must roll back with the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruneKind {
    /// The slot of the first uncheckpointed block ended without an L1 checkpoint.
    UncheckpointedSlot,
    /// Blocks without a checkpoint proposal past its deadline.
    Orphan,
    /// L1 mined a different checkpoint than the local one.
    L1Divergence,
    /// L1 reorganised away checkpoints.
    L1Reorg,
}

/// Blocks removed from the store. The world state rolls back to `first_removed_block − 1`; the
/// tx pool gets `txs` back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneEvent {
    /// Why.
    pub kind: PruneKind,
    /// First removed block.
    pub first_removed_block: u64,
    /// Number of removed blocks.
    pub removed_blocks: u64,
    /// Proposed checkpoints evicted.
    pub evicted_checkpoints: Vec<u64>,
    /// Txs of the removed blocks.
    pub txs: Vec<Tx>,
}

/// A proposed checkpoint to store: its blocks must already be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposedCheckpointInput {
    /// Number.
    pub number: u64,
    /// Header, archive, fee modifier.
    pub payload: ConsensusPayload,
    /// First block.
    pub start_block: u64,
    /// Number of blocks.
    pub block_count: u64,
}

/// A checkpoint as published on L1, with its blocks decoded from the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L1CheckpointInput {
    /// Number.
    pub number: u64,
    /// Header, archive, fee modifier.
    pub payload: ConsensusPayload,
    /// The including L1 block.
    pub l1: L1Ref,
    /// Attestations.
    pub attestations: Vec<(u32, Signature)>,
    /// Blocks from the body.
    pub blocks: Vec<Block>,
}

/// What adding an L1 checkpoint did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum L1Outcome {
    /// The matching proposed checkpoint was promoted; its blocks were already stored.
    Promoted,
    /// Blocks were written from the body (none or some were known); local blocks that disagreed
    /// with L1 were removed first.
    Inserted {
        /// Blocks written from L1.
        new_blocks: u64,
        /// What had to be removed, if anything.
        pruned: Option<PruneEvent>,
    },
}

/// The chain store. Single writer: the archiver actor owns it.
pub struct ArchiverStore {
    db: DB,
    tips: L2Tips,
    /// Tx index of the uncheckpointed blocks, kept in memory: proposed blocks come fast and are
    /// often pruned; the index is written in the batch that checkpoints them, and rebuilt from
    /// the stored uncheckpointed blocks at open.
    pending_txs: HashMap<B256, (u64, u32)>,
    pending_by_block: BTreeMap<u64, Vec<B256>>,
}

impl std::fmt::Debug for ArchiverStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiverStore")
            .field("tips", &self.tips)
            .finish()
    }
}

impl ArchiverStore {
    /// Opens the store at `path`, creating it with `genesis` (block 0) if new. Runs the
    /// consistency check before returning.
    pub fn open(path: &Path, genesis: &BlockHeader) -> Result<Self, ArchiverError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        // WAL on (the default) and point-in-time recovery: a torn tail of the log after a crash
        // is dropped, and since every change is one batch the store reopens at a batch boundary.
        options.set_wal_recovery_mode(rocksdb::DBRecoveryMode::PointInTime);
        let families = TABLES
            .into_iter()
            .map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
        let db = DB::open_cf_descriptors(&options, path, families)?;
        let mut store = Self {
            db,
            tips: L2Tips::default(),
            pending_txs: HashMap::new(),
            pending_by_block: BTreeMap::new(),
        };
        match store.db.get_cf(store.cf(CF_META), KEY_GENESIS)? {
            None => store.write_genesis(genesis)?,
            Some(stored) => {
                let stored = B256::try_from(stored.as_slice())
                    .map_err(|_| ArchiverError::Corrupt("genesis"))?;
                if stored != genesis.hash() {
                    return Err(ArchiverError::GenesisMismatch {
                        stored,
                        expected: genesis.hash(),
                    });
                }
            }
        }
        store.refresh_tips()?;
        store.check_consistency()?;
        let tips = store.tips;
        for number in tips.checkpointed.block.number + 1..=tips.proposed.block.number {
            let block = store.required_block(number)?;
            store.remember_txs(number, block.block.tx_hashes());
        }
        Ok(store)
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column family created at open")
    }

    fn write(&mut self, batch: WriteBatch, sync: bool) -> Result<(), ArchiverError> {
        self.write_batch(batch, sync)?;
        self.refresh_tips()?;
        // Keep the in-memory index to the uncheckpointed blocks: blocks now checkpointed had
        // their index written in this batch, blocks above the proposed tip were removed.
        let tips = self.tips;
        let mut kept = self
            .pending_by_block
            .split_off(&(tips.checkpointed.block.number + 1));
        let above = kept.split_off(&(tips.proposed.block.number + 1));
        let checkpointed = std::mem::replace(&mut self.pending_by_block, kept);
        for hash in checkpointed.values().chain(above.values()).flatten() {
            self.pending_txs.remove(hash);
        }
        Ok(())
    }

    fn remember_txs(&mut self, number: u64, tx_hashes: Vec<B256>) {
        for (index, hash) in tx_hashes.iter().enumerate() {
            self.pending_txs.insert(*hash, (number, index as u32));
        }
        self.pending_by_block.insert(number, tx_hashes);
    }

    fn put_tx_index(&self, batch: &mut WriteBatch, number: u64, tx_hashes: &[B256]) {
        for (index, hash) in tx_hashes.iter().enumerate() {
            let mut location = key(number).to_vec();
            location.extend_from_slice(&(index as u32).to_be_bytes());
            batch.put_cf(self.cf(CF_TXS), hash.as_slice(), location);
        }
    }

    /// Writes the tx index of stored uncheckpointed blocks `numbers` (they are being
    /// checkpointed in this batch).
    fn put_pending_tx_index(&self, batch: &mut WriteBatch, numbers: impl IntoIterator<Item = u64>) {
        for number in numbers {
            if let Some(hashes) = self.pending_by_block.get(&number) {
                self.put_tx_index(batch, number, hashes);
            }
        }
    }

    fn write_batch(&self, batch: WriteBatch, sync: bool) -> Result<(), ArchiverError> {
        let started = std::time::Instant::now();
        let mut options = WriteOptions::default();
        options.set_sync(sync);
        self.db.write_opt(batch, &options)?;
        metrics::histogram!("archiver_write_seconds").record(started.elapsed().as_secs_f64());
        Ok(())
    }

    fn write_genesis(&mut self, genesis: &BlockHeader) -> Result<(), ArchiverError> {
        let mut archive = ArchiveTree::new();
        let archive_root = archive
            .append(genesis.hash())
            .map_err(|_| ArchiverError::Corrupt("archive"))?;
        let block = StoredBlock {
            block: Block {
                header: genesis.clone(),
                txs: Vec::new(),
            },
            archive_root,
            archive,
        };
        let checkpoint = CheckpointRecord {
            number: 0,
            payload: ConsensusPayload {
                header: CheckpointHeader::default(),
                archive: archive_root,
                fee_asset_price_modifier: 0,
            },
            start_block: 0,
            block_count: 1,
            l1: L1Ref::default(),
            attestations: Vec::new(),
        };
        let mut batch = WriteBatch::default();
        self.put_block(&mut batch, &block);
        batch.put_cf(
            self.cf(CF_CHECKPOINTS),
            key(0),
            encode_checkpoint(&checkpoint),
        );
        batch.put_cf(self.cf(CF_META), KEY_CHECKPOINTED, key(0));
        batch.put_cf(self.cf(CF_META), KEY_FINALIZED, key(0));
        batch.put_cf(self.cf(CF_META), KEY_GENESIS, genesis.hash().as_slice());
        self.write(batch, true)
    }

    /// Writes a block with its hash and archive indexes (the tx index is written separately:
    /// see `pending_txs`).
    fn put_block(&self, batch: &mut WriteBatch, block: &StoredBlock) {
        let number = block.block.header.block_number;
        let header = StoredHeader {
            header: block.block.header.clone(),
            archive_root: block.archive_root,
            archive: block.archive.clone(),
        };
        batch.put_cf(self.cf(CF_BLOCKS), key(number), encode_header(&header));
        batch.put_cf(
            self.cf(CF_BLOCK_TXS),
            key(number),
            encode_txs(&block.block.txs),
        );
        batch.put_cf(
            self.cf(CF_BLOCK_HASHES),
            block.block.hash().as_slice(),
            key(number),
        );
        batch.put_cf(
            self.cf(CF_ARCHIVES),
            block.archive_root.as_slice(),
            key(number),
        );
    }

    fn delete_block(&self, batch: &mut WriteBatch, block: &StoredBlock) {
        let number = block.block.header.block_number;
        batch.delete_cf(self.cf(CF_BLOCKS), key(number));
        batch.delete_cf(self.cf(CF_BLOCK_TXS), key(number));
        batch.delete_cf(self.cf(CF_BLOCK_HASHES), block.block.hash().as_slice());
        batch.delete_cf(self.cf(CF_ARCHIVES), block.archive_root.as_slice());
        for tx in &block.block.txs {
            batch.delete_cf(self.cf(CF_TXS), tx.hash().as_slice());
        }
    }

    // ---- reads ---------------------------------------------------------------------------

    /// The tips, as of the last write.
    pub const fn tips(&self) -> L2Tips {
        self.tips
    }

    /// A block by number.
    pub fn block(&self, number: u64) -> Result<Option<StoredBlock>, ArchiverError> {
        let Some(stored) = self.header(number)? else {
            return Ok(None);
        };
        let txs = self
            .db
            .get_cf(self.cf(CF_BLOCK_TXS), key(number))?
            .ok_or(ArchiverError::Corrupt("a stored block has no tx record"))?;
        Ok(Some(StoredBlock {
            block: Block {
                header: stored.header,
                txs: decode_txs(&txs)?,
            },
            archive_root: stored.archive_root,
            archive: stored.archive,
        }))
    }

    fn required_block(&self, number: u64) -> Result<StoredBlock, ArchiverError> {
        self.block(number)?
            .ok_or(ArchiverError::Corrupt("a block below the tip is missing"))
    }

    fn header(&self, number: u64) -> Result<Option<StoredHeader>, ArchiverError> {
        self.db
            .get_cf(self.cf(CF_BLOCKS), key(number))?
            .map(|bytes| Ok(decode_header(&bytes)?))
            .transpose()
    }

    fn required_header(&self, number: u64) -> Result<StoredHeader, ArchiverError> {
        self.header(number)?
            .ok_or(ArchiverError::Corrupt("a block below the tip is missing"))
    }

    /// Number of the block with this hash.
    pub fn block_number_by_hash(&self, hash: &B256) -> Result<Option<u64>, ArchiverError> {
        self.db
            .get_cf(self.cf(CF_BLOCK_HASHES), hash.as_slice())?
            .map(|b| decode_u64(&b, "hash index"))
            .transpose()
    }

    /// Number of the block after which the archive has this root.
    pub fn block_number_by_archive(&self, archive: &B256) -> Result<Option<u64>, ArchiverError> {
        self.db
            .get_cf(self.cf(CF_ARCHIVES), archive.as_slice())?
            .map(|b| decode_u64(&b, "archive index"))
            .transpose()
    }

    /// A tx by hash, with its block number.
    pub fn tx(&self, hash: &B256) -> Result<Option<(u64, Tx)>, ArchiverError> {
        let (number, index) = match self.pending_txs.get(hash) {
            Some((number, index)) => (*number, *index as usize),
            None => {
                let Some(location) = self.db.get_cf(self.cf(CF_TXS), hash.as_slice())? else {
                    return Ok(None);
                };
                if location.len() != 12 {
                    return Err(ArchiverError::Corrupt("tx index"));
                }
                let number = decode_u64(&location[..8], "tx index")?;
                let index =
                    u32::from_be_bytes([location[8], location[9], location[10], location[11]]);
                (number, index as usize)
            }
        };
        let block = self.required_block(number)?;
        let tx = block
            .block
            .txs
            .get(index)
            .cloned()
            .ok_or(ArchiverError::Corrupt("tx index"))?;
        Ok(Some((number, tx)))
    }

    /// An L1 checkpoint by number.
    pub fn checkpoint(&self, number: u64) -> Result<Option<CheckpointRecord>, ArchiverError> {
        self.db
            .get_cf(self.cf(CF_CHECKPOINTS), key(number))?
            .map(|b| Ok(decode_checkpoint(&b)?))
            .transpose()
    }

    /// The L1 checkpoint of `slot`.
    pub fn checkpoint_by_slot(&self, slot: u64) -> Result<Option<CheckpointRecord>, ArchiverError> {
        match self.db.get_cf(self.cf(CF_SLOTS), key(slot))? {
            Some(number) => self.checkpoint(decode_u64(&number, "slot index")?),
            None => Ok(None),
        }
    }

    /// A proposed checkpoint by number.
    pub fn proposed_checkpoint(
        &self,
        number: u64,
    ) -> Result<Option<ProposedCheckpoint>, ArchiverError> {
        self.db
            .get_cf(self.cf(CF_PROPOSED), key(number))?
            .map(|b| Ok(decode_proposed(&b)?))
            .transpose()
    }

    /// All proposed checkpoints, lowest first.
    pub fn proposed_checkpoints(&self) -> Result<Vec<ProposedCheckpoint>, ArchiverError> {
        self.db
            .iterator_cf(self.cf(CF_PROPOSED), IteratorMode::Start)
            .map(|item| Ok(decode_proposed(&item?.1)?))
            .collect()
    }

    /// Last L1 block whose events are in the store.
    pub fn l1_synced(&self) -> Result<Option<L1Ref>, ArchiverError> {
        let Some(bytes) = self.db.get_cf(self.cf(CF_META), KEY_L1_SYNCED)? else {
            return Ok(None);
        };
        if bytes.len() != 48 {
            return Err(ArchiverError::Corrupt("l1 synced marker"));
        }
        Ok(Some(L1Ref {
            number: decode_u64(&bytes[..8], "l1 synced")?,
            hash: B256::from_slice(&bytes[8..40]),
            timestamp: decode_u64(&bytes[40..], "l1 synced")?,
        }))
    }

    fn meta_u64(&self, name: &[u8]) -> Result<u64, ArchiverError> {
        let bytes = self
            .db
            .get_cf(self.cf(CF_META), name)?
            .ok_or(ArchiverError::Corrupt("missing meta entry"))?;
        decode_u64(&bytes, "meta entry")
    }

    fn checkpointed_number(&self) -> Result<u64, ArchiverError> {
        self.meta_u64(KEY_CHECKPOINTED)
    }

    fn last_block_number(&self) -> Result<u64, ArchiverError> {
        let mut iter = self.db.iterator_cf(self.cf(CF_BLOCKS), IteratorMode::End);
        match iter.next() {
            Some(item) => decode_u64(&item?.0, "block key"),
            None => Err(ArchiverError::Corrupt("no blocks")),
        }
    }

    // ---- tips ----------------------------------------------------------------------------

    fn tip_of_checkpoint(
        &self,
        number: u64,
        header_hash: B256,
        last_block: u64,
    ) -> Result<L2TipId, ArchiverError> {
        let block = self.required_header(last_block)?;
        Ok(L2TipId {
            block: BlockId {
                number: last_block,
                hash: block.header.hash(),
            },
            checkpoint: CheckpointId {
                number,
                hash: header_hash,
            },
        })
    }

    /// Recomputes the tips from the stored state and checks their invariants.
    fn refresh_tips(&mut self) -> Result<(), ArchiverError> {
        let checkpointed_number = self.checkpointed_number()?;
        let checkpointed_record = self
            .checkpoint(checkpointed_number)?
            .ok_or(ArchiverError::Corrupt("checkpointed record missing"))?;
        let checkpointed = self.tip_of_checkpoint(
            checkpointed_number,
            checkpointed_record.payload.header.hash(),
            checkpointed_record.last_block(),
        )?;
        let finalized_number = self.meta_u64(KEY_FINALIZED)?.min(checkpointed_number);
        let finalized_record = self
            .checkpoint(finalized_number)?
            .ok_or(ArchiverError::Corrupt("finalized record missing"))?;
        let finalized = self.tip_of_checkpoint(
            finalized_number,
            finalized_record.payload.header.hash(),
            finalized_record.last_block(),
        )?;
        let proposed_checkpoint = match self.proposed_checkpoints()?.into_iter().next_back() {
            // A stale entry at or below the checkpointed number cannot exist (promotion and
            // eviction delete it in the same batch); if it did, falling back is self-healing.
            Some(p) if p.number > checkpointed_number => {
                self.tip_of_checkpoint(p.number, p.payload.header.hash(), p.last_block())?
            }
            _ => checkpointed,
        };
        let last = self.last_block_number()?;
        let last_block = self.required_header(last)?;
        let proposed = L2TipId {
            block: BlockId {
                number: last,
                hash: last_block.header.hash(),
            },
            checkpoint: CheckpointId {
                number: last_block.header.checkpoint_number,
                hash: if last_block.header.checkpoint_number
                    == proposed_checkpoint.checkpoint.number
                {
                    proposed_checkpoint.checkpoint.hash
                } else {
                    B256::ZERO
                },
            },
        };
        let tips = L2Tips {
            proposed,
            proposed_checkpoint,
            checkpointed,
            finalized,
        };
        tips.check_invariants()?;
        self.tips = tips;
        metrics::gauge!("archiver_tip_block", "tip" => "proposed")
            .set(tips.proposed.block.number as f64);
        metrics::gauge!("archiver_tip_block", "tip" => "proposed_checkpoint")
            .set(tips.proposed_checkpoint.block.number as f64);
        metrics::gauge!("archiver_tip_block", "tip" => "checkpointed")
            .set(tips.checkpointed.block.number as f64);
        metrics::gauge!("archiver_tip_block", "tip" => "finalized")
            .set(tips.finalized.block.number as f64);
        metrics::gauge!("archiver_tip_checkpoint", "tip" => "checkpointed")
            .set(tips.checkpointed.checkpoint.number as f64);
        Ok(())
    }

    /// Startup check: the block chain links up above the checkpointed tip, every proposed
    /// checkpoint covers stored blocks of its own number, and the tips hold their invariants.
    pub fn check_consistency(&self) -> Result<(), ArchiverError> {
        let tips = self.tips;
        let mut previous = self.required_header(tips.checkpointed.block.number)?;
        for number in tips.checkpointed.block.number + 1..=tips.proposed.block.number {
            let block = self.required_header(number)?;
            if block.header.last_archive_root != previous.archive_root {
                return Err(ArchiverError::Corrupt("stored blocks do not chain"));
            }
            previous = block;
        }
        for proposed in self.proposed_checkpoints()? {
            for number in proposed.start_block..=proposed.last_block() {
                let block = self.required_header(number)?;
                if block.header.checkpoint_number != proposed.number {
                    return Err(ArchiverError::Corrupt(
                        "proposed checkpoint covers another checkpoint's block",
                    ));
                }
            }
        }
        tips.check_invariants()?;
        Ok(())
    }

    // ---- proposed blocks and checkpoints -------------------------------------------------

    /// Stores a block received (and validated) over gossip or built locally.
    pub fn add_proposed_block(&mut self, block: Block) -> Result<StoredBlock, ArchiverError> {
        let tx_hashes = block.tx_hashes();
        self.insert_proposed_block(block, tx_hashes)
    }

    /// Like [`ArchiverStore::add_proposed_block`], for a block executed here: the txs' hashes,
    /// cached in the [`RecoveredTx`]s since their admission, are not computed again.
    pub fn add_proposed_block_recovered(
        &mut self,
        header: BlockHeader,
        txs: &[RecoveredTx],
    ) -> Result<StoredBlock, ArchiverError> {
        let tx_hashes = txs.iter().map(RecoveredTx::hash).collect();
        let block = Block {
            header,
            txs: txs.iter().map(|tx| tx.tx().clone()).collect(),
        };
        self.insert_proposed_block(block, tx_hashes)
    }

    fn insert_proposed_block(
        &mut self,
        block: Block,
        tx_hashes: Vec<B256>,
    ) -> Result<StoredBlock, ArchiverError> {
        let number = block.header.block_number;
        let tips = self.tips;
        if number <= tips.checkpointed.block.number {
            let stored = self.required_header(number)?;
            return Err(if stored.header.hash() == block.hash() {
                ArchiverError::AlreadyCheckpointed { number }
            } else {
                ArchiverError::CannotOverwriteCheckpointedBlock { number }
            });
        }
        let latest = tips.proposed.block.number;
        if number != latest + 1 {
            return Err(ArchiverError::BlockNumberNotSequential {
                expected: latest + 1,
                got: number,
            });
        }
        let checkpoint = block.header.checkpoint_number;
        let parent_ok = checkpoint == tips.checkpointed.checkpoint.number + 1
            || (checkpoint > 0 && self.proposed_checkpoint(checkpoint - 1)?.is_some());
        if !parent_ok {
            return Err(ArchiverError::BlockCheckpointNumberNotSequential {
                block: number,
                checkpoint,
                previous: tips.proposed_checkpoint.checkpoint.number,
            });
        }
        if self.proposed_checkpoint(checkpoint)?.is_some() {
            // A proposed checkpoint's blocks are fixed: nothing can be appended to it.
            return Err(ArchiverError::CheckpointAlreadyProposed {
                block: number,
                checkpoint,
            });
        }
        let previous = self.required_header(latest)?;
        if block.header.last_archive_root != previous.archive_root {
            return Err(ArchiverError::BlockArchiveNotConsistent { block: number });
        }
        let expected_index = if previous.header.checkpoint_number == checkpoint {
            previous.header.index_within_checkpoint + 1
        } else {
            0
        };
        if block.header.index_within_checkpoint != expected_index {
            return Err(ArchiverError::BlockIndexNotSequential {
                block: number,
                expected: expected_index,
                got: block.header.index_within_checkpoint,
            });
        }
        if block_body_hash(&tx_hashes) != block.header.body_hash {
            return Err(ArchiverError::BodyMismatch { block: number });
        }
        let stored = extend(&previous.archive, block)?;
        let mut batch = WriteBatch::default();
        self.put_block(&mut batch, &stored);
        // Only the proposed tip moves, to a block of a checkpoint not proposed yet (a proposed
        // checkpoint's blocks are all stored before it): no need to re-read the tips.
        let mut tips = self.tips;
        tips.proposed = L2TipId {
            block: BlockId {
                number,
                hash: stored.block.hash(),
            },
            checkpoint: CheckpointId {
                number: checkpoint,
                hash: B256::ZERO,
            },
        };
        tips.check_invariants()?;
        // Not synced: proposed blocks can be fetched again; the WAL survives process crashes.
        self.write_batch(batch, false)?;
        self.tips = tips;
        self.remember_txs(number, tx_hashes);
        metrics::gauge!("archiver_tip_block", "tip" => "proposed").set(number as f64);
        metrics::counter!("archiver_blocks_added_total", "source" => "proposal").increment(1);
        Ok(stored)
    }

    /// Stores a validated checkpoint proposal whose blocks are stored.
    pub fn add_proposed_checkpoint(
        &mut self,
        input: ProposedCheckpointInput,
    ) -> Result<ProposedCheckpoint, ArchiverError> {
        let tips = self.tips;
        let expected = tips
            .proposed_checkpoint
            .checkpoint
            .number
            .max(tips.checkpointed.checkpoint.number)
            + 1;
        if input.number != expected {
            return Err(ArchiverError::ProposedCheckpointNotSequential {
                expected,
                got: input.number,
            });
        }
        let parent_last_block = tips.proposed_checkpoint.block.number;
        if input.block_count == 0 || input.start_block != parent_last_block + 1 {
            return Err(ArchiverError::ProposedCheckpointBlocks {
                number: input.number,
                reason: "blocks must start right after the parent checkpoint's last block",
            });
        }
        let parent = self.required_header(parent_last_block)?;
        let mut blocks = Vec::new();
        for number in input.start_block..input.start_block + input.block_count {
            let block = self
                .header(number)?
                .ok_or(ArchiverError::ProposedCheckpointBlocks {
                    number: input.number,
                    reason: "a block of the checkpoint is not stored",
                })?;
            blocks.push(block);
        }
        let total_mana_used = verify_checkpoint_blocks(
            input.number,
            &input.payload,
            parent.archive_root,
            blocks.iter().map(|b| (&b.header, b.archive_root)),
        )?;
        let record = ProposedCheckpoint {
            number: input.number,
            payload: input.payload,
            start_block: input.start_block,
            block_count: input.block_count,
            total_mana_used,
        };
        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.cf(CF_PROPOSED),
            key(record.number),
            encode_proposed(&record),
        );
        self.write(batch, false)?;
        metrics::counter!("archiver_proposed_checkpoints_added_total").increment(1);
        Ok(record)
    }

    // ---- L1 ------------------------------------------------------------------------------

    /// Adds checkpoint `input.number` as mined on L1: promotes the matching proposed checkpoint,
    /// or writes its blocks from the body after removing local blocks that disagree.
    pub fn add_l1_checkpoint(
        &mut self,
        input: L1CheckpointInput,
    ) -> Result<L1Outcome, ArchiverError> {
        let tips = self.tips;
        let expected = tips.checkpointed.checkpoint.number + 1;
        if input.number != expected {
            return Err(ArchiverError::L1CheckpointNotSequential {
                expected,
                got: input.number,
            });
        }
        if let Some(proposed) = self.proposed_checkpoint(input.number)?
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
            };
            let mut batch = WriteBatch::default();
            self.put_pending_tx_index(&mut batch, record.start_block..=record.last_block());
            self.put_checkpoint(&mut batch, &record);
            batch.delete_cf(self.cf(CF_PROPOSED), key(input.number));
            self.write(batch, true)?;
            metrics::counter!("archiver_l1_checkpoints_total", "outcome" => "promoted")
                .increment(1);
            return Ok(L1Outcome::Promoted);
        }

        // Verify L1's blocks against the checkpointed tip before changing anything.
        let start = tips.checkpointed.block.number + 1;
        let parent = self.required_header(tips.checkpointed.block.number)?;
        let mut chained: Vec<StoredBlock> = Vec::with_capacity(input.blocks.len());
        let mut chained_tx_hashes: Vec<Vec<B256>> = Vec::with_capacity(input.blocks.len());
        for (offset, block) in input.blocks.iter().enumerate() {
            if block.header.block_number != start + offset as u64 {
                return Err(ArchiverError::L1CheckpointBlocks {
                    number: input.number,
                    reason: "block numbers are not sequential",
                });
            }
            let tx_hashes = block.tx_hashes();
            if block_body_hash(&tx_hashes) != block.header.body_hash {
                return Err(ArchiverError::L1CheckpointBlocks {
                    number: input.number,
                    reason: "txs do not match a header",
                });
            }
            let previous = chained.last().map_or(&parent.archive, |b| &b.archive);
            let stored = extend(previous, block.clone())?;
            chained.push(stored);
            chained_tx_hashes.push(tx_hashes);
        }
        let headers = chained.iter().map(|b| (&b.block.header, b.archive_root));
        verify_checkpoint_blocks(input.number, &input.payload, parent.archive_root, headers)
            .map_err(|_| ArchiverError::L1CheckpointBlocks {
                number: input.number,
                reason: "blocks do not match the header",
            })?;

        // First local block that disagrees with L1 (or a local extra block of this checkpoint).
        let mut first_conflict = None;
        let mut new_blocks = 0;
        for number in start
            ..=tips
                .proposed
                .block
                .number
                .max(start + chained.len() as u64 - 1)
        {
            let local = self.header(number)?;
            let l1 = chained.get((number - start) as usize);
            match (local, l1) {
                (Some(local), Some(l1)) if local.header.hash() == l1.block.hash() => {}
                (Some(local), None) if local.header.checkpoint_number != input.number => {
                    break;
                }
                (None, Some(_)) => new_blocks += 1,
                (None, None) => break,
                _ => {
                    first_conflict = Some(number);
                    break;
                }
            }
        }
        let mut batch = WriteBatch::default();
        let pruned = match first_conflict {
            Some(first) => Some(self.remove_from(&mut batch, first, PruneKind::L1Divergence)?),
            None => {
                // Evict a diverged proposed checkpoint of this number and everything above it.
                let evicted = self.evict_proposed_from(&mut batch, input.number)?;
                (!evicted.is_empty()).then(|| PruneEvent {
                    kind: PruneKind::L1Divergence,
                    first_removed_block: tips.proposed.block.number + 1,
                    removed_blocks: 0,
                    evicted_checkpoints: evicted,
                    txs: Vec::new(),
                })
            }
        };
        let rewrite_from = first_conflict.unwrap_or(u64::MAX);
        let mut written = 0;
        for (block, tx_hashes) in chained.iter().zip(&chained_tx_hashes) {
            let number = block.block.header.block_number;
            if number >= rewrite_from || self.header(number)?.is_none() {
                self.put_block(&mut batch, block);
                self.put_tx_index(&mut batch, number, tx_hashes);
                written += 1;
            } else {
                self.put_pending_tx_index(&mut batch, [number]);
            }
        }
        let record = CheckpointRecord {
            number: input.number,
            payload: input.payload,
            start_block: start,
            block_count: chained.len() as u64,
            l1: input.l1,
            attestations: input.attestations,
        };
        self.put_checkpoint(&mut batch, &record);
        self.write(batch, true)?;
        debug_assert!(written >= new_blocks);
        metrics::counter!("archiver_l1_checkpoints_total", "outcome" => "inserted").increment(1);
        metrics::counter!("archiver_blocks_added_total", "source" => "l1").increment(written);
        if let Some(event) = &pruned {
            record_prune(event);
        }
        Ok(L1Outcome::Inserted {
            new_blocks: written,
            pruned,
        })
    }

    fn put_checkpoint(&self, batch: &mut WriteBatch, record: &CheckpointRecord) {
        batch.put_cf(
            self.cf(CF_CHECKPOINTS),
            key(record.number),
            encode_checkpoint(record),
        );
        batch.put_cf(
            self.cf(CF_SLOTS),
            key(record.payload.header.slot),
            key(record.number),
        );
        batch.put_cf(self.cf(CF_META), KEY_CHECKPOINTED, key(record.number));
    }

    fn evict_proposed_from(
        &self,
        batch: &mut WriteBatch,
        from: u64,
    ) -> Result<Vec<u64>, ArchiverError> {
        let evicted: Vec<u64> = self
            .proposed_checkpoints()?
            .into_iter()
            .map(|p| p.number)
            .filter(|n| *n >= from)
            .collect();
        for number in &evicted {
            batch.delete_cf(self.cf(CF_PROPOSED), key(*number));
        }
        Ok(evicted)
    }

    /// Removes blocks `first..` and every proposed checkpoint touching them.
    fn remove_from(
        &self,
        batch: &mut WriteBatch,
        first: u64,
        kind: PruneKind,
    ) -> Result<PruneEvent, ArchiverError> {
        let last = self.tips.proposed.block.number;
        let mut txs = Vec::new();
        let mut lowest_checkpoint = u64::MAX;
        for number in first..=last {
            let block = self.required_block(number)?;
            lowest_checkpoint = lowest_checkpoint.min(block.block.header.checkpoint_number);
            self.delete_block(batch, &block);
            txs.extend(block.block.txs);
        }
        let evicted = self.evict_proposed_from(batch, lowest_checkpoint)?;
        Ok(PruneEvent {
            kind,
            first_removed_block: first,
            removed_blocks: (last + 1).saturating_sub(first),
            evicted_checkpoints: evicted,
            txs,
        })
    }

    /// L1 reorganised: forget L1 checkpoints above `number` and every block after its last
    /// block (with the proposed checkpoints they carried). No-op if none is above.
    pub fn remove_checkpoints_after(
        &mut self,
        number: u64,
    ) -> Result<Option<PruneEvent>, ArchiverError> {
        let checkpointed = self.tips.checkpointed.checkpoint.number;
        if checkpointed <= number {
            return Ok(None);
        }
        let keep = self
            .checkpoint(number)?
            .ok_or(ArchiverError::Corrupt("checkpoint below the tip missing"))?;
        let mut batch = WriteBatch::default();
        for removed in number + 1..=checkpointed {
            let record = self
                .checkpoint(removed)?
                .ok_or(ArchiverError::Corrupt("checkpoint below the tip missing"))?;
            batch.delete_cf(self.cf(CF_CHECKPOINTS), key(removed));
            batch.delete_cf(self.cf(CF_SLOTS), key(record.payload.header.slot));
        }
        let event = self.remove_from(&mut batch, keep.last_block() + 1, PruneKind::L1Reorg)?;
        // Everything proposed sat on the removed checkpoints.
        let evicted = self.evict_proposed_from(&mut batch, number + 1)?;
        batch.put_cf(self.cf(CF_META), KEY_CHECKPOINTED, key(number));
        if self.meta_u64(KEY_FINALIZED)? > number {
            batch.put_cf(self.cf(CF_META), KEY_FINALIZED, key(number));
        }
        self.write(batch, true)?;
        let event = PruneEvent {
            evicted_checkpoints: evicted,
            ..event
        };
        record_prune(&event);
        Ok(Some(event))
    }

    /// Uncheckpointed-slot prune: if the first block after the checkpointed tip belongs to a slot
    /// before `slot_at_next_l1_block`, its checkpoint can no longer land: remove every block after
    /// the checkpointed tip and every proposed checkpoint.
    pub fn prune_uncheckpointed(
        &mut self,
        slot_at_next_l1_block: u64,
    ) -> Result<Option<PruneEvent>, ArchiverError> {
        let first = self.tips.checkpointed.block.number + 1;
        let Some(block) = self.header(first)? else {
            return Ok(None);
        };
        if block.header.slot >= slot_at_next_l1_block {
            return Ok(None);
        }
        let mut batch = WriteBatch::default();
        let event = self.remove_from(&mut batch, first, PruneKind::UncheckpointedSlot)?;
        let evicted = self.evict_proposed_from(&mut batch, 0)?;
        self.write(batch, true)?;
        let event = PruneEvent {
            evicted_checkpoints: evicted,
            ..event
        };
        record_prune(&event);
        Ok(Some(event))
    }

    /// Orphan prune: blocks above the proposed-checkpoint tip whose slot's `deadline(slot)` has
    /// passed at `now_ms` (their checkpoint proposal never came) are removed with what follows.
    pub fn prune_orphans(
        &mut self,
        now_ms: u64,
        deadline_ms: impl Fn(u64) -> u64,
    ) -> Result<Option<PruneEvent>, ArchiverError> {
        let tips = self.tips;
        for number in tips.proposed_checkpoint.block.number + 1..=tips.proposed.block.number {
            let block = self.required_header(number)?;
            if now_ms > deadline_ms(block.header.slot) {
                let mut batch = WriteBatch::default();
                let event = self.remove_from(&mut batch, number, PruneKind::Orphan)?;
                self.write(batch, false)?;
                record_prune(&event);
                return Ok(Some(event));
            }
        }
        Ok(None)
    }

    /// Records that L1 events up to `block` are in the store.
    pub fn set_l1_synced(&mut self, block: L1Ref) -> Result<(), ArchiverError> {
        let mut value = key(block.number).to_vec();
        value.extend_from_slice(block.hash.as_slice());
        value.extend_from_slice(&key(block.timestamp));
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_META), KEY_L1_SYNCED, value);
        self.write(batch, true)
    }

    /// Marks L1 checkpoints up to `number` as finalized (clamped to the checkpointed tip).
    pub fn set_finalized(&mut self, number: u64) -> Result<(), ArchiverError> {
        let number = number.min(self.tips.checkpointed.checkpoint.number);
        if number <= self.tips.finalized.checkpoint.number {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_META), KEY_FINALIZED, key(number));
        self.write(batch, true)
    }
}

fn record_prune(event: &PruneEvent) {
    let kind = match event.kind {
        PruneKind::UncheckpointedSlot => "uncheckpointed_slot",
        PruneKind::Orphan => "orphan",
        PruneKind::L1Divergence => "l1_divergence",
        PruneKind::L1Reorg => "l1_reorg",
    };
    metrics::counter!("archiver_prunes_total", "kind" => kind).increment(1);
    metrics::counter!("archiver_pruned_blocks_total", "kind" => kind)
        .increment(event.removed_blocks);
    tracing::warn!(
        target: "archiver",
        kind,
        first = event.first_removed_block,
        blocks = event.removed_blocks,
        evicted = ?event.evicted_checkpoints,
        "pruned blocks"
    );
}

/// Appends `block` after `previous` (which it must chain on), computing the archive after it.
/// Appends `block` after the block whose archive is `previous` (it must chain on it),
/// computing the archive after it.
fn extend(previous: &ArchiveTree, block: Block) -> Result<StoredBlock, ArchiverError> {
    if block.header.last_archive_root != previous.root() {
        return Err(ArchiverError::BlockArchiveNotConsistent {
            block: block.header.block_number,
        });
    }
    let mut archive = previous.clone();
    let archive_root = archive
        .append(block.hash())
        .map_err(|_| ArchiverError::Corrupt("archive full"))?;
    Ok(StoredBlock {
        block,
        archive_root,
        archive,
    })
}

/// Checks that `blocks` (header and archive after each) form checkpoint `number` with
/// `payload` on top of the block whose archive is `parent_archive`; returns the mana they used.
fn verify_checkpoint_blocks<'a>(
    number: u64,
    payload: &ConsensusPayload,
    parent_archive: B256,
    blocks: impl IntoIterator<Item = (&'a BlockHeader, B256)>,
) -> Result<u64, ArchiverError> {
    let fail = |reason| Err(ArchiverError::ProposedCheckpointBlocks { number, reason });
    let header = &payload.header;
    if header.last_archive_root != parent_archive {
        return fail("header's last archive is not the parent checkpoint's archive");
    }
    let mut mana: u64 = 0;
    let mut fees: u128 = 0;
    let mut hashes: Vec<B256> = Vec::new();
    let mut last_archive = None;
    for (index, (h, archive_root)) in blocks.into_iter().enumerate() {
        if h.checkpoint_number != number || h.index_within_checkpoint as usize != index {
            return fail("blocks are not indexed 0.. within the checkpoint");
        }
        if h.slot != header.slot
            || h.timestamp != header.timestamp
            || h.fee_per_mana != header.fee_per_mana
        {
            return fail("a block's slot, timestamp or fee differs from the header");
        }
        mana = mana.saturating_add(h.total_mana_used);
        fees = fees.saturating_add(h.total_fees);
        hashes.push(h.hash());
        last_archive = Some(archive_root);
    }
    let Some(last_archive) = last_archive else {
        return fail("a checkpoint has at least one block");
    };
    if last_archive != payload.archive {
        return fail("archive after the last block is not the checkpoint's archive");
    }
    if block_headers_hash(&hashes) != header.block_headers_hash {
        return fail("block headers hash mismatch");
    }
    if mana != header.total_mana_used || fees != header.accumulated_fees {
        return fail("mana or fees do not add up");
    }
    Ok(mana)
}
