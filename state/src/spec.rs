//! The chain constants the world state derives its genesis from.

use tandem_proto::{Address, B256, BlockHeader, archive::ArchiveTree, block_body_hash};

use crate::{
    account::{Account, AccountLeaf, account_key},
    smt::Smt,
};

/// Chain constants the world state derives the genesis block from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSpec {
    /// L2 chain id.
    pub chain_id: u64,
    /// Rollup version.
    pub rollup_version: u32,
    /// Genesis allocation: address → balance.
    pub genesis_allocation: Vec<(Address, u128)>,
}

impl ChainSpec {
    /// The tree of the genesis allocation.
    pub(crate) fn genesis_tree(&self) -> Smt<AccountLeaf> {
        Smt::from_entries(
            self.genesis_allocation
                .iter()
                .map(|(address, balance)| {
                    let account = Account {
                        balance: *balance,
                        nonce: 0,
                    };
                    (
                        account_key(address),
                        AccountLeaf {
                            address: *address,
                            account,
                        },
                    )
                })
                .collect(),
        )
    }

    /// Block 0: empty, on the empty archive, with the allocation's state root.
    pub fn genesis_header(&self) -> BlockHeader {
        BlockHeader {
            last_archive_root: ArchiveTree::new().root(),
            state_root: self.genesis_tree().root(),
            body_hash: block_body_hash(&[]),
            chain_id: self.chain_id,
            rollup_version: self.rollup_version,
            ..Default::default()
        }
    }

    /// The archive root after the genesis block: what the L1 contract is deployed with.
    pub fn genesis_archive_root(&self) -> B256 {
        let mut archive = ArchiveTree::new();
        // A fresh tree always has room for one leaf.
        archive
            .append(self.genesis_header().hash())
            .unwrap_or_default()
    }
}
