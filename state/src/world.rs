//! The world state: accounts under a compact sparse Merkle root, persisted in RocksDB, with the
//! archive tree, one retained version per recent block, forks and rollback.
//!
//! On disk (column families):
//! - `accounts`: address → account, as of the tip;
//! - `blocks`: block number → block hash, state root and archive frontier after it (retained
//!   blocks only);
//! - `hashes`: block number → block hash, for every applied block (the chain follower's
//!   common-ancestor search with the archiver);
//! - `undo`: block number → the previous value of every account the block changed (absent =
//!   account did not exist), so `rollback_to` costs what it undoes (retained blocks only);
//! - `meta`: the tip, the oldest retained block, the finalized block and the genesis block hash
//!   (a reopen with another genesis is refused).
//!
//! In memory: the tree and archive of every retained block (structurally shared, so a version
//! costs only the paths its block changed). History is bounded: versions are kept back to the
//! finalized block minus [`WorldStateConfig::history_margin`], pruned as
//! [`WorldState::set_finalized`] moves; below that nothing can be forked or rolled back to. The
//! tip's tree is rebuilt from `accounts` at open and checked against the stored root; the older
//! retained versions (a bounded number) are rebuilt from their undo logs.

use std::{collections::BTreeMap, path::Path};

use rocksdb::{ColumnFamilyDescriptor, DB, IteratorMode, Options, WriteBatch, WriteOptions};
use tandem_proto::{Address, B256, Block, archive::ArchiveTree};

pub use crate::spec::ChainSpec;
use crate::{
    account::{Account, AccountLeaf, account_key},
    fork::Fork,
    records::{
        BlockRecord, block_record, decode_block_record, decode_undo, encode_undo, number_key,
        undo_changes,
    },
    smt::Smt,
};

const CF_ACCOUNTS: &str = "accounts";
const CF_BLOCKS: &str = "blocks";
const CF_HASHES: &str = "hashes";
const CF_UNDO: &str = "undo";
const CF_META: &str = "meta";
const KEY_TIP: &[u8] = b"tip";
const KEY_OLDEST: &[u8] = b"oldest";
const KEY_FINALIZED: &[u8] = b"finalized";
const KEY_GENESIS: &[u8] = b"genesis";

/// Blocks of history kept below the finalized block by default.
pub const DEFAULT_HISTORY_MARGIN: u64 = 64;

/// Settings of the world state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorldStateConfig {
    /// Blocks of history kept below the finalized block (forks and rollbacks can reach them).
    pub history_margin: u64,
}

impl Default for WorldStateConfig {
    fn default() -> Self {
        Self {
            history_margin: DEFAULT_HISTORY_MARGIN,
        }
    }
}

/// Errors of the world state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// RocksDB failed.
    #[error("world-state database: {0}")]
    Db(#[from] rocksdb::Error),
    /// Stored data does not decode or does not add up (the root of the stored accounts differs
    /// from the stored root, for instance).
    #[error("world-state database is corrupt: {0}")]
    Corrupt(&'static str),
    /// The database was created with another genesis.
    #[error("world-state database has genesis {stored}, this chain's genesis is {expected}")]
    GenesisMismatch {
        /// Genesis block hash in the database.
        stored: B256,
        /// Genesis block hash of the configured chain.
        expected: B256,
    },
    /// The block is not retained (pruned, or not applied yet).
    #[error("block {block} is not retained (retained: {oldest}..={tip})")]
    NotRetained {
        /// Requested block.
        block: u64,
        /// Oldest retained.
        oldest: u64,
        /// Tip.
        tip: u64,
    },
    /// A block does not extend the tip.
    #[error("block {got} does not extend the tip {tip}")]
    NotNext {
        /// The tip.
        tip: u64,
        /// The block's number.
        got: u64,
    },
    /// Not even an empty block fits in what is left of the checkpoint's body budget.
    #[error("checkpoint body budget exhausted: {remaining} bytes left, a block needs {needed}")]
    BodyBudgetExhausted {
        /// Bytes left in the budget.
        remaining: usize,
        /// Bytes an empty block takes.
        needed: usize,
    },
    /// The rollback would undo a final block.
    #[error("cannot roll back to block {block}: block {finalized} is final")]
    BelowFinalized {
        /// Requested block.
        block: u64,
        /// The finalized block.
        finalized: u64,
    },
    /// An executed block was produced on a fork of another parent.
    #[error("block {block} was executed on another parent")]
    ParentMismatch {
        /// The block.
        block: u64,
    },
}

/// The tree and archive after one block.
#[derive(Debug, Clone)]
pub(crate) struct Version {
    pub(crate) tree: Smt<AccountLeaf>,
    pub(crate) archive: ArchiveTree,
    pub(crate) block_hash: B256,
}

/// A block executed on a fork, with the account changes it makes. Only this crate builds one
/// (by building or re-executing), so applying it needs no re-execution.
#[derive(Debug, Clone)]
pub struct ExecutedBlock {
    pub(crate) block: Block,
    pub(crate) archive_root: B256,
    /// Changed accounts, sorted by tree key.
    pub(crate) changes: Vec<(B256, AccountLeaf)>,
    pub(crate) parent_archive_root: B256,
    /// The account tree after the block, as execution sealed it (nodes shared with the
    /// parent's tree), so applying the block does not hash the changes into the tree again.
    pub(crate) tree: Smt<AccountLeaf>,
}

impl ExecutedBlock {
    /// The block.
    pub const fn block(&self) -> &Block {
        &self.block
    }

    /// The archive root after the block.
    pub const fn archive_root(&self) -> B256 {
        self.archive_root
    }

    /// Number of accounts the block changed.
    pub fn changed_accounts(&self) -> usize {
        self.changes.len()
    }
}

/// The tip of the world state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateTip {
    /// Block number.
    pub number: u64,
    /// Block hash.
    pub hash: B256,
    /// State root after it.
    pub state_root: B256,
    /// Archive root after it.
    pub archive_root: B256,
}

/// The world state.
pub struct WorldState {
    db: DB,
    spec: ChainSpec,
    config: WorldStateConfig,
    /// Retained versions by block number; the last one is the tip.
    versions: BTreeMap<u64, Version>,
    /// Highest block known final (never rolled back).
    finalized: u64,
}

impl std::fmt::Debug for WorldState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorldState")
            .field("tip", &self.tip())
            .field("retained", &self.versions.len())
            .finish()
    }
}

fn read_number(db: &DB, cf: &rocksdb::ColumnFamily, key: &[u8]) -> Result<Option<u64>, StateError> {
    match db.get_cf(cf, key)? {
        None => Ok(None),
        Some(bytes) => Ok(Some(u64::from_be_bytes(
            bytes
                .as_slice()
                .try_into()
                .map_err(|_| StateError::Corrupt("a stored block number is not 8 bytes"))?,
        ))),
    }
}

impl WorldState {
    /// Opens (or creates, with the genesis allocation) the world state at `path`.
    pub fn open(
        path: &Path,
        spec: ChainSpec,
        config: WorldStateConfig,
    ) -> Result<Self, StateError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        // Point-in-time recovery: after a crash, keep everything up to the first corrupt WAL
        // record instead of refusing to open; every write batch is atomic, so the state is
        // always a whole number of blocks.
        options.set_wal_recovery_mode(rocksdb::DBRecoveryMode::PointInTime);
        let families = [CF_ACCOUNTS, CF_BLOCKS, CF_HASHES, CF_UNDO, CF_META]
            .into_iter()
            .map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
        let db = DB::open_cf_descriptors(&options, path, families)?;
        let mut state = Self {
            db,
            spec,
            config,
            versions: BTreeMap::new(),
            finalized: 0,
        };
        let genesis_hash = state.spec.genesis_header().hash();
        match state.db.get_cf(state.cf(CF_META), KEY_GENESIS)? {
            None => state.write_genesis()?,
            Some(stored) => {
                let stored = B256::try_from(stored.as_slice())
                    .map_err(|_| StateError::Corrupt("genesis hash"))?;
                if stored != genesis_hash {
                    return Err(StateError::GenesisMismatch {
                        stored,
                        expected: genesis_hash,
                    });
                }
                state.load()?;
            }
        }
        Ok(state)
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        // The families are created at open; a missing one is a programming error.
        self.db
            .cf_handle(name)
            .expect("column family created at open")
    }

    fn write_genesis(&mut self) -> Result<(), StateError> {
        let header = self.spec.genesis_header();
        let tree = self.spec.genesis_tree();
        let mut archive = ArchiveTree::new();
        archive
            .append(header.hash())
            .map_err(|_| StateError::Corrupt("archive"))?;
        let version = Version {
            tree,
            archive,
            block_hash: header.hash(),
        };
        let mut batch = WriteBatch::default();
        for (address, balance) in &self.spec.genesis_allocation {
            let account = Account {
                balance: *balance,
                nonce: 0,
            };
            batch.put_cf(self.cf(CF_ACCOUNTS), address.as_slice(), account.encode());
        }
        batch.put_cf(self.cf(CF_BLOCKS), number_key(0), block_record(&version));
        batch.put_cf(self.cf(CF_HASHES), number_key(0), header.hash().as_slice());
        batch.put_cf(self.cf(CF_META), KEY_TIP, number_key(0));
        batch.put_cf(self.cf(CF_META), KEY_OLDEST, number_key(0));
        batch.put_cf(self.cf(CF_META), KEY_GENESIS, header.hash().as_slice());
        self.write(batch, true)?;
        self.versions.insert(0, version);
        Ok(())
    }

    fn read_block_record(&self, number: u64) -> Result<BlockRecord, StateError> {
        let bytes = self
            .db
            .get_cf(self.cf(CF_BLOCKS), number_key(number))?
            .ok_or(StateError::Corrupt("missing block record"))?;
        decode_block_record(&bytes)
    }

    fn load(&mut self) -> Result<(), StateError> {
        let meta = self.cf(CF_META);
        let tip = read_number(&self.db, meta, KEY_TIP)?.ok_or(StateError::Corrupt("no tip"))?;
        let oldest = read_number(&self.db, meta, KEY_OLDEST)?
            .ok_or(StateError::Corrupt("no oldest retained block"))?;
        if oldest > tip {
            return Err(StateError::Corrupt("oldest retained block above the tip"));
        }
        self.finalized = read_number(&self.db, meta, KEY_FINALIZED)?.unwrap_or(0);
        let mut entries = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(CF_ACCOUNTS), IteratorMode::Start)
        {
            let (key, value) = item?;
            if key.len() != 20 {
                return Err(StateError::Corrupt("account key is not an address"));
            }
            let address = Address::from_slice(&key);
            let account = Account::decode(&value).ok_or(StateError::Corrupt("account value"))?;
            entries.push((account_key(&address), AccountLeaf { address, account }));
        }
        let tree = Smt::from_entries(entries);
        let record = self.read_block_record(tip)?;
        if tree.root() != record.state_root {
            return Err(StateError::Corrupt(
                "stored accounts do not match the tip's state root",
            ));
        }
        let mut version = Version {
            tree,
            archive: record.archive,
            block_hash: record.block_hash,
        };
        self.versions.insert(tip, version.clone());
        // Walk back through the undo logs of the retained blocks only (history is bounded by
        // `set_finalized`, so this is a bounded walk).
        for number in (oldest + 1..=tip).rev() {
            let undo = self
                .db
                .get_cf(self.cf(CF_UNDO), number_key(number))?
                .ok_or(StateError::Corrupt("missing undo log of a retained block"))?;
            let changes = undo_changes(&decode_undo(&undo)?);
            let record = self.read_block_record(number - 1)?;
            let tree = version.tree.update(&changes);
            if tree.root() != record.state_root {
                return Err(StateError::Corrupt(
                    "undo log does not lead to the stored state root",
                ));
            }
            version = Version {
                tree,
                archive: record.archive,
                block_hash: record.block_hash,
            };
            self.versions.insert(number - 1, version.clone());
        }
        Ok(())
    }

    fn write(&self, batch: WriteBatch, sync: bool) -> Result<(), StateError> {
        let mut options = WriteOptions::default();
        options.set_sync(sync);
        Ok(self.db.write_opt(batch, &options)?)
    }

    fn tip_version(&self) -> (u64, &Version) {
        let (number, version) = self
            .versions
            .last_key_value()
            .expect("the tip is always retained");
        (*number, version)
    }

    /// The tip.
    pub fn tip(&self) -> StateTip {
        let (number, version) = self.tip_version();
        StateTip {
            number,
            hash: version.block_hash,
            state_root: version.tree.root(),
            archive_root: version.archive.root(),
        }
    }

    /// The chain constants.
    pub const fn spec(&self) -> &ChainSpec {
        &self.spec
    }

    /// Oldest block a fork or rollback can target.
    pub fn oldest_retained(&self) -> u64 {
        *self
            .versions
            .first_key_value()
            .expect("the tip is always retained")
            .0
    }

    /// State root after a retained block.
    pub fn state_root_at(&self, block: u64) -> Option<B256> {
        self.versions.get(&block).map(|version| version.tree.root())
    }

    /// Hash of applied block `number` (retained or not; `None` above the tip), so the chain
    /// follower can find the common ancestor with the archiver.
    pub fn block_hash_at(&self, number: u64) -> Result<Option<B256>, StateError> {
        if let Some(version) = self.versions.get(&number) {
            return Ok(Some(version.block_hash));
        }
        if number > self.tip().number {
            return Ok(None);
        }
        match self.db.get_cf(self.cf(CF_HASHES), number_key(number))? {
            Some(bytes) => Ok(Some(B256::try_from(bytes.as_slice()).map_err(|_| {
                StateError::Corrupt("a stored block hash is not 32 bytes")
            })?)),
            None => Err(StateError::Corrupt(
                "the hash of an applied block is missing",
            )),
        }
    }

    /// Highest block marked final.
    pub const fn finalized(&self) -> u64 {
        self.finalized
    }

    /// Number of retained versions (tip included).
    pub fn retained(&self) -> usize {
        self.versions.len()
    }

    /// Marks blocks up to `block` (clamped to the tip) final, and forgets history older than
    /// `block − history_margin`. Finality never moves back.
    pub fn set_finalized(&mut self, block: u64) -> Result<(), StateError> {
        let block = block.min(self.tip().number);
        if block <= self.finalized {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_META), KEY_FINALIZED, number_key(block));
        self.write(batch, false)?;
        self.finalized = block;
        self.prune_history(block.saturating_sub(self.config.history_margin))
    }

    /// An account at the tip (default if it does not exist).
    pub fn account(&self, address: &Address) -> Account {
        let (_, version) = self.tip_version();
        version
            .tree
            .get(&account_key(address))
            .map(|leaf| leaf.account)
            .unwrap_or_default()
    }

    /// Number of accounts at the tip.
    pub fn account_count(&self) -> usize {
        self.tip_version().1.tree.len()
    }

    fn not_retained(&self, block: u64) -> StateError {
        StateError::NotRetained {
            block,
            oldest: self.oldest_retained(),
            tip: self.tip().number,
        }
    }

    /// A writable view on top of retained block `at_block`; O(1). Dropping it leaves no trace.
    pub fn fork(&self, at_block: u64) -> Result<Fork, StateError> {
        let version = self
            .versions
            .get(&at_block)
            .ok_or_else(|| self.not_retained(at_block))?;
        Ok(Fork::new(
            at_block,
            version.clone(),
            self.spec.chain_id,
            self.spec.rollup_version,
        ))
    }

    /// Makes an executed block the new tip. It must have been executed on a fork of the tip.
    pub fn apply_block(&mut self, executed: &ExecutedBlock) -> Result<StateTip, StateError> {
        let (tip, tip_version) = self.tip_version();
        let number = executed.block.header.block_number;
        if number != tip + 1 {
            return Err(StateError::NotNext { tip, got: number });
        }
        if executed.parent_archive_root != tip_version.archive.root() {
            return Err(StateError::ParentMismatch { block: number });
        }
        let mut undo = Vec::with_capacity(executed.changes.len());
        let mut batch = WriteBatch::default();
        for (key, leaf) in &executed.changes {
            undo.push((
                leaf.address,
                tip_version.tree.get(key).map(|previous| previous.account),
            ));
            batch.put_cf(
                self.cf(CF_ACCOUNTS),
                leaf.address.as_slice(),
                leaf.account.encode(),
            );
        }
        // Sealed on a fork of this parent (same archive root, so the same tree): reused, not
        // recomputed from the changes. What is written to disk is `changes`, so they are
        // checked against the reused tree (which execution checked against the header's
        // root) without hashing: every change is in it, and it holds no account the
        // changes do not add. A changed value missing from `changes` would need the full
        // recomputation, done in debug builds.
        let tree = executed.tree.clone();
        let added = executed
            .changes
            .iter()
            .filter(|(key, _)| tip_version.tree.get(key).is_none())
            .count();
        if tree.root() != executed.block.header.state_root
            || tree.len() != tip_version.tree.len().saturating_add(added)
            || !executed
                .changes
                .iter()
                .all(|(key, leaf)| tree.get(key) == Some(leaf))
        {
            return Err(StateError::Corrupt(
                "an executed block's changes do not give its state root",
            ));
        }
        debug_assert_eq!(
            tip_version
                .tree
                .update(
                    &executed
                        .changes
                        .iter()
                        .map(|(key, leaf)| (*key, Some(*leaf)))
                        .collect::<Vec<_>>()
                )
                .root(),
            executed.block.header.state_root,
            "an executed block's changes do not give its state root"
        );
        let mut archive = tip_version.archive.clone();
        archive
            .append(executed.block.hash())
            .map_err(|_| StateError::Corrupt("archive full"))?;
        let version = Version {
            tree,
            archive,
            block_hash: executed.block.hash(),
        };
        batch.put_cf(
            self.cf(CF_BLOCKS),
            number_key(number),
            block_record(&version),
        );
        batch.put_cf(self.cf(CF_UNDO), number_key(number), encode_undo(&undo));
        batch.put_cf(
            self.cf(CF_HASHES),
            number_key(number),
            executed.block.hash().as_slice(),
        );
        batch.put_cf(self.cf(CF_META), KEY_TIP, number_key(number));
        // Not synced: proposed blocks can be rebuilt from the archiver; the WAL survives a
        // process crash and every batch is atomic.
        self.write(batch, false)?;
        self.versions.insert(number, version);
        metrics::gauge!("state_tip_block").set(number as f64);
        Ok(self.tip())
    }

    /// Rolls the tip back to retained block `block` (when the archiver prunes). Costs what the
    /// undone blocks changed. A final block is never undone.
    pub fn rollback_to(&mut self, block: u64) -> Result<StateTip, StateError> {
        let tip = self.tip().number;
        if block > tip || block < self.oldest_retained() {
            return Err(self.not_retained(block));
        }
        if block < self.finalized {
            return Err(StateError::BelowFinalized {
                block,
                finalized: self.finalized,
            });
        }
        let mut batch = WriteBatch::default();
        for number in (block + 1..=tip).rev() {
            let undo = self
                .db
                .get_cf(self.cf(CF_UNDO), number_key(number))?
                .ok_or(StateError::Corrupt("missing undo log of a retained block"))?;
            for (address, previous) in decode_undo(&undo)? {
                match previous {
                    Some(account) => {
                        batch.put_cf(self.cf(CF_ACCOUNTS), address.as_slice(), account.encode())
                    }
                    None => batch.delete_cf(self.cf(CF_ACCOUNTS), address.as_slice()),
                }
            }
            batch.delete_cf(self.cf(CF_UNDO), number_key(number));
            batch.delete_cf(self.cf(CF_BLOCKS), number_key(number));
            batch.delete_cf(self.cf(CF_HASHES), number_key(number));
        }
        batch.put_cf(self.cf(CF_META), KEY_TIP, number_key(block));
        self.write(batch, true)?;
        self.versions.split_off(&(block + 1));
        metrics::counter!("state_rollbacks_total").increment(1);
        metrics::gauge!("state_tip_block").set(block as f64);
        Ok(self.tip())
    }

    /// Forgets history before `block` (it can no longer be forked or rolled back to); see
    /// [`WorldState::set_finalized`], which calls it. Block hashes are kept.
    pub fn prune_history(&mut self, block: u64) -> Result<(), StateError> {
        let block = block.min(self.tip().number);
        let oldest = self.oldest_retained();
        if block <= oldest {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        // undo[n] leads from n back to n − 1: keep those above `block`; block records below it
        // are no longer needed either. Point deletes of what is there (the floor moves by a
        // block or so at a time): range deletions would pile up tombstones that every later
        // read of these tables has to skip.
        for number in oldest..=block {
            batch.delete_cf(self.cf(CF_UNDO), number_key(number));
            if number < block {
                batch.delete_cf(self.cf(CF_BLOCKS), number_key(number));
            }
        }
        batch.put_cf(self.cf(CF_META), KEY_OLDEST, number_key(block));
        self.write(batch, false)?;
        self.versions = self.versions.split_off(&block);
        metrics::gauge!("state_retained_blocks").set(self.versions.len() as f64);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tandem_proto::{
        Address, SigningDomain, SigningKey, Tx, TxPayload,
        time::{ManualClock, Timestamp},
    };

    use super::*;
    use crate::{BlockGlobals, BuildLimits, PoolConfig, TX_MANA, TxPool, build_block};

    const DOMAIN: SigningDomain = SigningDomain {
        chain_id: 31,
        rollup: Address::ZERO,
    };

    /// Block 1: a funded account pays a new one (one changed, one added account).
    fn executed_block(state: &WorldState, sender: &SigningKey) -> ExecutedBlock {
        let payload = TxPayload {
            chain_id: DOMAIN.chain_id,
            nonce: 0,
            to: Address::repeat_byte(0x55),
            amount: 10,
            max_fee_per_mana: 3,
            mana_limit: TX_MANA,
        };
        let tx = Tx::sign(payload, &DOMAIN, sender)
            .into_recovered(&DOMAIN)
            .unwrap();
        let mut pool = TxPool::new(PoolConfig::default());
        pool.add(tx, &state.account(&sender.address())).unwrap();
        let mut fork = state.fork(0).unwrap();
        let globals = BlockGlobals {
            checkpoint_number: 1,
            index_within_checkpoint: 0,
            slot: 10,
            timestamp: 1_000,
            coinbase: Address::repeat_byte(0xcb),
            fee_recipient: Address::repeat_byte(0xfe),
            fee_per_mana: 3,
        };
        let limits = BuildLimits {
            max_txs: 10,
            max_mana: u64::MAX,
            max_body_bytes: usize::MAX,
            deadline: Timestamp(u64::MAX),
        };
        let mut best = pool.best(|address| fork.account(address).nonce);
        let clock = ManualClock::new(Timestamp(0));
        let built = build_block(&fork, &globals, &mut best, &limits, &clock).unwrap();
        drop(best);
        fork.commit(built).unwrap().0
    }

    /// What is written to disk (`changes`) must agree with the reused sealed tree: a changed
    /// value or a missing added account is refused, not written.
    #[test]
    fn changes_that_disagree_with_the_sealed_tree_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let sender = SigningKey::from_bytes(&[7u8; 32]).unwrap();
        let spec = ChainSpec {
            chain_id: DOMAIN.chain_id,
            rollup_version: 1,
            genesis_allocation: vec![(sender.address(), 1_000_000_000)],
        };
        let mut state = WorldState::open(dir.path(), spec, WorldStateConfig::default()).unwrap();
        let executed = executed_block(&state, &sender);
        assert_eq!(
            executed.changes.len(),
            3,
            "sender, recipient, fee recipient"
        );

        let mut changed = executed.clone();
        changed.changes[0].1.account.balance += 1;
        assert!(matches!(
            state.apply_block(&changed),
            Err(StateError::Corrupt(_))
        ));
        let mut missing = executed.clone();
        let recipient = Address::repeat_byte(0x55);
        missing
            .changes
            .retain(|(_, leaf)| leaf.address != recipient);
        assert!(matches!(
            state.apply_block(&missing),
            Err(StateError::Corrupt(_))
        ));
        state.apply_block(&executed).unwrap();
    }
}
