//! A fork: an isolated, writable view of the world state on top of one block. Blocks built or
//! re-executed on it stack up (N+1, N+2, …) without touching the world state; dropping the fork
//! drops everything.

use std::collections::HashMap;

use tandem_proto::{Address, B256, Block, BlockHeader, Tx, archive::ArchiveTree};

use crate::{
    account::{Account, AccountLeaf, account_key},
    exec::AccountStore,
    smt::Smt,
    world::{ExecutedBlock, Version},
};

/// See the module docs.
#[derive(Debug, Clone)]
pub struct Fork {
    block_number: u64,
    version: Version,
    chain_id: u64,
    rollup_version: u32,
    /// Changes of the block being executed, not sealed yet.
    pending: HashMap<Address, Account>,
}

impl Fork {
    pub(crate) fn new(
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
            pending: HashMap::new(),
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

    /// State root after the last sealed block.
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

    /// An account, including changes of the block being executed.
    pub fn account(&self, address: &Address) -> Account {
        <Self as AccountStore>::account(self, address)
    }

    /// Drops the changes of the block being executed.
    pub(crate) fn discard_pending(&mut self) {
        self.pending.clear();
    }

    /// Computes the tree the pending changes give, without moving the fork.
    pub(crate) fn prepare_seal(&self) -> PreparedSeal {
        let mut changes: Vec<(B256, AccountLeaf)> = self
            .pending
            .iter()
            .map(|(address, account)| {
                (
                    account_key(address),
                    AccountLeaf {
                        address: *address,
                        account: *account,
                    },
                )
            })
            .collect();
        changes.sort_by_key(|entry| entry.0);
        let tree_changes: Vec<_> = changes
            .iter()
            .map(|(key, leaf)| (*key, Some(*leaf)))
            .collect();
        PreparedSeal {
            tree: self.version.tree.update(&tree_changes),
            changes,
        }
    }

    /// Makes `prepared` block `header` and moves the fork onto it.
    pub(crate) fn commit(
        &mut self,
        prepared: PreparedSeal,
        header: BlockHeader,
        txs: Vec<Tx>,
    ) -> ExecutedBlock {
        debug_assert_eq!(prepared.tree.root(), header.state_root);
        let parent_archive_root = self.version.archive.root();
        let block = Block { header, txs };
        let mut archive: ArchiveTree = self.version.archive.clone();
        // 2^32 blocks: unreachable in practice; an error leaves the archive unchanged.
        let _ = archive.append(block.hash());
        self.version = Version {
            tree: prepared.tree,
            archive,
            block_hash: block.hash(),
        };
        self.block_number = block.header.block_number;
        self.pending.clear();
        ExecutedBlock {
            archive_root: self.version.archive.root(),
            block,
            changes: prepared.changes,
            parent_archive_root,
        }
    }
}

/// The result of executing a block's txs, before it becomes part of the fork.
pub(crate) struct PreparedSeal {
    tree: Smt<AccountLeaf>,
    changes: Vec<(B256, AccountLeaf)>,
}

impl PreparedSeal {
    /// State root after the block.
    pub(crate) fn state_root(&self) -> B256 {
        self.tree.root()
    }
}

impl AccountStore for Fork {
    fn account(&self, address: &Address) -> Account {
        if let Some(account) = self.pending.get(address) {
            return *account;
        }
        self.version
            .tree
            .get(&account_key(address))
            .map(|leaf| leaf.account)
            .unwrap_or_default()
    }

    fn set_account(&mut self, address: Address, account: Account) {
        self.pending.insert(address, account);
    }
}
