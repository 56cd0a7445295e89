//! The chain store on RocksDB: the single writer's side.
//!
//! Every change is one batch, so a crash leaves all of it or none. A change computes the next
//! [`ChainState`] and its tips first and checks them; the batch carries the new tips (readers'
//! snapshots see tips that match their data); memory is updated only after the write
//! succeeded. Batches that record L1 facts are fsynced, proposed data is not (peers have it).
//! Proposed blocks and checkpoints live in `proposed`, L1 reconciliation in `reconcile`, prunes
//! in `prune`, the rules in `rules`.

use std::{collections::BTreeMap, path::Path, sync::Arc};

use tandem_proto::{
    B256, BlockHeader, CheckpointHeader, ConsensusPayload, L2Tips, RecoveredTx, Signature,
    SigningDomain, Tx, archive::ArchiveTree,
};

pub use crate::inputs::{
    Added, L1CheckpointInput, L1Outcome, ProposedBlock, ProposedCheckpointInput,
};
use crate::{
    chain::{ChainState, check_consistency},
    codec::HeaderRecord,
    error::{ArchiverError, ArchiverResult},
    prune::PruneEvent,
    reader::ArchiverReader,
    records::{CheckpointRecord, L1Ref, PayloadSource},
    rules::{ChainIdentity, DEFAULT_MAX_PROPOSED_DEPTH, Limits},
    tables::{
        Archives, Batch, BlockHashes, BlockSignatures, BlockTxs, Checkpoints, Db, Headers,
        MetaFinalized, MetaGenesis, MetaL1Synced, MetaPruneSeq, MetaTips, Reads, TxLocations,
    },
    txindex::PendingTxIndex,
};

/// What writer and readers share: the database, the in-memory tx index, and the chain's
/// signing domain (senders are recovered with it).
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) db: Db,
    pub(crate) pending_txs: PendingTxIndex,
    pub(crate) domain: SigningDomain,
}

/// Txs of an uncheckpointed block, as the writer keeps them.
#[derive(Debug, Clone)]
pub(crate) struct PendingTxs {
    /// Their hashes, in order.
    pub(crate) hashes: Vec<B256>,
    /// With senders (as the block came, executed; recovered at open for blocks found there).
    pub(crate) recovered: Vec<RecoveredTx>,
}

/// One change to the store, committed atomically by [`ArchiverStore::commit`].
pub(crate) struct Change {
    pub(crate) batch: Batch,
    pub(crate) next: ChainState,
    /// Whether the batch records L1 facts (durable before the call returns, unless deferred:
    /// see [`ArchiverStore::defer_l1_syncs`]).
    pub(crate) sync: bool,
    /// A new uncheckpointed block and its txs.
    pub(crate) add_pending: Option<(u64, PendingTxs)>,
    /// Blocks from this number on are removed.
    pub(crate) removed_from: Option<u64>,
    /// The prune this change commits.
    pub(crate) prune: Option<PruneEvent>,
}

impl Change {
    /// A change that neither adds an uncheckpointed block nor removes blocks.
    pub(crate) const fn new(batch: Batch, next: ChainState, sync: bool) -> Self {
        Self {
            batch,
            next,
            sync,
            add_pending: None,
            removed_from: None,
            prune: None,
        }
    }

    /// The change removes blocks from `from` on, committing `prune`.
    pub(crate) fn removing(mut self, from: Option<u64>, prune: Option<PruneEvent>) -> Self {
        self.removed_from = from;
        self.prune = prune;
        self
    }
}

/// The chain store. Single writer: the archiver actor owns it; readers use [`ArchiverReader`].
pub struct ArchiverStore {
    pub(crate) shared: Arc<Shared>,
    pub(crate) chain: ChainState,
    pub(crate) identity: ChainIdentity,
    pub(crate) limits: Limits,
    /// Txs of the uncheckpointed blocks (the tx index and prune events use them).
    pub(crate) pending: BTreeMap<u64, PendingTxs>,
    /// Committed prunes not yet taken by [`ArchiverStore::take_prune_events`].
    outbox: Vec<PruneEvent>,
    /// L1 facts are written without waiting for the disk; the owner syncs the WAL.
    defer_l1_syncs: bool,
    /// L1 facts written since the last WAL sync was handed out.
    unsynced_l1: bool,
}

impl std::fmt::Debug for ArchiverStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiverStore")
            .field("tips", &self.tips())
            .finish()
    }
}

impl ArchiverStore {
    /// Opens the store at `path`, creating it with `genesis` (block 0) if new. `domain` is the
    /// chain's signing domain (senders of pruned txs are recovered with it). Checks what is
    /// stored above the finalized checkpoint before returning.
    pub fn open(path: &Path, genesis: &BlockHeader, domain: SigningDomain) -> ArchiverResult<Self> {
        let db = Db::open(path)?;
        let identity = ChainIdentity {
            chain_id: genesis.chain_id,
            rollup_version: genesis.rollup_version,
        };
        match db.get::<MetaGenesis>(&())? {
            None => write_genesis(&db, genesis)?,
            Some(stored) if stored != genesis.hash() => {
                return Err(ArchiverError::GenesisMismatch {
                    stored,
                    expected: genesis.hash(),
                });
            }
            Some(_) => {}
        }
        let chain = ChainState::load(&db)?;
        // The finalized part was checked when it was written; everything after it is checked.
        check_consistency(&db, chain.finalized.checkpoint.number)?;
        let mut pending = BTreeMap::new();
        let index = PendingTxIndex::default();
        let first = chain.checkpointed.last_block.number + 1;
        let mut found = Vec::new();
        for number in first..=chain.last.number() {
            found.push(db.require::<BlockTxs>(&number, "a stored block has no tx record")?);
        }
        // Their senders now, on every core, so no prune of them recovers on the writer.
        let hashes: Vec<Vec<B256>> = found
            .iter()
            .map(|txs| txs.iter().map(Tx::hash).collect())
            .collect();
        let recovered = crate::senders::recover_blocks(found, &domain);
        for ((number, hashes), recovered) in (first..).zip(hashes).zip(recovered) {
            // No reader exists yet: nothing to announce.
            index.insert(number, &hashes, true);
            pending.insert(number, PendingTxs { hashes, recovered });
        }
        Ok(Self {
            shared: Arc::new(Shared {
                db,
                pending_txs: index,
                domain,
            }),
            chain,
            identity,
            limits: Limits {
                max_proposed_depth: DEFAULT_MAX_PROPOSED_DEPTH,
            },
            pending,
            outbox: Vec::new(),
            defer_l1_syncs: false,
            unsynced_l1: false,
        })
    }

    /// Most checkpoints held above the checkpointed tip (default
    /// [`crate::DEFAULT_MAX_PROPOSED_DEPTH`]); blocks and proposed checkpoints beyond are refused
    /// with a retry-later error. Under pipelining two are normal; more accumulate only while
    /// L1 does not settle them (an unreachable or lagging L1 RPC).
    pub fn set_max_proposed_depth(&mut self, depth: u64) {
        self.limits.max_proposed_depth = depth;
    }

    /// From now on, batches recording L1 facts do not wait for the disk; the caller makes them
    /// durable with [`ArchiverStore::take_wal_sync`], off the writer's thread. The actor does
    /// this after every L1 sync, so the writer never blocks on an fsync: a process crash loses
    /// nothing (the WAL is in the OS), a machine crash loses at most the last sync's writes —
    /// re-read from L1 at the next start (the cursor is in the same WAL).
    pub fn defer_l1_syncs(&mut self) {
        self.defer_l1_syncs = true;
    }

    /// A task that makes every write so far durable, if L1 facts were written without syncing
    /// since the last one was handed out.
    pub fn take_wal_sync(&mut self) -> Option<crate::tables::WalSync> {
        std::mem::take(&mut self.unsynced_l1).then(|| self.db().wal_sync())
    }

    /// A reader over the same database: cloneable, reads consistent snapshots, never waits for
    /// this writer.
    pub fn reader(&self) -> ArchiverReader {
        ArchiverReader::new(self.shared.clone())
    }

    pub(crate) fn db(&self) -> &Db {
        &self.shared.db
    }

    /// The tips, as of the last write.
    pub fn tips(&self) -> L2Tips {
        self.chain.tips()
    }

    /// Last L1 block whose events are in the store.
    pub const fn l1_synced(&self) -> Option<L1Ref> {
        self.chain.l1_synced
    }

    /// The checks [`ArchiverStore::open`] runs, over the whole chain from genesis.
    pub fn check_consistency(&self) -> ArchiverResult<()> {
        check_consistency(self.db(), 0)
    }

    /// Prune events committed since the last call, in order.
    pub fn take_prune_events(&mut self) -> Vec<PruneEvent> {
        std::mem::take(&mut self.outbox)
    }

    /// Commits `change`: tips checked before anything is written, memory updated after.
    pub(crate) fn commit(&mut self, change: Change) -> ArchiverResult<()> {
        let Change {
            mut batch,
            next,
            sync,
            add_pending,
            removed_from,
            prune,
        } = change;
        let previous_tips = self.chain.tips();
        let tips = next.tips();
        tips.check_invariants()?;
        batch.put::<MetaTips>(&(), &tips);
        if next.prune_seq != self.chain.prune_seq {
            batch.put::<MetaPruneSeq>(&(), &next.prune_seq);
        }
        // Uncheckpointed blocks leaving memory: now checkpointed (their index went to disk in
        // this batch) or removed.
        let checkpointed_last = next.checkpointed.last_block.number;
        let mut leaving: Vec<u64> = self
            .pending
            .range(..=checkpointed_last)
            .map(|(number, _)| *number)
            .collect();
        if let Some(from) = removed_from {
            let from = from.max(checkpointed_last + 1);
            leaving.extend(self.pending.range(from..).map(|(number, _)| *number));
        }
        let index = &self.shared.pending_txs;
        let mut moving = !leaving.is_empty();
        if moving {
            index.begin_change();
        }
        if let Some((number, txs)) = &add_pending {
            moving = index.insert(*number, &txs.hashes, moving);
        }
        let deferred = sync && self.defer_l1_syncs;
        let written = self.shared.db.write(batch, sync && !deferred);
        if let Err(err) = written {
            if let Some((number, txs)) = &add_pending {
                if !moving {
                    index.begin_change();
                }
                index.remove_block(*number, &txs.hashes);
                index.end_change();
            } else if moving {
                index.end_change();
            }
            return Err(err);
        }
        for number in leaving {
            if let Some(txs) = self.pending.remove(&number) {
                index.remove_block(number, &txs.hashes);
            }
        }
        if moving {
            index.end_change();
        }
        if let Some((number, txs)) = add_pending {
            self.pending.insert(number, txs);
        }
        self.unsynced_l1 |= deferred;
        self.chain = next;
        publish_tip_metrics(&previous_tips, &tips);
        if let Some(event) = prune {
            crate::prune::record_prune(&event);
            self.outbox.push(event);
        }
        Ok(())
    }

    pub(crate) fn header_record(&self, number: u64) -> ArchiverResult<HeaderRecord> {
        self.db()
            .require::<Headers>(&number, "a block below the tip is missing")
    }

    /// Writes a block with its hash and archive indexes (the tx index is written separately:
    /// see `txindex`).
    pub(crate) fn put_block(
        batch: &mut Batch,
        record: &HeaderRecord,
        hash: &B256,
        encoded_txs: &[u8],
        signature: Option<&Signature>,
    ) {
        let number = record.header.block_number;
        batch.put::<Headers>(&number, record);
        batch.put_encoded::<BlockTxs>(&number, encoded_txs);
        if let Some(signature) = signature {
            batch.put::<BlockSignatures>(&number, signature);
        }
        debug_assert_eq!(*hash, record.hash);
        batch.put::<BlockHashes>(hash, &number);
        batch.put::<Archives>(&record.archive_root, &number);
    }

    /// Writes the disk tx index of a block being checkpointed.
    pub(crate) fn put_tx_index(batch: &mut Batch, number: u64, hashes: &[B256]) {
        batch.put_all::<TxLocations>(
            hashes
                .iter()
                .enumerate()
                .map(|(index, hash)| (*hash, (number, index as u32))),
        );
    }

    /// Writes the disk tx index of stored uncheckpointed blocks `numbers` (they are checkpointed
    /// in this batch).
    pub(crate) fn put_pending_tx_index(
        &self,
        batch: &mut Batch,
        numbers: impl IntoIterator<Item = u64>,
    ) {
        for number in numbers {
            if let Some(txs) = self.pending.get(&number) {
                Self::put_tx_index(batch, number, &txs.hashes);
            }
        }
    }

    // ---- L1 sync position ----------------------------------------------------------------

    /// Records that L1 events up to `block` are in the store.
    pub fn set_l1_synced(&mut self, block: L1Ref) -> ArchiverResult<()> {
        let mut batch = self.db().batch();
        batch.put::<MetaL1Synced>(&(), &block);
        let mut next = self.chain.clone();
        next.l1_synced = Some(block);
        self.commit(Change::new(batch, next, true))
    }

    /// Marks L1 checkpoints up to `number` as finalized (clamped to the checkpointed tip).
    pub fn set_finalized(&mut self, number: u64) -> ArchiverResult<()> {
        let number = number.min(self.chain.checkpointed.number);
        if number <= self.chain.finalized.checkpoint.number {
            return Ok(());
        }
        let record = self
            .db()
            .require::<Checkpoints>(&number, "a checkpoint below the tip is missing")?;
        let last = self.header_record(record.last_block())?;
        let mut batch = self.db().batch();
        batch.put::<MetaFinalized>(&(), &number);
        let mut next = self.chain.clone();
        next.finalized = crate::chain::CheckpointSummary::of(&record, last.header.hash()).tip();
        self.commit(Change::new(batch, next, true))
    }
}

fn write_genesis(db: &Db, genesis: &BlockHeader) -> ArchiverResult<()> {
    let mut archive = ArchiveTree::new();
    let archive_root = archive
        .append(genesis.hash())
        .map_err(|_| ArchiverError::Corrupt("archive"))?;
    let record = HeaderRecord {
        header: genesis.clone(),
        hash: genesis.hash(),
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
        source: PayloadSource::L1Calldata,
    };
    let mut batch = db.batch();
    ArchiverStore::put_block(&mut batch, &record, &genesis.hash(), &[], None);
    batch.put::<Checkpoints>(&0, &checkpoint);
    batch.put::<MetaFinalized>(&(), &0);
    batch.put::<MetaGenesis>(&(), &genesis.hash());
    let tips = L2Tips::genesis(tandem_proto::L2TipId {
        block: tandem_proto::BlockId {
            number: 0,
            hash: genesis.hash(),
        },
        checkpoint: tandem_proto::CheckpointId {
            number: 0,
            hash: CheckpointHeader::default().hash(),
        },
    });
    batch.put::<MetaTips>(&(), &tips);
    db.write(batch, true)
}

/// Sets the tip gauges that changed (the proposed tip moves with every block: keep it cheap).
fn publish_tip_metrics(previous: &L2Tips, tips: &L2Tips) {
    let pairs = [
        ("proposed", &previous.proposed, &tips.proposed),
        (
            "proposed_checkpoint",
            &previous.proposed_checkpoint,
            &tips.proposed_checkpoint,
        ),
        ("checkpointed", &previous.checkpointed, &tips.checkpointed),
        ("finalized", &previous.finalized, &tips.finalized),
    ];
    for (name, before, now) in pairs {
        if before.block.number != now.block.number {
            metrics::gauge!("archiver_tip_block", "tip" => name).set(now.block.number as f64);
        }
        if before.checkpoint.number != now.checkpoint.number {
            metrics::gauge!("archiver_tip_checkpoint", "tip" => name)
                .set(now.checkpoint.number as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use tandem_proto::{Address, BlockHeader, SigningDomain, block_body_hash};

    use super::*;

    #[test]
    fn senders_of_blocks_found_at_open_are_recovered_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let genesis = BlockHeader::default();
        let domain = SigningDomain {
            chain_id: 0,
            rollup: Address::ZERO,
        };
        let key = tandem_proto::SigningKey::from_bytes(&[7; 32]).unwrap();
        let tx = Tx::sign(tandem_proto::TxPayload::default(), &domain, &key)
            .into_recovered(&domain)
            .unwrap();
        let mut archive = ArchiveTree::new();
        archive.append(genesis.hash()).unwrap();
        let header = BlockHeader {
            last_archive_root: archive.root(),
            body_hash: block_body_hash(&[tx.hash()]),
            block_number: 1,
            checkpoint_number: 1,
            ..Default::default()
        };
        {
            let mut store = ArchiverStore::open(dir.path(), &genesis, domain).unwrap();
            store
                .add_proposed_block(ProposedBlock {
                    header,
                    txs: vec![tx.clone()],
                    proposer_signature: Signature::from_bytes([1; 65]),
                })
                .unwrap();
        }
        // Reopened, the block's senders are known before any prune needs them (a prune does
        // not recover on the writer).
        let store = ArchiverStore::open(dir.path(), &genesis, domain).unwrap();
        assert_eq!(store.pending[&1].recovered, vec![tx.clone()]);
        assert_eq!(store.pending[&1].hashes, vec![tx.hash()]);
    }

    #[test]
    fn a_change_whose_tips_break_their_order_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let genesis = BlockHeader::default();
        let domain = SigningDomain {
            chain_id: 0,
            rollup: Address::ZERO,
        };
        let mut store = ArchiverStore::open(dir.path(), &genesis, domain).unwrap();
        let before = store.chain.clone();
        let mut batch = store.db().batch();
        batch.put::<MetaFinalized>(&(), &7);
        let mut next = store.chain.clone();
        // A checkpointed tip above the proposed one.
        next.checkpointed.last_block.number = 5;
        let err = store.commit(Change::new(batch, next, false)).unwrap_err();
        assert!(matches!(err, ArchiverError::Tips(_)), "{err}");
        assert!(err.is_fatal());
        assert_eq!(store.chain, before, "memory unchanged");
        assert_eq!(
            store.db().get::<MetaFinalized>(&()).unwrap(),
            Some(0),
            "nothing written"
        );
        assert_eq!(
            store.db().get::<MetaTips>(&()).unwrap(),
            Some(before.tips())
        );
    }
}
