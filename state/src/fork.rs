//! A fork: an isolated, writable view of the world state on top of one block. Blocks built or
//! re-executed on it stack up (N+1, N+2, …) without touching the world state; dropping the fork
//! drops everything.
//!
//! A block being executed lives in a [`Draft`] over the fork, which the fork does not see until
//! the sealed result is committed: a builder can drop a block it does not want (too small, too
//! late) and the fork is as before.

use std::collections::{HashMap, HashSet};

use tandem_proto::{Address, B256, Block, BlockHeader, Tx, archive::ArchiveTree};

use crate::{
    account::{Account, AccountLeaf, account_key},
    exec::AccountStore,
    smt::Smt,
    world::{ExecutedBlock, StateError, Version},
};

/// See the module docs.
#[derive(Debug, Clone)]
pub struct Fork {
    block_number: u64,
    version: Version,
    chain_id: u64,
    rollup_version: u32,
}

impl Fork {
    pub(crate) const fn new(
        block_number: u64,
        version: Version,
        chain_id: u64,
        rollup_version: u32,
    ) -> Self {
        Self {
            block_number,
            version,
            chain_id,
            rollup_version,
        }
    }

    /// Number of the last block on the fork.
    pub const fn block_number(&self) -> u64 {
        self.block_number
    }

    /// Hash of the last block on the fork.
    pub const fn block_hash(&self) -> B256 {
        self.version.block_hash
    }

    /// Archive root after the last block (the next block's `last_archive_root`).
    pub fn archive_root(&self) -> B256 {
        self.version.archive.root()
    }

    /// State root after the last block.
    pub fn state_root(&self) -> B256 {
        self.version.tree.root()
    }

    /// L2 chain id.
    pub const fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// Rollup version.
    pub const fn rollup_version(&self) -> u32 {
        self.rollup_version
    }

    /// An account after the last block.
    pub fn account(&self, address: &Address) -> Account {
        self.version
            .tree
            .get(&account_key(address))
            .map(|leaf| leaf.account)
            .unwrap_or_default()
    }

    /// Starts executing the next block.
    pub(crate) fn draft(&self) -> Draft<'_> {
        Draft {
            fork: self,
            changes: HashMap::new(),
            unfolded: HashSet::new(),
            staged: self.version.tree.clone(),
        }
    }

    /// Makes `sealed` block `header` and moves the fork onto it.
    pub(crate) fn commit_sealed(
        &mut self,
        sealed: Sealed,
        header: BlockHeader,
        txs: Vec<Tx>,
    ) -> Result<ExecutedBlock, StateError> {
        if sealed.parent_hash != self.version.block_hash {
            return Err(StateError::ParentMismatch {
                block: header.block_number,
            });
        }
        if header.state_root != sealed.tree.root() {
            return Err(StateError::Corrupt(
                "a sealed block's header does not carry its state root",
            ));
        }
        let parent_archive_root = self.version.archive.root();
        let block = Block { header, txs };
        let mut archive: ArchiveTree = self.version.archive.clone();
        archive
            .append(block.hash())
            .map_err(|_| StateError::Corrupt("archive full"))?;
        self.version = Version {
            tree: sealed.tree,
            archive,
            block_hash: block.hash(),
        };
        self.block_number = block.header.block_number;
        Ok(ExecutedBlock {
            archive_root: self.version.archive.root(),
            block,
            changes: sealed.changes,
            parent_archive_root,
            tree: self.version.tree.clone(),
        })
    }
}

/// Execution of one block on top of a fork. Changes are folded into the tree in chunks
/// ([`Draft::fold`]), so sealing at the end costs at most one chunk.
pub(crate) struct Draft<'a> {
    fork: &'a Fork,
    /// Every change of the block so far.
    changes: HashMap<Address, Account>,
    /// Accounts changed since the last fold.
    unfolded: HashSet<Address>,
    /// The fork's tree with the folded changes.
    staged: Smt<AccountLeaf>,
}

impl Draft<'_> {
    /// Brings the staged tree up to date with the changes so far.
    pub(crate) fn fold(&mut self) {
        if self.unfolded.is_empty() {
            return;
        }
        let mut delta: Vec<(B256, Option<AccountLeaf>)> = self
            .unfolded
            .drain()
            .map(|address| {
                let account = self.changes[&address];
                (
                    account_key(&address),
                    Some(AccountLeaf { address, account }),
                )
            })
            .collect();
        delta.sort_by_key(|entry| entry.0);
        self.staged = self.staged.update(&delta);
    }

    /// Seals the block's execution (folds what is left).
    pub(crate) fn seal(mut self) -> Sealed {
        self.fold();
        let mut changes: Vec<(B256, AccountLeaf)> = self
            .changes
            .into_iter()
            .map(|(address, account)| (account_key(&address), AccountLeaf { address, account }))
            .collect();
        changes.sort_by_key(|entry| entry.0);
        Sealed {
            tree: self.staged,
            changes,
            parent_hash: self.fork.version.block_hash,
        }
    }
}

impl AccountStore for Draft<'_> {
    fn account(&self, address: &Address) -> Account {
        match self.changes.get(address) {
            Some(account) => *account,
            None => self.fork.account(address),
        }
    }

    fn set_account(&mut self, address: Address, account: Account) {
        self.changes.insert(address, account);
        self.unfolded.insert(address);
    }
}

/// An executed block's resulting tree and account changes, ready to commit on its parent.
#[derive(Debug, Clone)]
pub(crate) struct Sealed {
    tree: Smt<AccountLeaf>,
    changes: Vec<(B256, AccountLeaf)>,
    parent_hash: B256,
}

impl Sealed {
    /// State root after the block.
    pub(crate) fn state_root(&self) -> B256 {
        self.tree.root()
    }
}
